//! The disk spool: events waiting while the telemetry API is unreachable.
//!
//! A spool is a directory of segment files named by a sequence number
//! (`00000000000000000042.jsonl`), one JSON line per event with the client
//! info of its batch. Appends are fsynced before they return, and a new
//! segment's directory entry is fsynced too, so an event the spool took
//! survives a crash of the process or the machine. Segments are replayed
//! oldest first and deleted once the API has answered for every event in
//! them; a segment sent twice (a crash between sending and deleting) is
//! harmless because the API ignores event ids it has seen.
//!
//! A line cut short by a crash during an append is skipped on replay (it
//! was never acknowledged to anyone).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weft_telemetry_wire::{ClientInfo, Event};

/// A segment is closed for appends after this many events.
const SEGMENT_EVENTS: usize = 5_000;

/// One spooled event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SpooledEvent {
    pub client: ClientInfo,
    pub event: Event,
}

pub struct Spool {
    dir: PathBuf,
    /// The segment appends go to, and its event count.
    open: Option<(PathBuf, File, usize)>,
    next_seq: u64,
}

impl Spool {
    /// Opens (creating) the spool directory.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut spool = Spool { dir: dir.to_owned(), open: None, next_seq: 0 };
        spool.next_seq = spool.segments()?.iter().filter_map(|p| segment_seq(p)).max().map_or(0, |s| s + 1);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends events and fsyncs them.
    pub fn append(&mut self, events: &[SpooledEvent]) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if self.open.as_ref().is_none_or(|(_, _, n)| *n >= SEGMENT_EVENTS) {
            let path = self.dir.join(format!("{:020}.jsonl", self.next_seq));
            self.next_seq += 1;
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // The new name must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            self.open = Some((path, file, 0));
        }
        let (_, file, count) = self.open.as_mut().expect("opened above");
        let mut buffer = Vec::with_capacity(events.len() * 512);
        for event in events {
            serde_json::to_writer(&mut buffer, event).map_err(io::Error::other)?;
            buffer.push(b'\n');
        }
        file.write_all(&buffer)?;
        file.sync_data()?;
        *count += events.len();
        Ok(())
    }

    /// Closes the segment appends go to, so that it can be replayed.
    pub fn seal(&mut self) {
        self.open = None;
    }

    /// Segment files, oldest first.
    pub fn segments(&self) -> io::Result<Vec<PathBuf>> {
        let mut segments: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| segment_seq(path).is_some())
            .collect();
        segments.sort();
        Ok(segments)
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.segments()?.is_empty())
    }

    /// The events of one segment; lines that do not parse (a torn last
    /// write) are skipped and counted.
    pub fn read(path: &Path) -> io::Result<(Vec<SpooledEvent>, usize)> {
        let mut events = Vec::new();
        let mut skipped = 0;
        for line in BufReader::new(File::open(path)?).lines() {
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

    /// Deletes a replayed segment.
    pub fn remove(&mut self, path: &Path) -> io::Result<()> {
        if self.open.as_ref().is_some_and(|(open, _, _)| open == path) {
            self.open = None;
        }
        fs::remove_file(path)
    }
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".jsonl")?.parse().ok()
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
        let segments = spool.segments().unwrap();
        assert_eq!(segments.len(), 2, "a reopened spool starts a new segment");
        let ids: Vec<u128> =
            segments.iter().flat_map(|s| Spool::read(s).unwrap().0).map(|e| e.event.id.as_u128()).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        for segment in &segments {
            spool.remove(segment).unwrap();
        }
        assert!(spool.is_empty().unwrap());
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&[event(1)]).unwrap();
        let segment = spool.segments().unwrap().remove(0);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(br#"{"client":{},"event":{"id":"#).unwrap();
        let (events, skipped) = Spool::read(&segment).unwrap();
        assert_eq!((events.len(), skipped), (1, 1));
    }
}
