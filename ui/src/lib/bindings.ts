// Generated from the Rust types by `CONCLAVE_WRITE_BINDINGS=1 cargo test -p conclave-app bindings`.
// Do not edit: CI fails when this file differs from what the Rust code generates.

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

export type Participant = { 
/**
 * Stable id for the whole meeting (the VideoRoom publisher id and the
 * TextRoom username, in decimal).
 */
id: string, 
/**
 * Display name chosen by the person.
 */
nickname: string, 
/**
 * Whether this is the local user.
 */
is_self: boolean, };

export type ChatMessage = { 
/**
 * Sender's participant id.
 */
from: string, 
/**
 * Sender's nickname at the time of sending.
 */
from_name: string, 
/**
 * Addressee's participant id for a private message; `None` for everyone.
 */
to: string | null, 
/**
 * Addressee's nickname for a private message.
 */
to_name: string | null, 
/**
 * The message text.
 */
text: string, 
/**
 * Whether the message was end-to-end encrypted on the wire.
 */
encrypted: boolean, 
/**
 * Local receive (or send) time, milliseconds since the Unix epoch.
 */
at_ms: number, };

export type RemoteMediaStats = { 
/**
 * Participant id.
 */
participant: string, 
/**
 * Audio packets received.
 */
audio_packets: number, 
/**
 * Audio packets lost and rebuilt from forward error correction.
 */
audio_recovered: number, 
/**
 * Audio packets lost and concealed.
 */
audio_concealed: number, 
/**
 * Audio packets that came too late, or were dropped to cut delay.
 */
audio_late: number, 
/**
 * The jitter buffer's current target delay, in milliseconds.
 */
jitter_target_ms: number, 
/**
 * Level of what we play of them, in -dBov (127 = silence).
 */
level: number, 
/**
 * Video frames decoded.
 */
video_frames: number, 
/**
 * Frames decoded in the last second.
 */
video_fps: number, 
/**
 * Width of the last decoded frame (0: none yet).
 */
video_width: number, 
/**
 * Height of the last decoded frame (0: none yet).
 */
video_height: number, };

export type ConnectionPath = "unknown" | "direct" | "direct_tcp" | "relay_udp" | "relay_tcp" | "relay_tls";

export type ConnectionQuality = "good" | "poor" | "bad";

export type NetworkStats = { 
/**
 * Media sent, in kbit/s (all packets, with overhead).
 */
send_kbps: number, 
/**
 * Media received, in kbit/s.
 */
receive_kbps: number, 
/**
 * What the bandwidth estimate allows our video, in kbit/s.
 */
video_target_kbps: number, 
/**
 * Round-trip time to the server, in milliseconds.
 */
rtt_ms: number, 
/**
 * Share of our packets lost on the way to the server, in per mille.
 */
send_loss_permille: number, 
/**
 * Share of packets lost on the way to us, in per mille.
 */
receive_loss_permille: number, 
/**
 * How our media reaches the server.
 */
path: ConnectionPath, 
/**
 * How well our connection carries the meeting, as the others are
 * told (see [`ConnectionQuality`]).
 */
quality: ConnectionQuality, };

export type EffectsStats = { 
/**
 * Microseconds per camera picture, averaged (the person mask's cost
 * spread over the pictures it serves).
 */
us_per_frame: number, 
/**
 * A person mask is made every this many pictures: more when the
 * effect is behind its budget.
 */
mask_every: number, };

export type SendingStats = { 
/**
 * Audio packets made from the microphone so far.
 */
audio_packets: number, 
/**
 * Our audio lost on the way to the server, smoothed, in per mille (as
 * the server reports it).
 */
audio_loss_permille: number, 
/**
 * The loss Opus is set to expect, in percent: its forward error
 * correction takes bits from the voice accordingly (0 on a clean link).
 */
audio_protection_percent: number, 
/**
 * Size of the camera video sent now.
 */
video_width: number, 
/**
 * Height of the camera video sent now.
 */
video_height: number, 
/**
 * Camera frames sent in the last second.
 */
video_fps: number, 
/**
 * Share of each frame interval the camera video takes of the
 * processor, in percent (0: not measured yet).
 */
video_cpu_percent: number, 
/**
 * Whether the camera video is made smaller or less frequent because
 * the processor cannot keep up.
 */
video_limited_by_cpu: boolean, 
/**
 * Camera frames not encoded because the ones before had not gone out.
 */
video_dropped: number, };

