//! The backtest's figures per SKU (store × sku series), per group and
//! overall, for each policy; their Arrow batch (the `policy_backtest`
//! table's columns) and the terminal table.
//!
//! Fill rate = served / demand units (null without demand). A stockout day
//! is a series-day with demand not served in full; groups and the overall
//! row add them up, and `stockout_rate` divides by series × days. Average
//! inventory is the mean end-of-day on hand, in units and at unit cost;
//! groups add the series' averages. Turns are annualized cost of goods
//! served over average inventory value (`served·cost·365/days ÷ value`),
//! in units where the cost is zero; null without inventory.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::load::Panel;
use super::simulate::{Outcome, PolicyKind};
use crate::tasks::tables::date32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Sku,
    Group,
    Overall,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Sku => "sku",
            Level::Group => "group",
            Level::Overall => "overall",
        }
    }
}

/// Sums over some series of one policy.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    series: u64,
    demand: f64,
    served: f64,
    stockout_days: u64,
    avg_units: f64,
    avg_value: f64,
    cogs: f64,
    orders: u64,
    units_ordered: f64,
}

impl Totals {
    fn add(&mut self, o: &Outcome, unit_cost: f64, days: usize) {
        let avg = o.inventory_sum / days as f64;
        self.series += 1;
        self.demand += o.demand;
        self.served += o.served;
        self.stockout_days += u64::from(o.stockout_days);
        self.avg_units += avg;
        self.avg_value += avg * unit_cost;
        self.cogs += o.served * unit_cost;
        self.orders += u64::from(o.orders);
        self.units_ordered += o.units_ordered;
    }
}

/// One row of the output table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub policy: PolicyKind,
    pub level: Level,
    pub store: Option<String>,
    pub sku: Option<String>,
    pub group: Option<String>,
    pub series: u64,
    pub demand: f64,
    pub served: f64,
    pub lost: f64,
    pub fill_rate: Option<f64>,
    pub stockout_days: u64,
    pub stockout_rate: f64,
    pub avg_inventory_units: f64,
    pub avg_inventory_value: f64,
    pub turns: Option<f64>,
    pub orders: u64,
    pub units_ordered: f64,
}

fn row(policy: PolicyKind, level: Level, t: &Totals, days: usize) -> Row {
    let year = 365.0 / days as f64;
    let turns = if t.avg_value > 0.0 {
        Some(t.cogs * year / t.avg_value)
    } else if t.avg_units > 0.0 {
        Some(t.served * year / t.avg_units)
    } else {
        None
    };
    Row {
        policy,
        level,
        store: None,
        sku: None,
        group: None,
        series: t.series,
        demand: t.demand,
        served: t.served,
        lost: t.demand - t.served,
        fill_rate: (t.demand > 0.0).then(|| t.served / t.demand),
        stockout_days: t.stockout_days,
        stockout_rate: t.stockout_days as f64 / (t.series.max(1) as f64 * days as f64),
        avg_inventory_units: t.avg_units,
        avg_inventory_value: t.avg_value,
        turns,
        orders: t.orders,
        units_ordered: t.units_ordered,
    }
}

