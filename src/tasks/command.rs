//! The `command` kind: run a program.
//!
//! `command` is either a list (program and arguments, no shell) or a string
//! (run with `sh -c`). Every element and every `env` value is a template.
//! stdout and stderr go line by line into the attempt log; a non-zero exit
//! fails the attempt. The child runs in its own process group so that a
//! timeout or cancel stops it and everything it started (SIGTERM, then
//! SIGKILL after a short grace).
//!
//! Outputs: the last non-empty stdout line, when it is a JSON object, and
//! the JSON object the program writes to the file named by
//! `$RESTOCK_OUTPUTS` (merged; the file wins on conflicting keys).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};

pub struct CommandKind;

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "`command` must be a list of strings or one string"
)]
enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandSpec {
    command: CommandLine,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
}

#[derive(Debug)]
struct CommandRunner {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
}

/// How long a stopped child gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

impl TaskKind for CommandKind {
    fn name(&self) -> &'static str {
        "command"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let spec: CommandSpec = cx.deserialize(spec)?;
        let argv = match spec.command {
            CommandLine::Shell(s) => vec!["sh".into(), "-c".into(), s],
            CommandLine::Exec(v) => v,
        };
        if argv.is_empty() || argv[0].trim().is_empty() {
            cx.error("command", "command is empty");
            return None;
        }
        for (i, a) in argv.iter().enumerate() {
            cx.template(&format!("command[{i}]"), a);
        }
        for (k, v) in &spec.env {
            cx.template(&format!("env.{k}"), v);
        }
        // A script given by relative path must exist (`python3 scripts/x.py`).
        for (i, a) in argv.iter().enumerate().skip(1).take(1) {
            let looks_like_script = [".py", ".sh", ".R", ".rb", ".js"]
                .iter()
                .any(|ext| a.ends_with(ext));
            if looks_like_script && !a.starts_with('-') {
                cx.file(&format!("command[{i}]"), a);
            }
        }
        let cwd = match &spec.cwd {
            Some(c) => {
                let p = cx.root.join(c);
                if !p.is_dir() {
                    cx.error("cwd", format!("directory `{}` does not exist", p.display()));
                }
                p
            }
            None => cx.root.to_path_buf(),
        };
        Some(Arc::new(CommandRunner {
            argv,
            env: spec.env,
            cwd,
        }))
    }
}

fn stop_group(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // The group may already be gone; that is the goal.
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

#[async_trait]
impl TaskRunner for CommandRunner {
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let argv = self
            .argv
            .iter()
            .map(|a| cx.render(a))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs_file = cx.log.path().with_extension("outputs.json");
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .env("RESTOCK_DAG_ID", &cx.dag_id)
            .env("RESTOCK_TASK_ID", &cx.task_id)
            .env("RESTOCK_RUN_ID", &cx.run_id)
            .env("RESTOCK_TRY_NUMBER", cx.try_number.to_string())
            .env("RESTOCK_DS", &cx.vars.ds)
            .env("RESTOCK_LOGICAL_DATE", &cx.vars.logical_date)
            .env("RESTOCK_OUTPUTS", &outputs_file);
        for (k, v) in &self.env {
            cmd.env(k, cx.render(v)?);
        }
        cx.log.line(&format!("$ {}", shell_words(&argv)));
        let mut child = cmd
            .spawn()
            .map_err(|e| TaskError::Failed(format!("cannot start `{}`: {e}", argv[0])))?;
        let pid = child.id();

        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let log = &cx.log;
        let read_out = async {
            let mut last = None;
            if let Some(out) = stdout {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.line(&line);
                    if !line.trim().is_empty() {
                        last = Some(line);
                    }
                }
            }
            last
        };
        let read_err = async {
            if let Some(err) = stderr {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.line(&line);
                }
            }
        };
        let wait = async {
            tokio::select! {
                status = child.wait() => Ok(status),
                _ = cx.cancel.cancelled() => {
                    stop_group(pid, Signal::SIGTERM);
                    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                        Ok(_) => {}
                        Err(_) => {
                            stop_group(pid, Signal::SIGKILL);
                            let _ = child.wait().await;
                        }
                    }
                    Err(TaskError::Interrupted("process stopped".into()))
                }
            }
        };
        let (last_line, (), status) = tokio::join!(read_out, read_err, wait);
        let status = status?.map_err(|e| TaskError::Failed(format!("waiting for child: {e}")))?;
        // Grandchildren left in the group must not outlive the attempt.
        stop_group(pid, Signal::SIGKILL);
        if !status.success() {
            let why = match status.code() {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".to_string(),
            };
            return Err(TaskError::Failed(format!("`{}` failed: {why}", argv[0])));
        }

        let mut outputs = Outputs::new();
        if let Some(line) = last_line {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(line.trim()) {
                outputs.extend(m);
            }
        }
        match tokio::fs::read(&outputs_file).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(serde_json::Value::Object(m)) => outputs.extend(m),
                _ => {
                    return Err(TaskError::Fatal(format!(
                        "$RESTOCK_OUTPUTS file `{}` is not a JSON object",
                        outputs_file.display()
                    )));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TaskError::Failed(format!("reading outputs file: {e}"))),
        }
        Ok(outputs)
    }
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .any(|c| c.is_whitespace() || c == '\'' || c == '"')
            {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
