//! The media edge of the runtime: devices, voice processing, encoders,
//! decoders, jitter buffers and the playout mixer. The sans-IO
//! [`crate::client::Client`] only sees encoded frames; this module turns
//! device output into them and received frames into sound, pictures,
//! recordings and statistics.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_codec::opus::{OpusDecoder, OpusEncoder};
use conclave_media::jitter::{JitterBuffer, Playout};
use conclave_media::playback_canceller::PlaybackCanceller;
use conclave_media::processing::{ProcessingSettings, VoiceProcessor};
use conclave_media::synthetic::{
    StillCamera, TestPatternCamera, ToneMicrophone, WavMicrophone, WavRecorder,
};
use conclave_media::system_audio::{SystemMicrophone, SystemSpeaker};
use conclave_media::system_camera::SystemCamera;
use conclave_media::{
    AudioFrame, Camera, DeviceError, Microphone, Speaker, VideoFrame, AUDIO_BLOCK,
};

use crate::api::{MediaStats, RemoteMediaStats};
use crate::video::{FrameSink, VideoReceiver, VideoSender};
use tracing::{debug, info, warn};

/// Which camera to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraChoice {
    /// The machine-readable test pattern.
    Synthetic {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// Frames per second.
        fps: u32,
    },
    /// A camera of the OS by id or name; `None` is the first (the default).
    /// Asked for 1280x720 at 30 frames/s; larger pictures are scaled down.
    Device(Option<String>),
    /// A screen or window to share (see `conclave_screen::list_sources`),
    /// at its own size, 5 to 30 frames/s as it moves.
    Screen {
        /// The X display (`None`: the session's own).
        display: Option<String>,
        /// `screen:N` or `window:0x…`; `None` is the first screen.
        source: Option<String>,
    },
    /// A still picture (a PNG file) shown as a camera at 640x360, 15
    /// frames/s: a person whose place in the picture is known, for tests
    /// and demos of virtual backgrounds.
    Picture(PathBuf),
}

impl CameraChoice {
    /// Reads a camera as settings and the command line name it:
    /// `synthetic` (640x360 at 30 frames/s), `synthetic:WIDTHxHEIGHT[@FPS]`,
    /// `default` (the OS's first camera), `picture:FILE.png` (a still
    /// picture), or a device id or name.
    pub fn parse(spec: &str) -> Result<CameraChoice, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("no camera named".into());
        }
        if let Some(path) = spec.strip_prefix("picture:") {
            if path.is_empty() {
                return Err("expected picture:FILE.png".into());
            }
            return Ok(CameraChoice::Picture(PathBuf::from(path)));
        }
        if spec == "default" {
            return Ok(CameraChoice::Device(None));
        }
        let Some(rest) = spec.strip_prefix("synthetic") else {
            return Ok(CameraChoice::Device(Some(spec.to_string())));
        };
        let (width, height, fps) = match rest.strip_prefix(':') {
            None if rest.is_empty() => (640, 360, 30),
            Some(size) => {
                let (dims, fps) = size.split_once('@').unwrap_or((size, "30"));
                let (w, h) = dims
                    .split_once('x')
                    .ok_or("expected WIDTHxHEIGHT, e.g. synthetic:1280x720")?;
                let number = |v: &str, what: &str| {
                    v.parse::<usize>()
                        .map_err(|_| format!("the {what} in {spec:?} is not a number"))
                };
                (
                    number(w, "width")?,
                    number(h, "height")?,
                    number(fps, "frame rate")?,
                )
            }
            None => return Ok(CameraChoice::Device(Some(spec.to_string()))),
        };
        if !(16..=3840).contains(&width)
            || !(16..=2160).contains(&height)
            || !(1..=60).contains(&fps)
        {
            return Err(format!(
                "camera size or rate out of range: {width}x{height}@{fps}"
            ));
        }
        Ok(CameraChoice::Synthetic {
            width,
            height,
            fps: fps as u32,
        })
    }

    /// Whether this is a camera of the OS (which may vanish and come back).
    pub fn is_device(&self) -> bool {
        matches!(self, CameraChoice::Device(_))
    }
}

/// Opens the computer's sound for a share (the default speaker's
/// monitor), its encoder expecting `expected_loss` percent lost.
fn open_share_audio(now: Instant, expected_loss: u8) -> Result<ShareAudio, String> {
    let setup = |e: conclave_codec::CodecError| format!("Could not start the audio encoder: {e}");
    let mut encoder = OpusEncoder::with_frame(64_000, AUDIO_BLOCK).map_err(setup)?;
    encoder.set_expected_loss(expected_loss).map_err(setup)?;
    Ok(ShareAudio {
        device: open_output_monitor(now)?,
        // No voice processing: music and system sounds are not noise, and
        // their level is the user's to set.
        canceller: PlaybackCanceller::new(),
        encoder,
        next: now,
    })
}

/// The default speaker's monitor, as a capture device.
fn open_output_monitor(now: Instant) -> Result<Box<dyn Microphone>, String> {
    let monitor = conclave_media::system_audio::default_output_monitor_id()
        .ok_or("The computer's sound cannot be captured here (no monitor of the speaker).")?;
    let device = SystemMicrophone::open(Some(&monitor), now)
        .map_err(|e| format!("Could not capture the computer's sound: {e}"))?;
    Ok(Box::new(device))
}

impl RemoteMediaStats {
    fn with_video(mut self, v: crate::video::VideoCounts) -> Self {
        self.video_frames = v.frames;
        self.video_fps = v.fps;
        self.video_width = v.width;
        self.video_height = v.height;
        self
    }
}

/// Opens a camera; frames' `captured` counts from `epoch`.
pub fn open_camera(choice: &CameraChoice, epoch: Instant) -> Result<Box<dyn Camera>, DeviceError> {
    Ok(match choice {
        CameraChoice::Synthetic { width, height, fps } => {
            Box::new(TestPatternCamera::new(*width, *height, *fps, epoch))
        }
        CameraChoice::Device(wanted) => {
            Box::new(SystemCamera::open(wanted.as_deref(), 1280, 720, 30, epoch)?)
        }
        CameraChoice::Screen { display, source } => {
            let shared = conclave_screen::open(display.as_deref(), source.as_deref()).map_err(
                |e| match e {
                    conclave_screen::ScreenError::Gone(m) => DeviceError::Gone(m),
                    other => DeviceError::Unsupported(other.to_string()),
                },
            )?;
            Box::new(conclave_screen::ScreenCamera::new(shared, epoch))
        }
        CameraChoice::Picture(path) => Box::new(picture_camera(path, epoch)?),
    })
}

