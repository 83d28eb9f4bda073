//! Central cancellation reaches `train`'s worker threads: a training run
//! far longer than its timeout stops within the grace period, so the real
//! `restock run` process exits instead of waiting for the threads.

use crate::common;
use crate::seasonal_lake;

use std::time::{Duration, Instant};

use common::Project;
use seasonal_lake::{DAYS, partition, start};

const DAG: &str = r#"id: long_train
tables:
  daily: { path: daily, partition_by: [ds] }
tasks:
  - id: train
    kind: train
    timeout: 3s
    input: daily
    series_key: [store, sku]
    group_by: category
    horizon: 7
    model: { context: 14, hidden: 8, epochs: 100000, patience: 100000, batch_size: 32, batches_per_epoch: 4, seed: 3 }
"#;

#[test]
fn a_timeout_stops_the_training_threads() {
    let p = Project::new();
    partition(&p.path().join("lake"), DAYS, 1.0);
    p.write_dag("t.yaml", DAG);
    let day = start() + chrono::Days::new(DAYS as u64 - 1);
    let t0 = Instant::now();
    let mut child = p
        .restock()
        .args(["run", "long_train", "--date", &day.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    let status = common::wait_for(Duration::from_secs(60), || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        panic!(
            "`restock run` still running 60 s after a 3 s timeout: training threads did not stop"
        );
    };
    assert!(!status.success());
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let rows = p.query("SELECT state, error FROM task_attempts WHERE task_id = 'train'");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0][1].contains("timed out after 3s"), "{rows:?}");
    let log = std::fs::read_to_string(p.path().join(format!(
        ".restock/logs/long_train/long_train.{}T000000Z/train/1.log",
        day.format("%Y%m%d")
    )))
    .expect("log");
    assert!(log.contains("epoch"), "training never started: {log}");
}
