//! `restock demo`: generate the synthetic retail lake and run the main job
//! on it, then say where the results are.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::NaiveDate;

use restock::config::Config;
use restock::demo::{DemoOptions, Scale};
use restock::lake::Lake;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// small (default, about a minute end to end), medium, or m5 (30,000
    /// series over about five years).
    #[arg(long, default_value = "small")]
    pub scale: Scale,
    /// Seed of the generator; the same seed gives the same lake.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Last day of history, which is the run's logical date (default: yesterday).
    #[arg(long)]
    pub end_date: Option<NaiveDate>,
    /// Generate the lake only; do not run the main job.
    #[arg(long)]
    pub no_run: bool,
    /// Run the main job on the lake as it is, without generating.
    #[arg(long)]
    pub no_generate: bool,
}

pub async fn demo(config: Config, args: DemoArgs) -> Result<ExitCode> {
    if !restock::project::has_project(&config.jobs) {
        println!(
            "no DAG files in {}: writing the example project into {}",
            config.jobs.display(),
            config.root.display()
        );
        super::init::write(&config.root, false).context("writing the example project")?;
    }
    let end = args
        .end_date
        .unwrap_or_else(|| chrono::Utc::now().date_naive() - chrono::Duration::days(1));
    let lake = Lake::open(&config.lake).with_context(|| format!("opening lake {}", config.lake))?;
    if !args.no_generate {
        let opts = DemoOptions::new(args.scale, args.seed, end);
        println!(
            "generating the {:?} demo lake (seed {}) in {} …",
            args.scale, args.seed, config.lake
        );
        let t = std::time::Instant::now();
        let summary = restock::demo::generate(
            Arc::clone(lake.store()),
            &object_store::path::Path::from(""),
            &opts,
        )
        .await
        .context("generating the demo lake")?;
        for t in &summary.tables {
            println!(
                "  {:<12} {:>12} rows {:>6} files {:>8.1} MiB",
                t.table,
                t.rows,
                t.files,
                t.bytes as f64 / 1048576.0
            );
        }
        println!(
            "  {} stores, {} skus, {} series, {} .. {}",
            summary.stores, summary.skus, summary.series, summary.start_date, summary.end_date
        );
        for a in &summary.anomalies {
            println!("  injected: {a}");
        }
        println!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    if args.no_run {
        return Ok(ExitCode::SUCCESS);
    }
    // Two nightly runs: the day before the end, then the end. The second
    // run compares the last day's sales with the forecast the first made
    // for it (and reuses its model, as `retrain: weekly` says).
    let run = super::run::RunArgs {
        dag: "nightly_inventory".into(),
        date: None,
        from: Some(end - chrono::Duration::days(1)),
        to: Some(end),
        tasks: Vec::new(),
        force: true,
    };
    let lake_dir = config.lake.clone();
    let outbox = config.outbox.clone();
    let dag_id = "nightly_inventory";
    let code = super::run::run(config, run).await?;
    if code == ExitCode::SUCCESS {
        println!();
        println!("results for {end} in {lake_dir}:");
        for (what, path) in [
            ("forecasts", "forecasts"),
            ("reorder plans", "reorder_plans"),
            ("anomalies", "anomalies"),
        ] {
            println!("  {what:<17} {lake_dir}/{path}/ds={end}/");
        }
        println!(
            "  {:<17} {lake_dir}/forecast_metrics/ (per training date)",
            "backtest metrics"
        );
        println!("  {:<17} {lake_dir}/models/{dag_id}/", "models");
        println!(
            "  {:<17} {}/ (no SMTP server configured; see docs/email.md)",
            "email",
            outbox.display()
        );
    }
    Ok(code)
}
