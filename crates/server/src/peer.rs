//! One handle's WebRTC peer connection (str0m, full ICE), seen from the
//! server: created with an offer (TextRoom) or an answer (VideoRoom), fed
//! datagrams and time, drained into transmits and [`PeerEvent`]s.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Rtc};
use tracing::debug;

use crate::core::IceAddresses;

/// Why a peer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The SDP could not be parsed or applied.
    #[error("invalid SDP: {0}")]
    Sdp(String),
    /// The answer came without an offer waiting for it.
    #[error("no offer is waiting for an answer")]
    NoPendingOffer,
}

/// Something the server acts on.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// A data channel message arrived as text.
    ChannelText(ChannelId, String),
    /// The peer connection died (ICE gave up or DTLS closed).
    Closed,
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// Our address it leaves from.
    pub source: SocketAddr,
    /// Where it goes.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// A peer connection.
pub struct Peer {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    next_timeout: Option<Instant>,
    closed: bool,
}

fn new_rtc(now: Instant, candidates: &IceAddresses) -> Rtc {
    let mut rtc = Rtc::builder().build(now);
    let host = candidates
        .host
        .iter()
        .map(|a| (*a, Candidate::host(*a, "udp")));
    let reflexive = candidates
        .reflexive
        .iter()
        .map(|(public, base)| (*public, Candidate::server_reflexive(*public, *base, "udp")));
    for (addr, candidate) in host.chain(reflexive) {
        match candidate {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => debug!(error = %e, %addr, "unusable local candidate"),
        }
    }
    rtc
}

impl Peer {
    /// A peer that offers one data channel (TextRoom `setup`). Returns the offer SDP.
    pub fn offer_data_channel(
        now: Instant,
        candidates: &IceAddresses,
        label: &str,
    ) -> Result<(Peer, String), PeerError> {
        let mut rtc = new_rtc(now, candidates);
        let mut change = rtc.sdp_api();
        change.add_channel(label.to_owned());
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Sdp("nothing to offer".into()))?;
        Ok((
            Peer {
                rtc,
                pending: Some(pending),
                next_timeout: None,
                closed: false,
            },
            offer.to_sdp_string(),
        ))
    }

    /// A peer that answers a client's offer. Returns the answer SDP.
    pub fn answer(
        now: Instant,
        candidates: &IceAddresses,
        offer_sdp: &str,
    ) -> Result<(Peer, String), PeerError> {
        let mut rtc = new_rtc(now, candidates);
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        Ok((
            Peer {
                rtc,
                pending: None,
                next_timeout: None,
                closed: false,
            },
            answer.to_sdp_string(),
        ))
    }

    /// Applies the client's answer to our offer.
    pub fn accept_answer(&mut self, answer_sdp: &str) -> Result<(), PeerError> {
        let pending = self.pending.take().ok_or(PeerError::NoPendingOffer)?;
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError::Sdp(e.to_string()))
    }

    /// Adds a trickled candidate (`candidate:...`, with or without the prefix).
    pub fn add_remote_candidate(&mut self, candidate: &str) {
        let line = if candidate.starts_with("candidate:") {
            candidate.to_owned()
        } else {
            format!("candidate:{candidate}")
        };
        match Candidate::from_sdp_string(&line) {
            Ok(c) => self.rtc.add_remote_candidate(c),
            Err(e) => debug!(error = %e, "ignoring an unparsable remote candidate"),
        }
    }

    /// Whether this datagram belongs to this peer; if so, takes it.
    pub fn try_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, contents) else {
            return false;
        };
        let input = str0m::Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            return false;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            debug!(error = %e, "WebRTC input failed");
        }
        true
    }

    /// Advances time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_timeout.is_some_and(|t| t <= now) {
            self.next_timeout = None;
            if let Err(e) = self.rtc.handle_input(str0m::Input::Timeout(now)) {
                debug!(error = %e, "WebRTC timeout failed");
            }
        }
    }

    /// Sends a text message on a data channel.
    pub fn send_text(&mut self, channel: ChannelId, text: &str) -> bool {
        match self.rtc.channel(channel) {
            Some(mut c) => c.write(false, text.as_bytes()).unwrap_or(false),
            None => false,
        }
    }

    /// Drains everything the peer wants to do now.
    pub fn drain(&mut self, transmits: &mut Vec<Transmit>, events: &mut Vec<PeerEvent>) {
        if self.closed {
            return;
        }
        loop {
            match self.rtc.poll_output() {
                Ok(str0m::Output::Timeout(t)) => {
                    self.next_timeout = Some(t);
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => transmits.push(Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(str0m::Output::Event(e)) => match e {
                    Event::Connected => events.push(PeerEvent::Connected),
                    Event::ChannelData(d) if !d.binary => match String::from_utf8(d.data) {
                        Ok(text) => events.push(PeerEvent::ChannelText(d.id, text)),
                        Err(_) => debug!("ignoring a non-UTF-8 data channel message"),
                    },
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.closed = true;
                        events.push(PeerEvent::Closed);
                        break;
                    }
                    _ => {}
                },
                Err(e) => {
                    debug!(error = %e, "peer connection failed");
                    self.closed = true;
                    events.push(PeerEvent::Closed);
                    break;
                }
            }
        }
        if !self.rtc.is_alive() && !self.closed {
            self.closed = true;
            events.push(PeerEvent::Closed);
        }
    }

    /// When the peer next needs [`Peer::handle_timeout`].
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.closed {
            None
        } else {
            self.next_timeout
        }
    }

    /// Ends the peer connection.
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.closed = true;
    }
}
