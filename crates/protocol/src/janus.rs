//! The Janus core API: sessions, handles, transactions, JSEP and trickle.
//!
//! Requests are what a client sends; [`ServerMessage`] is everything a server
//! sends back. Plugin bodies travel as JSON values inside `message` requests
//! and `plugindata`; the typed plugin APIs live in [`crate::videoroom`] and
//! [`crate::textroom`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DecodeError;

/// The WebSocket subprotocol every Janus WebSocket transport expects.
pub const WS_SUBPROTOCOL: &str = "janus-protocol";
/// The VideoRoom plugin's package name.
pub const VIDEOROOM_PLUGIN: &str = "janus.plugin.videoroom";
/// The TextRoom plugin's package name.
pub const TEXTROOM_PLUGIN: &str = "janus.plugin.textroom";

/// A session description exchanged with a plugin (`"jsep"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jsep {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: JsepKind,
    /// The SDP text.
    pub sdp: String,
    /// Set by Janus when the session description is a renegotiation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// Set by Janus on offers that are end-to-end encrypted (insertable streams).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub e2ee: bool,
}

/// The type of a [`Jsep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsepKind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
}

/// An ICE candidate as carried by `trickle` (in either direction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TrickleCandidate {
    /// The end-of-candidates marker, `{"completed": true}`.
    Completed {
        /// Always true.
        completed: bool,
    },
    /// One candidate.
    Candidate {
        /// The `candidate:` attribute value (with or without the `candidate:` prefix).
        candidate: String,
        /// The media id the candidate belongs to.
        #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// The m-line index the candidate belongs to.
        #[serde(
            rename = "sdpMLineIndex",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        sdp_m_line_index: Option<u32>,
    },
}

/// A request from client to server. Every request carries a transaction id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "janus", rename_all = "lowercase")]
pub enum Request {
    /// Create a session.
    Create {
        /// Transaction id.
        transaction: String,
    },
    /// Keep a session alive (sessions time out after 60 s of silence by default).
    Keepalive {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
    },
    /// Reclaim a session over a new transport connection after a reconnect.
    Claim {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
    },
    /// Destroy a session and every handle in it.
    Destroy {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
    },
    /// Attach a plugin handle.
    Attach {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
        /// Plugin package name, e.g. [`VIDEOROOM_PLUGIN`].
        plugin: String,
        /// Optional opaque identifier shown in Janus's admin API.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        opaque_id: Option<String>,
    },
    /// Detach a handle.
    Detach {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
        /// The handle.
        handle_id: u64,
    },
    /// Tear down a handle's PeerConnection.
    Hangup {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
        /// The handle.
        handle_id: u64,
    },
    /// A plugin request, optionally with a session description.
    Message {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
        /// The handle.
        handle_id: u64,
        /// The plugin request body.
        body: Value,
        /// An optional session description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jsep: Option<Jsep>,
    },
    /// Send ICE candidates to the server.
    Trickle {
        /// Transaction id.
        transaction: String,
        /// The session.
        session_id: u64,
        /// The handle.
        handle_id: u64,
        /// The candidate.
        candidate: TrickleCandidate,
    },
}

impl Request {
    /// The transaction id of this request.
    pub fn transaction(&self) -> &str {
        match self {
            Request::Create { transaction }
            | Request::Keepalive { transaction, .. }
            | Request::Claim { transaction, .. }
            | Request::Destroy { transaction, .. }
            | Request::Attach { transaction, .. }
            | Request::Detach { transaction, .. }
            | Request::Hangup { transaction, .. }
            | Request::Message { transaction, .. }
            | Request::Trickle { transaction, .. } => transaction,
        }
    }

    /// Serialises to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a request (used by servers).
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        crate::decode_tagged(text, "janus")
    }
}

/// The `{"code":..,"reason":..}` object of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Janus error code (e.g. 458 session not found).
    pub code: i64,
    /// Human readable reason.
    #[serde(default)]
    pub reason: String,
}

/// The `data` object of a `create` or `attach` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdData {
    /// The new session or handle id.
    pub id: u64,
}

/// The `plugindata` object: which plugin answered, and its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginData {
    /// Plugin package name.
    pub plugin: String,
    /// Plugin-specific body.
    pub data: Value,
}

