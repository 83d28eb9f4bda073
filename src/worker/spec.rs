//! The contract between the daemon and a remote worker, as JSON in the
//! lake: the [`AttemptSpec`] the daemon writes before submitting a job,
//! the [`AttemptResult`] the worker writes when the attempt ends, and the
//! attempt's log, all under `_attempts/<dag>/<run>/<task>/` so that an S3
//! lake works across machines ([`AttemptKeys`]).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use object_store::path::Path as LakePath;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::dag::{Dag, Task};
use crate::tasks::{AttemptContext, Outputs, TaskError};
use crate::template::RunVars;

/// Bumped when a field changes meaning; a worker refuses other formats.
pub const SPEC_FORMAT: u32 = 1;

/// Everything a worker needs to run one attempt, without the daemon's
/// SQLite: which DAG (file and content hash), task, run, try, the run's
/// template variables including upstream outputs, and the deadline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptSpec {
    pub format: u32,
    /// The engine's job name (Slurm `--job-name`, Ray `submission_id`):
    /// deterministic from (run, task, try), so a restarted daemon finds
    /// the job instead of submitting it again.
    pub job_name: String,
    pub executor: String,
    pub dag_id: String,
    pub dag_file: PathBuf,
    pub dag_hash: String,
    pub task_id: String,
    pub run_id: String,
    pub try_number: u32,
    pub vars: RunVars,
    /// The attempt's timeout as a wall-clock instant, if it has one.
    pub deadline: Option<DateTime<Utc>>,
    pub lake: String,
    pub root: PathBuf,
    /// The executor gives the job a GPU: `device: auto` means CUDA.
    pub gpu: bool,
    pub submitted_at: DateTime<Utc>,
}

impl AttemptSpec {
    pub fn new(
        dag: &Dag,
        task: &Task,
        cx: &AttemptContext,
        config: &Config,
        executor: &str,
        run_key: &str,
        gpu: bool,
    ) -> Self {
        let now = Utc::now();
        let dag_file = std::fs::canonicalize(&dag.file).unwrap_or_else(|_| dag.file.clone());
        let root = std::fs::canonicalize(&config.root).unwrap_or_else(|_| config.root.clone());
        Self {
            format: SPEC_FORMAT,
            job_name: job_name(&dag.id, &cx.run_id, &task.id, cx.try_number, run_key),
            executor: executor.to_string(),
            dag_id: dag.id.clone(),
            dag_file,
            dag_hash: dag.source_hash.clone(),
            task_id: task.id.clone(),
            run_id: cx.run_id.clone(),
            try_number: cx.try_number,
            vars: (*cx.vars).clone(),
            deadline: task
                .timeout
                .and_then(|t| chrono::Duration::from_std(t).ok())
                .map(|t| now + t),
            lake: local_lake_absolute(&config.lake),
            root,
            gpu,
            submitted_at: now,
        }
    }

    pub fn keys(&self) -> AttemptKeys {
        AttemptKeys::new(&self.dag_id, &self.run_id, &self.task_id, self.try_number)
    }
}

/// A relative local lake folder becomes absolute: the worker's working
/// directory is the engine's, not the daemon's.
fn local_lake_absolute(lake: &str) -> String {
    if lake.contains("://") {
        return lake.to_string();
    }
    std::fs::canonicalize(lake)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| lake.to_string())
}

/// `restock-<dag>-<run>-<task>-<try>-<key>`, limited to the characters
/// both engines accept. `run_key` tells apart runs that reuse a run id
/// (a state database started afresh against the same cluster).
pub fn job_name(dag: &str, run: &str, task: &str, try_number: u32, run_key: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!(
        "restock-{}-{}-{}-{try_number}-{}",
        clean(dag),
        clean(run.strip_prefix(&format!("{dag}.")).unwrap_or(run)),
        clean(task),
        clean(run_key)
    )
}

/// Where one attempt's files live in the lake.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    pub spec: LakePath,
    pub result: LakePath,
    pub log: LakePath,
    /// Written by the daemon when it cancels the attempt: a worker that
    /// sees it stops (or never starts the task). Engines cannot always
    /// cancel a job that is still waiting (Ray starts it later anyway).
    pub cancel: LakePath,
}

impl AttemptKeys {
    pub fn new(dag: &str, run: &str, task: &str, try_number: u32) -> Self {
        let base = format!("_attempts/{dag}/{run}/{task}/{try_number}");
        Self {
            spec: LakePath::from(format!("{base}.spec.json")),
            result: LakePath::from(format!("{base}.result.json")),
            log: LakePath::from(format!("{base}.log")),
            cancel: LakePath::from(format!("{base}.cancel")),
        }
    }
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResultState {
    Succeeded,
    /// Failed; `retryable` says whether another try can help.
    Failed,
    TimedOut,
    Interrupted,
}

/// What the worker writes when the attempt ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptResult {
    pub format: u32,
    pub job_name: String,
    pub state: ResultState,
    #[serde(default)]
    pub outputs: Outputs,
    pub error: Option<String>,
    pub retryable: bool,
    /// The node it ran on, and the GPUs the engine gave it.
    pub host: String,
    pub cuda_visible_devices: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

impl AttemptResult {
    /// The attempt's outcome as the executor records it.
    pub fn into_outcome(self, timeout: Option<std::time::Duration>) -> Result<Outputs, TaskError> {
        let error = self.error.unwrap_or_else(|| "no error message".into());
        match self.state {
            ResultState::Succeeded => Ok(self.outputs),
            ResultState::Failed if self.retryable => Err(TaskError::Failed(error)),
            ResultState::Failed => Err(TaskError::Fatal(error)),
            ResultState::TimedOut => Err(TaskError::Timeout(timeout.unwrap_or_default())),
            ResultState::Interrupted => Err(TaskError::Interrupted(error)),
        }
    }
}

/// Exit codes of `restock attempt run`, so an engine's job record alone
/// tells the outcomes apart.
pub mod exit {
    pub const SUCCEEDED: u8 = 0;
    pub const FATAL: u8 = 1;
    /// The spec was refused (unreadable, other format, DAG file changed).
    pub const REFUSED: u8 = 2;
    /// Failed; another try may help (EX_TEMPFAIL).
    pub const RETRYABLE: u8 = 75;
    /// Stopped by SIGTERM/SIGINT or a cancel.
    pub const INTERRUPTED: u8 = 130;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_deterministic_and_engine_safe() {
        let a = job_name("main", "main.20261127T000000Z", "train", 2, "ab12");
        assert_eq!(
            a,
            job_name("main", "main.20261127T000000Z", "train", 2, "ab12")
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
        assert_ne!(
            a,
            job_name("main", "main.20261127T000000Z", "train", 3, "ab12")
        );
    }
}
