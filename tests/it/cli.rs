//! The `restock` binary end to end: run, backfill, duplicate refusal and
//! --force, --task, runs/show, task run, config file and environment.

use crate::common;

use common::Project;

const DAG: &str = r#"id: daily
schedule:
  cron: "0 2 * * *"
  timezone: Europe/Berlin
tasks:
  - id: extract
    kind: command
    command: ["sh", "-c", "echo '{\"rows\": 3, \"ds\": \"{{ ds }}\"}'"]
  - id: load
    kind: command
    depends_on: [extract]
    command: ["sh", "-c", "echo loading {{ tasks.extract.outputs.rows }} >> load.log"]
"#;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_shows_progress_records_history_and_refuses_duplicates() {
    let p = Project::new();
    p.write_dag("daily.yaml", DAG);
    let o = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("run daily.20261127T010000Z"), "{out}");
    assert!(out.contains("> extract started"), "{out}");
    assert!(out.contains("ok load succeeded"), "{out}");
    assert!(
        out.contains("run daily.20261127T010000Z succeeded"),
        "{out}"
    );

    let again = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27"])
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists (daily.20261127T010000Z, succeeded); use --force"),
        "{}",
        stderr(&again)
    );

    let forced = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27", "--force"])
        .output()
        .expect("run");
    assert!(forced.status.success());
    assert!(
        stdout(&forced).contains("run daily.20261127T010000Z.2"),
        "{}",
        stdout(&forced)
    );

    let runs = p.restock().args(["runs"]).output().expect("runs");
    let table = stdout(&runs);
    assert!(
        table.lines().next().is_some_and(|h| h.starts_with("RUN")),
        "{table}"
    );
    assert_eq!(
        table.matches("daily.20261127T010000Z").count(),
        2,
        "{table}"
    );

    let show = p
        .restock()
        .args(["show", "daily.20261127T010000Z"])
        .output()
        .expect("show");
    let s = stdout(&show);
    assert!(s.contains("state     succeeded"), "{s}");
    assert!(
        s.contains(r#"outputs: {"ds":"2026-11-27","rows":3}"#),
        "{s}"
    );
    assert!(
        s.contains("log: .restock/logs/daily/daily.20261127T010000Z/extract/1.log"),
        "{s}"
    );

    let json = p
        .restock()
        .args(["show", "daily.20261127T010000Z", "--json"])
        .output()
        .expect("show");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["run"]["state"], "succeeded");
    assert_eq!(v["attempts"].as_array().map(Vec::len), Some(2));

    let missing = p.restock().args(["show", "nope"]).output().expect("show");
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no run `nope`"));
}

