//! One handle's WebRTC peer connection (str0m in RTP mode, full ICE), seen
//! from the server: created with an offer (TextRoom, subscribers) or an
//! answer (publishers), fed datagrams and time, drained into transmits and
//! [`PeerEvent`]s. Media is forwarded packet by packet, never decoded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::format::{Codec, CodecSpec};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{RtpPacket, RtpWrite};
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
    /// An RTP packet arrived on the m-line `mid` (publishers).
    Rtp(Mid, Box<RtpPacket>),
    /// The remote asks for a keyframe on the m-line `mid` (subscribers).
    KeyframeRequest(Mid, KeyframeRequestKind),
    /// The peer connection died (ICE gave up or DTLS closed).
    Closed,
}

/// The SCTP stream of the server's own, never used, data channel (even:
/// clients in the DTLS server role pick odd streams).
const UNUSED_STREAM: u16 = 1000;

/// A packet to send.
#[derive(Debug)]
pub struct Transmit {
    /// UDP, or TCP (ICE-TCP, framed by RFC 4571).
    pub proto: Protocol,
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

/// Codecs the server negotiates: Opus (with RED, RFC 2198, where the peer
/// has it), VP8 and H.264 (as Janus's VideoRoom offers by default, plus
/// H.264), forwarded in RTP mode.
fn new_rtc(now: Instant, candidates: &IceAddresses) -> Rtc {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, true)
        .enable_vp8(true)
        .enable_h264(true)
        .set_rtp_mode(true)
        // Receiver reports on audio each second (str0m's default is 5 s):
        // a sender learns of loss soon enough to protect its audio.
        .set_rtcp_report_interval_audio(Duration::from_secs(1))
        .build(now);
    let host = candidates
        .host
        .iter()
        .map(|a| (*a, Candidate::host(*a, "udp")));
    let reflexive = candidates
        .reflexive
        .iter()
        .map(|(public, base)| (*public, Candidate::server_reflexive(*public, *base, "udp")));
    // Passive ICE-TCP candidates: clients connect to them when UDP is
    // blocked (RFC 6544); never preferred over UDP (type preference 90).
    let tcp = candidates.tcp.iter().map(|a| {
        (
            *a,
            Candidate::builder()
                .tcp()
                .host(*a)
                .tcptype(TcpType::Passive)
                .build(),
        )
    });
    for (addr, candidate) in host.chain(reflexive).chain(tcp) {
        match candidate {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => debug!(error = %e, %addr, "unusable local candidate"),
        }
    }
    rtc
}

/// Whether two codec specs carry the same bitstream format (H.264 must
/// agree on profile and packetization mode too).
pub fn same_format(a: &CodecSpec, b: &CodecSpec) -> bool {
    if a.codec != b.codec {
        return false;
    }
    if a.codec == Codec::H264 {
        let pl = |s: &CodecSpec| s.format.profile_level_id.map(|p| p >> 8);
        return pl(a) == pl(b)
            && a.format.packetization_mode.unwrap_or(0)
                == b.format.packetization_mode.unwrap_or(0);
    }
    true
}

impl Peer {
    fn with_rtc(rtc: Rtc, pending: Option<SdpPendingOffer>) -> Peer {
        Peer {
            rtc,
            pending,
            next_timeout: None,
            closed: false,
        }
    }

