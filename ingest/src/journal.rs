//! The journal: what happened to each message since the last snapshot.
//!
//! A full snapshot ([`crate::checkpoint`]) costs time in proportion to the
//! state (the dedupe ids of two days, every micro-grid's buckets), so it is
//! taken rarely (`snapshot_s`). Between snapshots each checkpoint appends the
//! messages handled since the previous one to this journal and fsyncs it;
//! only then are they acked. A restart loads the snapshot and replays the
//! journal's records past the snapshot's sequence, which rebuilds exactly the
//! state that was checkpointed.
//!
//! A record is `len: u32 | crc32(body): u32 | body`, body =
//! `kind: u8 | seq: u64 | reason: u8 | subject_len: u16 | subject |
//! detail_len: u32 | detail | payload`. Replay stops at the first torn or
//! corrupt record (a crash in the middle of an append) and cuts the file
//! there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gridwatch_model::event::Reason;

use crate::error::IngestError;

/// The journal's file name in the data dir.
pub const FILE: &str = "journal.bin";
const HEADER: usize = 8;

/// What became of a message, as far as replay needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Passed validation; applying it again decides applied, duplicate or
    /// conflict exactly as the first time.
    Event,
    /// Rejected by validation with this reason.
    Dead(Reason),
    /// A replay-clock tick.
    Tick,
}

impl Kind {
    fn code(self) -> (u8, u8) {
        match self {
            Kind::Event => (0, 0),
            Kind::Tick => (2, 0),
            Kind::Dead(r) => (
                1,
                Reason::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8,
            ),
        }
    }

    fn from_code(kind: u8, reason: u8) -> Option<Kind> {
        match kind {
            0 => Some(Kind::Event),
            1 => Reason::ALL.get(reason as usize).map(|r| Kind::Dead(*r)),
            2 => Some(Kind::Tick),
            _ => None,
        }
    }
}

/// One replayed record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub seq: u64,
    pub subject: String,
    pub detail: String,
    pub payload: bytes::Bytes,
}

/// The open journal with the records not yet committed.
pub struct Journal {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Bytes committed to the file.
    len: u64,
}

