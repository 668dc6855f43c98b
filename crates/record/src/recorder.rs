//! The recorder: a thread that takes the meeting's decoded pictures and
//! sound as they are shown and played, and writes them to a WebM file in
//! real time, in half-second clusters: the compositor's canvas in VP8 at
//! 25 frames/s (a keyframe each second, where seeking lands), the mix of
//! everyone in Opus, and each person's own sound as a track of its own
//! (the first [`PERSON_TRACKS`] people who speak; named in place as their
//! names become known).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use conclave_codec::opus::OpusEncoder;
use conclave_codec::vp8::Vp8Encoder;
use conclave_codec::EncoderConfig;
use conclave_media::{AudioFrame, VideoFrame, AUDIO_BLOCK, SCREEN_TILE};

use crate::compositor::{Compositor, Tile};
use crate::mkv::{MkvError, Track, Writer};

/// The canvas and frame rate of recordings.
pub const WIDTH: usize = 1280;
/// The canvas height.
pub const HEIGHT: usize = 720;
const FRAME_MS: u64 = 40;
/// Clusters hold half a second: a crash loses at most about that much.
const CLUSTER_MS: u64 = 500;
/// The VP8 bitrate of the canvas.
const VIDEO_BITRATE: u32 = 2_000_000;
/// Audio queued per person at most (a second); older sound is dropped.
const MAX_QUEUED: usize = 48_000;
/// People who get an audio track of their own (later ones are in the mix).
pub const PERSON_TRACKS: u64 = 8;
/// Track numbers: the canvas, the mix, then one per person.
const VIDEO_TRACK: u64 = 1;
const MIX_TRACK: u64 = 2;
const FIRST_PERSON_TRACK: u64 = 3;

/// Each tile's newest picture: the latest wins, so a slow recorder never
/// queues pictures (and memory) behind it.
type LatestFrames = std::sync::Arc<std::sync::Mutex<BTreeMap<u64, VideoFrame>>>;

/// Called once if the recording stops by itself (a full disk, a write
/// error); what was written up to then is kept and finalised if possible.
pub type OnFailure = Box<dyn FnOnce(&MkvError) + Send>;

/// What the recorder is told.
enum Input {
    Audio(u64, Vec<i16>),
    Name(u64, String),
    Gone(u64),
    Pause(bool),
    Stop,
}

/// A running recording, shared by whatever feeds it. [`Recorder::stop`]
/// (or dropping the last handle) finalises the file.
pub struct Recorder {
    tx: mpsc::SyncSender<Input>,
    frames: LatestFrames,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<Result<(), MkvError>>>>,
    path: PathBuf,
}

impl Recorder {
    /// Starts recording into a new file at `path` titled `title`.
    pub fn start(path: &Path, title: &str) -> Result<Recorder, MkvError> {
        Self::start_with(path, title, None)
    }

