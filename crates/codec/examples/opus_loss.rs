//! Speech through our Opus settings and a lossy channel, offline: for
//! choosing packet size, bitrate and FEC settings by measurement.
//!
//!     cargo run -p conclave-codec --example opus_loss -- IN.wav OUT.wav \
//!         FRAME_SAMPLES BITRATE LOSS_PERCENT EXPECTED_PERCENT
//!
//! IN is 16-bit mono 48 kHz; packets are lost at random (a fixed seed);
//! a lost packet is rebuilt from the next one's FEC when that one came,
//! concealed otherwise, as the jitter buffer does.
use conclave_codec::opus::{OpusDecoder, OpusEncoder};
use conclave_media::{AudioFrame, AUDIO_BLOCK};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        return Err("usage: opus_loss IN.wav OUT.wav FRAME BITRATE LOSS EXPECTED".into());
    }
    let input = std::fs::read(&args[1])?;
    let data = input
        .windows(4)
        .position(|w| w == b"data")
        .ok_or("no data chunk")?
        + 8;
    let samples: Vec<i16> = input[data..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let frame: usize = args[3].parse()?;
    let bitrate: u32 = args[4].parse()?;
    let loss: u64 = args[5].parse()?;
    let expected: u8 = args[6].parse()?;
    let mut encoder = OpusEncoder::with_frame(bitrate, frame)?;
    encoder.set_expected_loss(expected)?;
    let mut packets = Vec::new();
    for (i, block) in samples.chunks_exact(AUDIO_BLOCK).enumerate() {
        let block = AudioFrame {
            samples: block.to_vec(),
            captured: Duration::from_millis(10 * i as u64),
        };
        if let Some(p) = encoder.encode(&block)? {
            packets.push(p);
        }
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut arrived: Vec<bool> = Vec::with_capacity(packets.len());
    for _ in &packets {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        arrived.push(seed % 100 >= loss);
    }
    let mut decoder = OpusDecoder::new()?;
    let mut out: Vec<i16> = Vec::new();
    let bytes: usize = packets.iter().map(Vec::len).sum();
    for i in 0..packets.len() {
        let pcm = if arrived[i] {
            decoder.decode(&packets[i])?
        } else if i + 1 < packets.len() && arrived[i + 1] {
            decoder.conceal(Some(&packets[i + 1]), frame)?
        } else {
            decoder.conceal(None, frame)?
        };
        out.extend(pcm);
    }
    eprintln!(
        "{} packets, {:.1} kbit/s of payload",
        packets.len(),
        bytes as f64 * 8.0 / (samples.len() as f64 / 48_000.0) / 1000.0
    );
    let mut wav = Vec::with_capacity(44 + out.len() * 2);
    let len = (out.len() * 2) as u32;
    wav.extend(b"RIFF");
    wav.extend((36 + len).to_le_bytes());
    wav.extend(b"WAVEfmt ");
    wav.extend(16u32.to_le_bytes());
    wav.extend(1u16.to_le_bytes());
    wav.extend(1u16.to_le_bytes());
    wav.extend(48_000u32.to_le_bytes());
    wav.extend(96_000u32.to_le_bytes());
    wav.extend(2u16.to_le_bytes());
    wav.extend(16u16.to_le_bytes());
    wav.extend(b"data");
    wav.extend(len.to_le_bytes());
    for s in out {
        wav.extend(s.to_le_bytes());
    }
    std::fs::write(&args[2], wav)?;
    Ok(())
}
