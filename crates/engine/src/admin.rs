//! Room administration over the Janus API: create and destroy the VideoRoom
//! and TextRoom pair that makes one Conclave meeting.

use std::time::Duration;

use conclave_protocol::janus::{self, Request, ServerMessage};
use conclave_protocol::link::{derive_room_pin, ChatKey, MeetingId, Password, CHAT_KEY_LEN};
use conclave_protocol::textroom::TextRoomApiRequest;
use conclave_protocol::videoroom::{RoomProperties, VideoRoomRequest};
use conclave_protocol::MeetingInfo;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, RngCore};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::runtime::connect_signaling;

/// How long one administrative request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an administrative request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The server could not be reached.
    #[error("could not reach the meeting server: {0}")]
    Connect(String),
    /// The connection dropped or the server did not answer in time.
    #[error("the meeting server did not answer: {0}")]
    NoAnswer(String),
    /// The server refused the request.
    #[error("the meeting server refused: {reason} ({code})")]
    Refused {
        /// Janus or plugin error code.
        code: i64,
        /// The server's reason.
        reason: String,
    },
}

/// A meeting room to create.
#[derive(Debug, Clone)]
pub struct RoomSpec {
    /// Meeting ID.
    pub room: MeetingId,
    /// Meeting password; the server only gets its derived PIN.
    pub password: Option<String>,
    /// Admin secret for later destroy/kick.
    pub secret: Option<String>,
    /// Meeting topic.
    pub description: Option<String>,
}

/// One administrative session on a server.
pub struct AdminSession {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session_id: u64,
    next_tx: u64,
}

impl AdminSession {
    /// Connects and creates a Janus session.
    pub async fn connect(server: &str, fingerprint: Option<&str>) -> Result<Self, AdminError> {
        let ws = connect_signaling(server, fingerprint)
            .await
            .map_err(AdminError::Connect)?;
        let mut s = AdminSession {
            ws,
            session_id: 0,
            next_tx: 1,
        };
        let transaction = s.tx();
        let answer = s.call(Request::Create { transaction }).await?;
        s.session_id = match answer {
            ServerMessage::Success { data: Some(d), .. } => d.id,
            other => return Err(AdminError::NoAnswer(format!("unexpected {other:?}"))),
        };
        Ok(s)
    }

    fn tx(&mut self) -> String {
        self.next_tx += 1;
        format!("a{}", self.next_tx)
    }

    async fn call(&mut self, req: Request) -> Result<ServerMessage, AdminError> {
        let transaction = req.transaction().to_owned();
        self.ws
            .send(Message::text(req.to_json()))
            .await
            .map_err(|e| AdminError::NoAnswer(e.to_string()))?;
        let wait = async {
            while let Some(frame) = self.ws.next().await {
                let text = match frame {
                    Ok(Message::Text(t)) => t.to_string(),
                    Ok(_) => continue,
                    Err(e) => return Err(AdminError::NoAnswer(e.to_string())),
                };
                let Ok(msg) = ServerMessage::from_json(&text) else {
                    continue;
                };
                if msg.transaction() != Some(transaction.as_str()) {
                    continue;
                }
                match msg {
                    ServerMessage::Ack { .. } => continue,
                    ServerMessage::Error { error, .. } => {
                        return Err(AdminError::Refused {
                            code: error.code,
                            reason: error.reason,
                        })
                    }
                    other => return Ok(other),
                }
            }
            Err(AdminError::NoAnswer("connection closed".into()))
        };
        tokio::time::timeout(ADMIN_TIMEOUT, wait)
            .await
            .map_err(|_| AdminError::NoAnswer("timed out".into()))?
    }

    /// Attaches a plugin handle.
    async fn attach(&mut self, plugin: &str) -> Result<u64, AdminError> {
        let transaction = self.tx();
        match self
            .call(Request::Attach {
                transaction,
                session_id: self.session_id,
                plugin: plugin.into(),
                opaque_id: None,
            })
            .await?
        {
            ServerMessage::Success { data: Some(d), .. } => Ok(d.id),
            other => Err(AdminError::NoAnswer(format!("unexpected {other:?}"))),
        }
    }

