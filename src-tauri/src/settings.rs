//! Settings kept on this device: the nickname, the default server, the language.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The server used when neither a link nor the user names one.
pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:8188";

/// User settings, stored as JSON in the OS config directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Settings {
    /// Last nickname used.
    pub nickname: String,
    /// Default signaling server.
    pub server: String,
    /// UI language (`en`, `zh-CN`), or none to follow the OS.
    pub language: Option<String>,
    /// Camera: `default` (the OS's first camera), a device id,
    /// `synthetic[:WIDTHxHEIGHT[@FPS]]` (the test pattern), or empty for none.
    pub camera: String,
    /// Microphone: `default`, a device name, or empty for none.
    pub microphone: String,
    /// Speaker: `default`, a device name, or empty for none.
    pub speaker: String,
    /// The folder the user chose for screenshots (empty: ask).
    pub screenshot_folder: String,
    /// Offer to join a meeting found on the clipboard (J2).
    pub clipboard_detection: bool,
    /// A hash of the last meeting offered from the clipboard (never the
    /// clipboard's text), so the same meeting is not offered twice.
    pub clipboard_offered: String,
    /// Keep a local history of meetings and who attended (D1).
    pub history_enabled: bool,
    /// Days after which history entries are deleted.
    pub history_days: u32,
    /// Consent to use a camera at all (D7): off, no camera is opened.
    pub camera_allowed: bool,
    /// Consent to use a microphone at all (D7): off, no microphone is opened.
    pub microphone_allowed: bool,
    /// Meetings whose password or chat key is in the OS keychain, by
    /// keychain name (server and meeting ID; never the secret), so that
    /// "Delete all local data" can remove them.
    pub remembered: Vec<String>,
    /// Keep meeting content inside the app (D5): chat text copies to an
    /// app-internal clipboard, other programs get a placeholder.
    pub keep_content_in_app: bool,
    /// The folder the user chose for recordings (empty: the OS videos
    /// folder).
    pub recording_folder: String,
    /// The virtual background: `blur` (strong), `blur-light`, or
    /// `picture:<id>` of the gallery in the data directory.
    pub background: String,
    /// Whether the virtual background is on.
    pub background_enabled: bool,
    /// Face touch-up (skin smoothing, light correction) on the camera.
    pub touch_up: bool,
    /// Relays and STUN servers of the Connection settings, in the order
    /// added; their passwords are in the keychain, never here.
    pub relays: Vec<RelaySetting>,
    /// Offer only relayed paths, so nobody learns this computer's address
    /// (needs a relay that answers).
    pub relay_only: bool,
}

/// One relay (`turn:`, `turns:`) or STUN server of the Connection settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct RelaySetting {
    /// As the user typed it: `turn:host[:port][?transport=tcp]`,
    /// `turns:host[:port]` or `stun:host[:port]`.
    pub url: String,
    /// The TURN user name (empty for STUN).
    pub username: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nickname: String::new(),
            server: DEFAULT_SERVER.into(),
            language: None,
            camera: "default".into(),
            microphone: "default".into(),
            speaker: "default".into(),
            screenshot_folder: String::new(),
            clipboard_detection: true,
            clipboard_offered: String::new(),
            history_enabled: true,
            history_days: 30,
            camera_allowed: true,
            microphone_allowed: true,
            remembered: Vec::new(),
            keep_content_in_app: false,
            recording_folder: String::new(),
            background: "blur".into(),
            background_enabled: false,
            touch_up: false,
            relays: Vec::new(),
            relay_only: false,
        }
    }
}

/// The app's data directory: `$XDG_DATA_HOME/conclave` or `~/.local/share/conclave`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("conclave")
}

/// The settings file.
pub fn path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("conclave").join("settings.json")
}

/// Loads settings; a missing or damaged file gives the defaults.
pub fn load() -> Settings {
    match std::fs::read(path()) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "settings file damaged; using defaults");
            Settings::default()
        }),
        Err(_) => Settings::default(),
    }
}

/// Saves settings atomically.
pub fn save(settings: &Settings) -> std::io::Result<()> {
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.part");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}
