//! A virtual background reaches the others: the sender's camera is the
//! machine-readable test pattern, which has no person in it, so with a
//! picture behind "the person" every picture that arrives is the picture:
//! not one frame's stamp can be read, although frames keep arriving. (The
//! same camera without the effect is read frame by frame in media.rs.) This
//! shows that the encoder only ever receives the compositor's output. With
//! a photo as the camera, the others see the person in front of a picture,
//! or in front of the room blurred.

use std::path::PathBuf;
use std::sync::Arc;

use conclave_background::image::Picture;
use conclave_e2e::{new_meeting, Peer};
use conclave_engine::{
    BackdropChoice, BackgroundOptions, CameraChoice, EngineEvent, MediaOptions, VideoEffects,
};

fn model() -> Vec<u8> {
    let root =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = PathBuf::from(root).join(
        "../ui/node_modules/@mediapipe/selfie_segmentation/selfie_segmentation_landscape.tflite",
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup installs it)", path.display()))
}

/// A plain blue backdrop.
const BLUE: [u8; 3] = [20, 40, 220];

/// A blue picture, as a backdrop.
fn blue_backdrop() -> BackdropChoice {
    BackdropChoice::Picture(Arc::new(Picture {
        width: 4,
        height: 4,
        rgb: BLUE.repeat(16),
    }))
}

