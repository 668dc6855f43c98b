//! Removing the meeting's own playback from a capture of the computer's
//! sound.
//!
//! Sharing the computer's sound records the speaker's monitor: the digital
//! mix of every program's playback, ours included. Our part of it is a copy
//! of the blocks we handed to the speaker, delayed by the sound server's
//! buffers, scaled by the stream and speaker volumes and perhaps resampled:
//! a digital path, not an acoustic one. So it is subtracted rather than
//! suppressed as an acoustic echo canceller would: the delay is found by
//! cross-correlating what we played with what was captured (coarsely at
//! 2 kHz over a second of possible delays, then to the sample), and a
//! short filter centred on it, fitted by least squares over the last
//! seconds, removes the copy, absorbing gain, fractional delay and
//! resampling. A stall of the sound server moves the copy at once (our
//! stream ran dry and plays later now): every block that is not cleaned
//! sets off a quick search over that block alone, checked by how much it
//! removes, so a move is followed in the block it happens in; the taps
//! are kept across it. Least squares over many thousand samples is what keeps the
//! other programs' sound from disturbing the fit (a sample-by-sample
//! adaptive filter is pulled about by it). Other programs' sound passes through
//! untouched; when our playback is not in the capture (it goes to another
//! speaker, or is muted) no delay is found and nothing is subtracted.
//!
//! Sans-IO: feed every sample played with [`PlaybackCanceller::played`]
//! (best: what the speaker device itself took, silence included, see
//! [`crate::device::Speaker::take_played`]) and
//! every captured block through [`PlaybackCanceller::capture`]; the two
//! may arrive in bursts of their own.

use crate::frame::{AudioFrame, SAMPLE_RATE};

/// Samples per second.
const RATE: i64 = SAMPLE_RATE as i64;
/// Taps of the adaptive filter, centred on the found delay.
const TAPS: usize = 32;
/// Taps before the centre.
const HALF: i64 = (TAPS / 2) as i64;
/// Full-rate samples averaged into one sample of the coarse search.
const DECIMATE: usize = 24;
/// Played history kept, in samples (3 s).
const PLAYED_KEPT: usize = 3 * SAMPLE_RATE as usize;
/// Captured history kept, in samples (1 s).
const CAPTURED_KEPT: usize = SAMPLE_RATE as usize;
/// Delay is looked for again after this many captured samples (50 ms): a
/// stall of the sound server (our playback running dry, say) moves it, and
/// until it is found again our sound leaks through.
const CHECK_EVERY: usize = SAMPLE_RATE as usize / 20;
/// Captured samples compared in the coarse search (200 ms).
const COARSE_WINDOW: usize = SAMPLE_RATE as usize / 5;
/// Captured samples compared in the fine search and added to the fit at
/// each check (100 ms).
const FINE_WINDOW: usize = SAMPLE_RATE as usize / 10;
/// Longest delay between playing a sample and capturing it (1 s).
const MAX_DELAY: i64 = RATE;
/// Earliest a sample may be captured relative to the capture position at
/// the time it was played (20 ms; the block boundaries blur causality).
const EARLY_MARGIN: i64 = RATE / 50;
/// Fine search: samples either side of the coarse delay.
const FINE_SPAN: i64 = 2 * DECIMATE as i64;
/// Below this RMS (about -60 dBFS) the played sound is too quiet to find.
const AUDIBLE_RMS: f64 = 32.0;
/// A delay is taken when the correlation there is at least this.
const LOCK_CORRELATION: f64 = 0.5;
/// Checks in a row without our sound in the capture before subtracting
/// stops (1 s).
const MISSES_TO_UNLOCK: u32 = 20;
/// How much of the earlier fit is kept at each check (about half a second
/// of memory).
const FORGET: f64 = 0.9;
/// Diagonal loading of the least-squares fit, relative to the played
/// power: keeps the filter tame when our sound has little treble.
const LOADING: f64 = 1e-4;
/// The delay is moved only when the best one is this far from the
/// filter's centre (the taps cover a little drift either way).
const RECENTRE: i64 = 4;

