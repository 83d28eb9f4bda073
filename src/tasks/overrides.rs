//! Reads the planners' `overrides` table for the `forecast`, `reorder` and
//! `monitor` tasks: every `.csv` and `.parquet` file under the declared
//! table's folder (planners drop CSVs; the UI and pandas write Parquet),
//! into [`RawRow`]s with their file and row, then validated against the
//! series the task knows ([`crate::inventory::overrides::validate`]).
//! Refused rows are logged one per line; the valid ones apply.
//! [`stored`] reads the same files for the web UI, unvalidated, each with
//! its file's key column names and where it is stored.
//!
//! A row whose `withdrawn_by`, `withdrawn_at` or `withdrawn_reason` is
//! filled is withdrawn: kept in its file as the record of who took it
//! back, when and why, and never applied (`override_edit.rs` writes
//! those columns; a planner may fill them by hand too).

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type};
use bytes::Bytes;
use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{AttemptContext, TaskError};
use crate::dag::model::Table;
use crate::inventory::overrides::{self, Overrides, RawRow};
use crate::lake::Lake;

/// Columns besides the series key.
const COLUMNS: [&str; 7] = [
    "id",
    "kind",
    "start_date",
    "end_date",
    "value",
    "author",
    "reason",
];

/// Optional columns recording a withdrawal; a row with any of them filled
/// is not applied.
pub const WITHDRAWN: [&str; 3] = ["withdrawn_by", "withdrawn_at", "withdrawn_reason"];

/// Optional column: when the row was written (the API stamps every row it
/// writes; a planner's own file may leave it out).
pub const CREATED_AT: &str = "created_at";

/// Who withdrew a row, when and why, as stored (text, unvalidated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withdrawn {
    pub by: Option<String>,
    pub at: Option<String>,
    pub reason: Option<String>,
}

impl Withdrawn {
    /// The marks of a row, `None` when all three are empty.
    fn of(get: impl Fn(&str) -> Option<String>) -> Option<Withdrawn> {
        let filled = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        let w = Withdrawn {
            by: filled(WITHDRAWN[0]),
            at: filled(WITHDRAWN[1]),
            reason: filled(WITHDRAWN[2]),
        };
        (w != Withdrawn::default()).then_some(w)
    }
}

/// One parsed file: its key column names and its rows with their marks.
type Parsed = (Vec<String>, Vec<(RawRow, Option<Withdrawn>)>);

/// Reads, validates and logs the overrides of `table` (a declared table
/// name) for series keyed by `key_names`, keeping those of `known`.
pub async fn load(
    cx: &AttemptContext,
    table: &str,
    key_names: &[String],
    known: &HashSet<Vec<String>>,
) -> Result<Overrides, TaskError> {
    let all = read_rows(cx, table, key_names).await?;
    let stored = all.len();
    let rows: Vec<RawRow> = all
        .into_iter()
        .filter_map(|(r, w)| w.is_none().then_some(r))
        .collect();
    let withdrawn = stored - rows.len();
    let (ok, rejected) = overrides::validate(&rows, known);
    for r in &rejected {
        cx.log.progress(&format!("override refused: {r}"));
    }
    if stored > 0 {
        let withdrawn = match withdrawn {
            0 => String::new(),
            n => format!(", {n} withdrawn"),
        };
        cx.log.progress(&format!(
            "overrides: {} applied, {} refused{withdrawn} (table `{table}`)",
            ok.len(),
            rejected.len()
        ));
    }
    Ok(Overrides::new(ok))
}

async fn read_rows(
    cx: &AttemptContext,
    table: &str,
    key_names: &[String],
) -> Result<Vec<(RawRow, Option<Withdrawn>)>, TaskError> {
    let Some(t) = cx.dag.tables.get(table) else {
        return Err(TaskError::Fatal(format!(
            "task `{}` reads overrides from table `{table}`, which is not declared under `tables:` in {}",
            cx.task_id,
            cx.dag.file.display()
        )));
    };
    let mut rows = Vec::new();
    for f in files(&cx.services.lake, t).await? {
        rows.extend(f.parse(Keys::Given(key_names)).map_err(TaskError::Fatal)?.1);
    }
    Ok(rows)
}

