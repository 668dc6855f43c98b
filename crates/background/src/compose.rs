//! The compositor: a camera picture (I420) and a person mask in, the same
//! picture with its background blurred or replaced out, in place. It works
//! in YUV at the camera's size: the mask (at the model's size) is smoothed
//! over time, feathered and scaled up on the fly; a blurred background is
//! made at a quarter or an eighth of the size and scaled up while blending.

/// A picture in I420, borrowed: full-size luma, quarter-size chroma.
pub struct I420<'a> {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Luma, `width * height` bytes.
    pub y: &'a mut [u8],
    /// Blue-difference chroma, `width/2 * height/2` bytes.
    pub u: &'a mut [u8],
    /// Red-difference chroma, `width/2 * height/2` bytes.
    pub v: &'a mut [u8],
}

/// What replaces the background.
pub enum Backdrop {
    /// The camera's own background, blurred.
    Blur(BlurStrength),
    /// A picture of the camera's size (I420 planes: y, u, v).
    Image {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// Luma.
        y: Vec<u8>,
        /// Blue-difference chroma.
        u: Vec<u8>,
        /// Red-difference chroma.
        v: Vec<u8>,
    },
}

/// How strongly the background is blurred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlurStrength {
    /// Softened: shapes stay recognisable.
    Light,
    /// Strong: only colours remain.
    Strong,
}

impl BlurStrength {
    /// The factor the background is shrunk by before blurring.
    fn factor(self) -> usize {
        match self {
            BlurStrength::Light => 4,
            BlurStrength::Strong => 8,
        }
    }
}

/// A person mask as the model gives it: `width × height` values in 0..1.
pub struct Mask<'a> {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Row-major values, 1 = person.
    pub values: &'a [f32],
}

/// Keeps the smoothed mask between frames.
pub struct Compositor {
    /// The smoothed, feathered mask (model size), 0..1.
    smoothed: Vec<f32>,
    size: (usize, usize),
    /// Weight of a new mask against the running one (0..1].
    pub responsiveness: f32,
    /// The mask scaled up to a picture's planes (luma, chroma) as alpha
    /// 0..=256, made once per mask: pictures between masks reuse it.
    alpha: Option<Alpha>,
}

/// A mask scaled to one picture size.
struct Alpha {
    /// The picture's size.
    size: (usize, usize),
    /// Per luma pixel.
    luma: Vec<u16>,
    /// Per chroma pixel (2×2 luma pixels).
    chroma: Vec<u16>,
}

impl Default for Compositor {
    fn default() -> Self {
        Compositor {
            smoothed: Vec::new(),
            size: (0, 0),
            responsiveness: 0.6,
            alpha: None,
        }
    }
}

