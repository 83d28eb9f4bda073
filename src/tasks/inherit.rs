//! A `forecast` task's input mapping taken from the `train` task whose
//! models it serves, and checked against those models.
//!
//! ```yaml
//! - id: forecast
//!   kind: forecast
//!   depends_on: [train]
//!   train: train          # every input key (input, series_key, group_by, frequency …) comes from here
//!   output: forecasts
//! ```
//!
//! At compile time the named task's [`InputSpec`] is the base and the
//! forecast task's own input keys are laid over it; a key given on both
//! sides must mean the same (defaults written out, see
//! [`InputSpec::resolved`]), else it is a validation error naming both
//! values. At run time the mapping a model was trained with (stored in its
//! `model.json` under `input`) must equal the task's, else the task fails.
//!
//! Everything here goes through the serialized form of [`InputSpec`], one
//! mapping entry per field, so a key added to it is inherited, stored and
//! compared without code of its own.

use serde_yaml::{Mapping, Value};

use super::KindCompileCx;
use super::series_input::{self, InputSpec};
use crate::forecast::artifact::ModelMeta;

/// The `forecast` key naming the train task.
pub const KEY: &str = "train";

#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    /// A bug: every field of [`InputSpec`] must serialize.
    #[error("internal error: the input mapping does not serialize: {0}")]
    Serialize(String),
    /// A `model.json` whose `input` this build does not read.
    #[error(
        "its stored input settings do not parse ({0}); it was written by another version of restock, retrain it"
    )]
    Stored(String),
}

/// One input key on which two mappings disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub key: String,
    /// This task's value (`Null`: not set).
    pub ours: Value,
    /// The other side's value: the train task's, or the model's.
    pub theirs: Value,
}

impl Difference {
    /// `key: value` in YAML's inline style, or `no key` when not set.
    pub fn ours_text(&self) -> String {
        setting(&self.key, &self.ours)
    }

    pub fn theirs_text(&self) -> String {
        setting(&self.key, &self.theirs)
    }
}

fn setting(key: &str, v: &Value) -> String {
    match v {
        Value::Null => format!("no `{key}`"),
        v => format!("`{key}: {}`", inline(v)),
    }
}

/// A value as one line of YAML flow style: `[store, sku]`, `{a: b}`.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(m) => {
            let entries: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", inline(k), inline(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Tagged(t) => format!("{} {}", t.tag, inline(&t.value)),
    }
}

/// Every field of `spec`, defaults written out, as a mapping.
fn fields(spec: &InputSpec) -> Result<Mapping, InheritError> {
    match serde_yaml::to_value(spec.resolved()) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(other) => Err(InheritError::Serialize(format!(
            "expected a mapping, got {}",
            inline(&other)
        ))),
        Err(e) => Err(InheritError::Serialize(e.to_string())),
    }
}

/// The mapping a task gets from `base` with its `own` input keys laid
/// over it; deserialize it as an [`InputSpec`] (so a bad own value is
/// reported at its key), then look for [`contradictions`].
pub fn overlay(base: &InputSpec, own: &Mapping) -> Result<Mapping, InheritError> {
    let mut merged = fields(base)?;
    for (k, v) in own {
        merged.insert(k.clone(), v.clone());
    }
    Ok(merged)
}

/// The keys of `own` (what the task wrote) on which `merged` (its spec
/// after [`overlay`]) disagrees with `base`.
pub fn contradictions(
    merged: &InputSpec,
    base: &InputSpec,
    own: &Mapping,
) -> Result<Vec<Difference>, InheritError> {
    Ok(differences(merged, base)?
        .into_iter()
        .filter(|d| own.contains_key(d.key.as_str()))
        .collect())
}

/// Every key on which two mappings disagree, in field order.
pub fn differences(ours: &InputSpec, theirs: &InputSpec) -> Result<Vec<Difference>, InheritError> {
    let (a, b) = (fields(ours)?, fields(theirs)?);
    let mut out = Vec::new();
    for (k, va) in &a {
        let vb = b.get(k).cloned().unwrap_or(Value::Null);
        if *va != vb {
            out.push(Difference {
                key: k.as_str().unwrap_or_default().to_string(),
                ours: va.clone(),
                theirs: vb,
            });
        }
    }
    Ok(out)
}

