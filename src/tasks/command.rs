//! The `command` kind: run a program.
//!
//! `command` is either a list (program and arguments, no shell) or a string
//! (run with `sh -c`). Every element and every `env` value is a template.
//! stdout and stderr are read as bytes, line by line, into the attempt log
//! (invalid UTF-8 is replaced, never a reason to stop reading); a non-zero
//! exit fails the attempt. The child runs in its own process group so that
//! a timeout or cancel stops it and everything it started (SIGTERM, then
//! SIGKILL after a short grace); background processes still holding the
//! output open when the command exits are killed too.
//!
//! Environment: the child does not inherit restock's environment (which
//! holds SMTP and object store credentials). It gets a minimal base
//! ([`BASE_ENV`]), the variables the task names under `pass_env`, its
//! `env`, and the `RESTOCK_*` run variables. Known secret values are
//! masked in its log (see [`crate::secrets`]).
//!
//! Bounds: a log line keeps at most [`MAX_LINE`] bytes, an attempt's
//! stdout and stderr together at most [`MAX_LOG`] (beyond it the process
//! group is killed and the attempt fails), and the outputs file at most
//! [`MAX_OUTPUTS`].
//!
//! Outputs: the last non-empty stdout line, when it is a JSON object, and
//! the JSON object the program writes to the file named by
//! `$RESTOCK_OUTPUTS` (an absolute path; merged, the file wins on
//! conflicting keys).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::process::{Child, Command};

use super::streams::{self, Budget};
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
    /// Variables of restock's own environment the child may see.
    #[serde(default)]
    pass_env: Vec<String>,
    #[serde(default)]
    cwd: Option<String>,
}

#[derive(Debug)]
struct CommandRunner {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    pass_env: Vec<String>,
    cwd: PathBuf,
}

/// How long a stopped child gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// How long output may keep flowing after the command itself exited
/// (background processes it left behind); then its group is killed.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The most the `$RESTOCK_OUTPUTS` file may hold.
pub const MAX_OUTPUTS: u64 = 1 << 20;

/// Variables every child inherits (when restock has them): enough to find
/// programs and behave like a login shell, nothing secret.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "TERM",
];

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
            CommandLine::Shell(s) => {
                if !crate::template::unquoted_refs(&s, &["shell_word"]).is_empty() {
                    cx.warn(
                        "command",
                        "a string `command` runs with `sh -c`, so an upstream output rendered into it can run shell code; use the list form (`command: [prog, \"{{ tasks.ID.outputs.KEY }}\"]`) or quote it with `| shell_word`",
                    );
                }
                vec!["sh".into(), "-c".into(), s]
            }
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
        for (i, name) in spec.pass_env.iter().enumerate() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                cx.error(
                    &format!("pass_env[{i}]"),
                    format!("`{name}` is not an environment variable name"),
                );
            }
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
            pass_env: spec.pass_env,
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

/// Why the wait for the child ended early.
enum Stopped {
    Cancelled,
    LogFull,
}

