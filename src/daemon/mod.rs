//! The long-running scheduler: loads every DAG in the jobs folder, starts
//! runs when their intervals come due (with catchup and
//! `max_active_runs`), reloads changed files, recovers after a crash and
//! shuts down gracefully.
//!
//! Timing: "now" comes from the [`Clock`] seam (see [`clock`]). With the
//! wall clock, tokio-cron-scheduler drives a one-second UTC heartbeat; a
//! controllable clock wakes the daemon each time it moves instead. On each
//! beat the daemon asks [`crate::schedule`] which intervals are due in each
//! DAG's own time zone. We do not register each DAG's cron with
//! tokio-cron-scheduler directly because its `_tz` jobs fix the UTC offset
//! when the job is created, so a Europe/Berlin job would drift by an hour
//! across a DST change; croner (which it uses internally) gets DST right
//! when asked per instant. Duplicate beats are harmless: a run is unique
//! per (DAG, logical date) in the store.

pub mod clock;
mod commands;
mod control;
mod reload;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dag::Dag;
use crate::executor::{ExecError, Executor, RunRequest};
use crate::schedule::Interval;
use crate::store::{self, RunRecord, RunType, State, StoreError};
use crate::tasks::Registry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use control::{
    Command, ControlError, ControlHandle, DaemonLink, SchedulerStatus, Shared, link,
};
pub use reload::{CatalogEntry, DagSet};

use commands::next_command;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scheduler: {0}")]
    Scheduler(String),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

enum Wake {
    Beat,
    Reload { force: bool },
}

/// Per-DAG scheduling state.
#[derive(Default)]
struct DagSlot {
    /// Start of the newest interval that has a run (or is queued).
    last_start: Option<DateTime<Utc>>,
    queue: VecDeque<Queued>,
    active: usize,
}

/// A run waiting for a `max_active_runs` slot.
enum Queued {
    /// A due interval; the executor creates its run when it starts.
    Due(Interval, RunType),
    /// A run already in the history (triggered, backfilled, cleared).
    Run(RunRecord),
}

impl Queued {
    fn key(&self, dag_id: &str) -> RunKey {
        match self {
            Queued::Due(iv, _) => (dag_id.to_string(), iv.start),
            Queued::Run(r) => (r.dag_id.clone(), r.logical_date),
        }
    }
}

/// A run is unique per (DAG, logical date) while it is active.
type RunKey = (String, DateTime<Utc>);

/// What the loop knows about runs it started: their cancellation tokens
/// and which of them a user cancelled.
#[derive(Default)]
struct Live {
    tokens: HashMap<RunKey, CancellationToken>,
    cancelled: std::collections::HashSet<RunKey>,
}

pub struct Daemon {
    pub config: Config,
    pub registry: Registry,
    pub executor: Executor,
    pub clock: Arc<dyn Clock>,
    /// What the web server reads (`restock daemon` serves HTTP), if any.
    pub shared: Option<Arc<Shared>>,
    /// Commands from the web server, if any.
    pub commands: Option<mpsc::Receiver<Command>>,
}

type RunResult = (RunKey, Result<RunRecord, ExecError>);

