//! A global direct regression per group: for every forecast origin and
//! horizon step, the log demand relative to the series' recent level is
//! regressed (ridge, least squares) on what is known at the origin (the
//! last value, the recent level, the trend, the seasonal lag) and on the
//! known-future covariates of the target period (price relative to the
//! recent regular price, promotion flags, weekday). One coefficient vector
//! serves the whole group, so a short series borrows the price elasticity
//! of its neighbours; quantiles are the empirical quantiles of the fit's
//! log residuals per step, which makes the intervals multiplicative.
//!
//! This is the method of choice for promotion-driven data, where the naive
//! forecast carries the last promotion spike forward and smoothing methods
//! cannot see a planned price cut. It is cheap (a few hundred thousand
//! rows of ~25 features), so the serving fit is redone on the full history
//! at forecast time and nothing is stored but the choice.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Datelike;

use super::baselines::PointForecast;
use super::config::{Frequency, ModelConfig};
use super::events::EventCalendar;
use super::prepare::Prepared;

/// Rows a fit reads at most; origins are strided evenly beyond that.
const MAX_ROWS: usize = 300_000;
/// Ridge penalty relative to each feature's sum of squares.
const RIDGE: f64 = 1e-3;
/// Ridge penalty of a series' own effects, relative to their sum of
/// squares: how far a series' elasticity is pulled towards the group's.
const LOCAL_SHRINK: f64 = 0.5;
/// Inputs before the covariates in every row.
const COMMON: usize = 7;
/// Price ratios outside this range are clamped before the log.
const PRICE_RATIO: (f64, f64) = (0.2, 5.0);

/// Which inputs a group's rows carry; fixed at fit time.
#[derive(Debug, Clone)]
struct Spec {
    freq: Frequency,
    price: bool,
    promo: bool,
    weekday: bool,
    /// Further covariates (known-future first, then past-only) with the
    /// group's mean absolute value, which they are divided by.
    covariates: Vec<(String, bool, f64)>,
    window: usize,
    season: usize,
    seasonal_lags: usize,
    horizon: usize,
    /// Known holidays and events: `before`, `on`, `after` flags per name
    /// at the target period.
    events: Option<(Arc<EventCalendar>, Vec<Option<u32>>)>,
}

/// Event names a row reads at most.
const MAX_EVENTS: usize = 40;

impl Spec {
    fn for_group(
        prepared: &[Prepared],
        freq: Frequency,
        config: &ModelConfig,
        events: Option<&Arc<EventCalendar>>,
    ) -> Self {
        Self {
            freq,
            events: events.filter(|c| !c.is_empty()).map(|c| {
                let names: Vec<String> = c.names().iter().take(MAX_EVENTS).cloned().collect();
                (Arc::clone(c), c.bits(&names))
            }),
            price: prepared.iter().any(|s| s.price.is_some()),
            promo: prepared.iter().any(|s| s.promo.is_some()),
            weekday: freq == Frequency::Daily,
            covariates: covariate_scales(prepared),
            window: config.context.clamp(4, 104),
            season: freq.season(),
            seasonal_lags: if freq == Frequency::Daily { 4 } else { 1 },
            horizon: config.horizon,
        }
    }

    fn width(&self) -> usize {
        self.covariates_at()
            + self
                .covariates
                .iter()
                .map(|(_, known, _)| if *known { 3 } else { 2 })
                .sum::<usize>()
            + self.events.as_ref().map_or(0, |(_, bits)| 3 * bits.len())
    }

    /// Where the covariates' inputs start in a row.
    fn covariates_at(&self) -> usize {
        COMMON
            + 4 * usize::from(self.price)
            + 3 * usize::from(self.promo)
            + usize::from(self.price && self.promo)
            + 6 * usize::from(self.weekday)
    }

    /// Fewest observed periods in the window for an origin to be used.
    fn min_observed(&self) -> usize {
        (self.window / 3).max(3)
    }
}

