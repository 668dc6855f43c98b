//! Receiving media: one VideoRoom subscriber handle with its own peer
//! connection (on its own UDP port), subscribed to every stream the other
//! publishers offer. The server makes the offers; we answer with `start`.
//! str0m depacketises; each frame goes out as [`Output::RemoteMedia`] for the
//! runtime to decode, and the first of each stream is reported as
//! [`EngineEvent::TrackAdded`] (and its end as
//! [`EngineEvent::TrackRemoved`]); frame counts are kept.

use std::collections::{BTreeMap, HashMap};

use conclave_protocol::janus::{self, Jsep, JsepKind, Request, TrickleCandidate};
use conclave_protocol::videoroom::{
    ParticipantType, RoomParticipant, SubscribeStream, UnsubscribeStream, VideoRoomRequest,
};
use serde_json::{json, Value};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event as RtcEvent, Rtc};
use tracing::{debug, info, warn};

use super::{Client, Output, Tx};
use crate::api::EngineEvent;

/// A stream's sender is asked for a keyframe at most this often.
const KEYFRAME_ASK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(300);

/// How long nothing at all may arrive on the receiving connection before
/// we tell the user we are waiting for the network. Media can stop for
/// good reasons (everyone muted, cameras off), but ICE's consent checks
/// go out at least every 3 s (str0m's maximum STUN retransmission time)
/// and their answers come back while the network works: a longer silence
/// is the network's.
pub(crate) const MEDIA_SILENCE: std::time::Duration = std::time::Duration::from_millis(3500);

/// The subscription side of a client.
#[derive(Default)]
pub(crate) struct Subscriber {
    /// The subscriber handle, once attached.
    handle: Option<u64>,
    /// An attach or join is in flight.
    starting: bool,
    /// Whether the server accepted the join (`attached`).
    joined: bool,
    /// An offer was answered and the server has not confirmed yet, or an
    /// update is in flight: changes wait.
    busy: bool,
    /// Publishers and their streams, as announced.
    feeds: BTreeMap<u64, RoomParticipant>,
    /// Which (feed, publisher mid) pairs are subscribed.
    subscribed: HashMap<(u64, String), ()>,
    /// Our m-line to (feed, kind).
    mids: HashMap<Mid, (u64, String)>,
    /// Packets received per (feed, kind).
    packets: BTreeMap<(u64, String), u64>,
    /// When we last asked each of our m-lines' senders for a keyframe.
    keyframe_asked: HashMap<Mid, std::time::Instant>,
    rtc: Option<Rtc>,
    /// When a datagram last came on this connection.
    last_received: Option<std::time::Instant>,
    /// An ICE restart waits for the exchange in flight to end.
    restart_wanted: bool,
    /// The protocol media last came over: ICE checks count as signs of
    /// life only on that path (checks of an idle TCP pair go on while the
    /// UDP path carrying the media is cut).
    media_proto: Option<Protocol>,
    /// Whether the media that was arriving has stopped (see
    /// [`MEDIA_SILENCE`]).
    pub(super) interrupted: bool,
    /// What is received, from str0m's statistics.
    pub(super) meter: super::LinkMeter,
    /// Media events that came before the meeting was joined.
    pub(super) held: Vec<EngineEvent>,
    pub(crate) deadline: Option<std::time::Instant>,
}

impl Subscriber {
    /// Subscribed streams their publisher has turned off (a share ended).
    fn unwanted(&self) -> Vec<(u64, String)> {
        self.subscribed
            .keys()
            .filter(|(feed, mid)| {
                self.feeds
                    .get(feed)
                    .is_some_and(|p| p.streams.iter().any(|s| s.mid == *mid && s.disabled))
            })
            .cloned()
            .collect()
    }

