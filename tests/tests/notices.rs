//! Recording notices through the TextRoom (R3): whoever records tells
//! everyone, late joiners learn it when they come in, pausing and stopping
//! reach every client, and leaving ends it for the others. A host who
//! forbids recording (in the room's description, kept by the server) is
//! honoured. Notices are never shown as chat.

use std::time::Duration;

use conclave_e2e::{new_meeting, new_meeting_described, Peer};
use conclave_engine::{Command, EngineEvent, RecordingState};
use conclave_protocol::videoroom::RoomDescription;

fn notice(who: &'static str, state: RecordingState) -> impl Fn(&EngineEvent) -> bool {
    move |e| {
        matches!(e, EngineEvent::Recording { nickname, state: s, .. }
            if nickname == who && *s == state)
    }
}

fn no_chat(peer: &Peer) {
    assert!(
        peer.received_chats().is_empty(),
        "{}: notices are not chat: {:?}",
        peer.name,
        peer.received_chats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_notices_reach_everyone_late_joiners_too_and_stopping_clears_them() {
    // End-to-end encrypted chat: notices are sealed like chat.
    let info = new_meeting(true).await;
    let mut ann = Peer::join_with(&info, "Ann", false).await;
    let mut bob = Peer::join_with(&info, "Bob", true).await;
    assert!(ann.recording_allowed && ann.topic.is_none());
    ann.wait_for("Bob", |e| {
        matches!(e, EngineEvent::ParticipantJoined { .. })
    })
    .await;

    ann.meeting.command(Command::SetRecording {
        state: RecordingState::Recording,
    });
    ann.wait_for("her own notice", notice("Ann", RecordingState::Recording))
        .await;
    bob.wait_for("Ann recording", notice("Ann", RecordingState::Recording))
        .await;
    // What the server relayed was sealed.
    assert!(
        bob.seen
            .iter()
            .any(|e| matches!(e, EngineEvent::RawTextRoom { text }
            if text.contains("cv1e:"))),
        "the notice travels sealed"
    );
    assert!(
        !bob.seen
            .iter()
            .any(|e| matches!(e, EngineEvent::RawTextRoom { text }
            if text.contains("cvapp1") || text.contains("recording"))),
        "the server does not learn that Ann records"
    );

    // Someone who joins later learns it.
    let mut cy = Peer::join(&info, "Cy").await;
    cy.wait_for(
        "Ann recording (late)",
        notice("Ann", RecordingState::Recording),
    )
    .await;

    ann.meeting.command(Command::SetRecording {
        state: RecordingState::Paused,
    });
    for p in [&mut bob, &mut cy] {
        p.wait_for("paused", notice("Ann", RecordingState::Paused))
            .await;
    }
    ann.meeting.command(Command::SetRecording {
        state: RecordingState::Stopped,
    });
    for p in [&mut bob, &mut cy] {
        p.wait_for("stopped", notice("Ann", RecordingState::Stopped))
            .await;
    }

    // Bob records, then leaves: for the others his recording ends.
    bob.meeting.command(Command::SetRecording {
        state: RecordingState::Recording,
    });
    cy.wait_for("Bob recording", notice("Bob", RecordingState::Recording))
        .await;
    bob.leave().await;
    cy.wait_for(
        "Bob's recording over",
        notice("Bob", RecordingState::Stopped),
    )
    .await;
    ann.wait_for(
        "Bob's recording over",
        notice("Bob", RecordingState::Stopped),
    )
    .await;
    ann.settle(Duration::from_millis(200)).await;
    cy.settle(Duration::from_millis(200)).await;
    no_chat(&ann);
    no_chat(&cy);

    // Chat cannot pose as a notice.
    ann.meeting.command(Command::SendChat {
        to: None,
        text: "cvapp1:{\"type\":\"recording\",\"state\":\"recording\"}".into(),
    });
    ann.wait_for(
        "refused",
        |e| matches!(e, EngineEvent::Error { message } if message.contains("cannot start with")),
    )
    .await;
    ann.leave().await;
    cy.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_whose_host_forbids_recording_refuses_it_and_says_why() {
    let description = RoomDescription {
        topic: Some("Board meeting".into()),
        recording_allowed: false,
        several_presenters: false,
    };
    let info = new_meeting_described(false, description.to_description()).await;
    let mut ann = Peer::join(&info, "Ann").await;
    let mut bob = Peer::join(&info, "Bob").await;
    assert!(!ann.recording_allowed, "the server tells the host's rule");
    assert_eq!(ann.topic.as_deref(), Some("Board meeting"));
    ann.meeting.command(Command::SetRecording {
        state: RecordingState::Recording,
    });
    ann.wait_for("the refusal", |e| {
        matches!(e, EngineEvent::Error { message } if message.contains("host does not allow recording"))
    })
    .await;
    bob.settle(Duration::from_millis(500)).await;
    assert!(
        !bob.seen
            .iter()
            .any(|e| matches!(e, EngineEvent::Recording { .. })),
        "nobody is told of a recording that did not start"
    );
    ann.leave().await;
    bob.leave().await;
}
