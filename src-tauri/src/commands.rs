//! Tauri commands: thin wrappers over the engine API.

use conclave_engine::frames::FrameServer;
use conclave_engine::{
    CameraChoice, Command, EngineEvent, JoinOptions, MediaOptions, MeetingHandle, MicrophoneChoice,
    SpeakerChoice,
};
use conclave_protocol::link::{Invitation, Password};
use conclave_protocol::MeetingInfo;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, State};
use tauri_plugin_clipboard_manager::ClipboardExt;
use tauri_plugin_dialog::DialogExt;
use tokio::sync::Mutex;

use crate::privacy;
use crate::settings::{self, Settings};

/// The event name carrying [`EngineEvent`]s to the UI.
pub const ENGINE_EVENT: &str = "engine-event";

/// The meeting the app is in, if any.
struct Session {
    meeting: MeetingHandle,
    info: MeetingInfo,
    nickname: String,
}

/// A meeting this app hosts with its embedded server.
struct Hosted {
    server: conclave_server::runtime::RunningServer,
    room: conclave_protocol::link::MeetingId,
    secret: Option<String>,
}

/// State shared by the commands.
#[derive(Default)]
pub struct AppState {
    session: Mutex<Option<Session>>,
    hosted: Mutex<Option<Hosted>>,
    frames: tokio::sync::OnceCell<Option<FrameServer>>,
    /// The camera effects the device preview applies.
    pub(crate) preview_effects: crate::backgrounds::PreviewControl,
    /// Set to stop the running device preview.
    preview_stop: std::sync::Mutex<Option<std::sync::Arc<std::sync::atomic::AtomicBool>>>,
    /// The local history, opened on first use.
    history: std::sync::Arc<std::sync::Mutex<Option<crate::history::History>>>,
    /// What the app put on the clipboard, cleared on exit if still there.
    pub paste_guard: privacy::PasteGuard,
    /// The local recording, if one runs.
    pub recording: crate::recording::RecordingControl,
    /// Counts meetings entered: events of a meeting that is no longer the
    /// current one (its `left` arriving after the next meeting began) are
    /// kept from the UI and the recorder.
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl AppState {
    /// The running meeting, if any.
    pub(crate) async fn meeting(&self) -> Option<MeetingHandle> {
        self.session
            .lock()
            .await
            .as_ref()
            .map(|s| s.meeting.clone())
    }

    /// The local video server, started on first use (`None` if it could not
    /// start: the meeting then runs without pictures).
    async fn frames(&self) -> Option<&FrameServer> {
        self.frames
            .get_or_init(|| async {
                match FrameServer::start().await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "the local video server did not start");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

/// The camera to join with; `CONCLAVE_CAMERA` (for demos and tests)
/// overrides the settings. The plain test pattern is sent at 720p30.
fn camera_setting(stored: &Settings) -> Option<CameraChoice> {
    let value = std::env::var("CONCLAVE_CAMERA").unwrap_or_else(|_| stored.camera.clone());
    parse_camera(&value)
}

/// A camera setting's value as a choice (`None`: no camera).
fn parse_camera(value: &str) -> Option<CameraChoice> {
    match value {
        "" | "none" => None,
        "synthetic" => Some(CameraChoice::Synthetic {
            width: 1280,
            height: 720,
            fps: 30,
        }),
        other => CameraChoice::parse(other)
            .map_err(|e| tracing::warn!(error = %e, "camera setting ignored"))
            .ok(),
    }
}

/// A microphone or speaker setting: `None` for none, `Some(None)` for the OS
/// default, else the device.
fn device_setting(value: &str) -> Option<Option<String>> {
    match value {
        "" | "none" => None,
        "default" => Some(None),
        name => Some(Some(name.to_string())),
    }
}

/// The media options from the settings. A device that cannot be opened does
/// not stop the meeting: the engine goes on without it and says so.
fn media_options(stored: &Settings) -> MediaOptions {
    // Without the user's consent (settings), no camera or microphone opens.
    MediaOptions {
        camera: camera_setting(stored).filter(|_| stored.camera_allowed),
        microphone: device_setting(&stored.microphone)
            .filter(|_| stored.microphone_allowed)
            .map(MicrophoneChoice::Device),
        speaker: device_setting(&stored.speaker).map_or(SpeakerChoice::Null, SpeakerChoice::Device),
        effects: crate::backgrounds::effects_for_join(stored),
        ..Default::default()
    }
}

/// What the join screen submits.
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct JoinRequest {
    /// A link, a meeting ID or pasted invitation text.
    link_or_id: String,
    /// A password typed by the user, used when the link carries none.
    password: Option<String>,
    /// The display name.
    nickname: String,
    /// A server typed by the user; otherwise the link's, then the default.
    server: Option<String>,
    /// Keep the password and chat key in the OS keychain after joining.
    remember: bool,
}

/// What the join screen shows about a pasted link. Secrets stay in Rust: the
/// UI learns only whether they are present.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct LinkSummary {
    /// The meeting ID, grouped for reading (`123 456 789`).
    room: String,
    /// The server the link names, if any.
    server: Option<String>,
    /// Whether the link carries the password.
    has_password: bool,
    /// Whether the link carries a chat key (chat end-to-end encrypted).
    has_chat_key: bool,
    /// Whether the OS keychain remembers this meeting's password or key.
    remembered: bool,
}

/// Parses a link, ID or invitation text.
#[tauri::command]
pub async fn parse_link(text: String) -> Result<LinkSummary, String> {
    let info = MeetingInfo::parse(&text).map_err(|e| capitalise(&e.to_string()))?;
    // The settings list what the keychain holds: no keychain access (or
    // unlock prompt) while the user types.
    let stored = settings::load();
    let name = privacy::keychain_name(&resolve_server(None, &info, &stored), &info.room);
    let remembered = stored.remembered.contains(&name);
    Ok(LinkSummary {
        room: info.room.to_string(),
        server: info.server,
        has_password: info.password.is_some(),
        has_chat_key: info.chat_key.is_some(),
        remembered,
    })
}

/// The server a meeting is joined on: the one typed, else the link's, else
/// the default.
fn resolve_server(typed: Option<String>, info: &MeetingInfo, stored: &Settings) -> String {
    typed
        .filter(|s| !s.trim().is_empty())
        .or_else(|| info.server.clone())
        .unwrap_or_else(|| stored.server.clone())
}

/// The meeting link the app was started with (`conclave <link>`), if any, so
/// the join screen can start filled in.
#[tauri::command]
pub fn launch_link() -> Option<String> {
    std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-') && MeetingInfo::parse(arg).is_ok())
}

/// The stored settings.
#[tauri::command]
pub fn get_settings() -> Settings {
    settings::load()
}

/// Stores settings.
#[tauri::command]
pub fn save_settings(settings: Settings) -> Result<(), String> {
    settings::save(&settings).map_err(|e| format!("Could not save settings: {e}"))
}

/// Adds a relay or STUN server to the Connection settings (or replaces the
/// one with the same URL and user): checked first, its password into the
/// keychain (never the settings file). Returns the settings as they now are.
#[tauri::command]
pub fn add_relay(url: String, username: String, password: String) -> Result<Settings, String> {
    let url = url.trim().to_owned();
    let username = username.trim().to_owned();
    let server = conclave_engine::IceServer::parse(
        &url,
        Some(&username)
            .filter(|u| !u.is_empty())
            .map(String::as_str),
        Some(&password)
            .filter(|p| !p.is_empty())
            .map(String::as_str),
    )
    .map_err(|e| capitalise(&e.to_string()))?;
    let username = match server {
        conclave_engine::IceServer::Turn { .. } => {
            privacy::remember_relay_password(
                &privacy::relay_keychain_name(&url, &username),
                &password,
            )
            .map_err(|e| e.to_string())?;
            username
        }
        conclave_engine::IceServer::Stun { .. } => String::new(),
    };
    let mut stored = settings::load();
    stored
        .relays
        .retain(|r| !(r.url == url && r.username == username));
    stored.relays.push(settings::RelaySetting { url, username });
    settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
    Ok(stored)
}

/// Removes a relay from the Connection settings, its password from the
/// keychain with it. Returns the settings as they now are.
#[tauri::command]
pub fn remove_relay(url: String, username: String) -> Result<Settings, String> {
    let name = privacy::relay_keychain_name(&url, &username);
    if !username.is_empty() {
        privacy::forget(&name).map_err(|e| e.to_string())?;
    }
    let mut stored = settings::load();
    stored
        .relays
        .retain(|r| !(r.url == url && r.username == username));
    // "Only through a relay" with no relay left would keep every meeting
    // out: it goes with the last relay.
    if !stored.relays.iter().any(|r| !r.username.is_empty()) {
        stored.relay_only = false;
    }
    settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
    Ok(stored)
}

/// The relays of the Connection settings with their passwords from the
/// keychain, and what could not be used (for the user).
fn network_options(stored: &Settings) -> (conclave_engine::NetworkOptions, Vec<String>) {
    let mut options = conclave_engine::NetworkOptions {
        relay_only: stored.relay_only,
        ..Default::default()
    };
    let mut problems = Vec::new();
    for relay in &stored.relays {
        let password = if relay.username.is_empty() {
            None
        } else {
            match privacy::relay_password(&privacy::relay_keychain_name(
                &relay.url,
                &relay.username,
            )) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{}: {e}", relay.url));
                    continue;
                }
            }
        };
        match conclave_engine::IceServer::parse(
            &relay.url,
            Some(relay.username.as_str()),
            password.as_deref(),
        ) {
            Ok(server) => options.ice_servers.push(server),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (options, problems)
}

/// Joins a meeting; resolves once joined (with a notice for the user, if
/// something beside the meeting went wrong), rejects with a message otherwise.
#[tauri::command]
pub async fn join(
    app: AppHandle,
    state: State<'_, AppState>,
    request: JoinRequest,
) -> Result<Option<String>, String> {
    let mut info =
        MeetingInfo::parse(&request.link_or_id).map_err(|e| capitalise(&e.to_string()))?;
    // A password in the link wins: the join screen hides its password field
    // then, so a typed value can only be a leftover.
    if info.password.is_none() {
        info.password = request.password.filter(|p| !p.is_empty()).map(Password);
    }
    // What the keychain remembers fills in what is still missing.
    let name = privacy::keychain_name(
        &resolve_server(request.server.clone(), &info, &settings::load()),
        &info.room,
    );
    let recalled = {
        let (mut info, name) = (info.clone(), name.clone());
        tauri::async_runtime::spawn_blocking(move || {
            privacy::fill_from_keychain(&mut info, &name).then_some(info)
        })
        .await
        .ok()
        .flatten()
    };
    if let Some(filled) = recalled {
        info = filled;
    }
    end_hosting(&state).await;
    let secrets = info.clone();
    enter_meeting(&app, &state, info, request.nickname, request.server).await?;
    if !request.remember {
        return Ok(None);
    }
    tauri::async_runtime::spawn_blocking(move || privacy::remember(&secrets, &name))
        .await
        .map_err(|e| e.to_string())?
        .map_or_else(|e| Ok(Some(e.to_string())), |()| Ok(None))
}

/// Forgets what the keychain remembers for the meeting in `link`.
#[tauri::command]
pub async fn forget_password(link: String) -> Result<(), String> {
    let info = MeetingInfo::parse(&link).map_err(|e| capitalise(&e.to_string()))?;
    let name = privacy::keychain_name(&resolve_server(None, &info, &settings::load()), &info.room);
    tauri::async_runtime::spawn_blocking(move || privacy::forget(&name))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Deletes all local data (history, settings, keychain entries, saved
/// backgrounds, logs), after the UI asked for confirmation. Files the user
/// saved to folders of their choice stay. Resolves to what could not be
/// deleted.
#[tauri::command]
pub async fn delete_all_local_data(state: State<'_, AppState>) -> Result<Vec<String>, String> {
    if let Ok(mut history) = state.history.lock() {
        // Closing the database lets its file go.
        *history = None;
    }
    let problems = tauri::async_runtime::spawn_blocking(|| {
        privacy::delete_all_local_data(&crate::logging::log_dir())
    })
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(problems = problems.len(), "local data deleted");
    Ok(problems)
}

/// The files a diagnostics bundle would hold, to show before saving.
#[tauri::command]
pub async fn diagnostics_preview() -> Result<Vec<privacy::DiagnosticsFile>, String> {
    let devices: Vec<String> = list_devices()
        .await?
        .into_iter()
        .map(|d| {
            format!(
                "{}: {}{}",
                d.kind,
                d.name,
                if d.is_default { " (default)" } else { "" }
            )
        })
        .collect();
    tauri::async_runtime::spawn_blocking(move || {
        privacy::diagnostics_files(&crate::logging::log_dir(), &devices)
    })
    .await
    .map_err(|e| e.to_string())
}

/// Asks where to save the diagnostics bundle and writes it there (a zip of
/// what `diagnostics_preview` showed). `None` if cancelled. Nothing is sent.
#[tauri::command]
pub async fn save_diagnostics(app: AppHandle) -> Result<Option<String>, String> {
    let files = diagnostics_preview().await?;
    let dialog = app
        .dialog()
        .file()
        .set_file_name("conclave-diagnostics.zip");
    let picked = tauri::async_runtime::spawn_blocking(move || dialog.blocking_save_file())
        .await
        .map_err(|e| e.to_string())?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    let target = path.clone();
    tauri::async_runtime::spawn_blocking(move || privacy::write_diagnostics(&target, &files))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("Could not write the bundle: {e}"))?;
    Ok(Some(path.display().to_string()))
}

/// Joins `info` and forwards the meeting's events to the UI; resolves once
/// joined.
async fn enter_meeting(
    app: &AppHandle,
    state: &AppState,
    info: MeetingInfo,
    nickname: String,
    typed_server: Option<String>,
) -> Result<(), String> {
    let mut session = state.session.lock().await;
    if let Some(old) = session.take() {
        old.meeting.command(Command::Leave);
    }
    let mut stored = settings::load();
    let server = resolve_server(typed_server, &info, &stored);
    stop_preview_now(state);
    let frames = state.frames().await;
    if let Some(f) = frames {
        f.clear();
    }
    let control = state.recording.clone();
    let generations = state.generation.clone();
    let generation = generations.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    let (network, relay_problems) = network_options(&stored);
    for problem in relay_problems {
        tracing::warn!(%problem, "a relay of the settings is not used");
        let _ = app.emit(
            ENGINE_EVENT,
            &EngineEvent::Warning {
                message: format!("A relay of your Connection settings is not used: {problem}"),
            },
        );
    }
    let (meeting, mut events) = conclave_engine::start(JoinOptions {
        network,
        frame_sink: Some(control.frame_sink(frames.map(FrameServer::sink))),
        info: info.clone(),
        nickname: nickname.clone(),
        server,
        tap_textroom: false,
        media: MediaOptions {
            audio_tap: Some(control.audio_tap()),
            ..media_options(&stored)
        },
    })
    .map_err(|e| capitalise(&e.to_string()))?;
    // The first outcome decides the command; every event also goes to the UI.
    let outcome = loop {
        match events.recv().await {
            Some(e @ EngineEvent::Joined { .. }) => {
                if let Err(error) = app.emit(ENGINE_EVENT, &e) {
                    tracing::warn!(%error, "the meeting screen could not be told of joining");
                }
                tracing::debug!("joined; the meeting screen is told");
                break Ok(e);
            }
            Some(EngineEvent::JoinFailed { message }) => break Err(message),
            Some(other) => {
                let _ = app.emit(ENGINE_EVENT, &other);
            }
            None => break Err("The meeting engine stopped".to_string()),
        }
    };
    let joined = outcome?;
    stored.nickname = nickname.trim().to_owned();
    if let Err(e) = settings::save(&stored) {
        tracing::warn!(error = %e, "could not remember the nickname");
    }
    let forward = app.clone();
    let mut recorder = HistoryRecorder {
        store: stored.history_enabled.then(|| state.history.clone()),
        hosted: state.hosted.lock().await.is_some(),
        meeting: None,
    };
    recorder.on(&joined);
    control.on_event(&joined);
    tauri::async_runtime::spawn(async move {
        while let Some(event) = events.recv().await {
            // The history follows this meeting to its end, whatever came after.
            recorder.on(&event);
            if generations.load(std::sync::atomic::Ordering::SeqCst) != generation {
                continue;
            }
            if let Some(ended) = control.on_event(&event) {
                let _ = forward.emit(crate::recording::RECORDING_ENDED_EVENT, &ended);
            }
            if let EngineEvent::ShareRestoreToken { token } = &event {
                remember_screen_cast_token(token);
                continue;
            }
            let _ = forward.emit(ENGINE_EVENT, &event);
        }
    });
    *session = Some(Session {
        meeting,
        info,
        nickname,
    });
    Ok(())
}

/// Starts a meeting hosted by this app: runs the embedded server on the LAN
/// address, creates a meeting with a random ID, password and chat key, and
/// joins it. Resolves with the invitation link.
#[tauri::command]
pub async fn host_meeting(
    app: AppHandle,
    state: State<'_, AppState>,
    nickname: String,
    topic: Option<String>,
    allow_recording: bool,
    several_presenters: bool,
) -> Result<String, String> {
    end_hosting(&state).await;
    let ip = conclave_server::runtime::lan_ip();
    // Signaling is wss:// with a certificate this app generated once and
    // keeps; its fingerprint goes into the link, so guests pin it.
    let identity = conclave_server::tls::TlsIdentity::self_signed_in(
        &settings::data_dir().join("host-identity"),
    )
    .map_err(|e| format!("Could not prepare the meeting server's certificate: {e}"))?;
    let server = conclave_server::runtime::start(conclave_server::runtime::Options {
        listen: std::net::SocketAddr::new(ip, 0),
        media_ip: Some(ip),
        config: conclave_server::Config::default(),
        tls: Some(std::sync::Arc::new(identity)),
        public_ip: None,
        audit: None,
        ice_tcp: true,
    })
    .await
    .map_err(|e| format!("Could not start the meeting server: {e}"))?;
    let url = server.url();
    // The host's rules travel with the room: everyone learns them on joining.
    let description = conclave_protocol::videoroom::RoomDescription {
        topic: topic.filter(|t| !t.trim().is_empty()),
        recording_allowed: allow_recording,
        several_presenters,
    };
    let spec = conclave_engine::admin::random_room_spec(description.to_description());
    let fingerprint = server.fingerprint.clone();
    let info = match conclave_engine::admin::host_meeting(&url, fingerprint.as_deref(), &spec).await
    {
        Ok(info) => info,
        Err(e) => {
            server.stop().await;
            return Err(format!("Could not create the meeting: {e}"));
        }
    };
    tracing::info!(room = spec.room.0, %url, "hosting a meeting");
    let link = info.to_app_link();
    *state.hosted.lock().await = Some(Hosted {
        server,
        room: spec.room,
        secret: spec.secret.clone(),
    });
    if let Err(e) = enter_meeting(&app, &state, info, nickname, None).await {
        end_hosting(&state).await;
        return Err(e);
    }
    Ok(link)
}

/// Ends a hosted meeting for everyone and stops the embedded server.
async fn end_hosting(state: &AppState) {
    let Some(hosted) = state.hosted.lock().await.take() else {
        return;
    };
    let url = hosted.server.url();
    let fingerprint = hosted.server.fingerprint.clone();
    if let Err(e) = conclave_engine::admin::destroy_meeting(
        &url,
        fingerprint.as_deref(),
        hosted.room,
        hosted.secret.as_deref(),
    )
    .await
    {
        tracing::warn!(error = %e, "could not end the hosted meeting cleanly");
    }
    hosted.server.stop().await;
    tracing::info!("hosted meeting ended");
}

/// Leaves the meeting. A host leaving ends the meeting for everyone: the
/// server lives in this app.
#[tauri::command]
pub async fn leave(state: State<'_, AppState>) -> Result<(), String> {
    if let Some(s) = state.session.lock().await.take() {
        s.meeting.command(Command::Leave);
    }
    end_hosting(&state).await;
    Ok(())
}

/// Sends a chat message to everyone or one participant.
#[tauri::command]
pub async fn send_chat(
    state: State<'_, AppState>,
    to: Option<String>,
    text: String,
) -> Result<(), String> {
    let session = state.session.lock().await;
    let s = session.as_ref().ok_or("Not in a meeting")?;
    if s.meeting.command(Command::SendChat { to, text }) {
        Ok(())
    } else {
        Err("The meeting has ended".into())
    }
}

/// Copies the invitation to the clipboard and returns it.
#[tauri::command]
pub async fn copy_invitation(app: AppHandle, state: State<'_, AppState>) -> Result<String, String> {
    let session = state.session.lock().await;
    let s = session.as_ref().ok_or("Not in a meeting")?;
    let mut text = Invitation {
        info: &s.info,
        inviter: &s.nickname,
        topic: None,
    }
    .to_text();
    // A meeting this app hosts has a page on its embedded server, for
    // those who open the invitation in a browser.
    if state.hosted.lock().await.is_some() {
        if let Some(page) = s.info.to_page_link() {
            text.push_str(&format!("In a browser: {page}\n"));
        }
    }
    app.clipboard()
        .write_text(text.clone())
        .map_err(|e| format!("Could not copy: {e}"))?;
    state.paste_guard.copied(&text);
    Ok(text)
}

/// Asks where to save the chat and writes it there. `None` if cancelled.
#[tauri::command]
pub async fn export_chat(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<Option<String>, String> {
    let (meeting, room) = {
        let session = state.session.lock().await;
        let s = session.as_ref().ok_or("Not in a meeting")?;
        (s.meeting.clone(), s.info.room.0.to_string())
    };
    let dialog = app
        .dialog()
        .file()
        .set_file_name(format!("conclave-chat-{room}.md"));
    let picked = tauri::async_runtime::spawn_blocking(move || dialog.blocking_save_file())
        .await
        .map_err(|e| e.to_string())?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    meeting
        .export_chat(&room, path.clone())
        .await
        .map_err(|e| format!("Could not write the chat file: {e}"))?;
    Ok(Some(path.display().to_string()))
}

/// Where the UI gets decoded video: a token-protected WebSocket on
/// 127.0.0.1 (`None` if it could not start).
#[tauri::command]
pub async fn video_url(state: State<'_, AppState>) -> Result<Option<String>, String> {
    Ok(state.frames().await.map(FrameServer::url))
}

/// A microphone, speaker or camera the user can pick.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct DeviceOption {
    /// `microphone`, `speaker` or `camera`.
    kind: String,
    /// What the settings store (a device id, or `synthetic`).
    id: String,
    /// Name shown to the user.
    name: String,
    /// Whether the OS calls it the default.
    is_default: bool,
}

/// The devices to choose from. Device names stay on this machine.
#[tauri::command]
pub async fn list_devices() -> Result<Vec<DeviceOption>, String> {
    let audio =
        tauri::async_runtime::spawn_blocking(conclave_media::system_audio::list_audio_devices)
            .await
            .map_err(|e| e.to_string())?;
    let mut out: Vec<DeviceOption> = match audio {
        Ok(list) => list
            .into_iter()
            .map(|d| DeviceOption {
                kind: match d.kind {
                    conclave_media::DeviceKind::Microphone => "microphone",
                    conclave_media::DeviceKind::Speaker => "speaker",
                    conclave_media::DeviceKind::Camera => "camera",
                }
                .into(),
                id: d.id,
                name: d.name,
                is_default: d.is_default,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "no audio devices");
            Vec::new()
        }
    };
    match tauri::async_runtime::spawn_blocking(conclave_media::system_camera::list_cameras).await {
        Ok(Ok(cameras)) => out.extend(cameras.into_iter().map(|d| DeviceOption {
            kind: "camera".into(),
            id: d.id,
            name: d.name,
            is_default: d.is_default,
        })),
        Ok(Err(e)) => tracing::warn!(error = %e, "no cameras"),
        Err(e) => tracing::warn!(error = %e, "no cameras"),
    }
    // Test patterns, for trying a meeting without showing oneself.
    for (id, name) in [
        ("synthetic", "Test pattern"),
        ("synthetic:640x360@15", "Test pattern (640×360)"),
    ] {
        out.push(DeviceOption {
            kind: "camera".into(),
            id: id.into(),
            name: name.into(),
            is_default: false,
        });
    }
    Ok(out)
}

/// Uses another microphone (`None`: the OS default) in the meeting now, and
/// next time.
#[tauri::command]
pub async fn switch_microphone(
    state: State<'_, AppState>,
    device: Option<String>,
) -> Result<(), String> {
    let command = Command::SwitchMicrophone {
        device: device.clone(),
    };
    switch_device(&state, device, |s, d| s.microphone = d, command).await
}

/// Uses another speaker (`None`: the OS default) in the meeting now, and
/// next time.
#[tauri::command]
pub async fn switch_speaker(
    state: State<'_, AppState>,
    device: Option<String>,
) -> Result<(), String> {
    let command = Command::SwitchSpeaker {
        device: device.clone(),
    };
    switch_device(&state, device, |s, d| s.speaker = d, command).await
}

/// Uses another camera (`default`, a device id, a test pattern, or empty
/// for none) in the meeting now, and next time. In a meeting, "none" turns
/// the camera off.
#[tauri::command]
pub async fn switch_camera(state: State<'_, AppState>, device: String) -> Result<(), String> {
    let mut stored = settings::load();
    stored.camera = device.clone();
    settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
    if state.session.lock().await.is_none() {
        return Ok(());
    }
    // The environment's choice applies to joining only.
    let chosen = match device.as_str() {
        "" | "none" => None,
        _ => parse_camera(&device),
    };
    match chosen {
        None => send_command(&state, Command::SetCameraOn { on: false }).await,
        Some(camera) => {
            send_command(&state, Command::SwitchCamera { camera }).await?;
            send_command(&state, Command::SetCameraOn { on: true }).await
        }
    }
}

/// Remembers a device choice and, in a meeting, applies it at once.
async fn switch_device(
    state: &AppState,
    device: Option<String>,
    remember: impl FnOnce(&mut Settings, String),
    command: Command,
) -> Result<(), String> {
    let mut stored = settings::load();
    remember(&mut stored, device.unwrap_or_else(|| "default".into()));
    settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
    if state.session.lock().await.is_some() {
        send_command(state, command).await?;
    }
    Ok(())
}

/// The event carrying the previewed microphone's level (-dBov, 127 silence).
pub const PREVIEW_LEVEL_EVENT: &str = "preview-level";

/// Starts a device preview before joining: the microphone's level as
/// `preview-level` events (ten a second) and the chosen camera's picture on
/// the video server's self tile. Resolves to why the camera could not be
/// opened, if it could not. Replaces a running preview; ends with
/// `stop_preview` or when a meeting starts. Nothing of it leaves the machine.
#[tauri::command]
pub async fn start_preview(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<Option<String>, String> {
    stop_preview_now(&state);
    let stored = settings::load();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Ok(mut p) = state.preview_stop.lock() {
        *p = Some(stop.clone());
    }
    let sink = state.frames().await.map(FrameServer::sink);
    let microphone = device_setting(&stored.microphone).filter(|_| stored.microphone_allowed);
    let epoch = std::time::Instant::now();
    // The preview is small: the test pattern at 640x360, a camera as it is.
    let choice = camera_setting(&stored)
        .filter(|_| stored.camera_allowed)
        .map(|c| match c {
            CameraChoice::Synthetic { .. } => CameraChoice::Synthetic {
                width: 640,
                height: 360,
                fps: 15,
            },
            device => device,
        });
    let opened = match choice {
        None => None,
        Some(c) => Some(
            tauri::async_runtime::spawn_blocking(move || conclave_engine::open_camera(&c, epoch))
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let (camera, camera_error) = match opened {
        None => (None, None),
        Some(Ok(c)) => (Some(c), None),
        Some(Err(conclave_media::DeviceError::Gone(_))) => (
            None,
            Some("No camera found. Connect one, or pick the test pattern.".into()),
        ),
        Some(Err(e)) => (None, Some(format!("Could not open the camera: {e}"))),
    };
    let camera = camera.zip(sink);
    // The effects as the settings have them; changes arrive while it runs.
    let effects = state.preview_effects.clone();
    if let Ok(mut e) = effects.lock() {
        e.version += 1;
        e.effects = crate::backgrounds::effects_for_join(&stored);
    }
    std::thread::Builder::new()
        .name("device-preview".into())
        .spawn(move || preview(app, stop, microphone, camera, effects, epoch))
        .map_err(|e| format!("Could not start the preview: {e}"))?;
    Ok(camera_error)
}

fn preview(
    app: AppHandle,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    microphone: Option<Option<String>>,
    mut camera: Option<(
        Box<dyn conclave_media::Camera>,
        conclave_engine::video::FrameSink,
    )>,
    effects: crate::backgrounds::PreviewControl,
    epoch: std::time::Instant,
) {
    use conclave_media::Microphone;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let mut mic = microphone.and_then(|wanted| {
        conclave_media::system_audio::SystemMicrophone::open(wanted.as_deref(), epoch)
            .map_err(|e| {
                let _ = app.emit(PREVIEW_LEVEL_EVENT, 127u8);
                tracing::warn!(error = %e, "no microphone for the preview");
            })
            .ok()
    });
    let mut loudest = 127u8;
    let mut next_level = Instant::now() + Duration::from_millis(100);
    let mut next_cost = Instant::now() + Duration::from_secs(1);
    let mut camera_effects = conclave_engine::video::CameraEffects::default();
    let mut effects_version = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Ok(e) = effects.lock() {
            if e.version != effects_version {
                effects_version = e.version;
                if let Err(error) = camera_effects.set(&e.effects) {
                    tracing::warn!(%error, "preview effects");
                }
            }
        }
        if let Some(m) = &mut mic {
            while let Ok(Some(block)) = m.poll_block(now) {
                loudest = loudest.min(block.level_dbov());
            }
        }
        if let Some((cam, sink)) = &mut camera {
            match cam.poll_frame(now) {
                Ok(Some(mut frame)) => {
                    // The camera's own rate is unknown here: 30 frames/s.
                    if let Err(error) =
                        camera_effects.apply(&mut frame, Duration::from_secs(1) / 30)
                    {
                        tracing::warn!(%error, "preview effects");
                    }
                    (sink.0)(conclave_engine::frames::SELF_TILE, &frame);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the previewed camera stopped");
                    camera = None;
                }
            }
        }
        if now >= next_cost {
            next_cost = now + Duration::from_secs(1);
            let _ = app.emit(
                crate::backgrounds::PREVIEW_EFFECTS_EVENT,
                camera_effects.cost(),
            );
        }
        if now >= next_level {
            next_level = now + Duration::from_millis(100);
            if mic.is_some() {
                let _ = app.emit(PREVIEW_LEVEL_EVENT, loudest);
            }
            loudest = 127;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stop_preview_now(state: &AppState) {
    if let Ok(mut p) = state.preview_stop.lock() {
        if let Some(stop) = p.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Stops the device preview.
#[tauri::command]
pub fn stop_preview(state: State<'_, AppState>) {
    stop_preview_now(&state);
}

/// Plays a short chime on the chosen speaker (`None`: the OS default).
#[tauri::command]
pub async fn test_speaker(device: Option<String>) -> Result<(), String> {
    tauri::async_runtime::spawn_blocking(move || {
        use conclave_media::{AudioFrame, Speaker};
        let mut speaker = conclave_media::system_audio::SystemSpeaker::open(device.as_deref())
            .map_err(|e| format!("Could not open the speaker: {e}"))?;
        // Two notes, 300 ms each, fading out.
        for (freq, blocks) in [(660.0f64, 30usize), (880.0, 30)] {
            for b in 0..blocks {
                let mut block = AudioFrame::silence(std::time::Duration::ZERO);
                for (i, s) in block.samples.iter_mut().enumerate() {
                    let t = (b * conclave_media::AUDIO_BLOCK + i) as f64 / 48_000.0;
                    let fade = 1.0 - b as f64 / blocks as f64;
                    *s = ((t * freq * std::f64::consts::TAU).sin() * 9000.0 * fade) as i16;
                }
                speaker
                    .play(&block)
                    .map_err(|e| format!("The speaker failed: {e}"))?;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Mutes or unmutes the microphone.
#[tauri::command]
pub async fn set_muted(state: State<'_, AppState>, muted: bool) -> Result<(), String> {
    send_command(&state, Command::SetMuted { muted }).await
}

/// Turns the camera on or off.
#[tauri::command]
pub async fn set_camera_on(state: State<'_, AppState>, on: bool) -> Result<(), String> {
    send_command(&state, Command::SetCameraOn { on }).await
}

pub(crate) async fn send_command(state: &AppState, cmd: Command) -> Result<(), String> {
    match state.session.lock().await.as_ref() {
        Some(s) if s.meeting.command(cmd) => Ok(()),
        _ => Err("Not in a meeting".into()),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A screen or window the user can share, with a small picture of it.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct ShareSource {
    /// `screen:N` or `window:0x…`.
    id: String,
    /// Monitor name or window title.
    name: String,
    /// `screen` or `window`.
    kind: String,
    /// A PNG data URL of the current picture (at most 320x180), if it could
    /// be captured. It stays in this app.
    thumbnail: Option<String>,
}

/// Encodes a frame as a PNG data URL.
fn png_data_url(frame: &conclave_media::VideoFrame) -> Option<String> {
    use base64::Engine as _;
    let mut rgba = frame.to_bgra();
    for px in rgba.chunks_exact_mut(4) {
        px.swap(0, 2);
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, frame.width as u32, frame.height as u32);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().ok()?;
        writer.write_image_data(&rgba).ok()?;
    }
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// The screens and windows that can be shared, with thumbnails.
#[tauri::command]
pub async fn list_share_sources() -> Result<Vec<ShareSource>, String> {
    tauri::async_runtime::spawn_blocking(|| {
        let sources = conclave_screen::list_sources(None).map_err(|e| e.to_string())?;
        Ok(sources
            .into_iter()
            .map(|s| ShareSource {
                thumbnail: conclave_screen::thumbnail(None, &s.id, 320, 180)
                    .ok()
                    .and_then(|f| png_data_url(&f)),
                kind: match s.kind {
                    conclave_screen::SourceKind::Screen => "screen",
                    conclave_screen::SourceKind::Window => "window",
                }
                .into(),
                id: s.id,
                name: s.name,
            })
            .collect())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The label of the small always-on-top bar shown while sharing.
pub const SHARE_BAR: &str = "share-bar";

/// In the data directory: the desktop's token for the screen last chosen in
/// its screen-cast dialog (Wayland), so that the next share does not ask
/// again. An opaque local handle; "Delete all local data" removes it.
pub const SCREEN_CAST_TOKEN_FILE: &str = "screen-cast-token";

fn screen_cast_token() -> Option<String> {
    std::fs::read_to_string(crate::settings::data_dir().join(SCREEN_CAST_TOKEN_FILE))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
}

/// Keeps the desktop's latest screen-cast token.
fn remember_screen_cast_token(token: &str) {
    let dir = crate::settings::data_dir();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(SCREEN_CAST_TOKEN_FILE), token));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not keep the screen-cast token");
    }
}

/// Starts sharing a screen or window (with the computer's sound if
/// `audio`), and shows the always-on-top bar with which the share can be
/// stopped from anywhere.
#[tauri::command]
pub async fn start_share(
    app: AppHandle,
    state: State<'_, AppState>,
    source: String,
    audio: bool,
) -> Result<(), String> {
    // The portal's source repeats the last choice when the desktop gave a
    // token for it.
    let source = match screen_cast_token() {
        Some(token) if source == "portal" => format!("portal:{token}"),
        _ => source,
    };
    send_command(
        &state,
        Command::StartShare {
            source: CameraChoice::Screen {
                display: None,
                source: Some(source),
            },
            audio,
        },
    )
    .await?;
    if app.get_webview_window(SHARE_BAR).is_none() {
        let bar = tauri::WebviewWindowBuilder::new(
            &app,
            SHARE_BAR,
            tauri::WebviewUrl::App("index.html?view=share-bar".into()),
        )
        .title("Conclave — sharing")
        .inner_size(380.0, 56.0)
        .resizable(false)
        .decorations(false)
        .always_on_top(true)
        .skip_taskbar(true)
        .build();
        if let Err(e) = bar {
            tracing::warn!(error = %e, "no sharing bar");
        }
    }
    Ok(())
}

/// Stops sharing (from the meeting window or the sharing bar).
#[tauri::command]
pub async fn stop_share(app: AppHandle, state: State<'_, AppState>) -> Result<(), String> {
    if let Some(bar) = app.get_webview_window(SHARE_BAR) {
        let _ = bar.close();
    }
    if state.session.lock().await.is_some() {
        send_command(&state, Command::StopShare).await?;
    }
    Ok(())
}

/// A picture of what a tile shows now (a shared screen: `tile` is its id
/// as the video server numbers it), as a PNG data URL for the annotation
/// editor. It stays on this device.
#[tauri::command]
pub async fn screenshot_tile(state: State<'_, AppState>, tile: String) -> Result<String, String> {
    let tile: u64 = tile
        .parse()
        .map_err(|_| format!("No such picture: {tile}"))?;
    let frames = state
        .frames()
        .await
        .ok_or("The video server is not running.")?;
    let frame = frames
        .latest(tile)
        .ok_or("There is no picture to take yet.")?;
    tauri::async_runtime::spawn_blocking(move || png_data_url(&frame))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "Could not make the picture.".into())
}

/// Saves an annotated screenshot (a PNG data URL from the editor) into the
/// folder the user chose (asked once, then remembered; `choose` asks
/// again). Returns the file written, or `None` if the user cancelled. The
/// picture is written to this folder only: nothing is uploaded.
#[tauri::command]
pub async fn save_screenshot(
    app: AppHandle,
    png: String,
    choose: bool,
) -> Result<Option<String>, String> {
    use base64::Engine as _;
    let data = png
        .strip_prefix("data:image/png;base64,")
        .ok_or("Not a PNG picture.")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "Not a PNG picture.")?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("Not a PNG picture.".into());
    }
    let mut stored = settings::load();
    let known = std::path::PathBuf::from(&stored.screenshot_folder);
    let folder = if !choose && !stored.screenshot_folder.is_empty() && known.is_dir() {
        known
    } else {
        let dialog = app.dialog().file().set_title("Folder for screenshots");
        let picked = tauri::async_runtime::spawn_blocking(move || dialog.blocking_pick_folder())
            .await
            .map_err(|e| e.to_string())?;
        let Some(folder) = picked.and_then(|p| p.into_path().ok()) else {
            return Ok(None);
        };
        stored.screenshot_folder = folder.display().to_string();
        settings::save(&stored).map_err(|e| format!("Could not save settings: {e}"))?;
        folder
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let path = (0..100)
        .map(|n| {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            folder.join(format!("conclave-screenshot-{stamp}{suffix}.png"))
        })
        .find(|p| !p.exists())
        .ok_or("Too many screenshots at once.")?;
    std::fs::write(&path, bytes).map_err(|e| format!("Could not write {}: {e}", path.display()))?;
    tracing::info!("screenshot saved");
    Ok(Some(path.display().to_string()))
}

/// A meeting found on the clipboard, as the join screen offers it. The
/// clipboard's text itself is not passed on, kept or logged.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct ClipboardOffer {
    /// The meeting ID, grouped for reading ("123 456 789").
    room: String,
    /// Whether the found text carries a password.
    has_password: bool,
}

/// A hash naming a meeting (ID and server): all that is kept of a
/// clipboard offer.
fn meeting_hash(info: &MeetingInfo) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(
        format!("{}|{}", info.room.0, info.server.as_deref().unwrap_or("")).as_bytes(),
    );
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The meeting on the clipboard, if there is one.
fn clipboard_meeting(app: &AppHandle) -> Option<(MeetingInfo, String)> {
    let text = app.clipboard().read_text().ok()?;
    let info = MeetingInfo::parse(&text).ok()?;
    Some((info, text))
}

/// Looks at the clipboard (when the window gains focus): a meeting other
/// than the one last offered is offered to the user, who decides. Never
/// joins by itself; keeps only a hash of the offered meeting.
#[tauri::command]
pub async fn check_clipboard(app: AppHandle) -> Option<ClipboardOffer> {
    let mut stored = settings::load();
    if !stored.clipboard_detection {
        return None;
    }
    let (info, _) = clipboard_meeting(&app)?;
    let hash = meeting_hash(&info);
    if hash == stored.clipboard_offered {
        return None;
    }
    stored.clipboard_offered = hash;
    if let Err(e) = settings::save(&stored) {
        tracing::warn!(error = %e, "could not remember the clipboard offer");
    }
    let digits = info.room.0.to_string();
    let room = digits
        .as_bytes()
        .chunks(3)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Some(ClipboardOffer {
        room,
        has_password: info.password.is_some(),
    })
}

/// The text to fill the join screen with, once the user accepted the
/// offer: what the clipboard holds, if it still names the offered meeting.
#[tauri::command]
pub async fn accept_clipboard_offer(app: AppHandle) -> Option<String> {
    let stored = settings::load();
    let (info, text) = clipboard_meeting(&app)?;
    (meeting_hash(&info) == stored.clipboard_offered).then(|| text.trim().to_string())
}

/// Opens the history store if it is not open yet, purging old entries.
fn open_history(store: &std::sync::Mutex<Option<crate::history::History>>) {
    let Ok(mut slot) = store.lock() else { return };
    if slot.is_some() {
        return;
    }
    let path = settings::data_dir().join("history.sqlite3");
    match crate::history::History::open(&path) {
        Ok(h) => {
            let days = settings::load().history_days;
            match h.purge_older_than(days, crate::history::now()) {
                Ok(n) if n > 0 => tracing::info!(purged = n, "old history deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not purge the history"),
            }
            *slot = Some(h);
        }
        Err(e) => tracing::warn!(error = %e, "no history store"),
    }
}

/// Writes one meeting's events into the history: the meeting when joined,
/// who arrived and left, when it ended. Never chat.
struct HistoryRecorder {
    store: Option<std::sync::Arc<std::sync::Mutex<Option<crate::history::History>>>>,
    hosted: bool,
    meeting: Option<i64>,
}

impl HistoryRecorder {
    fn on(&mut self, event: &EngineEvent) {
        // Most events (statistics, talking, media) say nothing about who
        // was in the meeting.
        if !matches!(
            event,
            EngineEvent::Joined { .. }
                | EngineEvent::ParticipantJoined { .. }
                | EngineEvent::ParticipantLeft { .. }
                | EngineEvent::Left
                | EngineEvent::Disconnected { .. }
        ) {
            return;
        }
        let Some(store) = &self.store else { return };
        open_history(store);
        let Ok(guard) = store.lock() else { return };
        let Some(h) = guard.as_ref() else { return };
        let now = crate::history::now();
        let result = match (event, self.meeting) {
            (
                EngineEvent::Joined {
                    room, participants, ..
                },
                None,
            ) => h.start(room, self.hosted, now).and_then(|id| {
                self.meeting = Some(id);
                participants
                    .iter()
                    .try_for_each(|p| h.arrived(id, &p.nickname, now))
            }),
            (EngineEvent::ParticipantJoined { participant }, Some(id)) => {
                h.arrived(id, &participant.nickname, now)
            }
            (EngineEvent::ParticipantLeft { participant }, Some(id)) => {
                h.departed(id, &participant.nickname, now)
            }
            (EngineEvent::Left | EngineEvent::Disconnected { .. }, Some(id)) => {
                self.meeting = None;
                h.end(id, now)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not write the history");
        }
    }
}

/// The meetings in the local history, newest first, matching `search` (a
/// meeting ID or a name; empty: all).
#[tauri::command]
pub async fn list_history(
    state: State<'_, AppState>,
    search: String,
) -> Result<Vec<crate::history::HistoryEntry>, String> {
    open_history(&state.history);
    let guard = state.history.lock().map_err(|e| e.to_string())?;
    match guard.as_ref() {
        Some(h) => h
            .list(&search)
            .map_err(|e| format!("Could not read the history: {e}")),
        None => Ok(Vec::new()),
    }
}

/// Deletes one meeting from the history.
#[tauri::command]
pub async fn delete_history(state: State<'_, AppState>, id: i64) -> Result<(), String> {
    open_history(&state.history);
    let guard = state.history.lock().map_err(|e| e.to_string())?;
    if let Some(h) = guard.as_ref() {
        h.delete(id)
            .map_err(|e| format!("Could not delete from the history: {e}"))?;
    }
    Ok(())
}

/// Deletes the whole history.
#[tauri::command]
pub async fn clear_history(state: State<'_, AppState>) -> Result<(), String> {
    open_history(&state.history);
    let guard = state.history.lock().map_err(|e| e.to_string())?;
    if let Some(h) = guard.as_ref() {
        h.clear()
            .map_err(|e| format!("Could not delete the history: {e}"))?;
    }
    Ok(())
}
