//! Synthetic devices: a test-pattern camera, tone and WAV microphones, and
//! speakers that discard or record. They behave like real devices (frames
//! and blocks come due with time) and need no hardware.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::device::{Camera, DeviceError, DeviceInfo, DeviceKind, Microphone, Speaker};
use crate::frame::{AudioFrame, VideoFrame, AUDIO_BLOCK, SAMPLE_RATE};
use crate::pattern::{paint_background, write_stamp, Stamp};

const BLOCK: Duration = Duration::from_millis(10);

/// Whether a paced camera's next frame is due at `now`; if so, `next`
/// moves on a frame interval (frames long overdue are skipped, not
/// delivered in a burst).
fn frame_due(next: &mut Instant, interval: Duration, now: Instant) -> bool {
    if now < *next {
        return false;
    }
    while *next + interval <= now {
        *next += interval;
    }
    *next += interval;
    true
}

/// A camera that draws the [`crate::pattern`] test pattern, stamping each
/// frame with its counter and its capture time as wall-clock time (since the
/// Unix epoch), so another process on the machine can measure latency. The
/// frame's own `captured` counts from `epoch`, like every device's.
pub struct TestPatternCamera {
    width: usize,
    height: usize,
    interval: Duration,
    epoch: Instant,
    /// Wall-clock time at `epoch`.
    unix_at_epoch: Duration,
    next: Instant,
    counter: u64,
}

impl TestPatternCamera {
    /// A camera of `width` x `height` at `fps` frames per second whose
    /// timestamps count from `epoch`.
    pub fn new(width: usize, height: usize, fps: u32, epoch: Instant) -> Self {
        TestPatternCamera {
            width: width & !1,
            height: height & !1,
            interval: Duration::from_secs(1) / fps.max(1),
            epoch,
            unix_at_epoch: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(epoch.elapsed()),
            next: epoch,
            counter: 0,
        }
    }
}

impl Camera for TestPatternCamera {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: "synthetic:pattern".into(),
            name: format!("Test pattern {}x{}", self.width, self.height),
            kind: DeviceKind::Camera,
            is_default: false,
        }
    }

    fn poll_frame(&mut self, now: Instant) -> Result<Option<VideoFrame>, DeviceError> {
        if !frame_due(&mut self.next, self.interval, now) {
            return Ok(None);
        }
        let mut frame = VideoFrame::black(self.width, self.height);
        paint_background(&mut frame, self.counter);
        let captured = now.saturating_duration_since(self.epoch);
        write_stamp(
            &mut frame,
            Stamp {
                frame: self.counter,
                captured: self.unix_at_epoch + captured,
            },
        )
        .map_err(|e| DeviceError::Unsupported(e.to_string()))?;
        frame.captured = captured;
        self.counter += 1;
        Ok(Some(frame))
    }

    fn next_frame_at(&self) -> Instant {
        self.next
    }
}

/// A camera that shows one still picture (a person, for tests and demos of
/// virtual backgrounds: where the person is in it is known), paced like a
/// camera.
pub struct StillCamera {
    name: String,
    picture: VideoFrame,
    interval: Duration,
    epoch: Instant,
    next: Instant,
}

impl StillCamera {
    /// A camera showing `picture` at `fps` frames per second, timestamps
    /// counting from `epoch`; `name` says what the picture is.
    pub fn new(name: String, picture: VideoFrame, fps: u32, epoch: Instant) -> Self {
        StillCamera {
            name,
            picture,
            interval: Duration::from_secs(1) / fps.max(1),
            epoch,
            next: epoch,
        }
    }
}

impl Camera for StillCamera {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: "synthetic:picture".into(),
            name: self.name.clone(),
            kind: DeviceKind::Camera,
            is_default: false,
        }
    }

    fn poll_frame(&mut self, now: Instant) -> Result<Option<VideoFrame>, DeviceError> {
        if !frame_due(&mut self.next, self.interval, now) {
            return Ok(None);
        }
        let mut frame = self.picture.clone();
        frame.captured = now.saturating_duration_since(self.epoch);
        Ok(Some(frame))
    }

    fn next_frame_at(&self) -> Instant {
        self.next
    }
}

