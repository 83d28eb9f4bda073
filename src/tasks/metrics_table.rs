//! The `forecast_metrics` table the `train` task writes: one row per
//! group and candidate model kind of the backtest, plus `_overall` rows
//! (`served` for the champions together), and the accuracy columns it
//! shares with `forecast_accuracy` ([`super::accuracy`]). Backtest rows
//! also carry the interval `spread` factor and `spread_coverage`, the
//! outer pair's coverage of each origin's points with the factor fitted
//! on the other origins.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::forecast::{self, ModelKind};

/// The backtest of the trained groups and the overall metrics per kind.
pub(super) fn metrics_batch(
    results: &[forecast::GroupResult],
    overall: &[(Option<ModelKind>, forecast::Metrics)],
    quantiles: &[f64],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut group = Vec::new();
    let mut kind = Vec::new();
    let mut champion = Vec::new();
    let mut rows: Vec<&forecast::Metrics> = Vec::new();
    let (mut spread, mut spread_coverage) = (Vec::new(), Vec::new());
    for r in results {
        for b in &r.backtest {
            group.push(r.group.clone());
            kind.push(b.kind.as_str().to_string());
            champion.push(b.kind == r.champion);
            rows.push(&b.metrics);
            spread.push(Some(b.spread));
            spread_coverage.push(b.spread_coverage.filter(|v| v.is_finite()));
        }
    }
    for (k, m) in overall {
        group.push("_overall".into());
        kind.push(k.map_or("served", |k| k.as_str()).to_string());
        champion.push(k.is_none());
        rows.push(m);
        spread.push(None);
        spread_coverage.push(None);
    }
    let mut fields = vec![
        Field::new("group", DataType::Utf8, false),
        Field::new("model_kind", DataType::Utf8, false),
        Field::new("champion", DataType::Boolean, false),
        Field::new("series", DataType::Int64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(group)),
        Arc::new(StringArray::from(kind)),
        Arc::new(arrow::array::BooleanArray::from(champion)),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|m| m.series as i64),
        )),
    ];
    push_metric_columns(&rows, quantiles, &mut fields, &mut cols);
    // The interval spread the kind serves with, and its out-of-origin
    // coverage of the outer pair (`pipeline::BacktestScore`).
    fields.push(Field::new("spread", DataType::Float64, true));
    cols.push(Arc::new(Float64Array::from(spread)));
    fields.push(Field::new("spread_coverage", DataType::Float64, true));
    cols.push(Arc::new(Float64Array::from(spread_coverage)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}

/// Appends `mase`, `rmsse`, `wape`, `bias` and one `coverage_pNN` per
/// quantile level (nulls where a value is not finite): the accuracy
/// columns shared by `forecast_metrics` and `forecast_accuracy`.
pub(super) fn push_metric_columns(
    rows: &[&forecast::Metrics],
    levels: &[f64],
    fields: &mut Vec<Field>,
    cols: &mut Vec<ArrayRef>,
) {
    let finite = |v: f64| v.is_finite().then_some(v);
    type Measure = fn(&forecast::Metrics) -> f64;
    let measures: [(&str, Measure); 4] = [
        ("mase", |m| m.mase),
        ("rmsse", |m| m.rmsse),
        ("wape", |m| m.wape),
        ("bias", |m| m.bias),
    ];
    for (name, get) in measures {
        fields.push(Field::new(name, DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|m| finite(get(m))),
        )));
    }
    for (i, q) in levels.iter().enumerate() {
        fields.push(Field::new(
            format!("coverage_p{}", (q * 100.0).round() as i64),
            DataType::Float64,
            true,
        ));
        cols.push(Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|m| m.coverage.get(i).copied().and_then(finite)),
        )));
    }
}
