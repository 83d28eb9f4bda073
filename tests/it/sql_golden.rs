//! Golden tests for every query in `sql/`: each file runs through the real
//! `sql` task over a small hand-made lake for the run of 2026-11-27, and
//! its published Parquet, read back and sorted, must print exactly as
//! `tests/golden/sql/<name>.txt`. `RESTOCK_UPDATE_GOLDEN=1` rewrites the
//! goldens (review the diff before committing it).
//!
//! The input holds the rows the queries care about: a product discontinued
//! before the run date and one discontinued on it, one launched after it
//! and one launched on it, a store (S2) whose newest inventory snapshot is
//! days older than the run date, several snapshots per series, a sales day
//! missing from the calendar, a holiday and an event, and partitions just
//! outside each query's window (history and the 14-day inventory window)
//! and after the run date.

use crate::lake_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use lake_support::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use restock::lake::Lake;

const DS: &str = "2026-11-27";

/// Days since 1970-01-01 for a `YYYY-MM-DD` date.
fn day(date: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    i32::try_from((d - epoch).num_days()).expect("days fit i32")
}

fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn dates<'a>(v: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(Date32Array::from_iter_values(v.into_iter().map(day)))
}

fn ints(v: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(v))
}

fn floats(v: impl IntoIterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(v))
}

/// One sales row: (store, sku, units, price, on_promo); the date is the
/// partition's, category and department follow the sku.
type Sale = (&'static str, &'static str, i64, f64, bool);

fn category(sku: &str) -> (&'static str, &'static str) {
    match sku {
        "A" | "B" => ("fruit", "fresh"),
        "C" => ("veg", "fresh"),
        _ => ("dairy", "chilled"),
    }
}

fn sales_batch(date: &str, rows: &[Sale]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("date", dates(rows.iter().map(|_| date))),
        ("store", strings(rows.iter().map(|r| r.0))),
        ("sku", strings(rows.iter().map(|r| r.1))),
        ("category", strings(rows.iter().map(|r| category(r.1).0))),
        ("department", strings(rows.iter().map(|r| category(r.1).1))),
        ("units", ints(rows.iter().map(|r| r.2))),
        ("price", floats(rows.iter().map(|r| r.3))),
        (
            "on_promo",
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .expect("sales batch")
}

/// One inventory row: (store, sku, on_hand, on_order).
type Stock = (&'static str, &'static str, i64, i64);

fn inventory_batch(date: &str, rows: &[Stock]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("date", dates(rows.iter().map(|_| date))),
        ("store", strings(rows.iter().map(|r| r.0))),
        ("sku", strings(rows.iter().map(|r| r.1))),
        ("on_hand", ints(rows.iter().map(|r| r.2))),
        ("on_order", ints(rows.iter().map(|r| r.3))),
    ])
    .expect("inventory batch")
}

