//! X11 capture: the picture is read through MIT-SHM (the X server writes
//! into memory shared with us, no copy through the socket), falling back to
//! a plain `GetImage` where shared memory is not offered; the cursor comes
//! from XFixes and is drawn in; monitors come from RandR.
//!
//! `unsafe` here is limited to mapping and unmapping the segment the X
//! server hands over as a file descriptor.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use conclave_media::{PixelLayout, VideoFrame};
use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat, MapState, Window};
use x11rb::rust_connection::RustConnection;

use crate::{ScreenError, ScreenSource, SourceInfo, SourceKind};

fn failed(e: impl std::fmt::Display) -> ScreenError {
    ScreenError::Failed(e.to_string())
}

fn connect(display: Option<&str>) -> Result<(RustConnection, Window), ScreenError> {
    let (conn, screen) = x11rb::connect(display)
        .map_err(|e| ScreenError::Unavailable(format!("cannot reach the X display: {e}")))?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .map(|s| s.root)
        .ok_or_else(|| ScreenError::Unavailable("the X display has no screen".into()))?;
    Ok((conn, root))
}

/// An area of the root window (a monitor) or a window.
#[derive(Debug, Clone, Copy)]
enum Target {
    Area {
        x: i16,
        y: i16,
        width: u16,
        height: u16,
    },
    Window(Window),
}

/// The monitors, from RandR (the whole root window without it).
fn monitors(conn: &RustConnection, root: Window) -> Result<Vec<(String, Target)>, ScreenError> {
    let geometry = conn
        .get_geometry(root)
        .map_err(failed)?
        .reply()
        .map_err(failed)?;
    let whole = Target::Area {
        x: 0,
        y: 0,
        width: geometry.width,
        height: geometry.height,
    };
    let listed = conn
        .randr_get_monitors(root, true)
        .ok()
        .and_then(|c| c.reply().ok())
        .map(|r| r.monitors)
        .unwrap_or_default();
    if listed.is_empty() {
        return Ok(vec![("Entire screen".into(), whole)]);
    }
    let single = listed.len() == 1;
    Ok(listed
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let name = match (single, atom_name(conn, m.name)) {
                (true, _) => "Entire screen".to_string(),
                (false, Some(output)) => format!("Screen {} ({output})", i + 1),
                (false, None) => format!("Screen {}", i + 1),
            };
            (
                name,
                Target::Area {
                    x: m.x,
                    y: m.y,
                    width: m.width,
                    height: m.height,
                },
            )
        })
        .collect())
}

fn atom_name(conn: &RustConnection, atom: u32) -> Option<String> {
    let reply = conn.get_atom_name(atom).ok()?.reply().ok()?;
    String::from_utf8(reply.name).ok()
}

fn atom(conn: &RustConnection, name: &str) -> Option<u32> {
    Some(
        conn.intern_atom(true, name.as_bytes())
            .ok()?
            .reply()
            .ok()?
            .atom,
    )
    .filter(|a| *a != 0)
}

/// A window's title (`_NET_WM_NAME`, else `WM_NAME`).
fn window_title(conn: &RustConnection, window: Window) -> Option<String> {
    let utf8 = atom(conn, "UTF8_STRING");
    let net_name = atom(conn, "_NET_WM_NAME");
    let tries = [
        net_name.zip(utf8),
        Some((
            xproto::AtomEnum::WM_NAME.into(),
            xproto::AtomEnum::STRING.into(),
        )),
    ];
    for (property, kind) in tries.into_iter().flatten() {
        let reply = conn
            .get_property(false, window, property, kind, 0, 1024)
            .ok()?
            .reply()
            .ok()?;
        if !reply.value.is_empty() {
            return Some(String::from_utf8_lossy(&reply.value).into_owned());
        }
    }
    None
}

/// Top-level windows with a title that are on screen: the window
/// manager's list (`_NET_CLIENT_LIST`) where there is one, else the root's
/// mapped children.
fn windows(conn: &RustConnection, root: Window) -> Vec<(String, Window, u16, u16)> {
    let listed: Vec<Window> = atom(conn, "_NET_CLIENT_LIST")
        .and_then(|list| {
            conn.get_property(false, root, list, xproto::AtomEnum::WINDOW, 0, 4096)
                .ok()?
                .reply()
                .ok()
        })
        .and_then(|r| r.value32().map(|v| v.collect()))
        .unwrap_or_default();
    let candidates = if listed.is_empty() {
        conn.query_tree(root)
            .ok()
            .and_then(|c| c.reply().ok())
            .map(|t| t.children)
            .unwrap_or_default()
    } else {
        listed
    };
    candidates
        .into_iter()
        .filter_map(|w| {
            let attrs = conn.get_window_attributes(w).ok()?.reply().ok()?;
            if attrs.map_state != MapState::VIEWABLE || attrs.override_redirect {
                return None;
            }
            let geometry = conn.get_geometry(w).ok()?.reply().ok()?;
            if geometry.width < 32 || geometry.height < 32 {
                return None;
            }
            let title = window_title(conn, w)?;
            Some((title, w, geometry.width, geometry.height))
        })
        .collect()
}

