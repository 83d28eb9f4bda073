//! The `sql` kind: run one query with DataFusion over the DAG's lake tables
//! and publish its result as one Parquet file.
//!
//! ```yaml
//! - id: daily_sales
//!   kind: sql
//!   sql: sql/daily_sales.sql     # a template: {{ ds }}, {{ params.x }} …
//!   output:
//!     table: curated/daily_sales
//!     partition_by: ds           # folder ds=<the run's ds>/
//!     mode: overwrite_partition  # | overwrite | append
//! ```
//!
//! The SQL file must lie inside the project root, exist at compile time and
//! parse as a template; upstream outputs (`tasks.…`) in it must go through
//! a quoting filter (`sql_literal`, `sql_ident`, `int`, `float`). It is
//! rendered with placeholder run variables, the DAG's params and
//! placeholder outputs, parsed, and every table it names (CTEs and table
//! functions aside) must be declared under `tables:` (no lake access:
//! validation stays pure). At run time it is read again, rendered, parsed, and only the tables it names are
//! registered (from the DAG's `tables:`). The result is streamed into the
//! lake by [`crate::lake::publish`], never collected in memory.
//!
//! Outputs: `rows`, `files`, `bytes`, `path` (the folder written), `file`.
//! Bad SQL, unknown or empty tables and corrupt files are
//! [`TaskError::Fatal`]: another try would see the same input.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use serde::Deserialize;

use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::dag::model::Table;
use crate::lake::publish::{self, PublishError, Target, WriteMode};
use crate::lake::session::{self, SessionError};
use crate::lake::{self, Lake};

pub struct SqlKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSpec {
    sql: String,
    output: OutputSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSpec {
    table: String,
    #[serde(default)]
    partition_by: Option<String>,
    #[serde(default)]
    mode: Option<WriteMode>,
}

#[derive(Debug)]
struct SqlRunner {
    /// As written in the DAG file (may be a template).
    sql: String,
    root: PathBuf,
    table: String,
    partition_by: Option<String>,
    mode: WriteMode,
}

impl TaskKind for SqlKind {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let spec: SqlSpec = cx.deserialize(spec)?;
        let mut ok = true;
        if !crate::template::is_templated(&spec.sql) {
            if let Err(e) = super::inside_root(cx.root, &spec.sql) {
                cx.error("sql", e);
                return None;
            }
        }
        let file = cx.file("sql", &spec.sql);
        if !crate::template::is_templated(&spec.sql) {
            if let Ok(text) = std::fs::read_to_string(&file) {
                cx.note_template("sql", &text);
                if let Err(e) = crate::template::check_template(&text) {
                    cx.error("sql", format!("`{}`: {e}", file.display()));
                    ok = false;
                } else if let Err(msg) = check_query(&file, &text, cx) {
                    cx.error("sql", msg);
                    ok = false;
                }
            }
        } else {
            cx.template("sql", &spec.sql);
        }
        if let Err(e) = lake::check_table_path(&spec.output.table) {
            cx.error("output.table", e);
            ok = false;
        }
        if let Some(col) = &spec.output.partition_by {
            if let Err(e) = lake::check_identifier(col) {
                cx.error(
                    "output.partition_by",
                    e.replacen("invalid name", "invalid partition column name", 1),
                );
                ok = false;
            }
        }
        let mode = match (spec.output.mode, &spec.output.partition_by) {
            (Some(WriteMode::OverwritePartition), None) => {
                cx.error(
                    "output.mode",
                    "mode `overwrite_partition` needs `output.partition_by`",
                );
                ok = false;
                WriteMode::OverwritePartition
            }
            (Some(m), _) => m,
            (None, Some(_)) => WriteMode::OverwritePartition,
            (None, None) => WriteMode::Overwrite,
        };
        ok.then(|| {
            Arc::new(SqlRunner {
                sql: spec.sql,
                root: cx.root.to_path_buf(),
                table: spec.output.table.trim_end_matches('/').to_string(),
                partition_by: spec.output.partition_by,
                mode,
            }) as Arc<dyn TaskRunner>
        })
    }
}

