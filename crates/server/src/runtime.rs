//! The tokio driver of [`Server`]: a WebSocket listener (subprotocol
//! `janus-protocol`) that also takes ICE-TCP connections (RFC 6544, framed
//! by RFC 4571) on the same port, one UDP socket for all media, and the
//! clock.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::core::{ConnId, Input, Output, Protocol, Server};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// WebSocket listen address (`127.0.0.1:8188` is Janus's default).
    pub listen: SocketAddr,
    /// The address the media socket binds to and offers in ICE candidates.
    /// Defaults to the listen address's IP.
    pub media_ip: Option<IpAddr>,
    /// Limits and policies.
    pub config: Config,
    /// Serve `wss://` with this certificate; plain `ws://` without.
    pub tls: Option<Arc<crate::tls::TlsIdentity>>,
    /// A public address that maps to the media address (1:1 NAT), offered
    /// as a server-reflexive candidate.
    pub public_ip: Option<IpAddr>,
    /// Append everything received at the application level to this file, one
    /// JSON object per line. Off unless set; for privacy tests and audits.
    pub audit: Option<std::path::PathBuf>,
    /// Take media over TCP on the WebSocket's port (a passive ICE-TCP
    /// candidate), for clients whose UDP is blocked.
    pub ice_tcp: bool,
}

/// A running server. Dropping it does not stop it; call [`RunningServer::stop`].
pub struct RunningServer {
    /// The WebSocket address clients connect to.
    pub ws_addr: SocketAddr,
    /// The media socket's address.
    pub media_addr: SocketAddr,
    /// SHA-256 of the TLS certificate, when serving `wss://`.
    pub fingerprint: Option<String>,
    shutdown: Arc<Notify>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The `ws://` or `wss://` URL of the server.
    pub fn url(&self) -> String {
        let scheme = if self.fingerprint.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.ws_addr)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(self) {
        self.shutdown.notify_one();
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

enum ConnEvent {
    Open {
        conn: ConnId,
        remote: SocketAddr,
        tx: mpsc::UnboundedSender<Message>,
        /// The WebSocket upgrade request: its request line and headers (for
        /// the audit file: it shows what the client says of itself).
        handshake: String,
    },
    Text {
        conn: ConnId,
        text: String,
    },
    Closed {
        conn: ConnId,
    },
    /// A plain HTTP request (the join page), for the audit file.
    Page {
        conn: ConnId,
        request: String,
    },
    /// An ICE-TCP connection opened: packets for `remote` go to `tx`.
    IceTcpOpen {
        remote: SocketAddr,
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// A packet arrived on an ICE-TCP connection.
    IceTcpPacket {
        remote: SocketAddr,
        packet: Vec<u8>,
    },
    /// An ICE-TCP connection ended.
    IceTcpClosed {
        remote: SocketAddr,
    },
}

/// ICE-TCP connections held at once; more are refused.
const MAX_ICE_TCP_LINKS: usize = 2000;

/// An ICE-TCP connection that sends nothing for this long is closed.
const ICE_TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Framed packets queued for one ICE-TCP connection; beyond it they are
/// dropped, as a full UDP buffer would drop them.
const ICE_TCP_QUEUE: usize = 512;

/// Binds the sockets and starts serving.
pub async fn start(options: Options) -> io::Result<RunningServer> {
    let listener = TcpListener::bind(options.listen).await?;
    let ws_addr = listener.local_addr()?;
    let media_ip = options.media_ip.unwrap_or(ws_addr.ip());
    if media_ip.is_unspecified() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the media address must be a concrete IP (set media_ip when listening on 0.0.0.0)",
        ));
    }
    let udp = UdpSocket::bind(SocketAddr::new(media_ip, 0)).await?;
    let media_addr = udp.local_addr()?;
    info!(%ws_addr, %media_addr, "meeting server listening");
    let shutdown = Arc::new(Notify::new());
    let max_message = options.config.limits.max_message_bytes;
    let acceptor = options.tls.as_ref().map(|t| t.acceptor()).transpose()?;
    let fingerprint = options.tls.as_ref().map(|t| t.fingerprint());
    let mut config = options.config;
    let audit = match &options.audit {
        Some(path) => {
            config.audit = true;
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        }
        None => None,
    };
    // The passive ICE-TCP candidate: the WebSocket's port, on the address
    // it listens on (the media IP when that is every interface).
    let ice_tcp = options.ice_tcp.then(|| {
        let ip = if ws_addr.ip().is_unspecified() {
            media_ip
        } else {
            ws_addr.ip()
        };
        SocketAddr::new(ip, ws_addr.port())
    });
    let ice = crate::core::IceAddresses {
        host: vec![media_addr],
        reflexive: options
            .public_ip
            .map(|ip| (SocketAddr::new(ip, media_addr.port()), media_addr))
            .into_iter()
            .collect(),
        tcp: ice_tcp.into_iter().collect(),
    };
    let server = Server::new(config, ice, Instant::now());
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(
        server,
        listener,
        udp,
        Listeners {
            conn_tx,
            conn_rx,
            acceptor,
            audit,
            ice_tcp,
        },
        shutdown.clone(),
        max_message,
    ));
    Ok(RunningServer {
        ws_addr,
        media_addr,
        fingerprint,
        shutdown,
        task,
    })
}

