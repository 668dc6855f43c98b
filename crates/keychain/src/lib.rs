//! Meeting secrets in the OS keychain, for "Remember password" (D3): the
//! meeting password and the chat key of a meeting, stored under the meeting's
//! address in Secret Service (Linux), Keychain (macOS) or Credential Manager
//! (Windows).
//!
//! Must not: fall back to a plain file when no keychain exists (the caller
//! gets [`KeychainError::Unavailable`] and tells the user), or print a secret
//! in `Debug` output or logs.

use serde::{Deserialize, Serialize};

/// The service name entries are stored under.
pub const SERVICE: &str = "org.conclave.desktop";

/// What is remembered for one meeting.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSecret {
    /// The meeting password, if it has one.
    pub password: Option<String>,
    /// The end-to-end chat key, if the meeting has one.
    pub key: Option<String>,
}

impl std::fmt::Debug for MeetingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| if v.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("MeetingSecret")
            .field("password", &shown(&self.password))
            .field("key", &shown(&self.key))
            .finish()
    }
}

/// Why the keychain could not be used. The messages are for the user.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    /// No keychain service runs (no Secret Service on the session bus, or no
    /// session bus at all). Nothing is stored anywhere else instead.
    #[error("No keychain is available on this computer, so the password is not remembered (nothing is written anywhere else). Install and unlock a keyring such as GNOME Keyring or KWallet to use this. ({0})")]
    Unavailable(String),
    /// The keychain exists but failed or refused (for example, it is locked
    /// and the user declined to unlock it).
    #[error("The keychain refused or failed: {0}")]
    Failed(String),
    /// What the keychain holds for this meeting is not ours to read.
    #[error("The remembered secret for this meeting is damaged; it was not used")]
    Damaged,
}

/// The keychain, under one service name.
#[derive(Debug, Clone)]
pub struct Keychain {
    service: String,
}

impl Default for Keychain {
    fn default() -> Self {
        Keychain::new(SERVICE)
    }
}

impl Keychain {
    /// The keychain under `service` (tests use their own).
    pub fn new(service: &str) -> Self {
        Keychain {
            service: service.to_owned(),
        }
    }

    /// Stores `secret` for `meeting` (an address such as
    /// `wss://host/room 123456789`), replacing what was there.
    pub fn remember(&self, meeting: &str, secret: &MeetingSecret) -> Result<(), KeychainError> {
        let text =
            serde_json::to_string(secret).map_err(|e| KeychainError::Failed(e.to_string()))?;
        self.entry(meeting)?.set_password(&text).map_err(classify)
    }

    /// What is stored for `meeting`, if anything.
    pub fn recall(&self, meeting: &str) -> Result<Option<MeetingSecret>, KeychainError> {
        match self.entry(meeting)?.get_password() {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|_| KeychainError::Damaged),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Deletes what is stored for `meeting`; nothing stored is not an error.
    pub fn forget(&self, meeting: &str) -> Result<(), KeychainError> {
        match self.entry(meeting)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    fn entry(&self, meeting: &str) -> Result<keyring::Entry, KeychainError> {
        keyring::Entry::new(&self.service, meeting).map_err(classify)
    }
}

/// Maps the keyring's errors to what the user is told.
fn classify(e: keyring::Error) -> KeychainError {
    match e {
        keyring::Error::NoStorageAccess(inner) => KeychainError::Unavailable(inner.to_string()),
        keyring::Error::PlatformFailure(inner) => {
            let text = inner.to_string();
            // Secret Service absent: no session bus, or nobody owns the name.
            let absent = [
                "org.freedesktop.secrets",
                "ServiceUnknown",
                "DBUS_SESSION_BUS_ADDRESS",
                "dbus-launch",
                "Unable to autolaunch",
                "No such file or directory",
                "Connection refused",
            ];
            if absent.iter().any(|a| text.contains(a)) {
                KeychainError::Unavailable(text)
            } else {
                KeychainError::Failed(text)
            }
        }
        keyring::Error::BadEncoding(_) => KeychainError::Damaged,
        other => KeychainError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secrets() {
        let secret = MeetingSecret {
            password: Some("hunter2".into()),
            key: Some("k3y".into()),
        };
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("k3y"),
            "{shown}"
        );
        assert!(shown.contains("<set>"));
    }

    #[test]
    fn the_unavailable_message_says_what_to_do_and_that_nothing_else_is_written() {
        let text = KeychainError::Unavailable("no bus".into()).to_string();
        assert!(text.contains("No keychain is available"));
        assert!(text.contains("nothing is written anywhere else"));
    }
}
