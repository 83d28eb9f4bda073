//! Templates and `when` expressions (minijinja).
//!
//! One strict environment: an undefined name is an error, never an empty
//! string. The compile step uses [`check_template`] / [`check_expression`] to
//! reject what does not parse; the executor renders with a [`RunVars`]
//! context built per attempt.
//!
//! Quoting: upstream outputs are data another program produced, so a
//! template that builds SQL or a shell line must quote them. The filters
//! `sql_literal` (a value: `'it''s'`, numbers as numbers, `NULL`),
//! `sql_ident` (a name: `"col""x"`) and `shell_word` (one POSIX shell word)
//! do that; [`unquoted_refs`] finds `{{ … tasks.… }}` expressions whose
//! last filter is not a quoting one, so the compile step can refuse them in
//! SQL and warn about them in a shell string.
//!
//! Work is bounded: every render and `when` evaluation gets
//! [`FUEL`] (minijinja's budget of steps and of bytes created), so a
//! template looping `range(10000)` inside `range(10000)`, or building a
//! string of gigabytes, fails with a clear error instead of hanging
//! `restock validate` (which renders SQL files) or a task attempt.

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
    /// The render used up [`FUEL`]: the template itself is at fault,
    /// whatever its inputs, so validation reports it too.
    #[error("template failed to render: {0}")]
    TooMuchWork(String),
}

/// A render or evaluation error, [`TemplateError::TooMuchWork`] when the
/// fuel ran out.
fn render_error(err: &minijinja::Error) -> TemplateError {
    if err.kind() == minijinja::ErrorKind::OutOfFuel {
        TemplateError::TooMuchWork(describe(err))
    } else {
        TemplateError::Render(describe(err))
    }
}

/// The work one render or `when` may do, in minijinja's fuel: about one
/// unit per instruction and per 64 bytes created, so at most a few
/// seconds and about 64 MB. The templates of a DAG (SQL with a few
/// loops, command lines) use thousands.
pub const FUEL: u64 = 1_000_000;

/// The shared strict environment (building one per template is costly
/// when validating DAGs with thousands of tasks).
fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.add_filter("add_days", add_days);
        env.add_filter("sql_literal", sql_literal);
        env.add_filter("sql_ident", sql_ident);
        env.add_filter("shell_word", shell_word);
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

/// `{{ x | sql_literal }}`: a SQL literal. Strings are single-quoted with
/// `'` doubled (and refused if they hold a NUL), numbers and booleans stay
/// as they are, none/undefined is `NULL`.
fn sql_literal(v: Value) -> Result<String, minijinja::Error> {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Ok("NULL".into()),
        ValueKind::Bool => Ok(if v.is_true() { "TRUE" } else { "FALSE" }.into()),
        ValueKind::Number => Ok(v.to_string()),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            if s.contains('\0') {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "sql_literal: a NUL character cannot be part of a SQL string",
                ));
            }
            Ok(format!("'{}'", s.replace('\'', "''")))
        }
        other => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("sql_literal: a {other} is not a SQL value; pick one of its fields"),
        )),
    }
}

/// `{{ x | sql_ident }}`: a double-quoted SQL identifier, `"` doubled.
fn sql_ident(v: Value) -> Result<String, minijinja::Error> {
    let s = v.to_string();
    if s.is_empty() || s.contains('\0') {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("sql_ident: `{s}` cannot be a SQL name"),
        ));
    }
    Ok(quote_ident(&s))
}

/// `name` as a double-quoted SQL identifier (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `{{ x | shell_word }}`: one POSIX shell word (single-quoted, `'` as
/// `'\''`), whatever `x` holds.
fn shell_word(v: Value) -> String {
    let s = v.to_string();
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Filters after which a value cannot change the structure of SQL.
pub const SQL_SAFE_FILTERS: &[&str] = &["sql_literal", "sql_ident", "int", "float"];

/// `{{ … }}` expressions in `source` that insert an upstream output
/// (`tasks.…`) without ending in one of `safe` filters (or `int`/`float`).
/// A value routed through `{% set %}` is not followed: this guards against
/// the common mistake, the filters are the mechanism.
pub fn unquoted_refs(source: &str, safe: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let expr = after[..close].trim_matches(|c: char| c == '-' || c.is_whitespace());
        rest = &after[close + 2..];
        if !mentions_tasks(expr) {
            continue;
        }
        let last_filter = top_level_pipes(expr)
            .last()
            .map(|f| f.split('(').next().unwrap_or_default().trim().to_string());
        let quoted =
            last_filter.is_some_and(|f| safe.contains(&f.as_str()) || f == "int" || f == "float");
        if !quoted {
            out.push(format!("{{{{ {expr} }}}}"));
        }
    }
    out
}

