//! An adaptive jitter buffer for one incoming audio stream.
//!
//! Packets go in with their RTP timestamp (48 kHz) and arrival time; the
//! playout asks for the next packet's worth of audio whenever it needs more
//! and gets a [`Playout`] saying what to do: decode a packet, rebuild a lost
//! one from the next packet's forward error correction, conceal, or play
//! silence while buffering. The buffer is codec-agnostic and sans-IO: time
//! comes in as arguments, so tests drive it with simulated networks.
//!
//! The target delay follows the network: the 95th percentile of each
//! packet's delay relative to the fastest recent packet, plus one packet, at
//! least [`MIN_TARGET`]. When more than the target piles up (the sender's
//! clock runs faster, or a burst arrived), old packets are dropped so the
//! delay comes back down.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::frame::SAMPLE_RATE;

/// The smallest target delay.
pub const MIN_TARGET: Duration = Duration::from_millis(10);
/// The largest target delay.
pub const MAX_TARGET: Duration = Duration::from_millis(400);
/// Packets remembered for the delay estimate (about 5 s of 20 ms packets).
const WINDOW: usize = 250;
/// Concealed packets in a row after which the stream counts as stopped and
/// the buffer waits for new packets (silence, not endless concealment).
const MAX_CONCEALED_RUN: u32 = 5;
/// Largest RTP timestamp accepted.
const MAX_TIMESTAMP: u64 = 1 << 62;
/// A timestamp jump (10 s at 48 kHz) after which the buffer starts over.
const RESET_JUMP: u64 = 10 * SAMPLE_RATE as u64;
/// Held on top of the jitter and one packet, so a packet arriving on time
/// is there before the playout asks for it.
const MARGIN: Duration = Duration::from_millis(10);
/// Extra delay tolerated above the target before packets are dropped.
const SLACK: Duration = Duration::from_millis(60);

/// What the playout does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Decode(Vec<u8>),
    /// The packet is lost; rebuild it from this next packet's in-band FEC.
    DecodeFec(Vec<u8>),
    /// The packet is lost and nothing can rebuild it: conceal this many
    /// samples.
    Conceal(usize),
    /// Nothing to play yet (buffering, or the sender stopped): this many
    /// samples of silence.
    Silence(usize),
}

/// Counters for the statistics panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets received.
    pub received: u64,
    /// Packets decoded.
    pub decoded: u64,
    /// Packets rebuilt from FEC.
    pub recovered: u64,
    /// Packets concealed.
    pub concealed: u64,
    /// Packets that arrived after their turn.
    pub late: u64,
    /// Packets dropped to bring the delay down.
    pub dropped: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first packet to have aged by the target delay.
    Buffering,
    /// Playing; the cursor is the RTP time of the next packet due.
    Playing { cursor: u64 },
}

/// The jitter buffer of one stream.
#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, (Vec<u8>, Instant)>,
    state: State,
    /// Samples per packet, learnt from consecutive timestamps.
    frame: u64,
    epoch: Option<(Instant, u64)>,
    transits: VecDeque<i64>,
    target: Duration,
    concealed_run: u32,
    last_inserted: Option<u64>,
    /// A longer packet step seen, and how often in a row.
    longer_step: (u64, u32),
    /// The end of the last packet played: anything older is too late, also
    /// after the buffer went back to buffering (a pause).
    played_up_to: Option<u64>,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

fn samples_to_duration(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / SAMPLE_RATE as u64)
}

impl JitterBuffer {
    /// An empty buffer (20 ms packets assumed until others are seen).
    pub fn new() -> Self {
        JitterBuffer {
            packets: BTreeMap::new(),
            state: State::Buffering,
            played_up_to: None,
            frame: (SAMPLE_RATE / 50) as u64,
            epoch: None,
            transits: VecDeque::new(),
            target: samples_to_duration((SAMPLE_RATE / 50) as u64) + MARGIN,
            concealed_run: 0,
            last_inserted: None,
            longer_step: (0, 0),
            stats: JitterStats::default(),
        }
    }

    /// The current target delay.
    pub fn target_delay(&self) -> Duration {
        self.target
    }

    /// Audio buffered ahead of the playout.
    pub fn buffered(&self) -> Duration {
        let (Some((&first, _)), Some((&last, _))) = (
            self.packets.first_key_value(),
            self.packets.last_key_value(),
        ) else {
            return Duration::ZERO;
        };
        let start = match self.state {
            State::Playing { cursor } => cursor.min(first),
            State::Buffering => first,
        };
        samples_to_duration(last + self.frame - start)
    }

