//! The VideoRoom plugin API (`janus.plugin.videoroom`): requests sent as a
//! `message` body and the events and answers found in `plugindata.data`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DecodeError;

/// What a publisher says one of its streams is (`descriptions` in
/// publish/configure), e.g. `screen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDescription {
    /// The publisher's m-line id.
    pub mid: String,
    /// Free text; Conclave uses `screen` and `screen-audio` for a share.
    pub description: String,
}

/// One stream of a multistream subscription (`streams` in join/update).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeStream {
    /// The publisher whose stream is wanted.
    pub feed: u64,
    /// A specific m-line of that publisher; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
}

/// A stream a subscriber drops in an `update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribeStream {
    /// The publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<u64>,
    /// The publisher's m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    /// The subscriber-side m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mid: Option<String>,
}

/// Which kind of participant a `join` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantType {
    /// Sends media (and can stay without publishing).
    Publisher,
    /// Receives media from publishers.
    Subscriber,
}

/// Room properties for `create` and `edit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomProperties {
    /// Room description (the meeting topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// PIN required to join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Secret required for admin requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Hide the room from `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_private: Option<bool>,
    /// Maximum number of concurrent publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishers: Option<u32>,
    /// Notify everyone when anyone joins, not only publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_joining: Option<bool>,
    /// Send talking events computed from audio levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiolevel_event: Option<bool>,
    /// Comma separated audio codecs, e.g. `opus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiocodec: Option<String>,
    /// Comma separated video codecs, e.g. `vp8,h264`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub videocodec: Option<String>,
}

