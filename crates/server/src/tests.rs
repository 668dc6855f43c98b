//! Unit tests of the sans-IO server: the Janus core API and its error paths,
//! driven with texts and a simulated clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{Config, Limits};
use crate::core::{ConnId, Input, Output, Server};

struct Harness {
    server: Server,
    now: Instant,
    conn: ConnId,
}

impl Harness {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        let media: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let mut server = Server::new(config, vec![media], now);
        let conn = ConnId(1);
        let remote: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        server.handle_input(now, Input::Connected { conn, remote });
        Harness { server, now, conn }
    }

    /// Sends a text and returns every JSON message sent back on the connection.
    fn send(&mut self, text: &str) -> Vec<Value> {
        self.server.handle_input(
            self.now,
            Input::Text {
                conn: self.conn,
                text,
            },
        );
        self.drain()
    }

    fn request(&mut self, v: Value) -> Vec<Value> {
        self.send(&v.to_string())
    }

    fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(o) = self.server.poll_output() {
            if let Output::Send { text, .. } = o {
                out.push(serde_json::from_str(&text).expect("server sends JSON"));
            }
        }
        out
    }

    fn advance(&mut self, d: Duration) -> Vec<Value> {
        self.now += d;
        self.server.handle_input(self.now, Input::Timeout);
        self.drain()
    }

    fn session(&mut self) -> u64 {
        let r = self.request(json!({"janus": "create", "transaction": "c"}));
        r[0]["data"]["id"].as_u64().expect("session id")
    }

    fn attach(&mut self, session: u64, plugin: &str) -> u64 {
        let r = self.request(
            json!({"janus": "attach", "transaction": "a", "session_id": session, "plugin": plugin}),
        );
        r[0]["data"]["id"].as_u64().expect("handle id")
    }
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().unwrap_or_default()
}