impl Compositor {
    /// Takes a new mask: smoothed over time, then feathered (a 3×3 box).
    pub fn update_mask(&mut self, mask: &Mask<'_>) {
        let (w, h) = (mask.width, mask.height);
        if w == 0 || h == 0 || mask.values.len() < w * h {
            return;
        }
        let mut feathered = vec![0.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0.0;
                let mut n = 0.0;
                for dy in y.saturating_sub(1)..(y + 2).min(h) {
                    for dx in x.saturating_sub(1)..(x + 2).min(w) {
                        sum += mask.values[dy * w + dx].clamp(0.0, 1.0);
                        n += 1.0;
                    }
                }
                feathered[y * w + x] = sum / n;
            }
        }
        self.alpha = None;
        if self.size != (w, h) {
            self.smoothed = feathered;
            self.size = (w, h);
            return;
        }
        let a = self.responsiveness.clamp(0.05, 1.0);
        for (s, f) in self.smoothed.iter_mut().zip(&feathered) {
            *s = a * f + (1.0 - a) * *s;
        }
    }

    /// Whether a mask has been given yet (until then [`Compositor::compose`]
    /// shows no part of the camera's picture).
    pub fn has_mask(&self) -> bool {
        !self.smoothed.is_empty()
    }

    /// Replaces the background of `frame` in place. Without a mask yet the
    /// whole picture counts as background: nothing of the camera's room is
    /// shown before the first mask.
    pub fn compose(&mut self, frame: &mut I420<'_>, backdrop: &Backdrop) {
        let (w, h) = (frame.width, frame.height);
        if w < 2
            || h < 2
            || frame.y.len() < w * h
            || frame.u.len() < w * h / 4
            || frame.v.len() < w * h / 4
        {
            return;
        }
        let (cw, ch) = (w / 2, h / 2);
        let alpha = self.alpha_for(w, h);
        let planes = [
            (&mut *frame.y, &alpha.luma[..], w, h, 0),
            (&mut *frame.u, &alpha.chroma[..], cw, ch, 1),
            (&mut *frame.v, &alpha.chroma[..], cw, ch, 2),
        ];
        match backdrop {
            Backdrop::Blur(strength) => {
                let f = strength.factor();
                for (plane, alpha, pw, ph, index) in planes {
                    let factor = if index == 0 { f } else { f / 2 };
                    let small = blurred(plane, pw, ph, factor);
                    let mut background = Scaler::new(&small.data, small.w, small.h, pw, ph);
                    for y in 0..ph {
                        let alpha = &alpha[y * pw..(y + 1) * pw];
                        // A row that is all person needs no background.
                        if alpha.iter().all(|a| *a == 256) {
                            continue;
                        }
                        blend_row(&mut plane[y * pw..(y + 1) * pw], alpha, background.row(y));
                    }
                }
            }
            Backdrop::Image {
                width,
                height,
                y,
                u,
                v,
            } => {
                if (*width, *height) != (w, h)
                    || y.len() < w * h
                    || u.len() < w * h / 4
                    || v.len() < w * h / 4
                {
                    return;
                }
                let images = [&y[..], &u[..], &v[..]];
                for (plane, alpha, pw, ph, index) in planes {
                    let image = images[index];
                    for y in 0..ph {
                        let row = y * pw..(y + 1) * pw;
                        blend_row_u8(&mut plane[row.clone()], &alpha[row.clone()], &image[row]);
                    }
                }
            }
        }
    }

    /// The alpha planes for a `w × h` picture, made from the mask when it
    /// or the size changed (no mask yet: all background).
    fn alpha_for(&mut self, w: usize, h: usize) -> &Alpha {
        if self.alpha.as_ref().is_some_and(|a| a.size != (w, h)) {
            self.alpha = None;
        }
        let (smoothed, size) = (&self.smoothed, self.size);
        self.alpha.get_or_insert_with(|| {
            let mask: Vec<u16> = smoothed
                .iter()
                .map(|m| (m * 256.0).round().clamp(0.0, 256.0) as u16)
                .collect();
            let (mw, mh) = if mask.is_empty() { (1, 1) } else { size };
            let mask = if mask.is_empty() { vec![0] } else { mask };
            let plane = |pw: usize, ph: usize| {
                let mut scaler = Scaler::new(&mask, mw, mh, pw, ph);
                let mut out = Vec::with_capacity(pw * ph);
                for y in 0..ph {
                    out.extend_from_slice(scaler.row(y));
                }
                out
            };
            // The mask is coarser than the chroma plane: the luma's alpha
            // repeats the chroma's over each 2×2 block.
            let (cw, ch) = (w / 2, h / 2);
            let chroma = plane(cw, ch);
            let mut luma = vec![0u16; w * h];
            for (y, row) in luma.chunks_exact_mut(w).enumerate() {
                let half = &chroma[(y / 2).min(ch.saturating_sub(1)) * cw..][..cw];
                for (pair, a) in row.chunks_exact_mut(2).zip(half) {
                    pair[0] = *a;
                    pair[1] = *a;
                }
            }
            Alpha {
                size: (w, h),
                luma,
                chroma,
            }
        })
    }
}

/// Bilinear positions along one axis: for each output index the two
/// source indices and the weight of the second (0..=256).
struct Taps {
    first: Vec<usize>,
    second: Vec<usize>,
    weight: Vec<u32>,
}

