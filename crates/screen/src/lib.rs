//! `conclave-screen`: what a participant shares — a screen or a window —
//! captured as I420 frames with the cursor drawn in.
//!
//! Owns: the [`ScreenSource`] trait, the list of what can be shared with
//! thumbnails, the X11 backend ([`x11`]: MIT-SHM through `x11rb`, XFixes for
//! the cursor, RandR for monitors), the Wayland backend ([`wayland`]: the
//! ScreenCast portal, with restore tokens, and PipeWire), and
//! [`ScreenCamera`], which paces a source like a camera for the video
//! sender: 5 frames/s while nothing changes, 15 when something does, 30
//! under sustained motion.
//!
//! In a Wayland session with the portal, the one source listed is the
//! portal's (the desktop's dialog lists the screens and windows). Windows
//! and macOS go through `xcap` ([`xcap_backend`], compiled only there, and
//! type-checked on Linux with the `xcap-check` feature).
//!
//! Must not: open network connections, keep or write pictures anywhere.

use std::time::{Duration, Instant};

use conclave_media::{Camera, DeviceError, DeviceInfo, DeviceKind, VideoFrame};

#[cfg(all(unix, not(target_os = "macos")))]
pub mod x11;

#[cfg(any(windows, target_os = "macos", feature = "xcap-check"))]
pub mod xcap_backend;

#[cfg(target_os = "linux")]
mod portal;
#[cfg(target_os = "linux")]
pub mod wayland;

/// A screen or a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A whole monitor.
    Screen,
    /// One application window.
    Window,
}

/// Something that can be shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Stable while the source exists: `screen:N` or `window:0x…`.
    pub id: String,
    /// Name shown to the user (monitor name, window title).
    pub name: String,
    /// Screen or window.
    pub kind: SourceKind,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Why capturing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// No capture backend for this system or session.
    #[error("screen capture is not available: {0}")]
    Unavailable(String),
    /// The screen or window went away (closed, unplugged).
    #[error("the shared source is gone: {0}")]
    Gone(String),
    /// The display server refused or failed.
    #[error("screen capture failed: {0}")]
    Failed(String),
    /// No picture yet (the user is still choosing what to share).
    #[error("no picture yet")]
    NotYet,
}

/// A screen or window that can be captured.
pub trait ScreenSource: Send {
    /// What it is.
    fn info(&self) -> SourceInfo;
    /// Its picture now, cursor included; `captured` is stamped on the frame.
    fn capture(&mut self, captured: Duration) -> Result<VideoFrame, ScreenError>;
    /// A token that shares the same source next time without asking the
    /// user again, where the system has such a thing (the portal).
    fn restore_token(&self) -> Option<String> {
        None
    }
}

/// Whether `display` names the portal's source: sharing through the
/// desktop's dialog instead of an X display.
#[cfg(target_os = "linux")]
fn use_portal(display: Option<&str>) -> bool {
    display.is_none() && wayland::in_use()
}

/// What can be shared on `display` (`None`: the session's own).
pub fn list_sources(display: Option<&str>) -> Result<Vec<SourceInfo>, ScreenError> {
    #[cfg(target_os = "linux")]
    if use_portal(display) {
        return Ok(vec![SourceInfo {
            id: wayland::PORTAL_SOURCE.into(),
            name: "Choose a screen or window…".into(),
            kind: SourceKind::Screen,
            width: 0,
            height: 0,
        }]);
    }
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        x11::list_sources(display)
    }
    #[cfg(any(windows, target_os = "macos"))]
    {
        let _ = display;
        xcap_backend::list_sources()
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = display;
        Err(ScreenError::Unavailable(
            "no screen capture backend for this system yet".into(),
        ))
    }
}

/// Opens a source by id (`None`: the first screen) on `display`. Through
/// the portal (`portal`, or `portal:TOKEN` to repeat a choice), the source
/// returns at once and shows pictures once the user has chosen.
pub fn open(display: Option<&str>, id: Option<&str>) -> Result<Box<dyn ScreenSource>, ScreenError> {
    #[cfg(target_os = "linux")]
    {
        let portal_id = id.and_then(|i| i.strip_prefix(wayland::PORTAL_SOURCE));
        let wants_portal = match portal_id {
            Some(rest) => rest.is_empty() || rest.starts_with(':'),
            None => id.is_none() && use_portal(display),
        };
        if wants_portal {
            let token = portal_id
                .and_then(|rest| rest.strip_prefix(':'))
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            return Ok(Box::new(wayland::PortalSource::open(token)));
        }
    }
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        Ok(Box::new(x11::X11Source::open(display, id)?))
    }
    #[cfg(any(windows, target_os = "macos"))]
    {
        let _ = display;
        Ok(Box::new(xcap_backend::XcapSource::open(id)?))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (display, id);
        Err(ScreenError::Unavailable(
            "no screen capture backend for this system yet".into(),
        ))
    }
}

