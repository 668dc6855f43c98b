//! The whole effect on a camera picture: every frame is composed with the
//! latest person mask, and segmentation runs in the time left of the
//! frame's budget (15 % of the frame interval), an operator at a time, so
//! that one model run is spread over as many frames as it needs. A new run
//! starts on the next camera picture when one ends. The mask rate thus
//! adapts by itself: on a slower machine masks come less often, and no
//! frame waits for a whole model run before the video goes on.

use std::time::{Duration, Instant};

use crate::compose::{Backdrop, Compositor, Mask, I420};
use crate::net::Net;
use crate::ModelError;

/// The share of a frame interval the effect may take on average (5 ms of
/// a 30 frames/s camera's 33 ms).
const BUDGET_SHARE: f64 = 0.15;
/// Each frame gives segmentation at least this long (or one operator),
/// so masks keep coming when composing alone uses up the budget.
const MIN_SLICE: Duration = Duration::from_micros(500);

/// What the effect cost recently, for the stats panel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EffectCost {
    /// Milliseconds per frame, averaged (segmentation amortised).
    pub ms_per_frame: f64,
    /// A mask takes this many frames (the last one made).
    pub mask_every: u32,
}

/// A background effect for one camera.
pub struct BackgroundEffect {
    net: Net,
    compositor: Compositor,
    backdrop: Backdrop,
    input: Vec<f32>,
    /// Frames since the running segmentation started.
    frames_in_run: u32,
    mask_every: u32,
    /// Exponential average of the time per frame, in seconds.
    average: f64,
}

impl BackgroundEffect {
    /// An effect from a `.tflite` model and a backdrop.
    pub fn new(model: &[u8], backdrop: Backdrop) -> Result<Self, ModelError> {
        let net = Net::load(model)?;
        let (w, h) = net.input_size();
        Ok(BackgroundEffect {
            net,
            compositor: Compositor::default(),
            backdrop,
            input: vec![0.0; w * h * 3],
            frames_in_run: 0,
            mask_every: 1,
            average: 0.0,
        })
    }

    /// Changes the backdrop (takes effect with the next frame).
    pub fn set_backdrop(&mut self, backdrop: Backdrop) {
        self.backdrop = backdrop;
    }

    /// The recent cost.
    pub fn cost(&self) -> EffectCost {
        EffectCost {
            ms_per_frame: self.average * 1000.0,
            mask_every: self.mask_every,
        }
    }

    /// Applies the effect to `frame` in place; `interval` is the camera's
    /// frame interval (for the budget).
    pub fn apply(&mut self, frame: &mut I420<'_>, interval: Duration) -> Result<(), ModelError> {
        let (w, h) = (frame.width, frame.height);
        if w < 2
            || h < 2
            || frame.y.len() < w * h
            || frame.u.len() < (w / 2) * (h / 2)
            || frame.v.len() < (w / 2) * (h / 2)
        {
            return Err(ModelError::Shape(format!(
                "a {w}x{h} picture with short planes"
            )));
        }
        let start = Instant::now();
        let (mw, mh) = self.net.input_size();
        if !self.compositor.has_mask() {
            // The first mask is made at once: nothing of the room may show
            // before it exists.
            self.fill_input(frame);
            let values = self.net.run(&self.input)?;
            self.compositor.update_mask(&Mask {
                width: mw,
                height: mh,
                values,
            });
        } else if !self.net.is_running() {
            // The model's input comes from the camera's own picture.
            self.fill_input(frame);
            self.net.start(&self.input)?;
            self.frames_in_run = 0;
        }
        self.compositor.compose(frame, &self.backdrop);
        if self.net.is_running() {
            self.frames_in_run += 1;
            let budget = interval.mul_f64(BUDGET_SHARE);
            let deadline = (start + budget).max(Instant::now() + MIN_SLICE);
            if let Some(values) = self.net.resume(deadline) {
                self.compositor.update_mask(&Mask {
                    width: mw,
                    height: mh,
                    values,
                });
                self.mask_every = self.frames_in_run;
            }
        }
        let took = start.elapsed().as_secs_f64();
        self.average = if self.average == 0.0 {
            took
        } else {
            0.9 * self.average + 0.1 * took
        };
        Ok(())
    }

    /// The model's input from the picture: shrunk by area sampling (the
    /// nearest pixel of each cell's centre), BT.601 limited range → RGB 0..1.
    fn fill_input(&mut self, frame: &I420<'_>) {
        let (mw, mh) = self.net.input_size();
        let (w, h) = (frame.width, frame.height);
        let cw = w / 2;
        for my in 0..mh {
            let y = ((my * 2 + 1) * h / (mh * 2)).min(h - 1);
            for mx in 0..mw {
                let x = ((mx * 2 + 1) * w / (mw * 2)).min(w - 1);
                let luma = 1.164 * (f32::from(frame.y[y * w + x]) - 16.0);
                let c = (y / 2) * cw + x / 2;
                let u = f32::from(frame.u[c]) - 128.0;
                let v = f32::from(frame.v[c]) - 128.0;
                let at = (my * mw + mx) * 3;
                self.input[at] = ((luma + 1.596 * v) / 255.0).clamp(0.0, 1.0);
                self.input[at + 1] = ((luma - 0.392 * u - 0.813 * v) / 255.0).clamp(0.0, 1.0);
                self.input[at + 2] = ((luma + 2.017 * u) / 255.0).clamp(0.0, 1.0);
            }
        }
    }
}
