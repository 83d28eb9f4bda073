//! The worker side of remote executors: `restock attempt run` runs one
//! attempt from an [`spec::AttemptSpec`] on whatever node the engine
//! picked, without the daemon's SQLite. It reads and writes only the lake:
//! the spec, the DAG's declared tables, the attempt's log (uploaded while
//! it runs, so `restock show` can follow it) and the result JSON. It
//! refuses a spec whose DAG file has changed since the daemon compiled it.

pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use object_store::path::Path as LakePath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dag;
use crate::executor::{KILL_GRACE, supervise};
use crate::lake::Lake;
use crate::tasks::{AttemptContext, AttemptLog, Registry, Services, TaskError};

use spec::{AttemptKeys, AttemptResult, AttemptSpec, ResultState, SPEC_FORMAT};

/// Why a worker refused or could not run a spec (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot read the attempt spec {0}: {1}")]
    ReadSpec(String, String),
    #[error("attempt spec {0} is not valid: {1}")]
    BadSpec(String, String),
    #[error("attempt spec format {found} is not the one this restock writes ({SPEC_FORMAT})")]
    Format { found: u32 },
    #[error(
        "DAG file {file} changed since the attempt was submitted (spec hash {expected}, file hash {found}); refusing to run `{task}` of a different DAG"
    )]
    DagChanged {
        file: PathBuf,
        task: String,
        expected: String,
        found: String,
    },
    #[error("cannot read DAG file {0}: {1}")]
    ReadDag(PathBuf, std::io::Error),
    #[error("DAG file {0} does not compile:\n{1}")]
    Dag(PathBuf, String),
    #[error("task `{0}` is not in DAG `{1}`")]
    UnknownTask(String, String),
    #[error("lake {0}: {1}")]
    Lake(String, String),
}

/// Read a spec from the lake (a key under `_attempts/`).
pub async fn read_spec(lake: &Lake, key: &str) -> Result<AttemptSpec, WorkerError> {
    let got = lake
        .store()
        .get(&LakePath::from(key))
        .await
        .map_err(|e| WorkerError::ReadSpec(key.into(), e.to_string()))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| WorkerError::ReadSpec(key.into(), e.to_string()))?;
    parse_spec(key, &bytes)
}

pub fn parse_spec(source: &str, bytes: &[u8]) -> Result<AttemptSpec, WorkerError> {
    let spec: AttemptSpec = serde_json::from_slice(bytes)
        .map_err(|e| WorkerError::BadSpec(source.into(), e.to_string()))?;
    if spec.format != SPEC_FORMAT {
        return Err(WorkerError::Format { found: spec.format });
    }
    Ok(spec)
}

/// Run the attempt a spec describes and write its result (and log) to
/// the lake. `cancel` is fired by SIGTERM/SIGINT.
pub async fn run(
    spec: &AttemptSpec,
    mut config: Config,
    cancel: CancellationToken,
) -> Result<AttemptResult, WorkerError> {
    let dag = load_dag(spec)?;
    let task = dag
        .task(&spec.task_id)
        .ok_or_else(|| WorkerError::UnknownTask(spec.task_id.clone(), spec.dag_id.clone()))?;
    config.lake = spec.lake.clone();
    config.root = spec.root.clone();
    config.gpu_attempt = spec.gpu;
    let services =
        Services::new(config).map_err(|e| WorkerError::Lake(spec.lake.clone(), e.to_string()))?;
    let services = Arc::new(services);
    let keys = spec.keys();
    let tmp = tempfile::tempdir().map_err(|e| WorkerError::Lake("log".into(), e.to_string()))?;
    let log_file = tmp.path().join("attempt.log");
    let log = AttemptLog::create(log_file.clone())
        .map_err(|e| WorkerError::Lake("log".into(), e.to_string()))?;
    let store = services.lake.store().clone();
    let started_at = Utc::now();
    let host = hostname();
    let gpus = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    log.line(&format!(
        "worker on {host}: {} try {} of run {} (job {}, CUDA_VISIBLE_DEVICES={})",
        spec.task_id,
        spec.try_number,
        spec.run_id,
        spec.job_name,
        gpus.as_deref().unwrap_or("unset")
    ));
    let cx = AttemptContext {
        dag: dag.clone(),
        dag_id: dag.id.clone(),
        task_id: task.id.clone(),
        run_id: spec.run_id.clone(),
        try_number: spec.try_number,
        vars: Arc::new(spec.vars.clone()),
        log,
        cancel: cancel.child_token(),
        services: services.clone(),
    };
    let timeout = spec
        .deadline
        .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO));
    let uploader = spawn_log_uploader(
        store.clone(),
        log_file.clone(),
        keys.clone(),
        cx.cancel.clone(),
    );
    let outcome = if cancelled(store.as_ref(), &keys).await {
        Err(TaskError::Interrupted("cancelled before it started".into()))
    } else {
        supervise(task.runner.run(&cx), &cx.cancel, timeout, KILL_GRACE).await
    };
    if let Err(e) = &outcome {
        cx.log.line(&format!("attempt failed: {e}"));
    }
    uploader.cancel();
    let result = result_of(spec, outcome, host, gpus, started_at);
    cx.log.line(&format!("result: {:?}", result.state));
    upload_log(store.as_ref(), &log_file, &keys.log).await;
    let body = serde_json::to_vec_pretty(&result).unwrap_or_default();
    store
        .put(&keys.result, Bytes::from(body).into())
        .await
        .map_err(|e| {
            WorkerError::Lake(spec.lake.clone(), format!("writing {}: {e}", keys.result))
        })?;
    Ok(result)
}

