//! Video work off the meeting's event loop: encoding and decoding a 720p
//! frame takes milliseconds, which would otherwise delay audio capture and
//! playout (and show up as audio jitter at the far end). One thread captures
//! and encodes; another decodes every remote participant's video, logs the
//! test-pattern stamps when asked, and hands frames to the renderer.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conclave_codec::vp8::{EncoderConfig, Vp8Decoder, Vp8Encoder};
use conclave_media::pattern::read_stamp;
use conclave_media::synthetic::TestPatternCamera;
use conclave_media::{Camera, VideoFrame};
use tracing::{debug, warn};

use crate::media::{CameraChoice, Encoded};

/// What a [`FrameSink`] calls with each frame: (tile id, frame).
pub type FrameCallback = dyn Fn(u64, &VideoFrame) + Send + Sync;

/// Receives decoded remote frames (participant id, frame), for display.
#[derive(Clone)]
pub struct FrameSink(pub Arc<FrameCallback>);

impl std::fmt::Debug for FrameSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameSink")
    }
}

/// How the sent video is reduced: picture size divided by `scale`, and
/// only every `frame_skip`-th frame sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Divides width and height.
    pub scale: usize,
    /// Sends one frame in this many.
    pub frame_skip: u32,
}

/// Steps down resolution, then frame rate, as the bandwidth estimate falls,
/// and back up (with 30 % hysteresis) as it recovers. Sans-IO.
#[derive(Debug, Default)]
pub struct QualityLadder {
    level: usize,
}

impl QualityLadder {
    const STEPS: [Step; 4] = [
        Step {
            scale: 1,
            frame_skip: 1,
        },
        Step {
            scale: 2,
            frame_skip: 1,
        },
        Step {
            scale: 2,
            frame_skip: 2,
        },
        Step {
            scale: 4,
            frame_skip: 2,
        },
    ];
    /// Below these bitrates (bits/s) the next step down applies.
    const DOWN: [u32; 3] = [600_000, 300_000, 180_000];

    /// The current step.
    pub fn step(&self) -> Step {
        Self::STEPS[self.level]
    }

    /// Takes a new estimate; returns whether the step changed.
    pub fn update(&mut self, bps: u32) -> bool {
        let before = self.level;
        while self.level < Self::DOWN.len() && bps < Self::DOWN[self.level] {
            self.level += 1;
        }
        while self.level > 0 && u64::from(bps) * 10 >= u64::from(Self::DOWN[self.level - 1]) * 13 {
            self.level -= 1;
        }
        self.level != before
    }
}

enum SendControl {
    Keyframe,
    Bitrate(u32),
    Enabled(bool),
}

/// The capture-and-encode thread of the local camera.
pub(crate) struct VideoSender {
    control: Option<mpsc::Sender<SendControl>>,
    thread: Option<JoinHandle<()>>,
    enabled: bool,
}

