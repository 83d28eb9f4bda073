//! Plain-language reasons for reorder lines, built from the numbers that
//! produced them, so that a planner can check a line by hand: the position,
//! the reorder point and what it is made of, the order-up-to level, the
//! raw need and how rounding turned it into the ordered quantity, and what
//! drives the forecast behind it. Pure; the `reorder` task writes the text
//! into the plan's `reason` column.

use chrono::NaiveDate;

use super::policy::{Item, PlanLine, Policy, Position};
use crate::forecast::events::EventCalendar;

/// A quantity as a planner reads it: one decimal at most, no trailing
/// `.0` (`12`, `30.6`, `-4`).
pub fn qty(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.1}", x);
    let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
    if s == "-0" { "0".into() } else { s }
}

/// Money with two decimals and thousands separators (`1,234.50`).
pub fn money(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.2}", x.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign = if x < 0.0 && s != "0.00" { "-" } else { "" };
    format!("{sign}{out}.{frac}")
}

/// A service level as a percentage (`95%`, `97.5%`).
pub fn percent(level: f64) -> String {
    format!("{}%", qty(level * 100.0))
}

/// What drives a series' forecast, as far as the forecast table says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drivers {
    /// The model kind that served the series (`ets`, `lstm` …), when known.
    pub model_kind: Option<String>,
    /// The series' model group, when known.
    pub group: Option<String>,
    /// First promotion day ahead, when known (see [`Drivers::ahead`]).
    pub promotion_from: Option<NaiveDate>,
    /// First known event inside the protection interval, with its names.
    pub event_ahead: Option<(NaiveDate, Vec<String>)>,
    /// Forecast flags other than the clean state (`intermittent` …).
    pub flags: Vec<String>,
    /// Change of the forecast's daily mean from the first to the last week
    /// of the horizon, as a fraction (0.15 = rising 15%).
    pub trend: Option<f64>,
}

impl Drivers {
    /// The drivers as they bear on an order covering the days after
    /// `as_of` up to `until` (its protection interval): a promotion that
    /// starts later is dropped, and the first event of `events` in the
    /// interval is named.
    pub fn ahead(mut self, as_of: NaiveDate, until: NaiveDate, events: &EventCalendar) -> Self {
        self.promotion_from = self.promotion_from.filter(|d| *d > as_of && *d <= until);
        self.event_ahead = as_of
            .succ_opt()
            .and_then(|from| events.first_between(from, until));
        self
    }

    /// `forecast by ets (group FOODS_1), rising 15% over the horizon`, or
    /// an empty string when nothing is known.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(kind) = &self.model_kind {
            match &self.group {
                Some(g) => parts.push(format!("forecast by {kind} (group {g})")),
                None => parts.push(format!("forecast by {kind}")),
            }
        }
        if let Some(d) = self.promotion_from {
            parts.push(format!("promotion from {d}"));
        }
        if let Some((d, names)) = &self.event_ahead {
            parts.push(format!("{} on {d}", names.join(" and ")));
        }
        if let Some(t) = self.trend.filter(|t| t.abs() >= 0.1) {
            let dir = if t > 0.0 { "rising" } else { "falling" };
            parts.push(format!("{dir} {} over the horizon", percent(t.abs())));
        }
        if !self.flags.is_empty() {
            parts.push(format!("flags {}", self.flags.join(", ")));
        }
        parts.join(", ")
    }
}

/// `demand over lead time 7 d + review 7 d (mean 31, sd 9) + safety stock
/// 9 at 95% service`.
fn reorder_point_parts(policy: Policy, item: &Item, line: &PlanLine) -> String {
    let review = match policy {
        Policy::ContinuousEoq => String::new(),
        _ => format!(" + review {} d", qty(item.review_period_days.max(0.0))),
    };
    let lt_sd = if item.lead_time_sd_days > 0.0 {
        format!(" (lead time sd {} d)", qty(item.lead_time_sd_days))
    } else {
        String::new()
    };
    format!(
        "demand over lead time {} d{review} (mean {}, sd {}) + safety stock {} at {} service{lt_sd}",
        qty(item.lead_time_days.max(0.0)),
        qty(line.demand_mean),
        qty(line.demand_sd),
        qty(line.safety_stock),
        percent(item.service_level),
    )
}

/// How the raw need became the ordered quantity: `rounded up to the case
/// pack of 12: 48`, `raised to the MOQ of 24: 24`, `rounded up to 46`.
fn rounding(item: &Item, line: &PlanLine) -> String {
    let units = line.need.ceil() as i64;
    let pack = item.case_pack.max(1);
    let moq = item.moq.max(0);
    let mut steps = Vec::new();
    let mut after_moq = units;
    if moq > units {
        steps.push(format!("raised to the MOQ of {moq}"));
        after_moq = moq;
    }
    if pack > 1 {
        if line.order_qty != after_moq {
            steps.push(format!("rounded up to the case pack of {pack}"));
        } else {
            steps.push(format!("whole cases of {pack}"));
        }
    }
    if steps.is_empty() {
        format!("rounded up to {}", line.order_qty)
    } else {
        format!("{}: {}", steps.join(" and "), line.order_qty)
    }
}

