//! The TextRoom plugin: rooms of named participants exchanging text over
//! each handle's data channel. Nothing is kept: no history, no log of texts.

use std::collections::BTreeMap;

use conclave_protocol::janus::{Jsep, JsepKind, TEXTROOM_PLUGIN};
use conclave_protocol::textroom::{
    TextRoomApiRequest, TextRoomParticipant, TextRoomRequest, DATA_CHANNEL_LABEL,
};
use serde_json::{json, Value};
use str0m::channel::ChannelId;
use tracing::debug;

use crate::clock::now_iso8601;
use crate::core::{Plugin, RequestContext, Server};
use crate::limiter::{check_secret, secret_matches, PinCheck, SecretCheck};
use crate::peer::Peer;

/// TextRoom error codes (as Janus numbers them).
mod code {
    pub const MISSING_ELEMENT: i64 = 413;
    pub const INVALID_ELEMENT: i64 = 414;
    pub const INVALID_REQUEST: i64 = 415;
    pub const ALREADY_SETUP: i64 = 416;
    pub const NO_SUCH_ROOM: i64 = 417;
    pub const ROOM_EXISTS: i64 = 418;
    pub const UNAUTHORIZED: i64 = 419;
    pub const USERNAME_EXISTS: i64 = 420;
    pub const ALREADY_IN_ROOM: i64 = 421;
    pub const NOT_IN_ROOM: i64 = 422;
    pub const UNKNOWN: i64 = 499;
}

/// A handle's TextRoom state.
#[derive(Debug, Default)]
pub(crate) struct TextRoomHandle {
    /// The data channel the client talks on.
    channel: Option<ChannelId>,
    /// Rooms joined, with the username used in each.
    joined: BTreeMap<u64, String>,
}

/// One participant of a room.
#[derive(Debug)]
struct Member {
    handle: u64,
    display: Option<String>,
}

/// A room.
#[derive(Debug)]
pub(crate) struct TextRoom {
    description: String,
    pin: Option<String>,
    secret: Option<String>,
    is_private: bool,
    members: BTreeMap<String, Member>,
}

fn error_body(code: i64, error: &str, transaction: Option<&str>) -> Value {
    let mut v = json!({"textroom": "error", "error_code": code, "error": error});
    if let Some(t) = transaction {
        v["transaction"] = json!(t);
    }
    v
}

impl Server {
    fn textroom_handle(&mut self, handle_id: u64) -> Option<&mut TextRoomHandle> {
        match self.handles.get_mut(&handle_id).map(|h| &mut h.plugin) {
            Some(Plugin::TextRoom(t)) => Some(t),
            _ => None,
        }
    }

