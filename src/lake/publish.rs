//! Atomic Parquet output: stream record batches into one Parquet file in
//! the lake and publish it so that readers never see a partial or mixed
//! partition.
//!
//! The file is first written under the hidden staging area
//! `_staging/<table>/<slot>/<id>.parquet` at the lake root (outside every
//! table folder, so no reader's listing or glob sees it), streamed through
//! [`AsyncArrowWriter`] over an object_store [`BufWriter`] (a multipart upload
//! on S3, a temporary file renamed on completion locally). Only when the
//! file is complete is it moved onto its final key with one rename: a local
//! `rename(2)` or an S3 copy, both of which replace the object whole. With
//! the deterministic key `part-00000.parquet` an overwrite is therefore one
//! atomic step. Leftovers of a crashed write are removed from the slot's
//! staging folder at the start of the next write to the same slot.
//!
//! Owns the write modes, the Parquet writer settings and the staging
//! protocol; what produces the batches is the caller's business.

use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rand::RngExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Lake, STAGING_DIR};

/// Rows per row group at most (readers parallelise and prune by row group).
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Encoded bytes per row group at most.
pub const ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;
/// The file name an overwrite publishes to.
pub const OVERWRITE_FILE: &str = "part-00000.parquet";

/// How an output replaces what is already in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Replace the whole table with this one file.
    Overwrite,
    /// Replace the run's partition; other partitions stay.
    OverwritePartition,
    /// Add a file next to those already there.
    Append,
}

impl WriteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Overwrite => "overwrite",
            WriteMode::OverwritePartition => "overwrite_partition",
            WriteMode::Append => "append",
        }
    }
}

/// Where an output goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The table's folder in the lake.
    pub table: Path,
    /// The Hive partition written, as (column, value).
    pub partition: Option<(String, String)>,
    pub mode: WriteMode,
}

impl Target {
    /// The folder the file lands in: the partition's, else the table's.
    pub fn dir(&self) -> Path {
        match &self.partition {
            Some((col, value)) => self.table.clone().join(format!("{col}={value}")),
            None => self.table.clone(),
        }
    }

    /// The staging folder of this target's slot.
    fn staging_dir(&self) -> Path {
        let mut p = Path::from(STAGING_DIR);
        for part in self.table.parts() {
            p = p.join(part);
        }
        match &self.partition {
            Some((col, value)) => p.join(format!("{col}={value}")),
            None => p.join("_table"),
        }
    }
}

/// What a write produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    /// The published file.
    pub file: Path,
    /// The folder it was published in.
    pub dir: Path,
    /// True when the result's own partition column was left out of the
    /// file (its value is in the folder name).
    pub dropped_partition_column: bool,
    /// Files of the previous contents that an overwrite removed.
    pub replaced: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The query failed while its result was being read.
    #[error("{0}")]
    Query(DataFusionError),
    #[error("encoding Parquet for {location}: {source}")]
    Encode {
        location: String,
        source: ParquetError,
    },
    #[error("{action} {location}: {source}")]
    Store {
        action: &'static str,
        location: String,
        source: object_store::Error,
    },
    /// The disk (or quota) under the lake is full; the attempt may succeed
    /// once space is freed, so it is retryable.
    #[error("the disk is full while writing {location}; free space and run again ({message})")]
    DiskFull { location: String, message: String },
    #[error("stopped before the output was published")]
    Interrupted,
}

/// Whether `e` or an error under it is "no space left on device" (or a
/// quota that is exhausted).
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let full = matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            );
            if full || io.raw_os_error() == Some(28) {
                return true;
            }
        }
        cur = err.source();
    }
    // Errors that carry their cause only as text (object_store's local
    // backend formats some of them).
    e.to_string().contains("No space left on device")
}

impl PublishError {
    /// `self`, or [`PublishError::DiskFull`] when that is its cause.
    fn or_disk_full(self) -> Self {
        let (location, full) = match &self {
            PublishError::Encode { location, source } => (location.clone(), is_disk_full(source)),
            PublishError::Store {
                location, source, ..
            } => (location.clone(), is_disk_full(source)),
            _ => return self,
        };
        if full {
            PublishError::DiskFull {
                location,
                message: self.to_string(),
            }
        } else {
            self
        }
    }
}

