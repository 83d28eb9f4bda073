//! The `monitor` kind: finds stock anomalies and writes them to
//! `anomalies/ds=…/`, one row each, ranked by money at risk
//! ([`crate::inventory::money`], [`crate::inventory::worklist`]): each row
//! carries its `reason`, `money_at_risk`, `money_kind`, `status` (`new`,
//! `recurring`, `worse` against the previous partition of the same output
//! table), `first_seen`, `rank` and whether it is on the capped `headline`.
//!
//! ```yaml
//! - id: monitor
//!   kind: monitor
//!   depends_on: [reorder]
//!   inventory: inventory_position   # store, sku, on_hand, on_order (at ds)
//!   sales: sales                    # date, store, sku, units (partitioned by ds)
//!   plans: reorder_plans            # this run's plan (optional)
//!   forecasts: forecasts            # previous runs' forecasts (optional)
//!   output: anomalies
//!   rules:                          # thresholds; see inventory::monitor::Rules
//!     overstock_days_of_cover: 120
//!     stale_after_days: 1
//!     headline: 25                  # lines in the headline list
//! ```
//!
//! "Yesterday" is the run's `ds` (the newest day of data): its actual
//! sales are compared with the band of the forecast the previous run made
//! for it (step 1). The tracking signal uses the step-1 errors of the last
//! `2 × tracking_signal_min_points` days. Stale data is judged per store
//! from the newest sales date in the last 60 days of partitions.
//!
//! The plan gives unit cost, daily demand and (held) order values for the
//! money figures; the sales table's `price`, when present, gives the unit
//! margin and the price-feed check.
//!
//! Outputs: `anomaly_count`, `critical`, `warning`, `info`, `new`,
//! `recurring`, `worse`, `headline`, `money_at_risk`, `headline_money`,
//! `headline_share`, `by_type` (counts per type), `rows`, `path`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};

use async_trait::async_trait;
use serde::Deserialize;

use super::keys;
use super::schemas;
use super::tables::{self, Cols, date32};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::dag::model::Table;
use crate::forecast::Frequency;
use crate::inventory::monitor::{
    self, Anomaly, ForecastBand, Freshness, Kind, Rules, SeriesState, Severity,
};
use crate::inventory::worklist::{self, Entry, Previous};
use crate::lake::session::{self, SessionError};

pub struct MonitorKind;