/// Blocks come due every 10 ms from `start`.
struct Clock {
    start: Instant,
    emitted: u64,
}

impl Clock {
    fn due(&mut self, now: Instant) -> Option<Duration> {
        let at = BLOCK * self.emitted as u32;
        if now.saturating_duration_since(self.start) < at + BLOCK {
            return None;
        }
        self.emitted += 1;
        Some(at)
    }
}

/// A microphone that plays a sine tone.
pub struct ToneMicrophone {
    frequency: f64,
    amplitude: f64,
    clock: Clock,
    phase: f64,
}

impl ToneMicrophone {
    /// A tone of `frequency` Hz at `amplitude` (0..1 of full scale).
    pub fn new(frequency: f64, amplitude: f64, start: Instant) -> Self {
        ToneMicrophone {
            frequency,
            amplitude: amplitude.clamp(0.0, 1.0),
            clock: Clock { start, emitted: 0 },
            phase: 0.0,
        }
    }
}

impl Microphone for ToneMicrophone {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: format!("synthetic:tone:{}", self.frequency),
            name: format!("Tone {} Hz", self.frequency),
            kind: DeviceKind::Microphone,
            is_default: false,
        }
    }

    fn poll_block(&mut self, now: Instant) -> Result<Option<AudioFrame>, DeviceError> {
        let Some(captured) = self.clock.due(now) else {
            return Ok(None);
        };
        let step = std::f64::consts::TAU * self.frequency / f64::from(SAMPLE_RATE);
        let samples = (0..AUDIO_BLOCK)
            .map(|_| {
                let s = (self.phase.sin() * self.amplitude * 32767.0) as i16;
                self.phase = (self.phase + step) % std::f64::consts::TAU;
                s
            })
            .collect();
        Ok(Some(AudioFrame { samples, captured }))
    }
}

/// A microphone that plays a WAV file (any rate and channel count; mixed to
/// mono and resampled to 48 kHz), looping, or once and then silence.
pub struct WavMicrophone {
    path: PathBuf,
    samples: Vec<i16>,
    position: usize,
    looping: bool,
    clock: Clock,
}

impl WavMicrophone {
    /// Loads `path`.
    pub fn open(path: &Path, looping: bool, start: Instant) -> Result<Self, DeviceError> {
        let mut reader = hound::WavReader::open(path)
            .map_err(|e| DeviceError::Io(format!("{}: {e}", path.display())))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let raw: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
            }
            hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        }
        .map_err(|e| DeviceError::Io(format!("{}: {e}", path.display())))?;
        let mono: Vec<f32> = raw
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / c.len() as f32)
            .collect();
        let samples = resample(&mono, spec.sample_rate, SAMPLE_RATE)
            .into_iter()
            .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect();
        Ok(WavMicrophone {
            path: path.to_owned(),
            samples,
            position: 0,
            looping,
            clock: Clock { start, emitted: 0 },
        })
    }
}

/// Linear resampling (good enough for test signals and speech prompts).
fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let ratio = f64::from(from) / f64::from(to);
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * ratio;
            let k = pos.floor() as usize;
            let frac = (pos - k as f64) as f32;
            let a = input[k.min(input.len() - 1)];
            let b = input[(k + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

impl Microphone for WavMicrophone {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: format!("wav:{}", self.path.display()),
            name: format!(
                "{}",
                self.path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            kind: DeviceKind::Microphone,
            is_default: false,
        }
    }

    fn poll_block(&mut self, now: Instant) -> Result<Option<AudioFrame>, DeviceError> {
        let Some(captured) = self.clock.due(now) else {
            return Ok(None);
        };
        let mut samples = Vec::with_capacity(AUDIO_BLOCK);
        while samples.len() < AUDIO_BLOCK {
            if self.position >= self.samples.len() {
                if self.looping && !self.samples.is_empty() {
                    self.position = 0;
                } else {
                    samples.resize(AUDIO_BLOCK, 0);
                    break;
                }
            }
            let take = (AUDIO_BLOCK - samples.len()).min(self.samples.len() - self.position);
            samples.extend_from_slice(&self.samples[self.position..self.position + take]);
            self.position += take;
        }
        Ok(Some(AudioFrame { samples, captured }))
    }
}

/// A speaker that discards everything (`--speaker null`).
#[derive(Default)]
pub struct NullSpeaker;

impl Speaker for NullSpeaker {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: "null".into(),
            name: "No sound".into(),
            kind: DeviceKind::Speaker,
            is_default: false,
        }
    }

    fn play(&mut self, _block: &AudioFrame) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// A speaker that records what it plays to a 48 kHz mono WAV file.
