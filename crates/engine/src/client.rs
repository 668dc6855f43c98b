//! The sans-IO meeting client.
//!
//! [`Client`] holds the whole state of one meeting: the Janus session and its
//! handles, the transactions in flight, the WebRTC peer connection (a str0m
//! [`Rtc`]) that carries the TextRoom data channel, the roster and the chat.
//! It performs no I/O and reads no clock: the caller feeds it [`Input`]s with
//! the current time and drains [`Output`]s until [`Output::Timeout`], in the
//! same shape as str0m itself. [`crate::runtime`] is the thin async driver.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conclave_protocol::janus::{self, Jsep, JsepKind, Request, ServerMessage, TrickleCandidate};
use conclave_protocol::textroom::{
    self, TextRoomApiRequest, TextRoomEvent, TextRoomParticipant, TextRoomRequest,
};
use conclave_protocol::videoroom::{
    self, ParticipantType, RoomDescription, VideoRoomEvent, VideoRoomRequest,
};
use conclave_protocol::MeetingInfo;
use serde_json::Value;
use str0m::change::SdpOffer;
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Rtc};
use tracing::{debug, info, warn};

use crate::api::{
    ChatMessage, Command, ConnectionQuality, EngineEvent, Participant, RecordingState,
};
use crate::chat::{AppMessage, ChatCodec};

mod publisher;
mod subscriber;
pub use publisher::PublishConfig;
use publisher::Publisher;
use subscriber::Subscriber;

fn sender_is(handle: Option<u64>, sender: u64) -> bool {
    handle == Some(sender)
}

/// The ICE candidate in a `trickle` message (`candidate:...`, with or
/// without the prefix); `None` for end-of-candidates or an unparsable one.
fn trickled_candidate(candidate: TrickleCandidate) -> Option<Candidate> {
    let TrickleCandidate::Candidate { candidate, .. } = candidate else {
        return None;
    };
    let text = if candidate.starts_with("candidate:") {
        candidate
    } else {
        format!("candidate:{candidate}")
    };
    Candidate::from_sdp_string(&text)
        .map_err(|e| warn!(error = %e, "ignoring an invalid remote candidate"))
        .ok()
}

/// How long a request may wait for its answer.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long joining may take in all, including ICE and DTLS.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between session keepalives (Janus's default timeout is 60 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
/// How long leaving waits for the server before giving up.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest nickname, in characters.
pub const MAX_NICKNAME_CHARS: usize = 64;

/// What the client needs to join one meeting.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The meeting (ID, password, chat key).
    pub info: MeetingInfo,
    /// The nickname shown to others. The only personal datum sent.
    pub nickname: String,
    /// This participant's id in the meeting (random per join).
    pub self_id: u64,
    /// The local UDP address announced as ICE host candidate (chat).
    pub local_addr: SocketAddr,
    /// A second local UDP address, for receiving media: each peer
    /// connection needs its own port, as a server may use one port for all.
    pub media_addr: SocketAddr,
    /// A third local UDP address, for sending media.
    pub publish_addr: SocketAddr,
    /// What to publish (the runtime feeds the encoded frames).
    pub publish: PublishConfig,
    /// Emit every TextRoom frame as [`EngineEvent::RawTextRoom`] (tests, audits).
    pub tap_textroom: bool,
    /// Relayed addresses (TURN allocations) of each peer connection: more
    /// local candidates, after the host ones.
    pub relayed: RelayedAddrs,
    /// Offer only relayed candidates: our own addresses stay hidden from
    /// the server and everyone else.
    pub relay_only: bool,
}

/// The relayed addresses of each peer connection, each with the local
/// address the relay saw it asked from.
#[derive(Debug, Clone, Default)]
pub struct RelayedAddrs {
    /// Of the chat (TextRoom) connection.
    pub chat: Vec<(SocketAddr, SocketAddr)>,
    /// Of the connection that receives media.
    pub media: Vec<(SocketAddr, SocketAddr)>,
    /// Of the connection that sends media.
    pub publish: Vec<(SocketAddr, SocketAddr)>,
}

