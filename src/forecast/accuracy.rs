//! Closing the loop: how accurate was a forecast once the demand it
//! predicted has happened, and has accuracy drifted from what the backtest
//! promised? Pure over in-memory rows; the `train` task reads the previous
//! run's forecast partition and the actual demand, calls [`evaluate`], writes
//! the result to the `forecast_accuracy` table and, with
//! `retrain: on_drift`, retrains the groups whose [`GroupAccuracy::drift`]
//! passes the threshold.
//!
//! Rules:
//! - A forecast point is scored when its date is on or before the last
//!   date of the series' actuals. A date inside the series' range with no
//!   row (or a null value) follows the input's gap policy, as training
//!   does: zero demand under `gaps: zero`, not scored under `gaps:
//!   missing` (an unrecorded week is not a week without sales). Points
//!   after the series' last date (data not arrived yet, a stale store) are
//!   not scored, so missing data does not look like a forecast error.
//! - Scales for MASE/RMSSE come from the actuals before the forecast's
//!   first date, placed on the frequency's grid (a gap is a zero or a
//!   missing period by the same policy), as in the backtest.
//! - Drift compares the realized RMSSE of the rows the group's model served
//!   with that model's backtest RMSSE: `realized / backtest − 1`. The
//!   backtest scores all `horizon` steps while a daily run scores mostly
//!   step 1, which is easier, so drift reads low rather than high: it
//!   errs towards keeping a model.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::calendar;
use super::config::{Frequency, GapPolicy};
use super::metrics::{self, Metrics, SeriesEval};
use super::series::Series;

/// How the actuals are read: their grid and what a period without a
/// recorded value means (the input's `frequency` and `gaps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actuals {
    pub frequency: Frequency,
    pub gaps: GapPolicy,
}

impl Actuals {
    /// A recorded value as demand: negatives are zero; a null is zero or
    /// missing (NaN) by the gap policy.
    fn value(self, v: f64) -> f64 {
        match (v.is_finite(), self.gaps) {
            (true, _) => v.max(0.0),
            (false, GapPolicy::Zero) => 0.0,
            (false, GapPolicy::Missing) => f64::NAN,
        }
    }

    /// The demand of a period with no row.
    fn absent(self) -> f64 {
        self.value(f64::NAN)
    }

    /// The history before `origin` on the frequency's grid, from the first
    /// recorded period; an off-grid date is summed into its period.
    fn history(self, points: &[(NaiveDate, f64)], origin: NaiveDate) -> Vec<f64> {
        let Some(first) = points.iter().map(|p| p.0).filter(|d| *d < origin).min() else {
            return Vec::new();
        };
        let idx = |d: NaiveDate| calendar::step_on_or_before(self.frequency, first, d);
        let len = usize::try_from(idx(origin)).unwrap_or(0);
        let mut out = vec![f64::NAN; len];
        for &(d, v) in points.iter().filter(|p| p.0 < origin) {
            if let Some(slot) = usize::try_from(idx(d)).ok().and_then(|i| out.get_mut(i)) {
                let v = self.value(v);
                *slot = if slot.is_nan() { v } else { *slot + v };
            }
        }
        for slot in out.iter_mut().filter(|s| s.is_nan()) {
            *slot = self.absent();
        }
        out
    }
}

/// One row of a past forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct PastForecast {
    pub key: Vec<String>,
    pub group: String,
    pub forecast_date: NaiveDate,
    pub step: usize,
    pub mean: f64,
    /// One value per quantile level, in the level order of the caller.
    pub quantiles: Vec<f64>,
    pub model_kind: String,
    /// Set on rows a planner override changed: the model's own mean and
    /// the override's id.
    pub adjusted: Option<(f64, String)>,
}

/// Accuracy of one group's past forecast (or of all groups, `group` =
/// `None`), for the rows served by `model_kind` (`None`: all rows).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAccuracy {
    pub group: Option<String>,
    pub model_kind: Option<String>,
    pub metrics: Metrics,
    /// Scored points (series × realized steps).
    pub points: usize,
    /// Largest realized step.
    pub max_step: usize,
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
    /// On the rows of one planner override: how it did against the model.
    pub value_added: Option<ValueAdded>,
}

