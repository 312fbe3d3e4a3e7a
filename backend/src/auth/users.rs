//! The users file: accounts (argon2id password hashes), API tokens and
//! wall devices (both stored as SHA-256 hashes of high-entropy secrets).
//! JSON, written atomically by `gridwatch-admin`, loaded by the backend at
//! start and again on SIGHUP.
//!
//! ```json
//! { "users":  [{"name", "role", "scope", "password"}],
//!   "tokens": [{"id", "user", "label", "scope", "hash", "created", "expires", "revoked"}],
//!   "walls":  [{"id", "name", "scope", "public", "hash", "created", "revoked"}] }
//! ```
//!
//! A token reads `gwt_<id>_<secret>` and a wall's device link ends in
//! `gwd_<id>_<secret>`: the id finds the record, the hash of the whole
//! string proves it. Neither secret is stored.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use gridwatch_model::auth::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Longest user name, label or wall name.
pub const NAME_MAX: usize = 64;
/// Longest password accepted (argon2 takes any; this bounds the work).
pub const PASSWORD_MAX: usize = 256;
/// Shortest password `gridwatch-admin` sets.
pub const PASSWORD_MIN: usize = 10;

/// An account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The node its access starts at.
    pub scope: String,
    /// argon2id PHC string.
    pub password: String,
}

/// An API token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub id: String,
    /// The account it acts for (its role; a scope within the account's).
    pub user: String,
    pub label: String,
    pub scope: String,
    /// SHA-256 of the whole token, hex.
    pub hash: String,
    pub created: String,
    /// RFC 3339; none: until revoked.
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

/// A wall display's device link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wall {
    pub id: String,
    pub name: String,
    pub scope: String,
    /// A public wall: micro-grid figures below 5 show as "<5".
    #[serde(default)]
    pub public: bool,
    pub hash: String,
    pub created: String,
    #[serde(default)]
    pub revoked: bool,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub tokens: Vec<Token>,
    #[serde(default)]
    pub walls: Vec<Wall>,
}

/// What can be wrong with the file or a change to it.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a users file: {msg}")]
    Format { path: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// SHA-256 of `s`, hex.
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `n` random bytes from the OS, hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    hex(&b)
}

/// An argon2id hash of `password` (a fresh salt, the crate's default
/// parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Invalid(format!("hashing the password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (false for a hash that
/// does not parse). Takes tens of milliseconds: call it off the async
/// workers.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > PASSWORD_MAX {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Splits `gwt_<id>_<secret>` (or `gwd_…`) into its id.
pub fn secret_id<'a>(secret: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = secret.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, s) = rest.split_once('_')?;
    (!id.is_empty() && s.len() >= 32).then_some(id)
}

fn check_name(what: &str, name: &str) -> Result<(), UsersError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(UsersError::Invalid(format!(
            "{what} `{name}`: 1–{NAME_MAX} letters, digits, or - _ . @"
        )))
    }
}

