//! The real `restock daemon` process on the wall clock: a catchup smoke
//! test, SIGKILL and restart (resume without rerunning finished tasks),
//! SIGTERM (graceful, and past the grace period) and SIGHUP. Scheduling
//! itself (catchup policies, DST, max_active_runs, hot reload) is tested
//! with a controllable clock in `daemon_clock.rs`; none of these tests
//! waits for a cron minute to pass.

use crate::common;

use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;
use nix::sys::signal::Signal;

use common::daemon::Daemon;
use common::{Project, wait_for};
use restock::schedule::{Catchup, Schedule};
use restock::store::{self, NewRun, RunType, State, Store};

/// What the state database and the daemon log say, for failure messages.
fn diagnose(p: &Project, d: &Daemon) -> String {
    let runs = p.query("SELECT run_id, run_type, state FROM dag_runs ORDER BY logical_date");
    let errors = p.query(
        "SELECT run_id, task_id, try_number, state, IFNULL(error, '') FROM task_attempts WHERE state != 'succeeded'",
    );
    format!(
        "runs: {runs:?}\nattempts not succeeded: {errors:?}\ndaemon log:\n{}",
        d.log()
    )
}

fn every_minute() -> Schedule {
    Schedule::new("* * * * *", Tz::UTC, Catchup::All).expect("schedule")
}

