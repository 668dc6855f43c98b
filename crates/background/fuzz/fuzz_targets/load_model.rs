//! Model files: loading any bytes never panics or asks for unbounded memory,
//! and a model that loads runs on its input size.
#![no_main]

use conclave_background::net::Net;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut net) = Net::load(data) {
        let (w, h) = net.input_size();
        if w * h <= 1 << 16 {
            let _ = net.run(&vec![0.5; w * h * 3]);
        }
    }
});