/// The connection side of the loop.
struct Listeners {
    conn_tx: mpsc::UnboundedSender<ConnEvent>,
    conn_rx: mpsc::UnboundedReceiver<ConnEvent>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    audit: Option<std::fs::File>,
    /// The passive ICE-TCP candidate's address, if ICE-TCP is on.
    ice_tcp: Option<SocketAddr>,
}

async fn run(
    mut server: Server,
    listener: TcpListener,
    udp: UdpSocket,
    listeners: Listeners,
    shutdown: Arc<Notify>,
    max_message: usize,
) {
    let Listeners {
        conn_tx,
        mut conn_rx,
        acceptor,
        mut audit,
        ice_tcp,
    } = listeners;
    let mut ice_tcp_links: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let media_addr = match udp.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "media socket unusable");
            return;
        }
    };
    let mut senders: HashMap<ConnId, mpsc::UnboundedSender<Message>> = HashMap::new();
    let mut next_conn = 0u64;
    let mut buf = vec![0u8; 2048];
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let deadline = tokio::time::Instant::from_std(server.poll_timeout());
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    next_conn += 1;
                    let conn = ConnId(next_conn);
                    workers.retain(|w| !w.is_finished());
                    let events = conn_tx.clone();
                    let acceptor = acceptor.clone();
                    let take_ice_tcp = ice_tcp.is_some() && ice_tcp_links.len() < MAX_ICE_TCP_LINKS;
                    workers.push(tokio::spawn(async move {
                        if take_ice_tcp && first_byte_is_ice_tcp(&stream, remote).await {
                            return ice_tcp_link(stream, remote, events).await;
                        }
                        match acceptor {
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(tls) => connection(tls, true, remote, conn, events, max_message).await,
                                Err(e) => debug!(error = %e, %remote, "TLS handshake failed"),
                            },
                            None => connection(stream, false, remote, conn, events, max_message).await,
                        }
                    }));
                }
                Err(e) => debug!(error = %e, "accept failed"),
            },
            Some(event) = conn_rx.recv() => match event {
                ConnEvent::Open { conn, remote, tx, handshake } => {
                    if let Some(file) = audit.as_mut() {
                        write_audit(file, "handshake", conn.0, &handshake);
                    }
                    senders.insert(conn, tx);
                    server.handle_input(Instant::now(), Input::Connected { conn, remote });
                }
                ConnEvent::Text { conn, text } => {
                    server.handle_input(Instant::now(), Input::Text { conn, text: &text });
                }
                ConnEvent::Closed { conn } => {
                    senders.remove(&conn);
                    server.handle_input(Instant::now(), Input::Disconnected { conn });
                }
                ConnEvent::Page { conn, request } => {
                    if let Some(file) = audit.as_mut() {
                        write_audit(file, "http", conn.0, &request);
                    }
                }
                ConnEvent::IceTcpOpen { remote, tx } => {
                    ice_tcp_links.insert(remote, tx);
                }
                ConnEvent::IceTcpPacket { remote, packet } => {
                    if let Some(local) = ice_tcp {
                        server.handle_input(Instant::now(), Input::Packet {
                            proto: Protocol::Tcp,
                            source: remote,
                            destination: local,
                            contents: &packet,
                        });
                    }
                }
                ConnEvent::IceTcpClosed { remote } => {
                    ice_tcp_links.remove(&remote);
                }
            },
            received = udp.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    let contents = buf.get(..n).unwrap_or_default();
                    server.handle_input(Instant::now(), Input::Packet {
                        proto: Protocol::Udp,
                        source,
                        destination: media_addr,
                        contents,
                    });
                }
                Err(e) => debug!(error = %e, "media receive failed"),
            },
            () = tokio::time::sleep_until(deadline) => server.handle_input(Instant::now(), Input::Timeout),
            () = shutdown.notified() => break,
        }
        while let Some(output) = server.poll_output() {
            match output {
                Output::Send { conn, text } => {
                    if let Some(tx) = senders.get(&conn) {
                        let _ = tx.send(Message::text(text));
                    }
                }
                Output::Close { conn } => {
                    // Dropping the sender ends the connection's writer.
                    senders.remove(&conn);
                }
                Output::Audit { kind, on, text } => {
                    if let Some(file) = audit.as_mut() {
                        write_audit(file, kind, on, &text);
                    }
                }
                Output::Transmit {
                    proto: Protocol::Tcp,
                    destination,
                    contents,
                    ..
                } => {
                    // Only the client's own connection reaches it: a
                    // passive candidate never dials out.
                    let Some(link) = ice_tcp_links.get(&destination) else {
                        continue;
                    };
                    match conclave_protocol::framing::encode(&contents) {
                        Some(frame) => {
                            if link.try_send(frame).is_err() {
                                debug!(%destination, "ICE-TCP queue full; packet dropped");
                            }
                        }
                        None => debug!(%destination, "packet too large for ICE-TCP"),
                    }
                }
                Output::Transmit {
                    destination,
                    contents,
                    ..
                } => {
                    if let Err(e) = udp.send_to(&contents, destination).await {
                        debug!(error = %e, %destination, "media send failed");
                    }
                }
            }
        }
    }
    for w in workers {
        w.abort();
    }
    info!("meeting server stopped");
}

