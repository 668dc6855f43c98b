//! Shows the machine-readable test pattern in an X11 window, a new frame
//! ten times a second, until killed: something to share in tests and
//! benchmarks. `pattern-window [WIDTH HEIGHT [X Y]]` on `$DISPLAY`; prints
//! `ready` once the first frame is painted.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use conclave_media::synthetic::TestPatternCamera;
use conclave_media::Camera;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateWindowAux, ImageFormat, PropMode, WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("numbers expected: WIDTH HEIGHT X Y"))
        .collect::<anyhow::Result<_>>()?;
    let width = args.first().copied().unwrap_or(960);
    let height = args.get(1).copied().unwrap_or(540);
    let x = args.get(2).copied().unwrap_or(40) as i16;
    let y = args.get(3).copied().unwrap_or(40) as i16;
    let (conn, screen) = x11rb::connect(None).context("connect to $DISPLAY")?;
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id()?;
    conn.create_window(
        24,
        window,
        root,
        x,
        y,
        width,
        height,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().background_pixel(0),
    )?;
    conn.change_property8(
        PropMode::REPLACE,
        window,
        AtomEnum::WM_NAME,
        AtomEnum::STRING,
        b"Conclave test pattern",
    )?;
    conn.map_window(window)?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, window, &Default::default())?;
    // Frames are drawn into a pixmap and copied to the window in one
    // request, so a capture never sees half of one frame and half of the
    // next (the stamp spans several bands).
    let back = conn.generate_id()?;
    conn.create_pixmap(24, back, window, width, height)?;
    conn.flush()?;
    let start = Instant::now();
    let mut pattern = TestPatternCamera::new(usize::from(width), usize::from(height), 10, start);
    let mut announced = false;
    loop {
        let now = Instant::now();
        if let Some(frame) = pattern.poll_frame(now)? {
            let bgra = frame.to_bgra();
            // One band at a time keeps each request well under the limit.
            let row = usize::from(width) * 4;
            let band = (200_000 / row).max(1);
            for (i, chunk) in bgra.chunks(row * band).enumerate() {
                conn.put_image(
                    ImageFormat::Z_PIXMAP,
                    back,
                    gc,
                    width,
                    (chunk.len() / row) as u16,
                    0,
                    (i * band) as i16,
                    0,
                    24,
                    chunk,
                )?;
            }
            conn.copy_area(back, window, gc, 0, 0, 0, 0, width, height)?;
            conn.sync()?;
            if !announced {
                println!("ready");
                announced = true;
            }
        }
        std::thread::sleep(
            pattern
                .next_frame_at()
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        );
    }
}
