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

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Deserialize;

use datafusion::prelude::SessionContext;

use super::ahead;
use super::keys;
use super::schemas;
use super::tables::{self, Cols, date32};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::forecast::events::EventCalendar;
use crate::inventory::hold;
use crate::inventory::overrides::{Action, Family, Overrides};
use crate::inventory::reason::{Drivers, order_reason};
use crate::inventory::{Item, PlanLine, Policy, Position, Step, daily_steps, plan};

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

fn ds_filter(cx: &AttemptContext, table: &str) -> String {
    match cx.dag.tables.get(table) {
        Some(t) if t.partition_by.iter().any(|c| c == "ds") => {
            format!("WHERE ds = '{}'", cx.vars.ds)
        }
        _ => String::new(),
    }
}

/// `c` when the table has it, else a typed NULL named `c`.
fn col_or_null(cols: &[String], alias: &str, c: &str, ty: &str) -> String {
    if cols.iter().any(|p| p == c) {
        format!("{alias}.\"{c}\"")
    } else {
        format!("CAST(NULL AS {ty})")
    }
}

/// The change of the daily forecast from the first to the last week.
fn trend(daily: &[Step]) -> Option<f64> {
    if daily.len() < 14 {
        return None;
    }
    let first: f64 = daily[..7].iter().map(|s| s.mean).sum();
    let last: f64 = daily[daily.len() - 7..].iter().map(|s| s.mean).sum();
    (first > 0.0).then(|| last / first - 1.0)
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

/// This run's forecasts per series, with the model, group and flags.
async fn read_forecasts(
    cx: &AttemptContext,
    ctx: &SessionContext,
    s: &ReorderSpec,
    as_of: NaiveDate,
) -> Result<BTreeMap<(String, String), SeriesForecast>, TaskError> {
    let fcols = tables::columns(ctx, &s.forecasts).await?;
    tables::require(&s.forecasts, &fcols, &["store", "sku", "step", "mean"])?;
    let quantiles = tables::quantile_columns(&fcols);
    if quantiles.len() < 2 {
        return Err(TaskError::Fatal(format!(
            "table `{}` needs at least two quantile columns such as p10 and p90 (it has: {})",
            s.forecasts,
            fcols.join(", ")
        )));
    }
    let (lo, lo_level) = quantiles[0].clone();
    let (hi, hi_level) = quantiles[quantiles.len() - 1].clone();
    if !fcols.iter().any(|c| c == "forecast_date") {
        cx.log.line(&format!(
            "table `{}` has no forecast_date column: each step is taken as one day",
            s.forecasts
        ));
    }
    let sql = format!(
        "SELECT f.store, f.sku, f.step, f.mean, f.{lo} AS lo, f.{hi} AS hi,
                {} AS forecast_date, {} AS model_kind, {} AS grp, {} AS flags
         FROM (SELECT * FROM {} {}) f ORDER BY f.store, f.sku, f.step",
        col_or_null(&fcols, "f", "forecast_date", "DATE"),
        col_or_null(&fcols, "f", "model_kind", "VARCHAR"),
        col_or_null(&fcols, "f", "group", "VARCHAR"),
        col_or_null(&fcols, "f", "flags", "VARCHAR"),
        s.forecasts,
        ds_filter(cx, &s.forecasts)
    );
    let batches = tables::query(ctx, &cx.task_id, &sql).await?;
    let mut series: BTreeMap<(String, String), SeriesForecast> = BTreeMap::new();
    for b in &batches {
        let c = Cols::new(b, &s.forecasts);
        for r in 0..b.num_rows() {
            let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                continue;
            };
            let raw = c.f64("mean", r)?.unwrap_or(f64::NAN);
            let mean = if raw.is_finite() { raw.max(0.0) } else { 0.0 };
            let step = Step {
                mean,
                lo: c.f64("lo", r)?.filter(|v| v.is_finite()).unwrap_or(mean),
                hi: c.f64("hi", r)?.filter(|v| v.is_finite()).unwrap_or(mean),
                lo_level,
                hi_level,
            };
            let date = c.date("forecast_date", r)?;
            let f = series.entry((store, sku)).or_default();
            if f.steps.is_empty() {
                f.drivers.model_kind = c.str("model_kind", r)?.filter(|k| !k.is_empty());
                f.drivers.group = c.str("grp", r)?.filter(|k| !k.is_empty());
                let flags = c.str("flags", r)?.unwrap_or_default();
                f.drivers.flags = flags
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect();
                f.cold_start = f.drivers.flags.iter().any(|x| x == "cold_start");
            }
            f.steps.push((date, step));
            f.raw_means.push((date, raw));
        }
    }
    for f in series.values_mut() {
        f.drivers.trend = trend(&daily_steps(as_of, &f.steps));
    }
    Ok(series)
}

