//! Synthetic retail demo lake: `restock demo` writes a realistic,
//! seed-deterministic history of sales, inventory, products, calendar and a
//! future promotion plan into any object store, with a few anomalies
//! injected for the monitors to find.
//!
//! This module owns the orchestration (options, scales, the summary, where
//! files go). The world is drawn in `catalog.rs`, days are simulated in
//! `sim.rs` on a blocking thread, and `write.rs` turns them into Parquet.
//! Each history day is encoded and uploaded as soon as it is simulated, so
//! memory stays flat at any scale. Running the main job afterwards is the
//! CLI's business, not this module's.

mod catalog;
pub mod replenish;
mod sample;
mod sim;
mod write;

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;

pub use sim::{PLAN_DAYS, PRICE_ERROR_FACTOR, SPIKE_FACTOR, STALE_DAYS, STOPPED_DAYS};
pub use write::{
    calendar_schema, inventory_schema, products_schema, promo_plan_schema, sales_schema,
};

use catalog::{Catalog, CatalogSpec};
use sample::Sampler;
use sim::{AnomalyPlan, DayRows, Simulation};

/// Days of calendar written after the last history day.
pub const CALENDAR_FUTURE_DAYS: i64 = 90;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("unknown demo scale `{0}` (expected small, medium or m5)")]
    UnknownScale(String),
    #[error("demo options: {0}")]
    Options(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: object_store::Error,
    },
    #[error("encoding {table}: {source}")]
    Encode {
        table: &'static str,
        source: parquet::errors::ParquetError,
    },
    #[error("building {table} batch: {source}")]
    Arrow {
        table: &'static str,
        source: arrow::error::ArrowError,
    },
    /// A generator thread failed or was cancelled: a bug, not a user fault.
    #[error("demo generator thread: {0}")]
    Internal(String),
}

/// How big a lake to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// 2 stores × ~60 skus × 2 years: the whole pipeline, LSTM training
    /// included, runs in about a minute.
    #[default]
    Small,
    /// 5 stores × ~400 skus × 3 years.
    Medium,
    /// M5-sized: 10 stores × 3,049 skus (≈30,490 series), 1,941 days.
    M5,
}

impl Scale {
    /// (stores, skus, history days)
    pub fn dimensions(self) -> (usize, usize, i64) {
        match self {
            Scale::Small => (2, 60, 730),
            Scale::Medium => (5, 400, 1095),
            Scale::M5 => (10, 3049, 1941),
        }
    }
}

impl FromStr for Scale {
    type Err = DemoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "small" => Ok(Scale::Small),
            "medium" => Ok(Scale::Medium),
            "m5" => Ok(Scale::M5),
            _ => Err(DemoError::UnknownScale(s.to_string())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub scale: Scale,
    pub seed: u64,
    /// Last day of history (the CLI passes yesterday).
    pub end_date: NaiveDate,
    /// Overrides the scale's number of stores (1–10).
    pub stores: Option<usize>,
    /// Overrides the scale's approximate number of skus.
    pub skus: Option<usize>,
    /// Overrides the scale's number of history days.
    pub history_days: Option<i64>,
    /// Files written concurrently (each is encoded on the blocking pool).
    pub concurrency: usize,
}

impl DemoOptions {
    pub fn new(scale: Scale, seed: u64, end_date: NaiveDate) -> Self {
        Self {
            scale,
            seed,
            end_date,
            stores: None,
            skus: None,
            history_days: None,
            concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Units far above normal (×[`SPIKE_FACTOR`] expected demand) on the
    /// last day; served from an extra delivery, so stock stays coherent.
    DemandSpike,
    /// `on_hand` written negative on the last day: a data error.
    NegativeOnHand,
    /// The store's sales and inventory rows stop [`STALE_DAYS`] days
    /// before the end of history.
    StaleStore,
    /// A fast mover sells nothing over the last [`STOPPED_DAYS`] days with
    /// stock on the shelf (a delisting or a blocked shelf).
    DemandStopped,
    /// The last day's price is written ×[`PRICE_ERROR_FACTOR`] (a feed
    /// sending cents as currency units).
    PriceError,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::DemandSpike => "demand_spike",
            AnomalyKind::NegativeOnHand => "negative_on_hand",
            AnomalyKind::StaleStore => "stale_store",
            AnomalyKind::DemandStopped => "demand_stopped",
            AnomalyKind::PriceError => "price_error",
        }
    }

