//! How our media is sent, from what the network and the processor allow
//! (sans-IO). [`QualityLadder`] follows the bandwidth estimate;
//! [`CpuAdapter`] follows the time each frame costs, as libwebrtc's overuse
//! detector does: a processor that cannot keep up (a slow laptop, a busy
//! one, a build beside the meeting) gets fewer pixels, and they come back
//! when there is room again. [`SendSize`] combines both. [`AudioProtection`]
//! follows the loss the receiver of our audio reports: Opus spends bits on
//! forward error correction only where packets are lost.

use std::time::{Duration, Instant};

use crate::api::ConnectionQuality;

/// How the sent video is reduced: picture size divided by `scale`, and
/// only every `frame_skip`-th frame sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Divides width and height.
    pub scale: usize,
    /// Sends one frame in this many.
    pub frame_skip: u32,
}

/// Steps down resolution, then frame rate, as the bandwidth estimate falls,
/// and back up (with 30 % hysteresis) as it recovers.
#[derive(Debug, Default)]
pub struct QualityLadder {
    level: usize,
}

impl QualityLadder {
    const STEPS: [Step; 4] = [
        Step {
            scale: 1,
            frame_skip: 1,
        },
        Step {
            scale: 2,
            frame_skip: 1,
        },
        Step {
            scale: 2,
            frame_skip: 2,
        },
        Step {
            scale: 4,
            frame_skip: 2,
        },
    ];
    /// Below these bitrates (bits/s) the next step down applies.
    const DOWN: [u32; 3] = [600_000, 300_000, 180_000];

    /// The current step.
    pub fn step(&self) -> Step {
        Self::STEPS[self.level]
    }

    /// Takes a new estimate; returns whether the step changed.
    pub fn update(&mut self, bps: u32) -> bool {
        let before = self.level;
        while self.level < Self::DOWN.len() && bps < Self::DOWN[self.level] {
            self.level += 1;
        }
        while self.level > 0 && u64::from(bps) * 10 >= u64::from(Self::DOWN[self.level - 1]) * 13 {
            self.level -= 1;
        }
        self.level != before
    }
}

/// One step of [`CpuAdapter`]: width and height times `eighths / 8`, and
/// one frame in `frame_skip` sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuStep {
    /// Eighths of the width and height kept.
    pub eighths: usize,
    /// Sends one frame in this many.
    pub frame_skip: u32,
}

impl Default for CpuStep {
    fn default() -> Self {
        CpuStep {
            eighths: 8,
            frame_skip: 1,
        }
    }
}

/// Follows the share of each frame interval the video thread spends on a
/// frame (effects, scaling, encoding; wall time, so a thread the machine
/// starves counts as a slow one). Smoothed over about 20 frames: above
/// [`CpuAdapter::HIGH`] it steps down (fewer pixels, at the last step fewer
/// frames); below [`CpuAdapter::LOW`] for a while it steps back up, waiting
/// twice as long each time a step up had to be taken back soon after.
#[derive(Debug)]
pub struct CpuAdapter {
    level: usize,
    usage: Option<f64>,
    /// Frames in the average.
    samples: u32,
    /// No decision before this (measurements of the old size settle).
    settled_at: Option<Instant>,
    /// Since when usage has been low.
    low_since: Option<Instant>,
    /// How long usage must stay low before a step up.
    up_wait: Duration,
    /// When we last stepped up.
    last_up: Option<Instant>,
}

impl Default for CpuAdapter {
    fn default() -> Self {
        CpuAdapter {
            level: 0,
            usage: None,
            samples: 0,
            settled_at: None,
            low_since: None,
            up_wait: Self::UP_WAIT,
            last_up: None,
        }
    }
}

