//! `restock run`: one DAG in the foreground, for one date or a backfill
//! range, printing tasks as they start and finish.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::dag::Dag;
use restock::executor::{Event, ExecError, Observer, RunRequest};
use restock::schedule::{self, Interval};
use restock::store::{RunType, State, StoreError};

#[derive(clap::Args)]
pub struct RunArgs {
    /// DAG id (looked up in the jobs folder) or a DAG file.
    pub dag: String,
    /// Logical date (YYYY-MM-DD); default: the newest complete interval.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub date: Option<NaiveDate>,
    /// Backfill every scheduled interval from this date …
    #[arg(long, requires = "to")]
    pub from: Option<NaiveDate>,
    /// … to this date (inclusive), in order.
    #[arg(long, requires = "from")]
    pub to: Option<NaiveDate>,
    /// Run only this task (repeatable); reuses the run for the date.
    #[arg(long = "task")]
    pub tasks: Vec<String>,
    /// Run even if a run for the date exists (a new generation).
    #[arg(long)]
    pub force: bool,
}

/// Prints run progress to the terminal.
pub struct Terminal;

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

impl Observer for Terminal {
    fn event(&self, _dag: &str, ev: &Event) {
        let line = match ev {
            Event::RunStarted { run_id, resumed } if *resumed > 0 => {
                format!("run {run_id} (resuming; {resumed} task(s) already final)")
            }
            Event::RunStarted { run_id, .. } => format!("run {run_id}"),
            Event::TaskStarted { task, try_number } if *try_number > 1 => {
                format!("  > {task} started (try {try_number})")
            }
            Event::TaskStarted { task, .. } => format!("  > {task} started"),
            Event::TaskProgress { task, line } => format!("    {task}: {line}"),
            Event::TaskFinished {
                task,
                state,
                elapsed,
                error,
                ..
            } => match error {
                Some(e) => format!("  x {task} {state} after {}: {e}", secs(*elapsed)),
                None => format!("  ok {task} {state} in {}", secs(*elapsed)),
            },
            Event::TaskRetry {
                task,
                next_try,
                delay,
            } => format!("  ~ {task} retries (try {next_try}) in {}", secs(*delay)),
            Event::TaskDecided {
                task,
                state,
                reason,
            } => format!("  - {task} {state}: {reason}"),
            Event::RunFinished {
                run_id,
                state,
                elapsed,
            } => format!("run {run_id} {state} in {}", secs(*elapsed)),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// Intervals named by `--date` / `--from --to` (or the default).
pub fn intervals(
    dag: &Dag,
    date: Option<NaiveDate>,
    range: Option<(NaiveDate, NaiveDate)>,
) -> Result<Vec<Interval>> {
    if let Some((from, to)) = range {
        if from > to {
            bail!("--from {from} is after --to {to}");
        }
        let ivs = match &dag.schedule {
            Some(s) => s.intervals_between(from, to),
            None => from
                .iter_days()
                .take_while(|d| *d <= to)
                .filter_map(|d| schedule::day_interval(&dag.tz, d))
                .collect(),
        };
        if ivs.is_empty() {
            bail!(
                "no scheduled interval of `{}` starts between {from} and {to}",
                dag.id
            );
        }
        return Ok(ivs);
    }
    let iv = match (date, &dag.schedule) {
        (Some(d), Some(s)) => s.interval_for_date(d),
        (Some(d), None) => schedule::day_interval(&dag.tz, d),
        (None, Some(s)) => s.latest_complete(Utc::now()),
        (None, None) => {
            schedule::day_interval(&dag.tz, Utc::now().with_timezone(&dag.tz).date_naive())
        }
    };
    Ok(vec![iv.context("cannot compute the run's data interval")?])
}

pub async fn run(config: Config, args: RunArgs) -> Result<ExitCode> {
    let registry = super::registry(&config);
    let dag = super::resolve_dag(&config, &registry, &args.dag)?;
    let range = args.from.zip(args.to);
    let ivs = intervals(&dag, args.date, range)?;
    let exec = super::executor(&config, Arc::new(Terminal))?;
    let run_type = if range.is_some() {
        RunType::Backfill
    } else {
        RunType::Manual
    };

    let cancel = CancellationToken::new();
    {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted; stopping running tasks");
                c.cancel();
            }
        });
    }

    let only = (!args.tasks.is_empty()).then(|| args.tasks.clone());
    let mut failed = 0usize;
    let mut interrupted = false;
    for iv in ivs {
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        let req = RunRequest {
            interval: iv,
            run_type,
            force: args.force,
            only: only.clone(),
        };
        match exec.run(dag.clone(), req, cancel.clone()).await {
            Ok(run) => match run.state {
                State::Succeeded | State::Queued => {}
                State::Interrupted => interrupted = true,
                _ => failed += 1,
            },
            Err(ExecError::Store(e @ StoreError::RunExists { .. })) if range.is_some() => {
                println!("skip: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
