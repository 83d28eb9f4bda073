//! `restock task run`: one attempt of one task in this process, outside
//! any run (for debugging, and for a remote executor). Nothing is recorded
//! in the run history; upstream outputs come from the recorded run for the
//! date when there is one.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::store;
use restock::tasks::{AttemptContext, AttemptLog, Services};
use restock::template::{RunVars, TaskVars};

#[derive(clap::Subcommand)]
pub enum TaskCmd {
    /// Run one attempt of TASK of DAG for a date.
    Run {
        dag: String,
        task: String,
        #[arg(long)]
        date: Option<NaiveDate>,
    },
}

pub async fn task(config: Config, cmd: TaskCmd) -> Result<ExitCode> {
    let TaskCmd::Run { dag, task, date } = cmd;
    let registry = super::registry(&config);
    let dag = super::resolve_dag(&config, &registry, &dag)?;
    let t = dag
        .task(&task)
        .with_context(|| format!("task `{task}` is not in DAG `{}`", dag.id))?;
    let iv = super::run::intervals(&dag, date, None)?
        .into_iter()
        .next()
        .context("no interval")?;
    let store = super::open_store(&config)?;
    let recorded = store.with(|c| store::find_run(c, &dag.id, iv.start))?;
    let run_id = recorded
        .as_ref()
        .map(|r| r.run_id.clone())
        .unwrap_or_else(|| store::make_run_id(&dag.id, iv.start, 1));
    let mut vars = RunVars::new(
        &dag.id,
        &run_id,
        &dag.tz,
        iv.start,
        iv.end,
        dag.params.clone(),
    );
    if let Some(r) = &recorded {
        for ti in store.with(|c| store::task_instances(c, &r.run_id))? {
            vars.tasks.insert(
                ti.task_id.clone(),
                TaskVars {
                    state: ti.state.to_string(),
                    outputs: ti.outputs.clone(),
                },
            );
        }
    }
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let log_path = config
        .logs
        .join(&dag.id)
        .join("task-run")
        .join(&t.id)
        .join(format!("{stamp}.log"));
    let log = AttemptLog::create(log_path.clone())
        .with_context(|| format!("creating {}", log_path.display()))?
        .with_echo(Some(Arc::new(|l: &str| println!("{l}"))));
    let services = Services::new(config.clone()).context("setting up services")?;
    let cancel = CancellationToken::new();
    {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel();
            }
        });
    }
    let cx = AttemptContext {
        dag: dag.clone(),
        dag_id: dag.id.clone(),
        task_id: t.id.clone(),
        run_id,
        try_number: 1,
        vars: Arc::new(vars),
        log,
        cancel,
        services: Arc::new(services),
    };
    eprintln!("log: {}", log_path.display());
    let result = match t.timeout {
        Some(limit) => match tokio::time::timeout(limit, t.runner.run(&cx)).await {
            Ok(r) => r,
            Err(_) => {
                cx.cancel.cancel();
                Err(restock::tasks::TaskError::Timeout(limit))
            }
        },
        None => t.runner.run(&cx).await,
    };
    match result {
        Ok(outputs) => {
            println!("{}", serde_json::Value::Object(outputs));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("task `{}` failed: {e}", t.id);
            Ok(ExitCode::from(1))
        }
    }
}
