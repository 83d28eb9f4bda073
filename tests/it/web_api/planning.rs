//! The planning pages and their API over a real lake: the demo lake with
//! the main job run for two nights, read back independently with pyarrow
//! (tests/support/planning_truth.py) to check what the server says.

use serde_json::Value;

use crate::common::Project;
use crate::web_support::{Client, Resp, Server, demo_project};

const DAG: &str = "nightly_inventory";
const NIGHTS: [&str; 2] = ["2026-11-26", "2026-11-27"];

pub fn python(script: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut py = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = py.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Put markup into the first anomaly's reason, as a broken feed might.
fn inject_markup(p: &Project) {
    let file = p.path().join(format!(
        "lake/anomalies/ds={}/part-00000.parquet",
        NIGHTS[1]
    ));
    let code = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         t = pq.read_table({f:?})\n\
         r = t.column('reason').to_pylist()\n\
         r[0] = '<script>alert(1)</script>'\n\
         i = t.schema.get_field_index('reason')\n\
         pq.write_table(t.set_column(i, t.schema.field(i), pa.array(r, t.schema.field(i).type)), {f:?})\n",
        f = file.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &code])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn truth(p: &Project) -> Value {
    let lake = p.path().join("lake");
    let out = python(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/planning_truth.py"
        ),
        &[&lake.display().to_string(), NIGHTS[1], NIGHTS[0]],
        "",
    );
    serde_json::from_str(&out).expect("truth JSON")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

async fn get_json(c: &mut Client, s: &Server, path: &str) -> Value {
    let r = c.get(&s.url(path)).await;
    assert_eq!(r.status, 200, "{path}: {r:?}\n{}", s.log_text());
    r.json()
}

async fn check_summary(c: &mut Client, s: &Server, p: &Project, t: &Value) {
    let j = get_json(c, s, &format!("/api/v1/dags/{DAG}/planning")).await;
    let run = p.query(&format!(
        "SELECT run_id FROM dag_runs WHERE dag_id = '{DAG}' AND logical_date LIKE '{}%'",
        NIGHTS[1]
    ));
    assert_eq!(j["ds"], NIGHTS[1], "{j}");
    assert_eq!(j["dag_run_id"], run[0][0], "{j}");
    assert_eq!(j["anomalies"], t["anomalies"], "{j}");
    assert_eq!(j["by_severity"], t["by_severity"], "{j}");
    assert_eq!(j["plan"]["order_lines"], t["order_lines"], "{j}");
    assert_eq!(j["plan"]["held_lines"], t["held_lines"], "{j}");
    let value = j["plan"]["total_order_value"].as_f64().expect("value");
    assert!(
        close(value, t["order_value"].as_f64().expect("v")),
        "{j} {t}"
    );
    let held = j["plan"]["held_order_value"].as_f64().expect("held");
    assert!(close(held, t["held_value"].as_f64().expect("v")), "{j} {t}");
}

async fn check_anomalies(c: &mut Client, s: &Server, t: &Value) {
    let base = format!("/api/v1/dags/{DAG}/planning/anomalies");
    let j = get_json(c, s, &format!("{base}?limit=5&offset=1")).await;
    assert_eq!(j["total_entries"], t["anomalies"], "{j}");
    let ranked = t["ranked"].as_array().expect("ranked");
    let got: Vec<Value> = j["anomalies"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|a| serde_json::json!([a["rank"], a["store"], a["sku"]]))
        .collect();
    let want: Vec<Value> = ranked.iter().skip(1).take(5).cloned().collect();
    assert_eq!(got, want, "worklist order");
    for (sev, n) in t["by_severity"].as_object().expect("sev") {
        let j = get_json(c, s, &format!("{base}?severity={sev}&limit=100")).await;
        assert_eq!(&j["total_entries"], n, "{sev}: {j}");
        assert!(
            j["anomalies"]
                .as_array()
                .expect("rows")
                .iter()
                .all(|a| a["severity"] == *sev)
        );
    }
    let (kind, n) = t["by_type"]
        .as_object()
        .expect("types")
        .iter()
        .next()
        .expect("a type");
    let j = get_json(c, s, &format!("{base}?type={kind}")).await;
    assert_eq!(&j["total_entries"], n, "{kind}: {j}");
    let first = &j["anomalies"][0];
    for key in [
        "reason",
        "money_at_risk",
        "status",
        "first_seen",
        "money_kind",
    ] {
        assert!(!first[key].is_null(), "{key} missing: {first}");
    }
    let all = get_json(c, s, &format!("{base}?limit=100000")).await;
    let rows = all["anomalies"].as_array().expect("rows").len();
    assert_eq!(rows, t["anomalies"].as_u64().expect("n").min(100) as usize);
    c.get(&s.url(&format!("{base}?type=no_such_type")))
        .await
        .assert_problem(400);
}

