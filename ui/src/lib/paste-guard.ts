/**
 * "Keep meeting content inside the app" (D5): with it on, text copied from
 * the chat goes to an app-internal clipboard; the system clipboard gets only
 * a placeholder, so other programs cannot paste the meeting's content.
 * Pasting the placeholder inside the app gives back the copied text.
 */

/** What other programs find on the clipboard after a guarded copy. */
export const PLACEHOLDER = "[Copied in Conclave: meeting content stays inside the app]";

let internal = "";

/** Handles `copy`/`cut` on guarded content: keeps the selection inside the app. */
export function guardCopy(event: ClipboardEvent, selected: string = window.getSelection()?.toString() ?? "") {
  if (selected === "") return;
  event.preventDefault();
  internal = selected;
  event.clipboardData?.setData("text/plain", PLACEHOLDER);
}

/**
 * What a paste inside the app inserts: the internal clipboard's text when the
 * system clipboard holds our placeholder, else what the system clipboard holds.
 */
export function pastedText(event: ClipboardEvent): string {
  const text = event.clipboardData?.getData("text/plain") ?? "";
  return text === PLACEHOLDER ? internal : text;
}

/** Forgets the internal clipboard (when the meeting ends). */
export function clearInternalClipboard() {
  internal = "";
}