impl Daemon {
    /// Run until `shutdown` fires (SIGTERM/SIGINT are wired by the caller
    /// or by [`Daemon::run_with_signals`]).
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        reload_now: Option<mpsc::Receiver<()>>,
    ) -> Result<(), DaemonError> {
        let started_at = self.clock.now();
        let mut dags = DagSet::new(self.config.jobs.clone(), self.config.root.clone());
        dags.reload(&self.registry, true);
        self.publish(&dags, None);
        let mut commands = self.commands.take();
        let mut live = Live::default();
        tracing::info!(dags = dags.len(), jobs = %self.config.jobs.display(), "daemon started");

        let runs_cancel = CancellationToken::new();
        let mut runs: JoinSet<RunResult> = JoinSet::new();
        let mut slots: HashMap<String, DagSlot> = HashMap::new();

        self.recover(&dags, &mut runs, &mut slots, &runs_cancel, &mut live, true)
            .await?;

        let (wake_tx, mut wake_rx) = mpsc::channel::<Wake>(16);
        let mut sched = self.beats(wake_tx.clone(), &shutdown).await?;
        if let Some(mut rx) = reload_now {
            let tx = wake_tx.clone();
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    let _ = tx.send(Wake::Reload { force: true }).await;
                }
            });
        }
        let reload_every = self.config.reload_interval;
        {
            let tx = wake_tx.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(reload_every);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = iv.tick() => {
                            if tx.send(Wake::Reload { force: false }).await.is_err() { break; }
                        }
                        _ = stop.cancelled() => break,
                    }
                }
            });
        }

        // Schedule immediately rather than waiting for the first beat.
        self.schedule(&dags, &mut slots, started_at).await?;
        self.start_runs(&dags, &mut slots, &mut runs, &runs_cancel, &mut live);
        self.publish(&dags, Some(&slots));

        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(res) = runs.join_next(), if !runs.is_empty() => {
                    self.on_run_done(res, &mut slots, &mut live);
                    self.start_runs(&dags, &mut slots, &mut runs, &runs_cancel, &mut live);
                    self.publish(&dags, Some(&slots));
                }
                Some(cmd) = next_command(&mut commands) => {
                    self.command(cmd, &dags, &mut slots, &mut live).await;
                    self.start_runs(&dags, &mut slots, &mut runs, &runs_cancel, &mut live);
                    self.publish(&dags, Some(&slots));
                }
                Some(w) = wake_rx.recv() => {
                    match w {
                        Wake::Beat => {
                            self.schedule(&dags, &mut slots, started_at).await?;
                        }
                        Wake::Reload { force } => {
                            if dags.reload(&self.registry, force) {
                                // DAGs whose file is gone stop being scheduled.
                                slots.retain(|id, s| dags.get(id).is_some() || s.active > 0);
                            }
                            // Runs of a `restock run` (or a peer) that died.
                            self.recover(&dags, &mut runs, &mut slots, &runs_cancel, &mut live, false)
                                .await?;
                        }
                    }
                    self.start_runs(&dags, &mut slots, &mut runs, &runs_cancel, &mut live);
                    self.publish(&dags, Some(&slots));
                }
            }
        }

        // Graceful shutdown: no new runs; let attempts finish within the
        // grace period, then cancel them (they are recorded as interrupted).
        if let Some(s) = sched.as_mut() {
            let _ = s.shutdown().await;
        }
        self.executor.drain.cancel();
        let grace = self.config.shutdown_grace;
        tracing::info!(
            running = runs.len(),
            grace_s = grace.as_secs_f64(),
            "shutting down"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while !runs.is_empty() {
            tokio::select! {
                Some(res) = runs.join_next() => self.on_run_done(res, &mut slots, &mut live),
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(running = runs.len(), "grace period over, interrupting running tasks");
                    runs_cancel.cancel();
                    while let Some(res) = runs.join_next().await {
                        self.on_run_done(res, &mut slots, &mut live);
                    }
                }
            }
        }
        tracing::info!("daemon stopped");
        Ok(())
    }

    /// Run with SIGTERM/SIGINT → graceful shutdown and SIGHUP → reload.
    pub async fn run_with_signals(self) -> Result<(), DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let shutdown = CancellationToken::new();
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!("SIGTERM received"); stop.cancel(); break; }
                    _ = int.recv() => { tracing::info!("SIGINT received"); stop.cancel(); break; }
                    _ = hup.recv() => { tracing::info!("SIGHUP received, reloading"); let _ = reload_tx.send(()).await; }
                }
            }
        });
        self.run(shutdown, Some(reload_rx)).await
    }

    /// What wakes the scheduling: the clock's moves when it reports them,
    /// else a one-second heartbeat (returned, to be shut down).
    async fn beats(
        &self,
        tx: mpsc::Sender<Wake>,
        stop: &CancellationToken,
    ) -> Result<Option<JobScheduler>, DaemonError> {
        let Some(mut moves) = self.clock.moves() else {
            return self.heartbeat(tx).await.map(Some);
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = moves.changed() => {
                        if r.is_err() || tx.send(Wake::Beat).await.is_err() { break; }
                    }
                    _ = stop.cancelled() => break,
                }
            }
        });
        Ok(None)
    }

    async fn heartbeat(&self, tx: mpsc::Sender<Wake>) -> Result<JobScheduler, DaemonError> {
        let err =
            |e: tokio_cron_scheduler::JobSchedulerError| DaemonError::Scheduler(e.to_string());
        let sched = JobScheduler::new().await.map_err(err)?;
        let job = Job::new_async("* * * * * *", move |_id, _lock| {
            let tx = tx.clone();
            Box::pin(async move {
                // A full channel means a beat is already pending.
                let _ = tx.try_send(Wake::Beat);
            })
        })
        .map_err(err)?;
        sched.add(job).await.map_err(err)?;
        sched.start().await.map_err(err)?;
        Ok(sched)
    }

    /// Adopt unfinished runs whose owner is gone (see `store::RunLock`): at
    /// start every unfinished run, later (`startup == false`, on each
    /// reload tick) only runs left `running` by a process that died. A run
    /// another process still executes is left to it. The executor fails
    /// the dead owner's attempts ("process died") and resumes the run from
    /// its unfinished tasks.
    async fn recover(
        &self,
        dags: &DagSet,
        runs: &mut JoinSet<RunResult>,
        slots: &mut HashMap<String, DagSlot>,
        cancel: &CancellationToken,
        live: &mut Live,
        startup: bool,
    ) -> Result<(), DaemonError> {
        let unfinished = self
            .executor
            .store
            .call(|c| store::unfinished_runs(c))
            .await?;
        for run in unfinished {
            if !startup && run.state != State::Running {
                continue;
            }
            let Some(dag) = dags.get(&run.dag_id) else {
                if startup {
                    tracing::warn!(run = %run.run_id, dag = %run.dag_id, "unfinished run of a DAG that is not loaded; leaving it");
                }
                continue;
            };
            let (st, id, start) = (
                self.executor.store.clone(),
                run.dag_id.clone(),
                run.logical_date,
            );
            let owned = tokio::task::spawn_blocking(move || st.lock_run(&id, start).map(drop))
                .await
                .map_err(|e| StoreError::Join(e.to_string()))?;
            match owned {
                Ok(()) => {}
                Err(StoreError::RunBusy { owner, .. }) => {
                    if startup {
                        tracing::info!(run = %run.run_id, owner = %owner, "run is executed by another process; leaving it");
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(run = %run.run_id, "resuming run");
            let slot = slots.entry(run.dag_id.clone()).or_default();
            slot.active += 1;
            slot.last_start = slot.last_start.max(Some(run.logical_date));
            let exec = self.executor.clone();
            let token = cancel.child_token();
            let key: RunKey = (run.dag_id.clone(), run.logical_date);
            live.tokens.insert(key.clone(), token.clone());
            runs.spawn(async move { (key, exec.execute_caught(dag, run, None, token).await) });
        }
        Ok(())
    }

    /// Queue the intervals each DAG owes at `now`.
    async fn schedule(
        &self,
        dags: &DagSet,
        slots: &mut HashMap<String, DagSlot>,
        started_at: DateTime<Utc>,
    ) -> Result<(), DaemonError> {
        let now = self.clock.now();
        let paused = self.executor.store.call(|c| store::paused_dags(c)).await?;
        if let Some(shared) = &self.shared {
            shared.update_status(|s| s.last_beat = Some(now));
        }
        for dag in dags.iter() {
            let Some(schedule) = &dag.schedule else {
                continue;
            };
            if paused.contains(&dag.id) {
                continue;
            }
            if !slots.contains_key(&dag.id) {
                let id = dag.id.clone();
                let last = self
                    .executor
                    .store
                    .call(move |c| store::latest_logical_date(c, &id))
                    .await?;
                slots.insert(
                    dag.id.clone(),
                    DagSlot {
                        last_start: last,
                        ..Default::default()
                    },
                );
            }
            let Some(slot) = slots.get_mut(&dag.id) else {
                continue;
            };
            let due = schedule.due(
                slot.last_start,
                now,
                schedule.catchup,
                self.config.max_catchup_runs,
            );
            for iv in due {
                // Intervals that ended while the daemon was down are catchup
                // runs; one that ended moments before it started is on time.
                let kind = if iv.end + crate::schedule::ON_TIME >= started_at {
                    RunType::Scheduled
                } else {
                    RunType::Catchup
                };
                slot.last_start = Some(iv.start);
                slot.queue.push_back(Queued::Due(iv, kind));
            }
        }
        Ok(())
    }

    fn start_runs(
        &self,
        dags: &DagSet,
        slots: &mut HashMap<String, DagSlot>,
        runs: &mut JoinSet<RunResult>,
        cancel: &CancellationToken,
        live: &mut Live,
    ) {
        for (dag_id, slot) in slots.iter_mut() {
            let Some(dag) = dags.get(dag_id) else {
                continue;
            };
            while slot.active < dag.max_active_runs {
                let Some(next) = slot.queue.pop_front() else {
                    break;
                };
                slot.active += 1;
                let exec = self.executor.clone();
                let token = cancel.child_token();
                let key = next.key(dag_id);
                live.tokens.insert(key.clone(), token.clone());
                let dag: Arc<Dag> = dag.clone();
                runs.spawn(async move {
                    let result = match next {
                        Queued::Due(interval, run_type) => {
                            let req = RunRequest {
                                interval,
                                run_type,
                                force: false,
                                only: None,
                            };
                            exec.run_caught(dag, req, token).await
                        }
                        Queued::Run(run) => exec.execute_caught(dag, run, None, token).await,
                    };
                    (key, result)
                });
            }
        }
    }

    fn on_run_done(
        &self,
        res: Result<RunResult, tokio::task::JoinError>,
        slots: &mut HashMap<String, DagSlot>,
        live: &mut Live,
    ) {
        match res {
            Ok((key, result)) => {
                let dag_id = key.0.clone();
                if let Some(slot) = slots.get_mut(&dag_id) {
                    slot.active = slot.active.saturating_sub(1);
                }
                live.tokens.remove(&key);
                if live.cancelled.remove(&key) {
                    if let Ok(run) = &result {
                        self.mark_cancelled(run.run_id.clone());
                    }
                }
                match result {
                    Ok(run) if run.state == State::Succeeded => {}
                    Ok(run) => {
                        tracing::warn!(dag = %dag_id, run = %run.run_id, state = %run.state, "run did not succeed")
                    }
                    Err(ExecError::Store(StoreError::RunExists { run_id, .. })) => {
                        tracing::debug!(dag = %dag_id, run = %run_id, "interval already has a run")
                    }
                    Err(ExecError::Store(StoreError::RunBusy {
                        logical_date,
                        owner,
                        ..
                    })) => {
                        tracing::info!(dag = %dag_id, logical_date = %logical_date, owner = %owner, "run is executed by another process; leaving it")
                    }
                    Err(e) => tracing::error!(dag = %dag_id, "run failed to execute: {e}"),
                }
            }
            Err(e) => tracing::error!("run task panicked: {e}"),
        }
    }
}

/// How long `restock daemon` waits between checks when idle (exposed for
/// docs and tests).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
