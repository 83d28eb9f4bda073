//! The `train` task's accuracy loop: read the previous run's forecast
//! partition, score it against the demand that has since happened
//! ([`crate::forecast::accuracy`]), and write one row per group (and model
//! kind) to the `forecast_accuracy` table, with the drift against the
//! served model's backtest and what the task did about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;

use super::tables::{self, Cols, date32};
use super::{AttemptContext, TaskError};
use crate::forecast::accuracy::{GroupAccuracy, PastForecast};
use crate::lake::session;

/// The previous forecast: its run date, quantile levels and rows whose
/// dates are on or before `ds`.
pub struct Previous {
    pub ds: NaiveDate,
    pub levels: Vec<f64>,
    pub rows: Vec<PastForecast>,
}

/// The newest `ds=` partition of `table` strictly before the run's date.
async fn previous_partition(
    cx: &AttemptContext,
    table: &str,
) -> Result<Option<NaiveDate>, TaskError> {
    let ds = cx.ds_date()?;
    let Some(t) = cx.dag.tables.get(table) else {
        return Err(TaskError::Fatal(format!(
            "task `{}` reads past forecasts from table `{table}`, which is not declared under `tables:` in {}",
            cx.task_id,
            cx.dag.file.display()
        )));
    };
    let files = match session::table_files(&cx.services.lake, t).await {
        Ok(f) => f,
        Err(e) => return Err(TaskError::Failed(e.to_string())),
    };
    Ok(files
        .iter()
        .filter_map(|f| {
            f.location.parts().find_map(|p| {
                let v = p.as_ref().strip_prefix("ds=")?.to_string();
                NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok()
            })
        })
        .filter(|d| *d < ds)
        .max())
}

/// The columns of a previous forecast the accuracy check reads, besides
/// the series key (what the `forecast` kind writes).
pub const FORECAST_COLUMNS: [&str; 5] = ["group", "forecast_date", "step", "mean", "model_kind"];

/// Reads the previous run's forecast for the dates up to the run's date.
/// `None` when the table has no earlier partition (the first run).
pub async fn previous_forecast(
    cx: &AttemptContext,
    table: &str,
    series_key: &[String],
) -> Result<Option<Previous>, TaskError> {
    let Some(prev) = previous_partition(cx, table).await? else {
        return Ok(None);
    };
    let (ctx, present) = tables::session(cx, &[], &[table]).await?;
    if present.is_empty() {
        return Ok(None);
    }
    let cols = tables::columns(&ctx, table).await?;
    let mut need: Vec<&str> = series_key.iter().map(String::as_str).collect();
    need.extend(FORECAST_COLUMNS);
    tables::require(table, &cols, &need)?;
    let q = tables::quantile_columns(&cols);
    let has = |c: &str| cols.iter().any(|x| x == c);
    let adjusted = has("model_mean") && has("override_id");
    let select: Vec<String> = need
        .iter()
        .map(|c| crate::template::quote_ident(c))
        .chain(q.iter().map(|(c, _)| crate::template::quote_ident(c)))
        .chain(
            adjusted
                .then_some(["model_mean", "override_id"])
                .into_iter()
                .flatten()
                .map(String::from),
        )
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE ds = '{prev}' AND forecast_date <= DATE '{}'",
        select.join(", "),
        cx.vars.ds
    );
    let batches = tables::query(&ctx, &cx.task_id, &sql).await?;
    let mut rows = Vec::new();
    for b in &batches {
        let c = Cols::new(b, table);
        for r in 0..b.num_rows() {
            let mut key = Vec::with_capacity(series_key.len());
            for k in series_key {
                key.push(c.str(k, r)?.unwrap_or_default());
            }
            let (Some(forecast_date), Some(step), Some(mean)) = (
                c.date("forecast_date", r)?,
                c.f64("step", r)?,
                c.f64("mean", r)?,
            ) else {
                continue;
            };
            let mut quantiles = Vec::with_capacity(q.len());
            for (name, _) in &q {
                quantiles.push(c.f64(name, r)?.unwrap_or(f64::NAN));
            }
            rows.push(PastForecast {
                key,
                group: c.str("group", r)?.unwrap_or_default(),
                forecast_date,
                step: step.max(0.0) as usize,
                mean,
                quantiles,
                model_kind: c.str("model_kind", r)?.unwrap_or_default(),
                adjusted: if adjusted {
                    match (c.f64("model_mean", r)?, c.str("override_id", r)?) {
                        (Some(m), Some(id)) => Some((m, id)),
                        _ => None,
                    }
                } else {
                    None
                },
            });
        }
    }
    Ok(Some(Previous {
        ds: prev,
        levels: q.iter().map(|(_, l)| *l).collect(),
        rows,
    }))
}

