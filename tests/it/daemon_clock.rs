//! The daemon driven by a controllable clock ([`ManualClock`]): catchup
//! policies, DST in Europe/Berlin, `max_active_runs` and hot reload, each
//! stepping through minutes or days of schedule without waiting for them.
//! The daemon, its executor, the state database and the tasks are the real
//! ones, in process; only "now" is controlled. The real-time process tests
//! (signals, a real-clock catchup) are in `daemon.rs`.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use common::Project;
use restock::config::Config;
use restock::daemon::{Daemon, DaemonError, ManualClock};
use restock::executor::{Executor, TracingObserver};
use restock::store::{self, NewRun, RunType, State, Store};
use restock::tasks::{Registry, Services};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("timestamp")
}

/// Everything the daemon logs, for the reload test (one subscriber per
/// process; each test looks for its own DAG id).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let mut g = logs().lock().unwrap_or_else(|p| p.into_inner());
                g.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| W)
            .try_init();
        Mutex::new(Vec::new())
    })
}

fn log_text() -> String {
    let g = logs().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&g).into_owned()
}

struct Harness {
    p: Project,
    clock: Arc<ManualClock>,
    stop: CancellationToken,
    reload: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl Harness {
    /// Start the daemon on `p` with the clock at `now`.
    fn start(p: Project, now: DateTime<Utc>) -> Harness {
        logs();
        let root = p.path().to_path_buf();
        let config = Config {
            root: root.clone(),
            jobs: root.join("jobs"),
            lake: root.join("lake").display().to_string(),
            state: p.state(),
            logs: root.join(".restock/logs"),
            outbox: root.join("outbox"),
            shutdown_grace: Duration::from_secs(5),
            // Reloads only when the test asks (through `reload`).
            reload_interval: Duration::from_secs(3600),
            ..Config::default()
        };
        let executor = Executor {
            store: Store::open(&config.state).expect("store"),
            services: Arc::new(Services::new(config.clone()).expect("services")),
            logs_dir: config.logs.clone(),
            observer: Arc::new(TracingObserver),
            write_logs: true,
            drain: CancellationToken::new(),
        };
        let clock = ManualClock::new(now);
        let daemon = Daemon {
            config,
            registry: Registry::builtin(),
            executor,
            clock: clock.clone(),
            shared: None,
            commands: None,
        };
        let stop = CancellationToken::new();
        let (reload, rx) = mpsc::channel(4);
        let task = tokio::spawn(daemon.run(stop.clone(), Some(rx)));
        Harness {
            p,
            clock,
            stop,
            reload,
            task,
        }
    }

    /// `(logical_date, run_type, state, started_at, ended_at)` of `dag`'s
    /// runs, oldest first.
    fn runs(&self, dag: &str) -> Vec<Vec<String>> {
        let mut rows = self.p.query(&format!(
            "SELECT logical_date, run_type, state, started_at, ended_at FROM dag_runs
             WHERE dag_id = '{dag}' ORDER BY logical_date"
        ));
        for r in &mut rows {
            r[0] = r[0].replace(".000Z", "Z");
        }
        rows
    }

    /// Wait until `dag` has `n` finished runs; fail on more or on timeout.
    async fn finished_runs(&self, dag: &str, n: usize) -> Vec<Vec<String>> {
        for _ in 0..300 {
            let r = self.runs(dag);
            assert!(r.len() <= n, "more than {n} runs: {r:?}");
            if r.len() == n && r.iter().all(|x| x[2] == "succeeded") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} finished runs expected: {:?}", self.runs(dag));
    }

    async fn wait_log(&self, needle: &[&str]) {
        for _ in 0..200 {
            if log_text()
                .lines()
                .any(|l| needle.iter().all(|n| l.contains(n)))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no log line with {needle:?}:\n{}", log_text());
    }

    async fn stop(self) -> Project {
        self.stop.cancel();
        let res = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("daemon stops")
            .expect("daemon task");
        res.expect("daemon ran");
        self.p
    }
}

/// A finished run of `dag_id` for the interval starting at `start`.
fn seed_run(p: &Project, dag_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
    let store = Store::open(&p.state()).expect("store");
    let run = store
        .with(|c| {
            store::create_run(
                c,
                &NewRun {
                    dag_id: dag_id.into(),
                    ds: start.format("%Y-%m-%d").to_string(),
                    start,
                    end,
                    run_type: RunType::Scheduled,
                    force: false,
                },
                Utc::now(),
            )
        })
        .expect("seed");
    store
        .with(|c| store::set_run_state(c, &run.run_id, State::Succeeded, Utc::now()))
        .expect("state");
}

fn minute_dag(id: &str, catchup: &str, max_active: u32, command: &str) -> String {
    format!(
        "id: {id}\nschedule:\n  cron: \"* * * * *\"\n  catchup: {catchup}\nmax_active_runs: {max_active}\ntasks:\n  - id: work\n    kind: command\n    command: \"{command}\"\n"
    )
}

fn dates(runs: &[Vec<String>]) -> Vec<&str> {
    runs.iter().map(|r| r[0].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_all_runs_every_missed_interval_in_order_then_the_next_on_time() {
    let p = Project::new();
    p.write_dag("c.yaml", &minute_dag("c", "all", 3, "true"));
    // Last run: the 09:54 interval; down until 10:00:05.
    seed_run(
        &p,
        "c",
        utc("2026-03-28T09:54:00Z"),
        utc("2026-03-28T09:55:00Z"),
    );
    let h = Harness::start(p, utc("2026-03-28T10:00:05Z"));
    let runs = h.finished_runs("c", 6).await;
    assert_eq!(
        dates(&runs),
        [
            "2026-03-28T09:54:00Z",
            "2026-03-28T09:55:00Z",
            "2026-03-28T09:56:00Z",
            "2026-03-28T09:57:00Z",
            "2026-03-28T09:58:00Z",
            "2026-03-28T09:59:00Z",
        ]
    );
    let types: Vec<&str> = runs.iter().skip(1).map(|r| r[1].as_str()).collect();
    // The 09:59 interval ended 5 s before the start: on time.
    assert_eq!(
        types,
        ["catchup", "catchup", "catchup", "catchup", "scheduled"]
    );
    h.clock.advance(chrono::Duration::minutes(1));
    let runs = h.finished_runs("c", 7).await;
    assert_eq!(runs[6][0], "2026-03-28T10:00:00Z");
    assert_eq!(runs[6][1], "scheduled");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_last_runs_only_the_newest_missed_interval() {
    let p = Project::new();
    p.write_dag("l.yaml", &minute_dag("l", "last", 1, "true"));
    seed_run(
        &p,
        "l",
        utc("2026-03-28T09:54:00Z"),
        utc("2026-03-28T09:55:00Z"),
    );
    let h = Harness::start(p, utc("2026-03-28T10:00:30Z"));
    let runs = h.finished_runs("l", 2).await;
    assert_eq!(runs[1][0], "2026-03-28T09:59:00Z");
    assert_eq!(runs[1][1], "catchup");
    // Two minutes on: again only the newest.
    h.clock.advance(chrono::Duration::minutes(2));
    let runs = h.finished_runs("l", 3).await;
    assert_eq!(runs[2][0], "2026-03-28T10:01:00Z", "{runs:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_none_skips_missed_intervals_and_runs_the_next_on_time() {
    let p = Project::new();
    p.write_dag("n.yaml", &minute_dag("n", "none", 1, "true"));
    seed_run(
        &p,
        "n",
        utc("2026-03-28T09:54:00Z"),
        utc("2026-03-28T09:55:00Z"),
    );
    // 30 s after the 09:59 interval ended: too late to count as on time.
    let h = Harness::start(p, utc("2026-03-28T10:00:30Z"));
    h.clock.set(utc("2026-03-28T10:01:02Z"));
    let runs = h.finished_runs("n", 2).await;
    assert_eq!(runs[1][0], "2026-03-28T10:00:00Z", "the gap is skipped");
    assert_eq!(runs[1][1], "scheduled");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_runs_one_never_overlaps_runs() {
    let p = Project::new();
    p.write_dag("m.yaml", &minute_dag("m", "all", 1, "sleep 0.3"));
    seed_run(
        &p,
        "m",
        utc("2026-03-28T09:55:00Z"),
        utc("2026-03-28T09:56:00Z"),
    );
    let h = Harness::start(p, utc("2026-03-28T10:00:05Z"));
    let runs = h.finished_runs("m", 5).await;
    let spans: Vec<(&str, &str)> = runs[1..]
        .iter()
        .map(|r| (r[3].as_str(), r[4].as_str()))
        .collect();
    for (i, a) in spans.iter().enumerate() {
        for b in spans.iter().skip(i + 1) {
            assert!(
                !(a.0 < b.1 && b.0 < a.1),
                "runs overlap with max_active_runs 1: {spans:?}"
            );
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_runs_three_runs_three_at_once() {
    let p = Project::new();
    p.write_dag("t.yaml", &minute_dag("t", "all", 3, "sleep 0.5"));
    seed_run(
        &p,
        "t",
        utc("2026-03-28T09:56:00Z"),
        utc("2026-03-28T09:57:00Z"),
    );
    let h = Harness::start(p, utc("2026-03-28T10:00:05Z"));
    let runs = h.finished_runs("t", 4).await;
    let spans: Vec<(&str, &str)> = runs[1..]
        .iter()
        .map(|r| (r[3].as_str(), r[4].as_str()))
        .collect();
    let all_overlap = spans
        .iter()
        .all(|a| spans.iter().all(|b| a.0 < b.1 && b.0 < a.1));
    assert!(all_overlap, "three runs at once expected: {spans:?}");
    h.stop().await;
}

const BERLIN: &str = "id: berlin\nschedule:\n  cron: \"30 2 * * *\"\n  timezone: Europe/Berlin\n  catchup: all\ntasks:\n  - id: a\n    kind: empty\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berlin_daily_runs_once_across_both_dst_changes() {
    let p = Project::new();
    p.write_dag("b.yaml", BERLIN);
    // Spring: 02:30 does not exist on 29 March; the tick comes at 03:00 CEST.
    seed_run(
        &p,
        "berlin",
        utc("2026-03-27T01:30:00Z"),
        utc("2026-03-28T01:30:00Z"),
    );
    let h = Harness::start(p, utc("2026-03-29T00:59:00Z"));
    h.clock.set(utc("2026-03-29T01:00:05Z"));
    let runs = h.finished_runs("berlin", 2).await;
    assert_eq!(runs[1][0], "2026-03-28T01:30:00Z");
    h.clock.set(utc("2026-03-30T00:30:05Z"));
    let runs = h.finished_runs("berlin", 3).await;
    assert_eq!(runs[2][0], "2026-03-29T01:00:00Z");
    let p = h.stop().await;
    let intervals = p.query(
        "SELECT REPLACE(data_interval_start, '.000Z', 'Z'), REPLACE(data_interval_end, '.000Z', 'Z')
         FROM dag_runs WHERE dag_id = 'berlin' ORDER BY logical_date",
    );
    // The interval across the change is 23 hours long.
    assert_eq!(
        intervals[1],
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"]
    );

    drop(p);

    // Autumn: 02:30 of 25 October happens twice on the wall; one run.
    let p = Project::new();
    p.write_dag("b.yaml", BERLIN);
    seed_run(
        &p,
        "berlin",
        utc("2026-10-23T00:30:00Z"),
        utc("2026-10-24T00:30:00Z"),
    );
    let h = Harness::start(p, utc("2026-10-24T12:00:00Z"));
    h.clock.set(utc("2026-10-25T00:30:05Z"));
    let runs = h.finished_runs("berlin", 2).await;
    assert_eq!(runs[1][0], "2026-10-24T00:30:00Z");
    // 02:30 CET, an hour later: nothing new; the next day's tick is.
    h.clock.set(utc("2026-10-25T01:30:05Z"));
    h.clock.set(utc("2026-10-26T01:30:05Z"));
    let runs = h.finished_runs("berlin", 3).await;
    assert_eq!(runs[2][0], "2026-10-25T00:30:00Z");
    let p = h.stop().await;
    let intervals = p.query(
        "SELECT REPLACE(data_interval_start, '.000Z', 'Z'), REPLACE(data_interval_end, '.000Z', 'Z')
         FROM dag_runs WHERE dag_id = 'berlin' ORDER BY logical_date",
    );
    // The interval across the change is 25 hours long.
    assert_eq!(
        intervals[2],
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_keeps_the_previous_valid_version_on_an_invalid_edit() {
    let p = Project::new();
    let v1 = "id: hot\nschedule:\n  cron: \"* * * * *\"\n  catchup: none\ntasks:\n  - id: a\n    kind: empty\n";
    let file = p.write_dag("hot.yaml", v1);
    // A DAG without history runs its newest interval on start (v1).
    let h = Harness::start(p, utc("2026-03-28T10:00:30Z"));
    h.wait_log(&["DAG loaded", "dag=hot", "tasks=1"]).await;
    h.finished_runs("hot", 1).await;
    let v2 = format!("{v1}  - id: b\n    kind: empty\n    depends_on: [a]\n");
    std::fs::write(&file, &v2).expect("edit");
    h.reload.send(()).await.expect("reload");
    h.wait_log(&["DAG loaded", "dag=hot", "tasks=2"]).await;
    std::fs::write(&file, format!("{v2}    retries: lots\n")).expect("bad edit");
    h.reload.send(()).await.expect("reload");
    h.wait_log(&["keeping the previous valid version", "dag=hot"])
        .await;
    assert!(
        log_text().contains("hot.yaml:11:5: tasks[1].retries: invalid type"),
        "{}",
        log_text()
    );
    // The next scheduled run uses version 2 (tasks a and b).
    h.clock.set(utc("2026-03-28T10:01:02Z"));
    let runs = h.finished_runs("hot", 2).await;
    assert_eq!(
        dates(&runs),
        ["2026-03-28T09:59:00Z", "2026-03-28T10:00:00Z"]
    );
    let tasks = |date: &str| {
        h.p.query(&format!(
            "SELECT t.task_id FROM task_instances t JOIN dag_runs r USING (run_id)
             WHERE r.dag_id = 'hot' AND r.logical_date LIKE '{date}%' ORDER BY t.task_id"
        ))
    };
    assert_eq!(tasks("2026-03-28T09:59"), [["a"]]);
    assert_eq!(tasks("2026-03-28T10:00"), [["a"], ["b"]]);
    h.stop().await;
}