#[test]
fn bad_input_gets_janus_errors() {
    let mut h = Harness::new(Config::default());
    assert_eq!(error_code(&h.send("{not json")[0]), 454);
    assert_eq!(error_code(&h.send("[1,2]")[0]), 455);
    assert_eq!(error_code(&h.send(r#"{"transaction":"x"}"#)[0]), 456);
    assert_eq!(
        error_code(&h.send(r#"{"janus":"fly","transaction":"x"}"#)[0]),
        457
    );
    assert_eq!(
        error_code(&h.send(r#"{"janus":"keepalive","transaction":"x","session_id":5}"#)[0]),
        458
    );
    let s = h.session();
    let r = h.request(json!({"janus": "message", "transaction": "m", "session_id": s, "handle_id": 9, "body": {}}));
    assert_eq!(error_code(&r[0]), 459);
    let r = h.request(json!({"janus": "attach", "transaction": "a", "session_id": s, "plugin": "janus.plugin.echotest"}));
    assert_eq!(error_code(&r[0]), 460);
    let r = h.request(json!({"janus": "attach", "transaction": "a", "session_id": "nope"}));
    assert_eq!(error_code(&r[0]), 467);
    let big = format!(
        r#"{{"janus":"keepalive","transaction":"{}"}}"#,
        "x".repeat(100_000)
    );
    assert_eq!(error_code(&h.send(&big)[0]), 471);
}

#[test]
fn sessions_time_out_unless_kept_alive() {
    let mut h = Harness::new(Config::default());
    let s = h.session();
    h.advance(Duration::from_secs(40));
    let r = h.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s}));
    assert_eq!(r[0]["janus"], "ack");
    h.advance(Duration::from_secs(40));
    assert_eq!(h.server.session_count(), 1);
    let r = h.advance(Duration::from_secs(30));
    assert_eq!(r[0]["janus"], "timeout");
    assert_eq!(h.server.session_count(), 0);
}

#[test]
fn sessions_survive_a_reconnect_and_can_be_claimed() {
    let mut h = Harness::new(Config::default());
    let s = h.session();
    h.server
        .handle_input(h.now, Input::Disconnected { conn: h.conn });
    h.conn = ConnId(2);
    let remote: SocketAddr = "127.0.0.1:50001".parse().expect("addr");
    h.server.handle_input(
        h.now,
        Input::Connected {
            conn: h.conn,
            remote,
        },
    );
    let r = h.request(json!({"janus": "claim", "transaction": "c", "session_id": s}));
    assert_eq!(r[0]["janus"], "success");
    let r = h.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s}));
    assert_eq!(r[0]["janus"], "ack");
}

#[test]
fn limits_on_sessions_and_handles() {
    let config = Config {
        limits: Limits {
            max_sessions_per_connection: 2,
            max_handles_per_session: 1,
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut h = Harness::new(config);
    let s = h.session();
    h.session();
    let r = h.request(json!({"janus": "create", "transaction": "c"}));
    assert_eq!(error_code(&r[0]), 491);
    h.attach(s, "janus.plugin.textroom");
    let r = h.request(json!({"janus": "attach", "transaction": "a", "session_id": s, "plugin": "janus.plugin.textroom"}));
    assert_eq!(error_code(&r[0]), 461);
}

#[test]
fn a_flood_closes_the_connection() {
    let config = Config {
        limits: Limits {
            max_requests_per_second: 10,
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut h = Harness::new(config);
    let mut closed = false;
    for _ in 0..20 {
        h.server.handle_input(
            h.now,
            Input::Text {
                conn: h.conn,
                text: "{}",
            },
        );
        while let Some(o) = h.server.poll_output() {
            closed |= matches!(o, Output::Close { .. });
        }
    }
    assert!(closed);
}

#[test]
fn room_admin_and_secrets() {
    let mut h = Harness::new(Config::default());
    let s = h.session();
    let vr = h.attach(s, "janus.plugin.videoroom");
    let msg = |body: Value| json!({"janus": "message", "transaction": "t", "session_id": s, "handle_id": vr, "body": body});
    let r = h.request(msg(
        json!({"request": "create", "room": 77, "pin": "p", "secret": "s"}),
    ));
    assert_eq!(r[0]["plugindata"]["data"]["videoroom"], "created");
    let r = h.request(msg(json!({"request": "create", "room": 77})));
    assert_eq!(r[0]["plugindata"]["data"]["error_code"], 427);
    let r = h.request(msg(json!({"request": "exists", "room": 77})));
    assert_eq!(r[0]["plugindata"]["data"]["exists"], true);
    let r = h.request(msg(
        json!({"request": "destroy", "room": 77, "secret": "wrong"}),
    ));
    assert_eq!(r[0]["plugindata"]["data"]["error_code"], 433);
    let r = h.request(msg(json!({"request": "list"})));
    assert_eq!(r[0]["plugindata"]["data"]["list"][0]["pin_required"], true);
    // Joining: missing PIN, wrong PIN, then right PIN.
    let r = h.request(msg(
        json!({"request": "join", "ptype": "publisher", "room": 77}),
    ));
    assert_eq!(r[0]["janus"], "ack");
    assert_eq!(r[1]["plugindata"]["data"]["error_code"], 429);
    let r = h.request(msg(
        json!({"request": "join", "ptype": "publisher", "room": 77, "pin": "x"}),
    ));
    assert_eq!(r[1]["plugindata"]["data"]["error_code"], 433);
    let r = h.request(msg(json!({"request": "join", "ptype": "publisher", "room": 77, "pin": "p", "id": 5, "display": "Ann"})));
    assert_eq!(r[1]["plugindata"]["data"]["videoroom"], "joined");
    assert_eq!(r[1]["plugindata"]["data"]["id"], 5);
    let r = h.request(msg(json!({"request": "listparticipants", "room": 77})));
    assert_eq!(
        r[0]["plugindata"]["data"]["participants"][0]["display"],
        "Ann"
    );
    let r = h.request(msg(
        json!({"request": "destroy", "room": 77, "secret": "s"}),
    ));
    let kinds: Vec<&str> = r
        .iter()
        .filter_map(|m| m["plugindata"]["data"]["videoroom"].as_str())
        .collect();
    assert!(kinds.contains(&"destroyed"));
}

#[test]
fn pin_guessing_is_rate_limited_then_allowed_again() {
    let mut h = Harness::new(Config::default());
    let s = h.session();
    let vr = h.attach(s, "janus.plugin.videoroom");
    let msg = |body: Value| json!({"janus": "message", "transaction": "t", "session_id": s, "handle_id": vr, "body": body});
    h.request(msg(json!({"request": "create", "room": 9, "pin": "right"})));
    for _ in 0..5 {
        let r = h.request(msg(
            json!({"request": "join", "ptype": "publisher", "room": 9, "pin": "guess"}),
        ));
        assert_eq!(r[1]["plugindata"]["data"]["error_code"], 433);
    }
    let r = h.request(msg(
        json!({"request": "join", "ptype": "publisher", "room": 9, "pin": "right"}),
    ));
    let error = r[1]["plugindata"]["data"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("Too many"), "{error}");
    // Keep the session alive across the window.
    for _ in 0..4 {
        h.advance(Duration::from_secs(16));
        h.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s}));
    }
    let r = h.request(msg(
        json!({"request": "join", "ptype": "publisher", "room": 9, "pin": "right"}),
    ));
    assert_eq!(r[1]["plugindata"]["data"]["videoroom"], "joined");
}

#[test]
fn textroom_setup_offers_a_data_channel() {
    let mut h = Harness::new(Config::default());
    let s = h.session();
    let tr = h.attach(s, "janus.plugin.textroom");
    let r = h.request(json!({"janus": "message", "transaction": "t", "session_id": s, "handle_id": tr, "body": {"request": "setup"}}));
    assert_eq!(r[0]["janus"], "ack");
    assert_eq!(r[1]["jsep"]["type"], "offer");
    let sdp = r[1]["jsep"]["sdp"].as_str().unwrap_or_default();
    assert!(sdp.contains("m=application"), "{sdp}");
    assert!(sdp.contains("127.0.0.1 40000"), "{sdp}");
    let r = h.request(json!({"janus": "message", "transaction": "t2", "session_id": s, "handle_id": tr,
                             "body": {"request": "ack"}, "jsep": {"type": "answer", "sdp": "garbage"}}));
    assert_eq!(error_code(&r[0]), 465);
}

#[test]
fn audit_reports_what_arrives_only_when_on() {
    let mut h = Harness::new(Config::default());
    h.server.handle_input(
        h.now,
        Input::Text {
            conn: h.conn,
            text: r#"{"janus":"create","transaction":"a"}"#,
        },
    );
    while let Some(o) = h.server.poll_output() {
        assert!(
            !matches!(o, Output::Audit { .. }),
            "audit is off by default"
        );
    }
    let mut h = Harness::new(Config {
        audit: true,
        ..Config::default()
    });
    let text = r#"{"janus":"create","transaction":"b"}"#;
    h.server
        .handle_input(h.now, Input::Text { conn: h.conn, text });
    let mut audited = Vec::new();
    while let Some(o) = h.server.poll_output() {
        if let Output::Audit { kind, text, .. } = o {
            audited.push((kind, text));
        }
    }
    assert_eq!(audited, vec![("signaling", text.to_owned())]);
}
