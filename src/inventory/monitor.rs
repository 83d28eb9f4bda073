//! Stock anomaly rules: from the state of each series (stock, plan,
//! forecast, recent sales) and the freshness of each store's data to a list
//! of anomalies, each with a type, a severity, what was observed and what
//! was expected. Thresholds come from the DAG (`rules:` of the `monitor`
//! task) with the defaults below.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

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
    /// `demand_outside_interval` is critical when the actual exceeds the
    /// upper quantile by more than this multiple of the band's half-width.
    pub spike_critical_ratio: f64,
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
            spike_critical_ratio: 3.0,
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
}

impl Kind {
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
    pub message: String,
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

/// Apply every rule. The output is sorted by severity, then kind, store
/// and sku, so reports are stable.
pub fn evaluate(
    rules: &Rules,
    as_of: NaiveDate,
    series: &[SeriesState],
    freshness: &[Freshness],
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for f in freshness {
        let age = (as_of - f.newest).num_days();
        if age > rules.stale_after_days {
            out.push(Anomaly {
                date: as_of,
                store: Some(f.store.clone()),
                sku: None,
                kind: Kind::StaleData,
                severity: Severity::Critical,
                observed: age as f64,
                expected: rules.stale_after_days as f64,
                message: format!(
                    "no data from store {} since {} ({age} days)",
                    f.store, f.newest
                ),
            });
        }
    }
    for s in series {
        let mut push =
            |kind: Kind, severity: Severity, observed: f64, expected: f64, message: String| {
                out.push(Anomaly {
                    date: as_of,
                    store: Some(s.store.clone()),
                    sku: Some(s.sku.clone()),
                    kind,
                    severity,
                    observed,
                    expected,
                    message,
                })
            };
        if let Some(oh) = s.on_hand {
            if oh < 0.0 {
                push(
                    Kind::NegativeOnHand,
                    Severity::Critical,
                    oh,
                    0.0,
                    format!("on-hand is {oh} (impossible; check the stock feed)"),
                );
            } else if oh == 0.0 && s.recent_units > 0.0 {
                push(
                    Kind::Stockout,
                    Severity::Critical,
                    oh,
                    s.recent_units,
                    format!(
                        "out of stock with {} units sold in the last {} days",
                        s.recent_units, rules.recent_days
                    ),
                );
            }
            if oh > 0.0 {
                if let Some(ss) = s.safety_stock.filter(|ss| oh < *ss) {
                    push(
                        Kind::BelowSafetyStock,
                        Severity::Warning,
                        oh,
                        ss,
                        format!("on-hand {oh} is below safety stock {ss:.1}"),
                    );
                }
                let delivery = as_of + Duration::days(s.lead_time_days.ceil() as i64);
                if let Some(date) = s.projected_stockout.filter(|d| *d < delivery) {
                    let days = (date - as_of).num_days();
                    push(
                        Kind::ProjectedStockout,
                        if days <= 2 {
                            Severity::Critical
                        } else {
                            Severity::Warning
                        },
                        days as f64,
                        s.lead_time_days,
                        format!(
                            "projected to run out on {date}, before the next possible delivery on {delivery}"
                        ),
                    );
                }
            }
            if let Some(cover) = s
                .days_of_cover
                .filter(|c| *c > rules.overstock_days_of_cover)
            {
                push(
                    Kind::Overstock,
                    Severity::Info,
                    cover,
                    rules.overstock_days_of_cover,
                    format!("{cover:.0} days of cover"),
                );
            } else if let Some(s_level) = s.order_up_to.filter(|v| *v > 0.0) {
                let position = oh + s.on_order;
                if position > rules.overstock_position_ratio * s_level {
                    push(
                        Kind::Overstock,
                        Severity::Info,
                        position,
                        s_level,
                        format!(
                            "position {position:.0} is over {:.0}x the order-up-to level {s_level:.0}",
                            rules.overstock_position_ratio
                        ),
                    );
                }
            }
        }
        if let (Some(actual), Some(band)) = (s.actual_yesterday, s.forecast_yesterday) {
            let half = ((band.hi - band.lo) / 2.0).max(1.0);
            if actual > band.hi {
                let critical = actual > band.hi + rules.spike_critical_ratio * half;
                push(
                    Kind::DemandOutsideInterval,
                    if critical {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    actual,
                    band.hi,
                    format!(
                        "sold {actual} yesterday, above the forecast's upper bound {:.1} (median {:.1})",
                        band.hi, band.mid
                    ),
                );
            } else if actual < band.lo {
                push(
                    Kind::DemandOutsideInterval,
                    Severity::Warning,
                    actual,
                    band.lo,
                    format!(
                        "sold {actual} yesterday, below the forecast's lower bound {:.1} (median {:.1})",
                        band.lo, band.mid
                    ),
                );
            }
        }
        let n = s.errors.len();
        let mean_forecast = if s.error_forecasts.is_empty() {
            0.0
        } else {
            s.error_forecasts.iter().sum::<f64>() / s.error_forecasts.len() as f64
        };
        let mean_error = if n == 0 {
            0.0
        } else {
            s.errors.iter().sum::<f64>() / n as f64
        };
        let material = mean_forecast >= rules.tracking_signal_min_demand
            && mean_error.abs() >= rules.tracking_signal_min_relative_bias * mean_forecast;
        if n >= rules.tracking_signal_min_points && material {
            if let Some(ts) =
                tracking_signal(&s.errors).filter(|t| t.abs() > rules.tracking_signal_limit)
            {
                push(
                    Kind::ForecastBias,
                    Severity::Warning,
                    ts,
                    rules.tracking_signal_limit,
                    format!(
                        "tracking signal {ts:.1}: the forecast is consistently {}",
                        if ts > 0.0 { "too low" } else { "too high" }
                    ),
                );
            }
        }
    }
    out.sort_by(|a, b| {
        (a.severity, a.kind, &a.store, &a.sku).cmp(&(b.severity, b.kind, &b.store, &b.sku))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn base(sku: &str) -> SeriesState {
        SeriesState {
            store: "CA_1".into(),
            sku: sku.into(),
            on_hand: Some(50.0),
            on_order: 0.0,
            recent_units: 35.0,
            lead_time_days: 4.0,
            safety_stock: Some(10.0),
            order_up_to: Some(80.0),
            days_of_cover: Some(10.0),
            projected_stockout: Some(day(27) + Duration::days(10)),
            ..Default::default()
        }
    }

    fn kinds(a: &[Anomaly]) -> Vec<(&str, &str)> {
        a.iter()
            .map(|x| (x.kind.as_str(), x.severity.as_str()))
            .collect()
    }

    #[test]
    fn a_healthy_series_has_no_anomaly() {
        assert!(evaluate(&Rules::default(), day(27), &[base("A")], &[]).is_empty());
    }

    #[test]
    fn each_rule_fires_on_its_case() {
        let r = Rules::default();
        let today = day(27);
        let stockout = SeriesState {
            on_hand: Some(0.0),
            ..base("stockout")
        };
        let negative = SeriesState {
            on_hand: Some(-4.0),
            ..base("negative")
        };
        let below = SeriesState {
            on_hand: Some(6.0),
            projected_stockout: Some(today + Duration::days(30)),
            ..base("below")
        };
        let projected = SeriesState {
            projected_stockout: Some(today + Duration::days(2)),
            ..base("projected")
        };
        let overstock = SeriesState {
            days_of_cover: Some(200.0),
            ..base("overstock")
        };
        let spike = SeriesState {
            actual_yesterday: Some(60.0),
            forecast_yesterday: Some(ForecastBand {
                lo: 2.0,
                mid: 5.0,
                hi: 9.0,
            }),
            ..base("spike")
        };
        let biased = SeriesState {
            errors: vec![2.0, 3.0, 1.0, 2.5, 2.0, 1.5, 3.0, 2.0],
            error_forecasts: vec![5.0; 8],
            ..base("biased")
        };
        let fresh = [
            Freshness {
                store: "CA_1".into(),
                newest: day(27),
            },
            Freshness {
                store: "TX_2".into(),
                newest: day(23),
            },
        ];
        let all = [
            stockout, negative, below, projected, overstock, spike, biased,
        ];
        let a = evaluate(&r, today, &all, &fresh);
        assert_eq!(
            kinds(&a),
            vec![
                ("stockout", "critical"),
                ("projected_stockout", "critical"),
                ("demand_outside_interval", "critical"),
                ("negative_on_hand", "critical"),
                ("stale_data", "critical"),
                ("below_safety_stock", "warning"),
                ("forecast_bias", "warning"),
                ("overstock", "info"),
            ]
        );
        let stale = a.iter().find(|x| x.kind == Kind::StaleData).expect("stale");
        assert_eq!(stale.store.as_deref(), Some("TX_2"));
        assert_eq!(stale.observed, 4.0);
        let bias = a
            .iter()
            .find(|x| x.kind == Kind::ForecastBias)
            .expect("bias");
        assert!(
            (bias.observed - 8.0).abs() < 1e-9,
            "all errors positive: TS = n"
        );
    }

    #[test]
    fn thresholds_come_from_rules() {
        let r = Rules {
            overstock_days_of_cover: 5.0,
            ..Rules::default()
        };
        let a = evaluate(&r, day(27), &[base("A")], &[]);
        assert_eq!(kinds(&a), vec![("overstock", "info")]);
        let yaml = "overstock_days_of_cover: 30\nstale_after_days: 2\n";
        let parsed: Rules = serde_yaml::from_str(yaml).expect("rules");
        assert_eq!(parsed.stale_after_days, 2);
        assert_eq!(parsed.recent_days, 7);
        assert!(serde_yaml::from_str::<Rules>("stale_days: 2").is_err());
    }

    #[test]
    fn bias_needs_volume_and_a_material_mean_error() {
        let r = Rules::default();
        let noisy = SeriesState {
            // RSFE/MAD = 8 but the mean error is 5% of the forecast.
            errors: vec![1.0; 8],
            error_forecasts: vec![20.0; 8],
            ..base("noisy")
        };
        let slow = SeriesState {
            errors: vec![-0.3; 8],
            error_forecasts: vec![0.3; 8],
            ..base("slow")
        };
        assert!(evaluate(&r, day(27), &[noisy, slow], &[]).is_empty());
    }

    #[test]
    fn tracking_signal_values() {
        assert_eq!(tracking_signal(&[]), None);
        assert_eq!(tracking_signal(&[0.0, 0.0]), None);
        let ts = tracking_signal(&[1.0, -1.0, 2.0, -2.0]).expect("ts");
        assert!(ts.abs() < 1e-12);
    }
}