/// Lists the monitors and windows of `display`.
pub fn list_sources(display: Option<&str>) -> Result<Vec<SourceInfo>, ScreenError> {
    let (conn, root) = connect(display)?;
    let mut out: Vec<SourceInfo> = monitors(&conn, root)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, (name, target))| match target {
            Target::Area { width, height, .. } => Some(SourceInfo {
                id: format!("screen:{i}"),
                name,
                kind: SourceKind::Screen,
                width: u32::from(width),
                height: u32::from(height),
            }),
            Target::Window(_) => None,
        })
        .collect();
    out.extend(
        windows(&conn, root)
            .into_iter()
            .map(|(name, w, width, height)| SourceInfo {
                id: format!("window:{w:#x}"),
                name,
                kind: SourceKind::Window,
                width: u32::from(width),
                height: u32::from(height),
            }),
    );
    Ok(out)
}

/// Memory shared with the X server, mapped into this process.
struct Segment {
    id: shm::Seg,
    ptr: *mut libc::c_void,
    len: usize,
    _fd: OwnedFd,
}

// SAFETY: the mapping is owned by the segment and only read through
// `&self`/`&mut self` of the one source that holds it.
unsafe impl Send for Segment {}

impl Segment {
    /// Asks the server for a segment of `len` bytes (MIT-SHM 1.2) and maps it.
    fn create(conn: &RustConnection, len: usize) -> Option<Segment> {
        let version = conn.shm_query_version().ok()?.reply().ok()?;
        if (version.major_version, version.minor_version) < (1, 2) {
            return None;
        }
        let id = conn.generate_id().ok()?;
        let reply = conn
            .shm_create_segment(id, u32::try_from(len).ok()?, false)
            .ok()?
            .reply()
            .ok()?;
        let fd = reply.shm_fd;
        // SAFETY: maps `len` bytes of the segment the server created for
        // us; the fd is valid (owned) and the mapping is unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let _ = conn.shm_detach(id);
            return None;
        }
        Some(Segment {
            id,
            ptr,
            len,
            _fd: fd,
        })
    }

    /// The first `len` bytes of the mapping.
    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: the mapping is `self.len` bytes long and lives as long as
        // `self`; the X server wrote it before the GetImage reply came.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), len.min(self.len)) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `create`, once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// A drawable's rectangle to read, and where it sits on the root window
/// (for the cursor).
struct Region {
    drawable: Window,
    x: i16,
    y: i16,
    width: u16,
    height: u16,
    left: i16,
    top: i16,
}

/// A monitor or window of an X display.
pub struct X11Source {
    conn: RustConnection,
    root: Window,
    info: SourceInfo,
    target: Target,
    segment: Option<Segment>,
    cursor: bool,
    pixels: Vec<u8>,
}