impl CpuAdapter {
    const STEPS: [CpuStep; 6] = [
        CpuStep {
            eighths: 8,
            frame_skip: 1,
        },
        CpuStep {
            eighths: 6,
            frame_skip: 1,
        },
        CpuStep {
            eighths: 4,
            frame_skip: 1,
        },
        CpuStep {
            eighths: 3,
            frame_skip: 1,
        },
        CpuStep {
            eighths: 2,
            frame_skip: 1,
        },
        CpuStep {
            eighths: 2,
            frame_skip: 2,
        },
    ];
    /// Above this share of the frame interval: step down.
    pub const HIGH: f64 = 0.85;
    /// Below this share, for [`Self::UP_WAIT`] or longer: step up.
    pub const LOW: f64 = 0.42;
    /// Weight of each new frame in the average.
    const WEIGHT: f64 = 0.05;
    /// One frame counts as at most this many intervals (a single stall is
    /// not overuse).
    const MAX_SAMPLE: f64 = 2.0;
    /// Frames measured before a step down.
    const MIN_SAMPLES: u32 = 10;
    /// After a change, measurements of the old size are let go this long.
    const SETTLE: Duration = Duration::from_secs(1);
    /// The first wait before a step up.
    const UP_WAIT: Duration = Duration::from_secs(4);
    /// The longest wait before a step up.
    const MAX_UP_WAIT: Duration = Duration::from_secs(32);
    /// A step down this soon after a step up doubles the wait.
    const BOUNCE: Duration = Duration::from_secs(10);

    /// The current step.
    pub fn step(&self) -> CpuStep {
        Self::STEPS[self.level]
    }

    /// The current step for a shared screen, whose detail matters more than
    /// its motion: the same levels, taken as fewer frames instead.
    pub fn step_for(&self, screen: bool) -> CpuStep {
        if screen {
            CpuStep {
                eighths: 8,
                frame_skip: [1, 2, 3, 4, 6, 8][self.level],
            }
        } else {
            self.step()
        }
    }

    /// The smoothed share of the frame interval in use, once measured.
    pub fn usage(&self) -> Option<f64> {
        self.usage
    }

    /// One frame took `busy` of the thread, with frames due every
    /// `interval`; returns whether the step changed.
    pub fn on_frame(&mut self, busy: Duration, interval: Duration, now: Instant) -> bool {
        if interval.is_zero() {
            return false;
        }
        let sample = (busy.as_secs_f64() / interval.as_secs_f64()).min(Self::MAX_SAMPLE);
        if self.settled_at.is_some_and(|t| now < t) {
            return false;
        }
        let usage = match self.usage {
            None => sample,
            Some(u) => u + Self::WEIGHT * (sample - u),
        };
        self.usage = Some(usage);
        self.samples += 1;
        if usage > Self::HIGH
            && self.samples >= Self::MIN_SAMPLES
            && self.level + 1 < Self::STEPS.len()
        {
            self.level += 1;
            if self
                .last_up
                .is_some_and(|t| now.duration_since(t) < Self::BOUNCE)
            {
                self.up_wait = (self.up_wait * 2).min(Self::MAX_UP_WAIT);
            }
            self.changed(now);
            return true;
        }
        if usage < Self::LOW && self.level > 0 {
            let since = *self.low_since.get_or_insert(now);
            if now.duration_since(since) >= self.up_wait {
                self.level -= 1;
                self.last_up = Some(now);
                self.changed(now);
                return true;
            }
        } else {
            self.low_since = None;
        }
        false
    }

    fn changed(&mut self, now: Instant) {
        self.usage = None;
        self.samples = 0;
        self.low_since = None;
        self.settled_at = Some(now + Self::SETTLE);
    }
}

/// The size and rate video is sent at: the smaller of what the network
/// ([`QualityLadder`]) and the processor ([`CpuAdapter`]) allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSize {
    /// Width to send.
    pub width: usize,
    /// Height to send.
    pub height: usize,
    /// Sends one frame in this many.
    pub frame_skip: u32,
}

