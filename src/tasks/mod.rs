//! Task kinds: one trait, one registry, one file per kind.
//!
//! A [`TaskKind`] turns the kind-specific part of a task's YAML into a
//! [`TaskRunner`] during the pure compile step (it may check that referenced
//! files exist, that templates parse and that SQL parses against the DAG's
//! declared tables, nothing that needs the lake). The executor calls
//! [`TaskRunner::run`] once per attempt with an [`AttemptContext`]: the
//! run's template variables, the attempt's log, a cancellation token and the
//! shared [`Services`]. Kinds never touch the run store; they return
//! [`Outputs`] or a [`TaskError`] and the executor records them.

pub mod accuracy;
pub mod command;
pub mod email;
pub mod empty;
pub mod forecast;
pub mod inherit;
pub mod keys;
mod metrics_table;
pub mod model_store;
pub mod monitor;
pub mod override_edit;
pub mod overrides;
pub mod reorder;
pub mod schemas;
pub mod series_input;
pub mod sql;
pub mod streams;
pub mod tables;
pub mod train;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dag::diag::Diagnostics;
use crate::lake::Lake;
use crate::template::{RunVars, TemplateError};

/// What a task attempt reports back: a small JSON object (counts, paths).
pub type Outputs = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The attempt failed; it is retried while retries remain.
    #[error("{0}")]
    Failed(String),
    /// The attempt failed in a way another try cannot fix (bad input that
    /// only shows at run time); not retried.
    #[error("{0}")]
    Fatal(String),
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl TaskError {
    pub fn retryable(&self) -> bool {
        matches!(self, TaskError::Failed(_) | TaskError::Timeout(_))
    }
}

/// Everything shared by the tasks of a process: the configuration and the
/// lake (the mail transport plugs in here). `Default` gives an in-memory
/// lake.
#[derive(Debug, Default)]
pub struct Services {
    pub config: Config,
    pub lake: Lake,
    /// The named remote executors of `restock.yaml` (Slurm, Ray).
    pub executors: crate::remote::Executors,
}

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("lake: {0}")]
    Lake(String),
}

impl Services {
    /// Build the shared services a configuration describes.
    pub fn new(config: Config) -> Result<Self, ServicesError> {
        let lake = Lake::open(&config.lake).map_err(|e| ServicesError::Lake(e.to_string()))?;
        let executors = crate::remote::Executors::build(&config.executors);
        Ok(Self {
            config,
            lake,
            executors,
        })
    }
}

/// Receives progress lines as they are written.
pub type Echo = Arc<dyn Fn(&str) + Send + Sync>;

/// The per-attempt log file, optionally echoed to an observer (the terminal
/// of `restock run`).
pub struct AttemptLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
    echo: Option<Echo>,
}

