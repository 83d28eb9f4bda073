//! The lake on S3: a moto server on loopback, started by each test.
//! Inputs are read and outputs written through `s3://`; what was written is
//! read back by pyarrow's own S3 client.

use crate::lake_support;

use lake_support::*;
use restock::lake::Lake;

const DAILY_SQL: &str = "\
SELECT s.sku, p.category, SUM(s.qty) AS units, SUM(CAST(s.qty AS DOUBLE) * s.price) AS revenue
FROM sales s
JOIN products p ON s.sku = p.sku
WHERE s.ds = '{{ ds }}'
GROUP BY s.sku, p.category
ORDER BY s.sku
";

const DAG: &str = r#"
id: s3_test
tables:
  sales: { path: raw/sales, partition_by: [ds] }
  products: { path: raw/products }
tasks:
  - id: daily_sales
    kind: sql
    sql: sql/daily_sales.sql
    output: { table: curated/daily_sales, partition_by: ds }
  - id: big
    kind: sql
    sql: sql/big.sql
    output: { table: curated/big, mode: overwrite }
"#;

/// Read a dataset (a folder of Parquet files, Hive partitioned) straight
/// from the moto server with pyarrow.
fn pyarrow_s3(moto: &Moto, path: &str, script_tail: &str) -> serde_json::Value {
    let script = format!(
        r#"
import json, sys
import pyarrow.fs as fs
import pyarrow.dataset as ds
import pyarrow.compute as pc
s3 = fs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                     endpoint_override=sys.argv[1], scheme="http")
d = ds.dataset(sys.argv[2], filesystem=s3, format="parquet", partitioning="hive")
t = d.to_table()
{script_tail}
"#
    );
    let out = python(&script, &[&moto.endpoint(), path]);
    serde_json::from_str(out.trim()).expect("pyarrow json")
}

