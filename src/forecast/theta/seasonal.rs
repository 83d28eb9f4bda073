//! The seasonal adjustment the Theta models work on, as statsforecast's
//! `AutoTheta` makes it: classical decomposition (against a centred moving
//! average), applied only when the history holds two seasons and its
//! autocorrelation at the seasonal lag is significant at 90% (the test R's
//! `thetaf` uses too). Multiplicative for a positive series; additive when
//! the series has a zero or a negative value, or when a multiplicative index
//! would fall below 0.01. Owns the adjustment; the models are `model.rs`.

/// How a series is seasonally adjusted: nothing, divided by indices of
/// mean 1, or less offsets of mean 0, one per position in the season.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Adjustment {
    None,
    Multiplicative(Vec<f64>),
    Additive(Vec<f64>),
}

impl Adjustment {
    /// The adjusted value of observation `t`.
    pub fn remove(&self, t: usize, v: f64) -> f64 {
        match self {
            Adjustment::None => v,
            Adjustment::Multiplicative(s) => v / s[t % s.len()],
            Adjustment::Additive(s) => v - s[t % s.len()],
        }
    }

    /// An adjusted forecast for time `t` on the series' own scale.
    pub fn restore(&self, t: usize, v: f64) -> f64 {
        match self {
            Adjustment::None => v,
            Adjustment::Multiplicative(s) => v * s[t % s.len()],
            Adjustment::Additive(s) => v + s[t % s.len()],
        }
    }

    /// What an adjusted spread at time `t` is multiplied by.
    pub fn scale(&self, t: usize) -> f64 {
        match self {
            Adjustment::Multiplicative(s) => s[t % s.len()],
            Adjustment::None | Adjustment::Additive(_) => 1.0,
        }
    }
}

/// Whether the autocorrelation at lag `m` is significant at 90% (Bartlett's
/// standard error from the lags below it).
fn is_seasonal(y: &[f64], m: usize) -> bool {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let den: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if den <= 0.0 {
        return false;
    }
    let acf = |lag: usize| {
        let num: f64 = (lag..n).map(|t| (y[t] - mean) * (y[t - lag] - mean)).sum();
        num / den
    };
    let r: Vec<f64> = (1..=m).map(acf).collect();
    let limit =
        1.645 * ((1.0 + 2.0 * r[..m - 1].iter().map(|x| x * x).sum::<f64>()) / n as f64).sqrt();
    r[m - 1].abs() > limit
}

/// Centred moving average of order m (2×m when m is even) at `t`, where
/// the window fits.
fn centred_average(y: &[f64], m: usize, t: usize) -> Option<f64> {
    let half = m / 2;
    if t < half || t + half >= y.len() {
        return None;
    }
    Some(if m % 2 == 0 {
        let inner: f64 = y[t + 1 - half..t + half].iter().sum();
        (inner + 0.5 * (y[t - half] + y[t + half])) / m as f64
    } else {
        y[t - half..=t + half].iter().sum::<f64>() / m as f64
    })
}

/// Mean per position in the season of `detrend(y, trend)` where the trend
/// is defined; `None` when a position has none.
fn phase_means(y: &[f64], m: usize, detrend: impl Fn(f64, f64) -> f64) -> Option<Vec<f64>> {
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for (t, &v) in y.iter().enumerate() {
        if let Some(trend) = centred_average(y, m, t) {
            sums[t % m] += detrend(v, trend);
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    Some(
        sums.iter()
            .zip(&counts)
            .map(|(s, &c)| s / c as f64)
            .collect(),
    )
}

/// Whether a history with season `m` holds two seasons and a significant
/// autocorrelation at the seasonal lag: the test the adjustment applies,
/// and the ETS baseline too before it deseasonalises.
pub(crate) fn significant(y: &[f64], m: usize) -> bool {
    m >= 2 && y.len() >= 2 * m && is_seasonal(y, m)
}

/// The adjustment for a history with season `m`.
pub(super) fn adjustment(y: &[f64], m: usize) -> Adjustment {
    if !significant(y, m) {
        return Adjustment::None;
    }
    if y.iter().all(|&v| v > 0.0) {
        if let Some(mut idx) = phase_means(y, m, |v, trend| v / trend) {
            let avg = idx.iter().sum::<f64>() / m as f64;
            idx.iter_mut().for_each(|v| *v /= avg);
            if idx.iter().all(|&v| v >= 0.01) {
                return Adjustment::Multiplicative(idx);
            }
        }
    }
    match phase_means(y, m, |v, trend| v - trend) {
        Some(mut off) => {
            let avg = off.iter().sum::<f64>() / m as f64;
            off.iter_mut().for_each(|v| *v -= avg);
            Adjustment::Additive(off)
        }
        None => Adjustment::None,
    }
}