/// What the task knows about each group's served model and what it did.
#[derive(Debug, Clone, Default)]
pub struct GroupDecision {
    /// The model kind serving the group's forecast and its backtest RMSSE.
    pub served: Option<(String, Option<f64>)>,
    /// `trained`, `reused` or `retrained_on_drift`.
    pub action: String,
}

/// One row per [`GroupAccuracy`]; the drift columns are filled on the row
/// of the group's served model kind.
pub fn accuracy_batch(
    prev: NaiveDate,
    levels: &[f64],
    rows: &[GroupAccuracy],
    decisions: &BTreeMap<String, GroupDecision>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let finite = |v: f64| v.is_finite().then_some(v);
    let decision = |g: &GroupAccuracy| g.group.as_ref().and_then(|name| decisions.get(name));
    let served_row = |g: &GroupAccuracy| {
        decision(g).and_then(|d| {
            let (kind, expected) = d.served.as_ref()?;
            (g.model_kind.as_deref() == Some(kind.as_str())).then_some(*expected)
        })
    };
    let mut fields = vec![
        Field::new("group", DataType::Utf8, false),
        Field::new("model_kind", DataType::Utf8, false),
        Field::new("forecast_ds", DataType::Date32, false),
        Field::new("first_date", DataType::Date32, true),
        Field::new("last_date", DataType::Date32, true),
        Field::new("max_step", DataType::Int64, false),
        Field::new("series", DataType::Int64, false),
        Field::new("points", DataType::Int64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter()
                .map(|g| g.group.clone().unwrap_or_else(|| "_overall".into())),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter()
                .map(|g| g.model_kind.clone().unwrap_or_else(|| "all".into())),
        )),
        Arc::new(Date32Array::from(vec![date32(prev); rows.len()])),
        Arc::new(Date32Array::from_iter(
            rows.iter().map(|g| g.first_date.map(date32)),
        )),
        Arc::new(Date32Array::from_iter(
            rows.iter().map(|g| g.last_date.map(date32)),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|g| g.max_step as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|g| g.metrics.series as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|g| g.points as i64),
        )),
    ];
    let metrics: Vec<&crate::forecast::Metrics> = rows.iter().map(|g| &g.metrics).collect();
    super::metrics_table::push_metric_columns(&metrics, levels, &mut fields, &mut cols);
    fields.push(Field::new("backtest_rmsse", DataType::Float64, true));
    cols.push(Arc::new(Float64Array::from_iter(
        rows.iter()
            .map(|g| served_row(g).flatten().and_then(finite)),
    )));
    fields.push(Field::new("drift", DataType::Float64, true));
    cols.push(Arc::new(Float64Array::from_iter(
        rows.iter().map(|g| served_row(g).and_then(|e| g.drift(e))),
    )));
    fields.push(Field::new("action", DataType::Utf8, true));
    cols.push(Arc::new(StringArray::from_iter(rows.iter().map(|g| {
        served_row(g)
            .is_some()
            .then(|| decision(g).map(|d| d.action.clone()))
            .flatten()
    }))));
    let fva = |f: &dyn Fn(&crate::forecast::accuracy::ValueAdded) -> f64| {
        Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|g| g.value_added.as_ref().map(f).and_then(finite)),
        )) as ArrayRef
    };
    fields.push(Field::new("override_id", DataType::Utf8, true));
    cols.push(Arc::new(StringArray::from_iter(
        rows.iter()
            .map(|g| g.value_added.as_ref().map(|v| v.override_id.clone())),
    )));
    fields.push(Field::new("model_wape", DataType::Float64, true));
    cols.push(fva(&|v| v.model_wape));
    fields.push(Field::new("value_added", DataType::Float64, true));
    cols.push(fva(&|v| v.value_added));
    fields.push(Field::new("improved", DataType::Boolean, true));
    cols.push(Arc::new(arrow::array::BooleanArray::from_iter(
        rows.iter().map(|g| {
            g.value_added
                .as_ref()
                .filter(|v| v.value_added.is_finite())
                .map(|v| v.value_added > 0.0)
        }),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}
