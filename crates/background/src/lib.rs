//! Virtual backgrounds (V1): person segmentation on the device, in pure
//! Rust. [`tflite`] reads MediaPipe's selfie-segmentation models (the
//! `.tflite` files of the npm package `@mediapipe/selfie_segmentation`,
//! Apache-2.0) and [`net`] runs them with kernels written for exactly
//! their operators (float16 weights widened on loading; MediaPipe's custom
//! `Convolution2DTransposeBias`). [`compose`] puts a blurred or replaced
//! background behind the person, in YUV, from the mask; [`effect`] runs
//! both on camera pictures within a time budget; [`image`] checks and
//! converts background pictures.
//!
//! Must not: open network connections, read files other than the model and
//! background images it is given, or let anything but composited frames
//! out.

pub mod compose;
pub mod effect;
pub mod image;
pub mod net;
pub mod tflite;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file is not a well-formed model.
    #[error("the segmentation model is damaged: {0}")]
    Malformed(&'static str),
    /// The model uses something this runtime does not implement.
    #[error("the segmentation model needs {0}, which is not supported")]
    Unsupported(String),
    /// Input of the wrong size.
    #[error("wrong input: {0}")]
    Shape(String),
}
