//! Reading one run's planning tables from the lake: asynchronous
//! DataFusion queries over the lake's shared session caches, filtered and
//! paged in the query (the M5 lake has 30,000 series; a page reads one
//! page of rows), with user input entering only as literal values of the
//! DataFrame API, never as SQL text. Rows come back as typed structs.
//! Columns are named through [`crate::tasks::schemas`], the lists the
//! tasks write by, so a renamed column fails to compile here instead of
//! reading as an empty page.

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::functions::math::expr_fn::isnan;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{Expr, SessionContext, col, lit};
use serde::Serialize;

use super::WebError;
use crate::dag::model::Table;
use crate::inventory::monitor::{Kind, Severity};
use crate::lake::Lake;
use crate::lake::session::{self, SessionError};
use crate::mail::{ForecastPoint, HistoryPoint};
use crate::tasks::reorder::LineStatus;
use crate::tasks::schemas::{anomalies as an, forecasts as fc, plans as pl, series as key};
use crate::tasks::tables::{Cols, quantile_columns};
use crate::tasks::{HistorySource, TaskError};

/// How many history points the SKU page draws before the forecast.
pub const HISTORY_POINTS: usize = 56;

fn lake_err(e: impl std::fmt::Display) -> WebError {
    WebError::Lake(e.to_string())
}

impl From<TaskError> for WebError {
    fn from(e: TaskError) -> Self {
        WebError::Lake(e.to_string())
    }
}

/// One session over the lake with the tables a page reads.
pub struct Session {
    ctx: SessionContext,
    lake: Lake,
}

impl Session {
    pub fn new(lake: &Lake) -> Self {
        Self {
            ctx: session::context(lake),
            lake: lake.clone(),
        }
    }

    /// Register `table`; `false` when it has no files yet.
    pub async fn register(&self, table: &Table) -> Result<bool, WebError> {
        match session::register_table(&self.ctx, &self.lake, table).await {
            Ok(()) => Ok(true),
            Err(SessionError::NoFiles { .. }) => Ok(false),
            Err(e) => Err(lake_err(e)),
        }
    }

    /// Register a task's output folder (partitioned by `ds`) as `name`.
    pub async fn register_output(&self, name: &str, path: &str) -> Result<bool, WebError> {
        self.register(&Table {
            name: name.into(),
            path: path.into(),
            partition_by: vec!["ds".into()],
            columns: None,
        })
        .await
    }

    /// A registered table.
    pub async fn table(&self, name: &str) -> Result<DataFrame, WebError> {
        self.ctx.table(name).await.map_err(lake_err)
    }

    /// The rows of `name` in the run's partition.
    async fn partition(&self, name: &str, ds: &str) -> Result<DataFrame, WebError> {
        self.ctx
            .table(name)
            .await
            .map_err(lake_err)?
            .filter(col("ds").eq(lit(ds)))
            .map_err(lake_err)
    }
}

async fn collect(df: DataFrame) -> Result<Vec<RecordBatch>, WebError> {
    df.collect().await.map_err(lake_err)
}

/// A page of rows and how many rows match.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub total_entries: usize,
}

async fn page<T>(
    df: DataFrame,
    order: Vec<datafusion::logical_expr::SortExpr>,
    limit: usize,
    offset: usize,
    row: impl Fn(&Cols<'_>, usize) -> Result<T, TaskError>,
    table: &str,
) -> Result<Page<T>, WebError> {
    let total = df.clone().count().await.map_err(lake_err)?;
    let df = df
        .sort(order)
        .and_then(|d| d.limit(offset, Some(limit)))
        .map_err(lake_err)?;
    let mut rows = Vec::new();
    for b in collect(df).await? {
        let c = Cols::new(&b, table);
        for r in 0..b.num_rows() {
            rows.push(row(&c, r)?);
        }
    }
    Ok(Page {
        rows,
        total_entries: total,
    })
}

/// One anomaly of the worklist, in rank order.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyRow {
    pub rank: Option<i64>,
    pub date: Option<String>,
    pub store: Option<String>,
    /// `None` for store-wide anomalies (`stale_data`).
    pub sku: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: String,
    pub observed: Option<f64>,
    pub expected: Option<f64>,
    pub money_at_risk: Option<f64>,
    pub money_kind: Option<String>,
    pub reason: Option<String>,
    /// `new`, `recurring` or `worse`.
    pub status: Option<String>,
    pub first_seen: Option<String>,
    pub headline: Option<bool>,
}