/// Per policy: one row per series, one per group, one overall.
pub fn rows(panel: &Panel, outcomes: &[[Outcome; 3]]) -> Vec<Row> {
    let days = panel.window_days;
    let mut out = Vec::with_capacity((outcomes.len() + 16) * 3);
    for (p, policy) in PolicyKind::ALL.into_iter().enumerate() {
        let mut groups: BTreeMap<&str, Totals> = BTreeMap::new();
        let mut all = Totals::default();
        for (s, o) in panel.series.iter().zip(outcomes) {
            let mut one = Totals::default();
            one.add(&o[p], s.item.unit_cost, days);
            groups
                .entry(s.group.as_str())
                .or_default()
                .add(&o[p], s.item.unit_cost, days);
            all.add(&o[p], s.item.unit_cost, days);
            out.push(Row {
                store: Some(s.store.clone()),
                sku: Some(s.sku.clone()),
                group: Some(s.group.clone()),
                ..row(policy, Level::Sku, &one, days)
            });
        }
        for (g, t) in &groups {
            out.push(Row {
                group: Some(g.to_string()),
                ..row(policy, Level::Group, t, days)
            });
        }
        out.push(row(policy, Level::Overall, &all, days));
    }
    out
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The output table's batch.
pub fn to_batch(panel: &Panel, rows: &[Row]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    let f64s = |f: &dyn Fn(&Row) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let i64s = |f: &dyn Fn(&Row) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r) as i64),
        ))
    };
    let strs = |f: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(f)))
    };
    let opt = |f: &dyn Fn(&Row) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(f)))
    };
    let nn = |name: &str, ty: DataType| Field::new(name, ty, false);
    let schema = Arc::new(Schema::new(vec![
        nn("window_start", DataType::Date32),
        nn("window_end", DataType::Date32),
        nn("days", DataType::Int64),
        nn("policy", DataType::Utf8),
        nn("level", DataType::Utf8),
        Field::new("store", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("group", DataType::Utf8, true),
        nn("series", DataType::Int64),
        nn("demand", DataType::Float64),
        nn("served", DataType::Float64),
        nn("lost", DataType::Float64),
        Field::new("fill_rate", DataType::Float64, true),
        nn("stockout_days", DataType::Int64),
        nn("stockout_rate", DataType::Float64),
        nn("avg_inventory_units", DataType::Float64),
        nn("avg_inventory_value", DataType::Float64),
        Field::new("turns", DataType::Float64, true),
        nn("orders", DataType::Int64),
        nn("units_ordered", DataType::Float64),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![date32(panel.start); n])),
        Arc::new(Date32Array::from(vec![date32(panel.end); n])),
        Arc::new(Int64Array::from(vec![panel.window_days as i64; n])),
        strs(&|r| Some(r.policy.as_str())),
        strs(&|r| Some(r.level.as_str())),
        strs(&|r| r.store.as_deref()),
        strs(&|r| r.sku.as_deref()),
        strs(&|r| r.group.as_deref()),
        i64s(&|r| r.series),
        f64s(&|r| r.demand),
        f64s(&|r| r.served),
        f64s(&|r| r.lost),
        opt(&|r| r.fill_rate.map(|x| round(x, 6))),
        i64s(&|r| r.stockout_days),
        f64s(&|r| round(r.stockout_rate, 6)),
        f64s(&|r| round(r.avg_inventory_units, 4)),
        f64s(&|r| round(r.avg_inventory_value, 2)),
        opt(&|r| r.turns.map(|x| round(x, 4))),
        i64s(&|r| r.orders),
        f64s(&|r| r.units_ordered),
    ];
    RecordBatch::try_new(schema, columns)
}

/// The overall and per-group rows as a small text table.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<9} {:<18} {:>7} {:>10} {:>11} {:>14} {:>7}\n",
        "level", "policy", "fill", "stockout", "avg units", "avg value", "turns"
    );
    let mut picked: Vec<&Row> = rows.iter().filter(|r| r.level != Level::Sku).collect();
    picked.sort_by_key(|r| (r.level != Level::Overall, r.group.clone(), r.policy));
    for r in picked {
        let label = r.group.as_deref().unwrap_or("overall");
        out.push_str(&format!(
            "{:<9} {:<18} {:>7} {:>9.1}% {:>11.1} {:>14.2} {:>7}\n",
            truncate(label, 9),
            r.policy.as_str(),
            r.fill_rate
                .map_or("-".into(), |f| format!("{:.1}%", f * 100.0)),
            r.stockout_rate * 100.0,
            r.avg_inventory_units,
            r.avg_inventory_value,
            r.turns.map_or("-".into(), |t| format!("{t:.1}")),
        ));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