async fn check_lines(c: &mut Client, s: &Server, t: &Value) {
    let j = get_json(
        c,
        s,
        &format!("/api/v1/dags/{DAG}/planning/orders?limit=100"),
    )
    .await;
    assert_eq!(j["total_entries"], t["order_lines"], "{j}");
    let values: Vec<f64> = j["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            assert_eq!(o["status"], "order", "{o}");
            assert!(o["reason"].as_str().is_some_and(|r| !r.is_empty()), "{o}");
            o["order_value"].as_f64().expect("value")
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {values:?}"
    );
    let j = get_json(c, s, &format!("/api/v1/dags/{DAG}/planning/held")).await;
    assert_eq!(j["total_entries"], t["held_lines"], "{j}");
    for h in j["held"].as_array().expect("held") {
        assert_eq!(h["status"], "held", "{h}");
        assert!(
            h["reason"].as_str().is_some_and(|r| r.starts_with("held")),
            "{h}"
        );
    }
}

/// The SKU of the worklist's first anomaly: API and page.
async fn check_sku(c: &mut Client, s: &Server, t: &Value) {
    let first = t["ranked"]
        .as_array()
        .expect("ranked")
        .iter()
        .find(|a| !a[2].is_null())
        .expect("an anomaly of one series");
    let (store, sku) = (
        first[1].as_str().expect("store"),
        first[2].as_str().expect("sku"),
    );
    let path = format!("planning/skus/{store}/{sku}");
    let j = get_json(c, s, &format!("/api/v1/dags/{DAG}/{path}")).await;
    let steps = &t["forecast_steps"][format!("{store}/{sku}")];
    assert_eq!(
        j["forecast"].as_array().expect("forecast").len() as u64,
        steps.as_u64().unwrap_or(0)
    );
    let history = j["history"].as_array().expect("history");
    assert!((1..=56).contains(&history.len()), "{j}");
    let dates: Vec<&str> = history
        .iter()
        .map(|h| h["date"].as_str().expect("date"))
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] < w[1]) && dates.last() <= Some(&NIGHTS[1]),
        "{dates:?}"
    );
    for f in j["forecast"].as_array().expect("forecast") {
        let (lo, mid, hi) = (f["p10"].as_f64(), f["p50"].as_f64(), f["p90"].as_f64());
        assert!(lo <= mid && mid <= hi, "band {f}");
    }
    assert!(
        j["anomalies"]
            .as_array()
            .expect("anomalies")
            .iter()
            .any(|a| a["rank"] == first[0])
    );
    let page = c.get(&s.url(&format!("/dags/{DAG}/{path}"))).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("<svg ") && page.body.contains("<polygon "),
        "{}",
        page.body
    );
    c.get(&s.url(&format!(
        "/api/v1/dags/{DAG}/planning/skus/{store}/no-such-sku"
    )))
    .await
    .assert_problem(404);
}

fn check_page(r: &Resp) {
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("id=\"anomalies\""), "{}", r.body);
    assert!(r.body.contains("id=\"orders\""), "{}", r.body);
    // The reason that carried markup is shown as text.
    assert!(r.body.contains("&lt;script&gt;alert(1)&lt;"), "{}", r.body);
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
}

