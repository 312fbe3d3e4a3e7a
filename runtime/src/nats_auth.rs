//! NATS with least privilege: one NATS user per service, each an NKey (the
//! server's configuration holds only public keys; each service holds its
//! seed in a file readable by it alone), with subject permissions that let
//! it do its job and nothing else:
//!
//! | user | may publish | may read |
//! |---|---|---|
//! | `field` (field devices, the simulator) | `gw.ev.>` | its publish acks |
//! | `replay` (the simulator replaying a past day) | `gw.ev.>`, `gw.clock` | its publish acks |
//! | `ingest` | `$KV.GW_STATE.>`, `gw.dlq.>`, acks on GW_EVENTS | GW_EVENTS, the state bucket, `gw.ingest.items` |
//! | `backend` | `gw.cmd.>`, `gw.audit.>`, `$KV.GW_SESSIONS.>`, tablets' `gw.ev.incident.>`/`gw.ev.video.>`, `gw.ingest.*` requests | the state bucket, GW_AUDIT, GW_REMINDERS |
//! | `notify` (`gridwatch-notify`) | `$KV.GW_NOTIFY.>` (its ledger), `gw.reminders.>`, `gw.ingest.open` requests | the state bucket, its ledger, GW_REMINDERS |
//! | `reader` (`gridwatch-recount`) | nothing | GW_EVENTS, GW_DLQ, the state bucket |
//! | `ops` (operators, tests) | anything else | anything |
//!
//! Nobody but ingest may write `$KV.GW_STATE.>`, nobody but `replay` may
//! write `gw.clock`, nobody but the backend may write `gw.audit.>`: `ops`
//! is denied them too. Each user's replies come to an inbox of its own
//! (`_INBOX_<first 12 characters of its public key>`), so no user reads
//! another's replies.
//!
//! [`provision`] writes the seeds and the server's `auth.conf` (which
//! `nats.conf` includes); [`connect_options`] reads a seed file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// A service's NATS user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Field,
    Replay,
    Ingest,
    Backend,
    Reader,
    Notify,
    Ops,
}

impl Service {
    /// Every user, in the order `auth.conf` lists them.
    pub const ALL: [Service; 7] = [
        Service::Field,
        Service::Replay,
        Service::Ingest,
        Service::Backend,
        Service::Reader,
        Service::Notify,
        Service::Ops,
    ];

    /// Its name: the seed file is `<name>.nk`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Field => "field",
            Service::Replay => "replay",
            Service::Ingest => "ingest",
            Service::Backend => "backend",
            Service::Reader => "reader",
            Service::Notify => "notify",
            Service::Ops => "ops",
        }
    }
}

/// The streams and buckets the permissions name (the services' defaults).
#[derive(Clone, Debug)]
pub struct Names {
    pub events: String,
    pub dlq: String,
    pub state_bucket: String,
    pub sessions_bucket: String,
    pub audit: String,
    /// `gridwatch-notify`'s ledger bucket and reminders stream.
    pub notify_ledger: String,
    pub reminders: String,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            events: "GW_EVENTS".into(),
            dlq: "GW_DLQ".into(),
            state_bucket: gridwatch_model::kv::DEFAULT_BUCKET.into(),
            sessions_bucket: "GW_SESSIONS".into(),
            audit: "GW_AUDIT".into(),
            notify_ledger: "GW_NOTIFY".into(),
            reminders: gridwatch_model::api::REMINDERS_STREAM.into(),
        }
    }
}

/// One user's permissions, as nats-server's configuration spells them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    /// May answer requests it received (ingest answers `gw.ingest.items`).
    pub allow_responses: bool,
}

/// The JetStream API subjects a reader of `stream` needs: its info, an
/// ordered or pull consumer of its own, acks, flow control and direct gets.
fn read_stream(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
        format!("$JS.ACK.{stream}.>"),
    ]
}

/// Creating `stream` (when absent) on top of reading it.
fn own_stream(stream: &str) -> Vec<String> {
    let mut v = read_stream(stream);
    v.push(format!("$JS.API.STREAM.CREATE.{stream}"));
    v.push(format!("$JS.API.STREAM.UPDATE.{stream}"));
    v
}