/// The still-picture camera: the PNG scaled to cover 640x360.
fn picture_camera(path: &std::path::Path, epoch: Instant) -> Result<StillCamera, DeviceError> {
    let bytes =
        std::fs::read(path).map_err(|e| DeviceError::Gone(format!("{}: {e}", path.display())))?;
    let picture = conclave_background::image::decode(&bytes)
        .map_err(|e| DeviceError::Unsupported(format!("{}: {e}", path.display())))?;
    let conclave_background::compose::Backdrop::Image {
        width,
        height,
        y,
        u,
        v,
    } = conclave_background::image::backdrop(&picture, 640, 360)
    else {
        return Err(DeviceError::Unsupported("not a picture".into()));
    };
    let frame = VideoFrame {
        width,
        height,
        y,
        u,
        v,
        captured: Duration::ZERO,
    };
    let name = path
        .file_name()
        .map_or_else(|| "Picture".into(), |n| n.to_string_lossy().into_owned());
    Ok(StillCamera::new(name, frame, 15, epoch))
}

/// Which microphone to send.
#[derive(Debug, Clone, PartialEq)]
pub enum MicrophoneChoice {
    /// A sine tone of this frequency.
    Tone(f64),
    /// A WAV file, looped.
    Wav(PathBuf),
    /// A microphone of the OS, by id or name; `None` is the OS default.
    Device(Option<String>),
}

/// Where received audio is played.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SpeakerChoice {
    /// Nowhere (decoded and mixed, then discarded).
    #[default]
    Null,
    /// A speaker of the OS, by id or name; `None` is the OS default.
    Device(Option<String>),
}

/// Media settings of one meeting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaOptions {
    /// Camera to send, if any.
    pub camera: Option<CameraChoice>,
    /// The codec our video is sent in (the server must allow it).
    pub video_codec: conclave_codec::VideoCodec,
    /// Microphone to send, if any.
    pub microphone: Option<MicrophoneChoice>,
    /// Where received audio is played.
    pub speaker: SpeakerChoice,
    /// Voice processing; `None` picks: on for OS microphones, off for
    /// synthetic ones.
    pub processing: Option<ProcessingSettings>,
    /// A screen or window to share from the start (`CameraChoice::Screen`).
    pub share: Option<CameraChoice>,
    /// Share the computer's sound with it (the default speaker's sound, less
    /// the meeting's own playback).
    pub share_audio: bool,
    /// Write each remote participant's played audio (WAV) and the decoded
    /// test-pattern stamps (CSV) into this directory.
    pub save_received: Option<PathBuf>,
    /// Called with every 10 ms of sound as it is played (each remote
    /// participant's, by id) and as it is sent (ours, as participant 0):
    /// for a local recording.
    pub audio_tap: Option<AudioTap>,
    /// A virtual background and face touch-up for the camera (not for
    /// shared screens).
    pub effects: VideoEffects,
}

/// What is done to the camera's pictures on this device before anyone
/// sees them (the self view included): only the result is encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoEffects {
    /// A virtual background.
    pub background: Option<BackgroundOptions>,
    /// Face touch-up: skin smoothing and light correction.
    pub touch_up: bool,
}

impl VideoEffects {
    /// Whether anything is done at all.
    pub fn is_active(&self) -> bool {
        self.background.is_some() || self.touch_up
    }
}

/// A virtual background: the segmentation model and what goes behind the
/// person. Applied on the device before encoding; only the composite is
/// sent.
#[derive(Clone, PartialEq, Eq)]
pub struct BackgroundOptions {
    /// The `.tflite` segmentation model.
    pub model: std::sync::Arc<Vec<u8>>,
    /// Blur or a picture.
    pub backdrop: BackdropChoice,
}

impl std::fmt::Debug for BackgroundOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the picture's bytes.
        write!(f, "BackgroundOptions({:?})", self.backdrop)
    }
}

/// What replaces the camera's background.
#[derive(Clone, PartialEq, Eq)]
pub enum BackdropChoice {
    /// The room, blurred.
    Blur(conclave_background::compose::BlurStrength),
    /// A picture (decoded and checked).
    Picture(std::sync::Arc<conclave_background::image::Picture>),
}

impl std::fmt::Debug for BackdropChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackdropChoice::Blur(s) => write!(f, "Blur({s:?})"),
            BackdropChoice::Picture(p) => write!(f, "Picture({}x{})", p.width, p.height),
        }
    }
}

/// What an [`AudioTap`] calls: (participant id, 10 ms block).
pub type AudioCallback = dyn Fn(u64, &AudioFrame) + Send + Sync;

/// Receives the meeting's sound, per participant (a local recording).
#[derive(Clone)]
pub struct AudioTap(pub std::sync::Arc<AudioCallback>);

impl std::fmt::Debug for AudioTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioTap")
    }
}

