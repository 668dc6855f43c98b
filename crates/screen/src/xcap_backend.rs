//! Windows and macOS: screens and windows through `xcap` (on Windows its
//! Windows Graphics Capture and GDI paths, on macOS CoreGraphics). Compiled
//! only on those systems, and on Linux with the `xcap-check` feature so
//! that the same code is type-checked here; never run here (no Windows or
//! macOS machine), see docs/screen-sharing.md.
//!
//! Sources are kept by id and looked up again for each picture: xcap's
//! handles are not `Send` on every system, and a window that closed is
//! then simply not found ([`ScreenError::Gone`]).

use std::time::Duration;

use conclave_media::{PixelLayout, VideoFrame};

use crate::{ScreenError, ScreenSource, SourceInfo, SourceKind};

fn failed(e: xcap::XCapError) -> ScreenError {
    ScreenError::Failed(e.to_string())
}

/// Every monitor and every window that is not minimised, with a title.
pub fn list_sources() -> Result<Vec<SourceInfo>, ScreenError> {
    let mut sources = Vec::new();
    for monitor in xcap::Monitor::all().map_err(failed)? {
        sources.push(SourceInfo {
            id: format!("screen:{}", monitor.id().map_err(failed)?),
            name: monitor
                .friendly_name()
                .or_else(|_| monitor.name())
                .unwrap_or_else(|_| "Screen".into()),
            kind: SourceKind::Screen,
            width: monitor.width().unwrap_or(0),
            height: monitor.height().unwrap_or(0),
        });
    }
    for window in xcap::Window::all().map_err(failed)? {
        if window.is_minimized().unwrap_or(true) {
            continue;
        }
        let title = window.title().unwrap_or_default();
        if title.trim().is_empty() {
            continue;
        }
        sources.push(SourceInfo {
            id: format!("window:{}", window.id().map_err(failed)?),
            name: title,
            kind: SourceKind::Window,
            width: window.width().unwrap_or(0),
            height: window.height().unwrap_or(0),
        });
    }
    Ok(sources)
}

/// A monitor or window, by its xcap id.
pub struct XcapSource {
    info: SourceInfo,
    id: u32,
}

impl XcapSource {
    /// Opens `screen:N`, `window:N`, or (`None`) the first monitor.
    pub fn open(id: Option<&str>) -> Result<Self, ScreenError> {
        let sources = list_sources()?;
        let info = match id {
            None => sources.into_iter().find(|s| s.kind == SourceKind::Screen),
            Some(id) => sources.into_iter().find(|s| s.id == id),
        }
        .ok_or_else(|| ScreenError::Gone(id.unwrap_or("the screen").to_owned()))?;
        let number = info
            .id
            .split_once(':')
            .and_then(|(_, n)| n.parse().ok())
            .ok_or_else(|| ScreenError::Failed(format!("not a source id: {}", info.id)))?;
        Ok(XcapSource { info, id: number })
    }

    fn picture(&self) -> Result<xcap::image::RgbaImage, ScreenError> {
        match self.info.kind {
            SourceKind::Screen => xcap::Monitor::all()
                .map_err(failed)?
                .into_iter()
                .find(|m| m.id().is_ok_and(|id| id == self.id))
                .ok_or_else(|| ScreenError::Gone(self.info.name.clone()))?
                .capture_image()
                .map_err(failed),
            SourceKind::Window => xcap::Window::all()
                .map_err(failed)?
                .into_iter()
                .find(|w| w.id().is_ok_and(|id| id == self.id))
                .ok_or_else(|| ScreenError::Gone(self.info.name.clone()))?
                .capture_image()
                .map_err(failed),
        }
    }
}

impl ScreenSource for XcapSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn capture(&mut self, captured: Duration) -> Result<VideoFrame, ScreenError> {
        let image = self.picture()?;
        let (width, height) = (image.width() as usize, image.height() as usize);
        VideoFrame::from_packed(
            PixelLayout::Rgba,
            width,
            height,
            None,
            image.as_raw(),
            captured,
        )
        .map_err(|e| ScreenError::Failed(e.to_string()))
    }
}