/// One line per stocked or forecast series whose SKU is in the product
/// master: planned, or held with the input at fault named.
async fn plan_lines(
    cx: &AttemptContext,
    ctx: &SessionContext,
    at: &PlanAt<'_>,
    series: &BTreeMap<(String, String), SeriesForecast>,
) -> Result<Vec<Line>, TaskError> {
    let s = at.spec;
    let icols = tables::columns(ctx, &s.inventory).await?;
    tables::require(
        &s.inventory,
        &icols,
        &["store", "sku", "on_hand", "on_order"],
    )?;
    let pcols = tables::columns(ctx, &s.products).await?;
    tables::require(&s.products, &pcols, PRODUCT_COLUMNS)?;
    let snapshot = ["snapshot_date", "date"]
        .into_iter()
        .find(|c| icols.iter().any(|x| x == c))
        .map_or("CAST(NULL AS DATE)".to_string(), |c| format!("i.{c}"));
    if !snapshot.starts_with("i.") {
        cx.log.progress(&format!(
            "table `{}` has no snapshot_date or date column: stock snapshots are not checked \
             against stale_after_days",
            s.inventory
        ));
    }
    let inv = format!(
        "(SELECT * FROM {} {})",
        s.inventory,
        ds_filter(cx, &s.inventory)
    );
    let sql = format!(
        "SELECT k.store, k.sku, i.on_hand, i.on_order, {snapshot} AS snapshot_date,
                p.unit_cost, p.case_pack, p.moq, p.lead_time_days, p.lead_time_std_days,
                p.review_period_days, p.service_level,
                {} AS holding_rate, {} AS order_cost
         FROM (SELECT store, sku FROM {inv} UNION
               SELECT DISTINCT store, sku FROM {} {}) k
         JOIN (SELECT * FROM {} {}) p ON k.sku = p.sku
         LEFT JOIN {inv} i ON k.store = i.store AND k.sku = i.sku",
        col_or_null(&pcols, "p", "holding_rate", "DOUBLE"),
        col_or_null(&pcols, "p", "order_cost", "DOUBLE"),
        s.forecasts,
        ds_filter(cx, &s.forecasts),
        s.products,
        ds_filter(cx, &s.products),
    );
    let items = tables::query(ctx, &cx.task_id, &sql).await?;
    let mut lines = Vec::new();
    for b in &items {
        let c = Cols::new(b, &s.products);
        for r in 0..b.num_rows() {
            let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                continue;
            };
            let forecast = series.get(&(store.clone(), sku.clone()));
            lines.push(line(at, &c, r, store, sku, forecast)?);
        }
    }
    lines.sort_by(|a, b| (&a.store, &a.sku).cmp(&(&b.store, &b.sku)));
    Ok(lines)
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

/// What every line of a run is planned with.
struct PlanAt<'a> {
    spec: &'a ReorderSpec,
    as_of: NaiveDate,
    events: &'a EventCalendar,
}

/// Plan (or hold) one series from its joined row.
fn line(
    at: &PlanAt<'_>,
    c: &Cols<'_>,
    r: usize,
    store: String,
    sku: String,
    forecast: Option<&SeriesForecast>,
) -> Result<Line, TaskError> {
    let (s, as_of) = (at.spec, at.as_of);
    let lead_time = c.f64("lead_time_days", r)?;
    let on_hand = c.f64("on_hand", r)?;
    let item = Item {
        unit_cost: c.f64("unit_cost", r)?.unwrap_or(0.0),
        case_pack: c.f64("case_pack", r)?.unwrap_or(1.0) as i64,
        moq: c.f64("moq", r)?.unwrap_or(0.0) as i64,
        lead_time_days: lead_time.unwrap_or(0.0),
        lead_time_sd_days: c.f64("lead_time_std_days", r)?.unwrap_or(0.0),
        review_period_days: c.f64("review_period_days", r)?.unwrap_or(7.0),
        service_level: c.f64("service_level", r)?.unwrap_or(0.95),
        holding_rate: c
            .f64("holding_rate", r)?
            .unwrap_or(s.holding_rate.unwrap_or(DEFAULT_HOLDING_RATE)),
        order_cost: c
            .f64("order_cost", r)?
            .unwrap_or(s.order_cost.unwrap_or(DEFAULT_ORDER_COST)),
    };
    let pos = Position {
        as_of,
        on_hand: on_hand.unwrap_or(0.0),
        on_order: c.f64("on_order", r)?.unwrap_or(0.0),
    };
    let hold = hold::check(&hold::Inputs {
        as_of: Some(as_of),
        on_hand,
        snapshot: c.date("snapshot_date", r)?,
        stale_after_days: s.stale_after_days,
        lead_time_days: lead_time,
        forecast: forecast.map(|f| f.raw_means.as_slice()),
        cold_start: forecast.is_some_and(|f| f.cold_start),
        model_kind: forecast.and_then(|f| f.drivers.model_kind.as_deref()),
    });
    let daily = forecast.map_or_else(Vec::new, |f| daily_steps(as_of, &f.steps));
    let mut plan = plan(s.policy, &item, &pos, &daily);
    let until = as_of + chrono::Duration::days(plan.protection_days.ceil() as i64);
    let drivers = forecast
        .map(|f| f.drivers.clone())
        .unwrap_or_default()
        .ahead(as_of, until, at.events);
    let (status, reason, held_value) = match hold {
        Some(h) => {
            let would = (plan.order_qty, plan.order_value);
            plan.order_qty = 0;
            plan.order_value = 0.0;
            (
                LineStatus::Held,
                h.reason_with_value(would.0, would.1),
                Some(would.1),
            )
        }
        None => {
            let reason = order_reason(s.policy, &item, &pos, &plan, &drivers);
            let status = if plan.order_qty > 0 {
                LineStatus::Order
            } else {
                LineStatus::NoOrder
            };
            (status, reason, None)
        }
    };
    Ok(Line {
        store,
        sku,
        item,
        pos,
        plan,
        status,
        reason,
        held_value,
        model_kind: drivers.model_kind,
        model_qty: None,
        override_id: None,
    })
}

