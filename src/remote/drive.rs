//! Driving one attempt on an engine: find or submit, watch, cancel,
//! collect. Engine-neutral; see the module docs of [`super`].

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::tasks::{Outputs, TaskError};
use crate::worker::spec::{AttemptKeys, AttemptResult, AttemptSpec};

use super::{EngineError, JobRef, JobRequest, JobStatus, RemoteAttempt, RemoteExecutor};

/// Consecutive failed status calls before the attempt gives up.
const MAX_ENGINE_ERRORS: u32 = 20;

impl RemoteExecutor {
    /// Run (or adopt) one attempt on this executor's engine.
    pub async fn run(&self, a: RemoteAttempt<'_>) -> Result<Outputs, TaskError> {
        let keys = a.spec.keys();
        let name = &a.spec.job_name;
        let found = self
            .engine
            .find(name)
            .await
            .map_err(|e| self.engine_err(&e))?;
        let (job, submitted_at) = match found {
            Some(job) => {
                a.log.progress(&format!(
                    "adopting {} job {} ({name}) left by a previous process",
                    self.engine.kind(),
                    job.id
                ));
                let submitted = read_json::<AttemptSpec>(a.lake.store().as_ref(), &keys.spec)
                    .await
                    .map_or(a.spec.submitted_at, |s| s.submitted_at);
                (job, submitted)
            }
            None if a.adopt => return self.lost(&a, &keys).await,
            None => (self.submit(&a, &keys).await?, a.spec.submitted_at),
        };
        self.watch(&a, &keys, job, submitted_at).await
    }

