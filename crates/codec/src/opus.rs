//! Opus for voice: 48 kHz mono, 10 or 20 ms frames, in-band FEC and DTX on.

use conclave_media::{AudioFrame, AUDIO_BLOCK, SAMPLE_RATE};

use crate::CodecError;

/// Samples in one 20 ms Opus frame.
pub const FRAME_SAMPLES: usize = 2 * AUDIO_BLOCK;
/// Largest encoded frame we produce.
const MAX_PACKET: usize = 1275;

/// Encodes 10 ms blocks into 10 or 20 ms Opus packets.
pub struct OpusEncoder {
    inner: opus::Encoder,
    pending: Vec<i16>,
    frame_samples: usize,
    /// A packet size asked for, taken at the next packet boundary.
    next_frame_samples: Option<usize>,
}

impl OpusEncoder {
    /// A voice encoder at `bitrate` bits per second, 20 ms packets.
    pub fn new(bitrate: u32) -> Result<Self, CodecError> {
        Self::with_frame(bitrate, FRAME_SAMPLES)
    }

    /// A voice encoder with packets of `frame_samples` (480: 10 ms, lowest
    /// delay; 960: 20 ms, less overhead).
    pub fn with_frame(bitrate: u32, frame_samples: usize) -> Result<Self, CodecError> {
        if frame_samples != AUDIO_BLOCK && frame_samples != FRAME_SAMPLES {
            return Err(CodecError::Setup(format!(
                "{frame_samples} samples per packet: 480 or 960 are supported"
            )));
        }
        let setup = |e: opus::Error| CodecError::Setup(e.to_string());
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(setup)?;
        inner.set_inband_fec(true).map_err(setup)?;
        inner.set_dtx(true).map_err(setup)?;
        inner.set_packet_loss_perc(10).map_err(setup)?;
        let mut encoder = OpusEncoder {
            inner,
            pending: Vec::with_capacity(FRAME_SAMPLES),
            frame_samples,
            next_frame_samples: None,
        };
        encoder.set_bitrate(bitrate)?;
        Ok(encoder)
    }

    /// Changes the target bitrate (6–128 kbit/s).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        let bps = bitrate.clamp(6_000, 128_000) as i32;
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bps))
            .map_err(|e| CodecError::Setup(e.to_string()))
    }

    /// Tells the encoder how lossy the path is, so FEC spends accordingly.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner
            .set_packet_loss_perc(i32::from(percent.min(100)))
            .map_err(|e| CodecError::Setup(e.to_string()))
    }

    /// Changes the packet size (480: 10 ms, 960: 20 ms) from the next
    /// packet on; a packet under way keeps its size.
    pub fn set_frame_samples(&mut self, frame_samples: usize) -> Result<(), CodecError> {
        if frame_samples != AUDIO_BLOCK && frame_samples != FRAME_SAMPLES {
            return Err(CodecError::Setup(format!(
                "{frame_samples} samples per packet: 480 or 960 are supported"
            )));
        }
        self.next_frame_samples = Some(frame_samples);
        Ok(())
    }

    /// Samples in the packet under way.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Takes one 10 ms block; returns a packet when a frame is full. In DTX
    /// silence the packets are tiny (1–2 bytes) and may be skipped.
    pub fn encode(&mut self, block: &AudioFrame) -> Result<Option<Vec<u8>>, CodecError> {
        if block.samples.len() != AUDIO_BLOCK {
            return Err(CodecError::BadFrame(format!(
                "{} samples, expected {AUDIO_BLOCK}",
                block.samples.len()
            )));
        }
        if self.pending.is_empty() {
            if let Some(n) = self.next_frame_samples.take() {
                self.frame_samples = n;
            }
        }
        self.pending.extend_from_slice(&block.samples);
        if self.pending.len() < self.frame_samples {
            return Ok(None);
        }
        let packet = self
            .inner
            .encode_vec(&self.pending, MAX_PACKET)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        self.pending.clear();
        Ok(Some(packet))
    }
}

/// Decodes Opus packets into 10 ms blocks, concealing lost ones.
pub struct OpusDecoder {
    inner: opus::Decoder,
    buffer: Vec<i16>,
}