/// Record in the lake why a spec was refused, so the daemon shows the
/// reason instead of "ended without a result".
pub async fn refuse(
    spec: &AttemptSpec,
    config: &Config,
    err: &WorkerError,
) -> Result<(), WorkerError> {
    let lake_err = |e: String| WorkerError::Lake(spec.lake.clone(), e);
    let mut config = config.clone();
    config.lake = spec.lake.clone();
    let lake = Lake::open(&config.lake).map_err(|e| lake_err(e.to_string()))?;
    let now = Utc::now();
    let result = AttemptResult {
        format: SPEC_FORMAT,
        job_name: spec.job_name.clone(),
        state: ResultState::Failed,
        outputs: Default::default(),
        error: Some(err.to_string()),
        retryable: false,
        host: hostname(),
        cuda_visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        started_at: now,
        ended_at: now,
    };
    let keys = spec.keys();
    let log = format!("worker on {}: refused the attempt: {err}\n", result.host);
    let store = lake.store();
    store
        .put(&keys.log, Bytes::from(log).into())
        .await
        .map_err(|e| lake_err(e.to_string()))?;
    let body = serde_json::to_vec_pretty(&result).unwrap_or_default();
    store
        .put(&keys.result, Bytes::from(body).into())
        .await
        .map_err(|e| lake_err(e.to_string()))?;
    Ok(())
}

/// Compile the spec's DAG file after checking it is the one the daemon
/// compiled.
fn load_dag(spec: &AttemptSpec) -> Result<Arc<dag::Dag>, WorkerError> {
    let text = std::fs::read_to_string(&spec.dag_file)
        .map_err(|e| WorkerError::ReadDag(spec.dag_file.clone(), e))?;
    let found = dag::compile::source_hash(&text);
    if found != spec.dag_hash {
        return Err(WorkerError::DagChanged {
            file: spec.dag_file.clone(),
            task: spec.task_id.clone(),
            expected: spec.dag_hash.clone(),
            found,
        });
    }
    let dag = dag::compile_str(&spec.dag_file, &text, &Registry::builtin(), &spec.root).map_err(
        |diags| {
            let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            WorkerError::Dag(spec.dag_file.clone(), lines.join("\n"))
        },
    )?;
    Ok(Arc::new(dag))
}

fn result_of(
    spec: &AttemptSpec,
    outcome: Result<crate::tasks::Outputs, TaskError>,
    host: String,
    cuda_visible_devices: Option<String>,
    started_at: chrono::DateTime<Utc>,
) -> AttemptResult {
    let (state, outputs, error, retryable) = match outcome {
        Ok(o) => (ResultState::Succeeded, o, None, false),
        Err(e) => {
            let state = match &e {
                TaskError::Timeout(_) => ResultState::TimedOut,
                TaskError::Interrupted(_) => ResultState::Interrupted,
                _ => ResultState::Failed,
            };
            (
                state,
                Default::default(),
                Some(e.to_string()),
                e.retryable(),
            )
        }
    };
    AttemptResult {
        format: SPEC_FORMAT,
        job_name: spec.job_name.clone(),
        state,
        outputs,
        error,
        retryable,
        host,
        cuda_visible_devices,
        started_at,
        ended_at: Utc::now(),
    }
}

/// Every second until stopped: copy the local log to the lake, so the
/// daemon can follow a running attempt, and cancel the attempt when the
/// daemon's cancel marker appears.
fn spawn_log_uploader(
    store: Arc<dyn ObjectStore>,
    file: PathBuf,
    keys: AttemptKeys,
    attempt: CancellationToken,
) -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    upload_log(store.as_ref(), &file, &keys.log).await;
                    if cancelled(store.as_ref(), &keys).await {
                        attempt.cancel();
                    }
                }
                _ = token.cancelled() => break,
            }
        }
    });
    stop
}

async fn cancelled(store: &dyn ObjectStore, keys: &AttemptKeys) -> bool {
    store.head(&keys.cancel).await.is_ok()
}

async fn upload_log(store: &dyn ObjectStore, file: &std::path::Path, key: &LakePath) {
    let Ok(bytes) = tokio::fs::read(file).await else {
        return;
    };
    // A failed upload is retried on the next tick; the final one is
    // followed by the result, which the daemon trusts over the log.
    let _ = store.put(key, Bytes::from(bytes).into()).await;
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
