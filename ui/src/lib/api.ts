/**
 * The backend the UI talks to: the app over Tauri IPC, or, when the UI runs
 * in a plain browser during development, a demo backend.
 */
import { listen } from "@tauri-apps/api/event";
import {
  listenEngineEvents,
  listenRecordingEnded,
  tauriCommands,
  type Commands,
  type EngineEvent,
  type RecordingEnded,
} from "./bindings";

/** Commands plus the engine event stream. */
export interface Backend {
  commands: Commands;
  onEngineEvent(handler: (event: EngineEvent) => void): Promise<() => void>;
  /** A meeting link opened while the app runs (a `conclave://` link). */
  onOpenLink(handler: (link: string) => void): Promise<() => void>;
  /** A recording that ended without being stopped (a full disk, leaving). */
  onRecordingEnded(handler: (ended: RecordingEnded) => void): Promise<() => void>;
}

/** Whether the UI runs inside the app. */
export function inApp(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

/** The backend of the app. */
export const tauriBackend: Backend = {
  commands: tauriCommands,
  onEngineEvent: listenEngineEvents,
  onOpenLink: (handler) => listen<string>("open-link", (e) => handler(e.payload)),
  onRecordingEnded: listenRecordingEnded,
};

/** Turns a rejected command into a message for the user. */
export function errorMessage(error: unknown): string {
  if (typeof error === "string") return error;
  if (error instanceof Error) return error.message;
  return String(error);
}
