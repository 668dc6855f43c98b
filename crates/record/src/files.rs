//! Recording files on disk: finding the ones a crash left unfinished and
//! repairing them, and naming new ones.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::mkv::{self, MkvError, Repaired};

/// Whether `path` is a recording of ours whose Segment still has the
/// "unknown" size: written up to a crash (or still being written).
pub fn is_unfinished(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let Ok(read) = read_up_to(&mut file, &mut head) else {
        return false;
    };
    let head = &head[..read];
    // EBML header: 4-byte ID, a 1-byte size (0x80 | n), n bytes; then the
    // Segment's 4-byte ID and our 8-byte size field.
    if head.len() < 5 || head[..4] != [0x1A, 0x45, 0xDF, 0xA3] || head[4] & 0x80 == 0 {
        return false;
    }
    let segment = 5 + usize::from(head[4] & 0x7F);
    head.get(segment..segment + 12).is_some_and(|s| {
        s[..4] == [0x18, 0x53, 0x80, 0x67]
            && s[4..] == [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    })
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match file.read(&mut buf[total..])? {
            0 => break,
            n => total += n,
        }
    }
    Ok(total)
}

/// The unfinished recordings (`*.webm`) in `dir`, oldest first.
pub fn find_unfinished(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "webm") && is_unfinished(p))
        .map(|p| {
            let modified = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, p)
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Repairs and finalises the recording at `path` in place (see
/// [`mkv::repair`]).
pub fn repair_file(path: &Path) -> Result<Repaired, MkvError> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    file.seek(SeekFrom::Start(0))?;
    mkv::repair(&mut file, |f, len| f.set_len(len))
}

/// A file name for a recording of `topic` started at `local_time`
/// (`YYYY-MM-DD HH.MM`): the topic made safe for every file system.
pub fn file_name(topic: &str, local_time: &str) -> String {
    let cleaned: String = topic
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut words = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    while words.len() > 80 {
        words.pop();
    }
    let words = words.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let topic = if words.is_empty() { "Meeting" } else { words };
    format!("{topic} {local_time}.webm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_everywhere() {
        assert_eq!(
            file_name("Weekly: plans/ideas?", "2026-11-24 10.00"),
            "Weekly plans ideas 2026-11-24 10.00.webm"
        );
        assert_eq!(file_name("  ..\n", "t"), "Meeting t.webm");
        assert_eq!(
            file_name("会議 123 456 789", "t"),
            "会議 123 456 789 t.webm"
        );
        let long = file_name(&"é".repeat(100), "t");
        assert!(long.len() < 100, "{long}");
    }

    #[test]
    fn an_unfinished_recording_is_found_and_repaired() {
        use crate::mkv::{Track, Writer};
        let dir = std::env::temp_dir().join(format!("conclave-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let cut = dir.join("cut.webm");
        let done = dir.join("done.webm");
        for (path, finish) in [(&cut, false), (&done, true)] {
            let file = std::fs::File::create(path).expect("file");
            let mut writer =
                Writer::create(file, vec![Track::opus(1, "Mix", 1)], "", 1000).expect("writer");
            for ms in (0..2500).step_by(20) {
                writer.write_frame(1, ms, true, &[1; 30]).expect("frame");
            }
            if finish {
                writer.finish().expect("finish");
            } else {
                writer.flush().expect("flush");
                drop(writer);
            }
        }
        std::fs::write(dir.join("other.webm"), b"not ours").expect("write");
        assert_eq!(find_unfinished(&dir), vec![cut.clone()]);
        let repaired = repair_file(&cut).expect("repair");
        assert_eq!(repaired.duration_ms, 2480);
        assert!(find_unfinished(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
