//! The Theta method (Assimakopoulos & Nikolopoulos 2000) in the form of
//! Hyndman & Billah (2003), as R's `forecast::thetaf` computes it: simple
//! exponential smoothing plus half the slope of a linear trend, on
//! seasonally adjusted data. Seasonality (classical multiplicative
//! decomposition) is removed when the history holds two seasons, is
//! positive, and its autocorrelation at the seasonal lag is significant at
//! 90%; the indices are put back on the forecast. Quantiles use the SES
//! interval σ·√(1 + α²(h − 1)), clamped at zero.

use super::baselines::{BaselineError, PointForecast, normal_forecast};

/// Classical multiplicative seasonal indices (ratio to a centred moving
/// average), normalised to mean 1; `None` when not seasonal enough.
fn seasonal_indices(y: &[f64], m: usize) -> Option<Vec<f64>> {
    let n = y.len();
    if m < 2 || n < 2 * m || y.iter().any(|&v| v <= 0.0) {
        return None;
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let acf = |lag: usize| {
        let num: f64 = (lag..n).map(|t| (y[t] - mean) * (y[t - lag] - mean)).sum();
        let den: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
        if den > 0.0 { num / den } else { 0.0 }
    };
    let r: Vec<f64> = (1..=m).map(acf).collect();
    let limit =
        1.645 * ((1.0 + 2.0 * r[..m - 1].iter().map(|x| x * x).sum::<f64>()) / n as f64).sqrt();
    if r[m - 1].abs() <= limit {
        return None;
    }
    // Centred moving average of order m (2×m when m is even).
    let half = m / 2;
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for t in half..n.saturating_sub(half) {
        let cma = if m % 2 == 0 {
            if t + half >= n {
                continue;
            }
            let inner: f64 = y[t + 1 - half..t + half].iter().sum();
            (inner + 0.5 * (y[t - half] + y[t + half])) / m as f64
        } else {
            y[t - half..=t + half].iter().sum::<f64>() / m as f64
        };
        if cma > 0.0 {
            sums[t % m] += y[t] / cma;
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    let mut idx: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect();
    let avg = idx.iter().sum::<f64>() / m as f64;
    idx.iter_mut().for_each(|v| *v /= avg);
    Some(idx)
}

/// SES with the smoothing constant that minimises the in-sample squared
/// one-step error (grid over 0.01..0.99); returns (α, level, residual σ).
fn ses(y: &[f64]) -> (f64, f64, f64) {
    let fit = |alpha: f64| {
        let mut level = y[0];
        let mut sse = 0.0;
        for &v in &y[1..] {
            sse += (v - level).powi(2);
            level += alpha * (v - level);
        }
        (sse, level)
    };
    let mut best = (f64::INFINITY, 0.5, y[0]);
    for k in 1..100 {
        let a = k as f64 / 100.0;
        let (sse, level) = fit(a);
        if sse < best.0 {
            best = (sse, a, level);
        }
    }
    let sd = (best.0 / (y.len() - 1).max(1) as f64).sqrt();
    (best.1, best.2, sd)
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
    if n < 3 {
        return super::baselines::naive(history, horizon, quantiles);
    }
    let idx = seasonal_indices(history, season);
    let adj: Vec<f64> = match &idx {
        Some(s) => history
            .iter()
            .enumerate()
            .map(|(t, v)| v / s[t % season])
            .collect(),
        None => history.to_vec(),
    };
    // Slope of the least-squares line through the adjusted series.
    let tm = (n as f64 - 1.0) / 2.0;
    let ym = adj.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in adj.iter().enumerate() {
        sxy += (t as f64 - tm) * (v - ym);
        sxx += (t as f64 - tm).powi(2);
    }
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let (alpha, level, sd) = ses(&adj);
    let drift = 0.5 * b * (1.0 - (1.0 - alpha).powi(n as i32)) / alpha;
    let mean = (0..horizon)
        .map(|k| {
            let f = level + drift + 0.5 * b * k as f64;
            match &idx {
                Some(s) => f * s[(n + k) % season],
                None => f,
            }
        })
        .collect();
    let scale = |k: usize| match &idx {
        Some(s) => s[(n + k) % season],
        None => 1.0,
    };
    Ok(normal_forecast(
        mean,
        |k| sd * scale(k) * (1.0 + alpha * alpha * k as f64).sqrt(),
        quantiles,
    ))
}
