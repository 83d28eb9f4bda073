//! Cleaning of raw series before any model sees them: sorting, summing
//! duplicate dates, filling calendar gaps with zeros, clamping returns,
//! treating NaN as missing, and flagging all-zero, intermittent and
//! short (cold-start) histories. Owns nothing about models.

use chrono::NaiveDate;
use serde::Serialize;

use super::calendar::{self, CalendarError};
use super::config::{Frequency, GapPolicy};
use super::series::{Covariate, Flag, Quality, Series};

/// Errors in the input data; all are user faults and name the series.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PrepareError {
    #[error("series {key:?}: {field} has {got} entries, expected {expected}")]
    Length {
        key: Vec<String>,
        field: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("series {key:?} has no observations")]
    Empty { key: Vec<String> },
    #[error("series {key:?}: {source}")]
    Calendar {
        key: Vec<String>,
        source: CalendarError,
    },
}

/// A series on a gap-free grid with clean, non-negative values.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub key: Vec<String>,
    pub group: String,
    pub static_feature: Option<String>,
    /// Consecutive grid dates (monthly: first of month).
    pub dates: Vec<NaiveDate>,
    /// Demand per date; unobserved periods (gap policy `missing`) hold the
    /// bridged value the model reads.
    pub values: Vec<f64>,
    /// Whether each period was recorded; `false` only under gap policy
    /// `missing`. Unobserved periods are left out of loss and scores.
    pub observed: Vec<bool>,
    /// Price per date, forward-filled (then back-filled) over gaps and NaN.
    pub price: Option<Vec<f64>>,
    /// 1.0 on promotion, else 0.0.
    pub promo: Option<Vec<f64>>,
    pub future_price: Option<Vec<f64>>,
    pub future_promo: Option<Vec<f64>>,
    /// Further covariates on the grid: values forward-filled (then
    /// back-filled, 0 when never recorded); the plan's missing periods 0.
    pub covariates: Vec<Covariate>,
    pub quality: Quality,
}

impl Prepared {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Demand with NaN where the period was not recorded: what scores and
    /// scales are computed on.
    pub fn scored_values(&self, range: std::ops::Range<usize>) -> Vec<f64> {
        self.values[range.clone()]
            .iter()
            .zip(&self.observed[range])
            .map(|(&v, &o)| if o { v } else { f64::NAN })
            .collect()
    }

    /// The last observed date.
    pub fn last_date(&self) -> Option<NaiveDate> {
        self.dates.last().copied()
    }
}

/// How to prepare a series: what a missing period means, and the run's
/// date, up to which every history is brought (so forecasts start after it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrepareOptions {
    pub gaps: GapPolicy,
    /// The run's date: a history ending before it is extended to it.
    pub until: Option<NaiveDate>,
}

impl PrepareOptions {
    /// Gaps are zero sales and histories are not extended (the behaviour of
    /// [`prepare`]).
    pub const ZERO: PrepareOptions = PrepareOptions {
        gaps: GapPolicy::Zero,
        until: None,
    };

    /// The frequency's default gap policy, extended up to `until`.
    pub fn for_frequency(freq: Frequency, until: Option<NaiveDate>) -> Self {
        Self {
            gaps: GapPolicy::default_for(freq),
            until,
        }
    }
}

/// Prepares one series. `min_len` is the history needed to train the
/// global model (context + horizon); shorter series are flagged cold start.
/// Gaps are zero sales; see [`prepare_with`] for the other policies.
pub fn prepare(s: &Series, freq: Frequency, min_len: usize) -> Result<Prepared, PrepareError> {
    prepare_with(s, freq, min_len, &PrepareOptions::ZERO)
}

fn check_lengths(s: &Series) -> Result<(), PrepareError> {
    let n_in = s.dates.len();
    let check = |field: &'static str, got: usize| {
        if got == n_in {
            Ok(())
        } else {
            Err(PrepareError::Length {
                key: s.key.clone(),
                field,
                got,
                expected: n_in,
            })
        }
    };
    check("values", s.values.len())?;
    if let Some(p) = &s.price {
        check("price", p.len())?;
    }
    if let Some(p) = &s.on_promo {
        check("on_promo", p.len())?;
    }
    for c in &s.covariates {
        check("covariate", c.values.len())?;
    }
    if n_in == 0 {
        return Err(PrepareError::Empty { key: s.key.clone() });
    }
    Ok(())
}

/// The raw rows laid on the grid: values (NaN where unseen or NaN), which
/// periods had a row, price and promotion.
struct Grid {
    values: Vec<f64>,
    seen: Vec<bool>,
    price: Option<Vec<f64>>,
    promo: Option<Vec<f64>>,
    covariates: Vec<Vec<f64>>,
}

