//! The monitor's rules, one function per family, and the materiality
//! test that keeps the worklist short: a stock, band or bias anomaly whose
//! money figure is below `min_money_at_risk` is kept as `info` (in the
//! table and the CSV, not in the headline), the stock family is reported
//! once per series (the most urgent of stockout, projected stockout and
//! below safety stock, the others named in its reason), and demand is
//! only called outside its interval when it is past the band by
//! `band_margin` half-widths (an 80% band is missed by one series in five
//! on any night by design). Data faults (negative on-hand, stale feeds,
//! price errors, stopped demand) and critical spikes are never demoted.

use chrono::{Duration, NaiveDate};

use super::money::{self, Money, MoneyKind};
use super::monitor::{Anomaly, Freshness, Kind, Rules, SeriesState, Severity, tracking_signal};
use super::reason::{money as fmt_money, qty};

/// Collects one series' anomalies with their money figure and reason.
struct Out<'a> {
    rules: &'a Rules,
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

    /// `severity` when the money figure is material, `info` otherwise.
    fn material(&self, severity: Severity, m: &Money) -> Severity {
        if m.amount >= self.rules.min_money_at_risk {
            severity
        } else {
            Severity::Info
        }
    }
}

/// Every per-series rule.
pub fn series(rules: &Rules, as_of: NaiveDate, s: &SeriesState, out: &mut Vec<Anomaly>) {
    let mut o = Out {
        rules,
        as_of,
        s,
        list: out,
    };
    stock_rules(&mut o);
    overstock_rule(&mut o);
    band_rule(&mut o);
    bias_rule(&mut o);
    stopped_rule(&mut o);
    price_rule(&mut o);
}

/// The store's feed is older than `stale_after_days`: one critical
/// anomaly for the store. Returns whether it fired.
pub fn stale(
    rules: &Rules,
    as_of: NaiveDate,
    f: &Freshness,
    series: &[SeriesState],
    out: &mut Vec<Anomaly>,
) -> bool {
    let age = (as_of - f.newest).num_days();
    if age <= rules.stale_after_days {
        return false;
    }
    let mine: Vec<&SeriesState> = series.iter().filter(|s| s.store == f.store).collect();
    let (value, lines) = mine.iter().fold((0.0, 0usize), |(v, n), s| {
        let line = s.held_order_value.unwrap_or(s.order_value);
        if line > 0.0 {
            (v + line, n + 1)
        } else {
            (v, n)
        }
    });
    let m = money::order_value_affected(value, lines);
    let message = format!(
        "no data from store {} since {} ({age} days); its {} series are not checked until it reports",
        f.store,
        f.newest,
        mine.len()
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
    true
}

/// One stock anomaly at most per series: a negative on-hand (a data
/// fault), else the most urgent of stockout, projected stockout and below
/// safety stock, naming the others it also met.
fn stock_rules(o: &mut Out<'_>) {
    let s = o.s;
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
        return;
    }
    let e = s.economics();
    if oh == 0.0 {
        if s.recent_units > 0.0 {
            let m = e.stockout();
            let message = format!(
                "out of stock with {} units sold in the last {} days",
                qty(s.recent_units),
                o.rules.recent_days
            );
            let severity = o.material(Severity::Critical, &m);
            o.push(Kind::Stockout, severity, (oh, s.recent_units), message, m);
        }
        return;
    }
    let below = s.safety_stock.filter(|ss| oh < *ss);
    let delivery = o.as_of + Duration::days(s.lead_time_days.ceil() as i64);
    if let Some(date) = s.projected_stockout.filter(|d| *d < delivery) {
        let days = (date - o.as_of).num_days();
        let mut message = format!(
            "projected to run out on {date}, before the next possible delivery on {delivery}"
        );
        if let Some(ss) = below {
            message.push_str(&format!(
                " (on-hand {} is already below safety stock {})",
                qty(oh),
                qty(ss)
            ));
        }
        let m = e.projected_stockout(o.as_of, date);
        let urgent = if days <= 2 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let severity = o.material(urgent, &m);
        o.push(
            Kind::ProjectedStockout,
            severity,
            (days as f64, s.lead_time_days),
            message,
            m,
        );
    } else if let Some(ss) = below {
        // Stock dips below safety stock in most review cycles; the plan
        // already reorders, so on its own this is for the record.
        o.push(
            Kind::BelowSafetyStock,
            Severity::Info,
            (oh, ss),
            format!("on-hand {} is below safety stock {}", qty(oh), qty(ss)),
            e.below_safety_stock(oh),
        );
    }
}