impl AnomalyRow {
    /// The row as the report mail reads it (`tasks::email`: missing text
    /// empty, missing numbers NaN, a NaN money figure none), so the mail's
    /// ranking and headline code can order the page's rows.
    pub fn report_row(&self) -> crate::mail::Anomaly {
        crate::mail::Anomaly {
            date: self.date.clone().unwrap_or_default(),
            store: self.store.clone().unwrap_or_default(),
            sku: self.sku.clone().unwrap_or_default(),
            kind: self.kind.clone(),
            severity: self.severity.clone(),
            observed: self.observed.unwrap_or(f64::NAN),
            expected: self.expected.unwrap_or(f64::NAN),
            message: String::new(),
            reason: self.reason.clone().unwrap_or_default(),
            money_at_risk: self.money_at_risk.filter(|m| !m.is_nan()),
            status: self.status.clone().unwrap_or_default(),
            first_seen: self.first_seen.clone().unwrap_or_default(),
            headline: self.headline,
        }
    }
}

fn anomaly_row(c: &Cols<'_>, r: usize) -> Result<AnomalyRow, TaskError> {
    Ok(AnomalyRow {
        rank: c.f64(an::RANK.name, r)?.map(|v| v as i64),
        date: c.date(an::DATE.name, r)?.map(|d| d.to_string()),
        store: c.str(an::STORE.name, r)?,
        sku: c.str(an::SKU.name, r)?,
        kind: c.str(an::TYPE.name, r)?.unwrap_or_default(),
        severity: c.str(an::SEVERITY.name, r)?.unwrap_or_default(),
        observed: c.f64(an::OBSERVED.name, r)?,
        expected: c.f64(an::EXPECTED.name, r)?,
        money_at_risk: c.f64(an::MONEY_AT_RISK.name, r)?,
        money_kind: c.str(an::MONEY_KIND.name, r)?,
        reason: c.str(an::REASON.name, r)?.or(c.str(an::MESSAGE.name, r)?),
        status: c.str(an::STATUS.name, r)?,
        first_seen: c.date(an::FIRST_SEEN.name, r)?.map(|d| d.to_string()),
        headline: c.f64(an::HEADLINE.name, r).ok().flatten().map(|v| v != 0.0),
    })
}

/// What the anomalies table is filtered by.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnomalyFilter {
    pub kind: Option<Kind>,
    pub severity: Option<Severity>,
}

impl AnomalyFilter {
    fn apply(&self, df: DataFrame) -> Result<DataFrame, WebError> {
        let mut df = df;
        if let Some(k) = self.kind {
            df = df
                .filter(col(an::TYPE.name).eq(lit(k.as_str())))
                .map_err(lake_err)?;
        }
        if let Some(s) = self.severity {
            df = df
                .filter(col(an::SEVERITY.name).eq(lit(s.as_str())))
                .map_err(lake_err)?;
        }
        Ok(df)
    }
}

/// A page of the run's anomalies in worklist (rank) order.
pub async fn anomalies(
    s: &Session,
    ds: &str,
    filter: AnomalyFilter,
    sku: Option<(&str, &str)>,
    (limit, offset): (usize, usize),
) -> Result<Page<AnomalyRow>, WebError> {
    let mut df = filter.apply(s.partition("anomalies", ds).await?)?;
    if let Some((store, sku)) = sku {
        df = df.filter(series(store, sku)).map_err(lake_err)?;
    }
    let order = vec![col(an::RANK.name).sort(true, false)];
    page(df, order, limit, offset, anomaly_row, "anomalies").await
}

/// The rows the night's headline is chosen from, in rank order: those the
/// monitor put on it (`headline`), or every row of a table written before
/// that column existed (the mail then heads its list with the top of the
/// ranking, and so does the page). At most the monitor's `headline:` cap.
pub async fn headline_candidates(s: &Session, ds: &str) -> Result<Vec<AnomalyRow>, WebError> {
    let mut df = s.partition("anomalies", ds).await?;
    let has_headline = df
        .schema()
        .fields()
        .iter()
        .any(|f| f.name() == an::HEADLINE.name);
    if has_headline {
        df = df
            .filter(col(an::HEADLINE.name).eq(lit(true)))
            .map_err(lake_err)?;
    }
    let df = df
        .sort(vec![col(an::RANK.name).sort(true, false)])
        .map_err(lake_err)?;
    let mut rows = Vec::new();
    for b in collect(df).await? {
        let c = Cols::new(&b, "anomalies");
        for r in 0..b.num_rows() {
            rows.push(anomaly_row(&c, r)?);
        }
    }
    Ok(rows)
}

