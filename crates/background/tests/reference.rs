//! The segmentation matches MediaPipe's own on committed images (see
//! `testdata/README.md` for how the reference masks were made): per pixel
//! within a small tolerance, and as a person/background mask with an IoU
//! of at least 0.9 (in practice far higher).

use std::path::PathBuf;

use conclave_background::net::Net;

/// Where the models are: the UI's npm dependency `@mediapipe/selfie_segmentation`.
fn models() -> PathBuf {
    std::env::var_os("CONCLAVE_SEGMENTATION_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../ui/node_modules/@mediapipe/selfie_segmentation")
        })
}

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("testdata")
    .join(name)
}

/// A PNG's pixels: (width, height, channels, bytes).
fn png(name: &str) -> (usize, usize, usize, Vec<u8>) {
    let file = std::fs::File::open(testdata(name)).expect("test image");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("png header");
    let mut data = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut data).expect("png data");
    data.truncate(info.buffer_size());
    (
        info.width as usize,
        info.height as usize,
        info.color_type.samples(),
        data,
    )
}

fn check(model: &str, image: &str, reference: &str) {
    let path = models().join(model);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/setup installs the UI's npm dependencies)",
            path.display()
        )
    });
    let mut net = Net::load(&bytes).expect("the model loads");
    let (w, h, channels, pixels) = png(image);
    assert_eq!(net.input_size(), (w, h));
    assert_eq!(channels, 3);
    let input: Vec<f32> = pixels.iter().map(|p| f32::from(*p) / 255.0).collect();
    let mask = net.run(&input).expect("runs").to_vec();
    let (rw, rh, rc, expected) = png(reference);
    assert_eq!((rw, rh, rc), (w, h, 1));
    let mut worst = 0f32;
    let mut total = 0f32;
    let (mut both, mut either) = (0usize, 0usize);
    for (got, want) in mask.iter().zip(&expected) {
        let want = f32::from(*want) / 255.0;
        let diff = (got - want).abs();
        worst = worst.max(diff);
        total += diff;
        let (a, b) = (*got > 0.5, want > 0.5);
        both += usize::from(a && b);
        either += usize::from(a || b);
    }
    let mean = total / mask.len() as f32;
    let iou = both as f32 / either.max(1) as f32;
    eprintln!("{model}: mean |Δ| {mean:.5}, worst {worst:.4}, IoU {iou:.4}");
    assert!(mean < 0.01, "{model}: mean difference {mean}");
    assert!(worst < 0.15, "{model}: worst difference {worst}");
    assert!(iou >= 0.9, "{model}: IoU {iou}");
}

#[test]
fn the_general_model_matches_mediapipe() {
    check(
        "selfie_segmentation.tflite",
        "astronaut-256x256.png",
        "mask-general.png",
    );
}

#[test]
fn the_landscape_model_matches_mediapipe() {
    check(
        "selfie_segmentation_landscape.tflite",
        "astronaut-256x144.png",
        "mask-landscape.png",
    );
}

#[test]
fn damaged_models_are_refused_without_panicking() {
    let bytes =
        std::fs::read(models().join("selfie_segmentation_landscape.tflite")).expect("model");
    for cut in [0, 3, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(Net::load(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    for i in (0..flipped.len()).step_by(997) {
        flipped[i] ^= 0x5a;
        let _ = Net::load(&flipped);
    }
}

#[test]
fn the_effect_keeps_the_person_and_replaces_the_rest_of_a_camera_picture() {
    use conclave_background::compose::{Backdrop, I420};
    use conclave_background::effect::BackgroundEffect;
    let bytes =
        std::fs::read(models().join("selfie_segmentation_landscape.tflite")).expect("model");
    let (w, h, _, rgb) = png("astronaut-256x144.png");
    // The photo as a camera picture: the same conversion backgrounds use,
    // at the photo's own size.
    let picture = conclave_background::image::Picture {
        width: w,
        height: h,
        rgb,
    };
    let Backdrop::Image {
        mut y,
        mut u,
        mut v,
        ..
    } = conclave_background::image::backdrop(&picture, w, h)
    else {
        unreachable!("a picture backdrop")
    };
    let original = y.clone();
    let backdrop = Backdrop::Image {
        width: w,
        height: h,
        y: vec![41; w * h],
        u: vec![240; w * h / 4],
        v: vec![110; w * h / 4],
    };
    let mut effect = BackgroundEffect::new(&bytes, backdrop).expect("effect");
    let mut frame = I420 {
        width: w,
        height: h,
        y: &mut y,
        u: &mut u,
        v: &mut v,
    };
    effect
        .apply(&mut frame, std::time::Duration::from_millis(33))
        .expect("applied");
    let (_, _, _, reference) = png("mask-landscape.png");
    let (mut person, mut person_kept, mut room, mut room_replaced) = (0, 0, 0, 0);
    for i in 0..w * h {
        if reference[i] > 240 {
            person += 1;
            person_kept += usize::from(y[i].abs_diff(original[i]) <= 4);
        } else if reference[i] < 15 {
            room += 1;
            room_replaced += usize::from(y[i].abs_diff(41) <= 4);
        }
    }
    assert!(
        person > 1000 && room > 1000,
        "{person} person, {room} room pixels"
    );
    assert!(
        person_kept * 100 >= person * 95,
        "person kept: {person_kept} of {person}"
    );
    assert!(
        room_replaced * 100 >= room * 95,
        "room replaced: {room_replaced} of {room}"
    );
    let mut frame = I420 {
        width: w,
        height: h,
        y: &mut [],
        u: &mut [],
        v: &mut [],
    };
    assert!(effect
        .apply(&mut frame, std::time::Duration::from_millis(33))
        .is_err());
    assert_eq!(effect.cost().mask_every, 1);
}
