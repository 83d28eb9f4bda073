//! Times demo lake generation into a local temporary folder and prints wall
//! time and rows/s. Small always runs; set `RESTOCK_BENCH_M5=1` for the
//! M5-sized lake and `RESTOCK_BENCH_MEDIUM=1` for medium.
//!
//! Run with the dev profile (the release build of the dependency tree is
//! very slow to produce): `cargo bench --profile dev --bench demo_generate`.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use restock::demo::{DemoOptions, Scale, generate};

fn run(scale: Scale) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path())?);
    let end = NaiveDate::from_ymd_opt(2025, 6, 30).ok_or("bad date")?;
    let opts = DemoOptions::new(scale, 42, end);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let summary = rt.block_on(generate(store, &Path::from("lake"), &opts))?;
    let secs = started.elapsed().as_secs_f64();
    let rows = summary.total_rows();
    println!(
        "demo_generate/{scale:?}: {secs:.2} s wall, {rows} rows ({} series, {} days), {:.0} rows/s, {:.1} MiB in {} files",
        summary.series,
        (summary.end_date - summary.start_date).num_days() + 1,
        rows as f64 / secs,
        summary.total_bytes() as f64 / (1024.0 * 1024.0),
        summary.tables.iter().map(|t| t.files).sum::<u64>(),
    );
    for t in &summary.tables {
        println!(
            "  {:<10} {:>10} rows {:>6} files {:>12} bytes",
            t.table, t.rows, t.files, t.bytes
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Scale::Small)?;
    if std::env::var("RESTOCK_BENCH_MEDIUM").is_ok_and(|v| v == "1") {
        run(Scale::Medium)?;
    }
    if std::env::var("RESTOCK_BENCH_M5").is_ok_and(|v| v == "1") {
        run(Scale::M5)?;
    }
    Ok(())
}
