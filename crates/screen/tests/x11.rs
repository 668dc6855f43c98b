//! Captures a private Xvfb: a window painted with the machine-readable test
//! pattern is found, stamp intact, when sharing the screen and when sharing
//! just that window; the window's capture holds only the window.
#![cfg(all(unix, not(target_os = "macos")))]

use std::time::{Duration, Instant};

use conclave_media::pattern::read_stamp;
use conclave_media::synthetic::TestPatternCamera;
use conclave_media::{Camera, VideoFrame};
use conclave_screen::x11::PrivateDisplay;
use conclave_screen::{list_sources, open, SourceKind};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateWindowAux, ImageFormat, PropMode, WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

#[test]
fn a_window_with_the_test_pattern_is_captured_on_screen_and_alone() {
    let Some(xvfb) = PrivateDisplay::start(1280, 720) else {
        eprintln!("Xvfb is not installed; skipped");
        return;
    };
    let (conn, screen) = x11rb::connect(Some(&xvfb.display)).expect("connect");
    let root = conn.setup().roots[screen].root;
    // A 640x360 window at (100, 50), titled, showing frame 7 of the pattern.
    let window = conn.generate_id().expect("id");
    conn.create_window(
        24,
        window,
        root,
        100,
        50,
        640,
        360,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().background_pixel(0),
    )
    .expect("create");
    conn.change_property8(
        PropMode::REPLACE,
        window,
        AtomEnum::WM_NAME,
        AtomEnum::STRING,
        b"Quarterly figures",
    )
    .expect("title");
    conn.map_window(window).expect("map");
    let t0 = Instant::now();
    let mut pattern = TestPatternCamera::new(640, 360, 30, t0);
    let mut frame = None;
    for i in 0..8u64 {
        frame = pattern
            .poll_frame(t0 + Duration::from_millis(34 * i))
            .expect("pattern");
    }
    let frame = frame.expect("a frame");
    let gc = conn.generate_id().expect("id");
    conn.create_gc(gc, window, &Default::default()).expect("gc");
    conn.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    conn.put_image(
        ImageFormat::Z_PIXMAP,
        window,
        gc,
        640,
        360,
        0,
        0,
        0,
        24,
        &frame.to_bgra(),
    )
    .expect("paint");
    conn.sync().expect("sync");

    let sources = list_sources(Some(&xvfb.display)).expect("sources");
    let screen_source = sources
        .iter()
        .find(|s| s.kind == SourceKind::Screen)
        .expect("a screen");
    assert_eq!((screen_source.width, screen_source.height), (1280, 720));
    let window_source = sources
        .iter()
        .find(|s| s.kind == SourceKind::Window && s.name == "Quarterly figures")
        .expect("the window is listed");

    // Pictures come through shared memory (MIT-SHM), not the socket.
    let direct = conclave_screen::x11::X11Source::open(Some(&xvfb.display), None).expect("open");
    assert!(direct.uses_shared_memory());
    drop(direct);

    // The window alone: its size, the pattern's stamp at its corner.
    let mut shared = open(Some(&xvfb.display), Some(&window_source.id)).expect("open window");
    let captured = shared.capture(Duration::ZERO).expect("capture");
    assert_eq!((captured.width, captured.height), (640, 360));
    assert_eq!(read_stamp(&captured).expect("stamp").frame, 7);

    // The whole screen: the window's picture at its place.
    let mut whole = open(Some(&xvfb.display), None).expect("open screen");
    let screen_frame = whole.capture(Duration::ZERO).expect("capture");
    assert_eq!((screen_frame.width, screen_frame.height), (1280, 720));
    let mut cut = VideoFrame::black(640, 360);
    for y in 0..360 {
        let from = (50 + y) * 1280 + 100;
        cut.y[y * 640..(y + 1) * 640].copy_from_slice(&screen_frame.y[from..from + 640]);
    }
    for y in 0..180 {
        let from = (25 + y) * 640 + 50;
        cut.u[y * 320..(y + 1) * 320].copy_from_slice(&screen_frame.u[from..from + 320]);
        cut.v[y * 320..(y + 1) * 320].copy_from_slice(&screen_frame.v[from..from + 320]);
    }
    assert_eq!(read_stamp(&cut).expect("stamp on screen").frame, 7);

    // A closed window is gone, not a panic.
    conn.destroy_window(window).expect("destroy");
    conn.sync().expect("sync");
    assert!(shared.capture(Duration::ZERO).is_err());
}
