//! The keychain against a real Secret Service: GNOME Keyring on a private
//! session bus, started by `scripts/keychain-session` (scripts/test runs this
//! under it). Without that session the round trip is skipped, and the test
//! checks the clear "no keychain" error instead.

use conclave_keychain::{Keychain, KeychainError, MeetingSecret};

fn secret_service_running() -> bool {
    std::env::var_os("CONCLAVE_KEYCHAIN_SESSION").is_some()
}

#[test]
fn a_secret_round_trips_through_the_keychain_and_is_forgotten() {
    if !secret_service_running() {
        eprintln!("skipped: no keychain session (run under scripts/keychain-session)");
        return;
    }
    let keychain = Keychain::new("org.conclave.desktop.test");
    let meeting = "ws://10.77.0.1:8188 room 123456789";
    let secret = MeetingSecret {
        password: Some("correct horse".into()),
        key: Some("qaGnxp4d_boqxMHgX1kXu1M".into()),
    };
    keychain.forget(meeting).expect("forget before");
    assert_eq!(keychain.recall(meeting).expect("recall"), None);
    keychain.remember(meeting, &secret).expect("remember");
    assert_eq!(
        keychain.recall(meeting).expect("recall"),
        Some(secret.clone())
    );
    // Another meeting is separate.
    assert_eq!(
        keychain
            .recall("ws://10.77.0.1:8188 room 1")
            .expect("recall other"),
        None
    );
    // Replacing keeps one entry.
    let newer = MeetingSecret {
        password: Some("battery staple".into()),
        key: None,
    };
    keychain.remember(meeting, &newer).expect("replace");
    assert_eq!(keychain.recall(meeting).expect("recall"), Some(newer));
    keychain.forget(meeting).expect("forget");
    assert_eq!(keychain.recall(meeting).expect("recall after forget"), None);
    keychain.forget(meeting).expect("forgetting twice is fine");
}

#[test]
fn without_a_keychain_the_error_is_clear() {
    if secret_service_running() {
        return;
    }
    // This test binary has one process to itself: no bus at all.
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/conclave-bus",
    );
    let keychain = Keychain::new("org.conclave.desktop.test");
    let secret = MeetingSecret {
        password: Some("pw".into()),
        key: None,
    };
    match keychain.remember("ws://127.0.0.1:1 room 1", &secret) {
        Err(e @ KeychainError::Unavailable(_)) => {
            assert!(e.to_string().contains("No keychain is available"), "{e}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
