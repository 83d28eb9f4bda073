//! Table access for task kinds that compute in Rust (`reorder`, `monitor`):
//! read a DAG's declared tables with DataFusion SQL, and publish one
//! in-memory result to the lake atomically. The `sql` kind streams instead;
//! these kinds' results are one row per series and fit in memory.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float32Type, Float64Type, Int32Type, Int64Type};
use chrono::NaiveDate;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;

use super::{AttemptContext, Outputs, TaskError};
use crate::lake::publish::{self, PublishError, Target, WriteMode};
use crate::lake::session::{self, SessionError};

/// A session with the named declared tables registered. A table that is
/// declared but has no files yet is left out when `optional` lists it.
pub async fn session(
    cx: &AttemptContext,
    required: &[&str],
    optional: &[&str],
) -> Result<(SessionContext, Vec<String>), TaskError> {
    let lake = &cx.services.lake;
    let ctx = session::context(lake);
    let mut present = Vec::new();
    for (name, needed) in required
        .iter()
        .map(|n| (*n, true))
        .chain(optional.iter().map(|n| (*n, false)))
    {
        let Some(table) = cx.dag.tables.get(name) else {
            let declared: Vec<&str> = cx.dag.tables.keys().map(String::as_str).collect();
            return Err(TaskError::Fatal(format!(
                "task `{}` reads table `{name}`, which is not declared under `tables:` in {} (declared: {})",
                cx.task_id,
                cx.dag.file.display(),
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            )));
        };
        match session::register_table(&ctx, lake, table).await {
            Ok(()) => present.push(name.to_string()),
            Err(SessionError::NoFiles { .. }) if !needed => {
                cx.log.line(&format!(
                    "table `{name}` has no files yet; rules that need it are skipped"
                ));
            }
            Err(e @ SessionError::List { .. }) => return Err(TaskError::Failed(e.to_string())),
            Err(e) => return Err(TaskError::Fatal(e.to_string())),
        }
    }
    Ok((ctx, present))
}

/// Which columns of the lake's tables hold the `store` and `sku` keys the
/// `reorder` and `monitor` kinds work on (`series_key:` of the task; by
/// default they are literally `store` and `sku`). Their outputs keep the
/// canonical names, the contract the email and the UI read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMap {
    #[serde(default = "d_store")]
    pub store: String,
    #[serde(default = "d_sku")]
    pub sku: String,
}

fn d_store() -> String {
    "store".into()
}

fn d_sku() -> String {
    "sku".into()
}

impl Default for KeyMap {
    fn default() -> Self {
        Self {
            store: d_store(),
            sku: d_sku(),
        }
    }
}

impl KeyMap {
    /// The lake's column names, store first.
    pub fn columns(&self) -> Vec<String> {
        vec![self.store.clone(), self.sku.clone()]
    }