pub struct WavRecorder {
    path: PathBuf,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl WavRecorder {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, DeviceError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| DeviceError::Io(format!("{}: {e}", path.display())))?;
        Ok(WavRecorder {
            path: path.to_owned(),
            writer: Some(writer),
        })
    }

    /// Finishes the file (also done on drop).
    pub fn finish(&mut self) -> Result<(), DeviceError> {
        if let Some(w) = self.writer.take() {
            w.finalize()
                .map_err(|e| DeviceError::Io(format!("{}: {e}", self.path.display())))?;
        }
        Ok(())
    }
}

impl Drop for WavRecorder {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl Speaker for WavRecorder {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: format!("wav-out:{}", self.path.display()),
            name: format!("Recording to {}", self.path.display()),
            kind: DeviceKind::Speaker,
            is_default: false,
        }
    }

    fn play(&mut self, block: &AudioFrame) -> Result<(), DeviceError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(DeviceError::Gone("the recording is finished".into()));
        };
        for s in &block.samples {
            w.write_sample(*s)
                .map_err(|e| DeviceError::Io(format!("{}: {e}", self.path.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::read_stamp;

    #[test]
    fn the_camera_paces_frames_and_stamps_them() {
        let t0 = Instant::now();
        let mut cam = TestPatternCamera::new(640, 360, 30, t0);
        let mut frames = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(1) {
            if let Some(f) = cam.poll_frame(now).expect("frame") {
                frames.push(f);
            }
            now += Duration::from_millis(1);
        }
        assert!((29..=31).contains(&frames.len()), "{}", frames.len());
        for (i, f) in frames.iter().enumerate() {
            let stamp = read_stamp(f).expect("stamp");
            assert_eq!(stamp.frame, i as u64);
            assert_eq!(
                stamp.captured.as_micros(),
                (cam.unix_at_epoch + f.captured).as_micros()
            );
        }
    }

    #[test]
    fn a_tone_has_its_frequency_and_blocks_come_every_10_ms() {
        let t0 = Instant::now();
        let mut mic = ToneMicrophone::new(1000.0, 0.5, t0);
        assert!(mic.poll_block(t0).expect("poll").is_none());
        let mut samples = Vec::new();
        let mut blocks = 0;
        while let Some(b) = mic.poll_block(t0 + Duration::from_secs(1)).expect("poll") {
            assert_eq!(b.captured, BLOCK * blocks);
            samples.extend(b.samples);
            blocks += 1;
        }
        assert_eq!(blocks, 100);
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((1990..=2010).contains(&crossings), "{crossings}");
    }

    #[test]
    fn wav_files_are_mixed_resampled_and_recorded() {
        let dir = std::env::temp_dir().join(format!("conclave-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let input = dir.join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&input, spec).expect("create");
        for _ in 0..1600 {
            w.write_sample(8000i16).expect("write");
            w.write_sample(8000i16).expect("write");
        }
        w.finalize().expect("finalize");
        let t0 = Instant::now();
        let mut mic = WavMicrophone::open(&input, false, t0).expect("open");
        let output = dir.join("out.wav");
        let mut rec = WavRecorder::create(&output).expect("recorder");
        let mut total = 0;
        while let Some(b) = mic
            .poll_block(t0 + Duration::from_millis(200))
            .expect("poll")
        {
            total += b
                .samples
                .iter()
                .filter(|s| (7990..=8010).contains(*s))
                .count();
            rec.play(&b).expect("play");
        }
        // 0.1 s of the file at 48 kHz, then silence.
        assert_eq!(total, 4800);
        rec.finish().expect("finish");
        let back = hound::WavReader::open(&output).expect("reopen");
        assert_eq!(back.duration(), 20 * AUDIO_BLOCK as u32);
        assert!(WavMicrophone::open(&dir.join("missing.wav"), false, t0).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
