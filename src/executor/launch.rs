//! Launching: start up to `parallelism` attempts. Each attempt gets its
//! row in the store, its log and its cancellation token, and then runs
//! either in this process (the task's runner) or on a named remote
//! executor (an [`AttemptSpec`] submitted to Slurm or Ray). Both go
//! through the same supervision (`attempt::supervise`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::remote::{RemoteAttempt, RemoteExecutor};
use crate::store::{self, State};
use crate::tasks::{AttemptContext, AttemptLog, Outputs, TaskError};
use crate::worker::spec::AttemptSpec;

use super::attempt::supervise;
use super::{Done, Event, ExecError, RunLoop, grace_for};

impl RunLoop {
    /// Start queued attempts while `parallelism` allows and the run is not
    /// stopping or draining.
    pub(super) async fn launch_ready(&mut self) -> Result<(), ExecError> {
        while !self.cancelled
            && !self.exec.drain.is_cancelled()
            && self.active < self.dag.parallelism
        {
            let Some(i) = self.launch_queue.pop_front() else {
                break;
            };
            self.launch(i).await?;
        }
        Ok(())
    }

    async fn launch(&mut self, i: usize) -> Result<(), ExecError> {
        let remote = match self.remote_for(i) {
            Ok(r) => r,
            Err(msg) => return self.refuse(i, msg).await,
        };
        let (try_number, adopted) = self.next_try(i, remote.is_some()).await?;
        let task_id = self.dag.tasks[i].id.clone();
        let log_path = self.log_path(&task_id, try_number);
        if !adopted {
            let (rid, tid) = (self.run_id.clone(), task_id.clone());
            let log_str = log_path.to_string_lossy().into_owned();
            let tn = i64::from(try_number);
            self.exec
                .store
                .call(move |c| store::begin_attempt(c, &rid, &tid, tn, &log_str, Utc::now()))
                .await?;
        }
        let log = self.open_log(&task_id, log_path, adopted).await?;
        let cx = AttemptContext {
            dag: self.dag.clone(),
            dag_id: self.dag.id.clone(),
            task_id: task_id.clone(),
            run_id: self.run_id.clone(),
            try_number,
            vars: Arc::new(self.vars.clone()),
            log,
            cancel: self.cancel.child_token(),
            services: self.exec.services.clone(),
        };
        self.exec.observer.event(
            &self.dag.id,
            &Event::TaskStarted {
                task: task_id,
                try_number,
            },
        );
        let task = &self.dag.tasks[i];
        let timeout = task.timeout;
        self.active += 1;
        match remote {
            None => {
                let runner = task.runner.clone();
                self.running.spawn(async move {
                    let started = Instant::now();
                    let result =
                        supervise(runner.run(&cx), &cx.cancel, timeout, grace_for(None)).await;
                    attempt_done(&cx, i, try_number, started, result)
                });
            }
            Some(remote) => {
                let spec = AttemptSpec::new(
                    &self.dag,
                    task,
                    &cx,
                    &self.exec.services.config,
                    &remote.name,
                    &self.run_key,
                    remote.settings.gpus > 0,
                );
                self.running.spawn(async move {
                    let started = Instant::now();
                    let grace = grace_for(Some(remote.settings.cancel_grace));
                    let job = remote.run(RemoteAttempt {
                        spec: &spec,
                        lake: &cx.services.lake,
                        log: &cx.log,
                        cancel: &cx.cancel,
                        adopt: adopted,
                    });
                    let result = supervise(job, &cx.cancel, timeout, grace).await;
                    attempt_done(&cx, i, try_number, started, result)
                });
            }
        }
        Ok(())
    }

    /// The task's remote executor; an error when it names one this
    /// process was not configured with.
    fn remote_for(&self, i: usize) -> Result<Option<Arc<RemoteExecutor>>, String> {
        let Some(name) = self.dag.tasks[i].executor.as_deref() else {
            return Ok(None);
        };
        match self.exec.services.executors.get(name) {
            Some(r) => Ok(Some(r)),
            None => Err(format!(
                "task `{}` runs on executor `{name}`, which restock.yaml does not define",
                self.dag.tasks[i].id
            )),
        }
    }

    /// Fail a task that cannot be launched at all, without an attempt.
    async fn refuse(&mut self, i: usize, msg: String) -> Result<(), ExecError> {
        let (rid, tid) = (self.run_id.clone(), self.dag.tasks[i].id.clone());
        let err = msg.clone();
        self.exec
            .store
            .call(move |c| {
                store::set_task_state(c, &rid, &tid, State::Failed, Some(&err), Utc::now())
            })
            .await?;
        self.exec.observer.event(
            &self.dag.id,
            &Event::TaskDecided {
                task: self.dag.tasks[i].id.clone(),
                state: State::Failed,
                reason: msg,
            },
        );
        self.release(i, State::Failed);
        Ok(())
    }

    /// The try to run: a new one, or (on a remote executor) the one a
    /// previous process left running, which is adopted instead of being
    /// submitted again. A local attempt left running died with its process.
    async fn next_try(&mut self, i: usize, remote: bool) -> Result<(u32, bool), ExecError> {
        if let Some(t) = self.slots[i].adopt.take() {
            if remote {
                self.slots[i].tries_here += 1;
                self.slots[i].tries = self.slots[i].tries.max(t);
                return Ok((t, true));
            }
            let (rid, tid) = (self.run_id.clone(), self.dag.tasks[i].id.clone());
            self.exec
                .store
                .call(move |c| {
                    store::fail_attempt(c, &rid, &tid, i64::from(t), "process died", Utc::now())
                })
                .await?;
        }
        self.slots[i].tries += 1;
        self.slots[i].tries_here += 1;
        Ok((self.slots[i].tries, false))
    }

    fn log_path(&self, task_id: &str, try_number: u32) -> PathBuf {
        self.exec
            .logs_dir
            .join(&self.dag.id)
            .join(&self.run_id)
            .join(task_id)
            .join(format!("{try_number}.log"))
    }

    async fn open_log(
        &self,
        task_id: &str,
        path: PathBuf,
        append: bool,
    ) -> Result<AttemptLog, ExecError> {
        let log = if self.exec.write_logs {
            let lp = path.clone();
            let made = tokio::task::spawn_blocking(move || {
                if append {
                    AttemptLog::append(lp)
                } else {
                    AttemptLog::create(lp)
                }
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
            made.map_err(|source| ExecError::Log { path, source })?
        } else {
            AttemptLog::discard()
        };
        let observer = self.exec.observer.clone();
        let (dag_id, task_id) = (self.dag.id.clone(), task_id.to_string());
        Ok(log.with_echo(Some(Arc::new(move |line: &str| {
            observer.event(
                &dag_id,
                &Event::TaskProgress {
                    task: task_id.clone(),
                    line: line.to_string(),
                },
            )
        }))))
    }
}

fn attempt_done(
    cx: &AttemptContext,
    idx: usize,
    try_number: u32,
    started: Instant,
    result: Result<Outputs, TaskError>,
) -> Done {
    if let Err(e) = &result {
        cx.log.line(&format!("attempt failed: {e}"));
    }
    Done::Attempt {
        idx,
        try_number,
        started,
        result,
    }
}
