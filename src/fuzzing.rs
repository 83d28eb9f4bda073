//! The entry points of the fuzz targets (`fuzz/`), shared with the test
//! that replays their corpus on stable (`tests/it/fuzz_regressions.rs`), so
//! the inputs CI runs go through exactly the code the fuzzer ran.
//!
//! Each takes untrusted text the way a user could hand it to restock (a
//! DAG file, a template or `when` expression, `restock.yaml`), runs the
//! same pure checks `restock validate` runs, and panics only when an
//! invariant of the diagnostics breaks: any other panic, a hang or
//! unbounded memory is a bug in the code under test. Owns no state and
//! touches no file apart from the existence checks the compile step makes
//! against `root`.

use std::path::Path;

use crate::dag::Diagnostic;
use crate::tasks::Registry;
use crate::template;

/// Compile `text` as the DAG file `file`, resolving references against
/// `root`. Every diagnostic must be located (line and column from 1) and
/// say something.
pub fn dag_file(text: &str, file: &Path, root: &Path) {
    let registry = Registry::builtin();
    match crate::dag::compile_str(file, text, &registry, root) {
        Ok(dag) => {
            for w in &dag.warnings {
                located(w);
            }
            let _ = crate::dag::summary(&dag);
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "a refused DAG must say why");
            for d in &diags {
                located(d);
            }
        }
    }
}

fn located(d: &Diagnostic) {
    assert!(d.line >= 1 && d.column >= 1, "unlocated diagnostic: {d}");
    assert!(!d.message.trim().is_empty(), "empty diagnostic at {d}");
}

/// Check `text` as a template and as a `when` expression, as the compile
/// step does, and render it with placeholder upstream outputs, as
/// validating a `sql` file does.
pub fn template_text(text: &str) {
    let _ = crate::dag::checks::referenced_tasks(text);
    let _ = template::unquoted_refs(text, template::SQL_SAFE_FILTERS);
    let _ = template::is_templated(text);
    let _ = template::check_expression(text);
    if template::check_template(text).is_ok() {
        let start = chrono::DateTime::UNIX_EPOCH;
        let mut vars = template::RunVars::new(
            "fuzz",
            "fuzz",
            &chrono_tz::Tz::UTC,
            start,
            start + chrono::Duration::days(1),
            serde_json::json!({}),
        );
        vars.tasks = template::placeholder_tasks(text);
        let _ = vars.render(text);
        let _ = vars.eval_bool(text);
    }
}

/// Load `text` as `restock.yaml`, with an empty environment. An error
/// must name the file.
pub fn config_text(text: &str) {
    let path = Path::new("restock.yaml");
    if let Err(e) = crate::config::Config::from_text(path, text, |_| None) {
        let msg = e.to_string();
        assert!(
            msg.contains("restock.yaml"),
            "config error names no file: {msg}"
        );
    }
}