/// Anything a Janus server sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "janus", rename_all = "lowercase")]
pub enum ServerMessage {
    /// A request succeeded. For `create`/`attach`, `data.id` is the new id;
    /// for synchronous plugin requests, `plugindata` holds the answer.
    Success {
        /// Transaction id of the request.
        #[serde(default)]
        transaction: Option<String>,
        /// Session the answer belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<u64>,
        /// Handle the answer belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<u64>,
        /// `create`/`attach` result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<IdData>,
        /// Synchronous plugin answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plugindata: Option<PluginData>,
    },
    /// A request was received; the answer will come later as an event.
    Ack {
        /// Transaction id of the request.
        #[serde(default)]
        transaction: Option<String>,
        /// Session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<u64>,
    },
    /// A request failed at the core level.
    Error {
        /// Transaction id of the request.
        #[serde(default)]
        transaction: Option<String>,
        /// Session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<u64>,
        /// The error.
        error: ErrorInfo,
    },
    /// An asynchronous plugin event, possibly answering a request.
    Event {
        /// Transaction id of the request this answers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transaction: Option<String>,
        /// Session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<u64>,
        /// Handle that sent it.
        #[serde(default)]
        sender: u64,
        /// The plugin body.
        plugindata: PluginData,
        /// An optional session description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jsep: Option<Jsep>,
    },
    /// The handle's PeerConnection is up (ICE and DTLS done).
    Webrtcup {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
        /// Handle.
        #[serde(default)]
        sender: u64,
    },
    /// Janus started or stopped receiving a kind of media.
    Media {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
        /// Handle.
        #[serde(default)]
        sender: u64,
        /// `audio` or `video`.
        #[serde(rename = "type", default)]
        kind: String,
        /// Whether media is flowing.
        #[serde(default)]
        receiving: bool,
        /// The m-line the change refers to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mid: Option<String>,
    },
    /// Janus sees many NACKs on a stream.
    Slowlink {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
        /// Handle.
        #[serde(default)]
        sender: u64,
        /// Whether the problem is on the path towards Janus.
        #[serde(default)]
        uplink: bool,
        /// Lost packets in the last second.
        #[serde(default)]
        lost: u64,
        /// The m-line the report refers to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mid: Option<String>,
    },
    /// The handle's PeerConnection was closed.
    Hangup {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
        /// Handle.
        #[serde(default)]
        sender: u64,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// The handle was detached.
    Detached {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
        /// Handle.
        #[serde(default)]
        sender: u64,
    },
    /// The session timed out and was destroyed by the server.
    Timeout {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
    },
    /// A server-side ICE candidate.
    Trickle {
        /// Session.
        #[serde(default)]
        session_id: Option<u64>,
        /// Handle.
        #[serde(default)]
        sender: u64,
        /// The candidate.
        candidate: TrickleCandidate,
    },
}

impl ServerMessage {
    /// Parses one WebSocket text frame from the server.
    ///
    /// Unknown fields are ignored; an unknown `janus` kind or a missing
    /// required field is a [`DecodeError`].
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        crate::decode_tagged(text, "janus")
    }

    /// Serialises to the JSON text sent on the wire (used by servers and tests).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The transaction this message answers, if any.
    pub fn transaction(&self) -> Option<&str> {
        match self {
            ServerMessage::Success { transaction, .. }
            | ServerMessage::Ack { transaction, .. }
            | ServerMessage::Error { transaction, .. }
            | ServerMessage::Event { transaction, .. } => transaction.as_deref(),
            _ => None,
        }
    }
}

/// Core API error codes that clients act on.
pub mod error_code {
    /// The session does not exist (it timed out or was destroyed).
    pub const SESSION_NOT_FOUND: i64 = 458;
    /// The handle does not exist.
    pub const HANDLE_NOT_FOUND: i64 = 459;
    /// The request was not valid JSON or missed fields.
    pub const INVALID_REQUEST: i64 = 454;
    /// The plugin does not exist.
    pub const PLUGIN_NOT_FOUND: i64 = 460;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_success_with_unknown_fields() {
        let m = ServerMessage::from_json(
            r#"{"janus":"success","transaction":"t1","data":{"id":42,"extra":1},"whatever":true}"#,
        )
        .expect("valid");
        assert_eq!(
            m,
            ServerMessage::Success {
                transaction: Some("t1".into()),
                session_id: None,
                sender: None,
                data: Some(IdData { id: 42 }),
                plugindata: None
            }
        );
    }

    #[test]
    fn parses_event_with_jsep() {
        let m = ServerMessage::from_json(
            &json!({"janus":"event","session_id":1,"sender":2,"transaction":"x",
                "plugindata":{"plugin":"janus.plugin.textroom","data":{"textroom":"event","result":"ok"}},
                "jsep":{"type":"offer","sdp":"v=0\r\n"}})
            .to_string(),
        )
        .expect("valid");
        match m {
            ServerMessage::Event { jsep: Some(j), .. } => assert_eq!(j.kind, JsepKind::Offer),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_kind_and_garbage_are_typed_errors() {
        assert!(matches!(
            ServerMessage::from_json(r#"{"janus":"fancy"}"#),
            Err(DecodeError::UnknownKind { .. })
        ));
        assert!(matches!(
            ServerMessage::from_json("not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            ServerMessage::from_json(r#"{"nope":1}"#),
            Err(DecodeError::MissingTag { .. })
        ));
        assert!(matches!(
            ServerMessage::from_json(r#"{"janus":"error","transaction":"t"}"#),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn trickle_candidate_forms() {
        let c: TrickleCandidate = serde_json::from_str(r#"{"completed":true}"#).expect("ok");
        assert_eq!(c, TrickleCandidate::Completed { completed: true });
        let c: TrickleCandidate = serde_json::from_str(
            r#"{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
        )
        .expect("ok");
        assert!(matches!(c, TrickleCandidate::Candidate { .. }));
    }

    #[test]
    fn request_round_trip() {
        let r = Request::Message {
            transaction: "a".into(),
            session_id: 1,
            handle_id: 2,
            body: json!({"request":"setup"}),
            jsep: None,
        };
        assert_eq!(Request::from_json(&r.to_json()).expect("ok"), r);
    }
}
