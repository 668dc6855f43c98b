//! Local recording in the app (R1–R4): the recorder fed from the meeting's
//! decoded pictures and sound, the commands behind the record button, the
//! folder, and repairing recordings a crash cut off.
//!
//! Must not: write anywhere but the recordings folder, or let anything of a
//! recording leave the device (the meeting only hears *that* we record).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use conclave_engine::video::FrameSink;
use conclave_engine::{AudioTap, Command, EngineEvent, RecordingState};
use conclave_record::files;
use conclave_record::recorder::Recorder;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, State};

use crate::commands::AppState;
use crate::settings;

/// The event that tells the UI a recording ended without being asked to
/// (a full disk, a write error, leaving the meeting).
pub const RECORDING_ENDED_EVENT: &str = "recording-ended";

/// A recording that ended: where it is, and why it ended early, if it did.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RecordingEnded {
    /// The file.
    pub path: String,
    /// What went wrong (`None`: finished normally).
    pub problem: Option<String>,
}

/// The outcome of repairing one file.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RepairOutcome {
    /// The file.
    pub path: String,
    /// Seconds of recording kept (when repaired).
    pub seconds: Option<f64>,
    /// Why it could not be repaired.
    pub problem: Option<String>,
}

/// What the recorder needs to know about the meeting.
#[derive(Default)]
struct MeetingFacts {
    /// Tile ids (0: us) and names.
    names: BTreeMap<u64, String>,
    room: String,
    topic: Option<String>,
    allowed: bool,
}

/// The running recording, shared with the engine's frame sink and audio tap.
#[derive(Clone, Default)]
pub struct RecordingControl {
    current: Arc<RwLock<Option<Arc<Recorder>>>>,
    facts: Arc<Mutex<MeetingFacts>>,
}

impl RecordingControl {
    fn recorder(&self) -> Option<Arc<Recorder>> {
        self.current.read().ok().and_then(|r| r.clone())
    }

    /// Whether a recording runs.
    pub fn is_recording(&self) -> bool {
        self.recorder().is_some()
    }

    /// Pictures for the UI (`ui`) and, while recording, the recorder.
    pub fn frame_sink(&self, ui: Option<FrameSink>) -> FrameSink {
        let control = self.clone();
        FrameSink(Arc::new(move |tile, frame| {
            if let Some(ui) = &ui {
                (ui.0)(tile, frame);
            }
            if let Some(r) = control.recorder() {
                r.video(tile, frame);
            }
        }))
    }

    /// Sound for the recorder, while recording.
    pub fn audio_tap(&self) -> AudioTap {
        let control = self.clone();
        AudioTap(Arc::new(move |id, block| {
            if let Some(r) = control.recorder() {
                r.audio(id, block);
            }
        }))
    }

    /// Follows the meeting: names, who left, and the end of the meeting
    /// (which ends a recording; returns it then).
    pub fn on_event(&self, event: &EngineEvent) -> Option<RecordingEnded> {
        let recorder = self.recorder();
        match event {
            EngineEvent::Joined {
                room,
                participants,
                topic,
                recording_allowed,
                ..
            } => {
                if let Ok(mut facts) = self.facts.lock() {
                    facts.room = room.clone();
                    facts.topic = topic.clone();
                    facts.allowed = *recording_allowed;
                    facts.names = participants
                        .iter()
                        .filter_map(|p| {
                            let id = if p.is_self {
                                Some(0)
                            } else {
                                p.id.parse().ok()
                            };
                            id.map(|id| (id, p.nickname.clone()))
                        })
                        .collect();
                }
            }
            EngineEvent::ParticipantJoined { participant } => {
                if let Ok(id) = participant.id.parse::<u64>() {
                    if let Ok(mut facts) = self.facts.lock() {
                        facts.names.insert(id, participant.nickname.clone());
                    }
                    if let Some(r) = &recorder {
                        r.name(id, &participant.nickname);
                    }
                }
            }
            EngineEvent::ParticipantLeft { participant } => {
                if let Ok(id) = participant.id.parse::<u64>() {
                    if let Ok(mut facts) = self.facts.lock() {
                        facts.names.remove(&id);
                    }
                    if let Some(r) = &recorder {
                        r.gone(id);
                    }
                }
            }
            EngineEvent::Left | EngineEvent::Disconnected { .. } => return self.finish(),
            _ => {}
        }
        None
    }

