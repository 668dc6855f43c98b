//! `apm-ab`: sonora next to webrtc-audio-processing on one echo scenario.
//!
//! Far end: speech (file 1) played by the speaker; the microphone hears it
//! back 40 ms later, at half amplitude and low-passed (the room), plus a
//! noise floor at about -50 dBFS, plus near-end speech (file 2) in the
//! middle third (double talk). Both processors get the same 10 ms blocks.
//! Printed per configuration: echo return loss enhancement where only the
//! far end talks, the near-end level kept during double talk, the residual
//! level where nobody talks, and the processing time per 10 ms block.
//!
//! Usage: apm-ab FAR.wav NEAR.wav

use std::time::Instant;

const RATE: usize = 48_000;
const BLOCK: usize = RATE / 100;

fn load(path: &str) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).expect("wav");
    let spec = r.spec();
    let s: Vec<f32> = r
        .samples::<i16>()
        .step_by(spec.channels as usize)
        .map(|x| x.expect("sample") as f32 / 32768.0)
        .collect();
    // Linear resampling to 48 kHz.
    let ratio = spec.sample_rate as f64 / RATE as f64;
    let n = (s.len() as f64 / ratio) as usize;
    (0..n)
        .map(|i| {
            let p = i as f64 * ratio;
            let k = p as usize;
            let f = (p - k as f64) as f32;
            s[k] * (1.0 - f) + s.get(k + 1).copied().unwrap_or(0.0) * f
        })
        .collect()
}

struct Scenario {
    far: Vec<f32>,
    mic: Vec<f32>,
    echo: Vec<f32>,
    near: Vec<f32>,
}

fn scenario(far_speech: &[f32], near_speech: &[f32]) -> Scenario {
    // 3 s silence, far speech twice (with near speech over the second), 2 s silence.
    let gap = 3 * RATE;
    let len = gap + far_speech.len() * 2 + 2 * RATE;
    let mut far = vec![0.0f32; len];
    far[gap..gap + far_speech.len()].copy_from_slice(far_speech);
    far[gap + far_speech.len()..gap + 2 * far_speech.len()].copy_from_slice(far_speech);
    let mut near = vec![0.0f32; len];
    let start = gap + far_speech.len();
    for (i, s) in near_speech.iter().enumerate().take(far_speech.len()) {
        near[start + i] = *s * 0.7;
    }
    let delay = RATE * 40 / 1000;
    let mut echo = vec![0.0f32; len];
    let mut lp = 0.0f32;
    for i in delay..len {
        lp += 0.35 * (far[i - delay] * 0.5 - lp);
        echo[i] = lp;
    }
    let mut seed = 0x1234_5678u32;
    let mic = (0..len)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed as f32 / u32::MAX as f32 - 0.5) * 0.0055;
            echo[i] + near[i] + noise
        })
        .collect();
    Scenario { far, mic, echo, near }
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn db(x: f64) -> f64 {
    10.0 * x.max(1e-12).log10()
}

/// A processor under test: render a far block, then process a mic block.
trait Apm {
    fn block(&mut self, far: &[f32], mic: &mut [f32]);
}

struct Sonora(sonora::AudioProcessing);

impl Apm for Sonora {
    fn block(&mut self, far: &[f32], mic: &mut [f32]) {
        let mut out = vec![0.0f32; BLOCK];
        self.0.process_render_f32(&[far], &mut [&mut out]).expect("render");
        let input = mic.to_vec();
        self.0.process_capture_f32(&[&input], &mut [mic]).expect("capture");
    }
}

struct Webrtc(webrtc_audio_processing::Processor);

impl Apm for Webrtc {
    fn block(&mut self, far: &[f32], mic: &mut [f32]) {
        let mut f = far.to_vec();
        self.0.process_render_frame(&mut f).expect("render");
        self.0.process_capture_frame(mic).expect("capture");
    }
}

