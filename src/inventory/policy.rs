//! Replenishment policies: from a demand forecast and a stock position to
//! an order recommendation.
//!
//! **Demand over the protection interval.** Per-step quantiles must not be
//! added (the sum of daily p90s is far above the p90 of the sum). Each step
//! is treated as normal with its forecast mean and a standard deviation
//! recovered from its outer quantiles, `σt = (q_hi − q_lo) / (z_hi − z_lo)`;
//! steps are assumed independent, so the interval's demand is normal with
//! mean `Σ μt` and variance `Σ σt²`. A fractional last day counts
//! proportionally. Positive autocorrelation of errors would widen the
//! interval; the backtest coverage in `forecast_metrics` shows whether the
//! bands are honest.
//!
//! **Safety stock with lead-time variability.** For a protection interval
//! of `P` days with daily demand mean `d` and standard deviation `σd`, and a
//! lead-time standard deviation `σL`: `SS = z · √(P·σd² + d²·σL²)`, with
//! `z = Φ⁻¹(service level)` (cycle service level).

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::normal;

/// One forecast step (one day for daily data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub mean: f64,
    /// Lower and upper quantile values and their levels (e.g. p10, p90).
    pub lo: f64,
    pub hi: f64,
    pub lo_level: f64,
    pub hi_level: f64,
}

impl Step {
    pub fn sd(&self) -> f64 {
        let span = normal::inv_cdf(self.hi_level) - normal::inv_cdf(self.lo_level);
        if span <= 0.0 || !span.is_finite() {
            return 0.0;
        }
        ((self.hi - self.lo) / span).max(0.0)
    }
}

/// Convert forecast steps of any frequency into daily steps. Each step
/// covers the days since the step before it (the first since `as_of`):
/// a weekly step becomes seven days, each with a seventh of the mean and
/// a seventh of the variance, so demand over a protection interval in days
/// comes out the same whatever the forecast's period. A step without a
/// date counts as one day. Dates must move forward (see
/// [`super::hold::check`], which holds the line otherwise); a step that does
/// not is taken as one day here.
pub fn daily_steps(as_of: NaiveDate, steps: &[(Option<NaiveDate>, Step)]) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    let mut prev = as_of;
    for (date, s) in steps {
        let days = match date {
            Some(d) if *d > prev => (*d - prev).num_days(),
            _ => 1,
        };
        if let Some(d) = date {
            prev = prev.max(*d);
        }
        if days == 1 {
            out.push(*s);
            continue;
        }
        let k = days as f64;
        let mean = s.mean / k;
        let shrink = k.sqrt();
        let daily = Step {
            mean,
            lo: mean - (s.mean - s.lo) / shrink,
            hi: mean + (s.hi - s.mean) / shrink,
            lo_level: s.lo_level,
            hi_level: s.hi_level,
        };
        out.extend(std::iter::repeat_n(daily, days as usize));
    }
    out
}

/// A normal demand distribution over some interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    pub mean: f64,
    pub sd: f64,
}

/// Demand over the next `days` (fractional allowed) forecast steps. Steps
/// past the end of the forecast repeat its average step.
pub fn interval_demand(steps: &[Step], days: f64) -> Demand {
    if steps.is_empty() || days <= 0.0 {
        return Demand { mean: 0.0, sd: 0.0 };
    }
    let avg_mean = steps.iter().map(|s| s.mean).sum::<f64>() / steps.len() as f64;
    let avg_var = steps.iter().map(|s| s.sd().powi(2)).sum::<f64>() / steps.len() as f64;
    let (mut mean, mut var) = (0.0, 0.0);
    let mut left = days;
    let mut i = 0;
    while left > 1e-12 {
        let w = left.min(1.0);
        let (m, v) = match steps.get(i) {
            Some(s) => (s.mean, s.sd().powi(2)),
            None => (avg_mean, avg_var),
        };
        mean += w * m;
        var += w * v;
        left -= w;
        i += 1;
    }
    Demand {
        mean,
        sd: var.sqrt(),
    }
}

/// Economic order quantity: `√(2Kλ/h)` for fixed order cost `K`, demand
/// rate `λ` and holding cost `h` per unit and the same time unit.
pub fn eoq(order_cost: f64, holding_cost: f64, demand_rate: f64) -> f64 {
    if holding_cost <= 0.0 || demand_rate <= 0.0 || order_cost <= 0.0 {
        return 0.0;
    }
    (2.0 * order_cost * demand_rate / holding_cost).sqrt()
}

