//! `restock bench scheduler`: orchestration overhead per task and
//! validation speed, with state recorded in SQLite as in production.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::dag;
use restock::executor::{Event, Executor, Observer, RunRequest};
use restock::schedule::Interval;
use restock::store::{RunType, State, Store};
use restock::tasks::{Registry, Services};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// 1,000 `empty` tasks as a fan-out and as a chain; a 10,000-task DAG
    /// through validate and planning.
    Scheduler {
        /// Tasks in the fan-out and chain DAGs.
        #[arg(long, default_value_t = 1000)]
        tasks: usize,
        /// Tasks in the validation DAG.
        #[arg(long, default_value_t = 10_000)]
        validate_tasks: usize,
        /// Repetitions (the best is reported, plus the median).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// The main job's SQL preparation and a whole-table aggregation against
    /// DuckDB, over the configured lake (e.g. after `restock demo --scale m5`).
    Lake {
        /// Logical date of the preparation run (default: the newest
        /// complete interval).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Only the aggregation.
        #[arg(long)]
        skip_prep: bool,
    },
    /// The main job's `train` and `forecast` tasks over the configured lake
    /// (e.g. after `restock demo --scale m5`): times, throughput, RSS and
    /// backtest RMSSE against the baselines.
    Forecast {
        /// Logical date of the run (default: the newest complete interval).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Remote executors per engine: submit-to-start and end-to-end
    /// overhead per attempt against local, and local scheduling overhead
    /// while remote attempts are in flight (needs the engines running:
    /// scripts/start_slurm.sh, scripts/start_ray.sh).
    Executor {
        /// Engines to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "slurm,ray")]
        engines: Vec<String>,
        #[arg(long, default_value_t = 50)]
        attempts: usize,
        #[arg(long, default_value_t = 20)]
        in_flight: usize,
        #[arg(long, default_value_t = 500)]
        local_tasks: usize,
        #[arg(long, default_value = "http://127.0.0.1:8265")]
        ray_address: String,
        #[arg(long)]
        slurm_partition: Option<String>,
        /// How often a remote job's state is asked.
        #[arg(long, default_value = "500ms")]
        poll_interval: String,
    },
    /// The web server over 100,000 runs and 1,000,000 attempts: latency of
    /// the DAG list, grid, run page, a 50 MB log and /metrics; RSS; wrk.
    Web(super::bench_web::WebBenchArgs),
    /// The forecaster on a shared real dataset's holdout next to the
    /// statsforecast baselines on the same split (RMSSE, MASE, WAPE, bias,
    /// coverage).
    Accuracy {
        /// The shared dataset (and, for Tourism, the frequency).
        #[arg(value_enum)]
        dataset: super::bench_accuracy::Dataset,
        /// Folder of the shared datasets.
        #[arg(long, default_value = "../shared/data")]
        data: std::path::PathBuf,
        /// Skip the statsforecast baselines (only pandas and pyarrow needed).
        #[arg(long)]
        no_baselines: bool,
    },
    /// `reorder` + `monitor` over a generated M5-sized lake.
    Inventory {
        /// Store×sku series.
        #[arg(long, default_value_t = 30_000)]
        series: usize,
    },
    /// `backtest-policy` over a generated demo lake (default small, or
    /// `--scale m5`): wall time, peak RSS, fill rate and average inventory
    /// of the three policies.
    PolicyBacktest(super::bench_backtest::PolicyBacktestBenchArgs),
}

/// Benchmarks measure orchestration, not terminal output.
pub struct Quiet;
impl Observer for Quiet {
    fn event(&self, _: &str, _: &Event) {}
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A fan-out: one root, `n - 2` parallel tasks, one join.
pub fn fanout_yaml(n: usize) -> String {
    let mut s =
        String::from("id: bench_fanout\nparallelism: 64\ntasks:\n  - id: root\n    kind: empty\n");
    for i in 0..n.saturating_sub(2) {
        s.push_str(&format!(
            "  - id: t{i}\n    kind: empty\n    depends_on: [root]\n"
        ));
    }
    s.push_str("  - id: join\n    kind: empty\n    depends_on: [");
    let deps: Vec<String> = (0..n.saturating_sub(2)).map(|i| format!("t{i}")).collect();
    s.push_str(&deps.join(", "));
    s.push_str("]\n");
    s
}

pub fn chain_yaml(n: usize) -> String {
    let mut s = String::from("id: bench_chain\ntasks:\n  - id: t0\n    kind: empty\n");
    for i in 1..n {
        s.push_str(&format!(
            "  - id: t{i}\n    kind: empty\n    depends_on: [t{}]\n",
            i - 1
        ));
    }
    s
}

/// A realistic large DAG: mixed kinds, templates, `when`, several
/// dependencies per task.
pub fn large_yaml(n: usize) -> String {
    let mut s = String::from(
        "id: bench_large\ndescription: generated\nschedule:\n  cron: \"0 2 * * *\"\n  timezone: Europe/Berlin\n  catchup: last\nparams: { horizon_days: 28 }\ndefaults:\n  retries: 2\n  retry_delay: 30s\n  timeout: 1h\ntasks:\n",
    );
    for i in 0..n {
        s.push_str(&format!("  - id: task_{i}\n"));
        if i % 3 == 0 {
            s.push_str("    kind: command\n    command: [\"echo\", \"{{ ds }}\", \"{{ params.horizon_days }}\"]\n");
        } else {
            s.push_str("    kind: empty\n");
        }
        if i > 0 {
            let deps: Vec<String> = [i - 1, i / 2, i / 3]
                .iter()
                .copied()
                .filter(|&d| d < i)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|d| format!("task_{d}"))
                .collect();
            s.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
        }
        if i % 10 == 5 {
            s.push_str(&format!(
                "    when: \"tasks.task_{}.state == 'succeeded'\"\n",
                i - 1
            ));
        }
    }
    s
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

pub async fn bench(config: Config, cmd: BenchCmd) -> Result<ExitCode> {
    let (tasks, validate_tasks, repeat) = match cmd {
        BenchCmd::Scheduler {
            tasks,
            validate_tasks,
            repeat,
        } => (tasks, validate_tasks, repeat),
        BenchCmd::Lake {
            date,
            repeat,
            skip_prep,
        } => {
            super::bench_lake::bench(config, date, repeat, skip_prep).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Forecast { date } => {
            super::bench_forecast::bench(config, date).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Executor {
            engines,
            attempts,
            in_flight,
            local_tasks,
            ray_address,
            slurm_partition,
            poll_interval,
        } => {
            let args = super::bench_executor::Args {
                engines,
                attempts,
                in_flight,
                local_tasks,
                ray_address,
                slurm_partition,
                poll_interval,
            };
            super::bench_executor::bench(config, args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Web(a) => return super::bench_web::bench_web(config, a).await,
        BenchCmd::Accuracy {
            dataset,
            data,
            no_baselines,
        } => {
            super::bench_accuracy::bench(dataset, data, !no_baselines).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Inventory { series } => {
            super::bench_inventory::bench(config, series).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::PolicyBacktest(a) => {
            super::bench_backtest::bench(a).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let registry = Registry::builtin();
    let dir = tempfile::tempdir().context("temp dir")?;
    let root = dir.path().to_path_buf();
    println!(
        "restock bench scheduler: {tasks}-task DAGs, {validate_tasks}-task validation, best/median of {repeat}"
    );
    println!(
        "state: SQLite WAL file, one attempt row + task instance per task, per-attempt log files"
    );
    println!();

    for (name, yaml) in [
        ("fan-out", fanout_yaml(tasks)),
        ("chain", chain_yaml(tasks)),
    ] {
        let file = root.join(format!("{name}.yaml"));
        let dag = Arc::new(
            dag::compile_str(&file, &yaml, &registry, &root)
                .map_err(|d| anyhow::anyhow!("generated DAG invalid: {}", d[0]))?,
        );
        let mut per_task = Vec::new();
        for r in 0..repeat {
            let store = Store::open(&root.join(format!("{name}-{r}.db")))?;
            let exec = Executor {
                store,
                services: Arc::new(Services::new(config.clone())?),
                logs_dir: root.join(format!("logs-{name}-{r}")),
                observer: Arc::new(Quiet),
                write_logs: true,
                drain: tokio_util::sync::CancellationToken::new(),
            };
            let start = "2026-11-27T00:00:00Z".parse()?;
            let end = "2026-11-28T00:00:00Z".parse()?;
            let t = Instant::now();
            let run = exec
                .run(
                    dag.clone(),
                    RunRequest {
                        interval: Interval { start, end },
                        run_type: RunType::Manual,
                        force: false,
                        only: None,
                    },
                    CancellationToken::new(),
                )
                .await?;
            let el = t.elapsed();
            anyhow::ensure!(
                run.state == State::Succeeded,
                "bench run ended {}",
                run.state
            );
            per_task.push(el.as_secs_f64() * 1000.0 / tasks as f64);
        }
        let (best, median) = stats(per_task);
        println!(
            "{name:<8} {tasks} empty tasks: overhead per task best {best:.3} ms, median {median:.3} ms (run wall {:.2} s)",
            median * tasks as f64 / 1000.0
        );
    }

    let yaml = large_yaml(validate_tasks);
    let file = root.join("large.yaml");
    let mut times = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let dag = dag::compile_str(&file, &yaml, &registry, &root)
            .map_err(|d| anyhow::anyhow!("generated DAG invalid: {}", d[0]))?;
        let up: Vec<Vec<usize>> = dag.tasks.iter().map(|t| t.upstream.clone()).collect();
        let down: Vec<Vec<usize>> = dag.tasks.iter().map(|t| t.downstream.clone()).collect();
        let order = dag::graph::topo_order(&up, &down).context("generated DAG has a cycle")?;
        anyhow::ensure!(order.len() == validate_tasks);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (best, median) = stats(times);
    println!(
        "validate {validate_tasks} tasks ({} KiB YAML) + plan: best {best:.1} ms, median {median:.1} ms",
        yaml.len() / 1024
    );
    Ok(ExitCode::SUCCESS)
}