    /// What a task reading `cols` (canonical names) needs of a table
    /// declaring `declared`: `store` and `sku` are the mapped columns
    /// where the table has them, else the canonical ones, as
    /// [`keyed_session`] renames a mapped column only where there is one.
    pub fn lake_names<'a>(&'a self, cols: &[&'a str], declared: &[&str]) -> Vec<&'a str> {
        cols.iter()
            .map(|&c| {
                let mapped = match c {
                    "store" => self.store.as_str(),
                    "sku" => self.sku.as_str(),
                    other => return other,
                };
                if declared.contains(&mapped) || !declared.contains(&c) {
                    mapped
                } else {
                    c
                }
            })
            .collect()
    }
}

/// [`session`], with each registered table's key columns renamed to
/// `store` and `sku` where the table names them otherwise.
pub async fn keyed_session(
    cx: &AttemptContext,
    required: &[&str],
    optional: &[&str],
    keys: &KeyMap,
) -> Result<(SessionContext, Vec<String>), TaskError> {
    let (ctx, present) = session(cx, required, optional).await?;
    if *keys == KeyMap::default() {
        return Ok((ctx, present));
    }
    for name in &present {
        let cols = columns(&ctx, name).await?;
        let mut df = ctx
            .table(name.as_str())
            .await
            .map_err(|e| read_failed(&cx.task_id, e))?;
        let mut renamed = false;
        for (from, to) in [(&keys.store, "store"), (&keys.sku, "sku")] {
            if from == to || !cols.iter().any(|c| c == from) {
                continue;
            }
            if cols.iter().any(|c| c == to) {
                return Err(TaskError::Fatal(format!(
                    "table `{name}` has both `{from}` (the series key's {to}) and a `{to}` column; \
                     rename one of them"
                )));
            }
            df = df
                .with_column_renamed(from.as_str(), to)
                .map_err(|e| read_failed(&cx.task_id, e))?;
            renamed = true;
        }
        if renamed {
            ctx.deregister_table(name.as_str())
                .map_err(|e| read_failed(&cx.task_id, e))?;
            ctx.register_table(name.as_str(), df.into_view())
                .map_err(|e| read_failed(&cx.task_id, e))?;
        }
    }
    Ok((ctx, present))
}

/// Run a query and stream its result batch by batch, so that a caller
/// that folds rows into its own structures never holds the whole result.
pub async fn query_stream(
    ctx: &SessionContext,
    task: &str,
    sql: &str,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, TaskError> {
    let df = ctx.sql(sql).await.map_err(|e| {
        TaskError::Fatal(format!(
            "task `{task}`: planning its query failed: {}",
            e.strip_backtrace()
        ))
    })?;
    df.execute_stream().await.map_err(|e| read_failed(task, e))
}

/// A failure while reading a query's inputs (a corrupt file, a vanished
/// partition): the data must be fixed, so it is not retried.
pub fn read_failed(task: &str, e: datafusion::error::DataFusionError) -> TaskError {
    TaskError::Fatal(format!(
        "task `{task}`: reading its inputs failed: {}",
        e.strip_backtrace()
    ))
}

/// Run a query and collect its result.
pub async fn query(
    ctx: &SessionContext,
    task: &str,
    sql: &str,
) -> Result<Vec<RecordBatch>, TaskError> {
    let df = ctx.sql(sql).await.map_err(|e| {
        TaskError::Fatal(format!(
            "task `{task}`: planning its query failed: {}",
            e.strip_backtrace()
        ))
    })?;
    df.collect().await.map_err(|e| read_failed(task, e))
}

/// Names of `table`'s columns, for checks and quantile discovery.
pub async fn columns(ctx: &SessionContext, table: &str) -> Result<Vec<String>, TaskError> {
    let t = ctx
        .table(table)
        .await
        .map_err(|e| TaskError::Fatal(e.strip_backtrace()))?;
    Ok(t.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// Fail clearly when `table` lacks columns a kind needs.
pub fn require(table: &str, have: &[String], need: &[&str]) -> Result<(), TaskError> {
    let missing: Vec<&str> = need
        .iter()
        .copied()
        .filter(|n| !have.iter().any(|h| h == n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TaskError::Fatal(format!(
            "table `{table}` lacks column(s) {} (it has: {})",
            missing.join(", "),
            have.join(", ")
        )))
    }
}

/// Publish `batch` as the run's partition of `table` (lake path).
pub async fn publish_partition(
    cx: &AttemptContext,
    table: &str,
    batch: RecordBatch,
) -> Result<Outputs, TaskError> {
    let lake = &cx.services.lake;
    let target = Target {
        table: crate::lake::table_location(table),
        partition: Some(("ds".to_string(), cx.vars.ds.clone())),
        mode: WriteMode::OverwritePartition,
    };
    let schema = batch.schema();
    let stream = Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(vec![Ok(batch)]),
    ));
    let written = publish::write(lake, &target, stream, &cx.cancel, &|_| {})
        .await
        .map_err(|e| match e {
            PublishError::Interrupted => TaskError::Interrupted(e.to_string()),
            other => TaskError::Failed(other.to_string()),
        })?;
    cx.log.progress(&format!(
        "published {} rows to {}",
        written.rows,
        lake.describe(&written.file)
    ));
    let mut out = Outputs::new();
    out.insert("rows".into(), written.rows.into());
    out.insert("bytes".into(), written.bytes.into());
    out.insert("path".into(), lake.describe(&written.dir).into());
    Ok(out)
}

/// Column accessors that accept the numeric types a table may carry.
pub struct Cols<'a> {
    batch: &'a RecordBatch,
    table: &'a str,
}

impl<'a> Cols<'a> {
    pub fn new(batch: &'a RecordBatch, table: &'a str) -> Self {
        Self { batch, table }
    }

