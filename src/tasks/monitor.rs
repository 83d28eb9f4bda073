//! The `monitor` kind: finds stock anomalies and writes them to
//! `anomalies/ds=…/`, one row each.
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
//! ```
//!
//! "Yesterday" is the run's `ds` (the newest day of data): its actual
//! sales are compared with the band of the forecast the previous run made
//! for it (step 1). The tracking signal uses the step-1 errors of the last
//! `2 × tracking_signal_min_points` days. Stale data is judged per store
//! from the newest sales date in the last 60 days of partitions.
//!
//! Outputs: `anomaly_count`, `critical`, `warning`, `info`, `by_type`
//! (counts per type), `rows`, `path`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use serde::Deserialize;

use super::tables::{self, Cols, date32};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::inventory::monitor::{self, Anomaly, ForecastBand, Freshness, Rules, SeriesState};

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
        let spec: MonitorSpec = cx.deserialize(spec)?;
        let mut ok = cx.reads_table("inventory", &spec.inventory);
        ok &= cx.reads_table("sales", &spec.sales);
        for (key, t) in [("plans", &spec.plans), ("forecasts", &spec.forecasts)] {
            if let Some(t) = t {
                ok &= cx.reads_table(key, t);
            }
        }
        if let Err(e) = crate::lake::check_table_path(&spec.output) {
            cx.error("output", e);
            ok = false;
        }
        ok.then(|| Arc::new(MonitorRunner { spec }) as Arc<dyn TaskRunner>)
    }
}

#[async_trait]
impl TaskRunner for MonitorRunner {
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let s = &self.spec;
        let ds = cx.vars.ds.clone();
        let as_of = cx.ds_date()?;
        let optional: Vec<&str> = [s.plans.as_deref(), s.forecasts.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let (ctx, present) = tables::session(cx, &[&s.inventory, &s.sales], &optional).await?;
        let has = |t: &Option<String>| t.as_ref().is_some_and(|t| present.contains(t));
        let part = |t: &str, cond: &str| match cx.dag.tables.get(t) {
            Some(tb) if tb.partition_by.iter().any(|c| c == "ds") => format!("WHERE {cond}"),
            _ => String::new(),
        };
        let task = cx.task_id.as_str();
        let rules = &s.rules;

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

        // Recent demand and yesterday's actuals.
        let since = tables::ds_minus(&ds, i64::from(rules.recent_days.max(1)) - 1);
        let recent = tables::query(
            &ctx,
            task,
            &format!(
                "SELECT store, sku, SUM(units) AS recent,
                        SUM(CASE WHEN date = DATE '{ds}' THEN units ELSE 0 END) AS yesterday,
                        MAX(date) AS newest
                 FROM {} {} GROUP BY store, sku",
                s.sales,
                part(&s.sales, &format!("ds >= '{since}' AND ds <= '{ds}'"))
            ),
        )
        .await?;
        let mut had_sales_row: HashMap<(String, String), bool> = HashMap::new();
        for b in &recent {
            let c = Cols::new(b, &s.sales);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                let newest_is_today = c.date("newest", r)? == Some(as_of);
                had_sales_row.insert((store.clone(), sku.clone()), newest_is_today);
                if let Some(st) = state.get_mut(&(store, sku)) {
                    st.recent_units = c.f64("recent", r)?.unwrap_or(0.0);
                    if newest_is_today {
                        st.actual_yesterday = c.f64("yesterday", r)?;
                    }
                }
            }
        }

        // Freshness per store.
        let fresh_since = tables::ds_minus(&ds, 60);
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
            let rows = tables::query(
                &ctx,
                task,
                &format!(
                    "SELECT store, sku, safety_stock, order_up_to, days_of_cover, projected_stockout, lead_time_days, order_qty
                     FROM {plans} {}",
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
                let days = (rules.tracking_signal_min_points * 2).max(1) as i64;
                let first = tables::ds_minus(&ds, days);
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

        let series: Vec<SeriesState> = state.into_values().collect();
        let anomalies = monitor::evaluate(rules, as_of, &series, &freshness);
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_sev: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &anomalies {
            *by_type.entry(a.kind.as_str()).or_default() += 1;
            *by_sev.entry(a.severity.as_str()).or_default() += 1;
        }
        cx.log.progress(&format!(
            "{} series checked, {} anomalies ({})",
            series.len(),
            anomalies.len(),
            by_type
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let batch = to_batch(&anomalies).map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut out = tables::publish_partition(cx, &s.output, batch).await?;
        out.insert("anomaly_count".into(), anomalies.len().into());
        for sev in ["critical", "warning", "info"] {
            out.insert(sev.into(), by_sev.get(sev).copied().unwrap_or(0).into());
        }
        out.insert(
            "by_type".into(),
            serde_json::to_value(&by_type).unwrap_or_default(),
        );
        out.insert("series".into(), series.len().into());
        Ok(out)
    }
}

fn to_batch(rows: &[Anomaly]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("store", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("type", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("observed", DataType::Float64, false),
        Field::new("expected", DataType::Float64, false),
        Field::new("message", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|a| date32(a.date)),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|a| a.store.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|a| a.sku.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|a| a.kind.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|a| a.severity.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|a| a.observed),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|a| a.expected),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|a| a.message.as_str()),
        )),
    ];
    RecordBatch::try_new(schema, cols)
}