impl std::fmt::Debug for AttemptLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AttemptLog {
    /// Create the log file, readable by the owner only (a task's output
    /// may carry data nobody else should read). The path is made absolute
    /// so that files named after it (`$RESTOCK_OUTPUTS`) resolve the same
    /// from a task's own working directory.
    pub fn create(path: PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = std::path::absolute(&path)?;
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(Some(file)),
            echo: None,
        })
    }

    /// Reopen an attempt's log to add to it (an adopted remote attempt:
    /// the process that started it wrote the first lines).
    pub fn append(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(Some(file)),
            echo: None,
        })
    }

    /// A log that goes nowhere (used by benchmarks of the orchestration
    /// overhead, where no task writes).
    pub fn discard() -> Self {
        Self {
            path: PathBuf::new(),
            file: Mutex::new(None),
            echo: None,
        }
    }

    pub fn with_echo(mut self, echo: Option<Echo>) -> Self {
        self.echo = echo;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line, prefixed with the UTC time it was written (a
    /// newline is added), so a slow step or a silent fallback shows when it
    /// happened. Known secret values are masked (see [`crate::secrets`]).
    pub fn line(&self, msg: &str) {
        let msg = crate::secrets::mask(msg);
        let mut guard = match self.file.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(f) = guard.as_mut() {
            let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ ");
            // A full disk must not turn into a task failure of its own; the
            // attempt's result is still recorded in the store.
            let _ = f.write_all(format!("{stamp}{msg}\n").as_bytes());
        }
    }

    /// A progress line: written to the log and shown to the observer.
    pub fn progress(&self, msg: &str) {
        self.line(msg);
        if let Some(echo) = &self.echo {
            echo(&crate::secrets::mask(msg));
        }
    }
}

/// What one attempt gets from the executor.
#[derive(Debug)]
pub struct AttemptContext {
    /// The DAG this attempt belongs to (params, declared tables).
    pub dag: Arc<crate::dag::Dag>,
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    pub try_number: u32,
    pub vars: Arc<RunVars>,
    pub log: AttemptLog,
    pub cancel: CancellationToken,
    pub services: Arc<Services>,
}

impl AttemptContext {
    /// The run's logical date (`ds`) as a date.
    pub fn ds_date(&self) -> Result<chrono::NaiveDate, TaskError> {
        chrono::NaiveDate::parse_from_str(&self.vars.ds, "%Y-%m-%d")
            .map_err(|e| TaskError::Fatal(format!("run date `{}`: {e}", self.vars.ds)))
    }

    pub fn render(&self, source: &str) -> Result<String, TaskError> {
        Ok(self.vars.render(source)?)
    }
}

#[async_trait]
pub trait TaskRunner: Send + Sync + std::fmt::Debug {
    /// Run one attempt. Must return promptly once `cx.cancel` fires.
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError>;

    /// The replenishment settings a `reorder` task plans with, so that the
    /// policy backtest replays the same policy; `None` for other kinds.
    fn reorder_settings(&self) -> Option<reorder::ReorderSettings> {
        None
    }

    /// The planning table this task publishes, for readers outside the run
    /// (the web UI's planning pages, the forecast accuracy metrics).
    fn planning(&self) -> Option<PlanningTable> {
        None
    }

    /// The declared overrides table this task applies and the lake's key
    /// columns it reads it by, for the web UI's overrides form.
    fn overrides_read(&self) -> Option<OverridesRead> {
        None
    }

    /// The headline list this task's report shows (the `email` kind's
    /// `headline:` and the anomalies it reports on), so the web UI's
    /// planning page caps its headline as the mail does; `None` for other
    /// kinds.
    fn report_headline(&self) -> Option<ReportHeadline> {
        None
    }
}

/// The cap of a report's headline list and the anomalies table it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportHeadline {
    /// The `anomalies:` key as written: a declared table or a lake path.
    pub anomalies: String,
    pub lines: usize,
}

/// Which overrides table a task reads, and by which key columns (the
/// lake's names, as [`overrides::load`] requires them of every file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverridesRead {
    pub table: String,
    pub key_names: Vec<String>,
}

/// A planning table a task writes, as its readers need to find it. Paths
/// are lake-relative folders partitioned by `ds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanningTable {
    /// `forecast`: the forecast band per series and step, and where the
    /// history it was fitted on lives.
    Forecasts {
        path: String,
        history: HistorySource,
    },
    /// `reorder`: one plan line per series.
    Plans { path: String },
    /// `monitor`: one row per anomaly, in worklist order.
    Anomalies { path: String },
    /// `train`: the backtest (`forecast_metrics`) and the scoring of past
    /// forecasts against realized demand (`forecast_accuracy`).
    Accuracy { metrics: String, accuracy: String },
}

/// The declared input table a forecast reads its history from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySource {
    /// The declared table's name (see `Dag.tables`).
    pub table: String,
    /// The forecast's series key columns, which name the series in the
    /// history and in the forecasts (the plans and anomalies carry the
    /// canonical `store` and `sku`).
    pub series_key: Vec<String>,
    pub date_column: String,
    pub value_column: String,
}

