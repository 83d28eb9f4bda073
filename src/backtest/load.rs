//! Reading the backtest's inputs once, with DataFusion, into per-series
//! arrays: the product master, the stock snapshot before the window, and
//! the daily units of the window and the history before it. Sales are
//! folded batch by batch into a dense `series × day` array, so no row
//! structure is ever built for the tens of millions of sales rows of a
//! large lake.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use chrono::{Duration, NaiveDate};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::BacktestError;
use super::settings::{Settings, Source};
use crate::inventory::Item;
use crate::lake::Lake;
use crate::lake::session::{self, SessionError};
use crate::tasks::reorder::PRODUCT_COLUMNS;
use crate::tasks::tables::{Cols, date32};

/// One series as the simulation sees it.
#[derive(Debug, Clone)]
pub struct SeriesInput {
    pub store: String,
    pub sku: String,
    pub group: String,
    pub item: Item,
    /// Stock at the start of the window's first day (negative clamped to 0).
    pub on_hand: f64,
    pub on_order: f64,
    /// Daily units: `history_days` days before the window, then the window.
    pub units: Vec<f32>,
    /// Stored forecasts by window day (the day they were made, ascending)
    /// as daily steps, when the replay uses them ([`super::stored`]).
    pub stored: Vec<(usize, Vec<crate::inventory::Step>)>,
}

/// All series over one window.
#[derive(Debug, Clone)]
pub struct Panel {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub history_days: usize,
    pub window_days: usize,
    pub series: Vec<SeriesInput>,
    pub without_snapshot: usize,
    /// (series, day) forecasts read from the stored forecasts table.
    pub stored_forecasts: usize,
}

impl Panel {
    /// The date of window day `t`.
    pub fn date(&self, t: usize) -> NaiveDate {
        self.start + Duration::days(t as i64)
    }
}

pub(super) fn input(source: &Source, message: impl Into<String>) -> BacktestError {
    BacktestError::Input {
        table: source.name.clone(),
        message: message.into(),
    }
}

fn query_err(source: &Source, e: datafusion::error::DataFusionError) -> BacktestError {
    input(source, e.strip_backtrace())
}

pub(super) async fn register(
    ctx: &SessionContext,
    lake: &Lake,
    source: &Source,
) -> Result<(), BacktestError> {
    session::register_table(ctx, lake, &source.table)
        .await
        .map_err(|e| match e {
            SessionError::List { .. } => BacktestError::Read(e.to_string()),
            other => {
                // The session's message names the table already.
                let text = other.to_string();
                let prefix = format!("table `{}`: ", source.name);
                input(source, text.strip_prefix(&prefix).unwrap_or(&text))
            }
        })
}

