/**
 * The meeting as the UI shows it, built only from engine events. Pure
 * functions, so the whole screen state can be tested without a backend.
 */
import type { ChatMessage, ConnectionPath, ConnectionQuality, EffectsStats, EngineEvent, Participant, RecordingState } from "./bindings";

/** Someone recording the meeting on their device. */
export interface Recorder {
  id: string;
  nickname: string;
  state: Exclude<RecordingState, "stopped">;
}

/** Whether the meeting is going on for us. */
export type MeetingStatus = "live" | "disconnected" | "left";

/** Everything the meeting screen renders. */
export interface MeetingState {
  room: string;
  selfId: string;
  nickname: string;
  chatEncrypted: boolean;
  participants: Participant[];
  messages: ChatMessage[];
  status: MeetingStatus;
  /** Why the meeting ended, when it ended on its own. */
  endReason: string | null;
  /** When we joined, milliseconds since the epoch. */
  joinedAt: number;
  /** Participant ids talking now. */
  talking: string[];
  /** Participant ids whose audio we receive. */
  withAudio: string[];
  /** Participant ids whose video we receive. */
  withVideo: string[];
  /** Participants whose shared screen is arriving. */
  sharing: string[];
  /** Whether we share a screen or window. */
  selfSharing: boolean;
  /** Our microphone is muted. */
  muted: boolean;
  /** Our camera sends (false: off, or there is none). */
  cameraOn: boolean;
  /** Our microphone's level in -dBov (127: silence). */
  micLevel: number;
  /** Whether we have a camera at all. */
  hasCamera: boolean;
  /** Whether we have a microphone at all. */
  hasMicrophone: boolean;
  /** The topic the host set, if any. */
  topic: string | null;
  /** Whether the host allows recording this meeting. */
  recordingAllowed: boolean;
  /** Whether the host lets several people share their screens at once. */
  severalPresenters: boolean;
  /** Who records (us too), in the order they started. */
  recorders: Recorder[];
  /** What our camera effects (background, touch-up) cost, when any are on. */
  effects: EffectsStats | null;
  /** Whether our video is reduced because this computer cannot keep up. */
  cpuLimited: boolean;
  /** How our media reaches the server (direct, or through a relay). */
  connectionPath: ConnectionPath;
  /** Whether the network is gone for now and we wait for it to return. */
  reconnecting: boolean;
  /** Connection quality by participant id (ours too); absent means good. */
  quality: Record<string, ConnectionQuality>;
}

/** A short-lived notice for the user. */
export interface Notice {
  kind: "info" | "warning" | "error";
  /** Either a translation key with params, or a message from the engine. */
  key?: "meeting.joinedToast" | "meeting.leftToast" | "record.startedToast" | "record.stoppedToast";
  params?: Record<string, string>;
  text?: string;
}

/** The state right after joining. */
export function fromJoined(event: Extract<EngineEvent, { type: "joined" }>, now: number): MeetingState {
  return {
    room: event.room,
    selfId: event.self_id,
    nickname: event.nickname,
    chatEncrypted: event.chat_encrypted,
    participants: sortParticipants(event.participants),
    messages: [],
    status: "live",
    endReason: null,
    joinedAt: now,
    talking: [],
    withAudio: [],
    withVideo: [],
    sharing: [],
    selfSharing: false,
    muted: false,
    cameraOn: false,
    micLevel: 127,
    hasCamera: false,
    hasMicrophone: false,
    topic: event.topic,
    recordingAllowed: event.recording_allowed,
    severalPresenters: event.several_presenters,
    recorders: [],
    effects: null,
    cpuLimited: false,
    connectionPath: "unknown",
    reconnecting: false,
    quality: {},
  };
}

/** A participant's connection quality as last told (good if never). */
export function qualityOf(state: MeetingState, id: string): ConnectionQuality {
  return state.quality[id] ?? "good";
}

const without = (list: string[], id: string) => list.filter((x) => x !== id);
const withId = (list: string[], id: string) => (list.includes(id) ? list : [...list, id]);

/** Self first, then by name, then by id (stable for equal names). */
export function sortParticipants(list: Participant[]): Participant[] {
  return [...list].sort((a, b) => {
    if (a.is_self !== b.is_self) return a.is_self ? -1 : 1;
    const byName = a.nickname.localeCompare(b.nickname);
    return byName !== 0 ? byName : a.id.localeCompare(b.id);
  });
}