/// One change between two versions of the file, as the audit trail names
/// it: (action, target).
pub type Change = (&'static str, String);

impl UsersFile {
    /// What changed from `old` to `self`: accounts added, removed, given
    /// another role or scope or password; tokens and walls added, revoked.
    pub fn changes_since(&self, old: &UsersFile) -> Vec<Change> {
        let mut out = Vec::new();
        for u in &self.users {
            match old.user(&u.name) {
                None => out.push((
                    "user_added",
                    format!("{} {} {}", u.name, u.role.as_str(), u.scope),
                )),
                Some(o) => {
                    if o.role != u.role || o.scope != u.scope {
                        out.push((
                            "user_changed",
                            format!("{} {} {}", u.name, u.role.as_str(), u.scope),
                        ));
                    }
                    if o.password != u.password {
                        out.push(("password_set", u.name.clone()));
                    }
                }
            }
        }
        for o in &old.users {
            if self.user(&o.name).is_none() {
                out.push(("user_removed", o.name.clone()));
            }
        }
        for t in &self.tokens {
            let before = old.tokens.iter().find(|x| x.id == t.id);
            if before.is_none() && !t.revoked {
                out.push(("token_added", format!("{} {} {}", t.id, t.user, t.label)));
            }
            if t.revoked && before.is_none_or(|b| !b.revoked) {
                out.push(("token_revoked", format!("{} {}", t.id, t.user)));
            }
        }
        for w in &self.walls {
            let before = old.walls.iter().find(|x| x.id == w.id);
            if before.is_none() && !w.revoked {
                out.push(("wall_added", format!("{} {} {}", w.id, w.name, w.scope)));
            }
            if w.revoked && before.is_none_or(|b| !b.revoked) {
                out.push(("wall_revoked", format!("{} {}", w.id, w.name)));
            }
        }
        out
    }

    /// Reads `path`; a file that does not exist is empty.
    pub fn load(path: &Path) -> Result<UsersFile, UsersError> {
        let io = |source| UsersError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UsersFile::default()),
            Err(e) => return Err(io(e)),
        };
        serde_json::from_str(&text).map_err(|e| UsersError::Format {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }

    /// Writes `path` atomically (a temporary file renamed over it), readable
    /// by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        use std::io::Write as _;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |source| UsersError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| UsersError::Invalid(format!("serializing: {e}")))?;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        o.mode(0o600);
        let mut f = o.open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Adds an account, or sets the password, role and scope of an
    /// existing one.
    pub fn set_user(
        &mut self,
        name: &str,
        role: Role,
        scope: &str,
        password: &str,
    ) -> Result<(), UsersError> {
        check_name("user", name)?;
        if password.chars().count() < PASSWORD_MIN || password.len() > PASSWORD_MAX {
            return Err(UsersError::Invalid(format!(
                "a password has {PASSWORD_MIN}–{PASSWORD_MAX} characters"
            )));
        }
        let u = User {
            name: name.to_string(),
            role,
            scope: scope.to_string(),
            password: hash_password(password)?,
        };
        match self.users.iter_mut().find(|x| x.name == name) {
            Some(x) => *x = u,
            None => self.users.push(u),
        }
        Ok(())
    }

    /// Removes an account and revokes its tokens.
    pub fn remove_user(&mut self, name: &str) -> Result<(), UsersError> {
        let n = self.users.len();
        self.users.retain(|u| u.name != name);
        if n == self.users.len() {
            return Err(UsersError::Invalid(format!("no user `{name}`")));
        }
        for t in self.tokens.iter_mut().filter(|t| t.user == name) {
            t.revoked = true;
        }
        Ok(())
    }

    /// Makes a token for `user` (scope: the account's, or one below it):
    /// returns the token, shown once.
    pub fn add_token(
        &mut self,
        user: &str,
        label: &str,
        scope: Option<&str>,
        expires: Option<String>,
        now: &str,
    ) -> Result<String, UsersError> {
        check_name("label", label)?;
        let u = self
            .user(user)
            .ok_or_else(|| UsersError::Invalid(format!("no user `{user}`")))?;
        let scope = scope.unwrap_or(&u.scope).to_string();
        if !gridwatch_model::auth::in_scope(&u.scope, &scope) {
            return Err(UsersError::Invalid(format!(
                "scope `{scope}` is outside `{user}`'s scope `{}`",
                u.scope
            )));
        }
        let id = random_hex(4);
        let token = format!("gwt_{id}_{}", random_hex(32));
        self.tokens.push(Token {
            id,
            user: user.to_string(),
            label: label.to_string(),
            scope,
            hash: sha256_hex(&token),
            created: now.to_string(),
            expires,
            revoked: false,
        });
        Ok(token)
    }

    /// Revokes a token (by its id).
    pub fn revoke_token(&mut self, id: &str) -> Result<(), UsersError> {
        let t = self
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| UsersError::Invalid(format!("no token `{id}`")))?;
        t.revoked = true;
        Ok(())
    }

    /// Provisions a wall: returns the secret of its device link, shown once.
    pub fn add_wall(
        &mut self,
        name: &str,
        scope: &str,
        public: bool,
        now: &str,
    ) -> Result<String, UsersError> {
        check_name("wall", name)?;
        let id = random_hex(4);
        let code = format!("gwd_{id}_{}", random_hex(32));
        self.walls.push(Wall {
            id,
            name: name.to_string(),
            scope: scope.to_string(),
            public,
            hash: sha256_hex(&code),
            created: now.to_string(),
            revoked: false,
        });
        Ok(code)
    }

    /// Revokes a wall's device link (by its id or name).
    pub fn revoke_wall(&mut self, which: &str) -> Result<(), UsersError> {
        let mut hit = false;
        for w in self
            .walls
            .iter_mut()
            .filter(|w| w.id == which || w.name == which)
        {
            w.revoked = true;
            hit = true;
        }
        if hit {
            Ok(())
        } else {
            Err(UsersError::Invalid(format!("no wall `{which}`")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn tokens_are_stored_hashed_and_scoped_within_their_user() {
        let mut f = UsersFile::default();
        f.set_user("li", Role::Supervisor, "beilun/daqi", "long enough pw")
            .expect("user");
        let t = f
            .add_token("li", "script", None, None, "now")
            .expect("token");
        assert_eq!(secret_id(&t, "gwt"), Some(f.tokens[0].id.as_str()));
        assert_eq!(f.tokens[0].hash, sha256_hex(&t));
        assert!(!serde_json::to_string(&f).expect("json").contains(&t));
        assert!(f.add_token("li", "x", Some("beilun"), None, "now").is_err());
        assert!(
            f.add_token("li", "y", Some("beilun/daqi/x"), None, "now")
                .is_ok()
        );
        let before = f.clone();
        f.revoke_token(&f.tokens[0].id.clone()).expect("revoke");
        assert!(f.tokens[0].revoked);
        let changes = f.changes_since(&before);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, "token_revoked");
        assert!(before.changes_since(&UsersFile::default()).len() == 3);
        assert!(
            f.set_user("bad name", Role::Admin, "beilun", "long enough pw")
                .is_err()
        );
        assert!(f.set_user("short", Role::Admin, "beilun", "short").is_err());
    }
}
