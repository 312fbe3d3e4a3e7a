//! `gridwatch-admin`: the operator's tool. It edits the users file (then
//! `kill -HUP` the backend, or restart it, to apply) and makes the NATS
//! users' keys.
//!
//! ```text
//! gridwatch-admin --users-file F user add NAME --role R [--scope NODE]   (password on stdin)
//! gridwatch-admin --users-file F user passwd NAME                        (password on stdin)
//! gridwatch-admin --users-file F user remove NAME
//! gridwatch-admin --users-file F user list
//! gridwatch-admin --users-file F token add USER --label L [--scope NODE] [--days N]
//! gridwatch-admin --users-file F token revoke ID
//! gridwatch-admin --users-file F wall add NAME [--scope NODE] [--public] [--base URL]
//! gridwatch-admin --users-file F wall revoke ID|NAME
//! gridwatch-admin nats-auth --dir D
//! ```
//!
//! A password is read from standard input (one line), never from the
//! command line, where other users of the machine could see it. A token
//! and a wall's device link are printed once: only their hashes are kept.

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use gridwatch_backend::auth::users::UsersFile;
use gridwatch_model::Registry;
use gridwatch_model::auth::Role;
use gridwatch_model::ids::DISTRICT_ID;
use gridwatch_runtime::nats_auth::{self, Names};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    version,
    about = "Gridwatch administration: users, tokens, walls, NATS keys"
)]
struct Args {
    /// The users file the backend reads.
    #[arg(long, env = "GRIDWATCH_USERS_FILE", global = true)]
    users_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accounts.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// API tokens for scripts.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Wall displays and their device links.
    Wall {
        #[command(subcommand)]
        cmd: WallCmd,
    },
    /// Makes the NATS users' keys (kept when present) and auth.conf.
    NatsAuth {
        /// Directory of the seeds (`<user>.nk`) and `auth.conf`.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Adds an account (or replaces its role, scope and password); the
    /// password is read from standard input.
    Add {
        name: String,
        /// wall, supervisor, analyst or admin.
        #[arg(long)]
        role: String,
        /// The node its access starts at [default: the district].
        #[arg(long)]
        scope: Option<String>,
    },
    /// Sets a new password (from standard input): its sessions end.
    Passwd { name: String },
    /// Removes an account and revokes its tokens.
    Remove { name: String },
    /// Lists the accounts, tokens and walls (no secrets).
    List,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Makes a token, printed once.
    Add {
        user: String,
        #[arg(long)]
        label: String,
        /// Narrower than the account's scope.
        #[arg(long)]
        scope: Option<String>,
        /// Expires after this many days [default: never, until revoked].
        #[arg(long)]
        days: Option<i64>,
    },
    /// Revokes a token by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum WallCmd {
    /// Provisions a wall: prints its device link once.
    Add {
        name: String,
        #[arg(long)]
        scope: Option<String>,
        /// A public wall: micro-grid figures below 5 show as "<5".
        #[arg(long)]
        public: bool,
        /// The backend's address, for the printed link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base: String,
    },
    /// Revokes a wall's device link (its sessions end).
    Revoke { which: String },
}

fn now() -> String {
    gridwatch_model::time::to_local_rfc3339(chrono::Utc::now())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn scope_of(reg: &Registry, scope: Option<String>) -> anyhow::Result<String> {
    let s = scope.unwrap_or_else(|| DISTRICT_ID.to_string());
    if reg.lookup(&s).is_none() {
        bail!("no node `{s}` in the registry");
    }
    Ok(s)
}

fn edit(path: &Path, f: impl FnOnce(&mut UsersFile) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut file = UsersFile::load(path)?;
    f(&mut file)?;
    file.save(path)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let users = || {
        a.users_file
            .clone()
            .context("--users-file (or GRIDWATCH_USERS_FILE) is needed")
    };
    let reg = || gridwatch_runtime::registry::load(None);
    match a.cmd {
        Cmd::NatsAuth { dir } => {
            let p = nats_auth::provision(&dir, &Names::default(), &|_, _| {})
                .with_context(|| format!("provisioning {}", dir.display()))?;
            println!("{}", p.auth_conf.display());
        }
        Cmd::User { cmd } => match cmd {
            UserCmd::Add { name, role, scope } => {
                let role = Role::parse(&role).with_context(|| {
                    format!("no role `{role}`: wall, supervisor, analyst, admin")
                })?;
                let scope = scope_of(&reg()?, scope)?;
                let pw = read_password()?;
                edit(&users()?, |f| Ok(f.set_user(&name, role, &scope, &pw)?))?;
                println!("user {name}: {} at {scope}", role.as_str());
            }
            UserCmd::Passwd { name } => {
                let pw = read_password()?;
                edit(&users()?, |f| {
                    let u = f
                        .user(&name)
                        .cloned()
                        .with_context(|| format!("no user `{name}`"))?;
                    Ok(f.set_user(&name, u.role, &u.scope, &pw)?)
                })?;
                println!("user {name}: password set");
            }
            UserCmd::Remove { name } => {
                edit(&users()?, |f| Ok(f.remove_user(&name)?))?;
                println!("user {name}: removed, its tokens revoked");
            }
            UserCmd::List => {
                let f = UsersFile::load(&users()?)?;
                for u in &f.users {
                    println!("user  {:<20} {:<11} {}", u.name, u.role.as_str(), u.scope);
                }
                for t in &f.tokens {
                    let state = if t.revoked { "revoked" } else { "live" };
                    println!(
                        "token {:<20} {:<11} {} {} ({state})",
                        t.id, t.user, t.label, t.scope
                    );
                }
                for w in &f.walls {
                    let state = if w.revoked { "revoked" } else { "live" };
                    println!("wall  {:<20} {:<11} {} ({state})", w.id, w.name, w.scope);
                }
            }
        },
        Cmd::Token { cmd } => match cmd {
            TokenCmd::Add {
                user,
                label,
                scope,
                days,
            } => {
                if let Some(s) = &scope {
                    scope_of(&reg()?, Some(s.clone()))?;
                }
                let expires = days.map(|d| {
                    gridwatch_model::time::to_local_rfc3339(
                        chrono::Utc::now() + chrono::Duration::days(d.max(1)),
                    )
                });
                let mut token = String::new();
                edit(&users()?, |f| {
                    token = f.add_token(&user, &label, scope.as_deref(), expires, &now())?;
                    Ok(())
                })?;
                println!("{token}");
            }
            TokenCmd::Revoke { id } => {
                edit(&users()?, |f| Ok(f.revoke_token(&id)?))?;
                println!("token {id}: revoked");
            }
        },
        Cmd::Wall { cmd } => match cmd {
            WallCmd::Add {
                name,
                scope,
                public,
                base,
            } => {
                let scope = scope_of(&reg()?, scope)?;
                let mut code = String::new();
                edit(&users()?, |f| {
                    code = f.add_wall(&name, &scope, public, &now())?;
                    Ok(())
                })?;
                println!("{}/device/{code}", base.trim_end_matches('/'));
            }
            WallCmd::Revoke { which } => {
                edit(&users()?, |f| Ok(f.revoke_wall(&which)?))?;
                println!("wall {which}: revoked");
            }
        },
    }
    Ok(())
}
