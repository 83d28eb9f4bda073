//! One series, one policy, day by day, pure. Each day: orders due arrive,
//! the day's realized demand (its sales) is served from stock, what cannot
//! be served is lost, and on a review day the policy may order; an order
//! arrives after a lead time drawn from the product's lead time and its
//! standard deviation (`max(1, round(L + σL·N(0,1)))`, seeded per series,
//! the same draws for every policy). Stock on order at the start is taken
//! to arrive after half the lead time, the mean remaining lead time of an
//! order placed at a uniformly random earlier day.
//!
//! The three policies ([`PolicyKind`]):
//! - `restock`: the DAG's `reorder` policy ([`crate::inventory::plan`]) on a
//!   Theta forecast ([`crate::forecast::theta`], weekly seasonality, p10 and
//!   p90) fitted on the sales known that day, refitted every `refit_days`;
//! - `demo_sim`: the demo simulator's own rule ([`crate::demo::replenish`])
//!   on exponentially smoothed sales, with the negative binomial dispersion
//!   estimated from the history before the window;
//! - `moving_average_28`: order up to the same `plan` on a flat forecast of
//!   the last 28 days' mean and standard deviation.
//!
//! Periodic policies order on review days only (every `review_period_days`,
//! offset by the series' index as the demo does); `continuous_eoq` reviews
//! daily.

use tokio_util::sync::CancellationToken;

use super::load::{Panel, SeriesInput};
use super::{BacktestError, Settings};
use crate::demo::replenish::SimRule;
use crate::forecast::rng::SplitMix64;
use crate::inventory::{Policy, Position, Step, plan};

/// Forecast horizon of each fit: the longest protection interval the
/// demo products need, plus slack; `plan` repeats the average step beyond.
const HORIZON: usize = 35;
/// Days of sales each Theta fit sees.
const FIT_DAYS: usize = 112;
/// Days of the moving average reference.
const MA_DAYS: usize = 28;
const QUANTILES: [f64; 2] = [0.1, 0.9];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    Restock,
    DemoSim,
    MovingAverage28,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [Self::Restock, Self::DemoSim, Self::MovingAverage28];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restock => "restock",
            Self::DemoSim => "demo_sim",
            Self::MovingAverage28 => "moving_average_28",
        }
    }
}

/// Settings of the simulation itself.
#[derive(Debug, Clone, Copy)]
pub struct SimParams {
    pub policy: Policy,
    pub seed: u64,
    pub refit_days: usize,
}

impl SimParams {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            policy: s.policy,
            seed: s.seed,
            refit_days: s.refit_days,
        }
    }
}

/// What one policy did on one series over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    pub demand: f64,
    pub served: f64,
    /// Days with demand that could not be served in full.
    pub stockout_days: u32,
    /// Sum of end-of-day on-hand units over the window.
    pub inventory_sum: f64,
    pub orders: u32,
    pub units_ordered: f64,
    /// Review days decided on a stored forecast (restock's policy with
    /// `--stored-forecasts`; the others forecast for themselves).
    pub stored_forecast_days: u32,
}

/// How a policy decides on a review day.
trait Decide {
    /// Units to order at the end of window day `t`, after its sales.
    fn order(&mut self, t: usize, on_hand: f64, on_order: f64) -> f64;
}

/// Every series under every policy, on up to `available_parallelism`
/// threads; `[series][policy]` in `PolicyKind::ALL` order. Stops between
/// series once `cancel` fires.
pub fn simulate_all(
    panel: &Panel,
    params: &SimParams,
    cancel: &CancellationToken,
) -> Result<Vec<[Outcome; 3]>, BacktestError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = panel.series.len().div_ceil(threads).max(1);
    let mut out = vec![[Outcome::default(); 3]; panel.series.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = out
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, slots)| {
                scope.spawn(move || {
                    for (k, slot) in slots.iter_mut().enumerate() {
                        if cancel.is_cancelled() {
                            return Err(BacktestError::Cancelled);
                        }
                        let i = c * chunk + k;
                        for (p, kind) in PolicyKind::ALL.iter().enumerate() {
                            slot[p] = simulate(panel, i, *kind, params);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| BacktestError::Internal("a simulation thread panicked".into()))??;
        }
        Ok::<(), BacktestError>(())
    })?;
    Ok(out)
}