/// Products: (sku, launch_date, discontinued_date); the replenishment
/// parameters differ per sku so a mixed-up column shows.
fn products_batch() -> RecordBatch {
    let rows: [(&str, &str, Option<&str>); 6] = [
        ("A", "2024-01-01", None),
        // Discontinued before the run date: gone.
        ("B", "2024-01-01", Some("2026-11-20")),
        // Launched after the run date: not yet sold.
        ("C", "2026-12-05", None),
        // Discontinued on the run date: no longer sold that day.
        ("D", "2025-03-01", Some(DS)),
        // Launched on the run date: sold from that day.
        ("E", DS, None),
        // Discontinued after the run date: still sold.
        ("F", "2025-06-15", Some("2027-01-31")),
    ];
    let n = |i: usize| i as f64;
    RecordBatch::try_from_iter([
        ("sku", strings(rows.iter().map(|r| r.0))),
        ("category", strings(rows.iter().map(|r| category(r.0).0))),
        ("department", strings(rows.iter().map(|r| category(r.0).1))),
        ("unit_cost", floats((0..6).map(|i| 1.25 + n(i)))),
        ("case_pack", ints((0..6).map(|i| 6 * (i + 1)))),
        ("moq", ints((0..6).map(|i| 10 + i))),
        ("lead_time_days", floats((0..6).map(|i| 2.5 + n(i)))),
        (
            "lead_time_std_days",
            floats([0.5, 0.75, 1.0, 1.25, 1.5, 1.75]),
        ),
        ("review_period_days", ints((0..6).map(|i| 7 + i))),
        (
            "service_level",
            floats([0.9, 0.95, 0.98, 0.99, 0.95, 0.975]),
        ),
        ("launch_date", dates(rows.iter().map(|r| r.1))),
        (
            "discontinued_date",
            Arc::new(Date32Array::from(
                rows.iter().map(|r| r.2.map(day)).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .expect("products batch")
}

/// 2026-11-20 … 2026-11-30 without 2026-11-25 (a missing calendar day).
fn calendar_batch() -> RecordBatch {
    let rows: [(&str, i32, Option<&str>, Option<&str>); 10] = [
        ("2024-11-28", 4, Some("Thanksgiving"), None),
        ("2026-11-20", 5, None, None),
        ("2026-11-21", 6, None, None),
        ("2026-11-23", 1, None, None),
        ("2026-11-24", 2, None, None),
        ("2026-11-26", 4, Some("Thanksgiving"), None),
        // An event is not a holiday.
        ("2026-11-27", 5, None, Some("Black Friday")),
        ("2026-11-28", 6, None, None),
        ("2026-11-29", 7, None, None),
        ("2026-11-30", 1, None, Some("Cyber Monday")),
    ];
    RecordBatch::try_from_iter([
        ("date", dates(rows.iter().map(|r| r.0))),
        (
            "weekday",
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef,
        ),
        (
            "holiday",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "event",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .expect("calendar batch")
}

async fn seed(lake: &Lake) {
    let sales: [(&str, &[Sale]); 8] = [
        // One day before the 730-day history window starts: excluded.
        ("2024-11-27", &[("S1", "A", 100, 1.0, false)]),
        // First day of the window (a holiday).
        ("2024-11-28", &[("S1", "A", 3, 1.0, false)]),
        (
            "2026-11-24",
            &[("S1", "A", 4, 1.5, false), ("S2", "B", 2, 2.0, true)],
        ),
        // Missing from the calendar: not a holiday.
        ("2026-11-25", &[("S1", "A", 0, 1.5, false)]),
        (
            "2026-11-26",
            &[
                ("S1", "A", 6, 1.5, true),
                ("S1", "D", 1, 3.25, false),
                ("S2", "A", 2, 1.5, true),
            ],
        ),
        (
            DS,
            &[
                ("S1", "A", 9, 1.25, true),
                ("S1", "E", 5, 4.0, false),
                ("S2", "A", 7, 1.25, true),
            ],
        ),
        // After the run date: only the whole-history aggregate sees them.
        ("2026-11-29", &[("S1", "A", 1000, 1.5, false)]),
        ("2026-11-30", &[("S1", "A", 11, 1.5, false)]),
    ];
    for (date, rows) in sales {
        put_parquet(
            lake,
            &format!("raw/sales/ds={date}/part-00000.parquet"),
            &sales_batch(date, rows),
        )
        .await;
    }
    let inventory: [(&str, &[Stock]); 7] = [
        // Outside the 14-day window (ds > 2026-11-13).
        ("2026-11-10", &[("S2", "A", 50, 0)]),
        ("2026-11-13", &[("S2", "B", 40, 0), ("S1", "A", 99, 9)]),
        // S2 stops reporting after 2026-11-21: its last position is kept.
        ("2026-11-20", &[("S2", "A", 5, 12)]),
        ("2026-11-21", &[("S2", "A", 4, 12), ("S1", "B", 8, 0)]),
        ("2026-11-25", &[("S1", "A", 10, 0), ("S1", "B", 3, 0)]),
        (DS, &[("S1", "A", 7, 24), ("S1", "E", 20, 0)]),
        // After the run date: never the newest for this run.
        ("2026-11-28", &[("S1", "A", 1, 0), ("S2", "A", 1, 0)]),
    ];
    for (date, rows) in inventory {
        put_parquet(
            lake,
            &format!("raw/inventory/ds={date}/part-00000.parquet"),
            &inventory_batch(date, rows),
        )
        .await;
    }
    put_parquet(lake, "raw/products/part-00000.parquet", &products_batch()).await;
    put_parquet(lake, "raw/calendar/part-00000.parquet", &calendar_batch()).await;
}

/// The `sql/*.sql` files of the repository, by name.
fn sql_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("sql").expect("sql folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "sql") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf8 name")
                .to_string();
            let text = std::fs::read_to_string(&path).expect("read sql");
            out.push((stem, text));
        }
    }
    out.sort();
    out
}

fn dag_yaml(names: &[String]) -> String {
    let mut y = String::from(
        "id: sql_golden\n\
         params: { history_days: 730, horizon_days: 28 }\n\
         tables:\n  \
         sales: { path: raw/sales, partition_by: [ds] }\n  \
         inventory: { path: raw/inventory, partition_by: [ds] }\n  \
         products: { path: raw/products }\n  \
         calendar: { path: raw/calendar }\n\
         tasks:\n",
    );
    for n in names {
        y.push_str(&format!(
            "  - id: {n}\n    kind: sql\n    sql: sql/{n}.sql\n    output: {{ table: curated/{n} }}\n"
        ));
    }
    y
}

/// Every batch of one Parquet file, sorted on all columns, pretty-printed.
fn render(file: &Path) -> String {
    let f = std::fs::File::open(file).expect("open output");
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    let schema = batches
        .first()
        .map(|b| b.schema())
        .expect("at least one batch");
    let all = arrow::compute::concat_batches(&schema, &batches).expect("concat");
    let columns: Vec<SortColumn> = all
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&columns, None).expect("sort");
    let sorted = take_record_batch(&all, &order).expect("take");
    format!(
        "{} rows\n{}\n",
        sorted.num_rows(),
        pretty_format_batches(&[sorted]).expect("pretty")
    )
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(format!("tests/golden/sql/{name}.txt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_file_matches_its_golden() {
    let files = sql_files();
    assert!(!files.is_empty(), "no sql/*.sql files");
    // The project gets the repository's files as they are.
    let named: Vec<(String, &str)> = files
        .iter()
        .map(|(n, t)| (format!("{n}.sql"), t.as_str()))
        .collect();
    let named: Vec<(&str, &str)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let project = Project::new(&named);
    let lake_dir = project.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().expect("utf8")).expect("open lake");
    seed(&lake).await;
    let services = services(lake.clone());
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let dag = project.dag(&dag_yaml(&names));

    let update = std::env::var_os("RESTOCK_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for name in &names {
        let out = run_task(&dag, name, &services, DS)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = lake_dir.join(format!("curated/{name}/part-00000.parquet"));
        let got = render(&file);
        assert_eq!(
            out["rows"]
                .as_u64()
                .map(|r| got.starts_with(&format!("{r} rows\n"))),
            Some(true),
            "{name}: task reported {} rows",
            out["rows"]
        );
        let path = golden_path(name);
        if update {
            std::fs::create_dir_all("tests/golden/sql").expect("golden dir");
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{name}: output differs from {}\n--- want\n{want}--- got\n{got}",
                path.display()
            )),
            Err(_) => failures.push(format!(
                "{name}: no golden at {} (run with RESTOCK_UPDATE_GOLDEN=1 and review it)\n{got}",
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A golden whose query is gone is stale.
#[test]
fn every_golden_has_its_sql_file() {
    let names: Vec<String> = sql_files().into_iter().map(|(n, _)| n).collect();
    for entry in std::fs::read_dir("tests/golden/sql").expect("golden folder") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf8 name")
            .to_string();
        assert!(
            path.extension().is_some_and(|x| x == "txt") && names.contains(&stem),
            "{} has no sql/{stem}.sql",
            path.display()
        );
    }
}