    /// A TextRoom request through the Janus API (`message`).
    pub(crate) fn textroom_message(
        &mut self,
        ctx: RequestContext,
        body: Value,
        jsep: Option<Jsep>,
    ) {
        let request = match TextRoomApiRequest::from_body(&body) {
            Ok(r) => r,
            Err(_) => {
                let known = body.get("request").and_then(Value::as_str).is_some();
                let (code, reason) = if known {
                    (
                        code::INVALID_REQUEST,
                        "Unsupported request or invalid element",
                    )
                } else {
                    (code::MISSING_ELEMENT, "Missing mandatory element (request)")
                };
                self.plugin_success(&ctx, TEXTROOM_PLUGIN, error_body(code, reason, None));
                return;
            }
        };
        match request {
            TextRoomApiRequest::Setup => {
                self.ack(&ctx);
                if self
                    .handles
                    .get(&ctx.handle_id)
                    .is_some_and(|h| h.peer.is_some())
                {
                    let e = error_body(code::ALREADY_SETUP, "PeerConnection already setup", None);
                    self.plugin_event(
                        ctx.handle_id,
                        Some(ctx.transaction),
                        TEXTROOM_PLUGIN,
                        e,
                        None,
                    );
                    return;
                }
                match Peer::offer_data_channel(self.now, &self.candidates, DATA_CHANNEL_LABEL) {
                    Ok((peer, sdp)) => {
                        self.set_peer(ctx.handle_id, peer);
                        let jsep = Jsep {
                            kind: JsepKind::Offer,
                            sdp,
                            restart: false,
                            e2ee: false,
                        };
                        self.plugin_event(
                            ctx.handle_id,
                            Some(ctx.transaction),
                            TEXTROOM_PLUGIN,
                            json!({"textroom": "event", "result": "ok"}),
                            Some(jsep),
                        );
                    }
                    Err(e) => {
                        let e = error_body(code::UNKNOWN, &e.to_string(), None);
                        self.plugin_event(
                            ctx.handle_id,
                            Some(ctx.transaction),
                            TEXTROOM_PLUGIN,
                            e,
                            None,
                        );
                    }
                }
            }
            TextRoomApiRequest::Ack => {
                let Some(jsep) = jsep.filter(|j| j.kind == JsepKind::Answer) else {
                    self.plugin_success(
                        &ctx,
                        TEXTROOM_PLUGIN,
                        error_body(code::MISSING_ELEMENT, "Missing SDP answer", None),
                    );
                    return;
                };
                let result = match self
                    .handles
                    .get_mut(&ctx.handle_id)
                    .and_then(|h| h.peer.as_mut())
                {
                    Some(peer) => peer.accept_answer(&jsep.sdp).map_err(|e| e.to_string()),
                    None => Err("No offer was made: send setup first".to_owned()),
                };
                match result {
                    Ok(()) => {
                        self.ack(&ctx);
                        self.plugin_event(
                            ctx.handle_id,
                            Some(ctx.transaction),
                            TEXTROOM_PLUGIN,
                            json!({"textroom": "event", "result": "ok"}),
                            None,
                        );
                    }
                    Err(reason) => self.invalid_sdp(&ctx, &reason),
                }
            }
            TextRoomApiRequest::Restart => {
                self.ack(&ctx);
                let offered = match self
                    .handles
                    .get_mut(&ctx.handle_id)
                    .and_then(|h| h.peer.as_mut())
                {
                    Some(peer) => peer.restart_offer().map_err(|e| e.to_string()),
                    None => Err("No PeerConnection to restart: send setup first".to_owned()),
                };
                let (body, jsep) = match offered {
                    Ok(sdp) => (
                        json!({"textroom": "event", "result": "ok"}),
                        Some(Jsep {
                            kind: JsepKind::Offer,
                            sdp,
                            restart: true,
                            e2ee: false,
                        }),
                    ),
                    Err(reason) => (error_body(code::INVALID_REQUEST, &reason, None), None),
                };
                self.plugin_event(
                    ctx.handle_id,
                    Some(ctx.transaction),
                    TEXTROOM_PLUGIN,
                    body,
                    jsep,
                );
            }
            other => {
                let ip = self.remote_ip(ctx.conn);
                let answer = self.textroom_admin(other, &body, ip);
                self.plugin_success(&ctx, TEXTROOM_PLUGIN, answer);
            }
        }
    }

