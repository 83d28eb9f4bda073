//! Reading the report's tables. Each table key of an `email` task names a
//! declared table (`tables:`) or a lake path; a path is read as a table
//! partitioned by `ds` when its files lie in `ds=` folders (the layout
//! every task's output has). Tables are registered and queried through
//! the lake's DataFusion session layer ([`crate::lake::session`]), as the
//! `reorder` and `monitor` kinds read theirs, and columns are named by
//! the schemas those kinds write ([`crate::tasks::schemas`]), so the
//! email never guesses a column name. Rows become the mail's [`Report`];
//! rendering it is [`crate::mail`]'s business.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, col, lit};
use datafusion::scalar::ScalarValue;
use object_store::ObjectMeta;

use crate::dag::model::{Dag, Table};
use crate::lake::Lake;
use crate::lake::session::{self, SessionError};
use crate::mail::{Anomaly, ForecastPoint, Held, HistoryPoint, Order, Report, SkuSeries};
use crate::tasks::TaskError;
use crate::tasks::schemas::{Column, anomalies, forecasts, plans, series};
use crate::tasks::tables::KeyMap;
use crate::tasks::tables::{Cols, quantile_columns};

/// History points drawn before the forecast.
const HISTORY_POINTS: usize = 28;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Boxed: a session error names table, file and cause, and would make
    /// every `Result` of this module that large.
    #[error(transparent)]
    Session(Box<SessionError>),
    #[error(
        "table `{table}` (`{key}` of the email): no partition ds={ds} under {location}; \
         the task that writes it has not published this date"
    )]
    NoPartition {
        table: String,
        key: &'static str,
        ds: String,
        location: String,
    },
    #[error("table `{table}` (`{key}` of the email) lacks column(s) {missing} (it has: {have})")]
    Columns {
        table: String,
        key: &'static str,
        missing: String,
        have: String,
    },
    #[error("table `{table}` (`{key}` of the email): reading it failed: {message}")]
    Query {
        table: String,
        key: &'static str,
        message: String,
    },
    /// A value of the wrong type in a column (named by the message).
    #[error(transparent)]
    Value(#[from] TaskError),
}

impl From<SessionError> for ReadError {
    fn from(e: SessionError) -> Self {
        ReadError::Session(Box::new(e))
    }
}

impl ReadError {
    /// Only a store that could not be listed may read on another try; the
    /// rest need the data fixed.
    pub fn retryable(&self) -> bool {
        matches!(self, ReadError::Session(e) if e.retryable())
    }
}

/// Which `ds` values of a table the report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitions {
    /// The run's date only.
    Run,
    /// The newest date on or before the run's.
    NewestUpToRun,
    /// The dates of the last `n` days up to the run's (one partition per day).
    LastDays(u32),
}

/// The tables of one report: email key to the table it names.
pub struct Sources {
    pub anomalies: Table,
    pub orders: Option<Table>,
    pub forecasts: Option<Table>,
    /// The history table and the column its values are read from.
    pub history: Option<(Table, String)>,
    pub history_days: Option<u32>,
    /// The lake's columns for the store and sku keys in the forecasts and
    /// the history (the plans and anomalies carry the canonical names).
    pub keys: KeyMap,
}

/// The table a (rendered) email key names: a declared one by name, else
/// the lake folder at that path, registered under the key's name.
pub fn resolve(dag: &Dag, key: &'static str, rendered: &str) -> Table {
    match dag.tables.get(rendered) {
        Some(t) => t.clone(),
        None => Table {
            name: key.into(),
            path: rendered.trim_end_matches('/').into(),
            partition_by: Vec::new(),
            columns: None,
        },
    }
}

/// A column a reader wants, as the type it reads it in.
struct Want<'a> {
    name: &'a str,
    ty: DataType,
    required: bool,
}

impl Want<'static> {
    fn of(c: Column, required: bool) -> Self {
        Self {
            name: c.name,
            ty: c.data_type,
            required,
        }
    }
}

/// One registered table and what its listing says.
struct Registered {
    key: &'static str,
    table: Table,
    files: Vec<ObjectMeta>,
    /// The `ds=` values its files lie under.
    partitions: BTreeSet<String>,
    columns: Vec<String>,
}

