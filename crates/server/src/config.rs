//! Server settings: limits and PIN-guessing policy. The binary reads them from
//! a TOML file; every field has a default.

use std::time::Duration;

use serde::Deserialize;

/// Limits that keep one client from exhausting the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Sessions at once, over all connections.
    pub max_sessions: usize,
    /// Sessions one WebSocket connection may hold.
    pub max_sessions_per_connection: usize,
    /// Handles one session may hold.
    pub max_handles_per_session: usize,
    /// Largest signaling message or data-channel message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Rooms at once (a meeting is a VideoRoom plus a TextRoom with one ID).
    pub max_rooms: usize,
    /// Participants in one room.
    pub max_participants_per_room: usize,
    /// Seconds without a message before a session is destroyed (Janus: 60).
    pub session_timeout_secs: u64,
    /// Requests per second one connection may send before being cut off.
    pub max_requests_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 2000,
            max_sessions_per_connection: 8,
            max_handles_per_session: 64,
            max_message_bytes: 64 * 1024,
            max_rooms: 500,
            max_participants_per_room: 100,
            session_timeout_secs: 60,
            max_requests_per_second: 200,
        }
    }
}

impl Limits {
    /// The session timeout as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.session_timeout_secs.max(1))
    }
}

/// How wrong PINs are rate-limited.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinPolicy {
    /// Wrong attempts allowed per source address, and per room, within the window.
    pub max_failures: u32,
    /// The window, in seconds. After it passes, attempts are allowed again.
    pub window_secs: u64,
}

impl Default for PinPolicy {
    fn default() -> Self {
        PinPolicy {
            max_failures: 5,
            window_secs: 60,
        }
    }
}

/// Everything the sans-IO server needs to know about its setting.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Resource limits.
    pub limits: Limits,
    /// PIN rate limiting.
    pub pin: PinPolicy,
    /// Let `create` make rooms only with this key (Janus's `admin_key`).
    /// Without it anyone connected may create a room.
    pub admin_key: Option<String>,
    /// Report everything received at the application level as
    /// [`crate::Output::Audit`] (signaling JSON with its SDPs, data-channel
    /// payloads). Off by default; for privacy tests and audits only.
    #[serde(skip)]
    pub audit: bool,
}
