//! Sharing a screen in a Wayland session: `conclave-cli join
//! --share-screen` asks the real xdg-desktop-portal for a screen cast
//! (ScreenCast API, with a restore token) and reads the pictures from
//! PipeWire; the desktop's side of the portal is `test-portal`, whose test
//! screen shows colour bars. The other participant decodes the bars. A
//! second share with the token is not asked about again. On Janus and
//! conclave-server alike.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use conclave_e2e::portal_session::PortalSession;
use conclave_e2e::{new_meeting, Peer};
use conclave_engine::EngineEvent;

fn cli() -> PathBuf {
    conclave_e2e::cli_path()
}

/// A cli sharing through the session's portal; its JSON events come on
/// the returned channel.
fn sharer(
    session: &PortalSession,
    link: &str,
    source: Option<&str>,
) -> (Child, std::sync::mpsc::Receiver<serde_json::Value>) {
    let mut command = Command::new(cli());
    command
        .args([
            "join",
            link,
            "--name",
            "Wayland sharer",
            "--json",
            "--stay",
            "30",
        ])
        .arg("--share-screen")
        .env_remove("DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(source) = source {
        command.args(["--share-source", source]);
    }
    for (k, v) in session.env() {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("conclave-cli");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    (child, rx)
}

/// Ends a cli as Ctrl-C would: it leaves the meeting (a killed one would
/// stay listed until the server's session timeout).
fn interrupt(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Waits for the receiver to decode `n` frames of someone's share.
async fn share_frames(receiver: &mut Peer, n: u64) -> String {
    let tile = receiver
        .wait_for(
            "the share",
            |e| matches!(e, EngineEvent::TrackAdded { kind, .. } if kind == "screen"),
        )
        .await;
    let EngineEvent::TrackAdded { participant, .. } = tile else {
        unreachable!("a track")
    };
    let id: u64 = participant.parse().expect("a participant id");
    let tile = (id | conclave_engine::frames::SCREEN_TILE).to_string();
    let wanted = tile.clone();
    receiver
        .wait_for("decoded frames of the share", move |e| match e {
            EngineEvent::Stats { stats } => stats
                .remotes
                .iter()
                .any(|r| r.participant == wanted && r.video_frames >= n),
            _ => false,
        })
        .await;
    tile
}

/// SMPTE 100 % bars (GStreamer's `smpte100`), left to right, each a
/// seventh of the width.
const BARS: [[u8; 3]; 7] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_shared_through_the_portal_reaches_the_others_and_is_not_asked_again() {
    let Some(session) = PortalSession::start(env!("CARGO_BIN_EXE_test-portal")) else {
        return;
    };
    let info = new_meeting(false).await;
    let link = info.to_app_link();
    let dir = std::env::temp_dir().join(format!(
        "conclave-wayland-{}-{}",
        conclave_e2e::backend(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut receiver = Peer::join_saving(&info, "Receiver", &dir).await;

    let (first, events) = sharer(&session, &link, None);
    let tile = share_frames(&mut receiver, 10).await;
    // The desktop gave a token for the choice.
    let token = tokio::task::spawn_blocking(move || {
        events
            .iter()
            .find(|e| e["event"] == "share_restore_token")
            .and_then(|e| e["source"].as_str().map(str::to_owned))
    })
    .await
    .expect("the cli's events");
    interrupt(first);
    let token = token.expect("a restore token from the portal");
    assert!(token.starts_with("portal:"), "{token}");
    receiver
        .wait_for("the sharer leaves", |e| {
            matches!(e, EngineEvent::ParticipantLeft { .. })
        })
        .await;

    // What arrived: the bars, at the test screen's size.
    let saved = dir.join(format!("{tile}-frame.png"));
    for _ in 0..50 {
        if saved.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bytes = std::fs::read(&saved).unwrap_or_else(|e| panic!("{}: {e}", saved.display()));
    let picture = conclave_background::image::decode(&bytes).expect("a PNG");
    assert_eq!((picture.width, picture.height), (640, 360));
    for (i, bar) in BARS.iter().enumerate() {
        let x = picture.width * (2 * i + 1) / 14;
        let y = picture.height / 3;
        let at = (y * picture.width + x) * 3;
        let got = &picture.rgb[at..at + 3];
        let off = got
            .iter()
            .zip(bar)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(255);
        assert!(off <= 40, "bar {i}: {got:?}, expected {bar:?}");
    }

    // Shared again with the token: the desktop does not ask. (Only events
    // from now on count.)
    receiver.seen.clear();
    let (second, _events) = sharer(&session, &link, Some(&token));
    share_frames(&mut receiver, 5).await;
    interrupt(second);
    receiver.leave().await;
    assert_eq!(
        session.decisions(),
        ["chose", "restored"],
        "asked once, then restored"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
