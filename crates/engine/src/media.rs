//! The media edge of the runtime: devices, encoders and decoders. The
//! sans-IO [`crate::client::Client`] only sees encoded frames; this module
//! turns device output into them and decoded frames into recordings and
//! statistics.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use conclave_codec::opus::{OpusDecoder, OpusEncoder};
use conclave_codec::vp8::{EncoderConfig, Vp8Decoder, Vp8Encoder};
use conclave_media::pattern::read_stamp;
use conclave_media::synthetic::{TestPatternCamera, ToneMicrophone, WavMicrophone, WavRecorder};
use conclave_media::{AudioFrame, Camera, Microphone, Speaker, AUDIO_BLOCK};
use tracing::{debug, warn};

/// Which camera to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraChoice {
    /// The machine-readable test pattern.
    Synthetic {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// Frames per second.
        fps: u32,
    },
}

/// Which microphone to send.
#[derive(Debug, Clone, PartialEq)]
pub enum MicrophoneChoice {
    /// A sine tone of this frequency.
    Tone(f64),
    /// A WAV file, looped.
    Wav(PathBuf),
}

/// Media settings of one meeting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaOptions {
    /// Camera to send, if any.
    pub camera: Option<CameraChoice>,
    /// Microphone to send, if any.
    pub microphone: Option<MicrophoneChoice>,
    /// Write each remote participant's decoded audio (WAV) and the decoded
    /// test-pattern stamps (CSV) into this directory.
    pub save_received: Option<PathBuf>,
}

/// One encoded frame for the client.
pub(crate) struct Encoded {
    pub video: bool,
    pub data: Vec<u8>,
    pub captured: Duration,
    pub level: u8,
}

struct Remote {
    audio: Option<OpusDecoder>,
    video: Option<Vp8Decoder>,
    recorder: Option<WavRecorder>,
    stamps: Option<BufWriter<File>>,
    frames: u64,
}

/// Devices and codecs of one meeting.
pub(crate) struct MediaIo {
    epoch: Instant,
    camera: Option<(Box<dyn Camera>, Vp8Encoder)>,
    microphone: Option<(Box<dyn Microphone>, OpusEncoder)>,
    next_audio: Instant,
    save: Option<PathBuf>,
    remotes: HashMap<u64, Remote>,
}