    /// Room administration, shared by the Janus API and the data channel.
    fn textroom_admin(
        &mut self,
        request: TextRoomApiRequest,
        body: &Value,
        _ip: std::net::IpAddr,
    ) -> Value {
        match request {
            TextRoomApiRequest::Create {
                room,
                description,
                secret,
                pin,
                is_private,
                ..
            } => {
                if let Some(key) = self.config.admin_key.clone() {
                    let supplied = body
                        .get("admin_key")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !secret_matches(supplied, &key) {
                        return error_body(
                            code::UNAUTHORIZED,
                            "Unauthorized (wrong admin_key)",
                            None,
                        );
                    }
                }
                if self.textrooms.contains_key(&room) {
                    return error_body(code::ROOM_EXISTS, "Room already exists", None);
                }
                if self.textrooms.len() >= self.config.limits.max_rooms {
                    return error_body(code::UNKNOWN, "Too many rooms", None);
                }
                if room == 0 {
                    return error_body(code::INVALID_ELEMENT, "Invalid element (room)", None);
                }
                self.textrooms.insert(
                    room,
                    TextRoom {
                        description: description.unwrap_or_else(|| format!("Room {room}")),
                        pin: pin.filter(|p| !p.is_empty()),
                        secret: secret.filter(|s| !s.is_empty()),
                        is_private: is_private.unwrap_or(false),
                        members: BTreeMap::new(),
                    },
                );
                debug!(room, "text room created");
                json!({"textroom": "created", "room": room, "permanent": false})
            }
            TextRoomApiRequest::Destroy { room, secret } => {
                if let Some(e) = self.textroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                if let Some(r) = self.textrooms.remove(&room) {
                    let event = json!({"textroom": "destroyed", "room": room}).to_string();
                    for (username, member) in r.members {
                        if let Some(h) = self.textroom_handle(member.handle) {
                            h.joined.remove(&room);
                        }
                        let _ = username;
                        self.textroom_send(member.handle, &event);
                    }
                }
                json!({"textroom": "destroyed", "room": room, "permanent": false})
            }
            TextRoomApiRequest::Exists { room } => {
                json!({"textroom": "success", "room": room, "exists": self.textrooms.contains_key(&room)})
            }
            TextRoomApiRequest::List => {
                let list: Vec<Value> = self
                    .textrooms
                    .iter()
                    .filter(|(_, r)| !r.is_private)
                    .map(|(id, r)| {
                        json!({"room": id, "description": r.description, "pin_required": r.pin.is_some(),
                               "num_participants": r.members.len()})
                    })
                    .collect();
                json!({"textroom": "success", "list": list})
            }
            TextRoomApiRequest::Listparticipants { room } => match self.textrooms.get(&room) {
                None => error_body(code::NO_SUCH_ROOM, "No such room", None),
                Some(r) => {
                    let participants: Vec<TextRoomParticipant> = r
                        .members
                        .iter()
                        .map(|(u, m)| TextRoomParticipant {
                            username: u.clone(),
                            display: m.display.clone(),
                        })
                        .collect();
                    json!({"textroom": "success", "room": room, "participants": participants})
                }
            },
            TextRoomApiRequest::Kick {
                room,
                secret,
                username,
            } => {
                if let Some(e) = self.textroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                let Some(member) = self
                    .textrooms
                    .get_mut(&room)
                    .and_then(|r| r.members.remove(&username))
                else {
                    return error_body(code::NOT_IN_ROOM, "No such user in room", None);
                };
                if let Some(h) = self.textroom_handle(member.handle) {
                    h.joined.remove(&room);
                }
                let event =
                    json!({"textroom": "kicked", "room": room, "username": username}).to_string();
                self.textroom_send(member.handle, &event);
                self.textroom_broadcast(room, &event, None);
                json!({"textroom": "success"})
            }
            TextRoomApiRequest::Announcement { room, secret, text } => {
                if let Some(e) = self.textroom_check_secret(room, secret.as_deref()) {
                    return e;
                }
                let event = json!({"textroom": "announcement", "room": room, "date": now_iso8601(), "text": text});
                self.textroom_broadcast(room, &event.to_string(), None);
                json!({"textroom": "success"})
            }
            TextRoomApiRequest::Setup | TextRoomApiRequest::Ack | TextRoomApiRequest::Restart => {
                error_body(code::INVALID_REQUEST, "Not an administration request", None)
            }
        }
    }

    fn textroom_check_secret(&self, room: u64, supplied: Option<&str>) -> Option<Value> {
        let Some(r) = self.textrooms.get(&room) else {
            return Some(error_body(code::NO_SUCH_ROOM, "No such room", None));
        };
        match check_secret(r.secret.as_deref(), supplied) {
            SecretCheck::Allowed => None,
            SecretCheck::Missing => Some(error_body(
                code::MISSING_ELEMENT,
                "Missing mandatory element (secret)",
                None,
            )),
            SecretCheck::Wrong => Some(error_body(
                code::UNAUTHORIZED,
                "Unauthorized (wrong secret)",
                None,
            )),
        }
    }

