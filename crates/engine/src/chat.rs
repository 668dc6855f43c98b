//! Chat envelopes: end-to-end encryption, decoding and export.
//!
//! With a chat key, each message travels through the TextRoom as
//! `cv1e:<base64url(nonce ‖ ciphertext)>`, sealed with XChaCha20-Poly1305 under
//! a fresh random 192-bit nonce. The sealed body names the sender and the
//! addressee; the associated data binds it to the meeting. The server cannot
//! read or forge messages. A receiver accepts a message only if the sender
//! named inside matches the sender the server reports and the addressee
//! matches how it was delivered, so a message cannot be replayed as coming from
//! someone else or re-addressed.
//!
//! Without a key, chat travels as plain TextRoom text (encrypted in transit by
//! DTLS only), which keeps Janus's own TextRoom clients interoperable.
//!
//! App messages (recording notices) travel the same way, sealed like chat
//! when there is a key: their text is [`APP_PREFIX`], one line of JSON, and
//! a sentence for people in other TextRoom clients. Users cannot send chat
//! that starts with the prefix.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use conclave_protocol::link::ChatKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::api::{ChatMessage, RecordingState};

/// Start of an app message's text.
pub const APP_PREFIX: &str = "cvapp1:";

/// A message from one Conclave client to others that is not chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AppMessage {
    /// The sender records the meeting on their device (or paused, or stopped).
    Recording {
        /// The sender's recording state.
        state: RecordingState,
    },
    /// How well the sender's connection carries the meeting, as it judges
    /// it (sent when that changes, and to newcomers when it is not good).
    Quality {
        /// The sender's connection quality.
        quality: crate::api::ConnectionQuality,
    },
}

impl AppMessage {
    /// The text to send: prefix, JSON, and `sentence` for other clients.
    pub fn to_text(&self, sentence: &str) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{APP_PREFIX}{json}\n{sentence}")
    }

    /// Reads an app message; `None` if `text` is not one, `Some(Err)` if it
    /// is one this version does not understand.
    pub fn parse(text: &str) -> Option<Result<AppMessage, ChatDropReason>> {
        let rest = text.strip_prefix(APP_PREFIX)?;
        let json = rest.split('\n').next().unwrap_or_default();
        Some(serde_json::from_str(json).map_err(|_| ChatDropReason::Malformed))
    }
}

/// Prefix of an end-to-end encrypted envelope.
pub const ENCRYPTED_PREFIX: &str = "cv1e:";
/// Longest chat text a user may send, in characters.
pub const MAX_CHAT_CHARS: usize = 4000;
/// Longest envelope accepted from the wire, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
const NONCE_LEN: usize = 24;

/// Why a received message is not shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatDropReason {
    /// Encrypted under another key, or tampered with.
    #[error("a chat message could not be decrypted and was hidden")]
    Undecryptable,
    /// An encrypted message arrived but this client has no key.
    #[error("an end-to-end encrypted chat message was hidden: your meeting link has no chat key")]
    NoKey,
    /// A plaintext message arrived in an end-to-end encrypted meeting.
    #[error("an unencrypted chat message was hidden because this meeting's chat is end-to-end encrypted")]
    Unencrypted,
    /// The envelope does not parse, is too large, or its sender or addressee
    /// does not match how it was delivered.
    #[error("a malformed chat message was hidden")]
    Malformed,
}

/// Why a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatSendError {
    /// The text is empty or only whitespace.
    #[error("the message is empty")]
    Empty,
    /// The text is longer than [`MAX_CHAT_CHARS`].
    #[error("the message is longer than {MAX_CHAT_CHARS} characters")]
    TooLong,
    /// The text starts like an app message.
    #[error("a message cannot start with \"{APP_PREFIX}\"")]
    Reserved,
}

/// The sealed body of an encrypted message.
#[derive(Serialize, Deserialize)]
struct SealedBody {
    /// Sender's participant id.
    from: String,
    /// Addressee's participant id, or none for everyone.
    to: Option<String>,
    /// The text.
    text: String,
}

/// A decoded incoming message, before names are attached.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// The text.
    pub text: String,
    /// Whether it was end-to-end encrypted.
    pub encrypted: bool,
}

/// Seals and opens chat envelopes for one meeting.
pub struct ChatCodec {
    cipher: Option<XChaCha20Poly1305>,
    aad: Vec<u8>,
}

impl ChatCodec {
    /// A codec for a meeting; end-to-end encrypted when `key` is given.
    pub fn new(room: u64, key: Option<&ChatKey>) -> Self {
        ChatCodec {
            cipher: key.map(|k| XChaCha20Poly1305::new((&k.0).into())),
            aad: format!("conclave-chat-v1\0{room}").into_bytes(),
        }
    }

    /// Whether messages are end-to-end encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Checks user text before sending.
    pub fn validate(text: &str) -> Result<(), ChatSendError> {
        if text.trim().is_empty() {
            Err(ChatSendError::Empty)
        } else if text.chars().count() > MAX_CHAT_CHARS {
            Err(ChatSendError::TooLong)
        } else if text.trim_start().starts_with(APP_PREFIX) {
            Err(ChatSendError::Reserved)
        } else {
            Ok(())
        }
    }

