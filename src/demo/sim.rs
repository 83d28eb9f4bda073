//! Day-by-day simulation of demand, promotions, prices and replenishment
//! for every item×store series of a [`Catalog`], producing the rows of one
//! day at a time so that any scale streams in constant memory.
//!
//! Per day and series: the promotion state advances, the shelf price is
//! set, expected demand is built from level × trend × weekly × yearly ×
//! holiday × price elasticity × promotion lift × post-promotion dip ×
//! launch ramp × discontinuation fade, a negative binomial (zero-inflated
//! for slow movers) draws the demand, orders due today arrive, sales are
//! demand censored by stock, and on review days a periodic-review
//! order-up-to policy orders whole cases (at least the MOQ) that arrive
//! after a random lead time (sometimes with a supplier delay). It does not
//! encode or write anything: that is `write.rs`.

use chrono::{Datelike, Duration, NaiveDate};

use super::catalog::{Catalog, Velocity, WEEKLY, YEARLY, holiday_effect};
use super::replenish::SimRule;
use super::sample::Sampler;

/// Days simulated before the first written day so stock and pipelines
/// start in a settled state.
const BURN_IN_DAYS: i64 = 42;
/// Number of days the stale store's feed is missing at the end of history.
pub const STALE_DAYS: i64 = 4;
/// Demand multiplier of the injected spike on the last day.
pub const SPIKE_FACTOR: f64 = 10.0;
/// Days at the end of history during which the stopped series sells
/// nothing (a delisting or a blocked shelf), longer than the monitor's
/// default `demand_stopped_days`.
pub const STOPPED_DAYS: i64 = 9;
/// Factor the price feed error multiplies the last day's price by (a
/// feed that sends cents where currency units are expected).
pub const PRICE_ERROR_FACTOR: f64 = 100.0;
/// Length of the future promotion plan.
pub const PLAN_DAYS: i64 = 56;

/// Which series carry the injected anomalies.
#[derive(Debug, Clone)]
pub struct AnomalyPlan {
    pub stale_store: usize,
    pub spike_series: usize,
    pub negative_series: usize,
    /// Sells nothing over the last [`STOPPED_DAYS`] days.
    pub stopped_series: usize,
    /// Its last day's price is written ×[`PRICE_ERROR_FACTOR`].
    pub price_series: usize,
}

impl AnomalyPlan {
    /// Picks the anomalies: the last store goes stale; the spike, the
    /// stopped demand, the price error and the negative stock error sit on
    /// the four best-selling established items of the first store (which
    /// stays fresh whenever there are two stores), in that order, so each
    /// is material at every scale: a ×10 spike on an item selling one unit
    /// every other day is no spike anyone could see.
    pub fn choose(cat: &Catalog, end: NaiveDate) -> Self {
        let stale_store = cat.stores.len().saturating_sub(1);
        let established = |i: &usize| {
            let s = &cat.series[*i];
            let p = &cat.products[s.product];
            s.store == 0
                && p.velocity != Velocity::Slow
                && p.discontinued_date.is_none()
                && p.launch_date < end - Duration::days(400)
        };
        let mut picks: Vec<usize> = (0..cat.series.len()).filter(established).collect();
        picks.sort_by(|a, b| cat.series[*b].level.total_cmp(&cat.series[*a].level));
        let last = cat.series.len().saturating_sub(1);
        let nth = |k: usize| picks.get(k).copied().unwrap_or(k.min(last));
        Self {
            stale_store,
            spike_series: nth(0),
            stopped_series: nth(1),
            price_series: nth(2),
            negative_series: nth(3),
        }
    }
}

/// Rows of one history day, columnar, in series order (store, then sku).
#[derive(Debug, Default)]
pub struct DayRows {
    pub date: NaiveDate,
    pub sales_series: Vec<u32>,
    pub units: Vec<i64>,
    pub price: Vec<f64>,
    pub on_promo: Vec<bool>,
    /// Mean of the demand the units were drawn from (before stock-outs):
    /// ground truth for judging forecasts.
    pub expected: Vec<f64>,
    pub inv_series: Vec<u32>,
    pub on_hand: Vec<i64>,
    pub on_order: Vec<i64>,
}

/// The promotion plan for the days after history.
#[derive(Debug, Default)]
pub struct PlanRows {
    pub date: Vec<NaiveDate>,
    pub series: Vec<u32>,
    pub price: Vec<f64>,
    pub on_promo: Vec<bool>,
}

