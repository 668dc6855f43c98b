//! The thin async driver around [`Client`]: one WebSocket for signaling,
//! three UDP sockets for WebRTC (chat, received media, sent media), one
//! timer, and the media devices and codecs ([`crate::media`]). All decisions are the client's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use conclave_protocol::janus::WS_SUBPROTOCOL;
use conclave_protocol::MeetingInfo;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

use crate::api::{ChatMessage, Command, ConnectionPath, EngineEvent};
use crate::chat::transcript_markdown;
use crate::client::{
    sanitize_nickname, Client, ClientConfig, Input, Output, PublishConfig, RelayedAddrs,
};
use crate::ice_tcp::TcpEvent;
use crate::media::{MediaIo, MediaNotice, MediaOptions, MicrophoneChoice};
use str0m::net::Protocol;

/// How long connecting to the signaling server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// How often the route to the server is looked at for a change of our
/// address (a socket connect, nothing sent).
const ADDRESS_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Delays between reconnection attempts after the signaling connection drops.
/// Their sum bounds how long a dead server goes unnoticed.
pub const RECONNECT_DELAYS: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Why a meeting could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The nickname is empty after trimming, or too long.
    #[error("enter a nickname of 1 to 64 characters")]
    BadNickname,
    /// The server address is not a ws:// or wss:// URL.
    #[error("the server address is not valid")]
    BadServer,
}

/// Everything needed to join a meeting.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The meeting.
    pub info: MeetingInfo,
    /// Nickname shown to others.
    pub nickname: String,
    /// Signaling URL (`ws://` or `wss://`).
    pub server: String,
    /// Emit raw TextRoom frames (see [`EngineEvent::RawTextRoom`]).
    pub tap_textroom: bool,
    /// Devices to send from and what to do with received media.
    pub media: MediaOptions,
    /// Where decoded remote video goes for display, if anywhere.
    pub frame_sink: Option<crate::video::FrameSink>,
    /// Relays, and whether only they may be used.
    pub network: crate::ice_servers::NetworkOptions,
}

enum Request {
    Engine(Command),
    ChatLog(oneshot::Sender<Vec<ChatMessage>>),
}

/// A running meeting. Dropping it leaves the meeting.
#[derive(Clone)]
pub struct MeetingHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl MeetingHandle {
    /// Sends a command. Returns false if the meeting is already over.
    pub fn command(&self, cmd: Command) -> bool {
        self.tx.send(Request::Engine(cmd)).is_ok()
    }

    /// The chat so far (only in memory).
    pub async fn chat_log(&self) -> Vec<ChatMessage> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::ChatLog(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Writes the chat to a local file: Markdown, or JSON if the path ends in
    /// `.json`. This file is the only chat record that ever exists.
    pub async fn export_chat(&self, room: &str, path: PathBuf) -> std::io::Result<()> {
        let log = self.chat_log().await;
        export_chat(room, &log, path).await
    }
}

/// Writes a chat transcript to `path` (atomically: temp file, then rename).
pub async fn export_chat(room: &str, log: &[ChatMessage], path: PathBuf) -> std::io::Result<()> {
    let body = if path.extension().is_some_and(|e| e == "json") {
        serde_json::to_string_pretty(log).map_err(std::io::Error::other)?
    } else {
        transcript_markdown(room, log)
    };
    let tmp = path.with_extension("part");
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, &path).await
}

