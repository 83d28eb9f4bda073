//! `restock backtest-policy`: replay the DAG's reorder policy over a past
//! window of the configured lake next to the two reference policies, write
//! the `policy_backtest` table and print the overall and per-group figures.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;

use restock::backtest::{self, BacktestArgs, BacktestError, Report, Settings};
use restock::config::Config;
use restock::lake::Lake;

#[derive(clap::Args)]
pub struct PolicyBacktestArgs {
    /// The DAG (id in the jobs folder, or a file) whose `reorder` task's
    /// policy, holding rate and order cost are replayed, and whose declared
    /// tables are read.
    #[arg(long, default_value = "nightly_inventory")]
    pub dag: String,
    /// The `reorder` task to replay (default: the DAG's first).
    #[arg(long)]
    pub task: Option<String>,
    /// Days replayed, ending at `--end`.
    #[arg(long, default_value_t = 90)]
    pub window_days: i64,
    /// Last day replayed (default: the last sales date).
    #[arg(long)]
    pub end: Option<NaiveDate>,
    /// Seed of the lead-time draws.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Declared table of daily sales per series (the realized demand).
    #[arg(long, default_value = "sales")]
    pub sales: String,
    /// Declared table of daily stock snapshots (the stock at the start).
    #[arg(long, default_value = "inventory")]
    pub inventory: String,
    /// Declared table of the product master.
    #[arg(long, default_value = "products")]
    pub products: String,
    /// Product column naming each series' group.
    #[arg(long, default_value = "category")]
    pub group_by: String,
    /// Lake path of the output table (partition `ds=END` is replaced).
    #[arg(long, default_value = "policy_backtest")]
    pub output: String,
    /// Replay restock's policy on the forecasts the DAG stored (its
    /// `reorder` task's forecasts table, partition `ds` = the day each was
    /// made) where a day has them; Theta forecasts the other days.
    #[arg(long)]
    pub stored_forecasts: bool,
}

impl PolicyBacktestArgs {
    pub fn to_args(&self) -> BacktestArgs {
        BacktestArgs {
            window_days: self.window_days,
            end: self.end,
            seed: self.seed,
            reorder_task: self.task.clone(),
            sales: self.sales.clone(),
            inventory: self.inventory.clone(),
            products: self.products.clone(),
            group_by: self.group_by.clone(),
            output: self.output.clone(),
            stored_forecasts: self.stored_forecasts,
            ..BacktestArgs::default()
        }
    }
}

pub async fn backtest_policy(config: Config, args: PolicyBacktestArgs) -> Result<ExitCode> {
    let registry = super::registry(&config);
    let dag = super::resolve_dag(&config, &registry, &args.dag)?;
    let settings = match Settings::compile(&args.to_args(), &dag) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let lake = Lake::open(&config.lake).with_context(|| format!("opening lake {}", config.lake))?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    match backtest::run(&lake, &settings, &cancel).await {
        Ok(report) => {
            print_report(&settings, &report);
            Ok(ExitCode::SUCCESS)
        }
        Err(BacktestError::Cancelled) => Ok(ExitCode::from(130)),
        Err(e) if e.is_user_fault() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub fn print_report(settings: &Settings, r: &Report) {
    let policy = serde_json::to_value(settings.policy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let forecast = if settings.sources.forecasts.is_some() {
        format!(
            "the stored forecasts where a day has them ({} review days of {} series-days stored), else a Theta forecast",
            r.stored_forecast_days, r.stored_forecasts
        )
    } else {
        "a Theta forecast".to_string()
    };
    println!(
        "policy backtest {} .. {} ({} days), {} series; restock = {policy} on {forecast} refitted every {} days",
        r.start, r.end, settings.window_days, r.series, settings.refit_days
    );
    if r.without_snapshot > 0 {
        println!(
            "{} series had no stock snapshot in the 14 days before {} and start with none",
            r.without_snapshot, r.start
        );
    }
    print!("{}", backtest::summary::render(&r.rows));
    println!("written to {}", r.path);
}