/// Forecast value added of one planner override over the points realized
/// so far: WAPE of the model's own forecast minus WAPE of the final
/// (overridden) one; positive means the override helped.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueAdded {
    pub override_id: String,
    pub model_wape: f64,
    pub value_added: f64,
}

impl GroupAccuracy {
    /// `realized RMSSE / expected − 1`, when both are known and positive.
    pub fn drift(&self, expected_rmsse: Option<f64>) -> Option<f64> {
        let e = expected_rmsse.filter(|e| e.is_finite() && *e > 0.0)?;
        let r = self.metrics.rmsse;
        r.is_finite().then(|| r / e - 1.0)
    }
}

#[derive(Default)]
struct Acc {
    evals: Vec<SeriesEval>,
    points: usize,
    max_step: usize,
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
}

impl Acc {
    fn add(&mut self, eval: &SeriesEval, dates: &[NaiveDate], max_step: usize) {
        self.points += eval.actual.len();
        self.max_step = self.max_step.max(max_step);
        if let (Some(f), Some(l)) = (dates.first(), dates.last()) {
            self.first = Some(self.first.map_or(*f, |x| x.min(*f)));
            self.last = Some(self.last.map_or(*l, |x| x.max(*l)));
        }
        self.evals.push(eval.clone());
    }

    fn finish(
        self,
        group: Option<String>,
        model_kind: Option<String>,
        levels: &[f64],
    ) -> GroupAccuracy {
        GroupAccuracy {
            group,
            model_kind,
            metrics: metrics::aggregate(&self.evals, levels),
            points: self.points,
            max_step: self.max_step,
            first_date: self.first,
            last_date: self.last,
            value_added: None,
        }
    }
}

/// Scores `past` against the actual demand in `actuals` (the series'
/// `dates`/`values`; NaN and negative values count as zero). Returns one
/// row per (group, model kind), one per group over all kinds, and one
/// overall row, in that order within each group; groups sorted.
pub fn evaluate(
    past: &[PastForecast],
    actuals: &[Series],
    read: Actuals,
    levels: &[f64],
) -> Vec<GroupAccuracy> {
    let season = read.frequency.season();
    let by_key: HashMap<&[String], &Series> =
        actuals.iter().map(|s| (s.key.as_slice(), s)).collect();
    let mut per_series: BTreeMap<&[String], Vec<&PastForecast>> = BTreeMap::new();
    for p in past {
        per_series.entry(p.key.as_slice()).or_default().push(p);
    }
    let mut by_kind: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut by_group: BTreeMap<String, Acc> = BTreeMap::new();
    let mut overall = Acc::default();
    for (key, mut rows) in per_series {
        let Some(series) = by_key.get(key) else {
            continue;
        };
        let Some(&last_actual) = series.dates.iter().max() else {
            continue;
        };
        rows.sort_by_key(|r| r.step);
        let Some(origin) = rows.first().map(|r| r.forecast_date) else {
            continue;
        };
        let points: Vec<(NaiveDate, f64)> = series
            .dates
            .iter()
            .copied()
            .zip(series.values.iter().copied())
            .collect();
        let mut day_value: HashMap<NaiveDate, f64> = HashMap::new();
        for &(d, v) in points.iter().filter(|p| p.0 >= origin) {
            let v = read.value(v);
            let slot = day_value.entry(d).or_insert(f64::NAN);
            *slot = if slot.is_nan() { v } else { *slot + v };
        }
        let mut eval = SeriesEval {
            actual: Vec::new(),
            mean: Vec::new(),
            quantiles: vec![Vec::new(); levels.len()],
            scales: metrics::scales(&read.history(&points, origin), season),
        };
        let mut dates = Vec::new();
        let mut max_step = 0;
        for r in rows.iter().filter(|r| r.forecast_date <= last_actual) {
            let actual = day_value
                .get(&r.forecast_date)
                .copied()
                .unwrap_or_else(|| read.absent());
            if actual.is_nan() {
                continue;
            }
            eval.actual.push(actual);
            eval.mean.push(r.mean);
            for (i, q) in eval.quantiles.iter_mut().enumerate() {
                q.push(r.quantiles.get(i).copied().unwrap_or(f64::NAN));
            }
            dates.push(r.forecast_date);
            max_step = max_step.max(r.step);
        }
        if eval.actual.is_empty() {
            continue;
        }
        let (group, kind) = match rows.first() {
            Some(r) => (r.group.clone(), r.model_kind.clone()),
            None => continue,
        };
        by_kind
            .entry((group.clone(), kind))
            .or_default()
            .add(&eval, &dates, max_step);
        by_group
            .entry(group)
            .or_default()
            .add(&eval, &dates, max_step);
        overall.add(&eval, &dates, max_step);
    }
    let mut out = Vec::new();
    let mut kinds = by_kind.into_iter().peekable();
    for (group, acc) in by_group {
        while let Some(((g, _), _)) = kinds.peek() {
            if *g != group {
                break;
            }
            if let Some(((g, k), a)) = kinds.next() {
                out.push(a.finish(Some(g), Some(k), levels));
            }
        }
        out.push(acc.finish(Some(group), None, levels));
    }
    if overall.points > 0 {
        out.push(overall.finish(None, None, levels));
    }
    out
}

