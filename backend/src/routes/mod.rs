//! HTTP resources, one file each.

pub mod actions;
pub mod audit;
pub mod health;
pub mod hierarchy;
pub mod items;
pub mod metrics;
pub mod query;
pub mod registry;
pub mod reminders;
pub mod session;
pub mod sql;
pub mod state;
pub mod tasks;