    /// As [`Recorder::start`], calling `on_failure` if the recording has
    /// to stop by itself.
    pub fn start_with(
        path: &Path,
        title: &str,
        on_failure: Option<OnFailure>,
    ) -> Result<Recorder, MkvError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let mut tracks = vec![
            Track::vp8(VIDEO_TRACK, "Meeting", WIDTH as u32, HEIGHT as u32),
            Track::opus(MIX_TRACK, "Everyone", 1),
        ];
        for n in 0..PERSON_TRACKS {
            tracks.push(Track::opus(FIRST_PERSON_TRACK + n, "(nobody)", 1).not_default());
        }
        let writer = match Writer::create(file, tracks, title, CLUSTER_MS) {
            Ok(writer) => writer,
            Err(e) => {
                // Not even the headers fit: leave no empty file behind.
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        let video = Vp8Encoder::new(EncoderConfig {
            width: WIDTH,
            height: HEIGHT,
            fps: (1000 / FRAME_MS) as u32,
            bitrate: VIDEO_BITRATE,
        })
        .map_err(codec_error)?;
        let (tx, rx) = mpsc::sync_channel(512);
        let frames = LatestFrames::default();
        let latest = frames.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                let result = Recording::new(writer, video).and_then(|r| r.run(rx, latest));
                if let (Err(e), Some(tell)) = (&result, on_failure) {
                    tell(e);
                }
                result
            })?;
        Ok(Recorder {
            tx,
            frames,
            thread: std::sync::Mutex::new(Some(thread)),
            path: path.to_owned(),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 10 ms of what `participant` said (0: this device's microphone).
    pub fn audio(&self, participant: u64, block: &AudioFrame) {
        let _ = self
            .tx
            .try_send(Input::Audio(participant, block.samples.clone()));
    }

    /// A decoded picture of a tile (a participant, or `id | SCREEN_TILE`).
    pub fn video(&self, tile: u64, frame: &VideoFrame) {
        if let Ok(mut frames) = self.frames.lock() {
            frames.insert(tile, frame.clone());
        }
    }

    /// The name of a participant (shown on their tile, and given to their
    /// audio track).
    pub fn name(&self, participant: u64, name: &str) {
        let _ = self.tx.send(Input::Name(participant, name.to_owned()));
    }

    /// A participant left: their tile goes.
    pub fn gone(&self, participant: u64) {
        if let Ok(mut frames) = self.frames.lock() {
            frames.remove(&participant);
            frames.remove(&(participant | SCREEN_TILE));
        }
        let _ = self.tx.send(Input::Gone(participant));
    }

    /// Pauses (`true`) or resumes the recording: nothing of the paused time
    /// is kept, and the file's timeline runs on without a gap.
    pub fn set_paused(&self, paused: bool) {
        let _ = self.tx.send(Input::Pause(paused));
    }

    /// Whether the recording still runs (it stops by itself on a write
    /// error).
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .ok()
            .and_then(|t| t.as_ref().map(|t| !t.is_finished()))
            .unwrap_or(false)
    }

    /// Stops and finalises the file (index and duration); later calls do
    /// nothing. Returns the file, or why the recording ended early (what
    /// was written is kept either way).
    pub fn stop(&self) -> Result<PathBuf, MkvError> {
        let _ = self.tx.send(Input::Stop);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            t.join()
                .unwrap_or(Err(MkvError::NotARecording("the recorder stopped")))?;
        }
        Ok(self.path.clone())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn codec_error(e: impl std::fmt::Display) -> MkvError {
    MkvError::Io(std::io::Error::other(e.to_string()))
}

/// Someone in the recording.
#[derive(Default)]
struct Person {
    name: String,
    queued: VecDeque<i16>,
    frame: Option<VideoFrame>,
    screen: Option<VideoFrame>,
    loud_until: Option<Instant>,
}

/// A person's own audio track.
struct PersonTrack {
    track: u64,
    encoder: OpusEncoder,
}

/// The recording thread's state.
struct Recording {
    writer: Writer<std::fs::File>,
    video: Vp8Encoder,
    mix: OpusEncoder,
    people: BTreeMap<u64, Person>,
    tracks: BTreeMap<u64, PersonTrack>,
    compositor: Compositor,
}

impl Recording {
    fn new(writer: Writer<std::fs::File>, video: Vp8Encoder) -> Result<Self, MkvError> {
        Ok(Recording {
            writer,
            video,
            mix: OpusEncoder::new(48_000).map_err(codec_error)?,
            people: BTreeMap::new(),
            tracks: BTreeMap::new(),
            compositor: Compositor::new(WIDTH, HEIGHT),
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Input>, latest: LatestFrames) -> Result<(), MkvError> {
        let result = self.record(&rx, &latest);
        // Whatever ended it, the file is finalised if the disk lets us.
        let finished = self.writer.finish().map(|_| ());
        result.and(finished)
    }

    /// Records until told to stop; times are on the recording's clock,
    /// which stands still while paused.
    fn record(
        &mut self,
        rx: &mpsc::Receiver<Input>,
        latest: &LatestFrames,
    ) -> Result<(), MkvError> {
        let start = Instant::now();
        let mut paused_since: Option<Instant> = None;
        let mut paused_total = Duration::ZERO;
        let mut next_audio_ms = 0u64;
        let mut next_video_ms = 0u64;
        loop {
            let clock = |paused_total: Duration| {
                start.elapsed().saturating_sub(paused_total).as_millis() as u64
            };
            let wait = if paused_since.is_some() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(
                    next_audio_ms
                        .min(next_video_ms)
                        .saturating_sub(clock(paused_total)),
                )
            };
            match rx.recv_timeout(wait) {
                Ok(Input::Audio(id, samples)) => {
                    if paused_since.is_none() {
                        let person = self.people.entry(id).or_default();
                        person.queued.extend(samples);
                        while person.queued.len() > MAX_QUEUED {
                            person.queued.pop_front();
                        }
                    }
                }
                Ok(Input::Name(id, name)) => {
                    if let Some(own) = self.tracks.get(&id) {
                        self.writer.rename_track(own.track, &name)?;
                    }
                    self.people.entry(id).or_default().name = name;
                }
                Ok(Input::Gone(id)) => {
                    self.people.remove(&id);
                }
                Ok(Input::Pause(true)) => {
                    paused_since.get_or_insert_with(Instant::now);
                }
                Ok(Input::Pause(false)) => {
                    if let Some(since) = paused_since.take() {
                        paused_total += since.elapsed();
                        for person in self.people.values_mut() {
                            person.queued.clear();
                        }
                        // The picture after a pause starts with a keyframe.
                        self.video.request_keyframe();
                    }
                }
                Ok(Input::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if paused_since.is_some() {
                if let Ok(mut frames) = latest.lock() {
                    frames.clear();
                }
                continue;
            }
            let now_ms = clock(paused_total);
            while next_audio_ms <= now_ms {
                self.audio_block(start + paused_total, next_audio_ms)?;
                next_audio_ms += 10;
            }
            if next_video_ms <= now_ms {
                self.video_frame(latest, start + paused_total, next_video_ms, now_ms)?;
                // Behind (a slow machine): skip frames rather than fall further back.
                next_video_ms += FRAME_MS;
                if next_video_ms + FRAME_MS < now_ms {
                    next_video_ms = now_ms - now_ms % FRAME_MS + FRAME_MS;
                }
            }
        }
    }

    /// The 10 ms block at `at_ms`: everyone mixed, and each person's own.
    fn audio_block(&mut self, start: Instant, at_ms: u64) -> Result<(), MkvError> {
        let mut mix = vec![0i32; AUDIO_BLOCK];
        let at = start + Duration::from_millis(at_ms);
        let mut own: BTreeMap<u64, Vec<i16>> = BTreeMap::new();
        for (id, person) in self.people.iter_mut() {
            if person.queued.len() < AUDIO_BLOCK {
                continue;
            }
            let block: Vec<i16> = person.queued.drain(..AUDIO_BLOCK).collect();
            let mut energy = 0i64;
            for (m, s) in mix.iter_mut().zip(&block) {
                energy += i64::from(*s) * i64::from(*s);
                *m += i32::from(*s);
            }
            // Loud enough to count as talking (about -40 dBov).
            if energy / AUDIO_BLOCK as i64 > 100_000 {
                person.loud_until = Some(at + Duration::from_millis(500));
            }
            own.insert(*id, block);
        }
        // Whoever is heard first gets a track of their own, while any are left.
        for id in own.keys() {
            let used = self.tracks.len() as u64;
            if used < PERSON_TRACKS && !self.tracks.contains_key(id) {
                let track = FIRST_PERSON_TRACK + used;
                let name = self
                    .people
                    .get(id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                let name = if name.is_empty() {
                    fallback_name(*id).to_owned()
                } else {
                    name
                };
                self.writer.rename_track(track, &name)?;
                let encoder = OpusEncoder::new(32_000).map_err(codec_error)?;
                self.tracks.insert(*id, PersonTrack { track, encoder });
            }
        }
        let block = AudioFrame {
            samples: mix
                .into_iter()
                .map(|v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
                .collect(),
            captured: Duration::from_millis(at_ms),
        };
        // A packet covers the 20 ms that end with this block.
        let packet_ms = at_ms.saturating_sub(10);
        if let Ok(Some(packet)) = self.mix.encode(&block) {
            self.writer
                .write_frame(MIX_TRACK, packet_ms, true, &packet)?;
        }
        // Each person's track runs on (silent while they are not heard).
        for (id, person) in self.tracks.iter_mut() {
            let samples = own.remove(id).unwrap_or_else(|| vec![0; AUDIO_BLOCK]);
            let block = AudioFrame {
                samples,
                captured: Duration::from_millis(at_ms),
            };
            if let Ok(Some(packet)) = person.encoder.encode(&block) {
                self.writer
                    .write_frame(person.track, packet_ms, true, &packet)?;
            }
        }
        Ok(())
    }

    /// The canvas at `at_ms`, from everyone's newest picture.
    fn video_frame(
        &mut self,
        latest: &LatestFrames,
        start: Instant,
        at_ms: u64,
        now_ms: u64,
    ) -> Result<(), MkvError> {
        let newest = latest
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        for (tile, frame) in newest {
            let person = self.people.entry(tile & !SCREEN_TILE).or_default();
            if tile & SCREEN_TILE != 0 {
                person.screen = Some(frame);
            } else {
                person.frame = Some(frame);
            }
        }
        let now = start + Duration::from_millis(now_ms);
        let mut tiles = Vec::new();
        for (id, person) in &self.people {
            let name = if person.name.is_empty() {
                fallback_name(*id)
            } else {
                person.name.as_str()
            };
            tiles.push(Tile {
                name,
                frame: person.frame.as_ref(),
                share: false,
                talking: person.loud_until.is_some_and(|t| t > now),
            });
        }
        let shares: Vec<(String, &VideoFrame)> = self
            .people
            .values()
            .filter_map(|p| {
                p.screen
                    .as_ref()
                    .map(|s| (format!("{}'s screen", p.name), s))
            })
            .collect();
        for (name, frame) in &shares {
            tiles.push(Tile {
                name,
                frame: Some(frame),
                share: true,
                talking: false,
            });
        }
        if at_ms % 1000 < FRAME_MS {
            self.video.request_keyframe();
        }
        let canvas = self.compositor.compose(&tiles);
        let frames = self.video.encode(canvas).map_err(codec_error)?;
        for encoded in frames {
            self.writer
                .write_frame(VIDEO_TRACK, at_ms, encoded.keyframe, &encoded.data)?;
        }
        Ok(())
    }
}

/// The name of someone whose name is not known (yet).
fn fallback_name(id: u64) -> &'static str {
    if id == 0 {
        "Me"
    } else {
        "Guest"
    }
}
