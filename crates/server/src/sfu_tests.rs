//! The SFU end to end without sockets: str0m clients (a publisher and
//! subscribers) and the server exchange datagrams over a simulated network,
//! with simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Rtc};

use crate::config::Config;
use crate::core::{ConnId, Input, Output, Server};

const SERVER_MEDIA: &str = "10.9.0.1:40000";
const ROOM: u64 = 4242;

/// One simulated client: a signaling connection and a str0m peer.
struct Client {
    conn: ConnId,
    addr: SocketAddr,
    rtc: Rtc,
    session: u64,
    handle: u64,
    pending: Option<SdpPendingOffer>,
    /// Janus messages received.
    inbox: Vec<Value>,
    /// RTP received: (mid, payload).
    rtp: Vec<(Mid, Vec<u8>)>,
    keyframe_requests: usize,
    next_timeout: Instant,
}

struct World {
    server: Server,
    now: Instant,
    clients: Vec<Client>,
    /// Datagrams from clients not yet given to the server.
    to_server: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl Client {
    /// Drains the client's peer (str0m wants this after every input).
    fn poll(&mut self, to_server: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output().expect("client output") {
                str0m::Output::Timeout(t) => {
                    self.next_timeout = t;
                    break;
                }
                str0m::Output::Transmit(t) => {
                    to_server.push((t.source, t.destination, t.contents.to_vec()))
                }
                str0m::Output::Event(e) => match e {
                    Event::RtpPacket(p) => {
                        let mid = self
                            .rtc
                            .direct_api()
                            .stream_rx(&p.header.ssrc)
                            .map(|s| s.mid())
                            .expect("known stream");
                        self.rtp.push((mid, p.payload.to_vec()));
                    }
                    Event::KeyframeRequest(_) => self.keyframe_requests += 1,
                    _ => {}
                },
            }
        }
    }
}

