//! Forecast accuracy: pinball loss, MASE, RMSSE, WAPE, bias and empirical
//! quantile coverage, per series and aggregated. Owns the formulas only.
//!
//! Definitions (y actual, f point forecast, over the evaluated horizon):
//! - MASE = mean|y − f| / mean|y_t − y_{t−m}| in-sample, m = season length
//!   (m = 1 when the history is not longer than a season).
//! - RMSSE = sqrt(mean (y − f)² / mean (y_t − y_{t−1})² in-sample), as in M5.
//!   Both scales use the history from the first non-zero value on; series
//!   whose scale is zero are left out of these two means.
//! - WAPE = Σ|y − f| / Σy; bias = Σ(f − y) / Σy (positive: over-forecast).
//! - coverage(q) = share of points with y < forecast quantile q, counted
//!   as the randomised PIT counts a discrete forecast. Demand is discrete
//!   and quantiles are clamped at zero, so a zero actual often ties a
//!   quantile at zero. Counting such a tie as covered would report a p10
//!   that "covers" every zero of an intermittent series; counting it one
//!   half caps the p10–p90 coverage of a series with 55% zeros at
//!   1 − 0.55/2 = 72.5%, however wide and well calibrated the band. The
//!   randomised PIT of a zero actual is uniform on [0, F(0)], so a tie at
//!   level τ counts τ / F(0), at most 1, where F(0), the forecast's chance
//!   of zero, is read from the quantiles: between the highest level whose
//!   quantile is zero and the next level up (or 1), their mid-point
//!   ([`zero_mass`]). A calibrated forecast then covers its nominal share
//!   whatever its share of zeros. A tie above zero, which continuous
//!   quantiles rarely give, counts one half. The p10–p90 interval covers
//!   coverage(p90) − coverage(p10) of the points.
//! - A non-finite actual (a period that was not recorded, under the
//!   `missing` gap policy) is not scored by any measure.

use serde::{Deserialize, Serialize};

/// Mean pinball (quantile) loss of predictions `pred` at level `q`.
pub fn pinball(actual: &[f64], pred: &[f64], q: f64) -> f64 {
    if actual.is_empty() {
        return 0.0;
    }
    let total: f64 = actual
        .iter()
        .zip(pred)
        .map(|(&y, &p)| {
            let e = y - p;
            (q * e).max((q - 1.0) * e)
        })
        .sum();
    total / actual.len() as f64
}

/// Scales of the in-sample naive errors used by MASE and RMSSE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    pub mase: Option<f64>,
    pub rmsse: Option<f64>,
}

/// Computes the MASE and RMSSE scales from the training history. NaN marks
/// a period that was not recorded: differences touching it are left out.
pub fn scales(history: &[f64], season: usize) -> Scales {
    let start = history
        .iter()
        .position(|&v| v != 0.0 && v.is_finite())
        .unwrap_or(history.len());
    let h = &history[start..];
    let m = if h.len() > season { season } else { 1 };
    let positive = |x: f64| {
        if x > 0.0 && x.is_finite() {
            Some(x)
        } else {
            None
        }
    };
    let mean = |xs: Vec<f64>| {
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let mase = if h.len() > m {
        positive(mean(
            (m..h.len())
                .map(|t| (h[t] - h[t - m]).abs())
                .filter(|d| d.is_finite())
                .collect(),
        ))
    } else {
        None
    };
    let rmsse = if h.len() > 1 {
        positive(mean(
            (1..h.len())
                .map(|t| (h[t] - h[t - 1]).powi(2))
                .filter(|d| d.is_finite())
                .collect(),
        ))
    } else {
        None
    };
    Scales { mase, rmsse }
}

/// One series' backtest: actuals against the point forecast and quantiles.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesEval {
    pub actual: Vec<f64>,
    pub mean: Vec<f64>,
    /// `quantiles[i][t]`: level i at step t.
    pub quantiles: Vec<Vec<f64>>,
    pub scales: Scales,
}