/// The planners' last word: an order quantity, a rejection or an
/// exclusion replaces the planned line, which keeps the model's quantity
/// and names the override first in its reason.
fn apply_overrides(lines: &mut [Line], o: &Overrides, as_of: NaiveDate) {
    for l in lines.iter_mut() {
        let key = [l.store.clone(), l.sku.clone()];
        let Some(ov) = o
            .excluded(&key, as_of)
            .or_else(|| o.find(&key, Family::Order, as_of))
        else {
            continue;
        };
        let model = l.plan.order_qty;
        let (qty, status) = match ov.action {
            Action::OrderQuantity(q) if q > 0 => (q, LineStatus::Order),
            Action::OrderQuantity(_) => (0, LineStatus::NoOrder),
            Action::OrderReject => (0, LineStatus::Rejected),
            _ => (0, LineStatus::Excluded),
        };
        l.plan.order_qty = qty;
        l.plan.order_value = qty as f64 * l.item.unit_cost;
        l.held_value = None;
        l.status = status;
        l.model_qty = Some(model);
        l.override_id = Some(ov.id.clone());
        l.reason = format!("{}; the model planned {model}: {}", ov.label(), l.reason);
    }
}

fn to_batch(
    policy: Policy,
    as_of: NaiveDate,
    lines: &[Line],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let policy_name = match policy {
        Policy::PeriodicOrderUpTo => "periodic_order_up_to",
        Policy::PeriodicMinMax => "periodic_min_max",
        Policy::ContinuousEoq => "continuous_eoq",
    };
    let f64s = |f: &dyn Fn(&Line) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(lines.iter().map(f)))
    };
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let schema = schemas::schema(&schemas::plans::ALL);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![date32(as_of); lines.len()])),
        Arc::new(StringArray::from_iter_values(
            lines.iter().map(|l| l.store.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            lines.iter().map(|l| l.sku.as_str()),
        )),
        Arc::new(StringArray::from(vec![policy_name; lines.len()])),
        f64s(&|l| l.pos.on_hand),
        f64s(&|l| l.pos.on_order),
        f64s(&|l| l.plan.inventory_position),
        f64s(&|l| round2(l.plan.daily_demand)),
        f64s(&|l| l.item.lead_time_days),
        f64s(&|l| l.item.review_period_days),
        f64s(&|l| l.item.service_level),
        f64s(&|l| l.plan.protection_days),
        f64s(&|l| round2(l.plan.demand_mean)),
        f64s(&|l| round2(l.plan.demand_sd)),
        f64s(&|l| round2(l.plan.safety_stock)),
        f64s(&|l| round2(l.plan.reorder_point)),
        f64s(&|l| round2(l.plan.order_up_to)),
        Arc::new(Float64Array::from_iter(
            lines.iter().map(|l| l.plan.eoq.map(round2)),
        )),
        Arc::new(Int64Array::from_iter_values(
            lines.iter().map(|l| l.plan.order_qty),
        )),
        f64s(&|l| l.item.unit_cost),
        f64s(&|l| round2(l.plan.order_value)),
        Arc::new(BooleanArray::from_iter(
            lines.iter().map(|l| Some(l.status == LineStatus::Order)),
        )),
        Arc::new(Date32Array::from_iter(
            lines.iter().map(|l| l.plan.order_by.map(date32)),
        )),
        Arc::new(Date32Array::from_iter(
            lines.iter().map(|l| l.plan.projected_stockout.map(date32)),
        )),
        Arc::new(Float64Array::from_iter(
            lines.iter().map(|l| l.plan.days_of_cover.map(round2)),
        )),
        Arc::new(StringArray::from_iter_values(
            lines.iter().map(|l| l.status.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            lines.iter().map(|l| l.reason.as_str()),
        )),
        Arc::new(Float64Array::from_iter(
            lines.iter().map(|l| l.held_value.map(round2)),
        )),
        Arc::new(StringArray::from_iter(
            lines.iter().map(|l| l.model_kind.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(lines.iter().map(|l| l.model_qty))),
        Arc::new(StringArray::from_iter(
            lines.iter().map(|l| l.override_id.as_deref()),
        )),
    ];
    RecordBatch::try_new(schema, columns)
}
