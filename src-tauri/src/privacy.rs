//! What the app keeps on the device, and the user's control over it: meeting
//! secrets in the OS keychain (D3), the paste guard (D5), "Delete all local
//! data" (D7) and the diagnostics bundle (D4), whose logs are redacted.
//!
//! Must not: write a secret anywhere but the OS keychain, or put chat text,
//! passwords, keys, clipboard text or home-folder paths into a bundle.

use std::io::Write;
use std::path::{Path, PathBuf};

use conclave_keychain::{Keychain, KeychainError, MeetingSecret};
use conclave_protocol::link::{ChatKey, MeetingId, Password};
use conclave_protocol::MeetingInfo;
use serde::Serialize;

use crate::settings::{self, Settings};

/// The keychain entry name of a meeting: its server and ID (no secret).
pub fn keychain_name(server: &str, room: &MeetingId) -> String {
    format!("{server} meeting {room}")
}

/// Fills in what the keychain remembers for `name` where `info` lacks it.
/// Returns whether anything was filled in. Keychain trouble is logged (never
/// the secret) and ignored: the user can still type the password.
pub fn fill_from_keychain(info: &mut MeetingInfo, name: &str) -> bool {
    if info.password.is_some() && info.chat_key.is_some() {
        return false;
    }
    match Keychain::default().recall(name) {
        Ok(Some(secret)) => {
            let mut filled = false;
            if info.password.is_none() {
                if let Some(p) = secret.password {
                    info.password = Some(Password(p));
                    filled = true;
                }
            }
            if info.chat_key.is_none() {
                if let Some(k) = secret
                    .key
                    .as_deref()
                    .and_then(|k| ChatKey::from_base64(k).ok())
                {
                    info.chat_key = Some(k);
                    filled = true;
                }
            }
            filled
        }
        Ok(None) => false,
        Err(e) => {
            tracing::info!(error = %e, "keychain not consulted");
            false
        }
    }
}

/// Stores the meeting's password and chat key under `name`, and notes the
/// name in the settings so that "Delete all local data" can remove it.
pub fn remember(info: &MeetingInfo, name: &str) -> Result<(), KeychainError> {
    let secret = MeetingSecret {
        password: info.password.as_ref().map(|p| p.0.clone()),
        key: info.chat_key.as_ref().map(ChatKey::to_base64),
    };
    if secret.password.is_none() && secret.key.is_none() {
        return Ok(());
    }
    Keychain::default().remember(name, &secret)?;
    let mut stored = settings::load();
    if !stored.remembered.iter().any(|n| n == name) {
        stored.remembered.push(name.to_owned());
        if let Err(e) = settings::save(&stored) {
            tracing::warn!(error = %e, "could not note the remembered meeting");
        }
    }
    Ok(())
}

/// The keychain entry name of a relay's password: its URL and user (no
/// secret).
pub fn relay_keychain_name(url: &str, username: &str) -> String {
    format!("{RELAY_ENTRY_PREFIX}{url} user {username}")
}

/// How a relay's keychain entry name begins (a meeting's begins with its
/// server URL, never with this).
pub const RELAY_ENTRY_PREFIX: &str = "relay ";

/// Stores a relay's password in the keychain and notes the entry so that
/// "Delete all local data" removes it.
pub fn remember_relay_password(name: &str, password: &str) -> Result<(), KeychainError> {
    let secret = MeetingSecret {
        password: Some(password.to_owned()),
        key: None,
    };
    Keychain::default().remember(name, &secret)?;
    let mut stored = settings::load();
    if !stored.remembered.iter().any(|n| n == name) {
        stored.remembered.push(name.to_owned());
        settings::save(&stored).map_err(|e| KeychainError::Failed(e.to_string()))?;
    }
    Ok(())
}

/// A relay's password from the keychain (`None` if none is stored).
pub fn relay_password(name: &str) -> Result<Option<String>, KeychainError> {
    Ok(Keychain::default()
        .recall(name)?
        .and_then(|secret| secret.password))
}

/// Removes what the keychain holds for `name`.
pub fn forget(name: &str) -> Result<(), KeychainError> {
    Keychain::default().forget(name)?;
    let mut stored = settings::load();
    stored.remembered.retain(|n| n != name);
    settings::save(&stored).map_err(|e| KeychainError::Failed(e.to_string()))
}

