//! The accuracy loop through the real binary: night 1 trains and
//! forecasts; night 2 scores night 1's forecast against what sold, writes
//! `forecast_accuracy`, and with `retrain: on_drift` retrains only the group
//! whose demand broke away from its forecast. Read back by pyarrow.

use crate::common;
use crate::seasonal_lake;

use std::process::Command;

use common::Project;
use seasonal_lake::{DAYS, SERIES, partition, start};

const DAG: &str = r#"id: acc
tables:
  daily: { path: daily, partition_by: [ds] }
  forecasts: { path: forecasts, partition_by: [ds] }
tasks:
  - id: train
    kind: train
    input: daily
    series_key: [store, sku]
    group_by: category
    horizon: 7
    model: { context: 14, hidden: 8, epochs: 2, batch_size: 32, batches_per_epoch: 4, seed: 3 }
    retrain: on_drift
    forecasts: forecasts
    drift_threshold: 1.0
  - id: forecast
    kind: forecast
    depends_on: [train]
    input: daily
    series_key: [store, sku]
    group_by: category
"#;

fn run(p: &Project, ds: &str) -> String {
    let o = p
        .restock()
        .args(["run", "acc", "--date", ds])
        .output()
        .expect("run");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    out
}

fn log_of(p: &Project, ds_nodash: &str) -> String {
    let path = p.path().join(format!(
        ".restock/logs/acc/acc.{ds_nodash}T000000Z/train/1.log"
    ));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_second_night_scores_the_first_forecast_and_retrains_only_the_drifted_group() {
    let p = Project::new();
    let lake = p.path().join("lake");
    p.write_dag("acc.yaml", DAG);
    let day1 = start() + chrono::Days::new(DAYS as u64 - 1);
    let day2 = day1 + chrono::Days::new(1);
    partition(&lake, DAYS, 1.0);
    partition(&lake, DAYS + 1, 10.0);

    run(&p, &day1.to_string());
    assert!(
        !lake.join("forecast_accuracy").exists(),
        "nothing to score on the first night"
    );
    run(&p, &day2.to_string());
    let log = log_of(&p, &day2.format("%Y%m%d").to_string());
    assert!(
        log.contains("group G1:") && log.contains("retraining"),
        "{log}"
    );
    assert!(log.contains("group G2: reusing the model of"), "{log}");

    let script = format!(
        r#"
import json, pyarrow.parquet as pq
t = pq.read_table("{}/forecast_accuracy/ds={day2}/part-00000.parquet")
print(json.dumps(t.to_pylist(), default=str))
"#,
        lake.display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pip install pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let find = |g: &str, k: &str| {
        rows.iter()
            .find(|r| r["group"] == g && r["model_kind"] == k)
            .unwrap_or_else(|| panic!("no row {g}/{k} in {rows:?}"))
    };
    for g in ["G1", "G2"] {
        let all = find(g, "all");
        assert_eq!(all["points"], SERIES as i64, "{all}");
        assert_eq!(all["max_step"], 1);
        assert_eq!(all["forecast_ds"], day1.to_string());
        assert_eq!(all["last_date"], day2.to_string());
    }
    let overall = find("_overall", "all");
    assert_eq!(overall["points"], 2 * SERIES as i64);
    // The served model's row carries the drift and the decision.
    let served = |g: &str| {
        rows.iter()
            .find(|r| r["group"] == g && !r["action"].is_null())
            .unwrap_or_else(|| panic!("no served row for {g} in {rows:?}"))
    };
    let g1 = served("G1");
    assert_eq!(g1["action"], "retrained_on_drift", "{g1}");
    assert!(g1["drift"].as_f64().expect("drift") > 1.0, "{g1}");
    let g2 = served("G2");
    assert_eq!(g2["action"], "reused", "{g2}");
    assert!(g2["drift"].as_f64().expect("drift") <= 1.0, "{g2}");
    // A ten-fold spike is far outside the forecast; bias is negative.
    assert!(find("G1", "all")["bias"].as_f64().expect("bias") < -0.5);
    // G1 got a new model for day 2; G2 did not.
    assert!(
        lake.join(format!("models/acc/G1/{day2}/model.json"))
            .is_file()
    );
    assert!(!lake.join(format!("models/acc/G2/{day2}")).exists());
}

#[test]
fn on_drift_without_past_forecasts_is_a_config_error() {
    let p = Project::new();
    p.write_dag(
        "acc.yaml",
        &DAG.replace("    forecasts: forecasts\n    drift_threshold: 1.0\n", ""),
    );
    let o = p.restock().args(["validate"]).output().expect("validate");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("acc.yaml:") && err.contains("`on_drift` needs `forecasts:`"),
        "{err}"
    );
}
