//! Video work off the meeting's event loop: encoding and decoding a 720p
//! frame takes milliseconds, which would otherwise delay audio capture and
//! playout (and show up as audio jitter at the far end). One thread captures
//! and encodes; another decodes every remote participant's video, logs the
//! test-pattern stamps when asked, and hands frames to the renderer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conclave_codec::{EncodedFrame, EncoderConfig, VideoCodec, VideoDecoder, VideoEncoder};
use conclave_media::pattern::read_stamp;
use conclave_media::{Camera, DeviceError, VideoFrame};
use tracing::{debug, info, warn};

use crate::media::{open_camera, CameraChoice, Encoded, DEVICE_RETRY};

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

use crate::adapt::{CpuAdapter, CpuStep, SendSize};
pub use crate::adapt::{QualityLadder, Step};

enum SendControl {
    Keyframe,
    Bitrate(u32),
    Enabled(bool),
    Switch(CameraChoice, mpsc::Sender<Result<(), String>>),
    Effects(crate::media::VideoEffects, mpsc::Sender<Result<(), String>>),
}

/// How much of a face touch-up is applied (0..1).
const TOUCH_UP_STRENGTH: f32 = 0.7;

/// The virtual background of [`CameraEffects`].
struct Background {
    effect: conclave_background::effect::BackgroundEffect,
    model: Arc<Vec<u8>>,
    choice: crate::media::BackdropChoice,
    /// The picture backdrop is made for this size.
    size: (usize, usize),
}

impl Background {
    fn backdrop(&mut self, width: usize, height: usize) {
        use crate::media::BackdropChoice;
        use conclave_background::compose::{Backdrop, BlurStrength};
        self.size = (width, height);
        self.effect.set_backdrop(match &self.choice {
            BackdropChoice::Blur(s) => Backdrop::Blur(*s),
            BackdropChoice::Picture(p) if width >= 2 && height >= 2 => {
                conclave_background::image::backdrop(p, width, height)
            }
            BackdropChoice::Picture(_) => Backdrop::Blur(BlurStrength::Strong),
        });
    }
}

/// The camera effects (virtual background, face touch-up), applied to each
/// camera picture on the capture thread before the self view and the
/// encoder, so that only their result is ever encoded; the app's device
/// preview runs the same. Changing them takes effect with the next picture.
#[derive(Default)]
pub struct CameraEffects {
    touch_up: bool,
    background: Option<Background>,
    /// Exponential average of the time per frame, in seconds.
    average: f64,
}

impl CameraEffects {
    /// Effects as chosen; a model that cannot be loaded is an error (and
    /// nothing changes).
    pub fn set(&mut self, effects: &crate::media::VideoEffects) -> Result<(), String> {
        self.background = match (&effects.background, self.background.take()) {
            (None, _) => None,
            // The same model: keep it (and its mask), change the backdrop.
            (Some(wanted), Some(mut running)) if Arc::ptr_eq(&wanted.model, &running.model) => {
                running.choice = wanted.backdrop.clone();
                running.size = (0, 0);
                Some(running)
            }
            (Some(wanted), previous) => {
                let effect = conclave_background::effect::BackgroundEffect::new(
                    &wanted.model,
                    conclave_background::compose::Backdrop::Blur(
                        conclave_background::compose::BlurStrength::Strong,
                    ),
                );
                match effect {
                    Ok(effect) => Some(Background {
                        effect,
                        model: wanted.model.clone(),
                        choice: wanted.backdrop.clone(),
                        size: (0, 0),
                    }),
                    Err(e) => {
                        self.background = previous;
                        return Err(format!("Could not start the virtual background: {e}"));
                    }
                }
            }
        };
        self.touch_up = effects.touch_up;
        self.average = 0.0;
        Ok(())
    }

    /// Whether anything is applied.
    pub fn is_active(&self) -> bool {
        self.touch_up || self.background.is_some()
    }

    /// The recent cost, as the statistics carry it, if anything is applied.
    pub fn cost(&self) -> Option<crate::api::EffectsStats> {
        self.is_active().then(|| crate::api::EffectsStats {
            us_per_frame: (self.average * 1_000_000.0).round() as u32,
            mask_every: self
                .background
                .as_ref()
                .map_or(1, |b| b.effect.cost().mask_every),
        })
    }

