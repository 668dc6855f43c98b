//! The sans-IO server: sessions, handles, transactions and the Janus core
//! API. Plugins live in [`crate::videoroom`] and [`crate::textroom`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use conclave_protocol::janus::{
    ErrorInfo, IdData, Jsep, PluginData, Request, ServerMessage, TrickleCandidate, TEXTROOM_PLUGIN,
    VIDEOROOM_PLUGIN,
};
use rand::Rng;
use serde_json::Value;
use tracing::{debug, info};

use crate::config::Config;
use crate::limiter::PinLimiter;
use crate::peer::{Peer, PeerEvent, Transmit};
use crate::sfu::Sfu;
use crate::textroom::{TextRoom, TextRoomHandle};
use crate::videoroom::{VideoRoom, VideoRoomHandle};
pub use str0m::net::Protocol;

/// Janus core error codes.
pub(crate) mod code {
    pub const UNKNOWN: i64 = 490;
    pub const INVALID_JSON: i64 = 454;
    pub const INVALID_JSON_OBJECT: i64 = 455;
    pub const MISSING_REQUEST: i64 = 456;
    pub const UNKNOWN_REQUEST: i64 = 457;
    pub const SESSION_NOT_FOUND: i64 = 458;
    pub const HANDLE_NOT_FOUND: i64 = 459;
    pub const PLUGIN_NOT_FOUND: i64 = 460;
    pub const PLUGIN_ATTACH: i64 = 461;
    pub const JSEP_INVALID_SDP: i64 = 465;
    pub const INVALID_ELEMENT_TYPE: i64 = 467;
    pub const SESSION_CONFLICT: i64 = 468;
    pub const NOT_ACCEPTING_SESSIONS: i64 = 491;
    pub const TOO_LARGE: i64 = 471;
}

/// One WebSocket connection, as the runtime numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What goes into the server.
#[derive(Debug)]
pub enum Input<'a> {
    /// A WebSocket connection opened from `remote`.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its remote address (for rate limiting).
        remote: SocketAddr,
    },
    /// A text message arrived on a connection.
    Text {
        /// The connection.
        conn: ConnId,
        /// The message.
        text: &'a str,
    },
    /// A connection closed.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// A packet arrived: a datagram on the media socket, or a frame on an
    /// ICE-TCP connection.
    Packet {
        /// UDP or TCP.
        proto: Protocol,
        /// Sender.
        source: SocketAddr,
        /// Our address it arrived on.
        destination: SocketAddr,
        /// The bytes.
        contents: &'a [u8],
    },
    /// Time passed (call at [`Server::poll_timeout`]).
    Timeout,
}

/// What the server wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Send a text message on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        text: String,
    },
    /// Close a connection (it misbehaved).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Something received, for the audit file (only with [`Config::audit`]).
    Audit {
        /// `signaling` (a WebSocket text) or `datachannel` (a data-channel text).
        kind: &'static str,
        /// The connection or handle it arrived on.
        on: u64,
        /// Exactly what arrived.
        text: String,
    },
    /// Send a packet.
    Transmit {
        /// UDP, or TCP on the ICE-TCP connection from `destination`.
        proto: Protocol,
        /// Our address to send from.
        source: SocketAddr,
        /// Where to.
        destination: SocketAddr,
        /// The bytes.
        contents: Vec<u8>,
    },
}

pub(crate) struct Connection {
    pub remote: SocketAddr,
    pub sessions: BTreeSet<u64>,
    window_start: Instant,
    requests_in_window: u32,
}

pub(crate) struct Session {
    pub conn: Option<ConnId>,
    pub last_activity: Instant,
    pub handles: BTreeSet<u64>,
}

/// The plugin a handle is attached to, with its per-handle state.
pub(crate) enum Plugin {
    VideoRoom(VideoRoomHandle),
    TextRoom(TextRoomHandle),
}

pub(crate) struct Handle {
    pub session: u64,
    pub plugin: Plugin,
    pub peer: Option<Peer>,
}

