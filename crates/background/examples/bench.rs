//! `scripts/bench background`: what a virtual background costs per 720p
//! frame on one core. Prints a table, then one JSON line.
//! `bench -- MODELS_DIR PHOTO.png`

use std::time::{Duration, Instant};

use conclave_background::compose::{Backdrop, BlurStrength, Compositor, Mask, I420};
use conclave_background::effect::BackgroundEffect;
use conclave_background::image;
use conclave_background::net::Net;

const W: usize = 1280;
const H: usize = 720;

fn mean_ms(mut run: impl FnMut(), n: usize) -> (f64, f64) {
    run();
    let mut worst = 0f64;
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        run();
        worst = worst.max(t.elapsed().as_secs_f64() * 1000.0);
    }
    (start.elapsed().as_secs_f64() * 1000.0 / n as f64, worst)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("MODELS_DIR");
    let photo = args.next().expect("PHOTO.png");
    let picture = image::decode(&std::fs::read(&photo).expect("photo")).expect("a PNG");
    // The camera picture: the photo at 1280x720.
    let Backdrop::Image { y, u, v, .. } = image::backdrop(&picture, W, H) else {
        unreachable!()
    };
    println!("virtual background, one core, 1280x720 camera pictures");
    println!("{:<44} {:>10} {:>10}", "measure", "mean ms", "worst ms");
    let mut segmentation = 0.0;
    for name in [
        "selfie_segmentation_landscape.tflite",
        "selfie_segmentation.tflite",
    ] {
        let model = std::fs::read(format!("{dir}/{name}")).expect("model");
        let mut net = Net::load(&model).expect("model loads");
        let (w, h) = net.input_size();
        let input = vec![0.5f32; w * h * 3];
        let (mean, worst) = mean_ms(|| drop(net.run(&input)), 30);
        if segmentation == 0.0 {
            segmentation = mean;
        }
        println!(
            "{:<44} {:>10.2} {:>10.2}",
            format!("segmentation {w}x{h}"),
            mean,
            worst
        );
        // Where the model's time goes (one run).
        if let Ok(profile) = net.run_profiled(&input) {
            for (kind, took) in profile.iter().take(9) {
                println!(
                    "{:<44} {:>10.2}",
                    format!("  of which {kind}"),
                    took.as_secs_f64() * 1000.0
                );
            }
        }
    }
    let mask_values: Vec<f32> = (0..256 * 144)
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
        values: &mask_values,
    };
    // Composing a picture: with the mask of the frame before (as between
    // masks), and with a new mask each time (the difference is the mask's
    // post-processing: smoothing, feathering, scaling to 720p).
    let mut composite = 0.0;
    for (label, backdrop) in [
        ("strong blur", Backdrop::Blur(BlurStrength::Strong)),
        ("light blur", Backdrop::Blur(BlurStrength::Light)),
        ("picture", image::backdrop(&picture, W, H)),
    ] {
        let mut compositor = Compositor::default();
        compositor.update_mask(&mask);
        let (mut fy, mut fu, mut fv) = (y.clone(), u.clone(), v.clone());
        let mut frame = I420 {
            width: W,
            height: H,
            y: &mut fy,
            u: &mut fu,
            v: &mut fv,
        };
        let (same, same_worst) = mean_ms(|| compositor.compose(&mut frame, &backdrop), 60);
        let (fresh, _) = mean_ms(
            || {
                compositor.update_mask(&mask);
                compositor.compose(&mut frame, &backdrop);
            },
            60,
        );
        if composite == 0.0 {
            composite = same;
            let post = (fresh - same).max(0.0);
            println!(
                "{:<44} {:>10.2}",
                "mask post-processing (per new mask)", post
            );
        }
        println!(
            "{:<44} {:>10.2} {:>10.2}",
            format!("composite, {label} (blur and blend)"),
            same,
            same_worst
        );
    }
    // The whole effect at 30 frames/s: the landscape model, its mask rate
    // left to the budget, strong blur.
    let model =
        std::fs::read(format!("{dir}/selfie_segmentation_landscape.tflite")).expect("model");
    let mut effect =
        BackgroundEffect::new(&model, Backdrop::Blur(BlurStrength::Strong)).expect("effect");
    let interval = Duration::from_secs(1) / 30;
    let mut times = Vec::new();
    for _ in 0..150 {
        let (mut fy, mut fu, mut fv) = (y.clone(), u.clone(), v.clone());
        let mut frame = I420 {
            width: W,
            height: H,
            y: &mut fy,
            u: &mut fu,
            v: &mut fv,
        };
        let t = Instant::now();
        effect.apply(&mut frame, interval).expect("applied");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The first second settles the mask rate.
    let steady = &times[30..];
    let total = steady.iter().sum::<f64>() / steady.len() as f64;
    let worst = steady.iter().copied().fold(0.0, f64::max);
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        format!(
            "whole effect at 30/s (mask every {} frames)",
            effect.cost().mask_every
        ),
        total,
        worst
    );
    println!(
        "{{\"segmentation_ms\":{segmentation:.2},\"composite_ms\":{composite:.2},\"total_ms_720p_amortised\":{total:.2},\"worst_ms_720p\":{worst:.2}}}"
    );
}
