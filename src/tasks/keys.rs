//! The two keys `reorder`, `monitor` and `email` work on (a store and a
//! sku), taken from the DAG: a task's own `series_key: { store, sku }`
//! when it gives one, else the keys of the `forecast` task that writes the
//! forecasts it reads (its own `series_key`, or its `train` task's), first
//! key as the store and second as the sku. A monitor or email without
//! forecasts takes them from the `reorder` task that writes its plans.
//! Forecasts keyed by other than two columns cannot be planned on, and are
//! a validation error naming the forecast task.

use serde_yaml::{Mapping, Value};

use super::tables::KeyMap;
use super::{KindCompileCx, TaskOutline};

/// What a task reads that another task writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reads<'a> {
    /// Declared table of forecasts (written by a `forecast` task).
    pub forecasts: Option<&'a str>,
    /// Declared table of reorder plans (written by a `reorder` task).
    pub plans: Option<&'a str>,
}

/// The task's keys: `own` when given, else derived as the module says,
/// else literally `store` and `sku`. `None` after an error was recorded.
pub fn resolve(cx: &mut KindCompileCx, own: Option<KeyMap>, reads: Reads<'_>) -> Option<KeyMap> {
    let forecast = reads
        .forecasts
        .and_then(|t| Some((t, writer(cx, "forecast", t)?)));
    let derived = match forecast {
        Some((table, task)) => Some(from_forecast(cx, &task, table)?),
        None => reads
            .plans
            .and_then(|t| writer(cx, "reorder", t))
            .and_then(|task| from_reorder(cx, &task)),
    };
    Some(own.or(derived).unwrap_or_default())
}

/// The first key as the store, the second as the sku, when there are two.
fn pair(keys: &[String]) -> Option<KeyMap> {
    match keys {
        [store, sku] => Some(KeyMap {
            store: store.clone(),
            sku: sku.clone(),
        }),
        _ => None,
    }
}

/// The keys of a forecast task, as the store and sku mapping; an error
/// when it has other than two.
fn from_forecast(cx: &mut KindCompileCx, task: &TaskOutline, table: &str) -> Option<KeyMap> {
    let keys = forecast_keys(cx, task);
    if let Some(map) = pair(&keys) {
        return Some(map);
    }
    // The forecast task itself reports a missing or bad `series_key`.
    if keys.is_empty() {
        return Some(KeyMap::default());
    }
    let kind = cx
        .task(cx.task_id)
        .map_or_else(|| "this task".to_string(), |t| t.kind.clone());
    let message = format!(
        "`{table}` is written by task `{}`, keyed by [{}]; `{kind}` works on two keys, \
         a store and a sku: key the forecast by two columns",
        task.id,
        keys.join(", ")
    );
    cx.error("forecasts", message);
    None
}

/// A reorder task's keys: its own mapping, else its forecasts' writer's.
fn from_reorder(cx: &mut KindCompileCx, task: &TaskOutline) -> Option<KeyMap> {
    if let Some(v) = task.spec.get("series_key") {
        return serde_yaml::from_value(v.clone()).ok();
    }
    let table = text(&task.spec, "forecasts")
        .unwrap_or("forecasts")
        .to_string();
    // Forecasts it cannot key, the reorder task reports itself.
    pair(&forecast_keys(cx, &writer(cx, "forecast", &table)?))
}

/// A forecast task's `series_key`, or that of the `train` task it names.
fn forecast_keys(cx: &KindCompileCx, task: &TaskOutline) -> Vec<String> {
    let own = task.spec.get("series_key");
    let inherited = || {
        let train = cx.task(text(&task.spec, "train")?)?;
        train.spec.get("series_key")
    };
    own.or_else(inherited)
        .and_then(|v| serde_yaml::from_value::<Vec<String>>(v.clone()).ok())
        .unwrap_or_default()
}

/// The task of `kind` whose `output` is the declared table `table` (by
/// name or by path; a forecast's default output is `forecasts`, a
/// reorder's `reorder_plans`).
fn writer(cx: &KindCompileCx, kind: &str, table: &str) -> Option<TaskOutline> {
    let path = cx
        .tables
        .get(table)
        .map_or(table, |t| t.path.as_str())
        .trim_end_matches('/');
    let default = if kind == "forecast" {
        "forecasts"
    } else {
        "reorder_plans"
    };
    cx.tasks
        .iter()
        .find(|t| {
            let out = text(&t.spec, "output")
                .unwrap_or(default)
                .trim_end_matches('/');
            t.kind == kind && t.id != cx.task_id && (out == path || out == table)
        })
        .cloned()
}

fn text<'a>(spec: &'a Mapping, key: &str) -> Option<&'a str> {
    spec.get(key).and_then(Value::as_str)
}