    /// Stops and finalises the recording, if one runs.
    fn finish(&self) -> Option<RecordingEnded> {
        let recorder = self.current.write().ok().and_then(|mut r| r.take())?;
        let path = recorder.path().display().to_string();
        let problem = recorder.stop().err().map(|e| e.to_string());
        tracing::info!(ok = problem.is_none(), "recording finished");
        Some(RecordingEnded { path, problem })
    }
}

/// The folder recordings go to: the user's choice, else the OS videos
/// folder (else the app's data folder).
fn recordings_folder(app: &AppHandle) -> PathBuf {
    let chosen = settings::load().recording_folder;
    if !chosen.is_empty() {
        return PathBuf::from(chosen);
    }
    app.path()
        .video_dir()
        .or_else(|_| app.path().home_dir().map(|h| h.join("Videos")))
        .unwrap_or_else(|_| settings::data_dir().join("recordings"))
}

/// Where recordings are saved.
#[tauri::command]
pub fn recording_folder(app: AppHandle) -> String {
    recordings_folder(&app).display().to_string()
}

/// Lets the user pick the recordings folder; `None` if cancelled.
#[tauri::command]
pub async fn choose_recording_folder(app: AppHandle) -> Result<Option<String>, String> {
    use tauri_plugin_dialog::DialogExt;
    let dialog = app
        .dialog()
        .file()
        .set_title("Folder for recordings")
        .set_directory(recordings_folder(&app));
    let picked = tauri::async_runtime::spawn_blocking(move || dialog.blocking_pick_folder())
        .await
        .map_err(|e| e.to_string())?;
    let Some(folder) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    let mut stored = settings::load();
    stored.recording_folder = folder.display().to_string();
    settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
    Ok(Some(stored.recording_folder))
}

/// Starts recording the meeting into the recordings folder, once the user
/// confirmed that everyone agreed (`consent`). `local_time` names the file
/// (the UI's clock and format). Tells the meeting. Resolves to the file.
#[tauri::command]
pub async fn start_recording(
    app: AppHandle,
    state: State<'_, AppState>,
    consent: bool,
    local_time: String,
) -> Result<String, String> {
    if !consent {
        return Err("Confirm that everyone in the meeting agreed to be recorded.".into());
    }
    let meeting = state.meeting().await.ok_or("Not in a meeting")?;
    let control = &state.recording;
    if control.is_recording() {
        return Err("A recording is already running.".into());
    }
    let (room, topic, allowed, names) = {
        let facts = control.facts.lock().map_err(|e| e.to_string())?;
        (
            facts.room.clone(),
            facts.topic.clone(),
            facts.allowed,
            facts.names.clone(),
        )
    };
    if !allowed {
        return Err("The host does not allow recording this meeting.".into());
    }
    let folder = recordings_folder(&app);
    std::fs::create_dir_all(&folder)
        .map_err(|e| format!("Could not use the folder {}: {e}", folder.display()))?;
    let title = topic.unwrap_or_else(|| format!("Meeting {room}"));
    let path = free_name(&folder, &files::file_name(&title, &local_time));
    let failed = {
        let (app, meeting, control) = (app.clone(), meeting.clone(), control.clone());
        let shown = path.display().to_string();
        Box::new(move |e: &conclave_record::mkv::MkvError| {
            tracing::warn!(error = %e, "the recording stopped by itself");
            if let Ok(mut current) = control.current.write() {
                current.take();
            }
            meeting.command(Command::SetRecording {
                state: RecordingState::Stopped,
            });
            let _ = app.emit(
                RECORDING_ENDED_EVENT,
                RecordingEnded {
                    path: shown.clone(),
                    problem: Some(e.to_string()),
                },
            );
        })
    };
    let recorder = Recorder::start_with(&path, &title, Some(failed))
        .map_err(|e| format!("Could not start recording in {}: {e}", folder.display()))?;
    for (id, name) in &names {
        recorder.name(*id, name);
    }
    if let Ok(mut current) = control.current.write() {
        *current = Some(Arc::new(recorder));
    }
    meeting.command(Command::SetRecording {
        state: RecordingState::Recording,
    });
    tracing::info!("recording started");
    Ok(path.display().to_string())
}

