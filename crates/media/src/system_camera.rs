//! Cameras of the OS through `nokhwa` (V4L2 on Linux, Media Foundation on
//! Windows, AVFoundation on macOS; only the Linux path is exercised here).
//!
//! A camera is read on a thread of its own, because reading a frame blocks
//! until the device delivers one; [`SystemCamera::poll_frame`] hands out the
//! newest frame, converted to I420 and fitted within the size asked for.
//! A camera that stops delivering (unplugged, driver gone) reports
//! [`DeviceError::Gone`], and the caller falls back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::device::{Camera, DeviceError, DeviceInfo, DeviceKind};
use crate::frame::{PixelLayout, VideoFrame};

/// How often the capture thread is asked for news.
const POLL: Duration = Duration::from_millis(5);

/// Lists the cameras the OS offers; the first counts as the default.
pub fn list_cameras() -> Result<Vec<DeviceInfo>, DeviceError> {
    let found = nokhwa::query(ApiBackend::Auto).map_err(|e| DeviceError::Io(e.to_string()))?;
    Ok(found
        .iter()
        .enumerate()
        .map(|(i, c)| DeviceInfo {
            id: c.index().as_string(),
            name: c.human_name(),
            kind: DeviceKind::Camera,
            is_default: i == 0,
        })
        .collect())
}

/// A camera of the OS, read on its own thread.
pub struct SystemCamera {
    info: DeviceInfo,
    frames: Receiver<Result<VideoFrame, DeviceError>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    gone: bool,
}