impl VideoSender {
    /// Opens the camera and encoder on a thread; encoded frames go to `out`.
    pub fn start(
        choice: &CameraChoice,
        epoch: Instant,
        out: tokio::sync::mpsc::UnboundedSender<Encoded>,
        self_view: Option<FrameSink>,
    ) -> Result<Self, String> {
        let CameraChoice::Synthetic { width, height, fps } = *choice;
        let (control_tx, control_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("video-send".into())
            .spawn(move || {
                let make_encoder = |step: Step| {
                    Vp8Encoder::new(EncoderConfig {
                        width: (width / step.scale).max(2) & !1,
                        height: (height / step.scale).max(2) & !1,
                        fps: (fps / step.frame_skip).max(1),
                        bitrate: 1_200_000,
                    })
                };
                let mut ladder = QualityLadder::default();
                let mut encoder = match make_encoder(ladder.step()) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(e) => {
                        let _ =
                            ready_tx.send(Err(format!("Could not start the video encoder: {e}")));
                        return;
                    }
                };
                let mut captured: u64 = 0;
                let mut camera: Box<dyn Camera> =
                    Box::new(TestPatternCamera::new(width, height, fps, epoch));
                let mut enabled = true;
                loop {
                    let wait = camera
                        .next_frame_at()
                        .saturating_duration_since(Instant::now());
                    match control_rx.recv_timeout(wait) {
                        Ok(SendControl::Keyframe) => encoder.request_keyframe(),
                        Ok(SendControl::Bitrate(bps)) => {
                            let before = ladder.step();
                            if ladder.update(bps) && ladder.step().scale != before.scale {
                                // A new picture size needs a new encoder (its
                                // first frame is a keyframe).
                                match make_encoder(ladder.step()) {
                                    Ok(e) => encoder = e,
                                    Err(e) => warn!(error = %e, "could not resize the video"),
                                }
                                debug!(?before, now = ?ladder.step(), bps, "video quality step");
                            }
                            if let Err(e) = encoder.set_bitrate(bps) {
                                debug!(error = %e, "could not change the video bitrate");
                            }
                        }
                        Ok(SendControl::Enabled(on)) => {
                            enabled = on;
                            if on {
                                encoder.request_keyframe();
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    match camera.poll_frame(Instant::now()) {
                        Ok(Some(frame)) if enabled => {
                            if let Some(view) = &self_view {
                                (view.0)(crate::frames::SELF_TILE, &frame);
                            }
                            captured += 1;
                            let step = ladder.step();
                            if !captured.is_multiple_of(u64::from(step.frame_skip)) {
                                continue;
                            }
                            let frame = if step.scale > 1 {
                                frame.scaled(frame.width / step.scale, frame.height / step.scale)
                            } else {
                                frame
                            };
                            match encoder.encode(&frame) {
                                Ok(frames) => {
                                    for f in frames {
                                        let sent = out.send(Encoded {
                                            video: true,
                                            data: f.data,
                                            captured: f.captured,
                                            level: 0,
                                        });
                                        if sent.is_err() {
                                            return;
                                        }
                                    }
                                }
                                Err(e) => warn!(error = %e, "video encoding failed"),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "camera failed"),
                    }
                }
            })
            .map_err(|e| format!("Could not start the video thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(VideoSender {
                control: Some(control_tx),
                thread: Some(thread),
                enabled: true,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("The video thread ended at start".into()),
        }
    }

    fn send(&self, c: SendControl) {
        if let Some(tx) = &self.control {
            let _ = tx.send(c);
        }
    }

    /// The next frame is to be a keyframe.
    pub fn request_keyframe(&self) {
        self.send(SendControl::Keyframe);
    }

    /// Changes the target bitrate.
    pub fn set_bitrate(&self, bps: u32) {
        self.send(SendControl::Bitrate(bps));
    }

    /// Sends frames or not (camera off).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        self.send(SendControl::Enabled(on));
    }

    /// Whether frames are sent.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        drop(self.control.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum ReceiveJob {
    Frame { participant: u64, data: Vec<u8> },
    Remove(u64),
    Flush(mpsc::Sender<()>),
}

struct RemoteVideo {
    decoder: Option<Vp8Decoder>,
    stamps: Option<BufWriter<File>>,
}

/// The decoding thread for everyone's video.
pub(crate) struct VideoReceiver {
    jobs: Option<mpsc::Sender<ReceiveJob>>,
    thread: Option<JoinHandle<()>>,
    frames: Arc<Mutex<BTreeMap<u64, u64>>>,
    sink: Arc<Mutex<Option<FrameSink>>>,
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl VideoReceiver {
    /// Starts the thread; with `save`, each participant's decoded stamps go
    /// to `ID-video.csv` there.
    pub fn start(save: Option<PathBuf>) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<ReceiveJob>();
        let frames = Arc::new(Mutex::new(BTreeMap::new()));
        let sink: Arc<Mutex<Option<FrameSink>>> = Arc::new(Mutex::new(None));
        let (counts, sink_in) = (frames.clone(), sink.clone());
        let thread = std::thread::Builder::new()
            .name("video-receive".into())
            .spawn(move || {
                let mut remotes: BTreeMap<u64, RemoteVideo> = BTreeMap::new();
                while let Ok(job) = rx.recv() {
                    match job {
                        ReceiveJob::Frame { participant, data } => {
                            let remote =
                                remotes.entry(participant).or_insert_with(|| RemoteVideo {
                                    decoder: Vp8Decoder::new()
                                        .map_err(|e| warn!(error = %e, "no video decoder"))
                                        .ok(),
                                    stamps: save.as_ref().and_then(|dir| {
                                        let path = dir.join(format!("{participant}-video.csv"));
                                        match File::create(&path) {
                                            Ok(f) => {
                                                let mut w = BufWriter::new(f);
                                                let _ = writeln!(
                                                    w,
                                                    "frame,captured_us,received_us,width,height"
                                                );
                                                Some(w)
                                            }
                                            Err(e) => {
                                                warn!(error = %e, "could not create the frame log");
                                                None
                                            }
                                        }
                                    }),
                                });
                            let Some(dec) = &mut remote.decoder else {
                                continue;
                            };
                            let decoded = match dec.decode(&data) {
                                Ok(f) => f,
                                Err(e) => {
                                    debug!(error = %e, "undecodable video frame");
                                    continue;
                                }
                            };
                            let sink = sink_in.lock().ok().and_then(|s| s.clone());
                            for f in decoded {
                                // The moment the frame is handed on for display.
                                let now_us = unix_micros();
                                if let Some(sink) = &sink {
                                    (sink.0)(participant, &f);
                                }
                                if let Ok(mut c) = counts.lock() {
                                    *c.entry(participant).or_insert(0) += 1;
                                }
                                if let Some(w) = &mut remote.stamps {
                                    let (n, cap) = match read_stamp(&f) {
                                        Ok(s) => (s.frame as i64, s.captured.as_micros() as i64),
                                        Err(_) => (-1, -1),
                                    };
                                    let _ =
                                        writeln!(w, "{n},{cap},{now_us},{},{}", f.width, f.height);
                                }
                            }
                        }
                        ReceiveJob::Remove(participant) => {
                            if let Some(mut r) = remotes.remove(&participant) {
                                if let Some(w) = &mut r.stamps {
                                    let _ = w.flush();
                                }
                            }
                        }
                        ReceiveJob::Flush(done) => {
                            for r in remotes.values_mut() {
                                if let Some(w) = &mut r.stamps {
                                    let _ = w.flush();
                                }
                            }
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| format!("Could not start the video thread: {e}"))?;
        Ok(VideoReceiver {
            jobs: Some(tx),
            thread: Some(thread),
            frames,
            sink,
        })
    }

    /// Where decoded frames go for display (replaces the previous sink).
    pub fn set_sink(&self, sink: Option<FrameSink>) {
        if let Ok(mut s) = self.sink.lock() {
            *s = sink;
        }
    }

    /// Queues a received frame for decoding.
    pub fn push(&self, participant: u64, data: Vec<u8>) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(ReceiveJob::Frame { participant, data });
        }
    }

    /// Forgets a participant's decoder.
    pub fn remove(&self, participant: u64) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(ReceiveJob::Remove(participant));
        }
    }

    /// Frames decoded for a participant so far.
    pub fn frames(&self, participant: u64) -> u64 {
        self.frames
            .lock()
            .ok()
            .and_then(|c| c.get(&participant).copied())
            .unwrap_or(0)
    }

    /// Participants with decoded video.
    pub fn participants(&self) -> Vec<u64> {
        self.frames
            .lock()
            .map(|c| c.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Writes out the frame logs (waits for queued frames first).
    pub fn flush(&self) {
        if let Some(tx) = &self.jobs {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(ReceiveJob::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(Duration::from_secs(5));
            }
        }
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_steps_down_and_back_up_with_hysteresis() {
        let mut l = QualityLadder::default();
        assert!(!l.update(1_200_000));
        assert_eq!(
            l.step(),
            Step {
                scale: 1,
                frame_skip: 1
            }
        );
        assert!(l.update(450_000));
        assert_eq!(l.step().scale, 2);
        assert!(l.update(150_000));
        assert_eq!(
            l.step(),
            Step {
                scale: 4,
                frame_skip: 2
            }
        );
        // Just above a threshold is not enough to go back up.
        assert!(!l.update(190_000));
        assert!(l.update(700_000));
        assert_eq!(l.step().scale, 2, "up only past 1.3 x each threshold");
        assert!(l.update(800_000));
        assert_eq!(
            l.step(),
            Step {
                scale: 1,
                frame_skip: 1
            }
        );
    }
}
