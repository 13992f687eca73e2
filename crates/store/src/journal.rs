//! The ingest journal: where the server makes acknowledged events durable before they reach
//! DuckDB.
//!
//! Why it exists: a 200 must mean durable, and with a closed loop of SDK clients the events in
//! flight bound a commit's size (32 clients × 100 events: 3,200 at most). DuckDB's fixed cost
//! per commit (transaction-local storage, WAL, fsync) then dominates. The journal makes the
//! acknowledgement cheap (one sequential write and one `fdatasync` per group commit) and lets
//! the events reach DuckDB in transactions as large as the backlog, not as the clients' loop.
//!
//! Format: numbered segment files `<dir>/<20-digit number>.log`, each an 8-byte magic then
//! records `[payload length u32 LE][CRC-32 of the payload u32 LE][payload]`; a payload is one
//! group commit's events (count u32, then each event field by field: strings length-prefixed,
//! times as seconds and nanoseconds). A new segment starts past 64 MB and at every start of
//! the writer, so a crash's torn tail is never appended to.
//!
//! Recovery ([`recover`]): every record of every segment, in order. A record cut short or
//! failing its CRC ends its segment's readable part (a write a crash interrupted: it was
//! never acknowledged, since acknowledgement waits for `fdatasync`); the bytes skipped are
//! logged. Opening a store ([`crate::DuckDbStore::open`]) replays the journal through the usual
//! deduplication, so events already in DuckDB are not stored twice, then deletes it.
//!
//! What it refuses to do: decide anything about events (validation happened before), or keep
//! anything once DuckDB holds it ([`remove_before`] deletes applied segments).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use upmarket_core::{Event, EventKind, IngestSource, JsonObject};

use crate::{PreparedEvent, StoreError};

/// The journal's directory inside a data directory.
pub const JOURNAL_DIR: &str = "journal";
/// A segment grows to about this size before the next one starts.
const SEGMENT_BYTES: u64 = 64 << 20;
const MAGIC: &[u8; 8] = b"UPMJRN01";
/// Codes of the event kinds and sources, by position (decoding); [`kind_code`] and
/// [`source_code`] encode with exhaustive matches, so a new variant cannot go unnoticed (and
/// the round-trip tests fail if `EventKind::ALL` is ever reordered).
const KINDS: [EventKind; 6] = EventKind::ALL;
const SOURCES: [IngestSource; 3] = [
    IngestSource::Segment,
    IngestSource::Posthog,
    IngestSource::Import,
];

/// The open journal of a writer: appends records to its newest segment.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    segment: u64,
    size: u64,
    buf: Vec<u8>,
    /// A write failed: its record may be partly on disk, so the next one starts a new
    /// segment (recovery reads a segment up to its first unreadable record).
    torn: bool,
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Journal {
        path: path.display().to_string(),
        source,
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// The segments in `dir`, oldest first (none when it does not exist).
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = number {
            found.push((n, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes the segments numbered below `segment`: every event in them is in the store.
pub fn remove_before(dir: &Path, segment: u64) -> Result<(), StoreError> {
    for (n, path) in segments(dir)? {
        if n < segment {
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

/// Every event in the journal at `dir`, oldest first.
pub fn recover(dir: &Path) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    for (_, path) in segments(dir)? {
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| io_error(&path, e))?;
        let read = read_segment(&bytes, &mut events);
        if read < bytes.len() {
            tracing::warn!(
                segment = %path.display(),
                offset = read,
                skipped_bytes = bytes.len() - read,
                "journal segment ends in an unreadable record (a write cut by a crash, never acknowledged); skipped"
            );
        }
    }
    Ok(events)
}

/// Decodes the records of one segment into `out`; returns how many bytes were readable.
fn read_segment(bytes: &[u8], out: &mut Vec<Event>) -> usize {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return 0;
    }
    let mut at = MAGIC.len();
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let mut reader = Reader(payload);
        match reader.events() {
            Some(events) if reader.0.is_empty() => out.extend(events),
            _ => break,
        }
        at += 8 + len;
    }
    at
}

impl Journal {
    /// Starts a new segment in `dir` (created if needed), numbered after every existing one.
    pub fn create(dir: &Path) -> Result<Journal, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let next = segments(dir)?.last().map_or(1, |(n, _)| n + 1);
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            file: Self::start(dir, next)?,
            segment: next,
            size: MAGIC.len() as u64,
            buf: Vec::new(),
            torn: false,
        };
        journal.buf.reserve(1 << 20);
        Ok(journal)
    }

    fn start(dir: &Path, n: u64) -> Result<File, StoreError> {
        let path = segment_path(dir, n);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&path, e))?;
        // The new file's name must be durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, e))?;
        Ok(file)
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `events` as one record and waits until it is on disk. Returns the number of the
    /// segment that holds it.
    pub fn append(&mut self, events: &[&PreparedEvent]) -> Result<u64, StoreError> {
        if self.size >= SEGMENT_BYTES || self.torn {
            self.file = Self::start(&self.dir, self.segment + 1)?;
            self.segment += 1;
            self.size = MAGIC.len() as u64;
            self.torn = false;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 8]);
        put_u32(&mut self.buf, events.len());
        for p in events {
            encode(&mut self.buf, &p.event);
        }
        let payload_len = self.buf.len() - 8;
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.torn = true;
            return Err(io_error(&segment_path(&self.dir, self.segment), e));
        }
        self.size += self.buf.len() as u64;
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::with_capacity(1 << 20);
        }
        Ok(self.segment)
    }
}

