//! A kill storm: the daemon runs the main job on the demo lake and is
//! killed with SIGKILL at random moments, then restarted, again and again.
//! At the end the run has succeeded, every output partition holds exactly
//! one file, nothing is left in the staging area, one email went out for
//! the date, no attempt is left `running`, and every extra attempt of a
//! task is one that a kill interrupted.
//!
//! CI runs 5 kills; `scripts/kill_storm.sh N` runs N (50 by default) and
//! prints what each restart found. `RESTOCK_KILL_STORM_SEED` replays one.
//! The gap before a kill shrinks as N grows, so that 50 kills fit in one
//! run rather than the run finishing first.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::signal::Signal;
use rand::{RngExt, SeedableRng};

use common::daemon::Daemon;
use common::{Project, wait_for};
use restock::schedule::{Catchup, Schedule};

const DAG: &str = "nightly_inventory";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The date the daemon will find due for the main job right now.
fn due_date() -> chrono::NaiveDate {
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().expect("zone");
    let s = Schedule::new("0 2 * * *", tz, Catchup::Last).expect("schedule");
    let iv = s.latest_complete(Utc::now()).expect("interval");
    iv.start.with_timezone(&tz).date_naive()
}

/// The example project and a small demo lake ending on `date`; the main
/// job trains for fewer epochs so the storm stays short.
fn project(date: chrono::NaiveDate) -> Project {
    let p = Project::new();
    let o = p
        .restock()
        .args(["demo", "--no-run", "--end-date", &date.to_string()])
        .output()
        .expect("restock demo");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(p.path().join("jobs/example.yaml")).expect("one DAG only");
    let file = p.path().join("jobs/nightly_inventory.yaml");
    let yaml = std::fs::read_to_string(&file).expect("main job");
    assert!(yaml.contains("epochs: 8"), "the main job trains 8 epochs");
    std::fs::write(&file, yaml.replace("epochs: 8", "epochs: 2")).expect("fewer epochs");
    p
}

/// `p.query`, or no rows while the first daemon has not yet created the
/// history (a kill can land while it is creating the file).
fn query(p: &Project, sql: &str) -> Vec<Vec<String>> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE;
    let ready = rusqlite::Connection::open_with_flags(p.state(), flags)
        .and_then(|c| c.query_row("SELECT count(*) FROM task_attempts", [], |_| Ok(())));
    if ready.is_ok() {
        p.query(sql)
    } else {
        Vec::new()
    }
}

/// Attempts marked running: (task, try).
fn running(p: &Project) -> BTreeSet<(String, i64)> {
    query(
        p,
        "SELECT task_id, try_number FROM task_attempts WHERE state = 'running'",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().expect("try")))
    .collect()
}