/// A block whose energy the filter takes down by less than this (10 dB)
/// sets off a quick search: our copy may have moved.
const FOLLOW_RESIDUAL: f64 = 0.1;
/// The quick search's windows, coarse and fine: the block alone (10 ms;
/// a longer window reaches back before the move and is pulled back by it).
const QUICK_COARSE: usize = SAMPLE_RATE as usize / 100;
const QUICK_FINE: usize = SAMPLE_RATE as usize / 100;
/// Captured samples since our copy moved before the taps are fitted
/// again (50 ms).
const MIN_FIT: i64 = RATE / 20;
/// Delays a quick search weighs.
const QUICK_CANDIDATES: usize = 3;
/// Correlation a quick search needs over its short windows.
const QUICK_CORRELATION: f64 = 0.8;

/// The energy of `s` (sum of squares).
fn energy(s: &[f32]) -> f64 {
    s.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()
}

/// Removes what we played from what the speaker's monitor captured.
pub struct PlaybackCanceller {
    played: Ring,
    played_coarse: Ring,
    played_acc: Accumulator,
    captured: Ring,
    captured_coarse: Ring,
    captured_acc: Accumulator,
    /// Captured index = played index + `lag` at the filter's centre tap.
    lag: Option<i64>,
    taps: [f32; TAPS],
    /// The least-squares fit so far: autocorrelation of what we played
    /// (lags 0..TAPS) and its correlation with the capture, per tap.
    autocorrelation: [f64; TAPS],
    cross: [f64; TAPS],
    since_check: usize,
    misses: u32,
    /// The first captured index aligned with our copy at `lag`.
    aligned_from: i64,
    /// Energy in and out of the filter since the last check.
    energy_in: f64,
    energy_out: f64,
}

impl Default for PlaybackCanceller {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PlaybackCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackCanceller")
            .field("lag", &self.lag)
            .finish_non_exhaustive()
    }
}

impl PlaybackCanceller {
    /// A canceller that has not heard anything yet.
    pub fn new() -> Self {
        PlaybackCanceller {
            played: Ring::new(PLAYED_KEPT),
            played_coarse: Ring::new(PLAYED_KEPT / DECIMATE),
            played_acc: Accumulator::default(),
            captured: Ring::new(CAPTURED_KEPT),
            captured_coarse: Ring::new(CAPTURED_KEPT / DECIMATE),
            captured_acc: Accumulator::default(),
            lag: None,
            taps: [0.0; TAPS],
            autocorrelation: [0.0; TAPS],
            cross: [0.0; TAPS],
            since_check: 0,
            misses: 0,
            aligned_from: 0,
            energy_in: 0.0,
            energy_out: 0.0,
        }
    }

    /// The delay found between playing a sample and capturing it, in
    /// samples relative to the two streams' counts, while our playback is
    /// being removed.
    pub fn lag(&self) -> Option<i64> {
        self.lag
    }

    /// Samples just handed to the speaker (best: what the device itself
    /// took, silence included, so that our side never moves the delay).
    pub fn played(&mut self, samples: &[i16]) {
        for &s in samples {
            let s = f32::from(s);
            self.played.push(s);
            if let Some(mean) = self.played_acc.add(s) {
                self.played_coarse.push(mean);
            }
        }
    }