/// Series `i` of `panel` under policy `kind`.
pub fn simulate(panel: &Panel, i: usize, kind: PolicyKind, params: &SimParams) -> Outcome {
    let s = &panel.series[i];
    match kind {
        PolicyKind::Restock => {
            let mut d = RestockPolicy::new(panel, s, i, params);
            let mut out = run(panel, s, i, params.seed, &mut d);
            out.stored_forecast_days = d.stored_used;
            out
        }
        PolicyKind::DemoSim => {
            let mut d = DemoPolicy::new(panel, s, i);
            run(panel, s, i, params.seed, &mut d)
        }
        PolicyKind::MovingAverage28 => {
            let mut d = MovingAverage {
                panel,
                s,
                review: Review::of(Policy::PeriodicOrderUpTo, s, i),
            };
            run(panel, s, i, params.seed, &mut d)
        }
    }
}

/// The day loop shared by every policy.
fn run(panel: &Panel, s: &SeriesInput, i: usize, seed: u64, policy: &mut dyn Decide) -> Outcome {
    let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let lead = s.item.lead_time_days.max(0.0);
    let mut pipeline: Vec<(usize, f64)> = Vec::new();
    if s.on_order > 0.0 {
        pipeline.push((((lead / 2.0).round() as usize).max(1), s.on_order));
    }
    let mut on_hand = s.on_hand;
    let mut out = Outcome::default();
    for t in 0..panel.window_days {
        let mut arrived = 0.0;
        pipeline.retain(|&(due, qty)| {
            let here = due <= t;
            if here {
                arrived += qty;
            }
            !here
        });
        on_hand += arrived;
        let demand = f64::from(s.units[panel.history_days + t]);
        let served = demand.min(on_hand);
        on_hand -= served;
        out.demand += demand;
        out.served += served;
        if served < demand {
            out.stockout_days += 1;
        }
        let on_order: f64 = pipeline.iter().map(|o| o.1).sum();
        let qty = policy.order(t, on_hand, on_order);
        if qty > 0.0 {
            let lt = (lead + s.item.lead_time_sd_days * rng.normal())
                .round()
                .max(1.0);
            pipeline.push((t + lt as usize, qty));
            out.orders += 1;
            out.units_ordered += qty;
        }
        out.inventory_sum += on_hand;
    }
    out
}

/// Which window days are review days.
#[derive(Debug, Clone, Copy)]
struct Review {
    every: usize,
    offset: usize,
}

impl Review {
    fn of(policy: Policy, s: &SeriesInput, i: usize) -> Self {
        let every = match policy {
            Policy::ContinuousEoq => 1,
            _ => (s.item.review_period_days.round() as usize).max(1),
        };
        Self { every, offset: i }
    }

    fn is_review_day(&self, t: usize) -> bool {
        (t + self.offset) % self.every == 0
    }
}

fn position(panel: &Panel, t: usize, on_hand: f64, on_order: f64) -> Position {
    Position {
        as_of: panel.date(t),
        on_hand,
        on_order,
    }
}

/// Known sales up to and including window day `t`, at most `days` of them.
fn known(panel: &Panel, s: &SeriesInput, t: usize, days: usize) -> Vec<f64> {
    let now = panel.history_days + t + 1;
    s.units[now.saturating_sub(days)..now]
        .iter()
        .map(|&u| f64::from(u))
        .collect()
}

/// restock's policy on a refitted Theta forecast.
struct RestockPolicy<'a> {
    panel: &'a Panel,
    s: &'a SeriesInput,
    policy: Policy,
    review: Review,
    refit_days: usize,
    /// The last fit: the window day it was made and its daily steps.
    fit: Option<(usize, Vec<Step>)>,
    /// Review days decided on a stored forecast.
    stored_used: u32,
}

