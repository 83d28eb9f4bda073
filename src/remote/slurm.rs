//! Slurm through its command-line tools (`sbatch`, `squeue`, `scontrol`,
//! `scancel`, and `sacct` where accounting is on), so it works with any
//! cluster a login node can reach and needs no REST daemon.
//!
//! Jobs carry the attempt's deterministic name (`--job-name`); `find`
//! lists jobs by that name. Slurm forgets a finished job after
//! `MinJobAge` (300 s by default): with `accounting: true` the backend
//! asks `sacct`, otherwise the worker's result file in the lake is what
//! says a job that Slurm no longer lists has finished.

use std::time::Duration;

use async_trait::async_trait;

use super::config::SlurmConfig;
use super::{Engine, EngineError, JobRef, JobRequest, JobStatus};

/// The longest a single Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Slurm {
    cfg: SlurmConfig,
}

impl Slurm {
    pub fn new(cfg: SlurmConfig) -> Self {
        Self { cfg }
    }

    fn submit_args(&self, job: &JobRequest) -> Vec<String> {
        let mut args = vec!["--parsable".to_string(), format!("--job-name={}", job.name)];
        if let Some(p) = &self.cfg.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(g) = &self.cfg.gres {
            args.push(format!("--gres={g}"));
        }
        if let Some(m) = self.cfg.time_limit_minutes {
            args.push(format!("--time={m}"));
        }
        let out = job
            .engine_log
            .as_ref()
            .map_or("/dev/null".to_string(), |p| {
                p.to_string_lossy().into_owned()
            });
        args.push(format!("--output={out}"));
        let labels: Vec<String> = job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        args.push(format!("--comment={}", labels.join(",")));
        args.extend(self.cfg.sbatch_args.iter().cloned());
        let script: Vec<String> = job.command.iter().map(|a| shell_quote(a)).collect();
        args.push(format!("--wrap=exec {}", script.join(" ")));
        args
    }

    async fn sacct(
        &self,
        selector: &[&str],
    ) -> Result<Option<(String, String, Option<i32>)>, EngineError> {
        let mut args = vec!["-n", "-X", "-P", "-o", "JobID,State,ExitCode"];
        args.extend_from_slice(selector);
        let out = run("sacct", &args).await?;
        Ok(out.lines().rev().find_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() >= 3).then(|| (f[0].to_string(), f[1].to_string(), exit_code(f[2])))
        }))
    }

    async fn exit_code_of(&self, id: &str) -> Option<i32> {
        let out = run("scontrol", &["show", "job", id, "-o"]).await.ok()?;
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix("ExitCode="))
            .and_then(exit_code)
    }
}

#[async_trait]
impl Engine for Slurm {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    async fn find(&self, name: &str) -> Result<Option<JobRef>, EngineError> {
        let out = run("squeue", &["-h", "-t", "all", "--name", name, "-o", "%i"]).await?;
        if let Some(id) = out.lines().map(str::trim).find(|l| !l.is_empty()) {
            return Ok(Some(JobRef {
                id: id.to_string(),
                name: name.to_string(),
            }));
        }
        if self.cfg.accounting {
            if let Some((id, _, _)) = self.sacct(&["--name", name]).await? {
                return Ok(Some(JobRef {
                    id,
                    name: name.to_string(),
                }));
            }
        }
        Ok(None)
    }

    async fn submit(&self, job: &JobRequest) -> Result<JobRef, EngineError> {
        let args = self.submit_args(job);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run("sbatch", &refs).await.map_err(|e| match e {
            EngineError::Command { message, .. } => EngineError::Rejected(message),
            other => other,
        })?;
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() {
            return Err(EngineError::Rejected(format!(
                "sbatch printed no job id: `{out}`"
            )));
        }
        Ok(JobRef {
            id,
            name: job.name.clone(),
        })
    }

    async fn status(&self, job: &JobRef) -> Result<JobStatus, EngineError> {
        let listed = match run("squeue", &["-h", "-t", "all", "-j", &job.id, "-o", "%T|%r"]).await {
            Ok(out) => out.lines().next().map(str::to_string),
            // squeue fails with "Invalid job id" once the job is purged.
            Err(EngineError::Command { message, .. }) if message.contains("Invalid job id") => None,
            Err(e) => return Err(e),
        };
        if let Some(line) = listed.filter(|l| !l.trim().is_empty()) {
            let (state, reason) = line.split_once('|').unwrap_or((line.as_str(), ""));
            return Ok(match state.trim() {
                "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" => {
                    JobStatus::Pending {
                        reason: reason.trim().to_string(),
                    }
                }
                "RUNNING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
                    JobStatus::Running
                }
                other => JobStatus::Ended {
                    state: other.to_string(),
                    exit_code: self.exit_code_of(&job.id).await,
                },
            });
        }
        if self.cfg.accounting {
            if let Some((_, state, exit_code)) = self.sacct(&["-j", &job.id]).await? {
                return Ok(match state.as_str() {
                    "PENDING" => JobStatus::Pending {
                        reason: String::new(),
                    },
                    "RUNNING" | "COMPLETING" => JobStatus::Running,
                    _ => JobStatus::Ended { state, exit_code },
                });
            }
        }
        Ok(JobStatus::Unknown)
    }

    async fn cancel(&self, job: &JobRef) -> Result<(), EngineError> {
        run("scancel", &[&job.id]).await.map(|_| ())
    }

    fn waiting_for(&self) -> String {
        match (&self.cfg.gres, &self.cfg.partition) {
            (Some(g), Some(p)) => format!("no node with {g} free in partition `{p}`"),
            (Some(g), None) => format!("no node with {g} free"),
            (None, Some(p)) => format!("no node free in partition `{p}`"),
            (None, None) => "no node free".to_string(),
        }
    }
}

/// `0:0` → 0; `1:0` → 1; `0:15` (killed by a signal) → 128 + 15.
fn exit_code(text: &str) -> Option<i32> {
    let (code, signal) = text.split_once(':').unwrap_or((text, "0"));
    let code: i32 = code.trim().parse().ok()?;
    let signal: i32 = signal.trim().parse().unwrap_or(0);
    Some(if signal > 0 { 128 + signal } else { code })
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

async fn run(program: &str, args: &[&str]) -> Result<String, EngineError> {
    let err = |message: String| EngineError::Command {
        program: program.to_string(),
        message,
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| err(format!("no answer within {}s", COMMAND_TIMEOUT.as_secs())))?
        .map_err(|e| {
            err(format!(
                "cannot run it: {e} (is Slurm installed on this machine?)"
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(err(format!("{} ({})", stderr, out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_quoting() {
        assert_eq!(exit_code("0:0"), Some(0));
        assert_eq!(exit_code("75:0"), Some(75));
        assert_eq!(exit_code("0:9"), Some(137));
        assert_eq!(shell_quote("/usr/bin/restock"), "/usr/bin/restock");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