/// Context for compiling the kind-specific part of one task.
pub struct KindCompileCx<'a> {
    pub diags: &'a mut Diagnostics,
    /// Key path of the task, e.g. `tasks[3]`.
    pub path: String,
    /// Directory relative file references resolve against.
    pub root: &'a Path,
    /// Keys every kind accepts (listed in unknown-field messages).
    pub common_keys: &'static [&'static str],
    /// The task's `id`, for messages that name it.
    pub task_id: &'a str,
    /// The DAG's declared lake tables (`tables:`), by name.
    pub tables: &'a BTreeMap<String, crate::dag::model::Table>,
    /// The DAG's `params`, as templates see them (`Null` when the header
    /// did not compile).
    pub params: &'a serde_json::Value,
    /// Every template the kind checked, so that the compile step can check
    /// the tasks they name against the task's upstream.
    pub templates: Vec<crate::dag::checks::TemplateUse>,
    /// Every task of the DAG as written, for a kind that takes settings
    /// from another task (a `forecast` from its `train` task).
    pub tasks: &'a [TaskOutline],
}

/// One task of a DAG as written, before any kind compiled it.
#[derive(Debug, Clone)]
pub struct TaskOutline {
    pub id: String,
    pub kind: String,
    /// Key path, e.g. `tasks[3]`.
    pub path: String,
    /// The kind-specific keys (the common ones removed).
    pub spec: serde_yaml::Mapping,
}

impl<'a> KindCompileCx<'a> {
    /// The columns `table` declares (partition columns included), when it
    /// is declared with `columns:`.
    pub fn declared_columns(&self, table: &str) -> Option<Vec<&'a str>> {
        let tables: &'a BTreeMap<String, crate::dag::model::Table> = self.tables;
        tables.get(table).and_then(|t| t.declared_columns())
    }
}

impl KindCompileCx<'_> {
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{key}", self.path)
        };
        self.diags.error(&path, message);
    }

    /// Deserialize the kind's fields (deny_unknown_fields structs),
    /// reporting a failure at the offending key.
    pub fn deserialize<T: DeserializeOwned>(&mut self, spec: serde_yaml::Value) -> Option<T> {
        let path = self.path.clone();
        self.diags.deserialize(&path, spec, self.common_keys)
    }

    /// The task of this DAG with id `id`, as written.
    pub fn task(&self, id: &str) -> Option<&TaskOutline> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The line `key` of the task at `task_path` is written on, if it is.
    pub fn line_of(&self, task_path: &str, key: &str) -> Option<usize> {
        self.diags
            .position(&format!("{task_path}.{key}"))
            .map(|p| p.line)
    }

    /// Record that `id`, named at `key`, must be upstream of this task
    /// (checked with the templates' task references, once the graph is
    /// known).
    pub fn needs_upstream(&mut self, key: &str, what: &'static str, id: &str) {
        self.templates.push(crate::dag::checks::TemplateUse {
            path: format!("{}.{key}", self.path),
            what,
            source: format!("tasks.{id}"),
        });
    }

    /// Report a problem that does not stop the DAG from loading.
    pub fn warn(&mut self, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{key}", self.path)
        };
        self.diags.warning(&path, message);
    }

    /// Check that a template parses (and remember it, see
    /// [`KindCompileCx::note_template`]).
    pub fn template(&mut self, key: &str, source: &str) {
        if let Err(e) = crate::template::check_template(source) {
            self.error(key, e.to_string());
        }
        self.note_template(key, source);
    }

    /// Remember a template the kind renders at run time (one read from a
    /// file, say), so the tasks it names are checked to be upstream.
    pub fn note_template(&mut self, key: &str, source: &str) {
        self.templates.push(crate::dag::checks::TemplateUse {
            path: format!("{}.{key}", self.path),
            what: "the template",
            source: source.to_string(),
        });
    }

    /// Check that a table the task reads is declared under `tables:`.
    pub fn reads_table(&mut self, key: &str, name: &str) -> bool {
        if self.tables.contains_key(name) {
            return true;
        }
        let known = if self.tables.is_empty() {
            "the DAG declares no tables".to_string()
        } else {
            let names: Vec<&str> = self.tables.keys().map(String::as_str).collect();
            format!("declared tables: {}", names.join(", "))
        };
        self.error(
            key,
            format!("unknown table `{name}` ({known}); declare it under `tables:`"),
        );
        false
    }

    /// When `table` is declared with its `columns:`, check that it has
    /// every column in `need` (what the task's kind reads from it),
    /// reporting the missing ones at `key`. A table whose columns are not
    /// declared, or that is not declared at all (reported by
    /// [`KindCompileCx::reads_table`]), passes: its files are checked at
    /// run time.
    pub fn needs_columns(&mut self, key: &str, table: &str, need: &[&str]) -> bool {
        let Some(have) = self.declared_columns(table) else {
            return true;
        };
        let mut missing: Vec<&str> = Vec::new();
        for n in need {
            if !have.contains(n) && !missing.contains(n) {
                missing.push(n);
            }
        }
        if missing.is_empty() {
            return true;
        }
        let quoted = |v: &[&str]| {
            v.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.error(
            key,
            format!(
                "task `{}` needs column(s) {} of table `{table}`, which declares only {}",
                self.task_id,
                quoted(&missing),
                quoted(&have)
            ),
        );
        false
    }

    /// Resolve a file reference and check that it exists (unless the path is
    /// itself templated, which can only be checked at run time).
    pub fn file(&mut self, key: &str, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        if !crate::template::is_templated(rel) && !p.is_file() {
            self.error(key, format!("file `{}` does not exist", p.display()));
        }
        p
    }
}

