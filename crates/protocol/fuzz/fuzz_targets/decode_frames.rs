//! RFC 4571 frames: any bytes, in any pieces, never panic the decoder.
#![no_main]

use conclave_protocol::framing::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new();
    for piece in data.chunks(data.first().map_or(1, |b| usize::from(*b).max(1))) {
        decoder.push(piece);
        while let Some(packet) = decoder.next_packet() {
            assert!(packet.len() <= data.len());
        }
    }
});