fn sonora(aec: bool, ns: bool, agc: bool) -> Box<dyn Apm> {
    use sonora::config::{EchoCanceller, GainController2, NoiseSuppression};
    let config = sonora::Config {
        echo_canceller: aec.then(EchoCanceller::default),
        noise_suppression: ns.then(NoiseSuppression::default),
        gain_controller2: agc.then(|| GainController2 {
            adaptive_digital: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Box::new(Sonora(
        sonora::AudioProcessing::builder()
            .config(config)
            .capture_config(sonora::StreamConfig::new(RATE as u32, 1))
            .render_config(sonora::StreamConfig::new(RATE as u32, 1))
            .build(),
    ))
}

fn webrtc(aec: bool, ns: bool, agc: bool) -> Box<dyn Apm> {
    use webrtc_audio_processing::*;
    let mut p = Processor::new(&InitializationConfig {
        num_capture_channels: 1,
        num_render_channels: 1,
        ..InitializationConfig::default()
    })
    .expect("processor");
    p.set_config(Config {
        echo_cancellation: aec.then_some(EchoCancellation {
            suppression_level: EchoCancellationSuppressionLevel::High,
            enable_delay_agnostic: true,
            enable_extended_filter: true,
            stream_delay_ms: None,
        }),
        noise_suppression: ns.then_some(NoiseSuppression {
            suppression_level: NoiseSuppressionLevel::Moderate,
        }),
        gain_control: agc.then_some(GainControl {
            mode: GainControlMode::AdaptiveDigital,
            target_level_dbfs: 3,
            compression_gain_db: 9,
            enable_limiter: true,
        }),
        ..Config::default()
    });
    Box::new(Webrtc(p))
}

fn run(name: &str, mut apm: Box<dyn Apm>, s: &Scenario, far_len: usize) {
    let mut out = s.mic.clone();
    let started = Instant::now();
    let blocks = s.mic.len() / BLOCK;
    for b in 0..blocks {
        let r = b * BLOCK..(b + 1) * BLOCK;
        apm.block(&s.far[r.clone()], &mut out[r]);
    }
    let us_per_block = started.elapsed().as_secs_f64() * 1e6 / blocks as f64;
    let gap = 3 * RATE;
    // Far end only, after 2 s to converge: the second half of the first pass.
    let far_only = gap + far_len / 2..gap + far_len;
    let erle = db(energy(&s.echo[far_only.clone()])) - db(energy(&out[far_only]));
    // Double talk: how much of the near-end speech level is kept.
    let dt = gap + far_len..gap + 2 * far_len;
    let kept = db(energy(&out[dt.clone()])) - db(energy(&s.near[dt]));
    // Nobody talks: the last second.
    let quiet = s.mic.len() - RATE..s.mic.len();
    let residual = db(energy(&out[quiet]));
    println!("| {name:<34} | {erle:>8.1} | {kept:>+10.1} | {residual:>12.1} | {us_per_block:>8.0} |");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let far = load(args.get(1).expect("usage: apm-ab FAR.wav NEAR.wav"));
    let near = load(args.get(2).expect("usage: apm-ab FAR.wav NEAR.wav"));
    let s = scenario(&far, &near);
    println!("| processor                          | ERLE dB | near kept dB | residual dBFS | µs/10 ms |");
    println!("|------------------------------------|--------:|-------------:|--------------:|---------:|");
    run("none", Box::new(NoOp), &s, far.len());
    run("sonora 0.2: AEC3", sonora(true, false, false), &s, far.len());
    run("webrtc-audio-processing 0.3: AEC", webrtc(true, false, false), &s, far.len());
    run("sonora 0.2: AEC3 + NS + AGC2", sonora(true, true, true), &s, far.len());
    run("webrtc-audio-processing 0.3: all", webrtc(true, true, true), &s, far.len());
}

struct NoOp;

impl Apm for NoOp {
    fn block(&mut self, _: &[f32], _: &mut [f32]) {}
}
