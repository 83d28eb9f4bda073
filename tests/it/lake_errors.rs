//! Bad inputs to the `sql` kind: each gives an error that names what is
//! wrong (file, position, table, lake path) and writes nothing visible.

use crate::lake_support;

use lake_support::*;
use object_store::ObjectStoreExt;
use restock::lake::Lake;
use restock::tasks::TaskError;

fn dag_yaml(sql: &str) -> String {
    format!(
        r#"
id: errors
tables:
  sales: {{ path: raw/sales, partition_by: [ds] }}
  products: {{ path: raw/products }}
tasks:
  - id: t
    kind: sql
    sql: {sql}
    output:
      table: curated/out
      partition_by: ds
"#
    )
}

async fn seeded() -> Lake {
    let lake = Lake::memory();
    put_parquet(
        &lake,
        "raw/sales/ds=2026-11-26/part-0.parquet",
        &sales(&[("A", "s1", 1, 1.0)]),
    )
    .await;
    put_parquet(
        &lake,
        "raw/sales/ds=2026-11-27/part-0.parquet",
        &sales(&[("A", "s1", 2, 1.0)]),
    )
    .await;
    lake
}

/// Run task `t` for 2026-11-27 expecting a fatal error; check that the
/// previous output and nothing else is visible afterwards.
async fn fails(project: &Project, lake: &Lake, sql_file: &str) -> String {
    // A previous good output that a failed run must leave alone.
    put_parquet(
        lake,
        "curated/out/ds=2026-11-27/part-00000.parquet",
        &products(&[("old", "row")]),
    )
    .await;
    let before = keys(lake).await;
    // Validation already rejects most of these files; the run-time checks
    // cover a file edited after the DAG was compiled, so compile against a
    // good query and put the bad one back before the run.
    let path = project.path().join(sql_file);
    let bad = std::fs::read_to_string(&path).ok();
    if bad.is_some() {
        std::fs::write(&path, "SELECT 1 AS one\n").expect("write good sql");
    }
    let dag = project.dag(&dag_yaml(sql_file));
    if let Some(text) = bad {
        std::fs::write(&path, text).expect("restore sql");
    }
    let services = services(lake.clone());
    let err = run_task(&dag, "t", &services, "2026-11-27")
        .await
        .expect_err("the task must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(err, TaskError::Fatal(_)),
        "bad input is not retried: {err:?}"
    );
    assert_eq!(keys(lake).await, before, "a failed run changes nothing");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_error_names_file_line_and_column() {
    let project = Project::new(&[("bad.sql", "SELECT sku,\n  SUM(qty) AS units\nFROMM sales\n")]);
    let lake = seeded().await;
    let msg = fails(&project, &lake, "sql/bad.sql").await;
    let file = project.path().join("sql/bad.sql");
    assert!(
        msg.starts_with(&format!("{}:3:1: ", file.display())),
        "position of `FROMM`: {msg}"
    );
    assert!(msg.contains("FROMM"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_column_names_its_position() {
    let project = Project::new(&[("bad.sql", "SELECT sku,\n       nope\nFROM sales\n")]);
    let lake = seeded().await;
    let msg = fails(&project, &lake, "sql/bad.sql").await;
    let file = project.path().join("sql/bad.sql");
    assert!(
        msg.starts_with(&format!("{}:2:8: ", file.display())),
        "position of `nope`: {msg}"
    );
    assert!(msg.contains("nope"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_table_is_named_with_the_declared_ones() {
    let project = Project::new(&[("bad.sql", "SELECT *\nFROM salez\n")]);
    let lake = seeded().await;
    let msg = fails(&project, &lake, "sql/bad.sql").await;
    let file = project.path().join("sql/bad.sql");
    assert!(
        msg.starts_with(&format!("{}:2:6: unknown table `salez`", file.display())),
        "{msg}"
    );
    assert!(msg.contains("declared tables: products, sales"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_table_without_files_names_the_lake_path() {
    let project = Project::new(&[("q.sql", "SELECT p.sku FROM products p\n")]);
    let lake = seeded().await;
    let msg = fails(&project, &lake, "sql/q.sql").await;
    assert_eq!(
        msg,
        "table `products`: no Parquet files under memory://raw/products/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_parquet_file_is_named() {
    // The newest file (read for the schema) is not Parquet.
    let project = Project::new(&[("q.sql", "SELECT sku FROM sales WHERE ds = '{{ ds }}'\n")]);
    let lake = seeded().await;
    lake.store()
        .put(
            &object_store::path::Path::from("raw/sales/ds=2026-11-28/part-0.parquet"),
            b"this is not parquet at all".to_vec().into(),
        )
        .await
        .expect("put");
    let msg = fails(&project, &lake, "sql/q.sql").await;
    assert!(
        msg.starts_with(
            "table `sales`: memory://raw/sales/ds=2026-11-28/part-0.parquet is not a readable Parquet file"
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_file_in_the_scanned_partition_is_named() {
    // The schema file is fine; the partition the query scans is damaged
    // (a real file cut short).
    let project = Project::new(&[("q.sql", "SELECT sku FROM sales WHERE ds = '{{ ds }}'\n")]);
    let lake = seeded().await;
    let good = lake
        .store()
        .get(&object_store::path::Path::from(
            "raw/sales/ds=2026-11-26/part-0.parquet",
        ))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    lake.store()
        .put(
            &object_store::path::Path::from("raw/sales/ds=2026-11-27/part-0.parquet"),
            good.slice(0..good.len() / 2).into(),
        )
        .await
        .expect("put");
    put_parquet(
        &lake,
        "raw/sales/ds=2026-11-29/part-0.parquet",
        &sales(&[("Z", "s9", 1, 1.0)]),
    )
    .await;
    let msg = fails(&project, &lake, "sql/q.sql").await;
    assert!(
        msg.starts_with(
            "table `sales`: memory://raw/sales/ds=2026-11-27/part-0.parquet is not a readable Parquet file"
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_file_in_an_older_partition_is_named() {
    let project = Project::new(&[("q.sql", "SELECT sku FROM sales WHERE ds = '{{ ds }}'\n")]);
    let lake = seeded().await;
    lake.store()
        .put(
            &object_store::path::Path::from("raw/sales/ds=2026-11-20/part-0.parquet"),
            Vec::new().into(),
        )
        .await
        .expect("put");
    let msg = fails(&project, &lake, "sql/q.sql").await;
    assert_eq!(
        msg,
        "table `sales`: memory://raw/sales/ds=2026-11-20/part-0.parquet is not a readable \
         Parquet file: the file is empty (0 bytes)"
    );
    // `fails` has checked that the lake is as it was: nothing written.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_file_removed_after_compile() {
    let project = Project::new(&[("gone.sql", "SELECT 1 AS one\n")]);
    let lake = seeded().await;
    let dag = project.dag(&dag_yaml("sql/gone.sql"));
    std::fs::remove_file(project.path().join("sql/gone.sql")).expect("rm");
    let err = run_task(&dag, "t", &services(lake.clone()), "2026-11-27")
        .await
        .expect_err("fails");
    assert!(matches!(err, TaskError::Fatal(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "SQL file `{}` does not exist",
            project.path().join("sql/gone.sql").display()
        )
    );
    assert!(
        visible_keys(&lake)
            .await
            .iter()
            .all(|k| k.starts_with("raw/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_other_than_queries_are_refused() {
    let project = Project::new(&[("ddl.sql", "CREATE TABLE x AS SELECT 1 AS one\n")]);
    let lake = seeded().await;
    let msg = fails(&project, &lake, "sql/ddl.sql").await;
    assert!(msg.contains("runs one query"), "{msg}");
}

#[test]
fn validation_parses_the_query_and_checks_its_tables() {
    let cases = [
        ("SELECT sku,\n  SUM(qty) AS units\nFROMM sales\n", ":3:1: "),
        (
            "-- salez is a typo\nSELECT *\nFROM salez\n",
            ":3:6: unknown table `salez` (declared tables: products, sales); declare it under `tables:`",
        ),
        (
            "CREATE TABLE x AS SELECT 1 AS one\n",
            ": a `sql` task runs one query",
        ),
    ];
    for (sql, want) in cases {
        let project = Project::new(&[("bad.sql", sql)]);
        let errors = project.dag_errors(&dag_yaml("sql/bad.sql"));
        let file = project.path().join("sql/bad.sql");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(&format!("tasks[0].sql: {}{want}", file.display())),
            "{sql}: {errors:?}"
        );
    }
    // CTE names and table functions need no declaration; a table named by
    // an upstream output (quoted) is left to run time, but the task it
    // names must be upstream.
    let project = Project::new(&[
        (
            "cte.sql",
            "WITH recent AS (SELECT sku FROM sales WHERE ds = '{{ ds }}')\nSELECT r.sku FROM recent r, generate_series(1, 2)\n",
        ),
        (
            "up.sql",
            "SELECT * FROM {{ tasks.x.outputs.table | sql_ident }}\n",
        ),
    ]);
    project.dag(&dag_yaml("sql/cte.sql"));
    let errors = project.dag_errors(&dag_yaml("sql/up.sql"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("tasks[0].sql: the template refers to unknown task `x`"),
        "{errors:?}"
    );
    let with_upstream = dag_yaml("sql/up.sql")
        .replace("tasks:\n", "tasks:\n  - id: x\n    kind: empty\n")
        + "    depends_on: [x]\n";
    project.dag(&with_upstream);
}

#[test]
fn compile_errors_are_located() {
    let project = Project::new(&[
        ("ok.sql", "SELECT 1 AS one\n"),
        ("tpl.sql", "SELECT {{ ds \n"),
    ]);
    let errors = project.dag_errors(
        r#"id: compile
tables:
  Sales: { path: /raw/sales }
  stock: { path: raw/stock, partition_by: [ds, ds], format: csv }
  dup: { path: raw/stock }
  extra: { path: raw/x, partiton_by: [ds] }
tasks:
  - id: missing
    kind: sql
    sql: sql/nope.sql
    output: { table: curated/a }
  - id: badmode
    kind: sql
    sql: sql/ok.sql
    output: { table: _hidden/a, mode: overwrite_partition }
  - id: badtpl
    kind: sql
    sql: sql/tpl.sql
    output: { table: curated/b, partition_by: Day }
"#,
    );
    assert_eq!(
        errors.len(),
        11,
        "one error per problem:\n{}",
        errors.join("\n")
    );
    let text = errors.join("\n");
    let file = project.path().join("jobs/test.yaml");
    let f = file.display();
    for want in [
        format!("{f}:3:3: tables.Sales: invalid table name `Sales`"),
        format!("{f}:3:12: tables.Sales.path: table path `/raw/sales` must be relative"),
        format!("{f}:4:48: tables.stock.partition_by[1]: partition column `ds` is listed twice"),
        format!("{f}:4:53: tables.stock.format: unsupported table format `csv`"),
        format!("{f}:5:10: tables.dup.path: path `raw/stock` is already the path of table `stock`"),
        format!(
            "{f}:6:25: tables.extra.partiton_by: unknown field `partiton_by`, did you mean `partition_by`?"
        ),
        format!(
            "{f}:10:5: tasks[0].sql: file `{}` does not exist",
            project.path().join("sql/nope.sql").display()
        ),
        format!(
            "{f}:15:15: tasks[1].output.table: table path `_hidden/a`: segment `_hidden` starts with `_`"
        ),
        format!(
            "{f}:15:33: tasks[1].output.mode: mode `overwrite_partition` needs `output.partition_by`"
        ),
        format!(
            "{f}:18:5: tasks[2].sql: `{}`: template does not parse",
            project.path().join("sql/tpl.sql").display()
        ),
        format!("{f}:19:33: tasks[2].output.partition_by: invalid partition column name `Day`"),
    ] {
        assert!(text.contains(&want), "missing `{want}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undefined_template_variable_names_the_file() {
    let project = Project::new(&[(
        "t.sql",
        "SELECT sku FROM sales WHERE qty > {{ params.nope }}\n",
    )]);
    let lake = seeded().await;
    let msg = fails(&project, &lake, "sql/t.sql").await;
    let file = project.path().join("sql/t.sql");
    assert!(
        msg.starts_with(&format!("{}: template failed to render", file.display())),
        "{msg}"
    );
    assert!(msg.contains("undefined"), "{msg}");
}

/// Sales rows whose `qty` column is text (a partition written by another
/// tool after a schema change).
fn sales_with_text_qty(rows: &[(&str, &str, &str, f64)]) -> arrow::array::RecordBatch {
    use arrow::array::{ArrayRef, Float64Array, StringArray};
    use std::sync::Arc;
    let sku: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let store: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    let qty: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)));
    let price: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3)));
    arrow::array::RecordBatch::try_from_iter([
        ("sku", sku),
        ("store", store),
        ("qty", qty),
        ("price", price),
    ])
    .expect("batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_column_changed_type_names_the_file_and_the_column() {
    let project = Project::new(&[(
        "q.sql",
        "SELECT sku, SUM(qty) AS units FROM sales WHERE ds <= '{{ ds }}' GROUP BY sku\n",
    )]);
    let lake = seeded().await;
    put_parquet(
        &lake,
        "raw/sales/ds=2026-11-25/part-0.parquet",
        &sales_with_text_qty(&[("A", "s1", "two", 1.0)]),
    )
    .await;
    let msg = fails(&project, &lake, "sql/q.sql").await;
    assert!(
        msg.contains("memory://raw/sales/ds=2026-11-25/part-0.parquet")
            && msg.contains("column `qty`")
            && msg.contains("Utf8")
            && msg.contains("Int64"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_file_in_a_table_folder_is_named() {
    let project = Project::new(&[("q.sql", "SELECT sku FROM sales WHERE ds = '{{ ds }}'\n")]);
    let lake = seeded().await;
    // Hidden entries (`_SUCCESS`, `.crc`) are skipped as readers do; a CSV
    // dropped beside the Parquet files is a mistake worth naming.
    for (key, body) in [
        ("raw/sales/_SUCCESS", ""),
        ("raw/sales/ds=2026-11-27/.part-0.parquet.crc", "x"),
        ("raw/sales/ds=2026-11-27/extra.csv", "sku,qty\nA,1\n"),
    ] {
        lake.store()
            .put(
                &object_store::path::Path::from(key),
                body.as_bytes().to_vec().into(),
            )
            .await
            .expect("put");
    }
    let msg = fails(&project, &lake, "sql/q.sql").await;
    assert!(
        msg.contains("memory://raw/sales/ds=2026-11-27/extra.csv is not a Parquet file"),
        "{msg}"
    );
}
