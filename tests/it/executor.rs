//! Run semantics through the library with a real SQLite state file and real
//! child processes: retries with backoff, timeouts, `when`, trigger rules,
//! outputs, parallelism and cancellation.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::dag::compile_str;
use restock::executor::{Event, Executor, Observer, RunRequest};
use restock::schedule::Interval;
use restock::store::{self, Attempt, RunRecord, RunType, State, Store};
use restock::tasks::{Registry, Services};

struct Quiet;
impl Observer for Quiet {
    fn event(&self, _: &str, _: &Event) {}
}

struct Harness {
    dir: tempfile::TempDir,
    exec: Executor,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        let exec = Executor {
            store,
            services: Arc::new(Services::new(Config::default()).expect("services")),
            logs_dir: dir.path().join("logs"),
            observer: Arc::new(Quiet),
            write_logs: true,
            drain: tokio_util::sync::CancellationToken::new(),
        };
        Self { dir, exec }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    async fn run_with(&self, yaml: &str, cancel: CancellationToken) -> RunRecord {
        let yaml = yaml.replace("$ROOT", &self.root().display().to_string());
        let dag = compile_str(
            &self.root().join("dag.yaml"),
            &yaml,
            &Registry::builtin(),
            self.root(),
        )
        .unwrap_or_else(|d| panic!("invalid test DAG: {d:?}"));
        let start: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().expect("ts");
        let end: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().expect("ts");
        self.exec
            .run(
                Arc::new(dag),
                RunRequest {
                    interval: Interval { start, end },
                    run_type: RunType::Manual,
                    force: true,
                    only: None,
                },
                cancel,
            )
            .await
            .expect("run executes")
    }

    async fn run(&self, yaml: &str) -> RunRecord {
        self.run_with(yaml, CancellationToken::new()).await
    }

    fn attempts(&self, run: &RunRecord, task: &str) -> Vec<Attempt> {
        self.exec
            .store
            .with(|c| store::attempts(c, &run.run_id))
            .expect("attempts")
            .into_iter()
            .filter(|a| a.task_id == task)
            .collect()
    }

    fn state(&self, run: &RunRecord, task: &str) -> State {
        self.exec
            .store
            .with(|c| store::task_instances(c, &run.run_id))
            .expect("tis")
            .into_iter()
            .find(|t| t.task_id == task)
            .map(|t| t.state)
            .unwrap_or_else(|| panic!("no task instance for {task}"))
    }
}

fn gap(a: &Attempt, b: &Attempt) -> Duration {
    let end = a.ended_at.expect("ended");
    let start = b.started_at.expect("started");
    (start - end).to_std().unwrap_or_default()
}

