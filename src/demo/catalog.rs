//! The demo's fixed world: stores, departments, products with their
//! replenishment parameters, per-series demand parameters, and the retail
//! calendar (holidays, events and their demand effects).
//!
//! Everything here is drawn once from the seed before simulation starts and
//! is small (tens of thousands of series at most). The day-by-day
//! simulation lives in `sim.rs`.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use super::sample::Sampler;

pub const CATEGORIES: [&str; 3] = ["FOODS", "HOBBIES", "HOUSEHOLD"];

/// Departments with their category and their share of the assortment
/// (the proportions of the M5 competition's 3,049 items).
pub const DEPARTMENTS: [(&str, usize, usize); 7] = [
    ("FOODS_1", 0, 216),
    ("FOODS_2", 0, 398),
    ("FOODS_3", 0, 823),
    ("HOBBIES_1", 1, 416),
    ("HOBBIES_2", 1, 149),
    ("HOUSEHOLD_1", 2, 532),
    ("HOUSEHOLD_2", 2, 515),
];

/// Stores in the order they are added as the scale grows, with a size
/// factor applied to every series of the store.
const STORES: [(&str, f64); 10] = [
    ("CA_1", 1.15),
    ("TX_1", 0.90),
    ("WI_1", 0.80),
    ("CA_2", 0.90),
    ("TX_2", 1.05),
    ("WI_2", 1.05),
    ("CA_3", 1.60),
    ("TX_3", 0.95),
    ("WI_3", 0.95),
    ("CA_4", 0.60),
];

/// Mean demand by weekday, Monday first, per category (each sums to 7).
pub const WEEKLY: [[f64; 7]; 3] = [
    [0.88, 0.84, 0.84, 0.86, 1.00, 1.30, 1.28],
    [0.90, 0.88, 0.88, 0.90, 1.02, 1.22, 1.20],
    [0.90, 0.87, 0.87, 0.89, 1.00, 1.25, 1.22],
];

/// Yearly seasonality per category: (amplitude, day of year of the peak).
pub const YEARLY: [(f64, f64); 3] = [(0.06, 200.0), (0.15, 345.0), (0.10, 120.0)];

#[derive(Debug, Clone)]
pub struct Store {
    pub name: String,
    pub size: f64,
}

/// How fast a product sells; decides its demand distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Velocity {
    Fast,
    Medium,
    /// Intermittent: most days sell nothing.
    Slow,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub category: usize,
    pub department: usize,
    pub unit_cost: f64,
    /// Regular shelf price at the start of history.
    pub base_price: f64,
    /// Yearly regular-price increase and the day of year it takes effect.
    pub price_step: f64,
    pub price_step_doy: u32,
    pub case_pack: i64,
    pub moq: i64,
    pub lead_time_days: f64,
    pub lead_time_std_days: f64,
    pub review_period_days: i64,
    pub service_level: f64,
    pub launch_date: NaiveDate,
    pub discontinued_date: Option<NaiveDate>,
    pub velocity: Velocity,
    /// Price elasticity (demand ~ price^-elasticity).
    pub elasticity: f64,
    /// Extra promotion uplift on top of the price effect (display, flyer).
    pub promo_lift: f64,
    /// Chance per eligible day that a promotion starts.
    pub promo_rate: f64,
}

/// Demand parameters of one item in one store.
#[derive(Debug, Clone)]
pub struct SeriesParams {
    pub product: usize,
    pub store: usize,
    /// Mean daily units at regular price on an average day at history start.
    pub level: f64,
    /// Log-linear trend per day.
    pub trend_per_day: f64,
    /// Multiplier on the category's yearly amplitude.
    pub yearly_scale: f64,
    /// Negative binomial dispersion (smaller = burstier).
    pub dispersion: f64,
    /// Share of days forced to zero on top of the negative binomial.
    pub zero_inflation: f64,
    /// Store price index (regional price differences).
    pub price_index: f64,
}

pub struct Catalog {
    pub stores: Vec<Store>,
    pub products: Vec<Product>,
    pub series: Vec<SeriesParams>,
}

