//! Virtual backgrounds and face touch-up in the app (V1, V2): the gallery of
//! background pictures in the app's data directory, the choice kept in the
//! settings, and the effects applied to the device preview and the meeting
//! at once. Pictures are checked, stripped of everything but their pixels
//! and kept only in `<data>/backgrounds/`; nothing here is ever uploaded:
//! the camera's pictures are composed on this device and only the result
//! is encoded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use conclave_background::compose::BlurStrength;
use conclave_background::image::{self, Picture};
use conclave_engine::{BackdropChoice, BackgroundOptions, Command, VideoEffects};
use serde::Serialize;
use sha2::Digest as _;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use crate::commands::AppState;
use crate::settings::{self, Settings};

/// The segmentation model the app ships: MediaPipe's landscape selfie
/// segmentation (144×256, made for 16:9 cameras), from the npm package
/// `@mediapipe/selfie_segmentation` (Apache-2.0) the UI's set-up installs.
static MODEL_BYTES: &[u8] = include_bytes!(
    "../../ui/node_modules/@mediapipe/selfie_segmentation/selfie_segmentation_landscape.tflite"
);

/// The event carrying what the preview's effects cost (`EffectsStats` or
/// `null`), once a second while the preview runs.
pub const PREVIEW_EFFECTS_EVENT: &str = "preview-effects";

/// Thumbnails fit in this size.
const THUMBNAIL: (usize, usize) = (160, 90);

/// The model, shared: effects built from the same model reuse its loaded
/// form when only the backdrop changes.
fn model() -> Arc<Vec<u8>> {
    static MODEL: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    MODEL.get_or_init(|| Arc::new(MODEL_BYTES.to_vec())).clone()
}

/// Where the gallery lives: `<data>/backgrounds/`.
pub fn gallery_dir() -> PathBuf {
    settings::data_dir().join("backgrounds")
}

/// A picture of the gallery, as the UI shows it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct BackgroundImage {
    /// The picture's id (a hash of its pixels): `picture:<id>` in the
    /// settings.
    pub id: String,
    /// A small PNG data URL of it. It stays in this app.
    pub thumbnail: String,
}

/// The effects chosen, as the preview thread reads them.
#[derive(Default)]
pub struct PreviewEffects {
    /// Bumped on every change.
    pub version: u64,
    /// The effects.
    pub effects: VideoEffects,
}

/// The effects the device preview applies, changed by the commands below.
pub type PreviewControl = Arc<Mutex<PreviewEffects>>;

/// Whether an id names a gallery picture (16 hex digits; never a path).
fn valid_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn picture_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.png"))
}

fn thumbnail_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.thumb.png"))
}

fn data_url(png: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The gallery's pictures, oldest first. A picture whose thumbnail cannot
/// be read is left out (and logged).
pub fn list(dir: &Path) -> Vec<BackgroundImage> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".png")?;
            (valid_id(id)).then(|| {
                let made = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (made, id.to_string())
            })
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .filter_map(|(_, id)| match std::fs::read(thumbnail_path(dir, &id)) {
            Ok(png) => Some(BackgroundImage {
                thumbnail: data_url(&png),
                id,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "a background's thumbnail is unreadable");
                None
            }
        })
        .collect()
}

/// Adds the PNG or JPEG file at `source` to the gallery: checked first (a
/// damaged, huge or unsupported file is refused with the reason and the
/// gallery stays as it was), then stored as PNG of its pixels only (no
/// text, location or other metadata of the original file) with a
/// thumbnail.
pub fn add(dir: &Path, source: &Path) -> Result<BackgroundImage, String> {
    let size = std::fs::metadata(source)
        .map_err(|e| format!("Could not read the picture: {e}"))?
        .len();
    if size > image::MAX_BYTES as u64 {
        return Err(capitalised(&image::ImageError::TooLarge.to_string()));
    }
    let bytes = std::fs::read(source).map_err(|e| format!("Could not read the picture: {e}"))?;
    let picture = image::decode(&bytes).map_err(|e| match e {
        image::ImageError::Damaged(detail) => {
            tracing::warn!(%detail, "a damaged background picture");
            "The picture is damaged (not a complete PNG or JPEG file).".to_string()
        }
        other => capitalised(&other.to_string()),
    })?;
    let stored = image::encode_png(&picture).map_err(|e| capitalised(&e.to_string()))?;
    let thumb = image::encode_png(&image::thumbnail(&picture, THUMBNAIL.0, THUMBNAIL.1))
        .map_err(|e| capitalised(&e.to_string()))?;
    let digest = sha2::Sha256::digest(&stored);
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(dir).map_err(|e| format!("Could not create the gallery: {e}"))?;
    // Written under temporary names and renamed, so a crash never leaves a
    // half picture in the gallery.
    for (path, data) in [
        (thumbnail_path(dir, &id), &thumb),
        (picture_path(dir, &id), &stored),
    ] {
        let part = path.with_extension("part");
        std::fs::write(&part, data)
            .and_then(|()| std::fs::rename(&part, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&part);
                format!("Could not store the picture: {e}")
            })?;
    }
    Ok(BackgroundImage {
        id,
        thumbnail: data_url(&thumb),
    })
}