#[async_trait]
impl TaskRunner for SqlRunner {
    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let rel = cx.render(&self.sql)?;
        let file = super::inside_root(&self.root, &rel).map_err(TaskError::Fatal)?;
        let text = match tokio::fs::read_to_string(&file).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TaskError::Fatal(format!(
                    "SQL file `{}` does not exist",
                    file.display()
                )));
            }
            Err(e) => {
                return Err(TaskError::Failed(format!(
                    "cannot read SQL file `{}`: {e}",
                    file.display()
                )));
            }
        };
        if let Some(bad) = unquoted_outputs(&file, &text) {
            return Err(TaskError::Fatal(bad));
        }
        let query = cx
            .render(&text)
            .map_err(|e| TaskError::Fatal(format!("{}: {e}", file.display())))?;
        let lake = &cx.services.lake;
        // Listing and planning can take a while on a large S3 table; a
        // cancel must not wait for them.
        let (stream, tables) = tokio::select! {
            biased;
            _ = cx.cancel.cancelled() => {
                return Err(TaskError::Interrupted("stopped while planning the query".into()));
            }
            r = prepare(lake, &file, &query, cx) => r?,
        };

        let target = Target {
            table: lake::table_location(&self.table),
            partition: self
                .partition_by
                .as_ref()
                .map(|c| (c.clone(), cx.vars.ds.clone())),
            mode: self.mode,
        };
        cx.log.progress(&format!(
            "writing {} ({}) to {}",
            file.display(),
            self.mode.as_str(),
            lake.describe(&target.dir())
        ));
        let log = &cx.log;
        let progress = |rows: u64| log.progress(&format!("{rows} rows written"));
        let written = match publish::write(lake, &target, stream, &cx.cancel, &progress).await {
            Ok(w) => w,
            Err(e) => return Err(publish_error(lake, &tables, &file, e).await),
        };
        if written.dropped_partition_column {
            if let Some((col, _)) = &target.partition {
                cx.log.line(&format!(
                    "column `{col}` is the partition column; its value is in the folder name, not the file"
                ));
            }
        }
        cx.log.progress(&format!(
            "published {} rows, {} bytes to {}",
            written.rows,
            written.bytes,
            lake.describe(&written.file)
        ));
        let mut out = Outputs::new();
        out.insert("rows".into(), written.rows.into());
        out.insert("files".into(), 1.into());
        out.insert("bytes".into(), written.bytes.into());
        out.insert("path".into(), lake.describe(&written.dir).into());
        out.insert("file".into(), lake.describe(&written.file).into());
        // The rendered statement, for the run page (bounded: outputs stay small).
        out.insert("sql".into(), bounded(&query, 64 * 1024).into());
        Ok(out)
    }
}

/// Parse, check and plan the query, register the tables it names, and
/// start executing it.
async fn prepare(
    lake: &Lake,
    file: &FsPath,
    query: &str,
    cx: &AttemptContext,
) -> Result<(SendableRecordBatchStream, Vec<Table>), TaskError> {
    let ctx = session::context(lake);
    let state = ctx.state();
    let statement = state
        .sql_to_statement(query, &state.config().options().sql_parser.dialect)
        .map_err(|e| TaskError::Fatal(sql_error(file, query, &e)))?;
    if !is_query(&statement) {
        return Err(TaskError::Fatal(format!(
            "{}: a `sql` task runs one query (SELECT or WITH …), not other statements",
            file.display()
        )));
    }
    let tables = register_tables(&ctx, lake, file, query, &statement, cx).await?;
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| TaskError::Fatal(sql_error(file, query, &e)))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| {
            TaskError::Fatal(format!(
                "{}: a `sql` task runs one query (SELECT or WITH …): {}",
                file.display(),
                e.strip_backtrace()
            ))
        })?;
    let stream = match ctx.execute_logical_plan(plan).await {
        Ok(frame) => frame.execute_stream().await,
        Err(e) => Err(e),
    };
    match stream {
        Ok(s) => Ok((s, tables)),
        Err(e) => Err(publish_error(lake, &tables, file, PublishError::Query(e)).await),
    }
}

/// Whether a statement is a query (SELECT or WITH …).
fn is_query(statement: &DfStatement) -> bool {
    matches!(
        statement,
        DfStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_))
    )
}

