//! `conclave-media`: what media is made of before and after the network.
//!
//! Owns: the device traits ([`device::Camera`], [`device::Microphone`],
//! [`device::Speaker`]), raw frame types ([`frame::VideoFrame`] in I420,
//! [`frame::AudioFrame`] in 10 ms blocks), scaling, and the synthetic
//! devices used by tests, demos and benchmarks: a test-pattern camera whose
//! frames carry their counter and capture time in a machine-readable block
//! ([`pattern`]), a tone or WAV microphone, and speakers that discard or
//! record.
//!
//! Must not: open network connections, know about signaling or WebRTC, or
//! write files other than recordings the caller asked for.

pub mod device;
pub mod frame;
pub mod pattern;
pub mod synthetic;

pub use device::{Camera, DeviceError, DeviceInfo, DeviceKind, Microphone, Speaker};
pub use frame::{AudioFrame, VideoFrame, AUDIO_BLOCK, SAMPLE_RATE};
