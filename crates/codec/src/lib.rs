//! `conclave-codec`: encoding and decoding of the media Conclave sends.
//!
//! Owns: [`opus`] (Opus voice: 10 or 20 ms frames, in-band FEC, DTX,
//! adjustable bitrate, loss concealment), [`vp8`] (VP8 real-time encoding
//! with forced keyframes and bitrate changes, decoding to I420) and
//! [`h264`] (the same for H.264), behind one choice, [`VideoCodec`].
//! libopus and libvpx come from the system; OpenH264 is built from source.
//!
//! Must not: do I/O, know about RTP or WebRTC (packetisation is str0m's),
//! or keep more than the codec state.

pub mod h264;
pub mod opus;
pub mod vp8;

use std::time::Duration;

use conclave_media::VideoFrame;

/// One encoded video frame.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The bitstream of the frame (VP8, or H.264 in Annex B).
    pub data: Vec<u8>,
    /// Whether it is a keyframe.
    pub keyframe: bool,
    /// The capture time of the source frame.
    pub captured: Duration,
}

/// Video encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct EncoderConfig {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
}

/// Checks a frame for an encoder and brings it to the encoder's size (a
/// copy only when it must be scaled).
pub(crate) fn fit_to<'a>(
    frame: &'a VideoFrame,
    config: &EncoderConfig,
) -> Result<std::borrow::Cow<'a, VideoFrame>, CodecError> {
    if !frame.is_consistent() {
        return Err(CodecError::BadFrame(format!(
            "{frame:?} has inconsistent planes"
        )));
    }
    Ok(
        if (frame.width, frame.height) == (config.width, config.height) {
            std::borrow::Cow::Borrowed(frame)
        } else {
            std::borrow::Cow::Owned(frame.scaled(config.width, config.height))
        },
    )
}

/// A video codec Conclave can send and receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (libvpx): every WebRTC peer has it.
    #[default]
    Vp8,
    /// H.264 constrained baseline (OpenH264).
    H264,
}

impl VideoCodec {
    /// Whether `frame` (one frame's bitstream: VP8, or H.264 in Annex B)
    /// decodes on its own, without the frames before it.
    pub fn is_keyframe(self, frame: &[u8]) -> bool {
        match self {
            // The frame tag's lowest bit is 0 for a key frame (RFC 6386, 9.1).
            VideoCodec::Vp8 => frame.first().is_some_and(|b| b & 1 == 0),
            // An IDR slice (NAL type 5) after a start code.
            VideoCodec::H264 => frame
                .windows(4)
                .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5),
        }
    }
}

impl std::str::FromStr for VideoCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "vp8" => Ok(VideoCodec::Vp8),
            "h264" | "h.264" | "avc" => Ok(VideoCodec::H264),
            other => Err(format!("unknown video codec {other:?} (vp8 or h264)")),
        }
    }
}

/// A video encoder of either codec.
pub enum VideoEncoder {
    /// VP8.
    Vp8(vp8::Vp8Encoder),
    /// H.264 (boxed: its state is large).
    H264(Box<h264::H264Encoder>),
}

impl VideoEncoder {
    /// Starts an encoder of `codec`.
    pub fn new(codec: VideoCodec, config: EncoderConfig) -> Result<Self, CodecError> {
        Ok(match codec {
            VideoCodec::Vp8 => VideoEncoder::Vp8(vp8::Vp8Encoder::new(config)?),
            VideoCodec::H264 => VideoEncoder::H264(Box::new(h264::H264Encoder::new(config)?)),
        })
    }

    /// Makes the next frame a keyframe.
    pub fn request_keyframe(&mut self) {
        match self {
            VideoEncoder::Vp8(e) => e.request_keyframe(),
            VideoEncoder::H264(e) => e.request_keyframe(),
        }
    }

    /// Changes the target bitrate.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        match self {
            VideoEncoder::Vp8(e) => e.set_bitrate(bitrate),
            VideoEncoder::H264(e) => e.set_bitrate(bitrate),
        }
    }

    /// Encodes one frame.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, CodecError> {
        match self {
            VideoEncoder::Vp8(e) => e.encode(frame),
            VideoEncoder::H264(e) => e.encode(frame),
        }
    }
}

/// A video decoder of either codec.
pub enum VideoDecoder {
    /// VP8.
    Vp8(vp8::Vp8Decoder),
    /// H.264.
    H264(h264::H264Decoder),
}

impl VideoDecoder {
    /// Starts a decoder of `codec`.
    pub fn new(codec: VideoCodec) -> Result<Self, CodecError> {
        Ok(match codec {
            VideoCodec::Vp8 => VideoDecoder::Vp8(vp8::Vp8Decoder::new()?),
            VideoCodec::H264 => VideoDecoder::H264(h264::H264Decoder::new()?),
        })
    }

    /// Which codec it decodes.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoDecoder::Vp8(_) => VideoCodec::Vp8,
            VideoDecoder::H264(_) => VideoCodec::H264,
        }
    }

    /// Decodes one frame's bitstream.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<VideoFrame>, CodecError> {
        match self {
            VideoDecoder::Vp8(d) => d.decode(data),
            VideoDecoder::H264(d) => d.decode(data),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_told_from_the_bitstream_as_the_encoder_marked_them() {
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let mut encoder = VideoEncoder::new(
                codec,
                EncoderConfig {
                    width: 64,
                    height: 48,
                    fps: 30,
                    bitrate: 300_000,
                },
            )
            .expect("encoder");
            let mut frame = VideoFrame::black(64, 48);
            let mut seen = Vec::new();
            for n in 0..6u8 {
                frame.y[usize::from(n) * 70] = 200;
                if n == 4 {
                    encoder.request_keyframe();
                }
                for encoded in encoder.encode(&frame).expect("encode") {
                    assert_eq!(
                        codec.is_keyframe(&encoded.data),
                        encoded.keyframe,
                        "{codec:?} frame {n}"
                    );
                    seen.push(encoded.keyframe);
                }
            }
            assert!(
                seen.first().copied().unwrap_or(false),
                "{codec:?}: {seen:?}"
            );
            assert!(seen.contains(&false), "{codec:?}: {seen:?}");
        }
        assert!(!VideoCodec::Vp8.is_keyframe(&[]));
        assert!(!VideoCodec::H264.is_keyframe(&[0, 0, 1]));
    }
}
