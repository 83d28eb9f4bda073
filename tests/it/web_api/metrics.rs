//! `/metrics`' remote executor gauge against the run history: attempts
//! recorded running of tasks the loaded DAGs place on each executor.

use chrono::{TimeZone, Utc};
use serde_json::Value;

use crate::common::Project;
use crate::web_support::{Client, Server};
use restock::store::{self, RunType, Store};

const REMOTE: &str = r#"id: remote
tasks:
  - id: fit
    kind: command
    executor: gpu
    command: "true"
  - id: fit_too
    kind: command
    executor: gpu
    command: "true"
  - id: here
    kind: command
    command: "true"
"#;

/// Runs of `remote` with an attempt of each task left running.
fn seed_running(p: &Project, days: u32) {
    let store = Store::open(&p.state()).expect("store");
    for d in 1..=days {
        let start = Utc
            .with_ymd_and_hms(2026, 11, d, 0, 0, 0)
            .single()
            .expect("t");
        let run_id = super::day_run(&store, "remote", start, RunType::Manual);
        for task in ["fit", "fit_too", "here"] {
            store
                .with(|c| store::begin_attempt(c, &run_id, task, 1, "", Utc::now()))
                .expect("attempt");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_attempts_in_flight_per_executor_match_the_history() {
    let p = Project::new();
    std::fs::write(
        p.path().join("restock.yaml"),
        "executors:\n  gpu: { kind: slurm, shared_filesystem: true }\n  ray: { kind: ray, address: \"http://127.0.0.1:1\", shared_filesystem: true }\n",
    )
    .expect("config");
    p.write_dag("remote.yaml", REMOTE);
    seed_running(&p, 3);
    let s = Server::start(&p, "serve", &[]);
    let mut c = Client::new();
    let url = s.url("/api/v1/dags/remote");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.get(&url).await.status != 200 {
        assert!(
            std::time::Instant::now() < end,
            "the DAG never loaded:\n{}",
            s.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let text = c.get(&s.url("/metrics")).await.body;
    let out = super::planning::python(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/parse_metrics.py"
        ),
        &[],
        &text,
    );
    let parsed: Value = serde_json::from_str(&out).expect("json");
    let value = |executor: &str| -> Option<f64> {
        parsed["samples"].as_array()?.iter().find_map(|x| {
            (x[0] == "restock_remote_attempts_in_flight" && x[1]["executor"] == executor)
                .then(|| x[2].as_f64())
                .flatten()
        })
    };
    let running = p.query(
        "SELECT COUNT(*) FROM task_attempts WHERE state = 'running' AND task_id IN ('fit', 'fit_too')",
    );
    let want: f64 = running[0][0].parse().expect("count");
    assert_eq!(want, 6.0);
    assert_eq!(value("gpu"), Some(want), "{text}");
    assert_eq!(value("ray"), Some(0.0), "{text}");
}