/// The reason of one computed (not held) reorder line.
pub fn order_reason(
    policy: Policy,
    item: &Item,
    pos: &Position,
    line: &PlanLine,
    drivers: &Drivers,
) -> String {
    let position = format!(
        "position {} (on hand {} + on order {})",
        qty(line.inventory_position),
        qty(pos.on_hand),
        qty(pos.on_order)
    );
    let rop = format!(
        "the reorder point {} = {}",
        qty(line.reorder_point),
        reorder_point_parts(policy, item, line)
    );
    let mut text = if line.order_qty > 0 {
        let relation = match policy {
            Policy::PeriodicOrderUpTo => "is below",
            _ => "is at or below",
        };
        let target = match (policy, line.eoq) {
            (Policy::PeriodicMinMax, Some(q)) => format!(
                "order up to {} = reorder point + EOQ {} needs {}",
                qty(line.order_up_to),
                qty(q),
                qty(line.need)
            ),
            (Policy::ContinuousEoq, Some(q)) => {
                let lot = q.max(1.0);
                format!(
                    "{} lot(s) of EOQ {} = {} lift it above the reorder point",
                    qty((line.need / lot).round()),
                    qty(lot),
                    qty(line.need)
                )
            }
            _ => format!(
                "order up to {} needs {}",
                qty(line.order_up_to),
                qty(line.need)
            ),
        };
        format!(
            "{position} {relation} {rop}; {target}, {}",
            rounding(item, line)
        )
    } else {
        let next = match line.order_by {
            Some(d) => format!("; next order due by {d}"),
            None => String::new(),
        };
        format!("{position} covers {rop}; no order{next}")
    };
    let d = drivers.describe();
    if !d.is_empty() {
        text.push_str("; ");
        text.push_str(&d);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::policy::{Step, plan};

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).expect("date")
    }

    #[test]
    fn numbers_read_like_a_planner_writes_them() {
        assert_eq!(qty(12.0), "12");
        assert_eq!(qty(30.64), "30.6");
        assert_eq!(qty(-0.01), "0");
        assert_eq!(money(1234.5), "1,234.50");
        assert_eq!(money(-1000.0), "-1,000.00");
        assert_eq!(percent(0.975), "97.5%");
    }

    #[test]
    fn drivers_name_the_model_promotion_trend_and_flags() {
        let all = Drivers {
            model_kind: Some("tsb".into()),
            group: Some("FOODS".into()),
            promotion_from: Some(day()),
            event_ahead: Some((day(), vec!["BlackFriday".into(), "Payday".into()])),
            flags: vec!["intermittent".into(), "gaps_filled".into()],
            trend: Some(-0.25),
        };
        assert_eq!(
            all.describe(),
            "forecast by tsb (group FOODS), promotion from 2026-11-27, \
             BlackFriday and Payday on 2026-11-27, falling 25% over the horizon, \
             flags intermittent, gaps_filled"
        );
        // A trend under 10% is not worth a word; no group, no brackets.
        let quiet = Drivers {
            model_kind: Some("ets".into()),
            trend: Some(0.08),
            ..Drivers::default()
        };
        assert_eq!(quiet.describe(), "forecast by ets");
        let rising = Drivers {
            trend: Some(0.153),
            ..Drivers::default()
        };
        assert_eq!(rising.describe(), "rising 15.3% over the horizon");
        assert_eq!(Drivers::default().describe(), "");
    }

    /// Only what falls inside the protection interval drives the order: a
    /// promotion or an event after it, or on the run date itself, is not
    /// named.
    #[test]
    fn drivers_ahead_keep_what_falls_inside_the_protection_interval() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 12, n).expect("date");
        let events = EventCalendar::new([
            (d(1), "Market".to_string()),
            (d(10), "Payday".to_string()),
            (d(24), "ChristmasEve".to_string()),
        ]);
        let promoted = |from: u32| Drivers {
            promotion_from: Some(d(from)),
            ..Drivers::default()
        };
        let within = promoted(5).ahead(d(1), d(12), &events);
        assert_eq!(
            within.describe(),
            "promotion from 2026-12-05, Payday on 2026-12-10"
        );
        let beyond = promoted(20).ahead(d(1), d(9), &events);
        assert_eq!(beyond.describe(), "");
        let later = promoted(20).ahead(d(11), d(25), &events);
        assert_eq!(
            later.describe(),
            "promotion from 2026-12-20, ChristmasEve on 2026-12-24"
        );
    }

    /// Hand-computed: 10 steps of mean 5 and no spread, lead time 4 d,
    /// review 3 d: demand 35, safety stock 0 (no spread, no lead-time sd),
    /// reorder point 35; position 8 + 4 = 12 needs 23, 2 cases of 12 = 24.
    #[test]
    fn an_order_up_to_line_explains_every_number() {
        let item = Item {
            unit_cost: 2.0,
            case_pack: 12,
            moq: 0,
            lead_time_days: 4.0,
            lead_time_sd_days: 0.0,
            review_period_days: 3.0,
            service_level: 0.95,
            holding_rate: 0.25,
            order_cost: 20.0,
        };
        let pos = Position {
            as_of: day(),
            on_hand: 8.0,
            on_order: 4.0,
        };
        let steps = vec![
            Step {
                mean: 5.0,
                lo: 5.0,
                hi: 5.0,
                lo_level: 0.1,
                hi_level: 0.9,
            };
            10
        ];
        let line = plan(Policy::PeriodicOrderUpTo, &item, &pos, &steps);
        assert_eq!(line.order_qty, 24);
        let drivers = Drivers {
            model_kind: Some("ets".into()),
            group: Some("FOODS_1".into()),
            ..Drivers::default()
        };
        assert_eq!(
            order_reason(Policy::PeriodicOrderUpTo, &item, &pos, &line, &drivers),
            "position 12 (on hand 8 + on order 4) is below the reorder point 35 = demand over \
             lead time 4 d + review 3 d (mean 35, sd 0) + safety stock 0 at 95% service; order \
             up to 35 needs 23, rounded up to the case pack of 12: 24; forecast by ets (group FOODS_1)"
        );
    }

    /// Hand-computed: mean 10/day with σ 2/day (p10/p90 at ±2·1.2816),
    /// lead time 2 d (sd 1 d) + review 1 d: mean 30, sd √12 = 3.46,
    /// SS = 1.6449·√(3·4 + 100·1) = 17.41, ROP 47.41; on hand 60 covers it.
    #[test]
    fn a_covered_line_says_why_and_when_the_next_order_is_due() {
        let item = Item {
            unit_cost: 1.0,
            case_pack: 1,
            moq: 0,
            lead_time_days: 2.0,
            lead_time_sd_days: 1.0,
            review_period_days: 1.0,
            service_level: 0.95,
            holding_rate: 0.25,
            order_cost: 20.0,
        };
        let pos = Position {
            as_of: day(),
            on_hand: 60.0,
            on_order: 0.0,
        };
        let z = crate::inventory::normal::inv_cdf(0.9);
        let steps = vec![
            Step {
                mean: 10.0,
                lo: 10.0 - 2.0 * z,
                hi: 10.0 + 2.0 * z,
                lo_level: 0.1,
                hi_level: 0.9,
            };
            7
        ];
        let line = plan(Policy::PeriodicOrderUpTo, &item, &pos, &steps);
        assert_eq!(
            order_reason(
                Policy::PeriodicOrderUpTo,
                &item,
                &pos,
                &line,
                &Drivers::default()
            ),
            "position 60 (on hand 60 + on order 0) covers the reorder point 47.4 = demand over \
             lead time 2 d + review 1 d (mean 30, sd 3.5) + safety stock 17.4 at 95% service \
             (lead time sd 1 d); no order; next order due by 2026-11-28"
        );
    }

    /// MOQ above the need, then whole cases: need 3, MOQ 10, pack 4 → 12.
    #[test]
    fn moq_and_case_pack_are_both_named() {
        let item = Item {
            unit_cost: 1.0,
            case_pack: 4,
            moq: 10,
            lead_time_days: 1.0,
            lead_time_sd_days: 0.0,
            review_period_days: 1.0,
            service_level: 0.5,
            holding_rate: 0.25,
            order_cost: 20.0,
        };
        let pos = Position {
            as_of: day(),
            on_hand: 1.0,
            on_order: 0.0,
        };
        let steps = vec![
            Step {
                mean: 2.0,
                lo: 2.0,
                hi: 2.0,
                lo_level: 0.1,
                hi_level: 0.9,
            };
            3
        ];
        let line = plan(Policy::PeriodicOrderUpTo, &item, &pos, &steps);
        assert_eq!(line.order_qty, 12);
        let r = order_reason(
            Policy::PeriodicOrderUpTo,
            &item,
            &pos,
            &line,
            &Drivers::default(),
        );
        assert!(
            r.ends_with(
                "order up to 4 needs 3, raised to the MOQ of 10 and rounded up to the case pack of 4: 12"
            ),
            "{r}"
        );
    }
}
