//! The VideoRoom plugin: rooms of publishers (people) and, with the SFU,
//! subscribers. This module holds the rooms and their signaling.

use std::collections::BTreeMap;

use conclave_protocol::janus::{Jsep, JsepKind, VIDEOROOM_PLUGIN};
use conclave_protocol::videoroom::{
    ParticipantType, PublishedStream, RoomParticipant, RoomProperties, StreamDescription,
    SubscribeStream, VideoRoomRequest,
};
use serde_json::{json, Value};
use tracing::debug;

use crate::core::{Plugin, RequestContext, Server};
use crate::limiter::{check_secret, secret_matches, PinCheck, SecretCheck};
use crate::peer::Peer;
use crate::sfu::Subscription;

/// VideoRoom error codes (as Janus numbers them).
mod code {
    pub const UNKNOWN: i64 = 499;
    pub const INVALID_REQUEST: i64 = 423;
    pub const JOIN_FIRST: i64 = 424;
    pub const ALREADY_JOINED: i64 = 425;
    pub const NO_SUCH_ROOM: i64 = 426;
    pub const ROOM_EXISTS: i64 = 427;
    pub const NO_SUCH_FEED: i64 = 428;
    pub const MISSING_ELEMENT: i64 = 429;
    pub const INVALID_ELEMENT: i64 = 430;
    pub const PUBLISHERS_FULL: i64 = 432;
    pub const UNAUTHORIZED: i64 = 433;
    pub const NOT_PUBLISHED: i64 = 435;
    pub const ID_EXISTS: i64 = 436;
    pub const INVALID_SDP: i64 = 437;
}

/// What a VideoRoom handle is.
#[derive(Debug, Default)]
pub(crate) struct VideoRoomHandle {
    role: Option<Role>,
    /// The subscription, for a subscriber handle.
    pub subscription: Option<Subscription>,
}

impl VideoRoomHandle {
    /// The room and publisher id, for a publisher handle.
    pub fn publisher_of(&self) -> Option<(u64, u64)> {
        match self.role {
            Some(Role::Publisher { room, id }) => Some((room, id)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    /// Joined as a publisher (whether publishing or not) with this id.
    Publisher { room: u64, id: u64 },
    /// Subscribed to streams of this room.
    Subscriber { room: u64 },
}

/// A participant who joined as publisher (whether publishing or not).
#[derive(Debug)]
pub(crate) struct Publisher {
    /// The handle it joined on.
    pub handle: u64,
    /// Display name.
    pub display: Option<String>,
    private_id: u64,
    /// Streams being published; empty when not publishing.
    pub streams: Vec<PublishedStream>,
    /// Whether talking (with talking events on).
    pub talking: bool,
}

/// A room.
#[derive(Debug)]
pub(crate) struct VideoRoom {
    description: String,
    pin: Option<String>,
    secret: Option<String>,
    is_private: bool,
    max_publishers: usize,
    notify_joining: bool,
    /// Send talking events.
    pub audiolevel_event: bool,
    /// Who is in the room, by publisher id.
    pub participants: BTreeMap<u64, Publisher>,
}

impl VideoRoom {
    /// A participant by id.
    pub fn publisher(&self, id: u64) -> Option<&Publisher> {
        self.participants.get(&id)
    }
}

fn error_body(code: i64, error: &str) -> Value {
    json!({"videoroom": "event", "error_code": code, "error": error})
}

fn participant_entry(id: u64, p: &Publisher, audiolevel_event: bool) -> RoomParticipant {
    RoomParticipant {
        id,
        display: p.display.clone(),
        streams: p.streams.clone(),
        talking: (audiolevel_event && !p.streams.is_empty()).then_some(p.talking),
    }
}

/// The streams an SDP offer publishes: one per audio or video m-line.
fn streams_of(sdp: &str) -> Vec<PublishedStream> {
    let mut streams = Vec::new();
    let mut kind: Option<String> = None;
    let mut codec: Option<String> = None;
    let mut mid: Option<String> = None;
    let mut inactive = false;
    let mut flush = |kind: &mut Option<String>,
                     codec: &mut Option<String>,
                     mid: &mut Option<String>,
                     inactive: &mut bool| {
        if let (Some(k), Some(m)) = (kind.take(), mid.take()) {
            if k == "audio" || k == "video" {
                streams.push(PublishedStream {
                    kind: k,
                    mid: m,
                    codec: codec.take(),
                    // A stream the publisher stopped (a share that ended).
                    disabled: *inactive,
                    description: None,
                });
            }
        }
        *codec = None;
        *inactive = false;
    };
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("m=") {
            flush(&mut kind, &mut codec, &mut mid, &mut inactive);
            kind = rest.split_whitespace().next().map(str::to_owned);
            inactive = rest.split_whitespace().nth(1) == Some("0");
        } else if line.trim() == "a=inactive" {
            inactive = true;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_owned());
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            if codec.is_none() {
                codec = rtpmap
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.split('/').next())
                    .map(str::to_lowercase);
            }
        }
    }
    flush(&mut kind, &mut codec, &mut mid, &mut inactive);
    streams
}

