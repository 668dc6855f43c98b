//! A ScreenCast portal backend (`org.freedesktop.impl.portal.ScreenCast`)
//! for tests, standing in for the desktop's: the real xdg-desktop-portal
//! forwards our client's calls to it. Instead of asking the user, it
//! "chooses" a test screen: a PipeWire video source made by GStreamer
//! (`videotestsrc` colour bars, 640x360), whose node it hands out. It keeps
//! choices the way a desktop does (`restore_data`), and writes one line
//! per decision to `--log FILE`: `chose` when it would have asked the user,
//! `restored` when an earlier choice was handed back.
//!
//! Needed because the Wayland compositors packaged here (sway with
//! xdg-desktop-portal-wlr 0.7) only cast through DMA-BUF, which needs a GPU
//! this machine lacks. Usage: `test-portal --log FILE` on the session bus
//! of `DBUS_SESSION_BUS_ADDRESS`, with PipeWire reachable.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::object_server::ObjectServer;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, StructureBuilder, Value};

/// The bus name the portal's `.portal` file names.
const NAME: &str = "org.freedesktop.impl.portal.desktop.conclavetest";
/// The test screen's size.
const WIDTH: i32 = 640;
const HEIGHT: i32 = 360;
/// What a kept choice is called.
const VENDOR: &str = "conclave-test";

#[derive(Default)]
struct State {
    /// The GStreamer producers, per session.
    producers: HashMap<String, Child>,
    /// Whether each session's choice was restored.
    restored: HashMap<String, bool>,
    /// Whether each session asked for its choice to be kept.
    persist: HashMap<String, u32>,
    log: Option<std::path::PathBuf>,
    /// Put in the test screens' node names.
    tag: String,
}

