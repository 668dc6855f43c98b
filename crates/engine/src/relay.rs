//! Relayed paths at the I/O edge: an allocation on a TURN server (reached
//! over UDP, TCP or TLS) for one of the meeting's peer connections, run as a
//! task of the meeting's runtime around a sans-IO TURN client
//! (`turn-client-proto`). The peer connection sees the allocation's relayed
//! address as a local candidate of its own: what it sends from that address
//! goes through the relay, and what peers send to it comes back as if it had
//! arrived there.
//!
//! A relayed path carries UDP between the relay and the peers whatever the
//! way to the relay: behind a firewall that lets only TCP or TLS out, the
//! meeting still works.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use turn_client_proto::api::{TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::prelude::*;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::stun::types::TransportType;
use turn_client_proto::stun::Instant as TurnInstant;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::TurnCredentials;
use turn_client_proto::udp::TurnClientUdp;
use turn_client_rustls::TurnClientRustls;

use crate::ice_servers::{IceServer, NetworkOptions, RelayTransport};

turn_client_proto::impl_client!(
    AnyTurnClient,
    (Udp, TurnClientUdp),
    (Tcp, TurnClientTcp),
    (Tls, TurnClientRustls)
);

/// How long an allocation may take before the meeting goes on without it.
pub(crate) const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(4);
/// Packets kept per peer while its permission is being created.
const QUEUED_PER_PEER: usize = 32;

/// A TURN server to allocate on, resolved.
#[derive(Clone)]
pub(crate) struct RelayServer {
    /// Its address.
    pub addr: SocketAddr,
    /// How it is reached.
    pub transport: RelayTransport,
    /// Its name, for TLS (the host of the URL).
    pub name: String,
    /// The TURN user.
    pub username: String,
    /// The TURN password.
    pub password: String,
    /// For TLS: the SHA-256 fingerprint its certificate must have instead
    /// of a chain to a public root, if given.
    pub fingerprint: Option<String>,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} relay at {}", self.transport, self.addr)
    }
}

/// Data a peer sent to one of our relayed addresses.
#[derive(Debug)]
pub(crate) struct RelayedPacket {
    /// Our relayed address it came to.
    pub relayed: SocketAddr,
    /// The peer that sent it.
    pub peer: SocketAddr,
    /// The datagram.
    pub data: Vec<u8>,
}

enum Command {
    Send { peer: SocketAddr, data: Vec<u8> },
}

/// A working allocation; dropping it ends it (the relay is told).
pub(crate) struct Relay {
    /// The relayed address: a local candidate of the peer connection.
    pub relayed: SocketAddr,
    /// The address the relay saw us at (our own, or a NAT's).
    pub local: SocketAddr,
    /// How the relay is reached.
    pub transport: RelayTransport,
    commands: mpsc::UnboundedSender<Command>,
}

impl Relay {
    /// Sends `data` to `peer` through the relay.
    pub fn send(&self, peer: SocketAddr, data: Vec<u8>) {
        let _ = self.commands.send(Command::Send { peer, data });
    }
}

/// The way to the relay.
enum Link {
    Udp(UdpSocket),
    Stream(TcpStream),
}

impl Link {
    async fn send(&mut self, to: SocketAddr, data: &[u8]) -> std::io::Result<()> {
        match self {
            // A datagram that cannot be sent (the network gone for a
            // moment, a firewall's refusal) is lost like any other: the
            // allocation stays, and works again when the network does.
            Link::Udp(s) => {
                if let Err(e) = s.send_to(data, to).await {
                    debug!(error = %e, relay = %to, "could not send to the relay");
                }
                Ok(())
            }
            Link::Stream(s) => s.write_all(data).await,
        }
    }

    async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Option<SocketAddr>)> {
        match self {
            // A UDP receive error (an ICMP report of an earlier datagram)
            // is not the end of the relay.
            Link::Udp(s) => loop {
                match s.recv_from(buf).await {
                    Ok((n, from)) => return Ok((n, Some(from))),
                    Err(e) => debug!(error = %e, "UDP receive from the relay failed"),
                }
            },
            Link::Stream(s) => {
                let n = s.read(buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the relay closed the connection",
                    ));
                }
                Ok((n, None))
            }
        }
    }
}