pub(super) async fn columns(
    ctx: &SessionContext,
    source: &Source,
) -> Result<Vec<String>, BacktestError> {
    let t = ctx
        .table(source.name.as_str())
        .await
        .map_err(|e| query_err(source, e))?;
    Ok(t.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

pub(super) fn require(
    source: &Source,
    have: &[String],
    need: &[&str],
) -> Result<(), BacktestError> {
    let missing: Vec<&str> = need
        .iter()
        .copied()
        .filter(|n| !have.iter().any(|h| h == n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(input(
        source,
        format!(
            "lacks column(s) {} (it has: {})",
            missing.join(", "),
            have.join(", ")
        ),
    ))
}

pub(super) async fn collect(
    ctx: &SessionContext,
    source: &Source,
    sql: &str,
) -> Result<Vec<RecordBatch>, BacktestError> {
    let df = ctx.sql(sql).await.map_err(|e| query_err(source, e))?;
    df.collect().await.map_err(|e| query_err(source, e))
}

fn partitioned_by_ds(source: &Source) -> bool {
    source.table.partition_by.iter().any(|c| c == "ds")
}

/// Read everything the simulation needs.
pub async fn load(lake: &Lake, s: &Settings) -> Result<Panel, BacktestError> {
    let ctx = session::context(lake);
    for src in [&s.sources.sales, &s.sources.inventory, &s.sources.products] {
        register(&ctx, lake, src).await?;
    }
    let end = match s.end {
        Some(d) => d,
        None => last_sales_date(&ctx, &s.sources.sales).await?,
    };
    let start = end - Duration::days(s.window_days as i64 - 1);
    let products = read_products(&ctx, s, end).await?;
    let mut panel = Panel {
        start,
        end,
        history_days: s.history_days,
        window_days: s.window_days,
        series: Vec::new(),
        without_snapshot: 0,
        stored_forecasts: 0,
    };
    read_sales(&ctx, s, &products, &mut panel).await?;
    if panel.series.is_empty() {
        return Err(input(
            &s.sources.sales,
            format!("no sales of a product in the product master between {start} and {end}"),
        ));
    }
    read_start_stock(&ctx, &s.sources.inventory, &mut panel).await?;
    if let Some(src) = &s.sources.forecasts {
        panel.stored_forecasts = super::stored::load(&ctx, lake, src, &mut panel).await?;
    }
    panel
        .series
        .sort_by(|a, b| (&a.store, &a.sku).cmp(&(&b.store, &b.sku)));
    Ok(panel)
}

async fn last_sales_date(ctx: &SessionContext, sales: &Source) -> Result<NaiveDate, BacktestError> {
    let cols = columns(ctx, sales).await?;
    require(sales, &cols, &["date"])?;
    let sql = if partitioned_by_ds(sales) {
        // The newest partition holds the newest day; reading only it keeps
        // this cheap on a long history.
        format!(
            "SELECT MAX(date) AS d FROM {0} WHERE ds = (SELECT MAX(ds) FROM {0})",
            sales.name
        )
    } else {
        format!("SELECT MAX(date) AS d FROM {}", sales.name)
    };
    let batches = collect(ctx, sales, &sql).await?;
    let b = batches.first().ok_or_else(|| input(sales, "is empty"))?;
    Cols::new(b, &sales.name)
        .date("d", 0)
        .map_err(|e| input(sales, e.to_string()))?
        .ok_or_else(|| input(sales, "has no dated rows"))
}

/// Product master rows by SKU: the policy's item and the group.
async fn read_products(
    ctx: &SessionContext,
    s: &Settings,
    end: NaiveDate,
) -> Result<HashMap<String, (Item, String)>, BacktestError> {
    let src = &s.sources.products;
    let cols = columns(ctx, src).await?;
    let mut need = PRODUCT_COLUMNS.to_vec();
    need.push(&s.group_by);
    require(src, &cols, &need)?;
    let opt = |c: &str| {
        if cols.iter().any(|x| x == c) {
            format!("\"{c}\"")
        } else {
            "CAST(NULL AS DOUBLE)".to_string()
        }
    };
    // A partitioned master is read at its newest partition up to the end.
    let filter = if partitioned_by_ds(src) {
        format!(
            "WHERE ds = (SELECT MAX(ds) FROM {0} WHERE ds <= '{end}')",
            src.name
        )
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT sku, CAST(\"{}\" AS VARCHAR) AS grp, {}, {} AS holding_rate, {} AS order_cost
         FROM {} {filter}",
        s.group_by,
        PRODUCT_COLUMNS[1..].join(", "),
        opt("holding_rate"),
        opt("order_cost"),
        src.name
    );
    let mut out = HashMap::new();
    for b in &collect(ctx, src, &sql).await? {
        let c = Cols::new(b, &src.name);
        for r in 0..b.num_rows() {
            let row = product_row(s, &c, r).map_err(|e| input(src, e.to_string()))?;
            if let Some((sku, item, group)) = row {
                out.insert(sku, (item, group));
            }
        }
    }
    Ok(out)
}

type ProductRow = Option<(String, Item, String)>;

fn product_row(
    s: &Settings,
    c: &Cols<'_>,
    r: usize,
) -> Result<ProductRow, crate::tasks::TaskError> {
    let Some(sku) = c.str("sku", r)? else {
        return Ok(None);
    };
    let item = Item {
        unit_cost: c.f64("unit_cost", r)?.unwrap_or(0.0),
        case_pack: c.f64("case_pack", r)?.unwrap_or(1.0) as i64,
        moq: c.f64("moq", r)?.unwrap_or(0.0) as i64,
        lead_time_days: c.f64("lead_time_days", r)?.unwrap_or(0.0),
        lead_time_sd_days: c.f64("lead_time_std_days", r)?.unwrap_or(0.0),
        review_period_days: c.f64("review_period_days", r)?.unwrap_or(7.0),
        service_level: c.f64("service_level", r)?.unwrap_or(0.95),
        holding_rate: c.f64("holding_rate", r)?.unwrap_or(s.holding_rate),
        order_cost: c.f64("order_cost", r)?.unwrap_or(s.order_cost),
    };
    let group = c.str("grp", r)?.unwrap_or_default();
    Ok(Some((sku, item, group)))
}

/// Fold the daily units of the history and the window into `panel`.
async fn read_sales(
    ctx: &SessionContext,
    s: &Settings,
    products: &HashMap<String, (Item, String)>,
    panel: &mut Panel,
) -> Result<(), BacktestError> {
    let src = &s.sources.sales;
    let cols = columns(ctx, src).await?;
    require(src, &cols, &["store", "sku", "date", "units"])?;
    let from = panel.start - Duration::days(panel.history_days as i64);
    let prune = if partitioned_by_ds(src) {
        format!("AND ds >= '{from}' AND ds <= '{}'", panel.end)
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT store, sku, date, units FROM {} WHERE date >= DATE '{from}' AND date <= DATE '{}' {prune}",
        src.name, panel.end
    );
    let df = ctx.sql(&sql).await.map_err(|e| query_err(src, e))?;
    let mut stream = df.execute_stream().await.map_err(|e| query_err(src, e))?;
    let mut index: HashMap<String, usize> = HashMap::new();
    let days = panel.history_days + panel.window_days;
    let first = date32(from);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| query_err(src, e))?;
        fold_sales(src, &batch, first, days, products, &mut index, panel)?;
    }
    Ok(())
}

fn utf8(
    src: &Source,
    b: &RecordBatch,
    name: &str,
) -> Result<arrow::array::ArrayRef, BacktestError> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| input(src, format!("missing column `{name}`")))?;
    arrow::compute::cast(c, &DataType::Utf8)
        .map_err(|e| input(src, format!("column `{name}`: {e}")))
}

fn typed(
    src: &Source,
    b: &RecordBatch,
    name: &str,
    ty: &DataType,
) -> Result<arrow::array::ArrayRef, BacktestError> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| input(src, format!("missing column `{name}`")))?;
    arrow::compute::cast(c, ty).map_err(|e| input(src, format!("column `{name}`: {e}")))
}

