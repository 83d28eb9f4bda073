//! The serde mirror of a DAG file: exactly what the YAML says, with unknown
//! fields denied and nothing validated beyond types. Only
//! [`super::compile`] reads these; runtime code sees [`super::model`].

use serde::{Deserialize, Deserializer};

use crate::schedule::Catchup;
use crate::tasks::TaskOutline;

use super::model::{Backoff, TriggerRule};

/// Top-level keys other than `tasks` and `tables` (which are compiled one
/// entry at a time so that an error in one does not hide errors in the
/// others).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDag {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub schedule: Option<RawSchedule>,
    #[serde(default)]
    pub max_active_runs: Option<u32>,
    #[serde(default)]
    pub parallelism: Option<u32>,
    #[serde(default)]
    pub params: serde_yaml::Mapping,
    #[serde(default)]
    pub defaults: RawTaskDefaults,
}

/// One entry of `tables:` (the lake tables the DAG's SQL reads, by name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    /// Folder in the lake, e.g. `raw/sales`.
    pub path: String,
    /// Hive partition columns, outermost first (`ds=…/`).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Only `parquet` for now.
    #[serde(default)]
    pub format: Option<String>,
    /// The table's columns (besides `partition_by`), when the DAG author
    /// declares them: then `validate` checks each task's required columns
    /// against them.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

pub const TOP_LEVEL_EXTRA: &[&str] = &["tasks", "tables"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub cron: String,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub catchup: Option<Catchup>,
    /// No interval starting before this date (YYYY-MM-DD, in the schedule's
    /// time zone) is ever scheduled.
    #[serde(default)]
    pub start_date: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTaskDefaults {
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default, deserialize_with = "opt_text")]
    pub retry_delay: Option<String>,
    #[serde(default)]
    pub retry_backoff: Option<Backoff>,
    #[serde(default, deserialize_with = "opt_text")]
    pub max_retry_delay: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub trigger_rule: Option<TriggerRule>,
    /// The named executor (in `restock.yaml`) tasks run on by default.
    #[serde(default)]
    pub executor: Option<String>,
}

/// Keys every task accepts regardless of its kind.
pub const TASK_COMMON_KEYS: &[&str] = &[
    "id",
    "kind",
    "description",
    "depends_on",
    "when",
    "trigger_rule",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "executor",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTaskCommon {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub trigger_rule: Option<TriggerRule>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default, deserialize_with = "opt_text")]
    pub retry_delay: Option<String>,
    #[serde(default)]
    pub retry_backoff: Option<Backoff>,
    #[serde(default, deserialize_with = "opt_text")]
    pub max_retry_delay: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub timeout: Option<String>,
    /// A named executor from `restock.yaml` (default: in this process).
    #[serde(default)]
    pub executor: Option<String>,
}

/// Accept `30s` as well as a bare number of seconds.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "expected a duration such as `30s` or `10m`, or a number of seconds"
    )]
    enum Text {
        S(String),
        U(u64),
        F(f64),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|t| match t {
        Text::S(s) => s,
        Text::U(u) => format!("{u}s"),
        Text::F(f) => format!("{}ms", (f * 1000.0).round()),
    }))
}

/// A task as written, split into its common keys and the kind's; `None`
/// for an entry that is not a mapping.
pub type SplitTask = Option<(serde_yaml::Mapping, serde_yaml::Mapping)>;

/// Every task split (see [`SplitTask`]), and outlined for kinds that read
/// another task's settings (those with a string `id` and `kind`).
pub fn split_tasks(raw: Vec<serde_yaml::Value>) -> (Vec<SplitTask>, Vec<TaskOutline>) {
    let split: Vec<SplitTask> = raw
        .into_iter()
        .map(|t| match t {
            serde_yaml::Value::Mapping(map) => Some(split_common(map)),
            _ => None,
        })
        .collect();
    let outlines = split
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let (common, rest) = s.as_ref()?;
            Some(TaskOutline {
                id: common.get("id")?.as_str()?.to_string(),
                kind: common.get("kind")?.as_str()?.to_string(),
                path: format!("tasks[{i}]"),
                spec: rest.clone(),
            })
        })
        .collect();
    (split, outlines)
}

fn split_common(map: serde_yaml::Mapping) -> (serde_yaml::Mapping, serde_yaml::Mapping) {
    let mut common = serde_yaml::Mapping::new();
    let mut rest = serde_yaml::Mapping::new();
    for (k, v) in map {
        if k.as_str().is_some_and(|s| TASK_COMMON_KEYS.contains(&s)) {
            common.insert(k, v);
        } else {
            rest.insert(k, v);
        }
    }
    (common, rest)
}