/// Allocates on `server` from `local_ip` and runs the allocation as a task
/// of the current runtime; what peers send arrives on `inbox`. Gives up
/// after [`ALLOCATE_TIMEOUT`].
pub(crate) async fn allocate(
    server: RelayServer,
    local_ip: IpAddr,
    inbox: mpsc::UnboundedSender<RelayedPacket>,
    base: Instant,
) -> Result<Relay, String> {
    let connect = async {
        match server.transport {
            RelayTransport::Udp => {
                let (socket, local) = crate::runtime::bind_udp(local_ip).await?;
                Ok::<_, String>((Link::Udp(socket), local))
            }
            RelayTransport::Tcp | RelayTransport::Tls => {
                let stream = TcpStream::connect(server.addr)
                    .await
                    .map_err(|e| format!("could not connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                let local = stream
                    .local_addr()
                    .map_err(|e| format!("could not connect: {e}"))?;
                Ok((Link::Stream(stream), local))
            }
        }
    };
    let (link, local) = tokio::time::timeout(ALLOCATE_TIMEOUT, connect)
        .await
        .map_err(|_| "no answer".to_string())??;
    let config = TurnConfig::new(TurnCredentials::new(&server.username, &server.password));
    let client = match server.transport {
        RelayTransport::Udp => {
            AnyTurnClient::Udp(TurnClientUdp::allocate(local, server.addr, config))
        }
        RelayTransport::Tcp => {
            AnyTurnClient::Tcp(TurnClientTcp::allocate(local, server.addr, config))
        }
        RelayTransport::Tls => {
            let name = rustls::pki_types::ServerName::try_from(server.name.clone())
                .map_err(|e| format!("not a server name: {e}"))?;
            AnyTurnClient::Tls(TurnClientRustls::allocate(
                local,
                server.addr,
                config,
                name,
                crate::tls::client_config(server.fingerprint.as_deref()),
            ))
        }
    };
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (allocated_tx, allocated_rx) = oneshot::channel();
    let transport = server.transport;
    tokio::spawn(run(
        Allocation {
            client,
            link,
            local,
            server: server.addr,
            relayed: None,
            allocated: Some(allocated_tx),
            waiting: HashMap::new(),
            base,
        },
        commands_rx,
        inbox,
    ));
    let relayed = tokio::time::timeout(ALLOCATE_TIMEOUT, allocated_rx)
        .await
        .map_err(|_| "no allocation in time".to_string())?
        .map_err(|_| "the allocation ended".to_string())??;
    info!(%relayed, %transport, relay = %server.addr, "relay allocated");
    Ok(Relay {
        relayed,
        local,
        transport,
        commands,
    })
}

/// One allocation's state in its task.
struct Allocation {
    client: AnyTurnClient,
    link: Link,
    local: SocketAddr,
    server: SocketAddr,
    relayed: Option<SocketAddr>,
    allocated: Option<oneshot::Sender<Result<SocketAddr, String>>>,
    /// Packets for peers whose permission is being created.
    waiting: HashMap<IpAddr, VecDeque<(SocketAddr, Vec<u8>)>>,
    base: Instant,
}

impl Allocation {
    fn now(&self) -> TurnInstant {
        TurnInstant::from_nanos(i64::try_from(self.base.elapsed().as_nanos()).unwrap_or(i64::MAX))
    }

    fn transport(&self) -> TransportType {
        match self.link {
            Link::Udp(_) => TransportType::Udp,
            Link::Stream(_) => TransportType::Tcp,
        }
    }

    fn fail(&mut self, why: String) {
        if let Some(tell) = self.allocated.take() {
            let _ = tell.send(Err(why));
        }
    }

    /// Sends what the client has for the relay, and takes its events.
    async fn flush(&mut self) -> std::io::Result<()> {
        loop {
            let now = self.now();
            let Some(t) = self.client.poll_transmit(now) else {
                break;
            };
            self.link.send(t.to, &t.data).await?;
        }
        while let Some(event) = self.client.poll_event() {
            match event {
                TurnEvent::AllocationCreated(_, relayed) => {
                    self.relayed = Some(relayed);
                    if let Some(tell) = self.allocated.take() {
                        let _ = tell.send(Ok(relayed));
                    }
                }
                TurnEvent::AllocationCreateFailed(family) => {
                    self.fail(format!("the relay refused an allocation ({family:?})"));
                }
                TurnEvent::PermissionCreated(_, ip) => {
                    let queued = self.waiting.remove(&ip).unwrap_or_default();
                    for (peer, data) in queued {
                        self.send_now(peer, data).await?;
                    }
                }
                TurnEvent::PermissionCreateFailed(_, ip) => {
                    debug!(%ip, "the relay refused a permission");
                    self.waiting.remove(&ip);
                }
                other => debug!(?other, "relay event"),
            }
        }
        Ok(())
    }

    async fn send_now(&mut self, peer: SocketAddr, data: Vec<u8>) -> std::io::Result<()> {
        let now = self.now();
        match self.client.send_to(TransportType::Udp, peer, data, now) {
            Ok(Some(t)) => {
                let t = t.build();
                self.link.send(t.to, &t.data).await
            }
            Ok(None) => Ok(()),
            Err(e) => {
                debug!(error = %e, %peer, "could not send through the relay");
                Ok(())
            }
        }
    }

    async fn send(&mut self, peer: SocketAddr, data: Vec<u8>) -> std::io::Result<()> {
        let ip = peer.ip();
        if self.client.have_permission(TransportType::Udp, ip) {
            return self.send_now(peer, data).await;
        }
        let now = self.now();
        let queue = self.waiting.entry(ip).or_default();
        if queue.is_empty() {
            if let Err(e) = self.client.create_permission(TransportType::Udp, ip, now) {
                debug!(error = %e, %ip, "could not ask the relay for a permission");
            }
        }
        if queue.len() >= QUEUED_PER_PEER {
            queue.pop_front();
        }
        queue.push_back((peer, data));
        Ok(())
    }

    /// Hands what the relay sent to the client; peers' data goes to `inbox`.
    /// An error if the TURN client broke on it: `turn-client-rustls` 0.1
    /// panics (`unreachable!`) on a message its protocol layer ignores,
    /// e.g. after the relay refused our credentials; the panic is caught
    /// here and ends this allocation only.
    fn received(
        &mut self,
        data: &[u8],
        from: Option<SocketAddr>,
        inbox: &mpsc::UnboundedSender<RelayedPacket>,
    ) -> Result<(), String> {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.received_unguarded(data, from, inbox)
        }));
        caught.map_err(|_| {
            if self.relayed.is_none() {
                // What it breaks on before an allocation is a refusal.
                "the relay refused us (is the user name or password wrong?)".to_string()
            } else {
                "the TURN client failed on the relay's answer".to_string()
            }
        })
    }

    fn received_unguarded(
        &mut self,
        data: &[u8],
        from: Option<SocketAddr>,
        inbox: &mpsc::UnboundedSender<RelayedPacket>,
    ) {
        let now = self.now();
        let from = from.unwrap_or(self.server);
        let transmit = Transmit::new(data, self.transport(), from, self.local);
        let deliver = |peer: SocketAddr, bytes: &[u8], relayed: Option<SocketAddr>| {
            if let Some(relayed) = relayed {
                let _ = inbox.send(RelayedPacket {
                    relayed,
                    peer,
                    data: bytes.to_vec(),
                });
            }
        };
        match self.client.recv(transmit, now) {
            TurnRecvRet::PeerData(d) => deliver(d.peer, d.data(), self.relayed),
            TurnRecvRet::Handled | TurnRecvRet::Ignored(_) | TurnRecvRet::PeerIcmp { .. } => {}
        }
        while let Some(d) = self.client.poll_recv(now) {
            deliver(d.peer, d.data(), self.relayed);
        }
    }
}