/// `rel` resolved against the project `root`, refused when it is absolute
/// or climbs out of the root (`..`, or a symlink pointing outside): DAG
/// files name project files, and an error quoting a line of `/etc/shadow`
/// must not be possible.
pub fn inside_root(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let p = Path::new(rel);
    let outside = || format!("`{rel}` is outside the project root `{}`", root.display());
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(outside());
    }
    let joined = root.join(p);
    if let (Ok(real), Ok(real_root)) = (joined.canonicalize(), root.canonicalize()) {
        if !real.starts_with(&real_root) {
            return Err(outside());
        }
    }
    Ok(joined)
}

pub trait TaskKind: Send + Sync {
    fn name(&self) -> &'static str;
    /// Build a runner from the kind-specific keys of one task (the common
    /// keys such as `id` and `depends_on` are already removed). Report
    /// problems through `cx`; return `None` when the task is unusable.
    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>>;
}

/// The kinds a DAG file may use.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn TaskKind>>,
    /// The executors `restock.yaml` names, when the caller knows them;
    /// `None` (a worker, or compiling without a configuration) accepts any
    /// name and leaves the check to run time.
    executors: Option<Arc<crate::remote::Catalog>>,
}

impl Registry {
    pub fn empty() -> Self {
        Self {
            kinds: BTreeMap::new(),
            executors: None,
        }
    }

    /// Check `executor:` names against the configuration's executors.
    pub fn with_executors(mut self, catalog: crate::remote::Catalog) -> Self {
        self.executors = Some(Arc::new(catalog));
        self
    }

    /// Whether task `task` may run on executor `name` (an error message
    /// saying why not).
    pub fn check_executor(&self, name: &str, task: &str) -> Result<(), String> {
        match &self.executors {
            Some(c) => c.check(name, task),
            None => Ok(()),
        }
    }

    /// Every kind this build of restock knows.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(empty::EmptyKind));
        r.register(Arc::new(command::CommandKind));
        r.register(Arc::new(sql::SqlKind));
        r.register(Arc::new(reorder::ReorderKind));
        r.register(Arc::new(monitor::MonitorKind));
        r.register(Arc::new(train::TrainKind));
        r.register(Arc::new(forecast::ForecastKind));
        r.register(Arc::new(email::EmailKind));
        r
    }

    pub fn register(&mut self, kind: Arc<dyn TaskKind>) {
        self.kinds.insert(kind.name(), kind);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn TaskKind>> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_log_lines_carry_their_utc_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AttemptLog::create(dir.path().join("a/1.log")).expect("log");
        let before = chrono::Utc::now();
        log.line("reading table `sales`");
        let text = std::fs::read_to_string(log.path()).expect("read");
        let (stamp, msg) = text.trim_end().split_once(' ').expect("stamp");
        assert_eq!(msg, "reading table `sales`");
        let t: chrono::DateTime<chrono::Utc> = stamp.parse().expect("an RFC 3339 time");
        assert!(t >= before - chrono::Duration::milliseconds(1) && t <= chrono::Utc::now());
    }
}
