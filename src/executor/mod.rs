//! Runs one DAG run to completion: dependency order, `parallelism`,
//! trigger rules, `when`, per-attempt timeout, retries with backoff and
//! jitter, cancellation, and resume after a crash.
//!
//! The executor owns task-instance state transitions and is the only writer
//! of attempts to the [`Store`]. It does not decide *when* runs happen
//! (that is the daemon or the CLI) and does not know what a task does (that
//! is its [`crate::tasks::TaskRunner`]). Progress is reported to an
//! [`Observer`] (the terminal for `restock run`, tracing in the daemon).
//!
//! One run is a loop over four pieces, one file each: `readiness` (load
//! what a previous process recorded, decide which tasks may run, skip or
//! fail), `launch` (start an attempt, locally or on a remote executor),
//! `settle` (record a finished attempt, schedule a retry, release
//! downstream tasks) and `finish` (the run's final state). `attempt`
//! supervises every attempt the same way whatever its kind: timeout,
//! cancellation with a grace period, and a panic turned into a failure of
//! that attempt alone.

mod attempt;
mod events;
mod finish;
mod launch;
mod readiness;
mod rules;
mod settle;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dag::Dag;
use crate::schedule::Interval;
use crate::store::{self, NewRun, RunRecord, RunType, State, Store, StoreError};
use crate::tasks::{Outputs, Services, TaskError};
use crate::template::RunVars;

pub use attempt::{KILL_GRACE, supervise};
pub use events::{Event, Observer, TracingObserver};
pub use rules::{Decision, decide};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("task `{0}` is not in DAG `{1}`")]
    UnknownTask(String, String),
    #[error("cannot create log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bug: the run's own driver panicked (attempts catch theirs).
    #[error("run panicked: {0}")]
    Panicked(String),
}

/// Runs DAG runs against one store.
#[derive(Clone)]
pub struct Executor {
    pub store: Store,
    pub services: Arc<Services>,
    pub logs_dir: PathBuf,
    pub observer: Arc<dyn Observer>,
    /// Write per-attempt log files (benchmarks may turn this off to
    /// measure orchestration alone; production always logs).
    pub write_logs: bool,
    /// Once fired, runs start no new attempts; running ones finish and the
    /// run ends `interrupted` with its remaining tasks queued (graceful
    /// shutdown). Cancelling a run's own token stops running attempts too.
    pub drain: CancellationToken,
}

/// How to start a run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub interval: Interval,
    pub run_type: RunType,
    pub force: bool,
    /// Run only these tasks (ids): dependencies among them are honoured,
    /// the recorded outcome of the others stands.
    pub only: Option<Vec<String>>,
}

/// In-memory state of one task during a run.
#[derive(Debug, Clone)]
struct Slot {
    state: State,
    /// Tries already made (across resumes).
    tries: u32,
    /// Tries made by this process for this run (counts against `retries`).
    tries_here: u32,
    outputs: serde_json::Value,
    /// Upstream tasks not yet final.
    waiting: usize,
    /// A try a previous process started on a remote executor and left
    /// running: it is adopted (watched to its end), never submitted again.
    adopt: Option<u32>,
}

/// What a spawned piece of a run reports back to the loop.
enum Done {
    Attempt {
        idx: usize,
        try_number: u32,
        started: Instant,
        result: Result<Outputs, TaskError>,
    },
    RetryDue {
        idx: usize,
    },
}

/// The state of one run while the executor drives it.
struct RunLoop {
    exec: Executor,
    dag: Arc<Dag>,
    run_id: String,
    /// Tells apart runs that reuse a run id (see `worker::spec::job_name`).
    run_key: String,
    t0: Instant,
    slots: Vec<Slot>,
    vars: RunVars,
    /// With `--task`: the tasks to run; the others keep their state.
    selected: Option<HashSet<usize>>,
    /// Tasks whose upstreams are final, not yet decided.
    ready: VecDeque<usize>,
    /// Tasks decided to run, waiting for a `parallelism` slot.
    launch_queue: VecDeque<usize>,
    running: JoinSet<Done>,
    /// Attempts in flight (retry timers excluded).
    active: usize,
    cancel: CancellationToken,
    cancelled: bool,
}

