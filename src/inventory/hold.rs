//! Holds: a reorder line whose inputs are impossible or stale is not
//! ordered. [`check`] looks at what one line was computed from and names
//! the first bad input; the `reorder` task then writes the line with
//! quantity 0, `status = held` and [`Hold::reason`], and keeps the order
//! value it would have had apart (`held_order_value`) so that the data
//! error can be ranked by the money it affects. Pure.

use crate::forecast::ModelKind;
use chrono::NaiveDate;

use super::reason::{money, qty};

/// Why a line is held. Each variant names the input at fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The stock table has no row, or a null on-hand, for the series.
    MissingOnHand,
    /// On hand below zero: a stock-feed error, not a backorder count.
    NegativeOnHand(f64),
    /// The stock snapshot is older than the allowed age.
    StaleSnapshot {
        snapshot: NaiveDate,
        age_days: i64,
        limit_days: i64,
    },
    /// No forecast row for the series at the run's date.
    NoForecast,
    /// Every forecast step is NaN or missing.
    ForecastUnusable { steps: usize },
    /// Flagged `cold_start` but served by the network, not a baseline.
    ColdStartWithoutFallback { model_kind: String },
    /// Forecast dates that do not move forward step by step.
    ForecastDates { step: i64, date: NaiveDate },
    /// The product master has no lead time for the SKU.
    NoLeadTime,
}

impl Hold {
    /// The text of the `reason` column of a held line.
    pub fn reason(&self) -> String {
        match self {
            Hold::MissingOnHand => {
                "held: no on-hand figure for this series in the stock table".into()
            }
            Hold::NegativeOnHand(v) => format!(
                "held: on hand is {}, an impossible value; fix the stock feed",
                qty(*v)
            ),
            Hold::StaleSnapshot {
                snapshot,
                age_days,
                limit_days,
            } => format!(
                "held: the stock snapshot is from {snapshot}, {age_days} days before the run \
                 (allowed: {limit_days})"
            ),
            Hold::NoForecast => "held: no forecast for this series at the run's date".into(),
            Hold::ForecastUnusable { steps } => {
                format!("held: the forecast has no usable value (all {steps} steps NaN or empty)")
            }
            Hold::ColdStartWithoutFallback { model_kind } => format!(
                "held: the forecast is flagged cold_start but was served by {model_kind}, \
                 not a baseline"
            ),
            Hold::ForecastDates { step, date } => {
                format!("held: forecast step {step} is dated {date}, not after the step before it")
            }
            Hold::NoLeadTime => "held: the product master has no lead time for this SKU".into(),
        }
    }

    /// The reason with what the line would have ordered, for the planner
    /// who fixes the input.
    pub fn reason_with_value(&self, would_order: i64, value: f64) -> String {
        if would_order > 0 {
            format!(
                "{} (it would have ordered {would_order} units worth {})",
                self.reason(),
                money(value)
            )
        } else {
            self.reason()
        }
    }
}

/// What [`check`] looks at for one line.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    pub as_of: Option<NaiveDate>,
    pub on_hand: Option<f64>,
    /// Date of the stock snapshot, when the stock table carries one.
    pub snapshot: Option<NaiveDate>,
    pub stale_after_days: i64,
    pub lead_time_days: Option<f64>,
    /// Forecast steps: (date when known, mean) in step order; None when
    /// the series has no forecast.
    pub forecast: Option<&'a [(Option<NaiveDate>, f64)]>,
    pub cold_start: bool,
    pub model_kind: Option<&'a str>,
}