    /// A block captured from the speaker's monitor: our playback is
    /// removed from it in place.
    pub fn capture(&mut self, block: &mut AudioFrame) {
        // Causality: a sample played by now is captured at or after the
        // capture position it meets now.
        let earliest = self.captured.total() as i64 + block.samples.len() as i64
            - self.played.total() as i64
            - EARLY_MARGIN;
        let start = self.captured.total() as i64;
        let input: Vec<f32> = block.samples.iter().map(|&s| f32::from(s)).collect();
        for &x in &input {
            self.captured.push(x);
            if let Some(mean) = self.captured_acc.add(x) {
                self.captured_coarse.push(mean);
            }
        }
        let energy_in = energy(&input);
        let mut out = self.filtered(start, &input, self.lag);
        let mut energy_out = energy(&out);
        // A stall moves our copy at once: when it is no longer removed,
        // look for it again in this block rather than at the next check,
        // so it leaks for a block, not for the checks it takes to find it.
        if let (Some(old), true) = (self.lag, energy_out > FOLLOW_RESIDUAL * energy_in) {
            // The candidate that removes most, if it removes clearly more.
            let mut best: Option<(i64, Vec<f32>, f64)> = None;
            for (lag, correlation) in
                self.search(earliest, QUICK_COARSE, QUICK_FINE, QUICK_CANDIDATES)
            {
                if correlation < QUICK_CORRELATION || (lag - old).abs() <= RECENTRE {
                    continue;
                }
                let moved = self.filtered(start, &input, Some(lag));
                let moved_energy = energy(&moved);
                if best.as_ref().is_none_or(|(_, _, e)| moved_energy < *e) {
                    best = Some((lag, moved, moved_energy));
                }
            }
            if let Some((lag, moved, moved_energy)) = best {
                if moved_energy < 0.5 * energy_out {
                    self.relock(lag, start);
                    out = moved;
                    energy_out = moved_energy;
                }
            }
        }
        self.energy_in += energy_in;
        self.energy_out += energy_out;
        for (s, o) in block.samples.iter_mut().zip(&out) {
            *s = o.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
        }
        self.since_check += input.len();
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.check(earliest);
        }
    }

    /// `input`, captured from index `start`, less our copy at `lag`.
    fn filtered(&self, start: i64, input: &[f32], lag: Option<i64>) -> Vec<f32> {
        let Some(lag) = lag else {
            return input.to_vec();
        };
        let mut reference = [0.0f32; TAPS];
        input
            .iter()
            .enumerate()
            .map(|(n, &x)| {
                // Tap j: the sample played `lag + j - HALF` before.
                self.played
                    .read_back(start + n as i64 - lag + HALF, &mut reference);
                let estimate: f32 = self.taps.iter().zip(&reference).map(|(w, r)| w * r).sum();
                x - estimate
            })
            .collect()
    }

    /// Our copy is now at `lag`, from capture index `from` on: the fit
    /// starts again there, the taps are kept (gain and fractional delay
    /// rarely change with the delay).
    fn relock(&mut self, lag: i64, from: i64) {
        self.lag = Some(lag);
        self.aligned_from = from;
        self.autocorrelation = [0.0; TAPS];
        self.cross = [0.0; TAPS];
        self.energy_in = 0.0;
        self.energy_out = 0.0;
    }

    /// Looks for our playback in the capture, follows its delay and fits
    /// the filter again.
    fn check(&mut self, earliest: i64) {
        let removed = self.energy_out < 0.5 * self.energy_in;
        let removed_well = self.energy_out < FOLLOW_RESIDUAL * self.energy_in;
        self.energy_in = 0.0;
        self.energy_out = 0.0;
        // Once locked, only what was captured since our copy last moved
        // is searched: an older stretch would pull the delay back.
        let aligned = match self.lag {
            Some(_) => (self.captured.total() as i64 - self.aligned_from).max(0) as usize,
            None => usize::MAX,
        };
        if let Some(lag) = self.lag {
            // Still in place (a search over the longer window could only
            // be misled by a move the quick search has just followed), or
            // moved too recently to search: refit only.
            if removed_well || aligned < QUICK_COARSE {
                self.misses = 0;
                self.fit(lag);
                return;
            }
        }
        let Some(&(lag, correlation)) = self
            .search(
                earliest,
                COARSE_WINDOW.min(aligned),
                FINE_WINDOW.min(aligned),
                1,
            )
            .first()
        else {
            // Our playback is silent: nothing to learn.
            return;
        };
        if correlation >= LOCK_CORRELATION {
            self.misses = 0;
            if self.lag.is_none_or(|old| (lag - old).abs() > RECENTRE) {
                let from = self.captured.total() as i64 - FINE_WINDOW as i64;
                self.relock(lag, from);
            }
        } else if self.lag.is_some() && !removed {
            self.misses += 1;
            if self.misses >= MISSES_TO_UNLOCK {
                self.lag = None;
                self.taps = [0.0; TAPS];
                self.misses = 0;
            }
        }
        if let Some(lag) = self.lag {
            self.fit(lag);
        }
    }

    /// Adds the last window to the least-squares fit at `lag` and solves
    /// it for the taps.
    fn fit(&mut self, lag: i64) {
        let to = self.captured.total() as i64;
        let from = (to - FINE_WINDOW as i64)
            .max(self.captured.oldest())
            .max(self.aligned_from);
        if to - from < TAPS as i64 {
            return;
        }
        // The played samples the taps reach over the window, oldest first.
        let first = from - lag - HALF + 1;
        let played: Vec<f64> = (first..to - lag + HALF + 1)
            .map(|i| f64::from(self.played.get(i)))
            .collect();
        for a in &mut self.autocorrelation {
            *a *= FORGET;
        }
        for c in &mut self.cross {
            *c *= FORGET;
        }
        let span = (to - from) as usize;
        for k in 0..TAPS {
            let sum: f64 = played[..span]
                .iter()
                .zip(&played[k..k + span])
                .map(|(a, b)| a * b)
                .sum();
            self.autocorrelation[k] += sum;
        }
        for (n, i) in (from..to).enumerate() {
            let x = f64::from(self.captured.get(i));
            // Tap j reads played[i - lag + HALF - j]: in `played`, index
            // n + TAPS - 1 - j.
            for (j, c) in self.cross.iter_mut().enumerate() {
                *c += x * played[n + TAPS - 1 - j];
            }
        }
        // A few blocks since our copy moved would give taps that fit them
        // and little else: the old taps serve until there is more.
        if to - self.aligned_from < MIN_FIT {
            return;
        }
        if let Some(taps) = solve_toeplitz(&self.autocorrelation, &self.cross) {
            for (t, v) in self.taps.iter_mut().zip(taps) {
                *t = v as f32;
            }
        }
    }

    /// The delays at which the recent capture best matches our playback,
    /// best first: up to `candidates` of them, each (delay, normalised
    /// correlation); none when what we played then is too quiet to tell.
    /// (Speech repeats itself at its pitch period: over a short window the
    /// true delay is not always the best peak, so the caller may weigh a
    /// few.)
    fn search(
        &self,
        earliest: i64,
        coarse_window: usize,
        fine_window: usize,
        candidates: usize,
    ) -> Vec<(i64, f64)> {
        let d = DECIMATE as i64;
        // Coarse, over every possible delay.
        let captured_end = self.captured_coarse.total() as i64;
        let window = (coarse_window / DECIMATE) as i64;
        let first_lag = earliest.div_euclid(d);
        let last_lag = (earliest + MAX_DELAY).div_euclid(d);
        let coarse = best_lags(
            &self.captured_coarse,
            &self.played_coarse,
            captured_end - window,
            captured_end,
            first_lag,
            last_lag,
            candidates,
        );
        // Fine, to the sample, around each.
        let captured_end = self.captured.total() as i64;
        let mut found: Vec<(i64, f64)> = coarse
            .into_iter()
            .filter_map(|(lag, _)| {
                let centre = lag * d + d / 2;
                best_lags(
                    &self.captured,
                    &self.played,
                    captured_end - fine_window as i64,
                    captured_end,
                    centre - FINE_SPAN,
                    centre + FINE_SPAN,
                    1,
                )
                .into_iter()
                .next()
            })
            .collect();
        found.sort_by(|x, y| y.1.total_cmp(&x.1));
        found
    }
}

