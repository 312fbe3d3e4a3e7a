//! WebSocket messages on `GET /ws` (DESIGN §5): JSON text frames tagged by
//! `type`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Client → server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMsg {
    /// Follow a node; with `resume_from`, continue after that `seq`.
    Subscribe {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_from: Option<u64>,
    },
    /// Stop following a node.
    Unsubscribe { node: String },
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMsg {
    /// The whole state of `node` at version `seq`.
    Snapshot {
        node: String,
        seq: u64,
        state: Value,
    },
    /// A JSON Merge Patch from version `from` to `seq` (usually `seq - 1`;
    /// further back when the server folded versions to pace a busy node).
    Delta {
        node: String,
        from: u64,
        seq: u64,
        patch: Value,
    },
    /// Nothing changed; the node is still at `seq`.
    Heartbeat {
        node: String,
        seq: u64,
        as_of: String,
    },
    /// A request could not be served.
    Error { code: String, message: String },
}
