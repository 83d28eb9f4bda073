//! The policy backtest: replays the reorder policy over a past window of
//! the lake, day by day, and compares it with two reference policies on the
//! same realized demand.
//!
//! Owns the orchestration: validated [`Settings`] (compiled from what the
//! user typed and the DAG's `reorder` task), reading the declared tables
//! once into per-series arrays (`load`), simulating every series in plain
//! Rust on a bounded pool of blocking threads (`simulate`, pure), and the
//! per-SKU, per-group and overall figures, their Arrow batch and the
//! terminal summary (`summary`). The output is one partition `ds=END` of a
//! lake table, published atomically through [`crate::lake::publish`].
//! It does not plan orders itself: every order comes from
//! [`crate::inventory::policy::plan`] (restock's policy and the moving
//! average reference) or [`crate::demo::replenish`] (the demo's rule).

mod load;
mod settings;
pub mod simulate;
mod stored;
pub mod summary;

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tokio_util::sync::CancellationToken;

use crate::lake::Lake;
use crate::lake::publish::{self, PublishError, Target, WriteMode};

pub use load::{Panel, SeriesInput};
pub use settings::{BacktestArgs, Settings, Sources};
pub use simulate::{Outcome, PolicyKind, SimParams};
pub use summary::{Level, Row};

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Arguments or the DAG do not describe a backtest (user fault).
    #[error("invalid backtest settings:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    /// A table is missing, lacks a column or holds nothing for the window
    /// (user fault: the data must be fixed, another try will not help).
    #[error("table `{table}`: {message}")]
    Input { table: String, message: String },
    /// The lake could not be read (store trouble; another try may help).
    #[error("reading the lake: {0}")]
    Read(String),
    #[error("publishing the backtest: {0}")]
    Publish(#[from] PublishError),
    #[error("the backtest was cancelled")]
    Cancelled,
    /// A bug: a worker thread panicked or a batch did not fit its schema.
    #[error("internal error in the policy backtest: {0}")]
    Internal(String),
}

impl BacktestError {
    /// Whether the user can fix this (arguments, DAG, data) as opposed to
    /// store trouble or a bug.
    pub fn is_user_fault(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::Input { .. })
    }

    /// Whether running again unchanged may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Read(_) => true,
            Self::Publish(e) => {
                !matches!(e, PublishError::Interrupted | PublishError::Encode { .. })
            }
            _ => false,
        }
    }
}

/// Timings of one backtest, for the terminal and `restock bench`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub load_s: f64,
    pub simulate_s: f64,
    pub publish_s: f64,
}

/// What a backtest produced.
#[derive(Debug)]
pub struct Report {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub series: usize,
    /// Series without a stock snapshot before the window (they start at 0).
    pub without_snapshot: usize,
    /// (series, day) forecasts read from the stored forecasts table, and
    /// restock's review days that were decided on one of them.
    pub stored_forecasts: usize,
    pub stored_forecast_days: u64,
    pub rows: Vec<Row>,
    /// Where the table partition was published.
    pub path: String,
    pub timings: Timings,
}

/// Run the backtest: load, simulate, publish.
pub async fn run(
    lake: &Lake,
    settings: &Settings,
    cancel: &CancellationToken,
) -> Result<Report, BacktestError> {
    let t = std::time::Instant::now();
    let panel = Arc::new(load::load(lake, settings).await?);
    let load_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let params = SimParams::from_settings(settings);
    let (p, c) = (Arc::clone(&panel), cancel.clone());
    let outcomes = tokio::task::spawn_blocking(move || simulate::simulate_all(&p, &params, &c))
        .await
        .map_err(|e| BacktestError::Internal(format!("simulation thread: {e}")))??;
    let rows = summary::rows(&panel, &outcomes);
    let stored_forecast_days = outcomes
        .iter()
        .map(|o| u64::from(o[0].stored_forecast_days))
        .sum();
    let simulate_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let batch = summary::to_batch(&panel, &rows)
        .map_err(|e| BacktestError::Internal(format!("output batch: {e}")))?;
    let target = Target {
        table: crate::lake::table_location(&settings.output),
        partition: Some(("ds".to_string(), panel.end.to_string())),
        mode: WriteMode::OverwritePartition,
    };
    let stream = Box::pin(RecordBatchStreamAdapter::new(
        batch.schema(),
        futures::stream::iter(vec![Ok(batch)]),
    ));
    let written = publish::write(lake, &target, stream, cancel, &|_| {}).await?;
    Ok(Report {
        start: panel.start,
        end: panel.end,
        series: panel.series.len(),
        without_snapshot: panel.without_snapshot,
        stored_forecasts: panel.stored_forecasts,
        stored_forecast_days,
        rows,
        path: lake.describe(&written.file),
        timings: Timings {
            load_s,
            simulate_s,
            publish_s: t.elapsed().as_secs_f64(),
        },
    })
}