    /// Samples per packet, as learnt from the stream (the size of a frame to
    /// conceal or rebuild).
    pub fn packet_samples(&self) -> usize {
        self.frame as usize
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Takes in a packet with its RTP timestamp (48 kHz, extended to 64
    /// bits) and arrival time.
    pub fn insert(&mut self, rtp_time: u64, data: Vec<u8>, arrival: Instant) {
        self.stats.received += 1;
        if rtp_time > MAX_TIMESTAMP {
            // Not a timestamp a real stream reaches; keeps the sums below
            // from overflowing.
            self.stats.late += 1;
            return;
        }
        // The sender's clock jumped (it restarted, or switched sources):
        // start over rather than wait or drop for the length of the jump.
        if self
            .last_inserted
            .is_some_and(|last| last.abs_diff(rtp_time) > RESET_JUMP)
        {
            self.reset();
        }
        let played = match self.state {
            State::Playing { cursor } => Some(cursor),
            State::Buffering => self.played_up_to,
        };
        if played.is_some_and(|end| rtp_time + self.frame / 2 < end) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&rtp_time) {
            self.stats.duplicates += 1;
            return;
        }
        if let Some(prev) = self.last_inserted {
            let step = rtp_time.wrapping_sub(prev);
            // 2.5 ms to 120 ms: plausible Opus packet durations. A shorter
            // step is adopted at once; a longer one only when it comes
            // several times in a row (a single longer step is usually a
            // loss, and under loss single ones come often).
            if step == self.frame {
                self.longer_step = (0, 0);
            } else if (120..=5760).contains(&step) {
                if step < self.frame {
                    self.frame = step;
                } else if self.longer_step.0 == step {
                    self.longer_step.1 += 1;
                    if self.longer_step.1 >= 4 {
                        self.frame = step;
                    }
                } else {
                    self.longer_step = (step, 1);
                }
            }
        }
        self.last_inserted = Some(rtp_time);
        self.observe_transit(rtp_time, arrival);
        self.packets.insert(rtp_time, (data, arrival));
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.state = State::Buffering;
        self.played_up_to = None;
        self.epoch = None;
        self.transits.clear();
        self.last_inserted = None;
        self.concealed_run = 0;
    }

    fn observe_transit(&mut self, rtp_time: u64, arrival: Instant) {
        let (epoch, first_ts) = *self.epoch.get_or_insert((arrival, rtp_time));
        let arrival_us = arrival.saturating_duration_since(epoch).as_micros() as i64;
        let media_us = (rtp_time as i64 - first_ts as i64) * 1_000_000 / SAMPLE_RATE as i64;
        self.transits.push_back(arrival_us - media_us);
        if self.transits.len() > WINDOW {
            self.transits.pop_front();
        }
        let Some(&fastest) = self.transits.iter().min() else {
            return;
        };
        let mut delays: Vec<i64> = self.transits.iter().map(|t| t - fastest).collect();
        delays.sort_unstable();
        let p95 = delays[(delays.len() * 95 / 100).min(delays.len() - 1)];
        let jitter = Duration::from_micros(p95.max(0) as u64);
        self.target =
            (jitter + samples_to_duration(self.frame) + MARGIN).clamp(MIN_TARGET, MAX_TARGET);
    }

    /// What to play next, asked whenever the playout needs another packet's
    /// worth of audio.
    pub fn next(&mut self, now: Instant) -> Playout {
        let frame = self.frame as usize;
        let cursor = match self.state {
            State::Buffering => {
                let Some((&first, (_, arrived))) = self.packets.first_key_value() else {
                    return Playout::Silence(frame);
                };
                if now.saturating_duration_since(*arrived) + samples_to_duration(self.frame)
                    < self.target
                {
                    return Playout::Silence(frame);
                }
                first
            }
            State::Playing { cursor } => cursor,
        };
        // Too much piled up: drop the oldest to come back to the target.
        let mut cursor = cursor;
        while self.buffered_from(cursor) > self.target + SLACK {
            match self.packets.pop_first() {
                Some((ts, _)) => {
                    self.stats.dropped += 1;
                    cursor = ts + self.frame;
                }
                None => break,
            }
        }
        // The packet due, allowing for senders whose timestamps wobble by
        // less than half a packet.
        let half = self.frame / 2;
        let due = self
            .packets
            .range(cursor.saturating_sub(half)..cursor + half)
            .next()
            .map(|(&ts, _)| ts);
        if let Some((ts, (data, _))) = due.and_then(|ts| self.packets.remove_entry(&ts)) {
            self.state = State::Playing {
                cursor: ts + self.frame,
            };
            self.played_up_to = Some(ts + self.frame);
            self.concealed_run = 0;
            self.stats.decoded += 1;
            return Playout::Decode(data);
        }
        // Lost, or not here yet.
        if self.packets.is_empty() {
            // Nothing after it has come either: it may only be late.
            // Conceal without moving on, so that it is still played if it
            // comes: the delay grows by a packet, which also leaves the
            // packet after a loss at hand for its FEC next time. After a
            // few in a row the sender has paused (DTX, mute) or left:
            // rebuffer.
            self.concealed_run += 1;
            if self.concealed_run > MAX_CONCEALED_RUN {
                self.state = State::Buffering;
                return Playout::Silence(frame);
            }
            self.state = State::Playing { cursor };
            self.stats.concealed += 1;
            return Playout::Conceal(frame);
        }
        // Later packets are here: this one is lost.
        self.state = State::Playing {
            cursor: cursor + self.frame,
        };
        // Anything older than the cursor is now too late.
        while let Some((&ts, _)) = self.packets.first_key_value() {
            if ts + half >= cursor + self.frame {
                break;
            }
            self.packets.pop_first();
            self.stats.late += 1;
        }
        let next = cursor + self.frame;
        if let Some((_, (data, _))) = self.packets.range(next - half..next + half).next() {
            self.stats.recovered += 1;
            return Playout::DecodeFec(data.clone());
        }
        self.stats.concealed += 1;
        Playout::Conceal(frame)
    }

    fn buffered_from(&self, cursor: u64) -> Duration {
        match self.packets.last_key_value() {
            Some((&last, _)) if last >= cursor => samples_to_duration(last + self.frame - cursor),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F: u64 = 960;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_stream_plays_every_packet_in_order() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut played = Vec::new();
        for i in 0..50u64 {
            let now = t0 + ms(20 * i);
            jb.insert(1000 + i * F, vec![i as u8], now);
            if let Playout::Decode(d) = jb.next(now + ms(10)) {
                played.push(d[0]);
            }
        }
        assert!(played.len() >= 48, "{played:?}");
        assert!(played.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(jb.target_delay() <= ms(30));
    }

    #[test]
    fn a_lost_packet_is_rebuilt_from_the_next() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in [0u64, 1, 3, 4] {
            jb.insert(i * F, vec![i as u8], t0);
        }
        let now = t0 + ms(100);
        assert_eq!(jb.next(now), Playout::Decode(vec![0]));
        assert_eq!(jb.next(now), Playout::Decode(vec![1]));
        assert_eq!(jb.next(now), Playout::DecodeFec(vec![3]));
        assert_eq!(jb.next(now), Playout::Decode(vec![3]));
        assert_eq!(jb.next(now), Playout::Decode(vec![4]));
        assert_eq!(jb.stats().recovered, 1);
    }

    #[test]
    fn two_lost_packets_are_concealed_then_rebuilt() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in [0u64, 3] {
            jb.insert(i * F, vec![i as u8], t0);
        }
        let now = t0 + ms(100);
        assert_eq!(jb.next(now), Playout::Decode(vec![0]));
        assert_eq!(jb.next(now), Playout::Conceal(F as usize));
        assert_eq!(jb.next(now), Playout::DecodeFec(vec![3]));
        assert_eq!(jb.next(now), Playout::Decode(vec![3]));
    }

    #[test]
    fn silence_while_buffering_and_after_the_sender_stops() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        assert_eq!(jb.next(t0), Playout::Silence(F as usize));
        jb.insert(0, vec![0], t0);
        assert_eq!(jb.next(t0), Playout::Silence(F as usize));
        assert_eq!(jb.next(t0 + ms(50)), Playout::Decode(vec![0]));
        let mut silent = 0;
        for _ in 0..20 {
            if matches!(jb.next(t0 + ms(60)), Playout::Silence(_)) {
                silent += 1;
            }
        }
        assert!(silent >= 10, "stops concealing after a while");
        // Restarts with new packets.
        jb.insert(100 * F, vec![7], t0 + ms(2000));
        assert_eq!(jb.next(t0 + ms(2100)), Playout::Decode(vec![7]));
    }

