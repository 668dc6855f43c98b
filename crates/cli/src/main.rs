//! `conclave-cli`: join a meeting from a terminal or a script, create rooms,
//! and parse meeting links. Uses the same engine as the desktop app.

use std::collections::VecDeque;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use conclave_engine::admin::{self, RoomSpec};
use conclave_engine::{
    CameraChoice, Command, EngineEvent, JoinOptions, MediaOptions, MicrophoneChoice, Participant,
    ProcessingSettings, RecordingState, SpeakerChoice,
};
use conclave_protocol::link::{MeetingId, Password};
use conclave_protocol::videoroom::RoomDescription;
use conclave_protocol::MeetingInfo;
use rand::Rng;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

/// Server used when neither the link nor `--server` names one.
const DEFAULT_SERVER: &str = "ws://127.0.0.1:8188";

#[derive(Parser)]
#[command(
    name = "conclave-cli",
    version,
    about = "Conclave meetings from the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Join a meeting, optionally chat, then leave.
    Join(Box<JoinArgs>),
    /// Create a meeting (VideoRoom + TextRoom with the same ID) on a server.
    CreateRoom(CreateArgs),
    /// List cameras, microphones and speakers.
    Devices {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List the screens and windows that can be shared.
    Screens {
        /// The X display (default: `$DISPLAY`).
        #[arg(long)]
        display: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Finalise recordings a crash or power loss cut off (each file in
    /// place; with a folder, every unfinished recording in it).
    Repair {
        /// Recording files or folders.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
    },
    /// Print the meeting info in a link, ID or invitation text as JSON.
    ParseLink {
        /// A link, a meeting ID, or invitation text.
        text: String,
    },
}

#[derive(clap::Args)]
struct JoinArgs {
    /// Meeting link (conclave://… or https://…/j/…) or meeting ID.
    link: String,
    /// Nickname shown to others.
    #[arg(long)]
    name: String,
    /// Signaling server URL (ws:// or wss://); overrides the link's.
    #[arg(long, env = "CONCLAVE_SERVER")]
    server: Option<String>,
    /// Meeting password, if the link does not carry it.
    #[arg(long, env = "CONCLAVE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Send a chat message to everyone once joined (repeatable).
    #[arg(long = "say", value_name = "TEXT")]
    say: Vec<String>,
    /// Send a private message to the participant with this nickname (repeatable).
    #[arg(long = "say-to", value_name = "NICK=TEXT")]
    say_to: Vec<String>,
    /// Wait until this many other participants are present before chatting.
    #[arg(long, default_value_t = 0)]
    wait_for: usize,
    /// Stay this many seconds after joining, then leave (default: until Ctrl-C
    /// or end of standard input with --stdin).
    #[arg(long)]
    stay: Option<f64>,
    /// Send each line of standard input as a chat message; leave at its end.
    #[arg(long)]
    stdin: bool,
    /// Print one JSON object per line for every event.
    #[arg(long)]
    json: bool,
    /// Also print every TextRoom frame exactly as the server relays it
    /// (shows that end-to-end encrypted chat reaches the server as ciphertext).
    #[arg(long)]
    raw: bool,
    /// Send video: `synthetic` (the machine-readable test pattern, 640x360
    /// at 30 frames/s), `synthetic:WIDTHxHEIGHT@FPS`, `default` (the OS's
    /// first camera) or a camera by name or id (see `conclave-cli devices`).
    #[arg(long, value_name = "CAMERA")]
    camera: Option<String>,
    /// The codec our video is sent in: `vp8` (every peer has it) or `h264`.
    #[arg(long, value_name = "CODEC", default_value = "vp8")]
    video_codec: String,
    /// Send audio: `tone` (440 Hz), `tone:HZ`, a WAV file (looped), a
    /// microphone by name or id (see `conclave-cli devices`), or `default`.
    #[arg(long, value_name = "MIC")]
    mic: Option<String>,
    /// Play received audio on this speaker (name or id, or `default`);
    /// `null` (the default) decodes and mixes but plays nothing.
    #[arg(long, value_name = "SPEAKER", default_value = "null")]
    speaker: String,
    /// Echo cancellation, noise suppression and gain control: `auto` (on
    /// for microphones, off for tones and files), `on` or `off`.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    processing: String,
    /// Write each remote participant's decoded audio (ID-audio.wav) and the
    /// decoded test-pattern frame counters and times (ID-video.csv) here.
    #[arg(long, value_name = "DIR")]
    save_received: Option<std::path::PathBuf>,
    /// Share a screen of the X display DISPLAY (default: `$DISPLAY`), as a
    /// second video stream next to the camera.
    #[arg(long, value_name = "DISPLAY", num_args = 0..=1, default_missing_value = "")]
    share_screen: Option<String>,
    /// What to share: `screen:N` or `window:0x…` (see `conclave-cli
    /// screens`); default the first screen.
    #[arg(long, value_name = "SOURCE", requires = "share_screen")]
    share_source: Option<String>,
    /// Share the computer's sound with the screen: what the default speaker
    /// plays, less this meeting's own playback.
    #[arg(long, requires = "share_screen")]
    share_audio: bool,
    /// A virtual background for the camera: `blur`, `blur-light` or a PNG
    /// picture. Needs the segmentation model (`--segmentation-model`).
    #[arg(long, value_name = "BACKGROUND", requires = "camera")]
    background: Option<String>,
    /// The segmentation model: `selfie_segmentation_landscape.tflite` of
    /// the npm package `@mediapipe/selfie_segmentation`.
    #[arg(long, value_name = "FILE", env = "CONCLAVE_SEGMENTATION_MODEL")]
    segmentation_model: Option<std::path::PathBuf>,
    /// Face touch-up on the camera: skin smoothing and light correction,
    /// on this device.
    #[arg(long, requires = "camera")]
    touch_up: bool,
    /// Record the meeting into a new WebM file in DIR (the gallery in VP8,
    /// everyone's sound in Opus), written crash-safely; finalised on leaving.
    #[arg(long, value_name = "DIR")]
    record: Option<std::path::PathBuf>,
    /// A relay or STUN server to use: `turn:HOST[:PORT]`,
    /// `turn:HOST[:PORT]?transport=tcp`, `turns:HOST[:PORT]` (TLS) or
    /// `stun:HOST[:PORT]`. Repeatable; none is used unless named here.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// The user name for the relay given by the same position of
    /// --ice-server (the last one given serves the relays after it).
    #[arg(long = "ice-username", value_name = "USER")]
    ice_usernames: Vec<String>,
    /// The password for the relay at the same position, as --ice-username.
    #[arg(
        long = "ice-password",
        value_name = "PASSWORD",
        env = "CONCLAVE_ICE_PASSWORD",
        hide_env_values = true
    )]
    ice_passwords: Vec<String>,
    /// The SHA-256 fingerprint of a `turns:` relay's certificate, for a
    /// relay without one from a public authority.
    #[arg(long, value_name = "SHA256")]
    ice_fingerprint: Option<String>,
    /// Offer only relayed paths: neither the server nor anyone else learns
    /// this computer's addresses (needs a relay).
    #[arg(long)]
    relay_only: bool,
}

