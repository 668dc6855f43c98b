//! The test pattern: a moving picture with a machine-readable block that
//! carries the frame counter and the capture time, protected by a CRC-32.
//!
//! The block is a grid of 20 x 8 cells at the top-left corner of the luma
//! plane, each cell black (bit 0) or white (bit 1), big enough to survive
//! lossy video coding: read back by averaging each cell's interior. Bits:
//! 64 frame counter, 64 capture time in microseconds, 32 CRC-32 of those 16
//! bytes (big-endian).

use std::time::Duration;

use crate::frame::VideoFrame;

const COLUMNS: usize = 20;
const ROWS: usize = 8;
const BITS: usize = COLUMNS * ROWS;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// What the block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Frame counter, from 0.
    pub frame: u64,
    /// Capture time on the sender's clock.
    pub captured: Duration,
}

/// Why a block could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The frame is smaller than the block.
    #[error("the frame is too small to carry the pattern block")]
    TooSmall,
    /// The CRC does not match: the block is damaged.
    #[error("the pattern block is damaged (checksum mismatch)")]
    Checksum,
}

/// Cell size in pixels for a frame of this width (the block spans a quarter
/// of the width, cells at least 4 px).
pub fn cell_size(width: usize) -> usize {
    (width / (COLUMNS * 4)).max(4)
}

fn bits_of(stamp: Stamp) -> [bool; BITS] {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&stamp.frame.to_be_bytes());
    bytes[8..16].copy_from_slice(&(stamp.captured.as_micros() as u64).to_be_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_be_bytes());
    let mut bits = [false; BITS];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    bits
}

/// Draws the block for `stamp` into the frame's luma.
pub fn write_stamp(frame: &mut VideoFrame, stamp: Stamp) -> Result<(), PatternError> {
    let cell = cell_size(frame.width);
    if (COLUMNS + 2) * cell > frame.width || (ROWS + 2) * cell > frame.height {
        return Err(PatternError::TooSmall);
    }
    let bits = bits_of(stamp);
    for (i, bit) in bits.iter().enumerate() {
        let (cx, cy) = (i % COLUMNS, i / COLUMNS);
        let value = if *bit { WHITE } else { BLACK };
        for y in 0..cell {
            let row = (cell + cy * cell + y) * frame.width + cell + cx * cell;
            frame.y[row..row + cell].fill(value);
        }
    }
    Ok(())
}

/// Reads the block back.
pub fn read_stamp(frame: &VideoFrame) -> Result<Stamp, PatternError> {
    let cell = cell_size(frame.width);
    if (COLUMNS + 2) * cell > frame.width
        || (ROWS + 2) * cell > frame.height
        || frame.y.len() < frame.width * frame.height
    {
        return Err(PatternError::TooSmall);
    }
    // Average the inner half of each cell (edges blur under coding).
    let margin = cell / 4;
    let mut bytes = [0u8; 20];
    for i in 0..BITS {
        let (cx, cy) = (i % COLUMNS, i / COLUMNS);
        let (x0, y0) = (cell + cx * cell + margin, cell + cy * cell + margin);
        let side = cell - 2 * margin;
        let mut sum = 0u32;
        for y in y0..y0 + side {
            let row = y * frame.width;
            sum += frame.y[row + x0..row + x0 + side]
                .iter()
                .map(|p| u32::from(*p))
                .sum::<u32>();
        }
        let mean = sum / (side * side) as u32;
        if mean > u32::from(BLACK + WHITE) / 2 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let crc = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    if crc32fast::hash(&bytes[..16]) != crc {
        return Err(PatternError::Checksum);
    }
    let mut frame_no = [0u8; 8];
    frame_no.copy_from_slice(&bytes[..8]);
    let mut micros = [0u8; 8];
    micros.copy_from_slice(&bytes[8..16]);
    Ok(Stamp {
        frame: u64::from_be_bytes(frame_no),
        captured: Duration::from_micros(u64::from_be_bytes(micros)),
    })
}

/// Paints the moving background for frame `n`: diagonal luma bands that
/// move one step per frame, a colour wash, and a square that crosses the
/// picture, so motion and colour both exercise an encoder.
pub fn paint_background(frame: &mut VideoFrame, n: u64) {
    let (w, h) = (frame.width, frame.height);
    let shift = ((n % 1024) * 4) as usize;
    // Diagonal stripes 16 pixels wide: filled run by run, not pixel by pixel.
    for y in 0..h {
        let row = &mut frame.y[y * w..(y + 1) * w];
        let mut x = 0;
        while x < w {
            let k = x + y + shift;
            let run = (16 - k % 16).min(w - x);
            row[x..x + run].fill(40 + ((k / 16) % 8 * 20) as u8);
            x += run;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    if cw > 0 {
        let u_row: Vec<u8> = (0..cw).map(|x| (64 + (x * 128 / cw)) as u8).collect();
        for y in 0..ch {
            frame.u[y * cw..(y + 1) * cw].copy_from_slice(&u_row);
            frame.v[y * cw..(y + 1) * cw].fill((64 + (y * 128 / ch.max(1))) as u8);
        }
    }
    let side = (h / 4).max(2);
    let span = w.saturating_sub(side).max(1);
    let x0 = ((n % 1_000_000) as usize * 8) % span;
    let y0 = h / 2 - side / 2;
    for y in y0..(y0 + side).min(h) {
        frame.y[y * w + x0..y * w + (x0 + side).min(w)].fill(WHITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any stamp survives a round trip, even with noise on every pixel.
        #[test]
        fn stamps_survive_noise(frame_no in any::<u64>(), micros in 0u64..(1 << 60),
                                noise in prop::collection::vec(-60i16..60, 64)) {
            for (w, h) in [(320usize, 180usize), (1280, 720)] {
                let mut f = VideoFrame::black(w, h);
                paint_background(&mut f, frame_no);
                let stamp = Stamp { frame: frame_no, captured: Duration::from_micros(micros) };
                write_stamp(&mut f, stamp).expect("fits");
                for (i, p) in f.y.iter_mut().enumerate() {
                    *p = (i16::from(*p) + noise[i % noise.len()]).clamp(0, 255) as u8;
                }
                prop_assert_eq!(read_stamp(&f), Ok(stamp));
            }
        }
    }

    #[test]
    fn damage_is_detected() {
        let mut f = VideoFrame::black(640, 360);
        let stamp = Stamp {
            frame: 7,
            captured: Duration::from_millis(1234),
        };
        write_stamp(&mut f, stamp).expect("fits");
        // Invert one cell.
        let cell = cell_size(640);
        for y in cell..2 * cell {
            for x in cell..2 * cell {
                f.y[y * 640 + x] = 255 - f.y[y * 640 + x];
            }
        }
        assert_eq!(read_stamp(&f), Err(PatternError::Checksum));
        assert_eq!(
            read_stamp(&VideoFrame::black(40, 20)),
            Err(PatternError::TooSmall)
        );
    }
}