/// A receiver saving what it decodes into a fresh `dir`, and a sender with
/// `camera` and `backdrop` behind the person; returns once the receiver
/// gets the sender's video.
async fn sender_with_backdrop(
    info: &conclave_protocol::MeetingInfo,
    dir: &std::path::Path,
    camera: CameraChoice,
    backdrop: BackdropChoice,
) -> (Peer, Peer) {
    let _ = std::fs::remove_dir_all(dir);
    let mut receiver = Peer::join_saving(info, "Receiver", dir).await;
    let sender = Peer::join_media(
        info,
        "Sender",
        false,
        MediaOptions {
            camera: Some(camera),
            effects: VideoEffects {
                background: Some(BackgroundOptions {
                    model: Arc::new(model()),
                    backdrop,
                }),
                touch_up: false,
            },
            ..Default::default()
        },
    )
    .await;
    receiver
        .wait_for(
            "the video",
            |e| matches!(e, EngineEvent::TrackAdded { kind, .. } if kind == "video"),
        )
        .await;
    (sender, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_others_receive_the_composite_and_never_the_camera_s_room() {
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!(
        "conclave-background-{}-{}",
        conclave_e2e::backend(),
        std::process::id()
    ));
    let (mut sender, receiver) = sender_with_backdrop(
        &info,
        &dir,
        CameraChoice::Synthetic {
            width: 320,
            height: 180,
            fps: 15,
        },
        blue_backdrop(),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    sender.settle(std::time::Duration::from_millis(10)).await;
    assert!(
        !sender
            .seen
            .iter()
            .any(|e| matches!(e, EngineEvent::Error { .. })),
        "no errors: {:?}",
        sender.seen
    );
    let tile = sender.id.clone();
    sender.leave().await;
    receiver.leave().await;
    let csv =
        std::fs::read_to_string(dir.join(format!("{tile}-video.csv"))).expect("the frame log");
    let frames: Vec<i64> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().and_then(|n| n.parse().ok()))
        .collect();
    assert!(frames.len() >= 10, "frames keep arriving: {}", frames.len());
    assert!(
        frames.iter().all(|n| *n < 0),
        "no frame shows the camera's pattern: {frames:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PNG's pixels as RGB (grey expanded): (width, height, rgb).
fn read_png(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let picture = conclave_background::image::decode(&bytes).expect("a PNG");
    (picture.width, picture.height, picture.rgb)
}

fn testdata(name: &str) -> PathBuf {
    let root =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(root)
        .join("../crates/background/testdata")
        .join(name)
}

/// The photo the picture camera shows, whose person mask is known.
const PHOTO: &str = "astronaut-256x144.png";

/// Lets a sender with the photo camera and `backdrop` talk to a receiver
/// for a few seconds, and returns the receiver's last decoded picture of
/// it (width, height, RGB).
async fn received_photo(name: &str, backdrop: BackdropChoice) -> (usize, usize, Vec<u8>) {
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!(
        "conclave-background-{name}-{}-{}",
        conclave_e2e::backend(),
        std::process::id()
    ));
    let (mut sender, receiver) = sender_with_backdrop(
        &info,
        &dir,
        CameraChoice::Picture(testdata(PHOTO)),
        backdrop,
    )
    .await;
    // The encoder's quality settles on a still picture within seconds.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let tile = sender.id.clone();
    sender.settle(std::time::Duration::from_millis(10)).await;
    let sender_events = format!("{:?}", sender.seen);
    // A busy machine (the suite runs tests side by side on two cores) may
    // make the sender's processor adaptation send a step smaller.
    let limited = sender
        .seen
        .iter()
        .any(|e| matches!(e, EngineEvent::Stats { stats } if stats.sending.video_limited_by_cpu));
    sender.leave().await;
    receiver.leave().await;
    let saved = dir.join(format!("{tile}-frame.png"));
    // Written by the receiver's decoding thread once the sender has gone.
    for _ in 0..50 {
        if saved.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let listing: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        saved.exists(),
        "no received picture; {} holds {listing:?}; the sender saw {sender_events}",
        dir.display()
    );
    let picture = read_png(&saved);
    let sizes: &[(usize, usize)] = if limited {
        &[(640, 360), (480, 270), (320, 180), (240, 134), (160, 90)]
    } else {
        &[(640, 360)]
    };
    assert!(
        sizes.contains(&(picture.0, picture.1)),
        "the picture camera's size {}x{} (limited by the processor: {limited})",
        picture.0,
        picture.1
    );
    let _ = std::fs::remove_dir_all(&dir);
    picture
}

/// What the camera showed: the photo scaled to `w`×`h` as the camera makes
/// it (through I420), as I420 planes.
fn shown_photo(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (pw, ph, photo_rgb) = read_png(&testdata(PHOTO));
    let conclave_background::compose::Backdrop::Image { y, u, v, .. } =
        conclave_background::image::backdrop(
            &Picture {
                width: pw,
                height: ph,
                rgb: photo_rgb,
            },
            w,
            h,
        )
    else {
        unreachable!("a picture")
    };
    (y, u, v)
}

/// MediaPipe's own mask of the photo, committed with the segmentation's
/// test data.
struct ReferenceMask {
    width: usize,
    height: usize,
    values: Vec<u8>,
}

impl ReferenceMask {
    fn load() -> Self {
        let (width, height, rgb) = read_png(&testdata("mask-landscape.png"));
        ReferenceMask {
            width,
            height,
            values: rgb.iter().step_by(3).copied().collect(),
        }
    }

    /// The mask at a pixel of a `w`×`h` picture (255 = person).
    fn at(&self, x: usize, y: usize, w: usize, h: usize) -> u8 {
        self.values[(y * self.height / h) * self.width + x * self.width / w]
    }

    /// Whether the pixel is well inside the person (`person`) or the room:
    /// the mask and its neighbours agree.
    fn sure(&self, x: usize, y: usize, w: usize, h: usize, person: bool) -> bool {
        let (mx, my) = ((x * self.width / w) as i64, (y * self.height / h) as i64);
        (-3..=3).all(|dy| {
            (-3..=3).all(|dx| {
                let (nx, ny) = (mx + dx, my + dy);
                if nx < 0 || ny < 0 || nx >= self.width as i64 || ny >= self.height as i64 {
                    return !person;
                }
                let m = self.values[ny as usize * self.width + nx as usize];
                if person {
                    m > 240
                } else {
                    m < 15
                }
            })
        })
    }
}

/// Mean absolute difference of two RGB pixels.
fn difference(a: &[u8], b: &[u8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u32::from(x.abs_diff(*y)))
        .sum::<u32>()
        / 3
}

/// The camera shows a photo of a person whose outline is known. What the
/// other side decodes is the person where the mask says person, and the
/// picture behind where it says background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_others_see_the_person_in_front_of_the_picture() {
    let blue = BLUE;
    let (w, h, got) = received_photo("picture", blue_backdrop()).await;
    let (y, u, v) = shown_photo(w, h);
    let shown = conclave_background::image::from_i420(w, h, &y, &u, &v).rgb;
    let mask = ReferenceMask::load();
    let (mut person, mut person_kept, mut room, mut room_replaced) = (0u32, 0u32, 0u32, 0u32);
    // Person/picture by which the received pixel is nearer to, for the
    // IoU with the reference mask (where the photo differs from the blue).
    let (mut both, mut either) = (0u32, 0u32);
    for yy in 0..h {
        for x in 0..w {
            let i = (yy * w + x) * 3;
            let received = &got[i..i + 3];
            let original = &shown[i..i + 3];
            if mask.sure(x, yy, w, h, true) {
                person += 1;
                person_kept += u32::from(difference(received, original) <= 24);
            } else if mask.sure(x, yy, w, h, false) {
                room += 1;
                room_replaced += u32::from(difference(received, &blue) <= 24);
            }
            if difference(original, &blue) > 80 {
                let seen_person = difference(received, original) < difference(received, &blue);
                let is_person = mask.at(x, yy, w, h) > 127;
                both += u32::from(seen_person && is_person);
                either += u32::from(seen_person || is_person);
            }
        }
    }
    assert!(
        person > 10_000 && room > 10_000,
        "{person} person, {room} room pixels"
    );
    assert!(
        person_kept * 100 >= person * 90,
        "the person arrives: {person_kept} of {person} pixels"
    );
    assert!(
        room_replaced * 100 >= room * 90,
        "the picture arrives behind: {room_replaced} of {room} pixels"
    );
    let iou = f64::from(both) / f64::from(either.max(1));
    println!(
        "received: person kept {person_kept}/{person}, picture behind {room_replaced}/{room}, IoU {iou:.3}"
    );
    assert!(
        iou >= 0.9,
        "IoU of the received person with the reference: {iou:.3}"
    );
}

/// The same photo with the room blurred: where the blur changes the photo
/// visibly, the other side's picture is the blurred room (nearer to the
/// photo blurred whole than to the photo) around the sharp person (nearer
/// to the photo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_others_see_the_person_in_front_of_the_blurred_room() {
    use conclave_background::compose::{Backdrop, BlurStrength, Compositor, Mask, I420};
    let (w, h, got) = received_photo("blur", BackdropChoice::Blur(BlurStrength::Strong)).await;
    let (y, u, v) = shown_photo(w, h);
    let shown = conclave_background::image::from_i420(w, h, &y, &u, &v).rgb;
    // The photo blurred whole: composed with a mask that is all room.
    let (mut by, mut bu, mut bv) = (y.clone(), u.clone(), v.clone());
    let mut all_room = Compositor::default();
    all_room.update_mask(&Mask {
        width: 1,
        height: 1,
        values: &[0.0],
    });
    all_room.compose(
        &mut I420 {
            width: w,
            height: h,
            y: &mut by,
            u: &mut bu,
            v: &mut bv,
        },
        &Backdrop::Blur(BlurStrength::Strong),
    );
    let blurred = conclave_background::image::from_i420(w, h, &by, &bu, &bv).rgb;
    let mask = ReferenceMask::load();
    let (mut person, mut person_sharp, mut room, mut room_blurred) = (0u32, 0u32, 0u32, 0u32);
    for yy in 0..h {
        for x in 0..w {
            let i = (yy * w + x) * 3;
            let (received, original, soft) = (&got[i..i + 3], &shown[i..i + 3], &blurred[i..i + 3]);
            if difference(original, soft) < 30 {
                continue;
            }
            let nearer_the_photo = difference(received, original) < difference(received, soft);
            if mask.sure(x, yy, w, h, true) {
                person += 1;
                person_sharp += u32::from(nearer_the_photo);
            } else if mask.sure(x, yy, w, h, false) {
                room += 1;
                room_blurred += u32::from(!nearer_the_photo);
            }
        }
    }
    println!(
        "received with blur: person sharp {person_sharp}/{person}, room blurred {room_blurred}/{room}"
    );
    assert!(
        person > 1_000 && room > 1_000,
        "{person} person, {room} room pixels the blur changes"
    );
    assert!(
        person_sharp * 100 >= person * 90,
        "the person arrives sharp: {person_sharp} of {person} pixels"
    );
    assert!(
        room_blurred * 100 >= room * 90,
        "the room arrives blurred: {room_blurred} of {room} pixels"
    );
}
