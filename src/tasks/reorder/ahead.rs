//! What lies ahead of a reorder line, read for its reason: the first
//! planned promotion per series (`promotions:`, `date, store, sku,
//! on_promo`). The event calendar (`events:`) is read as the `train` task
//! reads it ([`crate::tasks::series_input::load_events`]);
//! [`crate::inventory::reason::Drivers::ahead`] keeps what falls inside
//! each line's protection interval.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::tables::{self, Cols};
use super::{AttemptContext, TaskError};

/// The first promotion day per series in the next 90 days.
pub(super) async fn read_promotions(
    cx: &AttemptContext,
    ctx: &SessionContext,
    table: &str,
    as_of: NaiveDate,
) -> Result<BTreeMap<(String, String), NaiveDate>, TaskError> {
    let cols = tables::columns(ctx, table).await?;
    tables::require(table, &cols, &["date", "store", "sku", "on_promo"])?;
    let until = as_of + chrono::Duration::days(90);
    let sql = format!(
        "SELECT store, sku, MIN(date) AS first FROM {table}
         WHERE on_promo AND date > DATE '{as_of}' AND date <= DATE '{until}'
         GROUP BY store, sku"
    );
    let mut out = BTreeMap::new();
    for b in &tables::query(ctx, &cx.task_id, &sql).await? {
        let c = Cols::new(b, table);
        for r in 0..b.num_rows() {
            let (Some(store), Some(sku)) = (c.str("store", r)?, c.str("sku", r)?) else {
                continue;
            };
            if let Some(first) = c.date("first", r)? {
                out.insert((store, sku), first);
            }
        }
    }
    Ok(out)
}
