//! Gridwatch's reminders (issue 15's `gridwatch-notify`): at every full
//! local hour until 16:00, one digest per responsible group of its open
//! incidents and supervision orders, to the group's DingTalk custom robot.
//!
//! Modules:
//! - [`dingtalk`]: the robot's wire — signing a webhook, the markdown
//!   message, what its answers mean.
//! - [`digest`]: which group answers for an item, and one group's digest
//!   as markdown within DingTalk's limits.
//! - [`schedule`]: which full hour is due, and the ledger key that makes
//!   each (group, hour) go out once.
//! - [`pace`]: at most 20 messages a minute per robot; the excess merged,
//!   never dropped.
//! - [`config`], [`groups`]: the hours, the groups and their robots.
//! - [`ledger`]: each (group, hour) once across restarts, the reminders
//!   stream (the outbox), and the crash window.
//! - [`send`]: one robot's paced, retried, signed sends.
//! - [`service`]: the clock, the hour worked through, the whole service.
//! - [`report`]: what went out on a day, for the operator.

pub mod config;
pub mod digest;
pub mod dingtalk;
pub mod groups;
pub mod ledger;
pub mod pace;
pub mod report;
pub mod schedule;
pub mod send;
pub mod service;

pub use config::Config;