/// Deletes everything the app keeps on this device: the history database,
/// keychain entries, saved backgrounds, logs and the settings. Files the
/// user saved elsewhere (chat exports, screenshots, recordings) are theirs
/// and stay. Returns what could not be deleted, if anything.
pub fn delete_all_local_data(log_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let stored = settings::load();
    let keychain = Keychain::default();
    for name in &stored.remembered {
        if let Err(e) = keychain.forget(name) {
            problems.push(format!("A remembered password: {e}"));
        }
    }
    let data = settings::data_dir();
    for item in [
        "history.sqlite3",
        "history.sqlite3-wal",
        "history.sqlite3-shm",
        crate::commands::SCREEN_CAST_TOKEN_FILE,
    ] {
        remove_file(&data.join(item), &mut problems);
    }
    if let Err(e) = remove_dir_contents(&data.join("backgrounds")) {
        problems.push(format!("Backgrounds: {e}"));
    }
    if let Err(e) = empty_logs(log_dir) {
        problems.push(format!("Logs: {e}"));
    }
    remove_file(&settings::path(), &mut problems);
    problems
}

fn remove_file(path: &Path, problems: &mut Vec<String>) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("{}: {e}", file_name(path))),
    }
}

/// Deletes the log files but the newest, which the running app still writes
/// to: that one is emptied, so what is logged after this lands in a file.
fn empty_logs(dir: &Path) -> std::io::Result<()> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .map(|p| {
                let modified = p
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, p)
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    files.sort();
    if let Some((_, newest)) = files.pop() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(newest)?
            .set_len(0)?;
    }
    for (_, path) in files {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

fn remove_dir_contents(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ----- diagnostics ---------------------------------------------------------

/// One file of the diagnostics bundle, shown to the user before saving.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DiagnosticsFile {
    /// The name inside the zip.
    pub name: String,
    /// Exactly what goes into the zip.
    pub contents: String,
}

/// Builds the bundle's files: redacted logs, versions, devices, recent
/// errors and anonymised settings.
pub fn diagnostics_files(log_dir: &Path, devices: &[String]) -> Vec<DiagnosticsFile> {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    logs.sort();
    let mut files = vec![DiagnosticsFile {
        name: "versions.txt".into(),
        contents: format!(
            "Conclave {}\nplatform: {} {}\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
    }];
    files.push(DiagnosticsFile {
        name: "devices.txt".into(),
        contents: devices
            .iter()
            .map(|d| redact(d, &home) + "\n")
            .collect::<String>(),
    });
    let mut errors = String::new();
    for path in logs.iter().filter(|p| p.is_file()) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let redacted: String = text.lines().map(|l| redact(l, &home) + "\n").collect();
        for line in redacted
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        {
            errors.push_str(line);
            errors.push('\n');
        }
        files.push(DiagnosticsFile {
            name: format!("logs/{}", file_name(path)),
            contents: redacted,
        });
    }
    let tail: Vec<&str> = errors.lines().rev().take(200).collect();
    files.push(DiagnosticsFile {
        name: "recent-errors.txt".into(),
        contents: tail.into_iter().rev().map(|l| format!("{l}\n")).collect(),
    });
    files.push(DiagnosticsFile {
        name: "settings.txt".into(),
        contents: anonymised_settings(&settings::load()),
    });
    files
}

/// The settings without anything personal: no nickname, server, folders or
/// remembered meetings; only choices.
fn anonymised_settings(s: &Settings) -> String {
    format!(
        "language: {}\ncamera allowed: {}\nmicrophone allowed: {}\ncamera: {}\nclipboard detection: {}\nhistory: {} ({} days)\nremembered meetings: {}\nrelays: {} (relay only: {})\n",
        s.language.as_deref().unwrap_or("system"),
        s.camera_allowed,
        s.microphone_allowed,
        if s.camera.is_empty() { "none" } else if s.camera.starts_with("synthetic") { "test pattern" } else { "a device" },
        s.clipboard_detection,
        s.history_enabled,
        s.history_days,
        s.remembered
            .iter()
            .filter(|n| !n.starts_with(RELAY_ENTRY_PREFIX))
            .count(),
        s.relays.len(),
        s.relay_only,
    )
}

/// Writes the bundle to `path` as a zip.
pub fn write_diagnostics(path: &Path, files: &[DiagnosticsFile]) -> std::io::Result<()> {
    let part = path.with_extension("zip.part");
    let file = std::fs::File::create(&part)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for f in files {
        zip.start_file(f.name.as_str(), options)
            .map_err(std::io::Error::other)?;
        zip.write_all(f.contents.as_bytes())?;
    }
    zip.finish().map_err(std::io::Error::other)?.sync_all()?;
    std::fs::rename(part, path)
}

/// Field names whose values are secret or personal, in logs (`name=value`)
/// and in JSON (`"name":"value"`).
const SECRET_FIELDS: &[&str] = &[
    "pwd",
    "password",
    "pin",
    "key",
    "secret",
    "token",
    "text",
    "clipboard",
];

/// Redacts one log line: values of secret fields, link fragments
/// (`#pwd=…&key=…`) and file paths under the home folder.
pub fn redact(line: &str, home: &str) -> String {
    let mut out = line.to_owned();
    // Paths under the home folder: the whole path goes.
    if home.len() > 1 {
        let mut from = 0;
        while let Some(at) = out[from..].find(home).map(|i| i + from) {
            let end = out[at..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .map_or(out.len(), |i| i + at);
            out.replace_range(at..end, "<home path>");
            from = at + "<home path>".len();
        }
    }
    // A link's fragment carries the password and key.
    if let Some(at) = out.find('#') {
        let rest = &out[at + 1..];
        if rest.starts_with("pwd=") || rest.starts_with("key=") {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .map_or(out.len(), |i| i + at + 1);
            out.replace_range(at + 1..end, "<redacted>");
        }
    }
    for field in SECRET_FIELDS {
        for pattern in [format!("{field}="), format!("\"{field}\":\"")] {
            let mut from = 0;
            while let Some(at) = out[from..].find(&pattern).map(|i| i + from) {
                let start = at + pattern.len();
                // Only whole field names: `key=` but not `monkey=`.
                let whole = at == 0
                    || !out[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_');
                let end = if pattern.ends_with('"') {
                    out[start..].find('"').map_or(out.len(), |i| i + start)
                } else if out[start..].starts_with('"') {
                    out[start + 1..]
                        .find('"')
                        .map_or(out.len(), |i| i + start + 2)
                } else {
                    out[start..]
                        .find(|c: char| c.is_whitespace() || c == '&' || c == ',')
                        .map_or(out.len(), |i| i + start)
                };
                if whole {
                    out.replace_range(start..end, "<redacted>");
                    from = start + "<redacted>".len();
                } else {
                    from = start;
                }
            }
        }
    }
    out
}

// ----- paste guard ---------------------------------------------------------

/// The text this app last put on the clipboard (in memory only), so that on
/// exit the app can clear the clipboard if it still holds it.
#[derive(Default)]
pub struct PasteGuard {
    copied: std::sync::Mutex<Option<String>>,
}

impl PasteGuard {
    /// Notes text the app put on the clipboard.
    pub fn copied(&self, text: &str) {
        if let Ok(mut c) = self.copied.lock() {
            *c = Some(text.to_owned());
        }
    }

    /// Whether `clipboard` is what the app put there.
    pub fn is_ours(&self, clipboard: &str) -> bool {
        self.copied
            .lock()
            .map(|c| c.as_deref() == Some(clipboard))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_secrets_and_home_paths_and_keeps_the_rest() {
        let home = "/home/ada";
        let cases = [
            (
                "INFO joining room=123 pwd=hunter2 server=ws://h",
                "INFO joining room=123 pwd=<redacted> server=ws://h",
            ),
            (
                r#"{"pin":"Xy12","room":5}"#,
                r#"{"pin":"<redacted>","room":5}"#,
            ),
            (
                "link conclave://join/1#pwd=a&key=b rest",
                "link conclave://join/1#<redacted> rest",
            ),
            (
                "saved to /home/ada/Pictures/secret plan.png ok",
                "saved to <home path> plan.png ok",
            ),
            (
                "monkey=banana key=\"k 1\" x",
                "monkey=banana key=<redacted> x",
            ),
            ("text=hello,next", "text=<redacted>,next"),
        ];
        for (line, want) in cases {
            assert_eq!(redact(line, home), want, "{line}");
        }
    }

    #[test]
    fn the_paste_guard_knows_only_its_own_text() {
        let guard = PasteGuard::default();
        assert!(!guard.is_ours("x"));
        guard.copied("invitation");
        assert!(guard.is_ours("invitation"));
        assert!(!guard.is_ours("something else"));
    }

    #[test]
    fn a_bundle_round_trips_through_zip() {
        let dir = std::env::temp_dir().join(format!("conclave-diag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bundle.zip");
        let files = vec![DiagnosticsFile {
            name: "a.txt".into(),
            contents: "hello".into(),
        }];
        write_diagnostics(&path, &files).expect("write");
        let mut archive =
            zip::ZipArchive::new(std::fs::File::open(&path).expect("open")).expect("zip");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("a.txt").expect("entry"), &mut text)
            .expect("read");
        assert_eq!(text, "hello");
        let _ = std::fs::remove_dir_all(dir);
    }
}
