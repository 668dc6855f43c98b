//! Devices behind traits. Real backends and synthetic twins implement the
//! same traits, so the engine never knows which it drives.
//!
//! The traits are pull-based and take the current time: a caller asks for
//! what is due now, which keeps the engine testable with simulated time.

use std::time::Instant;

use crate::frame::{AudioFrame, VideoFrame};

/// What kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Captures video.
    Camera,
    /// Captures audio.
    Microphone,
    /// Plays audio.
    Speaker,
}

/// A device as the user picks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable id for settings.
    pub id: String,
    /// Name shown to the user.
    pub name: String,
    /// Camera, microphone or speaker.
    pub kind: DeviceKind,
    /// Whether the OS currently calls it the default.
    pub is_default: bool,
}

/// Why a device failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device went away (unplugged, driver unloaded).
    #[error("the device is gone: {0}")]
    Gone(String),
    /// Another program holds it.
    #[error("the device is busy: {0}")]
    Busy(String),
    /// It cannot do what was asked (format, rate, size).
    #[error("the device cannot do that: {0}")]
    Unsupported(String),
    /// A file or OS error.
    #[error("device error: {0}")]
    Io(String),
}

/// A source of video frames.
pub trait Camera: Send {
    /// Which device this is.
    fn info(&self) -> DeviceInfo;
    /// The frame due at `now`, if a new one is due.
    fn poll_frame(&mut self, now: Instant) -> Result<Option<VideoFrame>, DeviceError>;
    /// When the next frame is due.
    fn next_frame_at(&self) -> Instant;
    /// A token that opens the same source next time without asking the
    /// user (a screen chosen in the desktop's dialog); cameras have none.
    fn restore_token(&self) -> Option<String> {
        None
    }
}

/// A source of 10 ms audio blocks.
pub trait Microphone: Send {
    /// Which device this is.
    fn info(&self) -> DeviceInfo;
    /// The next block if one is due at `now` (call until `None`).
    fn poll_block(&mut self, now: Instant) -> Result<Option<AudioFrame>, DeviceError>;
}

/// A sink for 10 ms audio blocks.
pub trait Speaker: Send {
    /// Which device this is.
    fn info(&self) -> DeviceInfo;
    /// Plays one block.
    fn play(&mut self, block: &AudioFrame) -> Result<(), DeviceError>;
    /// Audio handed over but not yet played.
    fn queued(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// The samples the device took to play since the last call, in order,
    /// with the silence it played where nothing was queued: what really
    /// reaches the sound server, for removing our own playback from a
    /// capture of the computer's sound. `None` if the device cannot tell.
    fn take_played(&mut self) -> Option<Vec<i16>> {
        None
    }
}