impl PartialEq for AudioTap {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One encoded frame for the client.
pub(crate) struct Encoded {
    pub video: bool,
    /// From the screen share rather than the camera.
    pub screen: bool,
    pub data: Vec<u8>,
    pub captured: Duration,
    pub level: u8,
    /// For video: counted as waiting for the meeting loop until dropped
    /// (held only for that).
    pub _in_flight: Option<crate::video::InFlight>,
}

/// Something the user should hear about (a device vanished...).
pub(crate) enum MediaNotice {
    Warning(String),
    /// The desktop gave a token that shares the same screen next time
    /// without asking.
    ShareRestoreToken(String),
}

/// Level below which (in -dBov) someone counts as talking.
const TALKING_DBOV: u8 = 45;
/// How long someone stays "talking" after the last loud block.
const TALKING_HANGOVER: Duration = Duration::from_millis(600);
/// Largest backlog of 10 ms ticks worked off at once.
const MAX_CATCH_UP: Duration = Duration::from_millis(60);
/// How often a vanished device is looked for again.
pub(crate) const DEVICE_RETRY: Duration = Duration::from_secs(2);

/// How often a chosen microphone or speaker is looked for while another
/// plays its part.
const CHOSEN_RECHECK: Duration = Duration::from_secs(2);

/// Looks, on a thread of its own (listing devices can take a while on a
/// busy machine), for the device the user chose while a stand-in plays its
/// part; [`ChosenWatch::found`] turns true once it is there. Ends when
/// dropped.
struct ChosenWatch {
    found: Arc<AtomicBool>,
    _alive: Arc<()>,
}

impl ChosenWatch {
    fn start(kind: conclave_media::DeviceKind, wanted: &str) -> Self {
        let found = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(());
        let (flag, owner, wanted) = (found.clone(), Arc::downgrade(&alive), wanted.to_owned());
        let _ = std::thread::Builder::new()
            .name("device-watch".into())
            .spawn(move || loop {
                std::thread::sleep(CHOSEN_RECHECK);
                if owner.upgrade().is_none() {
                    return;
                }
                if conclave_media::system_audio::is_present(kind, &wanted) {
                    flag.store(true, Ordering::Relaxed);
                    return;
                }
            });
        ChosenWatch {
            found,
            _alive: alive,
        }
    }

    fn found(&self) -> bool {
        self.found.load(Ordering::Relaxed)
    }
}

struct Remote {
    audio: Option<(OpusDecoder, JitterBuffer)>,
    pcm: VecDeque<i16>,
    recorder: Option<WavRecorder>,
    level: u8,
    loud_until: Option<Instant>,
}

impl Remote {
    fn new() -> Self {
        Remote {
            audio: None,
            pcm: VecDeque::new(),
            recorder: None,
            level: 127,
            loud_until: None,
        }
    }

