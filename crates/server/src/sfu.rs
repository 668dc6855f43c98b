//! The selective forwarding unit: VideoRoom subscriptions and the routing
//! of publishers' RTP to subscribers.
//!
//! A subscriber handle has one peer connection whose send-only m-lines each
//! carry one publisher stream (a Janus "multistream" subscription). The
//! server makes the offers; `start` carries the answer; `update` adds and
//! removes streams with a new offer (postponed while an answer is due, as
//! Janus does). Packets are forwarded as they are, with only the payload
//! type, sequence number and timestamp rewritten per m-line; keyframe
//! requests go back to the publisher; NACKs are answered from str0m's
//! resend cache. Audio levels give talking events. Nothing is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_protocol::janus::{Jsep, JsepKind, VIDEOROOM_PLUGIN};
use conclave_protocol::videoroom::{SubscribeStream, UnsubscribeStream};
use rand::Rng;
use serde_json::{json, Value};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use tracing::debug;

use crate::core::{Plugin, Server};
use crate::peer::Peer;
use crate::rewrite::Rewriter;

/// At most one keyframe request per publisher stream in this interval.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Where a subscriber m-line gets its media.
#[derive(Debug, Clone)]
pub(crate) struct StreamSource {
    /// The publisher's id in the room.
    pub feed: u64,
    /// The publisher's m-line.
    pub feed_mid: String,
    /// The publisher's display name when subscribed.
    pub display: Option<String>,
    /// The publisher's codec on that m-line.
    pub codec: Option<String>,
    /// What the publisher says the stream is (`screen`...).
    pub description: Option<String>,
}

/// One m-line of a subscription.
#[derive(Debug)]
pub(crate) struct SubStream {
    /// The m-line, once offered.
    pub mid: Option<Mid>,
    /// Audio or video.
    pub kind: MediaKind,
    /// The publisher stream it carries; `None` once that went away.
    pub source: Option<StreamSource>,
    /// Sequence-number and timestamp continuity across sources.
    pub rewriter: Rewriter,
    /// The last payload type mapping (publisher's to ours).
    /// The last payload type mapping: publisher, its payload type, ours to
    /// this subscriber, and the RED payload type the subscriber takes for
    /// it (when the publisher's packets are RED).
    pt_cache: Option<(u64, Pt, Pt, Option<Pt>)>,
}

/// A subscriber handle's subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The room.
    pub room: u64,
    /// Its m-lines, in m-line order.
    pub streams: Vec<SubStream>,
    /// Whether media delivery is paused.
    pub paused: bool,
    /// A renegotiation waits for the answer to the previous offer.
    pub pending_offer: bool,
    /// m-lines to make inactive in the next offer.
    deactivate: Vec<Mid>,
    /// The msid stream id of the offers.
    stream_id: String,
}

/// The routing table and per-stream meters, rebuilt as subscriptions change.
#[derive(Debug, Default)]
pub(crate) struct Sfu {
    /// (publisher handle, publisher m-line) to (subscriber handle, m-line index).
    routes: HashMap<(u64, Mid), Vec<(u64, usize)>>,
    /// Talking detection per publisher audio stream.
    talking: HashMap<(u64, Mid), TalkingMeter>,
    /// When a keyframe was last requested per publisher stream.
    last_keyframe_request: HashMap<(u64, Mid), Instant>,
}

/// Janus's talking detection: the average audio level (dBov, 0 loudest,
/// 127 silent) over a number of packets, compared with a threshold.
#[derive(Debug, Default, Clone)]
pub(crate) struct TalkingMeter {
    sum: u32,
    count: u32,
    talking: bool,
}

impl TalkingMeter {
    /// Packets averaged per decision (Janus's `audio_active_packets`).
    pub const PACKETS: u32 = 100;
    /// Average level below which someone talks (Janus's `audio_level_average`).
    pub const THRESHOLD: f32 = 25.0;

    /// Adds one packet's level; returns the new state and the average when
    /// the state changed.
    pub fn add(&mut self, level: u8) -> Option<(bool, f32)> {
        self.sum += u32::from(level.min(127));
        self.count += 1;
        if self.count < Self::PACKETS {
            return None;
        }
        let average = self.sum as f32 / self.count as f32;
        self.sum = 0;
        self.count = 0;
        let talking = average < Self::THRESHOLD;
        if talking == self.talking {
            return None;
        }
        self.talking = talking;
        Some((talking, average))
    }
}

