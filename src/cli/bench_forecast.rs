//! `restock bench forecast`: the main job's `train` and `forecast` tasks
//! over the configured lake (e.g. after `restock demo --scale m5`): wall
//! time of each, training throughput, peak RSS, and the backtest RMSSE of
//! the LSTM against the baselines.

use anyhow::{Result, bail};
use chrono::NaiveDate;

use restock::config::Config;

use super::bench::peak_rss_mib;
use super::bench_lake::run_tasks;

pub async fn bench(config: Config, date: Option<NaiveDate>) -> Result<()> {
    println!("restock bench forecast: lake {}", config.lake);
    // One after the other: with a task selection, upstreams are not waited for.
    let (_, train_wall, mut attempts) = run_tasks(&config, date, |t| t.kind == "train").await?;
    let (_, forecast_wall, more) = run_tasks(&config, date, |t| t.kind == "forecast").await?;
    attempts.extend(more);
    let wall = train_wall + forecast_wall;
    let mut total = 0.0;
    for a in &attempts {
        let secs = match (a.started_at, a.ended_at) {
            (Some(s), Some(e)) => (e - s).num_milliseconds() as f64 / 1000.0,
            _ => f64::NAN,
        };
        total += secs;
        println!("  {:<12} {secs:>9.1} s", a.task_id);
    }
    let Some(train) = attempts.iter().find(|a| a.outputs.get("trained").is_some()) else {
        bail!("the main job has no train task");
    };
    let o = &train.outputs;
    if o["reused"].as_u64().unwrap_or(0) > 0 {
        println!(
            "  note: {} group(s) reused a recent model; remove the lake's models/ folder to measure training",
            o["reused"]
        );
    }
    let windows = o["windows_trained"].as_f64().unwrap_or(0.0);
    let secs = o["train_seconds"].as_f64().unwrap_or(0.0);
    println!(
        "train + forecast: {total:.1} s of task time ({wall:.1} s wall); {} series in {} group(s)",
        o["series"], o["groups"]
    );
    println!(
        "training: {windows:.0} windows in {secs:.1} s of group time = {:.0} windows/s per group thread",
        windows / secs.max(1e-9)
    );
    if let Some(by_kind) = o["rmsse_by_kind"].as_object() {
        let mut parts: Vec<String> = by_kind
            .iter()
            .map(|(k, v)| format!("{k} {:.3}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        parts.sort();
        println!("backtest RMSSE (overall): {}", parts.join(", "));
        let lstm = by_kind.get("lstm").and_then(|v| v.as_f64());
        let best = ["naive", "seasonal_naive", "ets"]
            .iter()
            .filter_map(|k| by_kind.get(*k).and_then(|v| v.as_f64()))
            .fold(f64::INFINITY, f64::min);
        if let Some(l) = lstm.filter(|_| best.is_finite()) {
            println!(
                "LSTM vs best baseline: {:+.1}% RMSSE",
                (l / best - 1.0) * 100.0
            );
        }
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
    Ok(())
}
