//! Settling: record a finished attempt (succeeded, up for retry, failed or
//! interrupted), schedule the retry timer with backoff and jitter, and
//! release downstream tasks once a task is final.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::store::{self, State};
use crate::tasks::{Outputs, TaskError};
use crate::template::TaskVars;

use super::{Done, Event, ExecError, RunLoop};

impl RunLoop {
    pub(super) async fn on_done(&mut self, done: Done) -> Result<(), ExecError> {
        match done {
            Done::RetryDue { idx } => {
                if self.stopping() || self.exec.drain.is_cancelled() {
                    self.mark_interrupted(idx).await?;
                } else {
                    self.launch_queue.push_back(idx);
                }
                Ok(())
            }
            Done::Attempt {
                idx,
                try_number,
                started,
                result,
            } => {
                self.active -= 1;
                match result {
                    Ok(outputs) => self.succeeded(idx, try_number, started, outputs).await,
                    Err(err) => self.failed(idx, try_number, started, err).await,
                }
            }
        }
    }

    async fn succeeded(
        &mut self,
        idx: usize,
        try_number: u32,
        started: Instant,
        outputs: Outputs,
    ) -> Result<(), ExecError> {
        let out = serde_json::Value::Object(outputs);
        let end = End {
            idx,
            try_number,
            attempt: State::Succeeded,
            task: State::Succeeded,
            error: None,
        };
        self.record_end(&end, out.clone()).await?;
        self.slots[idx].outputs = out;
        self.report(&end, started.elapsed());
        self.release(idx, State::Succeeded);
        Ok(())
    }

    async fn failed(
        &mut self,
        idx: usize,
        try_number: u32,
        started: Instant,
        err: TaskError,
    ) -> Result<(), ExecError> {
        let task = &self.dag.tasks[idx];
        let stopping = self.stopping();
        let interrupted =
            stopping && matches!(err, TaskError::Interrupted(_) | TaskError::Timeout(_));
        let can_retry =
            err.retryable() && !stopping && self.slots[idx].tries_here <= task.retry.retries;
        let (attempt, ti) = if interrupted {
            (State::Interrupted, State::Interrupted)
        } else if can_retry {
            (State::Failed, State::UpForRetry)
        } else {
            (State::Failed, State::Failed)
        };
        let end = End {
            idx,
            try_number,
            attempt,
            task: ti,
            error: Some(err.to_string()),
        };
        self.record_end(&end, serde_json::Value::Null).await?;
        self.report(&end, started.elapsed());
        match ti {
            State::UpForRetry => self.schedule_retry(idx, try_number + 1),
            State::Interrupted => self.slots[idx].state = State::Interrupted,
            _ => self.release(idx, State::Failed),
        }
        Ok(())
    }

    fn schedule_retry(&mut self, idx: usize, next_try: u32) {
        let delay: Duration = self.dag.tasks[idx].retry.delay_before(next_try);
        self.exec.observer.event(
            &self.dag.id,
            &Event::TaskRetry {
                task: self.dag.tasks[idx].id.clone(),
                next_try,
                delay,
            },
        );
        let (c, drain) = (self.cancel.clone(), self.exec.drain.clone());
        self.running.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = c.cancelled() => {}
                _ = drain.cancelled() => {}
            }
            Done::RetryDue { idx }
        });
    }

    async fn record_end(&self, end: &End, outputs: serde_json::Value) -> Result<(), ExecError> {
        let (rid, tid) = (self.run_id.clone(), self.dag.tasks[end.idx].id.clone());
        let (tn, attempt, ti, err) = (
            i64::from(end.try_number),
            end.attempt,
            end.task,
            end.error.clone(),
        );
        self.exec
            .store
            .call(move |c| {
                store::end_attempt(
                    c,
                    &rid,
                    &tid,
                    tn,
                    attempt,
                    ti,
                    err.as_deref(),
                    &outputs,
                    Utc::now(),
                )
            })
            .await?;
        Ok(())
    }

    fn report(&self, end: &End, elapsed: Duration) {
        self.exec.observer.event(
            &self.dag.id,
            &Event::TaskFinished {
                task: self.dag.tasks[end.idx].id.clone(),
                try_number: end.try_number,
                state: end.task,
                elapsed,
                error: end.error.clone(),
            },
        );
    }

    async fn mark_interrupted(&self, idx: usize) -> Result<(), ExecError> {
        let (rid, tid) = (self.run_id.clone(), self.dag.tasks[idx].id.clone());
        self.exec
            .store
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

    /// Record a final state in memory and release downstream tasks.
    pub(super) fn release(&mut self, idx: usize, state: State) {
        self.slots[idx].state = state;
        self.vars.tasks.insert(
            self.dag.tasks[idx].id.clone(),
            TaskVars {
                state: state.to_string(),
                outputs: self.slots[idx].outputs.clone(),
            },
        );
        for &d in &self.dag.tasks[idx].downstream {
            if self.selected.as_ref().is_some_and(|s| !s.contains(&d)) {
                continue;
            }
            let slot = &mut self.slots[d];
            if slot.state.is_final() {
                continue;
            }
            slot.waiting = slot.waiting.saturating_sub(1);
            if slot.waiting == 0 {
                self.ready.push_back(d);
            }
        }
    }
}

/// How one attempt ended, as recorded.
struct End {
    idx: usize,
    try_number: u32,
    attempt: State,
    task: State,
    error: Option<String>,
}