    /// A message on a handle's data channel.
    pub(crate) fn textroom_data(&mut self, handle_id: u64, channel: ChannelId, text: &str) {
        self.audit("datachannel", handle_id, text);
        let Some(state) = self.textroom_handle(handle_id) else {
            return;
        };
        state.channel = Some(channel);
        if text.len() > self.config.limits.max_message_bytes {
            let e = error_body(code::INVALID_ELEMENT, "Message too large", None);
            self.textroom_send(handle_id, &e.to_string());
            return;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                let e = error_body(code::INVALID_ELEMENT, "JSON error: invalid JSON", None);
                self.textroom_send(handle_id, &e.to_string());
                return;
            }
        };
        let transaction = value
            .get("transaction")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let request = match TextRoomRequest::from_json(text) {
            Ok(r) => r,
            Err(_) => {
                let kind = value
                    .get("textroom")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // Administration requests are accepted on the data channel too.
                if matches!(
                    kind,
                    "create"
                        | "destroy"
                        | "exists"
                        | "list"
                        | "listparticipants"
                        | "kick"
                        | "announcement"
                ) {
                    let mut body = value.clone();
                    body["request"] = json!(kind);
                    let answer = match TextRoomApiRequest::from_body(&body) {
                        Ok(r) => {
                            let ip = self.handle_ip(handle_id);
                            let mut a = self.textroom_admin(r, &body, ip);
                            if a["textroom"] != "error" {
                                a["textroom"] = json!("success");
                            }
                            a
                        }
                        Err(_) => {
                            error_body(code::INVALID_ELEMENT, "Invalid or missing element", None)
                        }
                    };
                    let mut answer = answer;
                    if let Some(t) = &transaction {
                        answer["transaction"] = json!(t);
                    }
                    self.textroom_send(handle_id, &answer.to_string());
                    return;
                }
                let (code, reason) = if kind.is_empty() {
                    (
                        code::MISSING_ELEMENT,
                        "Missing mandatory element (textroom)",
                    )
                } else if matches!(kind, "join" | "message" | "leave") {
                    (code::INVALID_ELEMENT, "Invalid or missing element")
                } else {
                    (code::INVALID_REQUEST, "Unsupported request")
                };
                let e = error_body(code, reason, transaction.as_deref());
                self.textroom_send(handle_id, &e.to_string());
                return;
            }
        };
        let answer = match request {
            TextRoomRequest::Join {
                transaction,
                room,
                username,
                display,
                pin,
            } => self.textroom_join(
                handle_id,
                &transaction,
                room,
                username,
                display,
                pin.as_deref(),
            ),
            TextRoomRequest::Message {
                transaction,
                room,
                text,
                to,
                tos,
                ack,
            } => self.textroom_chat(handle_id, &transaction, room, &text, to, tos, ack),
            TextRoomRequest::Leave { transaction, room } => {
                self.textroom_leave(handle_id, &transaction, room)
            }
        };
        if let Some(answer) = answer {
            self.textroom_send(handle_id, &answer.to_string());
        }
    }

    fn handle_ip(&self, handle_id: u64) -> std::net::IpAddr {
        let conn = self
            .handles
            .get(&handle_id)
            .and_then(|h| self.sessions.get(&h.session))
            .and_then(|s| s.conn);
        match conn {
            Some(c) => self.remote_ip(c),
            None => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }

    fn textroom_join(
        &mut self,
        handle_id: u64,
        transaction: &str,
        room: u64,
        username: String,
        display: Option<String>,
        pin: Option<&str>,
    ) -> Option<Value> {
        let t = Some(transaction);
        let Some(expected) = self.textrooms.get(&room).map(|r| r.pin.clone()) else {
            return Some(error_body(code::NO_SUCH_ROOM, "No such room", t));
        };
        let ip = self.handle_ip(handle_id);
        match self
            .pins
            .check(self.now, ip, room, expected.as_deref(), pin)
        {
            PinCheck::Allowed => {}
            PinCheck::Missing => {
                return Some(error_body(
                    code::MISSING_ELEMENT,
                    "Missing mandatory element (pin)",
                    t,
                ))
            }
            PinCheck::Wrong => {
                return Some(error_body(
                    code::UNAUTHORIZED,
                    "Unauthorized (wrong pin)",
                    t,
                ))
            }
            PinCheck::Limited => {
                return Some(error_body(
                    code::UNAUTHORIZED,
                    "Too many wrong PINs; try again later",
                    t,
                ))
            }
        }
        if username.is_empty() || username.len() > 256 {
            return Some(error_body(
                code::INVALID_ELEMENT,
                "Invalid element (username)",
                t,
            ));
        }
        let max = self.config.limits.max_participants_per_room;
        if self
            .textroom_handle(handle_id)
            .is_some_and(|h| h.joined.contains_key(&room))
        {
            return Some(error_body(code::ALREADY_IN_ROOM, "Already in room", t));
        }
        let Some(r) = self.textrooms.get_mut(&room) else {
            return Some(error_body(code::NO_SUCH_ROOM, "No such room", t));
        };
        if r.members.contains_key(&username) {
            return Some(error_body(
                code::USERNAME_EXISTS,
                "Username already taken",
                t,
            ));
        }
        if r.members.len() >= max {
            return Some(error_body(code::UNKNOWN, "The room is full", t));
        }
        let others: Vec<TextRoomParticipant> = r
            .members
            .iter()
            .map(|(u, m)| TextRoomParticipant {
                username: u.clone(),
                display: m.display.clone(),
            })
            .collect();
        r.members.insert(
            username.clone(),
            Member {
                handle: handle_id,
                display: display.clone(),
            },
        );
        if let Some(h) = self.textroom_handle(handle_id) {
            h.joined.insert(room, username.clone());
        }
        let mut event = json!({"textroom": "join", "room": room, "username": username});
        if let Some(d) = display {
            event["display"] = json!(d);
        }
        self.textroom_broadcast(room, &event.to_string(), Some(handle_id));
        Some(json!({"textroom": "success", "transaction": transaction, "participants": others}))
    }

    #[allow(clippy::too_many_arguments)]
    fn textroom_chat(
        &mut self,
        handle_id: u64,
        transaction: &str,
        room: u64,
        text: &str,
        to: Option<String>,
        tos: Option<Vec<String>>,
        ack: bool,
    ) -> Option<Value> {
        let t = Some(transaction);
        let Some(from) = self
            .textroom_handle(handle_id)
            .and_then(|h| h.joined.get(&room).cloned())
        else {
            return Some(error_body(code::NOT_IN_ROOM, "Not in room", t));
        };
        let Some(r) = self.textrooms.get(&room) else {
            return Some(error_body(code::NO_SUCH_ROOM, "No such room", t));
        };
        let recipients: Option<Vec<String>> = match (to, tos) {
            (Some(one), _) => Some(vec![one]),
            (None, Some(many)) => Some(many),
            (None, None) => None,
        };
        let whisper = recipients.is_some();
        let event =
            json!({"textroom": "message", "room": room, "from": from, "date": now_iso8601(),
                           "text": text, "whisper": whisper})
            .to_string();
        let targets: Vec<u64> = match &recipients {
            // Unknown addressees are skipped, as Janus does.
            Some(list) => list
                .iter()
                .filter_map(|u| r.members.get(u).map(|m| m.handle))
                .collect(),
            None => r.members.values().map(|m| m.handle).collect(),
        };
        for target in targets {
            self.textroom_send(target, &event);
        }
        ack.then(|| json!({"textroom": "success", "transaction": transaction}))
    }

    fn textroom_leave(&mut self, handle_id: u64, transaction: &str, room: u64) -> Option<Value> {
        let Some(username) = self
            .textroom_handle(handle_id)
            .and_then(|h| h.joined.remove(&room))
        else {
            return Some(error_body(
                code::NOT_IN_ROOM,
                "Not in room",
                Some(transaction),
            ));
        };
        self.textroom_remove_member(room, &username);
        Some(json!({"textroom": "success", "transaction": transaction}))
    }

    fn textroom_remove_member(&mut self, room: u64, username: &str) {
        if let Some(r) = self.textrooms.get_mut(&room) {
            r.members.remove(username);
        }
        let event = json!({"textroom": "leave", "room": room, "username": username}).to_string();
        self.textroom_broadcast(room, &event, None);
    }

    /// Sends to everyone in a room, except `except`.
    fn textroom_broadcast(&mut self, room: u64, text: &str, except: Option<u64>) {
        let Some(r) = self.textrooms.get(&room) else {
            return;
        };
        let targets: Vec<u64> = r
            .members
            .values()
            .map(|m| m.handle)
            .filter(|h| Some(*h) != except)
            .collect();
        for target in targets {
            self.textroom_send(target, text);
        }
    }

    /// Writes a text on a handle's data channel.
    fn textroom_send(&mut self, handle_id: u64, text: &str) {
        let Some(handle) = self.handles.get_mut(&handle_id) else {
            return;
        };
        let channel = match &handle.plugin {
            Plugin::TextRoom(t) => t.channel,
            Plugin::VideoRoom(_) => None,
        };
        if let (Some(peer), Some(channel)) = (handle.peer.as_mut(), channel) {
            if !peer.send_text(channel, text) {
                debug!(handle = handle_id, "data channel write failed");
            }
        }
        self.drain_peer(handle_id);
    }

    /// The handle is going away: leave every room.
    pub(crate) fn textroom_handle_gone(&mut self, handle_id: u64) {
        let joined = match self.textroom_handle(handle_id) {
            Some(h) => std::mem::take(&mut h.joined),
            None => return,
        };
        for (room, username) in joined {
            self.textroom_remove_member(room, &username);
        }
    }

    /// The handle's data channel is gone: same as leaving.
    pub(crate) fn textroom_peer_gone(&mut self, handle_id: u64) {
        self.textroom_handle_gone(handle_id);
        if let Some(h) = self.textroom_handle(handle_id) {
            h.channel = None;
        }
    }
}
