//! Stock anomaly rules: from the state of each series (stock, plan,
//! forecast, recent sales) and the freshness of each store's data to a list
//! of anomalies, each with a type, a severity, what was observed and what
//! was expected. Thresholds come from the DAG (`rules:` of the `monitor`
//! task) with the defaults below.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::money::{self, Economics, Money, MoneyKind};
use super::reason::{money as fmt_money, qty};

/// Thresholds of the rules. Every field has a default; a DAG overrides
/// only what it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Days of sales that count as "recent demand" for `stockout`.
    pub recent_days: u32,
    /// `overstock` when days of cover exceed this …
    pub overstock_days_of_cover: f64,
    /// … or the inventory position exceeds this multiple of the
    /// order-up-to level.
    pub overstock_position_ratio: f64,
    /// `stale_data` when a store's newest date is older than this many days
    /// before the run date.
    pub stale_after_days: i64,
    /// `forecast_bias` when |tracking signal| exceeds this.
    pub tracking_signal_limit: f64,
    /// Minimum number of forecast errors before the tracking signal counts.
    pub tracking_signal_min_points: usize,
    /// Bias is only judged for series forecast to sell at least this much
    /// per period (intermittent series need other measures).
    pub tracking_signal_min_demand: f64,
    /// … and only when the mean error is at least this fraction of the
    /// mean forecast. RSFE/MAD over n periods has a spread of about
    /// 1.25·√n on unbiased noise, so ±4 alone flags many healthy series.
    pub tracking_signal_min_relative_bias: f64,
    /// `demand_outside_interval` is critical when the actual exceeds the
    /// upper quantile by more than this multiple of the band's half-width.
    pub spike_critical_ratio: f64,
    /// `demand_stopped` when a series forecast to sell at least
    /// `demand_stopped_min_daily` a day sold nothing for this many days in
    /// a row with stock on hand (a delisting, a blocked shelf, a broken
    /// scanner).
    pub demand_stopped_days: u32,
    pub demand_stopped_min_daily: f64,
    /// `price_error` when the run date's price is at or below zero, or
    /// this many times above or below the series' recent average price.
    pub price_error_ratio: f64,
    /// How many anomalies the headline lists (ranked by money at risk).
    pub headline: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            recent_days: 7,
            overstock_days_of_cover: 90.0,
            overstock_position_ratio: 3.0,
            stale_after_days: 1,
            tracking_signal_limit: 4.0,
            tracking_signal_min_points: 8,
            tracking_signal_min_demand: 1.0,
            tracking_signal_min_relative_bias: 0.2,
            spike_critical_ratio: 3.0,
            demand_stopped_days: 7,
            demand_stopped_min_daily: 2.0,
            price_error_ratio: 3.0,
            headline: super::worklist::DEFAULT_HEADLINE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Critical, Severity::Warning, Severity::Info]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stockout,
    ProjectedStockout,
    BelowSafetyStock,
    Overstock,
    DemandOutsideInterval,
    NegativeOnHand,
    StaleData,
    ForecastBias,
    DemandStopped,
    PriceError,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Stockout,
        Kind::ProjectedStockout,
        Kind::BelowSafetyStock,
        Kind::Overstock,
        Kind::DemandOutsideInterval,
        Kind::NegativeOnHand,
        Kind::StaleData,
        Kind::ForecastBias,
        Kind::DemandStopped,
        Kind::PriceError,
    ];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stockout => "stockout",
            Kind::ProjectedStockout => "projected_stockout",
            Kind::BelowSafetyStock => "below_safety_stock",
            Kind::Overstock => "overstock",
            Kind::DemandOutsideInterval => "demand_outside_interval",
            Kind::NegativeOnHand => "negative_on_hand",
            Kind::StaleData => "stale_data",
            Kind::ForecastBias => "forecast_bias",
            Kind::DemandStopped => "demand_stopped",
            Kind::PriceError => "price_error",
        }
    }
}