/// One row as stored, with the key column names of its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The file's key columns (every column besides the override's own).
    pub key_names: Vec<String>,
    /// `key` holds the values in `key_names`' order.
    pub row: RawRow,
    /// The file holding it, in the lake.
    pub location: object_store::path::Path,
    /// Set when the row is withdrawn (kept, not applied).
    pub withdrawn: Option<Withdrawn>,
}

/// Every row of the overrides table `t` as stored, unvalidated, in file
/// order: what the web UI lists and checks new rows against. A file's key
/// columns are the ones besides the override's own columns.
pub async fn stored(lake: &Lake, t: &Table) -> Result<Vec<Stored>, TaskError> {
    let mut out = Vec::new();
    for f in files(lake, t).await? {
        let (key_names, rows) = f.parse(Keys::Rest).map_err(TaskError::Fatal)?;
        out.extend(rows.into_iter().map(|(row, withdrawn)| Stored {
            key_names: key_names.clone(),
            row,
            location: f.location.clone(),
            withdrawn,
        }));
    }
    Ok(out)
}

/// Which columns of a file are the series key.
#[derive(Clone, Copy)]
enum Keys<'a> {
    /// These, which every file must have.
    Given(&'a [String]),
    /// Every column besides the override's own.
    Rest,
}

impl Keys<'_> {
    fn names<'h>(
        self,
        file: &str,
        have: impl Iterator<Item = &'h str>,
    ) -> Result<Vec<String>, String> {
        let have: Vec<&str> = have.collect();
        match self {
            Keys::Given(k) => {
                for need in k.iter().map(String::as_str).chain(COLUMNS) {
                    if !have.contains(&need) {
                        return Err(format!(
                            "{file}: no `{need}` column (has {})",
                            have.join(", ")
                        ));
                    }
                }
                Ok(k.to_vec())
            }
            Keys::Rest => {
                if let Some(need) = COLUMNS.iter().find(|c| !have.contains(c)) {
                    return Err(format!(
                        "{file}: no `{need}` column (has {})",
                        have.join(", ")
                    ));
                }
                Ok(have
                    .into_iter()
                    .filter(|h| !COLUMNS.contains(h) && !WITHDRAWN.contains(h) && *h != CREATED_AT)
                    .map(str::to_string)
                    .collect())
            }
        }
    }
}

/// One file of the table, fetched.
struct File {
    shown: String,
    name: String,
    location: object_store::path::Path,
    bytes: Bytes,
}

impl File {
    fn parse(&self, keys: Keys<'_>) -> Result<Parsed, String> {
        if self.name.ends_with(".csv") {
            from_csv(&self.shown, &self.bytes, keys)
        } else if self.name.ends_with(".parquet") {
            from_parquet(&self.shown, self.bytes.clone(), keys)
        } else {
            Err(format!(
                "{}: not a .csv or .parquet file; the overrides table holds only those",
                self.shown
            ))
        }
    }
}

/// The visible files of `t`, in name order.
async fn files(lake: &Lake, t: &Table) -> Result<Vec<File>, TaskError> {
    let dir = crate::lake::table_location(&t.path);
    let mut listed: Vec<_> = lake
        .store()
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| TaskError::Failed(format!("listing {}: {e}", lake.describe(&dir))))?;
    listed.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::new();
    for f in listed {
        let name = f.location.filename().unwrap_or_default().to_string();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let shown = lake.describe(&f.location);
        let read = |e: object_store::Error| TaskError::Failed(format!("reading {shown}: {e}"));
        let bytes = lake
            .store()
            .get(&f.location)
            .await
            .map_err(read)?
            .bytes()
            .await
            .map_err(read)?;
        out.push(File {
            shown,
            name,
            location: f.location,
            bytes,
        });
    }
    Ok(out)
}

