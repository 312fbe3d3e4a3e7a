//! Who may see and do what: roles, and scopes inherited down the tree
//! (access to a node gives access to every node below it, as in DHIS2's
//! org-unit rule). The backend enforces it; the frontend reads `Me` to
//! know who is signed in.

use serde::{Deserialize, Serialize};

/// What a signed-in principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A display device: reads its scope, no personal data, acts on nothing.
    Wall,
    /// A street, community or grid supervisor: reads the subtree of its
    /// scope, with personal data, and acts on its incidents and orders.
    Supervisor,
    /// Reads aggregates everywhere, queries and exports them; no personal
    /// data.
    Analyst,
    /// Everything, including users and zone designations.
    Admin,
}

impl Role {
    /// Every role, for the tests' matrix.
    pub const ALL: [Role; 4] = [Role::Wall, Role::Supervisor, Role::Analyst, Role::Admin];

    /// Its name on the wire and in the users file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Wall => "wall",
            Role::Supervisor => "supervisor",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Whether `node` is `scope` or below it (node ids are paths:
/// `beilun/daqi/...`).
pub fn in_scope(scope: &str, node: &str) -> bool {
    node == scope
        || node
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A session cookie from the sign-in page.
    Session,
    /// A wall's session from its device link.
    Device,
    /// An API token (`Authorization: Bearer`).
    Token,
}

/// `GET /api/v1/me`: who is asking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub user: String,
    pub role: Role,
    /// The node the access starts at (the district for admins, analysts).
    pub scope: String,
    /// A public wall: micro-grid figures below 5 are shown as "<5".
    #[serde(default)]
    pub public: bool,
    pub via: Via,
    /// When the session or token stops working (RFC 3339), if it does.
    pub expires: Option<String>,
}

/// `POST /api/v1/session`: a sign-in.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub user: String,
    pub password: String,
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gw_session";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_the_node_and_everything_below() {
        assert!(in_scope("beilun", "beilun"));
        assert!(in_scope("beilun", "beilun/daqi/x"));
        assert!(in_scope("beilun/daqi", "beilun/daqi/x/g01/m01"));
        assert!(!in_scope("beilun/daqi", "beilun/daqiao"));
        assert!(!in_scope("beilun/daqi", "beilun"));
        assert!(!in_scope("beilun/daqi", "beilun/_map"));
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).expect("a role serializes"),
                format!("\"{}\"", r.as_str())
            );
        }
    }
}
