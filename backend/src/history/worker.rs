//! Every history query and SQL statement runs in a worker process of its
//! own, so that its bounds are real:
//!
//! - **time**: past `query_timeout_s` the worker is killed (SIGKILL) —
//!   polars stops there, not whenever it would have finished;
//! - **memory**: the worker's data segment is limited (`RLIMIT_DATA`,
//!   `query_memory_mb`): an allocation past it fails and the worker dies
//!   alone, the backend and its screens go on;
//! - **rows**: at most [`ROWS_MAX`](super::ROWS_MAX) come back.
//!
//! The worker is this binary run as `gridwatch-backend query-worker …`. It
//! loads the registry and the history's tables once, then answers one job
//! (a JSON line on stdin) after another: a status byte, a length (u64 LE)
//! and an Arrow IPC frame (or the error's words) on stdout. Half its
//! memory bound holds the columns it has decoded ([`super::cache`]), so a
//! worker answers faster the longer it lives. [`Pool`] keeps
//! [`RUNNING`](super::RUNNING) of them warm (the last one used goes
//! first); one that was killed or died is replaced by a fresh one.

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::{BufRead, Cursor, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{History, Query, ROWS_MAX, RUNNING};

/// The first argument that makes the binary a worker.
pub const ARG: &str = "query-worker";

/// The largest answer a worker may send back, bytes.
const FRAME_MAX: u64 = 1 << 30;

/// What a worker is asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// `GET /api/v1/query`: summed, bucketed, with a `time` column.
    Query(Query),
    /// A checked SQL statement (see [`check`](super::sql::check)).
    Sql { sql: String },
    /// The columns a checked statement's answer would have, without
    /// running it (the Postgres protocol describes before it executes).
    Schema { sql: String },
    /// A node's newest published state before Unix second `before`: one
    /// row with its JSON in `state`, or none.
    StateAt { node: String, before: i64 },
}

/// Why a job gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The statement or query failed (polars' words).
    #[error("{0}")]
    Bad(String),
    /// More rows than [`ROWS_MAX`].
    #[error("{0}")]
    TooManyRows(String),
    /// It ran past the time limit and was stopped.
    #[error("the query took over {0} s and was stopped: narrow it")]
    Timeout(u64),
    /// It needed more memory than a worker may have and was stopped.
    #[error("the query needed more than the {0} MiB a query may use and was stopped: narrow it")]
    Memory(u64),
    /// Every worker is busy for longer than the time limit.
    #[error("too many queries running: try again")]
    Busy,
    /// The worker could not be started or talked to.
    #[error("the query worker: {0}")]
    Broken(String),
}

impl From<Failure> for crate::ApiError {
    fn from(f: Failure) -> Self {
        use crate::ApiError;
        match f {
            Failure::Bad(m) => ApiError::BadRequest(format!("the query failed: {m}")),
            f @ (Failure::TooManyRows(_) | Failure::Memory(_)) => {
                ApiError::BadRequest(f.to_string())
            }
            f @ (Failure::Timeout(_) | Failure::Busy) => ApiError::Unavailable(f.to_string()),
            f @ Failure::Broken(_) => ApiError::Internal(f.to_string()),
        }
    }
}

/// Linux's SIGABRT: what a failed allocation ends in.
const SIGABRT: i32 = 6;

const OK: u8 = 0;
const BAD: u8 = 1;
const ROWS: u8 = 2;

/// Runs one job in the worker.
fn work(h: &History, job: Job) -> Result<DataFrame, (u8, String)> {
    let bad = |e: PolarsError| (BAD, e.to_string());
    match job {
        Job::Query(q) => h
            .run(&q)
            .and_then(crate::routes::query::with_time)
            .map_err(bad),
        Job::Sql { sql } => {
            let df = h
                .sql(&sql, |lf| {
                    super::collect_streaming(lf.limit(ROWS_MAX as IdxSize + 1))
                })
                .map_err(bad)?;
            if df.height() > ROWS_MAX {
                return Err((
                    ROWS,
                    format!("more than {ROWS_MAX} rows: add a LIMIT or aggregate"),
                ));
            }
            Ok(df)
        }
        Job::Schema { sql } => {
            let schema = h.sql(&sql, |mut lf| lf.collect_schema()).map_err(bad)?;
            Ok(super::plain_strings(DataFrame::empty_with_schema(&schema)))
        }
        Job::StateAt { node, before } => {
            let state: Vec<String> = h
                .state_at(&node, before)
                .map_err(bad)?
                .into_iter()
                .collect();
            DataFrame::new(state.len(), vec![Column::new("state".into(), state)]).map_err(bad)
        }
    }
}

/// `gridwatch-backend query-worker <history dir> <memory MiB> [registry]`:
/// answers jobs on stdin until it closes.
pub fn main(args: &[OsString]) -> anyhow::Result<()> {
    let [dir, mem, rest @ ..] = args else {
        anyhow::bail!("usage: {ARG} <history dir> <memory MiB> [registry]");
    };
    let mib: u64 = mem
        .to_str()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("memory: not a number of MiB"))?;
    let bytes = mib.saturating_mul(1 << 20);
    rustix::process::setrlimit(
        rustix::process::Resource::Data,
        rustix::process::Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )?;
    let reg = gridwatch_runtime::registry::load(rest.first().map(std::path::Path::new))?;
    // Half the bound holds decoded columns, half runs the queries.
    let h = History::new(PathBuf::from(dir), &reg)?.keep_decoded((bytes / 2) as usize);
    drop(reg);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match serde_json::from_str::<Job>(&line) {
            Ok(job) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&h, job)))
                .unwrap_or_else(|_| Err((BAD, "the query engine gave up on it".into()))),
            Err(e) => Err((BAD, format!("the job: {e}"))),
        };
        let (status, payload) = match answer {
            Ok(df) => {
                let mut df = super::plain_strings(df);
                let mut buf = Vec::new();
                match IpcWriter::new(&mut buf).finish(&mut df) {
                    Ok(()) => (OK, buf),
                    Err(e) => (BAD, e.to_string().into_bytes()),
                }
            }
            Err((s, m)) => (s, m.into_bytes()),
        };
        out.write_all(&[status])?;
        out.write_all(&(payload.len() as u64).to_le_bytes())?;
        out.write_all(&payload)?;
        out.flush()?;
    }
    Ok(())
}

