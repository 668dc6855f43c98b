//! Meetings on a real server: rosters and chat.

use std::time::Duration;

use conclave_e2e::{new_meeting, Peer};
use conclave_engine::{Command, EngineEvent};

fn joined_named(name: &'static str) -> impl Fn(&EngineEvent) -> bool {
    move |e| matches!(e, EngineEvent::ParticipantJoined { participant } if participant.nickname == name)
}

fn left_named(name: &'static str) -> impl Fn(&EngineEvent) -> bool {
    move |e| matches!(e, EngineEvent::ParticipantLeft { participant } if participant.nickname == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_converge_for_two_and_three_and_leaves_propagate() {
    let info = new_meeting(false).await;
    let mut ann = Peer::join(&info, "Ann").await;
    assert_eq!(ann.joined_with.len(), 1);
    let mut bob = Peer::join(&info, "Bob").await;
    let names: Vec<_> = bob
        .joined_with
        .iter()
        .map(|p| p.nickname.as_str())
        .collect();
    assert!(
        names.contains(&"Ann") && names.contains(&"Bob"),
        "{names:?}"
    );
    ann.wait_for("Bob joined", joined_named("Bob")).await;

    // A late joiner sees everyone who came before.
    let mut cy = Peer::join(&info, "Cy").await;
    let mut names: Vec<_> = cy.joined_with.iter().map(|p| p.nickname.clone()).collect();
    names.sort();
    assert_eq!(names, ["Ann", "Bob", "Cy"]);
    ann.wait_for("Cy joined", joined_named("Cy")).await;
    bob.wait_for("Cy joined", joined_named("Cy")).await;

    bob.leave().await;
    ann.wait_for("Bob left", left_named("Bob")).await;
    cy.wait_for("Bob left", left_named("Bob")).await;
    ann.leave().await;
    cy.wait_for("Ann left", left_named("Ann")).await;
    cy.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_everyone_once_and_private_only_the_addressee() {
    for encrypted in [false, true] {
        let info = new_meeting(encrypted).await;
        let mut ann = Peer::join(&info, "Ann").await;
        let mut bob = Peer::join(&info, "Bob").await;
        let mut cy = Peer::join(&info, "Cy").await;
        ann.wait_for("Cy joined", joined_named("Cy")).await;
        bob.wait_for("Cy joined", joined_named("Cy")).await;

        ann.meeting.command(Command::SendChat {
            to: None,
            text: "hello all".into(),
        });
        ann.meeting.command(Command::SendChat {
            to: Some(bob.id.clone()),
            text: "just for bob".into(),
        });
        bob.wait_for(
            "private",
            |e| matches!(e, EngineEvent::Chat { message } if message.text == "just for bob"),
        )
        .await;
        cy.wait_for(
            "broadcast",
            |e| matches!(e, EngineEvent::Chat { message } if message.text == "hello all"),
        )
        .await;
        for p in [&mut ann, &mut bob, &mut cy] {
            p.settle(Duration::from_millis(1500)).await;
        }
        assert_eq!(
            bob.received_chats(),
            [
                ("Ann".to_string(), None, "hello all".to_string(), encrypted),
                (
                    "Ann".to_string(),
                    Some("Bob".to_string()),
                    "just for bob".to_string(),
                    encrypted
                )
            ]
        );
        assert_eq!(
            cy.received_chats(),
            [("Ann".to_string(), None, "hello all".to_string(), encrypted)]
        );
        assert!(ann.received_chats().is_empty());
        // The sender sees its own messages once each.
        let own = ann
            .seen
            .iter()
            .filter(|e| matches!(e, EngineEvent::Chat { .. }))
            .count();
        assert_eq!(own, 2);
        for p in [ann, bob, cy] {
            p.leave().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_relays_only_ciphertext_and_wrong_key_sees_nothing() {
    let info = new_meeting(true).await;
    // A raw observer holding no key: it prints what the server relays.
    let mut observer_info = info.clone();
    observer_info.chat_key = None;
    let mut observer = Peer::join_with(&observer_info, "Observer", true).await;
    let mut wrong_info = info.clone();
    wrong_info.chat_key = Some(conclave_protocol::link::ChatKey([9u8; 32]));
    let mut wrong = Peer::join(&wrong_info, "Mallory").await;
    let ann = Peer::join(&info, "Ann").await;
    wrong.wait_for("Ann joined", joined_named("Ann")).await;

    let secret = "the launch code is 0000";
    ann.meeting.command(Command::SendChat {
        to: None,
        text: secret.into(),
    });
    let raw = observer
        .wait_for(
            "raw message",
            |e| matches!(e, EngineEvent::RawTextRoom { text } if text.contains("\"message\"")),
        )
        .await;
    let EngineEvent::RawTextRoom { text } = raw else {
        unreachable!()
    };
    println!("raw frame relayed by the server: {text}");
    assert!(text.contains("cv1e:"), "{text}");
    assert!(!text.contains("launch code"), "{text}");

    wrong.wait_for("undecryptable warning", |e| matches!(e, EngineEvent::Warning { message } if message.contains("could not be decrypted"))).await;
    wrong.settle(Duration::from_millis(500)).await;
    observer.settle(Duration::from_millis(500)).await;
    for p in [&wrong, &observer] {
        assert!(p.received_chats().is_empty(), "{} saw chat", p.name);
        assert!(!format!("{:?}", p.seen).contains("launch code"));
    }
    observer
        .wait_for(
            "no-key warning",
            |e| matches!(e, EngineEvent::Warning { message } if message.contains("no chat key")),
        )
        .await;
    ann.leave().await;
}