impl OpusDecoder {
    /// A 48 kHz mono decoder.
    pub fn new() -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)
            .map_err(|e| CodecError::Setup(e.to_string()))?;
        Ok(OpusDecoder {
            inner,
            buffer: vec![0; 6 * FRAME_SAMPLES],
        })
    }

    /// Decodes one packet into samples (any length Opus allows).
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, CodecError> {
        let n = self
            .inner
            .decode(packet, &mut self.buffer, false)
            .map_err(|e| CodecError::Decode(e.to_string()))?;
        Ok(self.buffer[..n].to_vec())
    }

    /// Makes up one lost frame of `samples` (at most 120 ms): from the next
    /// packet's in-band FEC if it is at hand, otherwise by concealment.
    pub fn conceal(&mut self, next: Option<&[u8]>, samples: usize) -> Result<Vec<i16>, CodecError> {
        // A multiple of 2.5 ms, as Opus wants.
        let quantum = AUDIO_BLOCK / 4;
        let samples = samples.clamp(quantum, self.buffer.len()) / quantum * quantum;
        let out = &mut self.buffer[..samples];
        let n = match next {
            Some(p) => self.inner.decode(p, out, true),
            None => self.inner.decode(&[], out, false),
        }
        .map_err(|e| CodecError::Decode(e.to_string()))?;
        Ok(out[..n].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tone(n: usize, freq: f64) -> Vec<AudioFrame> {
        let step = std::f64::consts::TAU * freq / f64::from(SAMPLE_RATE);
        (0..n)
            .map(|b| AudioFrame {
                samples: (0..AUDIO_BLOCK)
                    .map(|i| (((b * AUDIO_BLOCK + i) as f64 * step).sin() * 12000.0) as i16)
                    .collect(),
                captured: Duration::from_millis(10 * b as u64),
            })
            .collect()
    }

    fn energy(s: &[i16]) -> f64 {
        s.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / s.len().max(1) as f64
    }

    #[test]
    fn speech_band_audio_round_trips_and_silence_is_cheap() {
        let mut enc = OpusEncoder::new(32_000).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut out = Vec::new();
        let mut bytes = 0;
        for block in tone(100, 440.0) {
            if let Some(p) = enc.encode(&block).expect("encode") {
                bytes += p.len();
                out.extend(dec.decode(&p).expect("decode"));
            }
        }
        assert_eq!(out.len(), 100 * AUDIO_BLOCK);
        // After the codec's start-up, the tone comes back with its energy.
        let input = energy(&tone(100, 440.0)[50].samples);
        let got = energy(&out[50 * AUDIO_BLOCK..60 * AUDIO_BLOCK]);
        assert!(got > input * 0.5 && got < input * 2.0, "{got} vs {input}");
        assert!(
            bytes < 32_000 / 8 + 800,
            "about the bitrate: {bytes} bytes/s"
        );
        // Silence under DTX: tiny packets.
        let mut silent = 0;
        for b in 0..100 {
            if let Some(p) = enc
                .encode(&AudioFrame::silence(Duration::from_millis(b * 10)))
                .expect("encode")
            {
                silent += p.len();
            }
        }
        assert!(silent < 400, "DTX keeps silence small: {silent} bytes");
        // A lost frame is concealed with a full frame of samples.
        assert_eq!(
            dec.conceal(None, FRAME_SAMPLES).expect("conceal").len(),
            FRAME_SAMPLES
        );
        // Garbage is an error or noise, never a crash.
        let _ = dec.decode(&[0xff, 0xff, 0xff]);
    }

    #[test]
    fn the_packet_size_changes_at_a_packet_boundary() {
        let mut enc = OpusEncoder::with_frame(32_000, AUDIO_BLOCK).expect("encoder");
        let blocks = tone(8, 440.0);
        assert!(enc.encode(&blocks[0]).expect("encode").is_some());
        enc.set_frame_samples(FRAME_SAMPLES).expect("20 ms");
        assert!(enc.encode(&blocks[1]).expect("encode").is_none());
        assert!(enc.encode(&blocks[2]).expect("encode").is_some());
        assert_eq!(enc.frame_samples(), FRAME_SAMPLES);
        // Back to 10 ms: the half-made 20 ms packet is finished first.
        assert!(enc.encode(&blocks[3]).expect("encode").is_none());
        enc.set_frame_samples(AUDIO_BLOCK).expect("10 ms");
        assert!(enc.encode(&blocks[4]).expect("encode").is_some());
        assert_eq!(enc.frame_samples(), FRAME_SAMPLES);
        assert!(enc.encode(&blocks[5]).expect("encode").is_some());
        assert_eq!(enc.frame_samples(), AUDIO_BLOCK);
        assert!(enc.set_frame_samples(100).is_err());
    }
}