impl SendSize {
    /// For a `width`×`height` picture (even sizes, at least 16×16 unless
    /// the picture is smaller).
    pub fn of(width: usize, height: usize, network: Step, cpu: CpuStep) -> SendSize {
        let by_network = |v: usize| v / network.scale.max(1);
        let by_cpu = |v: usize| v * cpu.eighths / 8;
        let fit = |v: usize| {
            let wanted = by_network(v).min(by_cpu(v));
            (wanted.max(16.min(v)) & !1).max(2)
        };
        SendSize {
            width: fit(width),
            height: fit(height),
            frame_skip: network.frame_skip.max(cpu.frame_skip),
        }
    }
}

/// How much of our audio the path loses, smoothed, and the protection
/// Opus is asked for: its expected-loss setting (which decides how many
/// bits its in-band FEC takes from the voice) in steps with hysteresis, as
/// libwebrtc sets it from the receiver's RTCP reports. A clean link gets
/// the codec's whole quality; a lossy one the redundancy it needs.
#[derive(Debug)]
pub struct AudioProtection {
    /// Smoothed loss fraction (0..1), once reported.
    loss: Option<f64>,
    /// When the last report came.
    last: Option<Instant>,
    /// The expected loss Opus is set to, in percent.
    percent: u8,
}

impl Default for AudioProtection {
    fn default() -> Self {
        AudioProtection {
            loss: None,
            last: None,
            percent: Self::STEPS[0],
        }
    }
}

impl AudioProtection {
    /// The expected-loss settings used, in percent.
    const STEPS: [u8; 6] = [0, 1, 5, 10, 20, 30];
    /// A step is taken when the loss passes it by a tenth of it (at least
    /// half a percent) and left when the loss falls as far below it.
    const MARGIN: f64 = 0.1;
    const MIN_MARGIN: f64 = 0.5;
    /// Time constant of the smoothing: rises quickly enough to protect
    /// within a few seconds, falls slowly so that bursts keep their cover.
    const RISE: Duration = Duration::from_secs(2);
    const FALL: Duration = Duration::from_secs(10);

    /// The expected loss to give Opus, in percent.
    pub fn percent(&self) -> u8 {
        self.percent
    }

    /// Whether the loss calls for redundant audio (RED): until the first
    /// report says how the link is (a meeting may start on a lossy one),
    /// then from the 5 % step up (reached above 5.5 % smoothed loss, left
    /// below 4.5 %), as the in-band FEC alone repairs only what the next
    /// packet still carries, at a lower quality.
    pub fn wants_redundancy(&self) -> bool {
        self.loss.is_none() || self.percent >= 5
    }

    /// The expected loss to give Opus while RED repairs losses (each
    /// packet carries the two before it): what RED leaves (a loss whose
    /// next two packets are lost too, about the cube of the loss for
    /// random loss), at the step at or above it.
    /// Opus's in-band FEC takes bits from the voice in proportion to this
    /// setting; sized for the raw loss, it spends them twice (20 % turned
    /// clean speech into a PESQ of 1.9 at 2 % loss, measured with
    /// `examples/opus_loss`).
    pub fn percent_with_redundancy(&self) -> u8 {
        let residual = self.loss.map_or(0.0, |l| l * l * l * 100.0);
        Self::STEPS
            .iter()
            .copied()
            .find(|s| f64::from(*s) >= residual)
            .unwrap_or(Self::STEPS[Self::STEPS.len() - 1])
    }

    /// The smoothed loss, as a fraction, once reported.
    pub fn loss(&self) -> Option<f64> {
        self.loss
    }

