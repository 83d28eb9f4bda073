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
//! ```
//!
//! Required columns — forecasts: `store, sku, step, mean` and at least two
//! quantile columns `pNN` (the outermost give each step's spread);
//! inventory: `store, sku, on_hand, on_order`; products: `sku, unit_cost,
//! case_pack, moq, lead_time_days, lead_time_std_days, review_period_days,
//! service_level` (optional `holding_rate`, `order_cost` per product).
//! Partitioned tables are read at the run's `ds`. The math is in
//! [`crate::inventory::policy`].
//!
//! Outputs: `order_lines`, `total_order_value`, `series`, `rows`, `path`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Deserialize;

use super::tables::{self, Cols, date32};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::inventory::{Item, PlanLine, Policy, Position, Step, plan};

pub struct ReorderKind;

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
        let spec: ReorderSpec = cx.deserialize(spec)?;
        let mut ok = cx.reads_table("forecasts", &spec.forecasts);
        ok &= cx.reads_table("inventory", &spec.inventory);
        ok &= cx.reads_table("products", &spec.products);
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
        ok.then(|| Arc::new(ReorderRunner { spec }) as Arc<dyn TaskRunner>)
    }
}

/// One computed plan line with what it was computed from.
struct Line {
    store: String,
    sku: String,
    item: Item,
    pos: Position,
    plan: PlanLine,
}

/// Everything `plan` needs for one series.
struct SeriesInput {
    store: String,
    sku: String,
    steps: Vec<Step>,
}

fn ds_filter(cx: &AttemptContext, table: &str) -> String {
    match cx.dag.tables.get(table) {
        Some(t) if t.partition_by.iter().any(|c| c == "ds") => {
            format!("WHERE ds = '{}'", cx.vars.ds)
        }
        _ => String::new(),
    }
}

#[async_trait]
impl TaskRunner for ReorderRunner {
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let s = &self.spec;
        let (ctx, _) = tables::session(cx, &[&s.forecasts, &s.inventory, &s.products], &[]).await?;
        let fcols = tables::columns(&ctx, &s.forecasts).await?;
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
        let icols = tables::columns(&ctx, &s.inventory).await?;
        tables::require(
            &s.inventory,
            &icols,
            &["store", "sku", "on_hand", "on_order"],
        )?;
        let pcols = tables::columns(&ctx, &s.products).await?;
        tables::require(
            &s.products,
            &pcols,
            &[
                "sku",
                "unit_cost",
                "case_pack",
                "moq",
                "lead_time_days",
                "lead_time_std_days",
                "review_period_days",
                "service_level",
            ],
        )?;
        let opt = |c: &str| {
            if pcols.iter().any(|p| p == c) {
                format!("p.{c}")
            } else {
                "CAST(NULL AS DOUBLE)".to_string()
            }
        };

        let forecasts = tables::query(
            &ctx,
            &cx.task_id,
            &format!(
                "SELECT store, sku, step, mean, {lo} AS lo, {hi} AS hi FROM {} {} ORDER BY store, sku, step",
                s.forecasts,
                ds_filter(cx, &s.forecasts)
            ),
        )
        .await?;
        let items = tables::query(
            &ctx,
            &cx.task_id,
            &format!(
                "SELECT i.store, i.sku, i.on_hand, i.on_order, p.unit_cost, p.case_pack, p.moq,
                        p.lead_time_days, p.lead_time_std_days, p.review_period_days, p.service_level,
                        {} AS holding_rate, {} AS order_cost
                 FROM (SELECT * FROM {} {}) i JOIN (SELECT * FROM {} {}) p ON i.sku = p.sku",
                opt("holding_rate"),
                opt("order_cost"),
                s.inventory,
                ds_filter(cx, &s.inventory),
                s.products,
                ds_filter(cx, &s.products),
            ),
        )
        .await?;

