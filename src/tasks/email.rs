//! The `email` kind: mail the planners' report of a run.
//!
//! Reads the anomalies, reorder plan and forecasts (optionally a history
//! table) from the lake through its object store (local, S3 or memory),
//! builds a [`Report`] and hands it to [`crate::mail::send_report`]. Table
//! paths are Parquet folders (or files) relative to the lake root; hive
//! folders `ds=…` other than the run's date are skipped, and a `ds` column,
//! when present, keeps the run's rows only. The history table is read from
//! its newest `ds=` partition up to the run's date (a partition holds the
//! history window up to its date), and only for the charted SKUs.
//!
//! Expected columns (first name found wins):
//! * anomalies: `date`, `store`, `sku`, `type`|`anomaly_type`|`kind`,
//!   `severity`, `observed`|`value`, `expected`|`threshold`, `message`
//! * reorder plans: `sku`, `store`, `qty`|`order_qty`|`quantity`,
//!   `order_value`|`value`, `order_by`|`order_by_date`
//! * forecasts: `sku`, `store`, `date`, `p10`, `p50`, `p90`
//! * history: `sku`, `store`, `date`, `value`|`units`|`demand`|`on_hand`

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Deserialize;

use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::lake::Lake;
use crate::mail::{
    Addressing, Anomaly, ForecastPoint, Held, HistoryPoint, Mailer, Order, Outcome, RenderOptions,
    Report, SkuSeries,
};

/// History points drawn before the forecast.
const HISTORY_POINTS: usize = 28;

/// Columns the history is read from (the rest of a wide table is skipped).
const HISTORY_COLUMNS: &[&str] = &[
    "sku",
    "sku_id",
    "store",
    "store_id",
    "date",
    "forecast_date",
    "target_date",
    "value",
    "units",
    "demand",
    "on_hand",
];

pub struct EmailKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSpec {
    subject_prefix: Option<String>,
    to: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    anomalies: String,
    reorder_plans: Option<String>,
    forecasts: Option<String>,
    history: Option<String>,
    /// Read `history` from the `ds=` partitions of the last N days (a table
    /// with one partition per day, like raw sales); without it, from its
    /// newest partition up to the run's date.
    history_days: Option<u32>,
    /// Lines of the headline list (default 25).
    headline: Option<usize>,
    /// Mail even if this DAG and date were already mailed.
    #[serde(default)]
    force: bool,
}

#[derive(Debug)]
struct EmailRunner {
    spec: EmailSpec,
}

impl TaskKind for EmailKind {
    fn name(&self) -> &'static str {
        "email"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let spec: EmailSpec = cx.deserialize(spec)?;
        for (key, value) in [
            ("anomalies", Some(&spec.anomalies)),
            ("reorder_plans", spec.reorder_plans.as_ref()),
            ("forecasts", spec.forecasts.as_ref()),
            ("history", spec.history.as_ref()),
        ] {
            if let Some(v) = value {
                cx.template(key, v);
            }
        }
        for (key, list) in [("to", &spec.to), ("cc", &spec.cc)] {
            for a in list.iter().flatten() {
                if a.parse::<lettre::message::Mailbox>().is_err() {
                    cx.error(key, format!("invalid address `{a}`"));
                }
            }
        }
        Some(Arc::new(EmailRunner { spec }))
    }
}

#[derive(Debug, thiserror::Error)]
enum TableError {
    #[error("table {path}: {message}")]
    Read { path: String, message: String },
    #[error("table {path}: no column {}", names.join(" or "))]
    Column {
        path: String,
        names: Vec<&'static str>,
    },
}

/// A table read into memory: batches and where they came from.
struct Table {
    path: String,
    batches: Vec<RecordBatch>,
}

/// Which `ds=` partitions of a table the report reads.
#[derive(Clone, Copy)]
enum Partitions {
    /// The run's date only.
    Run,
    /// The newest date on or before the run's.
    NewestUpToRun,
    /// The dates of the last `n` days up to the run's (one partition per day).
    LastDays(u32),
}

