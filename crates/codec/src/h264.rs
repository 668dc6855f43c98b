//! H.264 through OpenH264 (built from source by the `openh264` crate): a
//! real-time baseline encoder (keyframes on request, bitrate changes) and a
//! decoder to I420 frames. The alternative to VP8 that a meeting can
//! negotiate, for peers and servers that prefer it.
//!
//! One `unsafe` call: changing the bitrate of a running encoder, which the
//! safe wrapper does not offer.
#![allow(unsafe_code)]

use conclave_media::VideoFrame;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig as H264Config, FrameRate, FrameType, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::{CodecError, EncodedFrame, EncoderConfig};

/// A frame as OpenH264 reads it.
struct Planes<'a>(&'a VideoFrame);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width, self.0.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.width, self.0.width / 2, self.0.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.0.y
    }
    fn u(&self) -> &[u8] {
        &self.0.u
    }
    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

/// An H.264 encoder (constrained baseline, one thread).
pub struct H264Encoder {
    encoder: Encoder,
    config: EncoderConfig,
    force_keyframe: bool,
}

impl H264Encoder {
    /// Starts an encoder.
    pub fn new(config: EncoderConfig) -> Result<Self, CodecError> {
        if config.width < 16
            || config.height < 16
            || !config.width.is_multiple_of(2)
            || !config.height.is_multiple_of(2)
        {
            return Err(CodecError::Setup(format!(
                "unsupported size {}x{}",
                config.width, config.height
            )));
        }
        let settings = H264Config::new()
            .bitrate(BitRate::from_bps(config.bitrate))
            .max_frame_rate(FrameRate::from_hz(config.fps.max(1) as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(true)
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), settings)
            .map_err(|e| CodecError::Setup(e.to_string()))?;
        Ok(H264Encoder {
            encoder,
            config,
            force_keyframe: false,
        })
    }

    /// Makes the next frame a keyframe (after a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Changes the target bitrate.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: i32::try_from(bitrate).unwrap_or(i32::MAX),
        };
        // SAFETY: the encoder is initialised (it has encoded or will encode
        // with these settings); the option takes a pointer to an
        // `SBitrateInfo` that lives for the call.
        let rc = unsafe {
            self.encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                std::ptr::addr_of_mut!(info).cast(),
            )
        };
        if rc != 0 {
            return Err(CodecError::Setup(format!("bitrate change refused ({rc})")));
        }
        self.config.bitrate = bitrate;
        Ok(())
    }

    /// Encodes one frame (scaled to the encoder's size if it differs); a
    /// frame the rate control skips gives nothing.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, CodecError> {
        let frame = crate::fit_to(frame, &self.config)?;
        let frame = frame.as_ref();
        if std::mem::take(&mut self.force_keyframe) {
            self.encoder.force_intra_frame();
        }
        let stream = self
            .encoder
            .encode(&Planes(frame))
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        let kind = stream.frame_type();
        if matches!(kind, FrameType::Skip | FrameType::Invalid) {
            return Ok(Vec::new());
        }
        Ok(vec![EncodedFrame {
            data: stream.to_vec(),
            keyframe: matches!(kind, FrameType::IDR | FrameType::I),
            captured: frame.captured,
        }])
    }
}

/// An H.264 decoder.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    /// Starts a decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(H264Decoder {
            decoder: Decoder::new().map_err(|e| CodecError::Setup(e.to_string()))?,
        })
    }

    /// Decodes one access unit (Annex B); returns the picture it produced,
    /// copied out as I420 with even dimensions.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<VideoFrame>, CodecError> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let Some(image) = self
            .decoder
            .decode(data)
            .map_err(|e| CodecError::Decode(e.to_string()))?
        else {
            return Ok(Vec::new());
        };
        let (width, height) = image.dimensions();
        let (w, h) = (width & !1, height & !1);
        let (ys, us, vs) = image.strides();
        let mut frame = VideoFrame::black(w, h);
        let copy = |src: &[u8], stride: usize, dst: &mut [u8], width: usize, rows: usize| {
            for row in 0..rows {
                let from = &src[row * stride..row * stride + width];
                dst[row * width..(row + 1) * width].copy_from_slice(from);
            }
        };
        let fits = |plane: &[u8], stride: usize, width: usize, rows: usize| {
            rows == 0 || (stride >= width && plane.len() >= stride * (rows - 1) + width)
        };
        if !fits(image.y(), ys, w, h)
            || !fits(image.u(), us, w / 2, h / 2)
            || !fits(image.v(), vs, w / 2, h / 2)
        {
            return Err(CodecError::Decode("picture planes too small".into()));
        }
        copy(image.y(), ys, &mut frame.y, w, h);
        copy(image.u(), us, &mut frame.u, w / 2, h / 2);
        copy(image.v(), vs, &mut frame.v, w / 2, h / 2);
        Ok(vec![frame])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_media::pattern::read_stamp;
    use conclave_media::synthetic::TestPatternCamera;
    use conclave_media::Camera;
    use std::time::{Duration, Instant};

    #[test]
    fn the_test_pattern_survives_h264_and_keyframes_come_on_request() {
        let t0 = Instant::now();
        let mut camera = TestPatternCamera::new(640, 360, 30, t0);
        let mut enc = H264Encoder::new(EncoderConfig {
            width: 640,
            height: 360,
            fps: 30,
            bitrate: 1_000_000,
        })
        .expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        let mut decoded = 0;
        let mut keyframes = 0;
        for i in 0..30u32 {
            if i == 20 {
                enc.request_keyframe();
                enc.set_bitrate(600_000).expect("bitrate");
            }
            let frame = camera
                .poll_frame(t0 + Duration::from_millis(34 * u64::from(i)))
                .expect("frame")
                .expect("due");
            for e in enc.encode(&frame).expect("encodes") {
                keyframes += usize::from(e.keyframe);
                for f in dec.decode(&e.data).expect("decodes") {
                    assert_eq!((f.width, f.height), (640, 360));
                    let stamp = read_stamp(&f).expect("stamp intact");
                    assert_eq!(stamp.frame, u64::from(i));
                    decoded += 1;
                }
            }
        }
        assert!(decoded >= 25, "decoded {decoded}");
        assert!(keyframes >= 2, "keyframes {keyframes}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = H264Decoder::new().expect("decoder");
        for junk in [
            &[0u8, 0, 0, 1, 0x65, 0xff, 0x00][..],
            &[1, 2, 3],
            &[0, 0, 1],
        ] {
            let _ = dec.decode(junk);
        }
    }
}