impl State {
    fn note(&self, line: &str) {
        if let Some(path) = &self.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

type Results = HashMap<String, OwnedValue>;

fn owned(value: Value<'_>) -> OwnedValue {
    OwnedValue::try_from(value).unwrap_or_else(|_| OwnedValue::from(0u32))
}

struct ScreenCast {
    state: Arc<Mutex<State>>,
}

#[zbus::interface(name = "org.freedesktop.impl.portal.ScreenCast")]
impl ScreenCast {
    #[zbus(out_args("response", "results"))]
    async fn create_session(
        &self,
        _handle: OwnedObjectPath,
        session_handle: OwnedObjectPath,
        _app_id: String,
        _options: HashMap<String, OwnedValue>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> (u32, Results) {
        let session = Session {
            state: self.state.clone(),
            path: session_handle.to_string(),
        };
        if server.at(&session_handle, session).await.is_err() {
            return (2, Results::new());
        }
        (0, Results::new())
    }

    #[zbus(out_args("response", "results"))]
    async fn select_sources(
        &self,
        _handle: OwnedObjectPath,
        session_handle: OwnedObjectPath,
        _app_id: String,
        options: HashMap<String, OwnedValue>,
    ) -> (u32, Results) {
        let restored = options
            .get("restore_data")
            .is_some_and(|data| match &**data {
                Value::Structure(s) => {
                    matches!(s.fields(), [Value::Str(vendor), ..] if vendor.as_str() == VENDOR)
                }
                _ => false,
            });
        let persist = options
            .get("persist_mode")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        if let Ok(mut state) = self.state.lock() {
            state.restored.insert(session_handle.to_string(), restored);
            state.persist.insert(session_handle.to_string(), persist);
        }
        (0, Results::new())
    }

    #[zbus(out_args("response", "results"))]
    async fn start(
        &self,
        _handle: OwnedObjectPath,
        session_handle: OwnedObjectPath,
        _app_id: String,
        _parent_window: String,
        _options: HashMap<String, OwnedValue>,
    ) -> (u32, Results) {
        let key = session_handle.to_string();
        let tag = self.state.lock().map(|s| s.tag.clone()).unwrap_or_default();
        let node_name = format!(
            "conclave-test-screen-{tag}-{}",
            key.rsplit('/').next().unwrap_or("0")
        );
        let producer = Command::new("gst-launch-1.0")
            .args([
                "-q",
                "videotestsrc",
                "pattern=smpte100",
                "is-live=true",
                "!",
                &format!("video/x-raw,format=BGRx,width={WIDTH},height={HEIGHT},framerate=15/1"),
                "!",
                "pipewiresink",
                "mode=provide",
                &format!("stream-properties=props,media.class=Video/Source,node.name={node_name}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        let Ok(producer) = producer else {
            eprintln!("test-portal: gst-launch-1.0 could not start");
            return (2, Results::new());
        };
        let Some(node) = find_node(&node_name) else {
            eprintln!("test-portal: the test screen's node did not appear");
            return (2, Results::new());
        };
        let persist = match self.state.lock() {
            Ok(mut state) => {
                state.producers.insert(key.clone(), producer);
                let restored = state.restored.get(&key).copied().unwrap_or(false);
                state.note(if restored { "restored" } else { "chose" });
                state.persist.get(&key).copied().unwrap_or(0)
            }
            Err(_) => return (2, Results::new()),
        };
        let properties: HashMap<String, Value> = HashMap::from([
            ("source_type".to_owned(), Value::from(1u32)),
            (
                "size".to_owned(),
                Value::Structure(
                    StructureBuilder::new()
                        .add_field(WIDTH)
                        .add_field(HEIGHT)
                        .build(),
                ),
            ),
        ]);
        let streams = zbus::zvariant::Array::from(vec![(node, properties)]);
        let mut results = Results::from([("streams".to_owned(), owned(Value::Array(streams)))]);
        if persist != 0 {
            results.insert("persist_mode".into(), OwnedValue::from(persist));
            let data = Value::Structure(
                StructureBuilder::new()
                    .add_field(VENDOR)
                    .add_field(1u32)
                    .append_field(Value::Value(Box::new(Value::from("screen:0"))))
                    .build(),
            );
            results.insert("restore_data".into(), owned(data));
        }
        (0, results)
    }

    #[zbus(property)]
    async fn available_source_types(&self) -> u32 {
        1
    }

    #[zbus(property)]
    async fn available_cursor_modes(&self) -> u32 {
        7
    }

    #[zbus(property, name = "version")]
    async fn version(&self) -> u32 {
        4
    }
}

/// A session object: closing it stops its test screen.
struct Session {
    state: Arc<Mutex<State>>,
    path: String,
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Session")]
impl Session {
    async fn close(&self, #[zbus(object_server)] server: &ObjectServer) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(mut producer) = state.producers.remove(&self.path) {
                let _ = producer.kill();
                let _ = producer.wait();
            }
        }
        if let Ok(path) = zbus::zvariant::ObjectPath::try_from(self.path.as_str()) {
            let _ = server.remove::<Session, _>(path).await;
        }
    }

    #[zbus(property, name = "version")]
    async fn version(&self) -> u32 {
        1
    }
}

/// The id of the PipeWire node called `name`, once it exists.
fn find_node(name: &str) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(out) = Command::new("pw-dump").output() {
            if let Ok(objects) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                let found = objects.as_array().into_iter().flatten().find_map(|o| {
                    let props = o.get("info")?.get("props")?;
                    (props.get("node.name")?.as_str()? == name)
                        .then(|| o.get("id")?.as_u64())
                        .flatten()
                });
                if let Some(id) = found.and_then(|id| u32::try_from(id).ok()) {
                    return Some(id);
                }
            }
        }
        // The bus's own executor runs this: no tokio timer here.
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut state = State::default();
    // `--log FILE` and `--tag TAG`, in any order.
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--log" => state.log = Some(pair[1].clone().into()),
            "--tag" => state.tag = pair[1].clone(),
            _ => {}
        }
    }
    let state = Arc::new(Mutex::new(state));
    let _connection = zbus::connection::Builder::session()?
        .name(NAME)?
        .serve_at(
            "/org/freedesktop/portal/desktop",
            ScreenCast {
                state: state.clone(),
            },
        )?
        .build()
        .await?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}
