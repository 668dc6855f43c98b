//! Wayland screen and window capture: the ScreenCast portal picks the
//! source (the user chooses in the desktop's dialog, or a restore token
//! repeats an earlier choice), PipeWire delivers its pictures.
//!
//! The portal and PipeWire run on a thread of their own: the dialog can
//! take as long as the user likes, and nothing waits for it. Until the
//! first picture, [`ScreenSource::capture`] says [`ScreenError::NotYet`];
//! once the user declines, or the desktop ends the cast, it says
//! [`ScreenError::Gone`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_media::{PixelLayout, VideoFrame};
use pipewire as pw;
use pw::properties::properties;
use pw::spa;
use pw::spa::param::video::VideoFormat;
use pw::spa::pod::Pod;

use crate::portal::{self, Cast};
use crate::{ScreenError, ScreenSource, SourceInfo, SourceKind};

/// The id of the source the portal chooses (`portal:TOKEN` repeats an
/// earlier choice).
pub const PORTAL_SOURCE: &str = "portal";

/// Whether screens are shared through the portal here: a Wayland session
/// whose desktop has the ScreenCast portal.
pub fn in_use() -> bool {
    std::env::var_os("WAYLAND_DISPLAY").is_some() && portal::available()
}

/// What the thread shares with the source.
#[derive(Default)]
struct Shared {
    /// The latest picture.
    frame: Option<VideoFrame>,
    /// Set once the cast cannot go on.
    ended: Option<ScreenError>,
    /// Screen or window, as the portal said.
    kind: Option<SourceKind>,
    /// To share the same thing next time without asking.
    restore_token: Option<String>,
}

/// A screen or window shared through the portal.
pub struct PortalSource {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl PortalSource {
    /// Asks the desktop for a source (on a thread; returns at once).
    pub fn open(restore_token: Option<String>) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_shared, thread_stop) = (shared.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("screen-cast".into())
            .spawn(move || {
                let result = portal::start(restore_token.as_deref()).and_then(|cast| {
                    if let Ok(mut s) = thread_shared.lock() {
                        s.kind = cast.kind;
                        s.restore_token = cast.restore_token.clone();
                    }
                    if thread_stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    receive(cast, &thread_shared, &thread_stop)
                });
                let ended = match result {
                    Ok(()) => ScreenError::Gone("the desktop ended the screen cast".into()),
                    Err(e) => e,
                };
                if let Ok(mut s) = thread_shared.lock() {
                    s.ended = Some(ended);
                }
            });
        if let Err(e) = spawned {
            if let Ok(mut s) = shared.lock() {
                s.ended = Some(ScreenError::Failed(e.to_string()));
            }
        }
        PortalSource { shared, stop }
    }
}

impl Drop for PortalSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl ScreenSource for PortalSource {
    fn info(&self) -> SourceInfo {
        let shared = self.shared.lock().ok();
        let kind = shared
            .as_ref()
            .and_then(|s| s.kind)
            .unwrap_or(SourceKind::Screen);
        let (width, height) = shared
            .as_ref()
            .and_then(|s| s.frame.as_ref())
            .map_or((0, 0), |f| (f.width as u32, f.height as u32));
        SourceInfo {
            id: PORTAL_SOURCE.into(),
            name: match kind {
                SourceKind::Screen => "Screen chosen in the system's dialog".into(),
                SourceKind::Window => "Window chosen in the system's dialog".into(),
            },
            kind,
            width,
            height,
        }
    }

    fn capture(&mut self, captured: Duration) -> Result<VideoFrame, ScreenError> {
        let shared = self
            .shared
            .lock()
            .map_err(|_| ScreenError::Failed("the screen cast thread failed".into()))?;
        if let Some(e) = &shared.ended {
            return Err(e.clone());
        }
        let mut frame = shared.frame.clone().ok_or(ScreenError::NotYet)?;
        frame.captured = captured;
        Ok(frame)
    }

    fn restore_token(&self) -> Option<String> {
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.restore_token.clone())
    }
}

/// The stream's negotiated format, kept between callbacks.
struct Negotiated {
    format: spa::param::video::VideoInfoRaw,
    shared: Arc<Mutex<Shared>>,
}

