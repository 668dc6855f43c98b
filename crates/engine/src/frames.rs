//! Decoded video to a local renderer (the app's web view) over a WebSocket
//! on 127.0.0.1, protected by a random token per run.
//!
//! Each tile (a participant id; 0 is the local camera) keeps only its latest
//! frame: a slow renderer skips frames instead of falling behind. The
//! renderer says how big each tile is drawn and gets I420 scaled to that
//! size (never larger than decoded), so a gallery of small tiles costs little.
//!
//! Frame message (binary): `b"CVF1"`, tile id (u64), width (u32), height
//! (u32), then the Y, U and V planes tightly packed; all big-endian. The
//! renderer sends text `{"sizes": {"<tile>": [w, h], ...}}`.
//!
//! Nothing here leaves the machine: the listener is bound to loopback and
//! every connection must present the token.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use conclave_media::VideoFrame;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::video::FrameSink;

/// The tile id of the local camera.
pub const SELF_TILE: u64 = 0;
/// Set in a tile id whose picture is a participant's shared screen (their
/// id with this bit; our own share is `SELF_TILE | SCREEN_TILE`).
pub use conclave_media::SCREEN_TILE;

#[derive(Default)]
struct Tiles {
    latest: BTreeMap<u64, (u64, Arc<VideoFrame>)>,
    next_seq: u64,
}

/// The running frame server.
pub struct FrameServer {
    port: u16,
    token: String,
    tiles: Arc<Mutex<Tiles>>,
    notify: Arc<Notify>,
}

impl FrameServer {
    /// Binds 127.0.0.1 on a free port and serves until the runtime ends.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let port = listener.local_addr()?.port();
        let token: String = {
            let mut rng = rand::thread_rng();
            (0..32)
                .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
                .collect()
        };
        let tiles = Arc::new(Mutex::new(Tiles::default()));
        let notify = Arc::new(Notify::new());
        let (t, n, tok) = (tiles.clone(), notify.clone(), token.clone());
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (t, n, tok) = (t.clone(), n.clone(), tok.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &tok, t, n).await {
                        debug!(%peer, error = %e, "frame connection ended");
                    }
                });
            }
        });
        Ok(FrameServer {
            port,
            token,
            tiles,
            notify,
        })
    }

    /// The URL a renderer connects to, token included.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/frames?token={}", self.port, self.token)
    }

    /// A sink that publishes decoded frames to this server.
    pub fn sink(&self) -> FrameSink {
        let (tiles, notify) = (self.tiles.clone(), self.notify.clone());
        FrameSink(Arc::new(move |tile, frame: &VideoFrame| {
            if let Ok(mut t) = tiles.lock() {
                t.next_seq += 1;
                let seq = t.next_seq;
                t.latest.insert(tile, (seq, Arc::new(frame.clone())));
            }
            notify.notify_waiters();
        }))
    }

    /// The latest frame of a tile, at the size it was decoded (for a
    /// screenshot the user asked for).
    pub fn latest(&self, tile: u64) -> Option<Arc<VideoFrame>> {
        self.tiles
            .lock()
            .ok()?
            .latest
            .get(&tile)
            .map(|(_, f)| f.clone())
    }

    /// Forgets a tile (its participant left).
    pub fn remove(&self, tile: u64) {
        if let Ok(mut t) = self.tiles.lock() {
            t.latest.remove(&tile);
        }
    }

    /// Forgets every tile (the meeting ended).
    pub fn clear(&self) {
        if let Ok(mut t) = self.tiles.lock() {
            t.latest.clear();
        }
    }
}

fn token_of(uri: &str) -> Option<&str> {
    uri.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
}

/// Encodes a frame message.
pub fn encode_frame(tile: u64, frame: &VideoFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + frame.y.len() + frame.u.len() + frame.v.len());
    out.extend_from_slice(b"CVF1");
    out.extend_from_slice(&tile.to_be_bytes());
    out.extend_from_slice(&(frame.width as u32).to_be_bytes());
    out.extend_from_slice(&(frame.height as u32).to_be_bytes());
    out.extend_from_slice(&frame.y);
    out.extend_from_slice(&frame.u);
    out.extend_from_slice(&frame.v);
    out
}

// The handshake callback's error type is tungstenite's own.
#[allow(clippy::result_large_err)]
async fn serve(
    stream: TcpStream,
    token: &str,
    tiles: Arc<Mutex<Tiles>>,
    notify: Arc<Notify>,
) -> Result<(), String> {
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if token_of(&req.uri().to_string()) == Some(token) {
            Ok(resp)
        } else {
            let mut e = ErrorResponse::new(Some("bad token".into()));
            *e.status_mut() = StatusCode::FORBIDDEN;
            Err(e)
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, check)
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    let mut sizes: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    let mut sent: BTreeMap<u64, u64> = BTreeMap::new();
    loop {
        let wake = notify.notified();
        // Send every tile whose latest frame is newer than what we sent.
        let due: Vec<(u64, u64, Arc<VideoFrame>)> = match tiles.lock() {
            Ok(t) => t
                .latest
                .iter()
                .filter(|(tile, (seq, _))| sent.get(*tile).is_none_or(|s| s < seq))
                .map(|(tile, (seq, f))| (*tile, *seq, f.clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (tile, seq, frame) in due {
            sent.insert(tile, seq);
            let scaled = match sizes.get(&tile) {
                Some(&(w, h)) if w < frame.width || h < frame.height => {
                    // Keep the aspect ratio: fit inside the tile.
                    let scale = (w as f64 / frame.width as f64).min(h as f64 / frame.height as f64);
                    let w = ((frame.width as f64 * scale) as usize).max(2);
                    let h = ((frame.height as f64 * scale) as usize).max(2);
                    Some(frame.scaled(w, h))
                }
                _ => None,
            };
            let msg = encode_frame(tile, scaled.as_ref().unwrap_or(&frame));
            tx.send(Message::binary(msg))
                .await
                .map_err(|e| e.to_string())?;
        }
        tokio::select! {
            _ = wake => {}
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                        if let Some(map) = v.get("sizes").and_then(|s| s.as_object()) {
                            for (tile, wh) in map {
                                let (Ok(tile), Some(w), Some(h)) = (
                                    tile.parse::<u64>(),
                                    wh.get(0).and_then(serde_json::Value::as_u64),
                                    wh.get(1).and_then(serde_json::Value::as_u64),
                                ) else { continue };
                                sizes.insert(tile, ((w as usize).clamp(16, 3840), (h as usize).clamp(16, 2160)));
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_need_the_token_and_the_latest_frame_wins() {
        let server = FrameServer::start().await.expect("start");
        let url = server.url();
        let bad = url.replace("token=", "token=x");
        assert!(
            tokio_tungstenite::connect_async(&bad).await.is_err(),
            "a wrong token is refused"
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connect");
        let sink = server.sink();
        for i in 0..5u8 {
            let mut f = VideoFrame::black(64, 32);
            f.y[0] = i;
            (sink.0)(7, &f);
        }
        let msg = ws.next().await.expect("a frame").expect("ok");
        let data = msg.into_data();
        assert_eq!(&data[..4], b"CVF1");
        assert_eq!(u64::from_be_bytes(data[4..12].try_into().expect("id")), 7);
        assert_eq!(u32::from_be_bytes(data[12..16].try_into().expect("w")), 64);
        assert_eq!(data[20], 4, "only the latest frame is sent");
        assert_eq!(data.len(), 20 + 64 * 32 * 3 / 2);
    }
}
