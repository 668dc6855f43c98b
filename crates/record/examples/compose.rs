//! Renders sample canvases (a gallery of three, and a share with two people)
//! as raw I420 files, to look at: `cargo run -p conclave-record --example
//! compose DIR`, then `ffmpeg -f rawvideo -pix_fmt yuv420p -s 1280x720 -i
//! DIR/gallery.yuv DIR/gallery.png`.

use conclave_media::pattern::paint_background;
use conclave_media::VideoFrame;
use conclave_record::compositor::{Compositor, Tile};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let mut frames = Vec::new();
    for (i, (w, h)) in [(1280, 720), (640, 360), (640, 480)]
        .into_iter()
        .enumerate()
    {
        let mut f = VideoFrame::black(w, h);
        paint_background(&mut f, 40 * i as u64 + 7);
        frames.push(f);
    }
    let mut compositor = Compositor::new(1280, 720);
    let gallery = compositor
        .compose(&[
            Tile {
                name: "Ada Lovelace",
                frame: Some(&frames[0]),
                share: false,
                talking: true,
            },
            Tile {
                name: "Grace (cli)",
                frame: Some(&frames[1]),
                share: false,
                talking: false,
            },
            Tile {
                name: "李雷",
                frame: None,
                share: false,
                talking: false,
            },
        ])
        .to_i420_bytes();
    std::fs::write(format!("{dir}/gallery.yuv"), gallery)?;
    let share = compositor
        .compose(&[
            Tile {
                name: "Ada Lovelace",
                frame: Some(&frames[1]),
                share: false,
                talking: false,
            },
            Tile {
                name: "Linus's screen",
                frame: Some(&frames[0]),
                share: true,
                talking: false,
            },
            Tile {
                name: "Grace (cli)",
                frame: Some(&frames[2]),
                share: false,
                talking: true,
            },
        ])
        .to_i420_bytes();
    std::fs::write(format!("{dir}/share.yuv"), share)?;
    Ok(())
}
