//! Runs one DAG run to completion: dependency order, `parallelism`,
//! trigger rules, `when`, per-attempt timeout, retries with backoff and
//! jitter, cancellation, and resume after a crash.
//!
//! The executor owns task-instance state transitions and is the only writer
//! of attempts to the [`Store`]. It does not decide *when* runs happen
//! (that is the daemon or the CLI) and does not know what a task does (that
//! is its [`crate::tasks::TaskRunner`]). Progress is reported to an
//! [`Observer`] (the terminal for `restock run`, tracing in the daemon).

mod rules;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dag::Dag;
use crate::schedule::Interval;
use crate::store::{self, NewRun, RunRecord, RunType, State, Store, StoreError};
use crate::tasks::{AttemptContext, AttemptLog, Outputs, Services, TaskError};
use crate::template::{RunVars, TaskVars};

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
}

/// What happened during a run, for whoever is watching.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: String,
        resumed: usize,
    },
    TaskStarted {
        task: String,
        try_number: u32,
    },
    TaskProgress {
        task: String,
        line: String,
    },
    TaskFinished {
        task: String,
        try_number: u32,
        state: State,
        elapsed: Duration,
        error: Option<String>,
    },
    TaskRetry {
        task: String,
        next_try: u32,
        delay: Duration,
    },
    /// Skipped or upstream_failed without an attempt.
    TaskDecided {
        task: String,
        state: State,
        reason: String,
    },
    RunFinished {
        run_id: String,
        state: State,
        elapsed: Duration,
    },
}

pub trait Observer: Send + Sync {
    fn event(&self, dag_id: &str, ev: &Event);
}

/// Logs events through `tracing` (the daemon's observer).
pub struct TracingObserver;