    fn wanted(&self) -> Vec<SubscribeStream> {
        self.feeds
            .values()
            .flat_map(|p| {
                p.streams
                    .iter()
                    .filter(|s| !s.disabled && (s.kind == "audio" || s.kind == "video"))
                    .filter(|s| !self.subscribed.contains_key(&(p.id, s.mid.clone())))
                    .map(|s| SubscribeStream {
                        feed: p.id,
                        mid: Some(s.mid.clone()),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Client {
    /// Whether the host lets several people share at once.
    pub fn several_presenters(&self) -> bool {
        self.room.several_presenters
    }

    /// The nicknames of others who share their screen now.
    pub fn presenters(&self) -> Vec<String> {
        self.sub
            .feeds
            .values()
            .filter(|p| {
                p.streams.iter().any(|s| {
                    !s.disabled
                        && s.description.as_deref() == Some(super::publisher::SCREEN_DESCRIPTION)
                })
            })
            .map(|p| self.feed_names(p.id).1)
            .collect()
    }

    /// Media packets received so far, per publisher id and kind.
    pub fn media_packets(&self) -> &BTreeMap<(u64, String), u64> {
        &self.sub.packets
    }

    /// The subscriber handle, once attached.
    pub(super) fn sub_handle(&self) -> Option<u64> {
        self.sub.handle
    }

    /// A subscription request got lost: the next announcement retries.
    pub(super) fn sub_retry(&mut self) {
        self.sub.starting = false;
        self.sub.busy = false;
        self.sub.subscribed.clear();
    }

    /// Publishers appeared or changed their streams.
    pub(super) fn on_publishers(&mut self, list: Vec<RoomParticipant>) {
        for p in list {
            if p.id == self.cfg.self_id {
                continue;
            }
            self.add_video_participant(p.id, p.display.as_deref());
            if p.streams.is_empty() {
                self.sub.feeds.remove(&p.id);
            } else {
                self.sub.feeds.insert(p.id, p);
            }
        }
        self.sync_subscription();
    }

    /// A publisher stopped publishing or left.
    pub(super) fn on_publisher_gone(&mut self, id: u64, left: bool) {
        self.sub.feeds.remove(&id);
        self.sub.subscribed.retain(|(feed, _), _| *feed != id);
        if left {
            self.remove_video_participant(id);
        }
    }

    /// Attaches, joins or updates the subscription so that it covers every
    /// published stream.
    pub(super) fn sync_subscription(&mut self) {
        let Some(session_id) = self.session_id else {
            return;
        };
        if self.sub.starting || self.sub.busy {
            return;
        }
        let wanted = self.sub.wanted();
        let unwanted = self.sub.unwanted();
        if wanted.is_empty() && unwanted.is_empty() {
            return;
        }
        match self.sub.handle {
            None | Some(_) if !self.sub.joined && wanted.is_empty() => {}
            None => {
                self.sub.starting = true;
                let transaction = self.transaction(Tx::AttachSubscriber);
                self.send(Request::Attach {
                    transaction,
                    session_id,
                    plugin: janus::VIDEOROOM_PLUGIN.into(),
                    opaque_id: None,
                });
            }
            Some(handle) if !self.sub.joined => {
                self.sub.starting = true;
                let body = VideoRoomRequest::Join {
                    room: self.cfg.info.room.0,
                    ptype: ParticipantType::Subscriber,
                    id: None,
                    display: None,
                    pin: self.cfg.info.room_pin(),
                    streams: Some(wanted.clone()),
                    private_id: None,
                    feed: None,
                }
                .to_body();
                self.mark_subscribed(&wanted);
                self.plugin_message(Tx::SubscriberJoin, handle, body, None);
            }
            Some(handle) => {
                self.sub.busy = true;
                for key in &unwanted {
                    self.sub.subscribed.remove(key);
                }
                let body = VideoRoomRequest::Update {
                    subscribe: (!wanted.is_empty()).then(|| wanted.clone()),
                    unsubscribe: (!unwanted.is_empty()).then(|| {
                        unwanted
                            .iter()
                            .map(|(feed, mid)| UnsubscribeStream {
                                feed: Some(*feed),
                                mid: Some(mid.clone()),
                                sub_mid: None,
                            })
                            .collect()
                    }),
                }
                .to_body();
                self.mark_subscribed(&wanted);
                self.plugin_message(Tx::SubscriberUpdate, handle, body, None);
            }
        }
    }

    fn mark_subscribed(&mut self, wanted: &[SubscribeStream]) {
        for w in wanted {
            if let Some(mid) = &w.mid {
                self.sub.subscribed.insert((w.feed, mid.clone()), ());
            }
        }
    }

    /// The subscriber handle was attached.
    pub(super) fn on_subscriber_attached(&mut self, handle: u64) {
        self.sub.handle = Some(handle);
        self.sub.starting = false;
        self.sync_subscription();
    }

    /// An event on the subscriber handle.
    pub(super) fn on_subscriber_event(&mut self, data: &Value, jsep: Option<Jsep>) {
        let kind = data.get("videoroom").and_then(Value::as_str).unwrap_or("");
        if data.get("error_code").is_some() {
            let code = data.get("error_code").and_then(Value::as_i64).unwrap_or(0);
            warn!(code, "subscription refused");
            self.sub.starting = false;
            self.sub.busy = false;
            // Forget what was asked; a later announcement retries.
            self.sub.subscribed.clear();
            return;
        }
        match kind {
            "attached" => {
                self.sub.joined = true;
                self.sub.starting = false;
            }
            "updated" | "updating" => {}
            "event" if data.get("started").is_some() => {
                self.sub.busy = false;
                if std::mem::take(&mut self.sub.restart_wanted) {
                    self.restart_subscriber_ice();
                } else {
                    self.sync_subscription();
                }
                return;
            }
            _ => {}
        }
        if let Some(streams) = data.get("streams").and_then(Value::as_array) {
            self.sub.mids.clear();
            for s in streams {
                if s.get("active").and_then(Value::as_bool) == Some(false) {
                    continue;
                }
                let (Some(mid), Some(feed), Some(kind)) = (
                    s.get("mid").and_then(Value::as_str),
                    s.get("feed_id").and_then(Value::as_u64),
                    s.get("type").and_then(Value::as_str),
                ) else {
                    continue;
                };
                // A publisher's shared screen is told apart by its description.
                let description = s.get("feed_description").and_then(Value::as_str);
                let kind = match (kind, description) {
                    ("video", Some(super::publisher::SCREEN_DESCRIPTION)) => "screen",
                    ("audio", Some(super::publisher::SCREEN_AUDIO_DESCRIPTION)) => "screen-audio",
                    (k, _) => k,
                };
                self.sub
                    .mids
                    .insert(Mid::from(mid), (feed, kind.to_owned()));
            }
            // Tracks that are no longer offered have ended.
            let gone: Vec<(u64, String)> = self
                .sub
                .packets
                .keys()
                .filter(|k| !self.sub.mids.values().any(|v| v == *k))
                .cloned()
                .collect();
            for (feed, kind) in gone {
                self.sub.packets.remove(&(feed, kind.clone()));
                let (participant, nickname) = self.feed_names(feed);
                self.emit(EngineEvent::TrackRemoved {
                    participant,
                    nickname,
                    kind,
                });
            }
        }
        if let Some(jsep) = jsep.filter(|j| j.kind == JsepKind::Offer) {
            self.sub.busy = true;
            if let Err(e) = self.answer_subscription(&jsep.sdp) {
                warn!(error = %e, "could not answer the media offer");
                self.emit(EngineEvent::Warning {
                    message: format!("Could not receive others' audio and video: {e}"),
                });
            }
        }
    }

    /// A publisher's participant id and nickname (empty if unknown).
    fn feed_names(&self, feed: u64) -> (String, String) {
        let participant = feed.to_string();
        let nickname = self
            .roster
            .get(&participant)
            .map(|p| p.nickname.clone())
            .unwrap_or_default();
        (participant, nickname)
    }

    fn answer_subscription(&mut self, sdp: &str) -> Result<(), String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let mut rtc = match self.sub.rtc.take() {
            Some(rtc) => rtc,
            None => {
                let mut rtc = Rtc::builder()
                    .clear_codecs()
                    // RED (RFC 2198) taken where the server offers it:
                    // str0m rebuilds a lost packet from the next one's
                    // redundant copy.
                    .enable_opus(true, true)
                    .enable_vp8(true)
                    .enable_h264(true)
                    .set_stats_interval(Some(super::STATS_INTERVAL))
                    // Audio packets are handed over as they come: the
                    // jitter buffer puts them in order and rebuilds a lost
                    // one from the next one's FEC. Holding packets back
                    // behind a gap (str0m's default, 15 packets) waits for
                    // a retransmission audio never gets and, under loss,
                    // delayed every packet after a gap by up to 150 ms.
                    .set_reordering_size_audio(0)
                    .build(self.now);
                let candidates = super::local_candidates(
                    self.cfg.media_addr,
                    &self.cfg.relayed.media,
                    self.cfg.relay_only,
                )?;
                for c in candidates {
                    rtc.add_local_candidate(c);
                }
                rtc
            }
        };
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string());
        let rtc = self.sub.rtc.insert(rtc);
        let answer = answer?;
        // Our own ICE checks start now, not when the server's arrive (see
        // `accept_offer` of the chat connection).
        if let Err(e) = rtc.handle_input(str0m::Input::Timeout(self.now)) {
            warn!(error = %e, "WebRTC timeout handling failed");
        }
        self.drain_subscriber();
        let Some(handle) = self.sub.handle else {
            return Ok(());
        };
        let jsep = Jsep {
            kind: JsepKind::Answer,
            sdp: answer.to_sdp_string(),
            restart: false,
            e2ee: false,
        };
        self.plugin_message(
            Tx::SubscriberStart,
            handle,
            json!({"request": "start"}),
            Some(jsep),
        );
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

    /// Restarts ICE on the receiving connection after the network changed:
    /// our new candidates, and the server asked for an offer with fresh
    /// credentials (Janus's `configure` with `restart`), answered as any.
    pub(super) fn restart_subscriber_ice(&mut self) {
        let (Some(handle), Some(rtc)) = (self.sub.handle, &mut self.sub.rtc) else {
            return;
        };
        match super::local_candidates(self.cfg.media_addr, &self.cfg.relayed.media, false) {
            Ok(candidates) => {
                for c in candidates {
                    rtc.add_local_candidate(c);
                }
            }
            Err(e) => return warn!(error = %e, "no candidate on the new network"),
        }
        if self.sub.busy {
            self.sub.restart_wanted = true;
            return;
        }
        self.sub.busy = true;
        self.plugin_message(
            Tx::IceRestart,
            handle,
            json!({"request": "configure", "restart": true}),
            None,
        );
    }

    /// A trickled candidate for the subscriber's peer.
    pub(super) fn on_subscriber_candidate(&mut self, candidate: TrickleCandidate) {
        if let (Some(c), Some(rtc)) = (super::trickled_candidate(candidate), &mut self.sub.rtc) {
            rtc.add_remote_candidate(c);
            self.drain_subscriber();
        }
    }

    /// A datagram on the media port.
    pub(super) fn on_media_packet(
        &mut self,
        proto: Protocol,
        source: std::net::SocketAddr,
        destination: std::net::SocketAddr,
        data: &[u8],
    ) {
        let Some(rtc) = &mut self.sub.rtc else {
            return;
        };
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            return;
        };
        if let Err(e) = rtc.handle_input(str0m::Input::Receive(self.now, receive)) {
            debug!(error = %e, "media input failed");
        }
        // STUN starts with 0 or 1; DTLS, RTP and RTCP with more.
        let is_stun = data.first().is_some_and(|b| *b < 2);
        if !is_stun {
            self.sub.media_proto = Some(proto);
        } else if self.sub.media_proto.is_some_and(|p| p != proto) {
            return self.drain_subscriber();
        }
        self.sub.last_received = Some(self.now);
        if self.sub.interrupted {
            self.sub.interrupted = false;
            info!("media is back");
            self.refresh_reconnecting();
            self.ask_all_keyframes();
        }
        self.drain_subscriber();
    }

    /// Asks every video we receive for a keyframe at once (the network is
    /// back after an outage: what arrives next cannot be decoded without
    /// one, and waiting for the decoder to notice costs a round trip).
    fn ask_all_keyframes(&mut self) {
        self.sub.keyframe_asked.clear();
        let video: Vec<Mid> = self
            .sub
            .mids
            .iter()
            .filter(|(_, (_, kind))| kind == "video" || kind == "screen")
            .map(|(mid, _)| *mid)
            .collect();
        for mid in video {
            self.ask_keyframe(mid);
        }
    }

    /// When the receiving connection would count as cut off, while it is
    /// up.
    pub(super) fn media_silence_deadline(&self) -> Option<std::time::Instant> {
        if self.sub.interrupted || self.sub.rtc.is_none() {
            return None;
        }
        self.sub.last_received.map(|t| t + MEDIA_SILENCE)
    }

    /// Notices that nothing arrives any more on the receiving connection
    /// (see [`MEDIA_SILENCE`]).
    fn check_media_silence(&mut self) {
        if self.media_silence_deadline().is_some_and(|t| self.now >= t) {
            self.sub.interrupted = true;
            info!("no media for a while: waiting for the network");
            self.refresh_reconnecting();
        }
    }

    /// Advances the subscriber's peer in time.
    pub(super) fn subscriber_timeout(&mut self) {
        self.check_media_silence();
        let now = self.now;
        if self.sub.deadline.is_some_and(|t| now >= t) {
            if let Some(rtc) = &mut self.sub.rtc {
                if let Err(e) = rtc.handle_input(str0m::Input::Timeout(now)) {
                    debug!(error = %e, "media timeout failed");
                }
            }
            self.drain_subscriber();
        }
    }

    /// Asks the sender of `tile`'s video for a keyframe (a PLI), at most
    /// every [`KEYFRAME_ASK_INTERVAL`] per stream: one lost on the way is
    /// asked for again.
    pub(super) fn request_remote_keyframe(&mut self, tile: u64) {
        let screen = tile & crate::frames::SCREEN_TILE != 0;
        let feed = tile & !crate::frames::SCREEN_TILE;
        let mid = self.sub.mids.iter().find_map(|(mid, (f, kind))| {
            let is_screen = kind.starts_with("screen");
            (*f == feed && is_screen == screen && (kind == "video" || kind == "screen"))
                .then_some(*mid)
        });
        if let Some(mid) = mid {
            self.ask_keyframe(mid);
        }
    }

    fn ask_keyframe(&mut self, mid: Mid) {
        let now = self.now;
        if self
            .sub
            .keyframe_asked
            .get(&mid)
            .is_some_and(|t| now.saturating_duration_since(*t) < KEYFRAME_ASK_INTERVAL)
        {
            return;
        }
        let Some(mut writer) = self.sub.rtc.as_mut().and_then(|rtc| rtc.writer(mid)) else {
            return;
        };
        match writer.request_keyframe(None, KeyframeRequestKind::Pli) {
            Ok(()) => {
                debug!(?mid, "asked for a keyframe");
                self.sub.keyframe_asked.insert(mid, now);
            }
            Err(e) => debug!(error = %e, ?mid, "could not ask for a keyframe"),
        }
    }

    pub(super) fn drain_subscriber(&mut self) {
        loop {
            let Some(rtc) = &mut self.sub.rtc else {
                return;
            };
            let output = match rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    warn!(error = %e, "media connection failed");
                    self.sub.rtc = None;
                    self.sub.deadline = None;
                    return;
                }
            };
            match output {
                str0m::Output::Timeout(t) => {
                    self.sub.deadline = Some(t);
                    return;
                }
                str0m::Output::Transmit(t) => self.out.push_back(Output::Transmit {
                    proto: t.proto,
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.to_vec(),
                }),
                str0m::Output::Event(RtcEvent::MediaData(d)) => {
                    let Some((feed, kind)) = self.sub.mids.get(&d.mid).cloned() else {
                        continue;
                    };
                    let codec = d.params.spec().codec;
                    let is_video = kind == "video" || kind == "screen";
                    // Packets missing before this frame: it may not decode
                    // until the next keyframe, so ask for one now.
                    if is_video && !d.contiguous {
                        let mid = d.mid;
                        self.ask_keyframe(mid);
                    }
                    // A shared screen is a tile of its own.
                    let tile = if kind.starts_with("screen") {
                        feed | crate::frames::SCREEN_TILE
                    } else {
                        feed
                    };
                    self.out.push_back(Output::RemoteMedia {
                        participant: tile,
                        video: (kind == "video" || kind == "screen").then_some(
                            if codec == Codec::H264 {
                                conclave_codec::VideoCodec::H264
                            } else {
                                conclave_codec::VideoCodec::Vp8
                            },
                        ),
                        data: d.data.to_vec(),
                        rtp_time: d.time.numer(),
                    });
                    let count = self.sub.packets.entry((feed, kind.clone())).or_default();
                    *count += 1;
                    if *count == 1 {
                        let (participant, nickname) = self.feed_names(feed);
                        let event = EngineEvent::TrackAdded {
                            participant,
                            nickname,
                            kind,
                        };
                        // Joined comes first; media can be faster than chat.
                        if self.phase == super::Phase::InMeeting {
                            self.emit(event);
                        } else {
                            self.sub.held.push(event);
                        }
                    }
                }
                str0m::Output::Event(RtcEvent::Connected) => debug!("media connection up"),
                str0m::Output::Event(RtcEvent::PeerStats(s)) => self.sub.meter.update(
                    s.timestamp,
                    s.peer_bytes_rx,
                    s.rtt,
                    s.ingress_loss_fraction,
                ),
                str0m::Output::Event(_) => {}
            }
        }
    }
}
