//! Templates and `when` expressions (minijinja).
//!
//! One strict environment: an undefined name is an error, never an empty
//! string. The compile step uses [`check_template`] / [`check_expression`] to
//! reject what does not parse; the executor renders with a [`RunVars`]
//! context built per attempt.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template does not parse: {0}")]
    Syntax(String),
    #[error("template failed to render: {0}")]
    Render(String),
}

/// The shared strict environment (building one per template is costly
/// when validating DAGs with thousands of tasks).
fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("add_days", add_days);
        env
    })
}

/// `{{ ds | add_days(-7) }}`: a `YYYY-MM-DD` date moved by whole days.
fn add_days(date: &str, days: i64) -> Result<String, minijinja::Error> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("add_days: `{date}` is not a YYYY-MM-DD date ({e})"),
        )
    })?;
    Ok((d + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string())
}

fn describe(err: &minijinja::Error) -> String {
    let mut msg = match err.detail() {
        Some(d) => format!("{}: {d}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

/// Parse `source` as a template without rendering it.
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    let env = env();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| TemplateError::Syntax(describe(&e)))
}

/// Parse `expr` as an expression without evaluating it.
pub fn check_expression(expr: &str) -> Result<(), TemplateError> {
    let env = env();
    env.compile_expression(expr)
        .map(|_| ())
        .map_err(|e| TemplateError::Syntax(describe(&e)))
}

/// True when `source` contains template syntax at all (plain strings skip
/// the renderer).
pub fn is_templated(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// The variables every template of a run sees.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunVars {
    pub ds: String,
    pub ds_nodash: String,
    pub ts: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub run_id: String,
    pub dag_id: String,
    pub params: serde_json::Value,
    /// `tasks.ID.outputs.KEY` for upstream tasks that have finished.
    pub tasks: BTreeMap<String, TaskVars>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct TaskVars {
    pub state: String,
    pub outputs: serde_json::Value,
}

impl RunVars {
    pub fn new(
        dag_id: &str,
        run_id: &str,
        tz: &Tz,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        params: serde_json::Value,
    ) -> Self {
        let local = start.with_timezone(tz);
        Self {
            ds: local.format("%Y-%m-%d").to_string(),
            ds_nodash: local.format("%Y%m%d").to_string(),
            ts: start.to_rfc3339_opts(SecondsFormat::Secs, true),
            logical_date: start.to_rfc3339_opts(SecondsFormat::Secs, true),
            data_interval_start: start.to_rfc3339_opts(SecondsFormat::Secs, true),
            data_interval_end: end.to_rfc3339_opts(SecondsFormat::Secs, true),
            run_id: run_id.to_string(),
            dag_id: dag_id.to_string(),
            params,
            tasks: BTreeMap::new(),
        }
    }

    pub fn render(&self, source: &str) -> Result<String, TemplateError> {
        if !is_templated(source) {
            return Ok(source.to_string());
        }
        env()
            .render_str(source, Value::from(Serde(self)))
            .map_err(|e| TemplateError::Render(describe(&e)))
    }

    /// Evaluate a `when` expression; its result is tested for truthiness.
    pub fn eval_bool(&self, expr: &str) -> Result<bool, TemplateError> {
        let env = env();
        let compiled = env
            .compile_expression(expr)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        compiled
            .eval(Value::from(Serde(self)))
            .map(|v| v.is_true())
            .map_err(|e| TemplateError::Render(describe(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> RunVars {
        let mut v = RunVars::new(
            "d",
            "d.20261127T020000Z",
            &Tz::Europe__Berlin,
            "2026-11-27T01:00:00Z".parse().expect("ts"),
            "2026-11-28T01:00:00Z".parse().expect("ts"),
            serde_json::json!({"horizon_days": 28}),
        );
        v.tasks.insert(
            "monitor".into(),
            TaskVars {
                state: "succeeded".into(),
                outputs: serde_json::json!({"anomaly_count": 3}),
            },
        );
        v
    }

    #[test]
    fn renders_run_variables() {
        let v = vars();
        assert_eq!(
            v.render("{{ ds }} {{ ds_nodash }} {{ params.horizon_days }}")
                .expect("render"),
            "2026-11-27 20261127 28"
        );
        assert_eq!(
            v.render("{{ tasks.monitor.outputs.anomaly_count }}")
                .expect("render"),
            "3"
        );
    }

    #[test]
    fn add_days_filter() {
        let v = vars();
        assert_eq!(
            v.render("{{ ds | add_days(-730) }}..{{ ds | add_days(1) }}")
                .expect("render"),
            "2024-11-27..2026-11-28"
        );
        assert!(v.render("{{ 'x' | add_days(1) }}").is_err());
    }

    #[test]
    fn undefined_is_an_error() {
        let v = vars();
        assert!(v.render("{{ nope }}").is_err());
        assert!(v.render("{{ params.nope }}").is_err());
        assert!(v.eval_bool("tasks.other.outputs.x > 0").is_err());
    }

    #[test]
    fn when_expressions() {
        let v = vars();
        assert!(
            v.eval_bool("tasks.monitor.outputs.anomaly_count > 0")
                .expect("eval")
        );
        assert!(
            !v.eval_bool("tasks.monitor.outputs.anomaly_count > 5")
                .expect("eval")
        );
        assert!(check_expression("a >").is_err());
        assert!(check_template("{{ a ").is_err());
    }
}