fn finished_tasks(p: &Project) -> BTreeSet<String> {
    query(
        p,
        "SELECT task_id FROM task_instances WHERE state IN ('succeeded', 'skipped')",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

fn run_state(p: &Project) -> Option<String> {
    query(
        p,
        &format!("SELECT state FROM dag_runs WHERE dag_id = '{DAG}'"),
    )
    .into_iter()
    .next()
    .map(|r| r[0].clone())
}

/// Tasks with an attempt in the history.
fn started_tasks(p: &Project) -> BTreeSet<String> {
    query(p, "SELECT DISTINCT task_id FROM task_attempts")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

/// How far the run has got: tasks started at least once, tasks final.
fn progress(p: &Project) -> (usize, usize) {
    (started_tasks(p).len(), finished_tasks(p).len())
}

/// Kill the daemon `kills` times and return the attempts each kill
/// interrupted. The kills are spread over the whole run: the run passes
/// through about `2 × tasks` steps (each task's first start and its
/// end), and before each kill the daemon is let reach the next step with
/// probability (steps left − 1) / (kills left), so the steps are used up
/// evenly over the storm and the run is still unfinished at its last
/// kill. Otherwise (and after that step) it is killed at a random moment
/// within a gap that shrinks as N grows, `RESTOCK_KILL_STORM_GAP_MS`
/// (5000 / N ms, between 50 ms and 1 s): with 50 kills most lives end
/// while the daemon is starting, adopting the dead run or a few tasks in.
fn storm(p: &Project, kills: usize, seed: u64) -> Vec<BTreeSet<(String, i64)>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let default_gap = (5000 / kills.max(1) as u64).clamp(50, 1000);
    let gap_ms: u64 = env_or("RESTOCK_KILL_STORM_GAP_MS", default_gap);
    let steps = 2 * task_count(p);
    println!("gap up to {gap_ms} ms, {steps} steps in the run");
    let mut killed = Vec::new();
    let t0 = Instant::now();
    for k in 1..=kills {
        let (orphans, before) = (running(p), progress(p));
        let steps_left = steps.saturating_sub(before.0 + before.1);
        let advance = (steps_left.saturating_sub(1) as f64 / (kills - k + 1) as f64).min(1.0);
        let d = Daemon::start(p, "5s", "1s");
        let t = Instant::now();
        if rng.random_bool(advance) {
            wait_for(Duration::from_secs(600), || {
                (progress(p) != before || run_state(p).as_deref() == Some("succeeded"))
                    .then_some(())
            });
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=gap_ms)));
        let hit = kill(p, d);
        println!(
            "restart {k:>2} at {:>6.1}s found {} started, {} final, orphaned {:?}; killed after {:.1}s with {:?} running",
            t0.elapsed().as_secs_f64(),
            before.0,
            before.1,
            orphans,
            t.elapsed().as_secs_f64(),
            hit
        );
        killed.push(hit);
        if run_state(p).as_deref() == Some("succeeded") {
            println!("the run finished before kill {k}; the storm ends here");
            break;
        }
    }
    killed
}

/// The number of tasks of the main job.
fn task_count(p: &Project) -> usize {
    let file = p.path().join(format!("jobs/{DAG}.yaml"));
    let registry = restock::tasks::Registry::builtin();
    match restock::dag::compile_file(&file, &registry, p.path()) {
        Ok(dag) => dag.tasks.len(),
        Err(e) => panic!("the main job compiles: {e:?}"),
    }
}

/// SIGKILL the daemon and return the attempts it left running.
fn kill(p: &Project, mut d: Daemon) -> BTreeSet<(String, i64)> {
    d.signal(Signal::SIGKILL);
    d.wait_exit(10);
    running(p)
}

#[test]
fn kill_storm_leaves_one_clean_run() {
    let kills: usize = env_or("RESTOCK_KILL_STORM_KILLS", 5);
    let seed: u64 = env_or("RESTOCK_KILL_STORM_SEED", rand::rng().random());
    println!("kill storm: {kills} kills, seed {seed}");
    let date = due_date();
    let p = project(date);
    let killed = storm(&p, kills, seed);

    let found = running(&p);
    let d = Daemon::start(&p, "5s", "1s");
    let t = Instant::now();
    wait_for(Duration::from_secs(900), || {
        (run_state(&p).as_deref() == Some("succeeded")).then_some(())
    })
    .unwrap_or_else(|| panic!("the run did not succeed:\n{}", d.log()));
    println!(
        "final restart found {} final, orphaned {found:?}; finished in {:.1}s",
        finished_tasks(&p).len(),
        t.elapsed().as_secs_f64()
    );
    drop(d);
    check_history(&p, &killed);
    check_lake(&p.path().join("lake"), date);
    check_outbox(&p.path().join("outbox"), date);
    check_same_as_undisturbed(&p.path().join("lake"), date);
}

/// The tables whose content a kill must not change: every task of the
/// main job is deterministic for a given lake and date (seeded training,
/// thread-count independent gradients).
const DETERMINISTIC: &[&str] = &[
    "curated/daily_sales",
    "curated/inventory_position",
    "curated/product_master",
    "forecasts",
    "reorder_plans",
    "anomalies",
];

