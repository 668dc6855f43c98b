//! The one command/event API of the engine, shared by the desktop app, the
//! command-line client and the tests.
//!
//! Types here are serialised to the UI as JSON (tagged with `type`), and their
//! TypeScript form is generated from them (feature `ts`).

use serde::{Deserialize, Serialize};

/// A person in the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Participant {
    /// Stable id for the whole meeting (the VideoRoom publisher id and the
    /// TextRoom username, in decimal).
    pub id: String,
    /// Display name chosen by the person.
    pub nickname: String,
    /// Whether this is the local user.
    pub is_self: bool,
}

/// Whether someone records the meeting on their device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Not recording.
    #[default]
    Stopped,
    /// Recording.
    Recording,
    /// Recording, paused.
    Paused,
}

/// A chat message as shown to the user. Exists only in memory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ChatMessage {
    /// Sender's participant id.
    pub from: String,
    /// Sender's nickname at the time of sending.
    pub from_name: String,
    /// Addressee's participant id for a private message; `None` for everyone.
    pub to: Option<String>,
    /// Addressee's nickname for a private message.
    pub to_name: Option<String>,
    /// The message text.
    pub text: String,
    /// Whether the message was end-to-end encrypted on the wire.
    pub encrypted: bool,
    /// Local receive (or send) time, milliseconds since the Unix epoch.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub at_ms: u64,
}

impl std::fmt::Debug for ChatMessage {
    /// Never prints the text: debug output can end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatMessage")
            .field("from", &self.from)
            .field("to", &self.to)
            .field(
                "text",
                &format_args!("<{} chars>", self.text.chars().count()),
            )
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

/// Received-media figures of one remote participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RemoteMediaStats {
    /// Participant id.
    pub participant: String,
    /// Audio packets received.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub audio_packets: u64,
    /// Audio packets lost and rebuilt from forward error correction.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub audio_recovered: u64,
    /// Audio packets lost and concealed.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub audio_concealed: u64,
    /// Audio packets that came too late, or were dropped to cut delay.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub audio_late: u64,
    /// The jitter buffer's current target delay, in milliseconds.
    pub jitter_target_ms: u32,
    /// Level of what we play of them, in -dBov (127 = silence).
    pub level: u8,
    /// Video frames decoded.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub video_frames: u64,
    /// Frames decoded in the last second.
    pub video_fps: u32,
    /// Width of the last decoded frame (0: none yet).
    pub video_width: u32,
    /// Height of the last decoded frame (0: none yet).
    pub video_height: u32,
}

/// Network figures of the meeting's media connections (0 where not known
/// yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NetworkStats {
    /// Media sent, in kbit/s (all packets, with overhead).
    pub send_kbps: u32,
    /// Media received, in kbit/s.
    pub receive_kbps: u32,
    /// What the bandwidth estimate allows our video, in kbit/s.
    pub video_target_kbps: u32,
    /// Round-trip time to the server, in milliseconds.
    pub rtt_ms: u32,
    /// Share of our packets lost on the way to the server, in per mille.
    pub send_loss_permille: u32,
    /// Share of packets lost on the way to us, in per mille.
    pub receive_loss_permille: u32,
    /// How our media reaches the server.
    pub path: ConnectionPath,
    /// How well our connection carries the meeting, as the others are
    /// told (see [`ConnectionQuality`]).
    pub quality: ConnectionQuality,
}

/// How well a participant's connection carries the meeting, judged by
/// each participant from its own loss and round-trip time and shared with
/// the others (shown on its tile). Ordered from good to bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionQuality {
    /// Loss under 3 % and round trips under 300 ms.
    #[default]
    Good,
    /// Noticeable: loss from 3 %, or round trips from 300 ms.
    Poor,
    /// Hard to follow: loss from 10 %, round trips from 800 ms, or media
    /// cut off.
    Bad,
}

/// How a media connection reaches the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionPath {
    /// Not connected yet.
    #[default]
    Unknown,
    /// Straight to the server over UDP.
    Direct,
    /// Straight to the server over TCP (ICE-TCP), as UDP is blocked.
    DirectTcp,
    /// Through a relay reached over UDP.
    RelayUdp,
    /// Through a relay reached over TCP.
    RelayTcp,
    /// Through a relay reached over TLS.
    RelayTls,
}

