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
//! - coverage(q) = share of points with y < forecast quantile q, a point
//!   where y equals the quantile counting one half (the mid-point of the
//!   randomised PIT). Demand is discrete and quantiles are clamped at zero,
//!   so ties are common: counting y = 0 = p10 as covered would report a p10
//!   that "covers" half the points of an intermittent series. The p10–p90
//!   interval covers coverage(p90) − coverage(p10) of the points.
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

/// Coverage credit of one point for a quantile forecast `p`: 1 below it,
/// one half on a tie, 0 above.
pub fn coverage_credit(y: f64, p: f64) -> f64 {
    if y < p {
        1.0
    } else if y == p {
        0.5
    } else {
        0.0
    }
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
pub fn aggregate(evals: &[SeriesEval], n_quantiles: usize) -> Metrics {
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
    let mut hits = vec![0.0f64; n_quantiles];
    for e in evals {
        for (t, (&y, &f)) in e.actual.iter().zip(&e.mean).enumerate() {
            if !y.is_finite() {
                continue;
            }
            abs_err += (y - f).abs();
            err += f - y;
            total += y;
            points += 1;
            for (i, q) in e.quantiles.iter().enumerate().take(n_quantiles) {
                hits[i] += q.get(t).map_or(0.0, |&p| coverage_credit(y, p));
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