    /// Applies the effects to `frame` in place; `interval` is the camera's
    /// frame interval (the background's time budget follows it). On an
    /// error the background is turned off (and the error returned).
    pub fn apply(&mut self, frame: &mut VideoFrame, interval: Duration) -> Result<(), String> {
        if !self.is_active() {
            return Ok(());
        }
        let start = Instant::now();
        let mut view = conclave_background::compose::I420 {
            width: frame.width,
            height: frame.height,
            y: &mut frame.y,
            u: &mut frame.u,
            v: &mut frame.v,
        };
        if self.touch_up {
            conclave_background::compose::touch_up(&mut view, TOUCH_UP_STRENGTH);
        }
        let mut result = Ok(());
        if let Some(b) = &mut self.background {
            if b.size != (view.width, view.height) {
                b.backdrop(view.width, view.height);
            }
            if let Err(e) = b.effect.apply(&mut view, interval) {
                self.background = None;
                result = Err(format!("The virtual background stopped: {e}"));
            }
        }
        let took = start.elapsed().as_secs_f64();
        self.average = if self.average == 0.0 {
            took
        } else {
            0.9 * self.average + 0.1 * took
        };
        result
    }
}

/// What the capture-and-encode thread shares with the meeting.
#[derive(Default)]
struct Shared {
    /// Whether a camera is open now.
    has_device: AtomicBool,
    /// Things the user should hear about (a camera vanished, came back).
    notices: Mutex<Vec<String>>,
    /// What the camera effects cost recently.
    effects_cost: Mutex<Option<crate::api::EffectsStats>>,
    /// The shared screen's restore token, once the desktop gave one, until
    /// it is taken.
    restore_token: Mutex<Option<String>>,
    /// Whether the token was handed on already.
    token_seen: AtomicBool,
    /// Encoded frames the meeting loop has not taken yet.
    in_flight: Arc<AtomicUsize>,
    /// Frames not encoded because the ones before had not gone out.
    dropped: AtomicU64,
    /// The processor's share of the frame interval, and the step it gives.
    cpu: Mutex<(Option<f64>, CpuStep)>,
    /// The size of the frames encoded last.
    sent_size: Mutex<(usize, usize)>,
    /// When frames were encoded in the last second.
    sent_recently: Mutex<std::collections::VecDeque<Instant>>,
}

impl Shared {
    fn notice(&self, message: String) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(message);
        }
    }
}

/// Encoded frames waiting for the meeting loop at most: with more, the next
/// camera picture is not encoded.
const MAX_IN_FLIGHT: usize = 2;

/// Counts an encoded frame while it waits for the meeting loop; dropped
/// when the loop has handed it to the connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The capture-and-encode thread of the local camera.
pub(crate) struct VideoSender {
    control: Option<mpsc::Sender<SendControl>>,
    thread: Option<JoinHandle<()>>,
    enabled: bool,
    shared: Arc<Shared>,
}

/// The camera end of the video thread: the open device, what the user
/// chose, and when a vanished camera is looked for again.
struct CameraSlot {
    camera: Option<Box<dyn Camera>>,
    wanted: CameraChoice,
    retry_at: Option<Instant>,
    epoch: Instant,
    shared: Arc<Shared>,
}

impl CameraSlot {
    fn set(&mut self, camera: Option<Box<dyn Camera>>) {
        self.shared
            .has_device
            .store(camera.is_some(), Ordering::Relaxed);
        self.camera = camera;
    }

    /// The chosen camera, else (for a specific OS camera) the default one.
    fn open_wanted_or_default(&mut self, now: Instant) -> Result<(), DeviceError> {
        let first = open_camera(&self.wanted, self.epoch);
        let opened = match (first, &self.wanted) {
            (Ok(c), _) => Ok(c),
            (Err(e), CameraChoice::Device(Some(_))) => {
                open_camera(&CameraChoice::Device(None), self.epoch).map_err(|_| e)
            }
            (Err(e), _) => Err(e),
        };
        match opened {
            Ok(c) => {
                info!(camera = %c.info().name, "camera open");
                self.set(Some(c));
                self.retry_at = None;
                Ok(())
            }
            Err(e) => {
                self.set(None);
                self.retry_at = Some(now + DEVICE_RETRY);
                Err(e)
            }
        }
    }

    /// Looks for a vanished camera again when it is time.
    fn retry(&mut self, now: Instant) {
        if self.camera.is_some()
            || self.retry_at.is_none_or(|t| t > now)
            || matches!(self.wanted, CameraChoice::Screen { .. })
        {
            return;
        }
        if self.open_wanted_or_default(now).is_ok() {
            if let Some(c) = &self.camera {
                self.shared
                    .notice(format!("The camera “{}” is on again.", c.info().name));
            }
        }
    }

