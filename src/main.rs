//! The `restock` command line. The only place an error becomes an exit
//! code: 0 success, 1 a run or task failed, 2 invalid input (bad DAG file,
//! bad arguments, bad config).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "restock",
    version,
    about = "Scheduled batch jobs over a data lake, for inventory planning"
)]
struct Args {
    /// Global config file (default: ./restock.yaml when present).
    #[arg(long, global = true, env = "RESTOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter for diagnostics on stderr (e.g. `info`, `restock=debug`).
    #[arg(long, global = true, env = "RESTOCK_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check DAG files and print every error with file:line:column.
    Validate {
        /// Files or folders (default: the jobs folder).
        paths: Vec<PathBuf>,
    },
    /// Run a DAG in the foreground for one date or a range of dates.
    Run(cli::run::RunArgs),
    /// Schedule every DAG in the jobs folder until SIGTERM/SIGINT.
    Daemon {
        /// Jobs folder (overrides config and RESTOCK_JOBS).
        #[arg(long)]
        jobs: Option<PathBuf>,
        #[command(flatten)]
        listen: cli::serve::ListenArgs,
    },
    /// Serve the web UI and API over the run history without scheduling
    /// (a read-only view, or a second machine).
    Serve {
        /// Jobs folder (overrides config and RESTOCK_JOBS).
        #[arg(long)]
        jobs: Option<PathBuf>,
        #[command(flatten)]
        listen: cli::serve::ListenArgs,
    },
    /// Recent runs.
    Runs {
        #[arg(long)]
        dag: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One run's attempts: durations, errors, outputs, log paths.
    Show {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// The worker side of remote executors.
    Attempt {
        #[command(subcommand)]
        cmd: cli::attempt::AttemptCmd,
    },
    /// Operate on single tasks.
    Task {
        #[command(subcommand)]
        cmd: cli::task::TaskCmd,
    },
    /// Mail that could not be delivered.
    Mail {
        #[command(subcommand)]
        cmd: cli::mail::MailCmd,
    },
    /// Replay the reorder policy over a past window of the lake next to two
    /// reference policies; write `policy_backtest/` and print a summary.
    BacktestPolicy(cli::backtest::PolicyBacktestArgs),
    /// Generate the synthetic retail lake and run the main job on it (in a
    /// folder without a project, the example project is written first).
    Demo(cli::demo::DemoArgs),
    /// Write the example project (jobs, SQL, restock.yaml) into a folder.
    Init(cli::init::InitArgs),
    /// Benchmarks (orchestration overhead, validation speed).
    Bench {
        #[command(subcommand)]
        cmd: cli::bench::BenchCmd,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The scheduler library narrates its own start-up at info level; keep
    // it quiet unless asked for by name.
    let directives = if args.log.contains("tokio_cron_scheduler") {
        args.log.clone()
    } else {
        format!("{},tokio_cron_scheduler=warn", args.log)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        let config = cli::load_config(args.config.as_deref())?;
        match args.cmd {
            Cmd::Validate { paths } => cli::validate::validate(&config, paths),
            Cmd::Run(a) => cli::run::run(config, a).await,
            Cmd::Daemon { jobs, listen } => cli::daemon(config, jobs, listen).await,
            Cmd::Serve { jobs, listen } => cli::serve::serve(config, jobs, listen).await,
            Cmd::Runs { dag, limit, json } => {
                cli::history::runs(&config, dag.as_deref(), limit, json)
            }
            Cmd::Show { run_id, json } => cli::history::show(&config, &run_id, json),
            Cmd::Task { cmd } => cli::task::task(config, cmd).await,
            Cmd::Attempt { cmd } => cli::attempt::attempt(config, cmd).await,
            Cmd::Bench { cmd } => cli::bench::bench(config, cmd).await,
            Cmd::BacktestPolicy(a) => cli::backtest::backtest_policy(config, a).await,
            Cmd::Demo(a) => cli::demo::demo(config, a).await,
            Cmd::Init(a) => cli::init::init(a),
            Cmd::Mail { cmd } => cli::mail::mail(config, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