/// The run's money at risk over all its anomalies, leaving out missing and
/// NaN figures as the mail's reader does; `None` when no anomaly has one.
pub async fn money_at_risk_total(s: &Session, ds: &str) -> Result<Option<f64>, WebError> {
    let money = col(an::MONEY_AT_RISK.name);
    let df = s
        .partition("anomalies", ds)
        .await?
        .filter(
            money
                .clone()
                .is_not_null()
                .and(isnan(money.clone()).is_false()),
        )
        .and_then(|d| {
            d.aggregate(
                vec![],
                vec![sum(money).alias("total"), count(lit(1)).alias("n")],
            )
        })
        .map_err(lake_err)?;
    let mut out = None;
    for b in collect(df).await? {
        let c = Cols::new(&b, "anomalies");
        for r in 0..b.num_rows() {
            if c.f64("n", r)?.unwrap_or(0.0) > 0.0 {
                out = Some(c.f64("total", r)?.unwrap_or(0.0));
            }
        }
    }
    Ok(out)
}

/// Anomalies of the run by severity, for the summary.
pub async fn severity_counts(s: &Session, ds: &str) -> Result<Vec<(String, i64)>, WebError> {
    let df = s
        .partition("anomalies", ds)
        .await?
        .aggregate(vec![col(an::SEVERITY.name)], vec![count(lit(1)).alias("n")])
        .map_err(lake_err)?;
    let mut out = Vec::new();
    for b in collect(df).await? {
        let c = Cols::new(&b, "anomalies");
        for r in 0..b.num_rows() {
            let n = c.f64("n", r)?.unwrap_or(0.0) as i64;
            out.push((c.str(an::SEVERITY.name, r)?.unwrap_or_default(), n));
        }
    }
    out.sort_by_key(|(s, _)| Severity::parse(s));
    Ok(out)
}

/// The rows of one series: the planning tables all carry the canonical key.
fn series(store: &str, sku: &str) -> Expr {
    keyed(&[], (store, sku))
}

/// The rows of one series in a table keyed by the forecast's two
/// `series_key` columns (the store's first), else by `store` and `sku`.
fn keyed(keys: &[String], (store, sku): (&str, &str)) -> Expr {
    let (s, k) = match keys {
        [s, k] => (s.as_str(), k.as_str()),
        _ => (key::STORE.name, key::SKU.name),
    };
    col(format!("\"{s}\""))
        .eq(lit(store))
        .and(col(format!("\"{k}\"")).eq(lit(sku)))
}

/// One line of the reorder plan.
#[derive(Debug, Serialize)]
pub struct OrderRow {
    pub store: String,
    pub sku: String,
    /// `order`, `no_order` or `held`.
    pub status: String,
    pub order_qty: Option<f64>,
    pub order_value: Option<f64>,
    pub order_by: Option<String>,
    pub on_hand: Option<f64>,
    pub inventory_position: Option<f64>,
    pub days_of_cover: Option<f64>,
    /// The order value a held line would have had.
    pub held_order_value: Option<f64>,
    pub reason: Option<String>,
}

fn order_row(c: &Cols<'_>, r: usize) -> Result<OrderRow, TaskError> {
    Ok(OrderRow {
        store: c.str(pl::STORE.name, r)?.unwrap_or_default(),
        sku: c.str(pl::SKU.name, r)?.unwrap_or_default(),
        status: c.str(pl::STATUS.name, r)?.unwrap_or_default(),
        order_qty: c.f64(pl::ORDER_QTY.name, r)?,
        order_value: c.f64(pl::ORDER_VALUE.name, r)?,
        order_by: c.date(pl::ORDER_BY.name, r)?.map(|d| d.to_string()),
        on_hand: c.f64(pl::ON_HAND.name, r)?,
        inventory_position: c.f64(pl::INVENTORY_POSITION.name, r)?,
        days_of_cover: c.f64(pl::DAYS_OF_COVER.name, r)?,
        held_order_value: c.f64(pl::HELD_ORDER_VALUE.name, r)?,
        reason: c.str(pl::REASON.name, r)?,
    })
}

/// Which plan lines a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Lines that order, largest value first.
    Orders,
    /// Lines held on bad input, listed apart.
    Held,
}

/// A page of plan lines.
pub async fn plan_lines(
    s: &Session,
    ds: &str,
    which: Lines,
    sku: Option<(&str, &str)>,
    (limit, offset): (usize, usize),
) -> Result<Page<OrderRow>, WebError> {
    let (status, value) = match which {
        Lines::Orders => (LineStatus::Order, pl::ORDER_VALUE.name),
        Lines::Held => (LineStatus::Held, pl::HELD_ORDER_VALUE.name),
    };
    let mut df = s
        .partition("plans", ds)
        .await?
        .filter(col(pl::STATUS.name).eq(lit(status.as_str())))
        .map_err(lake_err)?;
    if let Some((store, sku)) = sku {
        df = df.filter(series(store, sku)).map_err(lake_err)?;
    }
    let order = vec![
        col(value).sort(false, true),
        col(pl::STORE.name).sort(true, false),
        col(pl::SKU.name).sort(true, false),
    ];
    page(df, order, limit, offset, order_row, "plans").await
}

