//! What the monitor reads, one step per table: the stock snapshot, the
//! recent sales (demand, yesterday's actual, the silent run, prices), the
//! freshness of each store's feed, the run's plan and the previous runs'
//! step-1 forecasts, each folded into the [`SeriesState`] of its series;
//! and the rules read in the data's periods ([`in_periods`]).

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::MonitorSpec;
use crate::forecast::Frequency;
use crate::inventory::monitor::{ForecastBand, Freshness, Rules, SeriesState};
use crate::tasks::tables::{self, Cols};
use crate::tasks::{AttemptContext, TaskError};

/// Each series' state by (store, sku).
pub(super) type State = BTreeMap<(String, String), SeriesState>;

/// The monitor's reads for one run.
pub(super) struct Reader<'a> {
    pub cx: &'a AttemptContext,
    pub ctx: &'a SessionContext,
    pub spec: &'a MonitorSpec,
    /// The rules in the data's periods.
    pub rules: &'a Rules,
    pub as_of: NaiveDate,
    /// Days one sales row spans (7 on weekly data).
    pub period_days: i64,
}

impl Reader<'_> {
    /// `WHERE cond` for a table partitioned by `ds`, else nothing.
    fn part(&self, table: &str, cond: &str) -> String {
        match self.cx.dag.tables.get(table) {
            Some(t) if t.partition_by.iter().any(|c| c == "ds") => format!("WHERE {cond}"),
            _ => String::new(),
        }
    }

    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, TaskError> {
        tables::query(self.ctx, &self.cx.task_id, sql).await
    }

    /// One state per series of the run's stock snapshot.
    pub async fn inventory(&self) -> Result<State, TaskError> {
        let ds = &self.cx.vars.ds;
        let mut state = State::new();
        let inv = self
            .query(&format!(
                "SELECT store, sku, on_hand, on_order FROM {} {}",
                self.spec.inventory,
                self.part(&self.spec.inventory, &format!("ds = '{ds}'"))
            ))
            .await?;
        for b in &inv {
            let c = Cols::new(b, &self.spec.inventory);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                state.insert(
                    (store.clone(), sku.clone()),
                    SeriesState {
                        store,
                        sku,
                        on_hand: c.f64("on_hand", r)?,
                        on_order: c.f64("on_order", r)?.unwrap_or(0.0),
                        ..Default::default()
                    },
                );
            }
        }

        Ok(state)
    }

    /// Recent demand, yesterday's actual, the silent run and prices.
    pub async fn sales(&self, state: &mut State) -> Result<(), TaskError> {
        let ds = &self.cx.vars.ds;
        // Recent demand, yesterday's actuals, the zero-sales window and prices.
        let scols = tables::columns(self.ctx, &self.spec.sales).await?;
        let has_price = scols.iter().any(|c| c == "price");
        let recent_days = i64::from(self.rules.recent_days.max(1));
        let stopped_days = i64::from(self.rules.demand_stopped_days.max(1));
        let since = tables::ds_minus(
            ds,
            recent_days.max(4 * stopped_days.max(self.period_days)) - 1,
        );
        let recent_since = tables::ds_minus(ds, recent_days - 1);
        // The usual price averages whole ten-thousandths: sums of
        // integer-valued doubles are exact, so the result does not depend on
        // the order in which parallel partial aggregates merge (a plain AVG
        // of prices moved a margin from 3.75 to 3.76 between two runs).
        let price = if has_price {
            format!(
                "AVG(CASE WHEN date < DATE '{ds}' AND date >= DATE '{recent_since}' THEN ROUND(price * 10000) END) / 10000 AS usual_price,
                 MAX(CASE WHEN date = DATE '{ds}' THEN price END) AS price_today"
            )
        } else {
            "CAST(NULL AS DOUBLE) AS usual_price, CAST(NULL AS DOUBLE) AS price_today".into()
        };
        let recent = self.query(&format!(
                "SELECT store, sku,
                        SUM(CASE WHEN date >= DATE '{recent_since}' THEN units ELSE 0 END) AS recent,
                        SUM(CASE WHEN date = DATE '{ds}' THEN units ELSE 0 END) AS yesterday,
                        COUNT(DISTINCT CASE WHEN last_sale IS NULL OR date > last_sale THEN date END) AS silent_rows,
                        MAX(date) AS newest, {price}
                 FROM (SELECT *, MAX(CASE WHEN units > 0 THEN date END) OVER (PARTITION BY store, sku) AS last_sale
                       FROM {} {})
                 GROUP BY store, sku",
                self.spec.sales,
                self.part(&self.spec.sales, &format!("ds >= '{since}' AND ds <= '{ds}'"))
            ),
        )
        .await?;
        for b in &recent {
            let c = Cols::new(b, &self.spec.sales);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                let newest = c.date("newest", r)?;
                let newest_is_today = newest == Some(self.as_of);
                let reaches_today = newest
                    .is_some_and(|d| (self.as_of - d).num_days() <= self.rules.stale_after_days);
                if let Some(st) = state.get_mut(&(store, sku)) {
                    st.recent_units = c.f64("recent", r)?.unwrap_or(0.0);
                    let silent_rows = c.f64("silent_rows", r)?.unwrap_or(0.0);
                    st.silent_days =
                        reaches_today.then_some((silent_rows * self.period_days as f64) as u32);
                    st.unit_price = c.f64("usual_price", r)?;
                    st.price_today = c.f64("price_today", r)?;
                    if newest_is_today {
                        st.actual_yesterday = c.f64("yesterday", r)?;
                    }
                }
            }
        }

        Ok(())
    }

    /// The newest sales date per store.
    pub async fn freshness(&self) -> Result<Vec<Freshness>, TaskError> {
        let ds = &self.cx.vars.ds;
        // Freshness per store, read far enough back that a store past its
        // limit still shows (a quarterly limit is 92 days).
        let fresh_since = tables::ds_minus(ds, 60.max(2 * self.rules.stale_after_days));
        let fresh = self
            .query(&format!(
                "SELECT store, MAX(date) AS newest FROM {} {} GROUP BY store",
                self.spec.sales,
                self.part(
                    &self.spec.sales,
                    &format!("ds >= '{fresh_since}' AND ds <= '{ds}'")
                )
            ))
            .await?;
        let mut freshness = Vec::new();
        for b in &fresh {
            let c = Cols::new(b, &self.spec.sales);
            for r in 0..b.num_rows() {
                if let (Some(store), Some(newest)) = (c.str("store", r)?, c.date("newest", r)?) {
                    freshness.push(Freshness { store, newest });
                }
            }
        }

        Ok(freshness)
    }

    /// The run's plan: stock levels, money inputs and held order values.
    pub async fn plans(&self, plans: &str, state: &mut State) -> Result<(), TaskError> {
        let ds = &self.cx.vars.ds;
        let pcols = tables::columns(self.ctx, plans).await?;
        let opt = |c: &str| {
            if pcols.iter().any(|p| p == c) {
                c.to_string()
            } else {
                format!("CAST(NULL AS DOUBLE) AS {c}")
            }
        };
        let rows = self
            .query(&format!(
                "SELECT store, sku, safety_stock, order_up_to, days_of_cover, projected_stockout,
                            lead_time_days, order_qty, {}, {}, {}, {}
                     FROM {plans} {}",
                opt("unit_cost"),
                opt("daily_demand"),
                opt("order_value"),
                opt("held_order_value"),
                self.part(plans, &format!("ds = '{ds}'"))
            ))
            .await?;
        for b in &rows {
            let c = Cols::new(b, plans);
            for r in 0..b.num_rows() {
                let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                    continue;
                };
                if let Some(st) = state.get_mut(&(store, sku)) {
                    st.safety_stock = c.f64("safety_stock", r)?;
                    st.order_up_to = c.f64("order_up_to", r)?;
                    st.days_of_cover = c.f64("days_of_cover", r)?;
                    st.projected_stockout = c.date("projected_stockout", r)?;
                    st.lead_time_days = c.f64("lead_time_days", r)?.unwrap_or(0.0);
                    st.order_qty = c.f64("order_qty", r)?.unwrap_or(0.0) as i64;
                    st.unit_cost = c.f64("unit_cost", r)?;
                    st.daily_demand = c.f64("daily_demand", r)?;
                    st.order_value = c.f64("order_value", r)?.unwrap_or(0.0);
                    st.held_order_value = c.f64("held_order_value", r)?;
                }
            }
        }

        Ok(())
    }

    /// The previous runs' step-1 forecasts: errors for the tracking signal
    /// and the band for the run date.
    pub async fn forecast_errors(&self, f: &str, state: &mut State) -> Result<(), TaskError> {
        let ds = &self.cx.vars.ds;
        let cols = tables::columns(self.ctx, f).await?;
        let q = tables::quantile_columns(&cols);
        if q.len() >= 2 && cols.iter().any(|c| c == "forecast_date") {
            let lo = &q[0].0;
            let hi = &q[q.len() - 1].0;
            let mid = q
                .iter()
                .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
                .map_or("mean", |m| m.0.as_str());
            let points = (self.rules.tracking_signal_min_points * 2).max(1) as i64;
            let first = tables::ds_minus(ds, points * self.period_days);
            let rows = self.query(&format!(
                        "SELECT f.store, f.sku, f.forecast_date, f.mean, f.{lo} AS lo, f.{mid} AS mid, f.{hi} AS hi, a.units
                         FROM (SELECT * FROM {f} {}) f
                         LEFT JOIN (SELECT store, sku, date, units FROM {} {}) a
                           ON f.store = a.store AND f.sku = a.sku AND f.forecast_date = a.date
                         WHERE f.step = 1 AND f.forecast_date > DATE '{first}' AND f.forecast_date <= DATE '{ds}'
                         ORDER BY f.forecast_date",
                        self.part(f, &format!("ds >= '{first}' AND ds < '{ds}'")),
                        self.spec.sales,
                        self.part(&self.spec.sales, &format!("ds > '{first}' AND ds <= '{ds}'")),
                    ),
                )
                .await?;
            for b in &rows {
                let c = Cols::new(b, f);
                for r in 0..b.num_rows() {
                    let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                        continue;
                    };
                    let Some(st) = state.get_mut(&(store, sku)) else {
                        continue;
                    };
                    let date = c.date("forecast_date", r)?;
                    let mean = c.f64("mean", r)?.unwrap_or(0.0);
                    if let Some(units) = c.f64("units", r)? {
                        st.errors.push(units - mean);
                        st.error_forecasts.push(mean);
                    }
                    if date == Some(self.as_of) {
                        st.forecast_yesterday = Some(ForecastBand {
                            lo: c.f64("lo", r)?.unwrap_or(mean),
                            mid: c.f64("mid", r)?.unwrap_or(mean),
                            hi: c.f64("hi", r)?.unwrap_or(mean),
                        });
                    }
                }
            }
        } else {
            self.cx.log.line(&format!(
                "table `{f}` has no forecast_date or quantile columns; forecast rules skipped"
            ));
        }

        Ok(())
    }
}