    /// The next 10 ms of this participant's audio.
    fn next_block(&mut self, now: Instant) -> AudioFrame {
        let mut block = AudioFrame::silence(Duration::ZERO);
        if let Some((decoder, jitter)) = &mut self.audio {
            while self.pcm.len() < AUDIO_BLOCK {
                let playout = jitter.next(now);
                tracing::trace!(kind = ?std::mem::discriminant(&playout), buffered = ?jitter.buffered(), "playout");
                let samples = match playout {
                    Playout::Decode(p) => decoder.decode(&p),
                    Playout::DecodeFec(next) => {
                        decoder.conceal(Some(&next), jitter.packet_samples())
                    }
                    Playout::Conceal(n) => decoder.conceal(None, n),
                    Playout::Silence(n) => Ok(vec![0; n]),
                };
                match samples {
                    Ok(s) if !s.is_empty() => self.pcm.extend(s),
                    Ok(_) => self.pcm.extend(std::iter::repeat_n(0, AUDIO_BLOCK)),
                    Err(e) => {
                        debug!(error = %e, "undecodable audio packet");
                        self.pcm.extend(std::iter::repeat_n(0, AUDIO_BLOCK));
                    }
                }
            }
            for (o, s) in block.samples.iter_mut().zip(self.pcm.drain(..AUDIO_BLOCK)) {
                *o = s;
            }
        }
        block
    }
}

/// Local microphone state.
struct Mic {
    device: Option<Box<dyn Microphone>>,
    choice: MicrophoneChoice,
    encoder: OpusEncoder,
    processor: VoiceProcessor,
    muted: bool,
    retry_at: Option<Instant>,
    level: u8,
    /// Capture time of the last block sent (the RTP timeline).
    last_captured: Option<Duration>,
    /// While another microphone stands in for the chosen one: looking for it.
    chosen: Option<ChosenWatch>,
}

/// The computer's sound, shared with the screen: what the OS default
/// speaker plays (its monitor), less our own playback (subtracted: the
/// monitor holds a digital copy of what we played), in Opus.
struct ShareAudio {
    device: Box<dyn Microphone>,
    canceller: PlaybackCanceller,
    encoder: OpusEncoder,
    next: Instant,
}

/// Speaker state.
struct Out {
    device: Option<Box<dyn Speaker>>,
    wanted: Option<String>,
    retry_at: Option<Instant>,
    /// While another speaker stands in for the chosen one: looking for it.
    chosen: Option<ChosenWatch>,
}

/// Devices and codecs of one meeting.
pub(crate) struct MediaIo {
    epoch: Instant,
    camera: Option<VideoSender>,
    /// The screen being shared, if any.
    share: Option<VideoSender>,
    /// The computer's sound shared with it, if asked for.
    share_audio: Option<ShareAudio>,
    video_codec: conclave_codec::VideoCodec,
    video_out: tokio::sync::mpsc::UnboundedSender<Encoded>,
    frame_sink: Option<FrameSink>,
    video_in: VideoReceiver,
    mic: Option<Mic>,
    out: Option<Out>,
    next_audio: Instant,
    next_playout: Instant,
    save: Option<PathBuf>,
    audio_tap: Option<AudioTap>,
    remotes: BTreeMap<u64, Remote>,
    notices: Vec<MediaNotice>,
    talking: BTreeMap<u64, bool>,
    /// Microphone packets made so far.
    audio_sent: u64,
    /// How much protection our audio gets, from the loss reported.
    protection: crate::adapt::AudioProtection,
    /// Whether our audio goes out with RED (the publisher says).
    redundancy: bool,
    /// The expected loss Opus was last given, in percent.
    protection_percent: u8,
}

fn open_microphone(
    choice: &MicrophoneChoice,
    now: Instant,
) -> Result<Box<dyn Microphone>, DeviceError> {
    Ok(match choice {
        MicrophoneChoice::Tone(f) => Box::new(ToneMicrophone::new(*f, 0.3, now)),
        MicrophoneChoice::Wav(path) => Box::new(WavMicrophone::open(path, true, now)?),
        MicrophoneChoice::Device(wanted) => {
            Box::new(SystemMicrophone::open(wanted.as_deref(), now)?)
        }
    })
}

impl MediaIo {
    /// Opens the chosen devices and their encoders; encoded video arrives
    /// on `video_out` (it is made on a thread of its own).
    pub fn open(
        options: &MediaOptions,
        now: Instant,
        video_out: tokio::sync::mpsc::UnboundedSender<Encoded>,
        frame_sink: Option<FrameSink>,
    ) -> Result<Self, String> {
        let camera = match &options.camera {
            None => None,
            Some(choice) => Some(VideoSender::start(
                choice,
                options.video_codec,
                false,
                now,
                video_out.clone(),
                frame_sink.clone(),
                options.effects.clone(),
            )?),
        };
        let mut notices = Vec::new();
        let mic = match &options.microphone {
            None => None,
            Some(choice) => {
                // An OS microphone that cannot be opened now does not stop
                // the meeting: it is looked for again, and the user told.
                let (device, retry_at) = match open_microphone(choice, now) {
                    Ok(d) => {
                        info!(microphone = %d.info().name, "microphone open");
                        (Some(d), None)
                    }
                    Err(e) if matches!(choice, MicrophoneChoice::Device(_)) => {
                        warn!(error = %e, "no microphone");
                        notices.push(MediaNotice::Warning(format!(
                            "Could not open the microphone ({e}). You are in the meeting without one; it is looked for again."
                        )));
                        (None, Some(now + DEVICE_RETRY))
                    }
                    Err(e) => return Err(format!("Could not open the microphone: {e}")),
                };
                // 10 ms packets: the lowest delay Opus offers for voice
                // (20 ms while the loss calls for protection or RED is
                // sent: `apply_protection`).
                let mut encoder = OpusEncoder::with_frame(32_000, AUDIO_BLOCK)
                    .map_err(|e| format!("Could not start the audio encoder: {e}"))?;
                // No loss is expected until the server reports some: FEC
                // takes no bits from the voice on a clean link.
                encoder
                    .set_expected_loss(crate::adapt::AudioProtection::default().percent())
                    .map_err(|e| format!("Could not start the audio encoder: {e}"))?;
                let settings = options.processing.unwrap_or(match choice {
                    MicrophoneChoice::Device(_) => ProcessingSettings::default(),
                    _ => ProcessingSettings::off(),
                });
                Some(Mic {
                    device,
                    choice: choice.clone(),
                    encoder,
                    processor: VoiceProcessor::new(settings),
                    muted: false,
                    retry_at,
                    level: 127,
                    last_captured: None,
                    chosen: None,
                })
            }
        };
        let out = match &options.speaker {
            SpeakerChoice::Null => None,
            SpeakerChoice::Device(wanted) => {
                let (device, retry_at): (Option<Box<dyn Speaker>>, _) = match SystemSpeaker::open(
                    wanted.as_deref(),
                ) {
                    Ok(d) => {
                        info!(speaker = %d.info().name, "speaker open");
                        (Some(Box::new(d)), None)
                    }
                    Err(e) => {
                        warn!(error = %e, "no speaker");
                        notices.push(MediaNotice::Warning(format!(
                                "Could not open the speaker ({e}). Others cannot be heard until one is found."
                            )));
                        (None, Some(now + DEVICE_RETRY))
                    }
                };
                Some(Out {
                    device,
                    wanted: wanted.clone(),
                    retry_at,
                    chosen: None,
                })
            }
        };
        if let Some(dir) = &options.save_received {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("Could not create {}: {e}", dir.display()))?;
        }
        let video_in = VideoReceiver::start(options.save_received.clone())?;
        video_in.set_sink(frame_sink.clone());
        let share = match &options.share {
            None => None,
            Some(choice) => Some(VideoSender::start(
                choice,
                options.video_codec,
                true,
                now,
                video_out.clone(),
                frame_sink.clone(),
                VideoEffects::default(),
            )?),
        };
        let share_audio = if share.is_some() && options.share_audio {
            Some(open_share_audio(
                now,
                crate::adapt::AudioProtection::default().percent(),
            )?)
        } else {
            None
        };
        Ok(MediaIo {
            epoch: now,
            camera,
            share,
            share_audio,
            video_codec: options.video_codec,
            video_out,
            frame_sink,
            video_in,
            mic,
            out,
            next_audio: now + Duration::from_millis(10),
            next_playout: now + Duration::from_millis(10),
            audio_sent: 0,
            protection: crate::adapt::AudioProtection::default(),
            redundancy: false,
            protection_percent: crate::adapt::AudioProtection::default().percent(),
            save: options.save_received.clone(),
            audio_tap: options.audio_tap.clone(),
            remotes: BTreeMap::new(),
            notices,
            talking: BTreeMap::new(),
        })
    }

    /// What is sent, for the client's offer: audio, camera, screen, the
    /// computer's sound.
    pub fn sends(&self) -> (bool, bool, bool, bool) {
        (
            self.mic.is_some(),
            self.camera.is_some(),
            self.share.is_some(),
            self.share_audio.is_some(),
        )
    }

    /// Notices for the user since the last call.
    pub fn take_notices(&mut self) -> Vec<MediaNotice> {
        for sender in [&self.camera, &self.share].into_iter().flatten() {
            self.notices
                .extend(sender.take_notices().into_iter().map(MediaNotice::Warning));
        }
        if let Some(token) = self.share.as_ref().and_then(|s| s.take_restore_token()) {
            self.notices.push(MediaNotice::ShareRestoreToken(token));
        }
        std::mem::take(&mut self.notices)
    }

    /// Mutes or unmutes the microphone (muted: nothing is sent).
    pub fn set_muted(&mut self, muted: bool) {
        if let Some(m) = &mut self.mic {
            m.muted = muted;
        }
    }

    /// Turns the camera on or off (off: nothing is sent).
    pub fn set_camera_on(&mut self, on: bool) {
        if let Some(c) = &mut self.camera {
            c.set_enabled(on);
        }
    }

    /// Switches the microphone without leaving the meeting.
    pub fn switch_microphone(
        &mut self,
        choice: MicrophoneChoice,
        now: Instant,
    ) -> Result<(), String> {
        let device = open_microphone(&choice, now)
            .map_err(|e| format!("Could not open the microphone: {e}"))?;
        match &mut self.mic {
            Some(m) => {
                m.device = Some(device);
                m.choice = choice;
                m.retry_at = None;
                m.chosen = None;
                Ok(())
            }
            None => Err("This meeting was joined without a microphone.".into()),
        }
    }

