//! Background pictures: decoding any bytes (PNG, JPEG or anything else)
//! never panics or asks for unbounded memory, and a picture that decodes
//! has as many pixels as it says and becomes a backdrop of a camera's size.
#![no_main]

use conclave_background::image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(picture) = image::decode(data) {
        assert_eq!(picture.rgb.len(), picture.width * picture.height * 3);
        let _ = image::backdrop(&picture, 64, 36);
    }
});
