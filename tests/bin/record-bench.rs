//! `scripts/bench record`: what local recording costs and how much a crash
//! loses. Four people (our own camera and three others) send 1280x720
//! test-pattern pictures at 30 frames/s and a tone each, straight into the
//! recorder (as decoded pictures and sound reach it in a meeting): the
//! recorder thread's CPU time per recorded second, the canvas frames it
//! dropped, and, over a few runs killed with SIGKILL at random moments, the
//! most recorded time lost. Prints a table, then one JSON line.
//!
//! `record-bench [SECONDS] [KILLS]` (20 and 3 by default);
//! `record-bench --victim FILE` is one run to be killed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use conclave_media::synthetic::{TestPatternCamera, ToneMicrophone};
use conclave_media::{Camera, Microphone, VideoFrame};
use conclave_record::recorder::Recorder;

/// People in the recording (tile 0 is our own camera).
const PEOPLE: u64 = 4;
/// Pictures prepared per person (cycled: drawing the pattern live would
/// cost more than recording it).
const PREPARED: usize = 15;
const FPS: u32 = 30;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--victim") {
        let file = args.get(1).context("--victim FILE")?;
        return victim(Path::new(file));
    }
    let seconds: u64 = args
        .first()
        .map_or(Ok(20), |s| s.parse())
        .context("SECONDS")?;
    let kills: usize = args.get(1).map_or(Ok(3), |s| s.parse()).context("KILLS")?;
    let dir = std::env::temp_dir().join(format!("conclave-record-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, seconds, kills);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path, seconds: u64, kills: usize) -> anyhow::Result<()> {
    let people = Feed::new();
    // Cost: a recording of `seconds`.
    let file = dir.join("bench.webm");
    let recorder = Recorder::start(&file, "Benchmark")?;
    let cpu_before = recorder_cpu(&recorder)?;
    let start = Instant::now();
    people.feed(&recorder, start, Some(Duration::from_secs(seconds)));
    let cpu = recorder_cpu(&recorder)? - cpu_before;
    let wall = start.elapsed().as_secs_f64();
    recorder.stop()?;
    let (frames, last) = video_packets(&file)?;
    let expected = (last * 25.0).round() as u64 + 1;
    let dropped = expected.saturating_sub(frames);
    let size = std::fs::metadata(&file)?.len();

    // Crashes: killed at random moments, then repaired.
    let mut losses = Vec::new();
    for trial in 0..kills {
        let file = dir.join(format!("victim-{trial}.webm"));
        losses.push(kill_once(&file)?);
    }
    let max_loss = losses.iter().copied().fold(0.0, f64::max);

    let cores = cpu / wall;
    println!(
        "local recording: {PEOPLE} people at 1280x720 {FPS}/s into a 1280x720 25/s VP8 gallery"
    );
    println!("{:<38} {:>12} {:>10}", "measure", "value", "goal");
    println!("{:<38} {:>12.1} {:>10}", "recorded (s)", wall, "");
    println!(
        "{:<38} {:>12.3} {:>10}",
        "recorder CPU (cores)", cores, "<= 1"
    );
    println!(
        "{:<38} {:>12.1} {:>10}",
        "recorder CPU ms per recorded s",
        cpu * 1000.0 / wall,
        ""
    );
    println!("{:<38} {:>12} {:>10}", "canvas frames written", frames, "");
    println!(
        "{:<38} {:>12} {:>10}",
        "canvas frames dropped", dropped, "0"
    );
    println!(
        "{:<38} {:>12.0} {:>10}",
        "file kB per s",
        size as f64 / 1000.0 / wall,
        ""
    );
    for (i, loss) in losses.iter().enumerate() {
        println!(
            "{:<38} {:>12.3} {:>10}",
            format!("lost on kill #{} (s)", i + 1),
            loss,
            "<= 1"
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "cpu_cores_4p_720p": (cores * 1000.0).round() / 1000.0,
            "dropped_frames": dropped,
            "max_loss_on_kill_s": (max_loss * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}

/// One recording killed with SIGKILL after 2–5 s; returns the seconds of
/// recording lost (killed at, less what the repaired file covers).
fn kill_once(file: &Path) -> anyhow::Result<f64> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--victim")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "started" {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the recording did not start: {line}");
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(2000 + rand::random::<u64>() % 3000));
    child.kill()?;
    let killed = started.elapsed().as_secs_f64();
    child.wait()?;
    let repaired = conclave_record::files::repair_file(file)?;
    // The last block (a 40 ms picture or 20 ms of sound) is covered too.
    let covered = repaired.duration_ms as f64 / 1000.0 + 0.02;
    Ok((killed - covered).max(0.0))
}

/// Records until killed.
fn victim(file: &Path) -> anyhow::Result<()> {
    let people = Feed::new();
    let recorder = Recorder::start(file, "Killed")?;
    let start = Instant::now();
    println!("started");
    std::io::stdout().flush()?;
    people.feed(&recorder, start, None);
    Ok(())
}

/// Four people's prepared pictures and tones.
struct Feed {
    pictures: Vec<Vec<VideoFrame>>,
}

impl Feed {
    fn new() -> Self {
        let epoch = Instant::now();
        let pictures = (0..PEOPLE)
            .map(|_| {
                let mut camera = TestPatternCamera::new(1280, 720, 1000, epoch);
                let mut frames = Vec::new();
                while frames.len() < PREPARED {
                    if let Ok(Some(f)) =
                        camera.poll_frame(Instant::now() + Duration::from_secs(3600))
                    {
                        frames.push(f);
                    }
                }
                frames
            })
            .collect();
        Feed { pictures }
    }

    /// Feeds `recorder` in real time for `length` (or for ever).
    fn feed(&self, recorder: &Recorder, start: Instant, length: Option<Duration>) {
        let mut tones: Vec<ToneMicrophone> = (0..PEOPLE)
            .map(|i| ToneMicrophone::new(220.0 * (i + 1) as f64, 0.2, start))
            .collect();
        for id in 0..PEOPLE {
            recorder.name(id, &format!("Person {}", id + 1));
        }
        let frame_interval = Duration::from_secs(1) / FPS;
        let mut next_frame = start;
        let mut shown = 0usize;
        loop {
            let now = Instant::now();
            if length.is_some_and(|l| now >= start + l) {
                return;
            }
            for (id, tone) in tones.iter_mut().enumerate() {
                while let Ok(Some(block)) = tone.poll_block(now) {
                    recorder.audio(id as u64, &block);
                }
            }
            if now >= next_frame {
                for (id, frames) in self.pictures.iter().enumerate() {
                    recorder.video(id as u64, &frames[shown % frames.len()]);
                }
                shown += 1;
                next_frame += frame_interval;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// CPU seconds used so far by this process's `recorder` thread. A new
/// thread takes its name when it first runs, which on a busy machine may
/// be a moment after it was started: it is looked for for two seconds. If
/// the recording ended instead, its error is the answer.
fn recorder_cpu(recorder: &Recorder) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(seconds) = thread_cpu("recorder")? {
            return Ok(seconds);
        }
        if !recorder.is_running() {
            return match recorder.stop() {
                Err(e) => Err(anyhow::anyhow!("the recorder stopped: {e}")),
                Ok(_) => bail!("the recorder thread ended without an error"),
            };
        }
        if Instant::now() >= deadline {
            bail!("no thread named `recorder` after 2 s, though the recording runs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// CPU seconds of this process's thread named `name`, if there is one.
fn thread_cpu(name: &str) -> anyhow::Result<Option<f64>> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?.path();
        // A thread may end between listing and reading.
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat"))?;
        // Fields after the command name's closing parenthesis.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .context("stat fields")?
            .iter()
            .map(|f| f.parse::<f64>().unwrap_or(0.0))
            .sum();
        return Ok(Some(ticks / 100.0));
    }
    Ok(None)
}

/// The number of video packets in `file` and the last one's time.
fn video_packets(file: &PathBuf) -> anyhow::Result<(u64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .context("ffprobe (scripts/setup test installs it)")?;
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    Ok((
        times.len() as u64,
        times.iter().copied().fold(0.0, f64::max),
    ))
}
