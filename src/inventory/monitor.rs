//! Stock anomaly rules: from the state of each series (stock, plan,
//! forecast, recent sales) and the freshness of each store's data to a list
//! of anomalies, each with a type, a severity, what was observed and what
//! was expected. Thresholds come from the DAG (`rules:` of the `monitor`
//! task) with the defaults below.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::checks;
use super::money::{Economics, MoneyKind};

/// Thresholds of the rules. Every field has a default; a DAG overrides
/// only what it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Days of sales that count as "recent demand" for `stockout`.
    pub recent_days: u32,
    /// `overstock` when days of cover exceed this …
    pub overstock_days_of_cover: f64,
    /// … or the inventory position exceeds this multiple of the
    /// order-up-to level.
    pub overstock_position_ratio: f64,
    /// `stale_data` when a store's newest date is older than this many days
    /// before the run date.
    pub stale_after_days: i64,
    /// `forecast_bias` when |tracking signal| exceeds this.
    pub tracking_signal_limit: f64,
    /// Minimum number of forecast errors before the tracking signal counts.
    pub tracking_signal_min_points: usize,
    /// Bias is only judged for series forecast to sell at least this much
    /// per period (intermittent series need other measures).
    pub tracking_signal_min_demand: f64,
    /// … and only when the mean error is at least this fraction of the
    /// mean forecast. RSFE/MAD over n periods has a spread of about
    /// 1.25·√n on unbiased noise, so ±4 alone flags many healthy series.
    pub tracking_signal_min_relative_bias: f64,
    /// `demand_outside_interval` only when the actual is past the band by
    /// more than this multiple of its half-width: with a 10–90% band and
    /// 1.0, about one series in a hundred on a normal night.
    pub band_margin: f64,
    /// Stock, band and bias anomalies whose money figure is below this
    /// (in the plan's currency) are `info`: kept in the table, not in the
    /// headline. Data faults are never demoted.
    pub min_money_at_risk: f64,
    /// `demand_outside_interval` is critical when the actual exceeds the
    /// upper quantile by more than this multiple of the band's half-width.
    pub spike_critical_ratio: f64,
    /// `demand_stopped` when a series forecast to sell at least
    /// `demand_stopped_min_daily` a day sold nothing for this many days in
    /// a row with stock on hand (a delisting, a blocked shelf, a broken
    /// scanner).
    pub demand_stopped_days: u32,
    pub demand_stopped_min_daily: f64,
    /// `price_error` when the run date's price is at or below zero, or
    /// this many times above or below the series' recent average price.
    pub price_error_ratio: f64,
    /// How many anomalies the headline lists (ranked by money at risk).
    pub headline: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            recent_days: 7,
            overstock_days_of_cover: 90.0,
            overstock_position_ratio: 3.0,
            stale_after_days: 1,
            tracking_signal_limit: 4.0,
            tracking_signal_min_points: 8,
            tracking_signal_min_demand: 1.0,
            tracking_signal_min_relative_bias: 0.2,
            band_margin: 1.0,
            min_money_at_risk: 100.0,
            spike_critical_ratio: 3.0,
            demand_stopped_days: 7,
            demand_stopped_min_daily: 2.0,
            price_error_ratio: 3.0,
            headline: super::worklist::DEFAULT_HEADLINE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Critical, Severity::Warning, Severity::Info]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stockout,
    ProjectedStockout,
    BelowSafetyStock,
    Overstock,
    DemandOutsideInterval,
    NegativeOnHand,
    StaleData,
    ForecastBias,
    DemandStopped,
    PriceError,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Stockout,
        Kind::ProjectedStockout,
        Kind::BelowSafetyStock,
        Kind::Overstock,
        Kind::DemandOutsideInterval,
        Kind::NegativeOnHand,
        Kind::StaleData,
        Kind::ForecastBias,
        Kind::DemandStopped,
        Kind::PriceError,
    ];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stockout => "stockout",
            Kind::ProjectedStockout => "projected_stockout",
            Kind::BelowSafetyStock => "below_safety_stock",
            Kind::Overstock => "overstock",
            Kind::DemandOutsideInterval => "demand_outside_interval",
            Kind::NegativeOnHand => "negative_on_hand",
            Kind::StaleData => "stale_data",
            Kind::ForecastBias => "forecast_bias",
            Kind::DemandStopped => "demand_stopped",
            Kind::PriceError => "price_error",
        }
    }
}

