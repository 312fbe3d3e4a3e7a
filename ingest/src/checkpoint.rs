//! Checkpoints: the live state and the stream sequence it covers, written
//! atomically (temp file, fsync, rename, fsync of the directory), so a
//! restart resumes exactly where the state ends.

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::IngestError;
use crate::state::LiveState;

const MAGIC: &str = "gridwatch-checkpoint-v1";
const FILE: &str = "checkpoint.bin";

#[derive(Serialize, Deserialize)]
struct Header {
    magic: String,
    /// Micro-grids in the registry the state was built for.
    microgrids: usize,
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

/// Writes `state` to `dir` atomically.
pub fn save(dir: &Path, state: &LiveState) -> Result<(), IngestError> {
    let final_path = path(dir);
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let f = File::create(&tmp).map_err(|e| err(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let header = Header {
            magic: MAGIC.into(),
            microgrids: state.mgs.len(),
        };
        bincode::serialize_into(&mut w, &header).map_err(|e| err(&tmp, e))?;
        bincode::serialize_into(&mut w, state).map_err(|e| err(&tmp, e))?;
        bincode::serialize_into(&mut w, &state.sites).map_err(|e| err(&tmp, e))?;
        let f = w.into_inner().map_err(|e| err(&tmp, e.error()))?;
        f.sync_all().map_err(|e| err(&tmp, e))?;
    }
    fs::rename(&tmp, &final_path).map_err(|e| err(&final_path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))?;
    Ok(())
}

/// Loads the checkpoint in `dir`, or `None` when there is none.
///
/// Fails when the file is unreadable, corrupt, or was made for a registry
/// with a different number of micro-grids.
pub fn load(dir: &Path, microgrids: usize) -> Result<Option<LiveState>, IngestError> {
    let p = path(dir);
    let bytes = match fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(&p, e)),
    };
    let mut r = bytes.as_slice();
    let header: Header = bincode::deserialize_from(&mut r).map_err(|e| err(&p, e))?;
    if header.magic != MAGIC {
        return Err(err(&p, "not a Gridwatch checkpoint"));
    }
    if header.microgrids != microgrids {
        return Err(err(
            &p,
            format!(
                "made for a registry of {} micro-grids, this one has {microgrids}",
                header.microgrids
            ),
        ));
    }
    let mut state: LiveState = bincode::deserialize_from(&mut r).map_err(|e| err(&p, e))?;
    // Testing sites follow the state; a checkpoint from before they were
    // kept ends here, and the sites fill in as reports arrive.
    state.sites = if r.is_empty() {
        Vec::new()
    } else {
        bincode::deserialize_from(&mut r).map_err(|e| err(&p, e))?
    };
    state.sites.resize(microgrids, None);
    Ok(Some(state))
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

    #[test]
    fn roundtrip_and_registry_mismatch() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(load(dir.path(), 3).expect("no file is fine").is_none());
        let mut s = LiveState::new(3);
        s.last_seq = 42;
        s.seen.insert("a".into(), 7);
        s.sites[1] = Some("site".into());
        save(dir.path(), &s).expect("save");
        let back = load(dir.path(), 3).expect("load").expect("present");
        assert_eq!(back.last_seq, 42);
        assert_eq!(back.seen.get("a"), Some(&7));
        assert_eq!(back.sites, vec![None, Some("site".into()), None]);
        let e = load(dir.path(), 4).expect_err("mismatch");
        assert!(e.to_string().contains("3 micro-grids"), "{e}");
    }

    /// A checkpoint written before testing sites were kept still loads.
    #[test]
    fn loads_a_checkpoint_without_sites() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = LiveState::new(2);
        s.last_seq = 9;
        let mut bytes = bincode::serialize(&Header {
            magic: MAGIC.into(),
            microgrids: 2,
        })
        .expect("header");
        bytes.extend(bincode::serialize(&s).expect("state"));
        write_durably(&path(dir.path()), &bytes).expect("write");
        let back = load(dir.path(), 2).expect("load").expect("present");
        assert_eq!((back.last_seq, back.sites), (9, vec![None, None]));
    }
}