fn taps(out: usize, src: usize) -> Taps {
    let mut t = Taps {
        first: Vec::with_capacity(out),
        second: Vec::with_capacity(out),
        weight: Vec::with_capacity(out),
    };
    let last = src.saturating_sub(1);
    for i in 0..out {
        let f = ((i as f32 + 0.5) * src as f32 / out as f32 - 0.5).clamp(0.0, last as f32);
        let i0 = f as usize;
        t.first.push(i0);
        t.second.push((i0 + 1).min(last));
        t.weight.push(((f - i0 as f32) * 256.0).round() as u32);
    }
    t
}

/// Scales a small plane up to `w × h`, one row at a time, in fixed point.
struct Scaler<'a, T> {
    source: &'a [T],
    width: usize,
    across: Taps,
    down: Taps,
    vertical: Vec<u32>,
    out: Vec<u16>,
}

impl<'a, T: Copy + Into<u32>> Scaler<'a, T> {
    fn new(source: &'a [T], sw: usize, sh: usize, w: usize, h: usize) -> Self {
        Scaler {
            source,
            width: sw,
            across: taps(w, sw),
            down: taps(h, sh),
            vertical: vec![0; sw],
            out: vec![0; w],
        }
    }

    /// Output row `y`.
    fn row(&mut self, y: usize) -> &[u16] {
        let sw = self.width;
        let (r0, r1, wy) = (self.down.first[y], self.down.second[y], self.down.weight[y]);
        let (top, bottom) = (
            &self.source[r0 * sw..(r0 + 1) * sw],
            &self.source[r1 * sw..(r1 + 1) * sw],
        );
        for ((v, t), b) in self.vertical.iter_mut().zip(top).zip(bottom) {
            *v = (*t).into() * (256 - wy) + (*b).into() * wy;
        }
        for (x, o) in self.out.iter_mut().enumerate() {
            let (a, b, wx) = (
                self.across.first[x],
                self.across.second[x],
                self.across.weight[x],
            );
            *o = ((self.vertical[a] * (256 - wx) + self.vertical[b] * wx + 32_768) >> 16) as u16;
        }
        &self.out
    }
}

/// As [`blend_row`], with the background in bytes (a picture).
fn blend_row_u8(plane: &mut [u8], alpha: &[u16], background: &[u8]) {
    for ((p, a), b) in plane.iter_mut().zip(alpha).zip(background) {
        let a = u32::from(*a);
        *p = ((a * u32::from(*p) + (256 - a) * u32::from(*b) + 128) >> 8) as u8;
    }
}

/// p = (a·p + (256 − a)·background) / 256 along a row (a in 0..=256).
fn blend_row(plane: &mut [u8], alpha: &[u16], background: &[u16]) {
    for ((p, a), b) in plane.iter_mut().zip(alpha).zip(background) {
        let a = u32::from(*a);
        *p = ((a * u32::from(*p) + (256 - a) * u32::from(*b) + 128) >> 8) as u8;
    }
}

/// Face touch-up (V2), on the device: skin smoothing and light
/// correction of a picture's luma, in place. Smoothing pulls each pixel
/// towards its neighbourhood's mean where the two are close (skin
/// texture) and leaves edges (eyes, outlines) alone; light correction
/// lifts a dark picture's mid-tones towards a mean luma of about 110.
pub fn touch_up(frame: &mut I420<'_>, smoothing: f32) {
    let (w, h) = (frame.width, frame.height);
    if w < 4 || h < 4 || frame.y.len() < w * h {
        return;
    }
    let strength = (smoothing.clamp(0.0, 1.0) * 256.0) as i32;
    let small_w = w / 2;
    let small_h = h / 2;
    // The neighbourhood mean: shrunk by 2, blurred, read back per pixel.
    let mut small = blurred(frame.y, w, h, 2);
    box3(&mut small.data, small.w, small.h);
    let mut mean = Scaler::new(&small.data, small_w.max(1), small_h.max(1), w, h);
    let total: u64 = frame.y.iter().map(|p| u64::from(*p)).sum();
    let average = total as f32 / (w * h) as f32;
    // Gamma that moves a dark average towards 110 (never darkens).
    let gamma = if average < 100.0 && average > 8.0 {
        ((110.0f32 / 255.0).ln() / (average / 255.0).ln()).clamp(0.6, 1.0)
    } else {
        1.0
    };
    let curve: Vec<u8> = (0..256)
        .map(|v| ((v as f32 / 255.0).powf(gamma) * 255.0).round() as u8)
        .collect();
    for y in 0..h {
        let around = mean.row(y);
        for (p, m) in frame.y[y * w..(y + 1) * w].iter_mut().zip(around) {
            let (value, m) = (i32::from(*p), i32::from(*m));
            let difference = m - value;
            // Close to the neighbourhood (texture): smoothed; an edge: kept.
            let weight = if difference.abs() < 12 { strength } else { 0 };
            let smoothed = value + ((difference * weight) >> 8);
            *p = curve[smoothed.clamp(0, 255) as usize];
        }
    }
}

