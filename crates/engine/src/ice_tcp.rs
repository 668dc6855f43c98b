//! Active ICE-TCP (RFC 6544) at the I/O edge: when str0m sends a packet
//! from one of our active TCP candidates to a server's passive one, a TCP
//! connection is made (once per pair) and packets go over it framed by
//! RFC 4571 ([`conclave_protocol::framing`]). This is how media reaches a
//! conclave-server when the network blocks UDP, with no relay in between.
//!
//! The client state machine never sees a socket: packets come back as
//! [`TcpEvent::Packet`] with the candidate's address as their destination,
//! exactly as str0m expects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_protocol::framing::{self, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tracing::debug;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed or closed connection, packets for that pair are dropped
/// this long before a new connection is tried (str0m keeps checking).
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Packets queued for one connection; beyond it they are dropped, as a
/// full UDP buffer would drop them.
const QUEUE: usize = 512;

/// What a connection reports to the loop.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A packet arrived from `remote` for our candidate `local`.
    Packet {
        /// Our active candidate's address.
        local: SocketAddr,
        /// The server's passive candidate.
        remote: SocketAddr,
        /// The packet, unframed.
        data: Vec<u8>,
    },
    /// The connection could not be made, or ended.
    Closed {
        /// Our active candidate's address.
        local: SocketAddr,
        /// The server's passive candidate.
        remote: SocketAddr,
    },
}

enum Link {
    Open(mpsc::Sender<Vec<u8>>),
    Failed(Instant),
}

/// The ICE-TCP connections of one meeting, keyed by candidate pair.
pub(crate) struct IceTcp {
    links: HashMap<(SocketAddr, SocketAddr), Link>,
    events: mpsc::UnboundedSender<TcpEvent>,
}

impl IceTcp {
    /// No connections yet; what they receive comes out of the receiver.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<TcpEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        (
            IceTcp {
                links: HashMap::new(),
                events,
            },
            rx,
        )
    }

    /// Sends `data` from our candidate `local` to `remote`, connecting
    /// first if this pair has no connection.
    pub(crate) fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let Some(frame) = framing::encode(data) else {
            debug!("packet too large for ICE-TCP");
            return;
        };
        let now = Instant::now();
        let link = match self.links.get(&(local, remote)) {
            Some(Link::Open(tx)) => {
                if tx.try_send(frame).is_err() {
                    debug!(%remote, "ICE-TCP queue full; packet dropped");
                }
                return;
            }
            Some(Link::Failed(at)) if now.saturating_duration_since(*at) < RETRY_AFTER => return,
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                let _ = tx.try_send(frame);
                tokio::spawn(run_link(local, remote, rx, self.events.clone()));
                Link::Open(tx)
            }
        };
        self.links.insert((local, remote), link);
    }

    /// Notes that a connection ended (from [`TcpEvent::Closed`]).
    pub(crate) fn closed(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.links
            .insert((local, remote), Link::Failed(Instant::now()));
    }
}

/// Connects from our candidate's IP to the server and carries frames both
/// ways until either side ends.
async fn run_link(
    local: SocketAddr,
    remote: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    events: mpsc::UnboundedSender<TcpEvent>,
) {
    let stream = async {
        let socket = if remote.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local.ip(), 0))?;
        socket.set_nodelay(true)?;
        socket.connect(remote).await
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, stream).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(error = %e, %remote, "ICE-TCP connection failed");
            let _ = events.send(TcpEvent::Closed { local, remote });
            return;
        }
        Err(_) => {
            debug!(%remote, "ICE-TCP connection timed out");
            let _ = events.send(TcpEvent::Closed { local, remote });
            return;
        }
    };
    debug!(%remote, "ICE-TCP connected");
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    decoder.push(buf.get(..n).unwrap_or_default());
                    while let Some(data) = decoder.next_packet() {
                        if events.send(TcpEvent::Packet { local, remote, data }).is_err() {
                            return;
                        }
                    }
                }
            },
            frame = outgoing.recv() => match frame {
                Some(frame) => {
                    if writer.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    debug!(%remote, "ICE-TCP connection ended");
    let _ = events.send(TcpEvent::Closed { local, remote });
}
