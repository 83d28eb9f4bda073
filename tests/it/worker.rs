//! `restock attempt run`, the worker of remote executors, as the real
//! binary without any engine: it runs one attempt from a spec using only
//! the lake, writes the result JSON and the log there, exits with a code
//! per outcome, and refuses a spec whose DAG file changed since.

use crate::common;

use std::path::Path;

use chrono::Utc;
use restock::template::RunVars;
use restock::worker::spec::{AttemptResult, AttemptSpec, ResultState, SPEC_FORMAT, exit};

fn spec(dir: &Path, dag_file: &Path, task: &str, try_number: u32) -> AttemptSpec {
    let text = std::fs::read_to_string(dag_file).expect("dag");
    let start = "2026-11-27T00:00:00Z".parse().expect("ts");
    let end = "2026-11-28T00:00:00Z".parse().expect("ts");
    let mut vars = RunVars::new(
        "w",
        "w.20261127T000000Z",
        &chrono_tz::UTC,
        start,
        end,
        serde_json::json!({"n": 7}),
    );
    vars.tasks.insert(
        "up".into(),
        restock::template::TaskVars {
            state: "succeeded".into(),
            outputs: serde_json::json!({"rows": 42}),
        },
    );
    AttemptSpec {
        format: SPEC_FORMAT,
        job_name: format!("restock-w-{task}-{try_number}"),
        executor: "gpu".into(),
        dag_id: "w".into(),
        dag_file: dag_file.to_path_buf(),
        dag_hash: restock::dag::compile::source_hash(&text),
        task_id: task.into(),
        run_id: "w.20261127T000000Z".into(),
        try_number,
        vars,
        deadline: None,
        lake: dir.join("lake").display().to_string(),
        root: dir.to_path_buf(),
        gpu: false,
        submitted_at: Utc::now(),
    }
}

fn run(dir: &Path, spec: &AttemptSpec) -> (i32, String) {
    let path = dir.join(format!("{}.json", spec.job_name));
    std::fs::write(&path, serde_json::to_vec(spec).expect("json")).expect("spec");
    let out = common::restock()
        .args(["attempt", "run", "--spec-file"])
        .arg(&path)
        .output()
        .expect("worker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn result(dir: &Path, task: &str, try_number: u32) -> AttemptResult {
    let p = dir.join(format!(
        "lake/_attempts/w/w.20261127T000000Z/{task}/{try_number}.result.json"
    ));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("result json")
}

const DAG: &str = r#"id: w
tasks:
  - id: up
    kind: empty
  - id: ok
    kind: command
    depends_on: [up]
    command: "echo rows={{ tasks.up.outputs.rows }} n={{ params.n }}; echo '{\"seen\": {{ tasks.up.outputs.rows }}}'"
  - id: flaky
    kind: command
    command: "echo about to fail; exit 3"
  - id: bad
    kind: command
    depends_on: [up]
    command: "echo {{ tasks.up.outputs.missing }}"
"#;

#[test]
fn runs_from_the_lake_alone_and_exits_per_outcome() {
    let dir = tempfile::tempdir().expect("tmp");
    let dag = dir.path().join("w.yaml");
    std::fs::write(&dag, DAG).expect("dag");

    let (code, err) = run(dir.path(), &spec(dir.path(), &dag, "ok", 1));
    assert_eq!(code, i32::from(exit::SUCCEEDED), "{err}");
    let r = result(dir.path(), "ok", 1);
    assert_eq!(r.state, ResultState::Succeeded);
    // Upstream outputs and params came from the spec, not from a store.
    assert_eq!(r.outputs["seen"], 42);
    let log = std::fs::read_to_string(
        dir.path()
            .join("lake/_attempts/w/w.20261127T000000Z/ok/1.log"),
    )
    .expect("log");
    assert!(log.contains("rows=42 n=7"), "{log}");
    assert!(
        !dir.path().join(".restock/state.db").exists(),
        "the worker must not open a run history"
    );

    let (code, err) = run(dir.path(), &spec(dir.path(), &dag, "flaky", 2));
    assert_eq!(code, i32::from(exit::RETRYABLE), "{err}");
    let r = result(dir.path(), "flaky", 2);
    assert_eq!(r.state, ResultState::Failed);
    assert!(
        r.retryable && r.error.as_deref().unwrap_or("").contains("exit"),
        "{r:?}"
    );

    let (code, err) = run(dir.path(), &spec(dir.path(), &dag, "bad", 1));
    assert_eq!(code, i32::from(exit::FATAL), "{err}");
    assert!(!result(dir.path(), "bad", 1).retryable);
}

#[test]
fn a_spec_for_a_changed_dag_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let dag = dir.path().join("w.yaml");
    std::fs::write(&dag, DAG).expect("dag");
    let s = spec(dir.path(), &dag, "ok", 1);
    std::fs::write(&dag, DAG.replace("echo rows", "echo ROWS")).expect("edit");
    let (code, err) = run(dir.path(), &s);
    assert_eq!(code, i32::from(exit::REFUSED), "{err}");
    assert!(
        err.contains("changed since the attempt was submitted"),
        "{err}"
    );
    assert!(err.contains(&dag.display().to_string()), "{err}");
    // The daemon reads the refusal from the lake, and nothing ran.
    let r = result(dir.path(), "ok", 1);
    assert_eq!(r.state, ResultState::Failed);
    assert!(!r.retryable);
    assert!(
        r.error.as_deref().unwrap_or("").contains("changed since"),
        "{r:?}"
    );
}