impl Executor {
    /// Create the run row (refusing a duplicate unless forced) and execute
    /// it. With `only`, an existing run for the date is reused and just
    /// those tasks run again.
    pub async fn run(
        &self,
        dag: Arc<Dag>,
        req: RunRequest,
        cancel: CancellationToken,
    ) -> Result<RunRecord, ExecError> {
        if let Some(only) = &req.only {
            for t in only {
                if dag.task(t).is_none() {
                    return Err(ExecError::UnknownTask(t.clone(), dag.id.clone()));
                }
            }
        }
        let ds = req
            .interval
            .start
            .with_timezone(&dag.tz)
            .format("%Y-%m-%d")
            .to_string();
        let new = NewRun {
            dag_id: dag.id.clone(),
            ds,
            start: req.interval.start,
            end: req.interval.end,
            run_type: req.run_type,
            force: req.force,
        };
        let dag_id = dag.id.clone();
        let start = req.interval.start;
        let only = req.only.clone();
        // Own the (DAG, date) before its row exists, so no other process
        // can adopt the run between its creation and its execution.
        let lock = self.lock_run(&dag.id, start).await?;
        let run = self
            .store
            .call(move |c| {
                if only.is_some() && !new.force {
                    if let Some(existing) = store::find_run(c, &dag_id, start)? {
                        return Ok(existing);
                    }
                }
                store::create_run(c, &new, Utc::now())
            })
            .await?;
        self.execute_owned(dag, run, req.only, cancel, lock).await
    }

    /// Take the run lock of (DAG, logical date): [`StoreError::RunBusy`]
    /// when another process executes that run.
    async fn lock_run(
        &self,
        dag_id: &str,
        start: chrono::DateTime<Utc>,
    ) -> Result<store::RunLock, ExecError> {
        let (store, id) = (self.store.clone(), dag_id.to_string());
        tokio::task::spawn_blocking(move || store.lock_run(&id, start))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
            .map_err(ExecError::Store)
    }

    /// Execute (or resume) an existing run until every task is final or
    /// `cancel` fires. Tasks already succeeded or skipped are not rerun.
    /// Refused with [`StoreError::RunBusy`] while another process executes
    /// the run; otherwise its previous owner is gone, and attempts it left
    /// `running` are failed ("process died") and run again.
    pub async fn execute(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        only: Option<Vec<String>>,
        cancel: CancellationToken,
    ) -> Result<RunRecord, ExecError> {
        let lock = self.lock_run(&dag.id, run.logical_date).await?;
        self.execute_owned(dag, run, only, cancel, lock).await
    }

    /// [`Executor::execute`] once the run's lock is held (kept until the
    /// run stops).
    async fn execute_owned(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        only: Option<Vec<String>>,
        cancel: CancellationToken,
        _lock: store::RunLock,
    ) -> Result<RunRecord, ExecError> {
        let mut lp = RunLoop::load(self.clone(), dag, &run, only, cancel).await?;
        match lp.drive().await {
            Ok(()) => lp.finish().await,
            Err(e) => {
                // A store failure mid-run: stop every attempt still in flight
                // so none is left running under a run that has stopped.
                lp.abandon(&e).await;
                Err(e)
            }
        }
    }

    /// [`Executor::execute`], with a panic in the run's driver turned into
    /// [`ExecError::Panicked`] so that whoever counts active runs (the
    /// daemon's `max_active_runs`) always hears back.
    pub async fn execute_caught(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        only: Option<Vec<String>>,
        cancel: CancellationToken,
    ) -> Result<RunRecord, ExecError> {
        caught(self.execute(dag, run, only, cancel)).await
    }

    /// [`Executor::run`], with panics caught as in [`Executor::execute_caught`].
    pub async fn run_caught(
        &self,
        dag: Arc<Dag>,
        req: RunRequest,
        cancel: CancellationToken,
    ) -> Result<RunRecord, ExecError> {
        caught(self.run(dag, req, cancel)).await
    }

    async fn finish_record(&self, run_id: &str) -> Result<RunRecord, ExecError> {
        let rid = run_id.to_string();
        Ok(self.store.call(move |c| store::get_run(c, &rid)).await?)
    }
}

impl RunLoop {
    /// Decide, launch and settle until nothing is running or waiting.
    async fn drive(&mut self) -> Result<(), ExecError> {
        loop {
            self.decide_ready().await?;
            self.launch_ready().await?;
            if self.running.is_empty() {
                return Ok(());
            }
            let done = tokio::select! {
                d = self.running.join_next() => d,
                _ = self.cancel.cancelled(), if !self.cancelled => {
                    self.cancelled = true;
                    continue;
                }
            };
            match done {
                None => return Ok(()),
                Some(Ok(done)) => self.on_done(done).await?,
                // Attempts catch their own panics (see `attempt`), so this is
                // a retry timer that could not run: nothing to record.
                Some(Err(e)) => {
                    tracing::error!(dag = %self.dag.id, run = %self.run_id, "executor task failed: {e}")
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.cancelled || self.cancel.is_cancelled()
    }
}

async fn caught(
    f: impl std::future::Future<Output = Result<RunRecord, ExecError>>,
) -> Result<RunRecord, ExecError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".into());
            Err(ExecError::Panicked(msg))
        })
}

/// How long a cancelled or timed-out attempt gets to stop before the
/// executor records it and moves on.
pub fn grace_for(remote: Option<Duration>) -> Duration {
    remote.map_or(KILL_GRACE, |g| g + Duration::from_secs(5))
}