impl SeriesEval {
    /// (actual, mean) of the scored points: those with a finite actual.
    fn scored(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.actual
            .iter()
            .zip(&self.mean)
            .filter(|(y, _)| y.is_finite())
            .map(|(&y, &f)| (y, f))
    }

    /// Points with a finite actual.
    pub fn points(&self) -> usize {
        self.scored().count()
    }

    pub fn mase(&self) -> Option<f64> {
        let s = self.scales.mase?;
        let n = self.points();
        if n == 0 {
            return None;
        }
        let mae: f64 = self.scored().map(|(y, f)| (y - f).abs()).sum();
        Some(mae / n as f64 / s)
    }

    pub fn rmsse(&self) -> Option<f64> {
        let s = self.scales.rmsse?;
        let n = self.points();
        if n == 0 {
            return None;
        }
        let mse: f64 = self.scored().map(|(y, f)| (y - f).powi(2)).sum();
        Some((mse / n as f64 / s).sqrt())
    }
}

/// Coverage credit of the actual `y` against the quantile `p` at level
/// `tau` of a forecast whose chance of zero is `zero_mass` (see the module
/// docs): 1 below the quantile, 0 above it; a zero actual tying a zero
/// quantile counts `tau / zero_mass`, at most 1; any other tie one half.
pub fn coverage_credit(y: f64, p: f64, tau: f64, zero_mass: f64) -> f64 {
    if y < p {
        1.0
    } else if y > p {
        0.0
    } else if y == 0.0 && zero_mass > 0.0 {
        (tau / zero_mass).min(1.0)
    } else {
        0.5
    }
}

/// The forecast's chance of zero, read from its quantiles `values` at the
/// increasing `levels`: the mid-point between the highest level whose
/// quantile is at most zero and the next level up (1 above the last).
/// 0 when no quantile is at zero: a zero actual then ties none of them.
pub fn zero_mass(levels: &[f64], values: impl Fn(usize) -> Option<f64>) -> f64 {
    let Some(k) = (0..levels.len())
        .rev()
        .find(|&i| values(i).is_some_and(|v| v <= 0.0))
    else {
        return 0.0;
    };
    let above = levels.get(k + 1).copied().unwrap_or(1.0);
    (levels[k] + above) / 2.0
}

/// The empirical quantile at level `q` of the ascending `sorted`, linear
/// between order statistics; `None` when it is empty.
pub fn sorted_quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, frac) = (pos.floor() as usize, pos.fract());
    let hi = (lo + 1).min(last);
    Some(sorted[lo] * (1.0 - frac) + sorted[hi] * frac)
}

/// Aggregated accuracy over a set of series. A measure that is undefined
/// (MASE with less than a season of history, say) is NaN, which JSON
/// writes as `null`; it reads back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(deserialize_with = "f64_or_nan")]
    pub mase: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub rmsse: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub wape: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub bias: f64,
    /// Empirical coverage per quantile level, in config order.
    #[serde(deserialize_with = "f64s_or_nan")]
    pub coverage: Vec<f64>,
    pub series: usize,
}

