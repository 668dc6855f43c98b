//! The recorder: a thread that takes the meeting's decoded pictures and
//! sound as they are shown and played, and writes them to a WebM file in
//! real time: the compositor's canvas in VP8 at 25 frames/s (a keyframe
//! each second, so that every cluster can be seeked to) and the mix of
//! everyone in Opus. Per-person tracks are to come (docs/recording.md).

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
const WIDTH: usize = 1280;
const HEIGHT: usize = 720;
const FRAME_MS: u64 = 40;
/// The VP8 bitrate of the canvas.
const VIDEO_BITRATE: u32 = 2_000_000;
/// Audio queued per person at most (a second); older sound is dropped.
const MAX_QUEUED: usize = 48_000;

/// Each tile's newest picture: the latest wins, so a slow recorder never
/// queues pictures (and memory) behind it.
type LatestFrames = std::sync::Arc<std::sync::Mutex<BTreeMap<u64, VideoFrame>>>;

/// What the recorder is told.
enum Input {
    Audio(u64, Vec<i16>),
    Name(u64, String),
    Gone(u64),
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
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let tracks = vec![
            Track::vp8(1, "Meeting", WIDTH as u32, HEIGHT as u32),
            Track::opus(2, "Everyone", 1),
        ];
        let writer = Writer::create(file, tracks, title, 1000)?;
        let video = Vp8Encoder::new(EncoderConfig {
            width: WIDTH,
            height: HEIGHT,
            fps: (1000 / FRAME_MS) as u32,
            bitrate: VIDEO_BITRATE,
        })
        .map_err(|e| MkvError::Io(std::io::Error::other(e.to_string())))?;
        let audio = OpusEncoder::new(48_000)
            .map_err(|e| MkvError::Io(std::io::Error::other(e.to_string())))?;
        let (tx, rx) = mpsc::sync_channel(512);
        let frames = LatestFrames::default();
        let latest = frames.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(rx, latest, writer, video, audio))?;
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

    /// The name of a participant (shown on their tile).
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

    /// Stops and finalises the file (index and duration); later calls do
    /// nothing. Returns the file.
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

/// Someone in the recording.
#[derive(Default)]
struct Person {
    name: String,
    queued: VecDeque<i16>,
    frame: Option<VideoFrame>,
    screen: Option<VideoFrame>,
    loud_until: Option<Instant>,
}

fn run(
    rx: mpsc::Receiver<Input>,
    latest: LatestFrames,
    mut writer: Writer<std::fs::File>,
    mut video: Vp8Encoder,
    mut audio: OpusEncoder,
) -> Result<(), MkvError> {
    let start = Instant::now();
    let mut people: BTreeMap<u64, Person> = BTreeMap::new();
    let mut compositor = Compositor::new(WIDTH, HEIGHT);
    let mut next_audio_ms = 0u64;
    let mut next_video_ms = 0u64;
    loop {
        let now_ms = start.elapsed().as_millis() as u64;
        let wait = next_audio_ms.min(next_video_ms).saturating_sub(now_ms);
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(Input::Audio(id, samples)) => {
                let person = people.entry(id).or_default();
                person.queued.extend(samples);
                while person.queued.len() > MAX_QUEUED {
                    person.queued.pop_front();
                }
            }
            Ok(Input::Name(id, name)) => people.entry(id).or_default().name = name,
            Ok(Input::Gone(id)) => {
                people.remove(&id);
            }
            Ok(Input::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now_ms = start.elapsed().as_millis() as u64;
        // Sound: 10 ms blocks of everyone mixed, in step with the clock.
        while next_audio_ms <= now_ms {
            let mut mix = vec![0i32; AUDIO_BLOCK];
            let at = start + Duration::from_millis(next_audio_ms);
            for person in people.values_mut() {
                if person.queued.len() < AUDIO_BLOCK {
                    continue;
                }
                let mut energy = 0i64;
                for m in mix.iter_mut() {
                    let s = person.queued.pop_front().unwrap_or(0);
                    energy += i64::from(s) * i64::from(s);
                    *m += i32::from(s);
                }
                // Loud enough to count as talking (about -40 dBov).
                if energy / AUDIO_BLOCK as i64 > 100_000 {
                    person.loud_until = Some(at + Duration::from_millis(500));
                }
            }
            let block = AudioFrame {
                samples: mix
                    .into_iter()
                    .map(|v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
                    .collect(),
                captured: Duration::from_millis(next_audio_ms),
            };
            if let Ok(Some(packet)) = audio.encode(&block) {
                // The packet covers the 20 ms that end with this block.
                writer.write_frame(2, next_audio_ms.saturating_sub(10), true, &packet)?;
            }
            next_audio_ms += 10;
        }
        // Picture: 25 frames a second, whoever is there.
        if next_video_ms <= now_ms {
            let newest = latest
                .lock()
                .map(|mut f| std::mem::take(&mut *f))
                .unwrap_or_default();
            for (tile, frame) in newest {
                let person = people.entry(tile & !SCREEN_TILE).or_default();
                if tile & SCREEN_TILE != 0 {
                    person.screen = Some(frame);
                } else {
                    person.frame = Some(frame);
                }
            }
            let at = start + Duration::from_millis(now_ms);
            let mut tiles = Vec::new();
            for (id, person) in &people {
                let name = if person.name.is_empty() {
                    if *id == 0 {
                        "Me"
                    } else {
                        "Guest"
                    }
                } else {
                    person.name.as_str()
                };
                let talking = person.loud_until.is_some_and(|t| t > at);
                tiles.push(Tile {
                    name,
                    frame: person.frame.as_ref(),
                    share: false,
                    talking,
                });
            }
            let shares: Vec<(String, &VideoFrame)> = people
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
            if next_video_ms % 1000 < FRAME_MS {
                video.request_keyframe();
            }
            let canvas = compositor.compose(&tiles);
            let frames = video
                .encode(canvas)
                .map_err(|e| MkvError::Io(std::io::Error::other(e.to_string())))?;
            for encoded in frames {
                writer.write_frame(1, next_video_ms, encoded.keyframe, &encoded.data)?;
            }
            // Behind (a slow machine): skip frames rather than fall further back.
            next_video_ms += FRAME_MS;
            if next_video_ms + FRAME_MS < now_ms {
                next_video_ms = now_ms - now_ms % FRAME_MS + FRAME_MS;
            }
        }
    }
    writer.finish()?;
    Ok(())
}