/// The local ICE candidates of a peer connection: its host address over
/// UDP and an active ICE-TCP candidate on the same address (unless only
/// relays may be offered), then its relayed addresses.
///
/// The active candidate's port is the UDP socket's, not RFC 6544's 9: an
/// active candidate is never connected to, and a port of its own lets the
/// runtime tell the three peer connections' TCP packets apart.
pub(crate) fn local_candidates(
    host: SocketAddr,
    relayed: &[(SocketAddr, SocketAddr)],
    relay_only: bool,
) -> Result<Vec<Candidate>, String> {
    let mut out = Vec::new();
    if !relay_only {
        out.push(Candidate::host(host, "udp").map_err(|e| e.to_string())?);
        out.push(
            Candidate::builder()
                .tcp()
                .host(host)
                .tcptype(TcpType::Active)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    for (addr, local) in relayed {
        out.push(Candidate::relayed(*addr, *local, "udp").map_err(|e| e.to_string())?);
    }
    if out.is_empty() {
        return Err("no relay could be reached".into());
    }
    Ok(out)
}

/// Something the caller feeds into the client.
#[derive(Debug)]
pub enum Input<'a> {
    /// A text frame from the signaling connection.
    Signal(&'a str),
    /// The signaling connection dropped; the caller is trying to reconnect.
    SignalLost,
    /// The signaling connection is back (a new transport connection).
    SignalRestored,
    /// The signaling connection is gone for good.
    SignalGaveUp(String),
    /// A packet arrived: a UDP datagram, or a frame on an ICE-TCP connection.
    Packet {
        /// UDP or TCP.
        proto: Protocol,
        /// Sender.
        source: SocketAddr,
        /// Local address it arrived on.
        destination: SocketAddr,
        /// Payload.
        data: &'a [u8],
    },
    /// The machine's address toward the server changed (Wi-Fi to a phone's
    /// hotspot, say): the runtime has bound new sockets there. ICE restarts
    /// on every peer connection.
    AddressChanged {
        /// The chat connection's new local address.
        chat: SocketAddr,
        /// The receiving connection's.
        media: SocketAddr,
        /// The sending connection's.
        publish: SocketAddr,
    },
    /// Time passed; nothing else happened.
    Timeout,
    /// An encoded Opus packet from the microphone, with its level in dBov.
    EncodedAudio {
        /// The packet.
        data: &'a [u8],
        /// Capture time of its first sample.
        captured: Duration,
        /// Level (0 loud .. 127 silent).
        level: u8,
    },
    /// An encoded Opus packet of the computer's sound, shared with the screen.
    EncodedShareAudio {
        /// The packet.
        data: &'a [u8],
        /// Capture time of its first sample.
        captured: Duration,
    },
    /// An encoded video frame from the camera or the shared screen.
    EncodedVideo {
        /// The frame.
        data: &'a [u8],
        /// Capture time.
        captured: Duration,
        /// From the shared screen rather than the camera.
        screen: bool,
    },
    /// A user command.
    Command(Command),
    /// A participant's video (a tile: `id`, or `id | SCREEN_TILE`) could not
    /// be decoded from where it is: ask its sender for a keyframe.
    KeyframeNeeded {
        /// The tile.
        tile: u64,
    },
}

/// Something the client wants done.
#[derive(Debug)]
pub enum Output {
    /// Send a text frame on the signaling connection.
    Signal(String),
    /// Send a packet.
    Transmit {
        /// UDP, or TCP (ICE-TCP: the runtime connects to `destination`).
        proto: Protocol,
        /// The local address (socket) to send from.
        source: SocketAddr,
        /// Where to.
        destination: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// Tell the user.
    Event(EngineEvent),
    /// The server asks for a keyframe: the next video frame (of the camera,
    /// or of the shared screen) should be one.
    KeyframeRequested {
        /// For the shared screen rather than the camera.
        screen: bool,
    },
    /// The video bitrate to aim for (bits per second), from the bandwidth
    /// estimate.
    VideoBitrate(u32),
    /// The share of our audio the receiving server reports lost (0..1,
    /// from its RTCP receiver reports), for the encoder's protection.
    AudioLoss(f32),
    /// Whether our audio now goes out with RED (RFC 2198): the encoder's
    /// own protection is sized for what RED leaves unrepaired.
    AudioRedundancy(bool),
    /// An encoded frame from another participant, for decoding.
    RemoteMedia {
        /// The participant (publisher id).
        participant: u64,
        /// The video codec, or `None` for audio (Opus).
        video: Option<conclave_codec::VideoCodec>,
        /// The frame.
        data: Vec<u8>,
        /// RTP time in the codec's clock.
        rtp_time: u64,
    },
    /// Nothing more to do until this instant (or the next input).
    Timeout(Instant),
}

/// How often str0m reports statistics.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Turns str0m's periodic peer statistics into rates.
#[derive(Debug, Default)]
pub(crate) struct LinkMeter {
    last: Option<(Instant, u64)>,
    /// kbit/s over the last interval.
    pub kbps: u32,
    /// Round-trip time, ms.
    pub rtt_ms: u32,
    /// Loss, per mille.
    pub loss_permille: u32,
}

impl LinkMeter {
    /// Takes the byte counter (sent or received) and figures of one report.
    pub fn update(&mut self, at: Instant, bytes: u64, rtt: Option<Duration>, loss: Option<f32>) {
        if let Some((then, before)) = self.last {
            let secs = at.saturating_duration_since(then).as_secs_f64();
            if secs > 0.0 {
                self.kbps = (bytes.saturating_sub(before) as f64 * 8.0 / 1000.0 / secs) as u32;
            }
        }
        self.last = Some((at, bytes));
        if let Some(rtt) = rtt {
            self.rtt_ms = rtt.as_millis().min(u128::from(u32::MAX)) as u32;
        }
        if let Some(loss) = loss.filter(|l| l.is_finite()) {
            self.loss_permille = (loss.clamp(0.0, 1.0) * 1000.0).round() as u32;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Joining,
    InMeeting,
    Leaving,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    CreateSession,
    AttachVideoRoom,
    AttachTextRoom,
    VideoRoomJoin,
    TextRoomSetup,
    TextRoomAck,
    Keepalive,
    Claim,
    Trickle,
    VideoRoomLeave,
    Destroy,
    AttachSubscriber,
    SubscriberJoin,
    SubscriberUpdate,
    SubscriberStart,
    Publish,
    IceRestart,
}

impl Tx {
    /// Requests whose failure does not end the meeting.
    fn is_optional(self) -> bool {
        matches!(
            self,
            Tx::Keepalive
                | Tx::Trickle
                | Tx::VideoRoomLeave
                | Tx::AttachSubscriber
                | Tx::SubscriberJoin
                | Tx::SubscriberUpdate
                | Tx::SubscriberStart
                | Tx::Publish
                | Tx::IceRestart
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DcTx {
    Join,
    Message { to_name: Option<String> },
    AppMessage,
    Leave,
}

/// The sans-IO meeting client. See the module documentation.
pub struct Client {
    cfg: ClientConfig,
    self_id: String,
    codec: ChatCodec,
    phase: Phase,
    now: Instant,
    next_tx: u64,
    pending: HashMap<String, (Tx, Instant)>,
    dc_pending: HashMap<String, DcTx>,
    session_id: Option<u64>,
    videoroom_handle: Option<u64>,
    textroom_handle: Option<u64>,
    videoroom_joined: bool,
    textroom_joined: bool,
    rtc: Option<Rtc>,
    rtc_deadline: Option<Instant>,
    channel: Option<ChannelId>,
    dc_backlog: Vec<String>,
    signal_up: bool,
    /// The signaling connection dropped and our session is not claimed
    /// back yet.
    claiming: bool,
    /// Whether the user was last told we are reconnecting.
    reconnecting_shown: bool,
    signal_backlog: Vec<String>,
    roster: BTreeMap<String, Participant>,
    chat_log: Vec<ChatMessage>,
    join_deadline: Instant,
    keepalive_at: Instant,
    leave_deadline: Option<Instant>,
    out: VecDeque<Output>,
    /// Receiving others' media.
    sub: Subscriber,
    /// Sending our media.
    publisher: Publisher,
    /// Roster entries known only from the VideoRoom (publishers that are not
    /// in the chat room, such as other Janus clients).
    video_only: HashSet<String>,
    /// What the host set for the meeting (from the room's description).
    room: RoomDescription,
    /// Whether we record (others are told, late joiners too).
    own_recording: RecordingState,
    /// Who else records (participant id → state).
    others_recording: BTreeMap<String, RecordingState>,
    /// Others' connection quality, as they last told it (good if never).
    others_quality: BTreeMap<String, ConnectionQuality>,
    /// Our own connection quality, judged each statistics period.
    quality: crate::adapt::QualityJudge,
}

impl Client {
    /// A client that starts joining at once: the first output is the
    /// `create` request for the signaling connection.
    pub fn new(cfg: ClientConfig, now: Instant) -> Self {
        let codec = ChatCodec::new(cfg.info.room.0, cfg.info.chat_key.as_ref());
        let mut client = Client {
            self_id: cfg.self_id.to_string(),
            cfg,
            codec,
            phase: Phase::Joining,
            now,
            next_tx: 1,
            pending: HashMap::new(),
            dc_pending: HashMap::new(),
            session_id: None,
            videoroom_handle: None,
            textroom_handle: None,
            videoroom_joined: false,
            textroom_joined: false,
            rtc: None,
            rtc_deadline: None,
            channel: None,
            dc_backlog: Vec::new(),
            signal_up: true,
            claiming: false,
            reconnecting_shown: false,
            signal_backlog: Vec::new(),
            roster: BTreeMap::new(),
            chat_log: Vec::new(),
            join_deadline: now + JOIN_TIMEOUT,
            keepalive_at: now + KEEPALIVE_INTERVAL,
            leave_deadline: None,
            out: VecDeque::new(),
            sub: Subscriber::default(),
            publisher: Publisher::default(),
            video_only: HashSet::new(),
            room: RoomDescription::default(),
            own_recording: RecordingState::Stopped,
            others_recording: BTreeMap::new(),
            others_quality: BTreeMap::new(),
            quality: Default::default(),
        };
        let transaction = client.transaction(Tx::CreateSession);
        client.send(Request::Create { transaction });
        client
    }

    /// Whether the meeting is over and the driver can stop.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished && self.out.is_empty()
    }

    /// Whether the local user is in the meeting (joined, not yet left).
    pub fn is_in_meeting(&self) -> bool {
        self.phase == Phase::InMeeting
    }

    /// The local participant's id.
    pub fn self_id(&self) -> &str {
        &self.self_id
    }

    /// The chat of this meeting so far, oldest first. Only in memory.
    pub fn chat_log(&self) -> &[ChatMessage] {
        &self.chat_log
    }

    /// The meeting being joined.
    pub fn meeting(&self) -> &MeetingInfo {
        &self.cfg.info
    }

    /// The local nickname.
    pub fn nickname(&self) -> &str {
        &self.cfg.nickname
    }

    /// Feeds one input at time `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = now.max(self.now);
        if self.phase == Phase::Finished {
            return;
        }
        match input {
            Input::Signal(text) => self.on_signal(text),
            Input::SignalLost => self.on_signal_lost(),
            Input::SignalRestored => self.on_signal_restored(),
            Input::SignalGaveUp(reason) => self.fail(format!(
                "Lost the connection to the meeting server: {reason}"
            )),
            Input::Packet {
                proto,
                source,
                destination,
                data,
            } => self.on_packet(proto, source, destination, data),
            Input::AddressChanged {
                chat,
                media,
                publish,
            } => self.on_address_changed(chat, media, publish),
            Input::Timeout => self.on_timeout(),
            Input::EncodedAudio {
                data,
                captured,
                level,
            } => self.send_encoded(publisher::Sent::Audio, data, captured, level),
            Input::EncodedShareAudio { data, captured } => {
                self.send_encoded(publisher::Sent::ScreenAudio, data, captured, 127)
            }
            Input::EncodedVideo {
                data,
                captured,
                screen,
            } => {
                let sent = if screen {
                    publisher::Sent::Screen
                } else {
                    publisher::Sent::Camera
                };
                self.send_encoded(sent, data, captured, 0)
            }
            Input::Command(cmd) => self.on_command(cmd),
            Input::KeyframeNeeded { tile } => self.request_remote_keyframe(tile),
        }
    }

    /// Figures of the media connections, from their latest reports.
    pub fn network_stats(&self) -> crate::api::NetworkStats {
        let (send, receive) = (&self.publisher.meter, &self.sub.meter);
        crate::api::NetworkStats {
            send_kbps: send.kbps,
            receive_kbps: receive.kbps,
            video_target_kbps: self.publisher.video_target / 1000,
            rtt_ms: if send.rtt_ms > 0 {
                send.rtt_ms
            } else {
                receive.rtt_ms
            },
            send_loss_permille: send.loss_permille,
            receive_loss_permille: receive.loss_permille,
            path: crate::api::ConnectionPath::Unknown,
            quality: self.quality.shown(),
        }
    }

    /// The next output. Call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut next = self.now + Duration::from_secs(3600);
        if self.phase != Phase::Finished {
            next = next.min(self.keepalive_at);
            if self.phase == Phase::Joining {
                next = next.min(self.join_deadline);
            }
            if let Some(t) = self.rtc_deadline {
                next = next.min(t);
            }
            if let Some(t) = self.sub.deadline {
                next = next.min(t);
            }
            if let Some(t) = self.media_silence_deadline() {
                next = next.min(t);
            }
            if let Some(t) = self.publisher.deadline {
                next = next.min(t);
            }
            if let Some(t) = self.leave_deadline {
                next = next.min(t);
            }
            if let Some(t) = self.pending.values().map(|(_, t)| *t).min() {
                next = next.min(t);
            }
        }
        Output::Timeout(next)
    }

    // ----- signaling -------------------------------------------------------

    fn transaction(&mut self, tx: Tx) -> String {
        let id = format!("c{}", self.next_tx);
        self.next_tx += 1;
        self.pending
            .insert(id.clone(), (tx, self.now + TRANSACTION_TIMEOUT));
        id
    }

    fn send(&mut self, req: Request) {
        let text = req.to_json();
        if self.signal_up {
            self.out.push_back(Output::Signal(text));
        } else {
            self.signal_backlog.push(text);
        }
    }

    fn plugin_message(&mut self, tx: Tx, handle_id: u64, body: Value, jsep: Option<Jsep>) {
        let Some(session_id) = self.session_id else {
            return;
        };
        let transaction = self.transaction(tx);
        self.send(Request::Message {
            transaction,
            session_id,
            handle_id,
            body,
            jsep,
        });
    }

    fn on_signal(&mut self, text: &str) {
        let msg = match ServerMessage::from_json(text) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "ignoring a server message that could not be decoded");
                return;
            }
        };
        let tx = msg
            .transaction()
            .and_then(|t| self.pending.get(t).map(|(tx, _)| (t.to_owned(), *tx)));
        match msg {
            ServerMessage::Ack { .. } => {
                if let Some((id, Tx::Keepalive | Tx::Trickle)) = tx {
                    self.pending.remove(&id);
                }
            }
            ServerMessage::Success {
                data, plugindata, ..
            } => {
                let Some((id, tx)) = tx else {
                    debug!("success for an unknown transaction");
                    return;
                };
                self.pending.remove(&id);
                self.on_success(tx, data.map(|d| d.id), plugindata.map(|p| p.data));
            }
            ServerMessage::Error { error, .. } => {
                if let Some((id, tx)) = tx {
                    self.pending.remove(&id);
                    self.on_core_error(tx, error);
                } else {
                    warn!(code = error.code, "server error for an unknown transaction");
                }
            }
            ServerMessage::Event {
                sender,
                plugindata,
                jsep,
                ..
            } => {
                if let Some((id, _)) = &tx {
                    self.pending.remove(id);
                }
                if Some(sender) == self.videoroom_handle {
                    self.on_videoroom(&plugindata.data);
                    if let Some(j) = jsep.filter(|j| j.kind == JsepKind::Answer) {
                        self.on_publish_answer(j);
                    }
                } else if sender_is(self.sub_handle(), sender) {
                    self.on_subscriber_event(&plugindata.data, jsep);
                } else if Some(sender) == self.textroom_handle {
                    self.on_textroom_api(&plugindata.data, jsep);
                } else {
                    debug!(sender, "event for an unknown handle");
                }
            }
            ServerMessage::Trickle {
                sender, candidate, ..
            } => {
                if Some(sender) == self.textroom_handle {
                    self.on_remote_candidate(candidate);
                } else if sender_is(self.sub_handle(), sender) {
                    self.on_subscriber_candidate(candidate);
                }
            }
            ServerMessage::Webrtcup { sender, .. } => debug!(sender, "webrtcup"),
            ServerMessage::Hangup { sender, reason, .. } => {
                if Some(sender) == self.textroom_handle && self.phase != Phase::Leaving {
                    self.fail(format!("The server closed the chat connection ({reason})"));
                }
            }
            ServerMessage::Timeout { .. } => {
                self.fail("The server ended the session after a timeout".into());
            }
            ServerMessage::Detached { .. }
            | ServerMessage::Media { .. }
            | ServerMessage::Slowlink { .. } => {}
        }
    }

    fn on_success(&mut self, tx: Tx, id: Option<u64>, data: Option<Value>) {
        match tx {
            Tx::CreateSession => {
                let Some(session_id) = id else {
                    return self.fail("The server sent an invalid session".into());
                };
                self.session_id = Some(session_id);
                for (tx, plugin) in [
                    (Tx::AttachVideoRoom, janus::VIDEOROOM_PLUGIN),
                    (Tx::AttachTextRoom, janus::TEXTROOM_PLUGIN),
                ] {
                    let transaction = self.transaction(tx);
                    self.send(Request::Attach {
                        transaction,
                        session_id,
                        plugin: plugin.into(),
                        opaque_id: None,
                    });
                }
            }
            Tx::AttachVideoRoom => {
                let Some(handle) = id else {
                    return self.fail("The server sent an invalid handle".into());
                };
                self.videoroom_handle = Some(handle);
                let body = VideoRoomRequest::Join {
                    room: self.cfg.info.room.0,
                    ptype: ParticipantType::Publisher,
                    id: Some(self.cfg.self_id),
                    display: Some(self.cfg.nickname.clone()),
                    pin: self.cfg.info.room_pin(),
                    streams: None,
                    private_id: None,
                    feed: None,
                }
                .to_body();
                self.plugin_message(Tx::VideoRoomJoin, handle, body, None);
            }
            Tx::AttachTextRoom => {
                let Some(handle) = id else {
                    return self.fail("The server sent an invalid handle".into());
                };
                self.textroom_handle = Some(handle);
                let body = TextRoomApiRequest::Setup.to_body();
                self.plugin_message(Tx::TextRoomSetup, handle, body, None);
            }
            Tx::Destroy => self.finish(EngineEvent::Left),
            Tx::VideoRoomJoin => {
                // Synchronous answers are unusual for join; treat as an event.
                if let Some(d) = data {
                    self.on_videoroom(&d);
                }
            }
            Tx::Claim => {
                info!("signaling session reclaimed");
                self.claiming = false;
                self.refresh_reconnecting();
            }
            Tx::AttachSubscriber => match id {
                Some(handle) => self.on_subscriber_attached(handle),
                None => warn!("the server sent an invalid subscriber handle"),
            },
            _ => {}
        }
    }

    fn on_core_error(&mut self, tx: Tx, error: janus::ErrorInfo) {
        warn!(code = error.code, ?tx, "request failed");
        match tx {
            _ if tx.is_optional() => {}
            Tx::Destroy => self.finish(EngineEvent::Left),
            Tx::Claim => self.fail("The meeting session could not be resumed".into()),
            _ if self.phase == Phase::Joining => {
                let msg = match error.code {
                    janus::error_code::PLUGIN_NOT_FOUND => {
                        "The server does not support Conclave meetings (plugin missing)".into()
                    }
                    _ => format!("The server refused to join (error {})", error.code),
                };
                self.fail(msg);
            }
            _ => self.emit(EngineEvent::Error {
                message: format!("The server reported an error ({})", error.code),
            }),
        }
    }

    fn on_videoroom(&mut self, data: &Value) {
        let event = match VideoRoomEvent::from_data(data) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "ignoring a malformed VideoRoom event");
                return;
            }
        };
        match event {
            VideoRoomEvent::Joined {
                id,
                publishers,
                description,
                ..
            } => {
                debug!(id, "joined the VideoRoom");
                self.room = RoomDescription::parse(description.as_deref());
                // Janus names rooms created without a description "Room <id>".
                if self.room.topic.as_deref() == Some(&format!("Room {}", self.cfg.info.room.0)) {
                    self.room.topic = None;
                }
                self.videoroom_joined = true;
                self.on_publishers(publishers);
                self.start_publishing();
                self.maybe_joined();
            }
            VideoRoomEvent::Publishers(list) => self.on_publishers(list),
            VideoRoomEvent::Unpublished(id) => self.on_publisher_gone(id, false),
            VideoRoomEvent::Leaving(id) => self.on_publisher_gone(id, true),
            VideoRoomEvent::Error { code, reason } => {
                warn!(code, "VideoRoom error");
                if self.phase == Phase::Joining {
                    let msg = self.room_error_message(code, &reason, false);
                    self.fail(msg);
                }
            }
            VideoRoomEvent::Destroyed(_) => self.fail("The meeting was ended".into()),
            VideoRoomEvent::Kicked(id) if id == self.cfg.self_id => {
                self.fail("You were removed from the meeting".into())
            }
            other => debug!(?other, "VideoRoom event"),
        }
    }

    fn room_error_message(&self, code: i64, reason: &str, textroom: bool) -> String {
        let room = self.cfg.info.room;
        let (no_room, unauthorized) = if textroom {
            (
                textroom::error_code::NO_SUCH_ROOM,
                textroom::error_code::UNAUTHORIZED,
            )
        } else {
            (
                videoroom::error_code::NO_SUCH_ROOM,
                videoroom::error_code::UNAUTHORIZED,
            )
        };
        if code == no_room {
            format!("No meeting with ID {room} exists on this server")
        } else if code == unauthorized
            || (reason.contains("pin") && self.cfg.info.password.is_none())
        {
            if self.cfg.info.password.is_some() {
                "Wrong meeting password".into()
            } else {
                "This meeting needs a password".into()
            }
        } else {
            let reason: String = reason.chars().take(120).collect();
            format!("The server refused to join: {reason} ({code})")
        }
    }

    fn on_textroom_api(&mut self, data: &Value, jsep: Option<Jsep>) {
        if data.get("textroom").and_then(Value::as_str) == Some("error")
            || data.get("error_code").is_some()
        {
            let code = data
                .get("error_code")
                .and_then(Value::as_i64)
                .unwrap_or_default();
            let reason = data
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            warn!(code, "TextRoom setup error");
            if self.phase == Phase::Joining {
                let msg = self.room_error_message(code, &reason, true);
                self.fail(msg);
            }
            return;
        }
        let Some(jsep) = jsep else {
            return;
        };
        if jsep.kind != JsepKind::Offer {
            warn!("ignoring a TextRoom answer: this client never offers");
            return;
        }
        if let Err(msg) = self.accept_offer(&jsep.sdp) {
            self.fail(msg);
        }
    }

    fn accept_offer(&mut self, sdp: &str) -> Result<(), String> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| format!("The server sent an invalid session description: {e}"))?;
        let mut rtc = match self.rtc.take() {
            Some(rtc) => rtc,
            None => {
                let mut rtc = Rtc::builder().build(self.now);
                let candidates = local_candidates(
                    self.cfg.local_addr,
                    &self.cfg.relayed.chat,
                    self.cfg.relay_only,
                )
                .map_err(|e| format!("No usable network address: {e}"))?;
                for c in candidates {
                    rtc.add_local_candidate(c);
                }
                rtc
            }
        };
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("Could not negotiate the chat connection: {e}"));
        let rtc = self.rtc.insert(rtc);
        let answer = answer?;
        // ICE starts its own checks only once time is given to it: without
        // this it would wait for the server's, which a relay drops until
        // we have sent something ourselves (a permission).
        if let Err(e) = rtc.handle_input(str0m::Input::Timeout(self.now)) {
            warn!(error = %e, "WebRTC timeout handling failed");
        }
        self.drain_rtc();
        let Some(handle) = self.textroom_handle else {
            return Ok(());
        };
        let jsep = Jsep {
            kind: JsepKind::Answer,
            sdp: answer.to_sdp_string(),
            restart: false,
            e2ee: false,
        };
        self.plugin_message(
            Tx::TextRoomAck,
            handle,
            TextRoomApiRequest::Ack.to_body(),
            Some(jsep),
        );
        // Our candidates are in the answer; tell the server gathering is done.
        if let Some(session_id) = self.session_id {
            let transaction = self.transaction(Tx::Trickle);
            self.send(Request::Trickle {
                transaction,
                session_id,
                handle_id: handle,
                candidate: TrickleCandidate::Completed { completed: true },
            });
        }
        Ok(())
    }

    /// The network changed: every peer connection gets our new candidates
    /// and restarts ICE (the chat's and the receiving one's by asking the
    /// server for a new offer, the sending one's with an offer of ours).
    /// The old candidates stay and fail; relays, reached from the old
    /// address, are not offered again.
    fn on_address_changed(&mut self, chat: SocketAddr, media: SocketAddr, publish: SocketAddr) {
        info!("the network changed: restarting ICE on every connection");
        self.cfg.local_addr = chat;
        self.cfg.media_addr = media;
        self.cfg.publish_addr = publish;
        self.cfg.relayed = RelayedAddrs::default();
        if self.cfg.relay_only {
            return self.emit(EngineEvent::Warning {
                message: "The network changed, and the relays were reached from the old one: \
                          leave and join again to use them."
                    .into(),
            });
        }
        self.restart_chat_ice();
        self.restart_subscriber_ice();
        self.restart_publisher_ice();
    }

    fn restart_chat_ice(&mut self) {
        let (Some(handle), Some(rtc)) = (self.textroom_handle, &mut self.rtc) else {
            return;
        };
        match local_candidates(self.cfg.local_addr, &self.cfg.relayed.chat, false) {
            Ok(candidates) => {
                for c in candidates {
                    rtc.add_local_candidate(c);
                }
            }
            Err(e) => return warn!(error = %e, "no candidate on the new network"),
        }
        self.plugin_message(
            Tx::IceRestart,
            handle,
            TextRoomApiRequest::Restart.to_body(),
            None,
        );
    }

    fn on_remote_candidate(&mut self, candidate: TrickleCandidate) {
        if let (Some(c), Some(rtc)) = (trickled_candidate(candidate), &mut self.rtc) {
            rtc.add_remote_candidate(c);
            self.drain_rtc();
        }
    }

    fn on_signal_lost(&mut self) {
        if self.phase == Phase::Leaving {
            return self.finish(EngineEvent::Left);
        }
        warn!("signaling connection lost, reconnecting");
        self.signal_up = false;
        if self.session_id.is_some() {
            self.claiming = true;
            self.refresh_reconnecting();
        }
    }

    /// Tells the user whether we are reconnecting (the signaling session
    /// being claimed back, or the media cut off), when that changes.
    pub(super) fn refresh_reconnecting(&mut self) {
        let now = self.claiming || self.sub.interrupted;
        if now != self.reconnecting_shown && self.phase != Phase::Finished {
            self.reconnecting_shown = now;
            self.emit(EngineEvent::Reconnecting { active: now });
        }
    }

    fn on_signal_restored(&mut self) {
        self.signal_up = true;
        if let Some(session_id) = self.session_id {
            let transaction = self.transaction(Tx::Claim);
            self.out.push_back(Output::Signal(
                Request::Claim {
                    transaction,
                    session_id,
                }
                .to_json(),
            ));
        }
        for text in std::mem::take(&mut self.signal_backlog) {
            self.out.push_back(Output::Signal(text));
        }
    }

    // ----- WebRTC ----------------------------------------------------------

    fn on_packet(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let relayed_to =
            |list: &[(SocketAddr, SocketAddr)]| list.iter().any(|(a, _)| *a == destination);
        if (destination == self.cfg.media_addr && destination != self.cfg.local_addr)
            || relayed_to(&self.cfg.relayed.media)
        {
            return self.on_media_packet(proto, source, destination, data);
        }
        if (destination == self.cfg.publish_addr && destination != self.cfg.local_addr)
            || relayed_to(&self.cfg.relayed.publish)
        {
            return self.on_publish_packet(proto, source, destination, data);
        }
        let Some(rtc) = &mut self.rtc else {
            return;
        };
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            debug!("dropping an unrecognised datagram");
            return;
        };
        let input = str0m::Input::Receive(self.now, receive);
        if !rtc.accepts(&input) {
            return;
        }
        if let Err(e) = rtc.handle_input(input) {
            warn!(error = %e, "WebRTC input failed");
        }
        self.drain_rtc();
    }

    fn drain_rtc(&mut self) {
        loop {
            let Some(rtc) = &mut self.rtc else {
                return;
            };
            let output = match rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    warn!(error = %e, "WebRTC failed");
                    self.rtc = None;
                    self.rtc_deadline = None;
                    return self.fail("The chat connection failed".into());
                }
            };
            match output {
                str0m::Output::Timeout(t) => {
                    self.rtc_deadline = Some(t);
                    return;
                }
                str0m::Output::Transmit(t) => self.out.push_back(Output::Transmit {
                    proto: t.proto,
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.to_vec(),
                }),
                str0m::Output::Event(e) => self.on_rtc_event(e),
            }
        }
    }

    fn on_rtc_event(&mut self, event: RtcEvent) {
        match event {
            RtcEvent::Connected => {
                debug!("WebRTC connected; opening the TextRoom data channel");
                if self.channel.is_none() {
                    if let Some(rtc) = &mut self.rtc {
                        let id = rtc.direct_api().create_data_channel(ChannelConfig {
                            label: textroom::DATA_CHANNEL_LABEL.into(),
                            ..Default::default()
                        });
                        debug!(?id, "data channel requested");
                    }
                }
            }
            RtcEvent::ChannelOpen(id, label) => {
                debug!(%label, "data channel open");
                if self.channel.is_none() {
                    self.channel = Some(id);
                    self.dc_join();
                    for text in std::mem::take(&mut self.dc_backlog) {
                        self.dc_write(&text);
                    }
                }
            }
            RtcEvent::ChannelData(d) => match std::str::from_utf8(&d.data) {
                Ok(text) => {
                    let text = text.to_owned();
                    self.on_textroom_data(&text);
                }
                Err(_) => warn!("ignoring binary data on the TextRoom channel"),
            },
            RtcEvent::ChannelClose(id)
                if Some(id) == self.channel && self.phase != Phase::Leaving =>
            {
                self.channel = None;
                self.fail("The chat channel was closed".into());
            }
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.phase != Phase::Leaving =>
            {
                self.fail("The connection to the meeting server was lost".into());
            }
            _ => {}
        }
    }

    fn dc_write(&mut self, text: &str) {
        let (Some(rtc), Some(id)) = (&mut self.rtc, self.channel) else {
            self.dc_backlog.push(text.to_owned());
            return;
        };
        match rtc.channel(id).map(|mut c| c.write(false, text.as_bytes())) {
            Some(Ok(_)) => {}
            Some(Err(e)) => warn!(error = %e, "data channel write failed"),
            None => warn!("data channel vanished"),
        }
        self.drain_rtc();
    }

    fn dc_request(&mut self, tx: DcTx, make: impl FnOnce(String) -> TextRoomRequest) {
        let transaction = format!("d{}", self.next_tx);
        self.next_tx += 1;
        self.dc_pending.insert(transaction.clone(), tx);
        let text = make(transaction).to_json();
        self.dc_write(&text);
    }

    fn dc_join(&mut self) {
        let room = self.cfg.info.room.0;
        let username = self.self_id.clone();
        let display = Some(self.cfg.nickname.clone());
        let pin = self.cfg.info.room_pin();
        self.dc_request(DcTx::Join, |transaction| TextRoomRequest::Join {
            transaction,
            room,
            username,
            display,
            pin,
        });
    }

    fn on_textroom_data(&mut self, text: &str) {
        if self.cfg.tap_textroom {
            self.emit(EngineEvent::RawTextRoom { text: text.into() });
        }
        let event = match TextRoomEvent::from_json(text) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "ignoring a malformed TextRoom message");
                return;
            }
        };
        match event {
            TextRoomEvent::Success {
                transaction,
                participants,
            } => {
                let tx = transaction.and_then(|t| self.dc_pending.remove(&t));
                if tx == Some(DcTx::Join) {
                    for p in participants.unwrap_or_default() {
                        self.add_participant(p, false);
                    }
                    self.textroom_joined = true;
                    self.maybe_joined();
                }
            }
            TextRoomEvent::Error {
                transaction,
                error_code,
                error,
            } => {
                let tx = transaction.and_then(|t| self.dc_pending.remove(&t));
                warn!(code = error_code, "TextRoom request failed");
                match tx {
                    Some(DcTx::Join) => {
                        let msg = self.room_error_message(error_code, &error, true);
                        self.fail(msg);
                    }
                    Some(DcTx::AppMessage) => {
                        debug!(code = error_code, "app message not delivered")
                    }
                    Some(DcTx::Message { to_name }) => {
                        let message = match to_name {
                            Some(name) if error_code == textroom::error_code::NO_SUCH_USER => {
                                format!("{name} has left; the message was not delivered")
                            }
                            _ => format!("The message was not delivered (error {error_code})"),
                        };
                        self.emit(EngineEvent::Error { message });
                    }
                    _ => {}
                }
            }
            TextRoomEvent::Join {
                username, display, ..
            } => {
                self.video_only.remove(&username);
                self.add_participant(
                    TextRoomParticipant {
                        username: username.clone(),
                        display,
                    },
                    true,
                );
                // Someone who joins learns that we record, and that our
                // connection is poor if it is.
                if username != self.self_id {
                    if self.quality.shown() != ConnectionQuality::Good {
                        self.send_quality_notice(Some(username.clone()));
                    }
                    if self.own_recording != RecordingState::Stopped {
                        self.send_recording_notice(Some(username));
                    }
                }
            }
            TextRoomEvent::Leave { username, .. } | TextRoomEvent::Kicked { username, .. } => {
                if username == self.self_id {
                    if self.phase != Phase::Leaving {
                        self.fail("You were removed from the meeting".into());
                    }
                } else if let Some(p) = self.roster.remove(&username) {
                    self.forget_recording(&p);
                    if self.phase == Phase::InMeeting {
                        self.emit(EngineEvent::ParticipantLeft { participant: p });
                    }
                }
            }
            TextRoomEvent::Message {
                from,
                text,
                whisper,
                ..
            } => self.on_chat(&from, &text, whisper),
            TextRoomEvent::Announcement { .. } => {
                self.emit(EngineEvent::Warning {
                    message: "The meeting server sent an announcement".into(),
                });
            }
            TextRoomEvent::Destroyed { .. } => self.fail("The meeting was ended".into()),
        }
    }

    fn add_participant(&mut self, p: TextRoomParticipant, announce: bool) {
        if p.username == self.self_id || self.roster.contains_key(&p.username) {
            return;
        }
        let nickname = p
            .display
            .map(|d| sanitize_nickname(&d))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| format!("Guest {}", p.username.chars().take(4).collect::<String>()));
        let participant = Participant {
            id: p.username.clone(),
            nickname,
            is_self: false,
        };
        self.roster.insert(p.username, participant.clone());
        if announce && self.phase == Phase::InMeeting {
            self.emit(EngineEvent::ParticipantJoined { participant });
        }
    }

    /// Adds a VideoRoom publisher that is not (yet) in the chat room.
    fn add_video_participant(&mut self, id: u64, display: Option<&str>) {
        let key = id.to_string();
        if key == self.self_id || self.roster.contains_key(&key) {
            return;
        }
        self.video_only.insert(key.clone());
        self.add_participant(
            TextRoomParticipant {
                username: key,
                display: display.map(str::to_owned),
            },
            true,
        );
    }

    /// Removes a VideoRoom-only participant who left.
    fn remove_video_participant(&mut self, id: u64) {
        let key = id.to_string();
        if self.video_only.remove(&key) {
            if let Some(participant) = self.roster.remove(&key) {
                self.forget_recording(&participant);
                if self.phase == Phase::InMeeting {
                    self.emit(EngineEvent::ParticipantLeft { participant });
                }
            }
        }
    }

    fn self_participant(&self) -> Participant {
        Participant {
            id: self.self_id.clone(),
            nickname: self.cfg.nickname.clone(),
            is_self: true,
        }
    }

    fn maybe_joined(&mut self) {
        if self.phase != Phase::Joining || !self.videoroom_joined || !self.textroom_joined {
            return;
        }
        self.phase = Phase::InMeeting;
        info!(room = self.cfg.info.room.0, "joined the meeting");
        let mut participants = vec![self.self_participant()];
        participants.extend(self.roster.values().cloned());
        self.emit(EngineEvent::Joined {
            room: self.cfg.info.room.0.to_string(),
            self_id: self.self_id.clone(),
            nickname: self.cfg.nickname.clone(),
            chat_encrypted: self.codec.is_encrypted(),
            participants,
            topic: self.room.topic.clone(),
            recording_allowed: self.room.recording_allowed,
            several_presenters: self.room.several_presenters,
        });
        for event in std::mem::take(&mut self.sub.held) {
            self.emit(event);
        }
        // Notices that arrived while we were joining.
        let recording: Vec<(String, RecordingState)> = self
            .others_recording
            .iter()
            .map(|(id, state)| (id.clone(), *state))
            .collect();
        for (id, state) in recording {
            self.emit_recording(&id, state);
        }
    }

    // ----- chat ------------------------------------------------------------

    fn on_chat(&mut self, from: &str, wire: &str, whisper: bool) {
        if from == self.self_id {
            // Our own message echoed by the server; it was shown when sent.
            return;
        }
        let to = whisper.then_some(self.self_id.as_str());
        match self.codec.open(from, to, wire) {
            Ok(opened) if opened.text.starts_with(crate::chat::APP_PREFIX) => {
                self.on_app_message(from, &opened.text);
            }
            Ok(opened) => {
                let from_name = self
                    .roster
                    .get(from)
                    .map(|p| p.nickname.clone())
                    .unwrap_or_else(|| "Unknown".into());
                let message = ChatMessage {
                    from: from.to_owned(),
                    from_name,
                    to: to.map(str::to_owned),
                    to_name: whisper.then(|| self.cfg.nickname.clone()),
                    text: opened.text,
                    encrypted: opened.encrypted,
                    at_ms: unix_ms(),
                };
                debug!(from, private = whisper, "chat message received");
                self.chat_log.push(message.clone());
                self.emit(EngineEvent::Chat { message });
            }
            Err(reason) => {
                warn!(from, %reason, "chat message dropped");
                self.emit(EngineEvent::Warning {
                    message: capitalise(&reason.to_string()),
                });
            }
        }
    }

    /// An app message from `from` (already opened).
    fn on_app_message(&mut self, from: &str, text: &str) {
        match AppMessage::parse(text) {
            Some(Ok(AppMessage::Recording { state })) => {
                let before = self.others_recording.insert(from.to_owned(), state);
                info!(from, ?state, "recording notice");
                if self.phase == Phase::InMeeting && before != Some(state) {
                    self.emit_recording(from, state);
                }
            }
            Some(Ok(AppMessage::Quality { quality })) => {
                let before = self.others_quality.insert(from.to_owned(), quality);
                debug!(from, ?quality, "connection quality notice");
                if self.phase == Phase::InMeeting
                    && before.unwrap_or_default() != quality
                    && from != self.self_id
                {
                    self.emit(EngineEvent::ConnectionQuality {
                        participant: from.to_owned(),
                        quality,
                    });
                }
            }
            Some(Err(_)) | None => debug!(from, "an app message this version does not know"),
        }
    }

    /// One statistics period's network figures (the runtime's, each
    /// second): our connection quality is judged from them, and everyone
    /// is told when the judgement changes. Returns the judgement shown.
    pub fn on_network_period(&mut self, network: &crate::api::NetworkStats) -> ConnectionQuality {
        let sample = crate::adapt::QualityJudge::judge(
            network
                .send_loss_permille
                .max(network.receive_loss_permille),
            network.rtt_ms,
            self.reconnecting_shown,
        );
        if let Some(quality) = self.quality.on_period(sample) {
            info!(?quality, "our connection quality changed");
            if self.phase == Phase::InMeeting {
                self.send_quality_notice(None);
            }
        }
        self.quality.shown()
    }

    /// Tells everyone (or one newcomer) how our connection is.
    fn send_quality_notice(&mut self, to: Option<String>) {
        let quality = self.quality.shown();
        let name = &self.cfg.nickname;
        let sentence = match quality {
            ConnectionQuality::Good => format!("{name}'s connection is good."),
            ConnectionQuality::Poor => format!("{name}'s connection is poor."),
            ConnectionQuality::Bad => format!("{name}'s connection is bad."),
        };
        self.send_app_message(&AppMessage::Quality { quality }, &sentence, to);
    }

    /// Sends an app message (sealed like chat) to everyone or to `to`,
    /// with `sentence` for clients that show it as chat.
    fn send_app_message(&mut self, message: &AppMessage, sentence: &str, to: Option<String>) {
        let text = message.to_text(sentence);
        let wire = self.codec.seal(&self.self_id, to.as_deref(), &text);
        let room = self.cfg.info.room.0;
        self.dc_request(DcTx::AppMessage, |transaction| TextRoomRequest::Message {
            transaction,
            room,
            text: wire,
            to,
            tos: None,
            ack: true,
        });
    }

    fn emit_recording(&mut self, id: &str, state: RecordingState) {
        let nickname = self
            .roster
            .get(id)
            .map(|p| p.nickname.clone())
            .unwrap_or_else(|| "Someone".into());
        self.emit(EngineEvent::Recording {
            participant: id.to_owned(),
            nickname,
            state,
        });
    }

    /// Someone left: if they recorded, that recording is over for us (and
    /// what they said of their connection is forgotten).
    fn forget_recording(&mut self, participant: &Participant) {
        self.others_quality.remove(&participant.id);
        let was = self.others_recording.remove(&participant.id);
        if was.is_some_and(|s| s != RecordingState::Stopped) && self.phase == Phase::InMeeting {
            self.emit(EngineEvent::Recording {
                participant: participant.id.clone(),
                nickname: participant.nickname.clone(),
                state: RecordingState::Stopped,
            });
        }
    }

    fn set_recording(&mut self, state: RecordingState) {
        if self.phase != Phase::InMeeting {
            return self.emit(EngineEvent::Error {
                message: "Not in a meeting".into(),
            });
        }
        if state != RecordingState::Stopped && !self.room.recording_allowed {
            return self.emit(EngineEvent::Error {
                message: "The host does not allow recording this meeting".into(),
            });
        }
        if state == self.own_recording {
            return;
        }
        self.own_recording = state;
        info!(?state, "our recording notice");
        self.send_recording_notice(None);
        let id = self.self_id.clone();
        self.emit(EngineEvent::Recording {
            participant: id,
            nickname: self.cfg.nickname.clone(),
            state,
        });
    }

    /// Tells everyone (or one newcomer) our recording state.
    fn send_recording_notice(&mut self, to: Option<String>) {
        let name = &self.cfg.nickname;
        let sentence = match self.own_recording {
            RecordingState::Recording => {
                format!("{name} is recording this meeting on their device.")
            }
            RecordingState::Paused => format!("{name} paused recording this meeting."),
            RecordingState::Stopped => format!("{name} stopped recording this meeting."),
        };
        let message = AppMessage::Recording {
            state: self.own_recording,
        };
        self.send_app_message(&message, &sentence, to);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::SendChat { to, text } => self.send_chat(to, text),
            Command::SetRecording { state } => self.set_recording(state),
            Command::Leave => self.leave(),
            // The runtime started or stopped the capture; the offer follows.
            Command::StartShare { audio, .. } => self.set_sharing(true, audio),
            Command::StopShare => self.set_sharing(false, false),
            // Device commands are applied by the runtime's media edge.
            Command::SetMuted { .. }
            | Command::SetCameraOn { .. }
            | Command::SwitchMicrophone { .. }
            | Command::SwitchCamera { .. }
            | Command::SetVideoEffects { .. }
            | Command::SwitchSpeaker { .. } => {}
        }
    }

    fn send_chat(&mut self, to: Option<String>, text: String) {
        if self.phase != Phase::InMeeting {
            return self.emit(EngineEvent::Error {
                message: "Not in a meeting".into(),
            });
        }
        if let Err(e) = ChatCodec::validate(&text) {
            return self.emit(EngineEvent::Error {
                message: capitalise(&e.to_string()),
            });
        }
        let to_name = match &to {
            Some(id) => match self.roster.get(id) {
                Some(p) => Some(p.nickname.clone()),
                None => {
                    return self.emit(EngineEvent::Error {
                        message: "That participant is no longer in the meeting".into(),
                    })
                }
            },
            None => None,
        };
        let wire = self.codec.seal(&self.self_id, to.as_deref(), &text);
        let room = self.cfg.info.room.0;
        let to_clone = to.clone();
        self.dc_request(
            DcTx::Message {
                to_name: to_name.clone(),
            },
            |transaction| TextRoomRequest::Message {
                transaction,
                room,
                text: wire,
                to: to_clone,
                tos: None,
                ack: true,
            },
        );
        debug!(private = to.is_some(), "chat message sent");
        let message = ChatMessage {
            from: self.self_id.clone(),
            from_name: self.cfg.nickname.clone(),
            to,
            to_name,
            text,
            encrypted: self.codec.is_encrypted(),
            at_ms: unix_ms(),
        };
        self.chat_log.push(message.clone());
        self.emit(EngineEvent::Chat { message });
    }

    fn leave(&mut self) {
        match self.phase {
            Phase::Leaving | Phase::Finished => return,
            Phase::Joining | Phase::InMeeting => {}
        }
        info!("leaving the meeting");
        self.phase = Phase::Leaving;
        self.leave_deadline = Some(self.now + LEAVE_TIMEOUT);
        if self.channel.is_some() && self.textroom_joined {
            let room = self.cfg.info.room.0;
            self.dc_request(DcTx::Leave, |transaction| TextRoomRequest::Leave {
                transaction,
                room,
            });
        }
        if let (Some(handle), true) = (self.videoroom_handle, self.videoroom_joined) {
            self.plugin_message(
                Tx::VideoRoomLeave,
                handle,
                VideoRoomRequest::Leave.to_body(),
                None,
            );
        }
        match self.session_id {
            Some(session_id) if self.signal_up => {
                let transaction = self.transaction(Tx::Destroy);
                self.send(Request::Destroy {
                    transaction,
                    session_id,
                });
            }
            _ => self.finish(EngineEvent::Left),
        }
    }

    // ----- time ------------------------------------------------------------

    fn on_timeout(&mut self) {
        let now = self.now;
        if let Some(t) = self.leave_deadline {
            if now >= t {
                return self.finish(EngineEvent::Left);
            }
        }
        if self.phase == Phase::Joining && now >= self.join_deadline {
            return self.fail("Joining took too long: the meeting server did not connect".into());
        }
        let expired: Vec<(String, Tx)> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| now >= *t)
            .map(|(id, (tx, _))| (id.clone(), *tx))
            .collect();
        for (id, tx) in expired {
            self.pending.remove(&id);
            warn!(?tx, "request timed out");
            match tx {
                _ if tx.is_optional() => {
                    if matches!(tx, Tx::AttachSubscriber | Tx::SubscriberJoin) {
                        self.sub_retry();
                    }
                }
                Tx::Destroy => return self.finish(EngineEvent::Left),
                _ if self.phase == Phase::Joining => {
                    return self.fail("The meeting server did not answer in time".into())
                }
                _ => self.emit(EngineEvent::Error {
                    message: "The meeting server did not answer in time".into(),
                }),
            }
        }
        if now >= self.keepalive_at {
            self.keepalive_at = now + KEEPALIVE_INTERVAL;
            if let Some(session_id) = self.session_id {
                if self.signal_up {
                    let transaction = self.transaction(Tx::Keepalive);
                    self.send(Request::Keepalive {
                        transaction,
                        session_id,
                    });
                }
            }
        }
        self.subscriber_timeout();
        self.publisher_timeout();
        if let Some(t) = self.rtc_deadline {
            if now >= t {
                if let Some(rtc) = &mut self.rtc {
                    if let Err(e) = rtc.handle_input(str0m::Input::Timeout(now)) {
                        warn!(error = %e, "WebRTC timeout handling failed");
                    }
                }
                self.drain_rtc();
            }
        }
    }

    // ----- endings ---------------------------------------------------------

    fn emit(&mut self, event: EngineEvent) {
        self.out.push_back(Output::Event(event));
    }

    /// Ends the meeting with an error: a failed join, or a lost connection.
    fn fail(&mut self, message: String) {
        if self.phase == Phase::Finished {
            return;
        }
        warn!(%message, "meeting ended with an error");
        let event = if self.phase == Phase::Joining {
            EngineEvent::JoinFailed { message }
        } else {
            EngineEvent::Disconnected { message }
        };
        if let Some(session_id) = self.session_id.filter(|_| self.signal_up) {
            // Best effort: free the server-side session at once.
            self.out.push_back(Output::Signal(
                Request::Destroy {
                    transaction: "bye".into(),
                    session_id,
                }
                .to_json(),
            ));
        }
        self.finish(event);
    }

    fn finish(&mut self, event: EngineEvent) {
        if self.phase == Phase::Finished {
            return;
        }
        if let Some(rtc) = &mut self.rtc {
            rtc.disconnect();
        }
        self.rtc = None;
        self.rtc_deadline = None;
        self.pending.clear();
        self.phase = Phase::Finished;
        self.emit(event);
    }
}

/// Trims a nickname and removes control characters.
pub fn sanitize_nickname(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NICKNAME_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
