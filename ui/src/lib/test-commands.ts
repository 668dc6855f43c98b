/** Commands that do nothing, for component tests; override what a test needs. */
import { vi } from "vitest";
import type { Commands, LinkSummary } from "./bindings";

export function fakeCommands(overrides: Partial<Commands> = {}): Commands {
  return {
    parseLink: vi.fn(async (text: string): Promise<LinkSummary> => {
      if (!/\d{6}/.test(text)) throw "Not a meeting link or ID";
      return { room: "123 456 789", server: null, has_password: text.includes("pw="), has_chat_key: text.includes("k="), remembered: false };
    }),
    launchLink: vi.fn(async () => null),
    getSettings: vi.fn(async () => ({ nickname: "", server: "ws://127.0.0.1:8188", language: null, camera: "", microphone: "default", speaker: "default", screenshot_folder: "", clipboard_detection: true, clipboard_offered: "", history_enabled: true, history_days: 30, camera_allowed: true, microphone_allowed: true, remembered: [], keep_content_in_app: false, recording_folder: "", background: "blur", background_enabled: false, touch_up: false, relays: [], relay_only: false })),
    saveSettings: vi.fn(async () => {}),
    addRelay: vi.fn(async () => { throw "not in this test"; }),
    removeRelay: vi.fn(async () => { throw "not in this test"; }),
    join: vi.fn(async () => null),
    hostMeeting: vi.fn(async () => "conclave://join/1"),
    leave: vi.fn(async () => {}),
    sendChat: vi.fn(async () => {}),
    copyInvitation: vi.fn(async () => ""),
    exportChat: vi.fn(async () => null),
    videoUrl: vi.fn(async () => null),
    setMuted: vi.fn(async () => {}),
    setCameraOn: vi.fn(async () => {}),
    listDevices: vi.fn(async () => []),
    switchMicrophone: vi.fn(async () => {}),
    switchSpeaker: vi.fn(async () => {}),
    switchCamera: vi.fn(async () => {}),
    listShareSources: vi.fn(async () => []),
    startShare: vi.fn(async () => {}),
    stopShare: vi.fn(async () => {}),
    screenshotTile: vi.fn(async () => ""),
    saveScreenshot: vi.fn(async () => null),
    checkClipboard: vi.fn(async () => null),
    acceptClipboardOffer: vi.fn(async () => null),
    listHistory: vi.fn(async () => []),
    deleteHistory: vi.fn(async () => {}),
    clearHistory: vi.fn(async () => {}),
    startPreview: vi.fn(async () => null),
    stopPreview: vi.fn(async () => {}),
    testSpeaker: vi.fn(async () => {}),
    forgetPassword: vi.fn(async () => {}),
    deleteAllLocalData: vi.fn(async () => []),
    diagnosticsPreview: vi.fn(async () => []),
    saveDiagnostics: vi.fn(async () => null),
    recordingFolder: vi.fn(async () => "/home/you/Videos"),
    chooseRecordingFolder: vi.fn(async () => null),
    startRecording: vi.fn(async () => "/home/you/Videos/Meeting.webm"),
    pauseRecording: vi.fn(async () => {}),
    stopRecording: vi.fn(async () => null),
    unfinishedRecordings: vi.fn(async () => []),
    repairRecordings: vi.fn(async () => []),
    listBackgrounds: vi.fn(async () => []),
    addBackground: vi.fn(async () => null),
    removeBackground: vi.fn(async () => {}),
    setVideoEffects: vi.fn(async () => {}),
    ...overrides,
  };
}