/** Applies one event; returns the new state and a notice to show, if any. */
export function applyEvent(
  state: MeetingState,
  event: EngineEvent,
): { state: MeetingState; notice: Notice | null } {
  switch (event.type) {
    case "participant_joined": {
      const others = state.participants.filter((p) => p.id !== event.participant.id);
      return {
        state: { ...state, participants: sortParticipants([...others, event.participant]) },
        notice: event.participant.is_self
          ? null
          : { kind: "info", key: "meeting.joinedToast", params: { name: event.participant.nickname } },
      };
    }
    case "participant_left": {
      const known = state.participants.some((p) => p.id === event.participant.id);
      const id = event.participant.id;
      return {
        state: {
          ...state,
          participants: state.participants.filter((p) => p.id !== id),
          talking: without(state.talking, id),
          withAudio: without(state.withAudio, id),
          withVideo: without(state.withVideo, id),
          sharing: without(state.sharing, id),
          recorders: state.recorders.filter((r) => r.id !== id),
          quality: Object.fromEntries(Object.entries(state.quality).filter(([k]) => k !== id)),
        },
        notice: known
          ? { kind: "info", key: "meeting.leftToast", params: { name: event.participant.nickname } }
          : null,
      };
    }
    case "chat":
      return { state: { ...state, messages: [...state.messages, event.message] }, notice: null };
    case "warning":
      return { state, notice: { kind: "warning", text: event.message } };
    case "error":
      return { state, notice: { kind: "error", text: event.message } };
    case "disconnected":
      return { state: { ...state, status: "disconnected", endReason: event.message }, notice: null };
    case "left":
      return { state: { ...state, status: "left" }, notice: null };
    case "reconnecting":
      return { state: { ...state, reconnecting: event.active }, notice: null };
    case "connection_quality":
      return { state: { ...state, quality: { ...state.quality, [event.participant]: event.quality } }, notice: null };
    case "joined":
      return { state: fromJoined(event, state.joinedAt), notice: null };
    case "talking":
      return {
        state: { ...state, talking: event.talking ? withId(state.talking, event.participant) : without(state.talking, event.participant) },
        notice: null,
      };
    case "track_added":
    case "track_removed": {
      const key = event.kind === "video" ? "withVideo" : event.kind === "screen" ? "sharing" : "withAudio";
      const list = event.type === "track_added" ? withId(state[key], event.participant) : without(state[key], event.participant);
      return { state: { ...state, [key]: list }, notice: null };
    }
    case "recording": {
      const others = state.recorders.filter((r) => r.id !== event.participant);
      const was = state.recorders.find((r) => r.id === event.participant);
      const recorders =
        event.state === "stopped"
          ? others
          : was
            ? state.recorders.map((r) => (r.id === event.participant ? { ...r, state: event.state } : r))
            : [...others, { id: event.participant, nickname: event.nickname, state: event.state }];
      const self = event.participant === state.selfId;
      const notice: Notice | null =
        self || (event.state === "stopped") === !was
          ? null
          : event.state === "stopped"
            ? { kind: "info", key: "record.stoppedToast", params: { name: event.nickname } }
            : was
              ? null
              : { kind: "warning", key: "record.startedToast", params: { name: event.nickname } };
      return { state: { ...state, recorders: recorders as Recorder[] }, notice };
    }
    case "stats":
      return {
        state: {
          ...state,
          muted: event.stats.muted,
          cameraOn: event.stats.camera_on,
          micLevel: event.stats.mic_level,
          hasCamera: event.stats.has_camera,
          hasMicrophone: event.stats.has_microphone,
          selfSharing: event.stats.sharing,
          effects: event.stats.effects,
          cpuLimited: event.stats.sending.video_limited_by_cpu,
          connectionPath: event.stats.network.path,
          quality: state.quality[state.selfId] === event.stats.network.quality ? state.quality : { ...state.quality, [state.selfId]: event.stats.network.quality },
        },
        notice: null,
      };
    default:
      return { state, notice: null };
  }
}

/** Consecutive messages from one sender to one audience, shown under one header. */
export interface MessageGroup {
  from: string;
  fromName: string;
  to: string | null;
  toName: string | null;
  mine: boolean;
  messages: ChatMessage[];
}

/** Messages within this many milliseconds of the previous one join its group. */
export const GROUP_WINDOW_MS = 5 * 60 * 1000;

/** Groups messages for display. */
export function groupMessages(messages: ChatMessage[], selfId: string): MessageGroup[] {
  const groups: MessageGroup[] = [];
  for (const m of messages) {
    const last = groups[groups.length - 1];
    const previous = last?.messages[last.messages.length - 1];
    if (last && previous && last.from === m.from && last.to === m.to && m.at_ms - previous.at_ms < GROUP_WINDOW_MS) {
      last.messages.push(m);
    } else {
      groups.push({
        from: m.from,
        fromName: m.from_name,
        to: m.to,
        toName: m.to_name,
        mine: m.from === selfId,
        messages: [m],
      });
    }
  }
  return groups;
}

/** Up to two initials for an avatar. */
export function initials(name: string): string {
  // Letters and digits only: "Ada (app)" gives "AA", not "A(".
  const words = name
    .trim()
    .split(/\s+/)
    .map((w) => w.replace(/[^\p{L}\p{N}]/gu, ""))
    .filter(Boolean);
  if (words.length === 0) return "?";
  const chars = words.length === 1 ? [...words[0]].slice(0, 2) : [[...words[0]][0], [...words[words.length - 1]][0]];
  return chars.join("").toUpperCase();
}

/** A stable hue (0–359) for a participant id, so avatars keep their colour. */
export function hueFor(id: string): number {
  let hash = 2166136261;
  for (const c of id) {
    hash ^= c.codePointAt(0) ?? 0;
    hash = Math.imul(hash, 16777619);
  }
  return Math.abs(hash) % 360;
}

/** `mm:ss`, or `h:mm:ss` past an hour. */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** A notice on screen, already translated. */
export interface Toast {
  id: number;
  kind: "info" | "warning" | "error";
  text: string;
}

/** The video tile id of a participant's shared screen ("0" is us): their
 * id with bit 62 set, as the frame server numbers it. */
export function screenTile(participantId: string): string {
  return (BigInt(participantId) | (1n << 62n)).toString();
}
