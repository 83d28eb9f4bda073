//! The `model:` block of a training task: what the global forecasting model
//! looks like and how it is trained. Owns parsing defaults and validation of
//! those numbers; it does not own data preparation or the training loop.

use serde::{Deserialize, Serialize};

/// Errors in a model configuration. All of them are user faults.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("model.{field} must be at least {min}, got {got}")]
    TooSmall {
        field: &'static str,
        min: usize,
        got: usize,
    },
    #[error("model.quantiles must be non-empty, strictly increasing and inside (0, 1), got {0:?}")]
    Quantiles(Vec<f64>),
    #[error("model.learning_rate must be positive and finite, got {0}")]
    LearningRate(f64),
    #[error("model.max_grad_norm must be positive and finite, got {0}")]
    GradNorm(f64),
}

/// Where tensors live: the CPU, a CUDA GPU, or CUDA when built with the
/// `cuda` feature and a device is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    #[default]
    Auto,
}

/// How far apart consecutive observations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Frequency {
    /// Season length used by seasonal naive, ETS and MASE: a week of days,
    /// a year of weeks, months or quarters; yearly data has no season.
    pub fn season(self) -> usize {
        match self {
            Frequency::Daily => 7,
            Frequency::Weekly => 52,
            Frequency::Monthly => 12,
            Frequency::Quarterly => 4,
            Frequency::Yearly => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Quarterly => "quarterly",
            Frequency::Yearly => "yearly",
        }
    }

    /// The frequency [`Self::as_str`] names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Frequency::Daily,
            Frequency::Weekly,
            Frequency::Monthly,
            Frequency::Quarterly,
            Frequency::Yearly,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Days in the longest step: a horizon of `n` steps ends at most
    /// `n × max_days()` days after its origin.
    pub fn max_days(self) -> i64 {
        match self {
            Frequency::Daily => 1,
            Frequency::Weekly => 7,
            Frequency::Monthly => 31,
            Frequency::Quarterly => 92,
            Frequency::Yearly => 366,
        }
    }
}

/// What a period missing from the history means.
///
/// - `zero`: nothing was sold (point-of-sale data with a row per sale day).
/// - `missing`: the period was not recorded. It is left out of the training
///   loss, of the MASE/RMSSE scales and of the backtest scores, and bridged
///   in the model inputs (linear interpolation between its neighbours, the
///   last value after the last observation).
///
/// Default: `zero` for daily data, `missing` for weekly and monthly data,
/// where a missing period is usually an unrecorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapPolicy {
    Zero,
    Missing,
}

impl GapPolicy {
    pub fn default_for(freq: Frequency) -> Self {
        match freq {
            Frequency::Daily => GapPolicy::Zero,
            Frequency::Weekly | Frequency::Monthly | Frequency::Quarterly | Frequency::Yearly => {
                GapPolicy::Missing
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GapPolicy::Zero => "zero",
            GapPolicy::Missing => "missing",
        }
    }
}

/// Hyper-parameters of the global LSTM model. Mirrors the DAG YAML `model:`
/// block; every field has a default so `model: {}` is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Observations the encoder reads before the forecast origin.
    pub context: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Quantile levels predicted for every horizon step.
    pub quantiles: Vec<f64>,
    /// Maximum passes; early stopping may end sooner.
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Seeds weight initialisation and window sampling.
    pub seed: u64,
    /// Steps forecast ahead, and steps held out for the backtest.
    pub horizon: usize,
    /// Epochs without validation improvement before training stops.
    pub patience: usize,
    /// Mini-batches per epoch (windows are sampled across series).
    pub batches_per_epoch: usize,
    /// Most passes over a group's training windows (0 = no limit): the
    /// budget `epochs × batches_per_epoch × batch_size` is cut to this many
    /// times the windows the group has, so a budget sized for groups of
    /// thousands of series neither over-fits a group of forty nor spends
    /// minutes on it.
    pub max_passes: usize,
    /// Global gradient norm clip.
    pub max_grad_norm: f64,
    pub device: DeviceChoice,
    /// Backtest cut-offs the champion is chosen over (rolling origin): the
    /// last is `horizon` steps before the end, each earlier one
    /// `origin_step` steps before the next. The LSTM is trained on what
    /// precedes the earliest, so every backtest point is out of sample.
    pub origins: usize,
    /// Steps between backtest cut-offs; 0 = ⌈horizon / origins⌉.
    pub origin_step: usize,
    /// Most series of a group the backtest scores (0 = all): a larger
    /// group is scored on this many, evenly spaced in key order. Every
    /// series is still forecast; the sample only chooses the champion and
    /// fits the interval spread, and its cost grows with the group.
    pub backtest_series: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            context: 56,
            hidden: 64,
            layers: 1,
            quantiles: vec![0.1, 0.5, 0.9],
            epochs: 30,
            batch_size: 256,
            learning_rate: 0.001,
            seed: 7,
            horizon: 28,
            patience: 5,
            batches_per_epoch: 50,
            max_passes: 0,
            max_grad_norm: 1.0,
            device: DeviceChoice::Auto,
            origins: 3,
            origin_step: 0,
            backtest_series: 2000,
        }
    }
}

