//! Media through the server: a synthetic publisher's audio and video reach
//! an engine participant (a VideoRoom subscription), on Janus and on
//! conclave-server alike.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use conclave_e2e::synthetic::{Role, SyntheticPeer, Window};
use conclave_e2e::{new_meeting, server, server_ip, Peer};
use conclave_engine::EngineEvent;

fn media_from(name: &'static str, kind: &'static str) -> impl Fn(&EngineEvent) -> bool {
    move |e| matches!(e, EngineEvent::MediaReceived { nickname, kind: k, .. } if nickname == name && k == kind)
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