/// The input mapping of a `forecast` task: its `own` input keys over
/// those of the train task `train` names, or its own alone without one.
/// Reports every problem through `cx`; `None` when the task is unusable.
pub fn compile_input(
    cx: &mut KindCompileCx,
    own: Mapping,
    train: Option<&str>,
) -> Option<InputSpec> {
    let this = cx
        .tasks
        .iter()
        .find(|t| t.path == cx.path)
        .map_or_else(String::new, |t| t.id.clone());
    let trains: Vec<String> = cx
        .tasks
        .iter()
        .filter(|t| t.kind == "train")
        .map(|t| t.id.clone())
        .collect();
    let Some(id) = train else {
        if own.is_empty() {
            cx.error(
                "",
                "name the train task whose models this task serves (`train: ID`), or give the input keys yourself (`input`, `series_key`, `group_by` …)",
            );
            return None;
        }
        if let Some(first) = trains.first() {
            cx.warn(
                "",
                format!(
                    "forecast task `{this}` repeats its input keys; with `train: {first}` it takes them from the train task, and validate checks that they agree"
                ),
            );
        }
        let spec: InputSpec = cx.deserialize(Value::Mapping(own))?;
        return spec.check(cx).then_some(spec);
    };
    let Some(task) = cx.task(id).cloned() else {
        let known = if trains.is_empty() {
            "the DAG has no train task".to_string()
        } else {
            format!("train tasks: {}", trains.join(", "))
        };
        cx.error(KEY, format!("unknown task `{id}` ({known})"));
        return None;
    };
    if task.kind != "train" {
        cx.error(
            KEY,
            format!(
                "task `{id}` has kind `{}`; `{KEY}:` names the `train` task whose models this task serves",
                task.kind
            ),
        );
        return None;
    }
    cx.needs_upstream(KEY, "`train:`", id);
    let (theirs, _) = series_input::split(Value::Mapping(task.spec.clone()));
    // A train task whose input does not compile reports that itself.
    let base: InputSpec = serde_yaml::from_value(theirs).ok()?;
    let merged = match overlay(&base, &own) {
        Ok(m) => m,
        Err(e) => {
            cx.error(KEY, e.to_string());
            return None;
        }
    };
    let spec: InputSpec = cx.deserialize(Value::Mapping(merged))?;
    let found = match contradictions(&spec, &base, &own) {
        Ok(found) => found,
        Err(e) => {
            cx.error(KEY, e.to_string());
            return None;
        }
    };
    for d in &found {
        let at = match (cx.line_of(&task.path, &d.key), &d.theirs) {
            (Some(l), _) => format!(" (line {l})"),
            (None, Value::Null) => String::new(),
            (None, _) => " (its default)".to_string(),
        };
        cx.error(
            &d.key,
            format!(
                "forecast task `{this}` has {}, but its train task `{id}` has {}{at}; drop the key to inherit it, or make the two agree",
                d.ours_text(),
                d.theirs_text()
            ),
        );
    }
    // Every other key is the train task's, which checks them itself.
    found.is_empty().then_some(spec)
}

/// What a model's `model.json` stores as `input`.
pub fn to_stored(spec: &InputSpec) -> Result<serde_json::Value, InheritError> {
    serde_json::to_value(spec.resolved()).map_err(|e| InheritError::Serialize(e.to_string()))
}

/// The mapping a model was trained with; `None` for a model saved before
/// restock stored it.
pub fn stored(meta: &ModelMeta) -> Result<Option<InputSpec>, InheritError> {
    meta.input
        .clone()
        .map(|v| serde_json::from_value(v).map_err(|e| InheritError::Stored(e.to_string())))
        .transpose()
}

