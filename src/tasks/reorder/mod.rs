//! The `reorder` kind: forecasts + stock position + product master → a
//! reorder plan per (store, sku), written to `reorder_plans/ds=…/`.
//!
//! ```yaml
//! - id: reorder
//!   kind: reorder
//!   depends_on: [forecast, inventory_position]
//!   forecasts: forecasts            # declared tables (see `tables:`)
//!   inventory: inventory_position
//!   products: product_master
//!   policy: periodic_order_up_to    # | periodic_min_max | continuous_eoq
//!   holding_rate: 0.25              # per year, fraction of unit cost
//!   order_cost: 20                  # per order
//!   output: reorder_plans           # lake path; the run's partition is replaced
//!   stale_after_days: 1             # older stock snapshots hold the line
//!   promotions: promo_plan          # optional: named in the reasons
//!   events: calendar                # optional: `date` + event names, named too
//! ```
//!
//! Required columns — forecasts: `store, sku, step, mean` and at least two
//! quantile columns `pNN` (the outermost give each step's spread);
//! inventory: `store, sku, on_hand, on_order`; products: `sku, unit_cost,
//! case_pack, moq, lead_time_days, lead_time_std_days, review_period_days,
//! service_level` (optional `holding_rate`, `order_cost` per product).
//! Partitioned tables are read at the run's `ds`. The math is in
//! [`crate::inventory::policy`]. Forecast steps are converted to days from
//! `forecast_date` (weekly steps become seven days), `model_kind`, `group`
//! and `flags` are read when present. Every line gets a `status` (`order`,
//! `no_order`, `held`) and a plain-language `reason`
//! ([`crate::inventory::reason`]); a line with impossible or stale inputs
//! is held ([`crate::inventory::hold`]) with quantity 0 and the order it
//! would have placed in `held_order_value`.
//!
//! Outputs: `order_lines`, `total_order_value` (held lines never count),
//! `held`, `held_order_value`, `series`, `rows`, `path`.
//!
//! Here: the spec, its compile step and the run; `plan.rs` reads the
//! forecasts and plans or holds each line, `ahead.rs` reads the promotions
//! named in the reasons, `write.rs` builds the output batch.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Deserialize;

mod ahead;
mod plan;
mod write;

use super::keys;
use super::tables;
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::forecast::events::EventCalendar;
use crate::inventory::reason::Drivers;
use crate::inventory::{Item, PlanLine, Policy, Position, Step};
use plan::{PlanAt, apply_overrides, plan_lines, read_forecasts};
use write::to_batch;

pub struct ReorderKind;

/// Holding cost per unit and year, as a fraction of unit cost, when
/// neither the product nor the task sets one.
pub const DEFAULT_HOLDING_RATE: f64 = 0.25;
/// Fixed cost per order when neither the product nor the task sets one.
pub const DEFAULT_ORDER_COST: f64 = 20.0;

fn default_forecasts() -> String {
    "forecasts".into()
}
fn default_inventory() -> String {
    "inventory_position".into()
}
fn default_products() -> String {
    "product_master".into()
}
fn default_output() -> String {
    "reorder_plans".into()
}
fn default_stale() -> i64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReorderSpec {
    #[serde(default = "default_forecasts")]
    forecasts: String,
    #[serde(default = "default_inventory")]
    inventory: String,
    #[serde(default = "default_products")]
    products: String,
    #[serde(default)]
    policy: Policy,
    #[serde(default)]
    holding_rate: Option<f64>,
    #[serde(default)]
    order_cost: Option<f64>,
    #[serde(default = "default_output")]
    output: String,
    /// A stock snapshot older than this many days holds the line.
    #[serde(default = "default_stale")]
    stale_after_days: i64,
    /// Optional declared table of planned promotions (`date, store, sku,
    /// on_promo`), named in the reasons when one falls ahead.
    #[serde(default)]
    promotions: Option<String>,
    /// Optional declared event calendar (`date` plus string columns naming
    /// holidays and events, as the `train` task's `events:`), named in the
    /// reasons when one falls inside a line's protection interval.
    #[serde(default)]
    events: Option<String>,
    /// Declared table of planner overrides (`order_quantity`,
    /// `order_reject` and `exclude` rows covering the run date apply).
    #[serde(default)]
    overrides: Option<String>,
    /// The lake's columns for the store and sku keys, when the task names
    /// them; else they come from the DAG ([`super::keys`]).
    #[serde(default)]
    series_key: Option<tables::KeyMap>,
    /// The keys the task works on, resolved at compile time.
    #[serde(skip)]
    keys: tables::KeyMap,
}

