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
/// One block of sound.
const BLOCK_MS: u64 = 10;
/// Sound is written this far behind the clock, by when it has arrived.
const AUDIO_LATENCY_MS: u64 = 50;
/// Sound played longer ago than this before its place is dropped.
const MAX_LAG_MS: u64 = 60;
/// Blocks of sound kept per person at most (a second).
const MAX_QUEUED_CHUNKS: usize = 100;
/// Inputs the recorder thread may be behind by (about a second of sound
/// from a full gallery); beyond that, sound is dropped, never waited for.
const QUEUE: usize = 1024;
/// Clusters hold half a second: a crash loses at most about that much.
const CLUSTER_MS: u64 = 500;
/// The VP8 bitrate of the canvas.
const VIDEO_BITRATE: u32 = 2_000_000;
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

/// What the recorder is told. Times are taken when the handle is called,
/// not when the recorder thread gets to it, so a starved thread still
/// places everything where it happened.
enum Input {
    /// 10 ms of what someone said, and when it was played.
    Audio(u64, Instant, Vec<i16>),
    Name(u64, String),
    Gone(u64),
    Pause(bool, Instant),
    Stop(Instant),
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
        // The recording's time runs from now, however late its thread starts.
        let started = Instant::now();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let writer = match Writer::create(file, tracks(WIDTH, HEIGHT), title, CLUSTER_MS) {
            Ok(writer) => writer,
            Err(e) => {
                // Not even the headers fit: leave no empty file behind.
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        let recording = Recording::new(writer, WIDTH, HEIGHT, started)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let frames = LatestFrames::default();
        let latest = frames.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                let result = recording.run(rx, latest);
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

    /// 10 ms of what `participant` said (0: this device's microphone), as
    /// it is played now.
    pub fn audio(&self, participant: u64, block: &AudioFrame) {
        let _ = self.tx.try_send(Input::Audio(
            participant,
            Instant::now(),
            block.samples.clone(),
        ));
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
        let _ = self.tx.send(Input::Pause(paused, Instant::now()));
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

    /// Stops and finalises the file (index and duration): the file lasts
    /// until now, even if the recorder thread was behind. Later calls do
    /// nothing. Returns the file, or why the recording ended early (what
    /// was written is kept either way).
    pub fn stop(&self) -> Result<PathBuf, MkvError> {
        let _ = self.tx.send(Input::Stop(Instant::now()));
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

/// The tracks of a recording with a `width`×`height` canvas.
fn tracks(width: usize, height: usize) -> Vec<Track> {
    let mut tracks = vec![
        Track::vp8(VIDEO_TRACK, "Meeting", width as u32, height as u32),
        Track::opus(MIX_TRACK, "Everyone", 1),
    ];
    for n in 0..PERSON_TRACKS {
        tracks.push(Track::opus(FIRST_PERSON_TRACK + n, "(nobody)", 1).not_default());
    }
    tracks
}

/// Sound someone played, waiting for its place in the recording.
struct Chunk {
    /// When it was played, on the recording's clock.
    at_ms: u64,
    samples: Vec<i16>,
    /// Samples already taken.
    taken: usize,
}

/// Someone in the recording.
#[derive(Default)]
struct Person {
    name: String,
    queued: VecDeque<Chunk>,
    frame: Option<VideoFrame>,
    screen: Option<VideoFrame>,
    loud_until_ms: Option<u64>,
}

impl Person {
    /// The 10 ms block that starts at `at_ms`: the sound played by its end,
    /// oldest first; sound played longer than [`MAX_LAG_MS`] before it is
    /// dropped (so a burst of late sound cannot put this person behind
    /// everyone else for good). `None` if nothing was played.
    fn block(&mut self, at_ms: u64) -> Option<Vec<i16>> {
        while self
            .queued
            .front()
            .is_some_and(|c| c.at_ms + MAX_LAG_MS < at_ms)
        {
            self.queued.pop_front();
        }
        let mut block = Vec::with_capacity(AUDIO_BLOCK);
        while block.len() < AUDIO_BLOCK {
            let Some(chunk) = self.queued.front_mut() else {
                break;
            };
            if chunk.at_ms > at_ms + BLOCK_MS {
                break;
            }
            let take = (AUDIO_BLOCK - block.len()).min(chunk.samples.len() - chunk.taken);
            block.extend_from_slice(&chunk.samples[chunk.taken..chunk.taken + take]);
            chunk.taken += take;
            if chunk.taken >= chunk.samples.len() {
                self.queued.pop_front();
            }
        }
        if block.is_empty() {
            return None;
        }
        block.resize(AUDIO_BLOCK, 0);
        Some(block)
    }
}

/// A person's own audio track.
struct PersonTrack {
    track: u64,
    encoder: OpusEncoder,
}

/// The recording's clock: milliseconds since it started, standing still
/// while paused.
struct Clock {
    start: Instant,
    paused_total: Duration,
    paused_since: Option<Instant>,
}

impl Clock {
    fn ms(&self, at: Instant) -> u64 {
        let at = self.paused_since.map_or(at, |p| p.min(at));
        at.saturating_duration_since(self.start)
            .saturating_sub(self.paused_total)
            .as_millis() as u64
    }
}

/// An encoded frame waiting until every track has passed its time, so that
/// the file is written in time order.
struct Pending {
    time_ms: u64,
    track: u64,
    keyframe: bool,
    data: Vec<u8>,
}

/// The recording (sans-IO): inputs and the time go in, the file comes out.
/// Sound is placed where it was played, [`AUDIO_LATENCY_MS`] behind the
/// clock; the canvas is composed on the clock from everyone's newest
/// picture, a frame every [`FRAME_MS`], and a late one takes the slot of the
/// moment it is composed (the picture before it holds meanwhile): the
/// timeline follows the wall clock however starved the thread is, and every
/// track's times strictly increase.
struct Recording {
    writer: Writer<std::fs::File>,
    video: Vp8Encoder,
    mix: OpusEncoder,
    people: BTreeMap<u64, Person>,
    tracks: BTreeMap<u64, PersonTrack>,
    compositor: Compositor,
    clock: Clock,
    /// The next 10 ms block of sound to write.
    next_audio_ms: u64,
    /// The earliest slot of the next canvas.
    next_video_ms: u64,
    /// When the next keyframe is due.
    next_keyframe_ms: u64,
    /// Encoded frames not yet written, in time order.
    pending: VecDeque<Pending>,
}

impl Recording {
    fn new(
        writer: Writer<std::fs::File>,
        width: usize,
        height: usize,
        start: Instant,
    ) -> Result<Self, MkvError> {
        let video = Vp8Encoder::new(EncoderConfig {
            width,
            height,
            fps: (1000 / FRAME_MS) as u32,
            bitrate: VIDEO_BITRATE,
        })
        .map_err(codec_error)?;
        Ok(Recording {
            writer,
            video,
            mix: OpusEncoder::new(48_000).map_err(codec_error)?,
            people: BTreeMap::new(),
            tracks: BTreeMap::new(),
            compositor: Compositor::new(width, height),
            clock: Clock {
                start,
                paused_total: Duration::ZERO,
                paused_since: None,
            },
            next_audio_ms: 0,
            next_video_ms: 0,
            next_keyframe_ms: 0,
            pending: VecDeque::new(),
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Input>, latest: LatestFrames) -> Result<(), MkvError> {
        let result = self.drive(&rx, &latest);
        // Whatever ended it, the file is finalised if the disk lets us.
        let flushed = self.write_pending(u64::MAX);
        let finished = self.writer.finish().map(|_| ());
        result.and(flushed).and(finished)
    }

    /// Records until told to stop.
    fn drive(&mut self, rx: &mpsc::Receiver<Input>, latest: &LatestFrames) -> Result<(), MkvError> {
        loop {
            let wait = self.wait(Instant::now());
            let mut inputs = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(input) => inputs.push(input),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return self.stop(Instant::now(), latest);
                }
            }
            // Everything sent so far, before any block is written: a
            // starved thread finds the sound it missed waiting here.
            inputs.extend(rx.try_iter());
            for input in inputs {
                if let Some(at) = self.handle(input, latest)? {
                    return self.stop(at, latest);
                }
            }
            self.advance(Instant::now(), latest)?;
        }
    }

    /// How long to wait for input before something is due.
    fn wait(&self, now: Instant) -> Duration {
        if self.clock.paused_since.is_some() {
            return Duration::from_millis(100);
        }
        let due = (self.next_audio_ms + AUDIO_LATENCY_MS).min(self.next_video_ms);
        Duration::from_millis(due.saturating_sub(self.clock.ms(now)))
    }

    /// Takes one input; returns the moment to stop at, if told to.
    fn handle(&mut self, input: Input, latest: &LatestFrames) -> Result<Option<Instant>, MkvError> {
        match input {
            Input::Audio(id, at, samples) => {
                if self.clock.paused_since.is_none() {
                    let at_ms = self.clock.ms(at);
                    let person = self.people.entry(id).or_default();
                    person.queued.push_back(Chunk {
                        at_ms,
                        samples,
                        taken: 0,
                    });
                    // Memory stays bounded whatever arrives.
                    while person.queued.len() > MAX_QUEUED_CHUNKS {
                        person.queued.pop_front();
                    }
                }
            }
            Input::Name(id, name) => {
                if let Some(own) = self.tracks.get(&id) {
                    self.writer.rename_track(own.track, &name)?;
                }
                self.people.entry(id).or_default().name = name;
            }
            Input::Gone(id) => {
                self.people.remove(&id);
            }
            Input::Pause(true, at) => {
                if self.clock.paused_since.is_none() {
                    // What came before the pause is recorded before the
                    // clock stands still: a starved thread may not have
                    // written it yet, and nothing writes while paused.
                    self.catch_up(at, latest)?;
                    self.clock.paused_since = Some(at);
                }
            }
            Input::Pause(false, at) => {
                if let Some(since) = self.clock.paused_since.take() {
                    self.clock.paused_total += at.saturating_duration_since(since);
                    for person in self.people.values_mut() {
                        person.queued.clear();
                    }
                    // The picture after a pause starts with a keyframe.
                    self.video.request_keyframe();
                }
            }
            Input::Stop(at) => return Ok(Some(at)),
        }
        Ok(None)
    }

    /// Writes what is due at `now`: sound up to [`AUDIO_LATENCY_MS`] ago
    /// and the canvas of this moment.
    fn advance(&mut self, now: Instant, latest: &LatestFrames) -> Result<(), MkvError> {
        if self.clock.paused_since.is_some() {
            if let Ok(mut frames) = latest.lock() {
                frames.clear();
            }
            return Ok(());
        }
        let now_ms = self.clock.ms(now);
        while self.next_audio_ms + AUDIO_LATENCY_MS <= now_ms {
            self.audio_block(self.next_audio_ms)?;
            self.next_audio_ms += BLOCK_MS;
        }
        if self.next_video_ms <= now_ms {
            // One slot late: caught up at once. Later still (a starved
            // thread): the canvas takes the slot of now, and the picture
            // before it holds meanwhile.
            let current = now_ms - now_ms % FRAME_MS;
            let slot = if self.next_video_ms + FRAME_MS >= current {
                self.next_video_ms
            } else {
                current
            };
            self.video_frame(latest, slot)?;
            self.next_video_ms = slot + FRAME_MS;
        }
        // Audio packets cover the 20 ms before their block's end: nothing
        // earlier than this can still come.
        let watermark = self
            .next_audio_ms
            .saturating_sub(2 * BLOCK_MS)
            .min(self.next_video_ms);
        self.write_pending(watermark)
    }

    /// Ends the recording at `at`: the sound up to then, and a last canvas.
    fn stop(&mut self, at: Instant, latest: &LatestFrames) -> Result<(), MkvError> {
        if self.clock.paused_since.is_some() {
            return Ok(());
        }
        self.catch_up(at, latest)
    }

    /// Records everything up to `at` at once (a stop or a pause): the
    /// sound, and a canvas for the last slot not yet drawn.
    fn catch_up(&mut self, at: Instant, latest: &LatestFrames) -> Result<(), MkvError> {
        let end_ms = self.clock.ms(at);
        while self.next_audio_ms < end_ms {
            self.audio_block(self.next_audio_ms)?;
            self.next_audio_ms += BLOCK_MS;
        }
        // The last canvas stays on the frame grid like every other: a
        // picture off it (say 51 ms after the one before) made players
        // guess another frame rate and stamp two frames alike.
        let last_ms = end_ms.saturating_sub(1);
        let last_slot = last_ms - last_ms % FRAME_MS;
        if self.next_video_ms <= last_slot || self.next_video_ms == 0 {
            let slot = last_slot.max(self.next_video_ms);
            self.video_frame(latest, slot)?;
            self.next_video_ms = slot + FRAME_MS;
        }
        Ok(())
    }

    /// Writes the pending frames before `watermark`, in time order.
    fn write_pending(&mut self, watermark: u64) -> Result<(), MkvError> {
        while self.pending.front().is_some_and(|p| p.time_ms < watermark) {
            if let Some(p) = self.pending.pop_front() {
                self.writer
                    .write_frame(p.track, p.time_ms, p.keyframe, &p.data)?;
            }
        }
        Ok(())
    }

    /// Keeps an encoded frame until its time is passed by every track.
    fn queue(&mut self, track: u64, time_ms: u64, keyframe: bool, data: Vec<u8>) {
        let at = self
            .pending
            .iter()
            .rposition(|p| (p.time_ms, p.track) <= (time_ms, track))
            .map_or(0, |i| i + 1);
        self.pending.insert(
            at,
            Pending {
                time_ms,
                track,
                keyframe,
                data,
            },
        );
    }

    /// The 10 ms block at `at_ms`: everyone mixed, and each person's own.
    fn audio_block(&mut self, at_ms: u64) -> Result<(), MkvError> {
        let mut mix = vec![0i32; AUDIO_BLOCK];
        let mut own: BTreeMap<u64, Vec<i16>> = BTreeMap::new();
        for (id, person) in self.people.iter_mut() {
            let Some(block) = person.block(at_ms) else {
                continue;
            };
            let mut energy = 0i64;
            for (m, s) in mix.iter_mut().zip(&block) {
                energy += i64::from(*s) * i64::from(*s);
                *m += i32::from(*s);
            }
            // Loud enough to count as talking (about -40 dBov).
            if energy / AUDIO_BLOCK as i64 > 100_000 {
                person.loud_until_ms = Some(at_ms + 500);
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
        let packet_ms = at_ms.saturating_sub(BLOCK_MS);
        if let Ok(Some(packet)) = self.mix.encode(&block) {
            self.queue(MIX_TRACK, packet_ms, true, packet);
        }
        // Each person's track runs on (silent while they are not heard).
        let mut packets = Vec::new();
        for (id, person) in self.tracks.iter_mut() {
            let samples = own.remove(id).unwrap_or_else(|| vec![0; AUDIO_BLOCK]);
            let block = AudioFrame {
                samples,
                captured: Duration::from_millis(at_ms),
            };
            if let Ok(Some(packet)) = person.encoder.encode(&block) {
                packets.push((person.track, packet));
            }
        }
        for (track, packet) in packets {
            self.queue(track, packet_ms, true, packet);
        }
        Ok(())
    }

    /// The canvas at `at_ms`, from everyone's newest picture.
    fn video_frame(&mut self, latest: &LatestFrames, at_ms: u64) -> Result<(), MkvError> {
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
                talking: person.loud_until_ms.is_some_and(|t| t > at_ms),
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
        // A keyframe each second, where seeking lands.
        if at_ms >= self.next_keyframe_ms {
            self.video.request_keyframe();
            self.next_keyframe_ms = at_ms - at_ms % 1000 + 1000;
        }
        let canvas = self.compositor.compose(&tiles);
        let frames = self.video.encode(canvas).map_err(codec_error)?;
        for encoded in frames {
            self.queue(VIDEO_TRACK, at_ms, encoded.keyframe, encoded.data);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(at_ms: u64, value: i16) -> Chunk {
        Chunk {
            at_ms,
            samples: vec![value; AUDIO_BLOCK],
            taken: 0,
        }
    }

    #[test]
    fn sound_goes_where_it_was_played_and_a_late_burst_does_not_lag_for_good() {
        let mut person = Person::default();
        // Nothing played yet: silence, not a wait.
        assert_eq!(person.block(0), None);
        person.queued.push_back(chunk(25, 1));
        assert_eq!(person.block(10), None, "played after this block's end");
        assert_eq!(person.block(20), Some(vec![1; AUDIO_BLOCK]));
        // Five blocks played at once after a stall: taken one per block,
        // but never more than MAX_LAG_MS behind where they were played.
        for n in 0..5 {
            person.queued.push_back(chunk(100, 2 + n));
        }
        let taken: Vec<i16> = (0..8)
            .map(|k| person.block(100 + k * 10).map_or(0, |b| b[0]))
            .collect();
        assert_eq!(taken, vec![2, 3, 4, 5, 6, 0, 0, 0]);
        person.queued.push_back(chunk(300, 9));
        assert_eq!(
            person.block(300 + MAX_LAG_MS + 10),
            None,
            "too late: dropped"
        );
        assert!(person.queued.is_empty());
    }

    /// When the recorder thread gets to run, and what it is sent meanwhile.
    #[derive(Debug, Clone)]
    struct Schedule {
        /// Time between two runs of the thread (a starved thread: long ones).
        runs_ms: Vec<u64>,
        /// How late each person's sound is sent after it is played.
        jitter_ms: Vec<u64>,
        /// A pause: after which run, and for how many.
        pause: Option<(usize, usize)>,
        people: u64,
    }

    fn schedule() -> impl Strategy<Value = Schedule> {
        (
            prop::collection::vec(prop_oneof![8 => 1u64..60, 1 => 200u64..1500], 10..80),
            prop::collection::vec(0u64..40, 64),
            prop::option::of((0usize..40, 1usize..20)),
            1u64..4,
        )
            .prop_map(|(runs_ms, jitter_ms, pause, people)| Schedule {
                runs_ms,
                jitter_ms,
                pause,
                people,
            })
    }

    fn have_ffmpeg() -> bool {
        std::process::Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok()
    }

    /// Plays `schedule` through a small recording; returns the file and
    /// how long it should last (wall clock less the paused time).
    fn record(schedule: &Schedule, path: &Path) -> u64 {
        let (width, height) = (160, 96);
        let file = std::fs::File::create(path).expect("file");
        let writer =
            Writer::create(file, tracks(width, height), "Test", CLUSTER_MS).expect("writer");
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut recording = Recording::new(writer, width, height, start).expect("recording");
        let latest = LatestFrames::default();
        let mut inputs: Vec<(u64, Input)> = Vec::new();
        let end_ms: u64 = schedule.runs_ms.iter().sum();
        // Everyone plays sound every 10 ms, sent a little late, and shows
        // a picture every 33 ms.
        for who in 1..=schedule.people {
            for k in 0..end_ms / 10 {
                let jitter =
                    schedule.jitter_ms[(k as usize + who as usize * 7) % schedule.jitter_ms.len()];
                let played = k * 10;
                inputs.push((
                    played + jitter,
                    Input::Audio(who, at(played), vec![(who * 1000) as i16; AUDIO_BLOCK]),
                ));
            }
            inputs.push((0, Input::Name(who, format!("Person {who}"))));
        }
        let mut paused_ms = 0;
        let mut now_ms = 0;
        let mut pictures_at = 0;
        let mut counter = 0;
        let mut pause_from = None;
        for (run, gap) in schedule.runs_ms.iter().enumerate() {
            now_ms += gap;
            if let Some((from, length)) = schedule.pause {
                if run == from {
                    inputs.push((now_ms, Input::Pause(true, at(now_ms))));
                    pause_from = Some(now_ms);
                }
                if run == from + length {
                    if let Some(p) = pause_from.take() {
                        inputs.push((now_ms, Input::Pause(false, at(now_ms))));
                        paused_ms += now_ms - p;
                    }
                }
            }
            while pictures_at <= now_ms {
                counter += 1;
                let mut frame = VideoFrame::black(64, 36);
                conclave_media::pattern::paint_background(&mut frame, counter);
                if let Ok(mut f) = latest.lock() {
                    for who in 1..=schedule.people {
                        f.insert(who, frame.clone());
                    }
                }
                pictures_at += 33;
            }
            inputs.sort_by_key(|(sent, _)| *sent);
            let due: Vec<Input> = {
                let split = inputs.partition_point(|(sent, _)| *sent <= now_ms);
                inputs.drain(..split).map(|(_, i)| i).collect()
            };
            for input in due {
                assert!(recording.handle(input, &latest).expect("input").is_none());
            }
            // The last gap ends with the stop: the thread did not run in it.
            if run + 1 < schedule.runs_ms.len() {
                recording.advance(at(now_ms), &latest).expect("advance");
            }
        }
        if let Some(p) = pause_from {
            // Stopped while paused: the pause runs to the end.
            paused_ms += now_ms - p;
        }
        recording.stop(at(now_ms), &latest).expect("stop");
        recording.write_pending(u64::MAX).expect("pending");
        recording.writer.finish().expect("finish");
        now_ms - paused_ms
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// However starved the thread and however late the sound, ffmpeg
        /// reads the file without a word, and it lasts as long as the
        /// recording ran (within one cluster).
        #[test]
        fn any_arrival_gives_a_clean_file_as_long_as_the_wall_clock(schedule in schedule()) {
            if !have_ffmpeg() {
                return Ok(());
            }
            let dir = std::env::temp_dir().join(format!("conclave-recorder-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            let path = dir.join(format!("{}.webm", rand_name()));
            let expected_ms = record(&schedule, &path);
            let out = std::process::Command::new("ffmpeg")
                .args(["-nostdin", "-v", "warning", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg");
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            let probe = std::process::Command::new("ffprobe")
                .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
                .arg(&path)
                .output()
                .expect("ffprobe");
            let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap_or(-1.0);
            let _ = std::fs::remove_file(&path);
            prop_assert!(out.status.success() && said.is_empty(), "ffmpeg: {said}");
            let expected = expected_ms as f64 / 1000.0;
            prop_assert!(
                (duration - expected).abs() <= CLUSTER_MS as f64 / 1000.0,
                "lasts {duration} s, recorded {expected} s"
            );
        }
    }

    fn rand_name() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        format!("case-{}", N.fetch_add(1, Ordering::Relaxed))
    }
}
