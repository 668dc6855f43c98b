//! The TextRoom plugin API (`janus.plugin.textroom`).
//!
//! Two channels carry it: the Janus API (`message` requests for `setup`, `ack`
//! and room administration) and the data channel Janus negotiates after
//! `setup`, which carries `join`, `message`, `leave` and the room's events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DecodeError;

/// The data channel label Janus's own clients use for TextRoom.
pub const DATA_CHANNEL_LABEL: &str = "JanusDataChannel";

/// A TextRoom request sent through the Janus API as a `message` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "lowercase")]
pub enum TextRoomApiRequest {
    /// Ask Janus for a data-channel-only offer.
    Setup,
    /// Carry our answer to the setup offer.
    Ack,
    /// Ask for an ICE restart offer.
    Restart,
    /// Create a room.
    Create {
        /// Room id.
        room: u64,
        /// Room description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Admin secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// PIN to join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
        /// Hide from `list`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_private: Option<bool>,
        /// Messages kept for late joiners; Conclave always sends 0.
        #[serde(default)]
        history: u32,
        /// Keep in the server's config file; Conclave always sends false.
        #[serde(default)]
        permanent: bool,
    },
    /// Destroy a room.
    Destroy {
        /// Room id.
        room: u64,
        /// Admin secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// Does a room exist?
    Exists {
        /// Room id.
        room: u64,
    },
    /// List public rooms.
    List,
    /// List a room's participants.
    Listparticipants {
        /// Room id.
        room: u64,
    },
    /// Kick a participant.
    Kick {
        /// Room id.
        room: u64,
        /// Admin secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The participant's username.
        username: String,
    },
    /// Send a message from the room itself to everyone in it.
    Announcement {
        /// Room id.
        room: u64,
        /// Admin secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// Text.
        text: String,
    },
}

impl TextRoomApiRequest {
    /// The JSON body for a Janus `message` request.
    pub fn to_body(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a request body (used by servers).
    pub fn from_body(body: &Value) -> Result<Self, DecodeError> {
        crate::decode_tagged_value(body, "request")
    }
}

/// A request sent over the TextRoom data channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "textroom", rename_all = "lowercase")]
pub enum TextRoomRequest {
    /// Join a room.
    Join {
        /// Transaction id.
        transaction: String,
        /// Room id.
        room: u64,
        /// Unique username within the room (Conclave uses the participant id).
        username: String,
        /// Display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
        /// Room PIN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
    },
    /// Send a message to everyone, to one user (`to`) or several (`tos`).
    Message {
        /// Transaction id.
        transaction: String,
        /// Room id.
        room: u64,
        /// Text.
        text: String,
        /// A single addressee's username.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Several addressees' usernames.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tos: Option<Vec<String>>,
        /// Whether Janus should answer with `success`.
        #[serde(default = "yes")]
        ack: bool,
    },
    /// Leave a room.
    Leave {
        /// Transaction id.
        transaction: String,
        /// Room id.
        room: u64,
    },
}

fn yes() -> bool {
    true
}

impl TextRoomRequest {
    /// Serialises to the text sent on the data channel.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a data channel request (used by servers).
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        crate::decode_tagged(text, "textroom")
    }
}

/// A participant in a TextRoom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRoomParticipant {
    /// Unique username.
    pub username: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// Something that arrives on the TextRoom data channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "textroom", rename_all = "lowercase")]
pub enum TextRoomEvent {
    /// A request succeeded; `join` answers carry the participants.
    Success {
        /// Transaction of the request.
        #[serde(default)]
        transaction: Option<String>,
        /// Participants already in the room (for `join`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participants: Option<Vec<TextRoomParticipant>>,
    },
    /// A request failed.
    Error {
        /// Transaction of the request.
        #[serde(default)]
        transaction: Option<String>,
        /// TextRoom error code (see [`error_code`]).
        #[serde(default)]
        error_code: i64,
        /// Error text.
        #[serde(default)]
        error: String,
    },
    /// Someone joined.
    Join {
        /// Room id.
        #[serde(default)]
        room: u64,
        /// Their username.
        username: String,
        /// Their display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    /// Someone left.
    Leave {
        /// Room id.
        #[serde(default)]
        room: u64,
        /// Their username.
        username: String,
    },
    /// Someone was kicked.
    Kicked {
        /// Room id.
        #[serde(default)]
        room: u64,
        /// Their username.
        username: String,
    },
    /// A message from a participant.
    Message {
        /// Room id.
        #[serde(default)]
        room: u64,
        /// Sender's username, set by the server.
        from: String,
        /// Server timestamp.
        #[serde(default)]
        date: String,
        /// The text.
        text: String,
        /// True when sent to some participants only.
        #[serde(default)]
        whisper: bool,
    },
    /// A message from the room itself.
    Announcement {
        /// Room id.
        #[serde(default)]
        room: u64,
        /// Server timestamp.
        #[serde(default)]
        date: String,
        /// The text.
        text: String,
    },
    /// The room was destroyed.
    Destroyed {
        /// Room id.
        #[serde(default)]
        room: u64,
    },
}

impl TextRoomEvent {
    /// Parses one data channel message from the server.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        crate::decode_tagged(text, "textroom")
    }

    /// Serialises to the text sent on the data channel (used by servers).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// TextRoom plugin error codes that clients act on.
pub mod error_code {
    /// The room does not exist.
    pub const NO_SUCH_ROOM: i64 = 417;
    /// Wrong PIN or secret.
    pub const UNAUTHORIZED: i64 = 419;
    /// The username is taken.
    pub const USERNAME_EXISTS: i64 = 420;
    /// Already in the room.
    pub const ALREADY_IN_ROOM: i64 = 421;
    /// Not in the room.
    pub const NOT_IN_ROOM: i64 = 422;
    /// The addressee does not exist.
    pub const NO_SUCH_USER: i64 = 423;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_request_shape() {
        let m = TextRoomRequest::Message {
            transaction: "t".into(),
            room: 5,
            text: "hi".into(),
            to: Some("u2".into()),
            tos: None,
            ack: true,
        };
        assert_eq!(
            m.to_json(),
            r#"{"textroom":"message","transaction":"t","room":5,"text":"hi","to":"u2","ack":true}"#
        );
        assert_eq!(TextRoomRequest::from_json(&m.to_json()).expect("ok"), m);
    }

    #[test]
    fn parses_events() {
        let e = TextRoomEvent::from_json(
            r#"{"textroom":"success","transaction":"j","participants":[{"username":"1","display":"A"}]}"#,
        )
        .expect("ok");
        assert!(
            matches!(e, TextRoomEvent::Success { participants: Some(p), .. } if p[0].username == "1")
        );
        let e = TextRoomEvent::from_json(
            r#"{"textroom":"message","room":5,"from":"1","date":"2026","text":"x","whisper":true,"new":0}"#,
        )
        .expect("ok");
        assert!(matches!(e, TextRoomEvent::Message { whisper: true, .. }));
        assert!(TextRoomEvent::from_json(r#"{"textroom":"message","room":5}"#).is_err());
        assert!(TextRoomEvent::from_json(r#"{"textroom":"zzz"}"#).is_err());
    }
}