/// The Parquet files of a table, fetched from the lake: bytes per file.
struct Source {
    path: String,
    files: Vec<(String, bytes::Bytes)>,
}

fn ds_of(parts: &[String]) -> Option<&str> {
    parts.iter().find_map(|p| p.strip_prefix("ds="))
}

/// Fetch the visible Parquet files of `rel` (a folder or one file).
async fn fetch(lake: &Lake, rel: &str, ds: &str, which: Partitions) -> Result<Source, TableError> {
    let store = lake.store();
    let root = crate::lake::table_location(rel);
    let path = lake.describe(&root);
    let err = |message: String| TableError::Read {
        path: path.clone(),
        message,
    };
    let listed: Vec<ObjectMeta> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut candidates: Vec<(Vec<String>, ObjectPath)> = Vec::new();
    for m in listed {
        let rel_parts: Vec<String> = match m.location.prefix_match(&root) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
            None => continue,
        };
        let hidden = rel_parts
            .iter()
            .any(|p| p.starts_with('_') || p.starts_with('.'));
        if hidden || !m.location.as_ref().ends_with(".parquet") {
            continue;
        }
        candidates.push((rel_parts, m.location));
    }
    if candidates.is_empty() && rel.ends_with(".parquet") {
        candidates.push((Vec::new(), root.clone()));
    }
    let first = match which {
        Partitions::Run | Partitions::NewestUpToRun => ds.to_string(),
        Partitions::LastDays(n) => chrono::NaiveDate::parse_from_str(ds, "%Y-%m-%d")
            .map(|d| (d - chrono::Days::new(u64::from(n.max(1) - 1))).to_string())
            .unwrap_or_else(|_| ds.to_string()),
    };
    let newest: Option<String> = candidates
        .iter()
        .filter_map(|(parts, _)| ds_of(parts))
        .filter(|d| *d <= ds)
        .max()
        .map(str::to_string);
    candidates.retain(|(parts, _)| match (ds_of(parts), which) {
        (None, _) => true,
        (Some(d), Partitions::Run) => d == ds,
        (Some(d), Partitions::NewestUpToRun) => newest.as_deref() == Some(d),
        (Some(d), Partitions::LastDays(_)) => d >= first.as_str() && d <= ds,
    });
    candidates.sort_by(|a, b| a.1.cmp(&b.1));
    let mut files = Vec::with_capacity(candidates.len());
    for (_, loc) in candidates {
        let bytes = match store.get(&loc).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        }
        .map_err(|e| err(format!("{}: {e}", lake.describe(&loc))))?;
        files.push((lake.describe(&loc), bytes));
    }
    if files.is_empty() {
        return Err(err("no Parquet files".into()));
    }
    Ok(Source { path, files })
}

/// Selects the rows of a batch to keep.
type RowFilter<'a> = &'a dyn Fn(&Table, &RecordBatch) -> Result<Vec<bool>, TableError>;

/// Decode a source; `keep` selects rows of each batch as it is read (so a
/// large table never sits in memory whole).
fn decode(
    src: &Source,
    ds: &str,
    columns: Option<&[&str]>,
    keep: Option<RowFilter<'_>>,
) -> Result<Table, TableError> {
    let mut t = Table {
        path: src.path.clone(),
        batches: Vec::new(),
    };
    for (name, bytes) in &src.files {
        let err = |e: String| TableError::Read {
            path: src.path.clone(),
            message: format!("{name}: {e}"),
        };
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
                .and_then(|b| match columns {
                    Some(names) => {
                        let mask = parquet::arrow::ProjectionMask::columns(
                            b.parquet_schema(),
                            names.iter().copied(),
                        );
                        b.with_projection(mask).build()
                    }
                    None => b.build(),
                })
                .map_err(|e| err(e.to_string()))?;
        for b in reader {
            let b = b.map_err(|e| err(e.to_string()))?;
            let b = match keep {
                Some(f) => {
                    let mask: arrow::array::BooleanArray =
                        f(&t, &b)?.into_iter().map(Some).collect();
                    arrow::compute::filter_record_batch(&b, &mask)
                        .map_err(|e| err(e.to_string()))?
                }
                None => b,
            };
            if b.num_rows() > 0 {
                t.batches.push(b);
            }
        }
    }
    t.keep_ds(ds)?;
    Ok(t)
}