/// Starts joining a meeting. Events arrive on the returned receiver; the last
/// one is final (see [`EngineEvent::is_final`]).
pub fn start(
    opts: JoinOptions,
) -> Result<(MeetingHandle, mpsc::UnboundedReceiver<EngineEvent>), StartError> {
    let nickname = sanitize_nickname(&opts.nickname);
    if nickname.is_empty() || opts.nickname.chars().count() > crate::client::MAX_NICKNAME_CHARS {
        return Err(StartError::BadNickname);
    }
    let server = conclave_protocol::link::normalise_server(&opts.server)
        .filter(|s| s.starts_with("ws"))
        .ok_or(StartError::BadServer)?;
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let opts = JoinOptions {
        nickname,
        server,
        ..opts
    };
    // The meeting runs on a thread of its own with its own runtime: opening
    // and switching devices blocks for moments, and that must stall neither
    // the caller's runtime nor its timers (in the app, a meeting run as a
    // task of the shared runtime now and then never woke from a sleep).
    let failed = ev_tx.clone();
    let spawned = std::thread::Builder::new()
        .name("meeting".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ev_tx.send(EngineEvent::JoinFailed {
                        message: format!("Could not start the meeting: {e}"),
                    });
                    return;
                }
            };
            runtime.block_on(async move {
                if let Err(message) = run(opts, req_rx, ev_tx.clone()).await {
                    let _ = ev_tx.send(EngineEvent::JoinFailed { message });
                }
            });
            // Blocking helpers of the meeting are not waited for.
            runtime.shutdown_background();
        });
    if let Err(e) = spawned {
        let _ = failed.send(EngineEvent::JoinFailed {
            message: format!("Could not start the meeting: {e}"),
        });
    }
    Ok((MeetingHandle { tx: req_tx }, ev_rx))
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects the signaling WebSocket with the Janus subprotocol.
pub async fn connect_signaling(url: &str, fingerprint: Option<&str>) -> Result<Ws, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("invalid server address: {e}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(WS_SUBPROTOCOL),
    );
    let connector = crate::tls::connector(fingerprint);
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => Err("the server did not answer in time".into()),
        Ok(Err(e)) => Err(describe_ws_error(&e)),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

fn describe_ws_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running?)".into()
        }
        E::Io(io) => format!("network error: {io}"),
        E::Tls(t) => format!("secure connection failed: {t}"),
        E::Http(r) => format!("the server answered HTTP {}", r.status()),
        other => other.to_string(),
    }
}

/// Picks the local address for the ICE host candidate: loopback for a
/// loopback server, otherwise the interface the OS would route through.
/// Nothing is sent to find it out.
async fn local_ip_for(server: &str) -> IpAddr {
    let Some(addr) = server_address(server).await else {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    };
    route_ip(addr).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The signaling server's address (the first the name resolves to).
async fn server_address(server: &str) -> Option<SocketAddr> {
    let host = server
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(server)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_owned()
    } else {
        format!("{host}:443")
    };
    tokio::net::lookup_host(with_port)
        .await
        .ok()
        .and_then(|mut a| a.next())
}