impl Server {
    fn videoroom_role(&self, handle_id: u64) -> Option<Role> {
        match self.handles.get(&handle_id).map(|h| &h.plugin) {
            Some(Plugin::VideoRoom(v)) => v.role,
            _ => None,
        }
    }

    fn set_videoroom_role(&mut self, handle_id: u64, role: Option<Role>) {
        if let Some(Plugin::VideoRoom(v)) = self.handles.get_mut(&handle_id).map(|h| &mut h.plugin)
        {
            v.role = role;
        }
    }

    /// A VideoRoom request through the Janus API (`message`).
    pub(crate) fn videoroom_message(
        &mut self,
        ctx: RequestContext,
        body: Value,
        jsep: Option<Jsep>,
    ) {
        let request = match VideoRoomRequest::from_body(&body) {
            Ok(r) => r,
            Err(_) => {
                let e = match body.get("request").and_then(Value::as_str) {
                    None => {
                        error_body(code::MISSING_ELEMENT, "Missing mandatory element (request)")
                    }
                    Some(k) if is_known(k) => {
                        error_body(code::INVALID_ELEMENT, "Invalid or missing element")
                    }
                    Some(_) => error_body(code::INVALID_REQUEST, "Unknown request"),
                };
                if body
                    .get("request")
                    .and_then(Value::as_str)
                    .is_some_and(is_async)
                {
                    self.ack(&ctx);
                    self.reply(&ctx, e, None);
                } else {
                    self.plugin_success(&ctx, VIDEOROOM_PLUGIN, e);
                }
                return;
            }
        };
        match request {
            VideoRoomRequest::Join {
                room,
                ptype: ParticipantType::Publisher,
                id,
                display,
                pin,
                ..
            } => {
                self.ack(&ctx);
                let answer = self.videoroom_join_publisher(&ctx, room, id, display, pin.as_deref());
                self.reply(&ctx, answer, None);
            }
            VideoRoomRequest::Join {
                room,
                ptype: ParticipantType::Subscriber,
                pin,
                streams,
                feed,
                ..
            } => {
                self.ack(&ctx);
                let wanted = streams.unwrap_or_else(|| {
                    feed.map(|feed| vec![SubscribeStream { feed, mid: None }])
                        .unwrap_or_default()
                });
                let (answer, jsep) =
                    self.videoroom_join_subscriber(&ctx, room, pin.as_deref(), &wanted, feed);
                self.reply(&ctx, answer, jsep);
            }
            VideoRoomRequest::Configure { restart, .. }
                if matches!(
                    self.videoroom_role(ctx.handle_id),
                    Some(Role::Subscriber { .. })
                ) =>
            {
                self.ack(&ctx);
                let room = self.subscriber_room(ctx.handle_id);
                let ok = json!({"videoroom": "event", "room": room, "configured": "ok"});
                if restart != Some(true) {
                    self.reply(&ctx, ok, None);
                    return;
                }
                // As Janus: a new offer with fresh ICE credentials, answered
                // by `start`.
                let offered = self
                    .handles
                    .get_mut(&ctx.handle_id)
                    .and_then(|h| h.peer.as_mut())
                    .map(Peer::restart_offer);
                match offered {
                    Some(Ok(sdp)) => {
                        let jsep = Jsep {
                            kind: JsepKind::Offer,
                            sdp,
                            restart: true,
                            e2ee: false,
                        };
                        self.reply(&ctx, ok, Some(jsep));
                    }
                    Some(Err(e)) => {
                        let e = error_body(code::UNKNOWN, &e.to_string());
                        self.reply(&ctx, e, None);
                    }
                    None => {
                        let e = error_body(code::UNKNOWN, "No PeerConnection to restart");
                        self.reply(&ctx, e, None);
                    }
                }
            }
            VideoRoomRequest::Configure {
                display,
                descriptions,
                ..
            }
            | VideoRoomRequest::Publish {
                display,
                descriptions,
            } => {
                self.ack(&ctx);
                let (answer, jsep) = self.videoroom_configure(&ctx, display, descriptions, jsep);
                self.reply(&ctx, answer, jsep);
            }
            VideoRoomRequest::Unpublish => {
                self.ack(&ctx);
                let answer = self.videoroom_unpublish(ctx.handle_id);
                self.reply(&ctx, answer, None);
            }
            VideoRoomRequest::Leave
                if matches!(
                    self.videoroom_role(ctx.handle_id),
                    Some(Role::Subscriber { .. })
                ) =>
            {
                self.ack(&ctx);
                let room = self.subscriber_room(ctx.handle_id);
                self.videoroom_handle_gone(ctx.handle_id);
                self.hangup_handle(ctx.handle_id, "Leave");
                let ok = json!({"videoroom": "event", "room": room, "left": "ok"});
                self.reply(&ctx, ok, None);
            }
            VideoRoomRequest::Leave => {
                self.ack(&ctx);
                let room = match self.videoroom_role(ctx.handle_id) {
                    Some(Role::Publisher { room, .. }) => room,
                    Some(Role::Subscriber { .. }) => return,
                    None => {
                        let e = error_body(code::JOIN_FIRST, "Can't leave (not in room)");
                        self.reply(&ctx, e, None);
                        return;
                    }
                };
                self.videoroom_handle_gone(ctx.handle_id);
                let ok = json!({"videoroom": "event", "room": room, "leaving": "ok"});
                self.reply(&ctx, ok, None);
            }
            VideoRoomRequest::Start => {
                self.ack(&ctx);
                let answer = self.videoroom_start(ctx.handle_id, jsep);
                self.reply(&ctx, answer, None);
                if self
                    .subscription_ref(ctx.handle_id)
                    .is_some_and(|s| s.pending_offer)
                {
                    self.push_subscription_update(ctx.handle_id);
                }
            }
            VideoRoomRequest::Pause => {
                self.ack(&ctx);
                let answer = match self.subscription_mut_ref(ctx.handle_id) {
                    Some(sub) => {
                        sub.paused = true;
                        let room = sub.room;
                        self.rebuild_routes();
                        json!({"videoroom": "event", "room": room, "paused": "ok"})
                    }
                    None => error_body(code::JOIN_FIRST, "Subscribe first"),
                };
                self.reply(&ctx, answer, None);
            }
            VideoRoomRequest::Update {
                subscribe,
                unsubscribe,
            } => {
                self.ack(&ctx);
                if subscribe.is_none() && unsubscribe.is_none() {
                    let e = error_body(
                        code::MISSING_ELEMENT,
                        "At least one of either subscribe or unsubscribe must be present",
                    );
                    self.reply(&ctx, e, None);
                    return;
                }
                self.videoroom_update(
                    ctx,
                    subscribe.unwrap_or_default(),
                    unsubscribe.unwrap_or_default(),
                );
            }
            VideoRoomRequest::Subscribe { streams } => {
                self.ack(&ctx);
                self.videoroom_update(ctx, streams, Vec::new());
            }
            VideoRoomRequest::Unsubscribe { streams } => {
                self.ack(&ctx);
                self.videoroom_update(ctx, Vec::new(), streams);
            }
            other => {
                let answer = self.videoroom_admin(other, &body);
                self.plugin_success(&ctx, VIDEOROOM_PLUGIN, answer);
            }
        }
    }

