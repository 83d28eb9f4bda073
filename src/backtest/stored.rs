//! The forecasts a DAG stored, for replaying restock's policy on what it
//! actually forecast: the `reorder` task's forecasts table, partition
//! `ds = D` read as the forecast known at the end of day `D`, its steps
//! turned into daily steps by their `forecast_date` as the reorder does
//! ([`crate::inventory::daily_steps`]), each with the outermost quantile
//! pair as its spread. A day without a partition, or a series missing
//! from it, is forecast by Theta as in the default replay.

use std::collections::HashMap;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::BacktestError;
use super::load::{Panel, collect, columns, input, register, require};
use super::settings::Source;
use crate::inventory::{Step, daily_steps};
use crate::lake::Lake;
use crate::tasks::tables::{Cols, quantile_columns};

/// One stored step: its forecast date (when the table has one) and value.
type Dated = (Option<NaiveDate>, Step);

/// Reads the stored forecasts of the window into `panel`'s series
/// (`SeriesInput::stored`); returns how many (series, day) forecasts it
/// found.
pub async fn load(
    ctx: &SessionContext,
    lake: &Lake,
    source: &Source,
    panel: &mut Panel,
) -> Result<usize, BacktestError> {
    if !source.table.partition_by.iter().any(|c| c == "ds") {
        return Err(input(
            source,
            "is not partitioned by `ds`, so it does not say which day each forecast was made",
        ));
    }
    register(ctx, lake, source).await?;
    let cols = columns(ctx, source).await?;
    require(
        source,
        &cols,
        &["store", "sku", "forecast_date", "step", "mean"],
    )?;
    let q = quantile_columns(&cols);
    let (Some(lo), Some(hi)) = (q.first().filter(|_| q.len() >= 2), q.last()) else {
        return Err(input(
            source,
            "has fewer than two quantile columns (p10, p90 …)",
        ));
    };
    let sql = format!(
        "SELECT store, sku, CAST(ds AS VARCHAR) AS ds, forecast_date, step, mean,
                \"{}\" AS lo, \"{}\" AS hi
         FROM {} WHERE ds >= '{}' AND ds <= '{}'
         ORDER BY ds, store, sku, step",
        lo.0, hi.0, source.name, panel.start, panel.end
    );
    let index: HashMap<(String, String), usize> = panel
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.store.clone(), s.sku.clone()), i))
        .collect();
    let mut raw: HashMap<(usize, usize), Vec<Dated>> = HashMap::new();
    for b in collect(ctx, source, &sql).await? {
        let c = Cols::new(&b, &source.name);
        let bad = |e: crate::tasks::TaskError| input(source, e.to_string());
        for r in 0..b.num_rows() {
            let (Some(store), Some(sku), Some(ds)) = (
                c.str("store", r).map_err(bad)?,
                c.str("sku", r).map_err(bad)?,
                c.str("ds", r).map_err(bad)?,
            ) else {
                continue;
            };
            let (Some(&i), Ok(day)) = (
                index.get(&(store, sku)),
                NaiveDate::parse_from_str(&ds, "%Y-%m-%d"),
            ) else {
                continue;
            };
            let Some(mean) = c.f64("mean", r).map_err(bad)?.filter(|m| m.is_finite()) else {
                continue;
            };
            let step = Step {
                mean,
                lo: c.f64("lo", r).map_err(bad)?.unwrap_or(mean),
                hi: c.f64("hi", r).map_err(bad)?.unwrap_or(mean),
                lo_level: lo.1,
                hi_level: hi.1,
            };
            let t = (day - panel.start).num_days() as usize;
            raw.entry((i, t))
                .or_default()
                .push((c.date("forecast_date", r).map_err(bad)?, step));
        }
    }
    let found = raw.len();
    for ((i, t), steps) in raw {
        let daily = daily_steps(panel.date(t), &steps);
        panel.series[i].stored.push((t, daily));
    }
    for s in &mut panel.series {
        s.stored.sort_by_key(|(t, _)| *t);
    }
    Ok(found)
}