/// Our address on the route to `server` as the OS would choose it now
/// (`None` without a route: the network is down). Nothing is sent:
/// connecting a UDP socket only selects a route.
fn route_ip(server: SocketAddr) -> Option<IpAddr> {
    if server.ip().is_loopback() {
        return Some(server.ip());
    }
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(server).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

async fn run(
    opts: JoinOptions,
    mut requests: mpsc::UnboundedReceiver<Request>,
    events: mpsc::UnboundedSender<EngineEvent>,
) -> Result<(), String> {
    let pin = opts.info.cert_fingerprint.clone();
    let mut ws = Some(
        connect_signaling(&opts.server, pin.as_deref())
            .await
            .map_err(|e| format!("Could not reach the meeting server: {e}"))?,
    );
    let server_addr = server_address(&opts.server).await;
    let mut ip = local_ip_for(&opts.server).await;
    let (mut socket, mut local_addr) = bind_udp(ip).await?;
    let (mut media_socket, mut media_addr) = bind_udp(ip).await?;
    let (mut publish_socket, mut publish_addr) = bind_udp(ip).await?;
    let mut next_address_check = Instant::now() + ADDRESS_CHECK_INTERVAL;
    let (mut ice_tcp, mut ice_tcp_rx) = crate::ice_tcp::IceTcp::new();
    let (relay_tx, mut relay_rx) = mpsc::unbounded_channel();
    let mut network = opts.network.clone();
    if let Some(relay) = &opts.info.relay {
        if let Err(e) = network.add_link_relay(relay) {
            let _ = events.send(EngineEvent::Warning {
                message: format!("The relay in the meeting link cannot be used: {e}"),
            });
        }
    }
    let relays = crate::relay::allocate_all(&network, ip, relay_tx).await?;
    if !relays.failures.is_empty() {
        let _ = events.send(EngineEvent::Warning {
            message: format!("A relay could not be used: {}", relays.failures.join("; ")),
        });
    }
    let relayed = |list: &[crate::relay::Relay]| -> Vec<(SocketAddr, SocketAddr)> {
        list.iter().map(|r| (r.relayed, r.local)).collect()
    };
    let relayed = RelayedAddrs {
        chat: relayed(&relays.chat),
        media: relayed(&relays.media),
        publish: relayed(&relays.publish),
    };
    // How each connection (chat, receiving, sending) reaches the server.
    let mut paths = [ConnectionPath::Unknown; 3];
    let (video_tx, mut video_rx) = mpsc::unbounded_channel();
    let mut media = MediaIo::open(
        &opts.media,
        Instant::now(),
        video_tx,
        opts.frame_sink.clone(),
    )?;
    let (audio, video, screen, screen_audio) = media.sends();
    info!(room = opts.info.room.0, "joining");
    let self_id = rand::thread_rng().gen_range(1_000_000_000u64..9_000_000_000_000_000);
    let mut client = Client::new(
        ClientConfig {
            info: opts.info,
            nickname: opts.nickname,
            self_id,
            local_addr,
            media_addr,
            publish_addr,
            publish: PublishConfig {
                audio,
                video,
                screen,
                screen_audio,
                video_codec: opts.media.video_codec,
            },
            tap_textroom: opts.tap_textroom,
            relayed,
            relay_only: network.relay_only,
        },
        Instant::now(),
    );
    let mut buf = vec![0u8; 2048];
    let mut media_buf = vec![0u8; 2048];
    let mut publish_buf = vec![0u8; 2048];
    let mut reconnect: Option<(usize, Instant)> = None;
    let mut requests_open = true;
    let mut next_stats = Instant::now() + STATS_INTERVAL;
    let (watch, mut ticks) = LoopWatch::start();
    loop {
        watch.at(Phase::Media);
        // Capture and encode what is due (whatever woke us).
        let now = Instant::now();
        if media.next_deadline().is_some_and(|t| t <= now) {
            for e in media.poll(now) {
                let input = if e.video {
                    Input::EncodedVideo {
                        data: &e.data,
                        captured: e.captured,
                        screen: e.screen,
                    }
                } else if e.screen {
                    Input::EncodedShareAudio {
                        data: &e.data,
                        captured: e.captured,
                    }
                } else {
                    Input::EncodedAudio {
                        data: &e.data,
                        captured: e.captured,
                        level: e.level,
                    }
                };
                client.handle_input(now, input);
            }
        }
        for tile in media.keyframes_needed() {
            client.handle_input(now, Input::KeyframeNeeded { tile });
        }
        // Drain the client.
        let deadline = loop {
            match client.poll_output() {
                Output::Timeout(t) => break t,
                Output::Signal(text) => {
                    if let Some(w) = ws.as_mut() {
                        watch.at(Phase::SignalSend);
                        if let Err(e) = w.send(Message::text(text)).await {
                            debug!(error = %e, "signaling send failed");
                        }
                    }
                }
                Output::Transmit {
                    proto,
                    source,
                    destination,
                    data,
                } => {
                    let relay = relays.by_address(source);
                    let tcp = proto == str0m::net::Protocol::Tcp;
                    // A candidate of a network we have left: nothing can
                    // leave from there any more.
                    if relay.is_none()
                        && source != local_addr
                        && source != media_addr
                        && source != publish_addr
                    {
                        continue;
                    }
                    // DTLS and media (not ICE checks, which try every
                    // path) go only the way ICE chose.
                    if data.first().is_some_and(|b| *b >= 4) {
                        let connection = if source == media_addr
                            || relays.media.iter().any(|r| r.relayed == source)
                        {
                            1
                        } else if source == publish_addr
                            || relays.publish.iter().any(|r| r.relayed == source)
                        {
                            2
                        } else {
                            0
                        };
                        paths[connection] = match relay {
                            Some(r) => r.transport.into(),
                            None if tcp => ConnectionPath::DirectTcp,
                            None => ConnectionPath::Direct,
                        };
                    }
                    if tcp {
                        ice_tcp.send(source, destination, &data);
                        continue;
                    }
                    if let Some(relay) = relay {
                        relay.send(destination, data);
                        continue;
                    }
                    let out = if source == media_addr {
                        &media_socket
                    } else if source == publish_addr {
                        &publish_socket
                    } else {
                        &socket
                    };
                    watch.at(Phase::UdpSend);
                    if let Err(e) = out.send_to(&data, destination).await {
                        debug!(error = %e, "UDP send failed");
                    }
                }
                Output::Event(e) => {
                    if let EngineEvent::ParticipantLeft { participant } = &e {
                        if let Ok(id) = participant.id.parse() {
                            media.remove_remote(id);
                        }
                    }
                    let _ = events.send(e);
                }
                Output::KeyframeRequested { screen } => media.request_keyframe(screen),
                Output::VideoBitrate(bps) => media.set_video_bitrate(bps),
                Output::AudioLoss(fraction) => media.on_audio_loss(fraction, Instant::now()),
                Output::AudioRedundancy(on) => media.set_audio_redundancy(on),
                Output::RemoteMedia {
                    participant,
                    video,
                    data,
                    rtp_time,
                } => media.on_remote(participant, video, &data, rtp_time, Instant::now()),
            }
        };
        // Device notices wait until the meeting screen is there to show them.
        if client.is_in_meeting() {
            for notice in media.take_notices() {
                match notice {
                    MediaNotice::Warning(message) => {
                        let _ = events.send(EngineEvent::Warning { message });
                    }
                    MediaNotice::ShareRestoreToken(token) => {
                        let _ = events.send(EngineEvent::ShareRestoreToken { token });
                    }
                }
            }
        }
        if client.is_in_meeting() {
            for (participant, talking) in media.talking_changes(Instant::now()) {
                let _ = events.send(EngineEvent::Talking {
                    participant: participant.to_string(),
                    talking,
                });
            }
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + STATS_INTERVAL;
            if media.end_lost_share() {
                client.handle_input(Instant::now(), Input::Command(Command::StopShare));
            }
            if client.is_in_meeting() {
                let mut stats = media.stats();
                stats.network = client.network_stats();
                stats.network.path = shown_path(&paths);
                stats.network.quality = client.on_network_period(&stats.network);
                let _ = events.send(EngineEvent::Stats { stats });
            }
        }
        // The way to the server goes out from another address now (the
        // laptop moved from Wi-Fi to a hotspot): new sockets there, a new
        // signaling connection, and ICE restarts on every peer connection.
        if Instant::now() >= next_address_check {
            next_address_check = Instant::now() + ADDRESS_CHECK_INTERVAL;
            if let Some(new_ip) = server_addr.and_then(route_ip).filter(|new| *new != ip) {
                match (
                    bind_udp(new_ip).await,
                    bind_udp(new_ip).await,
                    bind_udp(new_ip).await,
                ) {
                    (Ok(chat), Ok(receiving), Ok(sending)) => {
                        info!("the network changed");
                        ip = new_ip;
                        (socket, local_addr) = chat;
                        (media_socket, media_addr) = receiving;
                        (publish_socket, publish_addr) = sending;
                        let now = Instant::now();
                        if ws.take().is_some() {
                            reconnect = Some((0, now));
                            client.handle_input(now, Input::SignalLost);
                        }
                        client.handle_input(
                            now,
                            Input::AddressChanged {
                                chat: local_addr,
                                media: media_addr,
                                publish: publish_addr,
                            },
                        );
                        continue;
                    }
                    _ => debug!("no sockets on the new network yet"),
                }
            }
        }
        if client.is_finished() {
            media.finish();
            if let Some(mut w) = ws.take() {
                let _ = w.close(None).await;
            }
            return Ok(());
        }
        let mut wake = reconnect.map_or(deadline, |(_, at)| deadline.min(at));
        if let Some(t) = media.next_deadline() {
            wake = wake.min(t);
        }
        wake = wake.min(next_stats).min(next_address_check);
        watch.at(Phase::Waiting);
        tokio::select! {
            frame = next_frame(&mut ws) => match frame {
                Some(text) => client.handle_input(Instant::now(), Input::Signal(&text)),
                None => {
                    ws = None;
                    reconnect = Some((0, Instant::now() + RECONNECT_DELAYS[0]));
                    client.handle_input(Instant::now(), Input::SignalLost);
                }
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => client.handle_input(
                    Instant::now(),
                    Input::Packet { proto: Protocol::Udp, source, destination: local_addr, data: &buf[..n] },
                ),
                Err(e) => debug!(error = %e, "UDP receive failed"),
            },
            received = publish_socket.recv_from(&mut publish_buf) => match received {
                Ok((n, source)) => client.handle_input(
                    Instant::now(),
                    Input::Packet { proto: Protocol::Udp, source, destination: publish_addr, data: &publish_buf[..n] },
                ),
                Err(e) => debug!(error = %e, "UDP receive failed"),
            },
            received = media_socket.recv_from(&mut media_buf) => match received {
                Ok((n, source)) => client.handle_input(
                    Instant::now(),
                    Input::Packet { proto: Protocol::Udp, source, destination: media_addr, data: &media_buf[..n] },
                ),
                Err(e) => debug!(error = %e, "UDP receive failed"),
            },
            Some(p) = relay_rx.recv() => client.handle_input(
                Instant::now(),
                Input::Packet { proto: Protocol::Udp, source: p.peer, destination: p.relayed, data: &p.data },
            ),
            Some(e) = ice_tcp_rx.recv() => match e {
                TcpEvent::Packet { local, remote, data } => client.handle_input(
                    Instant::now(),
                    Input::Packet { proto: Protocol::Tcp, source: remote, destination: local, data: &data },
                ),
                TcpEvent::Closed { local, remote } => ice_tcp.closed(local, remote),
            },
            Some(e) = video_rx.recv() => client.handle_input(
                Instant::now(),
                Input::EncodedVideo { data: &e.data, captured: e.captured, screen: e.screen },
            ),
            req = requests.recv(), if requests_open => match req {
                Some(Request::Engine(cmd)) => {
                    // One presenter at a time, unless the host allows more:
                    // a share waits for the current one to end.
                    if matches!(cmd, Command::StartShare { .. }) && !client.several_presenters() {
                        if let Some(name) = client.presenters().into_iter().next() {
                            let _ = events.send(EngineEvent::Error {
                                message: format!(
                                    "{} is presenting. Ask them to stop before you share.",
                                    if name.is_empty() { "Someone" } else { &name }
                                ),
                            });
                            continue;
                        }
                    }
                    if apply_media_command(&mut media, &cmd, &events) {
                        // The new state at once, so the UI need not guess.
                        let mut stats = media.stats();
                        stats.network = client.network_stats();
                        stats.network.path = shown_path(&paths);
                        let _ = events.send(EngineEvent::Stats { stats });
                    }
                    // A share whose capture could not start is not offered.
                    let failed_share = matches!(cmd, Command::StartShare { .. }) && !media.is_sharing();
                    if !failed_share {
                        // The offer carries the computer's sound only if it
                        // could be captured.
                        let cmd = match cmd {
                            Command::StartShare { source, .. } => Command::StartShare {
                                source,
                                audio: media.shares_audio(),
                            },
                            other => other,
                        };
                        client.handle_input(Instant::now(), Input::Command(cmd));
                    }
                }
                Some(Request::ChatLog(reply)) => { let _ = reply.send(client.chat_log().to_vec()); }
                None => {
                    // Every handle is gone: nobody is listening any more.
                    requests_open = false;
                    client.handle_input(Instant::now(), Input::Command(Command::Leave));
                }
            },
            // A tick of the watchdog: should a timer ever fail to fire,
            // the meeting goes on (and the log says so).
            Some(()) = ticks.recv() => {}
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if let Some((attempt, at)) = reconnect {
                    if now >= at {
                        match connect_signaling(&opts.server, pin.as_deref()).await {
                            Ok(w) => {
                                info!("signaling reconnected");
                                ws = Some(w);
                                reconnect = None;
                                client.handle_input(Instant::now(), Input::SignalRestored);
                            }
                            Err(e) if attempt + 1 < RECONNECT_DELAYS.len() => {
                                warn!(attempt, error = %e, "reconnect failed");
                                reconnect = Some((attempt + 1, Instant::now() + RECONNECT_DELAYS[attempt + 1]));
                            }
                            Err(e) => {
                                reconnect = None;
                                client.handle_input(Instant::now(), Input::SignalGaveUp(e));
                            }
                        }
                    }
                }
                client.handle_input(Instant::now(), Input::Timeout);
            }
        }
    }
}

