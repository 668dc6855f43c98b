//! `conclave-codec`: encoding and decoding of the media Conclave sends.
//!
//! Owns: [`opus`] (Opus voice: 20 ms frames, in-band FEC, DTX, adjustable
//! bitrate, loss concealment) and [`vp8`] (VP8 real-time encoding with
//! forced keyframes and bitrate changes, decoding to I420). The native
//! libraries come from the system (`libopus`, `libvpx`).
//!
//! Must not: do I/O, know about RTP or WebRTC (packetisation is str0m's),
//! or keep more than the codec state.

pub mod opus;
pub mod vp8;

/// Why a codec call failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The library refused to start with these settings.
    #[error("codec setup failed: {0}")]
    Setup(String),
    /// Encoding a frame failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The input could not be decoded (corrupt or truncated data).
    #[error("decoding failed: {0}")]
    Decode(String),
    /// A frame of the wrong size or shape.
    #[error("unsuitable frame: {0}")]
    BadFrame(String),
}
