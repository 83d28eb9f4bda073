//! Validation diagnostics: every problem in a DAG file, each with
//! `file:line:column`, the key path and a message.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::locate::PosIndex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Key path such as `tasks[2].depends_on[0]`; empty for the document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics for one file, locating each key path.
#[derive(Debug)]
pub struct Diagnostics {
    file: PathBuf,
    index: PosIndex,
    pub items: Vec<Diagnostic>,
    /// Problems that do not stop the DAG from loading (`warning: …`).
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path, text: &str) -> Self {
        Self {
            file: file.to_path_buf(),
            index: PosIndex::build(text),
            items: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Where the text nests deeper than a DAG may (see
    /// [`super::locate::MAX_DEPTH`]); nothing else may parse such a text.
    pub fn too_deep(&self) -> Option<super::locate::Pos> {
        self.index.too_deep()
    }

    /// Where the key at `path` is written, if it is (not its ancestor).
    pub fn position(&self, path: &str) -> Option<super::locate::Pos> {
        self.index.get(path)
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.index.find(path).unwrap_or_default();
        self.items.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line.max(1),
            column: pos.column.max(1),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// A warning at `path`; its message starts with `warning: `.
    pub fn warning(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.index.find(path).unwrap_or_default();
        self.warnings.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line.max(1),
            column: pos.column.max(1),
            path: path.to_string(),
            message: format!("warning: {}", message.into()),
        });
    }

    /// An error at an exact position (syntax errors, which have no path).
    pub fn error_at(&mut self, line: usize, column: usize, message: impl Into<String>) {
        self.items.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            path: String::new(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Deserialize `value` (found at `path`) into a serde mirror struct,
    /// reporting a failure at the exact key. `extra_keys` are keys handled
    /// elsewhere that an unknown-field suggestion may point to.
    pub fn deserialize<T: DeserializeOwned>(
        &mut self,
        path: &str,
        value: serde_yaml::Value,
        extra_keys: &[&str],
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let sub = e.path().to_string();
                let mut full = path.to_string();
                if sub != "." {
                    full = join_path(&full, &sub);
                }
                let inner = e.into_inner().to_string();
                match unknown_field(&inner, extra_keys) {
                    Some((field, msg)) => {
                        let already = full == field || full.ends_with(&format!(".{field}"));
                        if !already {
                            full = join_path(&full, &field);
                        }
                        self.error(&full, msg);
                    }
                    None => self.error(&full, humanize(&inner)),
                }
                None
            }
        }
    }
}

pub fn join_path(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else if child.starts_with('[') {
        format!("{parent}{child}")
    } else {
        format!("{parent}.{child}")
    }
}

/// Rewrite serde's "unknown field `x`, expected one of `a`, `b`" into a
/// message with a suggestion.
fn unknown_field(msg: &str, extra_keys: &[&str]) -> Option<(String, String)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let field = rest[..end].to_string();
    let mut expected: Vec<String> = rest[end + 1..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    expected.extend(extra_keys.iter().map(|s| s.to_string()));
    Some((field.clone(), unknown_message(&field, &expected)))
}

/// serde's wording with Rust type names replaced by what a YAML author
/// writes (`u32` → "a whole number of 0 or more"), and the untagged-enum
/// fallback (which names a Rust type) replaced by a sentence.
pub fn humanize(msg: &str) -> String {
    if let Some(i) = msg.find("data did not match any variant of untagged enum") {
        return format!("{}has a value of the wrong form", &msg[..i]);
    }
    const TYPES: &[(&str, &str)] = &[
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number of 0 or more"),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        (
            "expected a string",
            "expected a string (quote it if it looks like a number)",
        ),
    ];
    let mut out = msg.to_string();
    for (from, to) in TYPES {
        if let Some(i) = out.find(from) {
            let end = i + from.len();
            let whole = out[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric());
            if whole {
                out.replace_range(i..end, to);
            }
        }
    }
    out
}

/// "unknown field `x`" plus the closest valid name or the list of valid ones.
pub fn unknown_message(field: &str, expected: &[String]) -> String {
    let best = expected
        .iter()
        .map(|e| (strsim::jaro_winkler(field, e), e))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, e)) => format!("unknown field `{field}`, did you mean `{e}`?"),
        None if expected.is_empty() => format!("unknown field `{field}`"),
        None => {
            let mut sorted = expected.to_vec();
            sorted.sort();
            sorted.dedup();
            format!(
                "unknown field `{field}`, expected one of: {}",
                sorted.join(", ")
            )
        }
    }
}