    /// Answers a request asynchronously (an event with its transaction).
    fn reply(&mut self, ctx: &RequestContext, body: Value, jsep: Option<Jsep>) {
        self.plugin_event(
            ctx.handle_id,
            Some(ctx.transaction.clone()),
            VIDEOROOM_PLUGIN,
            body,
            jsep,
        );
    }

    fn subscriber_room(&self, handle_id: u64) -> u64 {
        match self.videoroom_role(handle_id) {
            Some(Role::Subscriber { room }) | Some(Role::Publisher { room, .. }) => room,
            None => 0,
        }
    }

    pub(crate) fn subscription_ref(&self, handle_id: u64) -> Option<&Subscription> {
        match self.handles.get(&handle_id).map(|h| &h.plugin) {
            Some(Plugin::VideoRoom(v)) => v.subscription.as_ref(),
            _ => None,
        }
    }

    fn subscription_mut_ref(&mut self, handle_id: u64) -> Option<&mut Subscription> {
        match self.handles.get_mut(&handle_id).map(|h| &mut h.plugin) {
            Some(Plugin::VideoRoom(v)) => v.subscription.as_mut(),
            _ => None,
        }
    }

    fn videoroom_join_subscriber(
        &mut self,
        ctx: &RequestContext,
        room: u64,
        pin: Option<&str>,
        wanted: &[SubscribeStream],
        legacy_feed: Option<u64>,
    ) -> (Value, Option<Jsep>) {
        match self.videoroom_role(ctx.handle_id) {
            Some(Role::Subscriber { .. }) => {
                return (
                    error_body(
                        code::ALREADY_JOINED,
                        "Already in as a subscriber on this handle",
                    ),
                    None,
                )
            }
            Some(Role::Publisher { .. }) => {
                return (
                    error_body(
                        code::ALREADY_JOINED,
                        "Already in as a publisher on this handle",
                    ),
                    None,
                )
            }
            None => {}
        }
        let Some(expected) = self.videorooms.get(&room).map(|r| r.pin.clone()) else {
            return (
                error_body(code::NO_SUCH_ROOM, &format!("No such room ({room})")),
                None,
            );
        };
        let ip = self.remote_ip(ctx.conn);
        match self
            .pins
            .check(self.now, ip, room, expected.as_deref(), pin)
        {
            PinCheck::Allowed => {}
            PinCheck::Missing => {
                return (
                    error_body(code::MISSING_ELEMENT, "Missing mandatory element (pin)"),
                    None,
                )
            }
            PinCheck::Wrong => {
                return (
                    error_body(code::UNAUTHORIZED, "Unauthorized (wrong pin)"),
                    None,
                )
            }
            PinCheck::Limited => {
                return (
                    error_body(code::UNAUTHORIZED, "Too many wrong PINs; try again later"),
                    None,
                )
            }
        }
        if wanted.is_empty() {
            return (
                error_body(code::MISSING_ELEMENT, "Missing mandatory element (streams)"),
                None,
            );
        }
        let sources = match self.resolve_sources(room, wanted) {
            Ok(s) => s,
            Err((c, e)) => return (error_body(c, &e), None),
        };
        match self.subscribe(ctx.handle_id, room, sources) {
            Ok((sub, jsep)) => {
                let mut event =
                    json!({"videoroom": "attached", "room": room, "streams": sub.summary()});
                if let Some(feed) = legacy_feed {
                    event["id"] = json!(feed);
                    if let Some(d) = self
                        .videorooms
                        .get(&room)
                        .and_then(|r| r.publisher(feed))
                        .and_then(|p| p.display.clone())
                    {
                        event["display"] = json!(d);
                    }
                }
                self.set_videoroom_role(ctx.handle_id, Some(Role::Subscriber { room }));
                if let Some(Plugin::VideoRoom(v)) =
                    self.handles.get_mut(&ctx.handle_id).map(|h| &mut h.plugin)
                {
                    v.subscription = Some(sub);
                }
                self.rebuild_routes();
                debug!(room, handle = ctx.handle_id, "subscriber joined");
                (event, Some(jsep))
            }
            Err((c, e)) => (error_body(c, &e), None),
        }
    }