/// Over lags `first..=last`, the (up to) `count` where `captured[from..to]`
/// best matches `played[i - lag]`, best first and at least three lags
/// apart: (lag, normalised correlation). None if the played side is too
/// quiet at every lag.
fn best_lags(
    captured: &Ring,
    played: &Ring,
    from: i64,
    to: i64,
    first: i64,
    last: i64,
    count: usize,
) -> Vec<(i64, f64)> {
    let from = from.max(captured.oldest());
    if to - from < 16 || last < first {
        return Vec::new();
    }
    let x: Vec<f32> = (from..to).map(|i| captured.get(i)).collect();
    let x_energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    // The played samples any lag can reach, oldest first.
    let start = from - last;
    let r: Vec<f32> = (start..to - first).map(|i| played.get(i)).collect();
    let n = x.len();
    let audible = (AUDIBLE_RMS * AUDIBLE_RMS) * n as f64;
    let mut all: Vec<(i64, f64)> = Vec::new();
    for lag in first..=last {
        let offset = (last - lag) as usize;
        let window = &r[offset..offset + n];
        let mut cross = 0.0f64;
        let mut energy = 0.0f64;
        for (a, b) in x.iter().zip(window) {
            cross += f64::from(*a) * f64::from(*b);
            energy += f64::from(*b) * f64::from(*b);
        }
        if energy < audible {
            continue;
        }
        let correlation = cross / (x_energy * energy).sqrt().max(1.0);
        all.push((lag, correlation));
    }
    all.sort_by(|x, y| y.1.total_cmp(&x.1));
    let mut best: Vec<(i64, f64)> = Vec::with_capacity(count);
    for (lag, correlation) in all {
        if best.len() == count {
            break;
        }
        if best.iter().all(|(l, _)| (l - lag).abs() > 2) {
            best.push((lag, correlation));
        }
    }
    best
}