/// One anomaly row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub date: NaiveDate,
    pub store: Option<String>,
    pub sku: Option<String>,
    pub kind: Kind,
    pub severity: Severity,
    pub observed: f64,
    /// The expected value or the threshold crossed.
    pub expected: f64,
    /// What was seen, in one sentence.
    pub message: String,
    /// The message and how the money figure was reached.
    pub reason: String,
    pub money_at_risk: f64,
    pub money_kind: MoneyKind,
}

/// What the monitor knows about one series on the run date.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesState {
    pub store: String,
    pub sku: String,
    /// Latest snapshot, if any.
    pub on_hand: Option<f64>,
    pub on_order: f64,
    /// Units sold over the last `recent_days`.
    pub recent_units: f64,
    pub lead_time_days: f64,
    /// From the run's reorder plan.
    pub safety_stock: Option<f64>,
    pub order_up_to: Option<f64>,
    pub days_of_cover: Option<f64>,
    pub projected_stockout: Option<NaiveDate>,
    pub order_qty: i64,
    /// Yesterday's actual and the previous run's forecast for it.
    pub actual_yesterday: Option<f64>,
    pub forecast_yesterday: Option<ForecastBand>,
    /// From the plan: unit cost, forecast daily demand, the order value
    /// and, for a held line, the order it would have placed.
    pub unit_cost: Option<f64>,
    pub daily_demand: Option<f64>,
    pub order_value: f64,
    pub held_order_value: Option<f64>,
    /// Average shelf price over the recent days before the run date, and
    /// the run date's price (from the sales table, when it has prices).
    pub unit_price: Option<f64>,
    pub price_today: Option<f64>,
    /// Units sold over the last `demand_stopped_days` and how many of
    /// those days had a sales row.
    pub stopped_window_units: f64,
    pub stopped_window_days: u32,
    /// Recent forecast errors (actual − forecast mean), oldest first.
    pub errors: Vec<f64>,
    /// The forecast means those errors were measured against.
    pub error_forecasts: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastBand {
    pub lo: f64,
    pub mid: f64,
    pub hi: f64,
}

/// Newest date seen for a store (or a table).
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub store: String,
    pub newest: NaiveDate,
}

/// Tracking signal: cumulative error over mean absolute deviation.
pub fn tracking_signal(errors: &[f64]) -> Option<f64> {
    if errors.is_empty() {
        return None;
    }
    let mad = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    if mad <= 0.0 {
        return None;
    }
    Some(errors.iter().sum::<f64>() / mad)
}

impl SeriesState {
    fn economics(&self) -> Economics {
        Economics {
            unit_cost: self.unit_cost,
            unit_price: self.unit_price,
            daily_demand: self.daily_demand,
            lead_time_days: self.lead_time_days,
        }
    }
}

/// Collects one series' anomalies with their money figure and reason.
struct Out<'a> {
    as_of: NaiveDate,
    s: &'a SeriesState,
    list: &'a mut Vec<Anomaly>,
}

impl Out<'_> {
    fn push(
        &mut self,
        kind: Kind,
        severity: Severity,
        (observed, expected): (f64, f64),
        message: String,
        m: Money,
    ) {
        self.list.push(Anomaly {
            date: self.as_of,
            store: Some(self.s.store.clone()),
            sku: Some(self.s.sku.clone()),
            kind,
            severity,
            observed,
            expected,
            reason: format!("{message}; {}", m.explain),
            message,
            money_at_risk: (m.amount * 100.0).round() / 100.0,
            money_kind: m.kind,
        });
    }
}

