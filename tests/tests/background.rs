//! A virtual background reaches the others: the sender's camera is the
//! machine-readable test pattern, which has no person in it, so with a
//! picture behind "the person" every picture that arrives is the picture:
//! not one frame's stamp can be read, although frames keep arriving. (The
//! same camera without the effect is read frame by frame in media.rs.) This
//! shows that the encoder only ever receives the compositor's output.

use std::path::PathBuf;
use std::sync::Arc;

use conclave_background::image::Picture;
use conclave_e2e::{new_meeting, Peer};
use conclave_engine::{BackdropChoice, BackgroundOptions, CameraChoice, EngineEvent, MediaOptions};

fn model() -> Vec<u8> {
    let root =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = PathBuf::from(root).join(
        "../ui/node_modules/@mediapipe/selfie_segmentation/selfie_segmentation_landscape.tflite",
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup installs it)", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_others_receive_the_composite_and_never_the_camera_s_room() {
    let info = new_meeting(false).await;
    let dir = std::env::temp_dir().join(format!(
        "conclave-background-{}-{}",
        conclave_e2e::backend(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut receiver = Peer::join_saving(&info, "Receiver", &dir).await;
    // A plain blue picture behind the person.
    let blue = Picture {
        width: 8,
        height: 8,
        rgb: [20u8, 40, 220].repeat(64),
    };
    let mut sender = Peer::join_media(
        &info,
        "Sender",
        false,
        MediaOptions {
            camera: Some(CameraChoice::Synthetic {
                width: 320,
                height: 180,
                fps: 15,
            }),
            background: Some(BackgroundOptions {
                model: Arc::new(model()),
                backdrop: BackdropChoice::Picture(Arc::new(blue)),
            }),
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
