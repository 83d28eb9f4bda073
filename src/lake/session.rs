//! DataFusion sessions over the lake: one [`SessionContext`] per query, with
//! the lake's store on its runtime and a DAG's declared tables registered as
//! Hive-partitioned Parquet listing tables.
//!
//! Owns turning a [`Table`] into a DataFusion table and naming what is wrong
//! with one (nothing there, a stray file that is not Parquet, a truncated or
//! empty file, a partition whose column changed type). Running queries and
//! writing results is the `sql` kind's and [`super::publish`]'s business.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, FileMetadataCache, FileStatisticsCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaDataReader;

use super::{Lake, table_location};
use crate::dag::model::Table;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("table `{table}`: no Parquet files under {location}")]
    NoFiles { table: String, location: String },
    #[error("table `{table}`: {file} is not a readable Parquet file: {message}")]
    CorruptFile {
        table: String,
        file: String,
        message: String,
    },
    #[error(
        "table `{table}`: {file} is not a Parquet file; a table folder holds only `.parquet` files (and hidden `_`/`.` entries, which are skipped)"
    )]
    StrayFile { table: String, file: String },
    #[error(
        "table `{table}`: column `{column}` is {found} in {file} but {expected} in {newest}, the newest file, which gives the table its schema; rewrite the older partition with the table's types"
    )]
    Drift {
        table: String,
        file: String,
        column: String,
        found: String,
        expected: String,
        newest: String,
    },
    #[error("table `{table}`: cannot list {location}: {source}")]
    List {
        table: String,
        location: String,
        source: object_store::Error,
    },
    #[error("table `{table}` at {location}: {source}")]
    Register {
        table: String,
        location: String,
        source: DataFusionError,
    },
}

impl SessionError {
    /// Errors another attempt might not hit (a flaky store); the rest need
    /// the data or the DAG fixed.
    pub fn retryable(&self) -> bool {
        matches!(self, SessionError::List { .. })
    }
}

/// What DataFusion has read of the lake's Parquet files, kept for the
/// life of the process: footers (the metadata every scan starts with) and
/// the per-file statistics planning collects. A nightly DAG reads the same
/// sales files from several tasks, and the daemon runs it every night;
/// without these every session reads every footer again. Entries are
/// checked against the file's size and modification time on each use, so
/// a republished partition is read afresh. File listings are not shared:
/// a new partition must be seen by the next query.
#[derive(Clone)]
pub struct Caches {
    footers: Arc<FileMetadataCache>,
    statistics: Arc<FileStatisticsCache>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            footers: Arc::new(
                DefaultCache::new(FOOTER_CACHE_BYTES).with_name("restock lake footers"),
            ),
            statistics: Arc::new(
                DefaultCache::new(STATISTICS_CACHE_BYTES).with_name("restock lake statistics"),
            ),
        }
    }
}

/// Footer cache size: an M5-sized sales table (about 2,000 daily files)
/// needs about 10 MiB.
const FOOTER_CACHE_BYTES: usize = 64 * 1024 * 1024;
const STATISTICS_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A session whose runtime reads and writes the lake. Spans are collected
/// so that planning errors point into the query.
pub fn context(lake: &Lake) -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.collect_spans = true;
    // Plain Utf8/Binary columns, not view types: the files we write carry
    // the Arrow schema, and view types there turn into `string_view` in
    // pyarrow and are unknown to older readers.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let caches = lake.caches();
    let cache_config = CacheManagerConfig::default()
        .with_file_metadata_cache(Some(Arc::clone(&caches.footers)))
        .with_metadata_cache_limit(FOOTER_CACHE_BYTES)
        .with_file_statistics_cache(Some(Arc::clone(&caches.statistics)))
        .with_file_statistics_cache_limit(STATISTICS_CACHE_BYTES);
    let ctx = match RuntimeEnvBuilder::new()
        .with_cache_manager(cache_config)
        .build_arc()
    {
        Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
        // Building a runtime with no memory limit or spill folder set does
        // not fail; should it, the session runs with its own caches.
        Err(_) => SessionContext::new_with_config(config),
    };
    lake.register(&ctx);
    ctx
}

