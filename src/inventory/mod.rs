//! Inventory planning math: the normal distribution, demand over a
//! protection interval, safety stock, EOQ, newsvendor, and the
//! replenishment policies that turn a forecast and a stock position into an
//! order; holds on bad input, the reason of every line, the money figure of
//! every anomaly and the ranked worklist. Pure functions; the `reorder`
//! and `monitor` tasks read tables and call them.

pub mod checks;
pub mod hold;
pub mod money;
pub mod monitor;
pub mod normal;
pub mod overrides;
pub mod policy;
pub mod reason;
pub mod worklist;

pub use policy::{Demand, Item, PlanLine, Policy, Position, Step, daily_steps, plan};