impl ModelConfig {
    /// The settings (YAML key names) in which `self` differs from
    /// `earlier`, `device` aside: where the model trains does not change
    /// what it learns. A model trained under other settings is retrained,
    /// not reused.
    pub fn changes_from(&self, earlier: &ModelConfig) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut differ = |name: &'static str, changed: bool| {
            if changed {
                out.push(name);
            }
        };
        differ("context", self.context != earlier.context);
        differ("hidden", self.hidden != earlier.hidden);
        differ("layers", self.layers != earlier.layers);
        differ("quantiles", self.quantiles != earlier.quantiles);
        differ("epochs", self.epochs != earlier.epochs);
        differ("batch_size", self.batch_size != earlier.batch_size);
        differ("learning_rate", self.learning_rate != earlier.learning_rate);
        differ("seed", self.seed != earlier.seed);
        differ("horizon", self.horizon != earlier.horizon);
        differ("patience", self.patience != earlier.patience);
        differ(
            "batches_per_epoch",
            self.batches_per_epoch != earlier.batches_per_epoch,
        );
        differ("max_passes", self.max_passes != earlier.max_passes);
        differ("max_grad_norm", self.max_grad_norm != earlier.max_grad_norm);
        differ("origins", self.origins != earlier.origins);
        differ("origin_step", self.origin_step != earlier.origin_step);
        differ(
            "backtest_series",
            self.backtest_series != earlier.backtest_series,
        );
        out
    }

    /// Checks every field; the first fault is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mins: [(&'static str, usize, usize); 8] = [
            ("context", 1, self.context),
            ("hidden", 1, self.hidden),
            ("layers", 1, self.layers),
            ("epochs", 1, self.epochs),
            ("batch_size", 1, self.batch_size),
            ("horizon", 1, self.horizon),
            ("batches_per_epoch", 1, self.batches_per_epoch),
            ("origins", 1, self.origins),
        ];
        for (field, min, got) in mins {
            if got < min {
                return Err(ConfigError::TooSmall { field, min, got });
            }
        }
        let q = &self.quantiles;
        let ordered = q.windows(2).all(|w| w[0] < w[1]);
        if q.is_empty() || !ordered || q.iter().any(|&x| !(x > 0.0 && x < 1.0)) {
            return Err(ConfigError::Quantiles(q.clone()));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ConfigError::LearningRate(self.learning_rate));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return Err(ConfigError::GradNorm(self.max_grad_norm));
        }
        Ok(())
    }

    /// Steps between backtest cut-offs.
    pub fn origin_step(&self) -> usize {
        if self.origin_step > 0 {
            self.origin_step
        } else {
            self.horizon.div_ceil(self.origins.max(1)).max(1)
        }
    }

    /// Steps at the end of every history that the LSTM does not train on:
    /// the backtest windows of all origins.
    pub fn held_out(&self) -> usize {
        self.horizon + (self.origins.max(1) - 1) * self.origin_step()
    }

    /// Column names for the quantiles: 0.1 → `p10`, 0.025 → `p2_5`.
    pub fn quantile_names(&self) -> Vec<String> {
        quantile_names(&self.quantiles)
    }
}

/// Column names for quantile levels: 0.1 → `p10`, 0.025 → `p2_5`.
pub fn quantile_names(quantiles: &[f64]) -> Vec<String> {
    quantiles
        .iter()
        .map(|q| {
            let pct = format!("{}", (q * 100.0 * 1e6).round() / 1e6);
            format!("p{}", pct.replace('.', "_"))
        })
        .collect()
}
