//! Sequence-number and timestamp rewriting for one subscriber m-line.
//!
//! A subscriber's m-line carries one continuous RTP stream even when its
//! source changes (another publisher, or the same publisher restarting
//! with a new SSRC): the first packet of a new source continues right
//! after the last packet sent, and its timestamp moves on by the wall time
//! that passed, so the receiver's jitter buffer and SRTP see no jump.

use std::time::Instant;

/// Identifies one incoming RTP stream: the publishing handle and its SSRC.
pub type SourceKey = (u64, u32);

/// How far behind the newest forwarded packet a late packet may be and
/// still be forwarded (reordering and retransmissions).
const MAX_LATE: u64 = 1000;

/// The rewriting state of one outgoing m-line.
#[derive(Debug, Clone)]
pub struct Rewriter {
    /// The newest extended sequence number sent, if any.
    last_seq: Option<u64>,
    /// The newest RTP timestamp sent, with when it was sent.
    last_ts: Option<(u32, Instant)>,
    /// The first sequence number sent when nothing was sent before.
    initial_seq: u64,
    source: Option<Source>,
}

#[derive(Debug, Clone)]
struct Source {
    key: SourceKey,
    /// The first input sequence number taken from this source: older ones
    /// belong to before the switch and are dropped.
    first_in_seq: u64,
    seq_offset: i64,
    ts_offset: u32,
}

/// A rewritten packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended output sequence number.
    pub seq: u64,
    /// Output RTP timestamp.
    pub timestamp: u32,
    /// Whether this is the first packet of a new source.
    pub switched: bool,
}

impl Rewriter {
    /// A rewriter whose first packet gets sequence number `initial_seq`
    /// (below 2^15, so that the SRTP rollover counter starts at zero).
    pub fn new(initial_seq: u16) -> Self {
        Rewriter {
            last_seq: None,
            last_ts: None,
            initial_seq: u64::from(initial_seq & 0x7fff),
            source: None,
        }
    }

    /// Rewrites one packet with extended sequence number `seq` and RTP
    /// timestamp `timestamp` from `key`, arriving at `now`; `clock_rate` is
    /// the codec's RTP clock. `None` means drop it (a packet from before the
    /// current source began, or far too late).
    pub fn rewrite(
        &mut self,
        key: SourceKey,
        seq: u64,
        timestamp: u32,
        clock_rate: u32,
        now: Instant,
    ) -> Option<Rewritten> {
        let mut switched = false;
        if self.source.as_ref().map(|s| s.key) != Some(key) {
            switched = true;
            let next_seq = self.last_seq.map_or(self.initial_seq, |s| s + 1);
            let next_ts = match self.last_ts {
                None => timestamp,
                Some((ts, at)) => {
                    let elapsed = now.saturating_duration_since(at);
                    let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)) as u64;
                    ts.wrapping_add(ticks.clamp(1, u64::from(u32::MAX / 2)) as u32)
                }
            };
            self.source = Some(Source {
                key,
                first_in_seq: seq,
                seq_offset: next_seq as i64 - seq as i64,
                ts_offset: next_ts.wrapping_sub(timestamp),
            });
        }
        let source = self.source.as_ref()?;
        if seq < source.first_in_seq {
            return None;
        }
        let out_seq = u64::try_from(seq as i64 + source.seq_offset).ok()?;
        if let Some(last) = self.last_seq {
            if out_seq + MAX_LATE < last {
                return None;
            }
        }
        let out_ts = timestamp.wrapping_add(source.ts_offset);
        if self.last_seq.is_none_or(|last| out_seq > last) {
            self.last_seq = Some(out_seq);
            self.last_ts = Some((out_ts, now));
        }
        Some(Rewritten {
            seq: out_seq,
            timestamp: out_ts,
            switched,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn continues_across_a_source_switch() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(100);
        let a = r.rewrite((1, 11), 5000, 90_000, 90_000, t0).expect("first");
        assert_eq!((a.seq, a.timestamp, a.switched), (100, 90_000, true));
        let b = r
            .rewrite(
                (1, 11),
                5001,
                93_000,
                90_000,
                t0 + Duration::from_millis(33),
            )
            .expect("next");
        assert_eq!((b.seq, b.timestamp, b.switched), (101, 93_000, false));
        // Another publisher, far away in both numbering spaces, 100 ms later.
        let c = r
            .rewrite((2, 22), 60_000, 7, 90_000, t0 + Duration::from_millis(133))
            .expect("switch");
        assert_eq!(
            (c.seq, c.timestamp, c.switched),
            (102, 93_000 + 9_000, true)
        );
        // Late packets from before the switch are dropped.
        assert!(r
            .rewrite((2, 22), 59_999, 0, 90_000, t0 + Duration::from_millis(140))
            .is_none());
    }

    #[test]
    fn reordered_packets_keep_their_place() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(10);
        r.rewrite((1, 1), 100, 0, 48_000, t0).expect("first");
        r.rewrite((1, 1), 102, 1920, 48_000, t0).expect("third");
        let late = r.rewrite((1, 1), 101, 960, 48_000, t0).expect("second");
        assert_eq!((late.seq, late.timestamp), (11, 960));
        let next = r.rewrite((1, 1), 103, 2880, 48_000, t0).expect("fourth");
        assert_eq!(next.seq, 13);
    }

    proptest! {
        /// Whatever the sources and their numbering, in-order input gives
        /// consecutive output sequence numbers with no gap or repeat at a
        /// switch, and timestamps that never go back across a switch.
        #[test]
        fn output_is_continuous(
            runs in prop::collection::vec((0u64..4, 0u64..1_000_000, any::<u32>(), 1usize..20), 1..12),
            initial in any::<u16>(),
        ) {
            let t0 = Instant::now();
            let mut r = Rewriter::new(initial);
            let mut expected = u64::from(initial & 0x7fff);
            let mut last_ts: Option<u32> = None;
            let mut now = t0;
            for (i, (source, seq0, ts0, len)) in runs.into_iter().enumerate() {
                // A new SSRC for each run, so each run is a new source.
                let key = (source, i as u32);
                for k in 0..len as u64 {
                    now += Duration::from_millis(20);
                    let ts = ts0.wrapping_add((k as u32) * 960);
                    let out = r.rewrite(key, seq0 + k, ts, 48_000, now).expect("in order");
                    prop_assert_eq!(out.seq, expected);
                    prop_assert_eq!(out.switched, k == 0);
                    if let (Some(prev), true) = (last_ts, k == 0) {
                        let step = out.timestamp.wrapping_sub(prev);
                        prop_assert!(step > 0 && step < u32::MAX / 2);
                    }
                    last_ts = Some(out.timestamp);
                    expected += 1;
                }
            }
        }
    }
}
