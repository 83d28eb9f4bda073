//! The daemon's set of loaded DAGs and hot reload.
//!
//! Files are watched by polling their size and modification time (cheap
//! for a jobs folder, and works on every filesystem, including network
//! mounts where inotify does not). A file that no longer compiles is
//! reported and its previous valid version keeps running; a deleted file
//! stops being scheduled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::dag::{self, Dag};
use crate::tasks::Registry;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

struct Entry {
    stamp: Stamp,
    /// The last version of this file that compiled.
    dag: Option<Arc<Dag>>,
    /// Why the file as it is now does not compile (`file:line:col: …`).
    errors: Vec<String>,
}

/// One DAG file as the daemon sees it: the version it runs (if any) and
/// the errors of the file's current text (the web UI shows both).
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub file: PathBuf,
    pub dag: Option<Arc<Dag>>,
    pub errors: Vec<String>,
}

pub struct DagSet {
    jobs: PathBuf,
    root: PathBuf,
    files: HashMap<PathBuf, Entry>,
}

impl DagSet {
    pub fn new(jobs: PathBuf, root: PathBuf) -> Self {
        Self {
            jobs,
            root,
            files: HashMap::new(),
        }
    }

    /// Recompile new and changed files (every file when `force`). Returns
    /// whether anything changed.
    pub fn reload(&mut self, registry: &Registry, force: bool) -> bool {
        let files = match dag::dag_files(&self.jobs) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(jobs = %self.jobs.display(), "cannot list DAG files: {e}");
                return false;
            }
        };
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|p, e| {
            let keep = files.contains(p);
            if !keep {
                if let Some(d) = &e.dag {
                    tracing::info!(dag = %d.id, file = %p.display(), "DAG file removed; no longer scheduled");
                }
            }
            keep
        });
        changed |= self.files.len() != before;
        for file in files {
            let Some(st) = stamp(&file) else { continue };
            let unchanged = self.files.get(&file).is_some_and(|e| e.stamp == st);
            if unchanged && !force {
                continue;
            }
            match dag::compile_file(&file, registry, &self.root) {
                Ok(d) => {
                    let clash = self
                        .files
                        .iter()
                        .any(|(p, e)| p != &file && e.dag.as_ref().is_some_and(|o| o.id == d.id));
                    if clash {
                        tracing::error!(dag = %d.id, file = %file.display(), "DAG id is already defined by another file; ignoring this one");
                        let errors = vec![format!(
                            "{}: DAG id `{}` is already defined by another file",
                            file.display(),
                            d.id
                        )];
                        self.files.insert(
                            file,
                            Entry {
                                stamp: st,
                                dag: None,
                                errors,
                            },
                        );
                        continue;
                    }
                    if !unchanged {
                        tracing::info!(dag = %d.id, file = %file.display(), tasks = d.tasks.len(), "DAG loaded");
                        for w in &d.warnings {
                            tracing::warn!(dag = %d.id, "{w}");
                        }
                    }
                    self.files.insert(
                        file,
                        Entry {
                            stamp: st,
                            dag: Some(Arc::new(d)),
                            errors: Vec::new(),
                        },
                    );
                    changed = true;
                }
                Err(diags) => {
                    for d in &diags {
                        tracing::error!(file = %file.display(), "{d}");
                    }
                    let previous = self.files.remove(&file).and_then(|e| e.dag);
                    if let Some(p) = &previous {
                        tracing::warn!(dag = %p.id, file = %file.display(), "DAG file is invalid; keeping the previous valid version");
                    }
                    self.files.insert(
                        file,
                        Entry {
                            stamp: st,
                            dag: previous,
                            errors: diags.iter().map(|d| d.to_string()).collect(),
                        },
                    );
                }
            }
        }
        changed
    }

    pub fn get(&self, id: &str) -> Option<Arc<Dag>> {
        self.files
            .values()
            .filter_map(|e| e.dag.as_ref())
            .find(|d| d.id == id)
            .cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = Arc<Dag>> + '_ {
        self.files.values().filter_map(|e| e.dag.clone())
    }

    /// Every file with its running version and current errors, sorted by
    /// file name.
    pub fn catalog(&self) -> Vec<CatalogEntry> {
        let mut out: Vec<CatalogEntry> = self
            .files
            .iter()
            .map(|(file, e)| CatalogEntry {
                file: file.clone(),
                dag: e.dag.clone(),
                errors: e.errors.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.file.cmp(&b.file));
        out
    }

    pub fn len(&self) -> usize {
        self.files.values().filter(|e| e.dag.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
