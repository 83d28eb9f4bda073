//! Planning the lines of one run: this run's forecasts per series (with
//! what drives them), the join of stock, product master and forecast into
//! one line per series, each planned by [`crate::inventory::plan`] or held
//! by [`crate::inventory::hold`] with its reason, and the planners'
//! overrides laid over the result.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::{DEFAULT_HOLDING_RATE, DEFAULT_ORDER_COST, Line, LineStatus, PRODUCT_COLUMNS};
use super::{ReorderSpec, SeriesForecast};
use crate::forecast::events::EventCalendar;
use crate::inventory::hold;
use crate::inventory::overrides::{Action, Family, Overrides};
use crate::inventory::reason::order_reason;
use crate::inventory::{Item, Position, Step, daily_steps, plan};
use crate::tasks::tables::{self, Cols};
use crate::tasks::{AttemptContext, TaskError};

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

/// This run's forecasts per series, with the model, group and flags.
pub(super) async fn read_forecasts(
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
pub(super) async fn plan_lines(
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
    let snapshot = match ["snapshot_date", "date"]
        .into_iter()
        .find(|c| icols.iter().any(|x| x == c))
    {
        Some(c) => format!("i.{c}"),
        None => {
            cx.log.progress(&format!(
                "table `{}` has no snapshot_date or date column: stock snapshots are not \
                 checked against stale_after_days",
                s.inventory
            ));
            "CAST(NULL AS DATE)".to_string()
        }
    };
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

/// What every line of a run is planned with.
pub(super) struct PlanAt<'a> {
    pub spec: &'a ReorderSpec,
    pub as_of: NaiveDate,
    pub events: &'a EventCalendar,
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
pub(super) fn apply_overrides(lines: &mut [Line], o: &Overrides, as_of: NaiveDate) {
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