fn fold_sales(
    src: &Source,
    b: &RecordBatch,
    first: i32,
    days: usize,
    products: &HashMap<String, (Item, String)>,
    index: &mut HashMap<String, usize>,
    panel: &mut Panel,
) -> Result<(), BacktestError> {
    let (store, sku) = (utf8(src, b, "store")?, utf8(src, b, "sku")?);
    let (store, sku) = (store.as_string::<i32>(), sku.as_string::<i32>());
    let date = typed(src, b, "date", &DataType::Date32)?;
    let date = date.as_primitive::<Date32Type>();
    let units = typed(src, b, "units", &DataType::Float64)?;
    let units = units.as_primitive::<Float64Type>();
    let mut key = String::new();
    for r in 0..b.num_rows() {
        if store.is_null(r) || sku.is_null(r) || date.is_null(r) || units.is_null(r) {
            continue;
        }
        let day = date.value(r) - first;
        if day < 0 || day as usize >= days {
            continue;
        }
        key.clear();
        key.push_str(store.value(r));
        key.push('\u{1f}');
        key.push_str(sku.value(r));
        let i = match index.get(key.as_str()) {
            Some(i) => *i,
            None => {
                let Some((item, group)) = products.get(sku.value(r)) else {
                    continue;
                };
                panel.series.push(SeriesInput {
                    store: store.value(r).to_string(),
                    sku: sku.value(r).to_string(),
                    group: group.clone(),
                    item: item.clone(),
                    on_hand: 0.0,
                    on_order: 0.0,
                    units: vec![0.0; days],
                    stored: Vec::new(),
                });
                index.insert(key.clone(), panel.series.len() - 1);
                panel.series.len() - 1
            }
        };
        panel.series[i].units[day as usize] += units.value(r).max(0.0) as f32;
    }
    Ok(())
}

/// The newest snapshot in the 14 days before the window per series.
async fn read_start_stock(
    ctx: &SessionContext,
    src: &Source,
    panel: &mut Panel,
) -> Result<(), BacktestError> {
    let cols = columns(ctx, src).await?;
    require(src, &cols, &["store", "sku", "on_hand", "on_order"])?;
    let before = panel.start - Duration::days(1);
    let since = panel.start - Duration::days(14);
    let dated = ["snapshot_date", "date"]
        .into_iter()
        .find(|c| cols.iter().any(|x| x == c));
    let (order, mut filter) = match dated {
        Some(d) => (
            format!("\"{d}\""),
            format!("\"{d}\" <= DATE '{before}' AND \"{d}\" >= DATE '{since}'"),
        ),
        None if partitioned_by_ds(src) => (
            "ds".to_string(),
            format!("ds <= '{before}' AND ds >= '{since}'"),
        ),
        None => {
            return Err(input(
                src,
                "needs a `date` or `snapshot_date` column (or `ds` partitions) to find the stock at the window's start",
            ));
        }
    };
    if dated.is_some() && partitioned_by_ds(src) {
        filter.push_str(&format!(" AND ds <= '{before}' AND ds >= '{since}'"));
    }
    let sql = format!(
        "SELECT store, sku, on_hand, on_order FROM (
             SELECT store, sku, on_hand, on_order,
                    ROW_NUMBER() OVER (PARTITION BY store, sku ORDER BY {order} DESC) AS newest
             FROM {} WHERE {filter}) AS s
         WHERE newest = 1",
        src.name
    );
    let mut index: HashMap<(String, String), usize> = panel
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.store.clone(), s.sku.clone()), i))
        .collect();
    for b in &collect(ctx, src, &sql).await? {
        let c = Cols::new(b, &src.name);
        for r in 0..b.num_rows() {
            let err = |e: crate::tasks::TaskError| input(src, e.to_string());
            let (Some(store), Some(sku)) = (
                c.str("store", r).map_err(err)?,
                c.str("sku", r).map_err(err)?,
            ) else {
                continue;
            };
            if let Some(i) = index.remove(&(store, sku)) {
                let s = &mut panel.series[i];
                s.on_hand = c.f64("on_hand", r).map_err(err)?.unwrap_or(0.0).max(0.0);
                s.on_order = c.f64("on_order", r).map_err(err)?.unwrap_or(0.0).max(0.0);
            }
        }
    }
    panel.without_snapshot = index.len();
    Ok(())
}
