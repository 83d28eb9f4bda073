//! The compile step: raw YAML → validated [`Dag`], collecting every error.
//!
//! Pure apart from checking that referenced files exist: no network, no
//! credentials, no run store. Each section (the header, each task) is
//! deserialized on its own so one broken task does not hide the others;
//! semantic checks (cron, time zone, durations, references, cycles,
//! templates) run on whatever parsed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::lake;
use crate::schedule::{self, Schedule};
use crate::tasks::{KindCompileCx, Registry};
use crate::template;

use super::checks::{self, TemplateUse};
use super::diag::{Diagnostic, Diagnostics, unknown_message};
use super::graph;
use super::model::{Dag, RetryPolicy, Table, Task};
use super::raw::{
    self, RawDag, RawTable, RawTaskCommon, RawTaskDefaults, TASK_COMMON_KEYS, TOP_LEVEL_EXTRA,
};

/// Compile one DAG file's text. `root` is the directory relative file
/// references (SQL files, scripts) resolve against.
pub fn compile_str(
    file: &Path,
    text: &str,
    registry: &Registry,
    root: &Path,
) -> Result<Dag, Vec<Diagnostic>> {
    let mut d = Diagnostics::new(file, text);
    if let Some(pos) = d.too_deep() {
        d.error_at(
            pos.line,
            pos.column,
            format!(
                "YAML nested deeper than {} levels; a DAG file needs far fewer",
                super::locate::MAX_DEPTH
            ),
        );
        return Err(d.items);
    }
    let doc: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            d.error_at(
                line,
                col,
                format!("invalid YAML: {}", strip_location(&e.to_string())),
            );
            return Err(d.items);
        }
    };
    let serde_yaml::Value::Mapping(mut top) = doc else {
        d.error_at(1, 1, "a DAG file must be a mapping with `id` and `tasks`");
        return Err(d.items);
    };

    let tasks_value = top.remove("tasks");
    let tables_value = top.remove("tables");
    let header: Option<RawDag> =
        d.deserialize("", serde_yaml::Value::Mapping(top), TOP_LEVEL_EXTRA);

    let raw_tasks: Vec<serde_yaml::Value> = match tasks_value {
        None => {
            d.error("", "missing field `tasks`");
            Vec::new()
        }
        Some(serde_yaml::Value::Sequence(s)) => {
            if s.is_empty() {
                d.error("tasks", "a DAG needs at least one task");
            }
            s
        }
        Some(_) => {
            d.error("tasks", "`tasks` must be a list of tasks");
            Vec::new()
        }
    };

    let header = header.as_ref();
    if let Some(h) = header {
        check_id(&mut d, "id", &h.id, "DAG");
        checks::limit(&mut d, "parallelism", h.parallelism, &checks::PARALLELISM);
        checks::limit(
            &mut d,
            "max_active_runs",
            h.max_active_runs,
            &checks::MAX_ACTIVE_RUNS,
        );
        let retries = h.defaults.retries;
        checks::limit(&mut d, "defaults.retries", retries, &checks::RETRIES);
    }
    let (schedule, tz) = compile_schedule(&mut d, header);
    let defaults = header.map(|h| &h.defaults);
    let base_retry = compile_defaults(&mut d, defaults);
    let base_rule = defaults.and_then(|x| x.trigger_rule).unwrap_or_default();
    let tables = compile_tables(&mut d, tables_value);
    // Kinds see the params as templates will (a bad mapping is reported
    // below, where the DAG is assembled).
    let compile_params = header
        .and_then(|h| serde_json::to_value(&h.params).ok())
        .unwrap_or(serde_json::Value::Null);

    // Pass 1: each task's common keys and kind-specific part.
    struct Pending {
        common: RawTaskCommon,
        runner: Option<Arc<dyn crate::tasks::TaskRunner>>,
        retry: RetryPolicy,
        timeout: Option<Duration>,
        executor: Option<String>,
        /// Its `when` and templates, checked against its upstream below.
        templates: Vec<TemplateUse>,
    }
    // Each task split into its common keys and the kind's, and outlined
    // for kinds that read another task's settings.
    let (split, outlines) = raw::split_tasks(raw_tasks);
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(split.len());
    for (i, parts) in split.into_iter().enumerate() {
        let path = format!("tasks[{i}]");
        let Some((common_map, rest)) = parts else {
            d.error(&path, "a task must be a mapping with `id` and `kind`");
            pending.push(None);
            continue;
        };
        let Some(common) =
            d.deserialize::<RawTaskCommon>(&path, serde_yaml::Value::Mapping(common_map), &[])
        else {
            pending.push(None);
            continue;
        };
        check_id(&mut d, &format!("{path}.id"), &common.id, "task");
        checks::limit(
            &mut d,
            &format!("{path}.retries"),
            common.retries,
            &checks::RETRIES,
        );
        let mut templates = Vec::new();
        let retry = task_retry(&mut d, &path, &base_retry, &common);
        let timeout = match &common.timeout {
            Some(t) => duration(&mut d, &format!("{path}.timeout"), t),
            None => base_retry.1,
        };
        if let Some(w) = &common.when {
            if let Err(e) = template::check_expression(w) {
                d.error(&format!("{path}.when"), e.to_string());
            }
            templates.push(TemplateUse {
                path: format!("{path}.when"),
                what: "`when`",
                source: w.clone(),
            });
        }
        let runner = match registry.get(&common.kind) {
            Some(kind) => {
                let mut cx = KindCompileCx {
                    diags: &mut d,
                    path: path.clone(),
                    root,
                    common_keys: TASK_COMMON_KEYS,
                    task_id: &common.id,
                    tables: &tables,
                    params: &compile_params,
                    templates: Vec::new(),
                    tasks: &outlines,
                };
                let runner = kind.compile(serde_yaml::Value::Mapping(rest), &mut cx);
                templates.append(&mut cx.templates);
                runner
            }
            None => {
                let kinds: Vec<String> = registry.names().map(str::to_string).collect();
                let hint = match kinds
                    .iter()
                    .find(|k| strsim::jaro_winkler(k, &common.kind) > 0.8)
                {
                    Some(k) => format!(", did you mean `{k}`?"),
                    None => format!(" (known kinds: {})", kinds.join(", ")),
                };
                d.error(
                    &format!("{path}.kind"),
                    format!("unknown task kind `{}`{hint}", common.kind),
                );
                None
            }
        };
        let executor = common
            .executor
            .clone()
            .or_else(|| defaults.and_then(|x| x.executor.clone()));
        if let Some(name) = &executor {
            let at = if common.executor.is_some() {
                format!("{path}.executor")
            } else {
                "defaults.executor".to_string()
            };
            if let Err(msg) = registry.check_executor(name, &common.id) {
                d.error(&at, msg);
            }
        }
        pending.push(Some(Pending {
            common,
            runner,
            retry,
            timeout,
            executor: executor.filter(|n| n != "local"),
            templates,
        }));
    }

    // Pass 2: ids and references.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (i, p) in pending.iter().enumerate() {
        let Some(p) = p else { continue };
        if let Some(&first) = by_id.get(&p.common.id) {
            d.error(
                &format!("tasks[{i}].id"),
                format!(
                    "duplicate task id `{}` (first defined at tasks[{first}])",
                    p.common.id
                ),
            );
        } else {
            by_id.insert(p.common.id.clone(), i);
        }
    }
    let n = pending.len();
    let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in pending.iter().enumerate() {
        let Some(p) = p else { continue };
        for (j, dep) in p.common.depends_on.iter().enumerate() {
            let at = format!("tasks[{i}].depends_on[{j}]");
            match by_id.get(dep) {
                Some(&u) if u == i => d.error(&at, format!("task `{dep}` depends on itself")),
                Some(&u) => {
                    if upstream[i].contains(&u) {
                        d.error(&at, format!("`{dep}` is listed twice"));
                    } else {
                        upstream[i].push(u);
                        downstream[u].push(i);
                    }
                }
                None => {
                    let known: Vec<String> = by_id.keys().cloned().collect();
                    let msg =
                        unknown_message(dep, &known).replacen("unknown field", "unknown task", 1);
                    d.error(&at, format!("depends_on {msg}"));
                }
            }
        }
    }
    for cycle in graph::find_cycles(&downstream) {
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|&i| pending[i].as_ref().map(|p| p.common.id.as_str()))
            .collect();
        let at = cycle.get(1).copied().unwrap_or(cycle[0]);
        d.error(
            &format!("tasks[{at}].depends_on"),
            format!("dependency cycle: {}", names.join(" -> ")),
        );
    }

    // A `when` or template may only name tasks upstream of it: their
    // outputs are only known once they have finished.
    for (i, p) in pending.iter().enumerate() {
        let Some(p) = p else { continue };
        checks::task_references(&mut d, i, &p.common.id, &p.templates, &by_id, &upstream);
    }

    let Some(header) = header else {
        return Err(sorted(d.items));
    };
    if !d.is_empty() {
        return Err(sorted(d.items));
    }
    let params = match serde_json::to_value(&header.params) {
        Ok(v) => v,
        Err(e) => {
            d.error(
                "params",
                format!("params must be a mapping with string keys: {e}"),
            );
            return Err(d.items);
        }
    };
    let mut tasks = Vec::with_capacity(n);
    for (i, p) in pending.into_iter().enumerate() {
        let Some(p) = p else { return Err(d.items) };
        let Some(runner) = p.runner else {
            return Err(d.items);
        };
        tasks.push(Task {
            id: p.common.id,
            kind: p.common.kind,
            description: p.common.description,
            upstream: std::mem::take(&mut upstream[i]),
            downstream: std::mem::take(&mut downstream[i]),
            when: p.common.when,
            trigger_rule: p.common.trigger_rule.unwrap_or(base_rule),
            retry: p.retry,
            timeout: p.timeout,
            executor: p.executor,
            runner,
        });
    }
    let parallelism = header.parallelism.unwrap_or(16) as usize;
    Ok(Dag {
        id: header.id.clone(),
        description: header.description.clone(),
        tags: header.tags.clone(),
        file: file.to_path_buf(),
        source_hash: source_hash(text),
        schedule,
        tz,
        max_active_runs: header.max_active_runs.unwrap_or(1) as usize,
        parallelism,
        params,
        tables,
        tasks,
        by_id,
        warnings: sorted(d.warnings),
    })
}