/// Whether a new TCP connection speaks ICE-TCP rather than HTTP, a
/// WebSocket or TLS: its first byte tells (see
/// [`conclave_protocol::framing::starts_like_ice_tcp`]).
async fn first_byte_is_ice_tcp(stream: &tokio::net::TcpStream, remote: SocketAddr) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(std::time::Duration::from_secs(10), stream.peek(&mut first)).await {
        Ok(Ok(1)) => conclave_protocol::framing::starts_like_ice_tcp(first[0]),
        Ok(_) => false,
        Err(_) => {
            debug!(%remote, "nothing sent in time");
            false
        }
    }
}

/// One ICE-TCP connection: RFC 4571 frames in both directions between the
/// client and the loop, which routes them to the peer they belong to.
async fn ice_tcp_link(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    events: mpsc::UnboundedSender<ConnEvent>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(ICE_TCP_QUEUE);
    if events.send(ConnEvent::IceTcpOpen { remote, tx }).is_err() {
        return;
    }
    debug!(%remote, "ICE-TCP connection");
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = conclave_protocol::framing::FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    // ICE sends a consent check at least every few seconds on a path in
    // use: a connection silent for longer holds a slot for nothing.
    let idle = tokio::time::sleep(ICE_TCP_IDLE);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            () = &mut idle => {
                debug!(%remote, "ICE-TCP connection idle; closed");
                break;
            }
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + ICE_TCP_IDLE);
                    decoder.push(buf.get(..n).unwrap_or_default());
                    while let Some(packet) = decoder.next_packet() {
                        if events.send(ConnEvent::IceTcpPacket { remote, packet }).is_err() {
                            return;
                        }
                    }
                }
            },
            frame = rx.recv() => match frame {
                Some(frame) => {
                    if writer.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = events.send(ConnEvent::IceTcpClosed { remote });
}

/// Appends one line to the audit file: when, what kind, on which
/// connection or handle, and exactly what arrived.
fn write_audit(file: &mut std::fs::File, kind: &str, on: u64, text: &str) {
    use std::io::Write;
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let line = serde_json::json!({"at_ms": at_ms, "kind": kind, "on": on, "data": text});
    if let Err(e) = writeln!(file, "{line}") {
        warn!(error = %e, "could not write the audit file");
    }
}

async fn connection<S>(
    mut stream: S,
    secure: bool,
    remote: SocketAddr,
    conn: ConnId,
    events: mpsc::UnboundedSender<ConnEvent>,
    max_message: usize,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // A plain HTTP request gets the join page (or 404); a WebSocket upgrade
    // goes on, its head replayed to the handshake.
    let head = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::web::read_head(&mut stream),
    )
    .await
    {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => {
            debug!(error = %e, %remote, "no request");
            return;
        }
        Err(_) => {
            debug!(%remote, "no request in time");
            return;
        }
    };
    if !crate::web::is_websocket_upgrade(&head) {
        use tokio::io::AsyncWriteExt;
        let _ = events.send(ConnEvent::Page {
            conn,
            request: String::from_utf8_lossy(&head).into_owned(),
        });
        let _ = stream.write_all(&crate::web::respond(&head, secure)).await;
        let _ = stream.shutdown().await;
        return;
    }
    let stream = crate::web::Rewind::new(head, stream);
    let handshake = std::sync::Mutex::new(String::new());
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let choose_protocol = |request: &Request, mut response: Response| {
        if let Ok(mut seen) = handshake.lock() {
            *seen = format!(
                "{} {} {:?}",
                request.method(),
                request.uri(),
                request.version()
            );
            for (name, value) in request.headers() {
                seen.push_str(&format!(
                    "\n{name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
        }
        let offered = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if offered
            .split(',')
            .any(|p| p.trim() == conclave_protocol::janus::WS_SUBPROTOCOL)
        {
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(conclave_protocol::janus::WS_SUBPROTOCOL),
            );
        }
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message.saturating_mul(2)))
        .max_frame_size(Some(max_message.saturating_mul(2)));
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        choose_protocol,
        Some(config),
    )
    .await
    {
        Ok(ws) => ws,
        Err(e) => {
            debug!(error = %e, %remote, "WebSocket handshake failed");
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let handshake = handshake.into_inner().unwrap_or_default();
    if events
        .send(ConnEvent::Open {
            conn,
            remote,
            tx,
            handshake,
        })
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if events.send(ConnEvent::Text { conn, text: text.to_string() }).is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => match String::from_utf8(bytes.to_vec()) {
                    Ok(text) => {
                        if events.send(ConnEvent::Text { conn, text }).is_err() {
                            break;
                        }
                    }
                    Err(_) => debug!(%remote, "ignoring a binary frame"),
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    debug!(error = %e, %remote, "WebSocket error");
                    break;
                }
            },
            outgoing = rx.recv() => match outgoing {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    let _ = events.send(ConnEvent::Closed { conn });
}

/// The address to host on: the one the OS would use to reach the outside
/// world (the LAN interface), or loopback when there is no route. Nothing is
/// sent: connecting a UDP socket only selects a route.
/// `CONCLAVE_HOST_IP` overrides it.
pub fn lan_ip() -> IpAddr {
    if let Some(ip) = std::env::var("CONCLAVE_HOST_IP")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return ip;
    }
    let probe = || -> io::Result<IpAddr> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
        // TEST-NET-1: never routed anywhere real, and connect() sends nothing.
        socket.connect("192.0.2.1:9")?;
        Ok(socket.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    }
}
