//! Inventory planning math: the normal distribution, demand over a
//! protection interval, safety stock, EOQ, newsvendor, and the
//! replenishment policies that turn a forecast and a stock position into an
//! order. Pure functions; the `reorder` task reads tables and calls them.

pub mod monitor;
pub mod normal;
pub mod policy;

pub use policy::{Demand, Item, PlanLine, Policy, Position, Step, plan};