/// One anomaly row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub date: NaiveDate,
    pub store: Option<String>,
    pub sku: Option<String>,
    pub kind: Kind,
    pub severity: Severity,
    pub observed: f64,
    /// The expected value or the threshold crossed.
    pub expected: f64,
    /// What was seen, in one sentence.
    pub message: String,
    /// The message and how the money figure was reached.
    pub reason: String,
    pub money_at_risk: f64,
    pub money_kind: MoneyKind,
}

/// What the monitor knows about one series on the run date.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesState {
    pub store: String,
    pub sku: String,
    /// Latest snapshot, if any.
    pub on_hand: Option<f64>,
    pub on_order: f64,
    /// Units sold over the last `recent_days`.
    pub recent_units: f64,
    pub lead_time_days: f64,
    /// From the run's reorder plan.
    pub safety_stock: Option<f64>,
    pub order_up_to: Option<f64>,
    pub days_of_cover: Option<f64>,
    pub projected_stockout: Option<NaiveDate>,
    pub order_qty: i64,
    /// Yesterday's actual and the previous run's forecast for it.
    pub actual_yesterday: Option<f64>,
    pub forecast_yesterday: Option<ForecastBand>,
    /// From the plan: unit cost, forecast daily demand, the order value
    /// and, for a held line, the order it would have placed.
    pub unit_cost: Option<f64>,
    pub daily_demand: Option<f64>,
    pub order_value: f64,
    pub held_order_value: Option<f64>,
    /// Average shelf price over the recent days before the run date, and
    /// the run date's price (from the sales table, when it has prices).
    pub unit_price: Option<f64>,
    pub price_today: Option<f64>,
    /// Days covered by the sales rows after the series' last sale (rows ×
    /// days per row, so a weekly row of zero counts seven), within the
    /// sales read (four `demand_stopped_days` back). Missing rows do not
    /// count as zero sales. `None` when the series' rows stop short of the
    /// run date by more than `stale_after_days`: silence there is missing
    /// data, not missing demand.
    pub silent_days: Option<u32>,
    /// Recent forecast errors (actual − forecast mean), oldest first.
    pub errors: Vec<f64>,
    /// The forecast means those errors were measured against.
    pub error_forecasts: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastBand {
    pub lo: f64,
    pub mid: f64,
    pub hi: f64,
}

/// Newest date seen for a store (or a table).
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub store: String,
    pub newest: NaiveDate,
}

/// Tracking signal: cumulative error over mean absolute deviation.
pub fn tracking_signal(errors: &[f64]) -> Option<f64> {
    if errors.is_empty() {
        return None;
    }
    let mad = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    if mad <= 0.0 {
        return None;
    }
    Some(errors.iter().sum::<f64>() / mad)
}

impl SeriesState {
    pub(crate) fn economics(&self) -> Economics {
        Economics {
            unit_cost: self.unit_cost,
            unit_price: self.unit_price,
            daily_demand: self.daily_demand,
            lead_time_days: self.lead_time_days,
        }
    }
}

/// Apply every rule. Series of a store whose feed is stale are not
/// judged on their old numbers (the store's `stale_data` anomaly stands
/// for them). The output is sorted by severity, then kind, store and sku,
/// so reports are stable (the worklist ranks it by money).
pub fn evaluate(
    rules: &Rules,
    as_of: NaiveDate,
    series: &[SeriesState],
    freshness: &[Freshness],
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut stale_stores = Vec::new();
    for f in freshness {
        if checks::stale(rules, as_of, f, series, &mut out) {
            stale_stores.push(f.store.as_str());
        }
    }
    for s in series
        .iter()
        .filter(|s| !stale_stores.contains(&s.store.as_str()))
    {
        checks::series(rules, as_of, s, &mut out);
    }
    out.sort_by(|a, b| {
        (a.severity, a.kind, &a.store, &a.sku).cmp(&(b.severity, b.kind, &b.store, &b.sku))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_signal_values() {
        assert_eq!(tracking_signal(&[]), None);
        assert_eq!(tracking_signal(&[0.0, 0.0]), None);
        let ts = tracking_signal(&[1.0, -1.0, 2.0, -2.0]).expect("ts");
        assert!(ts.abs() < 1e-12);
    }
}