/// The meeting server.
pub struct Server {
    pub(crate) config: Config,
    pub(crate) now: Instant,
    pub(crate) candidates: IceAddresses,
    pub(crate) conns: HashMap<ConnId, Connection>,
    pub(crate) sessions: HashMap<u64, Session>,
    pub(crate) handles: HashMap<u64, Handle>,
    pub(crate) videorooms: HashMap<u64, VideoRoom>,
    pub(crate) textrooms: HashMap<u64, TextRoom>,
    pub(crate) pins: PinLimiter,
    pub(crate) sfu: Sfu,
    out: VecDeque<Output>,
    transmits: Vec<Transmit>,
    last_sweep: Instant,
    /// Which handle's peer last took an ICE check from each address, and
    /// when: a client's first DTLS flight can come before our own check of
    /// that address has succeeded, and is routed by this instead of lost
    /// (its retransmission would cost a second of joining).
    checked_from: HashMap<(Protocol, SocketAddr), (u64, Instant)>,
}

/// How often idle sessions and rate-limit counters are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How long an address that sent an ICE check stays routed to its peer.
const CHECKED_FROM_FOR: Duration = Duration::from_secs(30);

/// Whether a datagram is STUN (RFC 7983: its first byte is 0..=3).
fn is_stun(contents: &[u8]) -> bool {
    contents.first().is_some_and(|b| *b < 4)
}

impl Server {
    /// A server whose peers offer `candidates` (the media socket's address,
    /// and a public address mapped to it, if any) as ICE candidates.
    pub fn new(config: Config, candidates: impl Into<IceAddresses>, now: Instant) -> Self {
        let candidates = candidates.into();
        Server {
            pins: PinLimiter::new(config.pin.clone()),
            config,
            now,
            candidates,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            handles: HashMap::new(),
            videorooms: HashMap::new(),
            textrooms: HashMap::new(),
            sfu: Sfu::default(),
            out: VecDeque::new(),
            transmits: Vec::new(),
            last_sweep: now,
            checked_from: HashMap::new(),
        }
    }

    /// Feeds one input at time `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = now.max(self.now);
        match input {
            Input::Connected { conn, remote } => {
                self.conns.insert(
                    conn,
                    Connection {
                        remote,
                        sessions: BTreeSet::new(),
                        window_start: now,
                        requests_in_window: 0,
                    },
                );
            }
            Input::Text { conn, text } => self.on_text(conn, text),
            Input::Disconnected { conn } => self.on_disconnected(conn),
            Input::Packet {
                proto,
                source,
                destination,
                contents,
            } => self.on_packet(proto, source, destination, contents),
            Input::Timeout => self.on_timeout(),
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        if !self.transmits.is_empty() {
            self.out
                .extend(self.transmits.drain(..).map(|t| Output::Transmit {
                    proto: t.proto,
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents,
                }));
        }
        self.out.pop_front()
    }

