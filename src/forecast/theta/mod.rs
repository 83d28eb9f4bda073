//! The Theta method as the family of state-space models of Fiorucci et al.
//! (2016), fitted and chosen the way statsforecast's `AutoTheta` does it:
//! the standard and optimised Theta models and their dynamic variants
//! (STM, OTM, DSTM, DOTM, `model.rs`) are each fitted by Nelder–Mead
//! (`nelder_mead.rs`) on the in-sample one-step squared error, and the one
//! with the smallest error forecasts. They see seasonally adjusted data
//! (classical multiplicative decomposition when the seasonal
//! autocorrelation is significant, `seasonal.rs`); the indices are put
//! back on the forecast (additive offsets instead when the series is not
//! positive).
//!
//! Quantiles are normal around the mean with the spread of the in-sample
//! one-step errors (from the fourth on, as statsforecast's `sigma`),
//! widened as the SES interval σ·√(1 + α²(h − 1)) and scaled by the
//! multiplicative seasonal index, clamped at zero. Histories of three observations or
//! fewer get the naive forecast.

mod model;
mod nelder_mead;
pub(crate) mod seasonal;

use super::baselines::{BaselineError, PointForecast, naive, normal_forecast};

/// Sample standard deviation (n − 1); 0 for fewer than two values.
fn sample_sd(e: &[f64]) -> f64 {
    if e.len() < 2 {
        return 0.0;
    }
    let n = e.len() as f64;
    let mean = e.iter().sum::<f64>() / n;
    (e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Theta forecast of `horizon` steps.
pub fn theta(
    history: &[f64],
    season: usize,
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    let n = history.len();
    if n == 0 {
        return Err(BaselineError::Empty);
    }
    if n <= 3 {
        return naive(history, horizon, quantiles);
    }
    let seasonal = seasonal::adjustment(history, season);
    let adj: Vec<f64> = history
        .iter()
        .enumerate()
        .map(|(t, &v)| seasonal.remove(t, v))
        .collect();
    let fit = model::auto(&adj, horizon).filter(|f| f.mean.iter().all(|v| v.is_finite()));
    let Some(fit) = fit else {
        return naive(history, horizon, quantiles);
    };
    let tail = fit.errors.get(3..).filter(|e| e.len() >= 2);
    let sd = sample_sd(tail.unwrap_or(&fit.errors));
    let alpha = fit.params.alpha;
    let mean = fit
        .mean
        .iter()
        .enumerate()
        .map(|(k, &f)| seasonal.restore(n + k, f))
        .collect();
    Ok(normal_forecast(
        mean,
        |k| sd * seasonal.scale(n + k) * (1.0 + alpha * alpha * k as f64).sqrt(),
        quantiles,
    ))
}

#[cfg(test)]
mod tests;