fn put_u32(buf: &mut Vec<u8>, n: usize) {
    buf.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => buf.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(s) => {
            put_u32(buf, s.len());
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

fn put_time(buf: &mut Vec<u8>, t: Option<DateTime<Utc>>) {
    match t {
        None => buf.push(0),
        Some(t) => {
            buf.push(1);
            buf.extend_from_slice(&t.timestamp().to_le_bytes());
            buf.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
        }
    }
}

fn kind_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::Track => 0,
        EventKind::Identify => 1,
        EventKind::Group => 2,
        EventKind::Page => 3,
        EventKind::Screen => 4,
        EventKind::Alias => 5,
    }
}

fn source_code(source: IngestSource) -> u8 {
    match source {
        IngestSource::Segment => 0,
        IngestSource::Posthog => 1,
        IngestSource::Import => 2,
    }
}

fn encode(buf: &mut Vec<u8>, e: &Event) {
    buf.push(kind_code(e.kind));
    buf.push(source_code(e.source));
    for s in [
        e.event.as_deref(),
        e.name.as_deref(),
        e.user_id.as_deref(),
        e.anonymous_id.as_deref(),
        e.group_id.as_deref(),
        e.previous_id.as_deref(),
        Some(e.message_id.as_str()),
        e.properties.text(),
        e.traits.text(),
        e.context.text(),
        e.email.as_deref(),
    ] {
        put_str(buf, s);
    }
    for t in [
        Some(e.timestamp),
        e.original_timestamp,
        e.sent_at,
        Some(e.received_at),
    ] {
        put_time(buf, t);
    }
}