/// What `service` may do (see the module doc).
pub fn permissions(service: Service, n: &Names, inbox: &str) -> Permissions {
    let inbox = vec![format!("{inbox}.>")];
    let state = format!("KV_{}", n.state_bucket);
    let common = vec!["$JS.API.INFO".to_string(), "$JS.FC.>".to_string()];
    match service {
        Service::Field => Permissions {
            publish_allow: vec!["gw.ev.>".into()],
            subscribe_allow: inbox,
            ..Default::default()
        },
        Service::Replay => Permissions {
            publish_allow: vec![
                "gw.ev.>".into(),
                gridwatch_model::event::CLOCK_SUBJECT.into(),
            ],
            subscribe_allow: inbox,
            ..Default::default()
        },
        Service::Ingest => {
            let mut p = common;
            p.extend(own_stream(&n.events));
            p.extend(own_stream(&n.dlq));
            p.extend(own_stream(&state));
            p.push(format!("$KV.{}.>", n.state_bucket));
            p.push("gw.dlq.>".into());
            let mut sub = inbox;
            sub.push(gridwatch_model::api::ITEMS_SUBJECT.into());
            sub.push(gridwatch_model::api::OUTCOME_SUBJECT.into());
            sub.push(gridwatch_model::api::OPEN_SUBJECT.into());
            Permissions {
                publish_allow: p,
                subscribe_allow: sub,
                allow_responses: true,
                ..Default::default()
            }
        }
        Service::Backend => {
            let mut p = common;
            p.extend(read_stream(&state));
            p.extend(own_stream(&format!("KV_{}", n.sessions_bucket)));
            p.extend(own_stream(&n.audit));
            // The wall's "reminders just sent".
            p.extend(read_stream(&n.reminders));
            p.push(format!("$KV.{}.>", n.sessions_bucket));
            p.push("gw.audit.>".into());
            p.push("gw.cmd.>".into());
            p.push(gridwatch_model::api::ITEMS_SUBJECT.into());
            p.push(gridwatch_model::api::OUTCOME_SUBJECT.into());
            p.push(gridwatch_model::api::OPEN_SUBJECT.into());
            // Tablets' actions, as events (ingest applies them like any).
            p.push("gw.ev.incident.>".into());
            p.push("gw.ev.video.>".into());
            Permissions {
                publish_allow: p,
                subscribe_allow: inbox,
                ..Default::default()
            }
        }
        Service::Notify => {
            let mut p = common;
            p.extend(read_stream(&state));
            p.extend(own_stream(&format!("KV_{}", n.notify_ledger)));
            p.push(format!("$KV.{}.>", n.notify_ledger));
            p.extend(own_stream(&n.reminders));
            p.push("gw.reminders.>".into());
            p.push(gridwatch_model::api::OPEN_SUBJECT.into());
            Permissions {
                publish_allow: p,
                subscribe_allow: inbox,
                ..Default::default()
            }
        }
        Service::Reader => {
            let mut p = common;
            p.extend(read_stream(&n.events));
            p.extend(read_stream(&n.dlq));
            p.extend(read_stream(&state));
            Permissions {
                publish_allow: p,
                subscribe_allow: inbox,
                ..Default::default()
            }
        }
        Service::Ops => Permissions {
            publish_allow: vec![">".into()],
            publish_deny: vec![
                format!("$KV.{}.>", n.state_bucket),
                gridwatch_model::event::CLOCK_SUBJECT.into(),
                "gw.audit.>".into(),
            ],
            subscribe_allow: vec![">".into()],
            ..Default::default()
        },
    }
}

/// Lets a user also make, read and write the key-value bucket `bucket`
/// (the benchmark's ingest writes a bucket per repetition).
pub fn grant_bucket(p: &mut Permissions, bucket: &str) {
    p.publish_allow.extend(own_stream(&format!("KV_{bucket}")));
    p.publish_allow.push(format!("$KV.{bucket}.>"));
}

/// The inbox prefix of the user with this public key.
pub fn inbox_prefix(public_key: &str) -> String {
    let short: String = public_key.chars().take(12).collect();
    format!("_INBOX_{short}")
}

