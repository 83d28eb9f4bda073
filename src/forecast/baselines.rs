//! Simple challengers to the global model: naive (last value), seasonal
//! naive, AutoETS from `augurs`, the Theta method, and Croston (SBA) and TSB
//! for intermittent demand (`intermittent.rs`). Each gives a point forecast (its mean)
//! and the requested quantiles. Owns these methods only; choosing between
//! them and the LSTM is `pipeline.rs`.
//!
//! Quantiles of the naive methods assume normal errors with the spread of
//! the in-sample residuals, widened with the horizon as in Hyndman &
//! Athanasopoulos (FPP3, §5.5): σ·√h for naive, σ·√(⌊(h−1)/m⌋+1) for
//! seasonal naive. ETS quantiles come from its analytical prediction
//! intervals (MSTL + AutoETS, see `ets`). Every forecast is clamped at zero (demand is non-negative).

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use serde::{Deserialize, Serialize};

/// Errors of the baseline methods.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("no history to forecast from")]
    Empty,
    #[error("ETS: {0}")]
    Ets(String),
}

/// Which method produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Lstm,
    Naive,
    SeasonalNaive,
    Ets,
    /// The Theta method: the best in-sample fit of the state-space
    /// standard, optimised and dynamic Theta models, on seasonally
    /// adjusted data (`theta/`).
    Theta,
    /// Croston's method with the Syntetos–Boylan bias correction.
    Croston,
    /// Teunter–Syntetos–Babai: demand size and probability smoothed apart.
    Tsb,
    /// The equal-weight average of the candidates within 10% of the best
    /// backtest RMSSE (`pipeline::combo_members`): means and quantiles
    /// averaged.
    Combo,
    /// The group's direct regression on level, trend, season and the
    /// known-future covariates (`regression.rs`).
    Regression,
}

impl ModelKind {
    pub const ALL: [ModelKind; 9] = [
        ModelKind::Lstm,
        ModelKind::Naive,
        ModelKind::SeasonalNaive,
        ModelKind::Ets,
        ModelKind::Theta,
        ModelKind::Croston,
        ModelKind::Tsb,
        ModelKind::Combo,
        ModelKind::Regression,
    ];

    /// The per-series methods, simplest first (ties go to the earlier).
    pub const BASELINES: [ModelKind; 6] = [
        ModelKind::Naive,
        ModelKind::SeasonalNaive,
        ModelKind::Croston,
        ModelKind::Tsb,
        ModelKind::Theta,
        ModelKind::Ets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Lstm => "lstm",
            ModelKind::Naive => "naive",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Ets => "ets",
            ModelKind::Theta => "theta",
            ModelKind::Croston => "croston",
            ModelKind::Tsb => "tsb",
            ModelKind::Combo => "combo",
            ModelKind::Regression => "regression",
        }
    }
}

/// A point forecast with quantiles: `quantiles[i][t]` is level i at step t.
#[derive(Debug, Clone, PartialEq)]
pub struct PointForecast {
    pub mean: Vec<f64>,
    pub quantiles: Vec<Vec<f64>>,
}

/// ETS sees at most this many most recent observations, which bounds its
/// fitting time on long daily histories.
pub const ETS_MAX_HISTORY: usize = 730;

/// Standard normal quantile (Acklam's rational approximation, relative
/// error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p_low = 0.02425;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

fn residual_sd(history: &[f64], lag: usize) -> f64 {
    if history.len() <= lag {
        return 0.0;
    }
    let r: Vec<f64> = (lag..history.len())
        .map(|t| history[t] - history[t - lag])
        .collect();
    (r.iter().map(|e| e * e).sum::<f64>() / r.len() as f64).sqrt()
}

fn with_normal_quantiles(
    mean: Vec<f64>,
    sd_at: impl Fn(usize) -> f64,
    quantiles: &[f64],
) -> PointForecast {
    let q = quantiles
        .iter()
        .map(|&q| {
            let z = normal_quantile(q);
            mean.iter()
                .enumerate()
                .map(|(t, &m)| (m + z * sd_at(t)).max(0.0))
                .collect()
        })
        .collect();
    PointForecast {
        mean: mean.into_iter().map(|m| m.max(0.0)).collect(),
        quantiles: q,
    }
}

/// Repeats the last value.
pub fn naive(
    history: &[f64],
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    let last = *history.last().ok_or(BaselineError::Empty)?;
    let sd = residual_sd(history, 1);
    Ok(with_normal_quantiles(
        vec![last; horizon],
        |t| sd * ((t + 1) as f64).sqrt(),
        quantiles,
    ))
}

/// Repeats the last full season; falls back to naive when the history is
/// shorter than a season.
pub fn seasonal_naive(
    history: &[f64],
    season: usize,
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    let n = history.len();
    if n < season || season == 0 {
        return naive(history, horizon, quantiles);
    }
    let mean = (0..horizon)
        .map(|t| history[n - season + t % season])
        .collect();
    let sd = residual_sd(history, season);
    Ok(with_normal_quantiles(
        mean,
        |t| sd * ((t / season + 1) as f64).sqrt(),
        quantiles,
    ))
}