impl<'a> RestockPolicy<'a> {
    fn new(panel: &'a Panel, s: &'a SeriesInput, i: usize, params: &SimParams) -> Self {
        Self {
            panel,
            s,
            policy: params.policy,
            review: Review::of(params.policy, s, i),
            refit_days: params.refit_days,
            fit: None,
            stored_used: 0,
        }
    }

    /// The stored forecast made on day `t`, else the Theta fit's steps.
    fn steps(&mut self, t: usize) -> &[Step] {
        if let Ok(k) = self.s.stored.binary_search_by_key(&t, |(d, _)| *d) {
            self.stored_used += 1;
            return &self.s.stored[k].1;
        }
        self.theta_steps(t)
    }

    fn theta_steps(&mut self, t: usize) -> &[Step] {
        let stale = self
            .fit
            .as_ref()
            .is_none_or(|(at, _)| t >= at + self.refit_days);
        if stale {
            let history = known(self.panel, self.s, t, FIT_DAYS);
            let steps = theta_steps(&history, HORIZON + self.refit_days);
            self.fit = Some((t, steps));
        }
        match &self.fit {
            Some((at, steps)) => &steps[(t - at).min(steps.len())..],
            None => &[],
        }
    }
}

/// A Theta forecast as daily steps; a failed fit forecasts nothing.
fn theta_steps(history: &[f64], horizon: usize) -> Vec<Step> {
    let Ok(f) = crate::forecast::theta::theta(history, 7, horizon, &QUANTILES) else {
        return Vec::new();
    };
    (0..f.mean.len())
        .map(|k| Step {
            mean: f.mean[k],
            lo: f.quantiles[0][k],
            hi: f.quantiles[1][k],
            lo_level: QUANTILES[0],
            hi_level: QUANTILES[1],
        })
        .collect()
}

impl Decide for RestockPolicy<'_> {
    fn order(&mut self, t: usize, on_hand: f64, on_order: f64) -> f64 {
        if !self.review.is_review_day(t) {
            return 0.0;
        }
        let (panel, s, policy) = (self.panel, self.s, self.policy);
        let steps = self.steps(t);
        let line = plan(
            policy,
            &s.item,
            &position(panel, t, on_hand, on_order),
            steps,
        );
        line.order_qty as f64
    }
}

/// The demo simulator's rule on smoothed sales.
struct DemoPolicy<'a> {
    panel: &'a Panel,
    s: &'a SeriesInput,
    index: usize,
    rule: SimRule,
    rate: f64,
}

impl<'a> DemoPolicy<'a> {
    fn new(panel: &'a Panel, s: &'a SeriesInput, index: usize) -> Self {
        let before = &s.units[..panel.history_days];
        let recent = &before[before.len().saturating_sub(MA_DAYS)..];
        let rate = mean(recent);
        let rule = SimRule {
            lead_time_days: s.item.lead_time_days,
            review_period_days: (s.item.review_period_days.round() as i64).max(1),
            service_level: s.item.service_level,
            dispersion: dispersion(before),
            case_pack: s.item.case_pack,
            moq: s.item.moq,
        };
        Self {
            panel,
            s,
            index,
            rule,
            rate,
        }
    }
}

impl Decide for DemoPolicy<'_> {
    fn order(&mut self, t: usize, on_hand: f64, on_order: f64) -> f64 {
        let sold = f64::from(self.s.units[self.panel.history_days + t]);
        self.rate = SimRule::smooth(self.rate, sold);
        if !self.rule.is_review_day(t as i64, self.index) {
            return 0.0;
        }
        self.rule
            .order_qty(self.rate, (on_hand + on_order).round() as i64) as f64
    }
}

fn mean(xs: &[f32]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64
}

