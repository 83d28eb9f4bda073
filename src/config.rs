//! Process-wide configuration: `restock.yaml` plus environment variables.
//!
//! Precedence, lowest first: built-in defaults, the config file
//! (`--config`, `RESTOCK_CONFIG`, or `./restock.yaml` when present), then
//! one `RESTOCK_*` environment variable per key. Secrets (passwords, keys)
//! are never read from the file, only from the environment, by the module
//! that needs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{}", executor_errors(path, text, errors))]
    Executors {
        path: PathBuf,
        text: String,
        errors: Vec<String>,
    },
    #[error("{path}: {source}")]
    Mail {
        path: PathBuf,
        source: crate::mail::config::MailConfigError,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    root: Option<PathBuf>,
    jobs: Option<PathBuf>,
    lake: Option<String>,
    state: Option<PathBuf>,
    state_busy_timeout: Option<String>,
    logs: Option<PathBuf>,
    outbox: Option<PathBuf>,
    #[serde(default)]
    daemon: RawDaemon,
    mail: Option<crate::mail::config::RawMailConfig>,
    #[serde(default)]
    executors: std::collections::BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    shutdown_grace: Option<String>,
    reload_interval: Option<String>,
    max_catchup_runs: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Relative paths in DAG files (SQL, scripts) and commands' working
    /// directory resolve against this.
    pub root: PathBuf,
    pub jobs: PathBuf,
    /// Lake URL: a folder, `s3://bucket/prefix`, or `memory://`.
    pub lake: String,
    pub state: PathBuf,
    /// How long to wait for another process's lock on the state database
    /// before failing with "database is locked by another process".
    pub state_busy_timeout: Duration,
    pub logs: PathBuf,
    pub outbox: PathBuf,
    pub shutdown_grace: Duration,
    pub reload_interval: Duration,
    pub max_catchup_runs: usize,
    /// Where reports are mailed; `None` when neither `restock.yaml` nor
    /// the environment configures mail (reports then go to the outbox).
    pub mail: Option<crate::mail::MailConfig>,
    /// Set by `restock attempt run` when the executor gives the job a GPU
    /// (`device: auto` then means CUDA); never read from the file.
    pub gpu_attempt: bool,
    /// Named remote executors (`executors:`), by name.
    pub executors: std::collections::BTreeMap<String, crate::remote::ExecutorConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root: PathBuf::from("."),
            jobs: PathBuf::from("jobs"),
            lake: "./lake".into(),
            state: PathBuf::from(".restock/state.db"),
            state_busy_timeout: crate::store::DEFAULT_BUSY_TIMEOUT,
            logs: PathBuf::from(".restock/logs"),
            outbox: PathBuf::from("outbox"),
            shutdown_grace: Duration::from_secs(30),
            reload_interval: Duration::from_secs(2),
            max_catchup_runs: 100,
            mail: None,
            executors: Default::default(),
            gpu_attempt: false,
        }
    }
}

/// One line per error, each with the line of the executor it is about.
fn executor_errors(path: &Path, text: &str, errors: &[String]) -> String {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            let name = e
                .strip_prefix("executors.")
                .and_then(|r| r.split(['.', ':']).next())
                .unwrap_or("");
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with(&format!("{name}:")))
                .map_or(1, |i| i + 1);
            format!("{}:{line}: {e}", path.display())
        })
        .collect();
    lines.join("\n")
}

fn dur(var: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| ConfigError::Env {
        var: var.into(),
        message: format!("invalid duration `{text}`: {e}"),
    })
}

