//! Child processes: nats-server, ingest, backend, notify, chromedriver. Each is
//! killed when dropped; logs go to files named in failures.

use anyhow::{Context, Result, bail};
use gridwatch_runtime::nats_auth::{self, Names, Permissions, Provisioned, Service};

pub use crate::accounts::{Account, Accounts, admin_cli};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

static BIN_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Overrides where the binaries are (the bench runs from target/release).
pub fn set_bin_dir(dir: PathBuf) {
    let _ = BIN_DIR.set(dir);
}

/// The directory holding the built binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = BIN_DIR.get() {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("GRIDWATCH_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/e2e-<hash> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn binary(name: &str) -> Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.exists() {
        bail!(
            "{} not found: build the binaries first (cargo build --bins), or set GRIDWATCH_BIN_DIR",
            p.display()
        );
    }
    Ok(p)
}

pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let local = crate::root().join(".tools/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

/// Waits until something listens on `port`.
pub fn wait_port(port: u16, timeout: Duration, what: &str) -> Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > timeout {
            bail!("{what} did not listen on port {port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

/// A child process with its log file.
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, logs: &Path) -> Result<Proc> {
        std::fs::create_dir_all(logs)?;
        let log = logs.join(format!("{name}.log"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = cmd
            .stdout(Stdio::from(f.try_clone()?))
            .stderr(Stdio::from(f))
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, no goodbye.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `within` for it to exit. Returns how long
    /// it took, or `None` if it was still running then (it is then killed).
    pub fn terminate_within(&mut self, within: Duration) -> Option<Duration> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(_)) = c.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// A nats-server with JetStream in a temporary store, `sync_interval:
/// always` as DESIGN's durability section asks, and the services' NATS
/// users with least privilege (`gridwatch_runtime::nats_auth`): each
/// service started by [`ingest`], [`backend`], [`sim`] and [`recount`]
/// signs in with its own NKey; the test itself publishes as `replay` (the
/// field devices and the replay clock, [`Nats::client`]) and looks around
/// as `ops` ([`Nats::ops`]).
pub struct Nats {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// `sync_interval: always` (else nats-server's default flush).
    pub sync_always: bool,
    /// More of the server's configuration (e.g. `max_payload: 4096`).
    pub extra_conf: String,
    /// The users' seeds and `auth.conf`.
    pub auth: Provisioned,
    accounts: std::sync::OnceLock<Accounts>,
    proc: Option<Proc>,
}

/// A change to a user's permissions (a test denies more).
pub type Tweak<'a> = dyn Fn(Service, &mut Permissions) + 'a;

impl Nats {
    /// Starts a server on a free port, flushing every write.
    pub fn start() -> Result<Nats> {
        Self::start_with(true)
    }

    /// Starts a server on a free port; `sync_always` chooses the flush.
    pub fn start_with(sync_always: bool) -> Result<Nats> {
        Self::start_configured(sync_always, "")
    }

    /// Starts a server with `extra` added to its configuration file.
    pub fn start_configured(sync_always: bool, extra: &str) -> Result<Nats> {
        Self::start_tweaked(sync_always, extra, &|_, _| {})
    }

    /// Starts a server whose users' permissions `tweak` changes.
    pub fn start_tweaked(sync_always: bool, extra: &str, tweak: &Tweak<'_>) -> Result<Nats> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let auth = nats_auth::provision(&dir.path().join("auth"), &Names::default(), tweak)?;
        let mut n = Nats {
            port,
            dir,
            sync_always,
            extra_conf: extra.to_string(),
            auth,
            accounts: std::sync::OnceLock::new(),
            proc: None,
        };
        n.launch()?;
        Ok(n)
    }

    /// The deployment's accounts (made on first use, in the server's
    /// temporary directory).
    pub fn accounts(&self) -> Result<&Accounts> {
        if let Some(a) = self.accounts.get() {
            return Ok(a);
        }
        let a = Accounts::create(&self.dir.path().join("users.json"))?;
        Ok(self.accounts.get_or_init(|| a))
    }

    /// The seed file of `s`'s user.
    pub fn seed(&self, s: Service) -> PathBuf {
        self.auth.seed(s)
    }

    /// A connection as `s`'s user (retrying until the server listens).
    pub async fn client_as(&self, s: Service) -> Result<async_nats::Client> {
        let creds = gridwatch_runtime::nats::Creds {
            nkey_file: Some(self.seed(s)),
            ca_file: None,
        };
        let (url, opts) = gridwatch_runtime::nats::options(&self.url(), &creds)?;
        Ok(opts
            .retry_on_initial_connect()
            .name(format!("test-{}", s.name()))
            .connect(url.as_str())
            .await?)
    }

    /// The test's publishing connection: the `replay` user (events and
    /// the replay clock).
    pub async fn client(&self) -> Result<async_nats::Client> {
        self.client_as(Service::Replay).await
    }

    /// JetStream as `ops`: stream info, the state bucket, the DLQ.
    pub async fn ops(&self) -> Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(
            self.client_as(Service::Ops).await?,
        ))
    }

    fn launch(&mut self) -> Result<()> {
        let store = self.dir.path().join("js");
        let conf = self.dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{}\n{}\ninclude \"{}\"\njetstream {{\n  store_dir: \"{}\"\n{}}}\n",
                self.port,
                self.extra_conf,
                // nats-server reads an include relative to the file.
                "auth/auth.conf",
                store.display(),
                if self.sync_always {
                    "  sync_interval: always\n"
                } else {
                    ""
                }
            ),
        )?;
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c").arg(&conf);
        self.proc = Some(Proc::spawn(
            "nats-server",
            cmd,
            &self.dir.path().join("logs"),
        )?);
        wait_port(self.port, Duration::from_secs(20), "nats-server")
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server for good (SIGKILL): clients see it gone.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill_hard();
        }
    }

    /// Kills the server and starts it again on the same port and store.
    pub fn restart(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.terminate();
        }
        self.launch()
    }
}