fn err(p: &Path, message: impl std::fmt::Display) -> IngestError {
    IngestError::Checkpoint {
        path: p.display().to_string(),
        message: message.to_string(),
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and reads its intact records;
    /// a torn tail is cut off.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Record>), IngestError> {
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| err(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| err(&path, e))?;
        let (records, good) = decode(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept = good,
                cut = bytes.len() - good,
                "journal ends in a torn record; cutting it off"
            );
            file.set_len(good as u64).map_err(|e| err(&path, e))?;
            file.sync_data().map_err(|e| err(&path, e))?;
        }
        file.seek(SeekFrom::Start(good as u64))
            .map_err(|e| err(&path, e))?;
        Ok((
            Journal {
                path,
                file,
                buf: Vec::with_capacity(1 << 20),
                len: good as u64,
            },
            records,
        ))
    }

    /// Adds a record to the buffer (written by the next [`Journal::commit`]).
    pub fn push(&mut self, kind: Kind, seq: u64, subject: &str, detail: &str, payload: &[u8]) {
        let subject = &subject.as_bytes()[..subject.len().min(u16::MAX as usize)];
        let body_len = 1 + 8 + 1 + 2 + subject.len() + 4 + detail.len() + payload.len();
        let start = self.buf.len();
        self.buf.extend_from_slice(&(body_len as u32).to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        let (k, r) = kind.code();
        self.buf.push(k);
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.push(r);
        self.buf
            .extend_from_slice(&(subject.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(subject);
        self.buf
            .extend_from_slice(&(detail.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(detail.as_bytes());
        self.buf.extend_from_slice(payload);
        let crc = crc32fast::hash(&self.buf[start + HEADER..]);
        self.buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    }

    /// Bytes committed since the last reset.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been committed since the last reset.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes waiting for the next commit.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Appends the buffered records and flushes them to disk.
    pub fn commit(&mut self) -> Result<(), IngestError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A write cut short (a full disk) leaves part of a record: cut
            // the file back to what was committed, so the next commit, with
            // the same records still buffered, appends to a clean end.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(err(&self.path, e));
        }
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Empties the journal after a snapshot that covers everything in it
    /// (buffered records included).
    pub fn reset(&mut self) -> Result<(), IngestError> {
        self.buf.clear();
        self.len = 0;
        self.file.set_len(0).map_err(|e| err(&self.path, e))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| err(&self.path, e))?;
        self.file.sync_data().map_err(|e| err(&self.path, e))
    }
}

/// Decodes records up to the first torn or corrupt one; returns them and
/// the length of the intact prefix.
fn decode(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((rec, next)) = decode_one(bytes, at) {
        out.push(rec);
        at = next;
    }
    (out, at)
}

fn decode_one(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    let len = u32_at(at)? as usize;
    let crc = u32_at(at + 4)?;
    let body = bytes.get(at + HEADER..at + HEADER + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let kind = Kind::from_code(*body.first()?, *body.get(9)?)?;
    let seq = u64::from_le_bytes(body.get(1..9)?.try_into().ok()?);
    let slen = u16::from_le_bytes(body.get(10..12)?.try_into().ok()?) as usize;
    let subject = std::str::from_utf8(body.get(12..12 + slen)?).ok()?;
    let d = 12 + slen;
    let dlen = u32::from_le_bytes(body.get(d..d + 4)?.try_into().ok()?) as usize;
    let detail = std::str::from_utf8(body.get(d + 4..d + 4 + dlen)?).ok()?;
    let payload = body.get(d + 4 + dlen..)?;
    Some((
        Record {
            kind,
            seq,
            subject: subject.to_string(),
            detail: detail.to_string(),
            payload: bytes::Bytes::copy_from_slice(payload),
        },
        at + HEADER + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, seq: u64, payload: &[u8]) -> Record {
        Record {
            kind,
            seq,
            subject: format!("gw.ev.patrol.s{seq}"),
            detail: if matches!(kind, Kind::Dead(_)) {
                "why".into()
            } else {
                String::new()
            },
            payload: bytes::Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn commit_reopen_reset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut j, none) = Journal::open(dir.path()).expect("open");
        assert!(none.is_empty());
        let want = vec![
            rec(Kind::Event, 1, b"{\"a\":1}"),
            rec(Kind::Dead(Reason::TooLate), 2, b"\xff\x00not utf-8"),
            rec(Kind::Tick, 3, b""),
        ];
        for r in &want {
            j.push(r.kind, r.seq, &r.subject, &r.detail, &r.payload);
        }
        j.commit().expect("commit");
        // Uncommitted records are not durable.
        j.push(Kind::Event, 4, "gw.ev.x", "", b"lost");
        drop(j);
        let (mut j, got) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(got, want);
        j.push(Kind::Event, 5, "gw.ev.x", "", b"five");
        j.commit().expect("commit");
        let (mut j, got) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].seq, 5);
        j.reset().expect("reset");
        let (_, got) = Journal::open(dir.path()).expect("reopen");
        assert!(got.is_empty());
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut j, _) = Journal::open(dir.path()).expect("open");
        j.push(Kind::Event, 1, "gw.ev.a", "", b"one");
        j.push(Kind::Event, 2, "gw.ev.a", "", b"two");
        j.commit().expect("commit");
        drop(j);
        let p = dir.path().join(FILE);
        let full = std::fs::read(&p).expect("read");
        // Torn: the last record half written.
        std::fs::write(&p, &full[..full.len() - 2]).expect("write");
        let (_, got) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(got.len(), 1);
        assert!(std::fs::metadata(&p).expect("meta").len() < full.len() as u64);
        // Corrupt: a flipped byte in the first record's body.
        let mut bad = full.clone();
        bad[HEADER + 3] ^= 0x40;
        std::fs::write(&p, &bad).expect("write");
        let (mut j, got) = Journal::open(dir.path()).expect("reopen");
        assert!(got.is_empty());
        // Appending after a cut continues from the intact prefix.
        j.push(Kind::Event, 3, "gw.ev.a", "", b"three");
        j.commit().expect("commit");
        let (_, got) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq, 3);
    }
}