/// One row per (override, group) for the past rows planner overrides
/// changed: the final forecast's metrics (WAPE, bias, coverage; the scaled
/// errors need a history these few points lack) and its value added over
/// the model's own mean on the same points.
pub fn value_added(
    past: &[PastForecast],
    actuals: &[Series],
    read: Actuals,
    levels: &[f64],
) -> Vec<GroupAccuracy> {
    let by_key: HashMap<&[String], &Series> =
        actuals.iter().map(|s| (s.key.as_slice(), s)).collect();
    // (override id, group) -> (final eval, model means, dates)
    type Points = (SeriesEval, Vec<f64>, Vec<NaiveDate>, usize);
    let mut acc: BTreeMap<(String, String), Points> = BTreeMap::new();
    for p in past {
        let (Some((model_mean, id)), Some(series)) = (&p.adjusted, by_key.get(p.key.as_slice()))
        else {
            continue;
        };
        if series
            .dates
            .iter()
            .max()
            .is_none_or(|last| p.forecast_date > *last)
        {
            continue;
        }
        let actual = series
            .dates
            .iter()
            .zip(&series.values)
            .filter(|(d, _)| **d == p.forecast_date)
            .map(|(_, &v)| read.value(v))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| read.absent());
        if actual.is_nan() {
            continue;
        }
        let (eval, model, dates, max_step) =
            acc.entry((id.clone(), p.group.clone())).or_insert_with(|| {
                let eval = SeriesEval {
                    actual: Vec::new(),
                    mean: Vec::new(),
                    quantiles: vec![Vec::new(); levels.len()],
                    scales: metrics::scales(&[], 1),
                };
                (eval, Vec::new(), Vec::new(), 0)
            });
        *max_step = (*max_step).max(p.step);
        eval.actual.push(actual);
        eval.mean.push(p.mean);
        for (i, q) in eval.quantiles.iter_mut().enumerate() {
            q.push(p.quantiles.get(i).copied().unwrap_or(f64::NAN));
        }
        model.push(*model_mean);
        dates.push(p.forecast_date);
    }
    acc.into_iter()
        .map(|((id, group), (eval, model, dates, max_step))| {
            let model_eval = SeriesEval {
                mean: model,
                ..eval.clone()
            };
            let final_m = metrics::aggregate(std::slice::from_ref(&eval), levels);
            let model_m = metrics::aggregate(&[model_eval], levels);
            GroupAccuracy {
                group: Some(group),
                model_kind: Some("planner_override".into()),
                points: eval.actual.len(),
                max_step,
                first_date: dates.iter().min().copied(),
                last_date: dates.iter().max().copied(),
                value_added: Some(ValueAdded {
                    override_id: id,
                    model_wape: model_m.wape,
                    value_added: model_m.wape - final_m.wape,
                }),
                metrics: final_m,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

    const DAILY: Actuals = Actuals {
        frequency: Frequency::Daily,
        gaps: GapPolicy::Zero,
    };

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn series(key: &str, group: &str, start: &str, values: &[f64]) -> Series {
        let s = d(start);
        Series {
            key: vec![key.into()],
            group: group.into(),
            static_feature: None,
            dates: (0..values.len())
                .map(|i| s + chrono::Days::new(i as u64))
                .collect(),
            values: values.to_vec(),
            price: None,
            on_promo: None,
            future: None,
            events: None,
            covariates: Vec::new(),
        }
    }

    #[test]
    fn an_override_is_scored_against_the_model_it_replaced() {
        // Actuals 10 and 20 on Jan 11-12 (history before). The model said 5
        // and 10; the planner's ×1.8 made them 9 and 18. Model WAPE
        // (5 + 10) / 30 = 0.5, final (1 + 2) / 30 = 0.1: value added 0.4.
        let actual = series(
            "a",
            "G",
            "2024-01-01",
            &[3.0; 10]
                .iter()
                .copied()
                .chain([10.0, 20.0])
                .collect::<Vec<_>>(),
        );
        let adjusted = |date: &str, step: usize, model: f64| PastForecast {
            adjusted: Some((model, "O-1".into())),
            ..row("a", "G", date, step, model * 1.8, "theta")
        };
        let past = vec![
            adjusted("2024-01-11", 1, 5.0),
            adjusted("2024-01-12", 2, 10.0),
            row("b", "G", "2024-01-11", 1, 4.0, "theta"),
        ];
        let rows = value_added(&past, &[actual], DAILY, &LEVELS);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        let v = r.value_added.as_ref().expect("value added");
        assert_eq!(v.override_id, "O-1");
        assert!((v.model_wape - 0.5).abs() < 1e-12, "{v:?}");
        assert!((r.metrics.wape - 0.1).abs() < 1e-12, "{:?}", r.metrics);
        assert!((v.value_added - 0.4).abs() < 1e-12, "{v:?}");
        assert_eq!((r.points, r.max_step), (2, 2));
        assert_eq!(r.group.as_deref(), Some("G"));
    }

    fn row(key: &str, group: &str, date: &str, step: usize, mean: f64, kind: &str) -> PastForecast {
        PastForecast {
            key: vec![key.into()],
            group: group.into(),
            forecast_date: d(date),
            step,
            mean,
            quantiles: vec![mean - 1.0, mean, mean + 1.0],
            model_kind: kind.into(),
            adjusted: None,
        }
    }

    #[test]
    fn scores_only_realized_dates_and_fills_gaps_with_zero() {
        // History 1,2,1,2 then actual 3 on 01-05; 01-06 is a gap (zero);
        // actuals end on 01-07, so the forecast for 01-08 is not scored.
        let mut s = series("a", "G", "2026-01-01", &[1.0, 2.0, 1.0, 2.0, 3.0, 0.0, 4.0]);
        s.dates.remove(5);
        s.values.remove(5);
        let past = vec![
            row("a", "G", "2026-01-05", 1, 2.0, "lstm"),
            row("a", "G", "2026-01-06", 2, 2.0, "lstm"),
            row("a", "G", "2026-01-08", 4, 2.0, "lstm"),
        ];
        let out = evaluate(&past, &[s], DAILY, &LEVELS);
        assert_eq!(out.len(), 3, "{out:?}");
        let kind = &out[0];
        assert_eq!(kind.model_kind.as_deref(), Some("lstm"));
        assert_eq!(kind.points, 2);
        assert_eq!(kind.max_step, 2);
        assert_eq!(kind.last_date, Some(d("2026-01-06")));
        // |3-2| + |0-2| over actual 3: WAPE 1.0; bias (2+2-3)/3.
        assert!((kind.metrics.wape - 1.0).abs() < 1e-12);
        assert!((kind.metrics.bias - 1.0 / 3.0).abs() < 1e-12);
        // In-sample naive MSE of 1,2,1,2 is 1; MSE is (1+4)/2.
        assert!((kind.metrics.rmsse - 2.5f64.sqrt()).abs() < 1e-12);
        // Coverage of the lower quantile (1.0): 3 > 1, 0 <= 1.
        assert!((kind.metrics.coverage[0] - 0.5).abs() < 1e-12);
        assert_eq!(out[2].group, None);
    }

    fn weekly(key: &str, start: &str, values: &[f64]) -> Series {
        let mut s = series(key, "G", start, values);
        s.dates = (0..values.len())
            .map(|i| d(start) + chrono::Days::new(7 * i as u64))
            .collect();
        s
    }

    #[test]
    fn an_unrecorded_week_is_not_scored_under_the_missing_policy() {
        // Weekly 4, 6, 4, 6 then the forecast's weeks: 5, (no row), 7. A
        // week of the history is missing too (the 3rd), and one is null.
        let mut s = weekly("a", "2026-01-05", &[4.0, 6.0, 4.0, 6.0, 5.0, 0.0, 7.0]);
        s.values[1] = f64::NAN;
        s.dates.remove(5);
        s.values.remove(5);
        s.dates.remove(2);
        s.values.remove(2);
        let past = vec![
            row("a", "G", "2026-02-02", 1, 5.0, "ets"),
            row("a", "G", "2026-02-09", 2, 5.0, "ets"),
            row("a", "G", "2026-02-16", 3, 5.0, "ets"),
        ];
        let missing = Actuals {
            frequency: Frequency::Weekly,
            gaps: GapPolicy::Missing,
        };
        let out = evaluate(&past, std::slice::from_ref(&s), missing, &LEVELS);
        let g = &out[0];
        // Scored: 5 against 5 and 7 against 5; the unrecorded week is not.
        assert_eq!(g.points, 2, "{g:?}");
        assert!(
            (g.metrics.wape - 2.0 / 12.0).abs() < 1e-12,
            "{:?}",
            g.metrics
        );
        // History 4, NaN, NaN, 6 on the grid: no one-step difference is
        // known, so the scale (and RMSSE) is undefined, not made of zeros.
        assert!(g.metrics.rmsse.is_nan(), "{:?}", g.metrics);
        // Under `gaps: zero` the same week is a zero-demand week.
        let zero = Actuals {
            gaps: GapPolicy::Zero,
            ..missing
        };
        let out = evaluate(&past, std::slice::from_ref(&s), zero, &LEVELS);
        assert_eq!(out[0].points, 3);
        assert!((out[0].metrics.wape - 7.0 / 12.0).abs() < 1e-12);
        // An override on the unrecorded week is not scored either.
        let adjusted = PastForecast {
            adjusted: Some((5.0, "O-1".into())),
            ..row("a", "G", "2026-02-09", 2, 6.0, "ets")
        };
        assert!(
            value_added(
                std::slice::from_ref(&adjusted),
                std::slice::from_ref(&s),
                missing,
                &LEVELS
            )
            .is_empty()
        );
        assert_eq!(value_added(&[adjusted], &[s], zero, &LEVELS).len(), 1);
    }

    #[test]
    fn separates_groups_and_kinds_and_skips_unknown_series() {
        let a = series("a", "G1", "2026-01-01", &[1.0, 1.0, 1.0, 5.0]);
        let b = series("b", "G2", "2026-01-01", &[2.0, 2.0, 2.0, 2.0]);
        let past = vec![
            row("a", "G1", "2026-01-04", 1, 1.0, "lstm"),
            row("b", "G2", "2026-01-04", 1, 2.0, "seasonal_naive"),
            row("zz", "G2", "2026-01-04", 1, 9.0, "seasonal_naive"),
        ];
        let out = evaluate(&past, &[a, b], DAILY, &LEVELS);
        let names: Vec<(Option<&str>, Option<&str>)> = out
            .iter()
            .map(|g| (g.group.as_deref(), g.model_kind.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                (Some("G1"), Some("lstm")),
                (Some("G1"), None),
                (Some("G2"), Some("seasonal_naive")),
                (Some("G2"), None),
                (None, None),
            ]
        );
        assert_eq!(out[3].metrics.wape, 0.0);
        assert_eq!(out[4].points, 2);
        // G1's history has a zero naive-difference scale: RMSSE undefined.
        assert!(out[0].metrics.rmsse.is_nan());
        assert_eq!(out[0].drift(Some(0.5)), None);
    }

    #[test]
    fn drift_is_relative_to_the_backtest() {
        let a = series("a", "G", "2026-01-01", &[1.0, 2.0, 1.0, 2.0, 4.0]);
        let out = evaluate(
            &[row("a", "G", "2026-01-05", 1, 2.0, "lstm")],
            &[a],
            DAILY,
            &LEVELS,
        );
        // Realized RMSSE: |4-2| / 1 = 2.
        let g = &out[0];
        assert!((g.metrics.rmsse - 2.0).abs() < 1e-12);
        assert!((g.drift(Some(1.0)).expect("drift") - 1.0).abs() < 1e-12);
        assert_eq!(g.drift(None), None);
        assert_eq!(g.drift(Some(0.0)), None);
    }
}
