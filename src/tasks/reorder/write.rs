//! The plan lines as the `reorder_plans` partition: one row per series in
//! the column set of [`crate::tasks::schemas`], the contract the monitor,
//! the email and the UI read.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use chrono::NaiveDate;

use super::{Line, LineStatus};
use crate::inventory::Policy;
use crate::tasks::schemas;
use crate::tasks::tables::date32;

pub(super) fn to_batch(
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