/// One pass of a 3×3 box blur, separable, edges repeated.
fn box3(data: &mut [u8], w: usize, h: usize) {
    let mut across = vec![0u16; w * h];
    for (row, out) in data.chunks_exact(w).zip(across.chunks_exact_mut(w)) {
        for x in 0..w {
            let left = row[x.saturating_sub(1)];
            let right = row[(x + 1).min(w - 1)];
            out[x] = u16::from(left) + u16::from(row[x]) + u16::from(right);
        }
    }
    for y in 0..h {
        let (up, down) = (y.saturating_sub(1), (y + 1).min(h - 1));
        let (a, b, c) = (
            &across[up * w..][..w],
            &across[y * w..][..w],
            &across[down * w..][..w],
        );
        for (x, out) in data[y * w..(y + 1) * w].iter_mut().enumerate() {
            *out = ((u32::from(a[x]) + u32::from(b[x]) + u32::from(c[x]) + 4) / 9) as u8;
        }
    }
}

/// A plane shrunk by a factor and blurred.
struct Small {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

/// `plane` (w × h) shrunk by `factor` (area average) and blurred with two
/// passes of a 3×3 box.
fn blurred(plane: &[u8], w: usize, h: usize, factor: usize) -> Small {
    let factor = factor.max(1);
    let (sw, sh) = ((w / factor).max(1), (h / factor).max(1));
    let mut data = vec![0u8; sw * sh];
    // Area average: add `factor` rows up (vectorised), then `factor` columns.
    let mut sums = vec![0u32; w];
    for sy in 0..sh {
        sums.iter_mut().for_each(|s| *s = 0);
        let rows = (sy * factor..((sy + 1) * factor).min(h)).len() as u32;
        for y in sy * factor..((sy + 1) * factor).min(h) {
            for (s, p) in sums.iter_mut().zip(&plane[y * w..(y + 1) * w]) {
                *s += u32::from(*p);
            }
        }
        for (sx, out) in data[sy * sw..(sy + 1) * sw].iter_mut().enumerate() {
            let columns = &sums[sx * factor..((sx + 1) * factor).min(w)];
            let n = (columns.len() as u32 * rows).max(1);
            *out = (columns.iter().sum::<u32>() / n) as u8;
        }
    }
    for _ in 0..2 {
        box3(&mut data, sw, sh);
    }
    Small { w: sw, h: sh, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64×48 frame: a bright square "person" in the middle of a striped
    /// room; its mask marks the square.
    fn scene() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<f32>) {
        let (w, h) = (64, 48);
        let mut y = vec![0u8; w * h];
        for row in 0..h {
            for col in 0..w {
                let person = (16..48).contains(&col) && (12..36).contains(&row);
                y[row * w + col] = if person {
                    200
                } else if col % 2 == 0 {
                    30
                } else {
                    230
                };
            }
        }
        let mask: Vec<f32> = (0..16 * 12)
            .map(|i| {
                let (col, row) = (i % 16, i / 16);
                if (4..12).contains(&col) && (3..9).contains(&row) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        (y, vec![128; w * h / 4], vec![128; w * h / 4], mask)
    }

    #[test]
    fn the_person_stays_and_the_room_is_blurred_or_replaced() {
        let (mut y, mut u, mut v, mask) = scene();
        let mut c = Compositor::default();
        c.update_mask(&Mask {
            width: 16,
            height: 12,
            values: &mask,
        });
        let mut frame = I420 {
            width: 64,
            height: 48,
            y: &mut y,
            u: &mut u,
            v: &mut v,
        };
        c.compose(&mut frame, &Backdrop::Blur(BlurStrength::Strong));
        // The middle of the person is untouched.
        assert_eq!(y[24 * 64 + 32], 200);
        // The stripes in the corner are averaged away (30/230 → about 130).
        for at in [2 * 64 + 2, 2 * 64 + 3, 45 * 64 + 60, 45 * 64 + 61] {
            assert!((100..=160).contains(&y[at]), "{at}: {}", y[at]);
        }
        let (mut y, mut u, mut v, mask) = scene();
        let mut c = Compositor::default();
        c.update_mask(&Mask {
            width: 16,
            height: 12,
            values: &mask,
        });
        let image = Backdrop::Image {
            width: 64,
            height: 48,
            y: vec![77; 64 * 48],
            u: vec![90; 32 * 24],
            v: vec![160; 32 * 24],
        };
        let mut frame = I420 {
            width: 64,
            height: 48,
            y: &mut y,
            u: &mut u,
            v: &mut v,
        };
        c.compose(&mut frame, &image);
        assert_eq!(y[24 * 64 + 32], 200);
        assert_eq!(y[0], 77, "the image replaces the room");
        assert_eq!((u[0], v[0]), (90, 160));
    }

    #[test]
    fn before_the_first_mask_nothing_of_the_room_shows() {
        let (mut y, mut u, mut v, _) = scene();
        let mut c = Compositor::default();
        let image = Backdrop::Image {
            width: 64,
            height: 48,
            y: vec![77; 64 * 48],
            u: vec![90; 32 * 24],
            v: vec![160; 32 * 24],
        };
        let mut frame = I420 {
            width: 64,
            height: 48,
            y: &mut y,
            u: &mut u,
            v: &mut v,
        };
        c.compose(&mut frame, &image);
        assert!(y.iter().all(|p| *p == 77));
    }

    #[test]
    fn touch_up_smooths_texture_keeps_edges_and_lifts_dark_pictures() {
        let (w, h) = (64, 48);
        // Fine texture (±6) on the left, a hard edge in the middle; dark.
        let mut y: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, row) = (i % w, i / w);
                if x < 32 {
                    if (x + row) % 2 == 0 {
                        54
                    } else {
                        66
                    }
                } else {
                    90
                }
            })
            .collect();
        let (mut u, mut v) = (vec![128; w * h / 4], vec![128; w * h / 4]);
        let before_texture = y[10 * w + 10].abs_diff(y[10 * w + 11]);
        let mut frame = I420 {
            width: w,
            height: h,
            y: &mut y,
            u: &mut u,
            v: &mut v,
        };
        touch_up(&mut frame, 1.0);
        let after_texture = y[10 * w + 10].abs_diff(y[10 * w + 11]);
        assert!(
            after_texture < before_texture / 2,
            "{before_texture} → {after_texture}"
        );
        assert!(y[10 * w + 10] > 60, "lifted: {}", y[10 * w + 10]);
        // The edge between the halves is not smeared: the first pixel of
        // the bright half is as bright as the rest of it.
        let (at_edge, inside) = (y[20 * w + 32], y[20 * w + 40]);
        assert!(
            at_edge.abs_diff(inside) <= 2,
            "edge {at_edge} against {inside}"
        );
    }

    #[test]
    fn masks_are_smoothed_over_time() {
        let mut c = Compositor::default();
        let on = vec![1.0; 4 * 4];
        let off = vec![0.0; 4 * 4];
        c.update_mask(&Mask {
            width: 4,
            height: 4,
            values: &on,
        });
        c.update_mask(&Mask {
            width: 4,
            height: 4,
            values: &off,
        });
        let after_one = c.smoothed[5];
        assert!(after_one > 0.2 && after_one < 0.6, "{after_one}");
        for _ in 0..10 {
            c.update_mask(&Mask {
                width: 4,
                height: 4,
                values: &off,
            });
        }
        assert!(c.smoothed[5] < 0.01);
    }
}