    async fn submit(&self, a: &RemoteAttempt<'_>, keys: &AttemptKeys) -> Result<JobRef, TaskError> {
        let body = serde_json::to_vec_pretty(a.spec)
            .map_err(|e| TaskError::Fatal(format!("attempt spec: {e}")))?;
        a.lake
            .store()
            .put(&keys.spec, Bytes::from(body).into())
            .await
            .map_err(|e| TaskError::Failed(format!("writing the attempt spec to the lake: {e}")))?;
        let req = JobRequest {
            name: a.spec.job_name.clone(),
            command: self.worker_command(a.spec, keys),
            engine_log: self.engine_log_path(a),
            labels: [
                ("dag", a.spec.dag_id.clone()),
                ("run", a.spec.run_id.clone()),
                ("task", a.spec.task_id.clone()),
                ("try", a.spec.try_number.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        };
        let job = self
            .engine
            .submit(&req)
            .await
            .map_err(|e| self.engine_err(&e))?;
        a.log.progress(&format!(
            "submitted {} job {} ({}) to executor `{}`",
            self.engine.kind(),
            job.id,
            job.name,
            self.name
        ));
        Ok(job)
    }

    fn worker_command(&self, spec: &AttemptSpec, keys: &AttemptKeys) -> Vec<String> {
        let mut cmd = if self.settings.worker.is_empty() {
            vec![
                std::env::current_exe()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "restock".into()),
            ]
        } else {
            self.settings.worker.clone()
        };
        cmd.extend([
            "attempt".into(),
            "run".into(),
            "--lake".into(),
            spec.lake.clone(),
            "--spec".into(),
            keys.spec.to_string(),
        ]);
        cmd
    }

    /// With a shared filesystem the engine's own output goes beside the
    /// attempt log, so a job that failed before the worker started still
    /// explains itself.
    fn engine_log_path(&self, a: &RemoteAttempt<'_>) -> Option<std::path::PathBuf> {
        if !self.settings.shared_filesystem || a.log.path().as_os_str().is_empty() {
            return None;
        }
        let p = a.log.path();
        let abs = std::fs::canonicalize(p.parent()?).ok()?;
        Some(abs.join(format!("{}.engine.out", a.spec.try_number)))
    }

    async fn watch(
        &self,
        a: &RemoteAttempt<'_>,
        keys: &AttemptKeys,
        job: JobRef,
        submitted_at: chrono::DateTime<Utc>,
    ) -> Result<Outputs, TaskError> {
        let mut follow = LogFollower::default();
        let mut errors = 0u32;
        let mut started = false;
        loop {
            tokio::select! {
                _ = a.cancel.cancelled() => return self.stop(a, keys, &job, &mut follow).await,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
            follow.copy(a, keys).await;
            let status = match self.engine.status(&job).await {
                Ok(s) => {
                    errors = 0;
                    s
                }
                Err(e) => {
                    errors += 1;
                    a.log.line(&format!(
                        "asking {} about job {}: {e}",
                        self.engine.kind(),
                        job.id
                    ));
                    if errors >= MAX_ENGINE_ERRORS {
                        return Err(self.engine_err(&e));
                    }
                    continue;
                }
            };
            match status {
                JobStatus::Pending { reason } => {
                    let waited = (Utc::now() - submitted_at).to_std().unwrap_or_default();
                    if waited >= self.settings.start_timeout {
                        return self
                            .start_timed_out(a, keys, &job, &reason, &mut follow)
                            .await;
                    }
                }
                JobStatus::Running => {
                    if !started {
                        started = true;
                        let waited = (Utc::now() - submitted_at).to_std().unwrap_or_default();
                        a.log.progress(&format!(
                            "job {} started after {:.1}s",
                            job.id,
                            waited.as_secs_f64()
                        ));
                    }
                }
                JobStatus::Ended { state, exit_code } => {
                    follow.copy(a, keys).await;
                    return self.collect(a, keys, &job, &state, exit_code).await;
                }
                JobStatus::Unknown => {
                    follow.copy(a, keys).await;
                    return self
                        .collect(a, keys, &job, "no longer known to the engine", None)
                        .await;
                }
            }
        }
    }

    /// The job ended: its result in the lake says how.
    async fn collect(
        &self,
        a: &RemoteAttempt<'_>,
        keys: &AttemptKeys,
        job: &JobRef,
        state: &str,
        exit_code: Option<i32>,
    ) -> Result<Outputs, TaskError> {
        let timeout = a
            .spec
            .deadline
            .and_then(|d| (d - a.spec.submitted_at).to_std().ok());
        match read_json::<AttemptResult>(a.lake.store().as_ref(), &keys.result).await {
            Some(r) => {
                a.log.line(&format!(
                    "job {} ended ({state}) on {}: {:?}",
                    job.id, r.host, r.state
                ));
                r.into_outcome(timeout)
            }
            None => {
                self.append_engine_log(a);
                let code = exit_code.map_or(String::new(), |c| format!(", exit code {c}"));
                Err(TaskError::Failed(format!(
                    "{} job {} ({}) on executor `{}` ended ({state}{code}) without writing a result; see the attempt log",
                    self.engine.kind(),
                    job.id,
                    job.name,
                    self.name
                )))
            }
        }
    }

    /// A job from a previous process that the engine no longer knows: its
    /// result, if it wrote one, else the attempt failed.
    async fn lost(&self, a: &RemoteAttempt<'_>, keys: &AttemptKeys) -> Result<Outputs, TaskError> {
        if let Some(r) = read_json::<AttemptResult>(a.lake.store().as_ref(), &keys.result).await {
            a.log.progress(&format!(
                "job {} finished while the daemon was down: {:?}",
                a.spec.job_name, r.state
            ));
            LogFollower::default().copy(a, keys).await;
            return r.into_outcome(None);
        }
        Err(TaskError::Failed(format!(
            "executor `{}` ({}) no longer knows job {} and it left no result in the lake",
            self.name,
            self.engine.kind(),
            a.spec.job_name
        )))
    }

    async fn start_timed_out(
        &self,
        a: &RemoteAttempt<'_>,
        keys: &AttemptKeys,
        job: &JobRef,
        reason: &str,
        follow: &mut LogFollower,
    ) -> Result<Outputs, TaskError> {
        let msg = format!(
            "executor `{}` ({}): job {} did not start within {}: {} (engine reason: {reason})",
            self.name,
            self.engine.kind(),
            job.id,
            humantime::format_duration(self.settings.start_timeout),
            self.engine.waiting_for(),
        );
        a.log.progress(&msg);
        self.cancel_and_confirm(a, keys, job, follow).await;
        self.append_engine_log(a);
        Err(TaskError::Failed(msg))
    }

    /// Cancelled (timeout, cancel, shutdown): stop the job, wait for the
    /// engine to confirm, then report the interruption.
    async fn stop(
        &self,
        a: &RemoteAttempt<'_>,
        keys: &AttemptKeys,
        job: &JobRef,
        follow: &mut LogFollower,
    ) -> Result<Outputs, TaskError> {
        let confirmed = self.cancel_and_confirm(a, keys, job, follow).await;
        let how = if confirmed {
            "the engine confirmed it ended"
        } else {
            "the engine did not confirm it ended within the grace period"
        };
        Err(TaskError::Interrupted(format!(
            "cancelled {} job {}; {how}",
            self.engine.kind(),
            job.id
        )))
    }

    async fn cancel_and_confirm(
        &self,
        a: &RemoteAttempt<'_>,
        keys: &AttemptKeys,
        job: &JobRef,
        follow: &mut LogFollower,
    ) -> bool {
        if let Err(e) = self.engine.cancel(job).await {
            a.log.line(&format!("cancelling job {}: {e}", job.id));
        }
        // After the engine's cancel, so a job it stops is reported as
        // cancelled; a worker the engine could not stop sees the marker.
        let marker = Bytes::from_static(b"cancelled\n");
        if let Err(e) = a.lake.store().put(&keys.cancel, marker.into()).await {
            a.log
                .line(&format!("writing the cancel marker to the lake: {e}"));
        }
        let deadline = tokio::time::Instant::now() + self.settings.cancel_grace;
        while tokio::time::Instant::now() < deadline {
            if let Ok(JobStatus::Ended { .. } | JobStatus::Unknown) = self.engine.status(job).await
            {
                follow.copy(a, keys).await;
                a.log
                    .line(&format!("job {} stopped on {}", job.id, self.engine.kind()));
                return true;
            }
            tokio::time::sleep(self.settings.poll_interval.min(Duration::from_millis(250))).await;
        }
        false
    }

    fn append_engine_log(&self, a: &RemoteAttempt<'_>) {
        let Some(path) = self.engine_log_path(a) else {
            return;
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            if !text.trim().is_empty() {
                a.log
                    .line(&format!("--- {} output of the job ---", self.engine.kind()));
                for line in text.lines() {
                    a.log.line(line);
                }
            }
        }
    }

    fn engine_err(&self, e: &EngineError) -> TaskError {
        TaskError::Failed(format!(
            "executor `{}` ({}): {e}",
            self.name,
            self.engine.kind()
        ))
    }
}

/// Copies the worker's log from the lake into the attempt log, new lines
/// only.
#[derive(Default)]
struct LogFollower {
    copied: usize,
}

impl LogFollower {
    async fn copy(&mut self, a: &RemoteAttempt<'_>, keys: &AttemptKeys) {
        let Ok(got) = a.lake.store().get(&keys.log).await else {
            return;
        };
        let Ok(bytes) = got.bytes().await else { return };
        if bytes.len() <= self.copied {
            return;
        }
        let new = &bytes[self.copied..];
        // Copy whole lines only; a partial last line waits for the next copy.
        let Some(end) = new.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for line in String::from_utf8_lossy(&new[..end]).lines() {
            a.log.progress(line);
        }
        self.copied += end + 1;
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
) -> Option<T> {
    let got = store.get(key).await.ok()?;
    let bytes = got.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}