/// Apply every rule. The output is sorted by severity, then kind, store
/// and sku, so reports are stable (the worklist ranks it by money).
pub fn evaluate(
    rules: &Rules,
    as_of: NaiveDate,
    series: &[SeriesState],
    freshness: &[Freshness],
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for f in freshness {
        stale(rules, as_of, f, series, &mut out);
    }
    for s in series {
        let mut o = Out {
            as_of,
            s,
            list: &mut out,
        };
        stock_rules(rules, &mut o);
        band_rule(rules, &mut o);
        bias_rule(rules, &mut o);
        stopped_rule(rules, &mut o);
        price_rule(rules, &mut o);
    }
    out.sort_by(|a, b| {
        (a.severity, a.kind, &a.store, &a.sku).cmp(&(b.severity, b.kind, &b.store, &b.sku))
    });
    out
}

fn stale(
    rules: &Rules,
    as_of: NaiveDate,
    f: &Freshness,
    series: &[SeriesState],
    out: &mut Vec<Anomaly>,
) {
    let age = (as_of - f.newest).num_days();
    if age <= rules.stale_after_days {
        return;
    }
    let mine = series.iter().filter(|s| s.store == f.store);
    let (value, lines) = mine.fold((0.0, 0usize), |(v, n), s| {
        let line = s.held_order_value.unwrap_or(s.order_value);
        if line > 0.0 {
            (v + line, n + 1)
        } else {
            (v, n)
        }
    });
    let m = money::order_value_affected(value, lines);
    let message = format!(
        "no data from store {} since {} ({age} days)",
        f.store, f.newest
    );
    out.push(Anomaly {
        date: as_of,
        store: Some(f.store.clone()),
        sku: None,
        kind: Kind::StaleData,
        severity: Severity::Critical,
        observed: age as f64,
        expected: rules.stale_after_days as f64,
        reason: format!("{message}; {}", m.explain),
        message,
        money_at_risk: (m.amount * 100.0).round() / 100.0,
        money_kind: m.kind,
    });
}

fn stock_rules(rules: &Rules, o: &mut Out<'_>) {
    let s = o.s;
    let e = s.economics();
    let Some(oh) = s.on_hand else {
        return;
    };
    if oh < 0.0 {
        let value = s.held_order_value.unwrap_or(s.order_value);
        let value = if value > 0.0 {
            value
        } else {
            oh.abs() * s.unit_cost.unwrap_or(0.0)
        };
        o.push(
            Kind::NegativeOnHand,
            Severity::Critical,
            (oh, 0.0),
            format!("on-hand is {} (impossible; check the stock feed)", qty(oh)),
            money::order_value_affected(value, 1),
        );
    } else if oh == 0.0 && s.recent_units > 0.0 {
        o.push(
            Kind::Stockout,
            Severity::Critical,
            (oh, s.recent_units),
            format!(
                "out of stock with {} units sold in the last {} days",
                qty(s.recent_units),
                rules.recent_days
            ),
            e.stockout(),
        );
    }
    if oh > 0.0 {
        if let Some(ss) = s.safety_stock.filter(|ss| oh < *ss) {
            o.push(
                Kind::BelowSafetyStock,
                Severity::Warning,
                (oh, ss),
                format!("on-hand {} is below safety stock {}", qty(oh), qty(ss)),
                e.below_safety_stock(oh),
            );
        }
        let delivery = o.as_of + Duration::days(s.lead_time_days.ceil() as i64);
        if let Some(date) = s.projected_stockout.filter(|d| *d < delivery) {
            let days = (date - o.as_of).num_days();
            o.push(
                Kind::ProjectedStockout,
                if days <= 2 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                (days as f64, s.lead_time_days),
                format!(
                    "projected to run out on {date}, before the next possible delivery on {delivery}"
                ),
                e.projected_stockout(o.as_of, date),
            );
        }
    }
    let position = oh + s.on_order;
    if let Some(cover) = s
        .days_of_cover
        .filter(|c| *c > rules.overstock_days_of_cover)
    {
        o.push(
            Kind::Overstock,
            Severity::Info,
            (cover, rules.overstock_days_of_cover),
            format!("{cover:.0} days of cover"),
            money::overstock(&e, position, s.order_up_to),
        );
    } else if let Some(s_level) = s.order_up_to.filter(|v| *v > 0.0) {
        if position > rules.overstock_position_ratio * s_level {
            o.push(
                Kind::Overstock,
                Severity::Info,
                (position, s_level),
                format!(
                    "position {position:.0} is over {:.0}x the order-up-to level {s_level:.0}",
                    rules.overstock_position_ratio
                ),
                money::overstock(&e, position, s.order_up_to),
            );
        }
    }
}