/// A fitted group regression.
#[derive(Debug, Clone)]
pub struct Regression {
    spec: Spec,
    beta: Vec<f64>,
    /// Each series' own coefficients on [`local_inputs`], added to `beta`'s.
    local: HashMap<Vec<String>, Vec<f64>>,
    local_inputs: Vec<usize>,
    /// Per step: log of the mean of exp(residual) (retransformation of the
    /// log-scale fit to a mean, Duan's smearing).
    smear: Vec<f64>,
    /// Per step and quantile level: the residual quantile.
    resid_q: Vec<Vec<f64>>,
    /// Rows the fit read.
    pub rows: usize,
    /// The factor the in-sample residual quantiles were widened by.
    pub widened: f64,
}

/// The group's covariates by name, known-future first, each with its mean
/// absolute value over the group's history (1 when that is 0).
pub(super) fn covariate_scales(prepared: &[Prepared]) -> Vec<(String, bool, f64)> {
    let mut acc: std::collections::BTreeMap<(bool, &str), (f64, usize)> = Default::default();
    for s in prepared {
        for c in &s.covariates {
            let e = acc.entry((!c.known, c.name.as_str())).or_default();
            e.0 += c.values.iter().map(|v| v.abs()).sum::<f64>();
            e.1 += c.values.len();
        }
    }
    acc.into_iter()
        .map(|((past, name), (sum, n))| {
            let scale = sum / n.max(1) as f64;
            let scale = if scale > 0.0 && scale.is_finite() {
                scale
            } else {
                1.0
            };
            (name.to_string(), !past, scale)
        })
        .collect()
}

fn lv(y: f64) -> f64 {
    y.max(0.0).ln_1p()
}

/// What a forecast origin contributes to every step's row.
struct Origin {
    /// Median log demand over the window: the level everything is relative to.
    base: f64,
    last: f64,
    recent: f64,
    slope: f64,
    ref_price: f64,
    price_window: f64,
    promo_window: f64,
    /// Per covariate of the spec: the window's mean, scaled.
    covariate_window: Vec<f64>,
}

impl Origin {
    /// Statistics of the last `window` observed periods before `cut`
    /// (reaching back over a gap); `None` when fewer than
    /// [`Spec::min_observed`] precede it.
    fn at(s: &Prepared, cut: usize, spec: &Spec) -> Option<Self> {
        let mut idx: Vec<usize> = (0..cut.min(s.len()))
            .rev()
            .filter(|&t| s.observed[t])
            .take(spec.window)
            .collect();
        if idx.len() < spec.min_observed() {
            return None;
        }
        idx.reverse();
        let obs: Vec<f64> = idx.iter().map(|&t| lv(s.values[t])).collect();
        let base = median(&obs);
        let last = *obs.last()? - base;
        let k = obs.len().min(4);
        let recent = obs[obs.len() - k..].iter().sum::<f64>() / k as f64 - base;
        let half = obs.len() / 2;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let slope = (mean(&obs[half..]) - mean(&obs[..half])) / (obs.len() as f64 / 2.0).max(1.0);
        let at = |v: &Vec<f64>| idx.iter().map(|&t| v[t]).collect::<Vec<f64>>();
        let ref_price = s
            .price
            .as_ref()
            .map(|p| median(&at(p)))
            .filter(|p| *p > 0.0)
            .unwrap_or(1.0);
        let price_window = s.price.as_ref().map_or(0.0, |p| {
            mean(
                &at(p)
                    .iter()
                    .map(|&x| price_rel(x, ref_price))
                    .collect::<Vec<_>>(),
            )
        });
        let promo_window = s.promo.as_ref().map_or(0.0, |p| mean(&at(p)));
        let covariate_window = spec
            .covariates
            .iter()
            .map(|(name, _, scale)| {
                s.covariates
                    .iter()
                    .find(|c| &c.name == name)
                    .map_or(0.0, |c| mean(&at(&c.values)) / scale)
            })
            .collect();
        Some(Self {
            base,
            last,
            recent,
            slope,
            ref_price,
            price_window,
            promo_window,
            covariate_window,
        })
    }
}

