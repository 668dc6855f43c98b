//! RFC 4571 framing: packets (STUN, DTLS, SRTP) over a TCP stream, each
//! preceded by its length as two big-endian bytes. ICE over TCP (RFC 6544)
//! carries media this way when UDP is blocked.
//!
//! Sans-IO: [`encode`] makes a frame, [`FrameDecoder`] takes bytes as they
//! arrive and hands back whole packets.

/// The largest packet a frame can carry.
pub const MAX_PACKET: usize = u16::MAX as usize;

/// The first byte of a framed STUN, DTLS or SRTP packet on a fresh
/// connection: the high byte of a length below 256, which no HTTP request
/// (a letter) and no TLS record (0x16) starts with. A server can tell an
/// ICE-TCP connection from a WebSocket one on the same port by it.
pub fn starts_like_ice_tcp(first: u8) -> bool {
    first == 0
}

/// The packet with its two-byte length in front, or `None` if it is too
/// long to frame.
pub fn encode(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok()?;
    let mut out = Vec::with_capacity(packet.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(out)
}

/// Reassembles packets from a TCP stream's bytes, whatever the reads'
/// boundaries.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, if one has arrived.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        let pending = self.buf.get(self.start..)?;
        let (&[hi, lo], rest) = pending.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let packet = rest.get(..len)?.to_vec();
        self.start += 2 + len;
        Some(packet)
    }

    /// Bytes held that do not yet make a whole packet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_packet_in_pieces() {
        let framed = encode(b"hello").expect("valid in this test");
        let mut d = FrameDecoder::new();
        d.push(&framed[..1]);
        assert_eq!(d.next_packet(), None);
        d.push(&framed[1..4]);
        assert_eq!(d.next_packet(), None);
        d.push(&framed[4..]);
        assert_eq!(d.next_packet().as_deref(), Some(&b"hello"[..]));
        assert_eq!(d.next_packet(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn empty_and_largest_packets() {
        assert_eq!(encode(&[]).expect("valid in this test"), vec![0, 0]);
        assert!(encode(&vec![0; MAX_PACKET]).is_some());
        assert!(encode(&vec![0; MAX_PACKET + 1]).is_none());
    }

    #[test]
    fn stun_starts_like_ice_tcp_and_http_and_tls_do_not() {
        let stun = encode(&[0x00, 0x01, 0x00, 0x00]).expect("valid in this test");
        assert!(starts_like_ice_tcp(stun[0]));
        assert!(!starts_like_ice_tcp(b'G'));
        assert!(!starts_like_ice_tcp(0x16));
    }

    proptest! {
        /// Any packets, framed and cut at any points, come out whole and in order.
        #[test]
        fn round_trip(
            packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 0..20),
            cuts in prop::collection::vec(1usize..700, 1..50),
        ) {
            let stream: Vec<u8> = packets.iter().flat_map(|p| encode(p).expect("valid in this test")).collect();
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at >= stream.len() {
                    break;
                }
                let end = (at + cut).min(stream.len());
                d.push(&stream[at..end]);
                at = end;
                while let Some(p) = d.next_packet() {
                    out.push(p);
                }
            }
            prop_assert_eq!(out, packets);
            prop_assert_eq!(d.pending(), 0);
        }

        /// Arbitrary bytes never panic and never yield more than they hold.
        #[test]
        fn garbage_is_safe(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            let mut total = 0;
            while let Some(p) = d.next_packet() {
                total += p.len() + 2;
            }
            prop_assert!(total <= bytes.len());
            prop_assert_eq!(total + d.pending(), bytes.len());
        }
    }
}