/// The Parquet files of a table (hidden `_`/`.` entries skipped, as
/// readers do).
pub async fn table_files(lake: &Lake, table: &Table) -> Result<Vec<ObjectMeta>, SessionError> {
    let dir = table_location(&table.path);
    let files: Vec<ObjectMeta> =
        lake.store()
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| SessionError::List {
                table: table.name.clone(),
                location: lake.describe(&dir),
                source,
            })?;
    let mut out = Vec::with_capacity(files.len());
    for m in files {
        match classify(&dir, &m.location) {
            // DataFusion's listing skips 0-byte files, which would make a
            // partition whose write was cut short read as no rows.
            Entry::Parquet if m.size == 0 => {
                return Err(SessionError::CorruptFile {
                    table: table.name.clone(),
                    file: lake.describe(&m.location),
                    message: "the file is empty (0 bytes)".into(),
                });
            }
            Entry::Parquet => out.push(m),
            Entry::Skipped => {}
            Entry::Stray => {
                return Err(SessionError::StrayFile {
                    table: table.name.clone(),
                    file: lake.describe(&m.location),
                });
            }
        }
    }
    Ok(out)
}

/// What a listed object is to a table.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Parquet,
    /// Hidden (`_SUCCESS`, `.crc`, `_tmp/`) or outside the folder.
    Skipped,
    /// Visible and not Parquet: a mistake to name, not to skip silently.
    Stray,
}

fn classify(dir: &Path, file: &Path) -> Entry {
    let Some(rel) = file.prefix_match(dir) else {
        return Entry::Skipped;
    };
    let parts: Vec<_> = rel.collect();
    let hidden = parts
        .iter()
        .any(|p| p.as_ref().starts_with('_') || p.as_ref().starts_with('.'));
    if hidden {
        Entry::Skipped
    } else if file.as_ref().ends_with(".parquet") {
        Entry::Parquet
    } else {
        Entry::Stray
    }
}

#[cfg(test)]
fn is_visible_parquet(dir: &Path, file: &Path) -> bool {
    classify(dir, file) == Entry::Parquet
}

/// Register `table` on `ctx` as a listing table over its lake folder.
/// Partition columns are strings; the schema is read from the newest
/// file's footer (a file that is not Parquet is named here; one in another
/// partition is named when a query reads it).
pub async fn register_table(
    ctx: &SessionContext,
    lake: &Lake,
    table: &Table,
) -> Result<(), SessionError> {
    let dir = table_location(&table.path);
    let files = table_files(lake, table).await?;
    if files.is_empty() {
        return Err(SessionError::NoFiles {
            table: table.name.clone(),
            location: format!("{}/", lake.describe(&dir)),
        });
    }
    // The schema comes from the newest file alone (the last key in order,
    // i.e. the latest partition): inferring it from every footer would read
    // the whole table before partition pruning could skip any of it.
    let Some(newest) = files.iter().max_by(|a, b| a.location.cmp(&b.location)) else {
        return Err(SessionError::NoFiles {
            table: table.name.clone(),
            location: format!("{}/", lake.describe(&dir)),
        });
    };
    let format = ParquetFormat::default().with_force_view_types(false);
    let state = ctx.state();
    let schema = match format
        .infer_schema(&state, lake.store(), std::slice::from_ref(newest))
        .await
    {
        Ok(s) => s,
        Err(source) => {
            return Err(find_corrupt(lake, table, std::slice::from_ref(newest))
                .await
                .unwrap_or(SessionError::Register {
                    table: table.name.clone(),
                    location: lake.describe(&dir),
                    source,
                }));
        }
    };
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            table
                .partition_by
                .iter()
                .map(|c| (c.clone(), DataType::Utf8))
                .collect(),
        );
    let url = Lake::datafusion_url(&dir);
    ctx.register_listing_table(table.name.as_str(), &url, options, Some(schema), None)
        .await
        .map_err(|source| SessionError::Register {
            table: table.name.clone(),
            location: lake.describe(&dir),
            source,
        })
}

