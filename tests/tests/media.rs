//! Media through the server: a synthetic publisher's audio and video reach
//! an engine participant (a VideoRoom subscription), on Janus and on
//! conclave-server alike.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use conclave_e2e::synthetic::{Role, SyntheticPeer, Window};
use conclave_e2e::{new_meeting, server, server_ip, Peer};
use conclave_engine::{CameraChoice, EngineEvent, MediaOptions, MicrophoneChoice, VideoCodec};

fn media_from(name: &'static str, kind: &'static str) -> impl Fn(&EngineEvent) -> bool {
    move |e| matches!(e, EngineEvent::TrackAdded { nickname, kind: k, .. } if nickname == name && k == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_audio_and_video_reach_participants_joined_before_and_after() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let info = new_meeting(false).await;
    let mut early = Peer::join(&info, "Early").await;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = SyntheticPeer::start(
        &server(),
        info.room.0,
        info.room_pin(),
        server_ip(),
        Role::Publisher {
            display: "Cam".into(),
        },
        Arc::new(Window::default()),
        stop.clone(),
    )
    .await
    .expect("publisher joins and publishes");
    // The publisher shows up in the roster, then its media arrives.
    early
        .wait_for("the publisher in the roster", |e| {
            matches!(e, EngineEvent::ParticipantJoined { participant } if participant.nickname == "Cam")
        })
        .await;
    early.wait_for("audio", media_from("Cam", "audio")).await;
    early.wait_for("video", media_from("Cam", "video")).await;
    // Someone joining later subscribes at once.
    let mut late = Peer::join(&info, "Late").await;
    assert!(late.joined_with.iter().any(|p| p.nickname == "Cam"));
    late.wait_for("audio", media_from("Cam", "audio")).await;
    late.wait_for("video", media_from("Cam", "video")).await;
    // The publisher leaves: it leaves the rosters.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    publisher.join().await.expect("publisher ran cleanly");
    late.wait_for("the publisher leaving", |e| {
        matches!(e, EngineEvent::ParticipantLeft { participant } if participant.nickname == "Cam")
    })
    .await;
    early.leave().await;
    late.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_720p_camera_and_tone_are_encoded_sent_decoded_and_saved() {
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!("conclave-media-test-{}", rand_suffix()));
    let mut sender = Peer::join_media(
        &info,
        "Sender",
        false,
        MediaOptions {
            camera: Some(CameraChoice::Synthetic {
                width: 1280,
                height: 720,
                fps: 30,
            }),
            microphone: Some(MicrophoneChoice::Tone(440.0)),
            ..Default::default()
        },
    )
    .await;
    let mut receiver = Peer::join_saving(&info, "Receiver", &dir).await;
    receiver
        .wait_for("video", media_from("Sender", "video"))
        .await;
    receiver
        .wait_for("audio", media_from("Sender", "audio"))
        .await;
    receiver.settle(std::time::Duration::from_secs(3)).await;
    receiver.leave().await;
    sender.settle(std::time::Duration::from_millis(10)).await;
    let limited = sender
        .seen
        .iter()
        .any(|e| matches!(e, EngineEvent::Stats { stats } if stats.sending.video_limited_by_cpu));
    sender.leave().await;

    // Video: the decoded test-pattern stamps are intact and count up.
    let csv = std::fs::read_dir(&dir)
        .expect("saved media")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-video.csv"))
        .expect("a frame log");
    let text = std::fs::read_to_string(csv.path()).expect("read");
    let frames: Vec<i64> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("frame column")
        })
        .collect();
    assert!(
        frames.len() >= 60,
        "about 30 frames/s for 3 s: {}",
        frames.len()
    );
    assert!(
        frames.iter().all(|n| *n >= 0),
        "every stamp reads back (no corruption)"
    );
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "counters increase");
    // 720p, unless the sender said its processor could not keep up (the
    // suite runs tests side by side on two cores): then one of its steps
    // down (3/4, 1/2, 3/8, 1/4 of the width) and fewer frames allowed.
    let sizes: &[&str] = if limited {
        &[",1280,720", ",960,540", ",640,360", ",480,270", ",320,180"]
    } else {
        &[",1280,720"]
    };
    // Every frame line (the first line is the CSV's header).
    assert!(
        text.lines()
            .skip(1)
            .all(|l| sizes.iter().any(|s| l.ends_with(s))),
        "sizes (limited by the processor: {limited}): {text}"
    );
    // 720p at 25 frames/s or more, by the decoded capture times.
    let captured: Vec<f64> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).and_then(|c| c.parse::<f64>().ok()))
        .collect();
    let span = (captured[captured.len() - 1] - captured[0]) / 1e6;
    let fps = (captured.len() - 1) as f64 / span;
    let least = if limited { 12.0 } else { 25.0 };
    assert!(
        fps >= least,
        "720p at {fps:.1} frames/s (limited by the processor: {limited})"
    );

    // Audio: the tone arrives with its energy.
    let wav = std::fs::read_dir(&dir)
        .expect("saved media")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-audio.wav"))
        .expect("an audio recording");
    let bytes = std::fs::read(wav.path()).expect("read wav");
    let samples: Vec<i16> = bytes[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert!(
        samples.len() > 48_000 * 2,
        "seconds of audio: {}",
        samples.len()
    );
    let tail = &samples[samples.len() / 2..];
    let rms = (tail.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
    assert!(rms > 3000.0, "the tone is audible: rms {rms}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_negotiated_instead_of_vp8_and_decodes_intact() {
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!("conclave-h264-test-{}", rand_suffix()));
    let mut sender = Peer::join_media(
        &info,
        "Sender",
        false,
        MediaOptions {
            camera: Some(CameraChoice::Synthetic {
                width: 640,
                height: 360,
                fps: 30,
            }),
            video_codec: VideoCodec::H264,
            ..Default::default()
        },
    )
    .await;
    let mut receiver = Peer::join_saving(&info, "Receiver", &dir).await;
    receiver
        .wait_for("video", media_from("Sender", "video"))
        .await;
    // Frames decode once the first keyframe arrives (it may have to be
    // asked for): wait for a second's worth, as the statistics count them.
    receiver
        .wait_for("30 decoded H.264 frames", |e| match e {
            EngineEvent::Stats { stats } => stats.remotes.iter().any(|r| r.video_frames >= 30),
            _ => false,
        })
        .await;
    receiver.leave().await;
    // Whether the sender's processor could not keep up (the suite runs
    // tests side by side): then its adaptation may send smaller pictures.
    sender.settle(std::time::Duration::from_millis(10)).await;
    let limited = sender
        .seen
        .iter()
        .any(|e| matches!(e, EngineEvent::Stats { stats } if stats.sending.video_limited_by_cpu));
    sender.leave().await;

    let csv = std::fs::read_dir(&dir)
        .expect("saved media")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-video.csv"))
        .expect("a frame log");
    let text = std::fs::read_to_string(csv.path()).expect("read");
    let frames: Vec<i64> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().and_then(|n| n.parse().ok()))
        .collect();
    assert!(frames.len() >= 30, "H.264 frames decoded: {}", frames.len());
    assert!(frames.iter().all(|n| *n >= 0), "every stamp reads back");
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "counters increase");
    let sizes: &[&str] = if limited {
        &[",640,360", ",480,270", ",320,180", ",240,135", ",160,90"]
    } else {
        &[",640,360"]
    };
    // Every frame line (the first line is the CSV's header).
    assert!(
        text.lines()
            .skip(1)
            .all(|l| sizes.iter().any(|s| l.ends_with(s))),
        "sizes (limited by the processor: {limited}): {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