impl X11Source {
    /// Opens `id` (from [`list_sources`]; `None`: the first screen).
    pub fn open(display: Option<&str>, id: Option<&str>) -> Result<Self, ScreenError> {
        let (conn, root) = connect(display)?;
        let sources = list_sources(display)?;
        let info = match id {
            None => sources.into_iter().find(|s| s.kind == SourceKind::Screen),
            Some(id) => sources.into_iter().find(|s| s.id == id),
        }
        .ok_or_else(|| ScreenError::Gone(format!("no screen or window {}", id.unwrap_or(""))))?;
        let target = if let Some(n) = info.id.strip_prefix("screen:") {
            let index: usize = n.parse().map_err(failed)?;
            monitors(&conn, root)?
                .get(index)
                .map(|(_, t)| *t)
                .ok_or_else(|| ScreenError::Gone(info.name.clone()))?
        } else {
            let w = info
                .id
                .strip_prefix("window:0x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| ScreenError::Gone(info.id.clone()))?;
            Target::Window(w)
        };
        // The segment fits the whole root window, so a window that grows
        // still fits.
        let root_size = conn
            .get_geometry(root)
            .map_err(failed)?
            .reply()
            .map_err(failed)?;
        let segment = Segment::create(
            &conn,
            usize::from(root_size.width) * usize::from(root_size.height) * 4,
        );
        let cursor = conn
            .xfixes_query_version(4, 0)
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some();
        Ok(X11Source {
            conn,
            root,
            info,
            target,
            segment,
            cursor,
            pixels: Vec::new(),
        })
    }

    /// Whether pictures come through shared memory.
    pub fn uses_shared_memory(&self) -> bool {
        self.segment.is_some()
    }

    /// What to read this time.
    fn region(&self) -> Result<Region, ScreenError> {
        match self.target {
            Target::Area {
                x,
                y,
                width,
                height,
            } => Ok(Region {
                drawable: self.root,
                x,
                y,
                width,
                height,
                left: x,
                top: y,
            }),
            Target::Window(w) => {
                let gone = |_| ScreenError::Gone(format!("the window “{}” closed", self.info.name));
                let geometry = self
                    .conn
                    .get_geometry(w)
                    .map_err(failed)?
                    .reply()
                    .map_err(gone)?;
                let place = self
                    .conn
                    .translate_coordinates(w, self.root, 0, 0)
                    .map_err(failed)?
                    .reply()
                    .map_err(gone)?;
                Ok(Region {
                    drawable: w,
                    x: 0,
                    y: 0,
                    width: geometry.width,
                    height: geometry.height,
                    left: place.dst_x,
                    top: place.dst_y,
                })
            }
        }
    }

    /// Draws the cursor (premultiplied ARGB) into the BGRA picture whose
    /// top-left corner is at (`left`, `top`) on the root window.
    fn draw_cursor(&self, pixels: &mut [u8], width: usize, height: usize, left: i16, top: i16) {
        let Some(image) = self
            .conn
            .xfixes_get_cursor_image()
            .ok()
            .and_then(|c| c.reply().ok())
        else {
            return;
        };
        let x0 = i32::from(image.x) - i32::from(image.xhot) - i32::from(left);
        let y0 = i32::from(image.y) - i32::from(image.yhot) - i32::from(top);
        let (cw, ch) = (usize::from(image.width), usize::from(image.height));
        for cy in 0..ch {
            let y = y0 + cy as i32;
            if y < 0 || y as usize >= height {
                continue;
            }
            for cx in 0..cw {
                let x = x0 + cx as i32;
                if x < 0 || x as usize >= width {
                    continue;
                }
                let Some(&argb) = image.cursor_image.get(cy * cw + cx) else {
                    continue;
                };
                let alpha = argb >> 24;
                if alpha == 0 {
                    continue;
                }
                let at = (y as usize * width + x as usize) * 4;
                let Some(px) = pixels.get_mut(at..at + 3) else {
                    continue;
                };
                // Premultiplied source over the picture, per channel (B, G, R).
                for (i, shift) in [0u32, 8, 16].into_iter().enumerate() {
                    let src = (argb >> shift) & 0xff;
                    let dst = u32::from(px[i]);
                    px[i] = (src + dst * (255 - alpha) / 255).min(255) as u8;
                }
            }
        }
    }
}

impl ScreenSource for X11Source {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn capture(&mut self, captured: Duration) -> Result<VideoFrame, ScreenError> {
        let Region {
            drawable,
            x,
            y,
            width,
            height,
            left,
            top,
        } = self.region()?;
        let (w, h) = (usize::from(width), usize::from(height));
        let len = w * h * 4;
        let from_shm = match &self.segment {
            Some(seg) if len <= seg.len => {
                let reply = self
                    .conn
                    .shm_get_image(
                        drawable,
                        x,
                        y,
                        width,
                        height,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        seg.id,
                        0,
                    )
                    .map_err(failed)?
                    .reply();
                match reply {
                    Ok(r) if r.depth == 24 || r.depth == 32 => {
                        self.pixels.clear();
                        self.pixels.extend_from_slice(seg.bytes(len));
                        true
                    }
                    Ok(r) => {
                        return Err(ScreenError::Unavailable(format!(
                            "a {}-bit display is not supported",
                            r.depth
                        )))
                    }
                    Err(e) => {
                        return Err(ScreenError::Gone(format!("{}: {e}", self.info.name)));
                    }
                }
            }
            _ => false,
        };
        if !from_shm {
            let reply = self
                .conn
                .get_image(ImageFormat::Z_PIXMAP, drawable, x, y, width, height, !0)
                .map_err(failed)?
                .reply()
                .map_err(|e| ScreenError::Gone(format!("{}: {e}", self.info.name)))?;
            self.pixels = reply.data;
        }
        if self.cursor {
            let mut pixels = std::mem::take(&mut self.pixels);
            self.draw_cursor(&mut pixels, w, h, left, top);
            self.pixels = pixels;
        }
        VideoFrame::from_packed(PixelLayout::Bgra, w, h, None, &self.pixels, captured)
            .map_err(failed)
    }
}

impl Drop for X11Source {
    fn drop(&mut self) {
        if let Some(seg) = &self.segment {
            let _ = self.conn.shm_detach(seg.id);
            let _ = self.conn.flush();
        }
    }
}

/// A private X server (Xvfb) for tests and benchmarks, stopped on drop.
pub struct PrivateDisplay {
    child: std::process::Child,
    /// Its display name, e.g. `:5`.
    pub display: String,
}

impl PrivateDisplay {
    /// Starts one with a `width` x `height` screen; `None` without Xvfb.
    pub fn start(width: u32, height: u32) -> Option<PrivateDisplay> {
        use std::io::Read as _;
        let mut child = std::process::Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .args(["-nolisten", "tcp"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut out = child.stdout.take()?;
        let mut number = String::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).ok()? == 1 && byte[0] != b'\n' {
            number.push(char::from(byte[0]));
        }
        Some(PrivateDisplay {
            child,
            display: format!(":{}", number.trim()),
        })
    }
}

impl Drop for PrivateDisplay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an X display can be reached (tests skip without one).
pub fn display_available(display: Option<&str>) -> bool {
    connect(display).is_ok()
}
