//! The seasonal adjustment the Theta models work on: classical
//! multiplicative decomposition (ratio to a centred moving average), applied
//! only when the history holds two seasons, is positive, and its
//! autocorrelation at the seasonal lag is significant at 90% (the test R's
//! `thetaf` and statsforecast's `AutoTheta` use). Owns the indices;
//! dividing them out and putting them back is `mod.rs`.

/// Classical multiplicative seasonal indices (ratio to a centred moving
/// average), normalised to mean 1; `None` when not seasonal enough.
pub(super) fn seasonal_indices(y: &[f64], m: usize) -> Option<Vec<f64>> {
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
