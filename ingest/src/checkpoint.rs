//! Checkpoints: the live state and the stream sequence it covers, written
//! atomically (temp file, fsync, rename, fsync of the directory), so a
//! restart resumes exactly where the state ends.
//!
//! The file is `header | body_len: u64 | crc32(body): u32 | body`, the
//! header saying the format version, the registry's size and the identity
//! of the stream the state was built from (its creation time). A file that
//! is unreadable, corrupt, of another format, for another registry or for
//! another stream (one deleted and created again under the same name,
//! whose sequences mean other events) cannot be resumed from:
//! [`Loaded::Unusable`] says why, and ingest moves it aside
//! ([`set_aside`]) and rebuilds from the stream.

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::IngestError;
use crate::state::LiveState;

const MAGIC: &str = "gridwatch-checkpoint";
/// The format this build writes and reads.
pub const FORMAT: u32 = 4;
const FILE: &str = "checkpoint.bin";

#[derive(Serialize, Deserialize)]
struct Header {
    magic: String,
    format: u32,
    /// Micro-grids in the registry the state was built for.
    microgrids: usize,
    /// The event stream's creation time (Unix ns).
    stream_created_ns: i128,
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No checkpoint: start from the stream's beginning.
    None,
    /// The state to resume from.
    State(Box<LiveState>),
    /// A checkpoint that cannot be resumed from, and why.
    Unusable(String),
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

fn err(p: &Path, message: impl std::fmt::Display) -> IngestError {
    IngestError::Checkpoint {
        path: p.display().to_string(),
        message: message.to_string(),
    }
}

/// Writes `state`, built from the stream created at `stream_created_ns`,
/// to `dir` atomically.
pub fn save(dir: &Path, state: &LiveState, stream_created_ns: i128) -> Result<(), IngestError> {
    let final_path = path(dir);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut body = Vec::with_capacity(1 << 20);
    bincode::serialize_into(&mut body, state).map_err(|e| err(&tmp, e))?;
    bincode::serialize_into(&mut body, &state.sites).map_err(|e| err(&tmp, e))?;
    let header = Header {
        magic: MAGIC.into(),
        format: FORMAT,
        microgrids: state.mgs.len(),
        stream_created_ns,
    };
    let written = (|| -> Result<(), IngestError> {
        let f = File::create(&tmp).map_err(|e| err(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        bincode::serialize_into(&mut w, &header).map_err(|e| err(&tmp, e))?;
        w.write_all(&(body.len() as u64).to_le_bytes())
            .and_then(|()| w.write_all(&crc32fast::hash(&body).to_le_bytes()))
            .and_then(|()| w.write_all(&body))
            .map_err(|e| err(&tmp, e))?;
        let f = w.into_inner().map_err(|e| err(&tmp, e.error()))?;
        f.sync_all().map_err(|e| err(&tmp, e))
    })();
    if let Err(e) = written {
        // A full disk: leave no half-written file behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &final_path).map_err(|e| err(&final_path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))?;
    Ok(())
}

/// Loads the checkpoint in `dir` for a registry of `microgrids` and the
/// stream created at `stream_created_ns`. Never fails: what cannot be
/// resumed from is [`Loaded::Unusable`].
pub fn load(dir: &Path, microgrids: usize, stream_created_ns: i128) -> Loaded {
    let p = path(dir);
    let bytes = match fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::None,
        Err(e) => return Loaded::Unusable(format!("unreadable: {e}")),
    };
    match parse(&bytes, microgrids, stream_created_ns) {
        Ok(s) => Loaded::State(Box::new(s)),
        Err(why) => Loaded::Unusable(why),
    }
}

fn parse(bytes: &[u8], microgrids: usize, stream_created_ns: i128) -> Result<LiveState, String> {
    let mut r = bytes;
    let header: Header =
        bincode::deserialize_from(&mut r).map_err(|_| "not a Gridwatch checkpoint".to_string())?;
    if header.magic != MAGIC {
        return Err("not a Gridwatch checkpoint".into());
    }
    if header.format != FORMAT {
        return Err(format!(
            "format {}, this build reads format {FORMAT}",
            header.format
        ));
    }
    if header.microgrids != microgrids {
        return Err(format!(
            "made for a registry of {} micro-grids, this one has {microgrids}",
            header.microgrids
        ));
    }
    if header.stream_created_ns != stream_created_ns {
        return Err(format!(
            "made from a stream created at {} ns, the stream now was created at {stream_created_ns} ns: it was recreated",
            header.stream_created_ns
        ));
    }
    let (len, rest) = r.split_at_checked(8).ok_or("cut short")?;
    let (crc, body) = rest.split_at_checked(4).ok_or("cut short")?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| "cut short")?) as usize;
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| "cut short")?);
    if body.len() != len {
        return Err(format!(
            "body is {} bytes, the header says {len}",
            body.len()
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch: the file is corrupt".into());
    }
    let mut r = body;
    let mut state: LiveState =
        bincode::deserialize_from(&mut r).map_err(|e| format!("corrupt state: {e}"))?;
    state.sites = bincode::deserialize_from(&mut r).map_err(|e| format!("corrupt sites: {e}"))?;
    state.sites.resize(microgrids, None);
    state.mgs.resize(microgrids, Default::default());
    Ok(state)
}

/// Moves the checkpoint in `dir` and the journal that goes with it aside
/// (`*.unusable-<unix ms>`), so ingest rebuilds from the stream and the
/// files stay for a look. Returns where the checkpoint went.
pub fn set_aside(dir: &Path, journal_file: &str) -> Result<Option<PathBuf>, IngestError> {
    let stamp = chrono::Utc::now().timestamp_millis();
    let mut moved = None;
    for name in [FILE, journal_file] {
        let from = dir.join(name);
        if from.exists() {
            let to = dir.join(format!("{name}.unusable-{stamp}"));
            fs::rename(&from, &to).map_err(|e| err(&from, e))?;
            if name == FILE {
                moved = Some(to);
            }
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))?;
    Ok(moved)
}

/// Flushes a writer and the file under it to disk.
pub fn write_durably(p: &Path, bytes: &[u8]) -> Result<(), IngestError> {
    let tmp = p.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| err(&tmp, e))?;
    f.sync_all().map_err(|e| err(&tmp, e))?;
    fs::rename(&tmp, p).map_err(|e| err(p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: i128 = 1_665_000_000_000_000_000;

    fn state(n: usize) -> LiveState {
        let mut s = LiveState::new(n);
        s.last_seq = 42;
        s.seen.insert("a".into(), 7);
        s.sites[1] = Some("site".into());
        s
    }

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(load(dir.path(), 3, STREAM), Loaded::None));
        save(dir.path(), &state(3), STREAM).expect("save");
        let Loaded::State(back) = load(dir.path(), 3, STREAM) else {
            panic!("not loaded")
        };
        assert_eq!(back.last_seq, 42);
        assert_eq!(back.seen.get("a"), Some(&7));
        assert_eq!(back.sites, vec![None, Some("site".into()), None]);
    }

    fn unusable(dir: &Path, n: usize, stream: i128) -> String {
        match load(dir, n, stream) {
            Loaded::Unusable(why) => why,
            other => panic!("expected unusable, got {other:?}"),
        }
    }

    #[test]
    fn what_cannot_be_resumed_from_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        save(dir.path(), &state(3), STREAM).expect("save");
        assert!(unusable(dir.path(), 4, STREAM).contains("3 micro-grids"));
        assert!(unusable(dir.path(), 3, STREAM + 1).contains("recreated"));
        // One flipped byte in the body.
        let p = path(dir.path());
        let mut bytes = fs::read(&p).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&p, &bytes).expect("write");
        assert!(unusable(dir.path(), 3, STREAM).contains("checksum"));
        // Cut short, garbage, a format-1 file.
        fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
        assert!(!unusable(dir.path(), 3, STREAM).is_empty());
        fs::write(&p, b"garbage").expect("write");
        assert!(unusable(dir.path(), 3, STREAM).contains("not a Gridwatch"));
        #[derive(Serialize)]
        struct V1 {
            magic: String,
            microgrids: usize,
        }
        let v1 = bincode::serialize(&V1 {
            magic: "gridwatch-checkpoint-v1".into(),
            microgrids: 3,
        })
        .expect("v1");
        fs::write(&p, v1).expect("write");
        assert!(!unusable(dir.path(), 3, STREAM).is_empty());
    }

    #[test]
    fn set_aside_moves_the_checkpoint_and_its_journal() {
        let dir = tempfile::tempdir().expect("temp dir");
        save(dir.path(), &state(3), STREAM).expect("save");
        fs::write(dir.path().join("journal.bin"), b"records").expect("journal");
        let to = set_aside(dir.path(), "journal.bin")
            .expect("moved")
            .expect("a checkpoint");
        assert!(to.exists());
        assert!(!path(dir.path()).exists());
        assert!(!dir.path().join("journal.bin").exists());
        assert!(matches!(load(dir.path(), 3, STREAM), Loaded::None));
    }
}
