/**
 * Inline validation of the join form. The meeting-link grammar itself lives
 * in Rust (`parse_link`); these checks cover what the form can know alone.
 * Each check returns a message key, or null when the value is fine.
 */
import type { MessageKey } from "./i18n.svelte";

/** The longest nickname accepted, in characters. */
export const MAX_NICKNAME_CHARS = 64;

/** A validation failure: a message key and its parameters. */
export interface Problem {
  key: MessageKey;
  params?: Record<string, string | number>;
}

// Control characters, including DEL and the C1 range.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Checks the meeting link field before it is sent for parsing. */
export function checkLinkInput(text: string): Problem | null {
  if (text.trim() === "") return { key: "validation.link.required" };
  return null;
}

/** Checks the nickname. */
export function checkNickname(text: string): Problem | null {
  const trimmed = text.trim();
  if (trimmed === "") return { key: "validation.nickname.required" };
  if ([...trimmed].length > MAX_NICKNAME_CHARS) {
    return { key: "validation.nickname.tooLong", params: { max: MAX_NICKNAME_CHARS } };
  }
  if (CONTROL.test(trimmed)) return { key: "validation.nickname.invalid" };
  return null;
}

/** Checks the server address; empty means "use the default". */
export function checkServer(text: string): Problem | null {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  try {
    const url = new URL(trimmed);
    if ((url.protocol === "ws:" || url.protocol === "wss:") && url.hostname !== "") return null;
  } catch {
    // Falls through to the error below.
  }
  return { key: "validation.server.invalid" };
}
