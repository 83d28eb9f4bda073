//! Interval calibration: the factor by which a candidate's quantiles are
//! spread around its median so the outer pair covers its nominal share of
//! the backtest points, the out-of-origin check of that factor, and the
//! judgement the log and the run's outputs report.

use super::baselines::PointForecast;
use super::metrics::{self, SeriesEval};

/// One backtest point: (actual, lowest quantile, median, highest quantile).
pub(super) type Point = (f64, f64, f64, f64);

/// The outer pair and the median of every finite backtest point of
/// `evals`; `None` without a middle level.
pub(super) fn outer_points<'a>(
    evals: impl IntoIterator<Item = &'a SeriesEval>,
    levels: &[f64],
) -> Option<Vec<Point>> {
    let mid = levels.iter().position(|&q| (q - 0.5).abs() < 1e-9)?;
    let last = levels.len().checked_sub(1)?;
    Some(
        evals
            .into_iter()
            .flat_map(|e| {
                (0..e.actual.len()).filter_map(move |t| {
                    let y = e.actual[t];
                    let (a, m, b) = (
                        *e.quantiles.first()?.get(t)?,
                        *e.quantiles.get(mid)?.get(t)?,
                        *e.quantiles.get(last)?.get(t)?,
                    );
                    y.is_finite().then_some((y, a, m, b))
                })
            })
            .collect(),
    )
}

/// Share of `points` inside the outer pair spread by `k` around the
/// median (clamped at zero), ties counted by [`metrics::coverage_credit`]
/// with the chance of zero read from the three spread quantiles.
fn spread_coverage(points: &[Point], k: f64, levels: &[f64]) -> f64 {
    let (Some(&lo), Some(&hi)) = (levels.first(), levels.last()) else {
        return f64::NAN;
    };
    let outer = [lo, 0.5, hi];
    let inside: f64 = points
        .iter()
        .map(|&(y, a, m, b)| {
            let (a, b) = ((m + k * (a - m)).max(0.0), (m + k * (b - m)).max(0.0));
            let q = [a, m, b];
            let f0 = if y == 0.0 {
                metrics::zero_mass(&outer, |i| q.get(i).copied())
            } else {
                0.0
            };
            metrics::coverage_credit(y, b, hi, f0) - metrics::coverage_credit(y, a, lo, f0)
        })
        .sum();
    inside / points.len().max(1) as f64
}

/// Fewest backtest points a spread factor is fitted on: the coverage of
/// 50 points has a standard error of 0.057 at 80%, against the 0.10 of
/// the 75–85% band the factor aims at.
const MIN_SPREAD_POINTS: usize = 50;

/// The spread factors tried: `SPREAD_STEPS` × `SPREAD_GRID`, 0.25 to 3.
const SPREAD_GRID: f64 = 0.05;
const SPREAD_STEPS: std::ops::RangeInclusive<i32> = 5..=60;
const SPREAD_MIN: f64 = *SPREAD_STEPS.start() as f64 * SPREAD_GRID;
const SPREAD_MAX: f64 = *SPREAD_STEPS.end() as f64 * SPREAD_GRID;

/// The factor in [0.25, 3] by which spreading every quantile around the
/// median (the middle level) brings the outer pair's coverage of the
/// backtest points (ties counted as in [`metrics::coverage_credit`])
/// closest to its nominal share; 1 with fewer than [`MIN_SPREAD_POINTS`]
/// points or no middle level. Normal quantiles around a history with
/// promotion spikes are several times too wide for the weeks between them
/// (tuna's backtest fits 0.45), so the factor may narrow by three
/// quarters; no further, since a calm backtest window understates what the
/// next one holds.
pub fn spread_factor(evals: &[SeriesEval], levels: &[f64]) -> f64 {
    outer_points(evals, levels).map_or(1.0, |p| fit_spread(&p, levels))
}

/// [`spread_factor`] of points already gathered.
pub(super) fn fit_spread(points: &[Point], levels: &[f64]) -> f64 {
    let (Some(&lo), Some(&hi)) = (levels.first(), levels.last()) else {
        return 1.0;
    };
    if points.len() < MIN_SPREAD_POINTS || hi <= lo {
        return 1.0;
    }
    let nominal = hi - lo;
    SPREAD_STEPS
        .map(|i| f64::from(i) * SPREAD_GRID)
        .min_by(|&a, &b| {
            let gap =
                |k: f64| ((spread_coverage(points, k, levels) - nominal).abs() * 1000.0).round();
            gap(a)
                .total_cmp(&gap(b))
                .then((a - 1.0).abs().total_cmp(&(b - 1.0).abs()))
        })
        .unwrap_or(1.0)
}

/// The served interval's coverage of backtest points it was not fitted
/// on: each origin's points (`per_origin`) spread by the factor fitted on
/// the other origins, pooled. `None` with a single origin. This is the
/// figure to read for calibration; the pooled factor covers its nominal
/// share of its own points by construction.
pub(super) fn out_of_origin_coverage(per_origin: &[Vec<Point>], levels: &[f64]) -> Option<f64> {
    if per_origin.len() < 2 {
        return None;
    }
    let (mut inside, mut total) = (0.0, 0usize);
    for (o, points) in per_origin.iter().enumerate() {
        let others: Vec<Point> = per_origin
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != o)
            .flat_map(|(_, p)| p.iter().copied())
            .collect();
        let k = fit_spread(&others, levels);
        inside += spread_coverage(points, k, levels) * points.len() as f64;
        total += points.len();
    }
    (total > 0).then(|| inside / total as f64)
}

