//! The demo lake as its readers see it: files read back from a local
//! folder, checked for determinism, for the retail behaviour the demand
//! model promises, for stock coherence, and for the injected anomalies
//! sitting exactly where the summary says.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use chrono::{Datelike, Duration, NaiveDate};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use restock::demo::{
    AnomalyKind, DemoOptions, DemoSummary, PRICE_ERROR_FACTOR, STALE_DAYS, STOPPED_DAYS, Scale,
    generate,
};

fn end_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 30).expect("demo lake test")
}

async fn build(opts: &DemoOptions) -> (tempfile::TempDir, DemoSummary) {
    let dir = tempfile::tempdir().expect("demo lake test");
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("demo lake test"));
    let summary = generate(store, &Path::from("lake"), opts)
        .await
        .expect("generate demo lake");
    (dir, summary)
}

fn files_under(root: &FsPath) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("demo lake test") {
            let path = entry.expect("demo lake test").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read_table(root: &FsPath, table: &str) -> Vec<RecordBatch> {
    files_under(&root.join("lake/raw").join(table))
        .into_iter()
        .flat_map(|f| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(f).expect("demo lake test"))
                .expect("demo lake test")
                .build()
                .expect("demo lake test")
                .map(|b| b.expect("demo lake test"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn date_of(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("demo lake test") + Duration::days(i64::from(days))
}

/// One sales row joined with its inventory snapshot.
#[derive(Debug, Clone, Default)]
struct Row {
    units: i64,
    price: f64,
    on_promo: bool,
    on_hand: Option<i64>,
    on_order: Option<i64>,
}

type Key = (String, String); // store, sku

fn load(root: &FsPath) -> BTreeMap<Key, BTreeMap<NaiveDate, Row>> {
    let mut series: BTreeMap<Key, BTreeMap<NaiveDate, Row>> = BTreeMap::new();
    for b in read_table(root, "sales") {
        let date = b
            .column_by_name("date")
            .expect("demo lake test")
            .as_primitive::<Date32Type>();
        let store = b
            .column_by_name("store")
            .expect("demo lake test")
            .as_string::<i32>();
        let sku = b
            .column_by_name("sku")
            .expect("demo lake test")
            .as_string::<i32>();
        let units = b
            .column_by_name("units")
            .expect("demo lake test")
            .as_primitive::<Int64Type>();
        let price = b
            .column_by_name("price")
            .expect("demo lake test")
            .as_primitive::<Float64Type>();
        let promo = b
            .column_by_name("on_promo")
            .expect("demo lake test")
            .as_boolean();
        for r in 0..b.num_rows() {
            let row = series
                .entry((store.value(r).to_string(), sku.value(r).to_string()))
                .or_default()
                .entry(date_of(date.value(r)))
                .or_default();
            row.units = units.value(r);
            row.price = price.value(r);
            row.on_promo = promo.value(r);
        }
    }
    for b in read_table(root, "inventory") {
        let date = b
            .column_by_name("date")
            .expect("demo lake test")
            .as_primitive::<Date32Type>();
        let store = b
            .column_by_name("store")
            .expect("demo lake test")
            .as_string::<i32>();
        let sku = b
            .column_by_name("sku")
            .expect("demo lake test")
            .as_string::<i32>();
        let on_hand = b
            .column_by_name("on_hand")
            .expect("demo lake test")
            .as_primitive::<Int64Type>();
        let on_order = b
            .column_by_name("on_order")
            .expect("demo lake test")
            .as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let row = series
                .entry((store.value(r).to_string(), sku.value(r).to_string()))
                .or_default()
                .entry(date_of(date.value(r)))
                .or_default();
            row.on_hand = Some(on_hand.value(r));
            row.on_order = Some(on_order.value(r));
        }
    }
    series
}

fn anomaly(summary: &DemoSummary, kind: AnomalyKind) -> &restock::demo::InjectedAnomaly {
    summary
        .anomalies
        .iter()
        .find(|a| a.kind == kind)
        .expect("demo lake test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    let mut opts = DemoOptions::new(Scale::Small, 11, end_date());
    opts.skus = Some(20);
    opts.history_days = Some(120);
    let (a, sa) = build(&opts).await;
    let (b, _) = build(&opts).await;
    opts.seed = 12;
    let (c, _) = build(&opts).await;

    let fa = files_under(a.path());
    let fb = files_under(b.path());
    assert_eq!(
        fa.len() as u64,
        sa.tables.iter().map(|t| t.files).sum::<u64>()
    );
    assert_eq!(
        fa.iter()
            .map(|f| f.strip_prefix(a.path()).expect("demo lake test"))
            .collect::<Vec<_>>(),
        fb.iter()
            .map(|f| f.strip_prefix(b.path()).expect("demo lake test"))
            .collect::<Vec<_>>()
    );
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(
            std::fs::read(x).expect("demo lake test"),
            std::fs::read(y).expect("demo lake test"),
            "{}",
            x.display()
        );
    }
    let last = format!("lake/raw/sales/ds={}/part-00000.parquet", end_date());
    assert_ne!(
        std::fs::read(a.path().join(&last)).expect("demo lake test"),
        std::fs::read(c.path().join(&last)).expect("demo lake test"),
        "a different seed must give different data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_lake_behaves_like_retail_and_carries_the_injected_anomalies() {
    let opts = DemoOptions::new(Scale::Small, 42, end_date());
    let (dir, summary) = build(&opts).await;
    let data = load(dir.path());
    let end = end_date();

    // Summary matches what is on disk.
    assert_eq!(summary.series, data.len());
    let sales_rows: usize = read_table(dir.path(), "sales")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(
        summary.table("sales").expect("demo lake test").rows,
        sales_rows as u64
    );
    assert_eq!(summary.start_date, end - Duration::days(729));
    assert_eq!(summary.table("sales").expect("demo lake test").files, 730);

    let spike = anomaly(&summary, AnomalyKind::DemandSpike);
    let negative = anomaly(&summary, AnomalyKind::NegativeOnHand);
    let stale = anomaly(&summary, AnomalyKind::StaleStore);
    assert_eq!(stale.first_date, end - Duration::days(STALE_DAYS - 1));
    assert_ne!(spike.store, stale.store);
    assert_ne!(negative.store, stale.store);
    let is_negative_row = |k: &Key, d: NaiveDate| {
        k.0 == negative.store && Some(&k.1) == negative.sku.as_ref() && d == negative.last_date
    };

    // Weekly pattern: weekends sell clearly more than Monday to Thursday.
    let (mut weekend, mut weekday) = ((0.0, 0.0), (0.0, 0.0));
    for rows in data.values() {
        for (d, r) in rows {
            match d.weekday().num_days_from_monday() {
                5 | 6 => weekend = (weekend.0 + r.units as f64, weekend.1 + 1.0),
                0..=3 => weekday = (weekday.0 + r.units as f64, weekday.1 + 1.0),
                _ => {}
            }
        }
    }
    let ratio = (weekend.0 / weekend.1) / (weekday.0 / weekday.1);
    assert!((1.2..1.8).contains(&ratio), "weekend/weekday ratio {ratio}");

    // Promotions lift sales above the same series' regular days.
    let (mut promo_units, mut expected) = (0.0, 0.0);
    let mut promo_series = 0;
    for rows in data.values() {
        let (p, n): (Vec<&Row>, Vec<&Row>) = rows.values().partition(|r| r.on_promo);
        if p.is_empty() || n.is_empty() {
            continue;
        }
        promo_series += 1;
        let regular_mean = n.iter().map(|r| r.units as f64).sum::<f64>() / n.len() as f64;
        promo_units += p.iter().map(|r| r.units as f64).sum::<f64>();
        expected += regular_mean * p.len() as f64;
        assert!(p.iter().all(|r| r.price > 0.0));
    }
    assert!(promo_series > 10, "{promo_series} series with promotions");
    let uplift = promo_units / expected;
    assert!(uplift > 1.3, "promo uplift {uplift}");

    // Slow movers are intermittent: mostly zero days.
    let mut slow = 0;
    for rows in data.values() {
        let mean = rows.values().map(|r| r.units as f64).sum::<f64>() / rows.len() as f64;
        if mean < 0.3 && rows.len() > 300 {
            slow += 1;
            let zeros = rows.values().filter(|r| r.units == 0).count() as f64 / rows.len() as f64;
            assert!(zeros > 0.7, "slow mover with only {zeros} zero days");
        }
    }
    assert!(slow >= 10, "only {slow} slow movers");

    // Stock is coherent: receipts are never negative and never exceed what
    // was on order; sales never exceed stock plus receipts; stockouts exist.
    let mut stockout_days = 0;
    for (k, rows) in &data {
        let mut prev: Option<(i64, i64)> = None;
        for (d, r) in rows {
            let (Some(on_hand), Some(on_order)) = (r.on_hand, r.on_order) else {
                panic!("sales row without inventory row {k:?} {d}");
            };
            if is_negative_row(k, *d) {
                assert!(on_hand < 0);
                continue;
            }
            assert!(on_hand >= 0, "negative stock {k:?} {d}");
            if on_hand == 0 {
                stockout_days += 1;
            }
            if let Some((h, o)) = prev {
                let receipts = on_hand - h + r.units;
                assert!(
                    receipts >= 0 && receipts <= o,
                    "{k:?} {d}: receipts {receipts}, on order {o}"
                );
                assert!(r.units <= h + receipts);
            }
            prev = Some((on_hand, on_order));
        }
    }
    assert!(stockout_days > 100, "only {stockout_days} stockout days");
    eprintln!(
        "weekend/weekday {ratio:.2}, promo uplift {uplift:.2}, slow movers {slow}, stockout days {stockout_days}"
    );

    // Negative on_hand exactly where injected and nowhere else.
    let negatives: Vec<_> = data
        .iter()
        .flat_map(|(k, rows)| {
            rows.iter()
                .filter(|(_, r)| r.on_hand.unwrap_or(0) < 0)
                .map(move |(d, _)| (k.clone(), *d))
        })
        .collect();
    assert_eq!(
        negatives,
        vec![(
            (
                negative.store.clone(),
                negative.sku.clone().expect("demo lake test")
            ),
            negative.last_date
        )]
    );

    // The stale store stops arriving for its last days; the others do not.
    for (k, rows) in &data {
        let last = *rows.keys().last().expect("demo lake test");
        if k.0 == stale.store {
            assert!(
                rows.keys().all(|d| *d < stale.first_date),
                "{k:?} has rows after going stale"
            );
        } else if rows.len() > 30 && last > end - Duration::days(30) {
            assert_eq!(last, end, "{k:?}");
        }
    }

    // The spike stands far above the series' recent level.
    let rows = &data[&(
        spike.store.clone(),
        spike.sku.clone().expect("demo lake test"),
    )];
    let recent: Vec<f64> = rows
        .range(end - Duration::days(28)..end)
        .map(|(_, r)| r.units as f64)
        .collect();
    let mean = recent.iter().sum::<f64>() / recent.len() as f64;
    assert!(
        rows[&end].units as f64 > 4.0 * mean.max(1.0),
        "spike {} vs mean {mean}",
        rows[&end].units
    );

    // The stopped series sold before and nothing over its last days.
    let stopped = anomaly(&summary, AnomalyKind::DemandStopped);
    assert_eq!(stopped.first_date, end - Duration::days(STOPPED_DAYS - 1));
    let rows = &data[&(
        stopped.store.clone(),
        stopped.sku.clone().expect("demo lake test"),
    )];
    let before: i64 = rows
        .range(end - Duration::days(40)..stopped.first_date)
        .map(|(_, r)| r.units)
        .sum();
    let after: i64 = rows.range(stopped.first_date..).map(|(_, r)| r.units).sum();
    assert!(before > 60, "stopped series sold only {before} before");
    assert_eq!(after, 0, "stopped series sold after stopping");

    // The price feed error multiplies one last-day price, nowhere else.
    let priced = anomaly(&summary, AnomalyKind::PriceError);
    let rows = &data[&(
        priced.store.clone(),
        priced.sku.clone().expect("demo lake test"),
    )];
    let (last, usual) = (rows[&end].price, rows[&(end - Duration::days(1))].price);
    assert!(
        last > usual * PRICE_ERROR_FACTOR * 0.5,
        "price {last} vs {usual} the day before"
    );
    let jumps = data
        .values()
        .flat_map(|r| r.values().zip(r.values().skip(1)))
        .filter(|(a, b)| b.price > 10.0 * a.price)
        .count();
    assert_eq!(jumps, 1, "only the injected price is off the scale");

    // New products with short history, discontinued products that stop.
    let newest = data
        .values()
        .map(|r| *r.keys().next().expect("demo lake test"))
        .max()
        .expect("demo lake test");
    assert!(newest > end - Duration::days(45), "newest launch {newest}");
    let products = read_table(dir.path(), "products");
    let disc = products[0]
        .column_by_name("discontinued_date")
        .expect("demo lake test")
        .as_primitive::<Date32Type>();
    let skus = products[0]
        .column_by_name("sku")
        .expect("demo lake test")
        .as_string::<i32>();
    let mut discontinued = 0;
    for r in 0..disc.len() {
        if disc.is_valid(r) {
            discontinued += 1;
            let d = date_of(disc.value(r));
            for ((_, sku), rows) in &data {
                if sku == skus.value(r) {
                    assert!(*rows.keys().last().expect("demo lake test") <= d);
                }
            }
        }
    }
    assert!(discontinued >= 1);

    // Future plan: 56 days after history.
    let plan = read_table(dir.path(), "promo_plan");
    let (lo, hi) = plan
        .iter()
        .flat_map(|b| {
            let d = b
                .column_by_name("date")
                .expect("demo lake test")
                .as_primitive::<Date32Type>();
            d.iter().flatten().collect::<Vec<_>>()
        })
        .fold((i32::MAX, i32::MIN), |(a, b), x| (a.min(x), b.max(x)));
    assert_eq!(
        (date_of(lo), date_of(hi)),
        (end + Duration::days(1), end + Duration::days(56))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_the_lake_with_hive_partitions() {
    let mut opts = DemoOptions::new(Scale::Small, 5, end_date());
    opts.history_days = Some(90);
    let (dir, summary) = build(&opts).await;
    let probe = std::process::Command::new("python3")
        .args(["-c", "import pyarrow, duckdb"])
        .output()
        .expect("python3 is needed for the independent read-back");
    assert!(
        probe.status.success(),
        "python modules missing (pip install pyarrow duckdb): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let script = r#"
import json, sys
import pyarrow.dataset as ds, duckdb
root = sys.argv[1]
out = {}
for t in ["sales", "inventory"]:
    d = ds.dataset(f"{root}/raw/{t}", format="parquet", partitioning="hive")
    out[t] = {"rows": d.count_rows(), "schema": {f.name: str(f.type) for f in d.schema}}
    con = duckdb.connect()
    out[t]["duck_rows"] = con.execute(f"select count(*) from read_parquet('{root}/raw/{t}/*/*.parquet', hive_partitioning=true)").fetchone()[0]
    out[t]["ds_mismatch"] = con.execute(f"select count(*) from read_parquet('{root}/raw/{t}/*/*.parquet', hive_partitioning=true) where cast(ds as date) <> date").fetchone()[0]
for t in ["products", "calendar", "promo_plan"]:
    d = ds.dataset(f"{root}/raw/{t}", format="parquet")
    out[t] = {"rows": d.count_rows(), "schema": {f.name: str(f.type) for f in d.schema}}
d = ds.dataset(f"{root}/truth/expected_demand", format="parquet", partitioning="hive")
out["truth"] = {"rows": d.count_rows(), "schema": {f.name: str(f.type) for f in d.schema}}
d = ds.dataset(f"{root}/truth/anomalies", format="parquet")
out["truth_anomalies"] = {"rows": d.count_rows(), "kinds": sorted(d.to_table()["kind"].to_pylist())}
print(json.dumps(out))
"#;
    let root = dir.path().join("lake");
    let run = std::process::Command::new("python3")
        .args(["-c", script, root.to_str().expect("demo lake test")])
        .output()
        .expect("demo lake test");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&run.stdout).expect("demo lake test");
    for t in &summary.tables {
        assert_eq!(got[&t.table]["rows"], t.rows, "{}", t.table);
    }
    assert_eq!(
        got["truth_anomalies"]["kinds"],
        serde_json::json!([
            "demand_spike",
            "demand_stopped",
            "negative_on_hand",
            "price_error",
            "stale_store"
        ])
    );
    for t in ["sales", "inventory"] {
        assert_eq!(
            got[t]["duck_rows"],
            summary.table(t).expect("demo lake test").rows
        );
        assert_eq!(got[t]["ds_mismatch"], 0);
    }
    let schema = |t: &str| -> HashMap<String, String> {
        serde_json::from_value(got[t]["schema"].clone()).expect("demo lake test")
    };
    let sales = schema("sales");
    for (c, ty) in [
        ("date", "date32[day]"),
        ("store", "string"),
        ("sku", "string"),
        ("category", "string"),
        ("department", "string"),
        ("units", "int64"),
        ("price", "double"),
        ("on_promo", "bool"),
    ] {
        assert_eq!(sales[c], ty, "sales.{c}");
    }
    assert!(sales.contains_key("ds"), "hive partition column");
    let inv = schema("inventory");
    assert_eq!(inv["on_hand"], "int64");
    assert_eq!(inv["on_order"], "int64");
    let products = schema("products");
    assert_eq!(products["discontinued_date"], "date32[day]");
    assert_eq!(products["lead_time_days"], "double");
    assert_eq!(products["review_period_days"], "int64");
    let cal = schema("calendar");
    assert_eq!(cal["weekday"], "int32");
    assert_eq!(cal["holiday"], "string");
    assert_eq!(got["calendar"]["rows"], 90 + 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_object_store_at_the_root() {
    use futures::TryStreamExt;
    use object_store::ObjectStore;

    let store = Arc::new(object_store::memory::InMemory::new());
    let mut opts = DemoOptions::new(Scale::Small, 3, end_date());
    opts.skus = Some(15);
    opts.history_days = Some(60);
    let summary = generate(store.clone(), &Path::default(), &opts)
        .await
        .expect("generate into memory");
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
    let files: u64 = summary.tables.iter().map(|t| t.files).sum();
    assert_eq!(listed.len() as u64, files);
    // Sales and inventory per day, 3 static tables, the ground truth of
    // the last 90 days (here all 60) and the list of injected anomalies.
    assert_eq!(files, 60 + 60 + 3 + 60 + 1);
    let truth = summary.table("truth").expect("truth table");
    assert_eq!(truth.rows, summary.table("sales").expect("sales").rows);
    let bytes: u64 = listed.iter().map(|m| m.size).sum();
    assert_eq!(bytes, summary.total_bytes());
    assert!(
        listed
            .iter()
            .any(|m| m.location.as_ref() == "raw/sales/ds=2025-06-30/part-00000.parquet")
    );
    assert!(
        listed.iter().any(
            |m| m.location.as_ref() == "truth/expected_demand/ds=2025-06-30/part-00000.parquet"
        )
    );
}

/// The nightly job's SQL runs on the demo lake as DataFusion sees it (Hive
/// `ds` partitions as strings), and finds what the demo promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_sql_runs_on_the_demo_lake() {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    let mut opts = DemoOptions::new(Scale::Small, 9, end_date());
    opts.history_days = Some(120);
    let (dir, summary) = build(&opts).await;
    let root = dir.path().join("lake/raw");
    let ctx = SessionContext::new();
    for t in ["sales", "inventory", "products", "calendar", "promo_plan"] {
        let mut read = ParquetReadOptions::default();
        if t == "sales" || t == "inventory" {
            read = read.table_partition_cols(vec![("ds".to_string(), DataType::Utf8)]);
        }
        let path = format!("{}/", root.join(t).display());
        ctx.register_parquet(t, &path, read)
            .await
            .expect("register");
    }
    let ds = end_date().to_string();
    let render = |file: &str| {
        std::fs::read_to_string(format!("{}/sql/{file}", env!("CARGO_MANIFEST_DIR")))
            .expect("nightly SQL file")
            .replace(
                "{{ ds | add_days(-params.history_days) }}",
                &(end_date() - Duration::days(730)).to_string(),
            )
            .replace(
                "{{ ds | add_days(-14) }}",
                &(end_date() - Duration::days(14)).to_string(),
            )
            .replace("{{ ds }}", &ds)
    };
    let rows = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx
                .sql(&sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run");
            batches.iter().map(|b| b.num_rows()).sum::<usize>()
        }
    };
    let sales = rows(render("daily_sales.sql")).await;
    assert_eq!(sales as u64, summary.table("sales").expect("sales").rows);
    let positions = rows(render("inventory_position.sql")).await;
    assert!(positions > 0 && positions <= summary.series);
    let master = rows(render("product_master.sql")).await;
    assert!(master > 0 && master <= summary.skus);
    assert!(rows(render("weekly_category_units.sql")).await >= 3 * 17);
    let stale = anomaly(&summary, AnomalyKind::StaleStore);
    let stale_last = rows(format!(
        "SELECT * FROM inventory WHERE store = '{}' AND ds >= '{}'",
        stale.store, stale.first_date
    ))
    .await;
    assert_eq!(stale_last, 0);
}