export type MediaStats = { 
/**
 * The microphone's level, in -dBov (127 = silence or muted).
 */
mic_level: number, 
/**
 * Whether the microphone is muted.
 */
muted: boolean, 
/**
 * Whether the camera is on.
 */
camera_on: boolean, 
/**
 * Whether there is a camera at all.
 */
has_camera: boolean, 
/**
 * Whether there is a microphone at all (it may be muted).
 */
has_microphone: boolean, 
/**
 * Whether we are sharing a screen or window.
 */
sharing: boolean, 
/**
 * What the camera effects (virtual background, touch-up) cost, when
 * any are on.
 */
effects: EffectsStats | null, 
/**
 * What we send.
 */
sending: SendingStats, 
/**
 * Per remote participant.
 */
remotes: Array<RemoteMediaStats>, 
/**
 * The media connections.
 */
network: NetworkStats, };

export type RecordingState = "stopped" | "recording" | "paused";

export type EngineEvent = { "type": "joined", 
/**
 * Meeting ID (decimal).
 */
room: string, 
/**
 * The local participant's id.
 */
self_id: string, 
/**
 * The local nickname.
 */
nickname: string, 
/**
 * Whether chat is end-to-end encrypted (the link carried a chat key).
 */
chat_encrypted: boolean, 
/**
 * Everyone in the meeting, including the local user.
 */
participants: Array<Participant>, 
/**
 * The meeting's topic, as the host set it on the server.
 */
topic: string | null, 
/**
 * Whether the host allows recording the meeting on a device.
 */
recording_allowed: boolean, 
/**
 * Whether the host lets several people share their screens at once.
 */
several_presenters: boolean, } | { "type": "join_failed", 
/**
 * A message for the user.
 */
message: string, } | { "type": "participant_joined", 
/**
 * Who.
 */
participant: Participant, } | { "type": "participant_left", 
/**
 * Who.
 */
participant: Participant, } | { "type": "chat", 
/**
 * The message.
 */
message: ChatMessage, } | { "type": "share_restore_token", 
/**
 * Opaque; the desktop's.
 */
token: string, } | { "type": "warning", 
/**
 * A message for the user.
 */
message: string, } | { "type": "error", 
/**
 * A message for the user.
 */
message: string, } | { "type": "disconnected", 
/**
 * A message for the user.
 */
message: string, } | { "type": "reconnecting", 
/**
 * Whether we are waiting for the network now.
 */
active: boolean, } | { "type": "connection_quality", 
/**
 * Whose (participant id).
 */
participant: string, 
/**
 * How it is now.
 */
quality: ConnectionQuality, } | { "type": "left" } | { "type": "track_added", 
/**
 * Whose (participant id).
 */
participant: string, 
/**
 * Their nickname, if known.
 */
nickname: string, 
/**
 * `audio` or `video`.
 */
kind: string, } | { "type": "track_removed", 
/**
 * Whose (participant id).
 */
participant: string, 
/**
 * Their nickname, if known.
 */
nickname: string, 
/**
 * `audio` or `video`.
 */
kind: string, } | { "type": "talking", 
/**
 * Who (participant id).
 */
participant: string, 
/**
 * Whether they talk now.
 */
talking: boolean, } | { "type": "recording", 
/**
 * Who (participant id).
 */
participant: string, 
/**
 * Their nickname.
 */
nickname: string, 
/**
 * Whether they record now.
 */
state: RecordingState, } | { "type": "stats", 
/**
 * The figures.
 */
stats: MediaStats, } | { "type": "raw_text_room", 
/**
 * The frame.
 */
text: string, };

export type LinkSummary = { 
/**
 * The meeting ID, grouped for reading (`123 456 789`).
 */
room: string, 
/**
 * The server the link names, if any.
 */
server: string | null, 
/**
 * Whether the link carries the password.
 */
has_password: boolean, 
/**
 * Whether the link carries a chat key (chat end-to-end encrypted).
 */
has_chat_key: boolean, 
/**
 * Whether the OS keychain remembers this meeting's password or key.
 */
remembered: boolean, };

export type JoinRequest = { 
/**
 * A link, a meeting ID or pasted invitation text.
 */
link_or_id: string, 
/**
 * A password typed by the user, used when the link carries none.
 */
password: string | null, 
/**
 * The display name.
 */
nickname: string, 
/**
 * A server typed by the user; otherwise the link's, then the default.
 */
server: string | null, 
/**
 * Keep the password and chat key in the OS keychain after joining.
 */
remember: boolean, };

