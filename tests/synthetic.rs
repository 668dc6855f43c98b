//! Synthetic WebRTC peers that speak the Janus VideoRoom API: a publisher
//! sending VP8-like video (~1 Mbit/s, 30 frames/s) and Opus-like audio
//! (50 packets/s), and a subscriber that receives every stream of the
//! room's publishers. Payloads carry their send time and a per-stream
//! counter, so subscribers measure delay and loss. Used by the end-to-end
//! tests and by `scripts/bench sfu`; works against Janus and conclave-server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Video payload bytes per second (~1 Mbit/s).
pub const VIDEO_BYTES_PER_SECOND: usize = 125_000;
/// Video frames per second.
pub const VIDEO_FPS: u32 = 30;
/// Audio packets per second (20 ms Opus frames).
pub const AUDIO_PPS: u32 = 50;
/// Largest video packet payload.
const VIDEO_MTU: usize = 1100;
/// Audio payload bytes.
const AUDIO_BYTES: usize = 100;

/// The common time base for payload timestamps (one process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Janus signaling over one WebSocket: one session, request/answer by
/// transaction; everything else is kept for later.
pub struct Signaling {
    ws: Ws,
    session: u64,
    next: u64,
    inbox: VecDeque<Value>,
}

impl Signaling {
    /// Connects and creates a session.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut request = url.into_client_request().context("server URL")?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("connect")?;
        let mut s = Signaling {
            ws,
            session: 0,
            next: 0,
            inbox: VecDeque::new(),
        };
        let r = s.request(json!({"janus": "create"})).await?;
        s.session = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no session: {r}"))?;
        Ok(s)
    }

    /// Sends a request and waits for its answer (not its ack).
    pub async fn request(&mut self, mut v: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let tx = format!("s{}", self.next);
        v["transaction"] = json!(tx);
        if self.session != 0 {
            v["session_id"] = json!(self.session);
        }
        self.ws.send(Message::text(v.to_string())).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no answer to {v}"))?
                .ok_or_else(|| anyhow!("connection closed"))??;
            let Message::Text(text) = frame else { continue };
            let m: Value = serde_json::from_str(&text)?;
            if m["transaction"] == tx.as_str() && m["janus"] != "ack" {
                if m["janus"] == "error" {
                    bail!("server error: {m}");
                }
                return Ok(m);
            }
            self.inbox.push_back(m);
        }
    }

    /// Attaches a plugin handle.
    pub async fn attach(&mut self, plugin: &str) -> anyhow::Result<u64> {
        let r = self
            .request(json!({"janus": "attach", "plugin": plugin}))
            .await?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no handle: {r}"))
    }

    /// Sends a plugin message and waits for its answer (event or success).
    pub async fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut v = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            v["jsep"] = j;
        }
        let r = self.request(v).await?;
        if let Some(code) = r["plugindata"]["data"]["error_code"].as_i64() {
            bail!("plugin error {code}: {}", r["plugindata"]["data"]["error"]);
        }
        Ok(r)
    }

    /// Sends a request that is only acknowledged (trickle, keepalive).
    pub async fn send(&mut self, mut v: Value) -> anyhow::Result<()> {
        self.next += 1;
        v["transaction"] = json!(format!("k{}", self.next));
        v["session_id"] = json!(self.session);
        self.ws.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    /// Sends a keepalive without waiting.
    async fn keepalive(&mut self) {
        let _ = self.send(json!({"janus": "keepalive"})).await;
    }
}

/// Counters a peer shares with whoever runs it.
#[derive(Default)]
pub struct Stats {
    /// Packets sent (publishers), per kind index 0 audio, 1 video.
    pub sent: [AtomicU64; 2],
    /// Packets received (subscribers), all streams.
    pub received: AtomicU64,
    /// Received packets whose send time lies in the measuring window.
    pub received_in_window: AtomicU64,
    /// Sent packets in the measuring window.
    pub sent_in_window: AtomicU64,
    /// One-way delays in microseconds, of packets sent in the window.
    pub delays_us: Mutex<Vec<u32>>,
    /// Whether the peer connection is up.
    pub connected: AtomicBool,
    /// Streams (feed, kind) that delivered at least one packet.
    pub streams_seen: Mutex<HashSet<(u64, String)>>,
}

/// The measuring window, in microseconds since the common epoch; zero when unset.
#[derive(Default)]
pub struct Window {
    /// Start.
    pub start_us: AtomicU64,
    /// End.
    pub end_us: AtomicU64,
}

impl Window {
    /// Opens the window now, closing it after `length`.
    pub fn open(&self, length: Duration) {
        let now = epoch().elapsed().as_micros() as u64;
        self.start_us.store(now, Ordering::SeqCst);
        self.end_us
            .store(now + length.as_micros() as u64, Ordering::SeqCst);
    }