/// The working directory of one test: logs and data.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// A fresh directory.
    pub fn new() -> Result<Workdir> {
        Ok(Workdir {
            dir: tempfile::tempdir()?,
        })
    }
    /// Its logs directory.
    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }
}

/// Starts any command as a [`Proc`] logging to `logs/<name>.log`.
pub fn spawn_cmd(name: &str, cmd: Command, logs: &Path) -> Result<Proc> {
    Proc::spawn(name, cmd, logs)
}

/// Starts `gridwatch-ingest` with fast checkpoints and snapshots, so a test
/// that kills it lands between them: the restart loads a snapshot and
/// replays the journal.
pub fn ingest(nats: &Nats, data_dir: &Path, logs: &Path, extra: &[&str]) -> Result<Proc> {
    ingest_with_env(
        nats,
        data_dir,
        logs,
        extra,
        &[
            ("RUST_LOG", "info,gridwatch_ingest=debug"),
            ("GRIDWATCH__CHECKPOINT_MS", "200"),
            ("GRIDWATCH__SNAPSHOT_S", "1"),
            ("GRIDWATCH__TICK_MS", "200"),
        ],
    )
}

/// Starts `gridwatch-ingest` with the given environment.
pub fn ingest_with_env(
    nats: &Nats,
    data_dir: &Path,
    logs: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Proc> {
    let mut cmd = Command::new(binary("gridwatch-ingest")?);
    cmd.env("GRIDWATCH__NATS_NKEY_FILE", nats.seed(Service::Ingest))
        .arg("--nats")
        .arg(nats.url())
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    // Any free port for ingest's /metrics, unless the test picks one.
    if !env.iter().any(|(k, _)| *k == "GRIDWATCH__METRICS_LISTEN") {
        cmd.env("GRIDWATCH__METRICS_LISTEN", "127.0.0.1:0");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn("ingest", cmd, logs)
}

/// The Python with DuckDB, pyarrow and psycopg (`scripts/setup.sh` puts
/// them in its venv and exports `GRIDWATCH_PYTHON`).
pub fn python() -> PathBuf {
    std::env::var_os("GRIDWATCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs a Python script (`python -c`) with `args` in [`python`]; its
/// stdout, trimmed. Fails with its stderr when it fails.
pub fn python_run(script: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .context("running python (DuckDB, pyarrow, psycopg from scripts/setup.sh)")?;
    anyhow::ensure!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Starts `gridwatch-backend` on `port`, and waits until it listens.
pub fn backend(nats: &Nats, port: u16, logs: &Path) -> Result<Proc> {
    backend_with_env(nats, port, logs, &[])
}

/// Starts `gridwatch-backend` on `port` with the given environment, and
/// waits until it listens.
pub fn backend_with_env(nats: &Nats, port: u16, logs: &Path, env: &[(&str, &str)]) -> Result<Proc> {
    let mut cmd = Command::new(binary("gridwatch-backend")?);
    cmd.env("GRIDWATCH__NATS_NKEY_FILE", nats.seed(Service::Backend))
        .arg("--users-file")
        .arg(&nats.accounts()?.file);
    // The tests and benches open hundreds of sockets with one token: the
    // per-identity rate limit is tested on its own.
    if !env.iter().any(|(k, _)| *k == "GRIDWATCH__RATE_PER_S") {
        cmd.env("GRIDWATCH__RATE_PER_S", "1000000");
    }
    // The Postgres protocol on any free port (many backends run at once),
    // unless the test picks one.
    if !env.iter().any(|(k, _)| *k == "GRIDWATCH__PG_LISTEN") {
        cmd.env("GRIDWATCH__PG_LISTEN", "127.0.0.1:0");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("--nats")
        .arg(nats.url())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--static-dir")
        .arg(crate::root().join("frontend/dist"))
        .env("RUST_LOG", "info");
    let p = Proc::spawn(&format!("backend-{port}"), cmd, logs)?;
    wait_port(port, Duration::from_secs(30), "gridwatch-backend")?;
    Ok(p)
}

/// Runs `gridwatch-recount` against `nats` with `args` to its end: its
/// exit code and what it printed.
pub fn recount(nats: &Nats, args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new(binary("gridwatch-recount")?)
        .env("GRIDWATCH_NATS_NKEY_FILE", nats.seed(Service::Reader))
        .arg("--nats")
        .arg(nats.url())
        .args(args)
        .output()
        .context("running gridwatch-recount")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// Starts `gridwatch-notify` with the configuration file `config` and
/// the given environment.
pub fn notify(nats: &Nats, config: &Path, logs: &Path, env: &[(&str, &str)]) -> Result<Proc> {
    let mut cmd = Command::new(binary("gridwatch-notify")?);
    cmd.env("GRIDWATCH__NATS_NKEY_FILE", nats.seed(Service::Notify))
        .env("RUST_LOG", "info,gridwatch_notify=debug")
        .arg("--nats")
        .arg(nats.url())
        .arg("--config")
        .arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn("notify", cmd, logs)
}

/// Starts `gridwatch-sim` with `args` and the given environment, as the
/// `replay` user when it replays (`--speed`, `--rate`), else as `field`.
pub fn sim(nats: &Nats, logs: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
    let mut cmd = Command::new(binary("gridwatch-sim")?);
    let user = if args.iter().any(|a| *a == "--speed" || *a == "--rate") {
        Service::Replay
    } else {
        Service::Field
    };
    cmd.env("GRIDWATCH__NATS_NKEY_FILE", nats.seed(user))
        .arg("--nats")
        .arg(nats.url())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn("sim", cmd, logs)
}

/// WebDriver capabilities for headless Chromium at `size`, with `extra`
/// command-line switches.
pub fn chromium_caps(
    size: (u32, u32),
    extra: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--window-size={},{}", size.0, size.1));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": args }),
    );
    caps
}

/// Starts chromedriver on a free port; returns it and its URL.
pub fn chromedriver(logs: &Path) -> Result<(Proc, String)> {
    let port = free_port()?;
    let bin = std::env::var_os("CHROMEDRIVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromedriver"));
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--port={port}"));
    let p = Proc::spawn("chromedriver", cmd, logs)?;
    wait_port(port, Duration::from_secs(20), "chromedriver")?;
    Ok((p, format!("http://127.0.0.1:{port}")))
}