#[tokio::test]
async fn retries_with_exponential_backoff_and_jitter_then_succeeds() {
    let h = Harness::new();
    let run = h
        .run(
            r#"
id: retry
tasks:
  - id: flaky
    kind: command
    retries: 3
    retry_delay: 300ms
    retry_backoff: exponential
    max_retry_delay: 10s
    command: "n=$(cat $ROOT/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $ROOT/count; [ $n -ge 3 ]"
"#,
        )
        .await;
    assert_eq!(run.state, State::Succeeded);
    let att = h.attempts(&run, "flaky");
    let states: Vec<State> = att.iter().map(|a| a.state).collect();
    assert_eq!(states, vec![State::Failed, State::Failed, State::Succeeded]);
    assert_eq!(
        att.iter().map(|a| a.try_number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Before try 2: base 300ms, jittered into [150, 300]; before try 3:
    // base 600ms → [300, 600]. Allow scheduling slack above.
    let g1 = gap(&att[0], &att[1]);
    let g2 = gap(&att[1], &att[2]);
    assert!(
        g1 >= Duration::from_millis(140) && g1 <= Duration::from_millis(700),
        "{g1:?}"
    );
    assert!(
        g2 >= Duration::from_millis(290) && g2 <= Duration::from_millis(1100),
        "{g2:?}"
    );
    assert!(
        att[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("exit code 1"))
    );
    // One log file per attempt.
    for a in &att {
        let p = a.log_path.as_deref().expect("log path");
        assert!(Path::new(p).is_file(), "{p}");
        assert!(p.ends_with(&format!("flaky/{}.log", a.try_number)), "{p}");
    }
}

#[test]
fn backoff_is_capped_and_fixed_backoff_stays_flat() {
    use restock::dag::model::{Backoff, RetryPolicy};
    let p = RetryPolicy {
        retries: 10,
        delay: Duration::from_secs(30),
        backoff: Backoff::Exponential,
        max_delay: Duration::from_secs(600),
    };
    assert_eq!(p.base_delay(2), Duration::from_secs(30));
    assert_eq!(p.base_delay(3), Duration::from_secs(60));
    assert_eq!(p.base_delay(4), Duration::from_secs(120));
    assert_eq!(p.base_delay(7), Duration::from_secs(600));
    assert_eq!(p.base_delay(40), Duration::from_secs(600));
    for t in 2..8 {
        let d = p.delay_before(t);
        assert!(d >= p.base_delay(t) / 2 && d <= p.base_delay(t), "{d:?}");
    }
    let f = RetryPolicy {
        backoff: Backoff::Fixed,
        ..p
    };
    assert_eq!(f.base_delay(5), Duration::from_secs(30));
}

#[tokio::test]
async fn exhausted_retries_fail_the_task_and_downstream() {
    let h = Harness::new();
    let run = h
        .run(
            r#"
id: fail
defaults:
  retries: 1
  retry_delay: 10ms
tasks:
  - id: broken
    kind: command
    command: ["sh", "-c", "echo boom >&2; exit 3"]
  - id: after
    kind: empty
    depends_on: [broken]
  - id: after_after
    kind: empty
    depends_on: [after]
"#,
        )
        .await;
    assert_eq!(run.state, State::Failed);
    assert_eq!(h.attempts(&run, "broken").len(), 2);
    assert_eq!(h.state(&run, "broken"), State::Failed);
    assert_eq!(h.state(&run, "after"), State::UpstreamFailed);
    assert_eq!(h.state(&run, "after_after"), State::UpstreamFailed);
    let att = h.attempts(&run, "broken");
    let log = std::fs::read_to_string(att[0].log_path.as_deref().expect("log")).expect("read log");
    assert!(
        log.contains("boom"),
        "stderr goes to the attempt log: {log}"
    );
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let h = Harness::new();
    let t = Instant::now();
    let run = h
        .run(
            r#"
id: slow
tasks:
  - id: sleepy
    kind: command
    timeout: 500ms
    command: "sleep 30 & echo $! > $ROOT/child.pid; wait"
"#,
        )
        .await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(run.state, State::Failed);
    let att = h.attempts(&run, "sleepy");
    assert_eq!(att.len(), 1);
    assert_eq!(att[0].error.as_deref(), Some("timed out after 500ms"));
    let pid = std::fs::read_to_string(h.root().join("child.pid")).expect("pid");
    let alive = Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(
        !alive,
        "the grandchild `sleep` must be killed with its group"
    );
}

#[tokio::test]
async fn when_false_skips_and_trigger_rules_decide_downstream() {
    let h = Harness::new();
    let run = h
        .run(
            r#"
id: rules
tasks:
  - id: monitor
    kind: command
    command: ["echo", "{\"anomaly_count\": 0}"]
  - id: alert
    kind: empty
    depends_on: [monitor]
    when: "tasks.monitor.outputs.anomaly_count > 0"
  - id: after_alert
    kind: empty
    depends_on: [alert]
  - id: cleanup
    kind: empty
    depends_on: [alert]
    trigger_rule: all_done
  - id: join
    kind: empty
    depends_on: [alert, monitor]
    trigger_rule: none_failed
"#,
        )
        .await;
    assert_eq!(run.state, State::Succeeded);
    assert_eq!(h.state(&run, "monitor"), State::Succeeded);
    assert_eq!(h.state(&run, "alert"), State::Skipped);
    assert_eq!(h.state(&run, "after_alert"), State::Skipped);
    assert_eq!(h.state(&run, "cleanup"), State::Succeeded);
    assert_eq!(h.state(&run, "join"), State::Succeeded);
    assert!(h.attempts(&run, "alert").is_empty());
}

#[tokio::test]
async fn failure_paths_run_all_done_and_one_failed_tasks() {
    let h = Harness::new();
    let run = h
        .run(
            r#"
id: onfail
tasks:
  - id: ok
    kind: empty
  - id: bad
    kind: command
    command: ["false"]
  - id: cleanup
    kind: empty
    depends_on: [ok, bad]
    trigger_rule: all_done
  - id: page_someone
    kind: empty
    depends_on: [ok, bad]
    trigger_rule: one_failed
  - id: report
    kind: empty
    depends_on: [ok, bad]
  - id: one_ok
    kind: empty
    depends_on: [ok, bad]
    trigger_rule: one_success
  - id: all_bad
    kind: empty
    depends_on: [bad]
    trigger_rule: all_failed
"#,
        )
        .await;
    assert_eq!(run.state, State::Failed);
    assert_eq!(h.state(&run, "cleanup"), State::Succeeded);
    assert_eq!(h.state(&run, "page_someone"), State::Succeeded);
    assert_eq!(h.state(&run, "report"), State::UpstreamFailed);
    assert_eq!(h.state(&run, "one_ok"), State::Succeeded);
    assert_eq!(h.state(&run, "all_bad"), State::Succeeded);
}

#[tokio::test]
async fn outputs_flow_into_templates_and_undefined_names_fail() {
    let h = Harness::new();
    let run = h
        .run(
            r#"
id: outputs
params: { horizon_days: 28 }
tasks:
  - id: produce
    kind: command
    command: "echo '{\"path\": \"x.parquet\"}' ; echo '{\"rows\": 7, \"from_file\": true}' > $RESTOCK_OUTPUTS; echo '{\"rows\": 5}'"
  - id: consume
    kind: command
    depends_on: [produce]
    command: ["sh", "-c", "echo \"{\\\"seen\\\": \\\"{{ tasks.produce.outputs.rows }}-{{ ds_nodash }}-{{ params.horizon_days }}\\\"}\""]
  - id: broken_template
    kind: command
    depends_on: [produce]
    retries: 3
    retry_delay: 10ms
    command: ["echo", "{{ tasks.produce.outputs.nope }}"]
"#,
        )
        .await;
    assert_eq!(run.state, State::Failed);
    let p = &h.attempts(&run, "produce")[0];
    // The outputs file wins over the last stdout line on shared keys.
    assert_eq!(p.outputs["rows"], 7);
    assert_eq!(p.outputs["from_file"], true);
    let c = &h.attempts(&run, "consume")[0];
    assert_eq!(c.outputs["seen"], "7-20261127-28");
    let b = h.attempts(&run, "broken_template");
    assert_eq!(b.len(), 1, "a template error is not retried");
    let err = b[0].error.as_deref().unwrap_or_default();
    assert!(err.contains("undefined"), "{err}");
}

#[tokio::test]
async fn parallelism_bounds_concurrent_attempts() {
    let h = Harness::new();
    let run = h
        .run(
            r#"
id: par
parallelism: 2
tasks:
  - { id: a, kind: command, command: ["sleep", "0.4"] }
  - { id: b, kind: command, command: ["sleep", "0.4"] }
  - { id: c, kind: command, command: ["sleep", "0.4"] }
  - { id: d, kind: command, command: ["sleep", "0.4"] }
"#,
        )
        .await;
    assert_eq!(run.state, State::Succeeded);
    let all: Vec<Attempt> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|t| h.attempts(&run, t))
        .collect();
    let mut max = 0;
    for a in &all {
        let t = a.started_at.expect("start");
        let overlapping = all
            .iter()
            .filter(|b| b.started_at.expect("s") <= t && b.ended_at.expect("e") > t)
            .count();
        max = max.max(overlapping);
    }
    assert_eq!(max, 2, "at most `parallelism` attempts at once");
}

#[tokio::test]
async fn cancel_interrupts_running_attempts() {
    let h = Harness::new();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.cancel();
    });
    let t = Instant::now();
    let run = h
        .run_with(
            r#"
id: cancel
tasks:
  - id: long
    kind: command
    retries: 2
    command: ["sleep", "30"]
  - id: next
    kind: empty
    depends_on: [long]
"#,
            cancel,
        )
        .await;
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(run.state, State::Interrupted);
    assert_eq!(h.state(&run, "long"), State::Interrupted);
    let att = h.attempts(&run, "long");
    assert_eq!(att.len(), 1);
    assert_eq!(att[0].state, State::Interrupted);
}