impl Table {
    fn column(&self, b: &RecordBatch, names: &[&'static str]) -> Option<ArrayRef> {
        names
            .iter()
            .find_map(|n| b.schema().index_of(n).ok())
            .map(|i| b.column(i).clone())
    }

    fn strings(
        &self,
        b: &RecordBatch,
        names: &[&'static str],
        required: bool,
    ) -> Result<Vec<String>, TableError> {
        let Some(col) = self.column(b, names) else {
            if required {
                return Err(TableError::Column {
                    path: self.path.clone(),
                    names: names.to_vec(),
                });
            }
            return Ok(vec![String::new(); b.num_rows()]);
        };
        let cast = arrow::compute::cast(&col, &DataType::Utf8).map_err(|e| TableError::Read {
            path: self.path.clone(),
            message: format!("{}: {e}", names[0]),
        })?;
        let a = cast.as_any().downcast_ref::<StringArray>();
        Ok((0..b.num_rows())
            .map(|i| match a {
                Some(a) if a.is_valid(i) => a.value(i).to_string(),
                _ => String::new(),
            })
            .collect())
    }

    fn dates(&self, b: &RecordBatch, names: &[&'static str]) -> Result<Vec<String>, TableError> {
        Ok(self
            .strings(b, names, true)?
            .into_iter()
            .map(|s| s.chars().take(10).collect())
            .collect())
    }

    fn numbers(
        &self,
        b: &RecordBatch,
        names: &[&'static str],
        required: bool,
    ) -> Result<Vec<f64>, TableError> {
        let Some(col) = self.column(b, names) else {
            if required {
                return Err(TableError::Column {
                    path: self.path.clone(),
                    names: names.to_vec(),
                });
            }
            return Ok(vec![f64::NAN; b.num_rows()]);
        };
        let cast =
            arrow::compute::cast(&col, &DataType::Float64).map_err(|e| TableError::Read {
                path: self.path.clone(),
                message: format!("{}: {e}", names[0]),
            })?;
        let a = cast.as_any().downcast_ref::<Float64Array>();
        Ok((0..b.num_rows())
            .map(|i| match a {
                Some(a) if a.is_valid(i) => a.value(i),
                _ => f64::NAN,
            })
            .collect())
    }

    /// Keep only the run's rows when the table has a `ds` column.
    fn keep_ds(&mut self, ds: &str) -> Result<(), TableError> {
        let mut kept = Vec::new();
        for b in &self.batches {
            if b.schema().index_of("ds").is_err() {
                kept.push(b.clone());
                continue;
            }
            let days = self.dates(b, &["ds"])?;
            let mask: arrow::array::BooleanArray = days.iter().map(|d| Some(d == ds)).collect();
            let f =
                arrow::compute::filter_record_batch(b, &mask).map_err(|e| TableError::Read {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            kept.push(f);
        }
        self.batches = kept;
        Ok(())
    }

    fn anomalies(&self) -> Result<Vec<Anomaly>, TableError> {
        let mut out = Vec::new();
        for b in &self.batches {
            let date = self.dates(b, &["date", "ds"])?;
            let store = self.strings(b, &["store", "store_id"], true)?;
            let sku = self.strings(b, &["sku", "sku_id"], true)?;
            let kind = self.strings(b, &["type", "anomaly_type", "kind"], true)?;
            let severity = self.strings(b, &["severity"], true)?;
            let observed = self.numbers(b, &["observed", "value"], true)?;
            let expected = self.numbers(b, &["expected", "threshold"], false)?;
            let message = self.strings(b, &["message", "detail"], false)?;
            let reason = self.strings(b, &["reason"], false)?;
            let money = self.numbers(b, &["money_at_risk"], false)?;
            let status = self.strings(b, &["status"], false)?;
            let first_seen = self.strings(b, &["first_seen"], false)?;
            let headline = self.strings(b, &["headline"], false)?;
            for i in 0..b.num_rows() {
                out.push(Anomaly {
                    date: date[i].clone(),
                    store: store[i].clone(),
                    sku: sku[i].clone(),
                    kind: kind[i].clone(),
                    severity: severity[i].clone(),
                    observed: observed[i],
                    expected: expected[i],
                    message: message[i].clone(),
                    reason: reason[i].clone(),
                    money_at_risk: Some(money[i]).filter(|m| !m.is_nan()),
                    status: status[i].clone(),
                    first_seen: first_seen[i].chars().take(10).collect(),
                    headline: match headline[i].as_str() {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    },
                });
            }
        }
        Ok(out)
    }

    /// Order lines to place and the lines held on bad input.
    fn orders(&self) -> Result<(Vec<Order>, Vec<Held>), TableError> {
        let mut out = Vec::new();
        let mut held = Vec::new();
        for b in &self.batches {
            let sku = self.strings(b, &["sku", "sku_id"], true)?;
            let store = self.strings(b, &["store", "store_id"], true)?;
            let qty = self.numbers(b, &["qty", "order_qty", "quantity"], true)?;
            let value = self.numbers(b, &["order_value", "value"], false)?;
            let by = self.dates(b, &["order_by", "order_by_date"])?;
            let status = self.strings(b, &["status"], false)?;
            let reason = self.strings(b, &["reason"], false)?;
            let held_value = self.numbers(b, &["held_order_value"], false)?;
            for i in 0..b.num_rows() {
                if status[i] == "held" {
                    held.push(Held {
                        sku: sku[i].clone(),
                        store: store[i].clone(),
                        would_be_value: if held_value[i].is_nan() {
                            0.0
                        } else {
                            held_value[i]
                        },
                        reason: reason[i].clone(),
                    });
                    continue;
                }
                // A plan line with nothing to order is not an order.
                if qty[i].partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                    continue;
                }
                out.push(Order {
                    sku: sku[i].clone(),
                    store: store[i].clone(),
                    qty: qty[i],
                    order_value: if value[i].is_nan() { 0.0 } else { value[i] },
                    order_by: by[i].clone(),
                    reason: reason[i].clone(),
                });
            }
        }
        held.sort_by(|a, b| b.would_be_value.total_cmp(&a.would_be_value));
        Ok((out, held))
    }

    /// `(sku, store) -> rows` of one series table.
    fn series<T>(
        &self,
        values: &[&'static str],
        make: impl Fn(String, &[f64]) -> T,
    ) -> Result<BTreeMap<(String, String), Vec<T>>, TableError> {
        let mut out: BTreeMap<(String, String), Vec<(String, T)>> = BTreeMap::new();
        for b in &self.batches {
            let sku = self.strings(b, &["sku", "sku_id"], true)?;
            let store = self.strings(b, &["store", "store_id"], true)?;
            let date = self.dates(b, &["forecast_date", "date", "target_date"])?;
            let cols = values
                .iter()
                .map(|v| {
                    let names: Vec<&'static str> = v.split('|').collect();
                    self.numbers(b, &names, true)
                })
                .collect::<Result<Vec<_>, _>>()?;
            for i in 0..b.num_rows() {
                let row: Vec<f64> = cols.iter().map(|c| c[i]).collect();
                out.entry((sku[i].clone(), store[i].clone()))
                    .or_default()
                    .push((date[i].clone(), make(date[i].clone(), &row)));
            }
        }
        Ok(out
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by(|a, b| a.0.cmp(&b.0));
                (k, v.into_iter().map(|(_, t)| t).collect())
            })
            .collect())
    }
}

/// Lake paths of the report's tables (rendered).
struct Tables {
    anomalies: String,
    orders: Option<String>,
    forecasts: Option<String>,
    history: Option<String>,
}

/// The fetched tables.
struct Sources {
    anomalies: Source,
    orders: Option<Source>,
    forecasts: Option<Source>,
    history: Option<Source>,
}

async fn fetch_all(
    lake: &Lake,
    t: &Tables,
    ds: &str,
    history_days: Option<u32>,
) -> Result<Sources, TableError> {
    let run = |rel: &Option<String>| {
        let rel = rel.clone();
        async move {
            match rel {
                Some(r) => fetch(lake, &r, ds, Partitions::Run).await.map(Some),
                None => Ok(None),
            }
        }
    };
    Ok(Sources {
        anomalies: fetch(lake, &t.anomalies, ds, Partitions::Run).await?,
        orders: run(&t.orders).await?,
        forecasts: run(&t.forecasts).await?,
        history: match &t.history {
            Some(r) => {
                let which = history_days.map_or(Partitions::NewestUpToRun, Partitions::LastDays);
                Some(fetch(lake, r, ds, which).await?)
            }
            None => None,
        },
    })
}

/// Decode the tables and assemble the report (blocking: run on the pool).
fn build_report(
    sources: Sources,
    dag_id: &str,
    run_id: &str,
    ds: &str,
) -> Result<Report, TableError> {
    let anomalies = decode(&sources.anomalies, ds, None, None)?.anomalies()?;
    let (orders, held) = match &sources.orders {
        Some(src) => decode(src, ds, None, None)?.orders()?,
        None => (Vec::new(), Vec::new()),
    };
    let mut forecasts = match &sources.forecasts {
        Some(src) => decode(src, ds, None, None)?.series(&["p10", "p50", "p90"], |date, v| {
            ForecastPoint {
                date,
                p10: v[0],
                p50: v[1],
                p90: v[2],
            }
        })?,
        None => BTreeMap::new(),
    };
    // Worst SKUs first: in the order of their worst anomaly; only those are
    // charted, so only their history is kept.
    let mut report = Report {
        dag_id: dag_id.into(),
        run_id: run_id.into(),
        ds: ds.into(),
        anomalies,
        orders,
        held,
        series: Vec::new(),
    };
    let mut seen = std::collections::BTreeSet::new();
    let worst: Vec<(String, String)> = report
        .ranked_anomalies()
        .into_iter()
        .map(|a| (a.sku.clone(), a.store.clone()))
        .filter(|k| seen.insert(k.clone()))
        .take(crate::mail::chart::MAX_PANELS * 4)
        .collect();
    let wanted: std::collections::HashSet<(String, String)> = worst.iter().cloned().collect();
    let keep = |t: &Table, b: &RecordBatch| -> Result<Vec<bool>, TableError> {
        let sku = t.strings(b, &["sku", "sku_id"], true)?;
        let store = t.strings(b, &["store", "store_id"], true)?;
        Ok(sku
            .into_iter()
            .zip(store)
            .map(|k| wanted.contains(&k))
            .collect())
    };
    let mut history = match &sources.history {
        Some(src) => decode(src, "", Some(HISTORY_COLUMNS), Some(&keep))?.series(
            &["value|units|demand|on_hand"],
            |date, v| HistoryPoint { date, value: v[0] },
        )?,
        None => BTreeMap::new(),
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

#[async_trait]
impl TaskRunner for EmailRunner {
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let config = &cx.services.config;
        let path = |rel: &str| -> Result<String, TaskError> { cx.render(rel) };
        let tables = Tables {
            anomalies: path(&self.spec.anomalies)?,
            orders: self.spec.reorder_plans.as_deref().map(path).transpose()?,
            forecasts: self.spec.forecasts.as_deref().map(path).transpose()?,
            history: self.spec.history.as_deref().map(path).transpose()?,
        };
        let (dag_id, run_id, ds) = (cx.dag_id.clone(), cx.run_id.clone(), cx.vars.ds.clone());
        let sources = fetch_all(&cx.services.lake, &tables, &ds, self.spec.history_days)
            .await
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        let state = config.state.clone();
        let (report, store) = tokio::task::spawn_blocking(move || {
            let report = build_report(sources, &dag_id, &run_id, &ds)
                .map_err(|e| TaskError::Fatal(e.to_string()))?;
            let store =
                crate::store::Store::open(&state).map_err(|e| TaskError::Failed(e.to_string()))?;
            Ok::<_, TaskError>((report, store))
        })
        .await
        .map_err(|e| TaskError::Failed(format!("email: {e}")))??;
        cx.log.progress(&format!(
            "report: {} anomalies, {} orders, {} charted SKUs",
            report.anomalies.len(),
            report.orders.len(),
            report.series.len()
        ));

        let mail = config.mail.clone();
        let addressing = Addressing {
            from: mail
                .as_ref()
                .map(|m| m.from.clone())
                .unwrap_or_else(|| "restock@localhost".into()),
            to: self
                .spec
                .to
                .clone()
                .or_else(|| mail.as_ref().map(|m| m.to.clone()))
                .unwrap_or_default(),
            cc: self
                .spec
                .cc
                .clone()
                .or_else(|| mail.as_ref().map(|m| m.cc.clone()))
                .unwrap_or_default(),
        };
        let mailer = Mailer::new(
            mail.and_then(|m| m.smtp),
            config.outbox.clone(),
            Some(store),
        );
        let opts = RenderOptions {
            subject_prefix: self
                .spec
                .subject_prefix
                .clone()
                .unwrap_or_else(|| RenderOptions::default().subject_prefix),
            headline: self.spec.headline.unwrap_or(crate::mail::report::HEADLINE),
        };
        let outcome =
            crate::mail::send_report(&mailer, &report, &opts, &addressing, self.spec.force)
                .await
                .map_err(|e| {
                    if e.retryable() {
                        TaskError::Failed(e.to_string())
                    } else {
                        TaskError::Fatal(e.to_string())
                    }
                })?;
        let mut out = Outputs::new();
        match outcome {
            Outcome::Delivered(d) => {
                cx.log.progress(&format!(
                    "mailed {} to {} via {}",
                    d.message_id,
                    d.recipients.join(", "),
                    d.transport.as_str()
                ));
                out.insert("sent".into(), true.into());
                out.insert("transport".into(), d.transport.as_str().into());
                out.insert("message_id".into(), d.message_id.into());
                out.insert("recipients".into(), d.recipients.into());
                out.insert(
                    "attachments".into(),
                    vec![
                        crate::mail::message::ANOMALIES_CSV,
                        crate::mail::message::ORDERS_CSV,
                    ]
                    .into(),
                );
            }
            Outcome::Skipped(prev) => {
                cx.log.progress(&format!(
                    "already mailed for {} {} ({} at {}); set force: true to mail again",
                    prev.dag_id, prev.ds, prev.message_id, prev.sent_at
                ));
                out.insert("sent".into(), false.into());
                out.insert("transport".into(), prev.transport.into());
                out.insert("message_id".into(), prev.message_id.into());
                out.insert("recipients".into(), prev.recipients.into());
                out.insert("attachments".into(), Vec::<String>::new().into());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    fn write(path: &std::path::Path, batch: RecordBatch) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        let f = std::fs::File::create(path).expect("file");
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    fn strs(v: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    #[tokio::test]
    async fn reads_tables_into_a_report() {
        let dir = tempfile::tempdir().expect("tmp");
        let schema = Arc::new(Schema::new(vec![
            Field::new("date", DataType::Utf8, false),
            Field::new("store", DataType::Utf8, false),
            Field::new("sku", DataType::Utf8, false),
            Field::new("anomaly_type", DataType::Utf8, false),
            Field::new("severity", DataType::Utf8, false),
            Field::new("observed", DataType::Int64, false),
            Field::new("threshold", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                strs(&["2026-11-27", "2026-11-27"]),
                strs(&["S1", "S2"]),
                strs(&["A", "B"]),
                strs(&["stockout", "overstock"]),
                strs(&["warning", "critical"]),
                Arc::new(Int64Array::from(vec![0, 900])),
                Arc::new(Float64Array::from(vec![10.0, 500.0])),
            ],
        )
        .expect("batch");
        write(
            &dir.path().join("anomalies/ds=2026-11-27/part-0.parquet"),
            batch.clone(),
        );
        // Another date's partition is not part of this run's report.
        write(
            &dir.path().join("anomalies/ds=2026-11-26/part-0.parquet"),
            batch,
        );
        let fschema = Arc::new(Schema::new(vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("store", DataType::Utf8, false),
            Field::new("date", DataType::Utf8, false),
            Field::new("p10", DataType::Float64, false),
            Field::new("p50", DataType::Float64, false),
            Field::new("p90", DataType::Float64, false),
        ]));
        let f = RecordBatch::try_new(
            fschema,
            vec![
                strs(&["B", "B"]),
                strs(&["S2", "S2"]),
                strs(&["2026-11-29", "2026-11-28"]),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
                Arc::new(Float64Array::from(vec![3.0, 4.0])),
                Arc::new(Float64Array::from(vec![5.0, 6.0])),
            ],
        )
        .expect("batch");
        write(&dir.path().join("forecasts/part-0.parquet"), f);
        // History: the newest partition up to the run's date is read, for
        // the charted SKUs only.
        let hschema = Arc::new(Schema::new(vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("store", DataType::Utf8, false),
            Field::new("date", DataType::Utf8, false),
            Field::new("units", DataType::Float64, false),
        ]));
        for (ds, units) in [
            ("2026-11-20", 1.0),
            ("2026-11-27", 7.0),
            ("2026-11-28", 99.0),
        ] {
            let h = RecordBatch::try_new(
                hschema.clone(),
                vec![
                    strs(&["B", "B", "Z"]),
                    strs(&["S2", "S2", "S9"]),
                    strs(&["2026-11-27", "2026-11-26", "2026-11-27"]),
                    Arc::new(Float64Array::from(vec![units, units + 1.0, 3.0])),
                ],
            )
            .expect("batch");
            write(
                &dir.path().join(format!("history/ds={ds}/part-0.parquet")),
                h,
            );
        }
        let lake = Lake::open(dir.path().to_str().expect("utf8 path")).expect("lake");
        let tables = Tables {
            anomalies: "anomalies".into(),
            orders: None,
            forecasts: Some("forecasts".into()),
            history: Some("history".into()),
        };
        let sources = fetch_all(&lake, &tables, "2026-11-27", None)
            .await
            .expect("fetch");
        let r = build_report(sources, "d", "r", "2026-11-27").expect("report");
        assert_eq!(r.anomalies.len(), 2);
        assert_eq!(r.anomalies[0].observed, 0.0);
        assert_eq!(r.anomalies[0].expected, 10.0);
        assert_eq!(r.series.len(), 1);
        assert_eq!(r.series[0].sku, "B");
        assert_eq!(r.series[0].forecast[0].date, "2026-11-28", "sorted by date");
        let h: Vec<(String, f64)> = r.series[0]
            .history
            .iter()
            .map(|p| (p.date.clone(), p.value))
            .collect();
        assert_eq!(
            h,
            [
                ("2026-11-26".to_string(), 8.0),
                ("2026-11-27".to_string(), 7.0)
            ]
        );

        // Which history partitions each mode reads.
        for (which, n) in [
            (Partitions::Run, 1),
            (Partitions::NewestUpToRun, 1),
            (Partitions::LastDays(7), 1),
            (Partitions::LastDays(8), 2),
        ] {
            let src = fetch(&lake, "history", "2026-11-27", which)
                .await
                .expect("fetch");
            assert_eq!(
                src.files.len(),
                n,
                "{:?}",
                src.files.iter().map(|f| &f.0).collect::<Vec<_>>()
            );
            assert!(src.files.iter().all(|f| !f.0.contains("2026-11-28")));
        }

        let missing = Tables {
            anomalies: "forecasts".into(),
            orders: None,
            forecasts: None,
            history: None,
        };
        let sources = fetch_all(&lake, &missing, "2026-11-27", None)
            .await
            .expect("fetch");
        let e = build_report(sources, "d", "r", "2026-11-27").expect_err("error");
        assert!(
            e.to_string()
                .contains("no column type or anomaly_type or kind"),
            "{e}"
        );
    }
}
