//! Background pictures: a PNG file the user chose, checked and turned into
//! I420 at the camera's size. A damaged, huge or unsupported file gives a
//! clear error and nothing else happens.

use crate::compose::Backdrop;

/// The largest picture accepted, in pixels per side.
pub const MAX_SIDE: u32 = 8192;
/// The largest file accepted, in bytes.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why a background picture cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Not a PNG file (other formats are not supported).
    #[error("only PNG pictures can be used as a background")]
    Unsupported,
    /// A PNG file that cannot be read.
    #[error("the picture is damaged: {0}")]
    Damaged(String),
    /// Too large to use.
    #[error("the picture is too large (at most {MAX_SIDE}×{MAX_SIDE} pixels and 64 MB)")]
    TooLarge,
}

/// A decoded picture: RGB bytes, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

/// Decodes a PNG file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Picture, ImageError> {
    if bytes.len() > MAX_BYTES {
        return Err(ImageError::TooLarge);
    }
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(ImageError::Unsupported);
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder
        .read_header_info()
        .map_err(|e| ImageError::Damaged(e.to_string()))?;
    if header.width > MAX_SIDE
        || header.height > MAX_SIDE
        || header.width == 0
        || header.height == 0
    {
        return Err(ImageError::TooLarge);
    }
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageError::Damaged(e.to_string()))?;
    let size = reader.output_buffer_size().ok_or(ImageError::TooLarge)?;
    let mut data = vec![0; size];
    let info = reader
        .next_frame(&mut data)
        .map_err(|e| ImageError::Damaged(e.to_string()))?;
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let rgb = data[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Ok(Picture { width, height, rgb })
}

/// The picture covering `width × height` (scaled to fill, the middle kept),
/// as a backdrop.
pub fn backdrop(picture: &Picture, width: usize, height: usize) -> Backdrop {
    let (w, h) = (width & !1, height & !1);
    let scale = f64::max(
        w as f64 / picture.width as f64,
        h as f64 / picture.height as f64,
    );
    let (offset_x, offset_y) = (
        (picture.width as f64 * scale - w as f64) / 2.0,
        (picture.height as f64 * scale - h as f64) / 2.0,
    );
    let at = |x: usize, y: usize| {
        let sx = (((x as f64 + 0.5 + offset_x) / scale) as usize).min(picture.width - 1);
        let sy = (((y as f64 + 0.5 + offset_y) / scale) as usize).min(picture.height - 1);
        let i = (sy * picture.width + sx) * 3;
        (
            f32::from(picture.rgb[i]),
            f32::from(picture.rgb[i + 1]),
            f32::from(picture.rgb[i + 2]),
        )
    };
    let mut y_plane = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = at(x, y);
            y_plane[y * w + x] = (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    let (mut u, mut v) = (vec![0u8; cw * ch], vec![0u8; cw * ch]);
    for y in 0..ch {
        for x in 0..cw {
            let (r, g, b) = at(2 * x, 2 * y);
            u[y * cw + x] = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8;
            v[y * cw + x] = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8;
        }
    }
    Backdrop::Image {
        width: w,
        height: h,
        y: y_plane,
        u,
        v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("header");
            writer.write_image_data(rgb).expect("data");
        }
        out
    }

    #[test]
    fn a_picture_becomes_a_backdrop_of_the_camera_size() {
        // 4×2: left half red, right half blue.
        let rgb = [255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255].repeat(2);
        let picture = decode(&png_bytes(4, 2, &rgb)).expect("decodes");
        assert_eq!((picture.width, picture.height), (4, 2));
        let Backdrop::Image {
            width,
            height,
            y,
            u,
            v,
        } = backdrop(&picture, 64, 32)
        else {
            panic!("an image backdrop");
        };
        assert_eq!(
            (width, height, y.len(), u.len()),
            (64, 32, 64 * 32, 32 * 16)
        );
        // Red on the left (V high), blue on the right (U high).
        assert!(v[0] > 200 && u[31] > 200, "v {} u {}", v[0], u[31]);
    }

    #[test]
    fn damaged_huge_or_unsupported_files_are_refused() {
        assert_eq!(decode(b"GIF89a...."), Err(ImageError::Unsupported));
        assert_eq!(
            decode(b"\xff\xd8\xff\xe0 JFIF"),
            Err(ImageError::Unsupported)
        );
        let good = png_bytes(2, 2, &[0; 12]);
        assert!(matches!(
            decode(&good[..good.len() - 20]),
            Err(ImageError::Damaged(_))
        ));
        let mut flipped = good.clone();
        flipped[30] ^= 0xff;
        assert!(decode(&flipped).is_err());
        // A header that claims 100000 × 100000 pixels.
        let mut huge = good.clone();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode(&huge).is_err());
    }
}
