//! Demand forecasting: one global LSTM model per group (candle), simple
//! baselines (naive, seasonal naive, AutoETS), backtest metrics, the
//! champion/challenger choice, forecast rows as Arrow, and model artifacts.
//!
//! Everything here is pure over in-memory data and synchronous; the task
//! kinds that read the lake, write Parquet and run this off the async
//! runtime live elsewhere. See docs/forecasting.md.

pub mod accuracy;
pub mod artifact;
pub mod baselines;
pub mod calendar;
pub mod calibration;
pub mod config;
pub mod device;
pub mod events;
pub mod features;
pub mod intermittent;
mod kernels;
pub mod lstm;
pub mod metrics;
pub mod network;
pub mod output;
pub mod pipeline;
pub mod prepare;
pub mod regression;
pub mod rng;
pub mod series;
pub mod synthetic;
pub mod theta;
pub mod train;

pub use artifact::{ArtifactError, ModelMeta};
pub use baselines::ModelKind;
pub use calibration::Calibration;
pub use config::{DeviceChoice, Frequency, GapPolicy, ModelConfig};
pub use device::select as select_device;
pub use events::EventCalendar;
pub use metrics::Metrics;
pub use output::{Adjustment, ForecastRow, forecast_batch};
pub use pipeline::{
    GroupResult, PipelineError, SharedProgress, forecast_with_model, forecast_with_model_at,
    overall_metrics, train_all_groups, train_all_groups_blocking, train_all_groups_with,
    train_group, train_group_with,
};
pub use prepare::PrepareOptions;
pub use series::{Covariate, Flag, FutureCovariates, Series};
pub use train::{EpochReport, TrainedModel};