    /// A peer that offers one data channel (TextRoom `setup`). Returns the offer SDP.
    pub fn offer_data_channel(
        now: Instant,
        candidates: &IceAddresses,
        label: &str,
    ) -> Result<(Peer, String), PeerError> {
        let mut rtc = new_rtc(now, candidates);
        let mut change = rtc.sdp_api();
        // Like Janus, the server only negotiates the m=application line: the
        // client opens the channel. A channel is needed for str0m to offer
        // that line, so ours is pre-negotiated on a stream the client never
        // uses, which announces nothing (a second announced channel makes
        // janus.js run its data-channel-open handler twice).
        change.add_channel_with_config(ChannelConfig {
            label: label.to_owned(),
            negotiated: Some(UNUSED_STREAM),
            ..Default::default()
        });
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Sdp("nothing to offer".into()))?;
        Ok((Peer::with_rtc(rtc, Some(pending)), offer.to_sdp_string()))
    }

    /// A peer that offers send-only media, one m-line per kind (a VideoRoom
    /// subscription). Returns the offer SDP and the new m-lines' mids.
    pub fn offer_media(
        now: Instant,
        candidates: &IceAddresses,
        kinds: &[MediaKind],
        stream_id: &str,
    ) -> Result<(Peer, String, Vec<Mid>), PeerError> {
        let mut peer = Peer::with_rtc(new_rtc(now, candidates), None);
        let (sdp, mids) = peer.renegotiate(kinds, &[], stream_id)?;
        Ok((peer, sdp, mids))
    }

    /// A new offer that adds send-only m-lines for `add` and makes the
    /// m-lines in `deactivate` inactive. Returns the offer SDP and the new mids.
    pub fn renegotiate(
        &mut self,
        add: &[MediaKind],
        deactivate: &[Mid],
        stream_id: &str,
    ) -> Result<(String, Vec<Mid>), PeerError> {
        let mut change = self.rtc.sdp_api();
        let mids = add
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                change.add_media(
                    *kind,
                    Direction::SendOnly,
                    Some(stream_id.to_owned()),
                    Some(format!("{stream_id}-{i}")),
                    None,
                )
            })
            .collect();
        for mid in deactivate {
            change.set_direction(*mid, Direction::Inactive);
        }
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Sdp("nothing to offer".into()))?;
        self.pending = Some(pending);
        Ok((offer.to_sdp_string(), mids))
    }

    /// A peer that answers a client's offer. Returns the answer SDP.
    pub fn answer(
        now: Instant,
        candidates: &IceAddresses,
        offer_sdp: &str,
    ) -> Result<(Peer, String), PeerError> {
        let mut peer = Peer::with_rtc(new_rtc(now, candidates), None);
        let answer = peer.accept_offer(offer_sdp)?;
        Ok((peer, answer))
    }

    /// Applies a (re-)offer from the client. Returns the answer SDP.
    pub fn accept_offer(&mut self, offer_sdp: &str) -> Result<String, PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    /// A new offer of ours with fresh ICE credentials (an ICE restart the
    /// client asked for: its network changed). The candidates stay; the
    /// client's new ones come in its answer. Fails while an offer of ours
    /// still waits for its answer.
    pub fn restart_offer(&mut self) -> Result<String, PeerError> {
        if self.pending.is_some() {
            return Err(PeerError::Sdp(
                "an offer already waits for its answer".into(),
            ));
        }
        let mut change = self.rtc.sdp_api();
        change.ice_restart(true);
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Sdp("nothing to offer".into()))?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
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

    /// Whether an offer of ours waits for its answer.
    pub fn awaits_answer(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        !self.closed && self.rtc.is_connected()
    }

    /// Whether the peer connection has not ended (it may be between paths).
    pub fn is_open(&self) -> bool {
        !self.closed && self.rtc.is_alive()
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
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        self.receive(now, proto, source, destination, contents, false)
    }

    /// Takes a datagram from an address this peer just took an ICE check
    /// from, though its own ICE has not confirmed the path yet (a client's
    /// first DTLS flight); returns whether it was a packet at all.
    pub fn receive_checked(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        self.receive(now, proto, source, destination, contents, true)
    }

    /// Takes a datagram if it is a packet at all and either the peer's ICE
    /// knows its path or `checked` says the address was just checked.
    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        checked: bool,
    ) -> bool {
        let Ok(receive) = Receive::new(proto, source, destination, contents) else {
            return false;
        };
        let input = str0m::Input::Receive(now, receive);
        if !checked && !self.rtc.accepts(&input) {
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

    /// The codec of payload type `pt` as negotiated on this peer, and
    /// whether `pt` is that codec wrapped in RED (RFC 2198).
    pub fn codec_of(&self, pt: Pt) -> Option<(CodecSpec, bool)> {
        self.rtc.codec_config().params().iter().find_map(|p| {
            if p.pt() == pt {
                Some((p.spec(), false))
            } else if p.red() == Some(pt) {
                Some((p.spec(), true))
            } else {
                None
            }
        })
    }

    /// The RED payload type this peer accepted for the codec sent as `pt`,
    /// if it takes RED.
    pub fn red_pt_for(&self, pt: Pt) -> Option<Pt> {
        self.rtc
            .codec_config()
            .find(|p| p.pt() == pt)
            .and_then(|p| p.red())
    }

    /// The payload type the remote accepted on `mid` for this codec.
    pub fn pt_for(&self, mid: Mid, spec: &CodecSpec) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let config = self.rtc.codec_config();
        let accepted = |pt: &&Pt| {
            config
                .find(|p| p.pt() == **pt)
                .is_some_and(|p| same_format(&p.spec(), spec))
        };
        media
            .remote_pts()
            .iter()
            .find(accepted)
            .copied()
            .or_else(|| {
                // Fall back to the same codec with other parameters.
                media
                    .remote_pts()
                    .iter()
                    .find(|pt| {
                        config
                            .find(|p| p.pt() == **pt)
                            .is_some_and(|p| p.spec().codec == spec.codec)
                    })
                    .copied()
            })
    }

    /// Writes one RTP packet on the send-only m-line `mid`. False when that
    /// m-line cannot send (not negotiated, rejected, inactive).
    pub fn write_rtp(&mut self, mid: Mid, write: RtpWrite) -> bool {
        if self.closed || !self.rtc.is_connected() {
            return false;
        }
        let mut api = self.rtc.direct_api();
        match api.stream_tx_by_mid(mid, None) {
            Some(tx) => {
                tx.write_rtp(write);
                true
            }
            None => false,
        }
    }

    /// Lets written RTP go out now: str0m sends queued packets only once
    /// time has been handed to it.
    pub fn flush(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.next_timeout = None;
        if let Err(e) = self.rtc.handle_input(str0m::Input::Timeout(now)) {
            debug!(error = %e, "WebRTC timeout failed");
        }
    }

    /// Asks the remote (a publisher) for a keyframe on `mid`.
    pub fn request_keyframe(&mut self, mid: Mid, kind: KeyframeRequestKind) {
        if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(kind);
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
                    proto: t.proto,
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
                    Event::RtpPacket(packet) => {
                        let ssrc = packet.header.ssrc;
                        let mid = self
                            .rtc
                            .direct_api()
                            .stream_rx(&ssrc)
                            .map(|s| s.mid())
                            .or(packet.header.ext_vals.mid);
                        if let Some(mid) = mid {
                            events.push(PeerEvent::Rtp(mid, Box::new(packet)));
                        }
                    }
                    Event::KeyframeRequest(r) => {
                        events.push(PeerEvent::KeyframeRequest(r.mid, r.kind))
                    }
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
