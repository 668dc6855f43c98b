//! One running app per profile: a second start (a `conclave://` link opened
//! from the browser or the desktop while the app runs) hands its link to the
//! running instance over a Unix socket in the user's runtime directory (or,
//! without one, the app's data directory: never a directory other users can
//! write to, since the link carries the meeting's password), and
//! exits. The running instance fills the join screen with it and comes to
//! the front.
//!
//! The socket's name comes from the config directory, so separate profiles
//! (tests, a second user account) are separate instances. Elsewhere than
//! Unix every start is its own instance.

use std::path::PathBuf;

/// What the running app answers when it took a link.
const ACK: &[u8; 2] = b"ok";

/// The most a forwarded message may hold (a link, not a file).
const MAX_FORWARDED: u64 = 64 * 1024;

/// The socket of this profile's running instance.
fn socket_path() -> PathBuf {
    use sha2::Digest;
    let config = crate::settings::path();
    let digest = sha2::Sha256::digest(config.to_string_lossy().as_bytes());
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join(format!("conclave-{tag}.sock")),
        None => crate::settings::data_dir().join(format!("instance-{tag}.sock")),
    }
}

/// What starting found.
pub enum Start {
    /// This is the only instance; links sent by later starts arrive here.
    First(Listener),
    /// Another instance runs and took the link: this process should exit.
    Forwarded,
}

/// Receives links from later starts (none when the socket could not be made).
pub struct Listener {
    #[cfg(unix)]
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
}

/// Claims this profile's single instance, or hands `link` to the one that
/// runs. Any trouble with the socket means running as an instance of our
/// own, never failing to start.
pub fn claim(link: Option<&str>) -> Start {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::net::{UnixListener, UnixStream};
        let path = socket_path();
        if let Ok(mut running) = UnixStream::connect(&path) {
            // Handed over only once the running app says it took the link.
            let mut answer = [0u8; 2];
            let acknowledged = running
                .set_read_timeout(Some(std::time::Duration::from_secs(3)))
                .and_then(|()| running.write_all(link.unwrap_or_default().as_bytes()))
                .and_then(|()| running.shutdown(std::net::Shutdown::Write))
                .and_then(|()| std::io::Read::read_exact(&mut running, &mut answer))
                .is_ok_and(|()| &answer == ACK);
            if acknowledged {
                return Start::Forwarded;
            }
        }
        // Nobody answers: a socket left by a crash is stale.
        let _ = std::fs::remove_file(&path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match UnixListener::bind(&path) {
            Ok(listener) => Start::First(Listener {
                listener: Some(listener),
                path,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no single-instance socket; links will start new windows");
                Start::First(Listener {
                    listener: None,
                    path: PathBuf::new(),
                })
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = link;
        Start::First(Listener {
            path: PathBuf::new(),
        })
    }
}

impl Listener {
    /// Calls `on_link` with each link (or `""`: just come to the front) that
    /// a later start sends, on a thread of its own.
    pub fn serve(mut self, on_link: impl Fn(String) + Send + 'static) {
        #[cfg(unix)]
        {
            let Some(listener) = self.listener.take() else {
                return;
            };
            let spawned = std::thread::Builder::new()
                .name("single-instance".into())
                .spawn(move || {
                    use std::io::{Read, Write};
                    for stream in listener.incoming() {
                        let Ok(mut stream) = stream else { continue };
                        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(3)));
                        let mut text = String::new();
                        if (&mut stream)
                            .take(MAX_FORWARDED)
                            .read_to_string(&mut text)
                            .is_ok()
                        {
                            on_link(text.trim().to_owned());
                            let _ = stream.write_all(ACK);
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "links from later starts will not arrive");
            }
        }
        #[cfg(not(unix))]
        let _ = on_link;
    }

    /// Removes the socket (as the app exits).
    pub fn remove_socket(path: &std::path::Path) {
        if !path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The socket's path (empty when there is none).
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }
}