    /// Starts sharing a screen or window (replacing a running share), with
    /// the computer's sound if `audio`.
    pub fn start_share(&mut self, choice: CameraChoice, audio: bool) -> Result<(), String> {
        if !matches!(choice, CameraChoice::Screen { .. }) {
            return Err("Only a screen or a window can be shared.".into());
        }
        self.share = None;
        self.share_audio = None;
        if audio {
            match open_share_audio(Instant::now(), self.protection_percent) {
                Ok(a) => self.share_audio = Some(a),
                Err(e) => self.notices.push(MediaNotice::Warning(e)),
            }
        }
        self.share = Some(VideoSender::start(
            &choice,
            self.video_codec,
            true,
            self.epoch,
            self.video_out.clone(),
            self.frame_sink.clone(),
            VideoEffects::default(),
        )?);
        if self.share_audio.is_some() {
            // While the computer's sound is shared our playback drops the
            // phone role: the OS would otherwise mute the music or video
            // being shared (PulseAudio's role-cork).
            self.reopen_speaker();
        }
        Ok(())
    }

    /// Stops sharing.
    pub fn stop_share(&mut self) {
        self.share = None;
        let had_audio = self.share_audio.take().is_some();
        if had_audio {
            self.reopen_speaker();
        }
    }

    /// Opens the speaker again (its role follows whether the computer's
    /// sound is shared); on failure the old one stays.
    fn reopen_speaker(&mut self) {
        let Some(wanted) = self
            .out
            .as_ref()
            .filter(|o| o.device.is_some())
            .map(|o| o.wanted.clone())
        else {
            return;
        };
        if let Err(e) = self.switch_speaker(wanted) {
            warn!(error = %e, "speaker not reopened");
        }
    }

    /// Whether the share carries the computer's sound.
    pub fn shares_audio(&self) -> bool {
        self.share_audio.is_some()
    }

    /// Whether a share is running.
    pub fn is_sharing(&self) -> bool {
        self.share.is_some()
    }

    /// Ends a share whose screen or window went away; returns whether it
    /// did (the client then stops offering it).
    pub fn end_lost_share(&mut self) -> bool {
        if self.share.as_ref().is_some_and(|s| !s.has_device()) {
            if let Some(s) = self.share.take() {
                self.notices
                    .extend(s.take_notices().into_iter().map(MediaNotice::Warning));
            }
            return true;
        }
        false
    }

    /// Switches the camera without leaving the meeting.
    pub fn switch_camera(&mut self, choice: CameraChoice) -> Result<(), String> {
        match &mut self.camera {
            Some(c) => c.switch(choice),
            None => Err("This meeting was joined without video; rejoin to send video.".into()),
        }
    }

    /// Changes the camera's effects (virtual background, touch-up) from the
    /// next picture on.
    pub fn set_effects(&mut self, effects: VideoEffects) -> Result<(), String> {
        match &mut self.camera {
            Some(c) => c.set_effects(effects),
            None => Err("This meeting was joined without video; rejoin to send video.".into()),
        }
    }

    /// Switches the speaker without leaving the meeting.
    pub fn switch_speaker(&mut self, wanted: Option<String>) -> Result<(), String> {
        let device = SystemSpeaker::open_for(wanted.as_deref(), self.share_audio.is_none())
            .map_err(|e| format!("Could not open the speaker: {e}"))?;
        self.out = Some(Out {
            device: Some(Box::new(device)),
            wanted,
            retry_at: None,
            chosen: None,
        });
        Ok(())
    }