    /// The receiver reports `fraction` (0..1) of our audio lost; returns
    /// the new expected loss if it changed.
    pub fn on_report(&mut self, fraction: f32, now: Instant) -> Option<u8> {
        let sample = f64::from(fraction).clamp(0.0, 1.0);
        let loss = match (self.loss, self.last) {
            (Some(before), Some(last)) => {
                let dt = now.saturating_duration_since(last).as_secs_f64();
                let tau = if sample > before {
                    Self::RISE
                } else {
                    Self::FALL
                };
                let keep = (-dt / tau.as_secs_f64()).exp();
                keep * before + (1.0 - keep) * sample
            }
            _ => sample,
        };
        self.loss = Some(loss);
        self.last = Some(now);
        let percent = loss * 100.0;
        let mut at = Self::STEPS
            .iter()
            .position(|s| *s == self.percent)
            .unwrap_or(0);
        let margin = |step: u8| (f64::from(step) * Self::MARGIN).max(Self::MIN_MARGIN);
        while at + 1 < Self::STEPS.len() {
            let next = Self::STEPS[at + 1];
            if percent < f64::from(next) + margin(next) {
                break;
            }
            at += 1;
        }
        while at > 0 {
            let step = Self::STEPS[at];
            if percent >= f64::from(step) - margin(step) {
                break;
            }
            at -= 1;
        }
        let chosen = Self::STEPS[at];
        (chosen != self.percent).then(|| {
            self.percent = chosen;
            chosen
        })
    }
}

/// Judges our connection's quality from its loss and round-trip time,
/// once a statistics period, and says when the judgement shown to others
/// changes: worse after two periods in a row, better only after five, so
/// that a tile does not flicker with every burst.
#[derive(Debug, Default)]
pub struct QualityJudge {
    shown: ConnectionQuality,
    candidate: ConnectionQuality,
    periods: u32,
}

impl QualityJudge {
    /// Periods in a row a worse judgement must hold before it is shown.
    const WORSE_AFTER: u32 = 2;
    /// ... and a better one.
    const BETTER_AFTER: u32 = 5;

    /// The quality one period's figures show: loss in per mille (the worse
    /// of what we send and receive), round trip in milliseconds (0: not
    /// known), and whether media is cut off now.
    pub fn judge(loss_permille: u32, rtt_ms: u32, cut_off: bool) -> ConnectionQuality {
        if cut_off || loss_permille >= 100 || rtt_ms >= 800 {
            ConnectionQuality::Bad
        } else if loss_permille >= 30 || rtt_ms >= 300 {
            ConnectionQuality::Poor
        } else {
            ConnectionQuality::Good
        }
    }

    /// The judgement shown now.
    pub fn shown(&self) -> ConnectionQuality {
        self.shown
    }