#[test]
fn backfill_runs_every_interval_in_order_and_fails_on_failure() {
    let p = Project::new();
    p.write_dag("daily.yaml", DAG);
    let o = p
        .restock()
        .args(["run", "daily", "--from", "2026-11-20", "--to", "2026-11-23"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = p.query("SELECT ds, run_type, state FROM dag_runs ORDER BY rowid");
    let ds: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ds, ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]);
    assert!(
        rows.iter()
            .all(|r| r[1] == "backfill" && r[2] == "succeeded")
    );
    let log = std::fs::read_to_string(p.path().join("load.log")).expect("load.log");
    assert_eq!(log.lines().count(), 4);

    // Existing intervals are skipped in a backfill; a failing one makes the
    // exit code 1.
    p.write_dag(
        "daily.yaml",
        &DAG.replace(
            "echo loading",
            "[ {{ ds_nodash }} != 20261124 ] && echo loading",
        ),
    );
    let o = p
        .restock()
        .args(["run", "daily", "--from", "2026-11-23", "--to", "2026-11-25"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("skip: a run of `daily`"),
        "{}",
        stdout(&o)
    );
    let states = p.query("SELECT ds, state FROM dag_runs WHERE ds >= '2026-11-24' ORDER BY ds");
    assert_eq!(states[0], ["2026-11-24", "failed"]);
    assert_eq!(states[1], ["2026-11-25", "succeeded"]);
}

#[test]
fn task_flag_reruns_one_task_within_the_existing_run() {
    let p = Project::new();
    p.write_dag("daily.yaml", DAG);
    let o = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27"])
        .output()
        .expect("run");
    assert!(o.status.success());
    let o = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27", "--task", "load"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let tries =
        p.query("SELECT task_id, COUNT(*) FROM task_attempts GROUP BY task_id ORDER BY task_id");
    assert_eq!(tries, [["extract", "1"], ["load", "2"]]);
    // The rerun saw the recorded upstream outputs.
    let log = std::fs::read_to_string(p.path().join("load.log")).expect("load.log");
    assert_eq!(log, "loading 3\nloading 3\n");

    let bad = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27", "--task", "nope"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("task `nope` is not in DAG `daily`"));
}

#[test]
fn task_run_executes_one_attempt_without_recording() {
    let p = Project::new();
    p.write_dag("daily.yaml", DAG);
    let o = p
        .restock()
        .args(["task", "run", "daily", "extract", "--date", "2026-11-27"])
        .output()
        .expect("task run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(r#"{"ds":"2026-11-27","rows":3}"#),
        "{}",
        stdout(&o)
    );
    assert!(p.query("SELECT * FROM dag_runs").is_empty());
    // Without a recorded upstream, a template naming it fails clearly.
    let o = p
        .restock()
        .args(["task", "run", "daily", "load", "--date", "2026-11-27"])
        .output()
        .expect("task run");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("undefined"), "{}", stderr(&o));
}

#[test]
fn config_file_and_environment_choose_paths() {
    let p = Project::new();
    std::fs::create_dir_all(p.path().join("dags")).expect("dir");
    std::fs::write(p.path().join("dags/daily.yaml"), DAG).expect("dag");
    std::fs::write(
        p.path().join("restock.yaml"),
        "jobs: dags\nstate: var/history.db\nlogs: var/logs\n",
    )
    .expect("config");
    let o = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-27"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(p.path().join("var/history.db").is_file());
    assert!(p.path().join("var/logs/daily").is_dir());
    // The environment wins over the file.
    let o = p
        .restock()
        .env("RESTOCK_STATE", "other.db")
        .args(["run", "daily", "--date", "2026-11-26"])
        .output()
        .expect("run");
    assert!(o.status.success());
    assert!(p.path().join("other.db").is_file());
    // A broken config file is named.
    std::fs::write(p.path().join("restock.yaml"), "jobs: dags\nlaek: x\n").expect("config");
    let o = p.restock().args(["runs"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("restock.yaml:2:1"), "{}", stderr(&o));
}

#[test]
fn every_example_dag_in_jobs_runs() {
    let p = Project::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(repo.join("jobs")).expect("jobs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().expect("name");
            std::fs::copy(&path, p.path().join("jobs").join(name)).expect("copy");
        }
    }
    let ids: Vec<String> = std::fs::read_dir(p.path().join("jobs"))
        .expect("jobs")
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.ok()?.path()).ok()?;
            let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
            Some(doc["id"].as_str()?.to_string())
        })
        .collect();
    assert!(!ids.is_empty());
    // The main job needs the demo lake; `restock demo` runs it below.
    for id in ids.into_iter().filter(|i| i != "nightly_inventory") {
        let o = p
            .restock()
            .env("RESTOCK_ROOT", repo)
            .args(["run", &id, "--date", "2026-11-27"])
            .output()
            .expect("run");
        assert!(o.status.success(), "{id}: {}{}", stdout(&o), stderr(&o));
    }
}