/// Reads the cast's stream until it ends or `stop` is set.
fn receive(
    cast: Cast,
    shared: &Arc<Mutex<Shared>>,
    stop: &Arc<AtomicBool>,
) -> Result<(), ScreenError> {
    let failed = |what: &str, e: pw::Error| ScreenError::Failed(format!("PipeWire {what}: {e}"));
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(|e| failed("loop", e))?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(|e| failed("context", e))?;
    let remote = cast
        .remote
        .try_clone()
        .map_err(|e| ScreenError::Failed(e.to_string()))?;
    let core = context
        .connect_fd_rc(remote, None)
        .map_err(|e| failed("connection", e))?;
    let stream = pw::stream::StreamRc::new(
        core,
        "conclave-screen",
        properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(|e| failed("stream", e))?;

    let ended_loop = mainloop.clone();
    let ended_shared = shared.clone();
    let _listener = stream
        .add_local_listener_with_user_data(Negotiated {
            format: Default::default(),
            shared: shared.clone(),
        })
        .state_changed(move |_, _, old, new| match new {
            pw::stream::StreamState::Error(e) => {
                if let Ok(mut s) = ended_shared.lock() {
                    s.ended = Some(ScreenError::Failed(format!("the screen cast failed: {e}")));
                }
                ended_loop.quit();
            }
            pw::stream::StreamState::Unconnected
                if matches!(
                    old,
                    pw::stream::StreamState::Streaming | pw::stream::StreamState::Paused
                ) =>
            {
                ended_loop.quit();
            }
            _ => {}
        })
        .param_changed(|_, negotiated, id, param| {
            let Some(param) = param else { return };
            if id != pw::spa::param::ParamType::Format.as_raw() {
                return;
            }
            let _ = negotiated.format.parse(param);
        })
        .process(|stream, negotiated| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let layout = match negotiated.format.format() {
                VideoFormat::BGRx | VideoFormat::BGRA => PixelLayout::Bgra,
                VideoFormat::RGBx | VideoFormat::RGBA => PixelLayout::Rgba,
                _ => return,
            };
            let size = negotiated.format.size();
            let datas = buffer.datas_mut();
            let Some(data) = datas.first_mut() else {
                return;
            };
            let chunk = data.chunk();
            let (offset, length) = (chunk.offset() as usize, chunk.size() as usize);
            let stride = usize::try_from(chunk.stride()).ok().filter(|s| *s > 0);
            let Some(bytes) = data.data() else { return };
            let Some(picture) = bytes.get(offset..offset.saturating_add(length)) else {
                return;
            };
            // A buffer that does not hold the whole picture (a damage-only
            // update, a short chunk) is skipped.
            if let Ok(frame) = VideoFrame::from_packed(
                layout,
                size.width as usize,
                size.height as usize,
                stride,
                picture,
                Duration::ZERO,
            ) {
                if let Ok(mut s) = negotiated.shared.lock() {
                    s.frame = Some(frame);
                }
            }
        })
        .register()
        .map_err(|e| failed("listener", e))?;

    let format = video_formats()?;
    let mut params = [
        Pod::from_bytes(&format).ok_or_else(|| ScreenError::Failed("PipeWire format".into()))?
    ];
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(cast.node),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .map_err(|e| failed("connect", e))?;

    // The stop flag is looked at ten times a second.
    let stop_loop = mainloop.clone();
    let stop = stop.clone();
    let timer = mainloop.loop_().add_timer(move |_| {
        if stop.load(Ordering::Relaxed) {
            stop_loop.quit();
        }
    });
    let tick = Duration::from_millis(100);
    let _ = timer.update_timer(Some(tick), Some(tick));
    mainloop.run();
    drop(cast);
    Ok(())
}

/// The formats we take: raw video, 32-bit RGB in either order, any size
/// and rate.
fn video_formats() -> Result<Vec<u8>, ScreenError> {
    let object = pw::spa::pod::object!(
        pw::spa::utils::SpaTypes::ObjectParamFormat,
        pw::spa::param::ParamType::EnumFormat,
        pw::spa::pod::property!(
            pw::spa::param::format::FormatProperties::MediaType,
            Id,
            pw::spa::param::format::MediaType::Video
        ),
        pw::spa::pod::property!(
            pw::spa::param::format::FormatProperties::MediaSubtype,
            Id,
            pw::spa::param::format::MediaSubtype::Raw
        ),
        pw::spa::pod::property!(
            pw::spa::param::format::FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA
        ),
        pw::spa::pod::property!(
            pw::spa::param::format::FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            pw::spa::utils::Rectangle {
                width: 1920,
                height: 1080
            },
            pw::spa::utils::Rectangle {
                width: 1,
                height: 1
            },
            pw::spa::utils::Rectangle {
                width: 8192,
                height: 8192
            }
        ),
        pw::spa::pod::property!(
            pw::spa::param::format::FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            pw::spa::utils::Fraction { num: 30, denom: 1 },
            pw::spa::utils::Fraction { num: 0, denom: 1 },
            pw::spa::utils::Fraction { num: 240, denom: 1 }
        ),
    );
    pw::spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &pw::spa::pod::Value::Object(object),
    )
    .map(|(cursor, _)| cursor.into_inner())
    .map_err(|e| ScreenError::Failed(format!("PipeWire format: {e:?}")))
}