/// `key: ours` vs `key: theirs` for each difference, for one message.
pub fn describe(diffs: &[Difference], ours: &str, theirs: &str) -> String {
    let parts: Vec<String> = diffs
        .iter()
        .map(|d| {
            format!(
                "{ours} {} where {theirs} {}",
                d.ours_text(),
                d.theirs_text()
            )
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::{Frequency, GapPolicy};

    fn spec(yaml: &str) -> InputSpec {
        serde_yaml::from_str(yaml).expect("an input spec")
    }

    fn own(yaml: &str) -> Mapping {
        serde_yaml::from_str(yaml).expect("a mapping")
    }

    const TRAIN: &str = "{input: sales, series_key: [store, sku], group_by: category, frequency: weekly, future: plan}";

    #[test]
    fn every_field_of_the_mapping_is_an_input_key() {
        // A field missing from INPUT_KEYS would never reach InputSpec, and
        // a key without a field would be refused: keep the two one list.
        let mut names: Vec<String> = fields(&spec(TRAIN))
            .expect("fields")
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        names.sort();
        let mut keys = series_input::INPUT_KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(names, keys);
    }

    #[test]
    fn a_task_without_keys_of_its_own_gets_every_key_of_its_train_task() {
        let base = spec(TRAIN);
        let merged = overlay(&base, &Mapping::new()).expect("overlay");
        let got: InputSpec = serde_yaml::from_value(Value::Mapping(merged)).expect("spec");
        assert_eq!(got.frequency, Frequency::Weekly);
        assert_eq!(got.future.as_deref(), Some("plan"));
        assert_eq!(got.series_key, ["store", "sku"]);
        // Defaults are written out: weekly data bridges its gaps.
        assert_eq!(got.gaps, Some(GapPolicy::Missing));
        assert!(differences(&got, &base).expect("compare").is_empty());
    }

    #[test]
    fn keys_repeated_with_the_same_meaning_are_no_contradiction() {
        let base = spec(TRAIN);
        // The same values, one of them a default written out.
        let mine =
            own("{input: sales, series_key: [store, sku], frequency: weekly, gaps: missing}");
        let merged: InputSpec =
            serde_yaml::from_value(Value::Mapping(overlay(&base, &mine).expect("overlay")))
                .expect("spec");
        assert!(
            contradictions(&merged, &base, &mine)
                .expect("compare")
                .is_empty()
        );
    }

    #[test]
    fn a_contradicting_key_names_both_values_and_only_the_keys_the_task_wrote() {
        let base = spec(TRAIN);
        let mine = own("{frequency: daily, static_feature: department, value_column: units}");
        let merged: InputSpec =
            serde_yaml::from_value(Value::Mapping(overlay(&base, &mine).expect("overlay")))
                .expect("spec");
        let got = contradictions(&merged, &base, &mine).expect("compare");
        let keys: Vec<&str> = got.iter().map(|d| d.key.as_str()).collect();
        // `gaps` follows the frequency but was not written: not reported.
        assert_eq!(keys, ["static_feature", "frequency"]);
        assert_eq!(got[0].ours_text(), "`static_feature: department`");
        assert_eq!(got[0].theirs_text(), "no `static_feature`");
        assert_eq!(got[1].ours_text(), "`frequency: daily`");
        assert_eq!(got[1].theirs_text(), "`frequency: weekly`");
    }

    #[test]
    fn a_stored_mapping_round_trips_and_differences_cover_every_field() {
        let trained = spec(TRAIN);
        let meta_input = to_stored(&trained).expect("stored");
        let back: InputSpec = serde_json::from_value(meta_input).expect("parse");
        assert_eq!(back.gaps, Some(GapPolicy::Missing));
        assert!(differences(&trained, &back).expect("compare").is_empty());
        let daily = spec("{input: sales, series_key: [store, sku], group_by: category}");
        let diffs = differences(&daily, &trained).expect("compare");
        let keys: Vec<&str> = diffs.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["future", "frequency", "gaps"]);
        assert_eq!(
            describe(
                &diffs[1..2],
                "this task reads",
                "the model was trained with"
            ),
            "this task reads `frequency: daily` where the model was trained with `frequency: weekly`"
        );
        assert_eq!(
            inline(&serde_yaml::from_str("{a: [1, x]}").expect("v")),
            "{a: [1, x]}"
        );
    }
}
