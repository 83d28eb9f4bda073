//! Changing one stored override in its own file: withdrawing it, or
//! replacing it with an edited row. The old row stays in the file with
//! `withdrawn_by`, `withdrawn_at` and `withdrawn_reason` filled (the
//! columns are added when the file lacks them), so the file itself is the
//! audit trail and the run skips the row ([`super::overrides`]). An edit
//! puts the new row right after the old one.
//!
//! The file is rewritten whole in its own format (a CSV stays a CSV; a
//! Parquet file keeps each column's type, the cells going through text
//! and a checked cast back) and published with one `put` onto its own
//! key, which object_store makes atomic (a local store writes a temporary
//! file and renames it; S3 replaces the object whole): a reader sees the
//! old file or the new one, never a part. Owns no checks of the rows: the
//! caller checks a replacement as it checks a new row.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::overrides::{WITHDRAWN, cell_text};
use crate::lake::Lake;

/// What to do to the row.
#[derive(Debug, Clone)]
pub enum Change {
    /// Mark it withdrawn.
    Withdraw(Marks),
    /// Mark it withdrawn and put `row` after it: each cell by column name
    /// (`id`, `kind`, the key columns, `start_date` …); a column the row
    /// does not name is left empty.
    Replace {
        marks: Marks,
        row: Vec<(String, Option<String>)>,
    },
}

/// Who takes the row back, when (RFC 3339) and why.
#[derive(Debug, Clone)]
pub struct Marks {
    pub by: String,
    pub at: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("reading {file}: {source}")]
    Read {
        file: String,
        source: object_store::Error,
    },
    #[error("writing {file}: {source}")]
    Write {
        file: String,
        source: object_store::Error,
    },
    /// The file is not what it was when the row was found (a planner
    /// replaced it meanwhile), or cannot be parsed.
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A value of the new row does not fit the column's stored type.
    #[error("{file}: `{column}` is stored as {data_type}; `{value}` does not fit it")]
    Type {
        file: String,
        column: String,
        data_type: DataType,
        value: String,
    },
}

/// A file's cells as text, and the Parquet column types when it is one.
struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    types: Option<Vec<DataType>>,
}

/// Applies `change` to the 1-based data row `row` of the file at
/// `location`, whose `id` must still be `id`.
pub async fn apply(
    lake: &Lake,
    location: &Path,
    row: usize,
    id: &str,
    change: Change,
) -> Result<(), EditError> {
    let file = lake.describe(location);
    let read = |source| EditError::Read {
        file: file.clone(),
        source,
    };
    let bytes = lake
        .store()
        .get(location)
        .await
        .map_err(read)?
        .bytes()
        .await
        .map_err(read)?;
    let parquet = location.as_ref().ends_with(".parquet");
    let mut grid = if parquet {
        from_parquet(bytes)
    } else {
        from_csv(&bytes)
    }
    .map_err(|message| EditError::File {
        file: file.clone(),
        message,
    })?;
    grid.change(row, id, change)
        .map_err(|message| EditError::File {
            file: file.clone(),
            message,
        })?;
    let out = if parquet {
        grid.to_parquet(&file)?
    } else {
        grid.to_csv().map_err(|e| EditError::File {
            file: file.clone(),
            message: e.to_string(),
        })?
    };
    lake.store()
        .put(location, PutPayload::from(out))
        .await
        .map_err(|source| EditError::Write { file, source })?;
    Ok(())
}

impl Grid {
    fn column(&mut self, name: &str) -> usize {
        if let Some(i) = self.header.iter().position(|h| h == name) {
            return i;
        }
        self.header.push(name.into());
        if let Some(t) = &mut self.types {
            t.push(DataType::Utf8);
        }
        for r in &mut self.rows {
            r.push(None);
        }
        self.header.len() - 1
    }

    fn change(&mut self, row: usize, id: &str, change: Change) -> Result<(), String> {
        let at = self.column("id");
        let found = row
            .checked_sub(1)
            .and_then(|i| self.rows.get(i))
            .and_then(|r| r[at].as_deref());
        if found != Some(id) {
            return Err(format!(
                "row {row} no longer holds override {id}; the file changed, try again"
            ));
        }
        let cols = WITHDRAWN.map(|c| self.column(c));
        let (marks, new) = match change {
            Change::Withdraw(m) => (m, None),
            Change::Replace { marks, row } => (marks, Some(row)),
        };
        let cells = &mut self.rows[row - 1];
        for (c, v) in cols.iter().zip([marks.by, marks.at, marks.reason]) {
            cells[*c] = Some(v);
        }
        if let Some(new) = new {
            let mut cells = vec![None; self.header.len()];
            for (name, v) in new {
                let c = self.column(&name);
                cells.resize(self.header.len(), None);
                cells[c] = v;
            }
            self.rows.insert(row, cells);
        }
        Ok(())
    }

    fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.header)?;
        for r in &self.rows {
            w.write_record(r.iter().map(|c| c.as_deref().unwrap_or("")))?;
        }
        w.into_inner().map_err(|e| e.into_error().into())
    }

    fn to_parquet(&self, file: &str) -> Result<Vec<u8>, EditError> {
        let fail = |message: String| EditError::File {
            file: file.into(),
            message,
        };
        let types = self.types.clone().unwrap_or_default();
        let mut fields = Vec::with_capacity(self.header.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.header.len());
        for (i, (name, t)) in self.header.iter().zip(&types).enumerate() {
            let text: Vec<Option<&str>> = self.rows.iter().map(|r| r[i].as_deref()).collect();
            arrays.push(typed(file, name, t, &text)?);
            fields.push(Field::new(name, t.clone(), true));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| fail(e.to_string()))?;
        let mut w = ArrowWriter::try_new(
            Vec::new(),
            batch.schema(),
            Some(crate::lake::publish::writer_properties()),
        )
        .map_err(|e| fail(e.to_string()))?;
        w.write(&batch).map_err(|e| fail(e.to_string()))?;
        w.into_inner().map_err(|e| fail(e.to_string()))
    }
}

/// A column's text cells cast back to its stored type; a value that does
/// not convert is an error naming it, never a silent null.
fn typed(
    file: &str,
    name: &str,
    t: &DataType,
    text: &[Option<&str>],
) -> Result<ArrayRef, EditError> {
    let strings: ArrayRef = Arc::new(StringArray::from(text.to_vec()));
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&strings, t, &strict).map_err(|_| {
        // Name the first cell that does not convert on its own.
        let value = text
            .iter()
            .flatten()
            .find(|v| {
                let one: ArrayRef = Arc::new(StringArray::from(vec![**v]));
                cast_with_options(&one, t, &strict).is_err()
            })
            .map_or_else(String::new, |v| v.to_string());
        EditError::Type {
            file: file.into(),
            column: name.into(),
            data_type: t.clone(),
            value,
        }
    })
}

fn from_csv(bytes: &[u8]) -> Result<Grid, String> {
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        rows.push(rec.iter().map(|c| Some(c.to_string())).collect());
    }
    Ok(Grid {
        header,
        rows,
        types: None,
    })
}

fn from_parquet(bytes: Bytes) -> Result<Grid, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| e.to_string())?;
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        for r in 0..batch.num_rows() {
            rows.push(header.iter().map(|h| cell_text(&batch, h, r)).collect());
        }
    }
    Ok(Grid {
        header,
        rows,
        types: Some(
            schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks() -> Marks {
        Marks {
            by: "bob".into(),
            at: "2026-12-02T08:00:00Z".into(),
            reason: "promotion cancelled".into(),
        }
    }

    #[test]
    fn a_withdrawn_csv_row_is_kept_with_its_marks() {
        let mut g =
            from_csv(b"id,kind,store,sku,value\nO-1,exclude,CA_1,A,\nO-2,exclude,CA_1,B,\n")
                .expect("csv");
        g.change(2, "O-2", Change::Withdraw(marks()))
            .expect("change");
        let out = String::from_utf8(g.to_csv().expect("csv")).expect("utf8");
        assert_eq!(
            out,
            "id,kind,store,sku,value,withdrawn_by,withdrawn_at,withdrawn_reason\n\
             O-1,exclude,CA_1,A,,,,\n\
             O-2,exclude,CA_1,B,,bob,2026-12-02T08:00:00Z,promotion cancelled\n"
        );
    }

    #[test]
    fn a_replacement_follows_the_old_row_and_a_moved_row_is_refused() {
        let mut g = from_csv(b"id,kind,value\nO-1,forecast_multiply,1.5\n").expect("csv");
        assert!(
            g.change(1, "O-9", Change::Withdraw(marks()))
                .expect_err("moved")
                .contains("no longer holds override O-9")
        );
        let row = vec![
            ("id".to_string(), Some("O-1".to_string())),
            ("kind".to_string(), Some("forecast_set".to_string())),
            ("value".to_string(), Some("40".to_string())),
        ];
        g.change(
            1,
            "O-1",
            Change::Replace {
                marks: marks(),
                row,
            },
        )
        .expect("change");
        let out = String::from_utf8(g.to_csv().expect("csv")).expect("utf8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "id,kind,value,withdrawn_by,withdrawn_at,withdrawn_reason",
                "O-1,forecast_multiply,1.5,bob,2026-12-02T08:00:00Z,promotion cancelled",
                "O-1,forecast_set,40,,,",
            ]
        );
    }

    #[test]
    fn parquet_cells_go_back_to_their_types_or_are_refused_by_name() {
        let text = [Some("30"), None, Some("1.5")];
        assert_eq!(
            typed("f.parquet", "value", &DataType::Float64, &text)
                .expect("floats")
                .data_type(),
            &DataType::Float64
        );
        let e = typed("f.parquet", "value", &DataType::Int64, &text).expect_err("1.5");
        assert_eq!(
            e.to_string(),
            "f.parquet: `value` is stored as Int64; `1.5` does not fit it"
        );
        let d = typed(
            "f.parquet",
            "start_date",
            &DataType::Date32,
            &[Some("2026-12-01")],
        )
        .expect("date");
        assert_eq!(cell_text_of(&d), "2026-12-01");
    }

    fn cell_text_of(a: &ArrayRef) -> String {
        arrow::util::display::array_value_to_string(a, 0).expect("text")
    }
}