/// How often [`EngineEvent::Stats`] is sent.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Applies a device command (mute, camera, switching) to the media edge;
/// returns whether it was one.
fn apply_media_command(
    media: &mut MediaIo,
    cmd: &Command,
    events: &mpsc::UnboundedSender<EngineEvent>,
) -> bool {
    let result = match cmd {
        Command::SetMuted { muted } => {
            media.set_muted(*muted);
            Ok(())
        }
        Command::SetCameraOn { on } => {
            media.set_camera_on(*on);
            Ok(())
        }
        Command::SwitchMicrophone { device } => {
            media.switch_microphone(MicrophoneChoice::Device(device.clone()), Instant::now())
        }
        Command::SwitchSpeaker { device } => media.switch_speaker(device.clone()),
        Command::SwitchCamera { camera } => media.switch_camera(camera.clone()),
        Command::SetVideoEffects { effects } => media.set_effects(effects.clone()),
        Command::StartShare { source, audio } => media.start_share(source.clone(), *audio),
        Command::StopShare => {
            media.stop_share();
            Ok(())
        }
        Command::SendChat { .. } | Command::SetRecording { .. } | Command::Leave => return false,
    };
    if let Err(message) = result {
        let _ = events.send(EngineEvent::Error { message });
    }
    true
}