/// A session over the lake holding the report's tables.
struct Reader<'a> {
    ctx: SessionContext,
    lake: &'a Lake,
    ds: &'a str,
    keys: &'a KeyMap,
}

impl<'a> Reader<'a> {
    async fn register(&self, key: &'static str, table: &Table) -> Result<Registered, ReadError> {
        let mut table = table.clone();
        let files = session::table_files(self.lake, &table).await?;
        let dir = crate::lake::table_location(&table.path);
        let partitions: BTreeSet<String> = files
            .iter()
            .filter_map(|m| {
                m.location
                    .prefix_match(&dir)?
                    .find_map(|p| p.as_ref().strip_prefix("ds=").map(str::to_string))
            })
            .collect();
        if table.partition_by.is_empty() && !partitions.is_empty() {
            table.partition_by = vec!["ds".into()];
        }
        if self.ctx.table_exist(table.name.as_str()).unwrap_or(false) {
            // Two keys naming one declared table share its registration.
        } else {
            session::register_table(&self.ctx, self.lake, &table).await?;
        }
        let mut r = Registered {
            key,
            table,
            files,
            partitions,
            columns: Vec::new(),
        };
        r.columns = self
            .frame(&r)
            .await?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Ok(r)
    }

    async fn frame(&self, r: &Registered) -> Result<DataFrame, ReadError> {
        self.ctx
            .table(r.table.name.as_str())
            .await
            .map_err(|e| query_err(r, e))
    }

    /// The rows of `r` in the partitions `which` selects. A table without
    /// a `ds` column is read whole; one partitioned by `ds` without the
    /// partition asked for is an error naming it.
    async fn rows(&self, r: &Registered, which: Partitions) -> Result<DataFrame, ReadError> {
        let df = self.frame(r).await?;
        if !r.columns.iter().any(|c| c == "ds") {
            return Ok(df);
        }
        let ds = self.ds;
        let partitioned = r.table.partition_by.iter().any(|p| p == "ds");
        let missing = || ReadError::NoPartition {
            table: r.table.name.clone(),
            key: r.key,
            ds: ds.to_string(),
            location: format!(
                "{}/",
                self.lake
                    .describe(&crate::lake::table_location(&r.table.path))
            ),
        };
        let filter = match which {
            Partitions::Run => {
                if partitioned && !r.partitions.contains(ds) {
                    return Err(missing());
                }
                col("ds").eq(lit(ds))
            }
            Partitions::NewestUpToRun if partitioned => {
                let newest = r
                    .partitions
                    .iter()
                    .rfind(|p| p.as_str() <= ds)
                    .ok_or_else(missing)?;
                col("ds").eq(lit(newest.as_str()))
            }
            Partitions::NewestUpToRun => col("ds").lt_eq(lit(ds)),
            Partitions::LastDays(n) => {
                let first = crate::tasks::tables::ds_minus(ds, i64::from(n.max(1) - 1));
                if partitioned
                    && !r
                        .partitions
                        .iter()
                        .any(|p| p.as_str() >= first.as_str() && p.as_str() <= ds)
                {
                    return Err(missing());
                }
                col("ds").gt_eq(lit(first)).and(col("ds").lt_eq(lit(ds)))
            }
        };
        df.filter(filter).map_err(|e| query_err(r, e))
    }