    fn contains(&self, us: u64) -> bool {
        let start = self.start_us.load(Ordering::Relaxed);
        start != 0 && us >= start && us < self.end_us.load(Ordering::Relaxed)
    }
}

/// What a synthetic peer does.
pub enum Role {
    /// Publish audio and video as `display`.
    Publisher {
        /// Display name.
        display: String,
    },
    /// Receive every stream of these publisher ids.
    Subscriber {
        /// Publisher ids.
        feeds: Vec<u64>,
    },
}

/// A running synthetic peer.
pub struct SyntheticPeer {
    /// Its counters.
    pub stats: Arc<Stats>,
    /// The publisher id (publishers only).
    pub id: u64,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl SyntheticPeer {
    /// Joins `room` on `server` (a `ws://` URL) from local IP `ip` and runs
    /// until `stop` is set.
    pub async fn start(
        server: &str,
        room: u64,
        pin: Option<String>,
        ip: std::net::IpAddr,
        role: Role,
        window: Arc<Window>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<SyntheticPeer> {
        let _ = epoch();
        let mut sig = Signaling::connect(server).await?;
        let handle = sig.attach("janus.plugin.videoroom").await?;
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_rtp_mode(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let stats = Arc::new(Stats::default());
        let mut id = 0;
        let mut mids: HashMap<Mid, (u64, String)> = HashMap::new();
        let mut send_mids = None;
        match &role {
            Role::Publisher { display } => {
                let mut body = json!({"request": "join", "room": room, "ptype": "publisher", "display": display});
                if let Some(p) = &pin {
                    body["pin"] = json!(p);
                }
                let r = sig.message(handle, body, None).await?;
                id = r["plugindata"]["data"]["id"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("no publisher id: {r}"))?;
                let mut api = rtc.sdp_api();
                let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
                let (offer, pending) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
                let r = sig
                    .message(
                        handle,
                        json!({"request": "configure", "audio": true, "video": true}),
                        Some(json!({"type": "offer", "sdp": offer.to_sdp_string()})),
                    )
                    .await?;
                let sdp = r["jsep"]["sdp"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no answer: {r}"))?;
                rtc.sdp_api()
                    .accept_answer(pending, SdpAnswer::from_sdp_string(sdp)?)?;
                send_mids = Some((audio, video));
            }
            Role::Subscriber { feeds } => {
                let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
                let mut body = json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams});
                if let Some(p) = &pin {
                    body["pin"] = json!(p);
                }
                let r = sig.message(handle, body, None).await?;
                for s in r["plugindata"]["data"]["streams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let (Some(mid), Some(feed), Some(kind)) =
                        (s["mid"].as_str(), s["feed_id"].as_u64(), s["type"].as_str())
                    {
                        mids.insert(Mid::from(mid), (feed, kind.to_owned()));
                    }
                }
                let sdp = r["jsep"]["sdp"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no offer: {r}"))?;
                let answer = rtc
                    .sdp_api()
                    .accept_offer(SdpOffer::from_sdp_string(sdp)?)?;
                sig.message(
                    handle,
                    json!({"request": "start", "room": room}),
                    Some(json!({"type": "answer", "sdp": answer.to_sdp_string()})),
                )
                .await?;
            }
        }
        let v = json!({"janus": "trickle", "handle_id": handle, "candidate": {"completed": true}});
        sig.send(v).await?;
        let task = tokio::spawn(run(
            sig,
            socket,
            rtc,
            send_mids,
            mids,
            stats.clone(),
            window,
            stop,
        ));
        Ok(SyntheticPeer { stats, id, task })
    }

    /// Waits for the peer to end; its error, if any.
    pub async fn join(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut sig: Signaling,
    socket: UdpSocket,
    mut rtc: Rtc,
    send_mids: Option<(Mid, Mid)>,
    mids: HashMap<Mid, (u64, String)>,
    stats: Arc<Stats>,
    window: Arc<Window>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let local = socket.local_addr()?;
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut next_audio = start;
    let mut next_video = start;
    let mut seq = [0u64; 2];
    let mut keepalive = start + Duration::from_secs(20);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut deadline = Instant::now();
    // Trickled candidates that arrived during setup.
    for m in std::mem::take(&mut sig.inbox) {
        add_trickle(&mut rtc, &m);
    }
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            rtc.handle_input(str0m::Input::Timeout(now))?;
        }
        if let (Some((audio, video)), true) = (send_mids, rtc.is_connected()) {
            stats.connected.store(true, Ordering::Relaxed);
            while next_audio <= now {
                write(
                    &mut rtc,
                    audio,
                    0,
                    &mut seq,
                    AUDIO_BYTES,
                    48_000 / AUDIO_PPS,
                    true,
                    &stats,
                    &window,
                );
                next_audio += Duration::from_secs(1) / AUDIO_PPS;
            }
            while next_video <= now {
                let frame = VIDEO_BYTES_PER_SECOND / VIDEO_FPS as usize;
                let packets = frame.div_ceil(VIDEO_MTU);
                for k in 0..packets {
                    let last = k + 1 == packets;
                    write(
                        &mut rtc,
                        video,
                        1,
                        &mut seq,
                        frame / packets,
                        90_000 / VIDEO_FPS,
                        last,
                        &stats,
                        &window,
                    );
                }
                next_video += Duration::from_secs(1) / VIDEO_FPS;
            }
            rtc.handle_input(str0m::Input::Timeout(now))?;
        } else if rtc.is_connected() {
            stats.connected.store(true, Ordering::Relaxed);
        }
        // Drain.
        loop {
            match rtc.poll_output()? {
                str0m::Output::Timeout(t) => {
                    deadline = t;
                    break;
                }
                str0m::Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                str0m::Output::Event(Event::RtpPacket(p)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let mid = rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid());
                    if let Some(stream) = mid.and_then(|m| mids.get(&m)) {
                        if let Ok(mut seen) = stats.streams_seen.lock() {
                            seen.insert(stream.clone());
                        }
                    }
                    if p.payload.len() >= 9 {
                        let mut sent = [0u8; 8];
                        sent.copy_from_slice(&p.payload[1..9]);
                        let sent_us = u64::from_be_bytes(sent);
                        if window.contains(sent_us) {
                            stats.received_in_window.fetch_add(1, Ordering::Relaxed);
                            let now_us = epoch().elapsed().as_micros() as u64;
                            if let Ok(mut d) = stats.delays_us.lock() {
                                d.push(now_us.saturating_sub(sent_us) as u32);
                            }
                        }
                    }
                }
                str0m::Output::Event(_) => {}
            }
        }
        if now >= keepalive {
            sig.keepalive().await;
            keepalive = now + Duration::from_secs(20);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    rtc.handle_input(str0m::Input::Receive(Instant::now(), receive))?;
                }
            }
            frame = sig.ws.next() => {
                if let Some(Ok(Message::Text(text))) = frame {
                    if let Ok(m) = serde_json::from_str::<Value>(&text) {
                        add_trickle(&mut rtc, &m);
                    }
                }
            }
            _ = tick.tick(), if send_mids.is_some() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let _ = sig.request(json!({"janus": "destroy"})).await;
    Ok(())
}

fn add_trickle(rtc: &mut Rtc, m: &Value) {
    if m["janus"] != "trickle" {
        return;
    }
    if let Some(c) = m["candidate"]["candidate"].as_str() {
        let line = if c.starts_with("candidate:") {
            c.to_owned()
        } else {
            format!("candidate:{c}")
        };
        if let Ok(c) = Candidate::from_sdp_string(&line) {
            rtc.add_remote_candidate(c);
        }
    }
}

/// Writes one packet: a VP8 payload descriptor byte (or an Opus TOC byte),
/// the send time, the per-stream counter, filler.
#[allow(clippy::too_many_arguments)]
fn write(
    rtc: &mut Rtc,
    mid: Mid,
    kind: usize,
    seq: &mut [u64; 2],
    len: usize,
    ticks: u32,
    marker: bool,
    stats: &Stats,
    window: &Window,
) {
    let Some(pt) = rtc.media(mid).and_then(|m| m.remote_pts().first().copied()) else {
        return;
    };
    let mut api = rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        return;
    };
    let now_us = epoch().elapsed().as_micros() as u64;
    let mut payload = vec![0u8; len.max(17)];
    payload[0] = if kind == 1 { 0x10 } else { 0x78 };
    payload[1..9].copy_from_slice(&now_us.to_be_bytes());
    payload[9..17].copy_from_slice(&seq[kind].to_be_bytes());
    let n = seq[kind];
    seq[kind] += 1;
    let time = if kind == 1 {
        // All packets of a frame share its timestamp.
        (stats.sent[1].load(Ordering::Relaxed) / 4) as u32 * ticks
    } else {
        n as u32 * ticks
    };
    let ext = ExtensionValues {
        audio_level: (kind == 0).then_some(-60),
        voice_activity: (kind == 0).then_some(false),
        ..Default::default()
    };
    tx.write_rtp(
        RtpWrite::new(pt, (n + 1).into(), time, Instant::now(), payload)
            .marker(marker)
            .ext_vals(ext)
            .nackable(kind == 1),
    );
    stats.sent[kind].fetch_add(1, Ordering::Relaxed);
    if window.contains(now_us) {
        stats.sent_in_window.fetch_add(1, Ordering::Relaxed);
    }
}