impl From<crate::ice_servers::RelayTransport> for ConnectionPath {
    fn from(transport: crate::ice_servers::RelayTransport) -> Self {
        use crate::ice_servers::RelayTransport;
        match transport {
            RelayTransport::Udp => ConnectionPath::RelayUdp,
            RelayTransport::Tcp => ConnectionPath::RelayTcp,
            RelayTransport::Tls => ConnectionPath::RelayTls,
        }
    }
}

/// What we send (0 where nothing is sent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SendingStats {
    /// Audio packets made from the microphone so far.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub audio_packets: u64,
    /// Our audio lost on the way to the server, smoothed, in per mille (as
    /// the server reports it).
    pub audio_loss_permille: u32,
    /// The loss Opus is set to expect, in percent: its forward error
    /// correction takes bits from the voice accordingly (0 on a clean link).
    pub audio_protection_percent: u32,
    /// Size of the camera video sent now.
    pub video_width: u32,
    /// Height of the camera video sent now.
    pub video_height: u32,
    /// Camera frames sent in the last second.
    pub video_fps: u32,
    /// Share of each frame interval the camera video takes of the
    /// processor, in percent (0: not measured yet).
    pub video_cpu_percent: u32,
    /// Whether the camera video is made smaller or less frequent because
    /// the processor cannot keep up.
    pub video_limited_by_cpu: bool,
    /// Camera frames not encoded because the ones before had not gone out.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub video_dropped: u64,
}

/// Media figures of the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MediaStats {
    /// The microphone's level, in -dBov (127 = silence or muted).
    pub mic_level: u8,
    /// Whether the microphone is muted.
    pub muted: bool,
    /// Whether the camera is on.
    pub camera_on: bool,
    /// Whether there is a camera at all.
    pub has_camera: bool,
    /// Whether there is a microphone at all (it may be muted).
    pub has_microphone: bool,
    /// Whether we are sharing a screen or window.
    pub sharing: bool,
    /// What the camera effects (virtual background, touch-up) cost, when
    /// any are on.
    pub effects: Option<EffectsStats>,
    /// What we send.
    pub sending: SendingStats,
    /// Per remote participant.
    pub remotes: Vec<RemoteMediaStats>,
    /// The media connections.
    pub network: NetworkStats,
}

/// What the camera effects cost on this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EffectsStats {
    /// Microseconds per camera picture, averaged (the person mask's cost
    /// spread over the pictures it serves).
    pub us_per_frame: u32,
    /// A person mask is made every this many pictures: more when the
    /// effect is behind its budget.
    pub mask_every: u32,
}

/// Something that happened in the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    /// The local user is in the meeting.
    Joined {
        /// Meeting ID (decimal).
        room: String,
        /// The local participant's id.
        self_id: String,
        /// The local nickname.
        nickname: String,
        /// Whether chat is end-to-end encrypted (the link carried a chat key).
        chat_encrypted: bool,
        /// Everyone in the meeting, including the local user.
        participants: Vec<Participant>,
        /// The meeting's topic, as the host set it on the server.
        topic: Option<String>,
        /// Whether the host allows recording the meeting on a device.
        recording_allowed: bool,
        /// Whether the host lets several people share their screens at once.
        several_presenters: bool,
    },
    /// Joining failed; nothing else follows.
    JoinFailed {
        /// A message for the user.
        message: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: Participant,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        participant: Participant,
    },
    /// A chat message, sent or received.
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// The desktop's screen-cast portal remembers what the user chose to
    /// share: this token (as `portal:TOKEN`, the source of the next share)
    /// shares it again without asking. It is a local handle, kept on the
    /// device.
    ShareRestoreToken {
        /// Opaque; the desktop's.
        token: String,
    },
    /// Something the user should know that does not end the meeting.
    Warning {
        /// A message for the user.
        message: String,
    },
    /// An error that does not end the meeting (a message could not be sent...).
    Error {
        /// A message for the user.
        message: String,
    },
    /// The connection to the meeting was lost; the meeting is over for us.
    Disconnected {
        /// A message for the user.
        message: String,
    },
    /// The media that was arriving has stopped (the network is gone for
    /// now, say) and we wait for it to come back (`active`), or it is back
    /// (`!active`). The meeting goes on: the UI shows *Reconnecting…*.
    Reconnecting {
        /// Whether we are waiting for the network now.
        active: bool,
    },
    /// Someone else's connection got better or worse (as they judge it
    /// and tell everyone); never sent for ourselves (our own is in
    /// [`NetworkStats::quality`]).
    ConnectionQuality {
        /// Whose (participant id).
        participant: String,
        /// How it is now.
        quality: ConnectionQuality,
    },
    /// We left the meeting on request.
    Left,
    /// A participant's audio or video track is live (its first packet
    /// arrived).
    TrackAdded {
        /// Whose (participant id).
        participant: String,
        /// Their nickname, if known.
        nickname: String,
        /// `audio` or `video`.
        kind: String,
    },
    /// A participant's track ended (they stopped sending it or left).
    TrackRemoved {
        /// Whose (participant id).
        participant: String,
        /// Their nickname, if known.
        nickname: String,
        /// `audio` or `video`.
        kind: String,
    },
    /// Someone started or stopped talking (from the levels of what we
    /// play).
    Talking {
        /// Who (participant id).
        participant: String,
        /// Whether they talk now.
        talking: bool,
    },
    /// Someone (the local user too) started, paused or stopped recording
    /// the meeting on their device. Also sent for everyone who records
    /// when we join, and as `stopped` when someone recording leaves.
    Recording {
        /// Who (participant id).
        participant: String,
        /// Their nickname.
        nickname: String,
        /// Whether they record now.
        state: RecordingState,
    },
    /// Media figures, about once a second.
    Stats {
        /// The figures.
        stats: MediaStats,
    },
    /// A raw frame from the TextRoom data channel, exactly as the server
    /// relayed it. Only emitted with [`crate::JoinOptions::tap_textroom`], for
    /// tests and audits that show what the server sees; the app never sets it.
    RawTextRoom {
        /// The frame.
        text: String,
    },
}

