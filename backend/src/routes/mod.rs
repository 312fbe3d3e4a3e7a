//! HTTP resources, one file each.

pub mod health;
pub mod hierarchy;
pub mod items;
pub mod metrics;
pub mod registry;
pub mod state;