/// A VideoRoom request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "lowercase")]
pub enum VideoRoomRequest {
    /// Create a room.
    Create {
        /// Room id.
        room: u64,
        /// Keep the room in the server's config file (always false here).
        #[serde(default)]
        permanent: bool,
        /// Properties.
        #[serde(flatten)]
        properties: RoomProperties,
    },
    /// Change room properties.
    Edit {
        /// Room id.
        room: u64,
        /// The room secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// New PIN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_pin: Option<String>,
        /// New description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_description: Option<String>,
    },
    /// Destroy a room.
    Destroy {
        /// Room id.
        room: u64,
        /// The room secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// Does a room exist?
    Exists {
        /// Room id.
        room: u64,
    },
    /// List public rooms.
    List,
    /// List a room's participants.
    Listparticipants {
        /// Room id.
        room: u64,
    },
    /// Join a room as publisher or subscriber.
    Join {
        /// Room id.
        room: u64,
        /// Publisher or subscriber.
        ptype: ParticipantType,
        /// Publisher id to use (publishers only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Display name (publishers only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
        /// Room PIN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
        /// Subscriber streams.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streams: Option<Vec<SubscribeStream>>,
        /// For subscribers: the private id of the publisher this subscriber belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private_id: Option<u64>,
        /// For subscribers, the older single-publisher form: all streams of this publisher.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<u64>,
    },
    /// Change publishing settings (and renegotiate when a JSEP is attached).
    Configure {
        /// Change the display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
        /// Extra per-stream settings, passed through unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streams: Option<Value>,
        /// What the published streams are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        descriptions: Option<Vec<StreamDescription>>,
        /// Subscribers: ask for a new offer with an ICE restart (the
        /// subscriber's network changed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart: Option<bool>,
    },
    /// Start publishing (a JSEP offer is attached).
    Publish {
        /// Change the display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
        /// What the published streams are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        descriptions: Option<Vec<StreamDescription>>,
    },
    /// Stop publishing.
    Unpublish,
    /// Change a subscription.
    Update {
        /// Streams to add.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subscribe: Option<Vec<SubscribeStream>>,
        /// Streams to drop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unsubscribe: Option<Vec<UnsubscribeStream>>,
    },
    /// Add streams to a subscription.
    Subscribe {
        /// Streams to add.
        streams: Vec<SubscribeStream>,
    },
    /// Drop streams from a subscription.
    Unsubscribe {
        /// Streams to drop.
        streams: Vec<UnsubscribeStream>,
    },
    /// Start receiving (a JSEP answer is attached).
    Start,
    /// Pause a subscription.
    Pause,
    /// Leave the room.
    Leave,
    /// Kick a participant (needs the room secret).
    Kick {
        /// Room id.
        room: u64,
        /// Room secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The participant.
        id: u64,
    },
    /// Mute or unmute a participant's stream (needs the room secret).
    Moderate {
        /// Room id.
        room: u64,
        /// Room secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The participant.
        id: u64,
        /// The m-line to act on.
        mid: String,
        /// Mute (true) or allow (false).
        mute: bool,
    },
}

impl VideoRoomRequest {
    /// The JSON body for a Janus `message` request.
    pub fn to_body(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a request body (used by servers).
    pub fn from_body(body: &Value) -> Result<Self, DecodeError> {
        crate::decode_tagged_value(body, "request")
    }
}

/// One stream a publisher offers (`streams` of a publisher entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedStream {
    /// `audio`, `video` or `data`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// m-line id.
    #[serde(default)]
    pub mid: String,
    /// Codec name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Whether the stream is currently disabled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Stream description (e.g. "screen").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A participant as listed in `joined`, `publishers` and `attendees`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomParticipant {
    /// Publisher id.
    pub id: u64,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Published streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<PublishedStream>,
    /// Whether the participant is talking (talking events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talking: Option<bool>,
}

/// What the host set for a meeting, kept by the server as the room's
/// description so that everyone who joins learns it from the server (not
/// from a link that could be edited): the topic, whether local recording is
/// allowed and whether several people may share their screens at once. The
/// rules are tags at the end of the description ([`NO_RECORDING_TAG`],
/// [`SEVERAL_PRESENTERS_TAG`], in any order); other clients see them as
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDescription {
    /// The meeting topic, if any.
    pub topic: Option<String>,
    /// Whether participants may record the meeting on their devices.
    pub recording_allowed: bool,
    /// Whether several participants may share their screens at once (else
    /// one at a time).
    pub several_presenters: bool,
}

impl Default for RoomDescription {
    /// A room with no description: no topic, recording allowed, one
    /// presenter at a time.
    fn default() -> Self {
        RoomDescription {
            topic: None,
            recording_allowed: true,
            several_presenters: false,
        }
    }
}

/// The end of a room description that forbids local recording.
pub const NO_RECORDING_TAG: &str = "[no local recording]";

/// The end of a room description that lets several people share at once.
pub const SEVERAL_PRESENTERS_TAG: &str = "[several presenters]";

impl RoomDescription {
    /// Reads a room's description (none: no topic, recording allowed, one
    /// presenter).
    pub fn parse(description: Option<&str>) -> Self {
        let mut text = description.unwrap_or_default().trim();
        let mut room = RoomDescription::default();
        loop {
            if let Some(rest) = text.strip_suffix(NO_RECORDING_TAG) {
                room.recording_allowed = false;
                text = rest.trim_end();
            } else if let Some(rest) = text.strip_suffix(SEVERAL_PRESENTERS_TAG) {
                room.several_presenters = true;
                text = rest.trim_end();
            } else {
                break;
            }
        }
        room.topic = (!text.is_empty()).then(|| text.to_owned());
        room
    }