impl Config {
    /// Load from an explicit file, else `./restock.yaml` if it exists, then
    /// apply the environment.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let p = PathBuf::from("restock.yaml");
                p.is_file().then_some(p)
            }
        };
        let get = |k: &str| std::env::var(k).ok();
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::from_text(&path, &text, get)
            }
            None => Self::from_parts(None, get),
        }
    }

    /// The configuration a file at `path` holding `text` gives, with the
    /// environment read through `get`. Pure: reads no file and, with a
    /// `get` that does not, no environment (what `load` and the fuzz
    /// targets share).
    pub fn from_text(
        path: &Path,
        text: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_parts(Some((path, text)), get)
    }

    fn from_parts(
        file: Option<(&Path, &str)>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = Config::default();
        let mut raw_mail = None;
        let mut raw_executors = (
            PathBuf::from("environment"),
            String::new(),
            Default::default(),
        );
        let mut mail_source = PathBuf::from("environment");
        if let Some((path, text)) = file {
            let path = path.to_path_buf();
            let raw: RawConfig = if text.trim().is_empty() {
                RawConfig::default()
            } else {
                serde_yaml::from_str(text).map_err(|e| {
                    let (line, column) = e
                        .location()
                        .map(|l| (l.line(), l.column()))
                        .unwrap_or((1, 1));
                    ConfigError::Parse {
                        path: path.clone(),
                        line,
                        column,
                        message: e.to_string(),
                    }
                })?
            };
            raw_mail = raw.mail.clone();
            raw_executors = (path.clone(), text.to_string(), raw.executors.clone());
            mail_source = path.clone();
            cfg.apply_file(raw, &path)?;
        }
        cfg.apply_env(&get)?;
        let (path, text, raw) = raw_executors;
        cfg.executors = crate::remote::config::compile(raw, &get)
            .map_err(|errors| ConfigError::Executors { path, text, errors })?;
        cfg.mail = crate::mail::MailConfig::resolve(raw_mail, &get).map_err(|source| {
            ConfigError::Mail {
                path: mail_source,
                source,
            }
        })?;
        Ok(cfg)
    }

    fn apply_file(&mut self, raw: RawConfig, path: &Path) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message,
        };
        if let Some(v) = raw.root {
            self.root = v;
        }
        if let Some(v) = raw.jobs {
            self.jobs = v;
        }
        if let Some(v) = raw.lake {
            self.lake = v;
        }
        if let Some(v) = raw.state {
            self.state = v;
        }
        if let Some(v) = raw.state_busy_timeout {
            self.state_busy_timeout = humantime::parse_duration(&v)
                .map_err(|e| err(format!("state_busy_timeout: invalid duration `{v}`: {e}")))?;
        }
        if let Some(v) = raw.logs {
            self.logs = v;
        }
        if let Some(v) = raw.outbox {
            self.outbox = v;
        }
        if let Some(v) = raw.daemon.shutdown_grace {
            self.shutdown_grace = humantime::parse_duration(&v).map_err(|e| {
                err(format!(
                    "daemon.shutdown_grace: invalid duration `{v}`: {e}"
                ))
            })?;
        }
        if let Some(v) = raw.daemon.reload_interval {
            self.reload_interval = humantime::parse_duration(&v).map_err(|e| {
                err(format!(
                    "daemon.reload_interval: invalid duration `{v}`: {e}"
                ))
            })?;
        }
        if let Some(v) = raw.daemon.max_catchup_runs {
            self.max_catchup_runs = v;
        }
        Ok(())
    }

    /// Apply `RESTOCK_*` overrides read through `get` (injectable for tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("RESTOCK_ROOT") {
            self.root = v.into();
        }
        if let Some(v) = get("RESTOCK_JOBS") {
            self.jobs = v.into();
        }
        if let Some(v) = get("RESTOCK_LAKE") {
            self.lake = v;
        }
        if let Some(v) = get("RESTOCK_STATE") {
            self.state = v.into();
        }
        if let Some(v) = get("RESTOCK_STATE_BUSY_TIMEOUT") {
            self.state_busy_timeout = dur("RESTOCK_STATE_BUSY_TIMEOUT", &v)?;
        }
        if let Some(v) = get("RESTOCK_LOGS") {
            self.logs = v.into();
        }
        if let Some(v) = get("RESTOCK_OUTBOX") {
            self.outbox = v.into();
        }
        if let Some(v) = get("RESTOCK_SHUTDOWN_GRACE") {
            self.shutdown_grace = dur("RESTOCK_SHUTDOWN_GRACE", &v)?;
        }
        if let Some(v) = get("RESTOCK_RELOAD_INTERVAL") {
            self.reload_interval = dur("RESTOCK_RELOAD_INTERVAL", &v)?;
        }
        if let Some(v) = get("RESTOCK_MAX_CATCHUP_RUNS") {
            self.max_catchup_runs = v.parse().map_err(|_| ConfigError::Env {
                var: "RESTOCK_MAX_CATCHUP_RUNS".into(),
                message: format!("`{v}` is not a number"),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "RESTOCK_LAKE" => Some("s3://b/p".into()),
            "RESTOCK_SHUTDOWN_GRACE" => Some("5s".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(c.lake, "s3://b/p");
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        let bad = c.apply_env(|k| (k == "RESTOCK_SHUTDOWN_GRACE").then(|| "soon".into()));
        assert!(bad.is_err());
    }

    #[test]
    fn from_text_reads_no_file_and_names_the_path_in_errors() {
        let path = Path::new("/nowhere/restock.yaml");
        let c = Config::from_text(
            path,
            "lake: memory://\ndaemon: { max_catchup_runs: 3 }\n",
            |_| None,
        )
        .expect("config");
        assert_eq!((c.lake.as_str(), c.max_catchup_runs), ("memory://", 3));
        let e = Config::from_text(path, "laek: x\n", |_| None).expect_err("unknown key");
        assert!(
            e.to_string().starts_with("/nowhere/restock.yaml:1:1: "),
            "{e}"
        );
        let env = Config::from_text(path, "", |k| (k == "RESTOCK_LAKE").then(|| "s3://b".into()))
            .expect("env");
        assert_eq!(env.lake, "s3://b");
    }

    #[test]
    fn mail_section_is_read_and_validated() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("restock.yaml");
        std::fs::write(
            &path,
            "outbox: out\nmail:\n  from: r@example.com\n  to: [p@example.com]\n",
        )
        .expect("write");
        let c = Config::load(Some(&path)).expect("load");
        let mail = c.mail.expect("mail");
        assert_eq!(mail.to, vec!["p@example.com"]);
        std::fs::write(
            &path,
            "mail:\n  smtp: {host: mail.example.com, security: none}\n",
        )
        .expect("write");
        let e = Config::load(Some(&path)).expect_err("clear text to a remote host");
        assert!(e.to_string().contains("mail.smtp.security"), "{e}");
    }
}