    fn videoroom_start(&mut self, handle_id: u64, jsep: Option<Jsep>) -> Value {
        let Some(room) = self.subscription_ref(handle_id).map(|s| s.room) else {
            return error_body(code::JOIN_FIRST, "Subscribe first");
        };
        if let Some(answer) = jsep {
            if answer.kind != JsepKind::Answer {
                return error_body(code::INVALID_SDP, "Expected an SDP answer");
            }
            let Some(peer) = self
                .handles
                .get_mut(&handle_id)
                .and_then(|h| h.peer.as_mut())
            else {
                return error_body(code::UNKNOWN, "No peer connection to answer");
            };
            if let Err(e) = peer.accept_answer(&answer.sdp) {
                return error_body(code::INVALID_SDP, &e.to_string());
            }
        }
        if let Some(sub) = self.subscription_mut_ref(handle_id) {
            sub.paused = false;
        }
        self.rebuild_routes();
        self.request_subscription_keyframes(handle_id);
        json!({"videoroom": "event", "room": room, "started": "ok"})
    }

    fn videoroom_update(
        &mut self,
        ctx: RequestContext,
        subscribe: Vec<SubscribeStream>,
        unsubscribe: Vec<conclave_protocol::videoroom::UnsubscribeStream>,
    ) {
        let Some(room) = self.subscription_ref(ctx.handle_id).map(|s| s.room) else {
            let e = error_body(code::JOIN_FIRST, "Subscribe first");
            self.reply(&ctx, e, None);
            return;
        };
        let add = if subscribe.is_empty() {
            Vec::new()
        } else {
            match self.resolve_sources(room, &subscribe) {
                Ok(a) => a,
                Err((c, e)) => {
                    let e = error_body(c, &e);
                    self.reply(&ctx, e, None);
                    return;
                }
            }
        };
        if !self.update_subscription(ctx.handle_id, add, &unsubscribe) {
            let ok = json!({"videoroom": "updated", "room": room});
            self.reply(&ctx, ok, None);
            return;
        }
        match self.subscription_offer(ctx.handle_id) {
            Some(Ok(jsep)) => {
                let streams = self
                    .subscription_ref(ctx.handle_id)
                    .map(Subscription::summary)
                    .unwrap_or_default();
                let ok = json!({"videoroom": "updated", "room": room, "streams": streams});
                self.reply(&ctx, ok, Some(jsep));
            }
            Some(Err(e)) => {
                let e = error_body(code::INVALID_SDP, &e);
                self.reply(&ctx, e, None);
            }
            None => {
                let ok = json!({"videoroom": "updating", "room": room});
                self.reply(&ctx, ok, None);
            }
        }
        self.rebuild_routes();
    }