impl Observer for TracingObserver {
    fn event(&self, dag_id: &str, ev: &Event) {
        match ev {
            Event::RunStarted { run_id, resumed } => {
                tracing::info!(dag = dag_id, run = %run_id, resumed, "run started")
            }
            Event::TaskStarted { task, try_number } => {
                tracing::info!(dag = dag_id, task = %task, try_number, "task started")
            }
            Event::TaskProgress { task, line } => {
                tracing::info!(dag = dag_id, task = %task, "{line}")
            }
            Event::TaskFinished {
                task,
                try_number,
                state,
                elapsed,
                error,
            } => tracing::info!(
                dag = dag_id,
                task = %task,
                try_number,
                state = %state,
                elapsed_ms = elapsed.as_millis() as u64,
                error = error.as_deref().unwrap_or(""),
                "task finished"
            ),
            Event::TaskRetry {
                task,
                next_try,
                delay,
            } => tracing::warn!(
                dag = dag_id,
                task = %task,
                next_try,
                delay_ms = delay.as_millis() as u64,
                "task will retry"
            ),
            Event::TaskDecided {
                task,
                state,
                reason,
            } => tracing::info!(dag = dag_id, task = %task, state = %state, "{reason}"),
            Event::RunFinished {
                run_id,
                state,
                elapsed,
            } => tracing::info!(
                dag = dag_id,
                run = %run_id,
                state = %state,
                elapsed_ms = elapsed.as_millis() as u64,
                "run finished"
            ),
        }
    }
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
}

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

    async fn execute_owned(
        &self,
        dag: Arc<Dag>,
        run: RunRecord,
        only: Option<Vec<String>>,
        cancel: CancellationToken,
        _lock: store::RunLock,
    ) -> Result<RunRecord, ExecError> {
        let t0 = Instant::now();
        let run_id = run.run_id.clone();
        let n = dag.tasks.len();

        // Load what a previous process recorded; we hold the run's lock, so
        // any attempt still marked running belongs to a process that died.
        let rid = run_id.clone();
        let (prior, orphans) = self
            .store
            .call(move |c| {
                let orphans = store::fail_orphans(c, &rid, "process died", Utc::now())?;
                let tis = store::task_instances(c, &rid)?;
                store::set_run_state(c, &rid, State::Running, Utc::now())?;
                Ok((tis, orphans))
            })
            .await?;
        if orphans > 0 {
            tracing::info!(run = %run_id, orphaned_attempts = orphans, "previous owner died; its attempts are failed");
        }
        let prior: HashMap<String, store::TaskInstance> =
            prior.into_iter().map(|t| (t.task_id.clone(), t)).collect();

        let selected: Option<HashSet<usize>> = only.as_ref().map(|ids| {
            ids.iter()
                .filter_map(|id| dag.by_id.get(id).copied())
                .collect()
        });

        let mut slots: Vec<Slot> = dag
            .tasks
            .iter()
            .map(|t| {
                let p = prior.get(&t.id);
                let mut state = p.map(|p| p.state).unwrap_or(State::Queued);
                if !state.is_final() {
                    state = State::Queued;
                }
                Slot {
                    state,
                    tries: p.map(|p| p.tries.max(0) as u32).unwrap_or(0),
                    tries_here: 0,
                    outputs: p.map(|p| p.outputs.clone()).unwrap_or_default(),
                    waiting: 0,
                }
            })
            .collect();
        if let Some(sel) = &selected {
            for &i in sel {
                slots[i].state = State::Queued;
            }
        }
        let resumed = slots.iter().filter(|s| s.state.is_final()).count();
        self.observer.event(
            &dag.id,
            &Event::RunStarted {
                run_id: run_id.clone(),
                resumed,
            },
        );

        let mut base_vars = RunVars::new(
            &dag.id,
            &run_id,
            &dag.tz,
            run.data_interval_start,
            run.data_interval_end,
            dag.params.clone(),
        );
        for (i, t) in dag.tasks.iter().enumerate() {
            if slots[i].state.is_final() {
                base_vars.tasks.insert(
                    t.id.clone(),
                    TaskVars {
                        state: slots[i].state.to_string(),
                        outputs: slots[i].outputs.clone(),
                    },
                );
            }
        }

        // Readiness: a queued task waits for its non-final upstreams. With
        // `only`, the others never run, and a selected task waits only for
        // its selected upstreams (the recorded outcome of the rest stands).
        let mut ready: VecDeque<usize> = VecDeque::new();
        for i in 0..n {
            if slots[i].state.is_final() {
                continue;
            }
            if selected.as_ref().is_some_and(|sel| !sel.contains(&i)) {
                continue;
            }
            slots[i].waiting = dag.tasks[i]
                .upstream
                .iter()
                .filter(|&&u| !slots[u].state.is_final())
                .filter(|u| selected.as_ref().is_none_or(|sel| sel.contains(u)))
                .count();
            if slots[i].waiting == 0 {
                ready.push_back(i);
            }
        }

        let mut running: JoinSet<Done> = JoinSet::new();
        let mut active = 0usize; // attempts in flight (retry timers excluded)
        let mut launch_queue: VecDeque<usize> = VecDeque::new();
        let mut cancelled = false;

        loop {
            // Decide every ready task: run it, skip it or fail it.
            while let Some(i) = ready.pop_front() {
                let task = &dag.tasks[i];
                let forced = selected.as_ref().is_some_and(|s| s.contains(&i));
                let decision = if forced {
                    // Rules apply among the selected tasks only.
                    let sel = selected.as_ref();
                    let ups: Vec<State> = task
                        .upstream
                        .iter()
                        .filter(|u| sel.is_some_and(|s| s.contains(u)))
                        .map(|&u| slots[u].state)
                        .collect();
                    if ups.is_empty() {
                        Decision::Run
                    } else {
                        decide(task.trigger_rule, &ups)
                    }
                } else {
                    let ups: Vec<State> = task.upstream.iter().map(|&u| slots[u].state).collect();
                    decide(task.trigger_rule, &ups)
                };
                let decision = match (decision, &task.when) {
                    (Decision::Run, Some(expr)) => match base_vars.eval_bool(expr) {
                        Ok(true) => Decision::Run,
                        Ok(false) => Decision::Skip(format!("`when` is false: {expr}")),
                        Err(e) => Decision::Fail(format!("`when` failed: {e}")),
                    },
                    (d, _) => d,
                };
                let (state, reason, error) = match decision {
                    Decision::Run => {
                        launch_queue.push_back(i);
                        continue;
                    }
                    Decision::Skip(r) => (State::Skipped, r, None),
                    Decision::UpstreamFailed(r) => (State::UpstreamFailed, r, None),
                    Decision::Fail(r) => (State::Failed, r.clone(), Some(r)),
                };
                self.finish_without_attempt(&dag, &run_id, i, state, &reason, error.as_deref())
                    .await?;
                self.settle(
                    &dag,
                    &mut slots,
                    &mut base_vars,
                    &mut ready,
                    &selected,
                    i,
                    state,
                );
            }

            // Launch up to `parallelism` attempts.
            while !cancelled && !self.drain.is_cancelled() && active < dag.parallelism {
                let Some(i) = launch_queue.pop_front() else {
                    break;
                };
                slots[i].tries += 1;
                slots[i].tries_here += 1;
                let try_number = slots[i].tries;
                let task = &dag.tasks[i];
                let log_path = self
                    .logs_dir
                    .join(&dag.id)
                    .join(&run_id)
                    .join(&task.id)
                    .join(format!("{try_number}.log"));
                let log_str = log_path.to_string_lossy().into_owned();
                let (rid, tid) = (run_id.clone(), task.id.clone());
                let tn = i64::from(try_number);
                self.store
                    .call(move |c| store::begin_attempt(c, &rid, &tid, tn, &log_str, Utc::now()))
                    .await?;
                let log = if self.write_logs {
                    let lp = log_path.clone();
                    tokio::task::spawn_blocking(move || AttemptLog::create(lp))
                        .await
                        .map_err(|e| ExecError::Log {
                            path: log_path.clone(),
                            source: std::io::Error::other(e.to_string()),
                        })?
                        .map_err(|source| ExecError::Log {
                            path: log_path.clone(),
                            source,
                        })?
                } else {
                    AttemptLog::discard()
                };
                let observer = self.observer.clone();
                let (dag_id, task_id) = (dag.id.clone(), task.id.clone());
                let log = log.with_echo(Some(Arc::new(move |line: &str| {
                    observer.event(
                        &dag_id,
                        &Event::TaskProgress {
                            task: task_id.clone(),
                            line: line.to_string(),
                        },
                    )
                })));
                let cx = AttemptContext {
                    dag: dag.clone(),
                    dag_id: dag.id.clone(),
                    task_id: task.id.clone(),
                    run_id: run_id.clone(),
                    try_number,
                    vars: Arc::new(base_vars.clone()),
                    log,
                    cancel: cancel.child_token(),
                    services: self.services.clone(),
                };
                self.observer.event(
                    &dag.id,
                    &Event::TaskStarted {
                        task: task.id.clone(),
                        try_number,
                    },
                );
                let runner = task.runner.clone();
                let timeout = task.timeout;
                active += 1;
                running.spawn(async move {
                    let started = Instant::now();
                    let result = run_attempt(runner, &cx, timeout).await;
                    if let Err(e) = &result {
                        cx.log.line(&format!("attempt failed: {e}"));
                    }
                    Done::Attempt {
                        idx: i,
                        try_number,
                        started,
                        result,
                    }
                });
            }

            if running.is_empty() {
                break;
            }
            let done = tokio::select! {
                d = running.join_next() => d,
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    continue;
                }
            };
            let Some(done) = done else { break };
            let done = match done {
                Ok(d) => d,
                Err(e) => {
                    // A panicking task kind is a bug; the run cannot tell
                    // which task it was, so it stops here as failed.
                    tracing::error!(dag = %dag.id, run = %run_id, "task panicked: {e}");
                    let rid = run_id.clone();
                    self.store
                        .call(move |c| store::set_run_state(c, &rid, State::Failed, Utc::now()))
                        .await?;
                    return self.finish_record(&run_id).await;
                }
            };
            match done {
                Done::RetryDue { idx } => {
                    if cancelled || cancel.is_cancelled() || self.drain.is_cancelled() {
                        self.mark_interrupted(&run_id, &dag.tasks[idx].id).await?;
                    } else {
                        launch_queue.push_back(idx);
                    }
                }
                Done::Attempt {
                    idx,
                    try_number,
                    started,
                    result,
                } => {
                    active -= 1;
                    let task = &dag.tasks[idx];
                    let elapsed = started.elapsed();
                    match result {
                        Ok(outputs) => {
                            let out = serde_json::Value::Object(outputs);
                            self.record_end(
                                &run_id,
                                &task.id,
                                try_number,
                                State::Succeeded,
                                State::Succeeded,
                                None,
                                &out,
                            )
                            .await?;
                            slots[idx].outputs = out;
                            self.observer.event(
                                &dag.id,
                                &Event::TaskFinished {
                                    task: task.id.clone(),
                                    try_number,
                                    state: State::Succeeded,
                                    elapsed,
                                    error: None,
                                },
                            );
                            self.settle(
                                &dag,
                                &mut slots,
                                &mut base_vars,
                                &mut ready,
                                &selected,
                                idx,
                                State::Succeeded,
                            );
                        }
                        Err(err) => {
                            let msg = err.to_string();
                            let stopping = cancelled || cancel.is_cancelled();
                            let interrupted = stopping
                                && matches!(err, TaskError::Interrupted(_) | TaskError::Timeout(_));
                            let can_retry = err.retryable()
                                && !stopping
                                && slots[idx].tries_here <= task.retry.retries;
                            let (attempt_state, ti_state) = if interrupted {
                                (State::Interrupted, State::Interrupted)
                            } else if can_retry {
                                (State::Failed, State::UpForRetry)
                            } else {
                                (State::Failed, State::Failed)
                            };
                            let null = serde_json::Value::Null;
                            self.record_end(
                                &run_id,
                                &task.id,
                                try_number,
                                attempt_state,
                                ti_state,
                                Some(&msg),
                                &null,
                            )
                            .await?;
                            self.observer.event(
                                &dag.id,
                                &Event::TaskFinished {
                                    task: task.id.clone(),
                                    try_number,
                                    state: ti_state,
                                    elapsed,
                                    error: Some(msg),
                                },
                            );
                            match ti_state {
                                State::UpForRetry => {
                                    let delay = task.retry.delay_before(try_number + 1);
                                    self.observer.event(
                                        &dag.id,
                                        &Event::TaskRetry {
                                            task: task.id.clone(),
                                            next_try: try_number + 1,
                                            delay,
                                        },
                                    );
                                    let c = cancel.clone();
                                    let drain = self.drain.clone();
                                    running.spawn(async move {
                                        tokio::select! {
                                            _ = tokio::time::sleep(delay) => {}
                                            _ = c.cancelled() => {}
                                            _ = drain.cancelled() => {}
                                        }
                                        Done::RetryDue { idx }
                                    });
                                }
                                State::Interrupted => {
                                    slots[idx].state = State::Interrupted;
                                }
                                _ => {
                                    self.settle(
                                        &dag,
                                        &mut slots,
                                        &mut base_vars,
                                        &mut ready,
                                        &selected,
                                        idx,
                                        State::Failed,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }

        // Final state of the run.
        let in_scope = |i: usize| selected.as_ref().is_none_or(|s| s.contains(&i));
        let all_final = (0..n).all(|i| !in_scope(i) || slots[i].state.is_final());
        let state = if !all_final || cancelled {
            State::Interrupted
        } else if (0..n)
            .filter(|&i| in_scope(i))
            .all(|i| matches!(slots[i].state, State::Succeeded | State::Skipped))
        {
            State::Succeeded
        } else {
            State::Failed
        };
        let state = if selected.is_some() && state != State::Interrupted {
            // A partial rerun: the run's state reflects every task.
            let whole_ok = slots
                .iter()
                .all(|s| matches!(s.state, State::Succeeded | State::Skipped));
            let whole_final = slots.iter().all(|s| s.state.is_final());
            match (state, whole_ok, whole_final) {
                (State::Succeeded, true, _) => State::Succeeded,
                (State::Succeeded, false, false) => State::Queued,
                _ => State::Failed,
            }
        } else {
            state
        };
        let rid = run_id.clone();
        self.store
            .call(move |c| store::set_run_state(c, &rid, state, Utc::now()))
            .await?;
        self.observer.event(
            &dag.id,
            &Event::RunFinished {
                run_id: run_id.clone(),
                state,
                elapsed: t0.elapsed(),
            },
        );
        self.finish_record(&run_id).await
    }

    async fn finish_record(&self, run_id: &str) -> Result<RunRecord, ExecError> {
        let rid = run_id.to_string();
        Ok(self.store.call(move |c| store::get_run(c, &rid)).await?)
    }

    async fn mark_interrupted(&self, run_id: &str, task_id: &str) -> Result<(), ExecError> {
        let (rid, tid) = (run_id.to_string(), task_id.to_string());
        self.store
            .call(move |c| {
                store::set_task_state(
                    c,
                    &rid,
                    &tid,
                    State::Interrupted,
                    Some("stopped before retry"),
                    Utc::now(),
                )
            })
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_end(
        &self,
        run_id: &str,
        task_id: &str,
        try_number: u32,
        attempt_state: State,
        ti_state: State,
        error: Option<&str>,
        outputs: &serde_json::Value,
    ) -> Result<(), ExecError> {
        let (rid, tid) = (run_id.to_string(), task_id.to_string());
        let err = error.map(str::to_string);
        let out = outputs.clone();
        self.store
            .call(move |c| {
                store::end_attempt(
                    c,
                    &rid,
                    &tid,
                    i64::from(try_number),
                    attempt_state,
                    ti_state,
                    err.as_deref(),
                    &out,
                    Utc::now(),
                )
            })
            .await?;
        Ok(())
    }

    async fn finish_without_attempt(
        &self,
        dag: &Dag,
        run_id: &str,
        idx: usize,
        state: State,
        reason: &str,
        error: Option<&str>,
    ) -> Result<(), ExecError> {
        let (rid, tid) = (run_id.to_string(), dag.tasks[idx].id.clone());
        let err = error.map(str::to_string);
        self.store
            .call(move |c| store::set_task_state(c, &rid, &tid, state, err.as_deref(), Utc::now()))
            .await?;
        self.observer.event(
            &dag.id,
            &Event::TaskDecided {
                task: dag.tasks[idx].id.clone(),
                state,
                reason: reason.to_string(),
            },
        );
        Ok(())
    }

    /// Record a final state in memory and release downstream tasks.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        dag: &Dag,
        slots: &mut [Slot],
        vars: &mut RunVars,
        ready: &mut VecDeque<usize>,
        selected: &Option<HashSet<usize>>,
        idx: usize,
        state: State,
    ) {
        slots[idx].state = state;
        vars.tasks.insert(
            dag.tasks[idx].id.clone(),
            TaskVars {
                state: state.to_string(),
                outputs: slots[idx].outputs.clone(),
            },
        );
        for &d in &dag.tasks[idx].downstream {
            if slots[d].state.is_final() || selected.as_ref().is_some_and(|s| !s.contains(&d)) {
                continue;
            }
            slots[d].waiting = slots[d].waiting.saturating_sub(1);
            if slots[d].waiting == 0 {
                ready.push_back(d);
            }
        }
    }
}

/// One attempt with its timeout. On timeout the attempt's token is
/// cancelled and the runner gets a moment to stop its work (a command kills
/// its process group) before the attempt is reported.
async fn run_attempt(
    runner: Arc<dyn crate::tasks::TaskRunner>,
    cx: &AttemptContext,
    timeout: Option<Duration>,
) -> Result<Outputs, TaskError> {
    let Some(limit) = timeout else {
        return runner.run(cx).await;
    };
    let fut = runner.run(cx);
    tokio::pin!(fut);
    tokio::select! {
        r = &mut fut => r,
        _ = tokio::time::sleep(limit) => {
            cx.cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), &mut fut).await;
            Err(TaskError::Timeout(limit))
        }
    }
}
