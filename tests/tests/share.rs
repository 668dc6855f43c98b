//! Screen sharing through the server: a participant shares a screen of a
//! private Xvfb on which a window shows the animated test pattern; another
//! decodes the share and finds the pattern's stamps, intact and counting
//! up. A share started and stopped mid-meeting (a renegotiation) appears
//! and ends as a "screen" track. One presenter at a time, unless the host
//! allows several. On Janus and conclave-server alike.

use std::time::Duration;

use conclave_e2e::{new_meeting, new_meeting_described, show_pattern, Peer, PrivateDisplay};
use conclave_engine::{CameraChoice, Command, EngineEvent, MediaOptions};

fn screen_track(added: bool) -> impl Fn(&EngineEvent) -> bool {
    move |e| match e {
        EngineEvent::TrackAdded { kind, .. } if added => kind == "screen",
        EngineEvent::TrackRemoved { kind, .. } if !added => kind == "screen",
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_reaches_the_others_with_the_pattern_intact() {
    let Some(xvfb) = PrivateDisplay::start(1280, 720) else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let mut window = show_pattern(&xvfb.display, env!("CARGO_BIN_EXE_pattern-window"));
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!("conclave-share-test-{}", std::process::id()));
    let mut receiver = Peer::join_saving(&info, "Receiver", &dir).await;
    // Shares from the start (as `conclave-cli join --share-screen` does).
    let sharer = Peer::join_media(
        &info,
        "Sharer",
        false,
        MediaOptions {
            share: Some(CameraChoice::Screen {
                display: Some(xvfb.display.clone()),
                source: None,
            }),
            ..Default::default()
        },
    )
    .await;
    receiver.wait_for("the share", screen_track(true)).await;
    wait_for_frames(&mut receiver, 10).await;
    // One presenter at a time: the receiver may not share now.
    receiver.meeting.command(Command::StartShare {
        source: CameraChoice::Screen {
            display: Some(xvfb.display.clone()),
            source: None,
        },
        audio: false,
    });
    receiver
        .wait_for("a refusal", |e| {
            matches!(e, EngineEvent::Error { message } if message.contains("Sharer is presenting"))
        })
        .await;
    let screen_tile = (sharer_id(&receiver) | conclave_engine::frames::SCREEN_TILE).to_string();
    sharer.leave().await;
    receiver.leave().await;
    let _ = window.kill();
    let _ = window.wait();

    let csv = std::fs::read_to_string(dir.join(format!("{screen_tile}-video.csv")))
        .expect("the share's frame log");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(rows.len() >= 10, "frames of the share: {}", rows.len());
    assert!(
        rows.iter()
            .all(|r| r.get(3) == Some(&"1280") && r.get(4) == Some(&"720")),
        "the whole 1280x720 screen at its size"
    );
    // The window's pattern is at (40, 40) of the screen, not at the frame's
    // corner: the stamp reader finds no stamp there, so the decoded pictures
    // are checked through the window test below; here, that frames arrive.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the receiver's statistics show `n` decoded frames of the
/// share (its first keyframe can take a moment to be asked for and sent).
async fn wait_for_frames(receiver: &mut Peer, n: u64) {
    let tile = (sharer_id(receiver) | conclave_engine::frames::SCREEN_TILE).to_string();
    receiver
        .wait_for("decoded frames of the share", |e| match e {
            EngineEvent::Stats { stats } => stats
                .remotes
                .iter()
                .any(|r| r.participant == tile && r.video_frames >= n),
            _ => false,
        })
        .await;
}

fn sharer_id(receiver: &Peer) -> u64 {
    receiver
        .seen
        .iter()
        .find_map(|e| match e {
            EngineEvent::TrackAdded {
                participant, kind, ..
            } if kind == "screen" => participant.parse().ok(),
            _ => None,
        })
        .expect("the share's track")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_shared_mid_meeting_arrives_intact_and_stopping_ends_it() {
    let Some(xvfb) = PrivateDisplay::start(1280, 720) else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let mut window = show_pattern(&xvfb.display, env!("CARGO_BIN_EXE_pattern-window"));
    let pattern = conclave_screen::list_sources(Some(&xvfb.display))
        .expect("sources")
        .into_iter()
        .find(|s| s.name == "Conclave test pattern")
        .expect("the pattern window is listed");
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!("conclave-share-window-{}", std::process::id()));
    let mut receiver = Peer::join_saving(&info, "Receiver", &dir).await;
    let mut sharer = Peer::join_media(
        &info,
        "Sharer",
        false,
        MediaOptions {
            camera: Some(CameraChoice::Synthetic {
                width: 320,
                height: 180,
                fps: 15,
            }),
            ..Default::default()
        },
    )
    .await;
    receiver
        .wait_for(
            "the camera",
            |e| matches!(e, EngineEvent::TrackAdded { kind, .. } if kind == "video"),
        )
        .await;
    // Mid-meeting: share just the window (a renegotiation adds the stream).
    sharer.meeting.command(Command::StartShare {
        source: CameraChoice::Screen {
            display: Some(xvfb.display.clone()),
            source: Some(pattern.id.clone()),
        },
        audio: false,
    });
    receiver.wait_for("the share", screen_track(true)).await;
    wait_for_frames(&mut receiver, 10).await;
    // Stopping ends the track for the others.
    sharer.meeting.command(Command::StopShare);
    receiver
        .wait_for("the share's end", screen_track(false))
        .await;
    sharer.settle(Duration::from_millis(10)).await;
    assert!(
        !sharer
            .seen
            .iter()
            .any(|e| matches!(e, EngineEvent::Error { .. })),
        "no errors: {:?}",
        sharer.seen
    );
    let screen_tile = (sharer_id(&receiver) | conclave_engine::frames::SCREEN_TILE).to_string();
    sharer.leave().await;
    receiver.leave().await;
    let _ = window.kill();
    let _ = window.wait();

    let csv = std::fs::read_to_string(dir.join(format!("{screen_tile}-video.csv")))
        .expect("the share's frame log");
    let frames: Vec<i64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.ends_with(",960,540"))
        .filter_map(|l| l.split(',').next().and_then(|n| n.parse().ok()))
        .collect();
    assert!(frames.len() >= 10, "window frames: {}", frames.len());
    assert!(
        frames.iter().all(|n| *n >= 0),
        "every frame of the window carries the pattern's stamp intact: {frames:?}"
    );
    assert!(frames.windows(2).all(|w| w[1] >= w[0]), "counters increase");
    assert!(frames.last() > frames.first(), "the pattern moves");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A host who allows several presenters: a second share is not refused,
/// and each participant receives the other's screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_presenters_allowed_two_share_at_once() {
    let Some(xvfb) = PrivateDisplay::start(640, 360) else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let description = conclave_protocol::videoroom::RoomDescription {
        topic: Some("Design review".into()),
        several_presenters: true,
        ..Default::default()
    };
    let info = new_meeting_described(false, description.to_description()).await;
    let screen = || CameraChoice::Screen {
        display: Some(xvfb.display.clone()),
        source: None,
    };
    let mut first = Peer::join_media(
        &info,
        "First",
        false,
        MediaOptions {
            share: Some(screen()),
            ..Default::default()
        },
    )
    .await;
    assert!(first.several_presenters, "the server tells the host's rule");
    assert_eq!(first.topic.as_deref(), Some("Design review"));
    let mut second = Peer::join(&info, "Second").await;
    second.wait_for("the first share", screen_track(true)).await;
    second.meeting.command(Command::StartShare {
        source: screen(),
        audio: false,
    });
    first.wait_for("the second share", screen_track(true)).await;
    second.settle(Duration::from_millis(500)).await;
    assert!(
        !second.seen.iter().any(
            |e| matches!(e, EngineEvent::Error { message } if message.contains("is presenting"))
        ),
        "no refusal: {:?}",
        second.seen
    );
    first.leave().await;
    second.leave().await;
}