    fn videoroom_join_publisher(
        &mut self,
        ctx: &RequestContext,
        room: u64,
        id: Option<u64>,
        display: Option<String>,
        pin: Option<&str>,
    ) -> Value {
        if self.videoroom_role(ctx.handle_id).is_some() {
            return error_body(
                code::ALREADY_JOINED,
                "Already in as a publisher on this handle",
            );
        }
        let Some(expected) = self.videorooms.get(&room).map(|r| r.pin.clone()) else {
            return error_body(code::NO_SUCH_ROOM, &format!("No such room ({room})"));
        };
        let ip = self.remote_ip(ctx.conn);
        match self
            .pins
            .check(self.now, ip, room, expected.as_deref(), pin)
        {
            PinCheck::Allowed => {}
            PinCheck::Missing => {
                return error_body(code::MISSING_ELEMENT, "Missing mandatory element (pin)")
            }
            PinCheck::Wrong => return error_body(code::UNAUTHORIZED, "Unauthorized (wrong pin)"),
            PinCheck::Limited => {
                return error_body(code::UNAUTHORIZED, "Too many wrong PINs; try again later")
            }
        }
        let max = self.config.limits.max_participants_per_room;
        let id = match id {
            Some(0) => return error_body(code::INVALID_ELEMENT, "Invalid element (id)"),
            Some(id) => id,
            None => self.fresh_id(|s, id| {
                s.videorooms
                    .get(&room)
                    .is_some_and(|r| r.participants.contains_key(&id))
            }),
        };
        let private_id = self.fresh_id(|_, _| false);
        let Some(r) = self.videorooms.get_mut(&room) else {
            return error_body(code::NO_SUCH_ROOM, &format!("No such room ({room})"));
        };
        if r.participants.contains_key(&id) {
            return error_body(code::ID_EXISTS, "User ID already exists");
        }
        if r.participants.len() >= max {
            return error_body(code::UNKNOWN, "The room is full");
        }
        let publishers: Vec<RoomParticipant> = r
            .participants
            .iter()
            .filter(|(_, p)| !p.streams.is_empty())
            .map(|(id, p)| participant_entry(*id, p, r.audiolevel_event))
            .collect();
        let attendees: Vec<RoomParticipant> = r
            .participants
            .iter()
            .filter(|(_, p)| p.streams.is_empty())
            .map(|(id, p)| participant_entry(*id, p, r.audiolevel_event))
            .collect();
        let notify_joining = r.notify_joining;
        let description = r.description.clone();
        r.participants.insert(
            id,
            Publisher {
                handle: ctx.handle_id,
                display: display.clone(),
                private_id,
                streams: Vec::new(),
                talking: false,
            },
        );
        self.set_videoroom_role(ctx.handle_id, Some(Role::Publisher { room, id }));
        debug!(room, id, "publisher joined");
        if notify_joining {
            let mut joining = json!({"id": id});
            if let Some(d) = &display {
                joining["display"] = json!(d);
            }
            let event = json!({"videoroom": "event", "room": room, "joining": joining});
            self.videoroom_notify(room, event, Some(id));
        }
        let mut joined = json!({
            "videoroom": "joined",
            "room": room,
            "description": description,
            "id": id,
            "private_id": private_id,
            "publishers": publishers,
        });
        if notify_joining {
            joined["attendees"] = json!(attendees);
        }
        joined
    }