/// Newsvendor order-up-to level for normal demand with unit overage cost
/// `h` and underage cost `p`: `μ + σ·Φ⁻¹(p / (p + h))`.
pub fn newsvendor(h: f64, p: f64, mean: f64, sd: f64) -> f64 {
    mean + sd * normal::inv_cdf(p / (p + h))
}

/// `z · √(P·σd² + d²·σL²)`.
pub fn safety_stock(
    z: f64,
    period_days: f64,
    daily_sd: f64,
    daily_mean: f64,
    lead_time_sd: f64,
) -> f64 {
    (z * (period_days * daily_sd.powi(2) + daily_mean.powi(2) * lead_time_sd.powi(2)).sqrt())
        .max(0.0)
}

/// The replenishment policy of a DAG's `reorder` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Periodic review, order up to S every review: `(R, S)`.
    #[default]
    PeriodicOrderUpTo,
    /// Periodic review, order up to S only when at or below s: `(R, s, S)`
    /// with `S = s + EOQ`.
    PeriodicMinMax,
    /// Continuous review, order multiples of Q = EOQ when at or below s:
    /// `(s, Q)`.
    ContinuousEoq,
}

/// Item master data for one SKU (at one store).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub unit_cost: f64,
    pub case_pack: i64,
    pub moq: i64,
    pub lead_time_days: f64,
    pub lead_time_sd_days: f64,
    pub review_period_days: f64,
    pub service_level: f64,
    /// Holding cost per unit and year as a fraction of unit cost.
    pub holding_rate: f64,
    /// Fixed cost per order.
    pub order_cost: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub as_of: NaiveDate,
    pub on_hand: f64,
    pub on_order: f64,
}

impl Position {
    /// On hand plus on order; negative on hand (backorders) reduces it.
    pub fn inventory_position(&self) -> f64 {
        self.on_hand + self.on_order
    }
}

/// One line of a reorder plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanLine {
    pub protection_days: f64,
    pub demand_mean: f64,
    pub demand_sd: f64,
    pub safety_stock: f64,
    pub reorder_point: f64,
    pub order_up_to: f64,
    pub inventory_position: f64,
    pub eoq: Option<f64>,
    /// Units the policy asks for before rounding (0 when no order).
    pub need: f64,
    /// Rounded up to the case pack, at least the MOQ; 0 when no order.
    pub order_qty: i64,
    pub order_value: f64,
    /// Last day to order before the position falls below the reorder point.
    pub order_by: Option<NaiveDate>,
    /// First day on-hand stock runs out if nothing is ordered (on-order
    /// stock arrives after the lead time).
    pub projected_stockout: Option<NaiveDate>,
    pub days_of_cover: Option<f64>,
    pub daily_demand: f64,
}

/// Round a positive need up to whole cases and at least the MOQ.
pub fn round_order(need: f64, case_pack: i64, moq: i64) -> i64 {
    if need <= 0.0 {
        return 0;
    }
    let pack = case_pack.max(1);
    let units = (need.ceil() as i64).max(moq.max(0));
    (units + pack - 1) / pack * pack
}

/// Compute one plan line.
pub fn plan(policy: Policy, item: &Item, pos: &Position, steps: &[Step]) -> PlanLine {
    let review = match policy {
        Policy::ContinuousEoq => 0.0,
        _ => item.review_period_days.max(0.0),
    };
    let protection = item.lead_time_days.max(0.0) + review;
    let demand = interval_demand(steps, protection);
    let daily_mean = if protection > 0.0 {
        demand.mean / protection
    } else {
        0.0
    };
    let daily_sd = if protection > 0.0 {
        demand.sd / protection.sqrt()
    } else {
        0.0
    };
    let z = normal::inv_cdf(item.service_level.clamp(0.5, 0.9999));
    let ss = safety_stock(z, protection, daily_sd, daily_mean, item.lead_time_sd_days);
    let rop = demand.mean + ss;
    let horizon_daily = if steps.is_empty() {
        0.0
    } else {
        steps.iter().map(|s| s.mean).sum::<f64>() / steps.len() as f64
    };
    let annual = horizon_daily * 365.0;
    let q_eoq = eoq(item.order_cost, item.unit_cost * item.holding_rate, annual);
    let ip = pos.inventory_position();
    let (order_up_to, need, eoq_out) = match policy {
        Policy::PeriodicOrderUpTo => (rop, if ip < rop { rop - ip } else { 0.0 }, None),
        Policy::PeriodicMinMax => {
            let s_big = rop + q_eoq;
            (s_big, if ip <= rop { s_big - ip } else { 0.0 }, Some(q_eoq))
        }
        Policy::ContinuousEoq => {
            let q = q_eoq.max(1.0);
            let need = if ip <= rop {
                ((rop - ip) / q).floor().max(0.0) * q + q
            } else {
                0.0
            };
            (rop + q, need, Some(q_eoq))
        }
    };
    let qty = round_order(need, item.case_pack, item.moq);
    let order_by = if ip <= rop {
        Some(pos.as_of)
    } else if horizon_daily > 0.0 {
        let days = ((ip - rop) / horizon_daily).floor();
        Some(pos.as_of + Duration::days(days.min(3650.0) as i64))
    } else {
        None
    };
    PlanLine {
        protection_days: protection,
        demand_mean: demand.mean,
        demand_sd: demand.sd,
        safety_stock: ss,
        reorder_point: rop,
        order_up_to,
        inventory_position: ip,
        eoq: eoq_out,
        need,
        order_qty: qty,
        order_value: qty as f64 * item.unit_cost,
        order_by,
        projected_stockout: projected_stockout(pos, item.lead_time_days, steps, horizon_daily),
        days_of_cover: (horizon_daily > 0.0).then(|| pos.on_hand.max(0.0) / horizon_daily),
        daily_demand: horizon_daily,
    }
}