async fn run(
    mut a: Allocation,
    mut commands: mpsc::UnboundedReceiver<Command>,
    inbox: mpsc::UnboundedSender<RelayedPacket>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Err(e) = a.flush().await {
            warn!(error = %e, relay = %a.server, "the relay is gone");
            a.fail(e.to_string());
            return;
        }
        let now = a.now();
        let wake = match a.client.poll(now) {
            TurnPollRet::WaitUntil(t) => t.to_std(a.base),
            TurnPollRet::Closed => {
                a.fail("the relay closed the allocation".into());
                if a.relayed.is_some() {
                    warn!(relay = %a.server, "the relay closed the allocation");
                }
                return;
            }
            // TCP allocations to peers are not used.
            _ => Instant::now() + Duration::from_millis(100),
        };
        tokio::select! {
            read = a.link.recv(&mut buf) => match read {
                Ok((n, from)) => {
                    let data = buf[..n].to_vec();
                    if let Err(e) = a.received(&data, from, &inbox) {
                        warn!(error = %e, relay = %a.server, "the relay cannot be used");
                        a.fail(e);
                        return;
                    }
                }
                Err(e) => {
                    warn!(error = %e, relay = %a.server, "the relay is gone");
                    a.fail(e.to_string());
                    return;
                }
            },
            command = commands.recv() => match command {
                Some(Command::Send { peer, data }) => {
                    if let Err(e) = a.send(peer, data).await {
                        warn!(error = %e, relay = %a.server, "the relay is gone");
                        return;
                    }
                }
                None => {
                    // The meeting is over: the allocation is given back.
                    let now = a.now();
                    let _ = a.client.delete(now);
                    let _ = a.flush().await;
                    return;
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// The allocations of a meeting's three peer connections.
#[derive(Default)]
pub(crate) struct PeerRelays {
    /// Of the chat (TextRoom) connection.
    pub chat: Vec<Relay>,
    /// Of the connection that receives media.
    pub media: Vec<Relay>,
    /// Of the connection that sends media.
    pub publish: Vec<Relay>,
    /// Why a relay could not be used, one line each (for a warning).
    pub failures: Vec<String>,
}

impl PeerRelays {
    /// The relay whose relayed address is `addr`.
    pub fn by_address(&self, addr: SocketAddr) -> Option<&Relay> {
        self.chat
            .iter()
            .chain(&self.media)
            .chain(&self.publish)
            .find(|r| r.relayed == addr)
    }
}

/// Resolves the TURN servers of `network` and allocates on each of them,
/// for each of the three peer connections, all at once. A relay that
/// cannot be used is reported in [`PeerRelays::failures`]; the meeting goes
/// on without it unless only relays may be used and a connection has none.
pub(crate) async fn allocate_all(
    network: &NetworkOptions,
    local_ip: IpAddr,
    inbox: mpsc::UnboundedSender<RelayedPacket>,
) -> Result<PeerRelays, String> {
    let base = Instant::now();
    let mut out = PeerRelays::default();
    let mut servers = Vec::new();
    for server in &network.ice_servers {
        let IceServer::Turn {
            host,
            port,
            transport,
            username,
            password,
        } = server
        else {
            continue;
        };
        let found = tokio::time::timeout(
            ALLOCATE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), *port)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match found {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                out.failures.push(format!("{transport} relay {host}: {e}"));
                continue;
            }
            Err(_) => {
                out.failures
                    .push(format!("{transport} relay {host}: no answer from DNS"));
                continue;
            }
        };
        // The address family of our own address first.
        let Some(addr) = addrs
            .iter()
            .find(|a| a.is_ipv4() == local_ip.is_ipv4())
            .or(addrs.first())
            .copied()
        else {
            out.failures
                .push(format!("{transport} relay {host}: no address"));
            continue;
        };
        servers.push(RelayServer {
            addr,
            transport: *transport,
            name: host.clone(),
            username: username.clone(),
            password: password.clone(),
            fingerprint: network.relay_fingerprint.clone(),
        });
    }
    if servers.is_empty() {
        if network.relay_only {
            return Err(no_relay(&out.failures));
        }
        return Ok(out);
    }
    let mut tries = Vec::new();
    for which in 0..3 {
        for server in &servers {
            let server = server.clone();
            let inbox = inbox.clone();
            tries.push(async move {
                let described = format!("{:?}", server);
                (
                    which,
                    described,
                    allocate(server, local_ip, inbox, base).await,
                )
            });
        }
    }
    for (which, described, result) in futures_util::future::join_all(tries).await {
        match result {
            Ok(relay) => match which {
                0 => out.chat.push(relay),
                1 => out.media.push(relay),
                _ => out.publish.push(relay),
            },
            Err(e) => {
                warn!(relay = %described, error = %e, "relay not usable");
                let line = format!("{described}: {e}");
                if !out.failures.contains(&line) {
                    out.failures.push(line);
                }
            }
        }
    }
    if network.relay_only && (out.chat.is_empty() || out.media.is_empty() || out.publish.is_empty())
    {
        return Err(no_relay(&out.failures));
    }
    Ok(out)
}

fn no_relay(failures: &[String]) -> String {
    if failures.is_empty() {
        "Only relays may be used, and no relay is set in the connection settings".into()
    } else {
        format!("Could not reach a relay ({})", failures.join("; "))
    }
}