/// Every key in the bucket, as boto3 lists it.
fn bucket_keys(moto: &Moto, bucket: &str) -> Vec<String> {
    let script = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    keys += [o["Key"] for o in page.get("Contents", [])]
print(json.dumps(sorted(keys)))
"#;
    let out = python(script, &[&moto.endpoint(), bucket]);
    serde_json::from_str(out.trim()).expect("keys json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_task_reads_and_writes_s3() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let lake = Lake::open_with_env("s3://lake/warehouse", moto.env()).expect("s3 lake");
    let (lake, seen) = Counting::wrap(lake);
    for (day, qty) in [("2026-11-25", 9), ("2026-11-26", 4), ("2026-11-27", 2)] {
        put_parquet(
            &lake,
            &format!("raw/sales/ds={day}/part-0.parquet"),
            &sales(&[("A", "s1", qty, 1.5), ("B", "s2", 1, 10.0)]),
        )
        .await;
    }
    put_parquet(
        &lake,
        "raw/products/p.parquet",
        &products(&[("A", "fruit"), ("B", "veg")]),
    )
    .await;
    let project = Project::new(&[("daily_sales.sql", DAILY_SQL), ("big.sql", "SELECT 1 AS x")]);
    let dag = project.dag(DAG);
    let services = services(lake.clone());

    *seen.lock().expect("lock") = Requests::default();
    let out = run_task(&dag, "daily_sales", &services, "2026-11-26")
        .await
        .expect("task on s3");
    assert_eq!(out["rows"], 2);
    assert_eq!(
        out["path"],
        "s3://lake/warehouse/curated/daily_sales/ds=2026-11-26"
    );
    let gets = seen.lock().expect("lock").gets.clone();
    assert!(
        !gets.contains_key("raw/sales/ds=2026-11-25/part-0.parquet"),
        "partition pruning on S3: {gets:?}"
    );
    run_task(&dag, "daily_sales", &services, "2026-11-27")
        .await
        .expect("second day");

    let read = pyarrow_s3(
        &moto,
        "lake/warehouse/curated/daily_sales",
        r#"t = t.sort_by([("ds", "ascending"), ("sku", "ascending")])
print(json.dumps({"rows": t.num_rows, "columns": t.schema.names, "data": t.to_pylist()}, default=str))"#,
    );
    assert_eq!(read["rows"], 4);
    assert_eq!(
        read["columns"],
        serde_json::json!(["sku", "category", "units", "revenue", "ds"])
    );
    let data = read["data"].as_array().expect("rows");
    let row = |i: usize| {
        (
            data[i]["ds"].as_str().expect("ds").to_string(),
            data[i]["sku"].as_str().expect("sku").to_string(),
            data[i]["units"].as_i64().expect("units"),
            data[i]["revenue"].as_f64().expect("revenue"),
        )
    };
    assert_eq!(row(0), ("2026-11-26".into(), "A".into(), 4, 6.0));
    assert_eq!(row(1), ("2026-11-26".into(), "B".into(), 1, 10.0));
    assert_eq!(row(2), ("2026-11-27".into(), "A".into(), 2, 3.0));
    assert_eq!(row(3), ("2026-11-27".into(), "B".into(), 1, 10.0));

    // Only final files in the bucket: staging objects are gone.
    let keys: Vec<String> = bucket_keys(&moto, "lake")
        .into_iter()
        .filter(|k| !k.starts_with("warehouse/raw/"))
        .collect();
    assert_eq!(
        keys,
        vec![
            "warehouse/curated/daily_sales/ds=2026-11-26/part-00000.parquet",
            "warehouse/curated/daily_sales/ds=2026-11-27/part-00000.parquet",
        ]
    );

    // A declared table with nothing there names its S3 location.
    let empty = Project::new(&[("daily_sales.sql", DAILY_SQL), ("big.sql", "SELECT 1 AS x")]);
    let other = Lake::open_with_env("s3://lake/elsewhere", moto.env()).expect("s3 lake");
    let err = run_task(
        &empty.dag(DAG),
        "daily_sales",
        &lake_support::services(other),
        "2026-11-27",
    )
    .await
    .expect_err("no inputs");
    assert_eq!(
        err.to_string(),
        "table `products`: no Parquet files under s3://lake/elsewhere/raw/products/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_output_is_a_multipart_upload() {
    const ROWS: u64 = 2_000_000;
    let moto = Moto::start();
    moto.create_bucket("lake");
    let lake = Lake::open_with_env("s3://lake", moto.env()).expect("s3 lake");
    let (lake, seen) = Counting::wrap(lake);
    let project = Project::new(&[
        ("daily_sales.sql", DAILY_SQL),
        (
            "big.sql",
            "SELECT value AS v, random() AS r FROM generate_series(1, 2000000)",
        ),
    ]);
    let dag = project.dag(DAG);
    let out = run_task(&dag, "big", &services(lake.clone()), "2026-11-27")
        .await
        .expect("big write");
    assert_eq!(out["rows"], ROWS);
    let bytes = out["bytes"].as_u64().expect("bytes");
    assert!(
        bytes > 10 * 1024 * 1024,
        "the output spans several 5+ MiB parts: {bytes} bytes"
    );
    let multipart = seen.lock().expect("lock").multipart.clone();
    assert_eq!(multipart.len(), 1, "{multipart:?}");
    assert!(
        multipart[0].starts_with("_staging/curated/big/_table/"),
        "{multipart:?}"
    );

    let read = pyarrow_s3(
        &moto,
        "lake/curated/big",
        r#"print(json.dumps({"rows": t.num_rows, "sum_v": pc.sum(t["v"]).as_py(),
    "min_r": pc.min(t["r"]).as_py(), "max_r": pc.max(t["r"]).as_py(),
    "files": d.files}))"#,
    );
    assert_eq!(read["rows"], ROWS);
    assert_eq!(read["sum_v"], ROWS * (ROWS + 1) / 2);
    assert!(read["min_r"].as_f64().expect("min") >= 0.0);
    assert!(read["max_r"].as_f64().expect("max") < 1.0);
    assert_eq!(
        read["files"],
        serde_json::json!(["lake/curated/big/part-00000.parquet"])
    );
    assert_eq!(
        bucket_keys(&moto, "lake"),
        vec!["curated/big/part-00000.parquet"]
    );
}