fn list(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// nats-server's `authorization` block for these users (public keys).
/// `tweak` may change a user's permissions (tests deny more).
pub fn authorization_conf(
    users: &[(Service, String)],
    n: &Names,
    tweak: &dyn Fn(Service, &mut Permissions),
) -> String {
    let mut out = String::from("authorization {\n  users = [\n");
    for (s, key) in users {
        let mut p = permissions(*s, n, &inbox_prefix(key));
        tweak(*s, &mut p);
        let mut publish = format!("allow: {}", list(&p.publish_allow));
        if !p.publish_deny.is_empty() {
            let _ = write!(publish, ", deny: {}", list(&p.publish_deny));
        }
        let responses = if p.allow_responses {
            ", allow_responses: true"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    # {}\n    {{ nkey: {key}, permissions: {{ publish: {{ {publish} }}, subscribe: {{ allow: {} }}{responses} }} }}",
            s.name(),
            list(&p.subscribe_allow),
        );
    }
    out.push_str("  ]\n}\n");
    out
}

/// What [`provision`] made.
#[derive(Clone, Debug)]
pub struct Provisioned {
    /// `<dir>/auth.conf`, for nats-server's configuration to include.
    pub auth_conf: PathBuf,
    /// The seed file of each user.
    pub seeds: Vec<(Service, PathBuf)>,
}

impl Provisioned {
    /// The seed file of `s`.
    pub fn seed(&self, s: Service) -> PathBuf {
        self.seeds
            .iter()
            .find(|(x, _)| *x == s)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `data` to a file only its owner may read.
fn write_private(path: &Path, data: &str) -> Result<(), RuntimeError> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).map_err(io(path))?;
    f.write_all(data.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Makes a seed for every user that has none in `dir` (kept when present,
/// so running it twice changes nothing), and writes `auth.conf`.
pub fn provision(
    dir: &Path,
    n: &Names,
    tweak: &dyn Fn(Service, &mut Permissions),
) -> Result<Provisioned, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut users = Vec::new();
    let mut seeds = Vec::new();
    for s in Service::ALL {
        let path = dir.join(format!("{}.nk", s.name()));
        let kp = match std::fs::read_to_string(&path) {
            Ok(seed) => nkeys::KeyPair::from_seed(seed.trim())
                .map_err(|e| RuntimeError::Nats(format!("{}: not a seed: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = nkeys::KeyPair::new_user();
                let seed = kp
                    .seed()
                    .map_err(|e| RuntimeError::Nats(format!("making a seed: {e}")))?;
                write_private(&path, &format!("{seed}\n"))?;
                kp
            }
            Err(e) => return Err(io(&path)(e)),
        };
        users.push((s, kp.public_key()));
        seeds.push((s, path));
    }
    let auth_conf = dir.join("auth.conf");
    write_private(&auth_conf, &authorization_conf(&users, n, tweak))?;
    Ok(Provisioned { auth_conf, seeds })
}

/// Reads the seed in `file`: the key pair's seed and its inbox prefix.
/// The seed is never logged.
pub fn read_seed(file: &Path) -> Result<(String, String), RuntimeError> {
    let seed = std::fs::read_to_string(file).map_err(io(file))?;
    let seed = seed.trim().to_string();
    let kp = nkeys::KeyPair::from_seed(&seed)
        .map_err(|e| RuntimeError::Nats(format!("{}: not an NKey seed: {e}", file.display())))?;
    Ok((seed, inbox_prefix(&kp.public_key())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ingest_writes_states_and_only_replay_moves_the_clock() {
        let n = Names::default();
        let writes = |s: Service, subject: &str| {
            let p = permissions(s, &n, "_INBOX_X");
            let hit = |pat: &String| {
                pat == ">" || pat == subject || {
                    let pre = pat.trim_end_matches('>');
                    pat.ends_with('>') && subject.starts_with(pre)
                }
            };
            p.publish_allow.iter().any(hit) && !p.publish_deny.iter().any(hit)
        };
        for s in Service::ALL {
            assert_eq!(
                writes(s, "$KV.GW_STATE.node.beilun"),
                s == Service::Ingest,
                "{s:?}"
            );
            assert_eq!(writes(s, "gw.clock"), s == Service::Replay, "{s:?}");
            assert_eq!(writes(s, "gw.audit.signin"), matches!(s, Service::Backend));
        }
        assert!(writes(Service::Field, "gw.ev.patrol.daqi"));
        assert!(!writes(Service::Field, "$JS.API.STREAM.DELETE.GW_EVENTS"));
    }

    #[test]
    fn provisioning_twice_keeps_the_keys() {
        let dir = std::env::temp_dir().join(format!("gw-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = provision(&dir, &Names::default(), &|_, _| {}).expect("first");
        let conf_a = std::fs::read_to_string(&a.auth_conf).expect("auth.conf");
        let b = provision(&dir, &Names::default(), &|_, _| {}).expect("second");
        let conf_b = std::fs::read_to_string(&b.auth_conf).expect("auth.conf");
        assert_eq!(conf_a, conf_b);
        let (seed, inbox) = read_seed(&a.seed(Service::Ingest)).expect("seed");
        assert!(seed.starts_with("SU"));
        assert!(conf_a.contains(&format!("\"{inbox}.>\"")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