    fn videoroom_configure(
        &mut self,
        ctx: &RequestContext,
        display: Option<String>,
        descriptions: Option<Vec<StreamDescription>>,
        jsep: Option<Jsep>,
    ) -> (Value, Option<Jsep>) {
        let Some(Role::Publisher { room, id }) = self.videoroom_role(ctx.handle_id) else {
            return (
                error_body(code::JOIN_FIRST, "Join the room as a publisher first"),
                None,
            );
        };
        if let (Some(d), Some(p)) = (
            &display,
            self.videorooms
                .get_mut(&room)
                .and_then(|r| r.participants.get_mut(&id)),
        ) {
            p.display = Some(d.clone());
        }
        let mut answer_jsep = None;
        if let Some(offer) = jsep {
            if offer.kind != JsepKind::Offer {
                return (error_body(code::INVALID_SDP, "Expected an SDP offer"), None);
            }
            let streams = streams_of(&offer.sdp);
            let max = self
                .videorooms
                .get(&room)
                .map(|r| r.max_publishers)
                .unwrap_or_default();
            let publishing = self
                .videorooms
                .get(&room)
                .map(|r| {
                    r.participants
                        .iter()
                        .filter(|(pid, p)| **pid != id && !p.streams.is_empty())
                        .count()
                })
                .unwrap_or_default();
            if publishing >= max {
                return (
                    error_body(
                        code::PUBLISHERS_FULL,
                        "Maximum number of publishers reached",
                    ),
                    None,
                );
            }
            // A live publisher's peer (connected, or reconnecting with an
            // ICE restart after its network changed) keeps its connection.
            let existing = self
                .handles
                .get_mut(&ctx.handle_id)
                .and_then(|h| h.peer.as_mut())
                .filter(|p| p.is_connected() || (offer.restart && p.is_open()));
            let answered = match existing {
                // A renegotiation of a live publisher keeps its connection.
                Some(peer) => peer.accept_offer(&offer.sdp),
                None => Peer::answer(self.now, &self.candidates, &offer.sdp).map(|(peer, sdp)| {
                    self.set_peer(ctx.handle_id, peer);
                    sdp
                }),
            };
            match answered {
                Ok(sdp) => {
                    answer_jsep = Some(Jsep {
                        kind: JsepKind::Answer,
                        sdp,
                        restart: false,
                        e2ee: false,
                    });
                }
                Err(e) => return (error_body(code::INVALID_SDP, &e.to_string()), None),
            }
            if let Some(p) = self
                .videorooms
                .get_mut(&room)
                .and_then(|r| r.participants.get_mut(&id))
            {
                // Descriptions given before stay with their m-lines.
                let mut streams = streams;
                for s in &mut streams {
                    s.description = p
                        .streams
                        .iter()
                        .find(|old| old.mid == s.mid)
                        .and_then(|old| old.description.clone());
                }
                p.streams = streams;
            }
        }
        if let (Some(list), Some(p)) = (
            descriptions,
            self.videorooms
                .get_mut(&room)
                .and_then(|r| r.participants.get_mut(&id)),
        ) {
            for d in list {
                if let Some(s) = p.streams.iter_mut().find(|s| s.mid == d.mid) {
                    s.description = Some(d.description);
                }
            }
        }
        // Tell the others what this participant publishes now.
        if let Some(entry) = self.videorooms.get(&room).and_then(|r| {
            r.participants
                .get(&id)
                .filter(|p| !p.streams.is_empty())
                .map(|p| participant_entry(id, p, r.audiolevel_event))
        }) {
            let event = json!({"videoroom": "event", "room": room, "publishers": [entry]});
            self.videoroom_notify(room, event, Some(id));
        }
        let mut configured = json!({"videoroom": "event", "room": room, "configured": "ok"});
        if answer_jsep.is_some() {
            if let Some(p) = self.videorooms.get(&room).and_then(|r| r.publisher(id)) {
                for s in &p.streams {
                    if let Some(codec) = &s.codec {
                        configured[format!("{}_codec", s.kind)] = json!(codec);
                    }
                }
            }
        }
        self.rebuild_routes();
        (configured, answer_jsep)
    }

    fn videoroom_unpublish(&mut self, handle_id: u64) -> Value {
        let Some(Role::Publisher { room, id }) = self.videoroom_role(handle_id) else {
            return error_body(code::JOIN_FIRST, "Join the room as a publisher first");
        };
        let was_publishing = self
            .videorooms
            .get_mut(&room)
            .and_then(|r| r.participants.get_mut(&id))
            .map(|p| !std::mem::take(&mut p.streams).is_empty())
            .unwrap_or(false);
        if !was_publishing {
            return error_body(code::NOT_PUBLISHED, "Can't unpublish, not published");
        }
        if let Some(mut peer) = self.handles.get_mut(&handle_id).and_then(|h| h.peer.take()) {
            peer.close();
        }
        self.publisher_stopped(room, id);
        let event = json!({"videoroom": "event", "room": room, "unpublished": id});
        self.videoroom_notify(room, event, Some(id));
        json!({"videoroom": "event", "room": room, "unpublished": "ok"})
    }