/// Register the declared tables the query names; name the unknown ones.
async fn register_tables(
    ctx: &SessionContext,
    lake: &Lake,
    file: &FsPath,
    query: &str,
    statement: &DfStatement,
    cx: &AttemptContext,
) -> Result<Vec<Table>, TaskError> {
    let refs = ctx
        .state()
        .resolve_table_references(statement)
        .map_err(|e| TaskError::Fatal(sql_error(file, query, &e)))?;
    let mut tables: Vec<Table> = Vec::new();
    let mut unknown = Vec::new();
    for r in refs {
        let name = r.table().to_string();
        match cx.dag.tables.get(&name) {
            Some(t) if r.schema().is_none() => {
                if !tables.iter().any(|x| x.name == t.name) {
                    tables.push(t.clone());
                }
            }
            // Table functions (`generate_series(…)`) are named like tables.
            None if r.schema().is_none() && ctx.table_function(&name).is_ok() => {}
            _ => unknown.push(r.to_string()),
        }
    }
    if let Some(name) = unknown.first() {
        let (line, col) = find_word(query, name).unwrap_or((1, 1));
        let declared: Vec<&str> = cx.dag.tables.keys().map(String::as_str).collect();
        let known = if declared.is_empty() {
            "the DAG declares no tables".to_string()
        } else {
            format!("declared tables: {}", declared.join(", "))
        };
        return Err(TaskError::Fatal(format!(
            "{}:{line}:{col}: unknown table `{name}` ({known}); declare it under `tables:` in {}",
            file.display(),
            cx.dag.file.display()
        )));
    }
    // In name order, so that the first problem reported does not depend
    // on how the query is written.
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &tables {
        session::register_table(ctx, lake, t)
            .await
            .map_err(|e| match e {
                SessionError::List { .. } => TaskError::Failed(e.to_string()),
                _ => TaskError::Fatal(e.to_string()),
            })?;
    }
    Ok(tables)
}

/// An upstream output inserted into SQL as raw text could rewrite the
/// query (`NOPE' OR '1'='1`); it must go through a quoting filter.
fn unquoted_outputs(file: &FsPath, text: &str) -> Option<String> {
    let refs = crate::template::unquoted_refs(text, crate::template::SQL_SAFE_FILTERS);
    let first = refs.first()?;
    let line = text
        .find(first.trim_start_matches("{{ ").trim_end_matches(" }}"))
        .map(|at| text[..at].lines().count().max(1))
        .unwrap_or(1);
    Some(format!(
        "{}:{line}: `{first}` inserts an upstream output into SQL as raw text; quote it with `| sql_literal` (a value) or `| sql_ident` (a name)",
        file.display()
    ))
}

/// Validation of a SQL file without the lake: render the template with
/// placeholder run variables, the DAG's params and placeholder outputs for
/// the upstream tasks it reads (which must be quoted), parse the query, and
/// check that every table it names is declared under `tables:`.
fn check_query(file: &FsPath, text: &str, cx: &KindCompileCx) -> Result<(), String> {
    if let Some(bad) = unquoted_outputs(file, text) {
        return Err(bad);
    }
    let start: chrono::DateTime<chrono::Utc> = chrono::DateTime::UNIX_EPOCH;
    let mut vars = crate::template::RunVars::new(
        "validate",
        "validate",
        &chrono_tz::Tz::UTC,
        start,
        start + chrono::Duration::days(1),
        cx.params.clone(),
    );
    vars.tasks = crate::template::placeholder_tasks(text);
    // A render failure (an unknown param) is reported at run time, but
    // a template that does too much work does so whatever its inputs.
    let query = match vars.render(text) {
        Ok(q) => q,
        Err(e @ crate::template::TemplateError::TooMuchWork(_)) => {
            return Err(format!("{}: {e}", file.display()));
        }
        Err(_) => return Ok(()),
    };
    // One line per diagnostic: the quoted source line is for run logs.
    let one_line = |e: DataFusionError| {
        let msg = sql_error(file, &query, &e);
        msg.lines().next().unwrap_or_default().to_string()
    };
    let ctx = SessionContext::new();
    let state = ctx.state();
    let statement = state
        .sql_to_statement(&query, &state.config().options().sql_parser.dialect)
        .map_err(one_line)?;
    if !is_query(&statement) {
        return Err(format!(
            "{}: a `sql` task runs one query (SELECT or WITH …), not other statements",
            file.display()
        ));
    }
    let refs = state
        .resolve_table_references(&statement)
        .map_err(one_line)?;
    let reads_outputs = !vars.tasks.is_empty();
    for r in refs {
        let name = r.table().to_string();
        let declared = r.schema().is_none() && cx.tables.contains_key(&name);
        let function = r.schema().is_none() && ctx.table_function(&name).is_ok();
        // A table named by an upstream output (`{{ tasks.x.outputs.t |
        // sql_ident }}`) renders as the placeholder `"0"` here: which table
        // it is is known only at run time.
        let from_output = reads_outputs && r.schema().is_none() && name == "0";
        if !declared && !function && !from_output {
            let name = r.to_string();
            let (line, col) = find_word(&query, &name).unwrap_or((1, 1));
            let known = if cx.tables.is_empty() {
                "the DAG declares no tables".to_string()
            } else {
                let names: Vec<&str> = cx.tables.keys().map(String::as_str).collect();
                format!("declared tables: {}", names.join(", "))
            };
            return Err(format!(
                "{}:{line}:{col}: unknown table `{name}` ({known}); declare it under `tables:`",
                file.display()
            ));
        }
    }
    Ok(())
}