/// A small sample of /metrics, parsed by prometheus_client.
fn samples(text: &str) -> Vec<Value> {
    let out = python(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/parse_metrics.py"
        ),
        &[],
        text,
    );
    let parsed: Value = serde_json::from_str(&out).expect("json");
    parsed["samples"].as_array().expect("samples").clone()
}

async fn check_accuracy_metrics(c: &mut Client, s: &Server, t: &Value) {
    let text = c.get(&s.url("/metrics")).await;
    let samples = samples(&text.body);
    let backtest = t["backtest_rmsse"].as_object().expect("backtest");
    let realized = t["realized_rmsse"].as_object().expect("realized");
    assert!(!backtest.is_empty() && !realized.is_empty(), "{t}");
    let find = |name: &str, group: &str, kind: Option<&str>| -> Vec<Value> {
        samples
            .iter()
            .filter(|x| {
                x[0] == name
                    && x[1]["dag_id"] == DAG
                    && x[1]["group"] == group
                    && kind.is_none_or(|k| x[1]["model_kind"] == k)
            })
            .cloned()
            .collect()
    };
    for (group, want) in backtest {
        let got = find("restock_forecast_backtest_rmsse", group, None);
        assert_eq!(got.len(), 1, "{group}: {got:?}\n{}", text.body);
        assert_eq!(got[0][1]["ds"], NIGHTS[0]);
        assert!(close(
            got[0][2].as_f64().expect("v"),
            want.as_f64().expect("w")
        ));
    }
    for (key, want) in realized {
        let (group, kind) = key.split_once('/').expect("group/kind");
        let got = find("restock_forecast_realized_rmsse", group, Some(kind));
        assert_eq!(got.len(), 1, "{key}: {got:?}\n{}", text.body);
        assert_eq!(got[0][1]["ds"], NIGHTS[1]);
        assert!(close(
            got[0][2].as_f64().expect("v"),
            want.as_f64().expect("w")
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn planning_pages_and_accuracy_metrics_read_the_demo_lake() {
    let p = demo_project(&NIGHTS);
    inject_markup(&p);
    let t = truth(&p);
    let s = Server::start(&p, "serve", &[]);
    let mut c = Client::new();
    check_summary(&mut c, &s, &p, &t).await;
    check_anomalies(&mut c, &s, &t).await;
    check_lines(&mut c, &s, &t).await;
    check_sku(&mut c, &s, &t).await;
    let r = c
        .get(&s.url(&format!("/dags/{DAG}/planning?severity=&type=")))
        .await;
    check_page(&r);
    let dag_page = c.get(&s.url(&format!("/dags/{DAG}"))).await;
    assert!(
        dag_page.body.contains("id=\"planning-link\""),
        "{}",
        dag_page.body
    );
    check_accuracy_metrics(&mut c, &s, &t).await;
    // A DAG without planning tasks says so.
    c.get(&s.url("/api/v1/dags/example/planning"))
        .await
        .assert_problem(404);
}

/// A DAG whose monitor output is written by hand below; `alert` gives the
/// mail's headline cap when `email` is set.
fn headline_dag(id: &str, email: bool) -> String {
    let mut y = format!(
        "id: {id}\ntables:\n  inventory_position: {{ path: curated/inventory_position, partition_by: [ds] }}\n  \
         sales: {{ path: raw/sales, partition_by: [ds] }}\ntasks:\n  - id: monitor\n    kind: monitor\n"
    );
    if email {
        y.push_str(
            "  - id: alert\n    kind: email\n    depends_on: [monitor]\n    anomalies: anomalies\n    headline: 2\n",
        );
    }
    y
}

/// One night's anomalies as the monitor writes them (rank order): an info
/// overstock (never on the headline), two new or worse lines, a recurring
/// one, and a store-wide stale feed the monitor's per-type places put on.
fn write_headline_night(lake: &std::path::Path) {
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    };
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let day = |d: u32| {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
        (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
    };
    let text = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let num = |v: &[f64]| Arc::new(Float64Array::from(v.to_vec())) as ArrayRef;
    let cols: Vec<(&str, DataType, ArrayRef)> = vec![
        (
            "date",
            DataType::Date32,
            Arc::new(Date32Array::from(vec![day(27); 5])),
        ),
        (
            "store",
            DataType::Utf8,
            text(&["CA_1", "CA_1", "CA_1", "CA_1", "TX_1"]),
        ),
        (
            "sku",
            DataType::Utf8,
            Arc::new(StringArray::from(vec![
                Some("X"),
                Some("A"),
                Some("B"),
                Some("C"),
                None,
            ])),
        ),
        (
            "type",
            DataType::Utf8,
            text(&[
                "overstock",
                "stockout",
                "projected_stockout",
                "stockout",
                "stale_data",
            ]),
        ),
        (
            "severity",
            DataType::Utf8,
            text(&["info", "critical", "warning", "critical", "critical"]),
        ),
        (
            "observed",
            DataType::Float64,
            num(&[900.0, 0.0, 4.0, 0.0, 3.0]),
        ),
        (
            "expected",
            DataType::Float64,
            num(&[90.0, 10.0, 8.0, 5.0, 1.0]),
        ),
        (
            "message",
            DataType::Utf8,
            text(&["m X", "m A", "m B", "m C", "m TX_1"]),
        ),
        (
            "reason",
            DataType::Utf8,
            text(&["why X", "why A", "why B", "why C", "why TX_1"]),
        ),
        (
            "money_at_risk",
            DataType::Float64,
            num(&[500.0, 300.0, 100.0, 60.0, 40.0]),
        ),
        (
            "money_kind",
            DataType::Utf8,
            text(&[
                "capital_tied_up",
                "margin_at_risk",
                "margin_at_risk",
                "margin_at_risk",
                "order_value_affected",
            ]),
        ),
        (
            "status",
            DataType::Utf8,
            text(&["new", "new", "worse", "recurring", "new"]),
        ),
        (
            "first_seen",
            DataType::Date32,
            Arc::new(Date32Array::from(vec![
                day(27),
                day(27),
                day(20),
                day(20),
                day(27),
            ])),
        ),
        (
            "rank",
            DataType::Int64,
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
        ),
        (
            "headline",
            DataType::Boolean,
            Arc::new(BooleanArray::from(vec![false, true, true, false, true])),
        ),
    ];
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, t, _)| Field::new(*n, t.clone(), *n == "store" || *n == "sku"))
            .collect::<Vec<_>>(),
    ));
    let batch = arrow::array::RecordBatch::try_new(schema, cols.into_iter().map(|c| c.2).collect())
        .expect("batch");
    let dir = lake.join("anomalies/ds=2026-11-27");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part-00000.parquet")).expect("file");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// A run of `dag` for 2026-11-27 in which the monitor succeeded.
fn seed_monitor_run(p: &Project, dag: &str) {
    use chrono::{TimeZone, Utc};
    use restock::store::{self, RunType, State, Store};
    let store = Store::open(&p.state()).expect("store");
    let start = Utc
        .with_ymd_and_hms(2026, 11, 27, 0, 0, 0)
        .single()
        .expect("t");
    let run_id = super::day_run(&store, dag, start, RunType::Scheduled);
    store
        .with(|c| store::set_task_state(c, &run_id, "monitor", State::Succeeded, None, Utc::now()))
        .expect("task");
    store
        .with(|c| store::set_run_state(c, &run_id, State::Succeeded, Utc::now()))
        .expect("state");
}

/// The headline on the planning page and in its API is the mail's: the
/// monitor's headline rows, capped at the `email` task's `headline:` (25
/// without one), with the share of all the night's money at risk.
#[tokio::test(flavor = "multi_thread")]
async fn planning_headline_is_the_mails_capped_list_with_its_share() {
    let p = Project::new();
    let lake = p.path().join("lake");
    write_headline_night(&lake);
    p.write_dag("head.yaml", &headline_dag("head", true));
    p.write_dag("plain.yaml", &headline_dag("plain", false));
    // Two email tasks: the page takes the cap of the one reporting on the
    // monitor's table, not the first in the file.
    let two = headline_dag("two", false)
        .replace("tables:\n", "tables:\n  other: { path: other_anomalies }\n")
        + "  - id: digest\n    kind: email\n    depends_on: [monitor]\n    anomalies: other\n    headline: 1\n"
        + "  - id: alert\n    kind: email\n    depends_on: [monitor]\n    anomalies: anomalies\n    headline: 2\n";
    p.write_dag("two.yaml", &two);
    seed_monitor_run(&p, "head");
    seed_monitor_run(&p, "plain");
    seed_monitor_run(&p, "two");
    let s = Server::start(
        &p,
        "serve",
        &[("RESTOCK_LAKE", lake.to_str().expect("utf8"))],
    );
    let mut c = Client::new();
    let lines = |h: &Value| -> Vec<(Value, Value, Value)> {
        h["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r["sku"].clone(),
                    r["money_at_risk"].clone(),
                    r["reason"].clone(),
                )
            })
            .collect()
    };
    let j = get_json(&mut c, &s, "/api/v1/dags/head/planning").await;
    let h = &j["headline"];
    assert_eq!(h["cap"], 2, "{j}");
    assert_eq!(
        lines(h),
        [
            ("A".into(), 300.0.into(), "why A".into()),
            ("B".into(), 100.0.into(), "why B".into())
        ],
        "{j}"
    );
    assert_eq!(h["money_at_risk"], 400.0, "{j}");
    assert_eq!(h["total_money_at_risk"], 1000.0, "{j}");
    assert_eq!(h["share"], 0.4, "{j}");
    assert_eq!(
        h["sentence"], "These 2 lines cover 40% of tonight's money at risk (total 1,000.00).",
        "{j}"
    );
    assert_eq!(j["anomalies"], 5, "{j}");

    let j = get_json(&mut c, &s, "/api/v1/dags/two/planning").await;
    assert_eq!(j["headline"]["cap"], 2, "{j}");

    // Without an email task: the default 25, so all three headline rows.
    let j = get_json(&mut c, &s, "/api/v1/dags/plain/planning").await;
    let h = &j["headline"];
    assert_eq!(h["cap"], 25, "{j}");
    assert_eq!(
        lines(h),
        [
            ("A".into(), 300.0.into(), "why A".into()),
            ("B".into(), 100.0.into(), "why B".into()),
            (Value::Null, 40.0.into(), "why TX_1".into())
        ],
        "{j}"
    );
    assert_eq!(h["share"], 0.44, "{j}");
    assert_eq!(
        h["sentence"], "These 3 lines cover 44% of tonight's money at risk (total 1,000.00).",
        "{j}"
    );

    // The page: the section, capped, with the sentence; the full list
    // below still has every row.
    let r = c.get(&s.url("/dags/head/planning")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let start = r
        .body
        .find("<section id=\"headline\"")
        .expect("headline section");
    let end = start + r.body[start..].find("</section>").expect("section end");
    let section = &r.body[start..end];
    assert!(section.contains("data-cap=\"2\""), "{section}");
    assert!(
        section.contains(
            "<p id=\"headline-share\">These 2 lines cover 40% of tonight&#x27;s money at risk (total 1,000.00).</p>"
        ),
        "{section}"
    );
    let skus: Vec<&str> = section
        .split("<tr class=\"sev-")
        .skip(1)
        .map(|row| {
            let sku = row.split("</a>").next().unwrap_or("");
            &sku[sku.rfind('>').map_or(0, |i| i + 1)..]
        })
        .collect();
    assert_eq!(skus, ["A", "B"], "{section}");
    assert!(
        section.contains("300.00") && section.contains("why B"),
        "{section}"
    );
    assert!(section.contains("worse, since 2026-11-20"), "{section}");
    assert!(section.contains("The other 3 anomalies"), "{section}");
    let table = &r.body[end..];
    assert_eq!(table.matches("<tr class=\"sev-").count(), 5, "{}", r.body);
}