fn band_rule(rules: &Rules, o: &mut Out<'_>) {
    let s = o.s;
    let (Some(actual), Some(band)) = (s.actual_yesterday, s.forecast_yesterday) else {
        return;
    };
    let e = s.economics();
    let half = ((band.hi - band.lo) / 2.0).max(1.0);
    if actual > band.hi {
        let critical = actual > band.hi + rules.spike_critical_ratio * half;
        o.push(
            Kind::DemandOutsideInterval,
            if critical {
                Severity::Critical
            } else {
                Severity::Warning
            },
            (actual, band.hi),
            format!(
                "sold {} yesterday, above the forecast's upper bound {} (median {})",
                qty(actual),
                qty(band.hi),
                qty(band.mid)
            ),
            e.outside_band(actual, band.hi),
        );
    } else if actual < band.lo {
        o.push(
            Kind::DemandOutsideInterval,
            Severity::Warning,
            (actual, band.lo),
            format!(
                "sold {} yesterday, below the forecast's lower bound {} (median {})",
                qty(actual),
                qty(band.lo),
                qty(band.mid)
            ),
            e.outside_band(actual, band.lo),
        );
    }
}

fn bias_rule(rules: &Rules, o: &mut Out<'_>) {
    let s = o.s;
    let n = s.errors.len();
    let mean_forecast = if s.error_forecasts.is_empty() {
        0.0
    } else {
        s.error_forecasts.iter().sum::<f64>() / s.error_forecasts.len() as f64
    };
    let mean_error = if n == 0 {
        0.0
    } else {
        s.errors.iter().sum::<f64>() / n as f64
    };
    let material = mean_forecast >= rules.tracking_signal_min_demand
        && mean_error.abs() >= rules.tracking_signal_min_relative_bias * mean_forecast;
    if n < rules.tracking_signal_min_points || !material {
        return;
    }
    if let Some(ts) = tracking_signal(&s.errors).filter(|t| t.abs() > rules.tracking_signal_limit) {
        o.push(
            Kind::ForecastBias,
            Severity::Warning,
            (ts, rules.tracking_signal_limit),
            format!(
                "tracking signal {ts:.1}: the forecast is consistently {}",
                if ts > 0.0 { "too low" } else { "too high" }
            ),
            s.economics().bias(mean_error),
        );
    }
}

/// Zero sales for `demand_stopped_days` in a row with stock on the shelf,
/// for a series the forecast expects to sell.
fn stopped_rule(rules: &Rules, o: &mut Out<'_>) {
    let s = o.s;
    let days = rules.demand_stopped_days;
    let daily = s.daily_demand.unwrap_or(0.0);
    let stocked = s.on_hand.is_some_and(|oh| oh > 0.0);
    if days == 0
        || !stocked
        || s.stopped_window_days < days
        || s.stopped_window_units > 0.0
        || daily < rules.demand_stopped_min_daily
    {
        return;
    }
    let e = s.economics();
    o.push(
        Kind::DemandStopped,
        Severity::Warning,
        (0.0, daily * f64::from(days)),
        format!(
            "sold nothing for {days} days with {} on hand, against a forecast of {} a day",
            qty(s.on_hand.unwrap_or(0.0)),
            qty(daily)
        ),
        e.margin(
            daily * f64::from(days),
            format!("{days} d of expected sales at {} a day missing", qty(daily)),
        ),
    );
}