fn lay_on_grid(
    s: &Series,
    freq: Frequency,
    anchor: NaiveDate,
    n: usize,
    quality: &mut Quality,
) -> Result<Grid, CalendarError> {
    let mut g = Grid {
        values: vec![f64::NAN; n],
        seen: vec![false; n],
        price: s.price.as_ref().map(|_| vec![f64::NAN; n]),
        promo: s.on_promo.as_ref().map(|_| vec![0.0; n]),
        covariates: vec![vec![f64::NAN; n]; s.covariates.len()],
    };
    for i in 0..s.dates.len() {
        let idx = usize::try_from(calendar::step_index(freq, anchor, s.dates[i])?).unwrap_or(0);
        let v = s.values[i];
        if g.seen[idx] {
            quality.add(Flag::DuplicateDates);
            if !v.is_nan() {
                g.values[idx] = if g.values[idx].is_nan() {
                    v
                } else {
                    g.values[idx] + v
                };
            }
        } else {
            g.values[idx] = v;
            g.seen[idx] = true;
        }
        if let (Some(out), Some(src)) = (g.price.as_mut(), s.price.as_ref()) {
            out[idx] = src[i];
        }
        if let (Some(out), Some(src)) = (g.promo.as_mut(), s.on_promo.as_ref()) {
            if src[i] {
                out[idx] = 1.0;
            }
        }
        for (out, c) in g.covariates.iter_mut().zip(&s.covariates) {
            if c.values[i].is_finite() {
                out[idx] = c.values[i];
            }
        }
    }
    Ok(g)
}

/// Applies the gap policy to unseen and NaN periods and clamps returns;
/// returns which periods count as observed.
fn apply_gaps(g: &mut Grid, gaps: GapPolicy, observed_len: usize, q: &mut Quality) -> Vec<bool> {
    let mut observed = vec![true; g.values.len()];
    for (i, v) in g.values.iter_mut().enumerate() {
        let unseen = !g.seen[i];
        if !unseen && v.is_nan() {
            q.missing += 1;
        }
        if unseen || v.is_nan() {
            if i >= observed_len {
                q.stale_periods += 1;
            }
            match gaps {
                GapPolicy::Zero => {
                    if unseen {
                        q.gaps_filled += 1;
                    }
                    *v = 0.0;
                }
                GapPolicy::Missing => {
                    q.gaps_bridged += 1;
                    observed[i] = false;
                }
            }
        } else if *v < 0.0 {
            q.negatives_clamped += 1;
            *v = 0.0;
        }
    }
    if gaps == GapPolicy::Missing {
        bridge(&mut g.values, &observed);
    }
    observed
}

/// Fills unobserved values by linear interpolation between the observed
/// neighbours; before the first observation the first value, after the last
/// the last value (0 when nothing was observed).
fn bridge(values: &mut [f64], observed: &[bool]) {
    let idx: Vec<usize> = (0..values.len()).filter(|&i| observed[i]).collect();
    let (Some(&first), Some(&last)) = (idx.first(), idx.last()) else {
        values.iter_mut().for_each(|v| *v = 0.0);
        return;
    };
    let (v_first, v_last) = (values[first], values[last]);
    values[..first].iter_mut().for_each(|v| *v = v_first);
    values[last + 1..].iter_mut().for_each(|v| *v = v_last);
    for w in idx.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (va, vb) = (values[a], values[b]);
        for (k, v) in values[a + 1..b].iter_mut().enumerate() {
            *v = va + (vb - va) * (k + 1) as f64 / (b - a) as f64;
        }
    }
}

