//! Raw media: I420 video frames and 10 ms mono audio blocks.

use std::time::Duration;

/// Audio sample rate used everywhere inside Conclave (Opus's native rate).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 10 ms audio block at [`SAMPLE_RATE`].
pub const AUDIO_BLOCK: usize = (SAMPLE_RATE / 100) as usize;

/// One video frame in I420 (planar Y, then U and V at half resolution).
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Blue-difference chroma, `width/2 * height/2` bytes.
    pub u: Vec<u8>,
    /// Red-difference chroma, `width/2 * height/2` bytes.
    pub v: Vec<u8>,
    /// When the frame was captured, on the capturing device's clock.
    pub captured: Duration,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VideoFrame({}x{} at {:?})",
            self.width, self.height, self.captured
        )
    }
}

impl VideoFrame {
    /// A black frame; odd sizes are rounded down to even.
    pub fn black(width: usize, height: usize) -> Self {
        let (width, height) = (width & !1, height & !1);
        let chroma = (width / 2) * (height / 2);
        VideoFrame {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
            captured: Duration::ZERO,
        }
    }

    /// Whether the plane sizes agree with the dimensions.
    pub fn is_consistent(&self) -> bool {
        let chroma = (self.width / 2) * (self.height / 2);
        self.width.is_multiple_of(2)
            && self.height.is_multiple_of(2)
            && self.y.len() == self.width * self.height
            && self.u.len() == chroma
            && self.v.len() == chroma
    }

    /// All planes in one buffer (Y, U, V), as the renderer takes them.
    pub fn to_i420_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.y.len() + self.u.len() + self.v.len());
        out.extend_from_slice(&self.y);
        out.extend_from_slice(&self.u);
        out.extend_from_slice(&self.v);
        out
    }

    /// The frame scaled to `width` x `height` (rounded down to even): an
    /// area average when shrinking, bilinear when growing.
    pub fn scaled(&self, width: usize, height: usize) -> VideoFrame {
        let (width, height) = (width.max(2) & !1, height.max(2) & !1);
        if width == self.width && height == self.height {
            return self.clone();
        }
        VideoFrame {
            width,
            height,
            y: scale_plane(&self.y, self.width, self.height, width, height),
            u: scale_plane(
                &self.u,
                self.width / 2,
                self.height / 2,
                width / 2,
                height / 2,
            ),
            v: scale_plane(
                &self.v,
                self.width / 2,
                self.height / 2,
                width / 2,
                height / 2,
            ),
            captured: self.captured,
        }
    }
}

/// The pixel layouts cameras and screens deliver, converted by
/// [`VideoFrame::from_packed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// Packed 4:2:2, `Y0 U Y1 V` (most webcams' raw format).
    Yuyv,
    /// Planar Y, then interleaved `U V` at half resolution.
    Nv12,
    /// 8-bit grey.
    Gray,
    /// Packed `R G B`.
    Rgb,
    /// Packed `B G R A` (X11 and most screen capture).
    Bgra,
    /// Packed `R G B A` (some Wayland compositors' screen casts).
    Rgba,
}

impl PixelLayout {
    /// Bytes per pixel of the first (or only) plane's rows.
    fn row_bytes(self, width: usize) -> usize {
        match self {
            PixelLayout::Yuyv => width * 2,
            PixelLayout::Nv12 | PixelLayout::Gray => width,
            PixelLayout::Rgb => width * 3,
            PixelLayout::Bgra | PixelLayout::Rgba => width * 4,
        }
    }
}

/// Why a buffer could not be read as a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {width}x{height} {layout:?} picture needs {needed} bytes, got {got}")]
pub struct PictureSizeError {
    /// The layout asked for.
    pub layout: PixelLayout,
    /// Width asked for.
    pub width: usize,
    /// Height asked for.
    pub height: usize,
    /// Bytes the picture needs.
    pub needed: usize,
    /// Bytes there were.
    pub got: usize,
}

/// BT.601 limited-range luma of an RGB pixel.
fn luma(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(0, 255) as u8
}

