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
    /// We left the meeting on request.
    Left,
    /// The first media packet of a participant's audio or video arrived.
    MediaReceived {
        /// Whose (participant id).
        participant: String,
        /// Their nickname, if known.
        nickname: String,
        /// `audio` or `video`.
        kind: String,
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
    /// Leave the meeting.
    Leave,
}

impl std::fmt::Debug for Command {
    /// Never prints chat text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SendChat { to, .. } => write!(f, "SendChat {{ to: {to:?} }}"),
            Command::Leave => f.write_str("Leave"),
        }
    }
}