    /// Select `want` as the types the reader reads; a missing required
    /// column is refused, a missing optional one reads as nulls (partitions
    /// written before the column existed).
    fn select(
        &self,
        r: &Registered,
        df: DataFrame,
        want: &[Want<'_>],
    ) -> Result<DataFrame, ReadError> {
        let has = |c: &str| r.columns.iter().any(|x| x == c);
        // `store` and `sku` read from the lake's key columns where the
        // table has those (see `KeyMap::lake_names`).
        let columns: Vec<&str> = r.columns.iter().map(String::as_str).collect();
        let names: Vec<&str> = want.iter().map(|w| w.name).collect();
        let sources = self.keys.lake_names(&names, &columns);
        let missing: Vec<&str> = want
            .iter()
            .zip(&sources)
            .filter(|(w, src)| w.required && !has(src))
            .map(|(w, src)| if *src == w.name { w.name } else { *src })
            .collect();
        if !missing.is_empty() {
            return Err(ReadError::Columns {
                table: r.table.name.clone(),
                key: r.key,
                missing: missing.join(", "),
                have: r.columns.join(", "),
            });
        }
        let mut exprs: Vec<Expr> = Vec::with_capacity(want.len());
        for (w, src) in want.iter().zip(&sources) {
            let e = if has(src) {
                cast(col(format!("\"{src}\"")), w.ty.clone())
            } else {
                let null = ScalarValue::try_from(&w.ty).map_err(|e| query_err(r, e))?;
                lit(null)
            };
            exprs.push(e.alias(w.name));
        }
        df.select(exprs).map_err(|e| query_err(r, e))
    }

    /// Run `df`; a failure names the table and, where one is to blame, its
    /// unreadable file.
    async fn collect(&self, r: &Registered, df: DataFrame) -> Result<Vec<RecordBatch>, ReadError> {
        match df.collect().await {
            Ok(b) => Ok(b),
            Err(e) => match session::find_corrupt(self.lake, &r.table, &r.files).await {
                Some(corrupt) => Err(corrupt.into()),
                None => Err(query_err(r, e)),
            },
        }
    }
}

fn query_err(r: &Registered, e: datafusion::error::DataFusionError) -> ReadError {
    ReadError::Query {
        table: r.table.name.clone(),
        key: r.key,
        message: e.strip_backtrace(),
    }
}

fn text(c: &Cols<'_>, name: &str, row: usize) -> Result<String, ReadError> {
    Ok(c.str(name, row)?.unwrap_or_default())
}

fn number(c: &Cols<'_>, name: &str, row: usize) -> Result<f64, ReadError> {
    Ok(c.f64(name, row)?.unwrap_or(f64::NAN))
}

fn day(c: &Cols<'_>, name: &str, row: usize) -> Result<String, ReadError> {
    Ok(c.date(name, row)?
        .map(|d| d.to_string())
        .unwrap_or_default())
}

/// Read the tables of `sources` for the run `ds` into a report.
pub async fn report(
    lake: &Lake,
    sources: &Sources,
    (dag_id, run_id, ds): (&str, &str, &str),
) -> Result<Report, ReadError> {
    let reader = Reader {
        ctx: session::context(lake),
        lake,
        ds,
        keys: &sources.keys,
    };
    let a = reader.register("anomalies", &sources.anomalies).await?;
    let orders = match &sources.orders {
        Some(t) => Some(reader.register("reorder_plans", t).await?),
        None => None,
    };
    let fc = match &sources.forecasts {
        Some(t) => Some(reader.register("forecasts", t).await?),
        None => None,
    };
    let history = match &sources.history {
        Some((t, value)) => Some((reader.register("history", t).await?, value.as_str())),
        None => None,
    };

    let mut report = Report {
        dag_id: dag_id.into(),
        run_id: run_id.into(),
        ds: ds.into(),
        anomalies: read_anomalies(&reader, &a).await?,
        orders: Vec::new(),
        held: Vec::new(),
        series: Vec::new(),
    };
    if let Some(o) = &orders {
        (report.orders, report.held) = read_orders(&reader, o).await?;
    }
    let mut forecasts = match &fc {
        Some(f) => read_forecasts(&reader, f).await?,
        None => BTreeMap::new(),
    };
    // Worst SKUs first: in the order of their worst anomaly; only those are
    // charted, so only their history is read.
    let mut seen = BTreeSet::new();
    let worst: Vec<(String, String)> = report
        .ranked_anomalies()
        .into_iter()
        .map(|a| (a.sku.clone(), a.store.clone()))
        .filter(|k| seen.insert(k.clone()))
        .take(crate::mail::chart::MAX_PANELS * 4)
        .collect();
    let mut history = match &history {
        Some((h, value)) if !worst.is_empty() => {
            let which = sources
                .history_days
                .map_or(Partitions::NewestUpToRun, Partitions::LastDays);
            read_history(&reader, h, value, which, &worst).await?
        }
        _ => BTreeMap::new(),
    };
    for key in worst {
        let f = forecasts.remove(&key).unwrap_or_default();
        let mut h: Vec<HistoryPoint> = history
            .remove(&key)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.date.as_str() <= ds)
            .collect();
        if h.len() > HISTORY_POINTS {
            h.drain(..h.len() - HISTORY_POINTS);
        }
        if f.is_empty() && h.is_empty() {
            continue;
        }
        report.series.push(SkuSeries {
            sku: key.0,
            store: key.1,
            history: h,
            forecast: f,
        });
        if report.series.len() == crate::mail::chart::MAX_PANELS {
            break;
        }
    }
    Ok(report)
}