impl EngineEvent {
    /// Whether the meeting is over for the local user after this event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            EngineEvent::JoinFailed { .. } | EngineEvent::Disconnected { .. } | EngineEvent::Left
        )
    }
}

/// Something the user asks the engine to do.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat message to everyone (`to: None`) or one participant.
    SendChat {
        /// Addressee's participant id.
        to: Option<String>,
        /// Text.
        text: String,
    },
    /// Mute or unmute the microphone.
    SetMuted {
        /// Muted: nothing is sent.
        muted: bool,
    },
    /// Turn the camera on or off.
    SetCameraOn {
        /// On: video is sent.
        on: bool,
    },
    /// Change the camera's effects (virtual background, face touch-up),
    /// without leaving.
    SetVideoEffects {
        /// The effects.
        effects: crate::media::VideoEffects,
    },
    /// Use another camera, without leaving.
    SwitchCamera {
        /// The camera.
        camera: crate::media::CameraChoice,
    },
    /// Share a screen or window (replaces a running share).
    StartShare {
        /// What to share: a `CameraChoice::Screen`.
        source: crate::media::CameraChoice,
        /// With the computer's sound.
        audio: bool,
    },
    /// Stop sharing.
    StopShare,
    /// Use another microphone, without leaving (`None`: the OS default).
    SwitchMicrophone {
        /// Device id or name.
        device: Option<String>,
    },
    /// Use another speaker, without leaving (`None`: the OS default).
    SwitchSpeaker {
        /// Device id or name.
        device: Option<String>,
    },
    /// Tell everyone (and whoever joins later) that we record, paused or
    /// stopped. Refused with an error where the host forbids recording.
    SetRecording {
        /// The new state.
        state: RecordingState,
    },
    /// Leave the meeting.
    Leave,
}

impl std::fmt::Debug for Command {
    /// Never prints chat text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SendChat { to, .. } => write!(f, "SendChat {{ to: {to:?} }}"),
            Command::SetMuted { muted } => write!(f, "SetMuted({muted})"),
            Command::SetCameraOn { on } => write!(f, "SetCameraOn({on})"),
            Command::SwitchCamera { camera } => write!(f, "SwitchCamera({camera:?})"),
            Command::SetVideoEffects { effects } => write!(f, "SetVideoEffects({effects:?})"),
            Command::StartShare { source, audio } => {
                write!(f, "StartShare({source:?}, audio {audio})")
            }
            Command::StopShare => f.write_str("StopShare"),
            Command::SwitchMicrophone { device } => write!(f, "SwitchMicrophone({device:?})"),
            Command::SwitchSpeaker { device } => write!(f, "SwitchSpeaker({device:?})"),
            Command::SetRecording { state } => write!(f, "SetRecording({state:?})"),
            Command::Leave => f.write_str("Leave"),
        }
    }
}