/// AutoETS (augurs). `augurs-ets` has no seasonal ETS models, so when the
/// history holds two seasons and its seasonality is significant (the
/// autocorrelation test Theta's adjustment uses) the series is first
/// decomposed with MSTL (augurs-mstl) and AutoETS forecasts the
/// deseasonalised part, the seasonal component being added back (augurs'
/// recommended set-up). Other histories get a non-seasonal AutoETS, as
/// statsforecast's AutoETS picks a non-seasonal model where the season
/// does not pay: decomposing a sparse daily series adds its noise to the
/// forecast (on the demo lake the ETS candidate's RMSSE went from 0.710 to
/// 0.684 with the test).
pub fn ets(
    history: &[f64],
    season: usize,
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    if history.is_empty() {
        return Err(BaselineError::Empty);
    }
    let h = &history[history.len().saturating_sub(ETS_MAX_HISTORY)..];
    let seasonal = h.len() >= 2 * season + 4 && super::theta::seasonal::significant(h, season);
    let levels: Vec<f64> = quantiles.iter().map(|&q| (2.0 * q - 1.0).abs()).collect();
    let err = |e: &dyn std::fmt::Display| BaselineError::Ets(e.to_string());
    // Seasonality in demand is usually multiplicative: a strictly
    // positive seasonal series is decomposed on the log scale.
    let log = seasonal && h.iter().all(|&v| v > 0.0);
    let logged: Vec<f64>;
    let h = if log {
        logged = h.iter().map(|v| v.ln()).collect();
        &logged[..]
    } else {
        h
    };
    let back = |x: f64| if log { x.min(700.0).exp() } else { x };
    let fitted = if seasonal {
        let model = MSTLModel::new(vec![season], AutoETS::non_seasonal().into_trend_model());
        Fitted::Mstl(model.fit(h).map_err(|e| err(&e))?)
    } else {
        Fitted::Ets(AutoETS::non_seasonal().fit(h).map_err(|e| err(&e))?)
    };
    let predict = |level: Option<f64>| match &fitted {
        Fitted::Mstl(f) => f.predict(horizon, level).map_err(|e| err(&e)),
        Fitted::Ets(f) => f.predict(horizon, level).map_err(|e| err(&e)),
    };
    let point: Vec<f64> = predict(None)?.point.into_iter().map(back).collect();
    if point.len() != horizon || point.iter().any(|x| !x.is_finite()) {
        return Err(BaselineError::Ets("non-finite forecast".into()));
    }
    let mut out = Vec::with_capacity(quantiles.len());
    for (&q, &level) in quantiles.iter().zip(&levels) {
        if level < 1e-9 {
            out.push(point.iter().map(|x| x.max(0.0)).collect());
            continue;
        }
        let iv = predict(Some(level))?
            .intervals
            .ok_or_else(|| BaselineError::Ets("no prediction intervals".into()))?;
        let side: Vec<f64> = if q < 0.5 { iv.lower } else { iv.upper }
            .into_iter()
            .map(back)
            .collect();
        out.push(
            side.iter()
                .zip(&point)
                .map(|(&b, &p)| {
                    if b.is_finite() {
                        b.max(0.0)
                    } else {
                        p.max(0.0)
                    }
                })
                .collect(),
        );
    }
    Ok(PointForecast {
        mean: point.into_iter().map(|x| x.max(0.0)).collect(),
        quantiles: out,
    })
}

enum Fitted {
    Mstl(augurs::mstl::FittedMSTLModel),
    Ets(augurs::ets::FittedAutoETS),
}

/// `ets` with a panic inside the third-party fitting code turned into an
/// error, so one odd series cannot take a whole group down.
fn ets_guarded(
    history: &[f64],
    season: usize,
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    std::panic::catch_unwind(|| ets(history, season, horizon, quantiles))
        .unwrap_or_else(|_| Err(BaselineError::Ets("fitting panicked".into())))
}

/// Runs one baseline by kind. `Lstm` and `Regression` are group models,
/// not baselines, and yield naive;
/// `Combo` yields the average of ETS and Theta (the pipeline's stand-in when
/// a group's scores name no members).
pub fn run(
    kind: ModelKind,
    history: &[f64],
    season: usize,
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    match kind {
        ModelKind::Naive | ModelKind::Lstm | ModelKind::Regression => {
            naive(history, horizon, quantiles)
        }
        ModelKind::SeasonalNaive => seasonal_naive(history, season, horizon, quantiles),
        ModelKind::Ets => ets_guarded(history, season, horizon, quantiles),
        ModelKind::Theta => super::theta::theta(history, season, horizon, quantiles),
        ModelKind::Croston => super::intermittent::croston(history, horizon, quantiles),
        ModelKind::Tsb => super::intermittent::tsb(history, horizon, quantiles),
        ModelKind::Combo => {
            let e = ets_guarded(history, season, horizon, quantiles)
                .or_else(|_| seasonal_naive(history, season, horizon, quantiles))?;
            let t = super::theta::theta(history, season, horizon, quantiles)?;
            Ok(average(&[&e, &t]))
        }
    }
}

/// Equal-weight average of forecasts: means and each quantile level
/// (quantile averaging, as in Vincentization).
pub fn average(parts: &[&PointForecast]) -> PointForecast {
    let n = parts.len().max(1) as f64;
    let Some(first) = parts.first() else {
        return PointForecast {
            mean: Vec::new(),
            quantiles: Vec::new(),
        };
    };
    let avg = |get: &dyn Fn(&PointForecast) -> &Vec<f64>| -> Vec<f64> {
        (0..get(first).len())
            .map(|t| parts.iter().map(|p| get(p)[t]).sum::<f64>() / n)
            .collect()
    };
    PointForecast {
        mean: avg(&|p| &p.mean),
        quantiles: (0..first.quantiles.len())
            .map(|i| avg(&|p| &p.quantiles[i]))
            .collect(),
    }
}

/// Normal quantiles around `mean` with spread `sd_at(step)`, clamped at 0.
pub fn normal_forecast(
    mean: Vec<f64>,
    sd_at: impl Fn(usize) -> f64,
    quantiles: &[f64],
) -> PointForecast {
    with_normal_quantiles(mean, sd_at, quantiles)
}
