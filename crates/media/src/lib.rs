//! `conclave-media`: what media is made of before and after the network.
//!
//! Owns: the device traits ([`device::Camera`], [`device::Microphone`],
//! [`device::Speaker`]), raw frame types ([`frame::VideoFrame`] in I420,
//! [`frame::AudioFrame`] in 10 ms blocks), scaling, and the synthetic
//! devices used by tests, demos and benchmarks: a test-pattern camera whose
//! frames carry their counter and capture time in a machine-readable block
//! ([`pattern`]), a tone or WAV microphone, and speakers that discard or
//! record. Real microphones and speakers come through `cpal`
//! ([`system_audio`]), real cameras through `nokhwa` ([`system_camera`]); voice processing (echo cancellation, noise
//! suppression, gain control) is [`processing`]; the receive side's adaptive
//! jitter buffer is [`jitter`]; removing the meeting's own playback from a
//! share of the computer's sound is [`playback_canceller`].
//!
//! Must not: open network connections, know about signaling or WebRTC, or
//! write files other than recordings the caller asked for.

pub mod device;
pub mod frame;
pub mod jitter;
pub mod pattern;
pub mod playback_canceller;
pub mod processing;
pub mod synthetic;
pub mod system_audio;
pub mod system_camera;

pub use device::{Camera, DeviceError, DeviceInfo, DeviceKind, Microphone, Speaker};
pub use frame::{AudioFrame, PixelLayout, VideoFrame, AUDIO_BLOCK, SAMPLE_RATE};

/// Set in a tile id whose picture is a participant's shared screen (their
/// id with this bit); tiles name the pictures of a meeting wherever they go
/// (the app's video server, a recording).
pub const SCREEN_TILE: u64 = 1 << 62;
