//! The `sql` kind on a local-folder lake and on `memory://`: results read
//! back by pyarrow and DuckDB, the write modes, and partition pruning.

use crate::lake_support;

use lake_support::*;
use restock::lake::Lake;

const DAILY_SQL: &str = "\
SELECT s.sku, p.category, SUM(s.qty) AS units, SUM(CAST(s.qty AS DOUBLE) * s.price) AS revenue
FROM sales s
JOIN products p ON s.sku = p.sku
WHERE s.ds = '{{ ds }}' AND s.qty >= {{ params.min_qty }}
GROUP BY s.sku, p.category
ORDER BY s.sku
";

fn dag_yaml(mode: &str) -> String {
    format!(
        r#"
id: lake_test
params:
  min_qty: 1
tables:
  sales: {{ path: raw/sales, partition_by: [ds] }}
  products: {{ path: raw/products }}
tasks:
  - id: daily_sales
    kind: sql
    sql: sql/daily_sales.sql
    output:
      table: curated/daily_sales
      partition_by: ds
      mode: {mode}
"#
    )
}

/// Two days of sales and a product list.
async fn seed(lake: &Lake) {
    put_parquet(
        lake,
        "raw/sales/ds=2026-11-27/part-0.parquet",
        &sales(&[
            ("A", "s1", 2, 1.5),
            ("A", "s2", 3, 1.5),
            ("B", "s1", 1, 10.0),
            ("C", "s1", 0, 4.0),
        ]),
    )
    .await;
    put_parquet(
        lake,
        "raw/sales/ds=2026-11-26/part-0.parquet",
        &sales(&[("A", "s1", 100, 1.5), ("C", "s2", 7, 4.0)]),
    )
    .await;
    put_parquet(
        lake,
        "raw/products/products.parquet",
        &products(&[("A", "fruit"), ("B", "veg"), ("C", "dairy")]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_lake_output_is_read_back_by_pyarrow_and_duckdb() {
    let project = Project::new(&[("daily_sales.sql", DAILY_SQL)]);
    let lake_dir = project.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().expect("utf8")).expect("open lake");
    seed(&lake).await;
    let services = services(lake.clone());
    let dag = project.dag(&dag_yaml("overwrite_partition"));

    let out = run_task(&dag, "daily_sales", &services, "2026-11-27")
        .await
        .expect("task succeeds");
    let file = lake_dir.join("curated/daily_sales/ds=2026-11-27/part-00000.parquet");
    assert_eq!(out["rows"], 2);
    assert_eq!(out["files"], 1);
    assert_eq!(
        out["path"],
        format!("{}/curated/daily_sales/ds=2026-11-27", lake.url())
    );
    let size = std::fs::metadata(&file).expect("published file").len();
    assert_eq!(out["bytes"], size);

    // Values computed by hand: A = 2*1.5 + 3*1.5, B = 1*10; C has qty 0 < min_qty.
    let read = pyarrow_read(&file);
    assert_eq!(read["rows"], 2);
    assert_eq!(
        read["schema"],
        serde_json::json!([
            "sku: string",
            "category: string",
            "units: int64",
            "revenue: double"
        ])
    );
    assert_eq!(
        read["data"],
        serde_json::json!([
            {"sku": "A", "category": "fruit", "units": 5, "revenue": 7.5},
            {"sku": "B", "category": "veg", "units": 1, "revenue": 10.0},
        ])
    );
    assert_eq!(read["compression"], serde_json::json!(["ZSTD"]));
    assert_eq!(read["statistics"], true);

    // A second day lands in its own partition; a rerun of the first
    // replaces it (still one file).
    run_task(&dag, "daily_sales", &services, "2026-11-26")
        .await
        .expect("second day");
    run_task(&dag, "daily_sales", &services, "2026-11-27")
        .await
        .expect("rerun");
    assert_eq!(
        local_files(&lake_dir.join("curated")),
        vec![
            "daily_sales/ds=2026-11-26/part-00000.parquet",
            "daily_sales/ds=2026-11-27/part-00000.parquet",
        ]
    );
    // Nothing is left in the staging area after successful writes.
    assert_eq!(
        local_files(&lake_dir.join("_staging")),
        Vec::<String>::new()
    );

    // DuckDB reads the table with Hive partitioning.
    let glob = lake_dir.join("curated/daily_sales/*/*.parquet");
    let rows = duckdb(&format!(
        "SELECT ds, count(*), sum(units), sum(revenue) FROM read_parquet('{}', hive_partitioning = true) GROUP BY ds ORDER BY ds",
        glob.display()
    ));
    assert_eq!(
        rows,
        serde_json::json!([["2026-11-26", 2, 107, 178.0], ["2026-11-27", 2, 6, 17.5]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_modes_append_and_overwrite() {
    let project = Project::new(&[("daily_sales.sql", DAILY_SQL)]);
    let lake = Lake::memory();
    seed(&lake).await;
    let services = services(lake.clone());

    let append = project.dag(&dag_yaml("append"));
    run_task(&append, "daily_sales", &services, "2026-11-27")
        .await
        .expect("append 1");
    run_task(&append, "daily_sales", &services, "2026-11-27")
        .await
        .expect("append 2");
    let files: Vec<String> = visible_keys(&lake)
        .await
        .into_iter()
        .filter(|k| k.starts_with("curated/"))
        .collect();
    assert_eq!(files.len(), 2, "append adds a file per run: {files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("curated/daily_sales/ds=2026-11-27/part-"))
    );

    // overwrite_partition replaces both appended files with one.
    let over_part = project.dag(&dag_yaml("overwrite_partition"));
    run_task(&over_part, "daily_sales", &services, "2026-11-27")
        .await
        .expect("overwrite partition");
    run_task(&over_part, "daily_sales", &services, "2026-11-26")
        .await
        .expect("other partition");
    let files: Vec<String> = visible_keys(&lake)
        .await
        .into_iter()
        .filter(|k| k.starts_with("curated/"))
        .collect();
    assert_eq!(
        files,
        vec![
            "curated/daily_sales/ds=2026-11-26/part-00000.parquet",
            "curated/daily_sales/ds=2026-11-27/part-00000.parquet",
        ]
    );

    // overwrite replaces the whole table.
    let over = project.dag(&dag_yaml("overwrite"));
    run_task(&over, "daily_sales", &services, "2026-11-27")
        .await
        .expect("overwrite");
    let files: Vec<String> = visible_keys(&lake)
        .await
        .into_iter()
        .filter(|k| k.starts_with("curated/"))
        .collect();
    assert_eq!(
        files,
        vec!["curated/daily_sales/ds=2026-11-27/part-00000.parquet"]
    );

    // The memory lake's file is real Parquet too.
    let local = project.path().join("copy.parquet");
    fetch(&lake, &files[0], &local).await;
    let read = pyarrow_read(&local);
    assert_eq!(read["rows"], 2);
    assert_eq!(read["data"][0]["units"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_for_one_day_reads_only_that_partition() {
    let project = Project::new(&[(
        "one_day.sql",
        "SELECT sku, SUM(qty) AS units FROM sales WHERE ds = '{{ ds }}' GROUP BY sku ORDER BY sku",
    )]);
    let (lake, seen) = Counting::wrap(Lake::memory());
    for day in ["2026-11-25", "2026-11-26", "2026-11-27"] {
        put_parquet(
            &lake,
            &format!("raw/sales/ds={day}/part-0.parquet"),
            &sales(&[("A", "s1", 1, 1.0), ("B", "s1", 2, 1.0)]),
        )
        .await;
    }
    let dag = project.dag(
        r#"
id: pruning
tables:
  sales: { path: raw/sales, partition_by: [ds] }
tasks:
  - id: one_day
    kind: sql
    sql: sql/one_day.sql
    output: { table: curated/one_day, partition_by: ds }
"#,
    );
    let services = services(lake.clone());
    *seen.lock().expect("lock") = Requests::default();
    let out = run_task(&dag, "one_day", &services, "2026-11-26")
        .await
        .expect("task");
    assert_eq!(out["rows"], 2);
    let gets = seen.lock().expect("lock").gets.clone();
    let sales_reads: Vec<&String> = gets
        .keys()
        .filter(|k| k.starts_with("raw/sales/"))
        .collect();
    // The schema comes from the newest file's footer (ds=2026-11-27); the
    // scan itself touches only the requested day, and the oldest day is
    // never read at all.
    assert!(
        sales_reads.contains(&&"raw/sales/ds=2026-11-26/part-0.parquet".to_string()),
        "the requested partition is read: {gets:?}"
    );
    assert_eq!(
        gets.get("raw/sales/ds=2026-11-25/part-0.parquet"),
        None,
        "an unrequested partition is read: {gets:?}"
    );
    assert!(
        gets.get("raw/sales/ds=2026-11-27/part-0.parquet")
            .copied()
            .unwrap_or(0)
            <= 1,
        "the newest partition is read only for its schema: {gets:?}"
    );

    // The physical plan of the same query lists only that partition's file.
    let ctx = restock::lake::session::context(&lake);
    for t in dag.tables.values() {
        restock::lake::session::register_table(&ctx, &lake, t)
            .await
            .expect("register");
    }
    let df = ctx
        .sql("SELECT sku, SUM(qty) FROM sales WHERE ds = '2026-11-26' GROUP BY sku")
        .await
        .expect("plan");
    let plan = df.create_physical_plan().await.expect("physical plan");
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(shown.contains("ds=2026-11-26/part-0.parquet"), "{shown}");
    assert!(!shown.contains("ds=2026-11-25"), "{shown}");
    assert!(!shown.contains("ds=2026-11-27"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restock_run_publishes_and_passes_outputs_downstream() {
    let project = Project::new(&[("daily_sales.sql", DAILY_SQL)]);
    let lake_dir = project.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().expect("utf8")).expect("open lake");
    seed(&lake).await;
    project.write(
        "jobs/daily.yaml",
        &format!(
            "{}{}",
            dag_yaml("overwrite_partition").replace("id: lake_test", "id: daily"),
            r#"
  - id: report
    kind: command
    depends_on: [daily_sales]
    when: "tasks.daily_sales.outputs.rows > 0"
    command: "echo {{ tasks.daily_sales.outputs.rows }} {{ tasks.daily_sales.outputs.path }} > report.txt"
"#
        ),
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_restock"))
        .current_dir(project.path())
        .env_remove("RESTOCK_CONFIG")
        .env("RESTOCK_LAKE", &lake_dir)
        .args(["run", "daily", "--date", "2026-11-27"])
        .output()
        .expect("run restock");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    let report = std::fs::read_to_string(project.path().join("report.txt")).expect("report");
    assert_eq!(
        report.trim(),
        format!("2 {}/curated/daily_sales/ds=2026-11-27", lake.url())
    );
    let read = pyarrow_read(&lake_dir.join("curated/daily_sales/ds=2026-11-27/part-00000.parquet"));
    assert_eq!(read["rows"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_column_stays_in_the_folder_and_empty_results_are_valid_files() {
    let project = Project::new(&[
        (
            "copy.sql",
            "SELECT * FROM sales WHERE ds = '{{ ds }}' ORDER BY store",
        ),
        ("none.sql", "SELECT sku, qty FROM sales WHERE qty > 1000"),
    ]);
    let lake_dir = project.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().expect("utf8")).expect("open lake");
    seed(&lake).await;
    let dag = project.dag(
        r#"
id: shapes
tables:
  sales: { path: raw/sales, partition_by: [ds] }
tasks:
  - id: copy
    kind: sql
    sql: sql/copy.sql
    output: { table: curated/copy, partition_by: ds }
  - id: none
    kind: sql
    sql: sql/none.sql
    output: { table: curated/none }
"#,
    );
    let services = services(lake);
    let out = run_task(&dag, "copy", &services, "2026-11-26")
        .await
        .expect("copy");
    assert_eq!(out["rows"], 2);
    let read = pyarrow_read(&lake_dir.join("curated/copy/ds=2026-11-26/part-00000.parquet"));
    assert_eq!(
        read["schema"],
        serde_json::json!([
            "sku: string",
            "store: string",
            "qty: int64",
            "price: double"
        ]),
        "`ds` is in the folder name, not the file"
    );
    let rows = duckdb(&format!(
        "SELECT ds, sku, qty FROM read_parquet('{}/*/*.parquet', hive_partitioning = true) ORDER BY store",
        lake_dir.join("curated/copy").display()
    ));
    assert_eq!(
        rows,
        serde_json::json!([["2026-11-26", "A", 100], ["2026-11-26", "C", 7]])
    );

    let out = run_task(&dag, "none", &services, "2026-11-26")
        .await
        .expect("empty result");
    assert_eq!(out["rows"], 0);
    let read = pyarrow_read(&lake_dir.join("curated/none/part-00000.parquet"));
    assert_eq!(read["rows"], 0);
    assert_eq!(
        read["schema"],
        serde_json::json!(["sku: string", "qty: int64"])
    );
}

/// Sum of `qty` over the whole sales table, in a fresh session (as every
/// task gets), with the reads each file took.
async fn total_qty(
    lake: &Lake,
    seen: &std::sync::Mutex<Requests>,
) -> (i64, std::collections::BTreeMap<String, usize>) {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    *seen.lock().expect("lock") = Requests::default();
    let ctx = restock::lake::session::context(lake);
    let table = restock::dag::model::Table {
        name: "sales".into(),
        path: "raw/sales".into(),
        partition_by: vec!["ds".into()],
        columns: None,
    };
    restock::lake::session::register_table(&ctx, lake, &table)
        .await
        .expect("register");
    let batches = ctx
        .sql("SELECT SUM(qty) AS q FROM sales")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let total = batches[0].column(0).as_primitive::<Int64Type>().value(0);
    let gets = seen.lock().expect("lock").gets.clone();
    (total, gets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footers_are_read_once_per_process_and_a_republished_file_is_read_afresh() {
    let (lake, seen) = Counting::wrap(Lake::memory());
    let days = ["2026-11-25", "2026-11-26", "2026-11-27"];
    for day in days {
        put_parquet(
            &lake,
            &format!("raw/sales/ds={day}/part-0.parquet"),
            &sales(&[("A", "s1", 1, 1.0), ("B", "s1", 2, 1.0)]),
        )
        .await;
    }
    let (first_total, first) = total_qty(&lake, &seen).await;
    assert_eq!(first_total, 9);
    let (second_total, second) = total_qty(&lake, &seen).await;
    assert_eq!(second_total, 9);
    // The oldest day's file is only scanned (the newest is also read by
    // registration for its schema): the second session takes its footer
    // from the lake's cache and reads only the data.
    let oldest = "raw/sales/ds=2026-11-25/part-0.parquet";
    let (f, s) = (first[oldest], second[oldest]);
    assert!(
        s < f,
        "second session read {oldest} {s} times, first {f}: {first:?} / {second:?}"
    );

    // A republished partition (new content, new size) is read anew, not
    // served from the stale footer.
    put_parquet(
        &lake,
        "raw/sales/ds=2026-11-26/part-0.parquet",
        &sales(&[
            ("A", "s1", 10, 1.0),
            ("B", "s1", 20, 1.0),
            ("C", "s1", 30, 1.0),
        ]),
    )
    .await;
    let (third_total, _) = total_qty(&lake, &seen).await;
    assert_eq!(third_total, 1 + 2 + 60 + 1 + 2);
}