export type DeviceOption = { 
/**
 * `microphone`, `speaker` or `camera`.
 */
kind: string, 
/**
 * What the settings store (a device id, or `synthetic`).
 */
id: string, 
/**
 * Name shown to the user.
 */
name: string, 
/**
 * Whether the OS calls it the default.
 */
is_default: boolean, };

export type ShareSource = { 
/**
 * `screen:N` or `window:0x…`.
 */
id: string, 
/**
 * Monitor name or window title.
 */
name: string, 
/**
 * `screen` or `window`.
 */
kind: string, 
/**
 * A PNG data URL of the current picture (at most 320x180), if it could
 * be captured. It stays in this app.
 */
thumbnail: string | null, };

export type ClipboardOffer = { 
/**
 * The meeting ID, grouped for reading ("123 456 789").
 */
room: string, 
/**
 * Whether the found text carries a password.
 */
has_password: boolean, };

export type HistoryEntry = { 
/**
 * Row id (for deleting).
 */
id: number, 
/**
 * Meeting ID (decimal).
 */
room: string, 
/**
 * Whether this app hosted it.
 */
hosted: boolean, 
/**
 * When we joined (Unix seconds).
 */
started: number, 
/**
 * When we left (Unix seconds; `None` while in it, or after a crash).
 */
ended: number | null, 
/**
 * The names of everyone seen in it, ours included, in order of arrival.
 */
attendees: Array<string>, };

export type DiagnosticsFile = { 
/**
 * The name inside the zip.
 */
name: string, 
/**
 * Exactly what goes into the zip.
 */
contents: string, };

export type RecordingEnded = { 
/**
 * The file.
 */
path: string, 
/**
 * What went wrong (`None`: finished normally).
 */
problem: string | null, };

export type RepairOutcome = { 
/**
 * The file.
 */
path: string, 
/**
 * Seconds of recording kept (when repaired).
 */
seconds: number | null, 
/**
 * Why it could not be repaired.
 */
problem: string | null, };

export type BackgroundImage = { 
/**
 * The picture's id (a hash of its pixels): `picture:<id>` in the
 * settings.
 */
id: string, 
/**
 * A small PNG data URL of it. It stays in this app.
 */
thumbnail: string, };

export type RelaySetting = { 
/**
 * As the user typed it: `turn:host[:port][?transport=tcp]`,
 * `turns:host[:port]` or `stun:host[:port]`.
 */
url: string, 
/**
 * The TURN user name (empty for STUN).
 */
username: string, };

export type Settings = { 
/**
 * Last nickname used.
 */
nickname: string, 
/**
 * Default signaling server.
 */
server: string, 
/**
 * UI language (`en`, `zh-CN`), or none to follow the OS.
 */
language: string | null, 
/**
 * Camera: `default` (the OS's first camera), a device id,
 * `synthetic[:WIDTHxHEIGHT[@FPS]]` (the test pattern), or empty for none.
 */
camera: string, 
/**
 * Microphone: `default`, a device name, or empty for none.
 */
microphone: string, 
/**
 * Speaker: `default`, a device name, or empty for none.
 */
speaker: string, 
/**
 * The folder the user chose for screenshots (empty: ask).
 */
screenshot_folder: string, 
/**
 * Offer to join a meeting found on the clipboard (J2).
 */
clipboard_detection: boolean, 
/**
 * A hash of the last meeting offered from the clipboard (never the
 * clipboard's text), so the same meeting is not offered twice.
 */
clipboard_offered: string, 
/**
 * Keep a local history of meetings and who attended (D1).
 */
history_enabled: boolean, 
/**
 * Days after which history entries are deleted.
 */
history_days: number, 
/**
 * Consent to use a camera at all (D7): off, no camera is opened.
 */
camera_allowed: boolean, 
/**
 * Consent to use a microphone at all (D7): off, no microphone is opened.
 */
microphone_allowed: boolean, 
/**
 * Meetings whose password or chat key is in the OS keychain, by
 * keychain name (server and meeting ID; never the secret), so that
 * "Delete all local data" can remove them.
 */
remembered: Array<string>, 
/**
 * Keep meeting content inside the app (D5): chat text copies to an
 * app-internal clipboard, other programs get a placeholder.
 */
keep_content_in_app: boolean, 
/**
 * The folder the user chose for recordings (empty: the OS videos
 * folder).
 */
recording_folder: string, 
/**
 * The virtual background: `blur` (strong), `blur-light`, or
 * `picture:<id>` of the gallery in the data directory.
 */
background: string, 
/**
 * Whether the virtual background is on.
 */
background_enabled: boolean, 
/**
 * Face touch-up (skin smoothing, light correction) on the camera.
 */
touch_up: boolean, 
/**
 * Relays and STUN servers of the Connection settings, in the order
 * added; their passwords are in the keychain, never here.
 */
relays: Array<RelaySetting>, 
/**
 * Offer only relayed paths, so nobody learns this computer's address
 * (needs a relay that answers).
 */
relay_only: boolean, };