/// `tables:`: names usable in SQL, lake-relative paths, partition columns.
/// Each entry is deserialized on its own so one bad entry hides no other.
fn compile_tables(
    d: &mut Diagnostics,
    value: Option<serde_yaml::Value>,
) -> BTreeMap<String, Table> {
    let mut out = BTreeMap::new();
    let entries = match value {
        None | Some(serde_yaml::Value::Null) => return out,
        Some(serde_yaml::Value::Mapping(m)) => m,
        Some(_) => {
            d.error(
                "tables",
                "`tables` must be a mapping from table name to `{ path, partition_by, columns }`",
            );
            return out;
        }
    };
    let mut raw: Vec<(String, RawTable)> = Vec::new();
    for (k, v) in entries {
        let Some(name) = k.as_str().map(str::to_string) else {
            d.error("tables", "table names must be strings");
            continue;
        };
        if let Some(t) = d.deserialize::<RawTable>(&format!("tables.{name}"), v, &[]) {
            raw.push((name, t));
        }
    }
    let mut by_path: HashMap<String, String> = HashMap::new();
    for (name, t) in &raw {
        let at = format!("tables.{name}");
        let mut ok = true;
        if let Err(e) = lake::check_identifier(name) {
            d.error(&at, e.replacen("invalid name", "invalid table name", 1));
            ok = false;
        }
        if let Err(e) = lake::check_table_path(&t.path) {
            d.error(&format!("{at}.path"), e);
            ok = false;
        }
        let path = t.path.trim_end_matches('/').to_string();
        if let Some(other) = by_path.get(&path) {
            d.error(
                &format!("{at}.path"),
                format!("path `{path}` is already the path of table `{other}`"),
            );
            ok = false;
        } else {
            by_path.insert(path.clone(), name.clone());
        }
        for (i, col) in t.partition_by.iter().enumerate() {
            let cat = format!("{at}.partition_by[{i}]");
            if let Err(e) = lake::check_identifier(col) {
                d.error(
                    &cat,
                    e.replacen("invalid name", "invalid partition column name", 1),
                );
                ok = false;
            } else if t.partition_by[..i].contains(col) {
                d.error(&cat, format!("partition column `{col}` is listed twice"));
                ok = false;
            }
        }
        for (i, col) in t.columns.iter().flatten().enumerate() {
            let cat = format!("{at}.columns[{i}]");
            if let Err(e) = lake::check_identifier(col) {
                d.error(&cat, e.replacen("invalid name", "invalid column name", 1));
                ok = false;
            } else if t.columns.iter().flatten().take(i).any(|c| c == col) {
                d.error(&cat, format!("column `{col}` is listed twice"));
                ok = false;
            }
        }
        if let Some(f) = &t.format {
            if f != "parquet" {
                d.error(
                    &format!("{at}.format"),
                    format!("unsupported table format `{f}` (supported: parquet)"),
                );
                ok = false;
            }
        }
        if ok {
            out.insert(
                name.clone(),
                Table {
                    name: name.clone(),
                    path,
                    partition_by: t.partition_by.clone(),
                    columns: t.columns.clone(),
                },
            );
        }
    }
    out
}

