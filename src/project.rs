//! The example project, embedded in the binary: the main job and the
//! example DAG (`jobs/`), their SQL (`sql/`) and a `restock.yaml` for a
//! project folder. `restock init [DIR]` writes it out and `restock demo`
//! does so in a folder that has no project, so the binary (or the Docker
//! image) runs the main job anywhere, without a clone of the repository.
//!
//! Owns what the example consists of and writing it without clobbering
//! anyone's edits; not what the files mean (that is the DAG compiler's).

use std::path::{Path, PathBuf};

/// An example `restock.yaml` for a project folder (every key, with the
/// environment variable that overrides it, is in `deploy/restock.yaml`).
pub const CONFIG: &str = "\
# restock settings for this folder. Every key can be overridden by an
# environment variable (in parentheses); secrets come from the
# environment only.
jobs: jobs                # (RESTOCK_JOBS) DAG files
lake: ./lake              # (RESTOCK_LAKE) folder, s3://bucket/prefix or memory://
state: .restock/state.db  # (RESTOCK_STATE) run history (SQLite)
logs: .restock/logs       # (RESTOCK_LOGS) one file per task attempt
outbox: outbox            # (RESTOCK_OUTBOX) mail written here when no SMTP server is set
";

/// Every file of the example project: (path relative to the project
/// folder, contents).
pub const FILES: &[(&str, &str)] = &[
    ("restock.yaml", CONFIG),
    (
        "jobs/nightly_inventory.yaml",
        include_str!("../jobs/nightly_inventory.yaml"),
    ),
    ("jobs/example.yaml", include_str!("../jobs/example.yaml")),
    ("sql/README.md", include_str!("../sql/README.md")),
    (
        "sql/daily_sales.sql",
        include_str!("../sql/daily_sales.sql"),
    ),
    (
        "sql/inventory_position.sql",
        include_str!("../sql/inventory_position.sql"),
    ),
    (
        "sql/product_master.sql",
        include_str!("../sql/product_master.sql"),
    ),
    (
        "sql/weekly_category_units.sql",
        include_str!("../sql/weekly_category_units.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{} already exist(s) with other contents: {}; nothing was written (use --force to overwrite)",
        .0.len(),
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    WouldOverwrite(Vec<PathBuf>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What [`write`] did to each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    /// Already there with the same contents.
    Unchanged,
    Overwritten,
}

/// Write the example project into `dir`. A file that exists with other
/// contents is only replaced with `force`; without it, nothing at all is
/// written and every such file is named. Each file is written to a
/// temporary name and renamed, so none is ever seen half-written.
pub fn write(dir: &Path, force: bool) -> Result<Vec<(PathBuf, Written)>, InitError> {
    let mut plan = Vec::with_capacity(FILES.len());
    let mut conflicts = Vec::new();
    for (rel, text) in FILES {
        let path = dir.join(rel);
        let state = match std::fs::read(&path) {
            Ok(old) if old == text.as_bytes() => Written::Unchanged,
            Ok(_) => {
                conflicts.push(path.clone());
                Written::Overwritten
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Written::Created,
            Err(source) => return Err(InitError::Io { path, source }),
        };
        plan.push((path, *text, state));
    }
    if !force && !conflicts.is_empty() {
        return Err(InitError::WouldOverwrite(conflicts));
    }
    let mut done = Vec::with_capacity(plan.len());
    for (path, text, state) in plan {
        if state != Written::Unchanged {
            write_atomic(&path, text)?;
        }
        done.push((path, state));
    }
    Ok(done)
}

fn write_atomic(path: &Path, text: &str) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Whether `jobs` (a project's jobs folder) holds any DAG file.
pub fn has_project(jobs: &Path) -> bool {
    crate::dag::dag_files(jobs).is_ok_and(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the repository's example project is embedded: a DAG
    /// or SQL file added to `jobs/` or `sql/` must be added to [`FILES`].
    #[test]
    fn every_example_file_is_embedded_and_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for folder in ["jobs", "sql"] {
            for entry in std::fs::read_dir(root.join(folder)).expect("folder") {
                let path = entry.expect("entry").path();
                let rel = format!(
                    "{folder}/{}",
                    path.file_name().and_then(|n| n.to_str()).expect("name")
                );
                let embedded = FILES.iter().find(|(r, _)| *r == rel);
                let Some((_, text)) = embedded else {
                    panic!("{rel} is not embedded in src/project.rs");
                };
                let on_disk = std::fs::read_to_string(&path).expect("read");
                assert_eq!(*text, on_disk, "{rel}");
            }
        }
    }

    #[test]
    fn init_refuses_to_overwrite_edits_unless_forced() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = write(dir.path(), false).expect("init");
        assert!(first.iter().all(|(_, w)| *w == Written::Created));
        let again = write(dir.path(), false).expect("idempotent");
        assert!(again.iter().all(|(_, w)| *w == Written::Unchanged));

        let edited = dir.path().join("jobs/example.yaml");
        std::fs::write(&edited, "id: mine\n").expect("edit");
        std::fs::remove_file(dir.path().join("sql/README.md")).expect("rm");
        match write(dir.path(), false) {
            Err(InitError::WouldOverwrite(paths)) => {
                assert_eq!(paths, std::slice::from_ref(&edited))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(&edited).expect("read"),
            "id: mine\n"
        );
        assert!(
            !dir.path().join("sql/README.md").exists(),
            "a refused init writes nothing"
        );

        let forced = write(dir.path(), true).expect("forced");
        assert!(forced.contains(&(edited.clone(), Written::Overwritten)));
        assert_ne!(
            std::fs::read_to_string(&edited).expect("read"),
            "id: mine\n"
        );
        assert!(dir.path().join("sql/README.md").exists());
    }
}
