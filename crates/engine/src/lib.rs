//! The headless Conclave client core.
//!
//! Owns: joining a meeting on a Janus-API server (signaling over WebSocket,
//! WebRTC through str0m), the roster, and chat with end-to-end encryption.
//! [`client::Client`] is a sans-IO state machine; [`runtime`] drives it with
//! one WebSocket, one UDP socket and one timer. The desktop app, the
//! command-line client and the tests all use the same [`api`].
//!
//! Must not: depend on any UI toolkit, write anything to disk except where the
//! user asks (chat export), or log chat text, passwords, chat keys or
//! clipboard content.

pub mod admin;
pub mod api;
pub mod chat;
pub mod client;
pub mod runtime;
pub mod tls;

pub use api::{ChatMessage, Command, EngineEvent, Participant};
pub use runtime::{start, JoinOptions, MeetingHandle, StartError};