/// Sizes a catalog is drawn for.
pub struct CatalogSpec {
    pub stores: usize,
    pub skus: usize,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Catalog {
    pub fn draw(spec: &CatalogSpec, rng: &mut Sampler) -> Self {
        let mut stores: Vec<Store> = STORES
            .iter()
            .take(spec.stores.clamp(1, STORES.len()))
            .map(|(name, size)| Store {
                name: (*name).to_string(),
                size: *size,
            })
            .collect();
        stores.sort_by(|a, b| a.name.cmp(&b.name));

        let products = draw_products(spec, rng);
        let mut series = Vec::with_capacity(stores.len() * products.len());
        for (s, store) in stores.iter().enumerate() {
            for (p, product) in products.iter().enumerate() {
                series.push(draw_series(p, product, s, store, rng));
            }
        }
        Self {
            stores,
            products,
            series,
        }
    }
}

fn dept_counts(total: usize) -> [usize; 7] {
    let all: usize = DEPARTMENTS.iter().map(|d| d.2).sum();
    let mut counts = [0usize; 7];
    for (i, d) in DEPARTMENTS.iter().enumerate() {
        counts[i] = ((total * d.2) as f64 / all as f64).round().max(2.0) as usize;
    }
    counts
}

fn draw_products(spec: &CatalogSpec, rng: &mut Sampler) -> Vec<Product> {
    let history_days = (spec.end - spec.start).num_days().max(1);
    let mut products = Vec::new();
    for (d, count) in dept_counts(spec.skus).iter().enumerate() {
        let (dept, category, _) = DEPARTMENTS[d];
        for i in 0..*count {
            let velocity = match rng.uniform() {
                u if u < 0.2 => Velocity::Fast,
                u if u < 0.6 => Velocity::Medium,
                _ => Velocity::Slow,
            };
            let cost_median = [2.0, 9.0, 5.5][category];
            let unit_cost = (rng.lognormal(cost_median, 0.6) * 100.0).round() / 100.0;
            let unit_cost = unit_cost.max(0.2);
            let base_price = ((unit_cost * rng.range(1.3, 1.9)) * 100.0).round() / 100.0 - 0.01;
            let case_pack = match (category, velocity) {
                (0, Velocity::Fast) => [12, 24][rng.int(0, 1) as usize],
                (_, Velocity::Slow) => [1, 2, 4][rng.int(0, 2) as usize],
                _ => [4, 6, 12][rng.int(0, 2) as usize],
            };
            let lead_time_days = (rng.range(2.0, 12.0) * 2.0).round() / 2.0;
            products.push(Product {
                sku: format!("{dept}_{:03}", i + 1),
                category,
                department: d,
                unit_cost,
                base_price: base_price.max(0.49),
                price_step: rng.range(0.0, 0.06),
                price_step_doy: rng.int(1, 365) as u32,
                case_pack,
                moq: case_pack * rng.int(1, 3),
                lead_time_days,
                lead_time_std_days: (lead_time_days * rng.range(0.1, 0.35) * 10.0).round() / 10.0,
                review_period_days: [1, 3, 7][rng.int(0, 2) as usize],
                service_level: [0.90, 0.95, 0.97, 0.98, 0.99][rng.int(0, 4) as usize],
                launch_date: spec.start - Duration::days(rng.int(60, 2500)),
                discontinued_date: None,
                velocity,
                elasticity: rng.range(1.2, 3.0),
                promo_lift: rng.range(1.1, 1.6),
                promo_rate: if rng.chance(0.25) { 0.03 } else { 0.004 },
            });
        }
    }

    // New products (launched during history, one of them in the last weeks
    // so it has a very short history) and discontinued ones. Chosen from a
    // seeded shuffle so every department can be affected.
    let n = products.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.int(0, i as i64) as usize;
        order.swap(i, j);
    }
    let n_new = ((n as f64) * 0.08).round().max(1.0) as usize;
    let n_disc = ((n as f64) * 0.04).round().max(1.0) as usize;
    for (rank, &p) in order.iter().take(n_new).enumerate() {
        let offset = if rank == 0 {
            history_days - rng.int(14, 42)
        } else {
            rng.int(history_days / 4, history_days - 30)
        };
        products[p].launch_date = spec.start + Duration::days(offset.max(1));
    }
    for &p in order.iter().skip(n_new).take(n_disc) {
        let offset = rng.int(history_days / 3, history_days - 20);
        products[p].discontinued_date = Some(spec.start + Duration::days(offset.max(1)));
    }
    products
}

fn draw_series(
    p: usize,
    product: &Product,
    s: usize,
    store: &Store,
    rng: &mut Sampler,
) -> SeriesParams {
    let (median, sigma, dispersion, zero_inflation) = match product.velocity {
        Velocity::Fast => (9.0, 0.5, rng.range(5.0, 20.0), 0.0),
        Velocity::Medium => (1.6, 0.5, rng.range(1.5, 5.0), 0.0),
        Velocity::Slow => (0.22, 0.5, rng.range(0.3, 0.8), rng.range(0.1, 0.3)),
    };
    SeriesParams {
        product: p,
        store: s,
        level: rng.lognormal(median, sigma) * store.size,
        trend_per_day: rng.normal() * 0.15 / 365.0,
        yearly_scale: rng.range(0.5, 1.5),
        dispersion,
        zero_inflation,
        price_index: rng.range(0.97, 1.03),
    }
}

