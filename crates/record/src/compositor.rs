//! The recording's picture: the meeting laid out on one canvas (1280×720 by
//! default). Everyone in a gallery; when someone shares, the share large
//! with the people in a strip beside it. Each tile has its name, and whoever
//! talks has a green frame.

use conclave_media::VideoFrame;

/// A rectangle on the canvas, in pixels (even coordinates and sizes, for
/// the chroma planes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// Space between tiles and around them.
const GAP: usize = 8;

fn even(v: usize) -> usize {
    v & !1
}

/// The gallery for `count` tiles on a `width`×`height` canvas: 16:9 tiles in
/// the grid that makes them largest, centred.
pub fn gallery(count: usize, width: usize, height: usize) -> Vec<Rect> {
    if count == 0 {
        return Vec::new();
    }
    let mut best = (0, 1, 0, 0);
    for cols in 1..=count {
        let rows = count.div_ceil(cols);
        let cell_w = width.saturating_sub(GAP * (cols + 1)) / cols;
        let cell_h = height.saturating_sub(GAP * (rows + 1)) / rows;
        let tile_w = cell_w.min(cell_h * 16 / 9);
        let tile_h = tile_w * 9 / 16;
        if tile_w * tile_h > best.2 * best.3 {
            best = (cols, rows, tile_w, tile_h);
        }
    }
    let (cols, rows, tile_w, tile_h) = best;
    let (tile_w, tile_h) = (even(tile_w), even(tile_h));
    let grid_h = rows * tile_h + (rows - 1) * GAP;
    let top = (height.saturating_sub(grid_h)) / 2;
    (0..count)
        .map(|i| {
            let row = i / cols;
            let in_row = if row == rows - 1 {
                count - row * cols
            } else {
                cols
            };
            let row_w = in_row * tile_w + (in_row - 1) * GAP;
            let left = (width.saturating_sub(row_w)) / 2;
            Rect {
                x: even(left + (i % cols) * (tile_w + GAP)),
                y: even(top + row * (tile_h + GAP)),
                width: tile_w,
                height: tile_h,
            }
        })
        .collect()
}

/// Where `frame` is drawn in a tile at `rect`: centred, at its own size
/// if it fits, else scaled down to fit.
pub fn picture_rect(rect: Rect, frame: &VideoFrame) -> Rect {
    let (w, h) = frame.fit_within(rect.width, rect.height);
    let (w, h) = (even(w).max(2), even(h).max(2));
    Rect {
        x: even(rect.x + rect.width.saturating_sub(w) / 2),
        y: even(rect.y + rect.height.saturating_sub(h) / 2),
        width: w,
        height: h,
    }
}

/// The presentation layout: the share large on the left, up to four people
/// in a column on the right.
pub fn presentation(people: usize, width: usize, height: usize) -> (Rect, Vec<Rect>) {
    let strip_w = even(width / 5);
    let shown = people.min(4);
    let main_w = if shown == 0 {
        width - 2 * GAP
    } else {
        width - strip_w - 3 * GAP
    };
    let main = Rect {
        x: GAP,
        y: GAP,
        width: even(main_w),
        height: even(height - 2 * GAP),
    };
    let tile_h = even(strip_w * 9 / 16);
    let column_h = shown * tile_h + shown.saturating_sub(1) * GAP;
    let top = (height.saturating_sub(column_h)) / 2;
    let strip = (0..shown)
        .map(|i| Rect {
            x: even(width - GAP - strip_w),
            y: even(top + i * (tile_h + GAP)),
            width: strip_w,
            height: tile_h,
        })
        .collect();
    (main, strip)
}

/// One participant's (or one share's) picture for the canvas.
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    /// The name on the tile.
    pub name: &'a str,
    /// The latest picture, if there is one.
    pub frame: Option<&'a VideoFrame>,
    /// A shared screen (drawn large).
    pub share: bool,
    /// Talking now.
    pub talking: bool,
}

/// Draws tiles onto a canvas; see the module documentation.
pub struct Compositor {
    canvas: VideoFrame,
    /// The fonts found, tried in order for each character.
    fonts: Vec<fontdue::Font>,
}

/// Fonts tried for names, in order (Latin, then CJK).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/System/Library/Fonts/Helvetica.ttc",
    "C:\\Windows\\Fonts\\segoeui.ttf",
];

impl Compositor {
    /// A canvas of `width`×`height` (even). Names are drawn when one of the
    /// usual system fonts is found.
    pub fn new(width: usize, height: usize) -> Self {
        let fonts = FONTS
            .iter()
            .filter_map(|path| {
                let bytes = std::fs::read(path).ok()?;
                fontdue::Font::from_bytes(bytes, fontdue::FontSettings::default()).ok()
            })
            .collect();
        Compositor {
            canvas: VideoFrame::black(even(width), even(height)),
            fonts,
        }
    }

