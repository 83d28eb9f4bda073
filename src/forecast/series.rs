//! Input series as the lake hands them over, and the data-quality flags
//! attached to each series. Owns the shapes only; cleaning is `prepare.rs`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One demand history, e.g. one (store, sku).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Key values, e.g. `["CA_1", "FOODS_3_090"]`.
    pub key: Vec<String>,
    /// One global model is trained per group (e.g. category).
    pub group: String,
    /// A categorical attribute of the series (department, store) fed to the
    /// model as a one-hot vector.
    pub static_feature: Option<String>,
    pub dates: Vec<NaiveDate>,
    /// Demand per date. NaN means missing; negative values are returns.
    pub values: Vec<f64>,
    /// Selling price per date, when known.
    pub price: Option<Vec<f64>>,
    /// Promotion flag per date, when known.
    pub on_promo: Option<Vec<bool>>,
    /// Planned covariates for the forecast horizon.
    pub future: Option<FutureCovariates>,
    /// Known holidays and events (one calendar shared by all series).
    pub events: Option<std::sync::Arc<super::events::EventCalendar>>,
    /// Further covariates by name (display, feature, temperature …),
    /// known in advance or past-only.
    pub covariates: Vec<Covariate>,
}

/// A named numeric covariate beyond price and promotion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Covariate {
    pub name: String,
    /// Known in advance (a plan gives its horizon values), or past-only
    /// (seen in the history, unknown ahead).
    pub known: bool,
    /// One value per history date; NaN where not recorded.
    pub values: Vec<f64>,
    /// Planned values for the horizon after the last date (known
    /// covariates); NaN where the plan has none.
    pub future: Option<Vec<f64>>,
}

/// Covariates known in advance for the `horizon` steps after the last date.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FutureCovariates {
    pub price: Option<Vec<f64>>,
    pub on_promo: Option<Vec<bool>>,
    /// Horizon periods the plan did not cover (filled with the last
    /// planned price and no promotion).
    pub filled: usize,
}

/// A data-quality or modelling condition noted on a series; each one ends up
/// in the `flags` column of the forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Dates missing from the calendar grid were filled with zero demand.
    GapsFilled,
    /// Periods missing from the grid were treated as not recorded (gap
    /// policy `missing`): bridged in the inputs, left out of loss and scores.
    GapsBridged,
    /// The last observation is older than the run's date: the periods up
    /// to the run's date were filled by the gap policy, so the forecast
    /// still starts after the run's date.
    StaleHistory,
    /// Negative values (returns) were clamped to zero.
    NegativeClamped,
    /// NaN values were treated as missing and filled with zero.
    MissingValues,
    /// Several rows for one date were summed.
    DuplicateDates,
    /// The series never sold anything.
    AllZero,
    /// Average interval between sales above 1.32 (Syntetos–Boylan).
    Intermittent,
    /// Fewer observations than context + horizon: served by a baseline.
    ColdStart,
    /// The only series in its group.
    SingleSeriesGroup,
    /// Future price/promotion were not given; last price and no promotion
    /// were assumed.
    FutureCovariatesAssumed,
    /// The future plan lacked some horizon periods; those were filled
    /// (last planned price, no promotion).
    FutureCovariatesFilled,
    /// The static feature value was not seen in training.
    UnknownStaticFeature,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::GapsFilled => "gaps_filled",
            Flag::GapsBridged => "gaps_bridged",
            Flag::StaleHistory => "stale_history",
            Flag::NegativeClamped => "negative_clamped",
            Flag::MissingValues => "missing_values",
            Flag::DuplicateDates => "duplicate_dates",
            Flag::AllZero => "all_zero",
            Flag::Intermittent => "intermittent",
            Flag::ColdStart => "cold_start",
            Flag::SingleSeriesGroup => "single_series_group",
            Flag::FutureCovariatesAssumed => "future_covariates_assumed",
            Flag::FutureCovariatesFilled => "future_covariates_filled",
            Flag::UnknownStaticFeature => "unknown_static_feature",
        }
    }
}

/// Flags plus the counts behind them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quality {
    pub flags: Vec<Flag>,
    pub gaps_filled: usize,
    /// Periods treated as not recorded (gap policy `missing`).
    pub gaps_bridged: usize,
    /// Periods added after the last observation to reach the run's date.
    pub stale_periods: usize,
    pub negatives_clamped: usize,
    pub missing: usize,
}

impl Quality {
    pub fn add(&mut self, flag: Flag) {
        if !self.flags.contains(&flag) {
            self.flags.push(flag);
            self.flags.sort();
        }
    }

    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// Comma-separated flag names, sorted; empty when clean.
    pub fn joined(&self) -> String {
        self.flags
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}
