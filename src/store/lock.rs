//! Run ownership: one process at a time executes the run of a (DAG,
//! logical date).
//!
//! The owner holds an exclusive `flock` on a lock file beside the state
//! database (`state.db.locks/<dag>.<stamp>.lock`) for as long as it
//! executes the run. The kernel drops the lock when the owner exits,
//! however it exits (SIGKILL included), so "is the owner gone?" has an
//! exact answer without heartbeats or clocks: the lock can be taken. A
//! recovering daemon therefore resumes only runs whose lock it can take,
//! and a `restock run` beside a daemon never shares a run with it. The
//! lock is per (DAG, logical date), not per generation, so a forced rerun
//! cannot start while the previous generation of that date is still
//! executing. The owner's pid is written into the file for the message.
//!
//! `flock` is per open file description: two handles in one process
//! exclude each other too, so a daemon never adopts its own runs. An
//! in-memory store (tests, benchmarks) has no other process to exclude and
//! its locks always succeed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{StoreError, make_run_id, ts};

/// Held for as long as a process executes a run; dropping it releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: Option<Flock<File>>,
}

/// The folder of run locks beside the database at `db`.
pub(super) fn locks_dir(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".locks");
    db.with_file_name(name)
}

/// Take the run lock of (`dag_id`, `start`) without waiting.
pub(super) fn lock_run(
    dir: Option<&Path>,
    dag_id: &str,
    start: DateTime<Utc>,
) -> Result<RunLock, StoreError> {
    let Some(dir) = dir else {
        return Ok(RunLock { _file: None });
    };
    let io = |path: &Path, source: std::io::Error| StoreError::Lock {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    let path = dir.join(format!("{}.lock", make_run_id(dag_id, start, 1)));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut held) => {
            let pid = std::process::id().to_string();
            held.set_len(0).map_err(|e| io(&path, e))?;
            held.rewind().map_err(|e| io(&path, e))?;
            held.write_all(pid.as_bytes()).map_err(|e| io(&path, e))?;
            Ok(RunLock { _file: Some(held) })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            Err(StoreError::RunBusy {
                dag_id: dag_id.to_string(),
                logical_date: ts(start),
                owner: owner.trim().to_string(),
            })
        }
        Err((_, errno)) => Err(io(&path, std::io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let locks = locks_dir(&dir.path().join("state.db"));
        assert!(locks.ends_with("state.db.locks"));
        let start: DateTime<Utc> = "2026-11-27T02:00:00Z".parse().expect("ts");
        let first = lock_run(Some(&locks), "d", start).expect("first");
        match lock_run(Some(&locks), "d", start) {
            Err(StoreError::RunBusy { owner, .. }) => {
                assert_eq!(owner, std::process::id().to_string())
            }
            other => panic!("want RunBusy, got {other:?}"),
        }
        // Another date is another lock.
        let other: DateTime<Utc> = "2026-11-28T02:00:00Z".parse().expect("ts");
        lock_run(Some(&locks), "d", other).expect("other date");
        drop(first);
        lock_run(Some(&locks), "d", start).expect("after release");
    }
}
