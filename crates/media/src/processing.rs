//! Voice processing on the sending side: echo cancellation, noise
//! suppression and automatic gain control, by `sonora` (a pure-Rust port of
//! WebRTC's audio processing module: AEC3, NS, AGC2, high-pass filter).
//!
//! The echo canceller needs to hear what the speaker plays: feed every
//! played block to [`VoiceProcessor::render`] and every captured block
//! through [`VoiceProcessor::capture`], both 10 ms at 48 kHz mono.

use sonora::config::{EchoCanceller, GainController2, NoiseSuppression};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::frame::{AudioFrame, AUDIO_BLOCK, SAMPLE_RATE};

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingSettings {
    /// Acoustic echo cancellation.
    pub echo_cancellation: bool,
    /// Background noise suppression.
    pub noise_suppression: bool,
    /// Automatic gain control.
    pub gain_control: bool,
}

impl Default for ProcessingSettings {
    fn default() -> Self {
        ProcessingSettings {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

impl ProcessingSettings {
    /// Everything off (synthetic sources that must arrive bit-exact in
    /// spirit: tones, test files).
    pub fn off() -> Self {
        ProcessingSettings {
            echo_cancellation: false,
            noise_suppression: false,
            gain_control: false,
        }
    }

    fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }
}

/// The processing chain of one microphone.
pub struct VoiceProcessor {
    apm: Option<AudioProcessing>,
    scratch: Vec<i16>,
}

impl VoiceProcessor {
    /// A chain with the given stages.
    pub fn new(settings: ProcessingSettings) -> Self {
        let apm = settings.any().then(|| {
            let config = Config {
                echo_canceller: settings.echo_cancellation.then(EchoCanceller::default),
                noise_suppression: settings.noise_suppression.then(NoiseSuppression::default),
                gain_controller2: settings.gain_control.then(|| GainController2 {
                    adaptive_digital: Some(Default::default()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            AudioProcessing::builder()
                .config(config)
                .capture_config(StreamConfig::new(SAMPLE_RATE, 1))
                .render_config(StreamConfig::new(SAMPLE_RATE, 1))
                .build()
        });
        VoiceProcessor {
            apm,
            scratch: vec![0; AUDIO_BLOCK],
        }
    }

    /// Whether any stage runs.
    pub fn is_active(&self) -> bool {
        self.apm.is_some()
    }

    /// Tells the echo canceller how long played audio takes to come back
    /// through the microphone, roughly (it refines this itself).
    pub fn set_delay_ms(&mut self, delay: i32) {
        if let Some(apm) = &mut self.apm {
            let _ = apm.set_stream_delay_ms(delay.clamp(0, 500));
        }
    }

    /// A block that was just played (the far end, for echo cancellation).
    pub fn render(&mut self, block: &AudioFrame) {
        if let Some(apm) = &mut self.apm {
            if block.samples.len() == AUDIO_BLOCK {
                let _ = apm.process_render_i16(&block.samples, &mut self.scratch);
            }
        }
    }

    /// Processes a captured block in place.
    pub fn capture(&mut self, block: &mut AudioFrame) {
        if let Some(apm) = &mut self.apm {
            if block.samples.len() == AUDIO_BLOCK
                && apm
                    .process_capture_i16(&block.samples, &mut self.scratch)
                    .is_ok()
            {
                block.samples.copy_from_slice(&self.scratch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tone(freq: f64, amp: f64, n: usize, offset: usize) -> AudioFrame {
        let samples = (0..n)
            .map(|i| {
                let t = (i + offset) as f64 / SAMPLE_RATE as f64;
                (amp * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect();
        AudioFrame {
            samples,
            captured: Duration::ZERO,
        }
    }

    fn energy(b: &AudioFrame) -> f64 {
        b.samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / b.samples.len() as f64
    }

    #[test]
    fn echo_of_the_far_end_is_removed() {
        let mut p = VoiceProcessor::new(ProcessingSettings {
            echo_cancellation: true,
            noise_suppression: false,
            gain_control: false,
        });
        p.set_delay_ms(0);
        let (mut before, mut after) = (0.0, 0.0);
        // 4 s of far-end speech-like tone; the microphone hears it back at
        // half amplitude. The last second is measured.
        for i in 0..400 {
            let far = tone(
                440.0 + (i % 7) as f64 * 60.0,
                0.3,
                AUDIO_BLOCK,
                i * AUDIO_BLOCK,
            );
            p.render(&far);
            let mut near = far.clone();
            for s in &mut near.samples {
                *s /= 2;
            }
            if i >= 300 {
                before += energy(&near);
            }
            p.capture(&mut near);
            if i >= 300 {
                after += energy(&near);
            }
        }
        let erle_db = 10.0 * (before / after.max(1.0)).log10();
        assert!(
            erle_db > 10.0,
            "echo return loss enhancement {erle_db:.1} dB"
        );
    }

    #[test]
    fn off_leaves_audio_untouched() {
        let mut p = VoiceProcessor::new(ProcessingSettings::off());
        assert!(!p.is_active());
        let b = tone(440.0, 0.5, AUDIO_BLOCK, 0);
        let mut c = b.clone();
        p.capture(&mut c);
        assert_eq!(b, c);
    }
}