impl MediaIo {
    /// Opens the chosen devices and their encoders.
    pub fn open(options: &MediaOptions, now: Instant) -> Result<Self, String> {
        let camera = match &options.camera {
            None => None,
            Some(CameraChoice::Synthetic { width, height, fps }) => {
                let encoder = Vp8Encoder::new(EncoderConfig {
                    width: *width,
                    height: *height,
                    fps: *fps,
                    bitrate: 1_200_000,
                })
                .map_err(|e| format!("Could not start the video encoder: {e}"))?;
                let cam: Box<dyn Camera> =
                    Box::new(TestPatternCamera::new(*width, *height, *fps, now));
                Some((cam, encoder))
            }
        };
        let microphone = match &options.microphone {
            None => None,
            Some(choice) => {
                let mic: Box<dyn Microphone> = match choice {
                    MicrophoneChoice::Tone(f) => Box::new(ToneMicrophone::new(*f, 0.3, now)),
                    MicrophoneChoice::Wav(path) => Box::new(
                        WavMicrophone::open(path, true, now)
                            .map_err(|e| format!("Could not open the microphone: {e}"))?,
                    ),
                };
                let encoder = OpusEncoder::new(32_000)
                    .map_err(|e| format!("Could not start the audio encoder: {e}"))?;
                Some((mic, encoder))
            }
        };
        if let Some(dir) = &options.save_received {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("Could not create {}: {e}", dir.display()))?;
        }
        Ok(MediaIo {
            epoch: now,
            camera,
            microphone,
            next_audio: now + Duration::from_millis(10),
            save: options.save_received.clone(),
            remotes: HashMap::new(),
        })
    }

    /// What is sent, for the client's offer.
    pub fn sends(&self) -> (bool, bool) {
        (self.microphone.is_some(), self.camera.is_some())
    }

    /// When something is next due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let cam = self.camera.as_ref().map(|(c, _)| c.next_frame_at());
        let mic = self.microphone.as_ref().map(|_| self.next_audio);
        match (cam, mic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next video frame is to be a keyframe.
    pub fn request_keyframe(&mut self) {
        if let Some((_, enc)) = &mut self.camera {
            enc.request_keyframe();
        }
    }

    /// Captures and encodes what is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Encoded> {
        let mut out = Vec::new();
        if let Some((mic, enc)) = &mut self.microphone {
            while self.next_audio <= now {
                self.next_audio += Duration::from_millis(10);
                match mic.poll_block(now) {
                    Ok(Some(block)) => {
                        let level = block.level_dbov();
                        match enc.encode(&block) {
                            Ok(Some(data)) => out.push(Encoded {
                                video: false,
                                data,
                                captured: block.captured,
                                level,
                            }),
                            Ok(None) => {}
                            Err(e) => warn!(error = %e, "audio encoding failed"),
                        }
                    }
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "microphone failed"),
                }
            }
        }
        if let Some((cam, enc)) = &mut self.camera {
            match cam.poll_frame(now) {
                Ok(Some(frame)) => match enc.encode(&frame) {
                    Ok(frames) => out.extend(frames.into_iter().map(|f| Encoded {
                        video: true,
                        data: f.data,
                        captured: f.captured,
                        level: 0,
                    })),
                    Err(e) => warn!(error = %e, "video encoding failed"),
                },
                Ok(None) => {}
                Err(e) => warn!(error = %e, "camera failed"),
            }
        }
        out
    }

    /// Decodes a remote participant's frame.
    pub fn on_remote(&mut self, participant: u64, video: bool, data: &[u8]) {
        let now_us = self.epoch.elapsed().as_micros();
        let save = self.save.clone();
        let remote = self.remotes.entry(participant).or_insert_with(|| Remote {
            audio: None,
            video: None,
            recorder: None,
            stamps: None,
            frames: 0,
        });
        if video {
            if remote.video.is_none() {
                remote.video = Vp8Decoder::new().ok();
                if let Some(dir) = &save {
                    let path = dir.join(format!("{participant}-video.csv"));
                    match File::create(&path) {
                        Ok(f) => {
                            let mut w = BufWriter::new(f);
                            let _ = writeln!(w, "frame,captured_us,received_us,width,height");
                            remote.stamps = Some(w);
                        }
                        Err(e) => warn!(error = %e, "could not create the frame log"),
                    }
                }
            }
            let Some(dec) = &mut remote.video else { return };
            match dec.decode(data) {
                Ok(frames) => {
                    for f in frames {
                        remote.frames += 1;
                        if let Some(w) = &mut remote.stamps {
                            let (n, cap) = match read_stamp(&f) {
                                Ok(s) => (s.frame as i64, s.captured.as_micros() as i64),
                                Err(_) => (-1, -1),
                            };
                            let _ = writeln!(w, "{n},{cap},{now_us},{},{}", f.width, f.height);
                        }
                    }
                }
                Err(e) => debug!(error = %e, "undecodable video frame"),
            }
        } else {
            if remote.audio.is_none() {
                remote.audio = OpusDecoder::new().ok();
                if let Some(dir) = &save {
                    let path = dir.join(format!("{participant}-audio.wav"));
                    match WavRecorder::create(&path) {
                        Ok(r) => remote.recorder = Some(r),
                        Err(e) => warn!(error = %e, "could not create the audio recording"),
                    }
                }
            }
            let Some(dec) = &mut remote.audio else { return };
            match dec.decode(data) {
                Ok(samples) => {
                    if let Some(rec) = &mut remote.recorder {
                        for chunk in samples.chunks(AUDIO_BLOCK) {
                            let mut block = AudioFrame::silence(Duration::ZERO);
                            block.samples[..chunk.len()].copy_from_slice(chunk);
                            let _ = rec.play(&block);
                        }
                    }
                }
                Err(e) => debug!(error = %e, "undecodable audio frame"),
            }
        }
    }

    /// Flushes recordings.
    pub fn finish(&mut self) {
        for r in self.remotes.values_mut() {
            if let Some(rec) = &mut r.recorder {
                let _ = rec.finish();
            }
            if let Some(w) = &mut r.stamps {
                let _ = w.flush();
            }
        }
    }
}
