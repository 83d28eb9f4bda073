//! The store and sku keys: a lake whose key columns are `shop` and
//! `item` gets the plan the canonical lake gets, whether `series_key:`
//! maps them on the task or the planning tasks take them from the
//! forecast task; the mail and the UI's series page find the series too.

use super::{Project, build_lake, row, rows_of};

/// The canonical lake's plan, and a copy of the lake whose key columns
/// are `shop` and `item`.
fn canonical_plan_and_renamed_lake() -> (Vec<serde_json::Value>, Project, std::path::PathBuf) {
    let canonical = Project::new();
    let lake = canonical.path().join("lake");
    build_lake(&lake);
    canonical.write_dag("plan.yaml", super::DAG);
    super::run_plan(&canonical, &lake);
    let want = rows_of(&lake, "reorder_plans");

    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    super::pyarrow(&format!(
        r#"
import pathlib, pyarrow.parquet as pq
for f in pathlib.Path("{lake}").rglob("*.parquet"):
    t = pq.read_table(f, partitioning=None)
    names = [{{"store": "shop", "sku": "item"}}.get(n, n) for n in t.schema.names]
    pq.write_table(t.rename_columns(names), f)
print("ok")
"#,
        lake = lake.display()
    ));
    (want, p, lake)
}

/// The renamed lake's plan and anomalies match the canonical lake's.
fn assert_same_plan(want: &[serde_json::Value], lake: &std::path::Path) {
    let got = rows_of(lake, "reorder_plans");
    assert_eq!(got.len(), want.len());
    for w in want {
        let (store, sku) = (
            w["store"].as_str().expect("store"),
            w["sku"].as_str().expect("sku"),
        );
        let g = row(&got, store, sku);
        for col in ["order_qty", "status", "safety_stock", "reason"] {
            assert_eq!(g[col], w[col], "{store}/{sku} {col}");
        }
    }
    let anomalies = rows_of(lake, "anomalies");
    assert!(
        anomalies
            .iter()
            .any(|r| r["type"] == "negative_on_hand" && r["sku"] == "C"),
        "{anomalies:?}"
    );
}

/// A lake whose key columns are `shop` and `item`: `series_key:` maps
/// them, and the plan is the one the canonical lake gets.
#[test]
fn series_key_maps_the_lakes_own_column_names() {
    let (want, p, lake) = canonical_plan_and_renamed_lake();
    let dag = super::DAG
        .replace(
            "    policy: periodic_order_up_to\n",
            "    policy: periodic_order_up_to\n    series_key: { store: shop, sku: item }\n",
        )
        .replace(
            "    forecasts: forecasts\n",
            "    forecasts: forecasts\n    series_key: { store: shop, sku: item }\n",
        );
    p.write_dag("plan.yaml", &dag);
    super::run_plan(&p, &lake);
    assert_same_plan(&want, &lake);
}

/// The DAG with a `forecast` task keyed `[shop, item]` (by its `train`
/// task) writing `forecasts`, and an email, none of the planning tasks
/// naming a `series_key`.
fn derived_keys_dag() -> String {
    super::DAG
        .replace(
            "tables:\n",
            "tables:\n  anomalies: { path: anomalies, partition_by: [ds] }\n",
        )
        .replace(
            "tasks:\n",
            "tasks:\n  - id: train\n    kind: train\n    input: sales\n    series_key: [shop, item]\n    \
             group_by: category\n  - id: forecast\n    kind: forecast\n    depends_on: [train]\n    \
             train: train\n    output: forecasts\n",
        )
        + "  - id: alert\n    kind: email\n    depends_on: [monitor]\n    to: [planners@example.com]\n    \
           anomalies: anomalies\n    reorder_plans: reorder_plans\n    forecasts: forecasts\n    \
           history: sales\n    history_days: 28\n"
}

/// Runs the planning tasks of [`derived_keys_dag`] one by one in the
/// night's run (the lake already holds the forecasts).
fn run_planning_tasks(p: &Project, lake: &std::path::Path) {
    for task in ["reorder", "monitor", "alert"] {
        let o = p
            .restock()
            .env("RESTOCK_LAKE", lake)
            .args(["run", "plan", "--date", "2026-11-27", "--task", task])
            .output()
            .expect("run");
        assert!(
            o.status.success(),
            "{task}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Without `series_key:` on `reorder`, `monitor` and `email`, the keys
/// come from the DAG: the `forecast` task that writes `forecasts` is keyed
/// by its `train` task's `[shop, item]`, so the plan is the same again and
/// the mail charts a series from the forecasts and the sales.
#[test]
fn reorder_monitor_and_email_take_their_keys_from_the_forecast_task() {
    let (want, p, lake) = canonical_plan_and_renamed_lake();
    p.write_dag("plan.yaml", &derived_keys_dag());
    run_planning_tasks(&p, &lake);
    assert_same_plan(&want, &lake);
    let eml = super::outbox_eml(&p);
    let text = std::fs::read_to_string(&eml).expect("eml");
    assert!(text.contains("image/png"), "no chart in the mail");
}

/// The UI's series page on the same lake finds the series' forecast and
/// history by the forecast task's key columns.
#[tokio::test]
async fn the_series_page_reads_forecasts_and_history_by_the_forecasts_keys() {
    use crate::web_support::{Client, Server};
    let (_, p, lake) = canonical_plan_and_renamed_lake();
    p.write_dag("plan.yaml", &derived_keys_dag());
    run_planning_tasks(&p, &lake);
    let lake_env = lake.display().to_string();
    let s = Server::start(&p, "serve", &[("RESTOCK_LAKE", lake_env.as_str())]);
    let mut c = Client::new();
    let url = s.url("/api/v1/dags/plan/planning/skus/CA_1/A?ds=2026-11-27");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut r = c.get(&url).await;
    while r.status != 200 && std::time::Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        r = c.get(&url).await;
    }
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_text());
    let j = r.json();
    assert_eq!(j["forecast"].as_array().map(Vec::len), Some(10), "{j}");
    let history = j["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "the run's partition of sales: {j}");
    assert_eq!(history[0]["value"], 10.0, "{j}");
    assert!(j["plan"].as_array().is_some_and(|p| !p.is_empty()), "{j}");
}
