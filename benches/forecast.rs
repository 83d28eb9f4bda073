//! Forecasting benchmark on synthetic data shaped like the M5 demo
//! (categories as groups, departments, (store, item) keys, weekly profile,
//! promotions, Poisson counts). Trains every group in a bounded pool,
//! then reports training throughput, time per group, forecast time for all
//! series, peak RSS, and backtest RMSSE of the LSTM against seasonal naive
//! and AutoETS.
//!
//! Run in the dev profile (candle is optimized there):
//!   cargo bench --profile dev --bench forecast
//! Scale with RESTOCK_BENCH_SERIES (default 300), RESTOCK_BENCH_DAYS (500),
//! RESTOCK_BENCH_GROUPS (3), RESTOCK_BENCH_EPOCHS (10),
//! RESTOCK_BENCH_BATCHES (batches per epoch, 20), RESTOCK_BENCH_THREADS
//! (default: available cores), RESTOCK_BENCH_LR (0.001).

use std::time::Instant;

use restock::forecast::metrics::{self, SeriesEval};
use restock::forecast::synthetic::{SyntheticSpec, generate};
use restock::forecast::{
    Frequency, GroupResult, ModelConfig, ModelKind, forecast_with_model, overall_metrics,
    train_all_groups,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let spec = SyntheticSpec {
        series: env("RESTOCK_BENCH_SERIES", 300),
        days: env("RESTOCK_BENCH_DAYS", 500),
        future_days: 28,
        groups: env("RESTOCK_BENCH_GROUPS", 3),
        seed: 11,
        median_level: 3.0,
        promo_rate: 0.1,
    };
    let threads = env(
        "RESTOCK_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let config = ModelConfig {
        epochs: env("RESTOCK_BENCH_EPOCHS", 10),
        learning_rate: std::env::var("RESTOCK_BENCH_LR")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.001),
        batches_per_epoch: env("RESTOCK_BENCH_BATCHES", 20),
        ..ModelConfig::default()
    };
    println!(
        "data: {} series x {} days in {} groups; model: context {} hidden {} horizon {} batch {} x {} per epoch, up to {} epochs; {} threads",
        spec.series,
        spec.days,
        spec.groups,
        config.context,
        config.hidden,
        config.horizon,
        config.batch_size,
        config.batches_per_epoch,
        config.epochs,
        threads
    );
    let started = Instant::now();
    let (data, truth) = generate(&spec);
    println!("generated in {:.1}s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let results = train_all_groups(data.clone(), Frequency::Daily, &config, threads, &|g, e| {
        eprintln!(
            "  {g} epoch {:>2}: train {:.4} val {:.4}",
            e.epoch,
            e.train_loss,
            e.val_loss.unwrap_or(f64::NAN)
        )
    });
    let wall = started.elapsed().as_secs_f64();
    let mut ok: Vec<GroupResult> = Vec::new();
    for (name, r) in results {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => println!("group {name} failed: {e}"),
        }
    }
    let (mut windows, mut train_secs) = (0usize, 0.0f64);
    println!(
        "\n| group | series | epochs | windows | train s | windows/s | backtest s | champion | RMSSE lstm | snaive | ets |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &ok {
        let (w, s, ep) = r.model.as_ref().map_or((0, 0.0, 0), |m| {
            (
                m.window.windows_trained,
                m.window.train_seconds,
                m.history.len(),
            )
        });
        windows += w;
        train_secs += s;
        let rm = |k| r.score(k).map_or(f64::NAN, |m| m.rmsse);
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.1} | {} | {:.3} | {:.3} | {:.3} |",
            r.group,
            r.series,
            ep,
            w,
            s,
            w as f64 / s.max(1e-9),
            r.timings.backtest,
            r.champion.as_str(),
            rm(ModelKind::Lstm),
            rm(ModelKind::SeasonalNaive),
            rm(ModelKind::Ets)
        );
    }
    println!(
        "\ntraining: {windows} windows in {train_secs:.1}s of group time ({:.0} windows/s per group thread); all groups {wall:.1}s wall",
        windows as f64 / train_secs.max(1e-9)
    );

    let started = Instant::now();
    let mut rows = 0usize;
    for r in &ok {
        if let Some(m) = &r.model {
            let members: Vec<_> = data
                .iter()
                .filter(|s| s.group == r.group)
                .cloned()
                .collect();
            let mut m = m.clone();
            m.serving = ModelKind::Lstm;
            match forecast_with_model(&m, &members, Frequency::Daily) {
                Ok(f) => rows += f.len(),
                Err(e) => println!("forecast {} failed: {e}", r.group),
            }
        }
    }
    let fsecs = started.elapsed().as_secs_f64();
    println!(
        "forecast (LSTM, all {} series): {rows} rows in {fsecs:.2}s ({:.0} series/s)",
        spec.series,
        spec.series as f64 / fsecs.max(1e-9)
    );

    println!(
        "\n| backtest (last {} days) | MASE | RMSSE | WAPE | bias | coverage p10/p50/p90 | series |",
        config.horizon
    );
    println!("|---|---|---|---|---|---|---|");
    for (kind, m) in overall_metrics(&ok, &config.quantiles) {
        let name = kind.map_or("served (champions)", |k| k.as_str());
        let cov: Vec<String> = m.coverage.iter().map(|c| format!("{c:.2}")).collect();
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:+.3} | {} | {} |",
            m.mase,
            m.rmsse,
            m.wape,
            m.bias,
            cov.join(" / "),
            m.series
        );
    }
    // The noise floor: the true expected demand as the forecast. No model
    // can beat it on average; it shows how much of each RMSSE is noise.
    let h = config.horizon;
    let oracle: Vec<SeriesEval> = data
        .iter()
        .zip(&truth)
        .filter(|(s, _)| s.values.len() > h && s.values.iter().any(|v| *v > 0.0))
        .map(|(s, mu)| {
            let n = s.values.len();
            SeriesEval {
                actual: s.values[n - h..].to_vec(),
                mean: mu[n - h..].to_vec(),
                quantiles: vec![mu[n - h..].to_vec(); config.quantiles.len()],
                scales: metrics::scales(&s.values[..n - h], 7),
            }
        })
        .collect();
    let floor = metrics::aggregate(&oracle, &config.quantiles);
    println!(
        "| oracle (true mean; the noise floor) | {:.3} | {:.3} | {:.3} | {:+.3} | - | {} |",
        floor.mase, floor.rmsse, floor.wape, floor.bias, floor.series
    );
    match peak_rss_mib() {
        Some(mib) => println!("\npeak RSS: {mib:.0} MiB"),
        None => println!("\npeak RSS: unavailable"),
    }
}
