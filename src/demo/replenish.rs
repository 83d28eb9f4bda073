//! The demo simulator's replenishment rule, on its own so that the policy
//! backtest can replay it as a reference next to restock's own policy.
//!
//! A periodic-review order-up-to rule: every `review_period_days` (offset
//! by the series' index so that not every series orders on the same day)
//! the position (on hand plus on order) is topped up to
//! `S = f·(L + R) + z·σ(f)·√(L + R)`, where `f` is an exponentially
//! smoothed daily demand rate and `σ(f) = √(f + f²/k)` the daily standard
//! deviation of negative binomial demand with dispersion `k`. Orders are
//! whole cases and at least the MOQ. The simulator smooths the true
//! demand level it drew the demand from; the backtest, which does not know
//! it, smooths the sales it observes. Lead times are drawn by the caller.

/// Weight of today's observation in the smoothed demand rate.
pub const SMOOTHING: f64 = 0.05;

/// z for a one-sided service level (Abramowitz & Stegun 26.2.23,
/// absolute error below 4.5e-4).
pub fn z_for(service_level: f64) -> f64 {
    let p = service_level.clamp(0.5, 0.9999);
    let t = (-2.0 * (1.0 - p).ln()).sqrt();
    t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
        / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
}

/// The replenishment settings of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimRule {
    pub lead_time_days: f64,
    pub review_period_days: i64,
    pub service_level: f64,
    /// Negative binomial dispersion `k` of daily demand.
    pub dispersion: f64,
    pub case_pack: i64,
    pub moq: i64,
}

impl SimRule {
    /// The next smoothed demand rate after observing `observed`.
    pub fn smooth(forecast: f64, observed: f64) -> f64 {
        (1.0 - SMOOTHING) * forecast + SMOOTHING * observed
    }

    /// Daily standard deviation of demand at rate `f`.
    pub fn sigma(&self, f: f64) -> f64 {
        (f + f * f / self.dispersion).sqrt()
    }

    /// The order-up-to level `S` for demand rate `f`.
    pub fn target(&self, f: f64) -> f64 {
        let cover = self.lead_time_days + self.review_period_days as f64;
        f * cover + z_for(self.service_level) * self.sigma(f) * cover.sqrt()
    }

    /// Whether day `t` is a review day of the series with index `series`.
    pub fn is_review_day(&self, t: i64, series: usize) -> bool {
        (t + series as i64).rem_euclid(self.review_period_days.max(1)) == 0
    }

    /// Units to order on a review day at demand rate `f` and inventory
    /// position `position`: 0 when the position reaches the target,
    /// otherwise the gap in whole cases, at least the MOQ.
    pub fn order_qty(&self, f: f64, position: i64) -> i64 {
        let gap = self.target(f) - position as f64;
        if gap <= 0.0 {
            return 0;
        }
        let pack = self.case_pack.max(1);
        let cases = (gap / pack as f64).ceil() as i64;
        (cases * pack).max(self.moq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_matches_normal_table() {
        assert!((z_for(0.95) - 1.6449).abs() < 1e-3);
        assert!((z_for(0.99) - 2.3263).abs() < 1e-3);
        assert!((z_for(0.90) - 1.2816).abs() < 1e-3);
    }

    #[test]
    fn orders_whole_cases_up_to_the_target() {
        let rule = SimRule {
            lead_time_days: 3.0,
            review_period_days: 7,
            service_level: 0.5,
            dispersion: 1e12,
            case_pack: 6,
            moq: 0,
        };
        // z(0.5) ≈ 0 (the approximation's error is below 4.5e-4), so
        // S ≈ 2·10 = 20; position 5 needs 15, which is 3 cases of 6 = 18.
        assert!((rule.target(2.0) - 20.0).abs() < 0.01);
        assert_eq!(rule.order_qty(2.0, 5), 18);
        assert_eq!(rule.order_qty(2.0, 25), 0);
        let moq = SimRule { moq: 30, ..rule };
        assert_eq!(moq.order_qty(2.0, 5), 30);
        // Series 2 reviews on days 5, 12, …
        assert!(rule.is_review_day(5, 2) && rule.is_review_day(12, 2));
        assert!(!rule.is_review_day(6, 2));
    }
}