    /// The description to create a room with (none when there is nothing
    /// to say).
    pub fn to_description(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(topic) = self.topic.as_deref().map(str::trim) {
            if !topic.is_empty() {
                parts.push(topic);
            }
        }
        if self.several_presenters {
            parts.push(SEVERAL_PRESENTERS_TAG);
        }
        if !self.recording_allowed {
            parts.push(NO_RECORDING_TAG);
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// A VideoRoom answer or event, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoRoomEvent {
    /// We joined as publisher.
    Joined {
        /// Room id.
        room: u64,
        /// Our publisher id.
        id: u64,
        /// Our private id (for subscriptions tied to us).
        private_id: Option<u64>,
        /// Current publishers.
        publishers: Vec<RoomParticipant>,
        /// Participants that do not publish (with `notify_joining`).
        attendees: Vec<RoomParticipant>,
        /// The room's description (see [`RoomDescription`]).
        description: Option<String>,
    },
    /// We joined as subscriber (`attached`).
    Attached {
        /// Room id.
        room: u64,
    },
    /// Publishers appeared or changed their streams.
    Publishers(Vec<RoomParticipant>),
    /// A non-publisher joined (with `notify_joining`).
    Joining(RoomParticipant),
    /// A publisher stopped publishing.
    Unpublished(u64),
    /// A participant left.
    Leaving(u64),
    /// A participant was kicked.
    Kicked(u64),
    /// Someone started (true) or stopped (false) talking.
    Talking {
        /// The participant.
        id: u64,
        /// Whether they are talking now.
        talking: bool,
    },
    /// A subscription was updated (and a new offer may be attached).
    Updated,
    /// The room was destroyed.
    Destroyed(u64),
    /// A request succeeded (`configured`, `started`, `success`...).
    Ok {
        /// The raw body, for requests with answers (`exists`, `list`...).
        body: Value,
    },
    /// A plugin-level error.
    Error {
        /// The VideoRoom error code (see [`error_code`]).
        code: i64,
        /// The error text.
        reason: String,
    },
    /// An event this client does not act on.
    Other(Value),
}

impl VideoRoomEvent {
    /// Classifies a `plugindata.data` object from the VideoRoom plugin.
    pub fn from_data(data: &Value) -> Result<Self, DecodeError> {
        let obj = data.as_object().ok_or(DecodeError::Invalid {
            reason: "videoroom data is not an object".into(),
        })?;
        let kind = obj
            .get("videoroom")
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError::MissingTag {
                tag: "videoroom".into(),
            })?;
        let u64_of = |key: &str| obj.get(key).and_then(Value::as_u64);
        let list_of = |key: &str| -> Result<Vec<RoomParticipant>, DecodeError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| DecodeError::Invalid {
                    reason: crate::redact_values(&format!("videoroom {key}: {e}")),
                }),
            }
        };
        if let Some(code) = obj.get("error_code").and_then(Value::as_i64) {
            let reason = obj
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Ok(VideoRoomEvent::Error { code, reason });
        }
        let room = u64_of("room").unwrap_or_default();
        Ok(match kind {
            "joined" => VideoRoomEvent::Joined {
                room,
                id: u64_of("id").ok_or(DecodeError::Invalid {
                    reason: "joined without id".into(),
                })?,
                private_id: u64_of("private_id"),
                publishers: list_of("publishers")?,
                attendees: list_of("attendees")?,
                description: obj
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            "attached" => VideoRoomEvent::Attached { room },
            "destroyed" => VideoRoomEvent::Destroyed(room),
            "talking" | "stopped-talking" => VideoRoomEvent::Talking {
                id: u64_of("id").unwrap_or_default(),
                talking: kind == "talking",
            },
            "updated" => VideoRoomEvent::Updated,
            "event" => {
                if obj.contains_key("publishers") {
                    VideoRoomEvent::Publishers(list_of("publishers")?)
                } else if let Some(joining) = obj.get("joining") {
                    VideoRoomEvent::Joining(serde_json::from_value(joining.clone()).map_err(
                        |e| DecodeError::Invalid {
                            reason: crate::redact_values(&format!("videoroom joining: {e}")),
                        },
                    )?)
                } else if let Some(id) = u64_of("unpublished") {
                    VideoRoomEvent::Unpublished(id)
                } else if let Some(id) = u64_of("leaving") {
                    VideoRoomEvent::Leaving(id)
                } else if let Some(id) = u64_of("kicked") {
                    VideoRoomEvent::Kicked(id)
                } else if obj.contains_key("configured")
                    || obj.contains_key("started")
                    || obj.contains_key("paused")
                    || obj.contains_key("left")
                    || obj.contains_key("unpublished")
                {
                    VideoRoomEvent::Ok { body: data.clone() }
                } else {
                    VideoRoomEvent::Other(data.clone())
                }
            }
            "success" | "created" | "edited" | "participants" => {
                VideoRoomEvent::Ok { body: data.clone() }
            }
            _ => VideoRoomEvent::Other(data.clone()),
        })
    }
}

