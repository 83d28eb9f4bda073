//! Synthetic demand shaped like the M5 (Walmart) data: categories as
//! groups, departments as the static feature, (store, item) keys, a weekly
//! profile, a mild annual cycle, promotions with a price cut and a lift,
//! and Poisson counts (so many low sellers are intermittent). Used by the
//! benchmark and the tests; known structure lets them check that the
//! model finds it.

use chrono::NaiveDate;

use super::rng::SplitMix64;
use super::series::{FutureCovariates, Series};

/// Shape of a synthetic data set.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    pub series: usize,
    /// Observed days per series.
    pub days: usize,
    /// Planned (future-known) promotion and price days after the history.
    pub future_days: usize,
    pub groups: usize,
    pub seed: u64,
    /// Median daily demand of a series (levels are log-normal around it).
    pub median_level: f64,
    /// Share of days on promotion.
    pub promo_rate: f64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            series: 300,
            days: 400,
            future_days: 28,
            groups: 3,
            seed: 11,
            median_level: 3.0,
            promo_rate: 0.1,
        }
    }
}

/// Poisson sample (Knuth for small means, rounded normal above 30).
pub fn poisson(rng: &mut SplitMix64, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * rng.normal()).round().max(0.0);
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0.0, 1.0);
    loop {
        p *= rng.next_f64();
        if p <= l {
            return k;
        }
        k += 1.0;
    }
}

/// Generates the data set, together with the expected demand (the Poisson
/// means) over the observed days, per series.
pub fn generate(spec: &SyntheticSpec) -> (Vec<Series>, Vec<Vec<f64>>) {
    const CATEGORIES: [&str; 3] = ["FOODS", "HOUSEHOLD", "HOBBIES"];
    let mut rng = SplitMix64::new(spec.seed);
    let start = NaiveDate::from_ymd_opt(2023, 1, 2).unwrap_or_default();
    let total = spec.days + spec.future_days;
    let dates: Vec<NaiveDate> = start.iter_days().take(spec.days).collect();
    let mut out = Vec::with_capacity(spec.series);
    let mut expected = Vec::with_capacity(spec.series);
    for i in 0..spec.series {
        let g = i % spec.groups.max(1);
        let group = match CATEGORIES.get(g) {
            Some(c) => (*c).to_string(),
            None => format!("CAT_{g}"),
        };
        let dept = i / spec.groups.max(1) % 3;
        let level = spec.median_level * (0.8 * rng.normal()).exp();
        let weekend = 1.2 + 0.5 * rng.next_f64();
        let profile: Vec<f64> = (0..7)
            .map(|d| match d {
                5 | 6 => weekend,
                4 => 1.1,
                _ => 0.85 + 0.1 * rng.next_f64(),
            })
            .collect();
        let lift = 1.5 + rng.next_f64();
        let base_price = 1.0 + 9.0 * rng.next_f64();
        let phase = rng.next_f64() * std::f64::consts::TAU;
        let mut values = Vec::with_capacity(spec.days);
        let mut mean = Vec::with_capacity(spec.days);
        let mut price = Vec::with_capacity(total);
        let mut promo = Vec::with_capacity(total);
        for t in 0..total {
            let on = rng.next_f64() < spec.promo_rate;
            promo.push(on);
            price.push(if on { base_price * 0.8 } else { base_price });
            let annual = 1.0 + 0.15 * (std::f64::consts::TAU * t as f64 / 365.25 + phase).sin();
            let lambda = level * profile[t % 7] * annual * if on { lift } else { 1.0 };
            let y = poisson(&mut rng, lambda);
            if t < spec.days {
                values.push(y);
                mean.push(lambda);
            }
        }
        let future = FutureCovariates {
            price: Some(price[spec.days..].to_vec()),
            on_promo: Some(promo[spec.days..].to_vec()),
            filled: 0,
        };
        price.truncate(spec.days);
        promo.truncate(spec.days);
        out.push(Series {
            events: None,
            covariates: Vec::new(),
            key: vec![
                format!("STORE_{}", i % 10),
                format!("{group}_{dept}_{i:05}"),
            ],
            group,
            static_feature: Some(format!("dept_{dept}")),
            dates: dates.clone(),
            values,
            price: Some(price),
            on_promo: Some(promo),
            future: (spec.future_days > 0).then_some(future),
        });
        expected.push(mean);
    }
    (out, expected)
}
