//! `restock bench policy-backtest`: generate a demo lake (the default small
//! one, or `--scale m5` for the M5 shape of about 30,000 series) into a
//! temporary folder and time `backtest-policy` on it with the example
//! project's main job, printing wall time per phase, peak RSS and the
//! overall figures of the three policies.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;

use restock::backtest::{self, BacktestArgs, Level, Settings};
use restock::demo::{DemoOptions, Scale};
use restock::lake::Lake;

use super::bench::peak_rss_mib;

#[derive(clap::Args)]
pub struct PolicyBacktestBenchArgs {
    /// Demo lake scale: small (the default demo) or m5.
    #[arg(long, default_value = "small")]
    pub scale: Scale,
    /// Days of history generated (default: the scale's own); the backtest
    /// needs the window plus 112 days.
    #[arg(long)]
    pub history_days: Option<i64>,
    #[arg(long, default_value_t = 90)]
    pub window_days: i64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Lake folder to generate into and keep (default: a temporary one).
    #[arg(long)]
    pub lake: Option<std::path::PathBuf>,
    /// Use the lake already in `--lake` instead of generating one.
    #[arg(long)]
    pub no_generate: bool,
}

const END: (i32, u32, u32) = (2025, 6, 30);

pub async fn bench(args: PolicyBacktestBenchArgs) -> Result<()> {
    let tmp = tempfile::tempdir().context("temp dir")?;
    let root = args.lake.clone().unwrap_or_else(|| tmp.path().join("lake"));
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let lake = Lake::open(&root.display().to_string()).context("opening the bench lake")?;
    let end = NaiveDate::from_ymd_opt(END.0, END.1, END.2).context("date")?;
    if !args.no_generate {
        let mut opts = DemoOptions::new(args.scale, args.seed, end);
        opts.history_days = args.history_days;
        let t = Instant::now();
        let summary = restock::demo::generate(
            Arc::clone(lake.store()),
            &object_store::path::Path::from(""),
            &opts,
        )
        .await
        .context("generating the demo lake")?;
        println!(
            "generated the {:?} demo lake: {} series, {} .. {} in {:.1} s ({})",
            args.scale,
            summary.series,
            summary.start_date,
            summary.end_date,
            t.elapsed().as_secs_f64(),
            root.display()
        );
    }
    let project = tmp.path().join("project");
    restock::project::write(&project, true).context("writing the example project")?;
    let registry = restock::tasks::Registry::builtin();
    let file = project.join("jobs/nightly_inventory.yaml");
    let dag = restock::dag::compile_file(&file, &registry, &project)
        .map_err(|d| anyhow::anyhow!("example DAG invalid: {}", d[0]))?;
    let bargs = BacktestArgs {
        window_days: args.window_days,
        ..BacktestArgs::default()
    };
    let settings = Settings::compile(&bargs, &dag)?;
    let t = Instant::now();
    let report = backtest::run(&lake, &settings, &CancellationToken::new()).await?;
    let wall = t.elapsed().as_secs_f64();
    super::backtest::print_report(&settings, &report);
    println!(
        "backtest-policy: {} series × {} days × 3 policies in {wall:.2} s wall \
         (load {:.2} s, simulate {:.2} s, publish {:.2} s); peak RSS {:.0} MiB; {} threads",
        report.series,
        settings.window_days,
        report.timings.load_s,
        report.timings.simulate_s,
        report.timings.publish_s,
        peak_rss_mib().unwrap_or(f64::NAN),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for r in report.rows.iter().filter(|r| r.level == Level::Overall) {
        println!(
            "overall {:<18} fill rate {:.4}  avg inventory {:.0} units ({:.2} at cost)",
            r.policy.as_str(),
            r.fill_rate.unwrap_or(f64::NAN),
            r.avg_inventory_units,
            r.avg_inventory_value
        );
    }
    Ok(())
}