    /// How long the thread may sleep.
    fn wait(&self, now: Instant) -> Duration {
        match (&self.camera, self.retry_at) {
            (Some(c), _) => c.next_frame_at().saturating_duration_since(now),
            (None, Some(t)) => t.saturating_duration_since(now),
            (None, None) => DEVICE_RETRY,
        }
    }

    /// The frame due now, if any; a camera that fails is let go, the user
    /// told, and another looked for.
    fn poll(&mut self, now: Instant) -> Option<VideoFrame> {
        let camera = self.camera.as_mut()?;
        match camera.poll_frame(now) {
            Ok(frame) => {
                if frame.is_some() && !self.shared.token_seen.load(Ordering::Relaxed) {
                    if let Some(token) = camera.restore_token() {
                        self.shared.token_seen.store(true, Ordering::Relaxed);
                        if let Ok(mut t) = self.shared.restore_token.lock() {
                            *t = Some(token);
                        }
                    }
                }
                frame
            }
            Err(e) => {
                let name = camera.info().name;
                warn!(error = %e, camera = %name, "camera failed");
                self.set(None);
                if matches!(self.wanted, CameraChoice::Screen { .. }) {
                    // A closed window is not looked for again.
                    self.shared
                        .notice(format!("Sharing stopped: “{name}” is gone."));
                    return None;
                }
                let fallback = self.open_wanted_or_default(now);
                match (&self.camera, fallback) {
                    (Some(c), Ok(())) => self.shared.notice(format!(
                        "The camera “{name}” stopped; now using “{}”.",
                        c.info().name
                    )),
                    _ => self.shared.notice(format!(
                        "The camera “{name}” stopped. You are in the meeting without video; it is looked for again."
                    )),
                }
                None
            }
        }
    }
}

/// The encoder, made for the size of the frames it gets.
struct SizedEncoder {
    codec: VideoCodec,
    encoder: Option<(usize, usize, VideoEncoder)>,
    fps: u32,
    bitrate: u32,
    keyframe_wanted: bool,
}

impl SizedEncoder {
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>, String> {
        let size = (frame.width, frame.height);
        if self
            .encoder
            .as_ref()
            .is_none_or(|(w, h, _)| (*w, *h) != size)
        {
            // A new picture size needs a new encoder (its first frame is a
            // keyframe).
            let e = VideoEncoder::new(
                self.codec,
                EncoderConfig {
                    width: frame.width,
                    height: frame.height,
                    fps: self.fps,
                    bitrate: self.bitrate,
                },
            )
            .map_err(|e| e.to_string())?;
            debug!(width = frame.width, height = frame.height, "video encoder");
            self.encoder = Some((frame.width, frame.height, e));
            self.keyframe_wanted = false;
        }
        let Some((_, _, encoder)) = &mut self.encoder else {
            return Ok(Vec::new());
        };
        if std::mem::take(&mut self.keyframe_wanted) {
            encoder.request_keyframe();
        }
        encoder.encode(frame).map_err(|e| e.to_string())
    }

    fn set_bitrate(&mut self, bps: u32) {
        self.bitrate = bps;
        if let Some((_, _, e)) = &mut self.encoder {
            if let Err(e) = e.set_bitrate(bps) {
                debug!(error = %e, "could not change the video bitrate");
            }
        }
    }
}