/** The commands of the app, as an interface so tests and demos can supply their own. */
export interface Commands {
  parseLink(text: string): Promise<LinkSummary>;
  launchLink(): Promise<string | null>;
  getSettings(): Promise<Settings>;
  saveSettings(settings: Settings): Promise<void>;
  addRelay(url: string, username: string, password: string): Promise<Settings>;
  removeRelay(url: string, username: string): Promise<Settings>;
  join(request: JoinRequest): Promise<string | null>;
  hostMeeting(nickname: string, topic: string | null, allowRecording: boolean, severalPresenters: boolean): Promise<string>;
  leave(): Promise<void>;
  sendChat(to: string | null, text: string): Promise<void>;
  copyInvitation(): Promise<string>;
  exportChat(): Promise<string | null>;
  videoUrl(): Promise<string | null>;
  setMuted(muted: boolean): Promise<void>;
  setCameraOn(on: boolean): Promise<void>;
  listDevices(): Promise<Array<DeviceOption>>;
  switchMicrophone(device: string | null): Promise<void>;
  switchSpeaker(device: string | null): Promise<void>;
  switchCamera(device: string): Promise<void>;
  listShareSources(): Promise<Array<ShareSource>>;
  startShare(source: string, audio: boolean): Promise<void>;
  stopShare(): Promise<void>;
  screenshotTile(tile: string): Promise<string>;
  saveScreenshot(png: string, choose: boolean): Promise<string | null>;
  checkClipboard(): Promise<ClipboardOffer | null>;
  acceptClipboardOffer(): Promise<string | null>;
  listHistory(search: string): Promise<Array<HistoryEntry>>;
  deleteHistory(id: number): Promise<void>;
  clearHistory(): Promise<void>;
  startPreview(): Promise<string | null>;
  stopPreview(): Promise<void>;
  testSpeaker(device: string | null): Promise<void>;
  forgetPassword(link: string): Promise<void>;
  deleteAllLocalData(): Promise<Array<string>>;
  diagnosticsPreview(): Promise<Array<DiagnosticsFile>>;
  saveDiagnostics(): Promise<string | null>;
  recordingFolder(): Promise<string>;
  chooseRecordingFolder(): Promise<string | null>;
  startRecording(consent: boolean, localTime: string): Promise<string>;
  pauseRecording(paused: boolean): Promise<void>;
  stopRecording(): Promise<string | null>;
  unfinishedRecordings(): Promise<Array<string>>;
  repairRecordings(paths: Array<string>): Promise<Array<RepairOutcome>>;
  listBackgrounds(): Promise<Array<BackgroundImage>>;
  addBackground(path: string | null): Promise<BackgroundImage | null>;
  removeBackground(id: string): Promise<void>;
  setVideoEffects(background: string, enabled: boolean, touchUp: boolean): Promise<void>;
}

