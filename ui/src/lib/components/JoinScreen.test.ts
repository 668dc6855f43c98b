import { describe, expect, it, vi } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import JoinScreen from "./JoinScreen.svelte";
import type { LinkSummary } from "../bindings";
import { fakeCommands } from "../test-commands";
import { setLocale } from "../i18n.svelte";


const settings = { nickname: "Ada", server: "ws://127.0.0.1:8188", language: null, camera: "", microphone: "default", speaker: "default", screenshot_folder: "", clipboard_detection: true, clipboard_offered: "", history_enabled: true, history_days: 30, camera_allowed: true, microphone_allowed: true, remembered: [], keep_content_in_app: false, recording_folder: "", background: "blur", background_enabled: false, touch_up: false, relays: [], relay_only: false };

describe("JoinScreen", () => {
  setLocale("en");

  it("shows inline errors for an empty form instead of joining", async () => {
    const commands = fakeCommands();
    render(JoinScreen, { commands, settings: { ...settings, nickname: "" } });
    await userEvent.click(screen.getByTestId("join-button"));
    expect(screen.getByTestId("link-error").textContent).toContain("Enter a meeting link or ID.");
    expect(screen.getByTestId("nickname-error").textContent).toContain("Enter the name others will see.");
    expect(commands.join).not.toHaveBeenCalled();
  });

  it("shows the parser's verdict on a bad link inline", async () => {
    const commands = fakeCommands();
    render(JoinScreen, { commands, settings });
    await userEvent.type(screen.getByTestId("link-input"), "hello there");
    await waitFor(() => expect(screen.getByTestId("link-error").textContent).toContain("This is not a meeting link or ID."));
    expect(screen.getByTestId("link-input").getAttribute("aria-invalid")).toBe("true");
  });

  it("previews a good link and hides the password field when the link has it", async () => {
    const commands = fakeCommands();
    render(JoinScreen, { commands, settings });
    expect(screen.getByTestId("password-input")).toBeTruthy();
    await userEvent.type(screen.getByTestId("link-input"), "conclave://join/123456789#pw=x&k=y");
    await waitFor(() => expect(screen.getByTestId("link-preview").textContent).toContain("Meeting 123 456 789"));
    expect(screen.getByTestId("link-preview").textContent).toContain("End-to-end encrypted chat");
    expect(screen.queryByTestId("password-input")).toBeNull();
  });

  it("rejects a server that is not a WebSocket URL", async () => {
    const commands = fakeCommands();
    render(JoinScreen, { commands, settings: { ...settings, server: "http://example.org" } });
    expect(screen.getByTestId("server-error").textContent).toContain("ws:// or wss://");
    await userEvent.type(screen.getByTestId("link-input"), "123456789");
    await userEvent.click(screen.getByTestId("join-button"));
    expect(commands.join).not.toHaveBeenCalled();
  });

  it("joins with the trimmed nickname and shows a failed join's message", async () => {
    const join = vi.fn(async () => {
      throw "This meeting needs a password";
    });
    const commands = fakeCommands({ join });
    render(JoinScreen, { commands, settings: { ...settings, nickname: "  Ada  " } });
    await userEvent.type(screen.getByTestId("link-input"), "123456789");
    await userEvent.type(screen.getByTestId("password-input"), "secret");
    await userEvent.click(screen.getByTestId("join-button"));
    expect(join).toHaveBeenCalledWith({
      link_or_id: "123456789",
      password: "secret",
      nickname: "Ada",
      // The untouched default: the backend uses the link's server, else this one.
      server: null,
      remember: false,
    });
    await waitFor(() => expect(screen.getByTestId("join-error").textContent).toContain("This meeting needs a password"));
  });

  it("starts a meeting with only a name, and says when the name is missing", async () => {
    const onhost = vi.fn(async () => {});
    const commands = fakeCommands();
    render(JoinScreen, { commands, settings: { ...settings, nickname: "" }, onhost });
    await userEvent.click(screen.getByTestId("host-button"));
    expect(onhost).not.toHaveBeenCalled();
    expect(screen.getByTestId("nickname-error").textContent).toContain("Enter the name others will see.");
    await userEvent.type(screen.getByTestId("nickname-input"), " Ada ");
    await userEvent.click(screen.getByTestId("host-button"));
    expect(onhost).toHaveBeenCalledWith("Ada", true, false);
    expect(screen.queryByTestId("link-error")).toBeNull();
  });

  it("lets the host forbid recording the meeting", async () => {
    const onhost = vi.fn(async () => {});
    render(JoinScreen, { commands: fakeCommands(), settings, onhost });
    await userEvent.click(screen.getByTestId("host-allow-recording"));
    await userEvent.click(screen.getByTestId("host-button"));
    expect(onhost).toHaveBeenCalledWith("Ada", false, false);
  });

  it("lets the host allow several people to share at once", async () => {
    const onhost = vi.fn(async () => {});
    render(JoinScreen, { commands: fakeCommands(), settings, onhost });
    await userEvent.click(screen.getByTestId("host-several-presenters"));
    await userEvent.click(screen.getByTestId("host-button"));
    expect(onhost).toHaveBeenCalledWith("Ada", true, true);
  });

  it("offers to remember a typed password in the keychain, and passes the choice on", async () => {
    const commands = fakeCommands();
    render(JoinScreen, { commands, settings });
    expect(screen.queryByTestId("remember-password")).toBeNull();
    await userEvent.type(screen.getByTestId("link-input"), "123456789");
    await userEvent.type(screen.getByTestId("password-input"), "secret");
    await userEvent.click(screen.getByTestId("remember-password"));
    await userEvent.click(screen.getByTestId("join-button"));
    expect(commands.join).toHaveBeenCalledWith(expect.objectContaining({ password: "secret", remember: true }));
  });

  it("says when a password is remembered, needs none typed, and can forget it", async () => {
    const parseLink = vi.fn(async (): Promise<LinkSummary> => ({ room: "123 456 789", server: null, has_password: false, has_chat_key: false, remembered: true }));
    const commands = fakeCommands({ parseLink });
    render(JoinScreen, { commands, settings });
    await userEvent.type(screen.getByTestId("link-input"), "123456789");
    await screen.findByTestId("remembered-chip");
    expect(screen.queryByTestId("password-input")).toBeNull();
    await userEvent.click(screen.getByTestId("forget-password"));
    expect(commands.forgetPassword).toHaveBeenCalledWith("123456789");
    await screen.findByTestId("password-input");
  });
});