impl VideoSender {
    /// Opens the camera and encoder on a thread; encoded frames go to `out`.
    /// An OS camera that cannot be opened leaves the meeting without video
    /// (the user is told) and is looked for again.
    pub fn start(
        choice: &CameraChoice,
        codec: VideoCodec,
        screen: bool,
        epoch: Instant,
        out: tokio::sync::mpsc::UnboundedSender<Encoded>,
        self_view: Option<FrameSink>,
        effects: crate::media::VideoEffects,
    ) -> Result<Self, String> {
        let mut camera_effects = CameraEffects::default();
        camera_effects.set(&effects)?;
        let shared = Arc::new(Shared::default());
        let mut slot = CameraSlot {
            camera: None,
            wanted: choice.clone(),
            retry_at: None,
            epoch,
            shared: shared.clone(),
        };
        if let Err(e) = slot.open_wanted_or_default(Instant::now()) {
            if matches!(choice, CameraChoice::Screen { .. }) {
                return Err(format!("Could not share the screen: {e}"));
            }
            if !choice.is_device() {
                return Err(format!("Could not open the camera: {e}"));
            }
            warn!(error = %e, "no camera");
            // Having no camera at all is not news; a chosen one missing is.
            if matches!(choice, CameraChoice::Device(Some(_))) {
                shared.notice(format!(
                "Could not open a camera ({e}). You are in the meeting without video; it is looked for again."
            ));
            }
        }
        let fps = match choice {
            CameraChoice::Synthetic { fps, .. } => *fps,
            CameraChoice::Device(_) => 30,
            CameraChoice::Screen { .. } | CameraChoice::Picture(_) => 15,
        };
        // Shared screens carry detail: more bits, and no quality ladder
        // (their picture size is kept).
        let initial_bitrate = if screen { 2_000_000 } else { 1_200_000 };
        let own_tile = if screen {
            crate::frames::SELF_TILE | crate::frames::SCREEN_TILE
        } else {
            crate::frames::SELF_TILE
        };
        let (control_tx, control_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("video-send".into())
            .spawn(move || {
                let mut encoder = SizedEncoder {
                    codec,
                    encoder: None,
                    fps,
                    bitrate: initial_bitrate,
                    keyframe_wanted: false,
                };
                let mut ladder = QualityLadder::default();
                let mut cpu = CpuAdapter::default();
                let interval = Duration::from_secs(1) / fps.max(1);
                let in_flight = slot.shared.in_flight.clone();
                let mut captured: u64 = 0;
                let mut enabled = true;
                loop {
                    match control_rx.recv_timeout(slot.wait(Instant::now())) {
                        Ok(SendControl::Keyframe) => encoder.keyframe_wanted = true,
                        Ok(SendControl::Bitrate(bps)) => {
                            let before = ladder.step();
                            if ladder.update(bps) {
                                debug!(?before, now = ?ladder.step(), bps, "video quality step");
                            }
                            encoder.set_bitrate(bps);
                        }
                        Ok(SendControl::Enabled(on)) => {
                            enabled = on;
                            encoder.keyframe_wanted |= on;
                        }
                        Ok(SendControl::Switch(choice, reply)) => {
                            let result = match open_camera(&choice, epoch) {
                                Ok(c) => {
                                    info!(camera = %c.info().name, "camera switched");
                                    slot.set(Some(c));
                                    slot.wanted = choice;
                                    slot.retry_at = None;
                                    encoder.keyframe_wanted = true;
                                    Ok(())
                                }
                                Err(e) => Err(format!("Could not open the camera: {e}")),
                            };
                            let _ = reply.send(result);
                        }
                        Ok(SendControl::Effects(effects, reply)) => {
                            let result = camera_effects.set(&effects);
                            if result.is_ok() {
                                info!(?effects, "camera effects changed");
                            }
                            let _ = reply.send(result);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let now = Instant::now();
                    slot.retry(now);
                    let Some(frame) = slot.poll(now) else {
                        continue;
                    };
                    if !enabled {
                        continue;
                    }
                    // How long this frame keeps the thread once the camera
                    // handed it over (effects, scaling, encoding), as
                    // libwebrtc measures it: a camera makes its pictures on
                    // a thread of its own (only the test pattern draws here).
                    let began = Instant::now();
                    let mut frame = frame;
                    if let Err(error) = camera_effects.apply(&mut frame, interval) {
                        warn!(%error, "virtual background off");
                        slot.shared.notice(error);
                    }
                    if let Ok(mut cost) = slot.shared.effects_cost.lock() {
                        *cost = camera_effects.cost();
                    }
                    if let Some(view) = &self_view {
                        (view.0)(own_tile, &frame);
                    }
                    captured += 1;
                    let size = SendSize::of(
                        frame.width,
                        frame.height,
                        ladder.step(),
                        cpu.step_for(screen),
                    );
                    if !captured.is_multiple_of(u64::from(size.frame_skip)) {
                        continue;
                    }
                    // Drop before encoding when what was encoded before has
                    // not gone out yet: a frame that would wait is not made.
                    if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                        slot.shared.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let frame = if (size.width, size.height) != (frame.width, frame.height) {
                        frame.scaled(size.width, size.height)
                    } else {
                        frame
                    };
                    match encoder.encode(&frame) {
                        Ok(frames) => {
                            for f in frames {
                                let sent = out.send(Encoded {
                                    video: true,
                                    screen,
                                    data: f.data,
                                    captured: f.captured,
                                    level: 0,
                                    _in_flight: Some(InFlight::new(&in_flight)),
                                });
                                if sent.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => warn!(error = %e, "video encoding failed"),
                    }
                    let took = began.elapsed();
                    if let Ok(mut sent) = slot.shared.sent_recently.lock() {
                        let now = Instant::now();
                        sent.push_back(now);
                        while sent
                            .front()
                            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
                        {
                            sent.pop_front();
                        }
                    }
                    if let Ok(mut s) = slot.shared.sent_size.lock() {
                        *s = (size.width, size.height);
                    }
                    let frames_apart = interval * size.frame_skip;
                    if cpu.on_frame(took, frames_apart, Instant::now()) {
                        info!(
                            step = ?cpu.step_for(screen),
                            took_ms = took.as_secs_f64() * 1000.0,
                            "video adapted to the processor"
                        );
                    }
                    if let Ok(mut u) = slot.shared.cpu.lock() {
                        *u = (cpu.usage(), cpu.step_for(screen));
                    }
                }
            })
            .map_err(|e| format!("Could not start the video thread: {e}"))?;
        Ok(VideoSender {
            control: Some(control_tx),
            thread: Some(thread),
            enabled: true,
            shared,
        })
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

    /// Whether a camera is open now.
    pub fn has_device(&self) -> bool {
        self.shared.has_device.load(Ordering::Relaxed)
    }

    /// Uses another camera from the next frame on; waits until it is open.
    pub fn switch(&self, choice: CameraChoice) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.send(SendControl::Switch(choice, tx));
        rx.recv()
            .map_err(|_| "The video thread has ended.".to_string())?
    }

    /// Changes the camera effects from the next picture on; waits until
    /// they are in place (a model that cannot be loaded is an error).
    pub fn set_effects(&self, effects: crate::media::VideoEffects) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.send(SendControl::Effects(effects, tx));
        rx.recv()
            .map_err(|_| "The video thread has ended.".to_string())?
    }

    /// What is sent now (the video part of the statistics).
    pub fn sending(&self) -> crate::api::SendingStats {
        let shared = &self.shared;
        let (usage, step) = shared.cpu.lock().map(|c| *c).unwrap_or_default();
        let now = Instant::now();
        let fps = shared.sent_recently.lock().map_or(0, |s| {
            s.iter()
                .filter(|t| now.duration_since(**t) <= Duration::from_secs(1))
                .count() as u32
        });
        let (width, height) = if self.enabled && fps > 0 {
            shared.sent_size.lock().map(|s| *s).unwrap_or_default()
        } else {
            (0, 0)
        };
        crate::api::SendingStats {
            audio_packets: 0,
            video_width: width as u32,
            video_height: height as u32,
            video_fps: fps,
            video_cpu_percent: usage.map_or(0, |u| (u * 100.0).round() as u32),
            video_limited_by_cpu: step != CpuStep::default(),
            video_dropped: shared.dropped.load(Ordering::Relaxed),
            audio_loss_permille: 0,
            audio_protection_percent: 0,
        }
    }

    /// What the camera effects cost recently, if any are applied.
    pub fn effects_cost(&self) -> Option<crate::api::EffectsStats> {
        self.shared.effects_cost.lock().ok().and_then(|c| *c)
    }

    /// The shared screen's restore token, once, when the desktop gave one.
    pub fn take_restore_token(&self) -> Option<String> {
        self.shared
            .restore_token
            .lock()
            .ok()
            .and_then(|mut t| t.take())
    }

    /// Notices for the user since the last call.
    pub fn take_notices(&self) -> Vec<String> {
        self.shared
            .notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
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
    Frame {
        participant: u64,
        codec: VideoCodec,
        data: Vec<u8>,
        /// When the meeting loop handed it on.
        queued: Instant,
    },
    Remove(u64),
    Flush(mpsc::Sender<()>),
}

/// A frame that waited longer than this to be decoded is not: the
/// receiver skips to the next keyframe (and asks for one) instead of
/// showing ever older pictures.
const MAX_DECODE_WAIT: Duration = Duration::from_millis(400);

struct RemoteVideo {
    decoder: Option<VideoDecoder>,
    /// Frames are skipped until a keyframe (after a gap or a decoding
    /// error, the pictures between would be wrong).
    awaiting_keyframe: bool,
    stamps: Option<BufWriter<File>>,
    /// The newest decoded picture, kept when saving (written as
    /// `ID-frame.png` once a second, when the log is flushed and when the
    /// participant leaves).
    last: Option<VideoFrame>,
    /// When `ID-frame.png` was last written.
    last_saved: Option<Instant>,
}

/// Writes a participant's newest decoded picture as `ID-frame.png`.
fn save_last_frame(dir: &std::path::Path, participant: u64, frame: &VideoFrame) {
    let picture = conclave_background::image::from_i420(
        frame.width,
        frame.height,
        &frame.y,
        &frame.u,
        &frame.v,
    );
    let path = dir.join(format!("{participant}-frame.png"));
    let part = dir.join(format!("{participant}-frame.png.part"));
    // Through a temporary file, so a reader never sees half a picture.
    let written = conclave_background::image::encode_png(&picture)
        .map_err(|e| e.to_string())
        .and_then(|bytes| std::fs::write(&part, bytes).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&part, &path).map_err(|e| e.to_string()));
    if let Err(error) = written {
        warn!(%error, "could not save the received picture");
    }
}

/// What the picture saver is asked.
enum SaveJob {
    /// Save a participant's picture as `ID-frame.png` in a folder.
    Picture(PathBuf, u64, VideoFrame),
    /// Answer once everything asked before is saved.
    Barrier(mpsc::Sender<()>),
}

/// A thread that saves pictures handed to it, one at a time and in order.
fn start_picture_saver() -> Result<mpsc::SyncSender<SaveJob>, String> {
    let (tx, rx) = mpsc::sync_channel::<SaveJob>(1);
    std::thread::Builder::new()
        .name("picture-saver".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                match job {
                    SaveJob::Picture(dir, participant, frame) => {
                        save_last_frame(&dir, participant, &frame);
                    }
                    SaveJob::Barrier(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })
        .map_err(|e| format!("Could not start the picture saver: {e}"))?;
    Ok(tx)
}

/// Decoded-video figures of one participant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VideoCounts {
    /// Frames decoded so far.
    pub frames: u64,
    /// Frames decoded in the last second.
    pub fps: u32,
    /// Size of the last frame.
    pub width: u32,
    /// Size of the last frame.
    pub height: u32,
}

/// What the decoding thread counts per participant.
#[derive(Default)]
struct Counter {
    frames: u64,
    size: (usize, usize),
    /// When the frames of the last second were decoded.
    recent: std::collections::VecDeque<Instant>,
}

impl Counter {
    fn count(&mut self, width: usize, height: usize, now: Instant) {
        self.frames += 1;
        self.size = (width, height);
        self.recent.push_back(now);
        self.forget_before(now);
    }

    fn forget_before(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
    }
}

/// The decoding thread for everyone's video.
pub(crate) struct VideoReceiver {
    jobs: Option<mpsc::Sender<ReceiveJob>>,
    thread: Option<JoinHandle<()>>,
    frames: Arc<Mutex<BTreeMap<u64, Counter>>>,
    sink: Arc<Mutex<Option<FrameSink>>>,
    /// Tiles whose sender is to be asked for a keyframe.
    keyframes: Arc<Mutex<BTreeSet<u64>>>,
}

/// The decoding thread's state.
struct Decoding {
    remotes: BTreeMap<u64, RemoteVideo>,
    save: Option<PathBuf>,
    saver: Option<mpsc::SyncSender<SaveJob>>,
    counts: Arc<Mutex<BTreeMap<u64, Counter>>>,
    sink: Arc<Mutex<Option<FrameSink>>>,
    keyframes: Arc<Mutex<BTreeSet<u64>>>,
}

impl Decoding {
    fn remote(&mut self, participant: u64) -> &mut RemoteVideo {
        let save = &self.save;
        self.remotes
            .entry(participant)
            .or_insert_with(|| RemoteVideo {
                decoder: None,
                awaiting_keyframe: false,
                last: None,
                last_saved: None,
                stamps: save.as_ref().and_then(|dir| {
                    let path = dir.join(format!("{participant}-video.csv"));
                    match File::create(&path) {
                        Ok(f) => {
                            let mut w = BufWriter::new(f);
                            let _ = writeln!(w, "frame,captured_us,received_us,width,height");
                            Some(w)
                        }
                        Err(e) => {
                            warn!(error = %e, "could not create the frame log");
                            None
                        }
                    }
                }),
            })
    }

    fn want_keyframe(&self, participant: u64) {
        if let Ok(mut k) = self.keyframes.lock() {
            k.insert(participant);
        }
    }

    /// Decodes one frame of `participant`'s, and shows it if `show`.
    fn frame(
        &mut self,
        participant: u64,
        codec: VideoCodec,
        data: &[u8],
        queued: Instant,
        show: bool,
    ) {
        let keyframe = codec.is_keyframe(data);
        let late = queued.elapsed() > MAX_DECODE_WAIT;
        let remote = self.remote(participant);
        // A decoder for the codec the sender uses (it may change).
        if remote.decoder.as_ref().is_none_or(|d| d.codec() != codec) {
            remote.decoder = VideoDecoder::new(codec)
                .map_err(|e| warn!(error = %e, ?codec, "no video decoder"))
                .ok();
            remote.awaiting_keyframe = !keyframe;
        }
        if keyframe {
            remote.awaiting_keyframe = false;
        } else if late && !remote.awaiting_keyframe {
            // Too far behind to catch up by decoding: skip to a keyframe.
            debug!(
                participant,
                "video decoding fell behind; waiting for a keyframe"
            );
            remote.awaiting_keyframe = true;
        }
        if remote.awaiting_keyframe {
            self.want_keyframe(participant);
            return;
        }
        let Some(dec) = &mut remote.decoder else {
            return;
        };
        let decoded = match dec.decode(data) {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "undecodable video frame");
                remote.awaiting_keyframe = true;
                self.want_keyframe(participant);
                return;
            }
        };
        if let Ok(mut c) = self.counts.lock() {
            for f in &decoded {
                c.entry(participant)
                    .or_default()
                    .count(f.width, f.height, Instant::now());
            }
        }
        if !show {
            return;
        }
        let sink = self.sink.lock().ok().and_then(|s| s.clone());
        let Some(remote) = self.remotes.get_mut(&participant) else {
            return;
        };
        for f in &decoded {
            // The moment the frame is handed on for display.
            let now_us = unix_micros();
            if let Some(sink) = &sink {
                (sink.0)(participant, f);
            }
            if let Some(w) = &mut remote.stamps {
                let (n, cap) = match read_stamp(f) {
                    Ok(s) => (s.frame as i64, s.captured.as_micros() as i64),
                    Err(_) => (-1, -1),
                };
                // Written through at once: the log is for tests and
                // measurements, which read it while the receiver may still
                // be busy decoding.
                let _ = writeln!(w, "{n},{cap},{now_us},{},{}", f.width, f.height)
                    .and_then(|()| w.flush());
            }
        }
        if let (Some(dir), Some(newest)) = (&self.save, decoded.into_iter().last()) {
            // Also written once a second while the meeting goes on (a
            // process may end before its last flush), on a thread of its
            // own: encoding a picture takes longer than decoding many, and
            // must not hold up the ones shown (a busy saver skips one).
            let due = remote
                .last_saved
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                if let Some(saver) = &self.saver {
                    let _ =
                        saver.try_send(SaveJob::Picture(dir.clone(), participant, newest.clone()));
                }
                remote.last_saved = Some(Instant::now());
            }
            remote.last = Some(newest);
        }
    }

    /// Forgets a participant (saving their last picture when asked to).
    fn remove(&mut self, participant: u64) {
        if let Some(mut r) = self.remotes.remove(&participant) {
            if let Some(w) = &mut r.stamps {
                let _ = w.flush();
            }
            if let (Some(dir), Some(f), Some(saver)) = (&self.save, r.last, &self.saver) {
                let _ = saver.send(SaveJob::Picture(dir.clone(), participant, f));
            }
        }
        if let Ok(mut k) = self.keyframes.lock() {
            k.remove(&participant);
        }
    }

    /// Writes out the frame logs and last pictures, and waits for them.
    fn flush(&mut self) {
        for (participant, r) in &mut self.remotes {
            if let Some(w) = &mut r.stamps {
                let _ = w.flush();
            }
            if let (Some(dir), Some(f), Some(saver)) = (&self.save, r.last.take(), &self.saver) {
                let _ = saver.send(SaveJob::Picture(dir.clone(), *participant, f));
            }
        }
        if let Some(saver) = &self.saver {
            let (saved, wait) = mpsc::channel();
            if saver.send(SaveJob::Barrier(saved)).is_ok() {
                let _ = wait.recv();
            }
        }
    }
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
        let frames = Arc::new(Mutex::new(BTreeMap::<u64, Counter>::new()));
        let sink: Arc<Mutex<Option<FrameSink>>> = Arc::new(Mutex::new(None));
        let saver = match &save {
            Some(_) => Some(start_picture_saver()?),
            None => None,
        };
        let keyframes = Arc::new(Mutex::new(BTreeSet::new()));
        let mut decoding = Decoding {
            remotes: BTreeMap::new(),
            save,
            saver,
            counts: frames.clone(),
            sink: sink.clone(),
            keyframes: keyframes.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("video-receive".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Everything waiting: of several frames of one
                    // participant, all are decoded (each needs the one
                    // before) but only the newest is shown.
                    let batch: Vec<ReceiveJob> =
                        std::iter::once(first).chain(rx.try_iter()).collect();
                    let mut newest = BTreeMap::new();
                    for (i, job) in batch.iter().enumerate() {
                        if let ReceiveJob::Frame { participant, .. } = job {
                            newest.insert(*participant, i);
                        }
                    }
                    for (i, job) in batch.into_iter().enumerate() {
                        match job {
                            ReceiveJob::Frame {
                                participant,
                                codec,
                                data,
                                queued,
                            } => {
                                let show = newest.get(&participant) == Some(&i);
                                decoding.frame(participant, codec, &data, queued, show);
                            }
                            ReceiveJob::Remove(participant) => decoding.remove(participant),
                            ReceiveJob::Flush(done) => {
                                decoding.flush();
                                let _ = done.send(());
                            }
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
            keyframes,
        })
    }

    /// Where decoded frames go for display (replaces the previous sink).
    pub fn set_sink(&self, sink: Option<FrameSink>) {
        if let Ok(mut s) = self.sink.lock() {
            *s = sink;
        }
    }

    /// Queues a received frame for decoding.
    pub fn push(&self, participant: u64, codec: VideoCodec, data: Vec<u8>) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(ReceiveJob::Frame {
                participant,
                codec,
                data,
                queued: Instant::now(),
            });
        }
    }

