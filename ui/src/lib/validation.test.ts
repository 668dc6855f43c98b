import { describe, expect, it } from "vitest";
import { checkLinkInput, checkNickname, checkServer, MAX_NICKNAME_CHARS } from "./validation";

describe("link input", () => {
  it("requires something", () => {
    expect(checkLinkInput("")?.key).toBe("validation.link.required");
    expect(checkLinkInput("   \n ")?.key).toBe("validation.link.required");
  });
  it("leaves the grammar to the Rust parser", () => {
    expect(checkLinkInput("123 456 789")).toBeNull();
    expect(checkLinkInput("conclave://join/123456789#pw=x")).toBeNull();
    expect(checkLinkInput("hello")).toBeNull();
  });
});

describe("nickname", () => {
  it("must be present after trimming", () => {
    expect(checkNickname("")?.key).toBe("validation.nickname.required");
    expect(checkNickname("   ")?.key).toBe("validation.nickname.required");
    expect(checkNickname(" Ada ")).toBeNull();
    expect(checkNickname("李雷")).toBeNull();
  });
  it("has a length limit counted in characters", () => {
    expect(checkNickname("a".repeat(MAX_NICKNAME_CHARS))).toBeNull();
    expect(checkNickname("a".repeat(MAX_NICKNAME_CHARS + 1))?.key).toBe("validation.nickname.tooLong");
    expect(checkNickname("😀".repeat(MAX_NICKNAME_CHARS))).toBeNull();
  });
  it("rejects control characters", () => {
    expect(checkNickname("Ada\u0007")?.key).toBe("validation.nickname.invalid");
    expect(checkNickname("A\nB")?.key).toBe("validation.nickname.invalid");
  });
});

describe("server", () => {
  it("accepts empty and WebSocket URLs", () => {
    expect(checkServer("")).toBeNull();
    expect(checkServer("ws://127.0.0.1:8188")).toBeNull();
    expect(checkServer("wss://meet.example.org/janus")).toBeNull();
  });
  it("rejects anything else", () => {
    expect(checkServer("http://example.org")?.key).toBe("validation.server.invalid");
    expect(checkServer("example.org:8188")?.key).toBe("validation.server.invalid");
    expect(checkServer("ws://")?.key).toBe("validation.server.invalid");
  });
});