impl PublishError {
    fn store(
        lake: &Lake,
        action: &'static str,
        location: &Path,
        source: object_store::Error,
    ) -> Self {
        PublishError::Store {
            action,
            location: lake.describe(location),
            source,
        }
        .or_disk_full()
    }
}

/// The writer settings of every output: zstd, page-level statistics, row
/// groups of at most [`ROW_GROUP_ROWS`] rows / [`ROW_GROUP_BYTES`] bytes.
pub fn writer_properties() -> WriterProperties {
    let zstd = ZstdLevel::try_new(3).unwrap_or_default();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build()
}

/// Stream `batches` into one Parquet file and publish it at `target`.
/// `progress` is called with the running row count after each row group.
/// Stops (publishing nothing) when `cancel` fires or the stream fails.
pub async fn write(
    lake: &Lake,
    target: &Target,
    mut batches: SendableRecordBatchStream,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Written, PublishError> {
    let store = Arc::clone(lake.store());
    let staging_dir = target.staging_dir();
    clear(lake, &staging_dir).await?;

    let schema = batches.schema();
    let (schema, keep) = without_partition_column(&schema, target);
    let schema = plain_schema(&schema);
    let dropped_partition_column = keep.is_some();
    let staged = staging_dir.clone().join(format!("{}.parquet", unique_id()));
    let staged_name = lake.describe(&staged);
    let encode_err = |source| {
        PublishError::Encode {
            location: staged_name.clone(),
            source,
        }
        .or_disk_full()
    };
    let sink = BufWriter::new(Arc::clone(&store), staged.clone());
    let mut writer =
        AsyncArrowWriter::try_new(sink, Arc::clone(&schema), Some(writer_properties()))
            .map_err(encode_err)?;

    let mut rows: u64 = 0;
    let mut groups = 0usize;
    let failure = loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Some(PublishError::Interrupted),
            next = batches.next() => next,
        };
        let batch = match next {
            None => break None,
            Some(Err(e)) => break Some(PublishError::Query(e)),
            Some(Ok(b)) => b,
        };
        let batch = match reshape(batch, keep.as_deref(), &schema) {
            Ok(b) => b,
            Err(e) => break Some(PublishError::Query(e.into())),
        };
        if let Err(e) = write_batch(&mut writer, &batch, cancel).await {
            break Some(e.map_or(PublishError::Interrupted, encode_err));
        }
        rows += batch.num_rows() as u64;
        let flushed = writer.flushed_row_groups().len();
        if flushed != groups {
            groups = flushed;
            progress(rows);
        }
    };
    if let Some(err) = failure {
        abandon(lake, writer, &staged, Upload::Open).await;
        return Err(err);
    }
    let finished = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        r = writer.finish() => Some(r),
    };
    match finished {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            abandon(lake, writer, &staged, Upload::ShutDown).await;
            return Err(encode_err(e));
        }
        None => {
            abandon(lake, writer, &staged, Upload::ShutDown).await;
            return Err(PublishError::Interrupted);
        }
    }
    let bytes = writer.bytes_written() as u64;
    drop(writer);

    // Past this point the file is complete; publishing is one rename.
    let dir = target.dir();
    let file = match target.mode {
        WriteMode::Append => dir.clone().join(format!("part-{}.parquet", unique_id())),
        WriteMode::Overwrite | WriteMode::OverwritePartition => dir.clone().join(OVERWRITE_FILE),
    };
    if cancel.is_cancelled() {
        let _ = store.delete(&staged).await;
        return Err(PublishError::Interrupted);
    }
    store
        .rename(&staged, &file)
        .await
        .map_err(|e| PublishError::store(lake, "publishing to", &file, e))?;

    let replaced = match target.mode {
        WriteMode::Append => 0,
        WriteMode::OverwritePartition => remove_others(lake, &dir, &file).await?,
        WriteMode::Overwrite => remove_others(lake, &target.table, &file).await?,
    };
    Ok(Written {
        rows,
        bytes,
        file,
        dir,
        dropped_partition_column,
        replaced,
    })
}

/// Write one batch, giving up when `cancel` fires (`Err(None)`).
async fn write_batch(
    writer: &mut AsyncArrowWriter<BufWriter>,
    batch: &RecordBatch,
    cancel: &CancellationToken,
) -> Result<(), Option<ParquetError>> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(None),
        r = writer.write(batch) => r.map_err(Some),
    }
}

