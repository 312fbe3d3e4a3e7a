//! `gridwatch-recount`: an independent recount of Gridwatch's figures. A
//! plain fold over the raw events in GW_EVENTS that shares no code with
//! ingest's aggregation: it reads every message in stream order, classifies
//! it as DESIGN §3 says ([`classify`]), folds the valid events
//! ([`fold`]), and diffs what the live states must show against what they
//! show ([`fold::differences`]). Operators run the binary; the end-to-end
//! tests use the same fold as their oracle.
//!
//! Modules:
//! - [`classify`]: a raw message → a tick, a valid event, or a DLQ reason.
//! - [`fold`]: valid events → the figures of any node at a clock time.

pub mod classify;
pub mod fold;