/// BT.601 limited-range chroma (U, V) of an RGB pixel.
fn chroma(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

impl VideoFrame {
    /// Converts a camera or screen buffer to I420. `stride` is the byte
    /// length of one row of the first plane (`None`: tightly packed). An odd
    /// width or height drops the last column or row. A buffer too short for
    /// the picture is an error, never a panic.
    pub fn from_packed(
        layout: PixelLayout,
        width: usize,
        height: usize,
        stride: Option<usize>,
        data: &[u8],
        captured: Duration,
    ) -> Result<VideoFrame, PictureSizeError> {
        let stride = stride.unwrap_or_else(|| layout.row_bytes(width));
        let rows = match layout {
            PixelLayout::Nv12 => height + height.div_ceil(2),
            _ => height,
        };
        let needed = if rows == 0 {
            0
        } else {
            stride * (rows - 1) + layout.row_bytes(width)
        };
        if stride < layout.row_bytes(width) || data.len() < needed {
            return Err(PictureSizeError {
                layout,
                width,
                height,
                needed,
                got: data.len(),
            });
        }
        let (w, h) = (width & !1, height & !1);
        let mut out = VideoFrame::black(w, h);
        out.captured = captured;
        let cw = w / 2;
        match layout {
            PixelLayout::Yuyv => {
                for y in 0..h {
                    let row = &data[y * stride..];
                    out.y[y * w..(y + 1) * w]
                        .iter_mut()
                        .enumerate()
                        .for_each(|(x, p)| *p = row[x * 2]);
                    if y % 2 == 0 {
                        let next = &data[(y + 1) * stride..];
                        for cx in 0..cw {
                            let i = cx * 4;
                            out.u[(y / 2) * cw + cx] =
                                (u16::from(row[i + 1]) + u16::from(next[i + 1])).div_ceil(2) as u8;
                            out.v[(y / 2) * cw + cx] =
                                (u16::from(row[i + 3]) + u16::from(next[i + 3])).div_ceil(2) as u8;
                        }
                    }
                }
            }
            PixelLayout::Nv12 => {
                for y in 0..h {
                    out.y[y * w..(y + 1) * w].copy_from_slice(&data[y * stride..y * stride + w]);
                }
                let base = height * stride;
                for cy in 0..h / 2 {
                    let row = &data[base + cy * stride..];
                    for cx in 0..cw {
                        out.u[cy * cw + cx] = row[cx * 2];
                        out.v[cy * cw + cx] = row[cx * 2 + 1];
                    }
                }
            }
            PixelLayout::Gray => {
                for y in 0..h {
                    let row = &data[y * stride..y * stride + w];
                    for (p, g) in out.y[y * w..(y + 1) * w].iter_mut().zip(row) {
                        // Full-range grey to limited-range luma.
                        *p = (16 + u32::from(*g) * 219 / 255) as u8;
                    }
                }
            }
            PixelLayout::Rgb | PixelLayout::Bgra | PixelLayout::Rgba => {
                let (bpp, ri, bi) = match layout {
                    PixelLayout::Rgb => (3, 0, 2),
                    PixelLayout::Rgba => (4, 0, 2),
                    _ => (4, 2, 0),
                };
                for y in (0..h).step_by(2) {
                    let top = &data[y * stride..];
                    let bottom = &data[(y + 1) * stride..];
                    for cx in 0..cw {
                        let (mut rs, mut gs, mut bs) = (0, 0, 0);
                        for (dy, row) in [top, bottom].into_iter().enumerate() {
                            for dx in 0..2 {
                                let x = cx * 2 + dx;
                                let px = &row[x * bpp..x * bpp + bpp];
                                let (r, g, b) =
                                    (i32::from(px[ri]), i32::from(px[1]), i32::from(px[bi]));
                                out.y[(y + dy) * w + x] = luma(r, g, b);
                                rs += r;
                                gs += g;
                                bs += b;
                            }
                        }
                        let (u, v) = chroma(rs / 4, gs / 4, bs / 4);
                        out.u[(y / 2) * cw + cx] = u;
                        out.v[(y / 2) * cw + cx] = v;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The picture as packed `B G R A` bytes (BT.601, limited range; alpha
    /// opaque), for screens, windows and image files.
    pub fn to_bgra(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height * 4);
        let cw = self.width / 2;
        for y in 0..self.height {
            for x in 0..self.width {
                let luma = 298 * (i32::from(self.y[y * self.width + x]) - 16);
                let c = (y / 2) * cw + x / 2;
                let (u, v) = (
                    i32::from(self.u.get(c).copied().unwrap_or(128)) - 128,
                    i32::from(self.v.get(c).copied().unwrap_or(128)) - 128,
                );
                let clamp = |v: i32| ((v + 128) >> 8).clamp(0, 255) as u8;
                out.extend_from_slice(&[
                    clamp(luma + 516 * u),
                    clamp(luma - 100 * u - 208 * v),
                    clamp(luma + 409 * v),
                    255,
                ]);
            }
        }
        out
    }

    /// The size that fits `self` inside `max_width` x `max_height` keeping
    /// its aspect ratio (never larger than it is; even).
    pub fn fit_within(&self, max_width: usize, max_height: usize) -> (usize, usize) {
        if self.width <= max_width && self.height <= max_height {
            return (self.width, self.height);
        }
        let by_width = (max_width, self.height * max_width / self.width.max(1));
        let (w, h) = if by_width.1 <= max_height {
            by_width
        } else {
            (self.width * max_height / self.height.max(1), max_height)
        };
        (w.max(2) & !1, h.max(2) & !1)
    }
}

/// Scales one plane. Each output pixel averages the source pixels its
/// area covers (at least the nearest one).
fn scale_plane(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    let mut out = vec![0u8; dw * dh];
    if sw == 0 || sh == 0 || src.len() < sw * sh {
        return out;
    }
    for oy in 0..dh {
        let y0 = oy * sh / dh;
        let y1 = ((oy + 1) * sh / dh).max(y0 + 1).min(sh);
        for ox in 0..dw {
            let x0 = ox * sw / dw;
            let x1 = ((ox + 1) * sw / dw).max(x0 + 1).min(sw);
            let mut sum = 0u32;
            for row in src[y0 * sw..y1 * sw].chunks_exact(sw) {
                sum += row[x0..x1].iter().map(|p| u32::from(*p)).sum::<u32>();
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            out[oy * dw + ox] = ((sum + n / 2) / n) as u8;
        }
    }
    out
}

/// 10 ms of mono audio at [`SAMPLE_RATE`].
#[derive(Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// [`AUDIO_BLOCK`] samples.
    pub samples: Vec<i16>,
    /// When the block was captured, on the capturing device's clock.
    pub captured: Duration,
}

impl std::fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AudioFrame({} samples at {:?})",
            self.samples.len(),
            self.captured
        )
    }
}

impl AudioFrame {
    /// A silent block.
    pub fn silence(captured: Duration) -> Self {
        AudioFrame {
            samples: vec![0; AUDIO_BLOCK],
            captured,
        }
    }

    /// The level in dBov (0 loudest, 127 silence), as RFC 6464 audio-level
    /// header extensions carry it.
    pub fn level_dbov(&self) -> u8 {
        if self.samples.is_empty() {
            return 127;
        }
        let energy: f64 = self
            .samples
            .iter()
            .map(|s| (f64::from(*s) / 32768.0).powi(2))
            .sum::<f64>()
            / self.samples.len() as f64;
        if energy <= 0.0 {
            return 127;
        }
        let db = 10.0 * energy.log10();
        (-db).round().clamp(0.0, 127.0) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_buffer_converts_or_errs(
            layout in proptest::sample::select(vec![
                PixelLayout::Yuyv, PixelLayout::Nv12, PixelLayout::Gray,
                PixelLayout::Rgb, PixelLayout::Bgra,
            ]),
            width in 0usize..40,
            height in 0usize..40,
            pad in proptest::option::of(0usize..16),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8000),
        ) {
            let stride = pad.map(|p| layout.row_bytes(width) + p);
            if let Ok(f) = VideoFrame::from_packed(layout, width, height, stride, &data, Duration::ZERO) {
                proptest::prop_assert!(f.is_consistent());
                proptest::prop_assert_eq!((f.width, f.height), (width & !1, height & !1));
            }
        }
    }

    #[test]
    fn packed_layouts_convert_to_the_same_grey() {
        // A mid-grey picture in every layout gives luma 126 and neutral chroma.
        let (w, h) = (6, 4);
        let bufs = [
            (PixelLayout::Yuyv, [126u8, 128, 126, 128].repeat(w / 2 * h)),
            (PixelLayout::Nv12, {
                let mut b = vec![126u8; w * h];
                b.extend(vec![128u8; w * h / 2]);
                b
            }),
            (PixelLayout::Rgb, vec![128u8; w * h * 3]),
            (PixelLayout::Bgra, vec![128u8; w * h * 4]),
        ];
        for (layout, data) in bufs {
            let f = VideoFrame::from_packed(layout, w, h, None, &data, Duration::ZERO)
                .expect("converts");
            assert!(f.is_consistent(), "{layout:?}");
            assert!(f.y.iter().all(|&p| p == 126), "{layout:?}: {:?}", f.y);
            assert!(f.u.iter().chain(&f.v).all(|&p| p == 128), "{layout:?}");
        }
    }

    #[test]
    fn packed_rgb_colours_and_strides() {
        // Pure red BGRA with 8 bytes of row padding.
        let (w, h, stride) = (4, 2, 24);
        let mut data = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                data[y * stride + x * 4..y * stride + x * 4 + 4].copy_from_slice(&[0, 0, 255, 255]);
            }
        }
        let f =
            VideoFrame::from_packed(PixelLayout::Bgra, w, h, Some(stride), &data, Duration::ZERO)
                .expect("converts");
        assert_eq!(f.y[0], 82);
        assert_eq!((f.u[0], f.v[0]), (90, 240));
    }

    #[test]
    fn short_or_odd_buffers_are_errors_or_trimmed_never_panics() {
        assert!(
            VideoFrame::from_packed(PixelLayout::Rgb, 4, 4, None, &[0; 47], Duration::ZERO)
                .is_err()
        );
        assert!(VideoFrame::from_packed(
            PixelLayout::Bgra,
            4,
            4,
            Some(8),
            &[0; 64],
            Duration::ZERO
        )
        .is_err());
        let f = VideoFrame::from_packed(PixelLayout::Gray, 5, 3, None, &[255; 15], Duration::ZERO)
            .expect("converts");
        assert_eq!((f.width, f.height), (4, 2));
        assert!(f.y.iter().all(|&p| p == 235));
        let f = VideoFrame::from_packed(PixelLayout::Yuyv, 0, 0, None, &[], Duration::ZERO)
            .expect("converts");
        assert_eq!((f.width, f.height), (0, 0));
    }

    #[test]
    fn bgra_round_trips_within_rounding() {
        let bgra: Vec<u8> = (0..16 * 8)
            .flat_map(|i| [(i * 7 % 256) as u8, (i * 3 % 256) as u8, 200, 255])
            .collect();
        let f = VideoFrame::from_packed(PixelLayout::Bgra, 16, 8, None, &bgra, Duration::ZERO)
            .expect("converts");
        let back = f.to_bgra();
        assert_eq!(back.len(), bgra.len());
        // Chroma is shared by 2x2 pixels, so colours blur; grey stays.
        let grey = VideoFrame::black(4, 4).to_bgra();
        assert!(grey.chunks(4).all(|p| p[..3].iter().all(|c| *c <= 1)));
    }

    #[test]
    fn fitting_keeps_the_aspect_ratio() {
        let f = VideoFrame::black(1920, 1080);
        assert_eq!(f.fit_within(1280, 720), (1280, 720));
        assert_eq!(f.fit_within(1280, 1280), (1280, 720));
        assert_eq!(f.fit_within(640, 100), (176, 100));
        assert_eq!(
            VideoFrame::black(640, 480).fit_within(1280, 720),
            (640, 480)
        );
    }

    #[test]
    fn scaling_keeps_planes_consistent_and_averages() {
        let mut f = VideoFrame::black(64, 48);
        f.y.iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = if i % 2 == 0 { 0 } else { 200 });
        let s = f.scaled(32, 24);
        assert!(s.is_consistent());
        assert!(s.y.iter().all(|p| *p == 100), "horizontal pairs average");
        let up = f.scaled(129, 97);
        assert_eq!((up.width, up.height), (128, 96));
        assert!(up.is_consistent());
    }

    #[test]
    fn levels_in_dbov() {
        assert_eq!(AudioFrame::silence(Duration::ZERO).level_dbov(), 127);
        let full = AudioFrame {
            samples: (0..AUDIO_BLOCK)
                .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
                .collect(),
            captured: Duration::ZERO,
        };
        assert_eq!(full.level_dbov(), 0);
    }
}