    fn col(&self, name: &str) -> Result<&'a Arc<dyn Array>, TaskError> {
        self.batch.column_by_name(name).ok_or_else(|| {
            TaskError::Fatal(format!("table `{}`: missing column `{name}`", self.table))
        })
    }

    pub fn str(&self, name: &str, row: usize) -> Result<Option<String>, TaskError> {
        let c = self.col(name)?;
        if c.is_null(row) {
            return Ok(None);
        }
        let v = match c.data_type() {
            DataType::Utf8 => c.as_string::<i32>().value(row).to_string(),
            DataType::LargeUtf8 => c.as_string::<i64>().value(row).to_string(),
            DataType::Utf8View => c.as_string_view().value(row).to_string(),
            DataType::Dictionary(_, _) => {
                let cast = arrow::compute::cast(&c.slice(row, 1), &DataType::Utf8)
                    .map_err(|e| TaskError::Fatal(e.to_string()))?;
                cast.as_string::<i32>().value(0).to_string()
            }
            other => {
                return Err(TaskError::Fatal(format!(
                    "table `{}`: column `{name}` is {other}, expected a string",
                    self.table
                )));
            }
        };
        Ok(Some(v))
    }

    pub fn f64(&self, name: &str, row: usize) -> Result<Option<f64>, TaskError> {
        let c = self.col(name)?;
        if c.is_null(row) {
            return Ok(None);
        }
        let v = match c.data_type() {
            DataType::Float64 => c.as_primitive::<Float64Type>().value(row),
            DataType::Float32 => f64::from(c.as_primitive::<Float32Type>().value(row)),
            DataType::Int64 => c.as_primitive::<Int64Type>().value(row) as f64,
            DataType::Int32 => f64::from(c.as_primitive::<Int32Type>().value(row)),
            other => {
                let cast =
                    arrow::compute::cast(&c.slice(row, 1), &DataType::Float64).map_err(|_| {
                        TaskError::Fatal(format!(
                            "table `{}`: column `{name}` is {other}, expected a number",
                            self.table
                        ))
                    })?;
                cast.as_primitive::<Float64Type>().value(0)
            }
        };
        Ok(Some(v))
    }

    pub fn bool(&self, name: &str, row: usize) -> Result<Option<bool>, TaskError> {
        let c = self.col(name)?;
        if c.is_null(row) {
            return Ok(None);
        }
        match c.data_type() {
            DataType::Boolean => Ok(Some(c.as_boolean().value(row))),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                match self.str(name, row)?.as_deref() {
                    Some("true") => Ok(Some(true)),
                    Some("false") => Ok(Some(false)),
                    _ => Ok(None),
                }
            }
            other => Err(TaskError::Fatal(format!(
                "table `{}`: column `{name}` is {other}, expected true or false",
                self.table
            ))),
        }
    }

    pub fn date(&self, name: &str, row: usize) -> Result<Option<NaiveDate>, TaskError> {
        let c = self.col(name)?;
        if c.is_null(row) {
            return Ok(None);
        }
        match c.data_type() {
            DataType::Date32 => {
                let days = c.as_primitive::<Date32Type>().value(row);
                Ok(Date32Type::to_naive_date_opt(days))
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let s = self.str(name, row)?.unwrap_or_default();
                Ok(NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
            }
            other => Err(TaskError::Fatal(format!(
                "table `{}`: column `{name}` is {other}, expected a date",
                self.table
            ))),
        }
    }
}

/// Days since the Unix epoch, as Arrow's Date32 stores them.
pub fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Date arithmetic on `ds` for SQL literals.
pub fn ds_minus(ds: &str, days: i64) -> String {
    NaiveDate::parse_from_str(ds, "%Y-%m-%d")
        .map(|d| {
            (d - chrono::Duration::days(days))
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_else(|_| ds.to_string())
}

/// Quantile columns (`p10`, `p50`, `p90` …) with their levels, ascending.
pub fn quantile_columns(cols: &[String]) -> Vec<(String, f64)> {
    let mut q: Vec<(String, f64)> = cols
        .iter()
        .filter_map(|c| {
            let n: u32 = c.strip_prefix('p')?.parse().ok()?;
            (1..100)
                .contains(&n)
                .then(|| (c.clone(), f64::from(n) / 100.0))
        })
        .collect();
    q.sort_by(|a, b| a.1.total_cmp(&b.1));
    q
}
