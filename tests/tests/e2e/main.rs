//! End-to-end tests: a real nats-server (one per test, free port, temporary
//! JetStream store), the real `gridwatch-ingest` and `gridwatch-backend`
//! binaries, and headless Chromium. Every number is checked against an
//! independent recount of the raw events the test published. One binary,
//! by topic:
//!
//! - [`access`]: sign-in, roles and scopes, the route × role matrix, NATS
//!   users with least privilege (a forged state refused);
//! - [`system`]: one running system (nats-server, ingest, backend) and
//!   helpers shared by the tests;
//! - [`pipeline`]: exact counts through duplicates, disorder and dead
//!   letters;
//! - [`disposal`]: the disposal loop acted on from a tablet: scope, retries,
//!   409s, the 16:00 rule, the trail;
//! - [`faults`]: ingest killed mid-stream, NATS restarted while events flow;
//! - [`files`]: a corrupt checkpoint, a recreated stream, a second ingest
//!   on one data dir, a full disk;
//! - [`limits`]: what no single node, event or publish may do — grow a
//!   state past what NATS carries, freeze the other screens;
//! - [`matrix`]: the fault matrix — ingest killed, stopped past its ack
//!   wait, NATS killed, the backend restarted under 1,000 clients — each
//!   during a replay with bad events, each checked by `gridwatch-recount`;
//! - [`metrics`]: both `/metrics` endpoints through `promtool check metrics`;
//! - [`recount`]: `gridwatch-recount` against the live states;
//! - [`websocket`]: snapshot, deltas and resume against the REST state;
//! - [`past`]: the wall as it was at a past minute, against the states
//!   recorded live during a replay;
//! - [`browser`]: the wall, the tablet and the district page in headless
//!   Chromium; [`tasks`]: the supervisor acting on the tablet, online and
//!   offline.

mod access;
mod browser;
mod disposal;
mod faults;
mod files;
mod history;
mod limits;
mod matrix;
mod metrics;
mod notify;
mod past;
mod pipeline;
mod recount;
mod sqlwire;
mod system;
mod tasks;
mod websocket;