/// Reads a payload; every method returns None at a malformed byte.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn string(&mut self) -> Option<Option<String>> {
        let len = self.u32()?;
        if len == u32::MAX {
            return Some(None);
        }
        let bytes = self.take(len as usize)?;
        Some(Some(std::str::from_utf8(bytes).ok()?.to_string()))
    }

    fn time(&mut self) -> Option<Option<DateTime<Utc>>> {
        if self.byte()? == 0 {
            return Some(None);
        }
        let secs = i64::from_le_bytes(self.take(8)?.try_into().ok()?);
        let nanos = self.u32()?;
        Some(Some(DateTime::from_timestamp(secs, nanos)?))
    }

    fn event(&mut self) -> Option<Event> {
        // Fields in `encode`'s order (struct fields are evaluated in the order written).
        let kind = *KINDS.get(self.byte()? as usize)?;
        let source = *SOURCES.get(self.byte()? as usize)?;
        Some(Event {
            kind,
            source,
            event: self.string()?,
            name: self.string()?,
            user_id: self.string()?,
            anonymous_id: self.string()?,
            group_id: self.string()?,
            previous_id: self.string()?,
            message_id: self.string()??,
            properties: JsonObject::from_stored(self.string()?),
            traits: JsonObject::from_stored(self.string()?),
            context: JsonObject::from_stored(self.string()?),
            email: self.string()?,
            timestamp: self.time()??,
            original_timestamp: self.time()?,
            sent_at: self.time()?,
            received_at: self.time()??,
        })
    }

    fn events(&mut self) -> Option<Vec<Event>> {
        let n = self.u32()? as usize;
        // Each event takes at least 50 bytes: a count beyond that is not a record.
        if n > self.0.len() / 50 + 1 {
            return None;
        }
        (0..n).map(|_| self.event()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};

    fn event(json: &str) -> PreparedEvent {
        let ctx = ParseContext {
            received_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            source: IngestSource::Posthog,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        PreparedEvent::new(parse_event(json, None, &BatchDefaults::default(), &ctx).unwrap())
    }

    #[test]
    fn events_come_back_exactly_as_written_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = event(
            r#"{"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m1",
                "traits":{"email":"Ann@Acme.com","name":"Ann"},"context":{"ip":"1.2.3.4"},
                "sentAt":"2024-01-02T03:04:05.678Z","timestamp":"2024-01-02T03:04:05Z"}"#,
        );
        let b = event(
            r#"{"type":"track","event":"Report Créé ✓","anonymousId":"a1","messageId":"m2",
                "properties":{"n":1.5,"s":"x\"y"}}"#,
        );
        let mut j = Journal::create(dir.path()).unwrap();
        assert_eq!(j.append(&[&a, &b]).unwrap(), 1);
        drop(j);
        let mut j = Journal::create(dir.path()).unwrap();
        assert_eq!(
            j.append(&[&b]).unwrap(),
            2,
            "a restart starts a new segment"
        );
        let back = recover(dir.path()).unwrap();
        assert_eq!(
            back,
            vec![a.event.clone(), b.event.clone(), b.event.clone()]
        );
        remove_before(dir.path(), 2).unwrap();
        assert_eq!(recover(dir.path()).unwrap(), vec![b.event]);
    }

    fn two_tracks() -> (PreparedEvent, PreparedEvent) {
        (
            event(r#"{"type":"track","event":"A","userId":"u1","messageId":"m1"}"#),
            event(r#"{"type":"track","event":"B","userId":"u1","messageId":"m2"}"#),
        )
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_segment_and_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_tracks();
        let mut j = Journal::create(dir.path()).unwrap();
        j.append(&[&a]).unwrap();
        j.append(&[&b]).unwrap();
        drop(j);
        let path = segment_path(dir.path(), 1);
        let full = std::fs::read(&path).unwrap();
        // Cut inside the second record, then flip a byte of it instead.
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        assert_eq!(recover(dir.path()).unwrap(), vec![a.event.clone()]);
        let mut flipped = full.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x55;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(recover(dir.path()).unwrap(), vec![a.event.clone()]);
        std::fs::write(&path, &full).unwrap();
        assert_eq!(recover(dir.path()).unwrap(), vec![a.event, b.event]);
    }

    /// A failed write may leave part of its record behind: the next record goes to a new
    /// segment, so that recovery (which stops a segment at its first unreadable record)
    /// still finds it.
    #[test]
    fn after_a_failed_write_the_next_record_starts_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_tracks();
        let mut j = Journal::create(dir.path()).unwrap();
        j.append(&[&a]).unwrap();
        let path = segment_path(dir.path(), 1);
        // A handle that cannot write makes the next append fail; then half a record lands.
        j.file = File::open(&path).unwrap();
        assert!(j.append(&[&b]).is_err());
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(j.append(&[&b]).unwrap(), 2);
        assert_eq!(recover(dir.path()).unwrap(), vec![a.event, b.event]);
    }

    #[test]
    fn codes_are_the_positions_decoding_reads() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(usize::from(kind_code(*k)), i, "{k:?}");
        }
        for (i, s) in SOURCES.iter().enumerate() {
            assert_eq!(usize::from(source_code(*s)), i, "{s:?}");
        }
    }

    #[test]
    fn a_missing_directory_is_an_empty_journal() {
        let dir = tempfile::tempdir().unwrap();
        assert!(recover(&dir.path().join("nothing")).unwrap().is_empty());
    }
}