fn overstock_rule(o: &mut Out<'_>) {
    let (s, rules) = (o.s, o.rules);
    let Some(oh) = s.on_hand.filter(|oh| *oh >= 0.0) else {
        return;
    };
    let e = s.economics();
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

/// Yesterday's demand past the forecast band by more than `band_margin`
/// half-widths; critical past `spike_critical_ratio` half-widths.
fn band_rule(o: &mut Out<'_>) {
    let (s, rules) = (o.s, o.rules);
    let (Some(actual), Some(band)) = (s.actual_yesterday, s.forecast_yesterday) else {
        return;
    };
    let e = s.economics();
    let half = ((band.hi - band.lo) / 2.0).max(1.0);
    let (side, bound) = if actual > band.hi + rules.band_margin * half {
        ("above the forecast's upper bound", band.hi)
    } else if actual < band.lo - rules.band_margin * half {
        ("below the forecast's lower bound", band.lo)
    } else {
        return;
    };
    let m = e.outside_band(actual, bound);
    let severity = if actual > band.hi + rules.spike_critical_ratio * half {
        Severity::Critical
    } else {
        o.material(Severity::Warning, &m)
    };
    o.push(
        Kind::DemandOutsideInterval,
        severity,
        (actual, bound),
        format!(
            "sold {} yesterday, {side} {} (median {})",
            qty(actual),
            qty(bound),
            qty(band.mid)
        ),
        m,
    );
}

fn bias_rule(o: &mut Out<'_>) {
    let (s, rules) = (o.s, o.rules);
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
        let m = s.economics().bias(mean_error);
        let severity = o.material(Severity::Warning, &m);
        o.push(
            Kind::ForecastBias,
            severity,
            (ts, rules.tracking_signal_limit),
            format!(
                "tracking signal {ts:.1}: the forecast is consistently {}",
                if ts > 0.0 { "too low" } else { "too high" }
            ),
            m,
        );
    }
}

/// Zero sales for `demand_stopped_days` in a row with stock on the shelf,
/// for a series the forecast expects to sell.
fn stopped_rule(o: &mut Out<'_>) {
    let (s, rules) = (o.s, o.rules);
    let days = rules.demand_stopped_days;
    let daily = s.daily_demand.unwrap_or(0.0);
    let stocked = s.on_hand.is_some_and(|oh| oh > 0.0);
    // The whole run of days without a sale, as far as the read reaches;
    // it grows each night the shelf stays silent.
    let Some(run) = s.silent_days.filter(|d| *d >= days) else {
        return;
    };
    if days == 0 || !stocked || daily < rules.demand_stopped_min_daily {
        return;
    }
    let e = s.economics();
    o.push(
        Kind::DemandStopped,
        Severity::Warning,
        (f64::from(run), f64::from(days)),
        format!(
            "sold nothing for {run} days with {} on hand, against a forecast of {} a day",
            qty(s.on_hand.unwrap_or(0.0)),
            qty(daily)
        ),
        e.margin(
            daily * f64::from(run),
            format!("{run} d of expected sales at {} a day missing", qty(daily)),
        ),
    );
}