/// Solves `R w = c` for the symmetric Toeplitz `R` whose first row is
/// `autocorrelation` (diagonally loaded), by Cholesky; `None` if our
/// sound was silent.
fn solve_toeplitz(autocorrelation: &[f64; TAPS], cross: &[f64; TAPS]) -> Option<[f64; TAPS]> {
    let power = autocorrelation[0];
    if power <= 0.0 {
        return None;
    }
    let mut l = [[0.0f64; TAPS]; TAPS];
    for i in 0..TAPS {
        for j in 0..=i {
            let mut sum = autocorrelation[i - j];
            if i == j {
                sum += LOADING * power;
            }
            sum -= l[i][..j]
                .iter()
                .zip(&l[j][..j])
                .map(|(a, b)| a * b)
                .sum::<f64>();
            if i == j {
                if sum <= 0.0 {
                    return None;
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    let mut y = [0.0f64; TAPS];
    for i in 0..TAPS {
        let mut sum = cross[i];
        for k in 0..i {
            sum -= l[i][k] * y[k];
        }
        y[i] = sum / l[i][i];
    }
    let mut w = [0.0f64; TAPS];
    for i in (0..TAPS).rev() {
        let mut sum = y[i];
        for k in i + 1..TAPS {
            sum -= l[k][i] * w[k];
        }
        w[i] = sum / l[i][i];
    }
    Some(w)
}

/// Averages consecutive samples for the coarse search.
#[derive(Default)]
struct Accumulator {
    sum: f32,
    count: usize,
}

impl Accumulator {
    fn add(&mut self, s: f32) -> Option<f32> {
        self.sum += s;
        self.count += 1;
        (self.count == DECIMATE).then(|| {
            let mean = self.sum / DECIMATE as f32;
            self.sum = 0.0;
            self.count = 0;
            mean
        })
    }
}

/// The last samples of a stream, by their index in the stream.
struct Ring {
    buf: Vec<f32>,
    total: u64,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Ring {
            buf: vec![0.0; capacity],
            total: 0,
        }
    }

    fn push(&mut self, s: f32) {
        let at = (self.total % self.buf.len() as u64) as usize;
        self.buf[at] = s;
        self.total += 1;
    }

    fn total(&self) -> u64 {
        self.total
    }

    /// The oldest index still kept.
    fn oldest(&self) -> i64 {
        self.total.saturating_sub(self.buf.len() as u64) as i64
    }

    /// The sample at `index`, or silence if it is not (or no longer) kept.
    fn get(&self, index: i64) -> f32 {
        if index < self.oldest() || index >= self.total as i64 {
            return 0.0;
        }
        self.buf[(index as u64 % self.buf.len() as u64) as usize]
    }

    /// `out[j]` = the sample at `newest - j`.
    fn read_back(&self, newest: i64, out: &mut [f32]) {
        let oldest = newest - out.len() as i64 + 1;
        let len = self.buf.len() as u64;
        if oldest >= self.oldest() && newest < self.total as i64 {
            let mut at = (newest as u64 % len) as usize;
            for o in out.iter_mut() {
                *o = self.buf[at];
                at = if at == 0 { self.buf.len() - 1 } else { at - 1 };
            }
        } else {
            for (j, o) in out.iter_mut().enumerate() {
                *o = self.get(newest - j as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::AUDIO_BLOCK;
    use std::time::Duration;

    /// Speech-like test sound: noise bursts with pauses, from a fixed seed.
    fn voice(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut low = 0.0f32;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let white = ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
                low = 0.9 * low + 0.1 * white;
                // 300 ms syllables, every other one silent.
                let on = (i / (SAMPLE_RATE as usize * 3 / 10)) % 3 != 2;
                if on {
                    low * 40_000.0
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn tone(n: usize, freq: f64, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / RATE as f64).sin()) as f32
            })
            .collect()
    }

    fn block(samples: &[f32]) -> AudioFrame {
        AudioFrame {
            samples: samples
                .iter()
                .map(|&s| s.round().clamp(-32768.0, 32767.0) as i16)
                .collect(),
            captured: Duration::ZERO,
        }
    }

    fn energy(s: &[f32]) -> f64 {
        s.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / s.len().max(1) as f64
    }

    /// Plays `ours` and captures `monitor` (already holding our copy), both
    /// in 10 ms blocks, the capture `burst` blocks at a time behind the
    /// playback by `lead` blocks. Returns the canceller's output.
    fn run(
        c: &mut PlaybackCanceller,
        ours: &[f32],
        monitor: &[f32],
        lead: usize,
        burst: usize,
    ) -> Vec<f32> {
        let blocks = monitor.len() / AUDIO_BLOCK;
        let mut out = Vec::with_capacity(monitor.len());
        let mut captured = 0;
        for b in 0..blocks + lead + burst {
            if let Some(chunk) = ours.chunks(AUDIO_BLOCK).nth(b) {
                c.played(&block(chunk).samples);
            }
            // The capture trails, delivered in bursts.
            if (b + 1) % burst == 0 || b + 1 >= blocks + lead {
                let available = (b + 1).saturating_sub(lead).min(blocks);
                while captured < available {
                    let at = captured * AUDIO_BLOCK;
                    let mut frame = block(&monitor[at..at + AUDIO_BLOCK]);
                    c.capture(&mut frame);
                    out.extend(frame.samples.iter().map(|&s| f32::from(s)));
                    captured += 1;
                }
            }
        }
        out
    }

    fn delayed(s: &[f32], by: usize, gain: f32) -> Vec<f32> {
        (0..s.len())
            .map(|i| if i >= by { s[i - by] * gain } else { 0.0 })
            .collect()
    }

    #[test]
    fn our_playback_is_removed_and_the_other_sound_kept() {
        let n = 6 * SAMPLE_RATE as usize;
        let ours = voice(n, 1);
        let other = tone(n, 1000.0, 3000.0);
        // 73 ms in the sound server, at 80 % volume.
        let copy = delayed(&ours, 3504, 0.8);
        let monitor: Vec<f32> = copy.iter().zip(&other).map(|(a, b)| a + b).collect();
        let mut c = PlaybackCanceller::new();
        let out = run(&mut c, &ours, &monitor, 3, 4);
        assert!(c.lag().is_some(), "the delay is found");
        // The last 3 s: what is left of our sound, against the tone.
        let tail = 3 * SAMPLE_RATE as usize;
        let left: Vec<f32> = out[n - tail..]
            .iter()
            .zip(&other[n - tail..])
            .map(|(o, t)| o - t)
            .collect();
        let removed_db = 10.0 * (energy(&copy[n - tail..]) / energy(&left).max(1e-3)).log10();
        assert!(removed_db > 30.0, "our playback is {removed_db:.1} dB down");
        let kept_db = 10.0 * (energy(&out[n - tail..]) / energy(&other[n - tail..])).log10();
        assert!(
            kept_db.abs() < 0.5,
            "the other sound is kept ({kept_db:.2} dB)"
        );
    }

    #[test]
    fn a_resampled_copy_is_removed() {
        // Our sound through a sink at another rate: a fractional delay of
        // 0.4 samples (linear interpolation) on top of 50 ms.
        let n = 6 * SAMPLE_RATE as usize;
        let ours = voice(n, 2);
        let copy: Vec<f32> = (0..n)
            .map(|i| {
                if i < 2401 {
                    0.0
                } else {
                    0.6 * ours[i - 2400] + 0.4 * ours[i - 2401]
                }
            })
            .collect();
        let mut c = PlaybackCanceller::new();
        let out = run(&mut c, &ours, &copy, 2, 1);
        let tail = 2 * SAMPLE_RATE as usize;
        let removed_db =
            10.0 * (energy(&copy[n - tail..]) / energy(&out[n - tail..]).max(1e-3)).log10();
        assert!(removed_db > 20.0, "our playback is {removed_db:.1} dB down");
    }

    #[test]
    fn nothing_is_subtracted_when_our_playback_is_not_in_the_capture() {
        let n = 4 * SAMPLE_RATE as usize;
        let ours = voice(n, 3);
        let other = voice(n, 4);
        let mut c = PlaybackCanceller::new();
        let out = run(&mut c, &ours, &other, 2, 2);
        assert_eq!(c.lag(), None);
        let rounded: Vec<f32> = other
            .iter()
            .map(|s| s.round().clamp(-32768.0, 32767.0))
            .collect();
        assert_eq!(out, rounded, "the capture passes untouched");
    }

    #[test]
    fn a_change_of_delay_is_followed() {
        let n = 8 * SAMPLE_RATE as usize;
        let ours = voice(n, 5);
        // 40 ms for 4 s, then 120 ms (the sound server's buffer grew).
        let early = delayed(&ours, 1920, 1.0);
        let late = delayed(&ours, 5760, 1.0);
        let half = n / 2;
        let monitor: Vec<f32> = (0..n)
            .map(|i| if i < half { early[i] } else { late[i] })
            .collect();
        let mut c = PlaybackCanceller::new();
        let out = run(&mut c, &ours, &monitor, 2, 2);
        let tail = 2 * SAMPLE_RATE as usize;
        let removed_db =
            10.0 * (energy(&monitor[n - tail..]) / energy(&out[n - tail..]).max(1e-3)).log10();
        assert!(
            removed_db > 30.0,
            "after the change our playback is {removed_db:.1} dB down"
        );
    }

    #[test]
    fn a_delay_that_keeps_jumping_is_followed_within_the_block() {
        // The sound server stalls every 400 ms and our copy comes back
        // 7 to 50 ms later than before (its buffer grew), or earlier (it
        // was cut back).
        let n = 10 * SAMPLE_RATE as usize;
        let ours = voice(n, 6);
        let mut delay = 2400usize;
        let mut state = 7u64;
        let mut monitor = vec![0.0f32; n];
        let mut jumps = 0;
        for (i, m) in monitor.iter_mut().enumerate() {
            if i > 0 && i % (SAMPLE_RATE as usize * 2 / 5) == 0 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let step = 336 + (state >> 33) as usize % 2064;
                delay = if delay > 6000 {
                    delay - step
                } else {
                    delay + step
                };
                jumps += 1;
            }
            *m = if i >= delay {
                0.7 * ours[i - delay]
            } else {
                0.0
            };
        }
        let mut c = PlaybackCanceller::new();
        let out = run(&mut c, &ours, &monitor, 2, 2);
        // After the first second (the first lock): 10 ms frames in which
        // our copy is heard less than 30 dB down. Each jump is found in
        // the block it happens in; a few onsets after a pause leak.
        let frames = |s: &[f32]| -> Vec<f64> { s.chunks(AUDIO_BLOCK).map(energy).collect() };
        let (before, after) = (frames(&monitor), frames(&out));
        let first = SAMPLE_RATE as usize / AUDIO_BLOCK;
        let leaked = before[first..]
            .iter()
            .zip(&after[first..])
            .filter(|(b, a)| **b > 1e4 && **a > 1e-3 * **b)
            .count();
        println!(
            "{leaked} frames of {} leaked over {jumps} jumps",
            after.len() - first
        );
        assert!(leaked <= jumps, "{leaked} frames leaked over {jumps} jumps");
    }

    #[test]
    fn silence_in_gives_silence_out() {
        let mut c = PlaybackCanceller::new();
        let quiet = vec![0.0f32; 2 * SAMPLE_RATE as usize];
        let out = run(&mut c, &quiet, &quiet, 1, 1);
        assert!(out.iter().all(|&s| s == 0.0));
    }
}
