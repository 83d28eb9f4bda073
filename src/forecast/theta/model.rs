//! The state-space Theta models of Fiorucci, Pellegrini, Louzada,
//! Petropoulos & Koehler (2016), "Models for optimising the theta method
//! and their relationship to state space models" (IJF 32(4)), in the form
//! statsforecast's `AutoTheta` fits them (`src/theta.cpp`, `theta.py`).
//!
//! The state after observation `t` (counted from 0) is the SES level `ℓ`,
//! the running mean `ȳ` and the coefficients `A`, `B` of the theta line
//! `A + B·t`. The one-step forecast made at time `t` for `t + 1` is
//!
//! `μ = ℓ + (1 − 1/θ)·(A·(1 − α)^(t+1) + B·(1 − (1 − α)^(t+2))/α)`
//!
//! and an observation `y` moves the state to `ℓ ← α·y + (1 − α)·ℓ`,
//! `ȳ ← (t·ȳ + y)/(t + 1)`. The standard models (STM, θ = 2) and the
//! optimised ones (OTM, θ fitted) keep `A`, `B` at the least-squares line
//! through the whole history; the dynamic ones (DSTM, DOTM) update them
//! with each observation, `B ← ((t − 1)·B + 6·(y − ȳ_old)/(t + 1))/(t + 2)`
//! and `A ← ȳ − B·(t + 2)/2`, starting from `A = y₀`, `B = 0`. Forecasts
//! feed each `μ` back in as the observation.
//!
//! The initial level, α and (for OTM, DOTM) θ minimise the in-sample squared
//! one-step errors from the fourth observation on, divided by the mean
//! absolute value of the series, by bounded Nelder–Mead (`nelder_mead.rs`)
//! from statsforecast's start (level `y₀/2`, α = 0.5, θ = 2) within its
//! bounds (level ±10¹⁰, α in [0.1, 0.99], θ in [1, 10¹⁰]). Of the four fits
//! the one with the smallest such error serves. Owns the models and their
//! fitting; seasonal adjustment and quantiles are `mod.rs`.

use super::nelder_mead::{self, Settings};

/// Below this, the mean absolute value that scales the error is floored.
const TOL: f64 = 1e-10;
/// Bounds of the initial level.
const LEVEL_BOUND: f64 = 1e10;
/// Bounds of the smoothing constant.
const ALPHA_BOUNDS: (f64, f64) = (0.1, 0.99);
/// Bounds of θ.
const THETA_BOUNDS: (f64, f64) = (1.0, 1e10);

/// One of the four models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Variant {
    /// Standard Theta model: θ = 2, fixed theta line.
    Stm,
    /// Optimised Theta model: θ fitted, fixed theta line.
    Otm,
    /// Dynamic standard Theta model: θ = 2, theta line updated online.
    Dstm,
    /// Dynamic optimised Theta model: θ fitted, theta line updated online.
    Dotm,
}

impl Variant {
    /// In statsforecast's order, which also breaks ties.
    pub const ALL: [Variant; 4] = [Variant::Stm, Variant::Otm, Variant::Dstm, Variant::Dotm];

    fn dynamic(self) -> bool {
        matches!(self, Variant::Dstm | Variant::Dotm)
    }

    fn fits_theta(self) -> bool {
        matches!(self, Variant::Otm | Variant::Dotm)
    }
}

/// A model's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Params {
    pub level: f64,
    pub alpha: f64,
    pub theta: f64,
}

/// The state after an observation (see the module doc).
#[derive(Debug, Clone, Copy)]
struct State {
    level: f64,
    mean: f64,
    a: f64,
    b: f64,
}

/// A walk through the series: the state and `(1 − α)^(t+1)` after time `t`.
struct Walk {
    variant: Variant,
    alpha: f64,
    /// `1 − 1/θ`.
    weight: f64,
    state: State,
    /// The time index of the last observation absorbed.
    t: usize,
    decay: f64,
}

impl Walk {
    /// The state after the first observation, and the error of its "forecast".
    fn start(y: &[f64], variant: Variant, p: Params) -> (Walk, f64) {
        let weight = 1.0 - 1.0 / p.theta;
        let (a, b, mu) = if variant.dynamic() {
            (y[0], 0.0, y[0])
        } else {
            let n = y.len() as f64;
            let mean = y.iter().sum::<f64>() / n;
            let weighted = y
                .iter()
                .enumerate()
                .map(|(t, v)| (t + 1) as f64 * v)
                .sum::<f64>()
                / n;
            let b = 6.0 * (2.0 * weighted - (n + 1.0) * mean) / (n * n - 1.0);
            let a = mean - (n + 1.0) * b / 2.0;
            (a, b, p.level + weight * (a + b))
        };
        let state = State {
            level: p.alpha * y[0] + (1.0 - p.alpha) * p.level,
            mean: y[0],
            a,
            b,
        };
        let walk = Walk {
            variant,
            alpha: p.alpha,
            weight,
            state,
            t: 0,
            decay: 1.0 - p.alpha,
        };
        (walk, y[0] - mu)
    }

