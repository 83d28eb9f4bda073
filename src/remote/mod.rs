//! Remote executors: running a task's attempt as a job on a cluster
//! engine (Slurm, Ray) instead of in the executor's process.
//!
//! One [`Engine`] trait, one file per engine (`slurm.rs`, `ray.rs`), in
//! the spirit of Arroyo's schedulers: submit a named job, look one up by
//! name, ask its status, cancel it. [`RemoteExecutor`] drives an attempt
//! over any engine the same way: write the [`AttemptSpec`] to the lake,
//! look the job up by its deterministic name before submitting (so a
//! restarted daemon adopts its jobs and never submits a try twice), poll
//! until it ends while copying the worker's log from the lake into the
//! attempt log, enforce `start_timeout` for jobs that never start, cancel
//! the job on the engine and wait for the engine to confirm, and read the
//! worker's [`AttemptResult`] from the lake. The executor's central
//! supervision (timeout, cancellation) stays in `executor::attempt`.

pub mod config;
mod drive;
pub mod ray;
pub mod slurm;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::lake::Lake;
use crate::tasks::AttemptLog;
use crate::worker::spec::AttemptSpec;

pub use config::{EngineConfig, ExecutorConfig, RemoteSettings};

/// Talking to an engine failed. Every variant is worth another try
/// (the attempt fails retryably), since the engine may come back.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{program}: {message}")]
    Command { program: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("the engine refused the job: {0}")]
    Rejected(String),
}

/// A job the engine knows, by its engine id and our name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub id: String,
    pub name: String,
}

/// What to submit.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub name: String,
    /// The worker command line, already complete.
    pub command: Vec<String>,
    /// Where the engine writes the job's own stdout/stderr, when the nodes
    /// share a filesystem with the daemon (shows why a job failed to
    /// start).
    pub engine_log: Option<std::path::PathBuf>,
    /// Labels recorded with the job (DAG, run, task, try).
    pub labels: BTreeMap<String, String>,
}

/// A job's state as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// Waiting; `reason` is the engine's word for why (e.g. Slurm's
    /// `Resources`).
    Pending {
        reason: String,
    },
    Running,
    /// Ended; `state` is the engine's final state, `exit_code` the
    /// worker's where the engine tells it.
    Ended {
        state: String,
        exit_code: Option<i32>,
    },
    /// The engine does not (or no longer) know the job.
    Unknown,
}

#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> &'static str;
    /// The job with this name, if the engine knows it.
    async fn find(&self, name: &str) -> Result<Option<JobRef>, EngineError>;
    async fn submit(&self, job: &JobRequest) -> Result<JobRef, EngineError>;
    async fn status(&self, job: &JobRef) -> Result<JobStatus, EngineError>;
    async fn cancel(&self, job: &JobRef) -> Result<(), EngineError>;
    /// What a pending job waits for, in words (for the start timeout).
    fn waiting_for(&self) -> String;
}

/// One named executor from `restock.yaml`.
#[derive(Debug)]
pub struct RemoteExecutor {
    pub name: String,
    pub settings: RemoteSettings,
    pub engine: Box<dyn Engine>,
}

/// One attempt handed to a remote executor.
pub struct RemoteAttempt<'a> {
    pub spec: &'a AttemptSpec,
    pub lake: &'a Lake,
    pub log: &'a AttemptLog,
    pub cancel: &'a CancellationToken,
    /// A previous process submitted this try: find it, never submit.
    pub adopt: bool,
}

impl RemoteExecutor {
    pub fn new(cfg: &ExecutorConfig) -> Self {
        let engine: Box<dyn Engine> = match &cfg.engine {
            EngineConfig::Slurm(s) => Box::new(slurm::Slurm::new(s.clone())),
            EngineConfig::Ray(r) => Box::new(ray::Ray::new(r.clone())),
        };
        Self {
            name: cfg.name.clone(),
            settings: cfg.settings.clone(),
            engine,
        }
    }
}

/// The configured remote executors, by name.
#[derive(Debug, Default, Clone)]
pub struct Executors {
    by_name: BTreeMap<String, Arc<RemoteExecutor>>,
}

impl Executors {
    pub fn build(configs: &BTreeMap<String, ExecutorConfig>) -> Self {
        Self {
            by_name: configs
                .iter()
                .map(|(n, c)| (n.clone(), Arc::new(RemoteExecutor::new(c))))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<RemoteExecutor>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// What the compile step needs to check `executor:` keys: the names, and
/// whether their workers can see the lake.
#[derive(Debug, Clone)]
pub struct Catalog {
    executors: BTreeMap<String, (&'static str, bool)>,
    lake: String,
}

impl Catalog {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            executors: config
                .executors
                .iter()
                .map(|(n, c)| (n.clone(), (c.engine.kind(), c.settings.shared_filesystem)))
                .collect(),
            lake: config.lake.clone(),
        }
    }

    /// Whether `task` may run on executor `name`, or why not.
    pub fn check(&self, name: &str, task: &str) -> Result<(), String> {
        if name == "local" {
            return Ok(());
        }
        let Some((kind, shared)) = self.executors.get(name) else {
            let known: Vec<&str> = std::iter::once("local")
                .chain(self.executors.keys().map(String::as_str))
                .collect();
            return Err(format!(
                "unknown executor `{name}` (restock.yaml defines: {})",
                known.join(", ")
            ));
        };
        let lake_is_remote = self.lake.starts_with("s3://");
        if !lake_is_remote && !shared {
            return Err(format!(
                "task `{task}` runs on executor `{name}` ({kind}), whose workers cannot see the lake `{}` (a folder on this machine); use an s3:// lake, or set `shared_filesystem: true` on the executor if every node mounts the lake at the same path",
                self.lake
            ));
        }
        Ok(())
    }
}