/// A UDP socket on `ip` with a free port, and its address.
pub(crate) async fn bind_udp(ip: IpAddr) -> Result<(UdpSocket, SocketAddr), String> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| format!("Could not open a network port: {e}"))?;
    let addr = socket
        .local_addr()
        .map_err(|e| format!("Could not open a network port: {e}"))?;
    Ok((socket, addr))
}

/// Where the meeting loop is, for its watchdog.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
enum Phase {
    Media = 1,
    SignalSend = 2,
    UdpSend = 3,
    Waiting = 4,
}

/// Logs a warning when the meeting loop stays in one phase for more than
/// two seconds (it wakes at least once a second): a stalled meeting says
/// where it stalled. Ends with the loop.
struct LoopWatch {
    state: std::sync::Arc<(std::sync::atomic::AtomicU8, std::sync::atomic::AtomicU64)>,
    epoch: Instant,
}

impl LoopWatch {
    fn start() -> (Self, mpsc::UnboundedReceiver<()>) {
        use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
        let (tick_tx, ticks) = mpsc::unbounded_channel();
        let epoch = Instant::now();
        let state = std::sync::Arc::new((AtomicU8::new(0), AtomicU64::new(0)));
        let weak = std::sync::Arc::downgrade(&state);
        let _ = std::thread::Builder::new()
            .name("meeting-watch".into())
            .spawn(move || {
                let mut warned_at = 0u64;
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let Some(state) = weak.upgrade() else { return };
                    let (phase, since) = (
                        state.0.load(Ordering::Relaxed),
                        state.1.load(Ordering::Relaxed),
                    );
                    let now = epoch.elapsed().as_millis() as u64;
                    let stalled = now.saturating_sub(since);
                    if phase == Phase::Waiting as u8 && stalled > 1200 {
                        // Asleep past its longest sleep (a second): wake it.
                        if tick_tx.send(()).is_err() {
                            return;
                        }
                        if since != warned_at {
                            warned_at = since;
                            warn!(stalled_ms = stalled, "the meeting loop overslept; woken");
                        }
                    } else if stalled > 2000 && since != warned_at {
                        warned_at = since;
                        warn!(phase, stalled_ms = stalled, "the meeting loop is stalled");
                    }
                }
            });
        (LoopWatch { state, epoch }, ticks)
    }

    fn at(&self, phase: Phase) {
        use std::sync::atomic::Ordering;
        self.state.0.store(phase as u8, Ordering::Relaxed);
        self.state
            .1
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The next text frame, or `None` when the connection is gone. Pends forever
/// while there is no connection.
async fn next_frame(ws: &mut Option<Ws>) -> Option<String> {
    let Some(w) = ws.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match w.next().await {
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                Ok(t) => return Some(t),
                Err(_) => warn!("ignoring a binary signaling frame"),
            },
            Some(Ok(Message::Close(_))) | None => return None,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                debug!(error = %e, "signaling connection error");
                return None;
            }
        }
    }
}

/// Runs `fut` on a fresh multi-threaded runtime, for callers without one.
pub fn block_on<F: std::future::Future>(fut: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(fut);
    // Do not wait for blocking tasks (a pending read of standard input would
    // keep the process alive forever).
    runtime.shutdown_background();
    Ok(output)
}

/// How the meeting's media reaches the server, for the statistics: the
/// sending connection's path, else the receiving one's, else the chat's.
fn shown_path(paths: &[ConnectionPath; 3]) -> ConnectionPath {
    [paths[2], paths[1], paths[0]]
        .into_iter()
        .find(|p| *p != ConnectionPath::Unknown)
        .unwrap_or_default()
}
