//! A private desktop session for the Wayland sharing tests: its own D-Bus
//! session bus, PipeWire and WirePlumber, the real xdg-desktop-portal
//! (started by D-Bus activation) and `test-portal` as the desktop's
//! ScreenCast backend. Everything stops when it is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running session; see the module docs.
pub struct PortalSession {
    children: Vec<Child>,
    /// The session's temporary directory (runtime dir, portal file, log).
    pub dir: PathBuf,
    /// The session bus address.
    pub bus: String,
    /// Where `test-portal` writes `chose` / `restored` lines.
    pub log: PathBuf,
}

/// The programs the session needs.
const NEEDS: [&str; 5] = [
    "dbus-daemon",
    "pipewire",
    "wireplumber",
    "gst-launch-1.0",
    "/usr/libexec/xdg-desktop-portal",
];

impl PortalSession {
    /// Starts one; `None` (with the reason printed) if a program is missing.
    pub fn start(test_portal: &str) -> Option<PortalSession> {
        for program in NEEDS {
            let found = if program.starts_with('/') {
                std::path::Path::new(program).exists()
            } else {
                Command::new("sh")
                    .args(["-c", &format!("command -v {program}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !found {
                eprintln!("{program} is not installed; skipped (scripts/setup installs it)");
                return None;
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "conclave-portal-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let runtime = dir.join("run");
        let portals = dir.join("portals");
        std::fs::create_dir_all(&runtime).ok()?;
        std::fs::create_dir_all(&portals).ok()?;
        let _ = std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        std::fs::write(
            portals.join("conclavetest.portal"),
            "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.conclavetest\n\
             Interfaces=org.freedesktop.impl.portal.ScreenCast;\nUseIn=conclavetest\n",
        )
        .ok()?;
        let log = dir.join("portal.log");
        let mut session = PortalSession {
            children: Vec::new(),
            dir: dir.clone(),
            bus: String::new(),
            log: log.clone(),
        };
        let env = |c: &mut Command| {
            c.env("XDG_RUNTIME_DIR", &runtime)
                .env("XDG_CURRENT_DESKTOP", "conclavetest")
                .env("XDG_DESKTOP_PORTAL_DIR", &portals)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_DATA_HOME", dir.join("data"))
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY")
                .env_remove("PULSE_SERVER");
        };
        // The bus first: everything else joins it.
        let mut bus = Command::new("dbus-daemon");
        bus.args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        env(&mut bus);
        let mut bus = bus.spawn().ok()?;
        let address = {
            use std::io::BufRead;
            let stdout = bus.stdout.take()?;
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).ok()?;
            line.trim().to_owned()
        };
        session.children.push(bus);
        session.bus = address.clone();
        for program in ["pipewire", "wireplumber"] {
            let mut c = Command::new(program);
            c.env("DBUS_SESSION_BUS_ADDRESS", &address)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            env(&mut c);
            session.children.push(c.spawn().ok()?);
            if program == "pipewire" {
                let socket = runtime.join("pipewire-0");
                let deadline = Instant::now() + Duration::from_secs(5);
                while !socket.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let mut backend = Command::new(test_portal);
        backend
            .args(["--log"])
            .arg(&log)
            .args(["--tag", &session.tag()])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::piped());
        env(&mut backend);
        let mut backend = backend.spawn().ok()?;
        {
            use std::io::BufRead;
            let stdout = backend.stdout.take()?;
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).ok()?;
        }
        session.children.push(backend);
        Some(session)
    }

    /// The environment a sharing process needs: the session's bus, and a
    /// Wayland session (the compositor's part is the test backend's).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.bus.clone()),
            ("WAYLAND_DISPLAY", "wayland-conclave-test".into()),
            (
                "XDG_RUNTIME_DIR",
                self.dir.join("run").display().to_string(),
            ),
            ("XDG_CURRENT_DESKTOP", "conclavetest".into()),
        ]
    }

    /// Names this session's test screens (their PipeWire nodes and
    /// producers' command lines).
    fn tag(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The lines `test-portal` logged so far.
    pub fn decisions(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PortalSession {
    fn drop(&mut self) {
        // The test screens' producers are the backend's children: they go
        // by their tag. The portal started by the bus leaves with it.
        let _ = Command::new("pkill").args(["-f", &self.tag()]).status();
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
