//! Helpers for end-to-end tests: engines joining real meeting servers.
//!
//! Tests read the signaling URL of a running server from
//! `CONCLAVE_TEST_SERVER`; `scripts/test` starts a private Janus inside a
//! private network namespace and sets it.

use std::time::Duration;

use conclave_engine::admin::{self, RoomSpec};
use conclave_engine::{EngineEvent, JoinOptions, MeetingHandle, Participant};
use conclave_protocol::link::{ChatKey, MeetingId, Password};
use conclave_protocol::MeetingInfo;
use rand::{Rng, RngCore};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a test waits for an expected event.
pub const WAIT: Duration = Duration::from_secs(20);

/// The signaling URL of the server under test.
pub fn server() -> String {
    std::env::var("CONCLAVE_TEST_SERVER").unwrap_or_else(|_| {
        panic!("CONCLAVE_TEST_SERVER is not set: run the end-to-end tests through scripts/test")
    })
}

/// The kind of server under test: `janus` (the reference) or `conclave`
/// (`conclave-server`). The same tests run against both.
pub fn backend() -> String {
    std::env::var("CONCLAVE_TEST_BACKEND").unwrap_or_else(|_| "janus".into())
}

/// Creates a fresh meeting with a password and, optionally, a chat key.
pub async fn new_meeting(with_chat_key: bool) -> MeetingInfo {
    new_meeting_described(with_chat_key, None).await
}

/// As [`new_meeting`], with a room description (the host's settings).
pub async fn new_meeting_described(
    with_chat_key: bool,
    description: Option<String>,
) -> MeetingInfo {
    let room = MeetingId(rand::thread_rng().gen_range(100_000_000..1_000_000_000));
    let password = format!("pw-{}", rand::thread_rng().gen::<u32>());
    admin::create_meeting(
        &server(),
        None,
        &RoomSpec {
            room,
            password: Some(password.clone()),
            secret: Some("test-secret".into()),
            description,
        },
    )
    .await
    .expect("create meeting");
    let chat_key = with_chat_key.then(|| {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        ChatKey(k)
    });
    MeetingInfo {
        server: Some(server()),
        room,
        password: Some(Password(password)),
        chat_key,
        cert_fingerprint: None,
        relay: None,
    }
}

/// One engine in a meeting, with every event it has seen.
pub struct Peer {
    /// Nickname.
    pub name: String,
    /// Own participant id.
    pub id: String,
    /// The meeting.
    pub meeting: MeetingHandle,
    /// Pending events.
    pub events: UnboundedReceiver<EngineEvent>,
    /// Everyone present when joining.
    pub joined_with: Vec<Participant>,
    /// Every event seen so far.
    pub seen: Vec<EngineEvent>,
    /// The topic the server holds for the meeting.
    pub topic: Option<String>,
    /// Whether the host allows recording.
    pub recording_allowed: bool,
    /// Whether the host lets several people share at once.
    pub several_presenters: bool,
}

/// Starts an engine and returns its first final-or-joined event.
pub async fn try_join(
    info: &MeetingInfo,
    name: &str,
    server: &str,
    tap: bool,
) -> (MeetingHandle, UnboundedReceiver<EngineEvent>, EngineEvent) {
    try_join_media(info, name, server, tap, Default::default()).await
}

/// Like [`try_join`], with media devices and options.
pub async fn try_join_media(
    info: &MeetingInfo,
    name: &str,
    server: &str,
    tap: bool,
    media: conclave_engine::MediaOptions,
) -> (MeetingHandle, UnboundedReceiver<EngineEvent>, EngineEvent) {
    let (meeting, mut events) = conclave_engine::start(JoinOptions {
        network: Default::default(),
        frame_sink: None,
        info: info.clone(),
        nickname: name.into(),
        server: server.into(),
        tap_textroom: tap,
        media,
    })
    .expect("start");
    let first = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(e @ (EngineEvent::Joined { .. } | EngineEvent::JoinFailed { .. })) => {
                    return e
                }
                Some(_) => {}
                None => panic!("engine stopped without an outcome"),
            }
        }
    })
    .await
    .expect("join outcome in time");
    (meeting, events, first)
}