/// The run's anomalies, in the monitor's worklist order (`rank`, when
/// the table has it).
async fn read_anomalies(reader: &Reader<'_>, r: &Registered) -> Result<Vec<Anomaly>, ReadError> {
    use anomalies as a;
    let want = [
        Want::of(a::DATE, true),
        Want::of(a::STORE, true),
        Want::of(a::SKU, true),
        Want::of(a::TYPE, true),
        Want::of(a::SEVERITY, true),
        Want::of(a::OBSERVED, true),
        Want::of(a::EXPECTED, false),
        Want::of(a::MESSAGE, false),
        Want::of(a::REASON, false),
        Want::of(a::MONEY_AT_RISK, false),
        Want::of(a::STATUS, false),
        Want::of(a::FIRST_SEEN, false),
        Want::of(a::RANK, false),
        Want::of(a::HEADLINE, false),
    ];
    let df = reader.rows(r, Partitions::Run).await?;
    let mut df = reader.select(r, df, &want)?;
    if r.columns.iter().any(|c| c == a::RANK.name) {
        df = df
            .sort(vec![col(a::RANK.name).sort(true, false)])
            .map_err(|e| query_err(r, e))?;
    }
    let mut out = Vec::new();
    for b in reader.collect(r, df).await? {
        let c = Cols::new(&b, &r.table.name);
        for i in 0..b.num_rows() {
            out.push(Anomaly {
                date: day(&c, a::DATE.name, i)?,
                store: text(&c, a::STORE.name, i)?,
                sku: text(&c, a::SKU.name, i)?,
                kind: text(&c, a::TYPE.name, i)?,
                severity: text(&c, a::SEVERITY.name, i)?,
                observed: number(&c, a::OBSERVED.name, i)?,
                expected: number(&c, a::EXPECTED.name, i)?,
                message: text(&c, a::MESSAGE.name, i)?,
                reason: text(&c, a::REASON.name, i)?,
                money_at_risk: c.f64(a::MONEY_AT_RISK.name, i)?.filter(|m| !m.is_nan()),
                status: text(&c, a::STATUS.name, i)?,
                first_seen: day(&c, a::FIRST_SEEN.name, i)?,
                headline: c.bool(a::HEADLINE.name, i)?,
            });
        }
    }
    Ok(out)
}

/// The run's order lines to place and the lines held on bad input.
async fn read_orders(
    reader: &Reader<'_>,
    r: &Registered,
) -> Result<(Vec<Order>, Vec<Held>), ReadError> {
    use plans as p;
    let want = [
        Want::of(p::SKU, true),
        Want::of(p::STORE, true),
        Want::of(p::ORDER_QTY, true),
        Want::of(p::ORDER_VALUE, false),
        Want::of(p::ORDER_BY, false),
        Want::of(p::STATUS, false),
        Want::of(p::REASON, false),
        Want::of(p::HELD_ORDER_VALUE, false),
    ];
    let df = reader.rows(r, Partitions::Run).await?;
    let df = reader.select(r, df, &want)?;
    let mut out = Vec::new();
    let mut held = Vec::new();
    for b in reader.collect(r, df).await? {
        let c = Cols::new(&b, &r.table.name);
        for i in 0..b.num_rows() {
            let (sku, store) = (text(&c, p::SKU.name, i)?, text(&c, p::STORE.name, i)?);
            let reason = text(&c, p::REASON.name, i)?;
            if c.str(p::STATUS.name, i)?.as_deref() == Some("held") {
                held.push(Held {
                    sku,
                    store,
                    would_be_value: c.f64(p::HELD_ORDER_VALUE.name, i)?.unwrap_or(0.0),
                    reason,
                });
                continue;
            }
            // A plan line with nothing to order is not an order.
            let qty = number(&c, p::ORDER_QTY.name, i)?;
            if qty.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            out.push(Order {
                sku,
                store,
                qty,
                order_value: c
                    .f64(p::ORDER_VALUE.name, i)?
                    .filter(|v| !v.is_nan())
                    .unwrap_or(0.0),
                order_by: day(&c, p::ORDER_BY.name, i)?,
                reason,
            });
        }
    }
    held.sort_by(|a, b| b.would_be_value.total_cmp(&a.would_be_value));
    Ok((out, held))
}

