//! Signaling over wss:// to a conclave-server with a self-signed certificate:
//! the link's fingerprint pins it; a wrong fingerprint, or none, is refused
//! with a clear error.

use std::sync::Arc;

use conclave_e2e::try_join;
use conclave_engine::admin::{self, RoomSpec};
use conclave_engine::EngineEvent;
use conclave_protocol::link::MeetingId;
use conclave_server::runtime::{self, Options};
use conclave_server::tls::TlsIdentity;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_certificate_is_required_and_sufficient() {
    let dir = std::env::temp_dir().join(format!("conclave-tls-e2e-{}", std::process::id()));
    let identity = TlsIdentity::self_signed_in(&dir).expect("certificate");
    let ip = std::env::var("CONCLAVE_NETNS_IP").unwrap_or_else(|_| "127.0.0.1".into());
    let server = runtime::start(Options {
        listen: format!("{ip}:0").parse().expect("address"),
        media_ip: None,
        config: Default::default(),
        tls: Some(Arc::new(identity)),
        public_ip: None,
        audit: None,
        ice_tcp: true,
    })
    .await
    .expect("server");
    let url = server.url();
    assert!(url.starts_with("wss://"));
    let fp = server.fingerprint.clone().expect("fingerprint");
    let spec = RoomSpec {
        room: MeetingId(515_151_515),
        password: Some("pw".into()),
        secret: Some("s".into()),
        description: None,
    };
    // Creating the meeting without the pin fails: the certificate is not public.
    assert!(admin::host_meeting(&url, None, &spec).await.is_err());
    let info = admin::host_meeting(&url, Some(&fp), &spec)
        .await
        .expect("create with the pinned certificate");
    assert_eq!(info.cert_fingerprint.as_deref(), Some(fp.as_str()));
    assert!(info.to_app_link().contains(&fp), "the link carries the pin");

    let (_ok, _events, first) = try_join(&info, "Pinned", &url, false).await;
    assert!(matches!(first, EngineEvent::Joined { .. }), "{first:?}");

    let mut wrong = info.clone();
    wrong.cert_fingerprint = Some("00".repeat(32));
    let (_m, _e, first) = try_join(&wrong, "Wrong pin", &url, false).await;
    let EngineEvent::JoinFailed { message } = first else {
        panic!("joined despite a wrong certificate pin: {first:?}");
    };
    println!("wrong pin: {message}");
    assert!(!message.is_empty());

    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
