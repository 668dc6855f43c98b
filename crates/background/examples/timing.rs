//! Times the models and the compositor:
//! `cargo run --release -p conclave-background --example timing -- MODELS_DIR`.

use conclave_background::compose::{Backdrop, BlurStrength, Compositor, Mask, I420};
use conclave_background::net::Net;

fn main() {
    let dir = std::env::args().nth(1).expect("models dir");
    for name in [
        "selfie_segmentation_landscape.tflite",
        "selfie_segmentation.tflite",
    ] {
        let bytes = std::fs::read(format!("{dir}/{name}")).expect("model");
        let mut net = Net::load(&bytes).expect("load");
        let (w, h) = net.input_size();
        let input = vec![0.5f32; w * h * 3];
        net.run(&input).expect("run");
        let start = std::time::Instant::now();
        let n = 20;
        for _ in 0..n {
            net.run(&input).expect("run");
        }
        println!(
            "{name}: {:.2} ms",
            start.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
    // Composing a 1280x720 frame with a 256x144 mask.
    let (w, h) = (1280, 720);
    let values: Vec<f32> = (0..256 * 144)
        .map(|i| {
            if (64..192).contains(&(i % 256)) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mask = Mask {
        width: 256,
        height: 144,
        values: &values,
    };
    let mut compositor = Compositor::default();
    compositor.update_mask(&mask);
    let image = Backdrop::Image {
        width: w,
        height: h,
        y: vec![60; w * h],
        u: vec![100; w * h / 4],
        v: vec![150; w * h / 4],
    };
    for (label, backdrop) in [
        ("light blur", Backdrop::Blur(BlurStrength::Light)),
        ("strong blur", Backdrop::Blur(BlurStrength::Strong)),
        ("image", image),
    ] {
        let (mut y, mut u, mut v) = (
            vec![128u8; w * h],
            vec![128u8; w * h / 4],
            vec![128u8; w * h / 4],
        );
        let n = 20;
        let start = std::time::Instant::now();
        for _ in 0..n {
            compositor.update_mask(&mask);
            let mut frame = I420 {
                width: w,
                height: h,
                y: &mut y,
                u: &mut u,
                v: &mut v,
            };
            compositor.compose(&mut frame, &backdrop);
        }
        println!(
            "compose 720p, {label} (with a new mask): {:.2} ms",
            start.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
}