type Series<T> = BTreeMap<(String, String), Vec<T>>;

/// The run's forecast band per `(sku, store)`, by date: the outermost
/// quantile columns as the band and the one nearest 0.5 as the median
/// (as the web's SKU page draws it).
async fn read_forecasts(
    reader: &Reader<'_>,
    r: &Registered,
) -> Result<Series<ForecastPoint>, ReadError> {
    let q = quantile_columns(&r.columns);
    let (Some(lo), Some(hi)) = (q.first(), q.last()) else {
        return Err(ReadError::Columns {
            table: r.table.name.clone(),
            key: r.key,
            missing: "quantile columns pNN (p10, p50, p90 …)".into(),
            have: r.columns.join(", "),
        });
    };
    let mid = q
        .iter()
        .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
        .unwrap_or(lo);
    let want = [
        Want::of(series::SKU, true),
        Want::of(series::STORE, true),
        Want::of(forecasts::FORECAST_DATE, true),
        Want {
            name: &lo.0,
            ty: DataType::Float64,
            required: true,
        },
        Want {
            name: &mid.0,
            ty: DataType::Float64,
            required: true,
        },
        Want {
            name: &hi.0,
            ty: DataType::Float64,
            required: true,
        },
    ];
    let df = reader.rows(r, Partitions::Run).await?;
    let df = reader.select(r, df, &want)?;
    let mut out: Series<ForecastPoint> = BTreeMap::new();
    for b in reader.collect(r, df).await? {
        let c = Cols::new(&b, &r.table.name);
        for i in 0..b.num_rows() {
            let key = (
                text(&c, series::SKU.name, i)?,
                text(&c, series::STORE.name, i)?,
            );
            out.entry(key).or_default().push(ForecastPoint {
                date: day(&c, forecasts::FORECAST_DATE.name, i)?,
                p10: number(&c, &lo.0, i)?,
                p50: number(&c, &mid.0, i)?,
                p90: number(&c, &hi.0, i)?,
            });
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.date.cmp(&b.date));
    }
    Ok(out)
}

/// The history of the charted series (`wanted`, as `(sku, store)`): the
/// `date` and `value` columns of the history table in the partitions
/// `which` selects.
async fn read_history(
    reader: &Reader<'_>,
    r: &Registered,
    value: &str,
    which: Partitions,
    wanted: &[(String, String)],
) -> Result<Series<HistoryPoint>, ReadError> {
    let want = [
        Want::of(series::SKU, true),
        Want::of(series::STORE, true),
        Want {
            name: "date",
            ty: DataType::Date32,
            required: true,
        },
        Want {
            name: value,
            ty: DataType::Float64,
            required: true,
        },
    ];
    let df = reader.rows(r, which).await?;
    let df = reader.select(r, df, &want)?;
    let keep = wanted
        .iter()
        .map(|(sku, store)| {
            col(series::SKU.name)
                .eq(lit(sku.as_str()))
                .and(col(series::STORE.name).eq(lit(store.as_str())))
        })
        .reduce(Expr::or);
    let df = match keep {
        Some(k) => df.filter(k).map_err(|e| query_err(r, e))?,
        None => df,
    };
    let wanted: HashSet<&(String, String)> = wanted.iter().collect();
    let mut out: Series<HistoryPoint> = BTreeMap::new();
    for b in reader.collect(r, df).await? {
        let c = Cols::new(&b, &r.table.name);
        for i in 0..b.num_rows() {
            let key = (
                text(&c, series::SKU.name, i)?,
                text(&c, series::STORE.name, i)?,
            );
            if !wanted.contains(&key) {
                continue;
            }
            out.entry(key).or_default().push(HistoryPoint {
                date: day(&c, "date", i)?,
                value: number(&c, value, i)?,
            });
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.date.cmp(&b.date));
    }
    Ok(out)
}
