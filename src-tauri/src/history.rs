//! Local meeting history (D1): the meetings this app took part in and who
//! was there, as seen by this client, in SQLite in the app's data
//! directory. Never chat text: there is no column for it. Entries older
//! than the retention setting are purged on start.

use std::path::Path;

use rusqlite::{params, Connection};
use serde::Serialize;

/// One meeting in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct HistoryEntry {
    /// Row id (for deleting).
    #[ts(type = "number")]
    pub id: i64,
    /// Meeting ID (decimal).
    pub room: String,
    /// Whether this app hosted it.
    pub hosted: bool,
    /// When we joined (Unix seconds).
    #[ts(type = "number")]
    pub started: i64,
    /// When we left (Unix seconds; `None` while in it, or after a crash).
    #[ts(type = "number | null")]
    pub ended: Option<i64>,
    /// The names of everyone seen in it, ours included, in order of arrival.
    pub attendees: Vec<String>,
}

/// The history store.
pub struct History {
    db: Connection,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl History {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<History> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        Self::with(Connection::open(path)?)
    }

    /// A store in memory (tests).
    #[cfg(test)]
    pub fn in_memory() -> rusqlite::Result<History> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(db: Connection) -> rusqlite::Result<History> {
        db.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE IF NOT EXISTS meetings (
                 id INTEGER PRIMARY KEY,
                 room TEXT NOT NULL,
                 hosted INTEGER NOT NULL DEFAULT 0,
                 started INTEGER NOT NULL,
                 ended INTEGER
             );
             CREATE TABLE IF NOT EXISTS attendance (
                 meeting INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
                 name TEXT NOT NULL,
                 joined INTEGER NOT NULL,
                 left_at INTEGER
             );
             CREATE INDEX IF NOT EXISTS attendance_meeting ON attendance(meeting);",
        )?;
        Ok(History { db })
    }

    /// Records that we joined `room`; returns the meeting's row id.
    pub fn start(&self, room: &str, hosted: bool, at: i64) -> rusqlite::Result<i64> {
        self.db.execute(
            "INSERT INTO meetings (room, hosted, started) VALUES (?1, ?2, ?3)",
            params![room, hosted, at],
        )?;
        Ok(self.db.last_insert_rowid())
    }

    /// Records that `name` was present from `at`.
    pub fn arrived(&self, meeting: i64, name: &str, at: i64) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT INTO attendance (meeting, name, joined) VALUES (?1, ?2, ?3)",
            params![meeting, name, at],
        )?;
        Ok(())
    }

    /// Records that `name` left at `at`.
    pub fn departed(&self, meeting: i64, name: &str, at: i64) -> rusqlite::Result<()> {
        self.db.execute(
            "UPDATE attendance SET left_at = ?3
             WHERE rowid = (SELECT rowid FROM attendance
                            WHERE meeting = ?1 AND name = ?2 AND left_at IS NULL
                            ORDER BY joined DESC LIMIT 1)",
            params![meeting, name, at],
        )?;
        Ok(())
    }

    /// Records that we left.
    pub fn end(&self, meeting: i64, at: i64) -> rusqlite::Result<()> {
        self.db.execute(
            "UPDATE meetings SET ended = ?2 WHERE id = ?1",
            params![meeting, at],
        )?;
        self.db.execute(
            "UPDATE attendance SET left_at = ?2 WHERE meeting = ?1 AND left_at IS NULL",
            params![meeting, at],
        )?;
        Ok(())
    }

    /// Meetings, newest first, whose ID or an attendee's name contains
    /// `search` (all with an empty search).
    pub fn list(&self, search: &str) -> rusqlite::Result<Vec<HistoryEntry>> {
        let pattern = format!(
            "%{}%",
            search
                .trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        // An ID is matched on its digits, whatever spacing the user typed;
        // a search without digits matches no ID (SQL NULL).
        let digits: String = search.chars().filter(char::is_ascii_digit).collect();
        let digits =
            (!digits.is_empty() || search.trim().is_empty()).then(|| format!("%{digits}%"));
        let mut query = self.db.prepare(
            "SELECT id, room, hosted, started, ended FROM meetings m
             WHERE m.room LIKE ?2
                OR EXISTS (SELECT 1 FROM attendance a WHERE a.meeting = m.id
                           AND a.name LIKE ?1 ESCAPE '\\')
             ORDER BY started DESC, id DESC",
        )?;
        let rows = query.query_map(params![pattern, digits], |r| {
            Ok(HistoryEntry {
                id: r.get(0)?,
                room: r.get(1)?,
                hosted: r.get(2)?,
                started: r.get(3)?,
                ended: r.get(4)?,
                attendees: Vec::new(),
            })
        })?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        let mut names = self
            .db
            .prepare("SELECT name FROM attendance WHERE meeting = ?1 ORDER BY joined, rowid")?;
        for entry in &mut out {
            let mut seen: Vec<String> = Vec::new();
            for name in names.query_map([entry.id], |r| r.get::<_, String>(0))? {
                let name = name?;
                if !seen.contains(&name) {
                    seen.push(name);
                }
            }
            entry.attendees = seen;
        }
        Ok(out)
    }

    /// Deletes one meeting and its attendance.
    pub fn delete(&self, meeting: i64) -> rusqlite::Result<()> {
        self.db
            .execute("DELETE FROM meetings WHERE id = ?1", [meeting])?;
        Ok(())
    }

    /// Deletes everything.
    pub fn clear(&self) -> rusqlite::Result<()> {
        self.db
            .execute_batch("DELETE FROM attendance; DELETE FROM meetings; VACUUM;")
    }

    /// Deletes meetings that started more than `days` days before `now`;
    /// returns how many.
    pub fn purge_older_than(&self, days: u32, now: i64) -> rusqlite::Result<usize> {
        let cutoff = now - i64::from(days) * 86_400;
        self.db
            .execute("DELETE FROM meetings WHERE started < ?1", [cutoff])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meetings_attendance_search_delete_and_retention() {
        let h = History::in_memory().expect("store");
        let old = h.start("111222333", false, 1_000).expect("start");
        h.arrived(old, "Ada", 1_000).expect("arrive");
        h.end(old, 2_000).expect("end");
        let m = h.start("444555666", true, 100_000).expect("start");
        for (name, at) in [("Ada", 100_000), ("Grace", 100_010), ("Linus", 100_020)] {
            h.arrived(m, name, at).expect("arrive");
        }
        h.departed(m, "Grace", 100_500).expect("depart");
        h.arrived(m, "Grace", 100_600).expect("again");
        h.end(m, 101_000).expect("end");

        let all = h.list("").expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].room, "444555666");
        assert_eq!(all[0].attendees, ["Ada", "Grace", "Linus"]);
        assert_eq!(all[0].ended, Some(101_000));
        assert!(all[0].hosted);
        // By name, by ID with the spaces people type, and nothing for others.
        assert_eq!(h.list("linus").expect("search").len(), 1);
        assert_eq!(h.list("444 555").expect("search")[0].room, "444555666");
        assert!(h.list("Nobody").expect("search").is_empty());
        assert!(
            h.list("%").expect("search").is_empty(),
            "wildcards are literal"
        );

        // Retention: 30 days after the second meeting, the first is gone.
        assert_eq!(
            h.purge_older_than(30, 100_000 + 29 * 86_400)
                .expect("purge"),
            1
        );
        assert_eq!(h.list("").expect("list").len(), 1);
        h.delete(m).expect("delete");
        assert!(h.list("").expect("list").is_empty());
        let again = h.start("777888999", false, 5).expect("start");
        h.arrived(again, "Ada", 5).expect("arrive");
        h.clear().expect("clear");
        assert!(h.list("").expect("list").is_empty());
    }

    #[test]
    fn there_is_no_place_for_chat_text() {
        let h = History::in_memory().expect("store");
        let mut q = h
            .db
            .prepare("SELECT group_concat(name) FROM pragma_table_info('meetings') UNION ALL SELECT group_concat(name) FROM pragma_table_info('attendance')")
            .expect("query");
        let columns: Vec<String> = q
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("columns");
        assert_eq!(
            columns,
            [
                "id,room,hosted,started,ended",
                "meeting,name,joined,left_at"
            ]
        );
    }
}