/// What a `reorder` task plans with, as the policy backtest reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReorderSettings {
    pub policy: Policy,
    /// Per year, fraction of unit cost, where the product has none.
    pub holding_rate: f64,
    /// Per order, where the product has none.
    pub order_cost: f64,
    /// Declared table names the task reads.
    pub forecasts: String,
    pub inventory: String,
    pub products: String,
}

#[derive(Debug)]
struct ReorderRunner {
    spec: ReorderSpec,
}

impl TaskKind for ReorderKind {
    fn name(&self) -> &'static str {
        "reorder"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let mut spec: ReorderSpec = cx.deserialize(spec)?;
        let reads = keys::Reads {
            forecasts: Some(&spec.forecasts),
            plans: None,
        };
        let resolved = keys::resolve(cx, spec.series_key.clone(), reads);
        let keys_ok = resolved.is_some();
        spec.keys = resolved.unwrap_or_default();
        let mut ok = keys_ok & cx.reads_table("forecasts", &spec.forecasts);
        ok &= cx.reads_table("inventory", &spec.inventory);
        ok &= cx.reads_table("products", &spec.products);
        for (key, t) in [("promotions", &spec.promotions), ("events", &spec.events)] {
            if let Some(t) = t {
                ok &= cx.reads_table(key, t);
            }
        }
        ok &= check_declared_columns(&spec, cx);
        if let Err(e) = crate::lake::check_table_path(&spec.output) {
            cx.error("output", e);
            ok = false;
        }
        for (key, v) in [
            ("holding_rate", spec.holding_rate),
            ("order_cost", spec.order_cost),
        ] {
            if v.is_some_and(|x| !(x >= 0.0 && x.is_finite())) {
                cx.error(key, "must be a non-negative number");
                ok = false;
            }
        }
        if spec.stale_after_days < 0 {
            cx.error("stale_after_days", "must be 0 or more days");
            ok = false;
        }
        ok.then(|| Arc::new(ReorderRunner { spec }) as Arc<dyn TaskRunner>)
    }
}

/// Whether a line orders, does not need to, or is held on bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus {
    Order,
    NoOrder,
    Held,
    /// A planner rejected the order (`order_reject`).
    Rejected,
    /// A planner excluded the series (`exclude`).
    Excluded,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Order => "order",
            LineStatus::NoOrder => "no_order",
            LineStatus::Held => "held",
            LineStatus::Rejected => "rejected",
            LineStatus::Excluded => "excluded",
        }
    }
}

/// One computed plan line with what it was computed from.
struct Line {
    store: String,
    sku: String,
    item: Item,
    pos: Position,
    plan: PlanLine,
    status: LineStatus,
    reason: String,
    /// The order value a held line would have had.
    held_value: Option<f64>,
    model_kind: Option<String>,
    /// Set when a planner override changed the line: the quantity the
    /// model planned and the override's id.
    model_qty: Option<i64>,
    override_id: Option<String>,
}

/// The forecast of one series as read: dated steps plus what drives it.
#[derive(Default)]
struct SeriesForecast {
    steps: Vec<(Option<NaiveDate>, Step)>,
    raw_means: Vec<(Option<NaiveDate>, f64)>,
    drivers: Drivers,
    cold_start: bool,
}

#[async_trait]
impl TaskRunner for ReorderRunner {
    fn reorder_settings(&self) -> Option<ReorderSettings> {
        let s = &self.spec;
        Some(ReorderSettings {
            policy: s.policy,
            holding_rate: s.holding_rate.unwrap_or(DEFAULT_HOLDING_RATE),
            order_cost: s.order_cost.unwrap_or(DEFAULT_ORDER_COST),
            forecasts: s.forecasts.clone(),
            inventory: s.inventory.clone(),
            products: s.products.clone(),
        })
    }

    fn overrides_read(&self) -> Option<super::OverridesRead> {
        Some(super::OverridesRead {
            table: self.spec.overrides.clone()?,
            key_names: self.spec.keys.columns(),
        })
    }