    /// The forecast of the next observation.
    fn next_mean(&self) -> f64 {
        let s = &self.state;
        let decay_next = self.decay * (1.0 - self.alpha);
        s.level + self.weight * (s.a * self.decay + s.b * (1.0 - decay_next) / self.alpha)
    }

    /// Absorbs the next observation.
    fn absorb(&mut self, y: f64) {
        let i = (self.t + 1) as f64;
        let old = self.state;
        let s = &mut self.state;
        s.level = self.alpha * y + (1.0 - self.alpha) * old.level;
        s.mean = (i * old.mean + y) / (i + 1.0);
        if self.variant.dynamic() {
            s.b = ((i - 1.0) * old.b + 6.0 * (y - old.mean) / (i + 1.0)) / (i + 2.0);
            s.a = s.mean - s.b * (i + 2.0) / 2.0;
        }
        self.t += 1;
        self.decay *= 1.0 - self.alpha;
    }
}

/// In-sample one-step errors of a model (the first is the error of the
/// start state's forecast of `y₀`).
fn errors(y: &[f64], variant: Variant, p: Params) -> (Vec<f64>, Walk) {
    let (mut walk, e0) = Walk::start(y, variant, p);
    let mut e = Vec::with_capacity(y.len());
    e.push(e0);
    for &v in &y[1..] {
        e.push(v - walk.next_mean());
        walk.absorb(v);
    }
    (e, walk)
}

/// The fitting objective: squared one-step errors from the fourth
/// observation on, over the mean absolute value of the series.
fn objective(y: &[f64], variant: Variant, p: Params, scale: f64) -> f64 {
    let (mut walk, _) = Walk::start(y, variant, p);
    let mut sse = 0.0;
    for (t, &v) in y.iter().enumerate().skip(1) {
        if t >= 3 {
            sse += (v - walk.next_mean()).powi(2);
        }
        walk.absorb(v);
    }
    sse / scale
}

/// A fitted model.
#[derive(Debug, Clone)]
pub(super) struct Fit {
    pub params: Params,
    /// The objective at `params` (see [`objective`]).
    pub score: f64,
    /// In-sample one-step errors, one per observation.
    pub errors: Vec<f64>,
    /// Point forecasts.
    pub mean: Vec<f64>,
}

/// Fits one model and forecasts `horizon` steps. `y` holds at least four
/// observations.
pub(super) fn fit(y: &[f64], variant: Variant, horizon: usize) -> Fit {
    let scale = (y.iter().map(|v| v.abs()).sum::<f64>() / y.len() as f64).max(TOL);
    let start = Params {
        level: y[0] / 2.0,
        alpha: 0.5,
        theta: 2.0,
    };
    let unpack = |x: &[f64]| Params {
        level: x[0],
        alpha: x[1],
        theta: if variant.fits_theta() { x[2] } else { 2.0 },
    };
    let (mut x0, mut lower, mut upper) = (
        vec![start.level, start.alpha],
        vec![-LEVEL_BOUND, ALPHA_BOUNDS.0],
        vec![LEVEL_BOUND, ALPHA_BOUNDS.1],
    );
    if variant.fits_theta() {
        x0.push(start.theta);
        lower.push(THETA_BOUNDS.0);
        upper.push(THETA_BOUNDS.1);
    }
    let best = nelder_mead::minimise(
        |x| objective(y, variant, unpack(x), scale),
        &x0,
        &lower,
        &upper,
        Settings::default(),
    );
    let params = unpack(&best.x);
    let (errors, mut walk) = errors(y, variant, params);
    let score = objective(y, variant, params, scale);
    let mean = (0..horizon)
        .map(|_| {
            let mu = walk.next_mean();
            walk.absorb(mu);
            mu
        })
        .collect();
    Fit {
        params,
        score,
        errors,
        mean,
    }
}

/// Fits the four models and keeps the one with the smallest in-sample
/// error (the earlier on ties); `None` when none has a finite one.
pub(super) fn auto(y: &[f64], horizon: usize) -> Option<Fit> {
    Variant::ALL
        .iter()
        .map(|&v| fit(y, v, horizon))
        .filter(|f| f.score.is_finite())
        .reduce(|best, f| if f.score < best.score { f } else { best })
}