    /// The anomaly type the `monitor` task should report for it.
    pub fn expected_type(self) -> &'static str {
        match self {
            AnomalyKind::DemandSpike => "demand_outside_interval",
            AnomalyKind::NegativeOnHand => "negative_on_hand",
            AnomalyKind::StaleStore => "stale_data",
            AnomalyKind::DemandStopped => "demand_stopped",
            AnomalyKind::PriceError => "price_error",
        }
    }
}

impl std::fmt::Display for InjectedAnomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = match &self.sku {
            Some(sku) => format!("{}/{sku}", self.store),
            None => format!("store {}", self.store),
        };
        write!(f, "{} at {at}", self.kind.as_str())?;
        if self.first_date == self.last_date {
            write!(f, " on {}", self.last_date)
        } else {
            write!(f, " from {} to {}", self.first_date, self.last_date)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectedAnomaly {
    pub kind: AnomalyKind,
    pub store: String,
    /// None when the whole store is affected.
    pub sku: Option<String>,
    pub first_date: NaiveDate,
    pub last_date: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableSummary {
    pub table: String,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub scale: Scale,
    pub seed: u64,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub stores: usize,
    pub skus: usize,
    pub series: usize,
    pub tables: Vec<TableSummary>,
    pub anomalies: Vec<InjectedAnomaly>,
}

impl DemoSummary {
    pub fn table(&self, name: &str) -> Option<&TableSummary> {
        self.tables.iter().find(|t| t.table == name)
    }
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
    pub fn total_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

/// One finished file waiting to be uploaded.
struct EncodedFile {
    table: &'static str,
    rel: String,
    rows: u64,
    data: bytes::Bytes,
}

fn encode_file(
    table: &'static str,
    rel: String,
    batch: Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError>,
) -> Result<EncodedFile, DemoError> {
    let batch = batch.map_err(|source| DemoError::Arrow { table, source })?;
    let data = write::encode(&batch).map_err(|source| DemoError::Encode { table, source })?;
    Ok(EncodedFile {
        table,
        rel,
        rows: batch.num_rows() as u64,
        data,
    })
}

/// Everything drawn before simulation; cheap, and shared by the threads.
struct World {
    catalog: Catalog,
    plan: AnomalyPlan,
    start: NaiveDate,
    days: i64,
}

fn draw_world(opts: &DemoOptions) -> Result<World, DemoError> {
    let (stores, skus, days) = opts.scale.dimensions();
    let stores = opts.stores.unwrap_or(stores);
    let skus = opts.skus.unwrap_or(skus);
    let days = opts.history_days.unwrap_or(days);
    if !(1..=10).contains(&stores) || skus < 1 || days < 60 {
        return Err(DemoError::Options(format!(
            "need 1-10 stores, at least 1 sku and 60 days (got {stores}, {skus}, {days})"
        )));
    }
    let start = opts.end_date - Duration::days(days - 1);
    let spec = CatalogSpec {
        stores,
        skus,
        start,
        end: opts.end_date,
    };
    let catalog = Catalog::draw(&spec, &mut Sampler::new(opts.seed, 0));
    let plan = AnomalyPlan::choose(&catalog, opts.end_date);
    Ok(World {
        catalog,
        plan,
        start,
        days,
    })
}

fn anomalies(world: &World, end: NaiveDate) -> Vec<InjectedAnomaly> {
    let cat = &world.catalog;
    let series = |i: usize, kind| {
        let s = &cat.series[i];
        InjectedAnomaly {
            kind,
            store: cat.stores[s.store].name.clone(),
            sku: Some(cat.products[s.product].sku.clone()),
            first_date: end,
            last_date: end,
        }
    };
    let mut out = vec![
        series(world.plan.spike_series, AnomalyKind::DemandSpike),
        series(world.plan.negative_series, AnomalyKind::NegativeOnHand),
        InjectedAnomaly {
            first_date: end - Duration::days(STOPPED_DAYS - 1),
            ..series(world.plan.stopped_series, AnomalyKind::DemandStopped)
        },
        series(world.plan.price_series, AnomalyKind::PriceError),
    ];
    if cat.stores.len() > 1 {
        out.push(InjectedAnomaly {
            kind: AnomalyKind::StaleStore,
            store: cat.stores[world.plan.stale_store].name.clone(),
            sku: None,
            first_date: end - Duration::days(STALE_DAYS - 1),
            last_date: end,
        });
    }
    out
}

fn day_path(table: &str, date: NaiveDate) -> String {
    let dir = if table == "truth" {
        "truth/expected_demand".to_string()
    } else {
        format!("raw/{table}")
    };
    format!("{dir}/ds={}/part-00000.parquet", date.format("%Y-%m-%d"))
}

/// Days at the end of history with ground truth (`truth/expected_demand`).
pub const TRUTH_DAYS: i64 = 90;

/// Generates the demo lake under `prefix` in `store`.
///
/// Simulation runs on one blocking thread and hands each day over a bounded
/// channel; each day's two files are encoded on the blocking pool and
/// uploaded with at most `opts.concurrency` in flight, so neither the
/// runtime nor memory is strained at M5 scale. Same options, same bytes.
pub async fn generate(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    opts: &DemoOptions,
) -> Result<DemoSummary, DemoError> {
    let opts = opts.clone();
    let world = Arc::new(
        tokio::task::spawn_blocking({
            let opts = opts.clone();
            move || draw_world(&opts)
        })
        .await
        .map_err(|e| DemoError::Internal(e.to_string()))??,
    );

    let (tx, mut rx) = tokio::sync::mpsc::channel::<DayRows>(4);
    let sim = tokio::task::spawn_blocking({
        let world = Arc::clone(&world);
        let seed = opts.seed;
        move || {
            let mut simulation = Simulation::new(
                &world.catalog,
                world.start,
                world.days,
                world.plan.clone(),
                Sampler::new(seed, 1),
            );
            // A closed channel means the writer side gave up; stop quietly.
            let plan = simulation.run(|day| tx.blocking_send(day).map_err(|_| ()));
            plan.ok().map(|plan| {
                let rel = "raw/promo_plan/part-00000.parquet".to_string();
                encode_file(
                    "promo_plan",
                    rel,
                    write::promo_plan_batch(&world.catalog, &plan),
                )
            })
        }
    });

    let days = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let truth_from = opts.end_date - Duration::days(TRUTH_DAYS - 1);
    let encoded = days
        .flat_map(|day| {
            let world = Arc::clone(&world);
            let day = Arc::new(day);
            let tables: &[&'static str] = if day.date >= truth_from {
                &["sales", "inventory", "truth"]
            } else {
                &["sales", "inventory"]
            };
            let jobs: Vec<_> = tables
                .iter()
                .copied()
                .map(|table| {
                    let world = Arc::clone(&world);
                    let day = Arc::clone(&day);
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let batch = match table {
                                "sales" => write::sales_batch(&world.catalog, &day),
                                "truth" => write::truth_batch(&world.catalog, &day),
                                _ => write::inventory_batch(&world.catalog, &day),
                            };
                            encode_file(table, day_path(table, day.date), batch)
                        })
                        .await
                        .map_err(|e| DemoError::Internal(e.to_string()))?
                    }
                })
                .collect();
            futures::stream::iter(jobs)
        })
        .buffered(opts.concurrency.max(1));

    let static_world = Arc::clone(&world);
    let end_date = opts.end_date;
    let statics = tokio::task::spawn_blocking(move || {
        let cat = &static_world.catalog;
        let last = end_date + Duration::days(CALENDAR_FUTURE_DAYS);
        Ok::<_, DemoError>(vec![
            encode_file(
                "products",
                "raw/products/part-00000.parquet".into(),
                write::products_batch(cat),
            )?,
            encode_file(
                "calendar",
                "raw/calendar/part-00000.parquet".into(),
                write::calendar_batch(static_world.start, last),
            )?,
        ])
    })
    .await
    .map_err(|e| DemoError::Internal(e.to_string()))??;

    let mut tables: Vec<TableSummary> = [
        "sales",
        "inventory",
        "products",
        "calendar",
        "promo_plan",
        "truth",
        "truth_anomalies",
    ]
    .into_iter()
    .map(|t| TableSummary {
        table: t.to_string(),
        ..TableSummary::default()
    })
    .collect();
    let put = |file: EncodedFile| {
        let store = Arc::clone(&store);
        let path = Path::from_iter(prefix.parts().chain(Path::from(file.rel.as_str()).parts()));
        async move {
            let bytes = file.data.len() as u64;
            store
                .put(&path, PutPayload::from_bytes(file.data))
                .await
                .map_err(|source| DemoError::Write {
                    path: path.to_string(),
                    source,
                })?;
            Ok::<_, DemoError>((file.table, file.rows, bytes))
        }
    };
    let mut record = |(table, rows, bytes): (&str, u64, u64)| {
        if let Some(t) = tables.iter_mut().find(|t| t.table == table) {
            t.rows += rows;
            t.files += 1;
            t.bytes += bytes;
        }
    };

    for file in statics {
        record(put(file).await?);
    }
    let mut uploads = encoded
        .map(|file| async { put(file?).await })
        .buffered(opts.concurrency.max(1));
    while let Some(done) = uploads.next().await {
        record(done?);
    }
    drop(uploads);
    let plan_file = sim
        .await
        .map_err(|e| DemoError::Internal(e.to_string()))?
        .ok_or_else(|| DemoError::Internal("simulation stopped early".into()))??;
    record(put(plan_file).await?);
    let injected = anomalies(&world, opts.end_date);
    record(
        put(encode_file(
            "truth_anomalies",
            "truth/anomalies/part-00000.parquet".into(),
            write::truth_anomalies_batch(&injected),
        )?)
        .await?,
    );

    let cat = &world.catalog;
    Ok(DemoSummary {
        scale: opts.scale,
        seed: opts.seed,
        start_date: world.start,
        end_date: opts.end_date,
        stores: cat.stores.len(),
        skus: cat.products.len(),
        series: cat.series.len(),
        tables,
        anomalies: injected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_parses_its_cli_names() {
        assert_eq!("small".parse::<Scale>().ok(), Some(Scale::Small));
        assert_eq!("Medium".parse::<Scale>().ok(), Some(Scale::Medium));
        assert_eq!("m5".parse::<Scale>().ok(), Some(Scale::M5));
        let err = "huge".parse::<Scale>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown demo scale `huge` (expected small, medium or m5)")
        );
    }

    #[test]
    fn m5_scale_has_the_m5_shape() {
        let end = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap_or_default();
        let world = draw_world(&DemoOptions::new(Scale::M5, 1, end));
        let Ok(world) = world else {
            panic!("m5 world");
        };
        assert_eq!(world.catalog.stores.len(), 10);
        assert_eq!(world.catalog.products.len(), 3049);
        assert_eq!(world.catalog.series.len(), 30_490);
        assert_eq!(world.days, 1941);
        let mut depts: Vec<usize> = world
            .catalog
            .products
            .iter()
            .map(|p| p.department)
            .collect();
        depts.dedup();
        assert_eq!(depts.len(), 7);
    }

    #[test]
    fn bad_sizes_are_user_errors() {
        let end = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap_or_default();
        let mut opts = DemoOptions::new(Scale::Small, 1, end);
        opts.stores = Some(11);
        assert!(matches!(draw_world(&opts), Err(DemoError::Options(_))));
    }
}