    fn planning(&self) -> Option<super::PlanningTable> {
        Some(super::PlanningTable::Plans {
            path: self.spec.output.trim_end_matches('/').to_string(),
        })
    }

    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let s = &self.spec;
        let optional: Vec<&str> = [s.promotions.as_deref(), s.events.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let (ctx, present) = tables::keyed_session(
            cx,
            &[&s.forecasts, &s.inventory, &s.products],
            &optional,
            &s.keys,
        )
        .await?;
        let as_of = cx.ds_date()?;
        let mut series = read_forecasts(cx, &ctx, s, as_of).await?;
        if let Some(p) = s
            .promotions
            .as_deref()
            .filter(|p| present.iter().any(|x| x == p))
        {
            for (key, first) in ahead::read_promotions(cx, &ctx, p, as_of).await? {
                if let Some(f) = series.get_mut(&key) {
                    f.drivers.promotion_from = Some(first);
                }
            }
        }
        let events = match s
            .events
            .as_deref()
            .filter(|e| present.iter().any(|x| x == e))
        {
            Some(e) => super::series_input::load_events(cx, &ctx, e).await?,
            None => EventCalendar::default(),
        };
        let at = PlanAt {
            spec: s,
            as_of,
            events: &events,
        };
        let mut lines = plan_lines(cx, &ctx, &at, &series).await?;
        if let Some(table) = &s.overrides {
            let known = lines
                .iter()
                .map(|l| vec![l.store.clone(), l.sku.clone()])
                .collect();
            let keys = s.keys.columns();
            let o = super::overrides::load(cx, table, &keys, &known).await?;
            apply_overrides(&mut lines, &o, as_of);
        }
        let order_lines = lines
            .iter()
            .filter(|l| l.status == LineStatus::Order)
            .count();
        let held = lines
            .iter()
            .filter(|l| l.status == LineStatus::Held)
            .count();
        let held_value: f64 = lines.iter().filter_map(|l| l.held_value).sum();
        let total_value: f64 = lines.iter().map(|l| l.plan.order_value).sum();
        cx.log.progress(&format!(
            "{} series planned, {order_lines} order lines, total value {total_value:.2}; \
             {held} held on bad input (would have been {held_value:.2})",
            lines.len()
        ));
        let batch =
            to_batch(s.policy, as_of, &lines).map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut out = tables::publish_partition(cx, &s.output, batch).await?;
        let round2 = |x: f64| serde_json::Value::from((x * 100.0).round() / 100.0);
        out.insert("series".into(), lines.len().into());
        out.insert("order_lines".into(), order_lines.into());
        out.insert("held".into(), held.into());
        out.insert("held_order_value".into(), round2(held_value));
        out.insert("total_order_value".into(), round2(total_value));
        Ok(out)
    }
}

/// What the run reads from each table, checked against the columns the
/// DAG declares for it (tables without `columns:` pass). `store` and
/// `sku` are the lake's names for them (`series_key:`).
fn check_declared_columns(spec: &ReorderSpec, cx: &mut KindCompileCx) -> bool {
    let check = |cx: &mut KindCompileCx, key: &str, table: &str, cols: &[&'static str]| {
        let declared = cx.declared_columns(table).unwrap_or_default();
        cx.needs_columns(key, table, &spec.keys.lake_names(cols, &declared))
    };
    let mut ok = check(
        cx,
        "forecasts",
        &spec.forecasts,
        &["store", "sku", "step", "mean"],
    );
    if let Some(declared) = cx.declared_columns(&spec.forecasts) {
        let names: Vec<String> = declared.iter().map(|c| c.to_string()).collect();
        if tables::quantile_columns(&names).len() < 2 {
            cx.error(
                "forecasts",
                format!(
                    "task `{}` needs at least two quantile columns such as `p10` and `p90` \
                     of table `{}`, which declares only {}",
                    cx.task_id,
                    spec.forecasts,
                    names
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            ok = false;
        }
    }
    ok &= check(
        cx,
        "inventory",
        &spec.inventory,
        &["store", "sku", "on_hand", "on_order"],
    );
    ok &= check(cx, "products", &spec.products, PRODUCT_COLUMNS);
    if let Some(p) = &spec.promotions {
        ok &= check(cx, "promotions", p, &["date", "store", "sku", "on_promo"]);
    }
    ok
}

/// The product master's columns the policy needs (the policy backtest
/// reads the same ones).
pub const PRODUCT_COLUMNS: &[&str] = &[
    "sku",
    "unit_cost",
    "case_pack",
    "moq",
    "lead_time_days",
    "lead_time_std_days",
    "review_period_days",
    "service_level",
];