/// The first of `files` whose Parquet footer cannot be read, or else the
/// first whose columns have other types than the newest file's (which
/// gives the table its schema), as an error naming the file (and column).
/// Reads every footer: only for explaining a failure.
pub async fn find_corrupt(
    lake: &Lake,
    table: &Table,
    files: &[ObjectMeta],
) -> Option<SessionError> {
    let mut schemas = Vec::with_capacity(files.len());
    for meta in files {
        match read_footer(lake, meta).await {
            Ok(schema) => schemas.push((meta, schema)),
            Err(message) => {
                return Some(SessionError::CorruptFile {
                    table: table.name.clone(),
                    file: lake.describe(&meta.location),
                    message,
                });
            }
        }
    }
    let (newest, expected) = schemas
        .iter()
        .max_by(|a, b| a.0.location.cmp(&b.0.location))?;
    for (meta, schema) in &schemas {
        for field in schema.fields() {
            let Ok(want) = expected.field_with_name(field.name()) else {
                continue;
            };
            if !same_type(field.data_type(), want.data_type()) {
                return Some(SessionError::Drift {
                    table: table.name.clone(),
                    file: lake.describe(&meta.location),
                    column: field.name().clone(),
                    found: field.data_type().to_string(),
                    expected: want.data_type().to_string(),
                    newest: lake.describe(&newest.location),
                });
            }
        }
    }
    None
}

/// Types that differ only in their physical string or binary layout read
/// the same.
fn same_type(a: &DataType, b: &DataType) -> bool {
    use DataType::{Binary, BinaryView, LargeBinary, LargeUtf8, Utf8, Utf8View};
    let strings = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView);
    a == b || (strings(a) && strings(b)) || (binary(a) && binary(b))
}

/// Read and parse a Parquet file's footer from the store, into its Arrow
/// schema.
async fn read_footer(
    lake: &Lake,
    meta: &ObjectMeta,
) -> Result<datafusion::arrow::datatypes::Schema, String> {
    let size = meta.size;
    let mut want: u64 = 64 * 1024;
    loop {
        let start = size.saturating_sub(want);
        let tail = lake
            .store()
            .get_range(&meta.location, start..size)
            .await
            .map_err(|e| e.to_string())?;
        let mut reader = ParquetMetaDataReader::new();
        match reader.try_parse_sized(&tail, size) {
            Ok(()) => {
                let md = reader.finish().map_err(|e| e.to_string())?;
                let file = md.file_metadata();
                return parquet::arrow::parquet_to_arrow_schema(
                    file.schema_descr(),
                    file.key_value_metadata(),
                )
                .map_err(|e| e.to_string());
            }
            Err(ParquetError::NeedMoreData(n)) if (n as u64) > want && (n as u64) <= size => {
                want = n as u64;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_foreign_files_are_skipped() {
        let dir = Path::from("raw/sales");
        assert!(is_visible_parquet(
            &dir,
            &Path::from("raw/sales/ds=2026-11-27/part-00000.parquet")
        ));
        assert!(!is_visible_parquet(&dir, &Path::from("raw/sales/_SUCCESS")));
        assert!(!is_visible_parquet(
            &dir,
            &Path::from("raw/sales/_tmp/x.parquet")
        ));
        assert!(!is_visible_parquet(
            &dir,
            &Path::from("raw/sales/notes.txt")
        ));
        assert!(!is_visible_parquet(
            &dir,
            &Path::from("raw/salesextra/x.parquet")
        ));
    }
}