#[test]
fn readme_main_command_runs_the_main_job_on_the_demo_lake() {
    let p = Project::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // A planner doubles one series' forecast from the second night on.
    let overrides = p.path().join("lake/overrides");
    std::fs::create_dir_all(&overrides).expect("overrides dir");
    std::fs::write(
        overrides.join("planners.csv"),
        "id,kind,store,sku,start_date,end_date,value,author,reason\n\
         O-1,forecast_multiply,CA_1,FOODS_1_001,2026-11-27,2026-12-31,2,alice,local festival\n",
    )
    .expect("overrides csv");
    let o = p
        .restock()
        .env("RESTOCK_ROOT", repo)
        .env("RESTOCK_JOBS", repo.join("jobs"))
        .args(["demo", "--end-date", "2026-11-27"])
        .output()
        .expect("demo");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("run nightly_inventory.20261126T010000Z succeeded"),
        "{out}"
    );
    assert!(
        out.contains("run nightly_inventory.20261127T010000Z succeeded"),
        "{out}"
    );
    assert!(out.contains("reusing the model of 2026-11-26"), "{out}");
    let lake = p.path().join("lake");
    for table in [
        "curated/daily_sales",
        "curated/inventory_position",
        "curated/product_master",
        "forecasts",
        "reorder_plans",
        "anomalies",
    ] {
        let f = lake.join(table).join("ds=2026-11-27/part-00000.parquet");
        assert!(f.is_file(), "{} missing", f.display());
    }
    // The backtest is written when a model is trained (the first night).
    let metrics = lake.join("forecast_metrics/ds=2026-11-26/part-00000.parquet");
    assert!(metrics.is_file(), "{} missing", metrics.display());
    // The second night scores the first night's forecast.
    let accuracy = lake.join("forecast_accuracy/ds=2026-11-27/part-00000.parquet");
    assert!(accuracy.is_file(), "{} missing", accuracy.display());
    // The demo's injected anomalies (its ground truth in `truth/anomalies`)
    // are each found, in the headline and among the top 25; no night has
    // more than 10 critical or warning anomalies per 100 series. Read back
    // by pyarrow.
    let script = format!(
        r#"
import pyarrow.parquet as pq
lake = "{}"
for night in ["2026-11-26", "2026-11-27"]:
    rows = pq.read_table(f"{{lake}}/anomalies/ds={{night}}/part-00000.parquet").to_pylist()
    plans = pq.read_table(f"{{lake}}/reorder_plans/ds={{night}}/part-00000.parquet")
    loud = sum(1 for r in rows if r["severity"] in ("critical", "warning"))
    print("per100", night, round(100.0 * loud / plans.num_rows, 1) <= 10.0, loud, plans.num_rows)
truth = pq.read_table(f"{{lake}}/truth/anomalies/part-00000.parquet").to_pylist()
rows = pq.read_table(f"{{lake}}/anomalies/ds=2026-11-27/part-00000.parquet").to_pylist()
print("injected", len(truth))
for t in truth:
    hit = [r for r in rows if r["type"] == t["expected_type"] and r["store"] == t["store"] and r["sku"] == t["sku"]]
    ok = len(hit) == 1 and hit[0]["headline"] and hit[0]["rank"] <= 25
    print("truth", t["kind"], "found" if ok else f"MISSING {{hit}}")
    print("expect", t["expected_type"], t["store"], t["sku"] or "")
f = pq.read_table(f"{{lake}}/forecasts/ds=2026-11-27/part-00000.parquet")
print("forecast_columns", ",".join(f.schema.names))
for r in f.to_pylist():
    if r["override_id"] is not None:
        print("overridden", r["override_id"], r["sku"], r["forecast_date"], abs(r["mean"] - 2 * r["model_mean"]) < 1e-9)
a = pq.read_table(f"{{lake}}/forecast_accuracy/ds=2026-11-27/part-00000.parquet").to_pylist()
for r in a:
    if r["override_id"] is not None:
        print("value_added", r["override_id"], r["model_kind"], r["points"])
o = [r for r in a if r["group"] == "_overall"][0]
print("accuracy_overall", o["forecast_ds"], o["max_step"], o["points"] > 0, o["wape"] is not None)
"#,
        lake.display(),
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(py.status.success(), "pip install pyarrow: {}", stderr(&py));
    let found = stdout(&py);
    assert!(found.contains("injected 5"), "{found}");
    // The override applied to every forecast date it covers, and the
    // night after, its value added against the model is scored.
    assert!(
        found.contains("overridden O-1 FOODS_1_001 2026-11-28 True"),
        "{found}"
    );
    assert!(!found.contains("False"), "{found}");
    assert!(
        found.contains("value_added O-1 planner_override 1"),
        "{found}"
    );
    assert!(!found.contains("MISSING"), "{found}");
    for want in [
        "truth demand_spike found",
        "truth negative_on_hand found",
        "truth stale_store found",
        "truth demand_stopped found",
        "truth price_error found",
        "per100 2026-11-26 True",
        "per100 2026-11-27 True",
    ] {
        assert!(found.contains(want), "`{want}` not in:\n{found}");
    }
    assert!(
        found.contains("accuracy_overall 2026-11-26 1 True True"),
        "{found}"
    );
    assert!(
        found.contains("forecast_columns store,sku,group,forecast_date,step,p10,p50,p90,mean,model_id,model_kind,flags"),
        "{found}"
    );
    // ... and each appears in the planners' email (the outbox, since no SMTP
    // server is configured): its anomalies CSV and its HTML body.
    let outbox = p.path().join("outbox");
    let mut report = None;
    for entry in std::fs::read_dir(&outbox).expect("outbox") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let parsed = std::process::Command::new("python3")
            .arg(repo.join("tests/support/parse_mail.py"))
            .arg(&path)
            .output()
            .expect("parse mail");
        let v: serde_json::Value = serde_json::from_slice(&parsed.stdout).expect("mail json");
        if v["subject"]
            .as_str()
            .is_some_and(|s| s.contains("2026-11-27"))
        {
            report = Some(v);
        }
    }
    let report = report.expect("an email for 2026-11-27 in the outbox");
    let parts = report["parts"].as_array().expect("parts");
    let csv = parts
        .iter()
        .find(|p| p["filename"] == "anomalies.csv")
        .and_then(|p| p["base64"].as_str())
        .expect("anomalies.csv attached");
    let csv = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(csv)
            .expect("base64");
        String::from_utf8(bytes).expect("utf8 csv")
    };
    let injected: Vec<Vec<&str>> = found
        .lines()
        .filter_map(|l| l.strip_prefix("expect "))
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(injected.len(), 5, "{found}");
    for want in &injected {
        let (kind, store, sku) = (want[0], want[1], want.get(2).copied().unwrap_or(""));
        assert!(
            csv.lines()
                .any(|l| l.contains(kind) && l.contains(store) && l.contains(sku)),
            "{kind} {store} {sku} not in the emailed anomalies:\n{csv}"
        );
    }
    let html = parts
        .iter()
        .find(|p| p["content_type"] == "text/html")
        .and_then(|p| p["text"].as_str())
        .expect("html body");
    for want in &injected {
        let at = want.get(2).filter(|s| !s.is_empty()).unwrap_or(&want[1]);
        assert!(
            html.contains(at),
            "{at} ({}) not in the email body",
            want[0]
        );
    }

    // Running the demo again replaces the outputs (forced reruns).
    let again = p
        .restock()
        .env("RESTOCK_ROOT", repo)
        .env("RESTOCK_JOBS", repo.join("jobs"))
        .args(["demo", "--end-date", "2026-11-27", "--no-generate"])
        .output()
        .expect("demo");
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("nightly_inventory.20261127T010000Z.2"));
}

/// An unknown dataset is refused by the argument parser, with the list,
/// before any Python runs; `tourism-monthly` is the monthly Tourism set.
#[test]
fn bench_accuracy_names_its_datasets() {
    let o = common::restock()
        .args(["bench", "accuracy", "tourism-weekly"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "[possible values: tuna, cheese, tourism, tourism-quarterly, tourism-yearly]"
        ),
        "{}",
        stderr(&o)
    );
    // The alias parses: with no data folder the run then fails on the data,
    // not on the name.
    let o = common::restock()
        .args([
            "bench",
            "accuracy",
            "tourism-monthly",
            "--data",
            "/nonexistent",
        ])
        .env("RESTOCK_PYTHON", "/nonexistent-python")
        .output()
        .expect("run");
    assert!(!stderr(&o).contains("invalid value"), "{}", stderr(&o));
}