    /// The TextRoom text for a message from `from` to `to` (or everyone).
    pub fn seal(&self, from: &str, to: Option<&str>, text: &str) -> String {
        let Some(cipher) = &self.cipher else {
            return text.to_owned();
        };
        let body = SealedBody {
            from: from.to_owned(),
            to: to.map(str::to_owned),
            text: text.to_owned(),
        };
        let plain = serde_json::to_vec(&body).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &self.aad,
                },
            )
            .unwrap_or_default();
        let mut wire = nonce.to_vec();
        wire.extend_from_slice(&sealed);
        format!("{ENCRYPTED_PREFIX}{}", URL_SAFE_NO_PAD.encode(wire))
    }

    /// Opens TextRoom text that the server says came from `from`; `to` is the
    /// local participant id if the server delivered it privately.
    pub fn open(&self, from: &str, to: Option<&str>, wire: &str) -> Result<Opened, ChatDropReason> {
        if wire.len() > MAX_ENVELOPE_BYTES {
            return Err(ChatDropReason::Malformed);
        }
        let sealed = wire.strip_prefix(ENCRYPTED_PREFIX);
        let (cipher, sealed) = match (&self.cipher, sealed) {
            (None, None) => {
                return Ok(Opened {
                    text: wire.to_owned(),
                    encrypted: false,
                })
            }
            (None, Some(_)) => return Err(ChatDropReason::NoKey),
            (Some(_), None) => return Err(ChatDropReason::Unencrypted),
            (Some(c), Some(s)) => (c, s),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| ChatDropReason::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(ChatDropReason::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.aad,
                },
            )
            .map_err(|_| ChatDropReason::Undecryptable)?;
        let body: SealedBody =
            serde_json::from_slice(&plain).map_err(|_| ChatDropReason::Malformed)?;
        if body.from != from || body.to.as_deref() != to {
            return Err(ChatDropReason::Malformed);
        }
        Ok(Opened {
            text: body.text,
            encrypted: true,
        })
    }
}

/// Renders a chat transcript as Markdown for export.
pub fn transcript_markdown(room: &str, messages: &[ChatMessage]) -> String {
    let mut out = format!("# Chat of meeting {room}\n\n");
    out.push_str("Exported from Conclave. This file is the only record of this chat.\n\n");
    for m in messages {
        let secs = m.at_ms / 1000;
        let time = format!(
            "{:02}:{:02}:{:02} UTC",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60
        );
        let who = match &m.to_name {
            Some(to) => format!("{} → {} (private)", m.from_name, to),
            None => m.from_name.clone(),
        };
        out.push_str(&format!("**{who}** · {time}\n\n"));
        for line in m.text.lines() {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ChatKey {
        ChatKey([b; 32])
    }

    #[test]
    fn sealed_round_trip_and_is_not_plaintext() {
        let c = ChatCodec::new(5, Some(&key(1)));
        let wire = c.seal("1", None, "hello secret");
        assert!(wire.starts_with(ENCRYPTED_PREFIX));
        assert!(!wire.contains("hello"));
        assert_eq!(
            c.open("1", None, &wire),
            Ok(Opened {
                text: "hello secret".into(),
                encrypted: true
            })
        );
        // Nonces are random: the same text seals differently.
        assert_ne!(wire, c.seal("1", None, "hello secret"));
    }

    #[test]
    fn wrong_key_room_sender_or_addressee_is_dropped() {
        let c = ChatCodec::new(5, Some(&key(1)));
        let wire = c.seal("1", Some("2"), "hi");
        assert_eq!(
            ChatCodec::new(5, Some(&key(2))).open("1", Some("2"), &wire),
            Err(ChatDropReason::Undecryptable)
        );
        assert_eq!(
            ChatCodec::new(6, Some(&key(1))).open("1", Some("2"), &wire),
            Err(ChatDropReason::Undecryptable)
        );
        assert_eq!(
            c.open("3", Some("2"), &wire),
            Err(ChatDropReason::Malformed)
        );
        assert_eq!(c.open("1", None, &wire), Err(ChatDropReason::Malformed));
        assert_eq!(
            ChatCodec::new(5, None).open("1", None, &wire),
            Err(ChatDropReason::NoKey)
        );
        assert_eq!(c.open("1", None, "plain"), Err(ChatDropReason::Unencrypted));
        assert_eq!(c.open("1", None, "cv1e:!!"), Err(ChatDropReason::Malformed));
        assert_eq!(
            c.open("1", None, "cv1e:AAAA"),
            Err(ChatDropReason::Malformed)
        );
    }

    #[test]
    fn plaintext_mode_passes_text_through() {
        let c = ChatCodec::new(5, None);
        assert_eq!(c.seal("1", None, "hi"), "hi");
        assert_eq!(
            c.open("1", None, "hi"),
            Ok(Opened {
                text: "hi".into(),
                encrypted: false
            })
        );
    }

    #[test]
    fn validation() {
        assert_eq!(ChatCodec::validate("  "), Err(ChatSendError::Empty));
        assert_eq!(
            ChatCodec::validate(&"x".repeat(MAX_CHAT_CHARS + 1)),
            Err(ChatSendError::TooLong)
        );
        assert!(ChatCodec::validate("ok").is_ok());
    }

    #[test]
    fn markdown_transcript() {
        let md = transcript_markdown(
            "123",
            &[ChatMessage {
                from: "1".into(),
                from_name: "Ann".into(),
                to: Some("2".into()),
                to_name: Some("Bo".into()),
                text: "a\nb".into(),
                encrypted: true,
                at_ms: 3_600_000 + 61_000,
            }],
        );
        assert!(md.contains("**Ann → Bo (private)** · 01:01:01 UTC"));
        assert!(md.contains("> a\n> b\n"));
    }
}
