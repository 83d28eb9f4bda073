//! Command implementations. Each returns an exit code or an `anyhow` error
//! with context; `main` turns errors into exit code 2.

pub mod attempt;
pub mod backtest;
pub mod bench;
pub mod bench_accuracy;
pub mod bench_backtest;
pub mod bench_executor;
pub mod bench_forecast;
pub mod bench_inventory;
pub mod bench_lake;
pub mod bench_web;
pub mod demo;
pub mod history;
pub mod init;
pub mod mail;
pub mod run;
pub mod serve;
pub mod task;
pub mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use restock::config::Config;
use restock::daemon::{Daemon, SystemClock};
use restock::dag::{self, Dag};
use restock::executor::{Executor, Observer, TracingObserver};
use restock::store::Store;
use restock::tasks::{Registry, Services};

/// The task kinds, with `executor:` names checked against the config.
pub fn registry(config: &Config) -> Registry {
    Registry::builtin().with_executors(restock::remote::Catalog::from_config(config))
}

pub fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(Config::load(path)?)
}

pub fn open_store(config: &Config) -> Result<Store> {
    Store::open_with_timeout(&config.state, config.state_busy_timeout)
        .with_context(|| format!("opening run history {}", config.state.display()))
}

pub fn executor(config: &Config, observer: Arc<dyn Observer>) -> Result<Executor> {
    let store = open_store(config)?;
    let services = Services::new(config.clone()).context("setting up services")?;
    Ok(Executor {
        store,
        services: Arc::new(services),
        logs_dir: config.logs.clone(),
        observer,
        write_logs: true,
        drain: tokio_util::sync::CancellationToken::new(),
    })
}

/// A DAG named by id (looked up in the jobs folder) or by file path.
pub fn resolve_dag(config: &Config, registry: &Registry, name: &str) -> Result<Arc<Dag>> {
    let as_path = PathBuf::from(name);
    if as_path.is_file() {
        return match dag::compile_file(&as_path, registry, &config.root) {
            Ok(d) => Ok(Arc::new(d)),
            Err(diags) => {
                for d in &diags {
                    eprintln!("{d}");
                }
                bail!("{} has {} error(s)", as_path.display(), diags.len());
            }
        };
    }
    let (dags, diags) = dag::load_all(std::slice::from_ref(&config.jobs), registry, &config.root);
    if let Some(d) = dags.into_iter().find(|d| d.id == name) {
        return Ok(Arc::new(d));
    }
    // The DAG may be in a file that does not compile: show why.
    for d in &diags {
        eprintln!("{d}");
    }
    if diags.is_empty() {
        bail!("no DAG `{name}` in {}", config.jobs.display());
    }
    bail!(
        "no valid DAG `{name}` in {} ({} error(s) above)",
        config.jobs.display(),
        diags.len()
    )
}

pub async fn daemon(
    mut config: Config,
    jobs: Option<PathBuf>,
    listen: serve::ListenArgs,
) -> Result<ExitCode> {
    if let Some(j) = jobs {
        config.jobs = j;
    }
    let exec = executor(&config, Arc::new(TracingObserver))?;
    let registry = registry(&config);
    let (link, handle) = serve::link();
    let (stop_web, web) = serve::start(&config, &listen, link.shared.clone(), Some(handle)).await?;
    let d = Daemon {
        config,
        registry,
        executor: exec,
        clock: Arc::new(SystemClock),
        shared: Some(link.shared),
        commands: Some(link.commands),
    };
    let result = d.run_with_signals().await;
    stop_web.cancel();
    let _ = web.await;
    result?;
    Ok(ExitCode::SUCCESS)
}
