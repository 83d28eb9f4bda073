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

mod read;

use super::keys;
use super::schemas;
use super::tables::{self, Cols, date32};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::dag::model::Table;
use crate::inventory::monitor::{self, Anomaly, Kind, Rules, SeriesState, Severity};
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
        let as_of = cx.ds_date()?;
        let optional: Vec<&str> = [s.plans.as_deref(), s.forecasts.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let (ctx, present) =
            tables::keyed_session(cx, &[&s.inventory, &s.sales], &optional, &s.keys).await?;
        let present_table = |t: &Option<String>| t.clone().filter(|t| present.contains(t));
        let (rules, period_days) = read::in_periods(cx, &ctx, s, &present).await?;
        let rules = &rules;
        let reader = read::Reader {
            cx,
            ctx: &ctx,
            spec: s,
            rules,
            as_of,
            period_days,
        };
        let mut state = reader.inventory().await?;
        reader.sales(&mut state).await?;
        let freshness = reader.freshness().await?;
        if let Some(plans) = present_table(&s.plans) {
            reader.plans(&plans, &mut state).await?;
        }
        if let Some(f) = present_table(&s.forecasts) {
            reader.forecast_errors(&f, &mut state).await?;
        }
        if let Some(table) = &s.overrides {
            exclude_overridden(cx, table, &s.keys, as_of, &mut state).await?;
        }
        let series: Vec<SeriesState> = state.into_values().collect();
        let anomalies = monitor::evaluate(rules, as_of, &series, &freshness);
        let previous = previous_anomalies(cx, &s.output, as_of).await?;
        let (entries, summary) = worklist::build(anomalies, &previous, rules.headline);
        publish(cx, &s.output, &entries, &summary, series.len()).await
    }
}

/// Drops the series a planner's `exclude` override covers on the run date.
async fn exclude_overridden(
    cx: &AttemptContext,
    table: &str,
    keys: &tables::KeyMap,
    as_of: chrono::NaiveDate,
    state: &mut read::State,
) -> Result<(), TaskError> {
    let known = state
        .keys()
        .map(|(a, b)| vec![a.clone(), b.clone()])
        .collect();
    let o = super::overrides::load(cx, table, &keys.columns(), &known).await?;
    let before = state.len();
    state.retain(|(store, sku), _| o.excluded(&[store.clone(), sku.clone()], as_of).is_none());
    if state.len() < before {
        cx.log.progress(&format!(
            "{} series excluded by planner overrides",
            before - state.len()
        ));
    }
    Ok(())
}

/// Logs the night's counts, publishes the anomalies partition and returns
/// the task's outputs.
async fn publish(
    cx: &AttemptContext,
    output: &str,
    entries: &[Entry],
    summary: &worklist::Summary,
    series: usize,
) -> Result<Outputs, TaskError> {
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_sev: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    for e in entries {
        *by_type.entry(e.anomaly.kind.as_str()).or_default() += 1;
        *by_sev.entry(e.anomaly.severity.as_str()).or_default() += 1;
        *by_status.entry(e.novelty.as_str()).or_default() += 1;
    }
    cx.log.progress(&format!(
        "{} series checked, {} anomalies ({}); headline {} lines, {:.0}% of {:.2} at risk",
        series,
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
    let batch = to_batch(entries).map_err(|e| TaskError::Fatal(e.to_string()))?;
    let mut out = tables::publish_partition(cx, output, batch).await?;
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
    out.insert("series".into(), series.into());
    Ok(out)
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
