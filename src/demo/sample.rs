//! Random samplers for the demo generator: uniform, normal (Box-Muller),
//! gamma (Marsaglia-Tsang), Poisson and negative binomial (gamma-Poisson).
//!
//! Written here rather than taken from a distributions crate so that the
//! generated lake depends only on the seed and this code, never on how a
//! dependency chooses to draw its variates.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The generator's random stream: a portable, seedable xoshiro256++.
pub struct Sampler {
    rng: Xoshiro256PlusPlus,
    spare_normal: Option<f64>,
}

impl Sampler {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mixed = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(mixed),
            spare_normal: None,
        }
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1).max(1) as f64;
        lo + ((self.uniform() * span) as i64).min(hi - lo)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal via Box-Muller (the second value is kept).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// Log-normal with the given median and log-scale sigma.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Gamma(shape, scale) by Marsaglia and Tsang, with the usual boost for
    /// shape < 1.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = 1.0 - self.uniform();
            return self.gamma(shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = 1.0 - self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }

    /// Poisson(lambda): Knuth's product method for small means, a rounded
    /// normal with continuity correction for large ones (lambda >= 40, where
    /// the approximation error is far below the demand model's own noise).
    pub fn poisson(&mut self, lambda: f64) -> i64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 40.0 {
            let limit = (-lambda).exp();
            let mut k = 0;
            let mut p = self.uniform();
            while p > limit {
                k += 1;
                p *= self.uniform();
            }
            return k;
        }
        let x = lambda + lambda.sqrt() * self.normal() + 0.5;
        x.floor().max(0.0) as i64
    }

    /// Negative binomial with the given mean and dispersion `k`
    /// (variance = mean + mean^2 / k), drawn as a gamma-Poisson mixture.
    pub fn neg_binomial(&mut self, mean: f64, k: f64) -> i64 {
        if mean <= 0.0 {
            return 0;
        }
        let lambda = self.gamma(k, mean / k);
        self.poisson(lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    #[test]
    fn moments_match_textbook_values() {
        let mut s = Sampler::new(7, 0);
        let n = 100_000;
        let (m, v) = mean_var(&(0..n).map(|_| s.normal()).collect::<Vec<_>>());
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "normal {m} {v}");
        let (m, v) = mean_var(&(0..n).map(|_| s.poisson(3.5) as f64).collect::<Vec<_>>());
        assert!(
            (m - 3.5).abs() < 0.05 && (v - 3.5).abs() < 0.1,
            "poisson {m} {v}"
        );
        let (m, v) = mean_var(&(0..n).map(|_| s.poisson(120.0) as f64).collect::<Vec<_>>());
        assert!(
            (m - 120.0).abs() < 0.3 && (v - 120.0).abs() < 4.0,
            "poisson {m} {v}"
        );
        let (m, v) = mean_var(&(0..n).map(|_| s.gamma(0.5, 2.0)).collect::<Vec<_>>());
        assert!(
            (m - 1.0).abs() < 0.03 && (v - 2.0).abs() < 0.15,
            "gamma {m} {v}"
        );
        // NB(mean 2, k 0.5): variance 2 + 4 / 0.5 = 10.
        let (m, v) = mean_var(
            &(0..n)
                .map(|_| s.neg_binomial(2.0, 0.5) as f64)
                .collect::<Vec<_>>(),
        );
        assert!(
            (m - 2.0).abs() < 0.06 && (v - 10.0).abs() < 0.8,
            "nb {m} {v}"
        );
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Sampler::new(1, 2);
        let mut b = Sampler::new(1, 2);
        let mut c = Sampler::new(2, 2);
        let xa: Vec<f64> = (0..10).map(|_| a.uniform()).collect();
        let xb: Vec<f64> = (0..10).map(|_| b.uniform()).collect();
        let xc: Vec<f64> = (0..10).map(|_| c.uniform()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }
}