/// Removes a picture from the gallery.
pub fn remove(dir: &Path, id: &str) -> Result<(), String> {
    if !valid_id(id) {
        return Err("No such background picture.".into());
    }
    match std::fs::remove_file(picture_path(dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("Could not remove the picture: {e}")),
    }
    let _ = std::fs::remove_file(thumbnail_path(dir, id));
    Ok(())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The effects the settings ask for. A background picture that is gone or
/// unreadable is an error (the caller decides whether to go on without).
pub fn effects_of(stored: &Settings, dir: &Path) -> Result<VideoEffects, String> {
    let background = if stored.background_enabled {
        let backdrop = match stored.background.as_str() {
            "blur-light" => BackdropChoice::Blur(BlurStrength::Light),
            "" | "blur" => BackdropChoice::Blur(BlurStrength::Strong),
            other => {
                let id = other
                    .strip_prefix("picture:")
                    .filter(|id| valid_id(id))
                    .ok_or("Unknown background.")?;
                let bytes = std::fs::read(picture_path(dir, id))
                    .map_err(|_| "That background picture is no longer in the gallery.")?;
                let picture: Picture =
                    image::decode(&bytes).map_err(|e| capitalised(&e.to_string()))?;
                BackdropChoice::Picture(Arc::new(picture))
            }
        };
        Some(BackgroundOptions {
            model: model(),
            backdrop,
        })
    } else {
        None
    };
    Ok(VideoEffects {
        background,
        touch_up: stored.touch_up,
    })
}

/// The effects to join with: as the settings say, or without the
/// background when its picture cannot be used (logged).
pub fn effects_for_join(stored: &Settings) -> VideoEffects {
    effects_of(stored, &gallery_dir()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "virtual background off");
        VideoEffects {
            background: None,
            touch_up: stored.touch_up,
        }
    })
}

/// Hands new effects to the preview (if one runs, from its next picture).
fn apply_to_preview(control: &PreviewControl, effects: VideoEffects) {
    if let Ok(mut p) = control.lock() {
        p.version += 1;
        p.effects = effects;
    }
}

/// The pictures of the background gallery.
#[tauri::command]
pub fn list_backgrounds() -> Vec<BackgroundImage> {
    list(&gallery_dir())
}