impl World {
    fn new() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("TEST_LOG"))
            .with_test_writer()
            .try_init();
        let now = Instant::now();
        let media: SocketAddr = SERVER_MEDIA.parse().expect("addr");
        World {
            server: Server::new(Config::default(), vec![media], now),
            now,
            clients: Vec::new(),
            to_server: Vec::new(),
        }
    }

    fn add_client(&mut self, n: u8) -> usize {
        let addr: SocketAddr = format!("10.9.0.{}:5000", 10 + n).parse().expect("addr");
        let conn = ConnId(u64::from(n));
        self.server
            .handle_input(self.now, Input::Connected { conn, remote: addr });
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        self.clients.push(Client {
            conn,
            addr,
            rtc,
            session: 0,
            handle: 0,
            pending: None,
            inbox: Vec::new(),
            rtp: Vec::new(),
            keyframe_requests: 0,
            next_timeout: self.now,
        });
        let i = self.clients.len() - 1;
        let r = self.request(i, json!({"janus": "create", "transaction": "c"}));
        self.clients[i].session = r["data"]["id"].as_u64().expect("session");
        let s = self.clients[i].session;
        let r = self.request(
            i,
            json!({"janus": "attach", "transaction": "a", "session_id": s, "plugin": "janus.plugin.videoroom"}),
        );
        self.clients[i].handle = r["data"]["id"].as_u64().expect("handle");
        i
    }

    /// Sends a Janus request; returns the first answer with its transaction
    /// that is not an ack.
    fn request(&mut self, i: usize, v: Value) -> Value {
        let tx = v["transaction"].as_str().unwrap_or_default().to_owned();
        let conn = self.clients[i].conn;
        self.server.handle_input(
            self.now,
            Input::Text {
                conn,
                text: &v.to_string(),
            },
        );
        self.pump_signaling();
        let c = &mut self.clients[i];
        let pos = c
            .inbox
            .iter()
            .position(|m| m["transaction"] == tx.as_str() && m["janus"] != "ack")
            .expect("an answer");
        c.inbox.remove(pos)
    }

    fn message(&mut self, i: usize, body: Value, jsep: Option<Value>) -> Value {
        let c = &self.clients[i];
        let mut v = json!({"janus": "message", "transaction": format!("t{}", body), "session_id": c.session,
                           "handle_id": c.handle, "body": body});
        if let Some(j) = jsep {
            v["jsep"] = j;
        }
        self.request(i, v)
    }

    fn pump_signaling(&mut self) {
        let mut datagrams = Vec::new();
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Send { conn, text } => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.conn == conn) {
                        c.inbox.push(serde_json::from_str(&text).expect("JSON"));
                    }
                }
                Output::Transmit {
                    source,
                    destination,
                    contents,
                    ..
                } => datagrams.push((source, destination, contents)),
                _ => {}
            }
        }
        self.deliver_to_clients(datagrams);
    }

    fn deliver_to_clients(&mut self, datagrams: Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        for (source, destination, contents) in datagrams {
            if let Some(c) = self.clients.iter_mut().find(|c| c.addr == destination) {
                let r = Receive::new(Protocol::Udp, source, destination, &contents).expect("recv");
                c.rtc
                    .handle_input(str0m::Input::Receive(self.now, r))
                    .expect("client input");
                c.poll(&mut self.to_server);
            }
        }
    }

    /// Runs the world for `d` in 2 ms steps, calling `each` every step.
    fn run(&mut self, d: Duration, mut each: impl FnMut(&mut World)) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(2);
            each(self);
            self.server.handle_input(self.now, Input::Timeout);
            self.pump_signaling();
            let now = self.now;
            let mut to_server = std::mem::take(&mut self.to_server);
            for c in &mut self.clients {
                if c.next_timeout <= now {
                    c.rtc
                        .handle_input(str0m::Input::Timeout(now))
                        .expect("client timeout");
                }
                c.poll(&mut to_server);
            }
            for (source, destination, contents) in to_server {
                self.server.handle_input(
                    now,
                    Input::Packet {
                        proto: crate::Protocol::Udp,
                        source,
                        destination,
                        contents: &contents,
                    },
                );
            }
            self.pump_signaling();
        }
    }

    /// Creates the room, with talking events on.
    fn create_room(&mut self, i: usize) {
        let r = self.message(
            i,
            json!({"request": "create", "room": ROOM, "audiolevel_event": true}),
            None,
        );
        assert_eq!(r["plugindata"]["data"]["videoroom"], "created", "{r}");
    }

    /// Joins as a publisher and publishes audio and video; returns the
    /// publisher id and the mids.
    fn publish(&mut self, i: usize, name: &str) -> (u64, Mid, Mid) {
        let r = self.message(
            i,
            json!({"request": "join", "room": ROOM, "ptype": "publisher", "display": name}),
            None,
        );
        assert_eq!(r["plugindata"]["data"]["videoroom"], "joined", "{r}");
        let id = r["plugindata"]["data"]["id"].as_u64().expect("id");
        let c = &mut self.clients[i];
        let mut api = c.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        c.pending = Some(pending);
        let r = self.message(
            i,
            json!({"request": "configure", "audio": true, "video": true}),
            Some(json!({"type": "offer", "sdp": offer.to_sdp_string()})),
        );
        let data = &r["plugindata"]["data"];
        assert_eq!(data["configured"], "ok", "{r}");
        assert_eq!(data["audio_codec"], "opus");
        assert_eq!(data["video_codec"], "vp8");
        let answer =
            SdpAnswer::from_sdp_string(r["jsep"]["sdp"].as_str().expect("sdp")).expect("answer");
        let c = &mut self.clients[i];
        let pending = c.pending.take().expect("pending");
        c.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("accept");
        (id, audio, video)
    }

    /// Subscribes to all streams of `feed`; returns the `attached` streams.
    fn subscribe(&mut self, i: usize, feed: u64) -> Value {
        let r = self.message(
            i,
            json!({"request": "join", "room": ROOM, "ptype": "subscriber", "streams": [{"feed": feed}]}),
            None,
        );
        let data = r["plugindata"]["data"].clone();
        assert_eq!(data["videoroom"], "attached", "{r}");
        self.answer(i, &r);
        data["streams"].clone()
    }

    /// Answers the offer in `r` with `start`.
    fn answer(&mut self, i: usize, r: &Value) {
        let offer =
            SdpOffer::from_sdp_string(r["jsep"]["sdp"].as_str().expect("offer")).expect("offer");
        let answer = self.clients[i]
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("answer");
        let r = self.message(
            i,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer.to_sdp_string()})),
        );
        assert_eq!(r["plugindata"]["data"]["started"], "ok", "{r}");
    }

    fn send_media(&mut self, i: usize, audio: Mid, video: Mid, n: u64, level: i8) {
        let now = self.now;
        let c = &mut self.clients[i];
        if !c.rtc.is_connected() {
            return;
        }
        for (mid, clock, payload) in [
            (audio, 960u32, format!("audio {n}")),
            (video, 3000u32, format!("video {n}")),
        ] {
            let Some(pt) = c
                .rtc
                .media(mid)
                .and_then(|m| m.remote_pts().first().copied())
            else {
                continue;
            };
            let mut api = c.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            let ext = ExtensionValues {
                audio_level: Some(level),
                voice_activity: Some(level > -30),
                ..Default::default()
            };
            tx.write_rtp(
                RtpWrite::new(pt, n.into(), (n as u32) * clock, now, payload.into_bytes())
                    .marker(true)
                    .ext_vals(ext)
                    .nackable(true),
            );
        }
    }
}