    /// Tiles whose sender should be asked for a keyframe, since the last
    /// call.
    pub fn take_keyframe_requests(&self) -> Vec<u64> {
        self.keyframes
            .lock()
            .map(|mut k| std::mem::take(&mut *k).into_iter().collect())
            .unwrap_or_default()
    }

    /// Forgets a participant's decoder.
    pub fn remove(&self, participant: u64) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(ReceiveJob::Remove(participant));
        }
    }

    /// Decoded-video figures of a participant.
    pub fn counters(&self, participant: u64) -> VideoCounts {
        let Ok(mut all) = self.frames.lock() else {
            return VideoCounts::default();
        };
        let Some(c) = all.get_mut(&participant) else {
            return VideoCounts::default();
        };
        c.forget_before(Instant::now());
        VideoCounts {
            frames: c.frames,
            fps: c.recent.len() as u32,
            width: c.size.0 as u32,
            height: c.size.1 as u32,
        }
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

    /// A 64x36 picture with fine texture (±6 around 120) and one sharp edge.
    fn textured() -> VideoFrame {
        let (w, h) = (64, 36);
        let mut frame = VideoFrame::black(w, h);
        for y in 0..h {
            for x in 0..w {
                let texture = if (x + y) % 2 == 0 { 126 } else { 114 };
                frame.y[y * w + x] = if x < 32 { texture } else { 30 };
            }
        }
        frame
    }

    fn texture(frame: &VideoFrame) -> u32 {
        (1..20)
            .map(|x| u32::from(frame.y[10 * 64 + x].abs_diff(frame.y[10 * 64 + x - 1])))
            .sum()
    }

    #[test]
    fn camera_effects_touch_up_changes_from_the_next_picture_and_report_their_cost() {
        let mut effects = CameraEffects::default();
        let interval = Duration::from_millis(33);
        let mut plain = textured();
        effects.apply(&mut plain, interval).expect("nothing to do");
        assert_eq!(
            plain.y,
            textured().y,
            "no effects: the picture is as it was"
        );
        assert_eq!(effects.cost(), None);

        effects
            .set(&crate::media::VideoEffects {
                background: None,
                touch_up: true,
            })
            .expect("touch-up needs no model");
        let mut smoothed = textured();
        effects.apply(&mut smoothed, interval).expect("applied");
        assert!(
            texture(&smoothed) * 2 < texture(&textured()),
            "skin texture smoothed: {} against {}",
            texture(&smoothed),
            texture(&textured())
        );
        // The edge between the halves stays sharp (the dark half may be
        // lifted: the picture is dim on average).
        let (left, right) = (smoothed.y[10 * 64 + 30], smoothed.y[10 * 64 + 33]);
        assert!(left > right + 40, "edge kept: {left} | {right}");
        assert!(effects.cost().is_some_and(|c| c.mask_every == 1));

        // A model that does not load is refused, and what ran goes on.
        let broken = crate::media::VideoEffects {
            background: Some(crate::media::BackgroundOptions {
                model: Arc::new(b"not a model".to_vec()),
                backdrop: crate::media::BackdropChoice::Blur(
                    conclave_background::compose::BlurStrength::Strong,
                ),
            }),
            touch_up: true,
        };
        assert!(effects.set(&broken).is_err());
        assert!(effects.is_active());

        effects
            .set(&crate::media::VideoEffects::default())
            .expect("off");
        let mut again = textured();
        effects.apply(&mut again, interval).expect("nothing to do");
        assert_eq!(again.y, textured().y, "off again: untouched");
    }
}
