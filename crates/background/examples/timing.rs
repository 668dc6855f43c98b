//! Times the models: `cargo run --release --example timing MODELS_DIR`.
fn main() {
    let dir = std::env::args().nth(1).expect("models dir");
    for name in [
        "selfie_segmentation_landscape.tflite",
        "selfie_segmentation.tflite",
    ] {
        let bytes = std::fs::read(format!("{dir}/{name}")).expect("model");
        let mut net = conclave_background::net::Net::load(&bytes).expect("load");
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
}
