//! `click-probe`: audio mouth-to-ear latency through real (virtual) devices.
//!
//! Plays a click train (a 20 ms 1 kHz burst every 600 ms) into one speaker
//! (the sink that feeds a participant's microphone) while recording two
//! microphones in the same process and on the same clock: the "mouth" (the
//! monitor of that sink: when the click enters the sender's microphone)
//! and the "ear" (the monitor of the receiver's speaker: when it comes out).
//! Each mouth click is paired with the first ear click after it; the delays
//! are printed as one JSON line: `{"m2e_ms": [...], "clicks": N}`.
//!
//! Usage: click-probe --play SINK --mouth SOURCE --ear SOURCE --seconds T

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use conclave_media::system_audio::{SystemMicrophone, SystemSpeaker};
use conclave_media::{AudioFrame, Microphone, Speaker, AUDIO_BLOCK, SAMPLE_RATE};
use serde_json::json;

const PERIOD: Duration = Duration::from_millis(600);
const BURST: Duration = Duration::from_millis(20);
/// Onset threshold (about -26 dBFS) and the quiet needed before an onset.
const THRESHOLD: i16 = 1600;
const QUIET: Duration = Duration::from_millis(250);

struct OnsetDetector {
    quiet_since: Option<Duration>,
    onsets: Vec<Duration>,
}

impl OnsetDetector {
    fn new() -> Self {
        OnsetDetector {
            quiet_since: Some(Duration::ZERO),
            onsets: Vec::new(),
        }
    }

    fn feed(&mut self, block: &AudioFrame) {
        for (i, s) in block.samples.iter().enumerate() {
            let t = block.captured
                + Duration::from_micros(i as u64 * 1_000_000 / u64::from(SAMPLE_RATE));
            if s.unsigned_abs() > THRESHOLD as u16 {
                if self
                    .quiet_since
                    .is_some_and(|q| t.saturating_sub(q) >= QUIET)
                {
                    self.onsets.push(t);
                }
                self.quiet_since = None;
            } else if self.quiet_since.is_none() {
                self.quiet_since = Some(t);
            }
        }
    }
}

fn arg(args: &[String], name: &str) -> anyhow::Result<String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .with_context(|| format!("missing {name}"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let play = arg(&args, "--play")?;
    let mouth_name = arg(&args, "--mouth")?;
    let ear_name = arg(&args, "--ear")?;
    let seconds: f64 = arg(&args, "--seconds")?.parse().context("--seconds")?;
    let epoch = Instant::now();
    let mut speaker = SystemSpeaker::open(Some(&play)).context("opening the click speaker")?;
    let mut mouth =
        SystemMicrophone::open(Some(&mouth_name), epoch).context("opening the mouth")?;
    let mut ear = SystemMicrophone::open(Some(&ear_name), epoch).context("opening the ear")?;
    let (mut at_mouth, mut at_ear) = (OnsetDetector::new(), OnsetDetector::new());
    let end = epoch + Duration::from_secs_f64(seconds);
    let mut next_block = epoch;
    let mut played = Duration::ZERO;
    while Instant::now() < end + Duration::from_secs(1) {
        let now = Instant::now();
        // Keep about 30 ms queued at the speaker.
        while next_block <= now + Duration::from_millis(30) {
            let mut block = AudioFrame::silence(played);
            if now < end {
                for (i, s) in block.samples.iter_mut().enumerate() {
                    let t = played
                        + Duration::from_micros(i as u64 * 1_000_000 / u64::from(SAMPLE_RATE));
                    let phase = t.as_micros() % PERIOD.as_micros();
                    if phase < BURST.as_micros() && t > PERIOD {
                        let x = t.as_secs_f64() * 1000.0 * std::f64::consts::TAU;
                        *s = (x.sin() * 16000.0) as i16;
                    }
                }
            }
            speaker.play(&block).context("playing clicks")?;
            played += Duration::from_millis(10);
            next_block += Duration::from_millis(10);
        }
        while let Some(b) = mouth.poll_block(now).context("mouth")? {
            at_mouth.feed(&b);
        }
        while let Some(b) = ear.poll_block(now).context("ear")? {
            at_ear.feed(&b);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut delays = Vec::new();
    for m in &at_mouth.onsets {
        if let Some(e) = at_ear.onsets.iter().find(|e| *e > m) {
            let d = *e - *m;
            if d < PERIOD {
                delays.push(d.as_secs_f64() * 1000.0);
            }
        }
    }
    if at_mouth.onsets.is_empty() {
        bail!("no click reached the mouth (is {play} feeding {mouth_name}?)");
    }
    println!(
        "{}",
        json!({"m2e_ms": delays, "clicks": at_mouth.onsets.len(), "heard": at_ear.onsets.len(),
               "block_ms": AUDIO_BLOCK as f64 * 1000.0 / f64::from(SAMPLE_RATE)})
    );
    Ok(())
}