/// serde_json writes a NaN or infinite `f64` as `null`: read `null` back
/// as NaN, so that a `model.json` with an undefined measure still loads.
pub(crate) fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn f64s_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Aggregates series evaluations: MASE and RMSSE are unweighted means over
/// series with a defined scale; WAPE, bias and coverage pool all points.
pub fn aggregate(evals: &[SeriesEval], levels: &[f64]) -> Metrics {
    let mean_of = |xs: Vec<f64>| {
        if xs.is_empty() {
            f64::NAN
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let mase = mean_of(evals.iter().filter_map(SeriesEval::mase).collect());
    let rmsse = mean_of(evals.iter().filter_map(SeriesEval::rmsse).collect());
    let (mut abs_err, mut err, mut total, mut points) = (0.0, 0.0, 0.0, 0usize);
    let mut hits = vec![0.0f64; levels.len()];
    for e in evals {
        for (t, (&y, &f)) in e.actual.iter().zip(&e.mean).enumerate() {
            if !y.is_finite() {
                continue;
            }
            abs_err += (y - f).abs();
            err += f - y;
            total += y;
            points += 1;
            let at = |i: usize| e.quantiles.get(i).and_then(|q| q.get(t)).copied();
            let f0 = if y == 0.0 { zero_mass(levels, at) } else { 0.0 };
            for (i, &tau) in levels.iter().enumerate() {
                hits[i] += at(i).map_or(0.0, |p| coverage_credit(y, p, tau, f0));
            }
        }
    }
    let ratio = |a: f64| if total > 0.0 { a / total } else { f64::NAN };
    Metrics {
        mase,
        rmsse,
        wape: ratio(abs_err),
        bias: ratio(err),
        coverage: hits
            .iter()
            .map(|&h| {
                if points > 0 {
                    h / points as f64
                } else {
                    f64::NAN
                }
            })
            .collect(),
        series: evals.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tie_at_zero_counts_the_level_over_the_chance_of_zero() {
        let levels = [0.1, 0.5, 0.9];
        let q = |v: [f64; 3]| move |i: usize| v.get(i).copied();
        assert_eq!(zero_mass(&levels, q([1.0, 2.0, 3.0])), 0.0);
        assert!((zero_mass(&levels, q([0.0, 2.0, 3.0])) - 0.3).abs() < 1e-12);
        assert!((zero_mass(&levels, q([0.0, 0.0, 3.0])) - 0.7).abs() < 1e-12);
        assert!((zero_mass(&levels, q([0.0, 0.0, 0.0])) - 0.95).abs() < 1e-12);
        assert!((coverage_credit(0.0, 0.0, 0.1, 0.3) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(coverage_credit(0.0, 0.0, 0.9, 0.7), 1.0, "at most 1");
        assert_eq!(coverage_credit(2.0, 2.0, 0.5, 0.0), 0.5, "tie above zero");
        assert_eq!(
            (
                coverage_credit(1.0, 2.0, 0.5, 0.0),
                coverage_credit(3.0, 2.0, 0.5, 0.0)
            ),
            (1.0, 0.0)
        );
    }

    /// A calibrated forecast of zero-inflated demand covers its nominal
    /// share: zero with chance 0.3, else uniform on (0, 10], its exact
    /// quantiles, against an evenly spread sample of that distribution.
    /// One half per tie would report p10 at 0.15 and p10–p90 at 0.75.
    #[test]
    fn a_calibrated_zero_inflated_forecast_covers_its_nominal_share() {
        let levels = [0.1, 0.5, 0.9];
        let quantile = |u: f64| if u < 0.3 { 0.0 } else { (u - 0.3) / 0.7 * 10.0 };
        let n = 1000;
        let actual: Vec<f64> = (0..n)
            .map(|i| quantile((i as f64 + 0.5) / n as f64))
            .collect();
        let eval = SeriesEval {
            mean: vec![3.5; n],
            quantiles: levels.iter().map(|&l| vec![quantile(l); n]).collect(),
            actual,
            scales: Scales {
                mase: None,
                rmsse: None,
            },
        };
        let m = aggregate(&[eval], &levels);
        for (c, l) in m.coverage.iter().zip(levels) {
            assert!((c - l).abs() < 1e-9, "{:?}", m.coverage);
        }
    }

    #[test]
    fn undefined_measures_survive_json_as_nan() {
        let m = Metrics {
            mase: f64::NAN,
            rmsse: 0.9,
            wape: f64::INFINITY,
            bias: -0.1,
            coverage: vec![0.1, f64::NAN],
            series: 3,
        };
        let json = serde_json::to_string(&m).expect("json");
        assert!(json.contains(r#""mase":null"#), "{json}");
        let back: Metrics = serde_json::from_str(&json).expect("reads back");
        assert!(back.mase.is_nan() && back.wape.is_nan() && back.coverage[1].is_nan());
        assert_eq!((back.rmsse, back.bias, back.coverage[0]), (0.9, -0.1, 0.1));
        assert_eq!(back.series, 3);
    }
}
