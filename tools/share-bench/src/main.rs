//! `share-bench`: on `$DISPLAY` (a 1920x1080 screen showing something that
//! moves), measures
//! - conclave-screen's capture (MIT-SHM) plus VP8 encoding, back to back:
//!   milliseconds per frame;
//! - the same paced at 15 frames/s for 10 s, as a share runs: frames per
//!   second achieved and this process's CPU (the X server's own work is not
//!   counted, for either capturer);
//! - xcap's capture of the same monitor, back to back.
//!
//! Prints a table, then one JSON line.

use std::time::{Duration, Instant};

use conclave_codec::{EncoderConfig, VideoCodec, VideoEncoder};

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let mut source = conclave_screen::open(None, None).expect("a screen to capture");
    let info = source.info();
    assert_eq!(
        (info.width, info.height),
        (1920, 1080),
        "run on a 1920x1080 screen (scripts/bench share sets one up)"
    );
    let mut encoder = VideoEncoder::new(
        VideoCodec::Vp8,
        EncoderConfig {
            width: 1920,
            height: 1080,
            fps: 15,
            bitrate: 2_500_000,
        },
    )
    .expect("encoder");

    // Back to back.
    let (mut capture_ms, mut encode_ms) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let t0 = Instant::now();
        let frame = source.capture(start.elapsed()).expect("capture");
        let t1 = Instant::now();
        encoder.encode(&frame).expect("encode");
        capture_ms.push((t1 - t0).as_secs_f64() * 1000.0);
        encode_ms.push(t1.elapsed().as_secs_f64() * 1000.0);
    }
    let capture = median(&mut capture_ms);
    let encode = median(&mut encode_ms);

    // Paced at 15 frames/s, as a share runs.
    let interval = Duration::from_secs(1) / 15;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let mut next = start;
    let mut frames = 0u32;
    while start.elapsed() < Duration::from_secs(10) {
        let frame = source.capture(start.elapsed()).expect("capture");
        encoder.encode(&frame).expect("encode");
        frames += 1;
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let wall = start.elapsed();
    let cpu_pct = (cpu_time() - cpu0).as_secs_f64() / wall.as_secs_f64() * 100.0;
    let fps = f64::from(frames) / wall.as_secs_f64();

    // xcap, same monitor, back to back.
    let monitor = xcap::Monitor::all()
        .expect("xcap monitors")
        .into_iter()
        .next()
        .expect("a monitor");
    let _ = monitor.capture_image();
    let mut xcap_ms = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let t0 = Instant::now();
        let image = monitor.capture_image().expect("xcap capture");
        assert_eq!((image.width(), image.height()), (1920, 1080));
        xcap_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let xcap = median(&mut xcap_ms);

    let round = |v: f64| (v * 10.0).round() / 10.0;
    println!("Sharing a 1920x1080 X11 screen (median per frame; CPU of this process only)");
    println!("{:<40} {:>10}", "measure", "value");
    println!("{:<40} {:>10}", "conclave capture (MIT-SHM), ms", round(capture));
    println!("{:<40} {:>10}", "VP8 encode 1080p, ms", round(encode));
    println!("{:<40} {:>10}", "capture + encode, ms", round(capture + encode));
    println!("{:<40} {:>10}", "paced at 15/s: frames per second", round(fps));
    println!("{:<40} {:>10}", "paced at 15/s: CPU % of a core", round(cpu_pct));
    println!("{:<40} {:>10}", "xcap capture, ms", round(xcap));
    println!(
        "{}",
        serde_json::json!({
            "capture_encode_ms_1080p": round(capture + encode),
            "fps_1080p": round(fps),
            "cpu_pct_1080p": round(cpu_pct),
            "xcap_capture_ms_1080p": round(xcap),
            "capture_ms_1080p": round(capture),
            "encode_ms_1080p": round(encode),
        })
    );
}
