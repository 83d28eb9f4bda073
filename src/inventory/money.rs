//! The money figure of an anomaly, so that a worklist can be ranked by
//! what it is worth acting on (as an exception workbench does):
//!
//! * stockouts, projected stockouts, shortfalls below safety stock,
//!   demand above the forecast band and a forecast biased low put
//!   **margin at risk**: expected lost units × unit margin (price − unit
//!   cost; the unit cost when no price is known);
//! * overstock, demand below the band and a forecast biased high tie up
//!   **capital**: excess units × unit cost;
//! * data errors (negative on hand, a stale store) are worth the **order
//!   value they affect**: the held lines' would-be orders.
//!
//! Lost units are counted until the next possible delivery (the lead
//! time, at least one day): what an order placed now cannot prevent.
//! Each figure comes with the sentence that derives it. Pure.

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use super::reason::{money, qty};

/// What the money figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyKind {
    MarginAtRisk,
    CapitalTiedUp,
    OrderValueAffected,
}

impl MoneyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MoneyKind::MarginAtRisk => "margin_at_risk",
            MoneyKind::CapitalTiedUp => "capital_tied_up",
            MoneyKind::OrderValueAffected => "order_value_affected",
        }
    }
}

/// An anomaly's money figure and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    pub amount: f64,
    pub kind: MoneyKind,
    pub explain: String,
}

/// Prices and demand of one series, as the monitor knows them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Economics {
    pub unit_cost: Option<f64>,
    pub unit_price: Option<f64>,
    /// Forecast daily demand (from the plan).
    pub daily_demand: Option<f64>,
    pub lead_time_days: f64,
}

impl Economics {
    /// Price − cost when the price is above cost, else the unit cost.
    pub fn unit_margin(&self) -> (f64, &'static str) {
        let cost = self.unit_cost.unwrap_or(0.0).max(0.0);
        match self.unit_price {
            Some(p) if p.is_finite() && p > cost => (p - cost, "margin"),
            _ => (cost, "unit cost"),
        }
    }

    fn days_to_delivery(&self) -> f64 {
        self.lead_time_days.max(1.0)
    }

    fn daily(&self) -> f64 {
        self.daily_demand
            .filter(|d| d.is_finite())
            .unwrap_or(0.0)
            .max(0.0)
    }

    /// `lost` units × margin, explained with `why`.
    pub fn margin(&self, lost: f64, why: String) -> Money {
        let lost = lost.max(0.0);
        let (m, name) = self.unit_margin();
        Money {
            amount: lost * m,
            kind: MoneyKind::MarginAtRisk,
            explain: format!(
                "{why}: about {} units lost × {name} {} = {} margin at risk",
                qty(lost),
                money(m),
                money(lost * m)
            ),
        }
    }

    /// `units` × unit cost of capital tied up.
    pub fn capital(&self, units: f64, why: String) -> Money {
        let units = units.max(0.0);
        let cost = self.unit_cost.unwrap_or(0.0).max(0.0);
        Money {
            amount: units * cost,
            kind: MoneyKind::CapitalTiedUp,
            explain: format!(
                "{why}: {} units × unit cost {} = {} capital tied up",
                qty(units),
                money(cost),
                money(units * cost)
            ),
        }
    }

    /// Out of stock now: demand until the next delivery is lost.
    pub fn stockout(&self) -> Money {
        let days = self.days_to_delivery();
        self.margin(
            self.daily() * days,
            format!(
                "at {} a day until the next possible delivery in {} d",
                qty(self.daily()),
                qty(days)
            ),
        )
    }

    /// Runs out on `date`, before the next possible delivery.
    pub fn projected_stockout(&self, as_of: NaiveDate, date: NaiveDate) -> Money {
        let delivery = as_of + Duration::days(self.days_to_delivery().ceil() as i64);
        let short = (delivery - date).num_days().max(0) as f64;
        self.margin(
            self.daily() * short,
            format!(
                "{} d without stock before a delivery on {delivery} at {} a day",
                qty(short),
                qty(self.daily())
            ),
        )
    }

    /// Below safety stock: the part of lead-time demand on hand cannot meet.
    pub fn below_safety_stock(&self, on_hand: f64) -> Money {
        let days = self.days_to_delivery();
        let need = self.daily() * days;
        self.margin(
            need - on_hand,
            format!(
                "demand until the next possible delivery is {} against {} on hand",
                qty(need),
                qty(on_hand)
            ),
        )
    }

