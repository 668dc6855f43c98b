//! The ScreenCast portal (`org.freedesktop.portal.ScreenCast`), which is how
//! a Wayland session lets an application capture a screen or a window: the
//! desktop asks the user what to share (once, with a restore token), then
//! hands over a PipeWire connection that sees only that stream.
//!
//! Every portal call answers through a `Request` object's `Response`
//! signal; the signal is subscribed to before the call so that an answer
//! cannot be missed. Blocking: run it away from anything that must not
//! wait for the user.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::{ScreenError, SourceKind};

const DESKTOP: &str = "org.freedesktop.portal.Desktop";
const DESKTOP_PATH: &str = "/org/freedesktop/portal/desktop";
const SCREEN_CAST: &str = "org.freedesktop.portal.ScreenCast";
const REQUEST: &str = "org.freedesktop.portal.Request";
const SESSION: &str = "org.freedesktop.portal.Session";

/// Source types of the portal.
const MONITOR: u32 = 1;
const WINDOW: u32 = 2;
/// The cursor drawn into the picture.
const CURSOR_EMBEDDED: u32 = 2;
/// The choice kept until the user revokes it.
const PERSIST_UNTIL_REVOKED: u32 = 2;

/// A running screen cast: the PipeWire connection the portal opened for us
/// and the stream on it. Dropping it ends the cast.
pub struct Cast {
    /// A PipeWire connection that sees only the chosen stream.
    pub remote: OwnedFd,
    /// The stream's PipeWire node.
    pub node: u32,
    /// The stream's size, if the portal said.
    pub size: Option<(u32, u32)>,
    /// Screen or window, if the portal said.
    pub kind: Option<SourceKind>,
    /// Hand this back next time to share the same thing without asking.
    pub restore_token: Option<String>,
    connection: Connection,
    session: OwnedObjectPath,
}

impl std::fmt::Debug for Cast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cast")
            .field("node", &self.node)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Drop for Cast {
    fn drop(&mut self) {
        if let Ok(session) = Proxy::new(&self.connection, DESKTOP, &self.session, SESSION) {
            let _ = session.call_method("Close", &());
        }
    }
}

/// Whether this session has the portal at all.
pub fn available() -> bool {
    let Ok(connection) = Connection::session() else {
        return false;
    };
    let Ok(proxy) = Proxy::new(&connection, DESKTOP, DESKTOP_PATH, SCREEN_CAST) else {
        return false;
    };
    proxy
        .get_property::<u32>("AvailableSourceTypes")
        .is_ok_and(|types| types & MONITOR != 0)
}

/// Asks the desktop for a screen or window (the user chooses in the
/// desktop's own dialog, unless `restore_token` names an earlier choice
/// that still holds) and opens its stream.
pub fn start(restore_token: Option<&str>) -> Result<Cast, ScreenError> {
    let connection = Connection::session()
        .map_err(|e| ScreenError::Unavailable(format!("no session bus: {e}")))?;
    let portal =
        Proxy::new(&connection, DESKTOP, DESKTOP_PATH, SCREEN_CAST).map_err(|e| unavailable(&e))?;
    let types = portal
        .get_property::<u32>("AvailableSourceTypes")
        .map_err(|e| unavailable(&e))?;
    let version = portal.get_property::<u32>("version").unwrap_or(1);

    let session_token = token();
    let created = request(&connection, &portal, "CreateSession", |handle| {
        (HashMap::from([
            ("handle_token", Value::from(handle.to_owned())),
            ("session_handle_token", Value::from(session_token.as_str())),
        ]),)
    })?;
    let session: OwnedObjectPath = created
        .get("session_handle")
        .and_then(text)
        .and_then(|s| OwnedObjectPath::try_from(s).ok())
        .ok_or_else(|| ScreenError::Failed("the portal gave no session".into()))?;
    // From here the session is ours to close, whatever happens.
    let mut cast = Cast {
        remote: placeholder_fd()?,
        node: 0,
        size: None,
        kind: None,
        restore_token: None,
        connection: connection.clone(),
        session: session.clone(),
    };

    let session_path = ObjectPath::from(&session);
    request(&connection, &portal, "SelectSources", |handle| {
        let mut options = HashMap::from([
            ("handle_token", Value::from(handle.to_owned())),
            ("types", Value::from(types & (MONITOR | WINDOW))),
            ("multiple", Value::from(false)),
        ]);
        if version >= 2 {
            options.insert("cursor_mode", Value::from(CURSOR_EMBEDDED));
        }
        if version >= 4 {
            options.insert("persist_mode", Value::from(PERSIST_UNTIL_REVOKED));
            if let Some(t) = restore_token {
                options.insert("restore_token", Value::from(t.to_owned()));
            }
        }
        (session_path.clone(), options)
    })?;

    let started = request(&connection, &portal, "Start", |handle| {
        (
            session_path.clone(),
            "",
            HashMap::from([("handle_token", Value::from(handle.to_owned()))]),
        )
    })?;
    let streams = started
        .get("streams")
        .map(parse_streams)
        .transpose()?
        .unwrap_or_default();
    let Some(first) = streams.into_iter().next() else {
        return Err(ScreenError::Failed("the portal gave no stream".into()));
    };
    cast.node = first.node;
    cast.size = first.size;
    cast.kind = first.kind;
    cast.restore_token = started.get("restore_token").and_then(text);

    let remote: zbus::zvariant::OwnedFd = portal
        .call(
            "OpenPipeWireRemote",
            &(session_path, HashMap::<&str, Value>::new()),
        )
        .map_err(|e| ScreenError::Failed(format!("the portal gave no PipeWire connection: {e}")))?;
    cast.remote = remote.into();
    Ok(cast)
}