/// The relays and STUN servers of `conclave-cli join`'s flags; `link_relay`
/// says whether the meeting link carries one (then `--relay-only` has one).
fn network_options(
    args: &JoinArgs,
    link_relay: bool,
) -> anyhow::Result<conclave_engine::NetworkOptions> {
    fn pick(list: &[String], i: usize) -> Option<&str> {
        list.get(i).or(list.last()).map(String::as_str)
    }
    let mut ice_servers = Vec::new();
    for (i, url) in args.ice_servers.iter().enumerate() {
        let server = conclave_engine::IceServer::parse(
            url,
            pick(&args.ice_usernames, i),
            pick(&args.ice_passwords, i),
        )?;
        ice_servers.push(server);
    }
    if args.relay_only
        && !link_relay
        && !ice_servers
            .iter()
            .any(|s| matches!(s, conclave_engine::IceServer::Turn { .. }))
    {
        bail!(
            "--relay-only needs a relay: add --ice-server turn:… with its user name and password, or use a link that carries one"
        );
    }
    let relay_fingerprint =
        sha256_fingerprint("--ice-fingerprint", args.ice_fingerprint.as_deref())?;
    Ok(conclave_engine::NetworkOptions {
        ice_servers,
        relay_only: args.relay_only,
        relay_fingerprint,
    })
}