/// The same project run once without kills writes the same rows (read
/// back with pyarrow, rows sorted) to every deterministic table.
fn check_same_as_undisturbed(stormed: &Path, date: chrono::NaiveDate) {
    let calm = project(date);
    let o = calm
        .restock()
        .args(["run", "nightly_inventory", "--date", &date.to_string()])
        .output()
        .expect("restock run");
    assert!(
        o.status.success(),
        "undisturbed run: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let script = format!(
        r#"
import pyarrow.parquet as pq
for t in {tables:?}:
    def rows(lake):
        tbl = pq.read_table(f"{{lake}}/{{t}}/ds={date}")
        return sorted(tuple(str(v) for v in r.values()) for r in tbl.to_pylist())
    a, b = rows("{a}"), rows("{b}")
    print(t, "same" if a == b else f"differs ({{len(a)}} vs {{len(b)}} rows)")
    if a != b:
        names = pq.read_table(f"{a}/{{t}}/ds={date}").column_names
        for x, y in [(x, y) for x, y in zip(a, b) if x != y][:3]:
            print("  ", {{n: (u, v) for n, u, v in zip(names, x, y) if u != v}})
"#,
        tables = DETERMINISTIC,
        a = stormed.display(),
        b = calm.path().join("lake").display(),
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    print!("{out}");
    for t in DETERMINISTIC {
        assert!(
            out.contains(&format!("{t} same")),
            "{t} after the storm: {out}"
        );
    }
}

/// One run; nothing running; every task succeeded once; every other
/// attempt was interrupted by a kill.
fn check_history(p: &Project, killed: &[BTreeSet<(String, i64)>]) {
    let runs = p.query(&format!(
        "SELECT state, generation FROM dag_runs WHERE dag_id = '{DAG}'"
    ));
    assert_eq!(runs, vec![vec!["succeeded".to_string(), "1".to_string()]]);
    assert_eq!(running(p), BTreeSet::new(), "no attempt left running");
    let all_killed: BTreeSet<(String, i64)> = killed.iter().flatten().cloned().collect();
    let attempts = p.query(
        "SELECT task_id, try_number, state, IFNULL(error, '') FROM task_attempts ORDER BY task_id, try_number",
    );
    let mut per_task: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for a in &attempts {
        let key = (a[0].clone(), a[1].parse::<i64>().expect("try"));
        let entry = per_task.entry(a[0].clone()).or_default();
        if a[2] == "succeeded" {
            entry.0 += 1;
        } else {
            assert!(
                all_killed.contains(&key),
                "{key:?} ended {} ({}) without a kill",
                a[2],
                a[3]
            );
            assert_eq!(
                (a[2].as_str(), a[3].as_str()),
                ("failed", "process died"),
                "{key:?}"
            );
            entry.1 += 1;
        }
    }
    for (task, (ok, died)) in &per_task {
        assert_eq!(*ok, 1, "{task}: one successful attempt; {attempts:?}");
        println!(
            "{task}: {} attempt(s), {died} interrupted by a kill",
            ok + died
        );
    }
    let hit: usize = per_task.values().map(|v| v.1).sum();
    assert_eq!(
        hit,
        all_killed.len(),
        "every killed attempt is in the history"
    );
}

/// Each output partition of the date holds exactly one file, and nothing
/// is left in the staging area.
fn check_lake(lake: &Path, date: chrono::NaiveDate) {
    let part = format!("ds={date}");
    let mut dirs = Vec::new();
    let mut stack = vec![lake.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read lake").flatten() {
            let path = e.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == part.as_str()) {
                    dirs.push(path.clone());
                }
                stack.push(path);
            }
        }
    }
    let outputs: Vec<_> = dirs
        .iter()
        .filter(|d| !d.starts_with(lake.join("raw")) && !d.starts_with(lake.join("_staging")))
        .collect();
    assert!(outputs.len() >= 6, "the main job's outputs: {outputs:?}");
    for d in outputs {
        let files: Vec<_> = std::fs::read_dir(d)
            .expect("partition")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 1, "{}: {files:?}", d.display());
    }
    let staging = lake.join("_staging");
    let mut left = Vec::new();
    let mut stack = vec![staging];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                left.push(e.path());
            }
        }
    }
    assert_eq!(left, Vec::<std::path::PathBuf>::new(), "staging leftovers");
}

/// Exactly one report for the date in the outbox.
fn check_outbox(outbox: &Path, date: chrono::NaiveDate) {
    let mails: Vec<String> = std::fs::read_dir(outbox)
        .expect("outbox")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("eml"))
        .collect();
    let for_date = mails
        .iter()
        .filter(|m| m.contains(&date.to_string()))
        .count();
    assert_eq!((mails.len(), for_date), (1, 1), "one email for {date}");
}
