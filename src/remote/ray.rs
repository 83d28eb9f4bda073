//! Ray through its Jobs REST API (the dashboard's `/api/jobs/`), the same
//! API `ray job submit` uses and the one KubeRay exposes on Kubernetes.
//!
//! The attempt's deterministic name is the job's `submission_id`: Ray
//! refuses a second job with the same id, and keeps finished jobs in its
//! control store, so `find` and `status` are one `GET /api/jobs/<id>`.
//! GPUs are asked for with `entrypoint_num_gpus`; Ray then sets
//! `CUDA_VISIBLE_DEVICES` for the worker.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::config::RayConfig;
use super::{Engine, EngineError, JobRef, JobRequest, JobStatus};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Ray {
    cfg: RayConfig,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct JobInfo {
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    driver_exit_code: Option<i32>,
}

impl Ray {
    pub fn new(cfg: RayConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { cfg, http }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/api/jobs/{tail}", self.cfg.address)
    }

    fn http_err(&self, url: &str, e: impl std::fmt::Display) -> EngineError {
        EngineError::Http {
            url: url.to_string(),
            message: e.to_string(),
        }
    }

    async fn info(&self, name: &str) -> Result<Option<JobInfo>, EngineError> {
        let url = self.url(name);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.http_err(&url, e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            let code = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.http_err(&url, format!("{code}: {}", last_line(&body))));
        }
        resp.json()
            .await
            .map(Some)
            .map_err(|e| self.http_err(&url, e))
    }
}

#[async_trait]
impl Engine for Ray {
    fn kind(&self) -> &'static str {
        "ray"
    }

    async fn find(&self, name: &str) -> Result<Option<JobRef>, EngineError> {
        Ok(self.info(name).await?.map(|_| JobRef {
            id: name.to_string(),
            name: name.to_string(),
        }))
    }

    async fn submit(&self, job: &JobRequest) -> Result<JobRef, EngineError> {
        let entrypoint: Vec<String> = job.command.iter().map(|a| shell_quote(a)).collect();
        let mut body = serde_json::json!({
            "entrypoint": entrypoint.join(" "),
            "submission_id": job.name,
            "metadata": job.labels,
        });
        if self.cfg.num_gpus > 0.0 {
            body["entrypoint_num_gpus"] = self.cfg.num_gpus.into();
        }
        if let Some(c) = self.cfg.num_cpus {
            body["entrypoint_num_cpus"] = c.into();
        }
        let url = self.url("");
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.http_err(&url, e))?;
        if !resp.status().is_success() {
            let code = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(EngineError::Rejected(format!(
                "{code}: {}",
                last_line(&text)
            )));
        }
        Ok(JobRef {
            id: job.name.clone(),
            name: job.name.clone(),
        })
    }

    async fn status(&self, job: &JobRef) -> Result<JobStatus, EngineError> {
        let Some(info) = self.info(&job.id).await? else {
            return Ok(JobStatus::Unknown);
        };
        Ok(match info.status.as_str() {
            "PENDING" => JobStatus::Pending {
                reason: info.message.unwrap_or_default(),
            },
            "RUNNING" => JobStatus::Running,
            other => JobStatus::Ended {
                state: other.to_string(),
                exit_code: info.driver_exit_code,
            },
        })
    }

    async fn cancel(&self, job: &JobRef) -> Result<(), EngineError> {
        let url = self.url(&format!("{}/stop", job.id));
        let resp = self
            .http
            .post(&url)
            .send()
            .await
            .map_err(|e| self.http_err(&url, e))?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let code = resp.status();
        Err(self.http_err(&url, code))
    }

    fn waiting_for(&self) -> String {
        if self.cfg.num_gpus > 0.0 {
            format!("no Ray node with {} GPU(s) free", self.cfg.num_gpus)
        } else {
            "no Ray node with the requested resources free".to_string()
        }
    }
}

/// Ray answers errors with a Python traceback; its last line says why.
fn last_line(body: &str) -> String {
    body.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && *l != ".")
        .unwrap_or("")
        .to_string()
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}
