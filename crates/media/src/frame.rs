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