/// Lines and value of the orders to place and of the held lines.
#[derive(Debug, Default, Serialize)]
pub struct PlanTotals {
    pub order_lines: i64,
    /// Held lines are not in it.
    pub total_order_value: f64,
    pub held_lines: i64,
    pub held_order_value: f64,
}

pub async fn plan_totals(s: &Session, ds: &str) -> Result<PlanTotals, WebError> {
    let df = s
        .partition("plans", ds)
        .await?
        .filter(col(pl::STATUS.name).in_list(
            vec![
                lit(LineStatus::Order.as_str()),
                lit(LineStatus::Held.as_str()),
            ],
            false,
        ))
        .and_then(|d| {
            d.aggregate(
                vec![col(pl::STATUS.name)],
                vec![
                    count(lit(1)).alias("n"),
                    sum(col(pl::ORDER_VALUE.name)).alias("value"),
                    sum(col(pl::HELD_ORDER_VALUE.name)).alias("held"),
                ],
            )
        })
        .map_err(lake_err)?;
    let mut t = PlanTotals::default();
    for b in collect(df).await? {
        let c = Cols::new(&b, "plans");
        for r in 0..b.num_rows() {
            let n = c.f64("n", r)?.unwrap_or(0.0) as i64;
            let status = c.str(pl::STATUS.name, r)?;
            match status.as_deref() {
                Some(s) if s == LineStatus::Order.as_str() => {
                    t.order_lines = n;
                    t.total_order_value = c.f64("value", r)?.unwrap_or(0.0);
                }
                Some(s) if s == LineStatus::Held.as_str() => {
                    t.held_lines = n;
                    t.held_order_value = c.f64("held", r)?.unwrap_or(0.0);
                }
                _ => {}
            }
        }
    }
    Ok(t)
}

/// The run's forecast band of one series, in step order: the outermost
/// quantiles as the band and the one nearest 0.5 as the median.
pub async fn forecast(
    s: &Session,
    ds: &str,
    src: &HistorySource,
    (store, sku): (&str, &str),
) -> Result<Vec<ForecastPoint>, WebError> {
    let df = s.partition("forecasts", ds).await?;
    let cols: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let q = quantile_columns(&cols);
    let (Some(lo), Some(hi)) = (q.first(), q.last()) else {
        return Ok(Vec::new());
    };
    let mid = q
        .iter()
        .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
        .unwrap_or(lo);
    let df = df
        .filter(keyed(&src.series_key, (store, sku)))
        .and_then(|d| d.sort(vec![col(fc::STEP.name).sort(true, false)]))
        .map_err(lake_err)?;
    let mut out = Vec::new();
    for b in collect(df).await? {
        let c = Cols::new(&b, "forecasts");
        for r in 0..b.num_rows() {
            out.push(ForecastPoint {
                date: c
                    .date(fc::FORECAST_DATE.name, r)?
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                p10: c.f64(&lo.0, r)?.unwrap_or(f64::NAN),
                p50: c.f64(&mid.0, r)?.unwrap_or(f64::NAN),
                p90: c.f64(&hi.0, r)?.unwrap_or(f64::NAN),
            });
        }
    }
    Ok(out)
}

/// The newest [`HISTORY_POINTS`] of one series from the forecast's input
/// table (its run partition when it is partitioned by `ds`), oldest first.
pub async fn history(
    s: &Session,
    table: &Table,
    src: &HistorySource,
    ds: &str,
    (store, sku): (&str, &str),
) -> Result<Vec<HistoryPoint>, WebError> {
    if !s.register(table).await? {
        return Ok(Vec::new());
    }
    let mut df = s.ctx.table(table.name.as_str()).await.map_err(lake_err)?;
    if table.partition_by.iter().any(|p| p == "ds") {
        df = df.filter(col("ds").eq(lit(ds))).map_err(lake_err)?;
    }
    let (date, value) = (src.date_column.as_str(), src.value_column.as_str());
    let df = df
        .filter(keyed(&src.series_key, (store, sku)))
        .and_then(|d| d.select(vec![col(date).alias("d"), col(value).alias("v")]))
        .and_then(|d| d.sort(vec![col("d").sort(false, false)]))
        .and_then(|d| d.limit(0, Some(HISTORY_POINTS)))
        .map_err(lake_err)?;
    let mut out = Vec::new();
    for b in collect(df).await? {
        let c = Cols::new(&b, &table.name);
        for r in 0..b.num_rows() {
            if let (Some(d), Some(v)) = (c.date("d", r)?, c.f64("v", r)?) {
                out.push(HistoryPoint {
                    date: d.to_string(),
                    value: v,
                });
            }
        }
    }
    out.reverse();
    Ok(out)
}