/// Record a finished run `minutes` before the newest complete interval, as
/// if the daemon had been down since.
fn seed_history(p: &Project, dag_id: &str, minutes: i64) -> chrono::DateTime<Utc> {
    let s = every_minute();
    let latest = s.latest_complete(Utc::now()).expect("latest");
    let start = latest.start - chrono::Duration::minutes(minutes);
    let store = Store::open(&p.state()).expect("store");
    let run = store
        .with(|c| {
            store::create_run(
                c,
                &NewRun {
                    dag_id: dag_id.into(),
                    ds: start.format("%Y-%m-%d").to_string(),
                    start,
                    end: start + chrono::Duration::minutes(1),
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
    start
}

fn runs_after(p: &Project, dag: &str, after: &str) -> Vec<Vec<String>> {
    p.query(&format!(
        "SELECT logical_date, run_type, state, started_at, ended_at FROM dag_runs
         WHERE dag_id = '{dag}' AND logical_date > '{after}' ORDER BY logical_date"
    ))
}

fn minute_dag(id: &str, catchup: &str, max_active: u32, command: &str) -> String {
    format!(
        "id: {id}\nschedule:\n  cron: \"* * * * *\"\n  catchup: {catchup}\nmax_active_runs: {max_active}\ntasks:\n  - id: work\n    kind: command\n    command: \"{command}\"\n"
    )
}

#[test]
fn catchup_all_runs_every_missed_interval_in_order() {
    let p = Project::new();
    p.write_dag("c.yaml", &minute_dag("c", "all", 3, "true"));
    let seed = store::ts(seed_history(&p, "c", 5));
    let d = Daemon::start(&p, "5s", "1s");
    let runs = wait_for(Duration::from_secs(60), || {
        let r = runs_after(&p, "c", &seed);
        (r.len() >= 5 && r.iter().all(|x| x[2] == "succeeded")).then_some(r)
    })
    .unwrap_or_else(|| panic!("five catchup runs expected\n{}", diagnose(&p, &d)));
    let starts: Vec<chrono::DateTime<Utc>> =
        runs.iter().map(|r| r[0].parse().expect("ts")).collect();
    let seed_t: chrono::DateTime<Utc> = seed.parse().expect("ts");
    assert_eq!(
        starts[0],
        seed_t + chrono::Duration::minutes(1),
        "no gap after history"
    );
    for w in starts.windows(2) {
        assert_eq!(w[1] - w[0], chrono::Duration::minutes(1), "{runs:?}");
    }
    assert!(
        runs.iter().take(4).all(|r| r[1] == "catchup"),
        "missed intervals are catchup runs: {runs:?}"
    );
}

fn resumable_dag(p: &Project) -> String {
    format!(
        r#"id: resume
schedule:
  cron: "0 0 * * *"
tasks:
  - id: first
    kind: command
    command: "echo ran >> {root}/first.count"
  - id: slow
    kind: command
    depends_on: [first]
    command: "if [ -f {root}/slow.once ]; then exit 0; fi; touch {root}/slow.once; sleep 60"
  - id: last
    kind: command
    depends_on: [slow]
    command: "echo ran >> {root}/last.count"
"#,
        root = p.path().display()
    )
}

#[test]
fn sigkill_mid_run_then_restart_resumes_without_rerunning_finished_tasks() {
    let p = Project::new();
    p.write_dag("r.yaml", &resumable_dag(&p));
    let mut d = Daemon::start(&p, "5s", "1s");
    wait_for(Duration::from_secs(20), || {
        p.path().join("slow.once").exists().then_some(())
    })
    .expect("slow task started");
    d.signal(Signal::SIGKILL);
    d.wait_exit(10);
    let run = p.query("SELECT run_id, state FROM dag_runs WHERE dag_id = 'resume'");
    assert_eq!(run.len(), 1);
    assert_eq!(
        run[0][1], "running",
        "a killed process leaves its run running"
    );

    let d2 = Daemon::start(&p, "5s", "1s");
    let run_id = run[0][0].clone();
    wait_for(Duration::from_secs(20), || {
        let r = p.query(&format!(
            "SELECT state FROM dag_runs WHERE run_id = '{run_id}'"
        ));
        (r[0][0] == "succeeded").then_some(())
    })
    .unwrap_or_else(|| panic!("run not resumed to success:\n{}", d2.log()));
    let first = std::fs::read_to_string(p.path().join("first.count")).expect("first ran");
    assert_eq!(first.lines().count(), 1, "a finished task must not rerun");
    let attempts = p.query(&format!(
        "SELECT task_id, try_number, state, IFNULL(error, '') FROM task_attempts WHERE run_id = '{run_id}' ORDER BY task_id, try_number"
    ));
    let slow: Vec<&Vec<String>> = attempts.iter().filter(|a| a[0] == "slow").collect();
    assert_eq!(slow.len(), 2, "{attempts:?}");
    assert_eq!(slow[0][2], "failed");
    assert_eq!(slow[0][3], "process died");
    assert_eq!(slow[1][2], "succeeded");
    assert_eq!(attempts.iter().filter(|a| a[0] == "first").count(), 1);
    assert_eq!(attempts.iter().filter(|a| a[0] == "last").count(), 1);
}

#[test]
fn sigterm_lets_running_attempts_finish_then_exits_zero() {
    let p = Project::new();
    p.write_dag(
        "g.yaml",
        &format!(
            "id: graceful\nschedule:\n  cron: \"0 0 * * *\"\ntasks:\n  - id: a\n    kind: command\n    command: \"touch {root}/a.started; sleep 1.5\"\n  - id: b\n    kind: empty\n    depends_on: [a]\n",
            root = p.path().display()
        ),
    );
    let mut d = Daemon::start(&p, "20s", "1s");
    wait_for(Duration::from_secs(20), || {
        p.path().join("a.started").exists().then_some(())
    })
    .expect("a started");
    d.signal(Signal::SIGTERM);
    let st = d.wait_exit(15);
    assert!(st.success(), "exit {st:?}\n{}", d.log());
    let tis = p.query("SELECT task_id, state FROM task_instances ORDER BY task_id");
    assert_eq!(
        tis,
        vec![vec!["a".to_string(), "succeeded".to_string()]],
        "b must not start after SIGTERM"
    );
    let runs = p.query("SELECT run_id, state FROM dag_runs");
    assert_eq!(runs[0][1], "interrupted");

    // The next start finishes the run.
    let _d2 = Daemon::start(&p, "20s", "1s");
    let run_id = runs[0][0].clone();
    wait_for(Duration::from_secs(20), || {
        let r = p.query(&format!(
            "SELECT state FROM dag_runs WHERE run_id = '{run_id}'"
        ));
        (r[0][0] == "succeeded").then_some(())
    })
    .expect("resumed");
    let a = p.query("SELECT COUNT(*) FROM task_attempts WHERE task_id = 'a'");
    assert_eq!(a[0][0], "1");
}

#[test]
fn sigterm_past_the_grace_period_interrupts_attempts() {
    let p = Project::new();
    p.write_dag(
        "i.yaml",
        &format!(
            "id: hard\nschedule:\n  cron: \"0 0 * * *\"\ntasks:\n  - id: a\n    kind: command\n    command: \"touch {root}/a.started; sleep 60\"\n",
            root = p.path().display()
        ),
    );
    let mut d = Daemon::start(&p, "1s", "1s");
    wait_for(Duration::from_secs(20), || {
        p.path().join("a.started").exists().then_some(())
    })
    .expect("a started");
    d.signal(Signal::SIGTERM);
    let st = d.wait_exit(15);
    assert!(st.success(), "exit {st:?}");
    let att = p.query("SELECT state FROM task_attempts WHERE task_id = 'a'");
    assert_eq!(att, vec![vec!["interrupted".to_string()]]);
    let runs = p.query("SELECT state FROM dag_runs");
    assert_eq!(runs[0][0], "interrupted");
}

#[test]
fn sighup_reloads_immediately() {
    let p = Project::new();
    let v1 = "id: hup\ntasks:\n  - id: a\n    kind: empty\n";
    let file = p.write_dag("hup.yaml", v1);
    // Polling effectively off: only SIGHUP can reload.
    let d = Daemon::start(&p, "5s", "1h");
    d.wait_log("DAG loaded dag=hup file=jobs/hup.yaml tasks=1", 20);
    std::fs::write(&file, format!("{v1}  - id: b\n    kind: empty\n")).expect("edit");
    std::thread::sleep(Duration::from_millis(300));
    d.signal(Signal::SIGHUP);
    d.wait_log("DAG loaded dag=hup file=jobs/hup.yaml tasks=2", 10);
}