/// Prepares one series with an explicit gap policy and run's date.
pub fn prepare_with(
    s: &Series,
    freq: Frequency,
    min_len: usize,
    opts: &PrepareOptions,
) -> Result<Prepared, PrepareError> {
    check_lengths(s)?;
    let key = s.key.clone();
    let cal = |source| PrepareError::Calendar {
        key: key.clone(),
        source,
    };
    let anchor = s.dates.iter().copied().min().unwrap_or_default();
    let last = s.dates.iter().copied().max().unwrap_or_default();
    let observed_len =
        usize::try_from(calendar::step_index(freq, anchor, last).map_err(cal)?).unwrap_or(0) + 1;
    let until_len = opts.until.map_or(0, |u| {
        usize::try_from(calendar::step_on_or_before(freq, anchor, u) + 1).unwrap_or(0)
    });
    let n = observed_len.max(until_len);

    let mut quality = Quality::default();
    let mut grid = lay_on_grid(s, freq, anchor, n, &mut quality).map_err(cal)?;
    let observed = apply_gaps(&mut grid, opts.gaps, observed_len, &mut quality);
    let values = grid.values;
    for (count, flag) in [
        (quality.gaps_filled, Flag::GapsFilled),
        (quality.gaps_bridged, Flag::GapsBridged),
        (quality.stale_periods, Flag::StaleHistory),
        (quality.missing, Flag::MissingValues),
        (quality.negatives_clamped, Flag::NegativeClamped),
    ] {
        if count > 0 {
            quality.add(flag);
        }
    }
    let nonzero = values
        .iter()
        .zip(&observed)
        .filter(|&(&v, &o)| o && v > 0.0)
        .count();
    let n_observed = observed.iter().filter(|&&o| o).count();
    if nonzero == 0 {
        quality.add(Flag::AllZero);
    } else if n_observed as f64 / nonzero as f64 > 1.32 {
        quality.add(Flag::Intermittent);
    }
    if n < min_len {
        quality.add(Flag::ColdStart);
    }
    let mut price = grid.price;
    if let Some(p) = price.as_mut() {
        fill_price(p);
    }

    let mut dates = Vec::with_capacity(n);
    let grid_anchor = calendar::date_at(freq, anchor, 0).map_err(cal)?;
    for k in 0..n {
        dates.push(calendar::date_at(freq, grid_anchor, k as i64).map_err(cal)?);
    }

    let future = s.future.as_ref();
    if future.is_some_and(|f| f.filled > 0) {
        quality.add(Flag::FutureCovariatesFilled);
    }
    let future_price = future.and_then(|f| f.price.as_ref()).map(|p| {
        let mut p = p.clone();
        fill_price(&mut p);
        p
    });
    let future_promo = future
        .and_then(|f| f.on_promo.as_ref())
        .map(|p| p.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect());

    let covariates = s
        .covariates
        .iter()
        .zip(grid.covariates)
        .map(|(c, mut values)| {
            fill_level(&mut values);
            let future = c.future.as_ref().map(|f| {
                f.iter()
                    .map(|&v| if v.is_finite() { v } else { 0.0 })
                    .collect()
            });
            Covariate {
                name: c.name.clone(),
                known: c.known,
                values,
                future,
            }
        })
        .collect();

    Ok(Prepared {
        key,
        group: s.group.clone(),
        static_feature: s.static_feature.clone(),
        dates,
        values,
        observed,
        price,
        promo: grid.promo,
        future_price,
        future_promo,
        covariates,
        quality,
    })
}

/// Forward-fills NaN values, back-fills the leading ones; all-NaN becomes 0.
fn fill_level(v: &mut [f64]) {
    let mut last = v.iter().copied().find(|x| x.is_finite()).unwrap_or(0.0);
    for x in v.iter_mut() {
        if x.is_finite() {
            last = *x;
        } else {
            *x = last;
        }
    }
}

/// Forward-fills NaN or non-positive prices, then back-fills the leading
/// ones; an all-missing price becomes 1.0 (relative prices are then flat).
fn fill_price(p: &mut [f64]) {
    let valid = |x: f64| x.is_finite() && x > 0.0;
    let mut last = p.iter().copied().find(|&x| valid(x)).unwrap_or(1.0);
    for x in p.iter_mut() {
        if valid(*x) {
            last = *x;
        } else {
            *x = last;
        }
    }
}

/// Prepares a group's series (gaps are zero sales) and flags a group of one.
pub fn prepare_group(
    series: &[Series],
    freq: Frequency,
    min_len: usize,
) -> Result<Vec<Prepared>, PrepareError> {
    prepare_group_with(series, freq, min_len, &PrepareOptions::ZERO)
}

/// [`prepare_group`] with an explicit gap policy and run's date.
pub fn prepare_group_with(
    series: &[Series],
    freq: Frequency,
    min_len: usize,
    opts: &PrepareOptions,
) -> Result<Vec<Prepared>, PrepareError> {
    let mut out = series
        .iter()
        .map(|s| prepare_with(s, freq, min_len, opts))
        .collect::<Result<Vec<_>, _>>()?;
    if out.len() == 1 {
        out[0].quality.add(Flag::SingleSeriesGroup);
    }
    Ok(out)
}

/// Gap counts over a set of prepared series, for the task outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GapSummary {
    /// Series with at least one period missing inside their history.
    pub series_with_gaps: usize,
    /// Missing periods inside the histories (zero-filled or bridged).
    pub gap_periods: usize,
    /// Series whose last observation is older than the run's date.
    pub stale_series: usize,
    /// Periods added after the last observations to reach the run's date.
    pub stale_periods: usize,
}

impl GapSummary {
    pub fn of(series: &[Prepared]) -> Self {
        let mut g = GapSummary::default();
        for s in series {
            let q = &s.quality;
            let inner = (q.gaps_filled + q.gaps_bridged).saturating_sub(q.stale_periods);
            if inner > 0 {
                g.series_with_gaps += 1;
                g.gap_periods += inner;
            }
            if q.stale_periods > 0 {
                g.stale_series += 1;
                g.stale_periods += q.stale_periods;
            }
        }
        g
    }

    pub fn add(&mut self, other: &GapSummary) {
        self.series_with_gaps += other.series_with_gaps;
        self.gap_periods += other.gap_periods;
        self.stale_series += other.stale_series;
        self.stale_periods += other.stale_periods;
    }
}