/// A small picture of a source for the picker, fitted within
/// `max_width` x `max_height`. The portal's source has none (what it shows
/// is chosen in the desktop's dialog).
pub fn thumbnail(
    display: Option<&str>,
    id: &str,
    max_width: usize,
    max_height: usize,
) -> Result<VideoFrame, ScreenError> {
    if id.starts_with("portal") {
        return Err(ScreenError::Unavailable(
            "the system's dialog shows what can be shared".into(),
        ));
    }
    let mut source = open(display, Some(id))?;
    let frame = source.capture(Duration::ZERO)?;
    let (w, h) = frame.fit_within(max_width, max_height);
    Ok(frame.scaled(w, h))
}

/// Paces a [`ScreenSource`] like a camera: resolution over frame rate, as
/// shared content wants. 5 frames/s while the picture stays the same, 15
/// once it changes, 30 after a second of continuous change; a frame that is
/// the same as the last is not handed on (nothing new to encode).
pub struct ScreenCamera {
    source: Box<dyn ScreenSource>,
    epoch: Instant,
    next: Instant,
    last_signature: Option<u64>,
    /// Consecutive captures that differed from the one before.
    changing: u32,
    /// Keeps handing on unchanged frames once a second (late joiners,
    /// lost packets).
    last_sent: Option<Instant>,
}

impl ScreenCamera {
    /// Paces `source`; frames' `captured` counts from `epoch`.
    pub fn new(source: Box<dyn ScreenSource>, epoch: Instant) -> Self {
        ScreenCamera {
            source,
            epoch,
            next: epoch,
            last_signature: None,
            changing: 0,
            last_sent: None,
        }
    }

    /// The wait before the next capture, given how the picture moves.
    fn interval(&self) -> Duration {
        match self.changing {
            0 => Duration::from_millis(200),
            1..=14 => Duration::from_millis(66),
            _ => Duration::from_millis(33),
        }
    }
}

/// A cheap fingerprint of a frame: a sparse sample of luma.
fn signature(frame: &VideoFrame) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let step = (frame.y.len() / 4096).max(1);
    for p in frame.y.iter().step_by(step) {
        hash = (hash ^ u64::from(*p)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^ ((frame.width as u64) << 32 | frame.height as u64)
}

impl Camera for ScreenCamera {
    fn info(&self) -> DeviceInfo {
        let info = self.source.info();
        DeviceInfo {
            id: info.id,
            name: info.name,
            kind: DeviceKind::Camera,
            is_default: false,
        }
    }

    fn poll_frame(&mut self, now: Instant) -> Result<Option<VideoFrame>, DeviceError> {
        if now < self.next {
            return Ok(None);
        }
        let frame = match self
            .source
            .capture(now.saturating_duration_since(self.epoch))
        {
            Ok(frame) => frame,
            Err(ScreenError::NotYet) => {
                self.next = now + Duration::from_millis(50);
                return Ok(None);
            }
            Err(ScreenError::Gone(m)) => return Err(DeviceError::Gone(m)),
            Err(other) => return Err(DeviceError::Io(other.to_string())),
        };
        let sig = signature(&frame);
        let changed = self.last_signature != Some(sig);
        self.last_signature = Some(sig);
        self.changing = if changed {
            self.changing.saturating_add(1)
        } else {
            0
        };
        self.next = now + self.interval();
        let refresh = self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if changed || refresh {
            self.last_sent = Some(now);
            Ok(Some(frame))
        } else {
            Ok(None)
        }
    }

    fn next_frame_at(&self) -> Instant {
        self.next
    }

    fn restore_token(&self) -> Option<String> {
        self.source.restore_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose picture changes when told to.
    struct Fake {
        frame: VideoFrame,
    }

    impl ScreenSource for Fake {
        fn info(&self) -> SourceInfo {
            SourceInfo {
                id: "screen:0".into(),
                name: "Fake".into(),
                kind: SourceKind::Screen,
                width: 64,
                height: 48,
            }
        }
        fn capture(&mut self, captured: Duration) -> Result<VideoFrame, ScreenError> {
            let mut f = self.frame.clone();
            f.captured = captured;
            Ok(f)
        }
    }

    #[test]
    fn still_pictures_go_slowly_and_changes_speed_up() {
        let t0 = Instant::now();
        let mut cam = ScreenCamera::new(
            Box::new(Fake {
                frame: VideoFrame::black(64, 48),
            }),
            t0,
        );
        // The first frame goes out; then a still picture waits 200 ms and
        // is not handed on again within the second.
        assert!(cam.poll_frame(t0).expect("polls").is_some());
        let next = cam.next_frame_at();
        assert_eq!(next - t0, Duration::from_millis(66));
        assert!(cam.poll_frame(next).expect("polls").is_none());
        assert_eq!(cam.next_frame_at() - next, Duration::from_millis(200));
        // Once a second, even a still picture is sent.
        let later = t0 + Duration::from_millis(1100);
        assert!(cam.poll_frame(later).expect("polls").is_some());
    }

    #[test]
    fn the_signature_sees_changes() {
        let a = VideoFrame::black(320, 240);
        let mut b = a.clone();
        for p in b.y.iter_mut().take(5000) {
            *p = 200;
        }
        assert_ne!(signature(&a), signature(&b));
        assert_eq!(signature(&a), signature(&a.clone()));
    }
}