fn price_rel(p: f64, reference: f64) -> f64 {
    if p.is_finite() && p > 0.0 && reference > 0.0 {
        (p / reference).clamp(PRICE_RATIO.0, PRICE_RATIO.1).ln()
    } else {
        0.0
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A covariate's value at period `t`: the history before the series'
/// end, the plan after it (held at the last value, or 0 for flags, where
/// the plan has no value).
fn covariate_at(hist: Option<&Vec<f64>>, plan: Option<&Vec<f64>>, t: usize, hold: bool) -> f64 {
    let Some(h) = hist else { return 0.0 };
    if let Some(v) = h.get(t) {
        return *v;
    }
    let planned = plan.and_then(|p| p.get(t - h.len())).copied();
    match planned {
        Some(v) if v.is_finite() => v,
        _ if hold => h.last().copied().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The row for origin `cut` and target period `t = cut + step`.
fn row(s: &Prepared, cut: usize, step: usize, o: &Origin, spec: &Spec, out: &mut Vec<f64>) {
    out.clear();
    let t = cut + step;
    let h = (step + 1) as f64;
    // The most recent same-season periods before the origin: for a step
    // beyond one season, the lags reach back whole seasons further.
    let first = (t + 1 - cut).div_ceil(spec.season.max(1));
    let lags: Vec<f64> = (first..first + spec.seasonal_lags)
        .filter_map(|k| t.checked_sub(k * spec.season))
        .filter(|&i| i < cut && s.observed[i])
        .map(|i| lv(s.values[i]) - o.base)
        .collect();
    let (seasonal, has_season) = if lags.is_empty() {
        (0.0, 0.0)
    } else {
        (lags.iter().sum::<f64>() / lags.len() as f64, 1.0)
    };
    out.extend([
        1.0,
        o.last,
        o.recent,
        o.slope * h,
        seasonal,
        has_season,
        h / spec.horizon.max(1) as f64,
    ]);
    if spec.price {
        let p = covariate_at(s.price.as_ref(), s.future_price.as_ref(), t, true);
        let last = s
            .price
            .as_ref()
            .map_or(0.0, |v| price_rel(v[cut - 1], o.ref_price));
        let rel = price_rel(p, o.ref_price);
        out.extend([rel, last, o.price_window, rel * rel]);
    }
    if spec.promo {
        let p = covariate_at(s.promo.as_ref(), s.future_promo.as_ref(), t, false);
        let last = s.promo.as_ref().map_or(0.0, |v| v[cut - 1]);
        out.extend([p, last, o.promo_window]);
        if spec.price {
            out.push(p * out[COMMON]);
        }
    }
    if spec.weekday {
        let date = s.dates[0] + chrono::Duration::days(t as i64);
        let wd = date.weekday().num_days_from_monday() as usize;
        out.extend((1..7).map(|d| f64::from(u8::from(wd == d))));
    }
    for ((name, known, scale), window) in spec.covariates.iter().zip(&o.covariate_window) {
        let c = s.covariates.iter().find(|c| &c.name == name);
        let last = c.map_or(0.0, |c| c.values[cut - 1] / scale);
        if *known {
            let v = c.map_or(0.0, |c| {
                covariate_at(Some(&c.values), c.future.as_ref(), t, false) / scale
            });
            out.push(v);
        }
        out.extend([last, *window]);
    }
    if let Some((calendar, bits)) = &spec.events {
        let date = crate::forecast::calendar::date_at(spec.freq, s.dates[0], t as i64)
            .unwrap_or(s.dates[0]);
        let mut flags = Vec::with_capacity(3 * bits.len());
        calendar.features(spec.freq, date, bits, &mut flags);
        out.extend(flags.into_iter().map(f64::from));
    }
}

/// Origins of one series usable for a fit ending at `end` (exclusive).
fn origins(s: &Prepared, end: usize, spec: &Spec) -> std::ops::Range<usize> {
    spec.min_observed().max(1)..end.min(s.len())
}

/// Positions in a row of the inputs whose effect each series also gets
/// on its own (shrunk towards the group's): its level, and how strongly
/// it answers price and promotion.
fn local_inputs(spec: &Spec) -> Vec<usize> {
    let mut v = vec![0];
    if spec.price {
        v.push(COMMON);
    }
    if spec.promo {
        v.push(COMMON + 4 * usize::from(spec.price));
    }
    let mut at = spec.covariates_at();
    for (_, known, _) in &spec.covariates {
        if *known {
            v.push(at);
        }
        at += if *known { 3 } else { 2 };
    }
    v
}

/// Normal equations of a ridge regression, accumulated row by row.
struct Normal {
    p: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    rows: usize,
}

impl Normal {
    fn new(p: usize) -> Self {
        Self {
            p,
            xtx: vec![0.0; p * p],
            xty: vec![0.0; p],
            rows: 0,
        }
    }

    /// One row `x` (length `p`) with target `y`; only the lower triangle
    /// of `xtx` is kept until [`Normal::solve`]. The event and promotion
    /// inputs are mostly zero, so a zero input's row is skipped.
    fn add(&mut self, x: &[f64], y: f64) {
        debug_assert_eq!(x.len(), self.p, "a row has one value per input");
        self.rows += 1;
        let rows = self.xtx.chunks_exact_mut(self.p);
        for (i, ((&xi, row), xty)) in x.iter().zip(rows).zip(&mut self.xty).enumerate() {
            if xi == 0.0 {
                continue;
            }
            *xty += xi * y;
            for (c, &xj) in row[..=i].iter_mut().zip(x) {
                *c += xi * xj;
            }
        }
    }

    /// The coefficients with each penalised input's penalty
    /// `relative × its sum of squares + absolute` (input 0 unpenalised
    /// when `free_intercept`).
    fn solve(mut self, relative: f64, absolute: f64, free_intercept: bool) -> Option<Vec<f64>> {
        let p = self.p;
        for i in 0..p {
            for j in 0..i {
                self.xtx[j * p + i] = self.xtx[i * p + j];
            }
        }
        for i in usize::from(free_intercept)..p {
            self.xtx[i * p + i] += relative * self.xtx[i * p + i] + absolute;
        }
        solve(&mut self.xtx, &self.xty, p)
    }
}

/// Receives each fitting row: series index, step, inputs, target.
type RowSink<'a> = dyn FnMut(usize, usize, &[f64], f64) + 'a;

/// Fits the group's regression on each series' periods before `ends[i]`.
/// Its in-sample residuals make intervals that are too narrow, so they are
/// widened by the smallest factor that makes the outer quantiles cover
/// their nominal share of out-of-sample errors: a second fit that stops
/// one horizon earlier forecasts the last horizon of every series (split
/// conformal calibration of the spread; the mean is left alone). `None`
/// when fewer rows than a few per feature exist.
pub fn fit(
    prepared: &[Prepared],
    ends: &[usize],
    freq: Frequency,
    config: &ModelConfig,
    events: Option<&Arc<EventCalendar>>,
) -> Option<Regression> {
    let spec = Spec::for_group(prepared, freq, config, events);
    let mut m = fit_rows(prepared, ends, spec.clone(), config)?;
    let h = config.horizon;
    let early: Vec<usize> = ends.iter().map(|e| e.saturating_sub(h)).collect();
    let Some(cal) = fit_rows(prepared, &early, spec, config) else {
        return Some(m);
    };
    let errors = cal.errors_after(prepared, &early, ends);
    let widen = spread_factor(&cal.resid_q, &errors, &config.quantiles);
    for q in m.resid_q.iter_mut().flatten() {
        *q *= widen;
    }
    m.widened = widen;
    Some(m)
}

/// The smallest factor (1 to 3) by which the outer residual quantiles
/// must be scaled to hold their nominal share of `errors`.
fn spread_factor(resid_q: &[Vec<f64>], errors: &[Vec<f64>], levels: &[f64]) -> f64 {
    let (Some(&lo), Some(&hi)) = (levels.first(), levels.last()) else {
        return 1.0;
    };
    let n: usize = errors.iter().map(Vec::len).sum();
    if hi <= lo || n < 30 {
        return 1.0;
    }
    let nominal = hi - lo;
    let mut k = 1.0;
    while k < 3.0 {
        let inside: usize = resid_q
            .iter()
            .zip(errors)
            .map(|(q, e)| {
                let (a, b) = (q[0] * k, q[q.len() - 1] * k);
                e.iter().filter(|&&x| a <= x && x <= b).count()
            })
            .sum();
        if inside as f64 / n as f64 >= nominal {
            break;
        }
        k += 0.05;
    }
    k
}

/// [`fit`] with in-sample intervals.
fn fit_rows(
    prepared: &[Prepared],
    ends: &[usize],
    spec: Spec,
    config: &ModelConfig,
) -> Option<Regression> {
    let p = spec.width();
    let total: usize = prepared
        .iter()
        .zip(ends)
        .map(|(s, &e)| origins(s, e, &spec).len())
        .sum();
    let stride = (total * spec.horizon).div_ceil(MAX_ROWS).max(1);
    let visit = |f: &mut RowSink<'_>| {
        let mut x = Vec::with_capacity(p);
        let mut k = 0usize;
        for (i, (s, &end)) in prepared.iter().zip(ends).enumerate() {
            for cut in origins(s, end, &spec) {
                k += 1;
                if k % stride != 0 {
                    continue;
                }
                let Some(o) = Origin::at(s, cut, &spec) else {
                    continue;
                };
                for step in 0..spec.horizon.min(end - cut) {
                    if !s.observed[cut + step] {
                        continue;
                    }
                    row(s, cut, step, &o, &spec, &mut x);
                    f(i, step, &x, lv(s.values[cut + step]) - o.base);
                }
            }
        }
    };
    let mut global = Normal::new(p);
    visit(&mut |_, _, x, y| global.add(x, y));
    let rows = global.rows;
    if rows < 5 * p {
        return None;
    }
    let beta = global.solve(RIDGE, 1e-9, true)?;
    let li = local_inputs(&spec);
    let mut locals: Vec<Normal> = (0..prepared.len()).map(|_| Normal::new(li.len())).collect();
    let mut local_x = vec![0.0; li.len()];
    visit(&mut |s, _, x, y| {
        for (v, &j) in local_x.iter_mut().zip(&li) {
            *v = x[j];
        }
        locals[s].add(&local_x, y - dot(&beta, x));
    });
    // By series index while fitting (a row's lookup must not hash its
    // key), by key in the model.
    let by_index: Vec<Option<Vec<f64>>> = locals
        .into_iter()
        .map(|n| (n.rows >= 2 * li.len()).then(|| n.solve(LOCAL_SHRINK, 1.0, false))?)
        .collect();
    let mut resid: Vec<Vec<f64>> = vec![Vec::new(); spec.horizon];
    visit(&mut |s, step, x, y| {
        let own = by_index[s]
            .as_ref()
            .map_or(0.0, |g| g.iter().zip(&li).map(|(g, &j)| g * x[j]).sum());
        resid[step].push(y - dot(&beta, x) - own);
    });
    let local: HashMap<Vec<String>, Vec<f64>> = prepared
        .iter()
        .zip(by_index)
        .filter_map(|(s, g)| Some((s.key.clone(), g?)))
        .collect();
    let all: Vec<f64> = resid.iter().flatten().copied().collect();
    let (smear, resid_q) = resid
        .iter()
        .map(|r| {
            // A step with few rows borrows all steps' residuals.
            let r = if r.len() < 30 { &all } else { r };
            residual_summary(r, &config.quantiles)
        })
        .unzip();
    Some(Regression {
        spec,
        beta,
        local,
        local_inputs: li,
        smear,
        resid_q,
        rows,
        widened: 1.0,
    })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// The smearing term and the quantiles of one step's residuals.
fn residual_summary(r: &[f64], quantiles: &[f64]) -> (f64, Vec<f64>) {
    let mut sorted = r.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let smear =
        (sorted.iter().map(|e| e.clamp(-5.0, 5.0).exp()).sum::<f64>() / n.max(1) as f64).ln();
    let q = quantiles
        .iter()
        .map(|&q| super::metrics::sorted_quantile(&sorted, q).unwrap_or(0.0))
        .collect();
    (smear, q)
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky, in
/// place); `None` when `a` is not positive definite.
fn solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| a[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / a[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / a[i * n + i];
    }
    Some(x)
}

impl Regression {
    /// The fitted log demand at `cut + step`.
    fn centre(&self, s: &Prepared, cut: usize, step: usize, o: &Origin, x: &mut Vec<f64>) -> f64 {
        row(s, cut, step, o, &self.spec, x);
        let own: f64 = self.local.get(&s.key).map_or(0.0, |g| {
            g.iter()
                .zip(&self.local_inputs)
                .map(|(g, &j)| g * x[j])
                .sum()
        });
        o.base + dot(&self.beta, x) + own
    }

    /// Per step, the log errors of forecasts of the observed periods in `[from[i], to[i])` of every
    /// series, from every origin in reach.
    fn errors_after(&self, prepared: &[Prepared], from: &[usize], to: &[usize]) -> Vec<Vec<f64>> {
        let h = self.spec.horizon;
        let mut out = vec![Vec::new(); h];
        let mut x = Vec::with_capacity(self.spec.width());
        for ((s, &a), &b) in prepared.iter().zip(from).zip(to) {
            let b = b.min(s.len());
            for cut in a.saturating_sub(h - 1).max(1)..b {
                let Some(o) = Origin::at(s, cut, &self.spec) else {
                    continue;
                };
                for (step, errs) in out.iter_mut().enumerate() {
                    let t = cut + step;
                    if t < a || t >= b || !s.observed[t] {
                        continue;
                    }
                    let c = self.centre(s, cut, step, &o, &mut x);
                    errs.push(lv(s.values[t]) - c);
                }
            }
        }
        out
    }

    /// The forecast of the `horizon` periods after `cut`; `None` when the
    /// window before `cut` has too few observed periods.
    pub fn predict(&self, s: &Prepared, cut: usize) -> Option<PointForecast> {
        let o = Origin::at(s, cut, &self.spec)?;
        let nq = self.resid_q.first().map_or(0, Vec::len);
        let mut mean = Vec::with_capacity(self.spec.horizon);
        let mut quantiles = vec![Vec::with_capacity(self.spec.horizon); nq];
        let mut x = Vec::with_capacity(self.spec.width());
        for step in 0..self.spec.horizon {
            let centre = self.centre(s, cut, step, &o, &mut x);
            mean.push(((centre + self.smear[step]).min(40.0).exp() - 1.0).max(0.0));
            for (q, r) in quantiles.iter_mut().zip(&self.resid_q[step]) {
                q.push(((centre + r).min(40.0).exp() - 1.0).max(0.0));
            }
        }
        Some(PointForecast { mean, quantiles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::prepare::{self, PrepareOptions};
    use crate::forecast::series::Series;
    use chrono::NaiveDate;

    /// Weekly demand of 100 units that triples whenever the price is cut
    /// by 20% (elasticity about −4.9), with one promotion week in five.
    fn promo_series(id: usize, weeks: usize, future: usize) -> Series {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("test value");
        let price_at = |w: usize| -> f64 { if (w + id) % 5 == 0 { 0.8 } else { 1.0 } };
        let demand =
            |w: usize| 100.0 * price_at(w).powf(-4.9) * (1.0 + 0.05 * ((w * 7 + id) % 3) as f64);
        Series {
            key: vec![format!("s{id}")],
            group: "g".into(),
            dates: (0..weeks)
                .map(|w| start + chrono::Duration::weeks(w as i64))
                .collect(),
            values: (0..weeks).map(demand).collect(),
            price: Some((0..weeks).map(price_at).collect()),
            future: Some(crate::forecast::FutureCovariates {
                price: Some((weeks..weeks + future).map(price_at).collect()),
                on_promo: None,
                filled: 0,
            }),
            ..Series::default()
        }
    }

    fn config() -> ModelConfig {
        ModelConfig {
            context: 13,
            horizon: 8,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn a_planned_price_cut_raises_the_forecast() {
        let series: Vec<Series> = (0..4).map(|i| promo_series(i, 80, 8)).collect();
        let prepared = prepare::prepare_group_with(
            &series,
            Frequency::Weekly,
            21,
            &PrepareOptions::for_frequency(Frequency::Weekly, None),
        )
        .expect("test value");
        let ends: Vec<usize> = prepared.iter().map(Prepared::len).collect();
        let m = fit(&prepared, &ends, Frequency::Weekly, &config(), None).expect("test value");
        let s = &prepared[0];
        let f = m.predict(s, s.len()).expect("test value");
        for step in 0..8 {
            let cut = (80 + step) % 5 == 0;
            let expect = if cut { 300.0 } else { 105.0 };
            let got = f.mean[step];
            assert!(
                (got / expect - 1.0).abs() < 0.15,
                "step {step}: price cut {cut}, forecast {got:.1}, expected about {expect}"
            );
            assert!(f.quantiles[0][step] <= got && got <= f.quantiles[2][step] * 1.01);
        }
    }

    #[test]
    fn a_named_known_covariate_drives_the_forecast_and_a_past_one_is_not_read_ahead() {
        // Demand doubles in weeks with a display; the display plan is known.
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("test value");
        let shown = |w: usize, id: usize| ((w + id) % 4 == 0) as u8 as f64;
        let series: Vec<Series> = (0..3)
            .map(|id| Series {
                key: vec![format!("s{id}")],
                group: "g".into(),
                dates: (0..90)
                    .map(|w| start + chrono::Duration::weeks(w as i64))
                    .collect(),
                values: (0..90).map(|w| 50.0 * (1.0 + shown(w, id))).collect(),
                covariates: vec![
                    crate::forecast::Covariate {
                        name: "display".into(),
                        known: true,
                        values: (0..90).map(|w| shown(w, id)).collect(),
                        future: Some((90..98).map(|w| shown(w, id)).collect()),
                    },
                    crate::forecast::Covariate {
                        name: "temperature".into(),
                        known: false,
                        values: (0..90).map(|w| (w % 7) as f64).collect(),
                        future: None,
                    },
                ],
                ..Series::default()
            })
            .collect();
        let opts = PrepareOptions::for_frequency(Frequency::Weekly, None);
        let prepared =
            prepare::prepare_group_with(&series, Frequency::Weekly, 21, &opts).expect("test value");
        let ends: Vec<usize> = prepared.iter().map(Prepared::len).collect();
        let m = fit(&prepared, &ends, Frequency::Weekly, &config(), None).expect("test value");
        assert_eq!(m.spec.covariates.len(), 2);
        assert_eq!(m.spec.width(), COMMON + 3 + 2);
        let f = m.predict(&prepared[0], 90).expect("test value");
        for step in 0..8 {
            let expect = 50.0 * (1.0 + shown(90 + step, 0));
            let got = f.mean[step];
            assert!(
                (got / expect - 1.0).abs() < 0.15,
                "step {step}: forecast {got:.1}, expected about {expect}"
            );
        }
    }

    #[test]
    fn too_little_history_gives_no_fit() {
        let series = vec![promo_series(0, 6, 8)];
        let prepared = prepare::prepare_group_with(
            &series,
            Frequency::Weekly,
            1,
            &PrepareOptions::for_frequency(Frequency::Weekly, None),
        )
        .expect("test value");
        assert!(fit(&prepared, &[6], Frequency::Weekly, &config(), None).is_none());
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let x = solve(&mut a, &[2.0, 1.0], 2).expect("test value");
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        let mut singular = vec![1.0, 1.0, 1.0, 1.0];
        assert!(solve(&mut singular, &[1.0, 1.0], 2).is_none());
    }
}
