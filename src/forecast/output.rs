//! Forecast rows as the planners see them, and their Arrow form for the
//! lake (one column per series key, group, forecast_date, step, one column
//! per quantile, mean, model_id, model_kind, flags, frequency, promotion,
//! events). Owns the output
//! schema; writing Parquet is the lake layer's job.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, Float64Builder, Int32Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;

use super::baselines::ModelKind;
use super::config::{Frequency, quantile_names};

/// Errors building the output batch.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("row for {key:?} has {got} key values, expected {expected} ({names:?})")]
    KeyArity {
        key: Vec<String>,
        got: usize,
        expected: usize,
        names: Vec<String>,
    },
    #[error("row for {key:?} has {got} quantile values, expected {expected}")]
    QuantileArity {
        key: Vec<String>,
        got: usize,
        expected: usize,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// One forecast value set for one series and horizon step.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRow {
    pub key: Vec<String>,
    pub group: String,
    pub forecast_date: NaiveDate,
    /// 1 for the first step after the last observation.
    pub step: u32,
    /// One value per configured quantile, in order.
    pub quantiles: Vec<f64>,
    pub mean: f64,
    pub model_id: String,
    pub model_kind: ModelKind,
    /// Comma-separated flag names (see `Flag`), empty when clean.
    pub flags: String,
    /// The grid the forecast is on (a step is a day, week or month).
    pub frequency: Frequency,
    /// A promotion is planned for this period (from the `future:` plan).
    pub promotion: bool,
    /// Events of the `events:` calendar falling in this period, comma-separated
    /// (empty when none).
    pub events: String,
    /// A planner's forecast override applied to this row, if any.
    pub adjustment: Option<Adjustment>,
}

/// What a planner override changed on one forecast row: the model's own
/// mean before it, and the override's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjustment {
    pub model_mean: f64,
    pub override_id: String,
}

/// The column of each row's target date (the planning readers' contract,
/// see `tasks::schemas::forecasts`).
pub const FORECAST_DATE: &str = "forecast_date";
/// The column of each row's step (1 = the first period after the run).
pub const STEP: &str = "step";

/// The output schema for the given key column names and quantile levels.
pub fn schema(key_names: &[String], quantiles: &[f64]) -> Schema {
    let mut fields: Vec<Field> = key_names
        .iter()
        .map(|k| Field::new(k, DataType::Utf8, false))
        .collect();
    fields.push(Field::new("group", DataType::Utf8, false));
    fields.push(Field::new(FORECAST_DATE, DataType::Date32, false));
    fields.push(Field::new(STEP, DataType::Int32, false));
    for name in quantile_names(quantiles) {
        fields.push(Field::new(name, DataType::Float64, false));
    }
    fields.push(Field::new("mean", DataType::Float64, false));
    fields.push(Field::new("model_id", DataType::Utf8, false));
    fields.push(Field::new("model_kind", DataType::Utf8, false));
    fields.push(Field::new("flags", DataType::Utf8, false));
    fields.push(Field::new("frequency", DataType::Utf8, false));
    fields.push(Field::new("promotion", DataType::Boolean, false));
    fields.push(Field::new("events", DataType::Utf8, false));
    // The model's mean (equal to `mean` unless a planner override applied)
    // and the override's id.
    fields.push(Field::new("model_mean", DataType::Float64, false));
    fields.push(Field::new("override_id", DataType::Utf8, true));
    Schema::new(fields)
}

/// Builds an Arrow batch from forecast rows.
pub fn forecast_batch(
    key_names: &[String],
    quantiles: &[f64],
    rows: &[ForecastRow],
) -> Result<RecordBatch, OutputError> {
    let n = rows.len();
    let mut keys: Vec<StringBuilder> = key_names.iter().map(|_| StringBuilder::new()).collect();
    let mut group = StringBuilder::new();
    let mut date = Date32Builder::with_capacity(n);
    let mut step = Int32Builder::with_capacity(n);
    let mut qs: Vec<Float64Builder> = quantiles
        .iter()
        .map(|_| Float64Builder::with_capacity(n))
        .collect();
    let mut mean = Float64Builder::with_capacity(n);
    let mut model_id = StringBuilder::new();
    let mut model_kind = StringBuilder::new();
    let mut flags = StringBuilder::new();
    let mut frequency = StringBuilder::new();
    let mut promotion = arrow::array::BooleanBuilder::with_capacity(n);
    let mut events = StringBuilder::new();
    let mut model_mean = Float64Builder::with_capacity(n);
    let mut override_id = StringBuilder::new();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    for r in rows {
        if r.key.len() != key_names.len() {
            return Err(OutputError::KeyArity {
                key: r.key.clone(),
                got: r.key.len(),
                expected: key_names.len(),
                names: key_names.to_vec(),
            });
        }
        if r.quantiles.len() != quantiles.len() {
            return Err(OutputError::QuantileArity {
                key: r.key.clone(),
                got: r.quantiles.len(),
                expected: quantiles.len(),
            });
        }
        for (b, k) in keys.iter_mut().zip(&r.key) {
            b.append_value(k);
        }
        group.append_value(&r.group);
        date.append_value((r.forecast_date - epoch).num_days() as i32);
        step.append_value(r.step as i32);
        for (b, v) in qs.iter_mut().zip(&r.quantiles) {
            b.append_value(*v);
        }
        mean.append_value(r.mean);
        model_id.append_value(&r.model_id);
        model_kind.append_value(r.model_kind.as_str());
        flags.append_value(&r.flags);
        frequency.append_value(r.frequency.as_str());
        promotion.append_value(r.promotion);
        events.append_value(&r.events);
        match &r.adjustment {
            Some(a) => {
                model_mean.append_value(a.model_mean);
                override_id.append_value(&a.override_id);
            }
            None => {
                model_mean.append_value(r.mean);
                override_id.append_null();
            }
        }
    }
    let mut cols: Vec<ArrayRef> = keys
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(group.finish()));
    cols.push(Arc::new(date.finish()));
    cols.push(Arc::new(step.finish()));
    for b in qs.iter_mut() {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(mean.finish()));
    cols.push(Arc::new(model_id.finish()));
    cols.push(Arc::new(model_kind.finish()));
    cols.push(Arc::new(flags.finish()));
    cols.push(Arc::new(frequency.finish()));
    cols.push(Arc::new(promotion.finish()));
    cols.push(Arc::new(events.finish()));
    cols.push(Arc::new(model_mean.finish()));
    cols.push(Arc::new(override_id.finish()));
    Ok(RecordBatch::try_new(
        Arc::new(schema(key_names, quantiles)),
        cols,
    )?)
}