/// Where the upload under a writer stands when a write is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// Still taking bytes: it can be aborted.
    Open,
    /// `finish` has begun shutting it down (and failed or was cancelled).
    /// object_store's `BufWriter` panics ("Already shut down") when such an
    /// upload is aborted, so it is dropped instead: the local store removes
    /// its partial file on drop, and on S3 an unfinished multipart upload
    /// is left to the bucket's lifecycle rule.
    ShutDown,
}

/// Give up a write: abort (or drop) the upload and remove what was staged.
async fn abandon(lake: &Lake, writer: AsyncArrowWriter<BufWriter>, staged: &Path, upload: Upload) {
    let mut sink = writer.into_inner();
    // Best effort: the staged key is hidden from readers and removed by the
    // next write to this slot anyway.
    if upload == Upload::Open {
        let _ = sink.abort().await;
    }
    drop(sink);
    let _ = lake.store().delete(staged).await;
}

/// Remove everything under a staging folder (leftovers of crashed writes).
async fn clear(lake: &Lake, dir: &Path) -> Result<(), PublishError> {
    if let Some(root) = lake.local_root() {
        // A killed process leaves its upload as `<key>#<n>`, which the
        // local store neither lists nor deletes; remove the folder itself.
        let folder = dir
            .parts()
            .fold(root.to_path_buf(), |p, part| p.join(part.as_ref()));
        let result = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&folder) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err((folder, e)),
            _ => Ok(()),
        })
        .await;
        if let Ok(Err((folder, e))) = result {
            return Err(PublishError::Store {
                action: "removing leftover",
                location: folder.display().to_string(),
                source: object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                },
            });
        }
    }
    let store = lake.store();
    let old: Vec<Path> = store
        .list(Some(dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| PublishError::store(lake, "listing", dir, e))?;
    for p in old {
        match store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(PublishError::store(lake, "removing leftover", &p, e)),
        }
    }
    Ok(())
}

/// After an overwrite: remove every object under `dir` except `keep`.
async fn remove_others(lake: &Lake, dir: &Path, keep: &Path) -> Result<usize, PublishError> {
    let store = lake.store();
    let all: Vec<Path> = store
        .list(Some(dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| PublishError::store(lake, "listing", dir, e))?;
    let mut removed = 0;
    for p in all.into_iter().filter(|p| p != keep) {
        match store.delete(&p).await {
            Ok(()) => removed += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(PublishError::store(lake, "removing replaced", &p, e)),
        }
    }
    Ok(removed)
}

/// The schema without the target's partition column, and the indices of
/// the columns kept (`None` when the result has no such column).
fn without_partition_column(
    schema: &SchemaRef,
    target: &Target,
) -> (SchemaRef, Option<Vec<usize>>) {
    let Some((col, _)) = &target.partition else {
        return (Arc::clone(schema), None);
    };
    let Ok(idx) = schema.index_of(col) else {
        return (Arc::clone(schema), None);
    };
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != idx).collect();
    match schema.project(&keep) {
        Ok(s) => (Arc::new(s), Some(keep)),
        Err(_) => (Arc::clone(schema), None),
    }
}

/// View types (`Utf8View`, `BinaryView`) written as their plain
/// counterparts, which every reader (Spark, Power BI, older pyarrow) knows.
fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
            DataType::BinaryView => f.as_ref().clone().with_data_type(DataType::Binary),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Project away the partition column and cast columns to `schema`.
fn reshape(
    batch: RecordBatch,
    keep: Option<&[usize]>,
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let batch = match keep {
        Some(indices) => batch.project(indices)?,
        None => batch,
    };
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// A sortable, collision-free file id: UTC time plus 64 random bits.
fn unique_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let r: u64 = rand::rng().random();
    format!("{now}-{r:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_outside_the_table() {
        let t = Target {
            table: Path::from("curated/daily_sales"),
            partition: Some(("ds".into(), "2026-11-27".into())),
            mode: WriteMode::OverwritePartition,
        };
        assert_eq!(t.dir().as_ref(), "curated/daily_sales/ds=2026-11-27");
        assert_eq!(
            t.staging_dir().as_ref(),
            "_staging/curated/daily_sales/ds=2026-11-27"
        );
        let whole = Target {
            partition: None,
            mode: WriteMode::Overwrite,
            ..t
        };
        assert_eq!(
            whole.staging_dir().as_ref(),
            "_staging/curated/daily_sales/_table"
        );
    }
}