/// A running worker.
struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

impl Worker {
    /// Sends `job` and reads the answer's status and payload.
    async fn ask(&mut self, job: &[u8]) -> std::io::Result<(u8, Vec<u8>)> {
        self.stdin.write_all(job).await?;
        self.stdin.flush().await?;
        let status = self.stdout.read_u8().await?;
        let len = self.stdout.read_u64_le().await?;
        if len > FRAME_MAX {
            return Err(std::io::Error::other(format!("an answer of {len} bytes")));
        }
        let mut payload = vec![0; len as usize];
        self.stdout.read_exact(&mut payload).await?;
        Ok((status, payload))
    }
}

/// The warm workers and the gate in front of them.
pub struct Pool {
    exe: PathBuf,
    args: Vec<OsString>,
    idle: Mutex<Vec<Worker>>,
    gate: tokio::sync::Semaphore,
    within: Duration,
    memory_mb: u64,
}

impl Pool {
    /// Workers of this binary over `history_dir` and `registry`, each
    /// within `memory_mb` and `within`.
    pub fn new(
        history_dir: PathBuf,
        registry: Option<PathBuf>,
        memory_mb: u64,
        within: Duration,
    ) -> std::io::Result<Pool> {
        let exe = std::env::current_exe()?;
        let mut args: Vec<OsString> = vec![
            ARG.into(),
            history_dir.into_os_string(),
            memory_mb.to_string().into(),
        ];
        args.extend(registry.map(PathBuf::into_os_string));
        Ok(Pool {
            exe,
            args,
            idle: Mutex::new(Vec::new()),
            gate: tokio::sync::Semaphore::new(RUNNING),
            within,
            memory_mb,
        })
    }

    fn start(&self) -> Result<Worker, Failure> {
        let mut child = tokio::process::Command::new(&self.exe)
            .args(&self.args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::Broken(format!("starting it: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Failure::Broken("its pipes".into()));
        };
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }

    /// Starts the workers before the first query needs them.
    pub fn warm(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while idle.len() < RUNNING {
            match self.start() {
                Ok(w) => idle.push(w),
                Err(e) => {
                    tracing::warn!(error = %e, "starting a query worker");
                    return;
                }
            }
        }
    }

    fn take(&self) -> Result<Worker, Failure> {
        let w = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match w {
            Some(w) => Ok(w),
            None => self.start(),
        }
    }

    /// Runs `job` in a worker within the bounds.
    pub async fn run(&self, job: &Job) -> Result<DataFrame, Failure> {
        let ipc = self.run_ipc(job).await?;
        IpcReader::new(Cursor::new(&ipc))
            .finish()
            .map_err(|e| Failure::Broken(format!("reading its answer: {e}")))
    }

    /// Runs `job` in a worker within the bounds: its answer as the worker
    /// wrote it, an Arrow IPC file (passed on as is when that is what was
    /// asked for).
    pub async fn run_ipc(&self, job: &Job) -> Result<Vec<u8>, Failure> {
        let permit = tokio::time::timeout(self.within, self.gate.acquire())
            .await
            .map_err(|_| Failure::Busy)?
            .map_err(|_| Failure::Busy)?;
        let mut line = serde_json::to_vec(job).map_err(|e| Failure::Broken(e.to_string()))?;
        line.push(b'\n');
        let mut w = self.take()?;
        let asked = tokio::time::timeout(self.within, w.ask(&line)).await;
        drop(permit);
        let (status, payload) = match asked {
            Err(_) => {
                metrics::counter!("gridwatch_query_stopped_total", "why" => "time").increment(1);
                // Dropping it kills it (SIGKILL).
                drop(w);
                return Err(Failure::Timeout(self.within.as_secs()));
            }
            Ok(Err(e)) => return Err(self.died(w, e).await),
            Ok(Ok(answer)) => answer,
        };
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(w);
        let text = || String::from_utf8_lossy(&payload).to_string();
        match status {
            OK => Ok(payload),
            ROWS => Err(Failure::TooManyRows(text())),
            _ => Err(Failure::Bad(text())),
        }
    }

    /// Why `w` stopped answering: killed by its memory bound (an
    /// allocation failed: abort), or something else.
    async fn died(&self, mut w: Worker, e: std::io::Error) -> Failure {
        let status = tokio::time::timeout(Duration::from_secs(2), w.child.wait()).await;
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(Ok(s)) if s.signal() == Some(SIGABRT) => {
                metrics::counter!("gridwatch_query_stopped_total", "why" => "memory").increment(1);
                Failure::Memory(self.memory_mb)
            }
            Ok(Ok(s)) => Failure::Broken(format!("it stopped ({s})")),
            _ => Failure::Broken(e.to_string()),
        }
    }
}