fn mentions_tasks(expr: &str) -> bool {
    expr.match_indices("tasks.").any(|(i, _)| {
        !expr[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// The filter parts of an expression (`a | f(x) | g` → `f(x)`, `g`),
/// ignoring `|` inside quotes and brackets.
fn top_level_pipes(expr: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut cuts) = (0i32, None::<char>, Vec::new());
    for (i, c) in expr.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, '|') if depth == 0 => cuts.push(i),
            _ => {}
        }
    }
    let mut parts = Vec::new();
    for (k, &c) in cuts.iter().enumerate() {
        let end = cuts.get(k + 1).copied().unwrap_or(expr.len());
        parts.push(&expr[c + 1..end]);
    }
    parts
}

/// Placeholder values for validating a template that reads upstream
/// outputs: every `tasks.ID.outputs.KEY` it names is `0` and every
/// `tasks.ID.state` is `succeeded`.
pub fn placeholder_tasks(source: &str) -> BTreeMap<String, TaskVars> {
    let mut tasks: BTreeMap<String, TaskVars> = BTreeMap::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    };
    for (i, _) in source.match_indices("tasks.") {
        let tail = &source[i + 6..];
        let id = word(tail);
        if id.is_empty() {
            continue;
        }
        let entry = tasks.entry(id.clone()).or_insert_with(|| TaskVars {
            state: "succeeded".into(),
            outputs: serde_json::Value::Object(Default::default()),
        });
        let key = tail[id.len()..].strip_prefix(".outputs.").map(word);
        if let (Some(key), serde_json::Value::Object(m)) = (key, &mut entry.outputs) {
            if !key.is_empty() {
                m.insert(key, 0.into());
            }
        }
    }
    tasks
}

fn describe(err: &minijinja::Error) -> String {
    if err.kind() == minijinja::ErrorKind::OutOfFuel {
        let mut msg = format!(
            "the template does more work than allowed ({FUEL} steps or about {} MB of text); \
             a loop or a repeated string is too large",
            FUEL * 64 / 1_000_000
        );
        if let Some(line) = err.line() {
            msg.push_str(&format!(" (template line {line})"));
        }
        return msg;
    }
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
            .map_err(|e| render_error(&e))
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
            .map_err(|e| render_error(&e))
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
    fn a_template_doing_too_much_work_fails_quickly_with_a_clear_error() {
        let v = vars();
        let t = std::time::Instant::now();
        for (src, what) in [
            (
                "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
                "nested loops",
            ),
            (
                "{% for a in range(1000) %}{{ 'x' * 99999999 }}{% endfor %}",
                "gigabytes of text",
            ),
        ] {
            let e = v.render(src).expect_err(what);
            assert!(matches!(e, TemplateError::TooMuchWork(_)), "{what}: {e}");
            assert!(e.to_string().contains("more work than allowed"), "{e}");
        }
        let e = v
            .eval_bool("range(100000) | map('string') | join('') | length > 0 and (('x' * 90000000) | length) > 0")
            .expect_err("an expression is bounded too");
        assert!(matches!(e, TemplateError::TooMuchWork(_)), "{e}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
        // Real templates stay far below the budget.
        let sql = v
            .render("SELECT {% for i in range(2000) %}{{ i }} AS c{{ i }}, {% endfor %}1")
            .expect("a 2,000-column select renders");
        assert!(sql.ends_with("1999 AS c1999, 1"));
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

    #[test]
    fn quoting_filters() {
        let mut v = vars();
        v.tasks.insert(
            "up".into(),
            TaskVars {
                state: "succeeded".into(),
                outputs: serde_json::json!({
                    "s": "NOPE' OR '1'='1", "n": 3, "c": "a\"b", "sh": "$(touch x)'"
                }),
            },
        );
        let sql = "{{ tasks.up.outputs.s | sql_literal }} {{ tasks.up.outputs.n | sql_literal }} {{ none | sql_literal }}";
        assert_eq!(
            v.render(sql).expect("render"),
            "'NOPE'' OR ''1''=''1' 3 NULL"
        );
        let ident = v.render("{{ tasks.up.outputs.c | sql_ident }}");
        assert_eq!(ident.expect("render"), r#""a""b""#);
        let sh = v.render("{{ tasks.up.outputs.sh | shell_word }}");
        assert_eq!(sh.expect("render"), r"'$(touch x)'\'''");
    }

    #[test]
    fn finds_unquoted_upstream_outputs() {
        let sql = "WHERE a = {{ tasks.x.outputs.v }} AND b = {{ tasks.x.outputs.w | sql_literal }}
                   AND c = {{ tasks.x.outputs.n | int }} AND d = '{{ ds }}'
                   AND e = {{ tasks.x.outputs.v | upper }}";
        assert_eq!(
            unquoted_refs(sql, SQL_SAFE_FILTERS),
            vec![
                "{{ tasks.x.outputs.v }}".to_string(),
                "{{ tasks.x.outputs.v | upper }}".to_string()
            ]
        );
        let sh = "echo {{ tasks.a.outputs.b | shell_word }}";
        assert!(unquoted_refs(sh, &["shell_word"]).is_empty());
        let ph = placeholder_tasks("{{ tasks.x.outputs.v }} {{ tasks.y.state }}");
        assert_eq!(ph["x"].outputs["v"], 0);
        assert_eq!(ph["y"].state, "succeeded");
    }
}