fn texts(rtp: &[(Mid, Vec<u8>)], mid: Mid) -> Vec<String> {
    rtp.iter()
        .filter(|(m, _)| *m == mid)
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

#[test]
fn publisher_media_reaches_subscribers_with_keyframe_requests_and_talking_events() {
    let mut w = World::new();
    let publisher = w.add_client(1);
    w.create_room(publisher);
    let (feed, audio, video) = w.publish(publisher, "Ann");
    // Connect the publisher before anyone subscribes.
    w.run(Duration::from_secs(2), |_| {});
    assert!(
        w.clients[publisher].rtc.is_connected(),
        "publisher connected"
    );

    let subscriber = w.add_client(2);
    let streams = w.subscribe(subscriber, feed);
    assert_eq!(streams.as_array().map(Vec::len), Some(2), "{streams}");
    assert_eq!(streams[0]["type"], "audio");
    assert_eq!(streams[1]["feed_id"], feed);
    assert_eq!(streams[1]["feed_display"], "Ann");
    let sub_audio = Mid::from(streams[0]["mid"].as_str().expect("mid"));
    let sub_video = Mid::from(streams[1]["mid"].as_str().expect("mid"));

    let mut n = 0u64;
    w.run(Duration::from_secs(3), |w| {
        n += 1;
        // A packet every 20 ms, loud enough to count as talking.
        if n.is_multiple_of(10) {
            w.send_media(publisher, audio, video, n / 10, -10);
        }
    });
    assert!(
        w.clients[subscriber].rtc.is_connected(),
        "subscriber connected"
    );
    let got_audio = texts(&w.clients[subscriber].rtp, sub_audio);
    let got_video = texts(&w.clients[subscriber].rtp, sub_video);
    assert!(got_audio.len() > 50, "audio forwarded: {}", got_audio.len());
    assert!(got_video.len() > 50, "video forwarded: {}", got_video.len());
    // Payloads arrive unchanged, in order.
    let first: u64 = got_video[0]
        .strip_prefix("video ")
        .and_then(|s| s.parse().ok())
        .expect("payload");
    for (k, t) in got_video.iter().enumerate() {
        assert_eq!(*t, format!("video {}", first + k as u64));
    }
    // A keyframe was asked of the publisher when the subscriber connected.
    assert!(w.clients[publisher].keyframe_requests > 0);
    // Talking events went to the room's publishers.
    assert!(
        w.clients[publisher]
            .inbox
            .iter()
            .any(|m| m["plugindata"]["data"]["videoroom"] == "talking"
                && m["plugindata"]["data"]["id"] == feed),
        "talking event"
    );

    // A subscriber's PLI reaches the publisher.
    let before = w.clients[publisher].keyframe_requests;
    w.run(Duration::from_millis(600), |_| {});
    if let Some(rx) = w.clients[subscriber]
        .rtc
        .direct_api()
        .stream_rx_by_mid(sub_video, None)
    {
        rx.request_keyframe(KeyframeRequestKind::Pli);
    }
    w.run(Duration::from_millis(200), |_| {});
    assert!(
        w.clients[publisher].keyframe_requests > before,
        "PLI relayed"
    );

    // The publisher leaves: the subscriber gets an `updated` offer with its
    // m-lines inactive.
    let c = &w.clients[publisher];
    let (s, h) = (c.session, c.handle);
    w.request(
        publisher,
        json!({"janus": "detach", "transaction": "d", "session_id": s, "handle_id": h}),
    );
    let updated = w.clients[subscriber]
        .inbox
        .iter()
        .find(|m| m["plugindata"]["data"]["videoroom"] == "updated")
        .cloned()
        .expect("updated event");
    assert_eq!(updated["jsep"]["type"], "offer");
    assert_eq!(updated["plugindata"]["data"]["streams"][0]["active"], false);
}

#[test]
fn a_second_subscriber_and_an_update_add_streams() {
    let mut w = World::new();
    let ann = w.add_client(1);
    w.create_room(ann);
    let (ann_feed, a_audio, a_video) = w.publish(ann, "Ann");
    let bo = w.add_client(2);
    let (bo_feed, b_audio, b_video) = w.publish(bo, "Bo");
    w.run(Duration::from_secs(2), |_| {});

    // Subscribe to Ann's audio only, then add Bo's video with an update.
    let sub = w.add_client(3);
    let r = w.message(
        sub,
        json!({"request": "join", "room": ROOM, "ptype": "subscriber", "streams": [{"feed": ann_feed, "mid": a_audio.to_string()}]}),
        None,
    );
    assert_eq!(
        r["plugindata"]["data"]["streams"].as_array().map(Vec::len),
        Some(1)
    );
    w.answer(sub, &r);
    let r = w.message(
        sub,
        json!({"request": "update", "subscribe": [{"feed": bo_feed, "mid": b_video.to_string()}]}),
        None,
    );
    let data = &r["plugindata"]["data"];
    assert_eq!(data["videoroom"], "updated", "{r}");
    assert_eq!(data["streams"][1]["feed_id"], bo_feed);
    let bo_video_mid = Mid::from(data["streams"][1]["mid"].as_str().expect("mid"));
    let ann_audio_mid = Mid::from(data["streams"][0]["mid"].as_str().expect("mid"));
    w.answer(sub, &r);

    // Unknown feeds are refused as Janus does.
    let r = w.message(
        sub,
        json!({"request": "update", "subscribe": [{"feed": 999}]}),
        None,
    );
    assert_eq!(r["plugindata"]["data"]["error_code"], 428);

    let mut n = 0u64;
    w.run(Duration::from_secs(3), |w| {
        n += 1;
        if n.is_multiple_of(10) {
            w.send_media(ann, a_audio, a_video, n / 10, -90);
            w.send_media(bo, b_audio, b_video, n / 10, -90);
        }
    });
    let rtp = &w.clients[sub].rtp;
    let ann_audio = texts(rtp, ann_audio_mid);
    let bo_video = texts(rtp, bo_video_mid);
    assert!(ann_audio.len() > 50 && ann_audio.iter().all(|t| t.starts_with("audio")));
    assert!(bo_video.len() > 50 && bo_video.iter().all(|t| t.starts_with("video")));
    // Nothing else was forwarded.
    assert_eq!(rtp.len(), ann_audio.len() + bo_video.len());
    // Quiet audio: no talking events.
    assert!(!w.clients[ann]
        .inbox
        .iter()
        .any(|m| m["plugindata"]["data"]["videoroom"] == "talking"));
}
