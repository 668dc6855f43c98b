//! Background pictures: a PNG or JPEG file the user chose, checked and
//! turned into I420 at the camera's size. A damaged, huge or unsupported file gives a
//! clear error and nothing else happens.

use crate::compose::Backdrop;

/// The largest picture accepted, in pixels per side.
pub const MAX_SIDE: u32 = 8192;
/// The largest file accepted, in bytes.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why a background picture cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Neither PNG nor JPEG (other formats are not supported).
    #[error("only PNG and JPEG pictures can be used as a background")]
    Unsupported,
    /// A file that cannot be read.
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
    if bytes.starts_with(b"\xff\xd8\xff") {
        return decode_jpeg(bytes);
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

/// Decodes a JPEG file's bytes (baseline or progressive; grey, YCbCr or
/// CMYK, all to RGB). The size is checked before any pixel is decoded.
fn decode_jpeg(bytes: &[u8]) -> Result<Picture, ImageError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| match e {
        zune_jpeg::errors::DecodeErrors::LargeDimensions(..) => ImageError::TooLarge,
        other => ImageError::Damaged(other.to_string()),
    })?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| ImageError::Damaged("no picture size".into()))?;
    if width == 0 || height == 0 {
        return Err(ImageError::Damaged("an empty picture".into()));
    }
    let rgb = decoder
        .decode()
        .map_err(|e| ImageError::Damaged(e.to_string()))?;
    if rgb.len() != width * height * 3 {
        return Err(ImageError::Damaged("unexpected pixel data".into()));
    }
    Ok(Picture { width, height, rgb })
}

/// A picture from I420 planes (BT.601 limited range, chroma shared by
/// 2×2 pixels), for saving a video frame as PNG.
pub fn from_i420(width: usize, height: usize, y: &[u8], u: &[u8], v: &[u8]) -> Picture {
    let cw = width.div_ceil(2);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for row in 0..height {
        for col in 0..width {
            let luma = 1.164 * (f32::from(y.get(row * width + col).copied().unwrap_or(16)) - 16.0);
            let c = (row / 2) * cw + col / 2;
            let cb = f32::from(u.get(c).copied().unwrap_or(128)) - 128.0;
            let cr = f32::from(v.get(c).copied().unwrap_or(128)) - 128.0;
            rgb.push((luma + 1.596 * cr).round().clamp(0.0, 255.0) as u8);
            rgb.push((luma - 0.392 * cb - 0.813 * cr).round().clamp(0.0, 255.0) as u8);
            rgb.push((luma + 2.017 * cb).round().clamp(0.0, 255.0) as u8);
        }
    }
    Picture { width, height, rgb }
}

/// The picture shrunk to fit in `max_width × max_height` (keeping its
/// shape; area average), for a gallery's thumbnails. A smaller picture is
/// kept as it is.
pub fn thumbnail(picture: &Picture, max_width: usize, max_height: usize) -> Picture {
    let scale = f64::max(
        picture.width as f64 / max_width.max(1) as f64,
        picture.height as f64 / max_height.max(1) as f64,
    );
    if scale <= 1.0 {
        return picture.clone();
    }
    let width = ((picture.width as f64 / scale).round() as usize).max(1);
    let height = ((picture.height as f64 / scale).round() as usize).max(1);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for ty in 0..height {
        let (y0, y1) = (
            ty * picture.height / height,
            ((ty + 1) * picture.height / height).max(ty * picture.height / height + 1),
        );
        for tx in 0..width {
            let (x0, x1) = (
                tx * picture.width / width,
                ((tx + 1) * picture.width / width).max(tx * picture.width / width + 1),
            );
            let mut sum = [0u64; 3];
            for sy in y0..y1.min(picture.height) {
                for sx in x0..x1.min(picture.width) {
                    let i = (sy * picture.width + sx) * 3;
                    for (s, c) in sum.iter_mut().zip(&picture.rgb[i..i + 3]) {
                        *s += u64::from(*c);
                    }
                }
            }
            let n = ((y1.min(picture.height) - y0) * (x1.min(picture.width) - x0)).max(1) as u64;
            rgb.extend(sum.iter().map(|s| (s / n) as u8));
        }
    }
    Picture { width, height, rgb }
}

/// Encodes a picture as PNG (8-bit RGB).
pub fn encode_png(picture: &Picture) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, picture.width as u32, picture.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ImageError::Damaged(e.to_string()))?;
        writer
            .write_image_data(&picture.rgb)
            .map_err(|e| ImageError::Damaged(e.to_string()))?;
    }
    Ok(out)
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
        assert!(matches!(
            decode(b"\xff\xd8\xff\xe0 JFIF"),
            Err(ImageError::Damaged(_))
        ));
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

    #[test]
    fn frames_and_thumbnails_round_trip_through_png() {
        let rgb: Vec<u8> = (0..40 * 20)
            .flat_map(|i| [(i % 40 * 6) as u8, 90, 200])
            .collect();
        let picture = Picture {
            width: 40,
            height: 20,
            rgb,
        };
        let bytes = encode_png(&picture).expect("encodes");
        assert_eq!(decode(&bytes).expect("decodes"), picture);
        let small = thumbnail(&picture, 10, 10);
        assert_eq!((small.width, small.height), (10, 5));
        assert!((i32::from(small.rgb[1]) - 90).abs() <= 1);
        // Through I420 and back: colours survive within rounding.
        let Backdrop::Image {
            width,
            height,
            y,
            u,
            v,
        } = backdrop(&picture, 40, 20)
        else {
            panic!("an image backdrop");
        };
        let back = from_i420(width, height, &y, &u, &v);
        let worst = back
            .rgb
            .iter()
            .zip(&picture.rgb)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap_or(0);
        assert!(worst <= 12, "worst difference {worst}");
    }

    #[test]
    fn jpeg_pictures_are_read_and_damaged_ones_refused() {
        let bytes = include_bytes!("../testdata/beach-64x36.jpg");
        let picture = decode(bytes).expect("a JPEG decodes");
        assert_eq!((picture.width, picture.height), (64, 36));
        assert_eq!(picture.rgb.len(), 64 * 36 * 3);
        // Sky above (blue), sand below (yellowish).
        let at = |x: usize, y: usize| &picture.rgb[(y * 64 + x) * 3..][..3];
        assert!(at(32, 4)[2] > at(32, 4)[0] + 40, "sky {:?}", at(32, 4));
        assert!(at(32, 32)[0] > at(32, 32)[2] + 40, "sand {:?}", at(32, 32));
        for cut in [10, 100, bytes.len() / 2] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.to_vec();
        for i in (20..flipped.len()).step_by(37) {
            flipped[i] ^= 0x5a;
        }
        let _ = decode(&flipped);
    }
}
