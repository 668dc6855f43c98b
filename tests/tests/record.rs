//! Local recording from the command line: a participant records with
//! `conclave-cli join --record DIR` while another sends a test pattern and a
//! tone. The file is WebM with VP8 and Opus, lasts as long as the recording
//! did, decodes without errors and holds the other participant's tone.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use conclave_e2e::new_meeting;

fn cli() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conclave/target",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    PathBuf::from(target).join("debug/conclave-cli")
}

/// The RMS of the file's audio between `from` and `to` seconds.
fn audio_rms(file: &std::path::Path, from: f64, to: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-ss",
            &from.to_string(),
            "-to",
            &to.to_string(),
            "-i",
        ])
        .arg(file)
        .args(["-vn", "-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg");
    let samples: Vec<f64> = out
        .stdout
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect();
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_recording_holds_the_meeting_picture_and_sound() {
    if Command::new("ffprobe").arg("-version").output().is_err() {
        eprintln!("skipped: no ffmpeg");
        return;
    }
    let info = new_meeting(false).await;
    let link = info.to_app_link();
    let dir = std::env::temp_dir().join(format!("conclave-record-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut speaker = Command::new(cli())
        .args([
            "join",
            &link,
            "--name",
            "Speaker",
            "--camera",
            "synthetic:320x180@15",
            "--mic",
            "tone:440",
            "--stay",
            "12",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("speaker");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let recorder = Command::new(cli())
        .args([
            "join", &link, "--name", "Recorder", "--stay", "7", "--record",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("recorder");
    let _ = speaker.kill();
    let _ = speaker.wait();
    assert!(recorder.success(), "the recording participant left cleanly");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(files.len(), 1, "one recording: {files:?}");
    let file = &files[0];
    assert!(file.extension().is_some_and(|e| e == "webm"));
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type:format=duration",
            "-of",
            "compact",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let probed = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probed.contains("codec_name=vp8|codec_type=video"),
        "{probed}"
    );
    assert!(
        probed.contains("codec_name=opus|codec_type=audio"),
        "{probed}"
    );
    let duration: f64 = probed
        .lines()
        .find_map(|l| l.strip_prefix("format|duration="))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        (6.0..9.0).contains(&duration),
        "lasts as long as the stay: {probed}"
    );
    let errors = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert_eq!(
        String::from_utf8_lossy(&errors.stderr),
        "",
        "decodes without errors"
    );
    // The speaker's tone is in the recording once media flows.
    let rms = audio_rms(file, duration - 3.0, duration - 0.5);
    assert!(rms > 300.0, "the speaker's tone is recorded (RMS {rms:.0})");
    let _ = std::fs::remove_dir_all(&dir);
}
