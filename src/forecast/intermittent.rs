//! Methods for intermittent demand (many periods without a sale): Croston's
//! method with the Syntetos–Boylan (SBA) bias correction, and TSB
//! (Teunter, Syntetos & Babai 2011), which smooths the probability of a
//! sale every period and so reacts when an item stops selling. Both give a
//! flat forecast of the mean demand per period; quantiles assume normal
//! one-step errors with the in-sample spread, widened as for SES, and are
//! clamped at zero. Smoothing constants are fixed at 0.1 (as in
//! statsforecast's `CrostonSBA` and the literature's usual range).

use super::baselines::{BaselineError, PointForecast, normal_forecast};

/// Smoothing constant for demand size, interval and probability.
pub const ALPHA: f64 = 0.1;

fn spread(history: &[f64], fitted: &[f64]) -> f64 {
    let n = fitted.len().max(1) as f64;
    let sse: f64 = history
        .iter()
        .zip(fitted)
        .map(|(y, f)| (y - f).powi(2))
        .sum();
    (sse / n).sqrt()
}

fn finish(
    history: &[f64],
    fitted: &[f64],
    level: f64,
    horizon: usize,
    quantiles: &[f64],
) -> PointForecast {
    let sd = spread(history, fitted);
    normal_forecast(
        vec![level.max(0.0); horizon],
        |t| sd * (1.0 + ALPHA * ALPHA * t as f64).sqrt(),
        quantiles,
    )
}

/// Croston (SBA): smoothed non-zero demand size over smoothed interval,
/// times (1 − α/2). All-zero histories forecast zero.
pub fn croston(
    history: &[f64],
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    if history.is_empty() {
        return Err(BaselineError::Empty);
    }
    let Some(first) = history.iter().position(|&y| y > 0.0) else {
        return Ok(finish(history, history, 0.0, horizon, quantiles));
    };
    let (mut z, mut p, mut q) = (history[first], (first + 1) as f64, 0.0);
    let correction = 1.0 - ALPHA / 2.0;
    let mut fitted = Vec::with_capacity(history.len());
    for (t, &y) in history.iter().enumerate() {
        fitted.push(if t <= first { y } else { correction * z / p });
        if t <= first {
            continue;
        }
        q += 1.0;
        if y > 0.0 {
            z += ALPHA * (y - z);
            p += ALPHA * (q - p);
            q = 0.0;
        }
    }
    Ok(finish(
        history,
        &fitted,
        correction * z / p,
        horizon,
        quantiles,
    ))
}

/// TSB: demand probability smoothed every period, size on sales only;
/// forecast = probability × size.
pub fn tsb(
    history: &[f64],
    horizon: usize,
    quantiles: &[f64],
) -> Result<PointForecast, BaselineError> {
    if history.is_empty() {
        return Err(BaselineError::Empty);
    }
    let sales: Vec<f64> = history.iter().copied().filter(|&y| y > 0.0).collect();
    if sales.is_empty() {
        return Ok(finish(history, history, 0.0, horizon, quantiles));
    }
    let mut z = sales.iter().sum::<f64>() / sales.len() as f64;
    let mut p = sales.len() as f64 / history.len() as f64;
    let mut fitted = Vec::with_capacity(history.len());
    for &y in history {
        fitted.push(p * z);
        if y > 0.0 {
            p += ALPHA * (1.0 - p);
            z += ALPHA * (y - z);
        } else {
            p -= ALPHA * p;
        }
    }
    Ok(finish(history, &fitted, p * z, horizon, quantiles))
}
