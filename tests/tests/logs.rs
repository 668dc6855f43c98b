//! The log of a whole meeting never holds chat text, passwords or chat keys,
//! even at the most verbose level.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_e2e::{new_meeting, Peer};
use conclave_engine::{Command, EngineEvent};
use conclave_protocol::link::Password;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_log_holds_no_chat_text_passwords_or_keys() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut planted = Vec::new();
    for encrypted in [true, false] {
        let mut info = new_meeting(encrypted).await;
        // Rooms are created with the generated password; plant a recognisable one
        // by recreating the meeting info around it is not possible, so plant
        // the generated one and a wrong one.
        let password = info.password.clone().map(|p| p.0).unwrap_or_default();
        planted.push(password.clone());
        if let Some(k) = &info.chat_key {
            planted.push(k.to_base64());
        }
        let chat = format!("PLANTED-CHAT-{encrypted}-Zq8");
        let private = format!("PLANTED-PRIVATE-{encrypted}-Xw3");
        planted.push(chat.clone());
        planted.push(private.clone());

        let mut ann = Peer::join(&info, "Ann").await;
        let mut bob = Peer::join(&info, "Bob").await;
        ann.wait_for("Bob", |e| {
            matches!(e, EngineEvent::ParticipantJoined { .. })
        })
        .await;
        ann.meeting.command(Command::SendChat {
            to: None,
            text: chat.clone(),
        });
        ann.meeting.command(Command::SendChat {
            to: Some(bob.id.clone()),
            text: private.clone(),
        });
        bob.wait_for(
            "private",
            |e| matches!(e, EngineEvent::Chat { message } if message.text == private),
        )
        .await;
        let export = std::env::temp_dir().join(format!(
            "conclave-export-{}-{encrypted}.md",
            std::process::id()
        ));
        bob.meeting
            .export_chat("room", export.clone())
            .await
            .expect("export");
        let exported = std::fs::read_to_string(&export).expect("read export");
        assert!(exported.contains(&chat) && exported.contains(&private));
        std::fs::remove_file(&export).expect("cleanup");

        // A failed join with a wrong password logs no password either.
        let wrong = format!("PLANTED-WRONG-PASSWORD-{encrypted}");
        planted.push(wrong.clone());
        info.password = Some(Password(wrong));
        let (_, _, e) = conclave_e2e::try_join(&info, "Eve", &conclave_e2e::server(), false).await;
        assert!(matches!(e, EngineEvent::JoinFailed { .. }));

        ann.leave().await;
        bob.leave().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = String::from_utf8_lossy(&capture.0.lock().expect("log").clone()).into_owned();
    assert!(
        log.len() > 1000,
        "the log captured the meeting ({} bytes)",
        log.len()
    );
    for value in &planted {
        assert!(!value.is_empty());
        assert!(
            !log.contains(value.as_str()),
            "the log contains a planted secret"
        );
    }
}