/// The rules in the data's periods, and the days one period spans. The
/// frequency comes from the run's forecasts (`frequency` column); daily
/// data, or none known, keeps days. On weekly forecasts
/// `stale_after_days: 1` means one week (a weekly feed is a week old most
/// of the time), on monthly ones a month; the recent-demand window is
/// widened to hold a whole row however the rows are dated (a weekly row
/// dated at its week's start is still recent six days later).
pub(super) async fn in_periods(
    cx: &AttemptContext,
    ctx: &datafusion::prelude::SessionContext,
    s: &MonitorSpec,
    present: &[String],
) -> Result<(Rules, i64), TaskError> {
    let rules = s.rules.clone();
    let Some(f) = s
        .forecasts
        .as_deref()
        .filter(|f| present.iter().any(|p| p == f))
    else {
        return Ok((rules, 1));
    };
    if !tables::columns(ctx, f)
        .await?
        .iter()
        .any(|c| c == "frequency")
    {
        return Ok((rules, 1));
    }
    let partitioned = cx
        .dag
        .tables
        .get(f)
        .is_some_and(|t| t.partition_by.iter().any(|c| c == "ds"));
    let only_today = if partitioned {
        format!("WHERE ds = '{}'", cx.vars.ds)
    } else {
        String::new()
    };
    let rows = tables::query(
        ctx,
        &cx.task_id,
        &format!("SELECT DISTINCT frequency FROM {f} {only_today} LIMIT 2"),
    )
    .await?;
    let mut found = Vec::new();
    for b in &rows {
        let c = Cols::new(b, f);
        for r in 0..b.num_rows() {
            found.extend(c.str("frequency", r)?);
        }
    }
    let frequency = match found.as_slice() {
        [one] => match Frequency::parse(one) {
            Some(f) if f != Frequency::Daily => f,
            _ => return Ok((rules, 1)),
        },
        _ => return Ok((rules, 1)),
    };
    let periodic = periodic_rules(rules, frequency.max_days());
    cx.log.progress(&format!(
        "{} forecasts: stale_after_days {} is read in periods ({} days); recent demand over {} days",
        found[0], s.rules.stale_after_days, periodic.stale_after_days, periodic.recent_days
    ));
    Ok((periodic, frequency.max_days()))
}

/// `rules` on data whose rows each span `days` days (see [`in_periods`]).
fn periodic_rules(mut rules: Rules, days: i64) -> Rules {
    rules.stale_after_days *= days;
    let recent = i64::from(rules.recent_days.max(1)).max(days) + days - 1;
    rules.recent_days = u32::try_from(recent).unwrap_or(u32::MAX);
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_rules_read_staleness_in_weeks_and_hold_a_whole_row_of_recent_demand() {
        let weekly = periodic_rules(Rules::default(), 7);
        assert_eq!(weekly.stale_after_days, 7);
        // 7 days, widened by 6 so a row dated at its week's start is held.
        assert_eq!(weekly.recent_days, 13);
        assert_eq!(periodic_rules(Rules::default(), 1), Rules::default());
        let monthly = periodic_rules(
            Rules {
                stale_after_days: 2,
                ..Rules::default()
            },
            31,
        );
        assert_eq!((monthly.stale_after_days, monthly.recent_days), (62, 61));
    }
}