/// Compile a DAG file from disk.
pub fn compile_file(file: &Path, registry: &Registry, root: &Path) -> Result<Dag, Vec<Diagnostic>> {
    match std::fs::read_to_string(file) {
        Ok(text) => compile_str(file, &text, registry, root),
        Err(e) => Err(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            path: String::new(),
            message: format!("cannot read file: {e}"),
        }]),
    }
}

/// The content hash a remote attempt's spec carries (SHA-256, hex).
pub fn source_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Diagnostics in file order.
fn sorted(mut items: Vec<Diagnostic>) -> Vec<Diagnostic> {
    items.sort_by_key(|d| (d.line, d.column));
    items
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn check_id(d: &mut Diagnostics, path: &str, id: &str, what: &str) {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        d.error(
            path,
            format!("invalid {what} id `{id}`: use letters, digits, `_` and `-` (at most 128)"),
        );
    }
}

fn compile_schedule(d: &mut Diagnostics, header: Option<&RawDag>) -> (Option<Schedule>, Tz) {
    let Some(raw) = header.and_then(|h| h.schedule.as_ref()) else {
        return (None, Tz::UTC);
    };
    let tz = match &raw.timezone {
        Some(name) => match schedule::parse_tz(name) {
            Ok(tz) => tz,
            Err(e) => {
                d.error("schedule.timezone", e.to_string());
                Tz::UTC
            }
        },
        None => Tz::UTC,
    };
    let mut sched = match Schedule::new(&raw.cron, tz, raw.catchup.unwrap_or_default()) {
        Ok(s) => Some(s),
        Err(e) => {
            d.error("schedule.cron", e.to_string());
            None
        }
    };
    if let Some(sd) = &raw.start_date {
        match NaiveDate::parse_from_str(sd, "%Y-%m-%d") {
            Ok(date) => {
                if let Some(s) = sched.as_mut() {
                    s.start_date = schedule::local_midnight(&tz, date);
                }
            }
            Err(_) => d.error(
                "schedule.start_date",
                format!("invalid date `{sd}` (expected YYYY-MM-DD)"),
            ),
        }
    }
    (sched, tz)
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}` ({e}; expected e.g. 30s, 10m, 1h)"))
}

fn duration(d: &mut Diagnostics, path: &str, text: &str) -> Option<Duration> {
    match parse_duration(text) {
        Ok(v) => Some(v),
        Err(msg) => {
            d.error(path, msg);
            None
        }
    }
}

/// DAG-level defaults: retry policy and timeout.
fn compile_defaults(
    d: &mut Diagnostics,
    raw: Option<&RawTaskDefaults>,
) -> (RetryPolicy, Option<Duration>) {
    let mut p = RetryPolicy::default();
    let Some(raw) = raw else { return (p, None) };
    if let Some(r) = raw.retries {
        p.retries = r;
    }
    if let Some(b) = raw.retry_backoff {
        p.backoff = b;
    }
    if let Some(t) = &raw.retry_delay {
        p.delay = duration(d, "defaults.retry_delay", t).unwrap_or(p.delay);
    }
    if let Some(t) = &raw.max_retry_delay {
        p.max_delay = duration(d, "defaults.max_retry_delay", t).unwrap_or(p.max_delay);
    }
    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|t| duration(d, "defaults.timeout", t));
    (p, timeout)
}

fn task_retry(
    d: &mut Diagnostics,
    path: &str,
    base: &(RetryPolicy, Option<Duration>),
    c: &RawTaskCommon,
) -> RetryPolicy {
    let mut p = base.0.clone();
    if let Some(r) = c.retries {
        p.retries = r;
    }
    if let Some(b) = c.retry_backoff {
        p.backoff = b;
    }
    if let Some(t) = &c.retry_delay {
        p.delay = duration(d, &format!("{path}.retry_delay"), t).unwrap_or(p.delay);
    }
    if let Some(t) = &c.max_retry_delay {
        p.max_delay = duration(d, &format!("{path}.max_retry_delay"), t).unwrap_or(p.max_delay);
    }
    p
}

/// Shown by `restock validate` for a DAG that compiled.
pub fn summary(dag: &Dag) -> String {
    let sched = match &dag.schedule {
        Some(s) => format!(
            "`{}` {} catchup={}",
            s.expr(),
            s.tz,
            format!("{:?}", s.catchup).to_lowercase()
        ),
        None => "unscheduled".to_string(),
    };
    format!(
        "{}: ok ({} tasks, {}, parallelism {}, max_active_runs {})",
        dag.id,
        dag.tasks.len(),
        sched,
        dag.parallelism,
        dag.max_active_runs
    )
}