/// A path in `folder` for `name` that no file has yet.
fn free_name(folder: &Path, name: &str) -> PathBuf {
    let first = folder.join(name);
    if !first.exists() {
        return first;
    }
    let stem = name.strip_suffix(".webm").unwrap_or(name);
    (2..)
        .map(|n| folder.join(format!("{stem} ({n}).webm")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Pauses or resumes the recording; the meeting hears it too.
#[tauri::command]
pub async fn pause_recording(state: State<'_, AppState>, paused: bool) -> Result<(), String> {
    let recorder = state.recording.recorder().ok_or("Not recording")?;
    recorder.set_paused(paused);
    if let Some(meeting) = state.meeting().await {
        meeting.command(Command::SetRecording {
            state: if paused {
                RecordingState::Paused
            } else {
                RecordingState::Recording
            },
        });
    }
    Ok(())
}

/// Stops and finalises the recording; resolves to the file.
#[tauri::command]
pub async fn stop_recording(state: State<'_, AppState>) -> Result<Option<String>, String> {
    let control = state.recording.clone();
    let ended = tauri::async_runtime::spawn_blocking(move || control.finish())
        .await
        .map_err(|e| e.to_string())?;
    if let Some(meeting) = state.meeting().await {
        meeting.command(Command::SetRecording {
            state: RecordingState::Stopped,
        });
    }
    match ended {
        Some(RecordingEnded {
            problem: Some(problem),
            path,
        }) => Err(format!(
            "The recording ended with a problem ({problem}); what was recorded is in {path}"
        )),
        Some(ended) => Ok(Some(ended.path)),
        None => Ok(None),
    }
}

/// Recordings in the recordings folder that a crash left unfinished (not
/// the one being made now).
#[tauri::command]
pub async fn unfinished_recordings(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<Vec<String>, String> {
    let running = state.recording.recorder().map(|r| r.path().to_owned());
    let folder = recordings_folder(&app);
    let found = tauri::async_runtime::spawn_blocking(move || files::find_unfinished(&folder))
        .await
        .map_err(|e| e.to_string())?;
    Ok(found
        .into_iter()
        .filter(|p| Some(p) != running.as_ref())
        .map(|p| p.display().to_string())
        .collect())
}

/// Repairs and finalises unfinished recordings (only files of ours that are
/// unfinished are touched).
#[tauri::command]
pub async fn repair_recordings(paths: Vec<String>) -> Result<Vec<RepairOutcome>, String> {
    tauri::async_runtime::spawn_blocking(move || {
        paths
            .into_iter()
            .map(|path| {
                let file = PathBuf::from(&path);
                let result = if file.extension().is_some_and(|e| e == "webm")
                    && files::is_unfinished(&file)
                {
                    files::repair_file(&file).map_err(|e| e.to_string())
                } else {
                    Err("not an unfinished recording".into())
                };
                tracing::info!(ok = result.is_ok(), "recording repaired");
                match result {
                    Ok(r) => RepairOutcome {
                        path,
                        seconds: Some(r.duration_ms as f64 / 1000.0),
                        problem: None,
                    },
                    Err(problem) => RepairOutcome {
                        path,
                        seconds: None,
                        problem: Some(problem),
                    },
                }
            })
            .collect()
    })
    .await
    .map_err(|e| e.to_string())
}