    /// When [`Input::Timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let sweep = self.last_sweep + SWEEP_INTERVAL;
        self.handles
            .values()
            .filter_map(|h| h.peer.as_ref().and_then(Peer::next_timeout))
            .fold(sweep, Instant::min)
    }

    /// Number of live sessions (for tests and metrics).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    // ----- connections and requests ---------------------------------------

    fn on_text(&mut self, conn: ConnId, text: &str) {
        self.audit("signaling", conn.0, text);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // A flood of requests closes the connection.
        if self.now.saturating_duration_since(c.window_start) >= Duration::from_secs(1) {
            c.window_start = self.now;
            c.requests_in_window = 0;
        }
        c.requests_in_window += 1;
        if c.requests_in_window > self.config.limits.max_requests_per_second {
            info!(conn = conn.0, "closing a connection that floods requests");
            self.out.push_back(Output::Close { conn });
            self.on_disconnected(conn);
            return;
        }
        if text.len() > self.config.limits.max_message_bytes {
            self.send_error(conn, None, None, code::TOO_LARGE, "Message too large");
            return;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                self.send_error(
                    conn,
                    None,
                    None,
                    code::INVALID_JSON,
                    "JSON error: invalid JSON",
                );
                return;
            }
        };
        let Some(obj) = value.as_object() else {
            self.send_error(
                conn,
                None,
                None,
                code::INVALID_JSON_OBJECT,
                "JSON error: not an object",
            );
            return;
        };
        let transaction = obj
            .get("transaction")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(kind) = obj.get("janus").and_then(Value::as_str) else {
            self.send_error(
                conn,
                transaction,
                None,
                code::MISSING_REQUEST,
                "Missing mandatory element (janus)",
            );
            return;
        };
        let Some(transaction) = transaction else {
            self.send_error(
                conn,
                None,
                None,
                code::MISSING_REQUEST,
                "Missing mandatory element (transaction)",
            );
            return;
        };
        // Janus's own requests we answer without a typed body.
        match kind {
            "info" => {
                let info = serde_json::json!({
                    "janus": "server_info",
                    "transaction": transaction,
                    "name": "Conclave meeting server",
                    "version": 1,
                    "version_string": env!("CARGO_PKG_VERSION"),
                    "plugins": {
                        VIDEOROOM_PLUGIN: {"name": "VideoRoom"},
                        TEXTROOM_PLUGIN: {"name": "TextRoom"},
                    },
                });
                self.out.push_back(Output::Send {
                    conn,
                    text: info.to_string(),
                });
                return;
            }
            "ping" => {
                let pong = serde_json::json!({"janus": "pong", "transaction": transaction});
                self.out.push_back(Output::Send {
                    conn,
                    text: pong.to_string(),
                });
                return;
            }
            _ => {}
        }
        let request = match serde_json::from_value::<Request>(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                let known = [
                    "create",
                    "keepalive",
                    "claim",
                    "destroy",
                    "attach",
                    "detach",
                    "hangup",
                    "message",
                    "trickle",
                ];
                let session_id = obj.get("session_id").and_then(Value::as_u64);
                if known.contains(&kind) {
                    debug!(kind, error = %conclave_protocol::redact_values(&e.to_string()), "malformed request");
                    self.send_error(
                        conn,
                        Some(transaction),
                        session_id,
                        code::INVALID_ELEMENT_TYPE,
                        "Invalid or missing element",
                    );
                } else {
                    self.send_error(
                        conn,
                        Some(transaction),
                        session_id,
                        code::UNKNOWN_REQUEST,
                        "Unknown request",
                    );
                }
                return;
            }
        };
        self.on_request(conn, request);
        self.flush_peers();
    }

    fn on_request(&mut self, conn: ConnId, request: Request) {
        match request {
            Request::Create { transaction } => self.on_create(conn, transaction),
            Request::Keepalive {
                transaction,
                session_id,
            } => {
                if self.touch_session(conn, &transaction, session_id) {
                    self.send(
                        conn,
                        &ServerMessage::Ack {
                            transaction: Some(transaction),
                            session_id: Some(session_id),
                        },
                    );
                }
            }
            Request::Claim {
                transaction,
                session_id,
            } => self.on_claim(conn, transaction, session_id),
            Request::Destroy {
                transaction,
                session_id,
            } => {
                if self.touch_session(conn, &transaction, session_id) {
                    self.destroy_session(session_id);
                    self.success(conn, transaction, Some(session_id), None);
                }
            }
            Request::Attach {
                transaction,
                session_id,
                plugin,
                ..
            } => self.on_attach(conn, transaction, session_id, &plugin),
            Request::Detach {
                transaction,
                session_id,
                handle_id,
            } => {
                if self.touch_handle(conn, &transaction, session_id, handle_id) {
                    self.detach_handle(handle_id);
                    self.success(conn, transaction, Some(session_id), None);
                    self.send(
                        conn,
                        &ServerMessage::Detached {
                            session_id: Some(session_id),
                            sender: handle_id,
                        },
                    );
                }
            }
            Request::Hangup {
                transaction,
                session_id,
                handle_id,
            } => {
                if self.touch_handle(conn, &transaction, session_id, handle_id) {
                    self.success(conn, transaction, Some(session_id), None);
                    self.hangup_handle(handle_id, "Janus API");
                }
            }
            Request::Message {
                transaction,
                session_id,
                handle_id,
                body,
                jsep,
            } => {
                if self.touch_handle(conn, &transaction, session_id, handle_id) {
                    self.on_message(conn, transaction, session_id, handle_id, body, jsep);
                }
            }
            Request::Trickle {
                transaction,
                session_id,
                handle_id,
                candidate,
            } => {
                if self.touch_handle(conn, &transaction, session_id, handle_id) {
                    if let (Some(peer), TrickleCandidate::Candidate { candidate, .. }) = (
                        self.handles
                            .get_mut(&handle_id)
                            .and_then(|h| h.peer.as_mut()),
                        &candidate,
                    ) {
                        peer.add_remote_candidate(candidate);
                    }
                    self.send(
                        conn,
                        &ServerMessage::Ack {
                            transaction: Some(transaction),
                            session_id: Some(session_id),
                        },
                    );
                }
            }
        }
    }

    fn on_create(&mut self, conn: ConnId, transaction: String) {
        let limits = &self.config.limits;
        let per_conn = self
            .conns
            .get(&conn)
            .map(|c| c.sessions.len())
            .unwrap_or_default();
        if self.sessions.len() >= limits.max_sessions
            || per_conn >= limits.max_sessions_per_connection
        {
            self.send_error(
                conn,
                Some(transaction),
                None,
                code::NOT_ACCEPTING_SESSIONS,
                "Too many sessions",
            );
            return;
        }
        let id = self.fresh_id(|s, id| s.sessions.contains_key(&id));
        self.sessions.insert(
            id,
            Session {
                conn: Some(conn),
                last_activity: self.now,
                handles: BTreeSet::new(),
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sessions.insert(id);
        }
        debug!(session = id, "session created");
        self.success(conn, transaction, None, Some(IdData { id }));
    }

    fn on_claim(&mut self, conn: ConnId, transaction: String, session_id: u64) {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            self.send_error(
                conn,
                Some(transaction),
                Some(session_id),
                code::SESSION_NOT_FOUND,
                "No such session",
            );
            return;
        };
        if let Some(old) = session.conn.replace(conn) {
            if old != conn {
                if let Some(c) = self.conns.get_mut(&old) {
                    c.sessions.remove(&session_id);
                }
            }
        }
        session.last_activity = self.now;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sessions.insert(session_id);
        }
        self.success(conn, transaction, Some(session_id), None);
    }

    fn on_attach(&mut self, conn: ConnId, transaction: String, session_id: u64, plugin: &str) {
        if !self.touch_session(conn, &transaction, session_id) {
            return;
        }
        let handles = self
            .sessions
            .get(&session_id)
            .map(|s| s.handles.len())
            .unwrap_or_default();
        if handles >= self.config.limits.max_handles_per_session {
            self.send_error(
                conn,
                Some(transaction),
                Some(session_id),
                code::PLUGIN_ATTACH,
                "Too many handles",
            );
            return;
        }
        let plugin = match plugin {
            VIDEOROOM_PLUGIN => Plugin::VideoRoom(VideoRoomHandle::default()),
            TEXTROOM_PLUGIN => Plugin::TextRoom(TextRoomHandle::default()),
            _ => {
                self.send_error(
                    conn,
                    Some(transaction),
                    Some(session_id),
                    code::PLUGIN_NOT_FOUND,
                    "No such plugin",
                );
                return;
            }
        };
        let id = self.fresh_id(|s, id| s.handles.contains_key(&id));
        self.handles.insert(
            id,
            Handle {
                session: session_id,
                plugin,
                peer: None,
            },
        );
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.handles.insert(id);
        }
        self.success(conn, transaction, Some(session_id), Some(IdData { id }));
    }

    fn on_message(
        &mut self,
        conn: ConnId,
        transaction: String,
        session_id: u64,
        handle_id: u64,
        body: Value,
        jsep: Option<Jsep>,
    ) {
        let is_videoroom = matches!(
            self.handles.get(&handle_id).map(|h| &h.plugin),
            Some(Plugin::VideoRoom(_))
        );
        let ctx = RequestContext {
            conn,
            transaction,
            session_id,
            handle_id,
        };
        if is_videoroom {
            self.videoroom_message(ctx, body, jsep);
        } else {
            self.textroom_message(ctx, body, jsep);
        }
    }

    fn on_disconnected(&mut self, conn: ConnId) {
        // Sessions outlive their connection until they time out, so a client
        // can reconnect and `claim` them, as with Janus.
        if let Some(c) = self.conns.remove(&conn) {
            for id in c.sessions {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if s.conn == Some(conn) {
                        s.conn = None;
                    }
                }
            }
        }
    }

    // ----- sessions and handles ---------------------------------------------

    /// Checks the session exists and marks it active; answers an error otherwise.
    fn touch_session(&mut self, conn: ConnId, transaction: &str, session_id: u64) -> bool {
        match self.sessions.get_mut(&session_id) {
            Some(s) if s.conn == Some(conn) => {
                s.last_activity = self.now;
                true
            }
            Some(_) => {
                self.send_error(
                    conn,
                    Some(transaction.to_owned()),
                    Some(session_id),
                    code::SESSION_CONFLICT,
                    "Session belongs to another connection",
                );
                false
            }
            None => {
                self.send_error(
                    conn,
                    Some(transaction.to_owned()),
                    Some(session_id),
                    code::SESSION_NOT_FOUND,
                    "No such session",
                );
                false
            }
        }
    }

    fn touch_handle(
        &mut self,
        conn: ConnId,
        transaction: &str,
        session_id: u64,
        handle_id: u64,
    ) -> bool {
        if !self.touch_session(conn, transaction, session_id) {
            return false;
        }
        if self
            .handles
            .get(&handle_id)
            .is_some_and(|h| h.session == session_id)
        {
            return true;
        }
        self.send_error(
            conn,
            Some(transaction.to_owned()),
            Some(session_id),
            code::HANDLE_NOT_FOUND,
            "No such handle",
        );
        false
    }

    pub(crate) fn destroy_session(&mut self, session_id: u64) {
        let Some(session) = self.sessions.remove(&session_id) else {
            return;
        };
        for handle in session.handles {
            self.detach_handle(handle);
        }
        if let Some(c) = session.conn.and_then(|c| self.conns.get_mut(&c)) {
            c.sessions.remove(&session_id);
        }
        debug!(session = session_id, "session destroyed");
    }

    pub(crate) fn detach_handle(&mut self, handle_id: u64) {
        self.hangup_handle(handle_id, "Detach");
        self.videoroom_handle_gone(handle_id);
        self.textroom_handle_gone(handle_id);
        if let Some(h) = self.handles.remove(&handle_id) {
            if let Some(s) = self.sessions.get_mut(&h.session) {
                s.handles.remove(&handle_id);
            }
        }
    }

    /// Closes the handle's peer connection and tells its session.
    pub(crate) fn hangup_handle(&mut self, handle_id: u64, reason: &str) {
        let Some(handle) = self.handles.get_mut(&handle_id) else {
            return;
        };
        let Some(mut peer) = handle.peer.take() else {
            return;
        };
        peer.close();
        let session = handle.session;
        self.videoroom_peer_gone(handle_id);
        self.textroom_peer_gone(handle_id);
        self.notify_session(
            session,
            &ServerMessage::Hangup {
                session_id: Some(session),
                sender: handle_id,
                reason: reason.to_owned(),
            },
        );
    }

    // ----- media ------------------------------------------------------------

    fn on_packet(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        let now = self.now;
        let owner = self.handles.iter_mut().find_map(|(id, h)| {
            let peer = h.peer.as_mut()?;
            peer.try_receive(now, proto, source, destination, contents)
                .then_some(*id)
        });
        let owner = match owner {
            Some(id) => {
                if is_stun(contents) {
                    self.checked_from.insert((proto, source), (id, now));
                }
                Some(id)
            }
            // Not yet a path of ours, but an address that was just checked
            // for one of our peers: its DTLS (say) goes there.
            None => self
                .checked_from
                .get(&(proto, source))
                .filter(|(_, at)| now.saturating_duration_since(*at) < CHECKED_FROM_FOR)
                .map(|(id, _)| *id)
                .filter(|id| {
                    self.handles
                        .get_mut(id)
                        .and_then(|h| h.peer.as_mut())
                        .is_some_and(|p| {
                            p.receive_checked(now, proto, source, destination, contents)
                        })
                }),
        };
        if let Some(id) = owner {
            self.drain_peer(id);
        }
    }

    fn on_timeout(&mut self) {
        let now = self.now;
        let due: Vec<u64> = self
            .handles
            .iter()
            .filter(|(_, h)| {
                h.peer
                    .as_ref()
                    .and_then(Peer::next_timeout)
                    .is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(peer) = self.handles.get_mut(&id).and_then(|h| h.peer.as_mut()) {
                peer.handle_timeout(now);
            }
            self.drain_peer(id);
        }
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_INTERVAL {
            self.last_sweep = now;
            self.sweep_sessions();
            self.pins.prune(now);
            let handles = &self.handles;
            self.checked_from.retain(|_, (id, at)| {
                now.saturating_duration_since(*at) < CHECKED_FROM_FOR && handles.contains_key(id)
            });
        }
    }

    fn sweep_sessions(&mut self) {
        let timeout = self.config.limits.session_timeout();
        let now = self.now;
        let expired: Vec<(u64, Option<ConnId>)> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_activity) >= timeout)
            .map(|(id, s)| (*id, s.conn))
            .collect();
        for (id, conn) in expired {
            info!(session = id, "session timed out");
            if let Some(conn) = conn {
                self.send(
                    conn,
                    &ServerMessage::Timeout {
                        session_id: Some(id),
                    },
                );
            }
            self.destroy_session(id);
        }
    }

    /// Drains every peer (after requests that may have created or changed one).
    fn flush_peers(&mut self) {
        let ids: Vec<u64> = self
            .handles
            .iter()
            .filter(|(_, h)| h.peer.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drain_peer(id);
        }
    }

    pub(crate) fn drain_peer(&mut self, handle_id: u64) {
        let mut events = Vec::new();
        let Some(peer) = self
            .handles
            .get_mut(&handle_id)
            .and_then(|h| h.peer.as_mut())
        else {
            return;
        };
        peer.drain(&mut self.transmits, &mut events);
        for event in events {
            match event {
                PeerEvent::Connected => {
                    self.request_subscription_keyframes(handle_id);
                    if let Some(session) = self.handles.get(&handle_id).map(|h| h.session) {
                        self.notify_session(
                            session,
                            &ServerMessage::Webrtcup {
                                session_id: Some(session),
                                sender: handle_id,
                            },
                        );
                    }
                }
                PeerEvent::ChannelText(channel, text) => {
                    self.textroom_data(handle_id, channel, &text)
                }
                PeerEvent::Rtp(mid, packet) => self.forward_rtp(handle_id, mid, packet),
                PeerEvent::KeyframeRequest(mid, kind) => {
                    self.on_keyframe_request(handle_id, mid, kind)
                }
                PeerEvent::Closed => self.hangup_handle(handle_id, "ICE failed"),
            }
        }
    }

    // ----- output helpers -----------------------------------------------------

    /// Records an input for the audit file, when auditing is on.
    pub(crate) fn audit(&mut self, kind: &'static str, on: u64, text: &str) {
        if self.config.audit {
            self.out.push_back(Output::Audit {
                kind,
                on,
                text: text.to_owned(),
            });
        }
    }

    /// Answers a core request with `success`.
    fn success(
        &mut self,
        conn: ConnId,
        transaction: String,
        session_id: Option<u64>,
        data: Option<IdData>,
    ) {
        self.send(
            conn,
            &ServerMessage::Success {
                transaction: Some(transaction),
                session_id,
                sender: None,
                data,
                plugindata: None,
            },
        );
    }

    pub(crate) fn send(&mut self, conn: ConnId, message: &ServerMessage) {
        match serde_json::to_string(message) {
            Ok(text) => self.out.push_back(Output::Send { conn, text }),
            Err(e) => debug!(error = %e, "could not serialise a message"),
        }
    }

    /// Sends to the session's current connection, if it has one.
    pub(crate) fn notify_session(&mut self, session_id: u64, message: &ServerMessage) {
        if let Some(conn) = self.sessions.get(&session_id).and_then(|s| s.conn) {
            self.send(conn, message);
        }
    }

    pub(crate) fn send_error(
        &mut self,
        conn: ConnId,
        transaction: Option<String>,
        session_id: Option<u64>,
        code: i64,
        reason: &str,
    ) {
        self.send(
            conn,
            &ServerMessage::Error {
                transaction,
                session_id,
                error: ErrorInfo {
                    code,
                    reason: reason.to_owned(),
                },
            },
        );
    }

    /// Sends a plugin event (asynchronous answer or notification) to a handle.
    pub(crate) fn plugin_event(
        &mut self,
        handle_id: u64,
        transaction: Option<String>,
        plugin: &str,
        data: Value,
        jsep: Option<Jsep>,
    ) {
        let Some(session) = self.handles.get(&handle_id).map(|h| h.session) else {
            return;
        };
        self.notify_session(
            session,
            &ServerMessage::Event {
                transaction,
                session_id: Some(session),
                sender: handle_id,
                plugindata: PluginData {
                    plugin: plugin.to_owned(),
                    data,
                },
                jsep,
            },
        );
    }

    /// Answers a synchronous plugin request.
    pub(crate) fn plugin_success(&mut self, ctx: &RequestContext, plugin: &str, data: Value) {
        self.send(
            ctx.conn,
            &ServerMessage::Success {
                transaction: Some(ctx.transaction.clone()),
                session_id: Some(ctx.session_id),
                sender: Some(ctx.handle_id),
                data: None,
                plugindata: Some(PluginData {
                    plugin: plugin.to_owned(),
                    data,
                }),
            },
        );
    }

    /// Acknowledges an asynchronous plugin request.
    pub(crate) fn ack(&mut self, ctx: &RequestContext) {
        self.send(
            ctx.conn,
            &ServerMessage::Ack {
                transaction: Some(ctx.transaction.clone()),
                session_id: Some(ctx.session_id),
            },
        );
    }

    /// The remote IP address of a connection (for PIN rate limiting).
    pub(crate) fn remote_ip(&self, conn: ConnId) -> IpAddr {
        self.conns
            .get(&conn)
            .map(|c| c.remote.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// A random id in JavaScript's safe integer range, unused so far.
    pub(crate) fn fresh_id(&self, taken: impl Fn(&Self, u64) -> bool) -> u64 {
        let mut rng = rand::thread_rng();
        loop {
            let id = rng.gen_range(1..(1u64 << 53));
            if !taken(self, id) {
                return id;
            }
        }
    }

    /// Creates a peer for a handle, replacing any previous one.
    pub(crate) fn set_peer(&mut self, handle_id: u64, peer: Peer) {
        if let Some(h) = self.handles.get_mut(&handle_id) {
            if let Some(mut old) = h.peer.replace(peer) {
                old.close();
            }
        }
    }

    /// Whether an SDP error should be reported with [`code::JSEP_INVALID_SDP`].
    pub(crate) fn invalid_sdp(&mut self, ctx: &RequestContext, reason: &str) {
        self.send_error(
            ctx.conn,
            Some(ctx.transaction.clone()),
            Some(ctx.session_id),
            code::JSEP_INVALID_SDP,
            reason,
        );
    }

    /// A core error for an unknown failure.
    #[allow(dead_code)]
    pub(crate) fn unknown_error(&mut self, ctx: &RequestContext, reason: &str) {
        self.send_error(
            ctx.conn,
            Some(ctx.transaction.clone()),
            Some(ctx.session_id),
            code::UNKNOWN,
            reason,
        );
    }
}

/// The addresses peers offer as ICE candidates.
#[derive(Debug, Clone, Default)]
pub struct IceAddresses {
    /// Local sockets (host candidates).
    pub host: Vec<SocketAddr>,
    /// Public addresses that map to a local socket behind a 1:1 NAT
    /// (server-reflexive candidates): `(public, local base)`.
    pub reflexive: Vec<(SocketAddr, SocketAddr)>,
    /// Listening TCP sockets that take ICE-TCP (passive candidates).
    pub tcp: Vec<SocketAddr>,
}

impl From<Vec<SocketAddr>> for IceAddresses {
    fn from(host: Vec<SocketAddr>) -> Self {
        IceAddresses {
            host,
            ..IceAddresses::default()
        }
    }
}

/// Where a plugin request came from, to address its answers.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub conn: ConnId,
    pub transaction: String,
    pub session_id: u64,
    pub handle_id: u64,
}