/// Method-of-moments negative binomial dispersion `k = m² / (v − m)`;
/// nearly Poisson (1e6) when the variance does not exceed the mean.
pub fn dispersion(xs: &[f32]) -> f64 {
    let m = mean(xs);
    if xs.len() < 2 || m <= 0.0 {
        return 1e6;
    }
    let v = xs.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    if v <= m {
        1e6
    } else {
        (m * m / (v - m)).clamp(0.05, 1e6)
    }
}

/// Order-up-to on the last 28 days' mean and spread.
struct MovingAverage<'a> {
    panel: &'a Panel,
    s: &'a SeriesInput,
    review: Review,
}

impl Decide for MovingAverage<'_> {
    fn order(&mut self, t: usize, on_hand: f64, on_order: f64) -> f64 {
        if !self.review.is_review_day(t) {
            return 0.0;
        }
        let xs = known(self.panel, self.s, t, MA_DAYS);
        let m = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len().max(2) - 1) as f64;
        let z = crate::inventory::normal::inv_cdf(QUANTILES[1]);
        let step = Step {
            mean: m,
            lo: m - z * var.sqrt(),
            hi: m + z * var.sqrt(),
            lo_level: QUANTILES[0],
            hi_level: QUANTILES[1],
        };
        let pos = position(self.panel, t, on_hand, on_order);
        let line = plan(
            Policy::PeriodicOrderUpTo,
            &self.s.item,
            &pos,
            &[step; MA_DAYS],
        );
        line.order_qty as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Item;
    use chrono::NaiveDate;

    /// One SKU: 28 days of history selling 2 a day, then a 5-day window
    /// with demand 3, 3, 4, 1, 2; lead time exactly 2 days, review every
    /// day, service level 0.5 (no safety stock), case pack 1, no MOQ, 5 on
    /// hand at the start.
    fn panel() -> Panel {
        let mut units = vec![2.0f32; 28];
        units.extend([3.0, 3.0, 4.0, 1.0, 2.0]);
        let start = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
        Panel {
            start,
            end: start + chrono::Duration::days(4),
            history_days: 28,
            window_days: 5,
            without_snapshot: 0,
            series: vec![SeriesInput {
                store: "S1".into(),
                sku: "A".into(),
                group: "G".into(),
                item: Item {
                    unit_cost: 1.0,
                    case_pack: 1,
                    moq: 0,
                    lead_time_days: 2.0,
                    lead_time_sd_days: 0.0,
                    review_period_days: 1.0,
                    service_level: 0.5,
                    holding_rate: 0.25,
                    order_cost: 20.0,
                },
                on_hand: 5.0,
                on_order: 0.0,
                units,
                stored: Vec::new(),
            }],
            stored_forecasts: 0,
        }
    }

    fn params() -> SimParams {
        SimParams {
            policy: Policy::PeriodicOrderUpTo,
            seed: 1,
            refit_days: 7,
        }
    }

    #[test]
    fn moving_average_order_up_to_by_hand() {
        // S = 3 days (lead 2 + review 1) × mean of the last 28 days; z = 0.
        // day 0: 5 on hand, sell 3 → 2. mean (27·2+3)/28 = 57/28, S = 6.107,
        //        position 2 → order ⌈4.107⌉ = 5, due day 2.
        // day 1: demand 3, sell 2 → 0, 1 lost (stockout day). mean 58/28,
        //        S = 6.214, position 0 + 5 → order ⌈1.214⌉ = 2, due day 3.
        // day 2: +5 → 5, sell 4 → 1. mean 60/28, S = 6.429, position 1 + 2
        //        → order ⌈3.429⌉ = 4, due day 4.
        // day 3: +2 → 3, sell 1 → 2. mean 59/28, S = 6.321, position 2 + 4
        //        → order ⌈0.321⌉ = 1, due day 5 (after the window).
        // day 4: +4 → 6, sell 2 → 4. mean 59/28, S = 6.321, position 4 + 1
        //        → order ⌈1.321⌉ = 2.
        // Demand 13, served 12, 1 stockout day, end-of-day stock
        // 2 + 0 + 1 + 2 + 4 = 9, 5 orders of 5 + 2 + 4 + 1 + 2 = 14 units.
        let o = simulate(&panel(), 0, PolicyKind::MovingAverage28, &params());
        let want = Outcome {
            demand: 13.0,
            served: 12.0,
            stockout_days: 1,
            inventory_sum: 9.0,
            orders: 5,
            units_ordered: 14.0,
            stored_forecast_days: 0,
        };
        assert_eq!(o, want);
    }

    #[test]
    fn demo_rule_by_hand() {
        // Rate starts at the mean of the 28 days before the window (2) and
        // moves 5% towards each day's demand; S = 3·rate (z(0.5) ≈ 0, the
        // approximation's error times σ√3 is below 0.002 units).
        // day 0: rate 0.95·2 + 0.05·3 = 2.05, S 6.15, stock 5 → 2,
        //        position 2 → order ⌈4.15⌉ = 5, due day 2.
        // day 1: rate 2.0975, S 6.2925, stock 2 → 0 (1 lost), position 5
        //        → order ⌈1.2925⌉ = 2, due day 3.
        // day 2: rate 2.192625, S 6.5779, stock +5 → 5 → 1, position 3
        //        → order ⌈3.578⌉ = 4, due day 4.
        // day 3: rate 2.132994, S 6.3990, stock +2 → 3 → 2, position 6
        //        → order ⌈0.399⌉ = 1.
        // day 4: rate 2.126344, S 6.3790, stock +4 → 6 → 4, position 5
        //        → order ⌈1.379⌉ = 2.
        let o = simulate(&panel(), 0, PolicyKind::DemoSim, &params());
        let want = Outcome {
            demand: 13.0,
            served: 12.0,
            stockout_days: 1,
            inventory_sum: 9.0,
            orders: 5,
            units_ordered: 14.0,
            stored_forecast_days: 0,
        };
        assert_eq!(o, want);
    }

    #[test]
    fn restock_policy_by_hand() {
        // The window's first day sells 2 like the history, so the Theta fit
        // made on it (refit every 7 days: once in this window) sees 29 days
        // of 2 and forecasts 2 a day. Service 0.5: no safety stock, so the
        // order-up-to level is 2 × (lead 2 + review 1) = 6. Half a unit on
        // hand keeps every position off a whole number.
        // day 0: 5.5, sell 2 → 3.5, position 3.5 → order ⌈2.5⌉ = 3, due 2.
        // day 1: sell 3 → 0.5, position 0.5 + 3 → order 3, due 3.
        // day 2: +3 → 3.5, sell 3 → 0.5, position 0.5 + 3 → order 3, due 4.
        // day 3: +3 → 3.5, sell 1 → 2.5, position 2.5 + 3 → order ⌈0.5⌉ = 1.
        // day 4: +3 → 5.5, sell 2 → 3.5, position 3.5 + 1 → order ⌈1.5⌉ = 2.
        // Demand 11, all served, end-of-day stock 3.5 + 0.5 + 0.5 + 2.5 + 3.5
        // = 10.5, 5 orders of 3 + 3 + 3 + 1 + 2 = 12 units.
        let mut p = panel();
        let s = &mut p.series[0];
        s.on_hand = 5.5;
        s.units.truncate(28);
        s.units.extend([2.0, 3.0, 3.0, 1.0, 2.0]);
        let o = simulate(&p, 0, PolicyKind::Restock, &params());
        let want = Outcome {
            demand: 11.0,
            served: 11.0,
            stockout_days: 0,
            inventory_sum: 10.5,
            orders: 5,
            units_ordered: 12.0,
            stored_forecast_days: 0,
        };
        assert_eq!(o, want);
    }

    #[test]
    fn restock_policy_on_stored_forecasts_by_hand() {
        // The same days, each decided on a stored forecast of 4 a day with
        // no spread: order-up-to 4 × (lead 2 + review 1) = 12.
        // day 0: 5.5, sell 2 → 3.5, position 3.5 → order ⌈8.5⌉ = 9, due 2.
        // day 1: sell 3 → 0.5, position 0.5 + 9 → order ⌈2.5⌉ = 3, due 3.
        // day 2: +9 → 9.5, sell 3 → 6.5, position 6.5 + 3 → order 3, due 4.
        // day 3: +3 → 9.5, sell 1 → 8.5, position 8.5 + 3 → order 1.
        // day 4: +3 → 11.5, sell 2 → 9.5, position 9.5 + 1 → order 2.
        // Stock 3.5 + 0.5 + 6.5 + 8.5 + 9.5 = 28.5; 9 + 3 + 3 + 1 + 2 = 18.
        let mut p = panel();
        let s = &mut p.series[0];
        s.on_hand = 5.5;
        s.units.truncate(28);
        s.units.extend([2.0, 3.0, 3.0, 1.0, 2.0]);
        let flat = Step {
            mean: 4.0,
            lo: 4.0,
            hi: 4.0,
            lo_level: 0.1,
            hi_level: 0.9,
        };
        s.stored = (0..5).map(|t| (t, vec![flat; 35])).collect();
        let o = simulate(&p, 0, PolicyKind::Restock, &params());
        let want = Outcome {
            demand: 11.0,
            served: 11.0,
            stockout_days: 0,
            inventory_sum: 28.5,
            orders: 5,
            units_ordered: 18.0,
            stored_forecast_days: 5,
        };
        assert_eq!(o, want);
        // A day without a stored forecast is decided on Theta: drop day 2's
        // and the count says so.
        p.series[0].stored.remove(2);
        let o = simulate(&p, 0, PolicyKind::Restock, &params());
        assert_eq!(o.stored_forecast_days, 4);
        // The reference policies never read them.
        let ma = simulate(&p, 0, PolicyKind::MovingAverage28, &params());
        assert_eq!(ma.stored_forecast_days, 0);
    }

    #[test]
    fn stock_on_order_at_the_start_arrives_after_half_the_lead_time() {
        // With 10 on order due on day 1 (lead 2 / 2) and a weekly review
        // that falls after the window (series offset 1 → days 6, 13 …),
        // nothing is ordered: day 0 sells 3 of 5 → 2, day 1 +10 → 12 − 3
        // = 9, day 2 → 5, day 3 → 4, day 4 → 2; no stockout.
        let mut p = panel();
        p.series[0].on_order = 10.0;
        p.series[0].item.review_period_days = 7.0;
        p.series.push(p.series[0].clone());
        let o = simulate(&p, 1, PolicyKind::MovingAverage28, &params());
        assert_eq!(o.orders, 0);
        assert_eq!(o.stockout_days, 0);
        assert_eq!(o.inventory_sum, 2.0 + 9.0 + 5.0 + 4.0 + 2.0);
        assert_eq!(o.served, 13.0);
    }

    #[test]
    fn lead_times_spread_with_the_products_sd_and_repeat_for_a_seed() {
        let mut p = panel();
        p.series[0].item.lead_time_sd_days = 1.5;
        let a = simulate(&p, 0, PolicyKind::Restock, &params());
        let b = simulate(&p, 0, PolicyKind::Restock, &params());
        assert_eq!(a, b);
        assert_eq!(a.demand, 13.0);
        assert!(a.served <= a.demand && a.orders > 0);
    }

    #[test]
    fn dispersion_by_moments() {
        // mean 12/6 = 2, sample variance (4·4 + 2·0)/5 = 3.2, so
        // k = 2² / (3.2 − 2) = 3.33.
        let xs = [0.0, 4.0, 0.0, 4.0, 2.0, 2.0];
        assert!((dispersion(&xs) - 4.0 / 1.2).abs() < 1e-9);
        assert_eq!(dispersion(&[2.0; 10]), 1e6);
    }
}