impl Peer {
    /// Joins and waits until in the meeting.
    pub async fn join(info: &MeetingInfo, name: &str) -> Peer {
        Self::join_with(info, name, false).await
    }

    /// Joins, optionally tapping raw TextRoom frames.
    pub async fn join_with(info: &MeetingInfo, name: &str, tap: bool) -> Peer {
        Self::join_media(info, name, tap, Default::default()).await
    }

    /// Joins with media devices and options.
    pub async fn join_media(
        info: &MeetingInfo,
        name: &str,
        tap: bool,
        media: conclave_engine::MediaOptions,
    ) -> Peer {
        let (meeting, events, first) = try_join_media(info, name, &server(), tap, media).await;
        let EngineEvent::Joined {
            self_id,
            participants,
            topic,
            recording_allowed,
            several_presenters,
            ..
        } = first
        else {
            panic!("{name} could not join: {first:?}");
        };
        Peer {
            name: name.into(),
            id: self_id,
            meeting,
            events,
            joined_with: participants,
            seen: Vec::new(),
            topic,
            recording_allowed,
            several_presenters,
        }
    }

    /// Joins without devices, saving what is received (decoded audio as
    /// WAV, decoded test-pattern stamps as CSV) into `dir`.
    pub async fn join_saving(info: &MeetingInfo, name: &str, dir: &std::path::Path) -> Peer {
        let media = conclave_engine::MediaOptions {
            save_received: Some(dir.to_path_buf()),
            ..Default::default()
        };
        Self::join_media(info, name, false, media).await
    }

    /// Waits for an event matching `pred` and returns it.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&EngineEvent) -> bool,
    ) -> EngineEvent {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let name = self.name.clone();
        tokio::time::timeout(WAIT, async {
            loop {
                let e = self.events.recv().await.expect("engine running");
                self.seen.push(e.clone());
                if pred(&e) {
                    return e;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name} did not see {what}; saw {:?}", self.seen))
    }

    /// Collects events for a while.
    pub async fn settle(&mut self, d: Duration) {
        let _ = tokio::time::timeout(d, async {
            while let Some(e) = self.events.recv().await {
                self.seen.push(e);
            }
        })
        .await;
    }

    /// Received (not own) chat texts seen so far.
    pub fn received_chats(&self) -> Vec<(String, Option<String>, String, bool)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Chat { message } if message.from != self.id => Some((
                    message.from_name.clone(),
                    message.to_name.clone(),
                    message.text.clone(),
                    message.encrypted,
                )),
                _ => None,
            })
            .collect()
    }

    /// Leaves and waits for `left`.
    pub async fn leave(mut self) {
        self.meeting.command(conclave_engine::Command::Leave);
        self.wait_for("left", |e| matches!(e, EngineEvent::Left))
            .await;
    }
}

pub mod synthetic;

/// The debug-built `conclave-cli` of the shared target directory (what
/// scripts/e2e builds before the tests).
pub fn cli_path() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conclave/target",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    std::path::PathBuf::from(target).join("debug/conclave-cli")
}

#[path = "portal_session.rs"]
pub mod portal_session;

pub use conclave_screen::x11::PrivateDisplay;

/// Shows the animated test pattern in a window on `display` (see
/// `bin/pattern-window.rs`) and waits until it is painted.
pub fn show_pattern(display: &str, pattern_window: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(pattern_window)
        .env("DISPLAY", display)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("pattern window");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready");
    child
}
/// The IP address of the server under test (the test network's address).
pub fn server_ip() -> std::net::IpAddr {
    let url = server();
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or("127.0.0.1");
    host.parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// A busy loop on one core for as long as it lives (the last core, where
/// there is more than one): the machine a real user meets and records on
/// is doing other things. Killed when dropped.
pub struct CpuHog(Option<std::process::Child>);

impl CpuHog {
    /// Starts the busy loop.
    pub fn start() -> CpuHog {
        let core = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
        let busy = ["sh", "-c", "while :; do :; done"];
        let child = std::process::Command::new("taskset")
            .args(["-c", &core.to_string()])
            .args(busy)
            .spawn()
            .or_else(|_| std::process::Command::new(busy[0]).args(&busy[1..]).spawn())
            .expect("a busy loop");
        CpuHog(Some(child))
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
