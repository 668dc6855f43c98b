//! Recordings with real VP8 and Opus, read by ffmpeg: a finished file has
//! the tracks and duration it should; a file cut off as by a crash decodes
//! without errors up to its last whole cluster, and repair finalises it.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use conclave_codec::opus::OpusEncoder;
use conclave_codec::vp8::Vp8Encoder;
use conclave_codec::EncoderConfig;
use conclave_media::pattern::paint_background;
use conclave_media::{AudioFrame, VideoFrame, AUDIO_BLOCK};
use conclave_record::mkv::{repair, Track, Writer};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok()
}

/// Records `seconds` of a moving picture at 25 frames/s and a tone in 20 ms
/// Opus packets, into `path`; finished or not.
fn record(path: &Path, seconds: u64, finish: bool) -> std::fs::File {
    let file = std::fs::File::create(path).expect("create");
    let tracks = vec![Track::vp8(1, "Gallery", 640, 360), Track::opus(2, "Mix", 1)];
    let mut writer = Writer::create(file, tracks, "Test", 1000).expect("writer");
    let mut video = Vp8Encoder::new(EncoderConfig {
        width: 640,
        height: 360,
        fps: 25,
        bitrate: 600_000,
    })
    .expect("vp8");
    let mut audio = OpusEncoder::new(32_000).expect("opus");
    let mut frame = VideoFrame::black(640, 360);
    let blocks_per_second = 1000 / 10;
    let mut phase = 0f32;
    for block in 0..seconds * blocks_per_second {
        let ms = block * 10;
        let samples: Vec<i16> = (0..AUDIO_BLOCK)
            .map(|_| {
                phase += 2.0 * std::f32::consts::PI * 440.0 / 48_000.0;
                (phase.sin() * 8000.0) as i16
            })
            .collect();
        let captured = Duration::from_millis(ms);
        if let Some(packet) = audio
            .encode(&AudioFrame { samples, captured })
            .expect("encode")
        {
            // The packet covers the 20 ms that ended with this block.
            writer
                .write_frame(2, ms.saturating_sub(10), true, &packet)
                .expect("audio");
        }
        if ms % 40 == 0 {
            if ms % 1000 == 0 {
                video.request_keyframe();
            }
            paint_background(&mut frame, ms / 40);
            frame.captured = captured;
            for encoded in video.encode(&frame).expect("encode") {
                writer
                    .write_frame(1, ms, encoded.keyframe, &encoded.data)
                    .expect("video");
            }
        }
    }
    if finish {
        writer.finish().expect("finish")
    } else {
        writer.flush().expect("flush");
        // The "crash": the writer goes without finishing; what it synced stays.
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("reopen")
    }
}

fn probe(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type:format=duration",
            "-of",
            "compact",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What ffmpeg says, warnings included, decoding the whole file (empty:
/// nothing).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "warning", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The video frames ffprobe reads from the file.
fn video_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn duration(probed: &str) -> f64 {
    probed
        .lines()
        .find_map(|l| l.strip_prefix("format|duration="))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn ffmpeg_reads_a_finished_recording_and_a_repaired_cut_off_one() {
    if !have("ffprobe") || !have("ffmpeg") {
        eprintln!("skipped: no ffmpeg");
        return;
    }
    let dir = std::env::temp_dir().join(format!("conclave-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    let finished = dir.join("finished.webm");
    record(&finished, 4, true);
    let probed = probe(&finished);
    assert!(
        probed.contains("codec_name=vp8|codec_type=video"),
        "{probed}"
    );
    assert!(
        probed.contains("codec_name=opus|codec_type=audio"),
        "{probed}"
    );
    assert!((duration(&probed) - 4.0).abs() < 0.1, "{probed}");
    assert_eq!(decode_errors(&finished), "", "no decode errors");

    // Cut off mid-write: half a cluster of garbage after the last whole one.
    let cut = dir.join("cut.webm");
    let mut file = record(&cut, 3, false);
    file.write_all(&[0x1F, 0x43, 0xB6, 0x75, 0x10, 0x00, 0x10, 0x00, 1, 2, 3])
        .expect("torn write");
    drop(file);
    // Unfinished, it already plays: every video frame up to the torn end.
    assert_eq!(video_frames(&cut), 75, "3 s at 25 frames/s");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&cut)
        .expect("open");
    let report = repair(&mut file, |f, len| f.set_len(len)).expect("repair");
    assert_eq!(report.dropped_bytes, 11);
    assert_eq!(report.clusters, 3);
    drop(file);
    let probed = probe(&cut);
    assert!((duration(&probed) - 3.0).abs() < 0.1, "{probed}");
    assert_eq!(video_frames(&cut), 75);
    assert_eq!(decode_errors(&cut), "", "the repaired file decodes cleanly");
    let _ = std::fs::remove_dir_all(dir);
}