    /// When something is next due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mic = self.mic.as_ref().map(|_| self.next_audio);
        let playout = (!self.remotes.is_empty()).then_some(self.next_playout);
        let shared = self.share_audio.as_ref().map(|a| a.next);
        [mic, playout, shared].into_iter().flatten().min()
    }

    /// The next video frame (of the camera or the share) is to be a keyframe.
    pub fn request_keyframe(&mut self, screen: bool) {
        let sender = if screen { &self.share } else { &self.camera };
        if let Some(c) = sender {
            c.request_keyframe();
        }
    }

    /// Changes the video bitrate (bandwidth estimate).
    pub fn set_video_bitrate(&mut self, bps: u32) {
        if let Some(c) = &self.camera {
            c.set_bitrate(bps);
        }
    }

    /// The share of our audio the server reports lost: Opus's protection
    /// (its expected-loss setting, which paces its in-band FEC) follows.
    pub fn on_audio_loss(&mut self, fraction: f32, now: Instant) {
        self.protection.on_report(fraction, now);
        self.apply_protection();
    }

    /// Our audio goes out with RED (RFC 2198) or not any more: with it,
    /// Opus protects only what RED leaves.
    pub fn set_audio_redundancy(&mut self, on: bool) {
        self.redundancy = on;
        info!(on, "audio sent with redundancy");
        self.apply_protection();
    }

    /// Sets Opus's expected loss (what RED leaves, with RED) and its packet
    /// size: 20 ms while there is RED or the loss calls for protection
    /// (half the packets to lose, and the codec's concealment and FEC work
    /// better on them: PESQ 3.24 against 2.60 at 4 % loss, 1.93 against
    /// 1.68 at 20 % without RED, `examples/opus_loss`), 10 ms on a clean
    /// link for the lowest delay.
    fn apply_protection(&mut self) {
        let percent = if self.redundancy {
            self.protection.percent_with_redundancy()
        } else {
            self.protection.percent()
        };
        let frame = if self.redundancy || self.protection.percent() >= 5 {
            conclave_codec::opus::FRAME_SAMPLES
        } else {
            AUDIO_BLOCK
        };
        if let Some(m) = &mut self.mic {
            if m.encoder.frame_samples() != frame {
                info!(ms = frame / 48, "audio packet size");
                if let Err(e) = m.encoder.set_frame_samples(frame) {
                    debug!(error = %e, "could not change the audio packet size");
                }
            }
        }
        if percent == self.protection_percent {
            return;
        }
        self.protection_percent = percent;
        info!(percent, loss = ?self.protection.loss(), redundancy = self.redundancy, "audio protection");
        if let Some(m) = &mut self.mic {
            if let Err(e) = m.encoder.set_expected_loss(percent) {
                debug!(error = %e, "could not set the expected loss");
            }
        }
        if let Some(a) = &mut self.share_audio {
            if let Err(e) = a.encoder.set_expected_loss(percent) {
                debug!(error = %e, "could not set the expected loss");
            }
        }
    }

    /// The local microphone's level (-dBov, 127 = silence or muted).
    pub fn local_level(&self) -> u8 {
        self.mic
            .as_ref()
            .map_or(127, |m| if m.muted { 127 } else { m.level })
    }

    /// Who talks now, changes since the last call: (participant, talking).
    pub fn talking_changes(&mut self, now: Instant) -> Vec<(u64, bool)> {
        let mut changes = Vec::new();
        for (&id, r) in &self.remotes {
            let talking = r.loud_until.is_some_and(|t| t > now);
            let was = self.talking.insert(id, talking).unwrap_or(false);
            if talking != was {
                changes.push((id, talking));
            }
        }
        changes
    }

    /// Media figures for the statistics panel and scripts.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            mic_level: self.local_level(),
            muted: self.mic.as_ref().is_some_and(|m| m.muted),
            camera_on: self.camera.as_ref().is_some_and(VideoSender::is_enabled),
            has_camera: self.camera.as_ref().is_some_and(VideoSender::has_device),
            has_microphone: self.mic.as_ref().is_some_and(|m| m.device.is_some()),
            sharing: self.share.is_some(),
            effects: self.camera.as_ref().and_then(VideoSender::effects_cost),
            sending: crate::api::SendingStats {
                audio_packets: self.audio_sent,
                audio_loss_permille: self
                    .protection
                    .loss()
                    .map_or(0, |l| (l * 1000.0).round() as u32),
                audio_protection_percent: u32::from(self.protection_percent),
                ..self
                    .camera
                    .as_ref()
                    .map(VideoSender::sending)
                    .unwrap_or_default()
            },
            network: Default::default(),
            remotes: self
                .remotes
                .iter()
                .map(|(&participant, r)| {
                    let jitter = r.audio.as_ref().map(|(_, j)| j.stats()).unwrap_or_default();
                    RemoteMediaStats {
                        participant: participant.to_string(),
                        audio_packets: jitter.received,
                        audio_recovered: jitter.recovered,
                        audio_concealed: jitter.concealed,
                        audio_late: jitter.late + jitter.dropped,
                        jitter_target_ms: r
                            .audio
                            .as_ref()
                            .map_or(0, |(_, j)| j.target_delay().as_millis() as u32),
                        level: r.level,
                        video_frames: 0,
                        video_fps: 0,
                        video_width: 0,
                        video_height: 0,
                    }
                    .with_video(self.video_in.counters(participant))
                })
                .chain(
                    // Video-only participants.
                    self.video_in
                        .participants()
                        .into_iter()
                        .filter(|p| !self.remotes.contains_key(p))
                        .map(|p| {
                            RemoteMediaStats {
                                participant: p.to_string(),
                                audio_packets: 0,
                                audio_recovered: 0,
                                audio_concealed: 0,
                                audio_late: 0,
                                jitter_target_ms: 0,
                                level: 127,
                                video_frames: 0,
                                video_fps: 0,
                                video_width: 0,
                                video_height: 0,
                            }
                            .with_video(self.video_in.counters(p))
                        }),
                )
                .collect(),
        }
    }

    /// A participant left: forget their decoders and close their files.
    pub fn remove_remote(&mut self, participant: u64) {
        if let Some(mut r) = self.remotes.remove(&participant) {
            finish_remote(&mut r);
        }
        self.video_in.remove(participant);
        self.talking.remove(&participant);
    }

    /// Captures, encodes and plays the audio due at `now` (video is made
    /// on its own thread).
    pub fn poll(&mut self, now: Instant) -> Vec<Encoded> {
        let mut out = Vec::new();
        self.poll_playout(now);
        self.poll_microphone(now, &mut out);
        self.poll_share_audio(now, &mut out);
        out
    }

    fn poll_share_audio(&mut self, now: Instant, out: &mut Vec<Encoded>) {
        let Some(shared) = &mut self.share_audio else {
            return;
        };
        if shared.next > now {
            return;
        }
        shared.next = now + Duration::from_millis(10);
        loop {
            match shared.device.poll_block(now) {
                Ok(Some(mut block)) => {
                    let lag = shared.canceller.lag();
                    shared.canceller.capture(&mut block);
                    if shared.canceller.lag() != lag {
                        debug!(lag = ?shared.canceller.lag(), "own playback found in the computer's sound at a new delay");
                    }
                    match shared.encoder.encode(&block) {
                        Ok(Some(data)) => out.push(Encoded {
                            video: false,
                            screen: true,
                            data,
                            captured: block.captured,
                            level: block.level_dbov(),
                            _in_flight: None,
                        }),
                        Ok(None) => {}
                        Err(e) => warn!(error = %e, "computer sound encoding failed"),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "computer sound capture failed");
                    // Its stream may have died while the monitor is still
                    // there (the sound server dropped us): open it again.
                    if let Ok(device) = open_output_monitor(now) {
                        shared.device = device;
                        warn!("computer sound captured again");
                        break;
                    }
                    self.notices.push(MediaNotice::Warning(format!(
                        "The computer's sound is no longer shared: {}.",
                        device_reason(&e)
                    )));
                    self.share_audio = None;
                    break;
                }
            }
        }
    }

    fn poll_microphone(&mut self, now: Instant, out: &mut Vec<Encoded>) {
        let Some(mic) = &mut self.mic else { return };
        let wanted = match &mic.choice {
            MicrophoneChoice::Device(Some(name)) => Some(name.clone()),
            _ => None,
        };
        if mic.device.is_none() && mic.retry_at.is_some_and(|t| t <= now) {
            // The chosen microphone again (it may be back), else the default
            // (and the chosen one looked for meanwhile).
            let (opened, stand_in) = match open_microphone(&mic.choice, now) {
                Ok(d) => (Ok(d), false),
                Err(_) => (
                    open_microphone(&MicrophoneChoice::Device(None), now),
                    wanted.is_some(),
                ),
            };
            match opened {
                Ok(d) => {
                    let name = d.info().name;
                    info!(microphone = %name, stand_in, "microphone fallback");
                    self.notices.push(MediaNotice::Warning(format!(
                        "Now using the microphone “{name}”."
                    )));
                    mic.device = Some(d);
                    mic.retry_at = None;
                    mic.chosen = wanted
                        .as_deref()
                        .filter(|_| stand_in)
                        .map(|w| ChosenWatch::start(conclave_media::DeviceKind::Microphone, w));
                }
                Err(_) => mic.retry_at = Some(now + DEVICE_RETRY * 3),
            }
        }
        // The chosen microphone is back: it takes over from the stand-in.
        if mic.chosen.as_ref().is_some_and(ChosenWatch::found) {
            mic.chosen = None;
            match open_microphone(&mic.choice, now) {
                Ok(d) => {
                    let name = d.info().name;
                    info!(microphone = %name, "chosen microphone back");
                    self.notices.push(MediaNotice::Warning(format!(
                        "Now using the microphone “{name}”."
                    )));
                    mic.device = Some(d);
                }
                Err(e) => {
                    debug!(error = %e, "the chosen microphone is listed but does not open");
                    if let Some(w) = &wanted {
                        mic.chosen = Some(ChosenWatch::start(
                            conclave_media::DeviceKind::Microphone,
                            w,
                        ));
                    }
                }
            }
        }
        if self.next_audio + MAX_CATCH_UP < now {
            self.next_audio = now;
        }
        while self.next_audio <= now {
            self.next_audio += Duration::from_millis(10);
            let Some(device) = &mut mic.device else {
                continue;
            };
            loop {
                match device.poll_block(now) {
                    Ok(Some(mut block)) => {
                        // The sent timeline moves 10 ms per block and never
                        // back, also across a change of microphone; a gap
                        // (a device that came back) shows as a jump ahead.
                        block.captured = match mic.last_captured {
                            Some(last) if block.captured <= last + MAX_CATCH_UP * 2 => {
                                last + Duration::from_millis(10)
                            }
                            _ => block.captured,
                        };
                        mic.last_captured = Some(block.captured);
                        mic.processor.capture(&mut block);
                        let level = block.level_dbov();
                        mic.level = level;
                        if mic.muted {
                            continue;
                        }
                        if let Some(tap) = &self.audio_tap {
                            (tap.0)(0, &block);
                        }
                        match mic.encoder.encode(&block) {
                            Ok(Some(data)) => {
                                self.audio_sent += 1;
                                // A packet's time is its first sample's.
                                let blocks = mic.encoder.frame_samples() / AUDIO_BLOCK;
                                let earlier = Duration::from_millis(10 * (blocks as u64 - 1));
                                out.push(Encoded {
                                    video: false,
                                    screen: false,
                                    data,
                                    captured: block.captured.saturating_sub(earlier),
                                    level,
                                    _in_flight: None,
                                });
                            }
                            Ok(None) => {}
                            Err(e) => warn!(error = %e, "audio encoding failed"),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let name = device.info().name;
                        warn!(error = %e, "microphone failed");
                        self.notices.push(MediaNotice::Warning(format!(
                            "Microphone “{name}”: {}. Looking for another one.",
                            device_reason(&e)
                        )));
                        mic.device = None;
                        mic.retry_at = Some(now);
                        break;
                    }
                }
                // Synthetic microphones hand out one block per poll.
                if !matches!(mic.choice, MicrophoneChoice::Device(_)) {
                    break;
                }
            }
        }
    }

    fn poll_playout(&mut self, now: Instant) {
        if let Some(o) = &mut self.out {
            let call = self.share_audio.is_none();
            if o.device.is_none() && o.retry_at.is_some_and(|t| t <= now) {
                // The chosen speaker again (it may be back), else the default
                // (and the chosen one looked for meanwhile).
                let (opened, stand_in) = match SystemSpeaker::open_for(o.wanted.as_deref(), call) {
                    Ok(d) => (Ok(d), false),
                    Err(_) => (SystemSpeaker::open_for(None, call), o.wanted.is_some()),
                };
                match opened {
                    Ok(d) => {
                        let name = d.info().name;
                        info!(speaker = %name, stand_in, "speaker fallback");
                        self.notices
                            .push(MediaNotice::Warning(format!("Now playing on “{name}”.")));
                        o.device = Some(Box::new(d));
                        o.retry_at = None;
                        o.chosen =
                            o.wanted.as_deref().filter(|_| stand_in).map(|w| {
                                ChosenWatch::start(conclave_media::DeviceKind::Speaker, w)
                            });
                    }
                    Err(_) => o.retry_at = Some(now + DEVICE_RETRY * 3),
                }
            }
            // The chosen speaker is back: it takes over from the stand-in.
            if o.chosen.as_ref().is_some_and(ChosenWatch::found) {
                o.chosen = None;
                match SystemSpeaker::open_for(o.wanted.as_deref(), call) {
                    Ok(d) => {
                        let name = d.info().name;
                        info!(speaker = %name, "chosen speaker back");
                        self.notices
                            .push(MediaNotice::Warning(format!("Now playing on “{name}”.")));
                        o.device = Some(Box::new(d));
                    }
                    Err(e) => {
                        debug!(error = %e, "the chosen speaker is listed but does not open");
                        if let Some(w) = &o.wanted {
                            o.chosen =
                                Some(ChosenWatch::start(conclave_media::DeviceKind::Speaker, w));
                        }
                    }
                }
            }
        }
        // What the speaker took since the last poll, silence included: the
        // copy of our playback in the computer's sound is made of exactly
        // this, so the shared sound's canceller learns from it.
        let tapped = match self
            .out
            .as_mut()
            .and_then(|o| o.device.as_mut())
            .and_then(|d| d.take_played())
        {
            Some(samples) => {
                if let Some(a) = &mut self.share_audio {
                    a.canceller.played(&samples);
                }
                true
            }
            None => false,
        };
        // After a stall (or before anyone sent audio), start afresh instead
        // of playing a burst of catch-up blocks.
        if self.next_playout + MAX_CATCH_UP < now {
            self.next_playout = now;
        }
        while self.next_playout <= now {
            self.next_playout += Duration::from_millis(10);
            if self.remotes.is_empty() {
                continue;
            }
            let mut mix = vec![0i32; AUDIO_BLOCK];
            for (id, r) in self.remotes.iter_mut() {
                let block = r.next_block(now);
                let level = block.level_dbov();
                r.level = level;
                if level <= TALKING_DBOV {
                    r.loud_until = Some(now + TALKING_HANGOVER);
                }
                for (m, s) in mix.iter_mut().zip(&block.samples) {
                    *m += i32::from(*s);
                }
                if let Some(rec) = &mut r.recorder {
                    let _ = rec.play(&block);
                }
                if let Some(tap) = &self.audio_tap {
                    (tap.0)(*id, &block);
                }
            }
            let mixed = AudioFrame {
                samples: mix
                    .into_iter()
                    .map(|v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
                    .collect(),
                captured: now.saturating_duration_since(self.epoch),
            };
            if let Some(m) = &mut self.mic {
                m.processor.render(&mixed);
            }
            // What we play is also in the computer's sound: the shared
            // sound's canceller subtracts it (learning from what the speaker
            // really took, above, where the speaker tells).
            if let Some(a) = &mut self.share_audio {
                if !tapped {
                    a.canceller.played(&mixed.samples);
                }
            }
            if let Some(o) = &mut self.out {
                if let Some(d) = &mut o.device {
                    tracing::trace!(queued = ?d.queued(), buffered = ?self.remotes.values().filter_map(|r| r.audio.as_ref().map(|(_, j)| j.buffered())).collect::<Vec<_>>(), pcm = self.remotes.values().map(|r| r.pcm.len()).sum::<usize>(), "playout");
                    if let Err(e) = d.play(&mixed) {
                        let name = d.info().name;
                        warn!(error = %e, "speaker failed");
                        self.notices.push(MediaNotice::Warning(format!(
                            "Speaker “{name}”: {}. Looking for another one.",
                            device_reason(&e)
                        )));
                        o.device = None;
                        o.retry_at = Some(now);
                    }
                }
            }
        }
    }

    /// Tiles whose sender should be asked for a keyframe (their video
    /// could not be decoded from where it was).
    pub fn keyframes_needed(&self) -> Vec<u64> {
        self.video_in.take_keyframe_requests()
    }

    /// Takes in a remote participant's frame.
    pub fn on_remote(
        &mut self,
        participant: u64,
        video: Option<conclave_codec::VideoCodec>,
        data: &[u8],
        rtp_time: u64,
        now: Instant,
    ) {
        if let Some(codec) = video {
            self.video_in.push(participant, codec, data.to_vec());
        } else {
            let save = self.save.clone();
            let remote = self.remotes.entry(participant).or_insert_with(Remote::new);
            if remote.audio.is_none() {
                match OpusDecoder::new() {
                    Ok(d) => remote.audio = Some((d, JitterBuffer::new())),
                    Err(e) => warn!(error = %e, "could not start an audio decoder"),
                }
                if let Some(dir) = &save {
                    let path = dir.join(format!("{participant}-audio.wav"));
                    match WavRecorder::create(&path) {
                        Ok(r) => remote.recorder = Some(r),
                        Err(e) => warn!(error = %e, "could not create the audio recording"),
                    }
                }
            }
            if let Some((_, jitter)) = &mut remote.audio {
                tracing::trace!(participant, rtp_time, len = data.len(), "audio packet");
                jitter.insert(rtp_time, data.to_vec(), now);
            }
        }
    }

    /// Flushes recordings.
    pub fn finish(&mut self) {
        for r in self.remotes.values_mut() {
            finish_remote(r);
        }
        self.video_in.flush();
    }
}

/// Why a device ended, for the user.
fn device_reason(e: &DeviceError) -> String {
    match e {
        DeviceError::Gone(why) => why
            .rsplit_once(": ")
            .map_or(why.as_str(), |(_, reason)| reason)
            .to_string(),
        other => other.to_string(),
    }
}

fn finish_remote(r: &mut Remote) {
    if let Some(rec) = &mut r.recorder {
        let _ = rec.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_names_parse() {
        assert_eq!(
            CameraChoice::parse("synthetic"),
            Ok(CameraChoice::Synthetic {
                width: 640,
                height: 360,
                fps: 30
            })
        );
        assert_eq!(
            CameraChoice::parse("synthetic:1280x720@15"),
            Ok(CameraChoice::Synthetic {
                width: 1280,
                height: 720,
                fps: 15
            })
        );
        assert_eq!(
            CameraChoice::parse("default"),
            Ok(CameraChoice::Device(None))
        );
        assert_eq!(
            CameraChoice::parse("/dev/video2"),
            Ok(CameraChoice::Device(Some("/dev/video2".into())))
        );
        assert!(CameraChoice::parse("synthetic:99999x2").is_err());
        assert!(CameraChoice::parse("synthetic:axb").is_err());
        assert!(CameraChoice::parse("synthetic:640x360@0").is_err());
        assert!(CameraChoice::parse("").is_err());
    }

    #[test]
    fn a_missing_os_camera_leaves_the_meeting_without_video_and_says_so() {
        if conclave_media::system_camera::list_cameras().is_ok_and(|c| !c.is_empty()) {
            return; // The fallback would find this machine's camera.
        }
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let choice = CameraChoice::Device(Some("no such camera".into()));
        let sender = VideoSender::start(
            &choice,
            conclave_codec::VideoCodec::Vp8,
            false,
            Instant::now(),
            tx,
            None,
            VideoEffects::default(),
        )
        .expect("started");
        assert!(!sender.has_device());
        let notices = sender.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("without video"), "{notices:?}");
        // Switching to the test pattern works mid-meeting (large enough
        // for its stamp: a smaller one fails at its first picture).
        sender
            .switch(CameraChoice::Synthetic {
                width: 160,
                height: 90,
                fps: 10,
            })
            .expect("the test pattern opens");
        assert!(sender.has_device());
        assert!(sender
            .switch(CameraChoice::Device(Some("no such camera".into())))
            .is_err());
        assert!(sender.has_device(), "a failed switch keeps the camera");
    }
}