/// Spreads every quantile around the median (level 0.5 of `levels`) by
/// `k`, clamped at zero; the order of the levels is kept.
pub(super) fn spread(f: &mut PointForecast, k: f64, levels: &[f64]) {
    let Some(mid) = levels.iter().position(|&q| (q - 0.5).abs() < 1e-9) else {
        return;
    };
    if (k - 1.0).abs() < 1e-12 || mid >= f.quantiles.len() {
        return;
    }
    let centre = f.quantiles[mid].clone();
    for (i, q) in f.quantiles.iter_mut().enumerate() {
        if i == mid {
            continue;
        }
        for (v, m) in q.iter_mut().zip(&centre) {
            *v = (m + k * (*v - m)).max(0.0);
        }
    }
}

/// Allowed distance of the outer pair's out-of-origin coverage from its
/// nominal share: 75–85% for a 10–90% interval.
pub const CALIBRATION_TOLERANCE: f64 = 0.05;

/// The served interval's out-of-origin backtest coverage next to its
/// nominal share, and why it misses when it does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub spread: f64,
    pub coverage: f64,
    pub nominal: f64,
}

impl Calibration {
    /// `None` without an outer pair.
    pub fn judge(spread: f64, coverage: f64, levels: &[f64]) -> Option<Self> {
        let (&lo, &hi) = (levels.first()?, levels.last()?);
        (hi > lo && coverage.is_finite()).then_some(Self {
            spread,
            coverage,
            nominal: hi - lo,
        })
    }

    pub fn within(&self) -> bool {
        (self.coverage - self.nominal).abs() <= CALIBRATION_TOLERANCE + 1e-9
    }

    /// One line for the log: the coverage, and when it misses the band,
    /// which way and whether the spread factor was at its limit.
    pub fn describe(&self) -> String {
        let head = format!(
            "interval covers {:.0}% of backtest points out of origin (nominal {:.0}%, spread x{:.2})",
            self.coverage * 100.0,
            self.nominal * 100.0,
            self.spread
        );
        if self.within() {
            return head;
        }
        let (way, at_limit) = if self.coverage > self.nominal {
            ("too wide", self.spread <= SPREAD_MIN + 1e-9)
        } else {
            ("too narrow", self.spread >= SPREAD_MAX - 1e-9)
        };
        let why = if at_limit {
            "the spread factor is at its limit: the backtest windows differ from the history the intervals were fitted on"
        } else {
            "the origins disagree: the factor fitted on some origins misses on the others"
        };
        format!("{head}; {way} for the backtest: {why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One origin's points: 100 actuals spread `width` around a median of
    /// 5 whose p10/p90 sit at 4 and 6.
    fn origin(width: f64) -> Vec<SeriesEval> {
        let actual: Vec<f64> = (0..100)
            .map(|t| 5.0 + (f64::from(t % 10) - 4.5) * 0.4 * width)
            .collect();
        vec![SeriesEval {
            mean: vec![5.0; 100],
            quantiles: vec![vec![4.0; 100], vec![5.0; 100], vec![6.0; 100]],
            actual,
            scales: metrics::Scales {
                mase: Some(1.0),
                rmsse: Some(1.0),
            },
        }]
    }

    #[test]
    fn calibration_says_which_way_and_why_an_interval_misses() {
        let levels = [0.1, 0.5, 0.9];
        let ok = Calibration::judge(1.2, 0.83, &levels).expect("outer pair");
        assert!(ok.within());
        assert!(!ok.describe().contains("too"));
        let wide = Calibration::judge(SPREAD_MIN, 0.99, &levels).expect("outer pair");
        assert!(!wide.within());
        assert!(wide.describe().contains("too wide"));
        assert!(wide.describe().contains("at its limit"));
        let narrow = Calibration::judge(1.5, 0.62, &levels).expect("outer pair");
        assert!(narrow.describe().contains("too narrow"));
        assert!(narrow.describe().contains("origins disagree"));
        assert_eq!(Calibration::judge(1.0, 0.8, &[0.5]), None);
    }

    #[test]
    fn out_of_origin_coverage_uses_the_factor_of_the_other_origins() {
        let levels = [0.1, 0.5, 0.9];
        // Alike origins: the other origin's factor (the least widening to
        // cover 8 in 10: 1.45) covers 8 in 10 here too.
        let alike: Vec<SeriesEval> = [origin(1.0), origin(1.0)].concat();
        assert!((spread_factor(&alike, &levels) - 1.45).abs() < 1e-9);
        let per = |evals: &[SeriesEval]| -> Vec<Vec<Point>> {
            evals
                .iter()
                .map(|e| outer_points([e], &levels).expect("median"))
                .collect()
        };
        let cov = out_of_origin_coverage(&per(&alike), &levels).expect("two origins");
        assert!((cov - 0.8).abs() < 1e-9, "{cov}");
        // A calm and a wild origin: pooled, one factor fits 80% in sample,
        // but each origin's points with the other's factor do not.
        let unlike: Vec<SeriesEval> = [origin(0.5), origin(2.0)].concat();
        let pooled = spread_factor(&unlike, &levels);
        let points = outer_points(&unlike, &levels).expect("median");
        assert!((spread_coverage(&points, pooled, &levels) - 0.8).abs() < 0.1);
        let cov = out_of_origin_coverage(&per(&unlike), &levels).expect("two origins");
        assert!((cov - 0.8).abs() > 0.1, "{cov}");
        assert_eq!(out_of_origin_coverage(&per(&alike)[..1], &levels), None);
    }
}