fn media_kind(kind: &str) -> Option<MediaKind> {
    match kind {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        _ => None,
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// Why a subscription request failed: a VideoRoom error code and text.
pub(crate) type SubscribeError = (i64, String);

impl Subscription {
    /// The `streams` summary of `attached` and `updated` events.
    pub fn summary(&self) -> Value {
        let streams: Vec<Value> = self
            .streams
            .iter()
            .enumerate()
            .map(|(mindex, s)| {
                let mut v = json!({
                    "type": kind_name(s.kind),
                    "active": s.source.is_some(),
                    "mindex": mindex,
                    "mid": s.mid.map(|m| m.to_string()).unwrap_or_default(),
                    "ready": false,
                    "send": s.source.is_some(),
                });
                if let Some(src) = &s.source {
                    v["feed_id"] = json!(src.feed);
                    v["feed_mid"] = json!(src.feed_mid);
                    if let Some(d) = &src.display {
                        v["feed_display"] = json!(d);
                    }
                    if let Some(c) = &src.codec {
                        v["codec"] = json!(c);
                    }
                    if let Some(d) = &src.description {
                        v["feed_description"] = json!(d);
                    }
                }
                v
            })
            .collect();
        json!(streams)
    }
}

impl Server {
    /// Resolves `streams` of a join or subscribe to publisher streams.
    pub(crate) fn resolve_sources(
        &self,
        room: u64,
        wanted: &[SubscribeStream],
    ) -> Result<Vec<(MediaKind, StreamSource)>, SubscribeError> {
        let r = self
            .videorooms
            .get(&room)
            .ok_or((426, format!("No such room ({room})")))?;
        let mut out = Vec::new();
        for w in wanted {
            let publisher = r
                .publisher(w.feed)
                .filter(|p| !p.streams.is_empty())
                .ok_or((428, format!("No such feed ({})", w.feed)))?;
            let mut found = false;
            for s in &publisher.streams {
                if w.mid.as_ref().is_some_and(|m| *m != s.mid) {
                    continue;
                }
                let Some(kind) = media_kind(&s.kind) else {
                    continue;
                };
                // A stream the publisher turned off is not subscribed to.
                if s.disabled {
                    found |= w.mid.is_some();
                    continue;
                }
                found = true;
                out.push((
                    kind,
                    StreamSource {
                        feed: w.feed,
                        feed_mid: s.mid.clone(),
                        display: publisher.display.clone(),
                        codec: s.codec.clone(),
                        description: s.description.clone(),
                    },
                ));
            }
            if !found {
                if let Some(mid) = &w.mid {
                    return Err((428, format!("No such mid '{mid}' in feed {}", w.feed)));
                }
            }
        }
        if out.is_empty() {
            return Err((437, "Can't offer an SDP with no stream".into()));
        }
        Ok(out)
    }

    /// A new subscription for a handle: makes the peer and its offer.
    pub(crate) fn subscribe(
        &mut self,
        handle_id: u64,
        room: u64,
        sources: Vec<(MediaKind, StreamSource)>,
    ) -> Result<(Subscription, Jsep), SubscribeError> {
        let stream_id = format!("conclave{handle_id}");
        let kinds: Vec<MediaKind> = sources.iter().map(|(k, _)| *k).collect();
        let (peer, sdp, mids) = Peer::offer_media(self.now, &self.candidates, &kinds, &stream_id)
            .map_err(|e| (437, e.to_string()))?;
        let mut rng = rand::thread_rng();
        let streams = sources
            .into_iter()
            .zip(mids)
            .map(|((kind, source), mid)| SubStream {
                mid: Some(mid),
                kind,
                source: Some(source),
                rewriter: Rewriter::new(rng.gen()),
                pt_cache: None,
            })
            .collect();
        self.set_peer(handle_id, peer);
        Ok((
            Subscription {
                room,
                streams,
                paused: false,
                pending_offer: false,
                deactivate: Vec::new(),
                stream_id,
            },
            offer(sdp),
        ))
    }

    fn subscription_mut(&mut self, handle_id: u64) -> Option<&mut Subscription> {
        match self.handles.get_mut(&handle_id).map(|h| &mut h.plugin) {
            Some(Plugin::VideoRoom(v)) => v.subscription.as_mut(),
            _ => None,
        }
    }

    /// Applies an `update` (or `subscribe`/`unsubscribe`) to a subscription.
    /// Returns whether anything changed.
    pub(crate) fn update_subscription(
        &mut self,
        handle_id: u64,
        add: Vec<(MediaKind, StreamSource)>,
        remove: &[UnsubscribeStream],
    ) -> bool {
        let mut rng = rand::thread_rng();
        let Some(sub) = self.subscription_mut(handle_id) else {
            return false;
        };
        let mut changed = false;
        for s in sub.streams.iter_mut() {
            let hit = remove.iter().any(|u| {
                let Some(src) = &s.source else { return false };
                match (&u.sub_mid, u.feed, &u.mid) {
                    (Some(sub_mid), _, _) => s.mid.is_some_and(|m| m.to_string() == *sub_mid),
                    (None, Some(feed), mid) => {
                        src.feed == feed && mid.as_ref().is_none_or(|m| *m == src.feed_mid)
                    }
                    _ => false,
                }
            });
            if hit {
                s.source = None;
                if let Some(mid) = s.mid {
                    sub.deactivate.push(mid);
                }
                changed = true;
            }
        }
        for (kind, source) in add {
            sub.streams.push(SubStream {
                mid: None,
                kind,
                source: Some(source),
                rewriter: Rewriter::new(rng.gen()),
                pt_cache: None,
            });
            changed = true;
        }
        changed
    }

    /// Makes the next offer of a subscription, if no answer is due; else
    /// postpones it. Returns the offer to send now.
    pub(crate) fn subscription_offer(&mut self, handle_id: u64) -> Option<Result<Jsep, String>> {
        let h = self.handles.get_mut(&handle_id)?;
        let Plugin::VideoRoom(v) = &mut h.plugin else {
            return None;
        };
        let sub = v.subscription.as_mut()?;
        let peer = h.peer.as_mut()?;
        if peer.awaits_answer() {
            sub.pending_offer = true;
            return None;
        }
        sub.pending_offer = false;
        let new: Vec<usize> = (0..sub.streams.len())
            .filter(|i| sub.streams[*i].mid.is_none())
            .collect();
        let kinds: Vec<MediaKind> = new.iter().map(|i| sub.streams[*i].kind).collect();
        let deactivate = std::mem::take(&mut sub.deactivate);
        match peer.renegotiate(&kinds, &deactivate, &sub.stream_id) {
            Ok((sdp, mids)) => {
                for (i, mid) in new.into_iter().zip(mids) {
                    sub.streams[i].mid = Some(mid);
                }
                Some(Ok(offer(sdp)))
            }
            Err(e) => Some(Err(e.to_string())),
        }
    }

    /// Sends a postponed or unsolicited renegotiation as an `updated` event.
    pub(crate) fn push_subscription_update(&mut self, handle_id: u64) {
        match self.subscription_offer(handle_id) {
            Some(Ok(jsep)) => {
                let Some(sub) = self.subscription_mut(handle_id) else {
                    return;
                };
                let event =
                    json!({"videoroom": "updated", "room": sub.room, "streams": sub.summary()});
                self.plugin_event(handle_id, None, VIDEOROOM_PLUGIN, event, Some(jsep));
            }
            Some(Err(e)) => debug!(handle_id, error = %e, "renegotiation failed"),
            None => {}
        }
        self.rebuild_routes();
    }

    /// A publisher stopped publishing: its subscribers' m-lines go inactive.
    pub(crate) fn publisher_stopped(&mut self, room: u64, feed: u64) {
        let affected: Vec<u64> = self
            .handles
            .iter()
            .filter_map(|(id, h)| match &h.plugin {
                Plugin::VideoRoom(v) => v
                    .subscription
                    .as_ref()
                    .filter(|s| {
                        s.room == room
                            && s.streams
                                .iter()
                                .any(|st| st.source.as_ref().is_some_and(|src| src.feed == feed))
                    })
                    .map(|_| *id),
                _ => None,
            })
            .collect();
        let unsubscribe = [UnsubscribeStream {
            feed: Some(feed),
            mid: None,
            sub_mid: None,
        }];
        for id in affected {
            self.update_subscription(id, Vec::new(), &unsubscribe);
            self.push_subscription_update(id);
        }
        self.rebuild_routes();
    }

    /// Recomputes which subscriber m-lines each publisher stream feeds.
    pub(crate) fn rebuild_routes(&mut self) {
        let mut routes: HashMap<(u64, Mid), Vec<(u64, usize)>> = HashMap::new();
        for (sub_handle, h) in &self.handles {
            let Plugin::VideoRoom(v) = &h.plugin else {
                continue;
            };
            let Some(sub) = &v.subscription else {
                continue;
            };
            if sub.paused {
                continue;
            }
            let Some(room) = self.videorooms.get(&sub.room) else {
                continue;
            };
            for (i, s) in sub.streams.iter().enumerate() {
                let (Some(src), Some(_)) = (&s.source, s.mid) else {
                    continue;
                };
                let Some(publisher) = room.publisher(src.feed) else {
                    continue;
                };
                routes
                    .entry((publisher.handle, Mid::from(src.feed_mid.as_str())))
                    .or_default()
                    .push((*sub_handle, i));
            }
        }
        self.sfu
            .talking
            .retain(|(h, _), _| self.handles.contains_key(h));
        self.sfu
            .last_keyframe_request
            .retain(|(h, _), _| self.handles.contains_key(h));
        self.sfu.routes = routes;
    }

    /// Asks the publishers feeding a subscription's video for keyframes.
    pub(crate) fn request_subscription_keyframes(&mut self, handle_id: u64) {
        let wanted: Vec<(u64, Mid)> = self
            .sfu
            .routes
            .iter()
            .filter(|(_, subs)| subs.iter().any(|(h, _)| *h == handle_id))
            .map(|(k, _)| *k)
            .collect();
        for (publisher, mid) in wanted {
            self.request_keyframe(publisher, mid, KeyframeRequestKind::Pli, true);
        }
    }

    fn request_keyframe(
        &mut self,
        publisher: u64,
        mid: Mid,
        kind: KeyframeRequestKind,
        force: bool,
    ) {
        let now = self.now;
        let last = self.sfu.last_keyframe_request.get(&(publisher, mid));
        if !force
            && last.is_some_and(|t| now.saturating_duration_since(*t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        self.sfu.last_keyframe_request.insert((publisher, mid), now);
        if let Some(peer) = self
            .handles
            .get_mut(&publisher)
            .and_then(|h| h.peer.as_mut())
        {
            peer.request_keyframe(mid, kind);
        }
        self.drain_peer(publisher);
    }

    /// A subscriber asked for a keyframe on one of its m-lines.
    pub(crate) fn on_keyframe_request(
        &mut self,
        handle_id: u64,
        mid: Mid,
        kind: KeyframeRequestKind,
    ) {
        let target = self.sfu.routes.iter().find_map(|(key, subs)| {
            subs.iter()
                .any(|(h, i)| {
                    *h == handle_id
                        && self
                            .handles
                            .get(h)
                            .and_then(|hd| match &hd.plugin {
                                Plugin::VideoRoom(v) => v.subscription.as_ref(),
                                _ => None,
                            })
                            .and_then(|s| s.streams.get(*i))
                            .is_some_and(|s| s.mid == Some(mid))
                })
                .then_some(*key)
        });
        if let Some((publisher, pub_mid)) = target {
            self.request_keyframe(publisher, pub_mid, kind, false);
        }
    }

    /// Forwards one RTP packet of a publisher to its subscribers.
    pub(crate) fn forward_rtp(&mut self, publisher: u64, mid: Mid, packet: Box<RtpPacket>) {
        let now = self.now;
        let header = &packet.header;
        if let Some(level) = header.ext_vals.audio_level {
            self.meter_audio(publisher, mid, level);
        }
        // Copied: the loop needs `&mut self`, and keyframe requests raised
        // while draining subscribers must still find this route.
        let Some(routes) = self.sfu.routes.get(&(publisher, mid)).cloned() else {
            return;
        };
        let Some((spec, red_in)) = self
            .handles
            .get(&publisher)
            .and_then(|h| h.peer.as_ref())
            .and_then(|p| p.codec_of(header.payload_type))
        else {
            return;
        };
        // A RED packet goes as it is to subscribers that take RED, and as
        // its primary block (the packet's own audio) to the others: made
        // once, when the first of those needs it.
        let mut primary: Option<Option<Arc<[u8]>>> = None;
        let clock_rate = spec.clock_rate.get();
        let video = matches!(spec.codec.kind(), MediaKind::Video);
        let ext = ExtensionValues {
            audio_level: header.ext_vals.audio_level,
            // str0m writes the level only with the voice-activity flag.
            voice_activity: header
                .ext_vals
                .voice_activity
                .or(header.ext_vals.audio_level.map(|_| false)),
            video_orientation: header.ext_vals.video_orientation,
            video_content_type: header.ext_vals.video_content_type,
            ..Default::default()
        };
        let mut switched = false;
        for &(sub_handle, index) in &routes {
            let Some(h) = self.handles.get_mut(&sub_handle) else {
                continue;
            };
            let Plugin::VideoRoom(v) = &mut h.plugin else {
                continue;
            };
            let (Some(sub), Some(peer)) = (v.subscription.as_mut(), h.peer.as_mut()) else {
                continue;
            };
            let Some(stream) = sub.streams.get_mut(index) else {
                continue;
            };
            let Some(out_mid) = stream.mid else {
                continue;
            };
            let (pt, red_out) = match stream.pt_cache {
                Some((p, from, to, red)) if p == publisher && from == header.payload_type => {
                    (to, red)
                }
                _ => match peer.pt_for(out_mid, &spec) {
                    Some(to) => {
                        let red = if red_in { peer.red_pt_for(to) } else { None };
                        stream.pt_cache = Some((publisher, header.payload_type, to, red));
                        (to, red)
                    }
                    None => continue,
                },
            };
            let (pt, payload) = match (red_in, red_out) {
                (false, _) => (pt, packet.payload.clone()),
                (true, Some(red)) => (red, packet.payload.clone()),
                (true, None) => {
                    let block = primary.get_or_insert_with(|| red_primary(&packet.payload));
                    match block {
                        Some(p) => (pt, p.clone()),
                        None => continue,
                    }
                }
            };
            let Some(out) = stream.rewriter.rewrite(
                (publisher, *header.ssrc),
                *packet.seq_no,
                header.timestamp,
                clock_rate,
                now,
            ) else {
                continue;
            };
            switched |= out.switched && video;
            let write = RtpWrite::new(pt, out.seq.into(), out.timestamp, packet.timestamp, payload)
                .marker(header.marker)
                .ext_vals(ext.clone())
                .nackable(video);
            if peer.write_rtp(out_mid, write) {
                peer.flush(now);
                self.drain_peer(sub_handle);
            }
        }
        if switched {
            self.request_keyframe(publisher, mid, KeyframeRequestKind::Pli, false);
        }
    }

    fn meter_audio(&mut self, publisher: u64, mid: Mid, level: i8) {
        let Some(Some((room, id))) = self.handles.get(&publisher).map(|h| match &h.plugin {
            Plugin::VideoRoom(v) => v.publisher_of(),
            _ => None,
        }) else {
            return;
        };
        if !self
            .videorooms
            .get(&room)
            .is_some_and(|r| r.audiolevel_event)
        {
            return;
        }
        let level = level.unsigned_abs();
        let meter = self.sfu.talking.entry((publisher, mid)).or_default();
        if let Some((talking, average)) = meter.add(level) {
            if let Some(p) = self
                .videorooms
                .get_mut(&room)
                .and_then(|r| r.participants.get_mut(&id))
            {
                p.talking = talking;
            }
            let event = json!({
                "videoroom": if talking { "talking" } else { "stopped-talking" },
                "room": room,
                "id": id,
                "mid": mid.to_string(),
                "audio-level-dBov-avg": average,
            });
            self.videoroom_notify(room, event, None);
        }
    }
}

fn offer(sdp: String) -> Jsep {
    Jsep {
        kind: JsepKind::Offer,
        sdp,
        restart: false,
        e2ee: false,
    }
}

/// The primary block of a RED payload (RFC 2198): the packet's own media,
/// without the redundant copies of earlier ones. None if it is malformed.
fn red_primary(payload: &[u8]) -> Option<Arc<[u8]>> {
    let blocks = str0m::rtp::RedDecoder::decode(payload).ok()?;
    blocks
        .into_iter()
        .find(|b| b.is_primary)
        .map(|b| Arc::from(b.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talking_follows_the_average_level() {
        let mut m = TalkingMeter::default();
        for _ in 0..TalkingMeter::PACKETS - 1 {
            assert_eq!(m.add(10), None);
        }
        assert_eq!(m.add(10), Some((true, 10.0)));
        // Still loud: no new event.
        for _ in 0..TalkingMeter::PACKETS {
            assert_eq!(m.add(5), None);
        }
        // Silence.
        let mut last = None;
        for _ in 0..TalkingMeter::PACKETS {
            last = m.add(127);
        }
        assert_eq!(last, Some((false, 127.0)));
    }

    #[test]
    fn a_red_payload_gives_its_primary_block_and_a_bad_one_nothing() {
        use str0m::rtp::{RedEncoder, RedundantBlock};
        let red = RedEncoder::encode(
            111,
            b"primary",
            &[RedundantBlock {
                pt: 111,
                timestamp_offset: 960,
                payload: b"earlier".to_vec(),
            }],
        );
        assert_eq!(red_primary(&red).as_deref(), Some(&b"primary"[..]));
        assert_eq!(red_primary(&[0x80, 0x01]), None);
        assert_eq!(red_primary(&[]), None);
    }
}
