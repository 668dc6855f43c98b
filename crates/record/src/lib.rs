//! Local recording (R1–R4): everything a recording needs that is not the
//! meeting itself. [`mkv`] writes WebM/Matroska crash-safely: clusters of at
//! most a second are written whole and synced, so a crash, `kill -9` or power
//! loss leaves a playable file that lacks at most the last second; a clean
//! stop adds the index (cues) and the duration; [`mkv::repair`] finalises a
//! file a crash cut off, and [`files`] finds such files. [`compositor`] lays
//! the meeting out on one canvas; [`recorder`] runs a recording.
//!
//! Must not: open network connections, or write anywhere but the file the
//! user's chosen folder names.

pub mod compositor;
pub mod files;
pub mod mkv;
pub mod recorder;