/// The first reason to hold the line, in the order a planner would fix
/// them: stock, then product master, then forecast.
pub fn check(i: &Inputs<'_>) -> Option<Hold> {
    match i.on_hand {
        None => return Some(Hold::MissingOnHand),
        Some(v) if v < 0.0 || !v.is_finite() => return Some(Hold::NegativeOnHand(v)),
        _ => {}
    }
    if let (Some(as_of), Some(snap)) = (i.as_of, i.snapshot) {
        let age = (as_of - snap).num_days();
        if age > i.stale_after_days {
            return Some(Hold::StaleSnapshot {
                snapshot: snap,
                age_days: age,
                limit_days: i.stale_after_days,
            });
        }
    }
    if !i.lead_time_days.is_some_and(|l| l.is_finite() && l >= 0.0) {
        return Some(Hold::NoLeadTime);
    }
    let Some(steps) = i.forecast else {
        return Some(Hold::NoForecast);
    };
    if steps.is_empty() || steps.iter().all(|(_, m)| !m.is_finite()) {
        return Some(Hold::ForecastUnusable { steps: steps.len() });
    }
    let mut prev = i.as_of;
    for (k, (date, _)) in steps.iter().enumerate() {
        if let (Some(p), Some(d)) = (prev, *date) {
            if d <= p {
                return Some(Hold::ForecastDates {
                    step: k as i64 + 1,
                    date: d,
                });
            }
        }
        if date.is_some() {
            prev = *date;
        }
    }
    // Any per-series method is a fallback for a short history; the group
    // models (network, regression, a combination with them) are not.
    let baseline = i
        .model_kind
        .is_some_and(|k| ModelKind::BASELINES.iter().any(|b| b.as_str() == k));
    if i.cold_start && !baseline {
        return Some(Hold::ColdStartWithoutFallback {
            model_kind: i.model_kind.unwrap_or("an unknown model").to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn good(f: &[(Option<NaiveDate>, f64)]) -> Inputs<'_> {
        Inputs {
            as_of: Some(day(27)),
            on_hand: Some(5.0),
            snapshot: Some(day(27)),
            stale_after_days: 1,
            lead_time_days: Some(4.0),
            forecast: Some(f),
            cold_start: false,
            model_kind: Some("ets"),
        }
    }

    #[test]
    fn each_bad_input_is_named() {
        let f = [(Some(day(28)), 3.0), (Some(day(29)), 3.0)];
        assert_eq!(check(&good(&f)), None);
        let cases: Vec<(Inputs<'_>, &str)> = vec![
            (
                Inputs {
                    on_hand: None,
                    ..good(&f)
                },
                "held: no on-hand figure for this series in the stock table",
            ),
            (
                Inputs {
                    on_hand: Some(-252.0),
                    ..good(&f)
                },
                "held: on hand is -252, an impossible value; fix the stock feed",
            ),
            (
                Inputs {
                    snapshot: Some(day(23)),
                    ..good(&f)
                },
                "held: the stock snapshot is from 2026-11-23, 4 days before the run (allowed: 1)",
            ),
            (
                Inputs {
                    lead_time_days: None,
                    ..good(&f)
                },
                "held: the product master has no lead time for this SKU",
            ),
            (
                Inputs {
                    forecast: None,
                    ..good(&f)
                },
                "held: no forecast for this series at the run's date",
            ),
            (
                Inputs {
                    cold_start: true,
                    model_kind: Some("lstm"),
                    ..good(&f)
                },
                "held: the forecast is flagged cold_start but was served by lstm, not a baseline",
            ),
        ];
        for (inputs, want) in cases {
            let got = check(&inputs).map(|h| h.reason());
            assert_eq!(got.as_deref(), Some(want));
        }
        let nan = [(Some(day(28)), f64::NAN), (Some(day(29)), f64::NAN)];
        assert_eq!(
            check(&good(&nan)).map(|h| h.reason()).as_deref(),
            Some("held: the forecast has no usable value (all 2 steps NaN or empty)")
        );
        let back = [(Some(day(28)), 1.0), (Some(day(28)), 1.0)];
        assert_eq!(
            check(&good(&back)),
            Some(Hold::ForecastDates {
                step: 2,
                date: day(28)
            })
        );
        // A cold start served by any per-series method is the fallback
        // working; by a group model it is not.
        for kind in ModelKind::BASELINES {
            let cold = Inputs {
                cold_start: true,
                model_kind: Some(kind.as_str()),
                ..good(&f)
            };
            assert_eq!(check(&cold), None, "{kind:?}");
        }
        for kind in [ModelKind::Regression, ModelKind::Combo] {
            let cold = Inputs {
                cold_start: true,
                model_kind: Some(kind.as_str()),
                ..good(&f)
            };
            assert_eq!(
                check(&cold),
                Some(Hold::ColdStartWithoutFallback {
                    model_kind: kind.as_str().into()
                })
            );
        }
    }

    #[test]
    fn the_would_be_order_is_kept_in_the_reason() {
        assert_eq!(
            Hold::NegativeOnHand(-252.0).reason_with_value(624, 1834.56),
            "held: on hand is -252, an impossible value; fix the stock feed \
             (it would have ordered 624 units worth 1,834.56)"
        );
    }
}