    /// Sends a synchronous plugin request and returns its answer body.
    pub async fn plugin_request(&mut self, plugin: &str, body: Value) -> Result<Value, AdminError> {
        let handle_id = self.attach(plugin).await?;
        let transaction = self.tx();
        let answer = self
            .call(Request::Message {
                transaction,
                session_id: self.session_id,
                handle_id,
                body,
                jsep: None,
            })
            .await?;
        let data = match answer {
            ServerMessage::Success {
                plugindata: Some(p),
                ..
            }
            | ServerMessage::Event { plugindata: p, .. } => p.data,
            other => return Err(AdminError::NoAnswer(format!("unexpected {other:?}"))),
        };
        if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
            return Err(AdminError::Refused {
                code,
                reason: data
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(data)
    }

    /// Creates the VideoRoom and the TextRoom of a meeting.
    pub async fn create_meeting(&mut self, spec: &RoomSpec) -> Result<(), AdminError> {
        let pin = spec
            .password
            .as_deref()
            .map(|p| derive_room_pin(spec.room, p));
        let video = VideoRoomRequest::Create {
            room: spec.room.0,
            permanent: false,
            properties: RoomProperties {
                description: spec.description.clone(),
                pin: pin.clone(),
                secret: spec.secret.clone(),
                is_private: Some(true),
                publishers: Some(16),
                notify_joining: Some(true),
                audiolevel_event: Some(true),
                audiocodec: Some("opus".into()),
                videocodec: Some("vp8,h264".into()),
            },
        };
        self.plugin_request(janus::VIDEOROOM_PLUGIN, video.to_body())
            .await?;
        let text = TextRoomApiRequest::Create {
            room: spec.room.0,
            description: spec.description.clone(),
            secret: spec.secret.clone(),
            pin,
            is_private: Some(true),
            history: 0,
            permanent: false,
        };
        self.plugin_request(janus::TEXTROOM_PLUGIN, text.to_body())
            .await?;
        Ok(())
    }

    /// Destroys both rooms of a meeting.
    pub async fn destroy_meeting(
        &mut self,
        room: MeetingId,
        secret: Option<&str>,
    ) -> Result<(), AdminError> {
        let secret = secret.map(str::to_owned);
        self.plugin_request(
            janus::VIDEOROOM_PLUGIN,
            VideoRoomRequest::Destroy {
                room: room.0,
                secret: secret.clone(),
            }
            .to_body(),
        )
        .await?;
        self.plugin_request(
            janus::TEXTROOM_PLUGIN,
            TextRoomApiRequest::Destroy {
                room: room.0,
                secret,
            }
            .to_body(),
        )
        .await?;
        Ok(())
    }

    /// Destroys the session and closes the connection.
    pub async fn close(mut self) {
        let transaction = self.tx();
        let _ = self
            .call(Request::Destroy {
                transaction,
                session_id: self.session_id,
            })
            .await;
        let _ = self.ws.close(None).await;
    }
}

/// Connects, creates a meeting's rooms, and disconnects.
pub async fn create_meeting(
    server: &str,
    fingerprint: Option<&str>,
    spec: &RoomSpec,
) -> Result<(), AdminError> {
    let mut s = AdminSession::connect(server, fingerprint).await?;
    let result = s.create_meeting(spec).await;
    s.close().await;
    result
}

/// Connects and destroys a meeting's rooms (everyone in it gets "the meeting
/// was ended").
pub async fn destroy_meeting(
    server: &str,
    fingerprint: Option<&str>,
    room: MeetingId,
    secret: Option<&str>,
) -> Result<(), AdminError> {
    let mut s = AdminSession::connect(server, fingerprint).await?;
    let result = s.destroy_meeting(room, secret).await;
    s.close().await;
    result
}

/// Creates a meeting's rooms and returns the meeting info for its invitation
/// link: the server, the ID, the password, and a fresh random chat key, so chat
/// in it is end-to-end encrypted.
pub async fn host_meeting(
    server: &str,
    fingerprint: Option<&str>,
    spec: &RoomSpec,
) -> Result<MeetingInfo, AdminError> {
    create_meeting(server, fingerprint, spec).await?;
    let mut key = [0u8; CHAT_KEY_LEN];
    rand::thread_rng().fill_bytes(&mut key);
    Ok(MeetingInfo {
        server: Some(server.to_owned()),
        room: spec.room,
        password: spec.password.clone().map(Password),
        chat_key: Some(ChatKey(key)),
        cert_fingerprint: fingerprint.map(str::to_owned),
        relay: None,
    })
}

/// A random meeting ID (nine digits) and a random password and secret, for a
/// meeting hosted on the spot.
pub fn random_room_spec(description: Option<String>) -> RoomSpec {
    let mut rng = rand::thread_rng();
    let token = |rng: &mut rand::rngs::ThreadRng| {
        let mut bytes = [0u8; 9];
        rng.fill_bytes(&mut bytes);
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    };
    RoomSpec {
        room: MeetingId(rng.gen_range(100_000_000..1_000_000_000)),
        password: Some(token(&mut rng)),
        secret: Some(token(&mut rng)),
        description,
    }
}
