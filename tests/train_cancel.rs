//! Central cancellation reaches `train`'s worker threads: a training run
//! far longer than its timeout stops within the grace period, so the real
//! `restock run` process exits instead of waiting for the threads.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::NaiveDate;
use common::Project;
use parquet::arrow::ArrowWriter;

const SERIES: usize = 40;
const DAYS: usize = 200;

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, 1).expect("date")
}

/// Weekly-seasonal demand with ±30% deterministic noise; `spike` multiplies
/// the last day of group `G1`.
fn partition(lake: &Path, days: usize, spike: f64) {
    let (mut store, mut sku, mut cat, mut date, mut units) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    for g in ["G1", "G2"] {
        for i in 0..SERIES {
            let level = 5.0 + (i % 7) as f64;
            for t in 0..days {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let noise = 0.7 + 0.6 * ((x >> 11) as f64 / (1u64 << 53) as f64);
                let weekly = [1.0, 0.8, 0.8, 0.9, 1.1, 1.6, 1.4][t % 7];
                let mut v = (level * weekly * noise).round();
                if g == "G1" && t + 1 == days {
                    v *= spike;
                }
                let day = start() + chrono::Days::new(t as u64);
                store.push("S1".to_string());
                sku.push(format!("{g}_{i:02}"));
                cat.push(g.to_string());
                date.push((day - epoch).num_days() as i32);
                units.push(v);
            }
        }
    }
    let ds = start() + chrono::Days::new(days as u64 - 1);
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("store", Arc::new(StringArray::from(store))),
        ("sku", Arc::new(StringArray::from(sku))),
        ("category", Arc::new(StringArray::from(cat))),
        ("date", Arc::new(Date32Array::from(date))),
        ("units", Arc::new(Float64Array::from(units))),
    ];
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch");
    let dir = lake.join(format!("daily/ds={ds}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part-00000.parquet")).expect("file");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

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