    /// Demand outside the forecast band: if it stays there until the next
    /// delivery, the gap is lost (above) or sits on the shelf (below).
    pub fn outside_band(&self, actual: f64, bound: f64) -> Money {
        let days = self.days_to_delivery();
        let gap = (actual - bound).abs() * days;
        let why = format!(
            "if demand stays {} a day {} the band for the {} d to the next possible delivery",
            qty((actual - bound).abs()),
            if actual > bound { "above" } else { "below" },
            qty(days)
        );
        if actual > bound {
            self.margin(gap, why)
        } else {
            self.capital(gap, why)
        }
    }

    /// A biased forecast: the mean error over the lead time.
    pub fn bias(&self, mean_error: f64) -> Money {
        let days = self.days_to_delivery();
        let units = mean_error.abs() * days;
        let why = format!(
            "the forecast is off by {} a day over the {} d lead time",
            qty(mean_error.abs()),
            qty(days)
        );
        if mean_error > 0.0 {
            self.margin(units, why)
        } else {
            self.capital(units, why)
        }
    }
}

/// Capital in stock above what the policy would hold.
pub fn overstock(e: &Economics, position: f64, order_up_to: Option<f64>) -> Money {
    let target = order_up_to.unwrap_or(0.0).max(0.0);
    e.capital(
        position - target,
        format!(
            "position {} against an order-up-to level of {}",
            qty(position),
            qty(target)
        ),
    )
}

/// A data error: the order value of the lines it holds or distorts.
pub fn order_value_affected(value: f64, lines: usize) -> Money {
    Money {
        amount: value.max(0.0),
        kind: MoneyKind::OrderValueAffected,
        explain: format!(
            "{lines} order line(s) rest on this data: order value affected = {}",
            money(value.max(0.0))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e() -> Economics {
        Economics {
            unit_cost: Some(2.0),
            unit_price: Some(3.5),
            daily_demand: Some(5.0),
            lead_time_days: 4.0,
        }
    }

    #[test]
    fn stockout_is_lost_margin_until_the_next_delivery() {
        // 5 a day × 4 days = 20 units × (3.50 − 2.00) = 30.00.
        let m = e().stockout();
        assert_eq!(m.amount, 30.0);
        assert_eq!(
            m.explain,
            "at 5 a day until the next possible delivery in 4 d: about 20 units lost × \
             margin 1.50 = 30.00 margin at risk"
        );
        // Without a price the unit cost stands in for the margin.
        let no_price = Economics {
            unit_price: None,
            ..e()
        };
        assert_eq!(no_price.stockout().amount, 40.0);
    }

    #[test]
    fn projected_stockout_counts_the_days_without_stock() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        // Out on the 29th, delivery on 1 Dec: 2 days × 5 × 1.50 = 15.
        let m = e().projected_stockout(as_of, as_of + Duration::days(2));
        assert_eq!(m.amount, 15.0);
    }

    #[test]
    fn overstock_and_data_errors() {
        let m = overstock(&e(), 500.0, Some(80.0));
        assert_eq!(m.amount, 840.0);
        assert_eq!(m.kind, MoneyKind::CapitalTiedUp);
        assert_eq!(
            m.explain,
            "position 500 against an order-up-to level of 80: 420 units × unit cost 2.00 = \
             840.00 capital tied up"
        );
        let d = order_value_affected(1834.56, 1);
        assert_eq!(d.kind, MoneyKind::OrderValueAffected);
        assert_eq!(d.amount, 1834.56);
    }

    #[test]
    fn band_and_bias_point_the_right_way() {
        // Sold 60 against an upper bound of 14: 46 × 4 days × 1.50.
        let up = e().outside_band(60.0, 14.0);
        assert_eq!((up.amount, up.kind), (276.0, MoneyKind::MarginAtRisk));
        let down = e().outside_band(0.0, 6.0);
        assert_eq!((down.amount, down.kind), (48.0, MoneyKind::CapitalTiedUp));
        assert_eq!(e().bias(-1.0).kind, MoneyKind::CapitalTiedUp);
    }
}