/// A price feed error: the run date's price is impossible or far off the
/// series' recent average.
fn price_rule(rules: &Rules, o: &mut Out<'_>) {
    let s = o.s;
    let (Some(today), Some(usual)) = (s.price_today, s.unit_price) else {
        return;
    };
    let r = rules.price_error_ratio.max(1.0);
    let off = today <= 0.0 || usual <= 0.0 || today > usual * r || today * r < usual;
    if !off {
        return;
    }
    let days = rules.recent_days.max(1);
    let units = if s.recent_units > 0.0 {
        s.recent_units
    } else {
        s.daily_demand.unwrap_or(0.0) * f64::from(days)
    };
    let misstated = units * (today - usual).abs();
    o.push(
        Kind::PriceError,
        Severity::Critical,
        (today, usual),
        format!(
            "price {} on the run date against a recent average of {}; check the price feed",
            fmt_money(today),
            fmt_money(usual)
        ),
        Money {
            amount: misstated,
            kind: MoneyKind::OrderValueAffected,
            explain: format!(
                "{} units of {days} days priced {} off = {} of sales value misstated",
                qty(units),
                fmt_money((today - usual).abs()),
                fmt_money(misstated)
            ),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn base(sku: &str) -> SeriesState {
        SeriesState {
            store: "CA_1".into(),
            sku: sku.into(),
            on_hand: Some(50.0),
            on_order: 0.0,
            recent_units: 35.0,
            lead_time_days: 4.0,
            safety_stock: Some(10.0),
            order_up_to: Some(80.0),
            days_of_cover: Some(10.0),
            projected_stockout: Some(day(27) + Duration::days(10)),
            ..Default::default()
        }
    }

    fn kinds(a: &[Anomaly]) -> Vec<(&str, &str)> {
        a.iter()
            .map(|x| (x.kind.as_str(), x.severity.as_str()))
            .collect()
    }

    #[test]
    fn a_healthy_series_has_no_anomaly() {
        assert!(evaluate(&Rules::default(), day(27), &[base("A")], &[]).is_empty());
    }

    #[test]
    fn each_rule_fires_on_its_case() {
        let r = Rules::default();
        let today = day(27);
        let stockout = SeriesState {
            on_hand: Some(0.0),
            ..base("stockout")
        };
        let negative = SeriesState {
            on_hand: Some(-4.0),
            ..base("negative")
        };
        let below = SeriesState {
            on_hand: Some(6.0),
            projected_stockout: Some(today + Duration::days(30)),
            ..base("below")
        };
        let projected = SeriesState {
            projected_stockout: Some(today + Duration::days(2)),
            ..base("projected")
        };
        let overstock = SeriesState {
            days_of_cover: Some(200.0),
            ..base("overstock")
        };
        let spike = SeriesState {
            actual_yesterday: Some(60.0),
            forecast_yesterday: Some(ForecastBand {
                lo: 2.0,
                mid: 5.0,
                hi: 9.0,
            }),
            ..base("spike")
        };
        let biased = SeriesState {
            errors: vec![2.0, 3.0, 1.0, 2.5, 2.0, 1.5, 3.0, 2.0],
            error_forecasts: vec![5.0; 8],
            ..base("biased")
        };
        let fresh = [
            Freshness {
                store: "CA_1".into(),
                newest: day(27),
            },
            Freshness {
                store: "TX_2".into(),
                newest: day(23),
            },
        ];
        let all = [
            stockout, negative, below, projected, overstock, spike, biased,
        ];
        let a = evaluate(&r, today, &all, &fresh);
        assert_eq!(
            kinds(&a),
            vec![
                ("stockout", "critical"),
                ("projected_stockout", "critical"),
                ("demand_outside_interval", "critical"),
                ("negative_on_hand", "critical"),
                ("stale_data", "critical"),
                ("below_safety_stock", "warning"),
                ("forecast_bias", "warning"),
                ("overstock", "info"),
            ]
        );
        let stale = a.iter().find(|x| x.kind == Kind::StaleData).expect("stale");
        assert_eq!(stale.store.as_deref(), Some("TX_2"));
        assert_eq!(stale.observed, 4.0);
        let bias = a
            .iter()
            .find(|x| x.kind == Kind::ForecastBias)
            .expect("bias");
        assert!(
            (bias.observed - 8.0).abs() < 1e-9,
            "all errors positive: TS = n"
        );
    }

    #[test]
    fn thresholds_come_from_rules() {
        let r = Rules {
            overstock_days_of_cover: 5.0,
            ..Rules::default()
        };
        let a = evaluate(&r, day(27), &[base("A")], &[]);
        assert_eq!(kinds(&a), vec![("overstock", "info")]);
        let yaml = "overstock_days_of_cover: 30\nstale_after_days: 2\n";
        let parsed: Rules = serde_yaml::from_str(yaml).expect("rules");
        assert_eq!(parsed.stale_after_days, 2);
        assert_eq!(parsed.recent_days, 7);
        assert!(serde_yaml::from_str::<Rules>("stale_days: 2").is_err());
    }

    #[test]
    fn bias_needs_volume_and_a_material_mean_error() {
        let r = Rules::default();
        let noisy = SeriesState {
            // RSFE/MAD = 8 but the mean error is 5% of the forecast.
            errors: vec![1.0; 8],
            error_forecasts: vec![20.0; 8],
            ..base("noisy")
        };
        let slow = SeriesState {
            errors: vec![-0.3; 8],
            error_forecasts: vec![0.3; 8],
            ..base("slow")
        };
        assert!(evaluate(&r, day(27), &[noisy, slow], &[]).is_empty());
    }

    #[test]
    fn demand_stopped_and_price_errors() {
        let r = Rules::default();
        let stopped = SeriesState {
            daily_demand: Some(6.0),
            unit_cost: Some(2.0),
            stopped_window_days: 7,
            stopped_window_units: 0.0,
            recent_units: 0.0,
            ..base("stopped")
        };
        // Seven zero days but the forecast expects under 2 a day: noise.
        let slow = SeriesState {
            daily_demand: Some(1.0),
            ..stopped.clone()
        };
        // Six days of rows only: not yet seven in a row.
        let short = SeriesState {
            stopped_window_days: 6,
            ..stopped.clone()
        };
        let priced = SeriesState {
            unit_price: Some(4.0),
            price_today: Some(0.04),
            unit_cost: Some(2.0),
            recent_units: 35.0,
            ..base("priced")
        };
        let fine = SeriesState {
            unit_price: Some(4.0),
            price_today: Some(3.0),
            ..base("fine")
        };
        let a = evaluate(&r, day(27), &[stopped, slow, short, priced, fine], &[]);
        assert_eq!(
            kinds(&a),
            vec![("price_error", "critical"), ("demand_stopped", "warning")]
        );
        let stop = &a[1];
        assert_eq!(stop.sku.as_deref(), Some("stopped"));
        // 7 days × 6 a day × unit cost 2 (no price) = 84.
        assert_eq!(stop.money_at_risk, 84.0);
        assert_eq!(
            stop.reason,
            "sold nothing for 7 days with 50 on hand, against a forecast of 6 a day; 7 d of \
             expected sales at 6 a day missing: about 42 units lost × unit cost 2.00 = 84.00 \
             margin at risk"
        );
        assert_eq!(
            a[0].message,
            "price 0.04 on the run date against a recent average of 4.00; check the price feed"
        );
    }

    #[test]
    fn tracking_signal_values() {
        assert_eq!(tracking_signal(&[]), None);
        assert_eq!(tracking_signal(&[0.0, 0.0]), None);
        let ts = tracking_signal(&[1.0, -1.0, 2.0, -2.0]).expect("ts");
        assert!(ts.abs() < 1e-12);
    }
}