fn d_inventory() -> String {
    "inventory_position".into()
}
fn d_sales() -> String {
    "sales".into()
}
fn d_output() -> String {
    "anomalies".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorSpec {
    #[serde(default = "d_inventory")]
    inventory: String,
    #[serde(default = "d_sales")]
    sales: String,
    #[serde(default)]
    plans: Option<String>,
    #[serde(default)]
    forecasts: Option<String>,
    #[serde(default = "d_output")]
    output: String,
    #[serde(default)]
    rules: Rules,
    /// Declared table of planner overrides: series with an `exclude` row
    /// covering the run date are not alerted on.
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

#[derive(Debug)]
struct MonitorRunner {
    spec: MonitorSpec,
}

impl TaskKind for MonitorKind {
    fn name(&self) -> &'static str {
        "monitor"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let mut spec: MonitorSpec = cx.deserialize(spec)?;
        let reads = keys::Reads {
            forecasts: spec.forecasts.as_deref(),
            plans: spec.plans.as_deref(),
        };
        let resolved = keys::resolve(cx, spec.series_key.clone(), reads);
        let keys_ok = resolved.is_some();
        spec.keys = resolved.unwrap_or_default();
        let mut ok = keys_ok & cx.reads_table("inventory", &spec.inventory);
        ok &= cx.reads_table("sales", &spec.sales);
        for (key, t) in [("plans", &spec.plans), ("forecasts", &spec.forecasts)] {
            if let Some(t) = t {
                ok &= cx.reads_table(key, t);
            }
        }
        ok &= check_declared_columns(&spec, cx);
        if let Err(e) = crate::lake::check_table_path(&spec.output) {
            cx.error("output", e);
            ok = false;
        }
        ok.then(|| Arc::new(MonitorRunner { spec }) as Arc<dyn TaskRunner>)
    }
}

/// What the run reads from each table, checked against the columns the
/// DAG declares for it (tables without `columns:` pass). `store` and
/// `sku` are the lake's names for them (`series_key:`).
fn check_declared_columns(spec: &MonitorSpec, cx: &mut KindCompileCx) -> bool {
    let check = |cx: &mut KindCompileCx, key: &str, table: &str, cols: &[&'static str]| {
        let declared = cx.declared_columns(table).unwrap_or_default();
        cx.needs_columns(key, table, &spec.keys.lake_names(cols, &declared))
    };
    let mut ok = check(
        cx,
        "inventory",
        &spec.inventory,
        &["store", "sku", "on_hand", "on_order"],
    );
    ok &= check(cx, "sales", &spec.sales, &["date", "store", "sku", "units"]);
    if let Some(p) = &spec.plans {
        ok &= check(cx, "plans", p, PLAN_COLUMNS);
    }
    ok
}

/// The columns of a `reorder` plan the checks read.
const PLAN_COLUMNS: &[&str] = &[
    "store",
    "sku",
    "safety_stock",
    "order_up_to",
    "days_of_cover",
    "projected_stockout",
    "lead_time_days",
    "order_qty",
];

#[async_trait]
impl TaskRunner for MonitorRunner {
    fn overrides_read(&self) -> Option<super::OverridesRead> {
        Some(super::OverridesRead {
            table: self.spec.overrides.clone()?,
            key_names: self.spec.keys.columns(),
        })
    }

    fn planning(&self) -> Option<super::PlanningTable> {
        Some(super::PlanningTable::Anomalies {
            path: self.spec.output.trim_end_matches('/').to_string(),
        })
    }

    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let s = &self.spec;
        let ds = cx.vars.ds.clone();
        let as_of = cx.ds_date()?;
        let optional: Vec<&str> = [s.plans.as_deref(), s.forecasts.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let (ctx, present) =
            tables::keyed_session(cx, &[&s.inventory, &s.sales], &optional, &s.keys).await?;
        let has = |t: &Option<String>| t.as_ref().is_some_and(|t| present.contains(t));
        let part = |t: &str, cond: &str| match cx.dag.tables.get(t) {
            Some(tb) if tb.partition_by.iter().any(|c| c == "ds") => format!("WHERE {cond}"),
            _ => String::new(),
        };
        let task = cx.task_id.as_str();
        let (rules, period_days) = in_periods(cx, &ctx, s, &present).await?;
        let rules = &rules;

        let mut state: BTreeMap<(String, String), SeriesState> = BTreeMap::new();
        let inv = tables::query(
            &ctx,
            task,
            &format!(
                "SELECT store, sku, on_hand, on_order FROM {} {}",
                s.inventory,
                part(&s.inventory, &format!("ds = '{ds}'"))
            ),
        )
        .await?;
        for b in &inv {
            let c = Cols::new(b, &s.inventory);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                state.insert(
                    (store.clone(), sku.clone()),
                    SeriesState {
                        store,
                        sku,
                        on_hand: c.f64("on_hand", r)?,
                        on_order: c.f64("on_order", r)?.unwrap_or(0.0),
                        ..Default::default()
                    },
                );
            }
        }

        // Recent demand, yesterday's actuals, the zero-sales window and prices.
        let scols = tables::columns(&ctx, &s.sales).await?;
        let has_price = scols.iter().any(|c| c == "price");
        let recent_days = i64::from(rules.recent_days.max(1));
        let stopped_days = i64::from(rules.demand_stopped_days.max(1));
        let since = tables::ds_minus(&ds, recent_days.max(4 * stopped_days.max(period_days)) - 1);
        let recent_since = tables::ds_minus(&ds, recent_days - 1);
        // The usual price averages whole ten-thousandths: sums of
        // integer-valued doubles are exact, so the result does not depend on
        // the order in which parallel partial aggregates merge (a plain AVG
        // of prices moved a margin from 3.75 to 3.76 between two runs).
        let price = if has_price {
            format!(
                "AVG(CASE WHEN date < DATE '{ds}' AND date >= DATE '{recent_since}' THEN ROUND(price * 10000) END) / 10000 AS usual_price,
                 MAX(CASE WHEN date = DATE '{ds}' THEN price END) AS price_today"
            )
        } else {
            "CAST(NULL AS DOUBLE) AS usual_price, CAST(NULL AS DOUBLE) AS price_today".into()
        };
        let recent = tables::query(
            &ctx,
            task,
            &format!(
                "SELECT store, sku,
                        SUM(CASE WHEN date >= DATE '{recent_since}' THEN units ELSE 0 END) AS recent,
                        SUM(CASE WHEN date = DATE '{ds}' THEN units ELSE 0 END) AS yesterday,
                        COUNT(DISTINCT CASE WHEN last_sale IS NULL OR date > last_sale THEN date END) AS silent_rows,
                        MAX(date) AS newest, {price}
                 FROM (SELECT *, MAX(CASE WHEN units > 0 THEN date END) OVER (PARTITION BY store, sku) AS last_sale
                       FROM {} {})
                 GROUP BY store, sku",
                s.sales,
                part(&s.sales, &format!("ds >= '{since}' AND ds <= '{ds}'"))
            ),
        )
        .await?;
        for b in &recent {
            let c = Cols::new(b, &s.sales);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                let newest = c.date("newest", r)?;
                let newest_is_today = newest == Some(as_of);
                let reaches_today =
                    newest.is_some_and(|d| (as_of - d).num_days() <= rules.stale_after_days);
                if let Some(st) = state.get_mut(&(store, sku)) {
                    st.recent_units = c.f64("recent", r)?.unwrap_or(0.0);
                    let silent_rows = c.f64("silent_rows", r)?.unwrap_or(0.0);
                    st.silent_days =
                        reaches_today.then_some((silent_rows * period_days as f64) as u32);
                    st.unit_price = c.f64("usual_price", r)?;
                    st.price_today = c.f64("price_today", r)?;
                    if newest_is_today {
                        st.actual_yesterday = c.f64("yesterday", r)?;
                    }
                }
            }
        }

        // Freshness per store, read far enough back that a store past its
        // limit still shows (a quarterly limit is 92 days).
        let fresh_since = tables::ds_minus(&ds, 60.max(2 * rules.stale_after_days));
        let fresh = tables::query(
            &ctx,
            task,
            &format!(
                "SELECT store, MAX(date) AS newest FROM {} {} GROUP BY store",
                s.sales,
                part(&s.sales, &format!("ds >= '{fresh_since}' AND ds <= '{ds}'"))
            ),
        )
        .await?;
        let mut freshness = Vec::new();
        for b in &fresh {
            let c = Cols::new(b, &s.sales);
            for r in 0..b.num_rows() {
                if let (Some(store), Some(newest)) = (c.str("store", r)?, c.date("newest", r)?) {
                    freshness.push(Freshness { store, newest });
                }
            }
        }

        if has(&s.plans) {
            let plans = s.plans.as_deref().unwrap_or_default();
            let pcols = tables::columns(&ctx, plans).await?;
            let opt = |c: &str| {
                if pcols.iter().any(|p| p == c) {
                    c.to_string()
                } else {
                    format!("CAST(NULL AS DOUBLE) AS {c}")
                }
            };
            let rows = tables::query(
                &ctx,
                task,
                &format!(
                    "SELECT store, sku, safety_stock, order_up_to, days_of_cover, projected_stockout,
                            lead_time_days, order_qty, {}, {}, {}, {}
                     FROM {plans} {}",
                    opt("unit_cost"),
                    opt("daily_demand"),
                    opt("order_value"),
                    opt("held_order_value"),
                    part(plans, &format!("ds = '{ds}'"))
                ),
            )
            .await?;
            for b in &rows {
                let c = Cols::new(b, plans);
                for r in 0..b.num_rows() {
                    let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                        continue;
                    };
                    if let Some(st) = state.get_mut(&(store, sku)) {
                        st.safety_stock = c.f64("safety_stock", r)?;
                        st.order_up_to = c.f64("order_up_to", r)?;
                        st.days_of_cover = c.f64("days_of_cover", r)?;
                        st.projected_stockout = c.date("projected_stockout", r)?;
                        st.lead_time_days = c.f64("lead_time_days", r)?.unwrap_or(0.0);
                        st.order_qty = c.f64("order_qty", r)?.unwrap_or(0.0) as i64;
                        st.unit_cost = c.f64("unit_cost", r)?;
                        st.daily_demand = c.f64("daily_demand", r)?;
                        st.order_value = c.f64("order_value", r)?.unwrap_or(0.0);
                        st.held_order_value = c.f64("held_order_value", r)?;
                    }
                }
            }
        }

        if has(&s.forecasts) {
            let f = s.forecasts.as_deref().unwrap_or_default();
            let cols = tables::columns(&ctx, f).await?;
            let q = tables::quantile_columns(&cols);
            if q.len() >= 2 && cols.iter().any(|c| c == "forecast_date") {
                let lo = &q[0].0;
                let hi = &q[q.len() - 1].0;
                let mid = q
                    .iter()
                    .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
                    .map_or("mean", |m| m.0.as_str());
                let points = (rules.tracking_signal_min_points * 2).max(1) as i64;
                let first = tables::ds_minus(&ds, points * period_days);
                let rows = tables::query(
                    &ctx,
                    task,
                    &format!(
                        "SELECT f.store, f.sku, f.forecast_date, f.mean, f.{lo} AS lo, f.{mid} AS mid, f.{hi} AS hi, a.units
                         FROM (SELECT * FROM {f} {}) f
                         LEFT JOIN (SELECT store, sku, date, units FROM {} {}) a
                           ON f.store = a.store AND f.sku = a.sku AND f.forecast_date = a.date
                         WHERE f.step = 1 AND f.forecast_date > DATE '{first}' AND f.forecast_date <= DATE '{ds}'
                         ORDER BY f.forecast_date",
                        part(f, &format!("ds >= '{first}' AND ds < '{ds}'")),
                        s.sales,
                        part(&s.sales, &format!("ds > '{first}' AND ds <= '{ds}'")),
                    ),
                )
                .await?;
                for b in &rows {
                    let c = Cols::new(b, f);
                    for r in 0..b.num_rows() {
                        let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?)
                        else {
                            continue;
                        };
                        let Some(st) = state.get_mut(&(store, sku)) else {
                            continue;
                        };
                        let date = c.date("forecast_date", r)?;
                        let mean = c.f64("mean", r)?.unwrap_or(0.0);
                        if let Some(units) = c.f64("units", r)? {
                            st.errors.push(units - mean);
                            st.error_forecasts.push(mean);
                        }
                        if date == Some(as_of) {
                            st.forecast_yesterday = Some(ForecastBand {
                                lo: c.f64("lo", r)?.unwrap_or(mean),
                                mid: c.f64("mid", r)?.unwrap_or(mean),
                                hi: c.f64("hi", r)?.unwrap_or(mean),
                            });
                        }
                    }
                }
            } else {
                cx.log.line(&format!(
                    "table `{f}` has no forecast_date or quantile columns; forecast rules skipped"
                ));
            }
        }

        if let Some(table) = &s.overrides {
            let known = state
                .keys()
                .map(|(a, b)| vec![a.clone(), b.clone()])
                .collect();
            let keys = s.keys.columns();
            let o = super::overrides::load(cx, table, &keys, &known).await?;
            let before = state.len();
            state.retain(|(store, sku), _| {
                o.excluded(&[store.clone(), sku.clone()], as_of).is_none()
            });
            if state.len() < before {
                cx.log.progress(&format!(
                    "{} series excluded by planner overrides",
                    before - state.len()
                ));
            }
        }
        let series: Vec<SeriesState> = state.into_values().collect();
        let anomalies = monitor::evaluate(rules, as_of, &series, &freshness);
        let previous = previous_anomalies(cx, &s.output, as_of).await?;
        let (entries, summary) = worklist::build(anomalies, &previous, rules.headline);
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_sev: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &entries {
            *by_type.entry(e.anomaly.kind.as_str()).or_default() += 1;
            *by_sev.entry(e.anomaly.severity.as_str()).or_default() += 1;
            *by_status.entry(e.novelty.as_str()).or_default() += 1;
        }
        cx.log.progress(&format!(
            "{} series checked, {} anomalies ({}); headline {} lines, {:.0}% of {:.2} at risk",
            series.len(),
            entries.len(),
            by_type
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            summary.headline_lines,
            summary.headline_share * 100.0,
            summary.total_money,
        ));
        let batch = to_batch(&entries).map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut out = tables::publish_partition(cx, &s.output, batch).await?;
        out.insert("anomaly_count".into(), entries.len().into());
        for sev in ["critical", "warning", "info"] {
            out.insert(sev.into(), by_sev.get(sev).copied().unwrap_or(0).into());
        }
        for st in ["new", "recurring", "worse"] {
            out.insert(st.into(), by_status.get(st).copied().unwrap_or(0).into());
        }
        let round2 = |x: f64| serde_json::Value::from((x * 100.0).round() / 100.0);
        out.insert("headline".into(), summary.headline_lines.into());
        out.insert("money_at_risk".into(), round2(summary.total_money));
        out.insert("headline_money".into(), round2(summary.headline_money));
        out.insert(
            "headline_share".into(),
            serde_json::Value::from((summary.headline_share * 1000.0).round() / 1000.0),
        );
        out.insert(
            "by_type".into(),
            serde_json::to_value(&by_type).unwrap_or_default(),
        );
        out.insert("series".into(), series.len().into());
        Ok(out)
    }
}

