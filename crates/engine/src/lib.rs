//! The headless Conclave client core.
//!
//! Owns: joining a meeting on a Janus-API server (signaling over WebSocket,
//! WebRTC through str0m), the roster, chat with end-to-end encryption, and
//! sending and receiving audio and video. [`client::Client`] is a sans-IO
//! state machine that sees encoded frames only; [`runtime`] drives it with
//! one WebSocket, three UDP sockets (chat, receiving, sending), ICE-TCP
//! connections when UDP is blocked (`ice_tcp`) and one timer;
//! [`media`] holds the devices and codecs at that edge. The desktop app, the
//! command-line client and the tests all use the same [`api`].
//!
//! Must not: depend on any UI toolkit, write anything to disk except where the
//! user asks (chat export, `--save-received`), or log chat text, passwords, chat keys or
//! clipboard content.

pub mod adapt;
pub mod admin;
pub mod api;
pub mod chat;
pub mod client;
pub mod frames;
pub mod ice_servers;
mod ice_tcp;
pub mod media;
mod relay;
pub mod runtime;
pub mod tls;
pub mod video;

pub use api::{
    ChatMessage, Command, ConnectionPath, ConnectionQuality, EffectsStats, EngineEvent, MediaStats,
    NetworkStats, Participant, RecordingState, RemoteMediaStats, SendingStats,
};
pub use conclave_codec::VideoCodec;
pub use conclave_media::processing::ProcessingSettings;
pub use ice_servers::{IceServer, NetworkOptions, RelayTransport};
pub use media::{
    open_camera, AudioTap, BackdropChoice, BackgroundOptions, CameraChoice, MediaOptions,
    MicrophoneChoice, SpeakerChoice, VideoEffects,
};
pub use runtime::{start, JoinOptions, MeetingHandle, StartError};
