//! Wire types and the meeting-link grammar of Conclave.
//!
//! This crate owns everything that crosses a process boundary as text: the
//! Janus WebRTC Server API subset Conclave speaks ([`janus`], [`videoroom`],
//! [`textroom`]), meeting links, IDs and invitations ([`link`]), and the
//! RFC 4571 framing of packets over TCP ([`framing`]).
//!
//! It does no I/O and holds no state. It must never log: the values it parses
//! include passwords, chat keys and pasted clipboard text.

pub mod framing;
pub mod janus;
pub mod link;
pub mod textroom;
pub mod videoroom;

pub use link::{Invitation, LinkError, LinkRelay, MeetingId, MeetingInfo};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a message from the wire could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The JSON object has no string field naming its kind.
    #[error("message has no \"{tag}\" field")]
    MissingTag {
        /// The field that names the kind (`janus`, `videoroom`, `textroom`, `request`).
        tag: String,
    },
    /// The message kind is not one this crate knows.
    #[error("unknown message kind \"{kind}\"")]
    UnknownKind {
        /// The kind as received (truncated).
        kind: String,
    },
    /// A known kind with missing or mistyped fields.
    #[error("invalid message: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

/// Longest message kind echoed back in an error.
const MAX_KIND_ECHO: usize = 32;

pub(crate) fn decode_tagged<T: DeserializeOwned>(text: &str, tag: &str) -> Result<T, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode_tagged_value(&value, tag)
}

pub(crate) fn decode_tagged_value<T: DeserializeOwned>(
    value: &Value,
    tag: &str,
) -> Result<T, DecodeError> {
    let kind = value
        .get(tag)
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::MissingTag { tag: tag.into() })?;
    serde_json::from_value(value.clone()).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("unknown variant") {
            DecodeError::UnknownKind {
                kind: kind.chars().take(MAX_KIND_ECHO).collect(),
            }
        } else {
            DecodeError::Invalid {
                reason: redact_values(&msg),
            }
        }
    })
}

/// Removes quoted values from a serde error message, keeping field names.
///
/// serde echoes offending values (`invalid type: string "..."`), and those
/// may be chat text or passwords; errors end up in logs, so they must not.
pub fn redact_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        let Some(len) = after.find(quote) else {
            out.push('…');
            return out;
        };
        let inner = &after[..len];
        let harmless = quote == '`'
            && (1..=32).contains(&inner.len())
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        out.push_str(if harmless { inner } else { "…" });
        out.push(quote);
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_echoed_values() {
        assert_eq!(
            redact_values("invalid type: string \"my secret\", expected u64"),
            "invalid type: string \"…\", expected u64"
        );
        assert_eq!(
            redact_values("missing field `text` at `x y`"),
            "missing field `text` at `…`"
        );
        assert_eq!(redact_values("open \"quote"), "open \"…");
    }
}