/// A price feed error: the run date's price is impossible or far off the
/// series' recent average.
fn price_rule(o: &mut Out<'_>) {
    let (s, rules) = (o.s, o.rules);
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
    use crate::inventory::monitor::{ForecastBand, evaluate};

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
        let r = Rules {
            min_money_at_risk: 0.0,
            ..Rules::default()
        };
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
                ("forecast_bias", "warning"),
                ("below_safety_stock", "info"),
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

    fn priced(s: SeriesState) -> SeriesState {
        SeriesState {
            unit_cost: Some(2.0),
            unit_price: Some(4.0),
            daily_demand: Some(5.0),
            ..s
        }
    }

    #[test]
    fn small_money_is_info_and_data_faults_never_are() {
        let today = day(27);
        // Out of stock, 5 a day × 4 days to delivery × margin 2 = 40.
        let small = priced(SeriesState {
            on_hand: Some(0.0),
            ..base("small")
        });
        let negative = priced(SeriesState {
            on_hand: Some(-1.0),
            order_value: 1.0,
            ..base("negative")
        });
        let at_40 = Rules {
            min_money_at_risk: 40.0,
            ..Rules::default()
        };
        let a = evaluate(&at_40, today, &[small.clone(), negative.clone()], &[]);
        assert_eq!(
            kinds(&a),
            vec![("stockout", "critical"), ("negative_on_hand", "critical")]
        );
        assert_eq!(a[0].money_at_risk, 40.0);
        let at_41 = Rules {
            min_money_at_risk: 40.01,
            ..Rules::default()
        };
        let a = evaluate(&at_41, today, &[small, negative], &[]);
        assert_eq!(
            kinds(&a),
            vec![("negative_on_hand", "critical"), ("stockout", "info")]
        );
    }

    #[test]
    fn one_stock_anomaly_per_series_naming_the_others() {
        let r = Rules {
            min_money_at_risk: 0.0,
            ..Rules::default()
        };
        let both = priced(SeriesState {
            on_hand: Some(6.0),
            projected_stockout: Some(day(27) + Duration::days(2)),
            ..base("both")
        });
        let a = evaluate(&r, day(27), &[both], &[]);
        assert_eq!(kinds(&a), vec![("projected_stockout", "critical")]);
        assert_eq!(
            a[0].message,
            "projected to run out on 2026-11-29, before the next possible delivery on \
             2026-12-01 (on-hand 6 is already below safety stock 10)"
        );
    }

    #[test]
    fn a_stale_store_is_one_anomaly_not_one_per_series() {
        let r = Rules::default();
        let old = SeriesState {
            store: "TX_1".into(),
            on_hand: Some(0.0),
            ..priced(base("old"))
        };
        let fresh = [Freshness {
            store: "TX_1".into(),
            newest: day(23),
        }];
        let a = evaluate(&r, day(27), &[old.clone(), old], &fresh);
        assert_eq!(kinds(&a), vec![("stale_data", "critical")]);
        assert_eq!(
            a[0].message,
            "no data from store TX_1 since 2026-11-23 (4 days); its 2 series are not checked \
             until it reports"
        );
    }

    #[test]
    fn demand_inside_the_margin_is_not_an_anomaly() {
        let r = Rules {
            min_money_at_risk: 0.0,
            ..Rules::default()
        };
        let band = ForecastBand {
            lo: 2.0,
            mid: 5.0,
            hi: 8.0,
        };
        // Half-width 3: the margin ends at 11 above and -1 below.
        let at = |sold: f64| {
            priced(SeriesState {
                actual_yesterday: Some(sold),
                forecast_yesterday: Some(band),
                ..base("band")
            })
        };
        let fired = |sold: f64| -> Vec<(String, String)> {
            evaluate(&r, day(27), &[at(sold)], &[])
                .iter()
                .map(|x| (x.kind.as_str().into(), x.severity.as_str().into()))
                .collect()
        };
        let pair = |k: &str, s: &str| vec![(k.to_string(), s.to_string())];
        assert!(fired(10.0).is_empty(), "inside the margin");
        assert!(fired(0.0).is_empty(), "zero is inside the lower margin");
        assert_eq!(fired(11.5), pair("demand_outside_interval", "warning"));
        // Past 8 + 3 × 3 = 17 it is critical whatever the money.
        assert_eq!(fired(17.5), pair("demand_outside_interval", "critical"));
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
            silent_days: Some(7),
            recent_units: 0.0,
            ..base("stopped")
        };
        // Seven zero days but the forecast expects under 2 a day: noise.
        let slow = SeriesState {
            daily_demand: Some(1.0),
            ..stopped.clone()
        };
        // Six silent days only: not yet seven in a row.
        let short = SeriesState {
            silent_days: Some(6),
            ..stopped.clone()
        };
        // Rows that stop short of the run date: missing data, not silence.
        let unknown = SeriesState {
            silent_days: None,
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
        let a = evaluate(
            &r,
            day(27),
            &[stopped, slow, short, unknown, priced, fine],
            &[],
        );
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
}