    fn videoroom_admin(&mut self, request: VideoRoomRequest, body: &Value) -> Value {
        match request {
            VideoRoomRequest::Create {
                room, properties, ..
            } => self.videoroom_create(room, properties, body),
            VideoRoomRequest::Edit {
                room,
                secret,
                new_pin,
                new_description,
            } => {
                if let Some(e) = self.videoroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                if let Some(r) = self.videorooms.get_mut(&room) {
                    if let Some(pin) = new_pin {
                        r.pin = Some(pin).filter(|p| !p.is_empty());
                    }
                    if let Some(d) = new_description {
                        r.description = d;
                    }
                }
                json!({"videoroom": "edited", "room": room})
            }
            VideoRoomRequest::Destroy { room, secret } => {
                if let Some(e) = self.videoroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                if let Some(r) = self.videorooms.remove(&room) {
                    for p in r.participants.values() {
                        self.set_videoroom_role(p.handle, None);
                        self.plugin_event(
                            p.handle,
                            None,
                            VIDEOROOM_PLUGIN,
                            json!({"videoroom": "destroyed", "room": room}),
                            None,
                        );
                    }
                }
                json!({"videoroom": "destroyed", "room": room, "permanent": false})
            }
            VideoRoomRequest::Exists { room } => {
                json!({"videoroom": "success", "room": room, "exists": self.videorooms.contains_key(&room)})
            }
            VideoRoomRequest::List => {
                let list: Vec<Value> = self
                    .videorooms
                    .iter()
                    .filter(|(_, r)| !r.is_private)
                    .map(|(id, r)| {
                        json!({"room": id, "description": r.description, "pin_required": r.pin.is_some(),
                               "is_private": false, "max_publishers": r.max_publishers,
                               "num_participants": r.participants.len()})
                    })
                    .collect();
                json!({"videoroom": "success", "list": list})
            }
            VideoRoomRequest::Listparticipants { room } => match self.videorooms.get(&room) {
                None => error_body(code::NO_SUCH_ROOM, &format!("No such room ({room})")),
                Some(r) => {
                    let participants: Vec<Value> = r
                        .participants
                        .iter()
                        .map(|(id, p)| json!({"id": id, "display": p.display, "publisher": !p.streams.is_empty()}))
                        .collect();
                    json!({"videoroom": "participants", "room": room, "participants": participants})
                }
            },
            VideoRoomRequest::Kick { room, secret, id } => {
                if let Some(e) = self.videoroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                let Some(handle) = self
                    .videorooms
                    .get(&room)
                    .and_then(|r| r.participants.get(&id))
                    .map(|p| p.handle)
                else {
                    return error_body(code::NO_SUCH_FEED, "No such user in room");
                };
                let event = json!({"videoroom": "event", "room": room, "kicked": id});
                self.plugin_event(handle, None, VIDEOROOM_PLUGIN, event.clone(), None);
                self.videoroom_handle_gone(handle);
                self.hangup_handle(handle, "Kicked");
                self.videoroom_notify(room, event, None);
                json!({"videoroom": "success"})
            }
            VideoRoomRequest::Moderate {
                room, secret, id, ..
            } => {
                if let Some(e) = self.videoroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                if !self
                    .videorooms
                    .get(&room)
                    .is_some_and(|r| r.participants.contains_key(&id))
                {
                    return error_body(code::NO_SUCH_FEED, "No such user in room");
                }
                json!({"videoroom": "success"})
            }
            _ => error_body(code::INVALID_REQUEST, "Not a synchronous request"),
        }
    }

    fn videoroom_create(&mut self, room: u64, properties: RoomProperties, body: &Value) -> Value {
        if let Some(key) = self.config.admin_key.clone() {
            let supplied = body
                .get("admin_key")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !secret_matches(supplied, &key) {
                return error_body(code::UNAUTHORIZED, "Unauthorized (wrong admin_key)");
            }
        }
        if room == 0 {
            return error_body(code::INVALID_ELEMENT, "Invalid element (room)");
        }
        if self.videorooms.contains_key(&room) {
            return error_body(code::ROOM_EXISTS, &format!("Room {room} already exists"));
        }
        if self.videorooms.len() >= self.config.limits.max_rooms {
            return error_body(code::UNKNOWN, "Too many rooms");
        }
        self.videorooms.insert(
            room,
            VideoRoom {
                description: properties
                    .description
                    .unwrap_or_else(|| format!("Room {room}")),
                pin: properties.pin.filter(|p| !p.is_empty()),
                secret: properties.secret.filter(|s| !s.is_empty()),
                is_private: properties.is_private.unwrap_or(false),
                max_publishers: properties
                    .publishers
                    .map(|p| p as usize)
                    .unwrap_or(3)
                    .max(1),
                notify_joining: properties.notify_joining.unwrap_or(false),
                audiolevel_event: properties.audiolevel_event.unwrap_or(false),
                participants: BTreeMap::new(),
            },
        );
        debug!(room, "video room created");
        json!({"videoroom": "created", "room": room, "permanent": false})
    }

