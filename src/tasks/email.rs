//! The `email` kind: mail the planners' report of a run.
//!
//! Reads the anomalies, reorder plan and forecasts (optionally a history
//! table) from the lake, builds a [`Report`] and hands it to
//! [`crate::mail::send_report`]. Until the lake layer lands, table paths
//! are Parquet folders (or files) relative to a local lake root
//! (`services.config.lake`); hive folders `ds=…` other than the run's date
//! are skipped, and a `ds` column, when present, keeps the run's rows only.
//!
//! Expected columns (first name found wins):
//! * anomalies: `date`, `store`, `sku`, `type`|`anomaly_type`|`kind`,
//!   `severity`, `observed`|`value`, `expected`|`threshold`, `message`
//! * reorder plans: `sku`, `store`, `qty`|`order_qty`|`quantity`,
//!   `order_value`|`value`, `order_by`|`order_by_date`
//! * forecasts: `sku`, `store`, `date`, `p10`, `p50`, `p90`
//! * history: `sku`, `store`, `date`, `value`|`units`|`demand`|`on_hand`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use serde::Deserialize;

use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::mail::{
    Addressing, Anomaly, ForecastPoint, HistoryPoint, Mailer, Order, Outcome, RenderOptions,
    Report, SkuSeries,
};

/// History points drawn before the forecast.
const HISTORY_POINTS: usize = 28;

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
    #[error("table {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("table {}: no column {}", path.display(), names.join(" or "))]
    Column {
        path: PathBuf,
        names: Vec<&'static str>,
    },
}

/// A table read into memory: batches and where they came from.
struct Table {
    path: PathBuf,
    batches: Vec<RecordBatch>,
}

fn parquet_files(dir: &Path, ds: &str, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name.strip_prefix("ds=").is_some_and(|v| v != ds) {
                continue;
            }
            parquet_files(&p, ds, out)?;
        } else if name.ends_with(".parquet") {
            out.push(p);
        }
    }
    Ok(())
}

fn read_table(path: PathBuf, ds: &str) -> Result<Table, TableError> {
    let err = |message: String| TableError::Read {
        path: path.clone(),
        message,
    };
    let mut files = Vec::new();
    parquet_files(&path, ds, &mut files).map_err(|e| err(e.to_string()))?;
    let mut batches = Vec::new();
    for f in files {
        let file = std::fs::File::open(&f).map_err(|e| err(format!("{}: {e}", f.display())))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| err(format!("{}: {e}", f.display())))?;
        for b in reader {
            batches.push(b.map_err(|e| err(format!("{}: {e}", f.display())))?);
        }
    }
    let mut t = Table { path, batches };
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
                });
            }
        }
        Ok(out)
    }

    fn orders(&self) -> Result<Vec<Order>, TableError> {
        let mut out = Vec::new();
        for b in &self.batches {
            let sku = self.strings(b, &["sku", "sku_id"], true)?;
            let store = self.strings(b, &["store", "store_id"], true)?;
            let qty = self.numbers(b, &["qty", "order_qty", "quantity"], true)?;
            let value = self.numbers(b, &["order_value", "value"], false)?;
            let by = self.dates(b, &["order_by", "order_by_date"])?;
            for i in 0..b.num_rows() {
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
                });
            }
        }
        Ok(out)
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

struct Tables {
    anomalies: PathBuf,
    orders: Option<PathBuf>,
    forecasts: Option<PathBuf>,
    history: Option<PathBuf>,
}

/// Read the tables and assemble the report (blocking: run on the pool).
fn build_report(
    tables: Tables,
    dag_id: &str,
    run_id: &str,
    ds: &str,
) -> Result<Report, TableError> {
    let anomalies = read_table(tables.anomalies, ds)?.anomalies()?;
    let orders = match tables.orders {
        Some(p) => read_table(p, ds)?.orders()?,
        None => Vec::new(),
    };
    let mut forecasts = match tables.forecasts {
        Some(p) => read_table(p, ds)?.series(&["p10", "p50", "p90"], |date, v| ForecastPoint {
            date,
            p10: v[0],
            p50: v[1],
            p90: v[2],
        })?,
        None => BTreeMap::new(),
    };
    // History is every date up to the run's date: no `ds` filtering.
    let mut history = match tables.history {
        Some(p) => read_table(p, "")?.series(&["value|units|demand|on_hand"], |date, v| {
            HistoryPoint { date, value: v[0] }
        })?,
        None => BTreeMap::new(),
    };
    let mut report = Report {
        dag_id: dag_id.into(),
        run_id: run_id.into(),
        ds: ds.into(),
        anomalies,
        orders,
        series: Vec::new(),
    };
    // Worst SKUs: in the order of their worst anomaly.
    let mut seen = std::collections::BTreeSet::new();
    let worst: Vec<(String, String)> = report
        .ranked_anomalies()
        .into_iter()
        .map(|a| (a.sku.clone(), a.store.clone()))
        .filter(|k| seen.insert(k.clone()))
        .collect();
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

/// The lake root as a local folder (`file://` or a plain path).
fn lake_root(lake: &str) -> Result<PathBuf, TaskError> {
    if let Some(p) = lake.strip_prefix("file://") {
        return Ok(PathBuf::from(p));
    }
    if lake.contains("://") {
        return Err(TaskError::Fatal(format!(
            "email: lake `{lake}` is not a local folder; this build reads report tables from local Parquet only"
        )));
    }
    Ok(PathBuf::from(lake))
}

#[async_trait]
impl TaskRunner for EmailRunner {
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let config = &cx.services.config;
        let root = lake_root(&config.lake)?;
        let path = |rel: &str| -> Result<PathBuf, TaskError> { Ok(root.join(cx.render(rel)?)) };
        let tables = Tables {
            anomalies: path(&self.spec.anomalies)?,
            orders: self.spec.reorder_plans.as_deref().map(path).transpose()?,
            forecasts: self.spec.forecasts.as_deref().map(path).transpose()?,
            history: self.spec.history.as_deref().map(path).transpose()?,
        };
        let (dag_id, run_id, ds) = (cx.dag_id.clone(), cx.run_id.clone(), cx.vars.ds.clone());
        let state = config.state.clone();
        let (report, store) = tokio::task::spawn_blocking(move || {
            let report = build_report(tables, &dag_id, &run_id, &ds)
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

    fn write(path: &Path, batch: RecordBatch) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        let f = std::fs::File::create(path).expect("file");
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    fn strs(v: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    #[test]
    fn reads_tables_into_a_report() {
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
        let tables = Tables {
            anomalies: dir.path().join("anomalies"),
            orders: None,
            forecasts: Some(dir.path().join("forecasts")),
            history: None,
        };
        let r = build_report(tables, "d", "r", "2026-11-27").expect("report");
        assert_eq!(r.anomalies.len(), 2);
        assert_eq!(r.anomalies[0].observed, 0.0);
        assert_eq!(r.anomalies[0].expected, 10.0);
        assert_eq!(r.series.len(), 1);
        assert_eq!(r.series[0].sku, "B");
        assert_eq!(r.series[0].forecast[0].date, "2026-11-28", "sorted by date");

        let missing = Tables {
            anomalies: dir.path().join("forecasts"),
            orders: None,
            forecasts: None,
            history: None,
        };
        let e = build_report(missing, "d", "r", "2026-11-27").expect_err("error");
        assert!(
            e.to_string()
                .contains("no column type or anomaly_type or kind"),
            "{e}"
        );
    }
}