        let mut series: BTreeMap<(String, String), SeriesInput> = BTreeMap::new();
        for b in &forecasts {
            let c = Cols::new(b, &s.forecasts);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                let mean = c.f64("mean", r)?.unwrap_or(0.0).max(0.0);
                let step = Step {
                    mean,
                    lo: c.f64("lo", r)?.unwrap_or(mean),
                    hi: c.f64("hi", r)?.unwrap_or(mean),
                    lo_level,
                    hi_level,
                };
                series
                    .entry((store.clone(), sku.clone()))
                    .or_insert_with(|| SeriesInput {
                        store,
                        sku,
                        steps: Vec::new(),
                    })
                    .steps
                    .push(step);
            }
        }
        let as_of = cx.ds_date()?;
        let holding = s.holding_rate.unwrap_or(0.25);
        let order_cost = s.order_cost.unwrap_or(20.0);
        let mut lines: Vec<Line> = Vec::new();
        let mut missing_forecast = 0usize;
        for b in &items {
            let c = Cols::new(b, &s.products);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                let item = Item {
                    unit_cost: c.f64("unit_cost", r)?.unwrap_or(0.0),
                    case_pack: c.f64("case_pack", r)?.unwrap_or(1.0) as i64,
                    moq: c.f64("moq", r)?.unwrap_or(0.0) as i64,
                    lead_time_days: c.f64("lead_time_days", r)?.unwrap_or(0.0),
                    lead_time_sd_days: c.f64("lead_time_std_days", r)?.unwrap_or(0.0),
                    review_period_days: c.f64("review_period_days", r)?.unwrap_or(7.0),
                    service_level: c.f64("service_level", r)?.unwrap_or(0.95),
                    holding_rate: c.f64("holding_rate", r)?.unwrap_or(holding),
                    order_cost: c.f64("order_cost", r)?.unwrap_or(order_cost),
                };
                let pos = Position {
                    as_of,
                    on_hand: c.f64("on_hand", r)?.unwrap_or(0.0),
                    on_order: c.f64("on_order", r)?.unwrap_or(0.0),
                };
                let Some(input) = series.get(&(store.clone(), sku.clone())) else {
                    missing_forecast += 1;
                    continue;
                };
                let plan = plan(s.policy, &item, &pos, &input.steps);
                lines.push(Line {
                    store: input.store.clone(),
                    sku: input.sku.clone(),
                    item,
                    pos,
                    plan,
                });
            }
        }
        if missing_forecast > 0 {
            cx.log.line(&format!(
                "{missing_forecast} stocked series have no forecast for {}; no plan line for them",
                cx.vars.ds
            ));
        }
        lines.sort_by(|a, b| (&a.store, &a.sku).cmp(&(&b.store, &b.sku)));
        let order_lines = lines.iter().filter(|l| l.plan.order_qty > 0).count();
        let total_value: f64 = lines.iter().map(|l| l.plan.order_value).sum();
        cx.log.progress(&format!(
            "{} series planned, {order_lines} order lines, total value {total_value:.2}",
            lines.len()
        ));
        let batch =
            to_batch(s.policy, as_of, &lines).map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut out = tables::publish_partition(cx, &s.output, batch).await?;
        out.insert("series".into(), lines.len().into());
        out.insert("order_lines".into(), order_lines.into());
        out.insert(
            "total_order_value".into(),
            serde_json::Value::from((total_value * 100.0).round() / 100.0),
        );
        Ok(out)
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
    let schema = Arc::new(Schema::new(vec![
        Field::new("plan_date", DataType::Date32, false),
        Field::new("store", DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("policy", DataType::Utf8, false),
        Field::new("on_hand", DataType::Float64, false),
        Field::new("on_order", DataType::Float64, false),
        Field::new("inventory_position", DataType::Float64, false),
        Field::new("daily_demand", DataType::Float64, false),
        Field::new("lead_time_days", DataType::Float64, false),
        Field::new("review_period_days", DataType::Float64, false),
        Field::new("service_level", DataType::Float64, false),
        Field::new("protection_days", DataType::Float64, false),
        Field::new("demand_mean", DataType::Float64, false),
        Field::new("demand_sd", DataType::Float64, false),
        Field::new("safety_stock", DataType::Float64, false),
        Field::new("reorder_point", DataType::Float64, false),
        Field::new("order_up_to", DataType::Float64, false),
        Field::new("eoq", DataType::Float64, true),
        Field::new("order_qty", DataType::Int64, false),
        Field::new("unit_cost", DataType::Float64, false),
        Field::new("order_value", DataType::Float64, false),
        Field::new("order_needed", DataType::Boolean, false),
        Field::new("order_by", DataType::Date32, true),
        Field::new("projected_stockout", DataType::Date32, true),
        Field::new("days_of_cover", DataType::Float64, true),
    ]));
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
            lines.iter().map(|l| Some(l.plan.order_qty > 0)),
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
    ];
    RecordBatch::try_new(schema, columns)
}