fn report_table(
    cols: Vec<(&str, &[&str])>,
    nums: Vec<(&str, &[f64])>,
) -> arrow::array::RecordBatch {
    use std::sync::Arc;
    let mut all: Vec<(&str, arrow::array::ArrayRef)> = Vec::new();
    for (n, v) in cols {
        all.push((n, Arc::new(arrow::array::StringArray::from(v.to_vec()))));
    }
    for (n, v) in nums {
        all.push((n, Arc::new(arrow::array::Float64Array::from(v.to_vec()))));
    }
    arrow::array::RecordBatch::try_from_iter(all).expect("batch")
}

/// The planners' email reads its tables through the lake's object store:
/// on S3 as on a local folder, the run's partition only, and the history
/// from its newest partition up to the run's date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reads_report_tables_from_s3() {
    let moto = Moto::start();
    moto.create_bucket("mail");
    let lake = Lake::open_with_env("s3://mail/lake", moto.env()).expect("s3 lake");
    for (ds, sku) in [("2026-11-26", "OLD"), ("2026-11-27", "A-1")] {
        put_parquet(
            &lake,
            &format!("anomalies/ds={ds}/part-0.parquet"),
            &report_table(
                vec![
                    ("date", &[ds]),
                    ("store", &["S1"]),
                    ("sku", &[sku]),
                    ("type", &["stockout"]),
                    ("severity", &["critical"]),
                    ("message", &["out of stock"]),
                ],
                vec![("observed", &[0.0]), ("expected", &[12.0])],
            ),
        )
        .await;
    }
    put_parquet(
        &lake,
        "forecasts/ds=2026-11-27/part-0.parquet",
        &report_table(
            vec![
                ("sku", &["A-1", "A-1"]),
                ("store", &["S1", "S1"]),
                ("forecast_date", &["2026-11-28", "2026-11-29"]),
            ],
            vec![
                ("p10", &[8.0, 9.0]),
                ("p50", &[12.0, 13.0]),
                ("p90", &[16.0, 18.0]),
            ],
        ),
    )
    .await;
    // History: an older partition, the run's, and a later one; only the
    // run's is read.
    for (ds, units) in [
        ("2026-11-20", 1.0),
        ("2026-11-27", 7.0),
        ("2026-11-28", 99.0),
    ] {
        put_parquet(
            &lake,
            &format!("curated/daily_sales/ds={ds}/part-0.parquet"),
            &report_table(
                vec![
                    ("sku", &["A-1", "A-1", "Z-9"]),
                    ("store", &["S1", "S1", "S1"]),
                    ("date", &["2026-11-26", "2026-11-27", "2026-11-27"]),
                ],
                vec![("units", &[units, units, 5.0])],
            ),
        )
        .await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let services = std::sync::Arc::new(restock::tasks::Services {
        executors: Default::default(),
        config: restock::config::Config {
            outbox: dir.path().join("outbox"),
            state: dir.path().join("state.db"),
            ..Default::default()
        },
        lake,
    });
    let project = Project::new(&[]);
    let dag = project.dag(
        r#"
id: mail_s3
tasks:
  - id: alert
    kind: email
    to: [planners@example.com]
    anomalies: anomalies
    forecasts: forecasts
    history: curated/daily_sales
"#,
    );
    let out = run_task(&dag, "alert", &services, "2026-11-27")
        .await
        .expect("email task on s3");
    assert_eq!(out["sent"], true, "{out:?}");
    assert_eq!(out["transport"], "outbox");
    let eml = std::fs::read_dir(dir.path().join("outbox"))
        .expect("outbox")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "eml"))
        .expect("an .eml in the outbox");
    let parsed = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/parse_mail.py"
        ))
        .arg(&eml)
        .output()
        .expect("parse mail");
    let v: serde_json::Value = serde_json::from_slice(&parsed.stdout).expect("mail json");
    let parts = v["parts"].as_array().expect("parts");
    let text = parts
        .iter()
        .find(|p| p["content_type"] == "text/plain")
        .and_then(|p| p["text"].as_str())
        .expect("text body");
    assert!(text.contains("A-1"), "{text}");
    assert!(
        !text.contains("OLD"),
        "another date's anomaly leaked in:\n{text}"
    );
    assert!(
        parts.iter().any(|p| p["content_type"] == "image/png"),
        "the chart of A-1"
    );
}
