//! Failures give clear errors, never panics or hangs.

use std::time::{Duration, Instant};

use conclave_e2e::{new_meeting, server, try_join, Peer};
use conclave_engine::EngineEvent;
use conclave_protocol::link::{MeetingId, Password};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn failure(e: &EngineEvent) -> String {
    match e {
        EngineEvent::JoinFailed { message } => message.clone(),
        other => panic!("expected a failed join, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_room() {
    let mut info = new_meeting(false).await;
    info.password = Some(Password("not it".into()));
    let (_, _, e) = try_join(&info, "Eve", &server(), false).await;
    assert_eq!(failure(&e), "Wrong meeting password");

    info.password = None;
    let (_, _, e) = try_join(&info, "Eve", &server(), false).await;
    assert_eq!(failure(&e), "This meeting needs a password");

    info.room = MeetingId(9_999_999_991);
    let (_, _, e) = try_join(&info, "Eve", &server(), false).await;
    assert!(failure(&e).starts_with("No meeting with ID"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_not_running_fails_within_five_seconds() {
    let info = new_meeting(false).await;
    let start = Instant::now();
    let (_, _, e) = try_join(&info, "Eve", "ws://127.0.0.1:9", false).await;
    assert!(
        failure(&e).contains("Could not reach the meeting server"),
        "{e:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A fake server that answers `create` and then sends garbage.
#[allow(clippy::result_large_err)] // the handshake callback type is tungstenite's
async fn garbage_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let cb =
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                if req.headers().get("Sec-WebSocket-Protocol").is_some() {
                    resp.headers_mut().insert(
                        "Sec-WebSocket-Protocol",
                        "janus-protocol".parse().expect("header"),
                    );
                }
                Ok(resp)
            };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, cb)
            .await
            .expect("handshake");
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: serde_json::Value = serde_json::from_str(&t).expect("json");
            let tx = v["transaction"].as_str().unwrap_or_default().to_owned();
            for junk in [
                "not json at all".to_string(),
                "{\"janus\":\"mystery\"}".to_string(),
                "[1,2,3]".to_string(),
                "{\"janus\":\"success\"}".to_string(),
                format!("{{\"janus\":\"event\",\"transaction\":\"{tx}\",\"plugindata\":7}}"),
                format!(
                    "{{\"janus\":\"success\",\"transaction\":\"{tx}\",\"data\":{{\"id\":\"x\"}}}}"
                ),
                "\u{0}\u{1}".to_string(),
            ] {
                let _ = ws.send(Message::text(junk)).await;
            }
            let _ = ws.send(Message::binary(vec![0xff, 0xfe])).await;
        }
    });
    format!("ws://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_server_messages_are_ignored_without_panic() {
    let info = new_meeting(false).await;
    let url = garbage_server().await;
    let (_, _, e) = try_join(&info, "Eve", &url, false).await;
    // The server never answers properly: joining ends with a clear error.
    let msg = failure(&e);
    assert!(
        msg.contains("did not answer") || msg.contains("Lost the connection"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_meeting_gives_disconnect() {
    let ip =
        std::env::var("CONCLAVE_NETNS_IP").expect("run through scripts/test (network namespace)");
    let dir = tempdir();
    // At run time: this binary may have been built in another clone that
    // shares the target directory.
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
        + "/..";
    let port = "18999";
    let status = std::process::Command::new(format!("{root}/scripts/meeting-server"))
        .args(["start", &conclave_e2e::backend(), &ip, port, &dir])
        .status()
        .expect("run scripts/meeting-server");
    assert!(status.success());
    let url = format!("ws://{ip}:{port}");
    let room = MeetingId(424_242_424);
    conclave_engine::admin::create_meeting(
        &url,
        None,
        &conclave_engine::admin::RoomSpec {
            room,
            password: None,
            secret: None,
            description: None,
        },
    )
    .await
    .expect("room");
    let info = conclave_protocol::MeetingInfo::new(room);
    let (meeting, events, first) = try_join(&info, "Ann", &url, false).await;
    assert!(matches!(first, EngineEvent::Joined { .. }), "{first:?}");
    let mut peer = Peer {
        name: "Ann".into(),
        id: String::new(),
        meeting,
        events,
        joined_with: vec![],
        seen: vec![],
        topic: None,
        recording_allowed: true,
        several_presenters: false,
    };
    let pid = std::fs::read_to_string(format!("{dir}/server.pid")).expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let e = peer
        .wait_for("disconnect", |e| {
            matches!(e, EngineEvent::Disconnected { .. })
        })
        .await;
    println!("after the server was killed: {e:?}");
    let _ = std::process::Command::new(format!("{root}/scripts/meeting-server"))
        .args(["stop", &dir])
        .status();
}

fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("conclave-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.to_string_lossy().into_owned()
}