fn date(file: &str, row: usize, col: &str, v: &str) -> Result<Option<NaiveDate>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| format!("{file} row {row}: `{col}` is `{v}`, not a date like 2026-12-01"))
}

fn from_csv(file: &str, bytes: &[u8], keys: Keys<'_>) -> Result<Parsed, String> {
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| format!("{file}: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect::<Vec<_>>();
    let key_names = keys.names(file, headers.iter().map(String::as_str))?;
    let at = |name: &str| headers.iter().position(|h| h == name);
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 1;
        let rec = rec.map_err(|e| format!("{file} row {row}: {e}"))?;
        let get = |name: &str| at(name).and_then(|j| rec.get(j)).map(str::to_string);
        let value = match get("value").as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(
                v.parse::<f64>()
                    .map_err(|_| format!("{file} row {row}: `value` is `{v}`, not a number"))?,
            ),
        };
        let raw = RawRow {
            file: file.into(),
            row,
            id: get("id"),
            kind: get("kind"),
            key: key_names.iter().map(|k| get(k)).collect(),
            start_date: date(
                file,
                row,
                "start_date",
                &get("start_date").unwrap_or_default(),
            )?,
            end_date: date(file, row, "end_date", &get("end_date").unwrap_or_default())?,
            value,
            author: get("author"),
            created_at: get(CREATED_AT),
            reason: get("reason"),
        };
        out.push((raw, Withdrawn::of(get)));
    }
    Ok((key_names, out))
}

fn from_parquet(file: &str, bytes: Bytes, keys: Keys<'_>) -> Result<Parsed, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| format!("{file}: not a readable Parquet file: {e}"))?;
    let key_names = keys.names(
        file,
        builder.schema().fields().iter().map(|f| f.name().as_str()),
    )?;
    let reader = builder
        .build()
        .map_err(|e| format!("{file}: not a readable Parquet file: {e}"))?;
    let mut out = Vec::new();
    let mut base = 0;
    for batch in reader {
        let batch = batch.map_err(|e| format!("{file}: {e}"))?;
        // `value` may be stored as any numeric type: cast it once per batch.
        let values = batch
            .column_by_name("value")
            .and_then(|c| arrow::compute::cast(c, &DataType::Float64).ok());
        for r in 0..batch.num_rows() {
            let row = base + r + 1;
            let s = |name: &str| cell_text(&batch, name, r);
            let day = |name: &str| -> Result<Option<NaiveDate>, String> {
                match batch.column_by_name(name) {
                    Some(c) if c.data_type() == &DataType::Date32 => Ok((!c.is_null(r))
                        .then(|| c.as_primitive::<Date32Type>().value_as_date(r))
                        .flatten()),
                    _ => date(file, row, name, &s(name).unwrap_or_default()),
                }
            };
            let raw = RawRow {
                file: file.into(),
                row,
                id: s("id"),
                kind: s("kind"),
                key: key_names.iter().map(|k| s(k)).collect(),
                start_date: day("start_date")?,
                end_date: day("end_date")?,
                value: values
                    .as_ref()
                    .filter(|c| !c.is_null(r))
                    .map(|c| c.as_primitive::<arrow::datatypes::Float64Type>().value(r)),
                author: s("author"),
                created_at: s(CREATED_AT),
                reason: s("reason"),
            };
            out.push((raw, Withdrawn::of(s)));
        }
        base += batch.num_rows();
    }
    Ok((key_names, out))
}

pub(crate) fn cell_text(batch: &RecordBatch, name: &str, r: usize) -> Option<String> {
    let c = batch.column_by_name(name)?;
    if c.is_null(r) {
        return None;
    }
    arrow::util::display::array_value_to_string(c, r).ok()
}