/// One stream of a started cast.
struct StreamInfo {
    node: u32,
    size: Option<(u32, u32)>,
    kind: Option<SourceKind>,
}

/// `a(ua{sv})`: node ids with their properties.
fn parse_streams(value: &OwnedValue) -> Result<Vec<StreamInfo>, ScreenError> {
    let bad = || ScreenError::Failed("the portal's stream list is malformed".into());
    let Value::Array(array) = &**value else {
        return Err(bad());
    };
    let mut streams = Vec::new();
    for item in array.iter() {
        let Value::Structure(fields) = item else {
            return Err(bad());
        };
        let [Value::U32(node), Value::Dict(properties)] = fields.fields() else {
            return Err(bad());
        };
        let properties: HashMap<String, OwnedValue> =
            HashMap::try_from(properties.try_clone().map_err(|_| bad())?).map_err(|_| bad())?;
        let size = properties.get("size").and_then(|v| match &**v {
            Value::Structure(s) => match s.fields() {
                [Value::I32(w), Value::I32(h)] if *w > 0 && *h > 0 => {
                    Some((w.unsigned_abs(), h.unsigned_abs()))
                }
                _ => None,
            },
            _ => None,
        });
        let kind = properties.get("source_type").and_then(|v| match &**v {
            Value::U32(WINDOW) => Some(SourceKind::Window),
            Value::U32(MONITOR) => Some(SourceKind::Screen),
            _ => None,
        });
        streams.push(StreamInfo {
            node: *node,
            size,
            kind,
        });
    }
    Ok(streams)
}

/// Calls `method` with the body `body(handle_token)` and waits for its
/// `Response`: the results on success, the user's refusal as
/// [`ScreenError::Gone`].
fn request<B>(
    connection: &Connection,
    portal: &Proxy<'_>,
    method: &str,
    body: impl FnOnce(&str) -> B,
) -> Result<HashMap<String, OwnedValue>, ScreenError>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    let handle = token();
    let sender = connection
        .unique_name()
        .ok_or_else(|| ScreenError::Failed("not connected to the session bus".into()))?
        .trim_start_matches(':')
        .replace('.', "_");
    let path = format!("{DESKTOP_PATH}/request/{sender}/{handle}");
    let request = Proxy::new(connection, DESKTOP, path.as_str(), REQUEST)
        .map_err(|e| ScreenError::Failed(e.to_string()))?;
    let mut responses = request
        .receive_signal("Response")
        .map_err(|e| ScreenError::Failed(e.to_string()))?;
    portal
        .call_method(method, &body(&handle))
        .map_err(|e| ScreenError::Failed(format!("the portal refused {method}: {e}")))?;
    let answer = responses
        .next()
        .ok_or_else(|| ScreenError::Failed("the portal went away".into()))?;
    let (code, results): (u32, HashMap<String, OwnedValue>) = answer
        .body()
        .deserialize()
        .map_err(|e| ScreenError::Failed(format!("the portal's answer is malformed: {e}")))?;
    match code {
        0 => Ok(results),
        1 => Err(ScreenError::Gone(
            "sharing was cancelled in the system's dialog".into(),
        )),
        _ => Err(ScreenError::Failed(format!(
            "the system did not allow sharing the screen ({method})"
        ))),
    }
}

/// A string or object path value as text.
fn text(value: &OwnedValue) -> Option<String> {
    match &**value {
        Value::Str(s) => Some(s.to_string()),
        Value::ObjectPath(p) => Some(p.to_string()),
        _ => None,
    }
}

fn unavailable(e: &zbus::Error) -> ScreenError {
    ScreenError::Unavailable(format!("the desktop has no screen-cast portal: {e}"))
}

/// A fresh token for a request or session object path.
fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "conclave{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A descriptor to hold the place of the PipeWire connection until the
/// portal gives it (`/dev/null`).
fn placeholder_fd() -> Result<OwnedFd, ScreenError> {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| ScreenError::Failed(e.to_string()))
}