    fn videoroom_check_secret(&self, room: u64, supplied: Option<&str>) -> Option<Value> {
        let Some(r) = self.videorooms.get(&room) else {
            return Some(error_body(
                code::NO_SUCH_ROOM,
                &format!("No such room ({room})"),
            ));
        };
        match check_secret(r.secret.as_deref(), supplied) {
            SecretCheck::Allowed => None,
            SecretCheck::Missing => Some(error_body(
                code::MISSING_ELEMENT,
                "Missing mandatory element (secret)",
            )),
            SecretCheck::Wrong => Some(error_body(
                code::UNAUTHORIZED,
                "Unauthorized (wrong secret)",
            )),
        }
    }

    /// Sends an event to every participant of a room except `except`.
    pub(crate) fn videoroom_notify(&mut self, room: u64, event: Value, except: Option<u64>) {
        let Some(r) = self.videorooms.get(&room) else {
            return;
        };
        let handles: Vec<u64> = r
            .participants
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(_, p)| p.handle)
            .collect();
        for handle in handles {
            self.plugin_event(handle, None, VIDEOROOM_PLUGIN, event.clone(), None);
        }
    }

    /// The handle leaves its room (leave, detach, session end, kick).
    pub(crate) fn videoroom_handle_gone(&mut self, handle_id: u64) {
        let Some(role) = self.videoroom_role(handle_id) else {
            return;
        };
        self.set_videoroom_role(handle_id, None);
        let (room, id) = match role {
            Role::Publisher { room, id } => (room, id),
            Role::Subscriber { .. } => {
                if let Some(Plugin::VideoRoom(v)) =
                    self.handles.get_mut(&handle_id).map(|h| &mut h.plugin)
                {
                    v.subscription = None;
                }
                self.rebuild_routes();
                return;
            }
        };
        {
            let removed = self
                .videorooms
                .get_mut(&room)
                .and_then(|r| r.participants.remove(&id));
            if let Some(p) = removed {
                debug!(room, id, private = p.private_id, "publisher left");
                if !p.streams.is_empty() {
                    self.publisher_stopped(room, id);
                    self.videoroom_notify(
                        room,
                        json!({"videoroom": "event", "room": room, "unpublished": id}),
                        None,
                    );
                }
                self.videoroom_notify(
                    room,
                    json!({"videoroom": "event", "room": room, "leaving": id}),
                    None,
                );
            }
        }
    }

    /// The handle's peer connection closed: it no longer publishes.
    pub(crate) fn videoroom_peer_gone(&mut self, handle_id: u64) {
        if let Some(Role::Publisher { room, id }) = self.videoroom_role(handle_id) {
            let was = self
                .videorooms
                .get_mut(&room)
                .and_then(|r| r.participants.get_mut(&id))
                .map(|p| !std::mem::take(&mut p.streams).is_empty())
                .unwrap_or(false);
            if was {
                self.publisher_stopped(room, id);
                self.videoroom_notify(
                    room,
                    json!({"videoroom": "event", "room": room, "unpublished": id}),
                    Some(id),
                );
            }
        }
    }
}

fn is_known(kind: &str) -> bool {
    matches!(
        kind,
        "create"
            | "edit"
            | "destroy"
            | "exists"
            | "list"
            | "listparticipants"
            | "join"
            | "configure"
            | "publish"
            | "unpublish"
            | "update"
            | "subscribe"
            | "unsubscribe"
            | "switch"
            | "start"
            | "pause"
            | "leave"
            | "kick"
            | "moderate"
    )
}

fn is_async(kind: &str) -> bool {
    matches!(
        kind,
        "join"
            | "configure"
            | "publish"
            | "unpublish"
            | "update"
            | "subscribe"
            | "unsubscribe"
            | "switch"
            | "start"
            | "pause"
            | "leave"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_from_an_offer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let s = streams_of(sdp);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].kind.as_str(), s[0].mid.as_str(), s[0].codec.as_deref()),
            ("audio", "0", Some("opus"))
        );
        assert_eq!(
            (s[1].kind.as_str(), s[1].mid.as_str(), s[1].codec.as_deref()),
            ("video", "1", Some("vp8"))
        );
    }
}
