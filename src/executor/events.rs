//! What the executor reports while a run progresses ([`Event`]), and the
//! [`Observer`] seam that turns events into terminal lines (`restock run`)
//! or tracing records (the daemon). The executor never prints.

use std::time::Duration;

use crate::store::State;

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