/// Turn a failure while the result was streamed into a task error, naming a
/// corrupt input file when that is the cause.
async fn publish_error(lake: &Lake, tables: &[Table], file: &FsPath, e: PublishError) -> TaskError {
    match e {
        PublishError::Interrupted => TaskError::Interrupted(e.to_string()),
        PublishError::Query(q) => {
            for t in tables {
                if let Ok(files) = session::table_files(lake, t).await {
                    if let Some(bad) = session::find_corrupt(lake, t, &files).await {
                        return TaskError::Fatal(bad.to_string());
                    }
                }
            }
            let msg = format!("{}: query failed: {}", file.display(), q.strip_backtrace());
            if transient(&q) {
                TaskError::Failed(msg)
            } else {
                TaskError::Fatal(msg)
            }
        }
        PublishError::Encode { .. }
        | PublishError::Store { .. }
        | PublishError::DiskFull { .. } => TaskError::Failed(e.to_string()),
    }
}

/// Errors of the storage underneath, which another try may not meet.
fn transient(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => true,
        DataFusionError::ResourcesExhausted(_) => true,
        DataFusionError::Context(_, inner) => transient(inner),
        DataFusionError::Diagnostic(_, inner) => transient(inner),
        _ => false,
    }
}

/// `file:line:column: message` for a parse or planning error, with the
/// offending line quoted. Positions are in the rendered query, which
/// matches the file unless template tags add or remove lines.
pub fn sql_error(file: &FsPath, query: &str, e: &DataFusionError) -> String {
    let message = e.strip_backtrace();
    let pos = e
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| (s.start.line as usize, s.start.column as usize))
        .or_else(|| parser_position(&message));
    match pos {
        Some((line, col)) => {
            let mut out = format!("{}:{line}:{col}: {message}", file.display());
            if let Some(text) = query.lines().nth(line.saturating_sub(1)) {
                out.push_str(&format!(
                    "\n    {text}\n    {}^",
                    " ".repeat(col.saturating_sub(1))
                ));
            }
            out
        }
        None => format!("{}: {message}", file.display()),
    }
}

/// The parser's "at Line: 3, Column: 8" (the last one in the message).
fn parser_position(message: &str) -> Option<(usize, usize)> {
    let i = message.rfind("Line: ")?;
    let rest = &message[i + 6..];
    let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let j = rest.find("Column: ")?;
    let col: String = rest[j + 8..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((line.parse().ok()?, col.parse().ok()?))
}

/// Line and column of the first whole-word, case-insensitive occurrence of
/// `word` in `text`, outside `--` comments.
fn find_word(text: &str, word: &str) -> Option<(usize, usize)> {
    let lower = word.to_ascii_lowercase();
    for (n, line) in text.lines().enumerate() {
        let code = line.find("--").map_or(line, |i| &line[..i]);
        let l = code.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = l[from..].find(&lower) {
            let at = from + i;
            let before = l[..at].chars().next_back();
            let after = l[at + lower.len()..].chars().next();
            let is_word =
                |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !is_word(before) && !is_word(after) {
                return Some((n + 1, line[..at].chars().count() + 1));
            }
            from = at + lower.len();
        }
    }
    None
}

/// `text`, cut at a character boundary after at most `max` bytes (marked).
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n-- … ({} more bytes)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions() {
        assert_eq!(
            parser_position(
                "sql parser error: Expected: end of statement, found: x at Line: 3, Column: 12"
            ),
            Some((3, 12))
        );
        assert_eq!(parser_position("no position"), None);
    }

    #[test]
    fn words() {
        let q = "SELECT *\nFROM sales_x s JOIN sales ON 1=1";
        assert_eq!(find_word(q, "sales"), Some((2, 21)));
        assert_eq!(find_word(q, "nope"), None);
        let commented = "-- sales_x is gone\nSELECT 1 FROM sales_x";
        assert_eq!(find_word(commented, "sales_x"), Some((2, 15)));
    }
}