    /// One period's judgement; returns the new one to show if it changed.
    pub fn on_period(&mut self, sample: ConnectionQuality) -> Option<ConnectionQuality> {
        if sample == self.shown {
            self.periods = 0;
            return None;
        }
        if sample == self.candidate {
            self.periods += 1;
        } else {
            self.candidate = sample;
            self.periods = 1;
        }
        let needed = if sample > self.shown {
            Self::WORSE_AFTER
        } else {
            Self::BETTER_AFTER
        };
        if self.periods >= needed {
            self.shown = sample;
            self.periods = 0;
            Some(sample)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quality_is_judged_by_loss_round_trip_and_outage() {
        use ConnectionQuality::*;
        assert_eq!(QualityJudge::judge(0, 20, false), Good);
        assert_eq!(QualityJudge::judge(29, 299, false), Good);
        assert_eq!(QualityJudge::judge(30, 0, false), Poor);
        assert_eq!(QualityJudge::judge(0, 300, false), Poor);
        assert_eq!(QualityJudge::judge(100, 0, false), Bad);
        assert_eq!(QualityJudge::judge(0, 800, false), Bad);
        assert_eq!(QualityJudge::judge(0, 10, true), Bad);
    }

    #[test]
    fn quality_worsens_after_two_periods_and_recovers_after_five() {
        use ConnectionQuality::*;
        let mut judge = QualityJudge::default();
        assert_eq!(judge.on_period(Bad), None);
        assert_eq!(judge.on_period(Good), None, "one bad period is a burst");
        assert_eq!(judge.on_period(Bad), None);
        assert_eq!(judge.on_period(Bad), Some(Bad));
        assert_eq!(judge.shown(), Bad);
        for _ in 0..4 {
            assert_eq!(judge.on_period(Good), None);
        }
        assert_eq!(judge.on_period(Good), Some(Good));
        // A poor spell between bad periods restarts the count.
        assert_eq!(judge.on_period(Poor), None);
        assert_eq!(judge.on_period(Bad), None);
        assert_eq!(judge.on_period(Bad), Some(Bad));
    }

    use super::*;

    #[test]
    fn the_ladder_steps_down_and_back_up_with_hysteresis() {
        let mut l = QualityLadder::default();
        assert!(!l.update(1_200_000));
        assert_eq!(
            l.step(),
            Step {
                scale: 1,
                frame_skip: 1
            }
        );
        assert!(l.update(450_000));
        assert_eq!(l.step().scale, 2);
        assert!(l.update(150_000));
        assert_eq!(
            l.step(),
            Step {
                scale: 4,
                frame_skip: 2
            }
        );
        // Just above a threshold is not enough to go back up.
        assert!(!l.update(190_000));
        assert!(l.update(700_000));
        assert_eq!(l.step().scale, 2, "up only past 1.3 x each threshold");
        assert!(l.update(800_000));
        assert_eq!(
            l.step(),
            Step {
                scale: 1,
                frame_skip: 1
            }
        );
    }

    const FRAME: Duration = Duration::from_millis(33);

    /// Feeds `frames` frames that each took `busy`; returns the steps taken.
    fn run(a: &mut CpuAdapter, now: &mut Instant, busy: Duration, frames: u32) -> Vec<usize> {
        let mut steps = Vec::new();
        for _ in 0..frames {
            *now += FRAME;
            if a.on_frame(busy, FRAME, *now) {
                steps.push(a.step().eighths);
            }
        }
        steps
    }

    #[test]
    fn a_processor_that_cannot_keep_up_gets_fewer_pixels_within_a_second() {
        let mut a = CpuAdapter::default();
        let mut now = Instant::now();
        assert!(run(&mut a, &mut now, Duration::from_millis(12), 300).is_empty());
        // Starved: each frame now takes longer than the interval.
        let steps = run(&mut a, &mut now, Duration::from_millis(40), 30);
        assert_eq!(steps, vec![6], "one step down within a second");
        // Still too slow: the next step after the new size settles.
        let steps = run(&mut a, &mut now, Duration::from_millis(40), 60);
        assert_eq!(steps, vec![4]);
    }

    #[test]
    fn one_stall_is_not_overuse() {
        let mut a = CpuAdapter::default();
        let mut now = Instant::now();
        run(&mut a, &mut now, Duration::from_millis(15), 100);
        now += FRAME;
        assert!(!a.on_frame(Duration::from_millis(900), FRAME, now));
        assert!(run(&mut a, &mut now, Duration::from_millis(15), 100).is_empty());
        assert_eq!(a.step().eighths, 8);
    }

    #[test]
    fn pixels_come_back_when_there_is_room_and_a_bounce_waits_longer() {
        let mut a = CpuAdapter::default();
        let mut now = Instant::now();
        run(&mut a, &mut now, Duration::from_millis(40), 40);
        assert_eq!(a.step().eighths, 6);
        // Room again: up after the wait (four seconds), not before.
        let steps = run(&mut a, &mut now, Duration::from_millis(5), 4 * 30);
        assert!(steps.is_empty(), "{steps:?}");
        let steps = run(&mut a, &mut now, Duration::from_millis(5), 2 * 30);
        assert_eq!(steps, vec![8]);
        // Too slow again at once: down, and the next step up waits longer.
        run(&mut a, &mut now, Duration::from_millis(40), 50);
        assert_eq!(a.step().eighths, 6);
        let steps = run(&mut a, &mut now, Duration::from_millis(5), 7 * 30);
        assert!(steps.is_empty(), "waits eight seconds now: {steps:?}");
        let steps = run(&mut a, &mut now, Duration::from_millis(5), 3 * 30);
        assert_eq!(steps, vec![8]);
    }

    #[test]
    fn the_sent_size_is_the_smaller_of_network_and_processor() {
        let full = Step {
            scale: 1,
            frame_skip: 1,
        };
        let half = Step {
            scale: 2,
            frame_skip: 2,
        };
        let cpu = |eighths, frame_skip| CpuStep {
            eighths,
            frame_skip,
        };
        let size = |w, h, skip| SendSize {
            width: w,
            height: h,
            frame_skip: skip,
        };
        assert_eq!(SendSize::of(1280, 720, full, cpu(8, 1)), size(1280, 720, 1));
        assert_eq!(SendSize::of(1280, 720, full, cpu(6, 1)), size(960, 540, 1));
        assert_eq!(SendSize::of(1280, 720, half, cpu(6, 1)), size(640, 360, 2));
        assert_eq!(SendSize::of(1280, 720, full, cpu(3, 1)), size(480, 270, 1));
        assert_eq!(SendSize::of(1280, 720, half, cpu(2, 2)), size(320, 180, 2));
        // Small pictures stay codable.
        assert_eq!(SendSize::of(64, 36, full, cpu(2, 2)), size(16, 16, 2));
        assert_eq!(SendSize::of(10, 6, full, cpu(2, 1)), size(10, 6, 1));
    }

    /// Reports `fraction` once a second for `seconds`; returns the steps.
    fn report(p: &mut AudioProtection, now: &mut Instant, fraction: f32, seconds: u32) -> Vec<u8> {
        let mut steps = Vec::new();
        for _ in 0..seconds {
            *now += Duration::from_secs(1);
            if let Some(s) = p.on_report(fraction, *now) {
                steps.push(s);
            }
        }
        steps
    }

    #[test]
    fn a_clean_link_gets_no_fec_and_a_lossy_one_its_cover() {
        let mut p = AudioProtection::default();
        let mut now = Instant::now();
        assert_eq!(p.percent(), 0, "no loss expected before any report");
        assert!(p.wants_redundancy(), "RED until the link is known");
        assert!(report(&mut p, &mut now, 0.0, 10).is_empty());
        assert_eq!(p.percent(), 0);
        assert!(!p.wants_redundancy(), "no RED on a clean link");
        // A quarter lost: protection rises within a few seconds, step by step,
        // and RED comes with the first report.
        let steps = report(&mut p, &mut now, 0.25, 1);
        assert!(p.wants_redundancy(), "{steps:?}");
        let steps = report(&mut p, &mut now, 0.25, 5);
        assert_eq!(p.percent(), 20, "{steps:?}");
        assert!(steps.windows(2).all(|w| w[1] > w[0]), "{steps:?}");
        // Clean again: it falls, more slowly, back to none.
        let steps = report(&mut p, &mut now, 0.0, 4);
        assert!(
            p.percent() >= 10,
            "a burst keeps its cover a while: {steps:?}"
        );
        report(&mut p, &mut now, 0.0, 60);
        assert_eq!(p.percent(), 0);
        assert!(!p.wants_redundancy());
    }

    #[test]
    fn with_red_opus_protects_only_what_red_leaves() {
        let mut p = AudioProtection::default();
        let mut now = Instant::now();
        assert_eq!(p.percent_with_redundancy(), 0);
        report(&mut p, &mut now, 0.2, 30);
        assert!(p.percent() >= 10);
        // 20 % lost at random: 0.8 % lose their two neighbours too.
        assert_eq!(p.percent_with_redundancy(), 1);
        report(&mut p, &mut now, 0.3, 30);
        assert_eq!(p.percent_with_redundancy(), 5);
        report(&mut p, &mut now, 0.05, 60);
        assert_eq!(p.percent_with_redundancy(), 1);
    }

    #[test]
    fn a_loss_near_a_step_does_not_flap() {
        let mut p = AudioProtection::default();
        let mut now = Instant::now();
        report(&mut p, &mut now, 0.06, 20);
        assert_eq!(p.percent(), 5);
        // Wobbling around 5 % keeps 5 %.
        for (i, f) in [0.045f32, 0.056, 0.048, 0.054, 0.046]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
        {
            now += Duration::from_secs(1);
            assert_eq!(p.on_report(*f, now), None, "report {i}");
        }
    }
}
