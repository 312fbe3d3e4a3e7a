//! The state bucket's contract: the JetStream KV bucket ingest writes and
//! the backends watch, and its keys.
//!
//! - `node.<id>` — a node's [`NodeState`](crate::NodeState) (and the status
//!   map and the testing board under their pseudo-node ids);
//! - `meta.ingest` — ingest's statistics, an [`IngestStats`](crate::stats::IngestStats).

/// The bucket's default name (`state_bucket` in both services' config).
pub const DEFAULT_BUCKET: &str = "GW_STATE";

/// The key of ingest's statistics.
pub const META_KEY: &str = "meta.ingest";

/// The prefix of node state keys.
pub const NODE_PREFIX: &str = "node.";

/// The key of a node's state.
pub fn node_key(node: &str) -> String {
    format!("{NODE_PREFIX}{node}")
}

/// The subject a put of `key` in `bucket` is published on.
pub fn put_subject(bucket: &str, key: &str) -> String {
    format!("$KV.{bucket}.{key}")
}

/// A key of the state bucket, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// A node state, by node id.
    Node(&'a str),
    /// Ingest's statistics.
    Meta,
}

impl<'a> Key<'a> {
    /// Parses a key; `None` for a key this version does not know.
    pub fn parse(key: &'a str) -> Option<Key<'a>> {
        if key == META_KEY {
            return Some(Key::Meta);
        }
        key.strip_prefix(NODE_PREFIX)
            .filter(|n| !n.is_empty())
            .map(Key::Node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = node_key("beilun/daqi");
        assert_eq!(Key::parse(&k), Some(Key::Node("beilun/daqi")));
        assert_eq!(Key::parse(META_KEY), Some(Key::Meta));
        assert_eq!(Key::parse("node."), None);
        assert_eq!(Key::parse("other"), None);
        assert_eq!(put_subject("B", "meta.ingest"), "$KV.B.meta.ingest");
    }
}
