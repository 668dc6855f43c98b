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
}

impl Default for Compositor {
    fn default() -> Self {
        Compositor {
            smoothed: Vec::new(),
            size: (0, 0),
            responsiveness: 0.6,
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
    pub fn compose(&self, frame: &mut I420<'_>, backdrop: &Backdrop) {
        let (w, h) = (frame.width, frame.height);
        if w < 2
            || h < 2
            || frame.y.len() < w * h
            || frame.u.len() < w * h / 4
            || frame.v.len() < w * h / 4
        {
            return;
        }
        // Alpha per luma pixel, 0..=256 (person).
        let alpha = self.alpha(w, h);
        match backdrop {
            Backdrop::Blur(strength) => {
                let f = strength.factor();
                let (cw, ch) = (w / 2, h / 2);
                let y_bg = blurred(frame.y, w, h, f);
                let u_bg = blurred(frame.u, cw, ch, f / 2);
                let v_bg = blurred(frame.v, cw, ch, f / 2);
                blend_plane(frame.y, w, h, &alpha, w, |x, y| y_bg.sample(x, y));
                let chroma_alpha = halve(&alpha, w, h);
                blend_plane(frame.u, cw, ch, &chroma_alpha, cw, |x, y| u_bg.sample(x, y));
                blend_plane(frame.v, cw, ch, &chroma_alpha, cw, |x, y| v_bg.sample(x, y));
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
                let (cw, ch) = (w / 2, h / 2);
                blend_plane(frame.y, w, h, &alpha, w, |x, yy| y[yy * w + x]);
                let chroma_alpha = halve(&alpha, w, h);
                blend_plane(frame.u, cw, ch, &chroma_alpha, cw, |x, yy| u[yy * cw + x]);
                blend_plane(frame.v, cw, ch, &chroma_alpha, cw, |x, yy| v[yy * cw + x]);
            }
        }
    }

    /// The mask scaled (bilinearly) to `w × h`, as 0..=256.
    fn alpha(&self, w: usize, h: usize) -> Vec<u16> {
        let (mw, mh) = self.size;
        if self.smoothed.is_empty() || mw == 0 || mh == 0 {
            return vec![0; w * h];
        }
        let mut out = vec![0u16; w * h];
        let sx = mw as f32 / w as f32;
        let sy = mh as f32 / h as f32;
        for y in 0..h {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (mh - 1) as f32);
            let y0 = fy as usize;
            let y1 = (y0 + 1).min(mh - 1);
            let dy = fy - y0 as f32;
            for x in 0..w {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (mw - 1) as f32);
                let x0 = fx as usize;
                let x1 = (x0 + 1).min(mw - 1);
                let dx = fx - x0 as f32;
                let m = &self.smoothed;
                let top = m[y0 * mw + x0] * (1.0 - dx) + m[y0 * mw + x1] * dx;
                let bottom = m[y1 * mw + x0] * (1.0 - dx) + m[y1 * mw + x1] * dx;
                out[y * w + x] = ((top * (1.0 - dy) + bottom * dy) * 256.0)
                    .round()
                    .clamp(0.0, 256.0) as u16;
            }
        }
        out
    }
}

/// Alpha at half size (for chroma): the mean of each 2×2 block.
fn halve(alpha: &[u16], w: usize, h: usize) -> Vec<u16> {
    let (cw, ch) = (w / 2, h / 2);
    let mut out = vec![0u16; cw * ch];
    for y in 0..ch {
        for x in 0..cw {
            let a = |dx: usize, dy: usize| u32::from(alpha[(2 * y + dy) * w + 2 * x + dx]);
            out[y * cw + x] = ((a(0, 0) + a(1, 0) + a(0, 1) + a(1, 1)) / 4) as u16;
        }
    }
    out
}

/// out = (a·out + (256 − a)·background) / 256, per pixel.
fn blend_plane(
    plane: &mut [u8],
    w: usize,
    h: usize,
    alpha: &[u16],
    stride: usize,
    background: impl Fn(usize, usize) -> u8,
) {
    for y in 0..h {
        for x in 0..w {
            let a = u32::from(alpha[y * stride + x]);
            let p = &mut plane[y * w + x];
            *p = ((a * u32::from(*p) + (256 - a) * u32::from(background(x, y)) + 128) >> 8) as u8;
        }
    }
}

/// A plane shrunk by a factor and box-blurred, sampled back at full size.
struct Small {
    w: usize,
    h: usize,
    factor: usize,
    data: Vec<u8>,
}

impl Small {
    /// The value at full-size (x, y), bilinear between the small pixels.
    #[inline]
    fn sample(&self, x: usize, y: usize) -> u8 {
        let f = self.factor as f32;
        let fx = ((x as f32 + 0.5) / f - 0.5).clamp(0.0, (self.w - 1) as f32);
        let fy = ((y as f32 + 0.5) / f - 0.5).clamp(0.0, (self.h - 1) as f32);
        let (x0, y0) = (fx as usize, fy as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (dx, dy) = (fx - x0 as f32, fy - y0 as f32);
        let d = &self.data;
        let top = f32::from(d[y0 * self.w + x0]) * (1.0 - dx) + f32::from(d[y0 * self.w + x1]) * dx;
        let bottom =
            f32::from(d[y1 * self.w + x0]) * (1.0 - dx) + f32::from(d[y1 * self.w + x1]) * dx;
        (top * (1.0 - dy) + bottom * dy).round() as u8
    }
}

/// `plane` (w × h) shrunk by `factor` (area average) and blurred with two
/// passes of a 3×3 box.
fn blurred(plane: &[u8], w: usize, h: usize, factor: usize) -> Small {
    let factor = factor.max(1);
    let (sw, sh) = ((w / factor).max(1), (h / factor).max(1));
    let mut data = vec![0u8; sw * sh];
    for sy in 0..sh {
        for sx in 0..sw {
            let mut sum = 0u32;
            let mut n = 0u32;
            for y in sy * factor..((sy + 1) * factor).min(h) {
                for x in sx * factor..((sx + 1) * factor).min(w) {
                    sum += u32::from(plane[y * w + x]);
                    n += 1;
                }
            }
            data[sy * sw + sx] = (sum / n.max(1)) as u8;
        }
    }
    for _ in 0..2 {
        let source = data.clone();
        for y in 0..sh {
            for x in 0..sw {
                let mut sum = 0u32;
                let mut n = 0u32;
                for yy in y.saturating_sub(1)..(y + 2).min(sh) {
                    for xx in x.saturating_sub(1)..(x + 2).min(sw) {
                        sum += u32::from(source[yy * sw + xx]);
                        n += 1;
                    }
                }
                data[y * sw + x] = (sum / n) as u8;
            }
        }
    }
    Small {
        w: sw,
        h: sh,
        factor,
        data,
    }
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
        let c = Compositor::default();
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
