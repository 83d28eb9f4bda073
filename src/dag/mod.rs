//! DAG files: the serde mirror ([`raw`]), the compile step ([`compile`])
//! into validated types ([`model`]), with diagnostics located by
//! [`locate`], graph checks ([`graph`]) and whole-DAG semantic checks
//! ([`checks`]: limits, references to upstream tasks).

pub mod checks;
pub mod compile;
pub mod diag;
pub mod graph;
pub mod locate;
pub mod model;
pub mod raw;

use std::path::{Path, PathBuf};

pub use compile::{compile_file, compile_str, summary};
pub use diag::Diagnostic;
pub use model::{Dag, Task, TriggerRule};

use crate::tasks::Registry;

/// The YAML files a path names: the file itself, or `*.yaml`/`*.yml` in a
/// directory (sorted, not recursive).
pub fn dag_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        let yaml = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Compile every DAG under `paths`; also reports DAG ids defined twice.
pub fn load_all(
    paths: &[PathBuf],
    registry: &Registry,
    root: &Path,
) -> (Vec<Dag>, Vec<Diagnostic>) {
    let mut dags: Vec<Dag> = Vec::new();
    let mut diags = Vec::new();
    for path in paths {
        let files = match dag_files(path) {
            Ok(f) => f,
            Err(e) => {
                diags.push(Diagnostic {
                    file: path.clone(),
                    line: 1,
                    column: 1,
                    path: String::new(),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        for file in files {
            match compile_file(&file, registry, root) {
                Ok(dag) => {
                    if let Some(other) = dags.iter().find(|d| d.id == dag.id) {
                        diags.push(Diagnostic {
                            file: file.clone(),
                            line: 1,
                            column: 1,
                            path: "id".into(),
                            message: format!(
                                "DAG id `{}` is already defined in {}",
                                dag.id,
                                other.file.display()
                            ),
                        });
                    } else {
                        dags.push(dag);
                    }
                }
                Err(mut e) => diags.append(&mut e),
            }
        }
    }
    (dags, diags)
}
