//! VP8 through libvpx: a real-time encoder (one-pass CBR, error resilient,
//! no lag, keyframes on request) and a decoder to I420 frames.
//!
//! This is the one module with `unsafe` code: calls into libvpx. Each
//! context is owned by one value, initialised before use and destroyed in
//! `Drop`; buffers handed to libvpx outlive the calls that read them, and
//! what libvpx hands back is copied before the next call.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_ulong};

use conclave_media::VideoFrame;
use vpx_sys::*;

use crate::CodecError;

pub use crate::{EncodedFrame, EncoderConfig};

fn error_text(ctx: &mut vpx_codec_ctx_t) -> String {
    // SAFETY: `ctx` is an initialised context; libvpx returns a static or
    // context-owned NUL-terminated string.
    unsafe {
        let p = vpx_codec_error(ctx);
        if p.is_null() {
            "unknown libvpx error".into()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// A VP8 encoder.
pub struct Vp8Encoder {
    ctx: Box<vpx_codec_ctx_t>,
    cfg: Box<vpx_codec_enc_cfg_t>,
    config: EncoderConfig,
    pts: i64,
    force_keyframe: bool,
}

// SAFETY: the context is used from one thread at a time (`&mut self`);
// libvpx contexts carry no thread affinity.
unsafe impl Send for Vp8Encoder {}

/// Decoder threads: 2 with more than 3 cores (the threads spin while
/// waiting for each other), else 1.
fn decoder_threads() -> c_uint {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 3 {
        2
    } else {
        1
    }
}

/// Encoder threads: libvpx's threads wait for each other by spinning, which
/// only pays off with cores to spare. As WebRTC does: 2 threads from 640x480
/// with more than 3 cores, 3 from 1280x960 with more than 8, else 1.
fn encoder_threads(width: usize, height: usize) -> c_uint {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pixels = width * height;
    if pixels >= 1280 * 960 && cores > 8 {
        3
    } else if pixels >= 640 * 480 && cores > 3 {
        2
    } else {
        1
    }
}

impl Vp8Encoder {
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
        // SAFETY: zeroed structs are valid inputs for the config and context
        // initialisers, which fill them in; the interface pointer is static.
        unsafe {
            let iface = vpx_codec_vp8_cx();
            let mut cfg: Box<vpx_codec_enc_cfg_t> = Box::new(MaybeUninit::zeroed().assume_init());
            if vpx_codec_enc_config_default(iface, cfg.as_mut(), 0) != vpx_codec_err_t::VPX_CODEC_OK
            {
                return Err(CodecError::Setup("no default VP8 configuration".into()));
            }
            cfg.g_w = config.width as c_uint;
            cfg.g_h = config.height as c_uint;
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = 90_000;
            cfg.g_threads = encoder_threads(config.width, config.height);
            cfg.g_lag_in_frames = 0;
            cfg.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
            cfg.g_pass = vpx_enc_pass::VPX_RC_ONE_PASS;
            cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = (config.bitrate / 1000).max(50);
            cfg.rc_min_quantizer = 4;
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 50;
            cfg.rc_overshoot_pct = 50;
            cfg.rc_buf_sz = 1000;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            cfg.rc_dropframe_thresh = 0;
            cfg.kf_mode = vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_max_dist = 3000;
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let err = vpx_codec_enc_init_ver(
                ctx.as_mut(),
                iface,
                cfg.as_ref(),
                0,
                VPX_ENCODER_ABI_VERSION as c_int,
            );
            if err != vpx_codec_err_t::VPX_CODEC_OK {
                return Err(CodecError::Setup(error_text(&mut ctx)));
            }
            // Speed over quality, as real-time video needs: -6 for small
            // pictures, faster (-10) from 640x480 up and -12 from 1280x720,
            // where the encoder is most of a call's CPU (a 720p30 call: 68 %
            // of the client's time in libvpx at -6).
            let pixels = config.width * config.height;
            let speed: c_int = if pixels >= 1280 * 720 {
                -12
            } else if pixels >= 640 * 480 {
                -10
            } else {
                -6
            };
            vpx_codec_control_(
                ctx.as_mut(),
                vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
                speed,
            );
            vpx_codec_control_(
                ctx.as_mut(),
                vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int,
                1 as c_uint,
            );
            Ok(Vp8Encoder {
                ctx,
                cfg,
                config,
                pts: 0,
                force_keyframe: false,
            })
        }
    }

    /// The settings in force.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Makes the next frame a keyframe (after a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Changes the target bitrate (follow the bandwidth estimate).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        self.cfg.rc_target_bitrate = (bitrate / 1000).max(50);
        self.config.bitrate = bitrate;
        // SAFETY: initialised context and config, both owned by self.
        let err = unsafe { vpx_codec_enc_config_set(self.ctx.as_mut(), self.cfg.as_ref()) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Setup(error_text(&mut self.ctx)));
        }
        Ok(())
    }

    /// Encodes one frame (scaled to the encoder's size if it differs).
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, CodecError> {
        let frame = crate::fit_to(frame, &self.config)?;
        let frame = frame.as_ref();
        let flags = if std::mem::take(&mut self.force_keyframe) {
            VPX_EFLAG_FORCE_KF as vpx_enc_frame_flags_t
        } else {
            0
        };
        let pts = self.pts;
        self.pts += i64::from(90_000 / self.config.fps.max(1));
        let mut out = Vec::new();
        // SAFETY: the image wraps `frame`'s planes without copying; libvpx
        // only reads them during `vpx_codec_encode`, while `frame` is alive.
        // Packets returned by `get_cx_data` stay valid until the next
        // encode call and are copied out before it.
        unsafe {
            let mut img: vpx_image_t = MaybeUninit::zeroed().assume_init();
            let wrapped = vpx_img_wrap(
                &mut img,
                vpx_img_fmt::VPX_IMG_FMT_I420,
                frame.width as c_uint,
                frame.height as c_uint,
                1,
                frame.y.as_ptr() as *mut u8,
            );
            if wrapped.is_null() {
                return Err(CodecError::Encode("could not wrap the frame".into()));
            }
            img.planes[0] = frame.y.as_ptr() as *mut u8;
            img.planes[1] = frame.u.as_ptr() as *mut u8;
            img.planes[2] = frame.v.as_ptr() as *mut u8;
            img.stride[0] = frame.width as c_int;
            img.stride[1] = (frame.width / 2) as c_int;
            img.stride[2] = (frame.width / 2) as c_int;
            let err = vpx_codec_encode(
                self.ctx.as_mut(),
                &img,
                pts,
                1,
                flags,
                VPX_DL_REALTIME as c_ulong,
            );
            if err != vpx_codec_err_t::VPX_CODEC_OK {
                return Err(CodecError::Encode(error_text(&mut self.ctx)));
            }
            let mut iter: vpx_codec_iter_t = std::ptr::null();
            loop {
                let pkt = vpx_codec_get_cx_data(self.ctx.as_mut(), &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = (*pkt).data.frame;
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                out.push(EncodedFrame {
                    data,
                    keyframe: f.flags & VPX_FRAME_IS_KEY != 0,
                    captured: frame.captured,
                });
            }
        }
        Ok(out)
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed once.
        unsafe {
            vpx_codec_destroy(self.ctx.as_mut());
        }
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Box<vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    /// Starts a decoder.
    pub fn new() -> Result<Self, CodecError> {
        // SAFETY: zeroed context and config are valid inputs to the
        // initialiser; the interface pointer is static.
        unsafe {
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let cfg = vpx_codec_dec_cfg_t {
                threads: decoder_threads(),
                w: 0,
                h: 0,
            };
            let err = vpx_codec_dec_init_ver(
                ctx.as_mut(),
                vpx_codec_vp8_dx(),
                &cfg,
                0,
                VPX_DECODER_ABI_VERSION as c_int,
            );
            if err != vpx_codec_err_t::VPX_CODEC_OK {
                return Err(CodecError::Setup(error_text(&mut ctx)));
            }
            Ok(Vp8Decoder { ctx })
        }
    }

    /// Decodes one frame's bitstream; returns the picture(s) it produced,
    /// copied out as I420 with even dimensions.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<VideoFrame>, CodecError> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        // SAFETY: `data` is alive for the call; images returned by
        // `get_frame` stay valid until the next decode and are copied out
        // row by row within their stated size and strides.
        unsafe {
            let err = vpx_codec_decode(
                self.ctx.as_mut(),
                data.as_ptr(),
                data.len() as c_uint,
                std::ptr::null_mut(),
                0,
            );
            if err != vpx_codec_err_t::VPX_CODEC_OK {
                return Err(CodecError::Decode(error_text(&mut self.ctx)));
            }
            let mut iter: vpx_codec_iter_t = std::ptr::null();
            loop {
                let img = vpx_codec_get_frame(self.ctx.as_mut(), &mut iter);
                if img.is_null() {
                    break;
                }
                let img = &*img;
                if img.fmt != vpx_img_fmt::VPX_IMG_FMT_I420 {
                    return Err(CodecError::Decode(format!(
                        "unexpected image format {:?}",
                        img.fmt
                    )));
                }
                let (w, h) = ((img.d_w as usize) & !1, (img.d_h as usize) & !1);
                let mut frame = VideoFrame::black(w, h);
                let copy = |plane: usize, dst: &mut [u8], width: usize, height: usize| {
                    let stride = img.stride[plane] as usize;
                    for row in 0..height {
                        let src =
                            std::slice::from_raw_parts(img.planes[plane].add(row * stride), width);
                        dst[row * width..(row + 1) * width].copy_from_slice(src);
                    }
                };
                copy(0, &mut frame.y, w, h);
                copy(1, &mut frame.u, w / 2, h / 2);
                copy(2, &mut frame.v, w / 2, h / 2);
                out.push(frame);
            }
        }
        Ok(out)
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx_codec_destroy(self.ctx.as_mut());
        }
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
    fn the_test_pattern_survives_vp8_and_keyframes_come_on_request() {
        let t0 = Instant::now();
        let mut camera = TestPatternCamera::new(640, 360, 30, t0);
        let mut enc = Vp8Encoder::new(EncoderConfig {
            width: 640,
            height: 360,
            fps: 30,
            bitrate: 800_000,
        })
        .expect("encoder");
        let mut dec = Vp8Decoder::new().expect("decoder");
        let mut decoded = Vec::new();
        let mut keyframes = Vec::new();
        let mut bytes = 0;
        for i in 0..60u32 {
            let now = t0 + Duration::from_secs(1) / 30 * i;
            let frame = camera.poll_frame(now).expect("camera").expect("a frame");
            if i == 40 {
                enc.request_keyframe();
            }
            for e in enc.encode(&frame).expect("encode") {
                bytes += e.data.len();
                if e.keyframe {
                    keyframes.push(i);
                }
                decoded.extend(dec.decode(&e.data).expect("decode"));
            }
        }
        assert_eq!(keyframes, vec![0, 40], "first frame and on request");
        assert_eq!(decoded.len(), 60);
        for (i, f) in decoded.iter().enumerate() {
            assert_eq!((f.width, f.height), (640, 360));
            let stamp = read_stamp(f).expect("the block reads back");
            assert_eq!(stamp.frame, i as u64);
        }
        // Roughly the target bitrate over two seconds.
        assert!(bytes * 8 < 2 * 2 * 800_000, "{bytes} bytes");
        // Garbage is an error, not a crash.
        let _ = dec.decode(&[0x9d, 0x01, 0x2a, 0, 0]);
        assert!(Vp8Encoder::new(EncoderConfig {
            width: 7,
            height: 7,
            fps: 30,
            bitrate: 1
        })
        .is_err());
    }
}