/// Last night's anomalies (the newest partition of `output` before the
/// run's date, within two weeks), keyed for the new-versus-recurring mark.
async fn previous_anomalies(
    cx: &AttemptContext,
    output: &str,
    as_of: chrono::NaiveDate,
) -> Result<HashMap<worklist::Key, Previous>, TaskError> {
    let lake = &cx.services.lake;
    let ctx = session::context(lake);
    let table = Table {
        name: "previous_anomalies".into(),
        path: output.trim_end_matches('/').to_string(),
        partition_by: vec!["ds".into()],
        columns: None,
    };
    match session::register_table(&ctx, lake, &table).await {
        Ok(()) => {}
        Err(SessionError::NoFiles { .. }) => return Ok(HashMap::new()),
        Err(e @ SessionError::List { .. }) => return Err(TaskError::Failed(e.to_string())),
        Err(e) => return Err(TaskError::Fatal(e.to_string())),
    }
    let cols = tables::columns(&ctx, &table.name).await?;
    let pick = |c: &str, ty: &str| {
        if cols.iter().any(|x| x == c) {
            c.to_string()
        } else {
            format!("CAST(NULL AS {ty}) AS {c}")
        }
    };
    let ds = as_of.to_string();
    let first = tables::ds_minus(&ds, 14);
    let sql = format!(
        "SELECT CAST(ds AS VARCHAR) AS ds, type, store, sku, severity, date, {}, {}, {}
         FROM previous_anomalies WHERE ds < '{ds}' AND ds >= '{first}'",
        pick("money_at_risk", "DOUBLE"),
        pick("observed", "DOUBLE"),
        pick("first_seen", "DATE"),
    );
    let rows = tables::query(&ctx, &cx.task_id, &sql).await?;
    let mut newest: Option<String> = None;
    let mut all = Vec::new();
    for b in &rows {
        let c = Cols::new(b, output);
        for r in 0..b.num_rows() {
            let Some(part) = c.str("ds", r)? else {
                continue;
            };
            let (Some(kind), Some(sev)) = (
                c.str("type", r)?.as_deref().and_then(Kind::parse),
                c.str("severity", r)?.as_deref().and_then(Severity::parse),
            ) else {
                continue;
            };
            let Some(seen) = c.date("first_seen", r)?.or(c.date("date", r)?) else {
                continue;
            };
            if newest.as_ref().is_none_or(|n| part > *n) {
                newest = Some(part.clone());
            }
            let key = (kind, c.str("store", r)?, c.str("sku", r)?);
            let prev = Previous {
                first_seen: seen,
                severity: sev,
                money_at_risk: c.f64("money_at_risk", r)?.unwrap_or(0.0),
                observed: c.f64("observed", r)?.unwrap_or(0.0),
            };
            all.push((part, key, prev));
        }
    }
    Ok(all
        .into_iter()
        .filter(|(p, _, _)| Some(p) == newest.as_ref())
        .map(|(_, k, v)| (k, v))
        .collect())
}

