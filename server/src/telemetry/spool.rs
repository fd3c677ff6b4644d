//! The disk spool: events waiting while the telemetry API is unreachable.
//!
//! A spool is a directory of segment files, one JSON line per event with the
//! client info of its batch. Each append is one new segment: written to a
//! temporary file, fsynced, renamed into place and the directory fsynced, so
//! that an event the spool took survives a crash of the process or the
//! machine, and a visible segment is complete and never changes. Segment
//! names start with the time of the append in nanoseconds, so replays go
//! oldest first.
//!
//! Several `weft` processes (one per editor window) may share a spool
//! directory: any of them may replay any segment. Two replaying the same
//! segment at once send its events twice, which the API ignores (event
//! ids), and the second deletion finds nothing to delete.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use weft_telemetry_wire::{ClientInfo, Event};

/// Temporary files older than this are left over from a crash mid-append.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// One spooled event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SpooledEvent {
    pub client: ClientInfo,
    pub event: Event,
}

pub struct Spool {
    dir: PathBuf,
    /// Distinguishes this process's segment names from other processes'.
    writer: String,
    appended: u64,
}

impl Spool {
    /// Opens (creating) the spool directory and removes temporary files
    /// left over by crashes.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)?.filter_map(Result::ok) {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMPORARY));
            if entry.file_name().to_string_lossy().starts_with(".tmp-") && stale {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Spool {
            dir: dir.to_owned(),
            writer: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            appended: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes events as a new segment, durably.
    pub fn append(&mut self, events: &[SpooledEvent]) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::with_capacity(events.len() * 512);
        for event in events {
            serde_json::to_writer(&mut buffer, event).map_err(io::Error::other)?;
            buffer.push(b'\n');
        }
        self.appended += 1;
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("{nanos:020}-{}-{:06}.jsonl", self.writer, self.appended);
        let temporary = self.dir.join(format!(".tmp-{name}"));
        let mut file = File::create(&temporary)?;
        file.write_all(&buffer)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, self.dir.join(name))?;
        // The new name must survive a crash too.
        File::open(&self.dir)?.sync_all()
    }

    /// Segment files, oldest first.
    pub fn segments(&self) -> io::Result<Vec<PathBuf>> {
        let mut segments: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| is_segment(path))
            .collect();
        segments.sort();
        Ok(segments)
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.segments()?.is_empty())
    }

    /// The events of one segment (none if another process took it); lines
    /// that do not parse are skipped and counted.
    pub fn read(path: &Path) -> io::Result<(Vec<SpooledEvent>, usize)> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(err) => return Err(err),
        };
        let mut events = Vec::new();
        let mut skipped = 0;
        for line in BufReader::new(file).lines() {
            let line = match line {
                Ok(line) => line,
                Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                    skipped += 1;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(event) => events.push(event),
                Err(_) => skipped += 1,
            }
        }
        Ok((events, skipped))
    }

    /// Deletes a replayed segment (already gone is fine).
    pub fn remove(&mut self, path: &Path) -> io::Result<()> {
        match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

fn is_segment(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|name| name.ends_with(".jsonl") && name.as_bytes().first().is_some_and(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_telemetry_wire::{CompletionOutcome, EventBody};

    fn event(i: u128) -> SpooledEvent {
        let mut event = Event::now(EventBody::Shown(CompletionOutcome {
            completion_id: uuid::Uuid::from_u128(i),
            model: "m".into(),
        }));
        event.id = uuid::Uuid::from_u128(i);
        SpooledEvent { client: ClientInfo::default(), event }
    }

    fn ids(spool: &Spool) -> Vec<u128> {
        spool.segments().unwrap().iter().flat_map(|s| Spool::read(s).unwrap().0).map(|e| e.event.id.as_u128()).collect()
    }

    #[test]
    fn appended_events_are_replayed_in_order_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        assert!(spool.is_empty().unwrap());
        spool.append(&[event(1), event(2)]).unwrap();
        spool.append(&[event(3)]).unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&[event(4)]).unwrap();
        assert_eq!(spool.segments().unwrap().len(), 3, "one segment per append");
        assert_eq!(ids(&spool), [1, 2, 3, 4]);
        for segment in spool.segments().unwrap() {
            spool.remove(&segment).unwrap();
            spool.remove(&segment).unwrap();
        }
        assert!(spool.is_empty().unwrap());
    }

    #[test]
    fn processes_sharing_a_spool_never_lose_each_others_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Spool::open(dir.path()).unwrap();
        let mut replayer = Spool::open(dir.path()).unwrap();
        writer.append(&[event(1)]).unwrap();
        // The other process replays and deletes what is there...
        for segment in replayer.segments().unwrap() {
            assert_eq!(Spool::read(&segment).unwrap().0.len(), 1);
            replayer.remove(&segment).unwrap();
        }
        // ...and this one's next append is a new, complete segment.
        writer.append(&[event(2), event(3)]).unwrap();
        assert_eq!(ids(&replayer), [2, 3]);
        assert_eq!(Spool::read(&dir.path().join("00000000000000000001-gone.jsonl")).unwrap().0, []);
    }

    #[test]
    fn a_torn_line_is_skipped_and_temporary_files_are_not_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&[event(1)]).unwrap();
        let segment = spool.segments().unwrap().remove(0);
        let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(br#"{"client":{},"event":{"id":"#).unwrap();
        std::fs::write(dir.path().join(".tmp-00000000000000000002-x-000001.jsonl"), "partial").unwrap();
        assert_eq!(spool.segments().unwrap(), std::slice::from_ref(&segment));
        let (events, skipped) = Spool::read(&segment).unwrap();
        assert_eq!((events.len(), skipped), (1, 1));
    }
}