/** The commands, invoked over Tauri IPC. */
export const tauriCommands: Commands = {
  parseLink: (text: string) => invoke<LinkSummary>("parse_link", { text }),
  launchLink: () => invoke<string | null>("launch_link"),
  getSettings: () => invoke<Settings>("get_settings"),
  saveSettings: (settings: Settings) => invoke<void>("save_settings", { settings }),
  addRelay: (url: string, username: string, password: string) => invoke<Settings>("add_relay", { url, username, password }),
  removeRelay: (url: string, username: string) => invoke<Settings>("remove_relay", { url, username }),
  join: (request: JoinRequest) => invoke<string | null>("join", { request }),
  hostMeeting: (nickname: string, topic: string | null, allowRecording: boolean, severalPresenters: boolean) => invoke<string>("host_meeting", { nickname, topic, allowRecording, severalPresenters }),
  leave: () => invoke<void>("leave"),
  sendChat: (to: string | null, text: string) => invoke<void>("send_chat", { to, text }),
  copyInvitation: () => invoke<string>("copy_invitation"),
  exportChat: () => invoke<string | null>("export_chat"),
  videoUrl: () => invoke<string | null>("video_url"),
  setMuted: (muted: boolean) => invoke<void>("set_muted", { muted }),
  setCameraOn: (on: boolean) => invoke<void>("set_camera_on", { on }),
  listDevices: () => invoke<Array<DeviceOption>>("list_devices"),
  switchMicrophone: (device: string | null) => invoke<void>("switch_microphone", { device }),
  switchSpeaker: (device: string | null) => invoke<void>("switch_speaker", { device }),
  switchCamera: (device: string) => invoke<void>("switch_camera", { device }),
  listShareSources: () => invoke<Array<ShareSource>>("list_share_sources"),
  startShare: (source: string, audio: boolean) => invoke<void>("start_share", { source, audio }),
  stopShare: () => invoke<void>("stop_share"),
  screenshotTile: (tile: string) => invoke<string>("screenshot_tile", { tile }),
  saveScreenshot: (png: string, choose: boolean) => invoke<string | null>("save_screenshot", { png, choose }),
  checkClipboard: () => invoke<ClipboardOffer | null>("check_clipboard"),
  acceptClipboardOffer: () => invoke<string | null>("accept_clipboard_offer"),
  listHistory: (search: string) => invoke<Array<HistoryEntry>>("list_history", { search }),
  deleteHistory: (id: number) => invoke<void>("delete_history", { id }),
  clearHistory: () => invoke<void>("clear_history"),
  startPreview: () => invoke<string | null>("start_preview"),
  stopPreview: () => invoke<void>("stop_preview"),
  testSpeaker: (device: string | null) => invoke<void>("test_speaker", { device }),
  forgetPassword: (link: string) => invoke<void>("forget_password", { link }),
  deleteAllLocalData: () => invoke<Array<string>>("delete_all_local_data"),
  diagnosticsPreview: () => invoke<Array<DiagnosticsFile>>("diagnostics_preview"),
  saveDiagnostics: () => invoke<string | null>("save_diagnostics"),
  recordingFolder: () => invoke<string>("recording_folder"),
  chooseRecordingFolder: () => invoke<string | null>("choose_recording_folder"),
  startRecording: (consent: boolean, localTime: string) => invoke<string>("start_recording", { consent, localTime }),
  pauseRecording: (paused: boolean) => invoke<void>("pause_recording", { paused }),
  stopRecording: () => invoke<string | null>("stop_recording"),
  unfinishedRecordings: () => invoke<Array<string>>("unfinished_recordings"),
  repairRecordings: (paths: Array<string>) => invoke<Array<RepairOutcome>>("repair_recordings", { paths }),
  listBackgrounds: () => invoke<Array<BackgroundImage>>("list_backgrounds"),
  addBackground: (path: string | null) => invoke<BackgroundImage | null>("add_background", { path }),
  removeBackground: (id: string) => invoke<void>("remove_background", { id }),
  setVideoEffects: (background: string, enabled: boolean, touchUp: boolean) => invoke<void>("set_video_effects", { background, enabled, touchUp }),
};

/** The name of the event that carries every [`EngineEvent`]. */
export const ENGINE_EVENT = "engine-event";

/** Subscribes to engine events over Tauri IPC. */
export function listenEngineEvents(handler: (event: EngineEvent) => void): Promise<UnlistenFn> {
  return listen<EngineEvent>(ENGINE_EVENT, (e) => handler(e.payload));
}

/** The name of the event that carries the previewed microphone's level (-dBov). */
export const PREVIEW_LEVEL_EVENT = "preview-level";

/** Subscribes to the device preview's microphone level over Tauri IPC. */
export function listenPreviewLevel(handler: (level: number) => void): Promise<UnlistenFn> {
  return listen<number>(PREVIEW_LEVEL_EVENT, (e) => handler(e.payload));
}

/** The name of the event that says a recording ended without being stopped. */
export const RECORDING_ENDED_EVENT = "recording-ended";

/** Subscribes to recordings that end by themselves over Tauri IPC. */
export function listenRecordingEnded(handler: (ended: RecordingEnded) => void): Promise<UnlistenFn> {
  return listen<RecordingEnded>(RECORDING_ENDED_EVENT, (e) => handler(e.payload));
}

/** The name of the event that carries what the preview's camera effects cost. */
export const PREVIEW_EFFECTS_EVENT = "preview-effects";

/** Subscribes to the preview's effects cost over Tauri IPC. */
export function listenPreviewEffects(handler: (cost: EffectsStats | null) => void): Promise<UnlistenFn> {
  return listen<EffectsStats | null>(PREVIEW_EFFECTS_EVENT, (e) => handler(e.payload));
}
