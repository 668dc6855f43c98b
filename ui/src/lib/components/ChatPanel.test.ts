import { describe, expect, it, vi } from "vitest";
import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import ChatPanel from "./ChatPanel.svelte";
import type { ChatMessage, Participant } from "../bindings";
import { setLocale } from "../i18n.svelte";

const me: Participant = { id: "1", nickname: "Me", is_self: true };
const ada: Participant = { id: "2", nickname: "Ada", is_self: false };
const msg = (from: Participant, text: string, to: Participant | null = null): ChatMessage => ({
  from: from.id,
  from_name: from.nickname,
  to: to?.id ?? null,
  to_name: to?.nickname ?? null,
  text,
  encrypted: true,
  at_ms: 1_700_000_000_000,
});

function renderChat(messages: ChatMessage[], extra: Record<string, unknown> = {}) {
  const onsend = vi.fn(async () => true);
  const result = render(ChatPanel, {
    messages,
    participants: [me, ada],
    selfId: "1",
    chatEncrypted: true,
    onsend,
    onexport: () => {},
    ...extra,
  });
  return { onsend, ...result };
}

describe("ChatPanel", () => {
  setLocale("en");

  it("renders message text literally, never as HTML", () => {
    const evil = '<img src=x onerror="alert(1)"><b>bold</b>';
    const { container } = renderChat([msg(ada, evil)]);
    const bubble = screen.getByTestId("chat-message");
    expect(bubble.textContent).toBe(evil);
    expect(container.querySelector("img")).toBeNull();
    expect(container.querySelector(".bubble b")).toBeNull();
  });

  it("keeps line breaks and shows who a private message is for", () => {
    renderChat([msg(ada, "line one\nline two", me), msg(me, "reply", ada)]);
    const bubbles = screen.getAllByTestId("chat-message");
    expect(bubbles[0].textContent).toBe("line one\nline two");
    expect(bubbles[0].dataset.private).toBe("true");
    const text = screen.getByTestId("chat-messages").textContent ?? "";
    expect(text).toContain("Private · to you");
    expect(text).toContain("Private · to Ada");
  });

  it("says when chat is only encrypted in transit", () => {
    renderChat([], { chatEncrypted: false });
    expect(screen.getByTestId("chat-security").textContent).toContain("Encrypted in transit only");
  });

  it("sends on Enter to the chosen recipient, Shift+Enter adds a line", async () => {
    const { onsend } = renderChat([]);
    const input = screen.getByTestId("chat-input") as HTMLTextAreaElement;
    await userEvent.type(input, "hi{Shift>}{Enter}{/Shift}there{Enter}");
    expect(onsend).toHaveBeenCalledWith(null, "hi\nthere");
    expect(input.value).toBe("");
    await userEvent.selectOptions(screen.getByTestId("chat-recipient"), "Ada");
    await userEvent.type(input, "psst{Enter}");
    expect(onsend).toHaveBeenLastCalledWith("2", "psst");
  });

  it("does not send blank messages", async () => {
    const { onsend } = renderChat([]);
    await userEvent.type(screen.getByTestId("chat-input"), "   {Enter}");
    expect(onsend).not.toHaveBeenCalled();
  });

  it("keeps copied chat inside the app when asked: others get a placeholder, the chat box gets the text", async () => {
    renderChat([msg(ada, "the quarterly numbers")], { contained: true });
    const bubble = screen.getByTestId("chat-message");
    const range = document.createRange();
    range.selectNodeContents(bubble);
    window.getSelection()?.removeAllRanges();
    window.getSelection()?.addRange(range);
    let systemClipboard = "";
    const clipboardEvent = (type: string) => {
      const event = new Event(type, { bubbles: true, cancelable: true });
      Object.defineProperty(event, "clipboardData", {
        value: { setData: (_: string, v: string) => (systemClipboard = v), getData: () => systemClipboard },
      });
      return event;
    };
    const copy = clipboardEvent("copy");
    bubble.dispatchEvent(copy);
    expect(copy.defaultPrevented).toBe(true);
    expect(systemClipboard).not.toContain("quarterly");
    const input = screen.getByTestId("chat-input") as HTMLTextAreaElement;
    input.dispatchEvent(clipboardEvent("paste"));
    await vi.waitFor(() => expect(input.value).toBe("the quarterly numbers"));
  });

  it("copies normally when the guard is off", () => {
    renderChat([msg(ada, "hello")]);
    const copy = new Event("copy", { bubbles: true, cancelable: true });
    screen.getByTestId("chat-message").dispatchEvent(copy);
    expect(copy.defaultPrevented).toBe(false);
  });
});