    /// Lays out and draws `tiles`; returns the canvas.
    pub fn compose(&mut self, tiles: &[Tile<'_>]) -> &VideoFrame {
        let (width, height) = (self.canvas.width, self.canvas.height);
        fill(
            &mut self.canvas,
            Rect {
                x: 0,
                y: 0,
                width,
                height,
            },
            (24, 128, 128),
        );
        let share = tiles.iter().position(|t| t.share);
        let placed: Vec<(Rect, &Tile<'_>)> = match share {
            Some(s) => {
                // People beside the share, whoever talks first.
                let mut people: Vec<&Tile<'_>> = tiles.iter().filter(|t| !t.share).collect();
                people.sort_by_key(|t| !t.talking);
                let (main, strip) = presentation(people.len(), width, height);
                std::iter::once((main, &tiles[s]))
                    .chain(strip.into_iter().zip(people))
                    .collect()
            }
            None => gallery(tiles.len(), width, height)
                .into_iter()
                .zip(tiles)
                .collect(),
        };
        for (rect, tile) in placed {
            self.draw_tile(rect, tile);
        }
        &self.canvas
    }

    fn draw_tile(&mut self, rect: Rect, tile: &Tile<'_>) {
        fill(&mut self.canvas, rect, (40, 128, 128));
        if let Some(frame) = tile.frame.filter(|f| f.width >= 2 && f.height >= 2) {
            let at = picture_rect(rect, frame);
            let scaled = if (at.width, at.height) == (frame.width, frame.height) {
                None
            } else {
                Some(frame.scaled(at.width, at.height))
            };
            let picture = scaled.as_ref().unwrap_or(frame);
            blit(&mut self.canvas, picture, at.x, at.y);
        }
        if tile.talking {
            border(&mut self.canvas, rect, 4, (150, 60, 50));
        }
        self.label(rect, tile.name);
    }

    /// The name at the tile's bottom left, white on a darkened band.
    fn label(&mut self, rect: Rect, name: &str) {
        let Some(first) = self.fonts.first() else {
            return;
        };
        let px = (rect.height as f32 / 14.0).clamp(11.0, 22.0);
        // Each character from the first font that has it (Latin, then CJK).
        let glyphs: Vec<(fontdue::Metrics, Vec<u8>)> = name
            .chars()
            .take(40)
            .map(|c| {
                self.fonts
                    .iter()
                    .find(|f| f.lookup_glyph_index(c) != 0)
                    .unwrap_or(first)
                    .rasterize(c, px)
            })
            .collect();
        let text_w: usize = glyphs
            .iter()
            .map(|(m, _)| m.advance_width.round() as usize)
            .sum();
        let pad = 6;
        let band = Rect {
            x: rect.x,
            y: even(rect.y + rect.height - (px as usize + 2 * pad)),
            width: even((text_w + 2 * pad).min(rect.width)),
            height: even(px as usize + 2 * pad),
        };
        darken(&mut self.canvas, band);
        let baseline = band.y + pad + (px * 0.8) as usize;
        let mut pen = (band.x + pad) as f32;
        let stride = self.canvas.width;
        for (metrics, coverage) in glyphs {
            let gx = pen as isize + metrics.xmin as isize;
            let gy = baseline as isize - metrics.height as isize - metrics.ymin as isize;
            for row in 0..metrics.height {
                for col in 0..metrics.width {
                    let (x, y) = (gx + col as isize, gy + row as isize);
                    if x < band.x as isize
                        || x >= (band.x + band.width) as isize
                        || y < 0
                        || y >= self.canvas.height as isize
                    {
                        continue;
                    }
                    let alpha = u32::from(coverage[row * metrics.width + col]);
                    let i = y as usize * stride + x as usize;
                    if let Some(luma) = self.canvas.y.get_mut(i) {
                        *luma = ((u32::from(*luma) * (255 - alpha) + 235 * alpha) / 255) as u8;
                    }
                }
            }
            pen += metrics.advance_width;
        }
    }
}

/// Fills `rect` with one colour (Y, U, V).
fn fill(canvas: &mut VideoFrame, rect: Rect, (y, u, v): (u8, u8, u8)) {
    let (cw, ch) = (canvas.width, canvas.height);
    for row in rect.y..(rect.y + rect.height).min(ch) {
        let start = row * cw + rect.x.min(cw);
        let end = row * cw + (rect.x + rect.width).min(cw);
        if let Some(line) = canvas.y.get_mut(start..end) {
            line.fill(y);
        }
    }
    let (hw, hh) = (cw / 2, ch / 2);
    for row in rect.y / 2..((rect.y + rect.height) / 2).min(hh) {
        let start = row * hw + (rect.x / 2).min(hw);
        let end = row * hw + ((rect.x + rect.width) / 2).min(hw);
        if let Some(line) = canvas.u.get_mut(start..end) {
            line.fill(u);
        }
        if let Some(line) = canvas.v.get_mut(start..end) {
            line.fill(v);
        }
    }
}

/// Darkens `rect` to a neutral grey (behind a label).
fn darken(canvas: &mut VideoFrame, rect: Rect) {
    let cw = canvas.width;
    let hw = cw / 2;
    for row in rect.y / 2..((rect.y + rect.height) / 2).min(canvas.height / 2) {
        let start = row * hw + (rect.x / 2).min(hw);
        let end = row * hw + ((rect.x + rect.width) / 2).min(hw);
        for plane in [&mut canvas.u, &mut canvas.v] {
            if let Some(line) = plane.get_mut(start..end) {
                line.fill(128);
            }
        }
    }
    for row in rect.y..(rect.y + rect.height).min(canvas.height) {
        let start = row * cw + rect.x.min(cw);
        let end = row * cw + (rect.x + rect.width).min(cw);
        if let Some(line) = canvas.y.get_mut(start..end) {
            for p in line {
                *p = 16 + (*p).saturating_sub(16) / 3;
            }
        }
    }
}

/// A frame `thickness` pixels wide around `rect`.
fn border(canvas: &mut VideoFrame, rect: Rect, thickness: usize, colour: (u8, u8, u8)) {
    let t = even(thickness).max(2);
    let sides = [
        Rect { height: t, ..rect },
        Rect {
            y: rect.y + rect.height - t,
            height: t,
            ..rect
        },
        Rect { width: t, ..rect },
        Rect {
            x: rect.x + rect.width - t,
            width: t,
            ..rect
        },
    ];
    for side in sides {
        fill(canvas, side, colour);
    }
}

/// Copies `picture` onto the canvas at (`x`, `y`), clipped.
fn blit(canvas: &mut VideoFrame, picture: &VideoFrame, x: usize, y: usize) {
    let (cw, ch) = (canvas.width, canvas.height);
    let w = picture.width.min(cw.saturating_sub(x));
    for row in 0..picture.height.min(ch.saturating_sub(y)) {
        let to = (y + row) * cw + x;
        let from = row * picture.width;
        if let (Some(dst), Some(src)) =
            (canvas.y.get_mut(to..to + w), picture.y.get(from..from + w))
        {
            dst.copy_from_slice(src);
        }
    }
    let (hw, pw) = (cw / 2, picture.width / 2);
    let w = pw.min(hw.saturating_sub(x / 2));
    for row in 0..(picture.height / 2).min((ch / 2).saturating_sub(y / 2)) {
        let to = (y / 2 + row) * hw + x / 2;
        let from = row * pw;
        for (dst, src) in [(&mut canvas.u, &picture.u), (&mut canvas.v, &picture.v)] {
            if let (Some(d), Some(s)) = (dst.get_mut(to..to + w), src.get(from..from + w)) {
                d.copy_from_slice(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(r: Rect, w: usize, h: usize) -> bool {
        r.x + r.width <= w && r.y + r.height <= h
    }

    fn overlap(a: Rect, b: Rect) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    #[test]
    fn galleries_fit_the_canvas_without_overlap() {
        for n in 1..=16 {
            let rects = gallery(n, 1280, 720);
            assert_eq!(rects.len(), n);
            for (i, a) in rects.iter().enumerate() {
                assert!(inside(*a, 1280, 720), "{n}: {a:?}");
                assert!(a.width >= 200, "{n}: tiles stay usable: {a:?}");
                for b in &rects[i + 1..] {
                    assert!(!overlap(*a, *b), "{n}: {a:?} {b:?}");
                }
            }
        }
        assert!(
            gallery(1, 1280, 720)[0].width >= 1240,
            "one person fills the canvas"
        );
        let four = gallery(4, 1280, 720);
        assert_eq!((four[0].y, four[2].y > four[0].y), (four[1].y, true), "2×2");
    }

    #[test]
    fn a_share_is_large_and_people_are_beside_it() {
        let (main, strip) = presentation(6, 1280, 720);
        assert_eq!(strip.len(), 4, "four people at most");
        assert!(main.width > 900);
        for r in &strip {
            assert!(inside(*r, 1280, 720) && !overlap(main, *r), "{r:?}");
        }
    }

    #[test]
    fn pictures_land_in_their_tiles_and_talkers_get_a_frame() {
        let mut bright = VideoFrame::black(320, 180);
        bright.y.fill(200);
        let mut compositor = Compositor::new(1280, 720);
        let tiles = [
            Tile {
                name: "Ada",
                frame: Some(&bright),
                share: false,
                talking: true,
            },
            Tile {
                name: "Grace",
                frame: None,
                share: false,
                talking: false,
            },
        ];
        let canvas = compositor.compose(&tiles).clone();
        let rects = gallery(2, 1280, 720);
        let at = |x: usize, y: usize| canvas.y[y * 1280 + x];
        let centre = |r: Rect| (r.x + r.width / 2, r.y + r.height / 2);
        let (x, y) = centre(rects[0]);
        assert_eq!(at(x, y), 200, "Ada's picture, scaled up");
        let (x, y) = centre(rects[1]);
        assert_eq!(at(x, y), 40, "Grace has no picture");
        assert_eq!(at(rects[0].x + 1, rects[0].y + 1), 150, "Ada talks");
        assert_eq!(at(2, 2), 24, "background");
    }
}
