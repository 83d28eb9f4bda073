//! A write that dies half-way (its future dropped, or the whole process
//! killed with SIGKILL) leaves the previous partition intact and nothing
//! partial where readers look; the next write clears the leftovers.

use crate::lake_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use lake_support::*;
use restock::lake::Lake;

const SMALL: &str =
    "SELECT value AS v, CAST(value AS DOUBLE) / 2 AS r FROM generate_series(1, 10)\n";
/// Several row groups of incompressible doubles: the upload is multipart
/// (well over the 10 MiB buffer) and takes a while.
const BIG: &str = "SELECT value AS v, random() AS r FROM generate_series(1, 6000000)\n";

const DAG: &str = r#"
id: crash
tasks:
  - id: q
    kind: sql
    sql: sql/q.sql
    output: { table: curated/q, partition_by: ds }
"#;

const FINAL: &str = "curated/q/ds=2026-11-27/part-00000.parquet";

/// An upload in progress: the local store writes `<key>#<n>` in the
/// staging folder.
fn upload_in_progress(lake_dir: &std::path::Path) -> bool {
    local_files(&lake_dir.join("_staging"))
        .iter()
        .any(|f| f.contains('#'))
}

fn assert_previous_intact(lake_dir: &std::path::Path) {
    assert_eq!(
        local_files(&lake_dir.join("curated")),
        vec!["q/ds=2026-11-27/part-00000.parquet"],
        "only the previous file is visible"
    );
    let read = pyarrow_read(&lake_dir.join(FINAL));
    assert_eq!(read["rows"], 10, "the previous partition is unchanged");
    assert_eq!(read["data"][9], serde_json::json!({"v": 10, "r": 5.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_write_leaves_previous_partition() {
    let project = Project::new(&[("q.sql", SMALL)]);
    let lake_dir = project.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().expect("utf8")).expect("lake");
    let services = services(lake.clone());
    let dag = project.dag(DAG);
    run_task(&dag, "q", &services, "2026-11-27")
        .await
        .expect("first write");
    assert_previous_intact(&lake_dir);

    project.write("sql/q.sql", BIG);
    let (d, s) = (dag.clone(), services.clone());
    let handle = tokio::spawn(async move { run_task(&d, "q", &s, "2026-11-27").await });
    let dir = lake_dir.clone();
    let seen = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(180), || upload_in_progress(&dir))
    })
    .await
    .expect("poll");
    assert!(seen, "the big write never started uploading");
    handle.abort();
    assert!(handle.await.expect_err("aborted").is_cancelled());

    assert_previous_intact(&lake_dir);

    // The next write clears the staging folder and publishes.
    project.write("sql/q.sql", SMALL);
    run_task(&dag, "q", &services, "2026-11-27")
        .await
        .expect("write after the crash");
    assert_previous_intact(&lake_dir);
    assert_eq!(
        local_files(&lake_dir.join("_staging")),
        Vec::<String>::new()
    );
}

#[test]
fn killed_process_leaves_previous_partition() {
    let project = Project::new(&[("q.sql", SMALL)]);
    project.write("jobs/crash.yaml", DAG);
    let lake_dir = project.path().join("lake");
    let restock = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_restock"));
        c.current_dir(project.path())
            .env_remove("RESTOCK_CONFIG")
            .env("RESTOCK_LAKE", &lake_dir)
            .args(["run", "crash", "--date", "2026-11-27", "--force"]);
        c
    };
    let o = restock().output().expect("run restock");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_previous_intact(&lake_dir);

    project.write("sql/q.sql", BIG);
    let mut child = restock()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn restock");
    let seen = wait_until(Duration::from_secs(180), || upload_in_progress(&lake_dir));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(seen, "the big write never started uploading");

    assert_previous_intact(&lake_dir);
    assert!(
        upload_in_progress(&lake_dir),
        "a killed process leaves its partial upload, hidden in _staging"
    );

    project.write("sql/q.sql", SMALL);
    let o = restock().output().expect("run restock");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_previous_intact(&lake_dir);
    assert_eq!(
        local_files(&lake_dir.join("_staging")),
        Vec::<String>::new(),
        "the next write to the partition removes the leftover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_write_is_interrupted_and_cleaned_up() {
    let project = Project::new(&[("q.sql", SMALL)]);
    let lake_dir = project.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().expect("utf8")).expect("lake");
    let services = services(lake.clone());
    let dag = project.dag(DAG);
    run_task(&dag, "q", &services, "2026-11-27")
        .await
        .expect("first write");

    project.write("sql/q.sql", BIG);
    let cx = attempt(&dag, "q", &services, "2026-11-27");
    let cancel = cx.cancel.clone();
    let d = dag.clone();
    let handle = tokio::spawn(async move {
        let t = d.task("q").expect("task");
        t.runner.run(&cx).await
    });
    let dir = lake_dir.clone();
    let seen = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(180), || upload_in_progress(&dir))
    })
    .await
    .expect("poll");
    assert!(seen, "the big write never started uploading");
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("stops promptly after cancel")
        .expect("join");
    let err = result.expect_err("a cancelled write fails");
    assert!(
        matches!(err, restock::tasks::TaskError::Interrupted(_)),
        "{err:?}"
    );
    assert_previous_intact(&lake_dir);
    // The aborted upload and its staged key are removed at once.
    let clean = wait_until(Duration::from_secs(5), || {
        local_files(&lake_dir.join("_staging")).is_empty()
    });
    assert!(clean, "{:?}", local_files(&lake_dir.join("_staging")));
}
