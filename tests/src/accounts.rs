//! The deployment's people for a test: accounts, tokens and wall device
//! links, made with the real `gridwatch-admin` into a users file.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::procs::binary;

/// One account of the deployment: its password and an API token.
#[derive(Clone, Debug)]
pub struct Account {
    pub user: String,
    pub password: String,
    pub token: String,
    pub scope: String,
}

/// The deployment's people, made with the real `gridwatch-admin`: an
/// admin, a supervisor of Daqi, an analyst, and a wall's device link.
#[derive(Clone, Debug)]
pub struct Accounts {
    pub file: PathBuf,
    pub admin: Account,
    pub supervisor: Account,
    pub analyst: Account,
    /// `/device/gwd_…`.
    pub wall_link: String,
    /// A public wall's device link.
    pub public_wall_link: String,
}

/// Runs `gridwatch-admin --users-file <file> <args>` with `stdin`; its
/// output.
pub fn admin_cli(file: &Path, args: &[&str], stdin: &str) -> Result<String> {
    use std::io::Write as _;
    let mut child = Command::new(binary("gridwatch-admin")?)
        .arg("--users-file")
        .arg(file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting gridwatch-admin")?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "gridwatch-admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Accounts {
    /// Makes the users file `file`.
    pub fn create(file: &Path) -> Result<Accounts> {
        let make = |user: &str, role: &str, scope: &str| -> Result<Account> {
            let password = format!("{user}-pw-{}", rand::random::<u32>());
            admin_cli(
                file,
                &["user", "add", user, "--role", role, "--scope", scope],
                &format!("{password}\n"),
            )?;
            let token = admin_cli(file, &["token", "add", user, "--label", "tests"], "")?;
            Ok(Account {
                user: user.into(),
                password,
                token,
                scope: scope.into(),
            })
        };
        let admin = make("admin", "admin", "beilun")?;
        let supervisor = make("li.daqi", "supervisor", "beilun/daqi")?;
        let analyst = make("analyst", "analyst", "beilun")?;
        let wall_link = admin_cli(file, &["wall", "add", "wall-1", "--base", ""], "")?;
        let public_wall_link = admin_cli(
            file,
            &["wall", "add", "lobby", "--public", "--base", ""],
            "",
        )?;
        Ok(Accounts {
            file: file.to_path_buf(),
            admin,
            supervisor,
            analyst,
            wall_link,
            public_wall_link,
        })
    }
}