    #[test]
    fn the_target_grows_with_jitter_and_late_packets_are_dropped() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in 0..200u64 {
            // Every fourth packet is 80 ms late.
            let extra = if i % 4 == 0 { 80 } else { 0 };
            jb.insert(i * F, vec![0], t0 + ms(20 * i + extra));
        }
        assert!(jb.target_delay() >= ms(80), "{:?}", jb.target_delay());
    }

    #[test]
    fn a_backlog_is_dropped_down_to_the_target() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in 0..100u64 {
            jb.insert(i * F, vec![i as u8], t0 + ms(20 * i));
        }
        // The playout starts late with 2 s piled up.
        let p = jb.next(t0 + ms(2000));
        assert!(matches!(p, Playout::Decode(_)));
        assert!(jb.buffered() <= jb.target_delay() + SLACK + ms(20));
        assert!(jb.stats().dropped > 50);
    }

    proptest! {
        #[test]
        fn any_timestamps_never_panic(
            packets in proptest::collection::vec((any::<u64>(), 0u64..1000), 0..200),
        ) {
            let t0 = Instant::now();
            let mut jb = JitterBuffer::new();
            for (i, (ts, at)) in packets.into_iter().enumerate() {
                jb.insert(ts, vec![0], t0 + ms(at));
                if i % 2 == 0 {
                    let _ = jb.next(t0 + ms(at + 5));
                }
                let _ = jb.buffered();
            }
        }

        #[test]
        fn any_arrival_pattern_keeps_order_and_never_panics(
            arrivals in proptest::collection::vec((0u64..200, 0u64..300), 0..300),
            polls in proptest::collection::vec(0u64..400, 0..300),
        ) {
            let t0 = Instant::now();
            let mut jb = JitterBuffer::new();
            let mut events: Vec<(u64, Option<u64>)> = arrivals.iter().map(|&(seq, at)| (at, Some(seq))).collect();
            events.extend(polls.iter().map(|&at| (at, None)));
            events.sort();
            let mut last: Option<u64> = None;
            for (at, what) in events {
                let now = t0 + ms(at);
                match what {
                    Some(seq) => jb.insert(seq * F, (seq as u32).to_be_bytes().to_vec(), now),
                    None => {
                        if let Playout::Decode(d) = jb.next(now) {
                            let seq = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as u64;
                            if let Some(prev) = last {
                                prop_assert!(seq > prev, "{} after {}", seq, prev);
                            }
                            last = Some(seq);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod recovery {
    use super::*;

    #[test]
    fn a_cursor_far_ahead_recovers() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        // 3 s of playout requests before any packet: silence.
        for _ in 0..150 {
            let _ = jb.next(t0);
        }
        let mut decoded = 0;
        for i in 0..200u64 {
            let now = t0 + Duration::from_millis(20 * i);
            jb.insert(8160 + i * 960, vec![1], now);
            if matches!(jb.next(now + Duration::from_millis(5)), Playout::Decode(_)) {
                decoded += 1;
            }
        }
        assert!(decoded > 150, "{decoded} {:?}", jb.stats());
    }
}

#[cfg(test)]
mod lossy {
    use super::*;

    /// 10 ms packets through a link that loses `loss` % at random and
    /// delays each by 1 ms plus up to `jitter_us`, played every 10 ms:
    /// the buffer's counters and the packet size it learnt.
    fn play_through(loss: u64, jitter_us: u64) -> (JitterStats, u64) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut seed = 12345u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut arrivals = Vec::new();
        for i in 0..3000u64 {
            if rand() % 100 < loss {
                continue;
            }
            arrivals.push((10_000 * i + 1000 + rand() % (jitter_us + 1), i));
        }
        arrivals.sort();
        let mut next_arrival = 0;
        for tick in 0..3000u64 {
            let now_us = 10_000 * tick + 3_000;
            while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now_us {
                let (at, i) = arrivals[next_arrival];
                jb.insert(i * 480, vec![1], t0 + Duration::from_micros(at));
                next_arrival += 1;
            }
            let _ = jb.next(t0 + Duration::from_micros(now_us));
        }
        (jb.stats(), jb.frame)
    }

    #[test]
    fn under_random_loss_the_packet_after_a_loss_is_at_hand_for_fec() {
        let (stats, frame) = play_through(20, 3000);
        // Single losses keep the packet size: 10 ms.
        assert_eq!(frame, 480);
        // About 20 % of 3000 lost; all but the runs of two or more
        // (about 4 %) are rebuilt from FEC, and hardly any packet that
        // came is thrown away as late.
        assert!(stats.recovered >= 400, "{stats:?}");
        assert!(stats.concealed <= 200, "{stats:?}");
        assert!(stats.late <= 10, "{stats:?}");
    }

    #[test]
    fn packets_that_come_late_are_waited_for_rather_than_dropped() {
        // Up to 30 ms of jitter (three packets reordered), no loss: the
        // delay grows to take it; what is late comes mostly before the
        // estimate has seen enough.
        let (stats, _) = play_through(0, 30_000);
        assert!(stats.late <= 100, "{stats:?}");
        assert!(stats.decoded >= 2850, "{stats:?}");
    }
}
