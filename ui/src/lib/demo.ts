/**
 * A demo backend for `npm run dev` in a browser: a simulated meeting with two
 * other people, so the screens can be designed without the app. Never bundled
 * into the app (imported only in development).
 */
import type { Backend } from "./api";
import type { ChatMessage, EngineEvent, LinkSummary, Participant, Settings } from "./bindings";

export function demoBackend(): Backend {
  const handlers = new Set<(e: EngineEvent) => void>();
  const emit = (e: EngineEvent) => handlers.forEach((h) => h(e));
  let settings: Settings = { nickname: "", server: "ws://127.0.0.1:8188", language: null, camera: "default", microphone: "default", speaker: "default", screenshot_folder: "", clipboard_detection: true, clipboard_offered: "", history_enabled: true, history_days: 30, camera_allowed: true, microphone_allowed: true, remembered: [], keep_content_in_app: false, recording_folder: "", background: "blur", background_enabled: false, touch_up: false, relays: [], relay_only: false };
  let self: Participant = { id: "1", nickname: "", is_self: true };
  let recording = false;
  const others: Participant[] = [
    { id: "2", nickname: "Ada Lovelace", is_self: false },
    { id: "3", nickname: "李雷", is_self: false },
  ];
  const say = (from: Participant, text: string, to: Participant | null = null): ChatMessage => ({
    from: from.id,
    from_name: from.nickname,
    to: to?.id ?? null,
    to_name: to?.nickname ?? null,
    text,
    encrypted: true,
    at_ms: Date.now(),
  });
  return {
    commands: {
      async parseLink(text: string): Promise<LinkSummary> {
        const digits = text.replace(/\D/g, "");
        if (digits.length < 6) throw "Not a meeting link or ID";
        return {
          room: digits.slice(0, 9).replace(/(\d{3})(?=\d)/g, "$1 "),
          server: null,
          has_password: text.includes("#"),
          has_chat_key: text.includes("k="),
          remembered: false,
        };
      },
      launchLink: async () => null,
      getSettings: async () => settings,
      saveSettings: async (s) => {
        settings = s;
      },
      async addRelay(url, username) {
        if (!/^(turns?|stun):./i.test(url.trim())) throw `“${url}” is not a turn:, turns: or stun: address`;
        const relays = settings.relays.filter((r) => !(r.url === url && r.username === username));
        settings = { ...settings, relays: [...relays, { url: url.trim(), username: url.startsWith("stun") ? "" : username }] };
        return settings;
      },
      async removeRelay(url, username) {
        settings = { ...settings, relays: settings.relays.filter((r) => !(r.url === url && r.username === username)) };
        return settings;
      },
      async join(request) {
        await new Promise((r) => setTimeout(r, 600));
        self = { id: "1", nickname: request.nickname, is_self: true };
        emit({ type: "joined", room: "123456789", self_id: "1", nickname: request.nickname, chat_encrypted: true, participants: [self, others[0]], topic: "Weekly planning", recording_allowed: true, several_presenters: false });
        setTimeout(() => emit({ type: "participant_joined", participant: others[1] }), 1500);
        setTimeout(() => emit({ type: "recording", participant: others[0].id, nickname: others[0].nickname, state: "recording" }), 2000);
        setTimeout(() => emit({ type: "chat", message: say(others[0], "Hello! Can everyone see the agenda?") }), 2500);
        // `#quality` in the address: one connection is poor, another bad.
        if (location.hash.includes("quality")) {
          setTimeout(() => emit({ type: "connection_quality", participant: others[0].id, quality: "poor" }), 2000);
          setTimeout(() => emit({ type: "connection_quality", participant: others[1].id, quality: "bad" }), 2000);
        }
        // `#reconnecting` in the address: the network goes away for a while.
        if (location.hash.includes("reconnecting")) {
          setTimeout(() => emit({ type: "reconnecting", active: true }), 3000);
          setTimeout(() => emit({ type: "reconnecting", active: false }), 9000);
        }
        return null;
      },
      async hostMeeting(nickname) {
        await this.join({ link_or_id: "123456789", password: null, nickname, server: null, remember: false });
        return "conclave://join/123456789?server=ws%3A%2F%2F192.168.1.20%3A40123#pwd=demo&key=demo";
      },
      leave: async () => emit({ type: "left" }),
      async sendChat(to, text) {
        const target = others.find((p) => p.id === to) ?? null;
        emit({ type: "chat", message: say(self, text, target) });
      },
      copyInvitation: async () => "Join my Conclave meeting: conclave://join/123456789",
      exportChat: async () => "/home/you/conclave-chat-123456789.md",
      videoUrl: async () => null,
      setMuted: async () => {},
      setCameraOn: async () => {},
      listDevices: async () => [
        { kind: "microphone", id: "demo:mic", name: "Built-in microphone", is_default: true },
        { kind: "speaker", id: "demo:spk", name: "Built-in speakers", is_default: true },
        { kind: "camera", id: "synthetic", name: "Test pattern", is_default: false },
      ],
      switchMicrophone: async () => {},
      switchSpeaker: async () => {},
      switchCamera: async () => {},
      listShareSources: async () => [],
      startShare: async () => {},
      stopShare: async () => {},
      screenshotTile: async () => "",
      saveScreenshot: async () => null,
      checkClipboard: async () => null,
      acceptClipboardOffer: async () => null,
      listHistory: async () => [],
      deleteHistory: async () => {},
      clearHistory: async () => {},
      startPreview: async () => null,
      stopPreview: async () => {},
      testSpeaker: async () => {},
      forgetPassword: async () => {},
      deleteAllLocalData: async () => [],
      diagnosticsPreview: async () => [
        { name: "versions.txt", contents: "Conclave 0.1.0\nplatform: linux x86_64\n" },
        { name: "recent-errors.txt", contents: "" },
      ],
      saveDiagnostics: async () => "/home/you/conclave-diagnostics.zip",
      recordingFolder: async () => "/home/you/Videos",
      chooseRecordingFolder: async () => null,
      async startRecording(consent) {
        if (!consent) throw "Confirm that everyone in the meeting agreed to be recorded.";
        recording = true;
        emit({ type: "recording", participant: "1", nickname: self.nickname, state: "recording" });
        return "/home/you/Videos/Weekly planning 2026-11-24 10.00.webm";
      },
      async pauseRecording(paused) {
        emit({ type: "recording", participant: "1", nickname: self.nickname, state: paused ? "paused" : "recording" });
      },
      async stopRecording() {
        if (!recording) return null;
        recording = false;
        emit({ type: "recording", participant: "1", nickname: self.nickname, state: "stopped" });
        return "/home/you/Videos/Weekly planning 2026-11-24 10.00.webm";
      },
      unfinishedRecordings: async () => [],
      repairRecordings: async (paths) => paths.map((path) => ({ path, seconds: 42, problem: null })),
      listBackgrounds: async () => [],
      addBackground: async () => null,
      removeBackground: async () => {},
      setVideoEffects: async (background, enabled, touchUp) => {
        settings = { ...settings, background, background_enabled: enabled, touch_up: touchUp };
      },
    },
    onOpenLink: async () => () => {},
    onRecordingEnded: async () => () => {},
    async onEngineEvent(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
}