#[derive(Debug, Clone, Default)]
struct SeriesState {
    started: bool,
    on_hand: i64,
    pipeline: Vec<(i64, i64)>,
    forecast: f64,
    promo_left: i64,
    promo_depth: f64,
    cooldown: i64,
    since_promo: i64,
}

pub struct Simulation<'a> {
    cat: &'a Catalog,
    start: NaiveDate,
    days: i64,
    plan: AnomalyPlan,
    rng: Sampler,
    state: Vec<SeriesState>,
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl<'a> Simulation<'a> {
    pub fn new(
        cat: &'a Catalog,
        start: NaiveDate,
        days: i64,
        plan: AnomalyPlan,
        rng: Sampler,
    ) -> Self {
        Self {
            cat,
            start,
            days,
            plan,
            rng,
            state: vec![SeriesState::default(); cat.series.len()],
        }
    }

    fn date(&self, t: i64) -> NaiveDate {
        self.start + Duration::days(t)
    }

    fn regular_price(&self, i: usize, t: i64) -> f64 {
        let s = &self.cat.series[i];
        let p = &self.cat.products[s.product];
        let phase = (i64::from(self.start.ordinal()) - i64::from(p.price_step_doy)).rem_euclid(365);
        let steps = (t + phase).div_euclid(365).max(0);
        cents(p.base_price * s.price_index * (1.0 + p.price_step).powi(steps as i32))
    }

    fn active(&self, i: usize, date: NaiveDate) -> bool {
        let p = &self.cat.products[self.cat.series[i].product];
        p.launch_date <= date && p.discontinued_date.is_none_or(|d| date <= d)
    }

    /// Advances the promotion state of series `i` by one day and returns
    /// (shelf price, regular price, on_promo).
    fn step_promo(&mut self, i: usize, t: i64) -> (f64, f64, bool) {
        let rate = self.cat.products[self.cat.series[i].product].promo_rate;
        let st = &mut self.state[i];
        if st.promo_left > 0 {
            st.promo_left -= 1;
            if st.promo_left == 0 {
                st.since_promo = 1;
                st.cooldown = self.rng.int(14, 45);
            }
        } else {
            if st.since_promo > 0 {
                st.since_promo += 1;
            }
            if st.cooldown > 0 {
                st.cooldown -= 1;
            } else if self.rng.chance(rate) {
                st.promo_left = self.rng.int(7, 14);
                st.promo_depth = self.rng.range(0.10, 0.35);
            }
        }
        let on_promo = self.state[i].promo_left > 0;
        let regular = self.regular_price(i, t);
        if on_promo {
            (
                cents(regular * (1.0 - self.state[i].promo_depth)),
                regular,
                true,
            )
        } else {
            (regular, regular, false)
        }
    }

    /// Runs the whole history, handing each written day to `emit`, then
    /// returns the future promotion plan.
    pub fn run<E>(
        &mut self,
        mut emit: impl FnMut(DayRows) -> Result<(), E>,
    ) -> Result<PlanRows, E> {
        let n = self.cat.series.len();
        for t in -BURN_IN_DAYS..self.days {
            let date = self.date(t);
            let wd = date.weekday().num_days_from_monday() as usize;
            let doy = f64::from(date.ordinal());
            let holiday = holiday_effect(date);
            let mut yearly = [0.0; 3];
            for (c, (amp, peak)) in YEARLY.iter().enumerate() {
                yearly[c] = amp * (std::f64::consts::TAU * (doy - peak) / 365.25).cos();
            }
            let write = t >= 0;
            let mut rows = DayRows {
                date,
                ..DayRows::default()
            };
            if write {
                rows.sales_series.reserve(n);
                rows.units.reserve(n);
                rows.price.reserve(n);
                rows.on_promo.reserve(n);
                rows.inv_series.reserve(n);
                rows.on_hand.reserve(n);
                rows.on_order.reserve(n);
            }
            for i in 0..n {
                if !self.active(i, date) {
                    continue;
                }
                let (price, regular, on_promo) = self.step_promo(i, t);
                let s = &self.cat.series[i];
                let p = &self.cat.products[s.product];
                let c = p.category;
                let age = (date - p.launch_date).num_days();
                let ramp = ((age + 1) as f64 / 30.0).min(1.0);
                let to_end = p.discontinued_date.map(|d| (d - date).num_days());
                let fade = to_end.map_or(1.0, |r| {
                    if r < 60 {
                        0.3 + 0.7 * r as f64 / 60.0
                    } else {
                        1.0
                    }
                });
                let base = s.level
                    * (s.trend_per_day * t as f64).exp()
                    * (1.0 + s.yearly_scale * yearly[c])
                    * ramp
                    * fade;
                let mut mu = base * WEEKLY[c][wd] * holiday[c];
                if on_promo {
                    mu *= (price / regular).powf(-p.elasticity) * p.promo_lift;
                }
                let since = self.state[i].since_promo;
                if (1..=7).contains(&since) {
                    // Pantry loading: shoppers bought ahead during the promotion.
                    mu *= 1.0 - 0.3 * (8 - since) as f64 / 7.0;
                }
                let spike = i == self.plan.spike_series && t == self.days - 1;
                if spike {
                    mu *= SPIKE_FACTOR;
                }
                let rule = SimRule {
                    lead_time_days: p.lead_time_days,
                    review_period_days: p.review_period_days,
                    service_level: p.service_level,
                    dispersion: s.dispersion,
                    case_pack: p.case_pack,
                    moq: p.moq,
                };

                let demand = if s.zero_inflation > 0.0 && self.rng.chance(s.zero_inflation) {
                    0
                } else {
                    self.rng.neg_binomial(mu, s.dispersion)
                };

                // The stopped series draws as usual (so every other series
                // sees the same random stream) and then sells nothing.
                let stopped = i == self.plan.stopped_series && t >= self.days - STOPPED_DAYS;
                let demand = if stopped { 0 } else { demand };
                if stopped {
                    mu = 0.0;
                }

                let st = &mut self.state[i];
                if !st.started {
                    st.started = true;
                    st.forecast = base;
                    st.on_hand = rule.target(base).round().max(p.case_pack as f64) as i64;
                }
                st.forecast = SimRule::smooth(st.forecast, base);
                let mut arrived = 0;
                st.pipeline.retain(|&(due, qty)| {
                    if due <= t {
                        arrived += qty;
                        false
                    } else {
                        true
                    }
                });
                st.on_hand += arrived;
                let units = demand.min(st.on_hand);
                st.on_hand -= units;

                // Periodic review, order-up-to S, whole cases, at least MOQ.
                let (lead, review) = (p.lead_time_days, p.review_period_days as f64);
                let winding_down = to_end.is_some_and(|r| (r as f64) < lead + review + 14.0);
                if rule.is_review_day(t, i) && !winding_down {
                    let position = st.on_hand + st.pipeline.iter().map(|o| o.1).sum::<i64>();
                    let qty = rule.order_qty(st.forecast, position);
                    if qty > 0 {
                        let mut lt = (lead + p.lead_time_std_days * self.rng.normal())
                            .round()
                            .max(1.0) as i64;
                        if self.rng.chance(0.03) {
                            lt += self.rng.int(4, 14); // supplier delay
                        }
                        st.pipeline.push((t + lt, qty));
                    }
                }
                if i == self.plan.spike_series && t == self.days - 2 {
                    // The spike is real demand that was served: an extra
                    // delivery lands the day before so stock stays coherent.
                    let extra = (base * SPIKE_FACTOR * 2.5).ceil() as i64 + p.case_pack;
                    st.pipeline.push((t + 1, extra));
                }
                if !write {
                    continue;
                }
                let stale = s.store == self.plan.stale_store
                    && t >= self.days - STALE_DAYS
                    && self.cat.stores.len() > 1;
                if stale {
                    continue;
                }
                let on_order = st.pipeline.iter().map(|o| o.1).sum::<i64>();
                let mut on_hand = st.on_hand;
                if i == self.plan.negative_series && t == self.days - 1 {
                    on_hand = -(on_hand + 17); // data error, not a real state
                }
                rows.sales_series.push(i as u32);
                rows.units.push(units);
                let feed_error = i == self.plan.price_series && t == self.days - 1;
                rows.price.push(if feed_error {
                    cents(price * PRICE_ERROR_FACTOR)
                } else {
                    price
                });
                rows.on_promo.push(on_promo);
                rows.expected.push((1.0 - s.zero_inflation) * mu);
                rows.inv_series.push(i as u32);
                rows.on_hand.push(on_hand);
                rows.on_order.push(on_order);
            }
            if write {
                emit(rows)?;
            }
        }

        let mut plan = PlanRows::default();
        for t in self.days..self.days + PLAN_DAYS {
            let date = self.date(t);
            for i in 0..n {
                if !self.active(i, date) {
                    continue;
                }
                let (price, _, on_promo) = self.step_promo(i, t);
                plan.date.push(date);
                plan.series.push(i as u32);
                plan.price.push(price);
                plan.on_promo.push(on_promo);
            }
        }
        Ok(plan)
    }
}