/// VideoRoom plugin error codes that clients act on.
pub mod error_code {
    /// The room does not exist.
    pub const NO_SUCH_ROOM: i64 = 426;
    /// Wrong PIN or secret.
    pub const UNAUTHORIZED: i64 = 433;
    /// The room already exists.
    pub const ROOM_EXISTS: i64 = 427;
    /// The publisher id is taken.
    pub const ID_EXISTS: i64 = 436;
    /// The participant does not exist.
    pub const NO_SUCH_FEED: i64 = 428;
    /// The room is full.
    pub const TOO_MANY_PUBLISHERS: i64 = 432;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_body_shape() {
        let body = VideoRoomRequest::Join {
            room: 1234,
            ptype: ParticipantType::Publisher,
            id: Some(7),
            display: Some("Ann".into()),
            pin: Some("p".into()),
            streams: None,
            private_id: None,
            feed: None,
        }
        .to_body();
        assert_eq!(
            body,
            json!({"request":"join","room":1234,"ptype":"publisher","id":7,"display":"Ann","pin":"p"})
        );
        assert_eq!(
            VideoRoomRequest::from_body(&body).expect("round trip"),
            VideoRoomRequest::Join {
                room: 1234,
                ptype: ParticipantType::Publisher,
                id: Some(7),
                display: Some("Ann".into()),
                pin: Some("p".into()),
                streams: None,
                private_id: None,
                feed: None,
            }
        );
    }

    #[test]
    fn room_descriptions_carry_the_topic_and_the_rules() {
        for topic in [None, Some("Weekly")] {
            for recording_allowed in [true, false] {
                for several_presenters in [true, false] {
                    let d = RoomDescription {
                        topic: topic.map(str::to_owned),
                        recording_allowed,
                        several_presenters,
                    };
                    assert_eq!(RoomDescription::parse(d.to_description().as_deref()), d);
                }
            }
        }
        assert_eq!(RoomDescription::default().to_description(), None);
        let plans = RoomDescription::parse(Some("Plans [no local recording]"));
        assert_eq!(plans.topic.as_deref(), Some("Plans"));
        assert!(!plans.recording_allowed && !plans.several_presenters);
        // Tags in either order.
        let both = RoomDescription::parse(Some("Plans [no local recording] [several presenters]"));
        assert_eq!(both.topic.as_deref(), Some("Plans"));
        assert!(!both.recording_allowed && both.several_presenters);
        assert!(RoomDescription::parse(Some("Janus room")).recording_allowed);
    }

    proptest::proptest! {
        #[test]
        fn any_description_reads_without_panic_and_round_trips(text in ".{0,80}") {
            let room = RoomDescription::parse(Some(&text));
            proptest::prop_assert_eq!(RoomDescription::parse(room.to_description().as_deref()), room);
        }
    }

    #[test]
    fn classifies_events() {
        let joined = json!({"videoroom":"joined","room":1,"id":5,"private_id":9,
            "publishers":[{"id":6,"display":"Bo","streams":[{"type":"audio","mid":"0","codec":"opus"}]}],
            "attendees":[{"id":8,"display":"Cy"}]});
        match VideoRoomEvent::from_data(&joined).expect("ok") {
            VideoRoomEvent::Joined {
                id,
                publishers,
                attendees,
                ..
            } => {
                assert_eq!(id, 5);
                assert_eq!(publishers[0].streams[0].codec.as_deref(), Some("opus"));
                assert_eq!(attendees[0].display.as_deref(), Some("Cy"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            VideoRoomEvent::from_data(&json!({"videoroom":"event","room":1,"leaving":5}))
                .expect("ok"),
            VideoRoomEvent::Leaving(5)
        );
        assert_eq!(
            VideoRoomEvent::from_data(
                &json!({"videoroom":"event","error_code":433,"error":"Unauthorized"})
            )
            .expect("ok"),
            VideoRoomEvent::Error {
                code: 433,
                reason: "Unauthorized".into()
            }
        );
        assert!(VideoRoomEvent::from_data(&json!({"videoroom":"joined","room":1})).is_err());
        assert!(VideoRoomEvent::from_data(&json!([1, 2])).is_err());
    }
}