/// First day the forecast mean exhausts on-hand stock, extrapolating past
/// the horizon with the average daily demand for up to a year. Stock on
/// order was ordered at some point within the last lead time, so it is
/// expected after half the lead time (the snapshot carries no due dates);
/// assuming the whole lead time would project a stockout for nearly every
/// series that is waiting for a delivery.
fn projected_stockout(
    pos: &Position,
    lead_time: f64,
    steps: &[Step],
    daily: f64,
) -> Option<NaiveDate> {
    let mut stock = pos.on_hand;
    if stock <= 0.0 {
        return Some(pos.as_of);
    }
    let arrival = (lead_time / 2.0).ceil().max(1.0) as usize;
    for day in 1..=366usize {
        if day == arrival {
            stock += pos.on_order;
        }
        let d = steps.get(day - 1).map_or(daily, |s| s.mean);
        stock -= d;
        if stock < 0.0 {
            return Some(pos.as_of + Duration::days(day as i64));
        }
        if day > steps.len() && daily <= 0.0 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eoq_textbook() {
        // K = 8, h = 0.225, λ = 1300 → Q ≈ 304.05.
        let q = eoq(8.0, 0.225, 1300.0);
        assert!((q - 304.05).abs() < 0.01, "{q}");
    }

    #[test]
    fn newsvendor_textbook() {
        // h = 0.18, p = 0.70, demand N(50, 8) → S ≈ 56.60.
        let s = newsvendor(0.18, 0.70, 50.0, 8.0);
        assert!((s - 56.60).abs() < 0.01, "{s}");
    }

    #[test]
    fn safety_stock_with_lead_time_variance() {
        // σ = √(L·σd² + d²·σL²) with L = 4, σd = 10, d = 50, σL = 1:
        // √(400 + 2500) = 53.85; at z = 1.645 → 88.58.
        let ss = safety_stock(1.645, 4.0, 10.0, 50.0, 1.0);
        assert!((ss - 1.645 * 2900f64.sqrt()).abs() < 1e-9);
        assert!((ss - 88.585).abs() < 0.01, "{ss}");
        // Without lead-time variance it reduces to z·σd·√L.
        assert!((safety_stock(2.0, 9.0, 3.0, 50.0, 0.0) - 18.0).abs() < 1e-9);
    }

    fn step(mean: f64, sd: f64) -> Step {
        let z = normal::inv_cdf(0.9);
        Step {
            mean,
            lo: mean - z * sd,
            hi: mean + z * sd,
            lo_level: 0.1,
            hi_level: 0.9,
        }
    }

    #[test]
    fn weekly_steps_become_days_with_the_same_weekly_demand() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let week =
            |k: i64, mean: f64, sd: f64| (Some(as_of + Duration::days(7 * k)), step(mean, sd));
        // Two weekly steps of 70 (sd 7): 14 daily steps of 10 (sd 7/√7).
        let days = daily_steps(as_of, &[week(1, 70.0, 7.0), week(2, 70.0, 7.0)]);
        assert_eq!(days.len(), 14);
        let d = interval_demand(&days, 14.0);
        assert!((d.mean - 140.0).abs() < 1e-9, "{d:?}");
        assert!((d.sd - (2.0f64 * 49.0).sqrt()).abs() < 1e-9, "{d:?}");
        // A 14-day interval read as 14 weekly steps would have been 7x.
        let wrong = interval_demand(&[step(70.0, 7.0); 2], 14.0);
        assert!((wrong.mean / d.mean - 7.0).abs() < 1e-9);
        // Daily steps pass through unchanged.
        let daily = [(Some(as_of + Duration::days(1)), step(3.0, 1.0))];
        assert_eq!(daily_steps(as_of, &daily), vec![step(3.0, 1.0)]);
    }

    #[test]
    fn interval_demand_adds_variances_not_quantiles() {
        let steps = vec![step(10.0, 3.0); 28];
        let d = interval_demand(&steps, 4.0);
        assert!((d.mean - 40.0).abs() < 1e-9);
        assert!((d.sd - 6.0).abs() < 1e-9, "{}", d.sd); // √4 · 3
        // The p90 of the sum is far below the sum of p90s.
        let p90_sum = d.mean + normal::inv_cdf(0.9) * d.sd;
        let sum_p90: f64 = steps[..4].iter().map(|s| s.hi).sum();
        assert!(p90_sum < sum_p90);
        // Fractional days count proportionally.
        let half = interval_demand(&steps, 2.5);
        assert!((half.mean - 25.0).abs() < 1e-9);
        assert!((half.sd - (2.5f64 * 9.0).sqrt()).abs() < 1e-9);
        // Beyond the horizon the average step repeats.
        assert!((interval_demand(&steps, 30.0).mean - 300.0).abs() < 1e-9);
    }

    #[test]
    fn rounding_to_case_pack_and_moq() {
        assert_eq!(round_order(0.0, 12, 24), 0);
        assert_eq!(round_order(-3.0, 12, 24), 0);
        assert_eq!(round_order(1.2, 12, 0), 12);
        assert_eq!(round_order(13.0, 12, 0), 24);
        assert_eq!(round_order(5.0, 12, 30), 36);
        assert_eq!(round_order(5.0, 1, 30), 30);
        assert_eq!(round_order(5.0, 0, 0), 5);
    }

    fn item() -> Item {
        Item {
            unit_cost: 2.5,
            case_pack: 6,
            moq: 12,
            lead_time_days: 4.0,
            lead_time_sd_days: 1.0,
            review_period_days: 7.0,
            service_level: 0.95,
            holding_rate: 0.25,
            order_cost: 20.0,
        }
    }

    #[test]
    fn periodic_order_up_to() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let steps = vec![step(10.0, 3.0); 28];
        let low = Position {
            as_of,
            on_hand: 30.0,
            on_order: 0.0,
        };
        let line = plan(Policy::PeriodicOrderUpTo, &item(), &low, &steps);
        assert!((line.protection_days - 11.0).abs() < 1e-9);
        assert!((line.demand_mean - 110.0).abs() < 1e-9);
        let z = normal::inv_cdf(0.95);
        let want_ss = z * (11.0 * 9.0 + 100.0 * 1.0f64).sqrt();
        assert!((line.safety_stock - want_ss).abs() < 1e-9);
        let need = 110.0 + want_ss - 30.0;
        assert_eq!(line.order_qty, round_order(need, 6, 12));
        assert_eq!(line.order_qty % 6, 0);
        assert_eq!(line.order_by, Some(as_of));
        // 30 units at 10 a day cover three days; day 4's demand is short.
        assert_eq!(line.projected_stockout, Some(as_of + Duration::days(4)));
        assert!((line.days_of_cover.expect("cover") - 3.0).abs() < 1e-9);
        assert!((line.order_value - line.order_qty as f64 * 2.5).abs() < 1e-9);

        let high = Position {
            as_of,
            on_hand: 400.0,
            on_order: 0.0,
        };
        let line = plan(Policy::PeriodicOrderUpTo, &item(), &high, &steps);
        assert_eq!(line.order_qty, 0);
        assert!(line.order_by.expect("date") > as_of);
    }

    #[test]
    fn continuous_review_orders_multiples_of_eoq() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let steps = vec![step(10.0, 3.0); 28];
        let pos = Position {
            as_of,
            on_hand: 5.0,
            on_order: 0.0,
        };
        let line = plan(Policy::ContinuousEoq, &item(), &pos, &steps);
        let q = eoq(20.0, 2.5 * 0.25, 3650.0);
        assert_eq!(line.eoq, Some(q));
        assert!((line.protection_days - 4.0).abs() < 1e-9);
        assert!(line.order_qty as f64 >= q);
        assert!(line.inventory_position + line.order_qty as f64 > line.reorder_point);
        // Above the reorder point nothing is ordered.
        let pos = Position {
            on_hand: 500.0,
            ..pos
        };
        assert_eq!(
            plan(Policy::ContinuousEoq, &item(), &pos, &steps).order_qty,
            0
        );
        let mm = plan(Policy::PeriodicMinMax, &item(), &pos, &steps);
        assert_eq!(mm.order_qty, 0);
    }
}