/// Adds a PNG or JPEG picture to the gallery: the one at `path`, or
/// (`None`) one the user picks in a file dialog. `None` back if the user cancelled.
#[tauri::command]
pub async fn add_background(
    app: AppHandle,
    path: Option<String>,
) -> Result<Option<BackgroundImage>, String> {
    let source = match path {
        Some(p) => PathBuf::from(p),
        None => {
            let dialog = app
                .dialog()
                .file()
                .set_title("Background picture")
                .add_filter(
                    "Pictures (PNG, JPEG)",
                    &["png", "PNG", "jpg", "JPG", "jpeg", "JPEG"],
                );
            let picked = tauri::async_runtime::spawn_blocking(move || dialog.blocking_pick_file())
                .await
                .map_err(|e| e.to_string())?;
            match picked.and_then(|p| p.into_path().ok()) {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    tauri::async_runtime::spawn_blocking(move || add(&gallery_dir(), &source))
        .await
        .map_err(|e| e.to_string())?
        .map(Some)
}

/// Removes a picture from the gallery; if it was the chosen background,
/// the background becomes the strong blur (applied at once).
#[tauri::command]
pub async fn remove_background(state: State<'_, AppState>, id: String) -> Result<(), String> {
    let dir = gallery_dir();
    remove(&dir, &id)?;
    let stored = settings::load();
    if stored.background == format!("picture:{id}") {
        set_effects(
            &state,
            "blur".into(),
            stored.background_enabled,
            stored.touch_up,
        )
        .await?;
    }
    Ok(())
}

/// Chooses the camera effects: `background` is `blur`, `blur-light` or
/// `picture:<id>`, on if `enabled`; `touch_up` smooths skin and corrects
/// light. Kept in the settings and applied at once to the preview and the
/// meeting.
#[tauri::command]
pub async fn set_video_effects(
    state: State<'_, AppState>,
    background: String,
    enabled: bool,
    touch_up: bool,
) -> Result<(), String> {
    set_effects(&state, background, enabled, touch_up).await
}

async fn set_effects(
    state: &AppState,
    background: String,
    enabled: bool,
    touch_up: bool,
) -> Result<(), String> {
    let mut stored = settings::load();
    stored.background = background;
    stored.background_enabled = enabled;
    stored.touch_up = touch_up;
    let dir = gallery_dir();
    let effects = tauri::async_runtime::spawn_blocking({
        let stored = stored.clone();
        move || effects_of(&stored, &dir)
    })
    .await
    .map_err(|e| e.to_string())??;
    settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
    apply_to_preview(&state.preview_effects, effects.clone());
    if let Some(meeting) = state.meeting().await {
        meeting.command(Command::SetVideoEffects { effects });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
        let picture = Picture {
            width: width as usize,
            height: height as usize,
            rgb: rgb.repeat((width * height) as usize),
        };
        image::encode_png(&picture).expect("encodes")
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("conclave-gallery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn pictures_are_added_listed_and_removed() {
        let dir = scratch("add");
        let gallery = dir.join("backgrounds");
        let source = dir.join("beach.png");
        std::fs::write(&source, png(320, 180, [10, 120, 200])).expect("write");
        let added = add(&gallery, &source).expect("added");
        assert!(valid_id(&added.id));
        assert!(added.thumbnail.starts_with("data:image/png;base64,"));
        let listed = list(&gallery);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, added.id);
        // The stored thumbnail fits the gallery's size.
        let thumb =
            image::decode(&std::fs::read(thumbnail_path(&gallery, &added.id)).expect("thumb"))
                .expect("decodes");
        assert_eq!((thumb.width, thumb.height), (160, 90));
        let stored = Settings {
            background: format!("picture:{}", added.id),
            background_enabled: true,
            ..Settings::default()
        };
        let effects = effects_of(&stored, &gallery).expect("effects");
        assert!(matches!(
            effects.background.map(|b| b.backdrop),
            Some(BackdropChoice::Picture(_))
        ));
        remove(&gallery, &added.id).expect("removed");
        assert!(list(&gallery).is_empty());
        assert!(
            effects_of(&stored, &gallery).is_err(),
            "a removed picture is gone"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_refused_and_the_gallery_stays_intact() {
        let dir = scratch("bad");
        let gallery = dir.join("backgrounds");
        let good = dir.join("good.png");
        std::fs::write(&good, png(64, 36, [200, 30, 30])).expect("write");
        let kept = add(&gallery, &good).expect("added");
        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("anim.gif", b"GIF89a\x01\x00\x01\x00".to_vec(), "only png"),
            (
                "photo.jpg",
                b"\xff\xd8\xff\xe0\x00\x10JFIF".to_vec(),
                "damaged",
            ),
            ("cut.png", png(64, 36, [1, 2, 3])[..40].to_vec(), "damaged"),
            (
                "huge.png",
                png(image::MAX_SIDE + 1, 1, [0, 0, 0]),
                "too large",
            ),
        ];
        for (name, bytes, why) in cases {
            let path = dir.join(name);
            std::fs::write(&path, bytes).expect("write");
            let error = add(&gallery, &path).expect_err(name);
            assert!(error.to_lowercase().contains(why), "{name}: {error}");
        }
        assert!(add(&gallery, &dir.join("missing.png")).is_err());
        let listed = list(&gallery);
        assert_eq!(listed.len(), 1, "the gallery is as it was");
        assert_eq!(listed[0].id, kept.id);
        let leftovers = std::fs::read_dir(&gallery).expect("gallery").count();
        assert_eq!(leftovers, 2, "only the good picture and its thumbnail");
        // Ids are never paths.
        assert!(remove(&gallery, "../settings").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn metadata_of_the_original_file_is_not_kept() {
        let dir = scratch("meta");
        let gallery = dir.join("backgrounds");
        // A PNG with a text chunk naming a place.
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 8, 8);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder
                .add_text_chunk("Location".into(), "secret-place-canary".into())
                .expect("text");
            let mut writer = encoder.write_header().expect("header");
            writer.write_image_data(&[7u8; 8 * 8 * 3]).expect("data");
        }
        let source = dir.join("with-text.png");
        std::fs::write(&source, &bytes).expect("write");
        let added = add(&gallery, &source).expect("added");
        let stored = std::fs::read(picture_path(&gallery, &added.id)).expect("stored");
        assert!(!stored
            .windows(b"secret-place-canary".len())
            .any(|w| w == b"secret-place-canary"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_jpeg_photo_is_kept_as_its_pixels_in_png() {
        let dir = scratch("jpeg");
        let gallery = dir.join("backgrounds");
        let source = dir.join("beach.jpg");
        std::fs::write(
            &source,
            include_bytes!("../../crates/background/testdata/beach-64x36.jpg"),
        )
        .expect("write");
        let added = add(&gallery, &source).expect("a JPEG is added");
        let stored = std::fs::read(picture_path(&gallery, &added.id)).expect("stored");
        assert!(stored.starts_with(b"\x89PNG"), "kept as PNG");
        let picture = image::decode(&stored).expect("decodes");
        assert_eq!((picture.width, picture.height), (64, 36));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