impl SystemCamera {
    /// Opens the camera `wanted` (an id or name from [`list_cameras`];
    /// `None`: the first), asking for about `width` x `height` at `fps`.
    /// Frames larger than that are scaled down; their `captured` counts
    /// from `epoch`.
    pub fn open(
        wanted: Option<&str>,
        width: usize,
        height: usize,
        fps: u32,
        epoch: Instant,
    ) -> Result<Self, DeviceError> {
        let cameras = list_cameras()?;
        let info = match wanted {
            None => cameras.into_iter().next(),
            Some(w) => cameras.into_iter().find(|c| c.id == w || c.name == w),
        }
        .ok_or_else(|| {
            DeviceError::Gone(match wanted {
                Some(w) => format!("no camera “{w}”"),
                None => "no camera".into(),
            })
        })?;
        let index = match info.id.parse::<u32>() {
            Ok(i) => CameraIndex::Index(i),
            Err(_) => CameraIndex::String(info.id.clone()),
        };
        let (tx, frames) = mpsc::sync_channel(2);
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let thread = std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || {
                // The nokhwa camera is not `Send` on every OS: it lives here.
                let mut camera = match open_nokhwa(index, width, height, fps) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while !stop_thread.load(Ordering::Relaxed) {
                    let frame = camera
                        .frame()
                        .map_err(|e| DeviceError::Gone(e.to_string()))
                        .and_then(|buffer| {
                            to_i420(&buffer, epoch.elapsed()).map(|f| {
                                let (w, h) = f.fit_within(width, height);
                                if (w, h) == (f.width, f.height) {
                                    f
                                } else {
                                    f.scaled(w, h)
                                }
                            })
                        });
                    let failed = frame.is_err();
                    match tx.try_send(frame) {
                        Ok(()) | Err(mpsc::TrySendError::Full(_)) => {}
                        Err(mpsc::TrySendError::Disconnected(_)) => break,
                    }
                    if failed {
                        break;
                    }
                }
                let _ = camera.stop_stream();
            })
            .map_err(|e| DeviceError::Io(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(SystemCamera {
                info,
                frames,
                stop,
                thread: Some(thread),
                gone: false,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DeviceError::Io("the camera thread ended at start".into())),
        }
    }
}

/// Opens and starts a camera, preferring MJPEG (full frame rate at 720p on
/// USB 2), then raw YUYV, then whatever it offers.
fn open_nokhwa(
    index: CameraIndex,
    width: usize,
    height: usize,
    fps: u32,
) -> Result<nokhwa::Camera, DeviceError> {
    const READABLE: [FrameFormat; 5] = [
        FrameFormat::MJPEG,
        FrameFormat::YUYV,
        FrameFormat::NV12,
        FrameFormat::GRAY,
        FrameFormat::RAWRGB,
    ];
    let resolution = Resolution::new(
        u32::try_from(width).unwrap_or(1280),
        u32::try_from(height).unwrap_or(720),
    );
    let mut last = None;
    let wishes = [
        RequestedFormatType::Closest(CameraFormat::new(resolution, FrameFormat::MJPEG, fps)),
        RequestedFormatType::Closest(CameraFormat::new(resolution, FrameFormat::YUYV, fps)),
        RequestedFormatType::HighestFrameRate(fps),
        RequestedFormatType::AbsoluteHighestFrameRate,
    ];
    for wish in wishes {
        match nokhwa::Camera::new(
            index.clone(),
            RequestedFormat::with_formats(wish, &READABLE),
        ) {
            Ok(mut camera) => {
                camera
                    .open_stream()
                    .map_err(|e| busy_or_io(&e.to_string()))?;
                return Ok(camera);
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(DeviceError::Unsupported(
        last.unwrap_or_else(|| "no usable format".into()),
    ))
}

fn busy_or_io(message: &str) -> DeviceError {
    if message.to_ascii_lowercase().contains("busy") {
        DeviceError::Busy(message.into())
    } else {
        DeviceError::Io(message.into())
    }
}

/// Converts one camera buffer to I420.
fn to_i420(buffer: &nokhwa::Buffer, captured: Duration) -> Result<VideoFrame, DeviceError> {
    let res = buffer.resolution();
    let (w, h) = (res.width() as usize, res.height() as usize);
    let layout = match buffer.source_frame_format() {
        FrameFormat::YUYV => PixelLayout::Yuyv,
        FrameFormat::NV12 => PixelLayout::Nv12,
        FrameFormat::GRAY => PixelLayout::Gray,
        FrameFormat::RAWRGB => PixelLayout::Rgb,
        FrameFormat::MJPEG | FrameFormat::RAWBGR => {
            let rgb = buffer
                .decode_image::<RgbFormat>()
                .map_err(|e| DeviceError::Unsupported(e.to_string()))?;
            return VideoFrame::from_packed(PixelLayout::Rgb, w, h, None, rgb.as_raw(), captured)
                .map_err(|e| DeviceError::Unsupported(e.to_string()));
        }
    };
    VideoFrame::from_packed(layout, w, h, None, buffer.buffer(), captured)
        .map_err(|e| DeviceError::Unsupported(e.to_string()))
}

impl Camera for SystemCamera {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn poll_frame(&mut self, _now: Instant) -> Result<Option<VideoFrame>, DeviceError> {
        let mut newest = None;
        loop {
            match self.frames.try_recv() {
                Ok(Ok(frame)) => newest = Some(frame),
                Ok(Err(e)) => {
                    self.gone = true;
                    return Err(e);
                }
                Err(TryRecvError::Empty) => return Ok(newest),
                Err(TryRecvError::Disconnected) => {
                    if newest.is_some() {
                        return Ok(newest);
                    }
                    if !self.gone {
                        self.gone = true;
                        return Err(DeviceError::Gone(format!(
                            "the camera “{}” stopped",
                            self.info.name
                        )));
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn next_frame_at(&self) -> Instant {
        Instant::now() + POLL
    }
}

impl Drop for SystemCamera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread may be blocked in the driver for up to one frame; it
        // ends on its own and is not waited for.
        drop(self.thread.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_camera_is_a_clean_error() {
        // This machine may or may not have cameras; one by this name it has not.
        match SystemCamera::open(Some("no such camera"), 640, 360, 15, Instant::now()) {
            Err(DeviceError::Gone(_)) | Err(DeviceError::Io(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a camera that does not exist"),
        }
    }
}