impl CommandRunner {
    fn command(&self, cx: &AttemptContext, argv: &[String]) -> Result<Command, TaskError> {
        let outputs_file = cx.log.path().with_extension("outputs.json");
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .env_clear();
        for name in BASE_ENV
            .iter()
            .copied()
            .chain(self.pass_env.iter().map(String::as_str))
        {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        cmd.env("RESTOCK_DAG_ID", &cx.dag_id)
            .env("RESTOCK_TASK_ID", &cx.task_id)
            .env("RESTOCK_RUN_ID", &cx.run_id)
            .env("RESTOCK_TRY_NUMBER", cx.try_number.to_string())
            .env("RESTOCK_DS", &cx.vars.ds)
            .env("RESTOCK_LOGICAL_DATE", &cx.vars.logical_date)
            .env("RESTOCK_OUTPUTS", &outputs_file);
        for (k, v) in &self.env {
            cmd.env(k, cx.render(v)?);
        }
        Ok(cmd)
    }
}

/// Wait for the child, stopping its group on cancel or a full log.
async fn wait_child(
    child: &mut Child,
    pid: Option<u32>,
    cx: &AttemptContext,
    budget: &Budget,
) -> Result<ExitStatus, Stopped> {
    let why = tokio::select! {
        status = child.wait() => {
            return status.map_err(|_| Stopped::Cancelled);
        }
        _ = cx.cancel.cancelled() => Stopped::Cancelled,
        _ = budget.spent.cancelled() => Stopped::LogFull,
    };
    stop_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        stop_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    Err(why)
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
        let mut cmd = self.command(cx, &argv)?;
        cx.log.line(&format!("$ {}", shell_words(&argv)));
        let mut child = cmd
            .spawn()
            .map_err(|e| TaskError::Failed(format!("cannot start `{}`: {e}", argv[0])))?;
        let pid = child.id();

        let budget = Budget::new(streams::MAX_LOG);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let log = &cx.log;
        let readers = async {
            let out = async {
                match stdout {
                    Some(s) => streams::pump(s, log, &budget, true).await,
                    None => None,
                }
            };
            let err = async {
                if let Some(s) = stderr {
                    streams::pump(s, log, &budget, false).await;
                }
            };
            tokio::join!(out, err).0
        };
        tokio::pin!(readers);
        let mut last_line: Option<Option<String>> = None;
        let waited = {
            let wait = wait_child(&mut child, pid, cx, &budget);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    r = &mut readers, if last_line.is_none() => last_line = Some(r),
                    st = &mut wait => break st,
                }
            }
        };
        // The command is gone; processes it left in the background may
        // still hold its output open. They get a moment, then the group is
        // killed so that nothing outlives the attempt.
        if last_line.is_none() {
            match tokio::time::timeout(DRAIN_GRACE, &mut readers).await {
                Ok(r) => last_line = Some(r),
                Err(_) => {
                    stop_group(pid, Signal::SIGKILL);
                    cx.log.line("background processes kept the output open after the command exited; stopped them");
                    last_line = tokio::time::timeout(DRAIN_GRACE, &mut readers).await.ok();
                }
            }
        }
        stop_group(pid, Signal::SIGKILL);
        let status = match waited {
            Ok(s) => s,
            Err(Stopped::Cancelled) => {
                return Err(TaskError::Interrupted("process stopped".into()));
            }
            Err(Stopped::LogFull) => {
                return Err(TaskError::Fatal(format!(
                    "`{}` wrote more than {} MiB to stdout and stderr; stopped it (the attempt log is capped there)",
                    argv[0],
                    budget.limit() >> 20
                )));
            }
        };
        if budget.spent.is_cancelled() {
            return Err(TaskError::Fatal(format!(
                "`{}` wrote more than {} MiB to stdout and stderr (the attempt log is capped there)",
                argv[0],
                budget.limit() >> 20
            )));
        }
        if !status.success() {
            let why = match status.code() {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".to_string(),
            };
            return Err(TaskError::Failed(format!("`{}` failed: {why}", argv[0])));
        }

        let mut outputs = Outputs::new();
        if let Some(line) = last_line.flatten() {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(line.trim()) {
                outputs.extend(m);
            }
        }
        outputs.extend(read_outputs_file(&outputs_file).await?);
        Ok(outputs)
    }
}

/// The JSON object a program wrote to `$RESTOCK_OUTPUTS`, if it wrote one.
async fn read_outputs_file(path: &std::path::Path) -> Result<Outputs, TaskError> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.len() > MAX_OUTPUTS => {
            return Err(TaskError::Fatal(format!(
                "$RESTOCK_OUTPUTS file `{}` is {} bytes; outputs are for small values (at most {} KiB); write data to the lake instead",
                path.display(),
                m.len(),
                MAX_OUTPUTS >> 10
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outputs::new()),
        Err(e) => return Err(TaskError::Failed(format!("reading outputs file: {e}"))),
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| TaskError::Failed(format!("reading outputs file: {e}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(TaskError::Fatal(format!(
            "$RESTOCK_OUTPUTS file `{}` is not a JSON object",
            path.display()
        ))),
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