/// Easter Sunday (anonymous Gregorian algorithm).
pub fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// Holiday and event names of one day, as the calendar table shows them.
pub fn day_labels(date: NaiveDate) -> (Option<&'static str>, Option<&'static str>) {
    let y = date.year();
    let md = (date.month(), date.day());
    let thanksgiving = nth_weekday(y, 11, Weekday::Thu, 4);
    let holiday = match md {
        (1, 1) => Some("NewYear"),
        (7, 4) => Some("IndependenceDay"),
        (12, 25) => Some("Christmas"),
        _ if Some(date) == easter(y) => Some("Easter"),
        _ if Some(date) == thanksgiving => Some("Thanksgiving"),
        _ => None,
    };
    let event = match md {
        (10, 31) => Some("Halloween"),
        _ if thanksgiving.map(|t| t + Duration::days(1)) == Some(date) => Some("BlackFriday"),
        _ if Some(date) == nth_weekday(y, 2, Weekday::Sun, 2) => Some("SuperBowl"),
        _ if Some(date) == nth_weekday(y, 5, Weekday::Sun, 2) => Some("MothersDay"),
        _ => None,
    };
    (holiday, event)
}

/// Demand multiplier of holidays, events and the run-up to them, per
/// category (FOODS, HOBBIES, HOUSEHOLD).
pub fn holiday_effect(date: NaiveDate) -> [f64; 3] {
    let y = date.year();
    let (m, d) = (date.month(), date.day());
    let mut e = [1.0f64; 3];
    let mut mul = |f: [f64; 3]| {
        for i in 0..3 {
            e[i] *= f[i];
        }
    };
    // Christmas: stores barely open on the day, a December run-up before.
    if m == 12 && d == 25 {
        mul([0.05, 0.05, 0.05]);
    } else if m == 12 && d < 25 {
        let r = f64::from(d) / 24.0;
        mul([1.0 + 0.15 * r, 1.0 + 0.7 * r, 1.0 + 0.25 * r]);
    }
    if m == 12 && d == 31 {
        mul([1.3, 1.0, 1.0]);
    }
    if m == 1 && d == 1 {
        mul([0.7, 0.6, 0.6]);
    }
    if m == 7 && (d == 3 || d == 4) {
        mul([1.3, 1.1, 1.0]);
    }
    if m == 10 && (25..=31).contains(&d) {
        mul([1.1, 1.35, 1.0]);
    }
    if let Some(t) = nth_weekday(y, 11, Weekday::Thu, 4) {
        let k = (date - t).num_days();
        match k {
            -2 | -1 => mul([1.45, 1.0, 1.05]),
            0 => mul([0.6, 0.4, 0.4]),
            1 => mul([1.1, 2.2, 1.8]),
            2 | 3 => mul([1.0, 1.4, 1.25]),
            _ => {}
        }
    }
    if let Some(easter) = easter(y) {
        match (date - easter).num_days() {
            -6..=-2 => mul([1.05, 1.15, 1.0]),
            -1 => mul([1.35, 1.2, 1.0]),
            0 => mul([0.7, 0.6, 0.6]),
            _ => {}
        }
    }
    if let Some(sb) = nth_weekday(y, 2, Weekday::Sun, 2) {
        let k = (date - sb).num_days();
        if k == -1 || k == 0 {
            mul([1.25, 1.0, 1.0]);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn easter_dates_match_published_tables() {
        assert_eq!(easter(2024), Some(ymd(2024, 3, 31)));
        assert_eq!(easter(2025), Some(ymd(2025, 4, 20)));
        assert_eq!(easter(2019), Some(ymd(2019, 4, 21)));
    }

    #[test]
    fn black_friday_follows_thanksgiving() {
        assert_eq!(day_labels(ymd(2025, 11, 27)).0, Some("Thanksgiving"));
        assert_eq!(day_labels(ymd(2025, 11, 28)).1, Some("BlackFriday"));
        assert!(holiday_effect(ymd(2025, 11, 28))[1] > 2.0);
        assert!(holiday_effect(ymd(2025, 12, 25))[0] < 0.1);
    }

    #[test]
    fn weekly_profiles_average_to_one() {
        for w in WEEKLY {
            assert!((w.iter().sum::<f64>() - 7.0).abs() < 1e-9);
        }
    }
}