/// A certificate fingerprint given to `flag` (`AB:CD:…` or plain hex),
/// as lowercase hex; an error unless it is SHA-256's 64 digits.
fn sha256_fingerprint(flag: &str, given: Option<&str>) -> anyhow::Result<Option<String>> {
    let fingerprint = given
        .map(|f| f.replace(':', "").to_ascii_lowercase())
        .filter(|f| !f.is_empty());
    if let Some(f) = &fingerprint {
        anyhow::ensure!(
            f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()),
            "{flag} must be a SHA-256 fingerprint: 64 hex digits"
        );
    }
    Ok(fingerprint)
}

/// Repairs the unfinished recordings among `paths` (files, or folders to
/// look through).
fn repair(paths: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    use conclave_record::files;
    let mut failed = false;
    for path in paths {
        let files = if path.is_dir() {
            files::find_unfinished(path)
        } else {
            vec![path.clone()]
        };
        for file in files {
            match files::repair_file(&file) {
                Ok(r) => println!(
                    "{}: finalised, {:.1} s in {} clusters ({} bytes of a cut-off cluster dropped)",
                    file.display(),
                    r.duration_ms as f64 / 1000.0,
                    r.clusters,
                    r.dropped_bytes
                ),
                Err(e) => {
                    eprintln!("conclave-cli: {}: {e}", file.display());
                    failed = true;
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

type Recorder = std::sync::Arc<conclave_record::recorder::Recorder>;

/// The running recording, if any, shared with the engine's frame sink and
/// audio tap; finalised however the meeting ends.
#[derive(Default)]
struct Recording {
    slot: std::sync::Arc<std::sync::RwLock<Option<Recorder>>>,
}

impl Recording {
    fn current(&self) -> Option<Recorder> {
        self.slot.read().ok().and_then(|r| r.clone())
    }

    fn set(&self, recorder: Option<Recorder>) {
        if let Ok(mut slot) = self.slot.write() {
            *slot = recorder;
        }
    }

    /// Stops and finalises the recording, if one runs.
    fn stop(&self) {
        let taken = self.slot.write().ok().and_then(|mut r| r.take());
        if let Some(r) = taken {
            match r.stop() {
                Ok(path) => eprintln!("conclave-cli: recording saved to {}", path.display()),
                Err(e) => eprintln!(
                    "conclave-cli: the recording ended early ({e}); what was written is kept"
                ),
            }
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts recording into a new file in `dir`; `failed` hears if it has to
/// stop by itself.
fn start_recording(
    dir: &std::path::Path,
    room: MeetingId,
    json: bool,
    failed: tokio::sync::mpsc::UnboundedSender<()>,
) -> anyhow::Result<Recorder> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let path = dir.join(format!("conclave-{}-{at}.webm", room.0));
    let shown = path.display().to_string();
    let on_failure: conclave_record::recorder::OnFailure = Box::new(move |e| {
        if json {
            println!(
                "{}",
                json!({"event": "recording_failed", "path": shown, "message": e.to_string()})
            );
        }
        eprintln!("conclave-cli: recording stopped: {e}; what was recorded is kept in {shown}");
        let _ = failed.send(());
    });
    let recorder = conclave_record::recorder::Recorder::start_with(
        &path,
        &format!("Meeting {room}"),
        Some(on_failure),
    )
    .with_context(|| format!("recording into {}", path.display()))?;
    if json {
        println!(
            "{}",
            json!({"event": "recording_started", "path": path.display().to_string()})
        );
    }
    Ok(std::sync::Arc::new(recorder))
}

/// The virtual background asked for, with its model and picture loaded.
fn parse_background(
    spec: Option<&str>,
    model: Option<&std::path::Path>,
) -> anyhow::Result<Option<conclave_engine::BackgroundOptions>> {
    use conclave_background::compose::BlurStrength;
    use conclave_engine::BackdropChoice;
    let Some(spec) = spec else { return Ok(None) };
    let model =
        model.context("--background needs the segmentation model (--segmentation-model FILE)")?;
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let backdrop = match spec {
        "blur" => BackdropChoice::Blur(BlurStrength::Strong),
        "blur-light" => BackdropChoice::Blur(BlurStrength::Light),
        path => {
            let file = std::fs::read(path).with_context(|| format!("reading {path}"))?;
            let picture = conclave_background::image::decode(&file)
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            BackdropChoice::Picture(std::sync::Arc::new(picture))
        }
    };
    Ok(Some(conclave_engine::BackgroundOptions {
        model: std::sync::Arc::new(bytes),
        backdrop,
    }))
}

fn parse_camera(spec: &str) -> anyhow::Result<CameraChoice> {
    CameraChoice::parse(spec).map_err(|e| anyhow::anyhow!("camera {spec:?}: {e}"))
}

fn parse_mic(spec: &str) -> anyhow::Result<MicrophoneChoice> {
    if spec == "tone" {
        return Ok(MicrophoneChoice::Tone(440.0));
    }
    if let Some(hz) = spec.strip_prefix("tone:") {
        let hz: f64 = hz.parse().context("tone frequency")?;
        if !(20.0..=20_000.0).contains(&hz) {
            bail!("tone frequency out of range: {hz}");
        }
        return Ok(MicrophoneChoice::Tone(hz));
    }
    if spec == "default" {
        return Ok(MicrophoneChoice::Device(None));
    }
    let path = std::path::PathBuf::from(spec);
    if path.is_file() {
        return Ok(MicrophoneChoice::Wav(path));
    }
    if spec.ends_with(".wav") || spec.contains('/') {
        bail!("no such WAV file: {spec}");
    }
    Ok(MicrophoneChoice::Device(Some(spec.to_string())))
}

fn parse_speaker(spec: &str) -> SpeakerChoice {
    match spec {
        "null" | "none" => SpeakerChoice::Null,
        "default" => SpeakerChoice::Device(None),
        name => SpeakerChoice::Device(Some(name.to_string())),
    }
}

fn parse_processing(spec: &str) -> anyhow::Result<Option<ProcessingSettings>> {
    match spec {
        "auto" => Ok(None),
        "on" => Ok(Some(ProcessingSettings::default())),
        "off" => Ok(Some(ProcessingSettings::off())),
        other => bail!("--processing takes auto, on or off, not {other:?}"),
    }
}

fn list_screens(display: Option<&str>, json_output: bool) -> anyhow::Result<ExitCode> {
    let sources = conclave_screen::list_sources(display)
        .map_err(|e| anyhow::anyhow!("could not list screens: {e}"))?;
    for s in &sources {
        let kind = match s.kind {
            conclave_screen::SourceKind::Screen => "screen",
            conclave_screen::SourceKind::Window => "window",
        };
        if json_output {
            println!(
                "{}",
                json!({"id": s.id, "kind": kind, "name": s.name, "width": s.width, "height": s.height})
            );
        } else {
            println!(
                "  {:<8} {} ({}x{})  [{}]",
                kind, s.name, s.width, s.height, s.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_devices(json_output: bool) -> anyhow::Result<ExitCode> {
    let mut devices = conclave_media::system_audio::list_audio_devices()
        .map_err(|e| anyhow::anyhow!("could not list audio devices: {e}"))?;
    match conclave_media::system_camera::list_cameras() {
        Ok(cameras) => devices.extend(cameras),
        Err(e) => eprintln!("could not list cameras: {e}"),
    }
    let backend = conclave_media::system_audio::backend_name();
    if json_output {
        for d in &devices {
            println!(
                "{}",
                json!({"kind": format!("{:?}", d.kind).to_lowercase(), "id": d.id,
                       "name": d.name, "default": d.is_default, "backend": backend})
            );
        }
    } else {
        println!("Devices (audio through {backend}):");
        for d in &devices {
            println!(
                "  {:<10} {}{}  [{}]",
                format!("{:?}", d.kind).to_lowercase(),
                d.name,
                if d.is_default { " (default)" } else { "" },
                d.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Signaling server URL (ws:// or wss://).
    #[arg(long, env = "CONCLAVE_SERVER")]
    server: String,
    /// Meeting ID; random when absent.
    #[arg(long)]
    room: Option<String>,
    /// Meeting password (the server only receives a derived PIN).
    #[arg(long, alias = "pin")]
    password: Option<String>,
    /// Admin secret for the room.
    #[arg(long)]
    secret: Option<String>,
    /// Meeting topic.
    #[arg(long)]
    topic: Option<String>,
    /// Ask everyone not to record the meeting on their devices (Conclave
    /// clients honour it and say why).
    #[arg(long)]
    no_recording: bool,
    /// Let several participants share their screens at once (else one at a
    /// time).
    #[arg(long)]
    several_presenters: bool,
    /// SHA-256 fingerprint (64 hex digits) of a self-signed wss:// server
    /// certificate, as conclave-server prints it. It is pinned, and put in the
    /// link (`fp=`) so that everyone joining pins it too.
    #[arg(long, value_name = "SHA256")]
    fingerprint: Option<String>,
    /// Print the result as JSON on the last line.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,pulseaudio=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Cmd::ParseLink { text } => parse_link(&text),
        Cmd::Repair { paths } => repair(&paths),
        Cmd::Devices { json } => list_devices(json),
        Cmd::Screens { display, json } => list_screens(display.as_deref(), json),
        Cmd::CreateRoom(args) => block_on(create_room(args)),
        Cmd::Join(args) => block_on(join(*args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conclave-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    fut: F,
) -> anyhow::Result<ExitCode> {
    conclave_engine::runtime::block_on(fut).context("could not start the async runtime")?
}

fn parse_link(text: &str) -> anyhow::Result<ExitCode> {
    let info = MeetingInfo::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string(&info)?);
    Ok(ExitCode::SUCCESS)
}

async fn create_room(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let server = conclave_protocol::link::normalise_server(&args.server)
        .filter(|s| s.starts_with("ws"))
        .context("--server must be a ws:// or wss:// URL")?;
    let room = match &args.room {
        Some(r) => MeetingId::parse_bare(r)
            .or_else(|_| {
                r.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(MeetingId)
                    .ok_or(())
            })
            .map_err(|_| anyhow::anyhow!("--room must be a meeting ID"))?,
        None => MeetingId(rand::thread_rng().gen_range(100_000_000..1_000_000_000)),
    };
    let spec = RoomSpec {
        room,
        password: args.password.clone(),
        secret: args.secret.clone(),
        description: RoomDescription {
            topic: args.topic.clone(),
            recording_allowed: !args.no_recording,
            several_presenters: args.several_presenters,
        }
        .to_description(),
    };
    let fingerprint = sha256_fingerprint("--fingerprint", args.fingerprint.as_deref())?;
    let info = admin::host_meeting(&server, fingerprint.as_deref(), &spec).await?;
    let link = info.to_app_link();
    if args.json {
        println!(
            "{}",
            json!({"room": room.0.to_string(), "pin": info.password.as_ref().map(|p| &p.0), "link": link})
        );
    } else {
        println!("Created meeting {room}\n{link}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints events as JSON lines or as readable text.
struct Printer {
    json: bool,
}

impl Printer {
    fn print(&self, event: &EngineEvent) {
        let line = if self.json {
            event_json(event).to_string()
        } else {
            event_text(event)
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn event_json(event: &EngineEvent) -> serde_json::Value {
    match event {
        EngineEvent::Joined {
            room,
            self_id,
            nickname,
            chat_encrypted,
            participants,
            topic,
            recording_allowed,
            several_presenters,
        } => json!({"event": "joined", "room": room, "id": self_id, "nickname": nickname,
            "encrypted": chat_encrypted, "topic": topic, "recording_allowed": recording_allowed,
            "several_presenters": several_presenters,
            "participants": participants.iter().map(|p| &p.nickname).collect::<Vec<_>>()}),
        EngineEvent::JoinFailed { message } => json!({"event": "error", "message": message}),
        EngineEvent::ParticipantJoined { participant } => {
            json!({"event": "participant_joined", "id": participant.id, "nickname": participant.nickname})
        }
        EngineEvent::ParticipantLeft { participant } => {
            json!({"event": "participant_left", "id": participant.id, "nickname": participant.nickname})
        }
        EngineEvent::Chat { message } => json!({"event": "chat", "from": message.from_name,
            "from_id": message.from, "to": message.to_name, "text": message.text,
            "encrypted": message.encrypted, "outgoing": false}),
        EngineEvent::Warning { message } => json!({"event": "warning", "message": message}),
        EngineEvent::ShareRestoreToken { token } => {
            json!({"event": "share_restore_token", "source": format!("portal:{token}")})
        }
        EngineEvent::Error { message } => json!({"event": "error", "message": message}),
        EngineEvent::Disconnected { message } => {
            json!({"event": "disconnected", "message": message})
        }
        EngineEvent::Left => json!({"event": "left"}),
        EngineEvent::ConnectionQuality {
            participant,
            quality,
        } => json!({"event": "connection_quality", "id": participant, "quality": quality}),
        EngineEvent::Reconnecting { active } => {
            json!({"event": "reconnecting", "active": active})
        }
        EngineEvent::Recording {
            participant,
            nickname,
            state,
        } => json!({"event": "recording", "id": participant, "nickname": nickname, "state": state}),
        EngineEvent::RawTextRoom { text } => json!({"event": "raw_textroom", "text": text}),
        EngineEvent::TrackAdded {
            participant,
            nickname,
            kind,
        } => json!({"event": "track_added", "id": participant, "nickname": nickname, "kind": kind}),
        EngineEvent::TrackRemoved {
            participant,
            nickname,
            kind,
        } => {
            json!({"event": "track_removed", "id": participant, "nickname": nickname, "kind": kind})
        }
        EngineEvent::Talking {
            participant,
            talking,
        } => json!({"event": "talking", "id": participant, "talking": talking}),
        EngineEvent::Stats { stats } => {
            let mut v = serde_json::to_value(stats).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("event".into(), "stats".into());
            }
            v
        }
    }
}

fn event_text(event: &EngineEvent) -> String {
    match event {
        EngineEvent::Joined {
            room,
            participants,
            chat_encrypted,
            ..
        } => format!(
            "Joined meeting {room} ({} present; chat {})",
            participants.len(),
            if *chat_encrypted {
                "end-to-end encrypted"
            } else {
                "encrypted in transit only"
            }
        ),
        EngineEvent::JoinFailed { message } => format!("Could not join: {message}"),
        EngineEvent::ParticipantJoined { participant } => {
            format!("+ {} joined", participant.nickname)
        }
        EngineEvent::ParticipantLeft { participant } => format!("- {} left", participant.nickname),
        EngineEvent::Chat { message } => match &message.to_name {
            Some(to) => format!("[{} → {}] {}", message.from_name, to, message.text),
            None => format!("[{}] {}", message.from_name, message.text),
        },
        EngineEvent::Warning { message } => format!("! {message}"),
        EngineEvent::ShareRestoreToken { token } => {
            format!("The desktop remembers this choice: --share-source portal:{token}")
        }
        EngineEvent::Error { message } => format!("error: {message}"),
        EngineEvent::Disconnected { message } => format!("Disconnected: {message}"),
        EngineEvent::Left => "Left the meeting".into(),
        EngineEvent::ConnectionQuality {
            participant,
            quality,
        } => format!(
            "~ {participant}'s connection is now {}",
            match quality {
                conclave_engine::ConnectionQuality::Good => "good",
                conclave_engine::ConnectionQuality::Poor => "poor",
                conclave_engine::ConnectionQuality::Bad => "bad",
            }
        ),
        EngineEvent::Reconnecting { active: true } => "Reconnecting…".into(),
        EngineEvent::Reconnecting { active: false } => "Reconnected".into(),
        EngineEvent::Recording {
            nickname, state, ..
        } => match state {
            RecordingState::Recording => format!("● {nickname} is recording this meeting"),
            RecordingState::Paused => format!("● {nickname} paused recording"),
            RecordingState::Stopped => format!("○ {nickname} stopped recording"),
        },
        EngineEvent::RawTextRoom { text } => format!("raw: {text}"),
        EngineEvent::TrackAdded { nickname, kind, .. } => {
            format!("~ receiving {kind} from {nickname}")
        }
        EngineEvent::TrackRemoved { nickname, kind, .. } => {
            format!("~ {nickname}'s {kind} ended")
        }
        EngineEvent::Talking {
            participant,
            talking,
        } => format!(
            "~ {participant} {}",
            if *talking { "talks" } else { "is quiet" }
        ),
        EngineEvent::Stats { stats } => format!(
            "~ mic {} dBov{}, {} remote(s)",
            stats.mic_level,
            if stats.muted { " (muted)" } else { "" },
            stats.remotes.len()
        ),
    }
}

async fn join(args: JoinArgs) -> anyhow::Result<ExitCode> {
    let mut info = MeetingInfo::parse(&args.link).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(p) = args.password.clone().filter(|p| !p.is_empty()) {
        info.password = Some(Password(p));
    }
    let server = args
        .server
        .clone()
        .or_else(|| info.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.into());
    let mut say_to = Vec::new();
    for item in &args.say_to {
        let Some((nick, text)) = item.split_once('=') else {
            bail!("--say-to expects NICK=TEXT");
        };
        say_to.push((nick.to_owned(), text.to_owned()));
    }
    let printer = Printer { json: args.json };
    // The recorder starts once we are in and the host allows it; until
    // then (and after it stops) pictures and sound go nowhere.
    let recording = Recording::default();
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let frame_sink = args.record.is_some().then(|| {
        let slot = recording.slot.clone();
        conclave_engine::video::FrameSink(std::sync::Arc::new(
            move |tile, frame: &conclave_media::VideoFrame| {
                if let Some(r) = slot.read().ok().and_then(|r| r.clone()) {
                    r.video(tile, frame);
                }
            },
        ))
    });
    let audio_tap = args.record.is_some().then(|| {
        let slot = recording.slot.clone();
        conclave_engine::AudioTap(std::sync::Arc::new(
            move |id, block: &conclave_media::AudioFrame| {
                if let Some(r) = slot.read().ok().and_then(|r| r.clone()) {
                    r.audio(id, block);
                }
            },
        ))
    });
    let room = info.room;
    let network = network_options(&args, info.relay.is_some())?;
    let (meeting, mut events) = conclave_engine::start(JoinOptions {
        network,
        frame_sink,
        info,
        nickname: args.name.clone(),
        server,
        tap_textroom: args.raw,
        media: MediaOptions {
            camera: args.camera.as_deref().map(parse_camera).transpose()?,
            video_codec: args
                .video_codec
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?,
            microphone: args.mic.as_deref().map(parse_mic).transpose()?,
            speaker: parse_speaker(&args.speaker),
            processing: parse_processing(&args.processing)?,
            save_received: args.save_received.clone(),
            share: args
                .share_screen
                .as_ref()
                .map(|display| CameraChoice::Screen {
                    display: (!display.is_empty()).then(|| display.clone()),
                    source: args.share_source.clone(),
                }),
            share_audio: args.share_audio,
            audio_tap,
            effects: conclave_engine::VideoEffects {
                background: parse_background(
                    args.background.as_deref(),
                    args.segmentation_model.as_deref(),
                )?,
                touch_up: args.touch_up,
            },
        },
    })?;

    // Wait for the outcome of joining.
    let (self_id, mut roster): (String, Vec<Participant>) = loop {
        let Some(event) = events.recv().await else {
            bail!("the meeting engine stopped unexpectedly");
        };
        printer.print(&event);
        match event {
            EngineEvent::Joined {
                participants,
                self_id,
                recording_allowed,
                ..
            } => {
                match &args.record {
                    Some(_) if !recording_allowed => eprintln!(
                        "conclave-cli: not recording: the host does not allow recording this meeting"
                    ),
                    Some(dir) => {
                        recording.set(Some(start_recording(dir, room, args.json, failed_tx.clone())?));
                        meeting.command(Command::SetRecording {
                            state: RecordingState::Recording,
                        });
                    }
                    None => {}
                }
                if let Some(r) = recording.current() {
                    for p in &participants {
                        // We are tile 0; others by their numeric ids.
                        let id = if p.is_self {
                            Some(0)
                        } else {
                            p.id.parse().ok()
                        };
                        if let Some(id) = id {
                            r.name(id, &p.nickname);
                        }
                    }
                }
                break (
                    self_id,
                    participants.into_iter().filter(|p| !p.is_self).collect(),
                );
            }
            EngineEvent::JoinFailed { message } => {
                eprintln!("conclave-cli: could not join: {message}");
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
    };

    let stay_until = args
        .stay
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut pending_say: VecDeque<String> = args.say.iter().cloned().collect();
    let mut pending_say_to = say_to;
    let mut stdin = args
        .stdin
        .then(|| tokio::io::BufReader::new(tokio::io::stdin()).lines());
    let mut leaving = false;
    let mut flush = |roster: &[Participant], meeting: &conclave_engine::MeetingHandle| {
        if roster.len() < args.wait_for {
            return;
        }
        while let Some(text) = pending_say.pop_front() {
            meeting.command(Command::SendChat { to: None, text });
        }
        pending_say_to.retain(
            |(nick, text)| match roster.iter().find(|p| &p.nickname == nick) {
                Some(p) => {
                    meeting.command(Command::SendChat {
                        to: Some(p.id.clone()),
                        text: text.clone(),
                    });
                    false
                }
                None => true,
            },
        );
    };
    flush(&roster, &meeting);
    loop {
        let sleep = async {
            match stay_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let line = async {
            match stdin.as_mut() {
                Some(l) => l.next_line().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let EngineEvent::Chat { message } = &event {
                    if args.json && message.from == self_id {
                        let mut v = event_json(&event);
                        v["outgoing"] = json!(true);
                        println!("{v}");
                        continue;
                    }
                }
                printer.print(&event);
                match &event {
                    EngineEvent::ParticipantJoined { participant } => {
                        if let (Some(r), Ok(id)) = (recording.current(), participant.id.parse()) {
                            r.name(id, &participant.nickname);
                        }
                        roster.push(participant.clone());
                        flush(&roster, &meeting);
                    }
                    EngineEvent::ParticipantLeft { participant } => {
                        if let (Some(r), Ok(id)) = (recording.current(), participant.id.parse()) {
                            r.gone(id);
                        }
                        roster.retain(|p| p.id != participant.id)
                    }
                    EngineEvent::Disconnected { .. } => return Ok(ExitCode::from(2)),
                    EngineEvent::Left => return Ok(ExitCode::SUCCESS),
                    _ => {}
                }
            }
            Some(()) = failed_rx.recv() => {
                recording.stop();
                meeting.command(Command::SetRecording { state: RecordingState::Stopped });
            }
            _ = sleep, if !leaving => {
                leaving = true;
                meeting.command(Command::Leave);
            }
            line = line, if !leaving => match line {
                Ok(Some(text)) if !text.trim().is_empty() => {
                    meeting.command(Command::SendChat { to: None, text });
                }
                Ok(Some(_)) => {}
                _ => { leaving = true; meeting.command(Command::Leave); }
            },
            _ = tokio::signal::ctrl_c(), if !leaving => {
                leaving = true;
                meeting.command(Command::Leave);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