fn to_batch(rows: &[Entry]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = schemas::schema(&schemas::anomalies::ALL);
    let a = |f: &dyn Fn(&Anomaly) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|e| f(&e.anomaly)),
        ))
    };
    let strs = |f: &dyn Fn(&Entry) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|e| date32(e.anomaly.date)),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|e| e.anomaly.store.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|e| e.anomaly.sku.as_deref()),
        )),
        strs(&|e| e.anomaly.kind.as_str()),
        strs(&|e| e.anomaly.severity.as_str()),
        a(&|x| x.observed),
        a(&|x| x.expected),
        strs(&|e| e.anomaly.message.as_str()),
        strs(&|e| e.anomaly.reason.as_str()),
        a(&|x| x.money_at_risk),
        strs(&|e| e.anomaly.money_kind.as_str()),
        strs(&|e| e.novelty.as_str()),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|e| date32(e.first_seen)),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|e| e.rank as i64),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|e| Some(e.headline)),
        )),
    ];
    RecordBatch::try_new(schema, cols)
}

/// The rules in the data's periods, and the days one period spans. The
/// frequency comes from the run's forecasts (`frequency` column); daily
/// data, or none known, keeps days. On weekly forecasts
/// `stale_after_days: 1` means one week (a weekly feed is a week old most
/// of the time), on monthly ones a month; the recent-demand window is
/// widened to hold a whole row however the rows are dated (a weekly row
/// dated at its week's start is still recent six days later).
async fn in_periods(
    cx: &AttemptContext,
    ctx: &datafusion::prelude::SessionContext,
    s: &MonitorSpec,
    present: &[String],
) -> Result<(Rules, i64), TaskError> {
    let rules = s.rules.clone();
    let Some(f) = s
        .forecasts
        .as_deref()
        .filter(|f| present.iter().any(|p| p == f))
    else {
        return Ok((rules, 1));
    };
    if !tables::columns(ctx, f)
        .await?
        .iter()
        .any(|c| c == "frequency")
    {
        return Ok((rules, 1));
    }
    let partitioned = cx
        .dag
        .tables
        .get(f)
        .is_some_and(|t| t.partition_by.iter().any(|c| c == "ds"));
    let only_today = if partitioned {
        format!("WHERE ds = '{}'", cx.vars.ds)
    } else {
        String::new()
    };
    let rows = tables::query(
        ctx,
        &cx.task_id,
        &format!("SELECT DISTINCT frequency FROM {f} {only_today} LIMIT 2"),
    )
    .await?;
    let mut found = Vec::new();
    for b in &rows {
        let c = Cols::new(b, f);
        for r in 0..b.num_rows() {
            found.extend(c.str("frequency", r)?);
        }
    }
    let frequency = match found.as_slice() {
        [one] => match Frequency::parse(one) {
            Some(f) if f != Frequency::Daily => f,
            _ => return Ok((rules, 1)),
        },
        _ => return Ok((rules, 1)),
    };
    let periodic = periodic_rules(rules, frequency.max_days());
    cx.log.progress(&format!(
        "{} forecasts: stale_after_days {} is read in periods ({} days); recent demand over {} days",
        found[0], s.rules.stale_after_days, periodic.stale_after_days, periodic.recent_days
    ));
    Ok((periodic, frequency.max_days()))
}

/// `rules` on data whose rows each span `days` days (see [`in_periods`]).
fn periodic_rules(mut rules: Rules, days: i64) -> Rules {
    rules.stale_after_days *= days;
    let recent = i64::from(rules.recent_days.max(1)).max(days) + days - 1;
    rules.recent_days = u32::try_from(recent).unwrap_or(u32::MAX);
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_rules_read_staleness_in_weeks_and_hold_a_whole_row_of_recent_demand() {
        let weekly = periodic_rules(Rules::default(), 7);
        assert_eq!(weekly.stale_after_days, 7);
        // 7 days, widened by 6 so a row dated at its week's start is held.
        assert_eq!(weekly.recent_days, 13);
        assert_eq!(periodic_rules(Rules::default(), 1), Rules::default());
        let monthly = periodic_rules(
            Rules {
                stale_after_days: 2,
                ..Rules::default()
            },
            31,
        );
        assert_eq!((monthly.stale_after_days, monthly.recent_days), (62, 61));
    }
}
