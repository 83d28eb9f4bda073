//! A full disk, for real: the lake and the state database on a small
//! tmpfs that is filled while restock writes. The previous partition stays
//! intact, the attempt fails saying the disk is full and naming the path,
//! nothing partial is visible, and once space is freed the next run
//! succeeds. Mounting needs root; without it each test prints why it is
//! skipped.

use crate::lake_support;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lake_support::*;

const SMALL: &str =
    "SELECT value AS v, CAST(value AS DOUBLE) / 2 AS r FROM generate_series(1, 10)\n";
/// About 5 MB of incompressible doubles: under the writer's 10 MiB buffer,
/// so the file goes to the store in one put when the writer finishes.
const ONE_PUT: &str = "SELECT value AS v, random() AS r FROM generate_series(1, 400000)\n";
/// Well over the buffer: a multipart upload that fails between parts.
const MULTIPART: &str = "SELECT value AS v, random() AS r FROM generate_series(1, 1500000)\n";

const DAG: &str = r#"
id: full
tasks:
  - id: q
    kind: sql
    sql: sql/q.sql
    retries: 0
    output: { table: curated/q, partition_by: ds }
"#;

const DATE: &str = "2026-11-27";
const FINAL: &str = "curated/q/ds=2026-11-27/part-00000.parquet";

/// A tmpfs of a fixed size, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount one at `dir`, or `None` (with the reason printed) when this
    /// process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        // `/proc/self` belongs to the process's effective user.
        let euid = std::fs::metadata("/proc/self").map(|m| m.uid());
        if euid.ok() != Some(0) {
            eprintln!("SKIPPED: mounting a tmpfs needs root; run the disk-full tests as root");
            return None;
        }
        std::fs::create_dir_all(dir).expect("mount point");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            o.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Fill it with one file until at most `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.dir.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0xA5u8; 64 * 1024];
        while self.free() > leave {
            let n = (self.free() - leave).min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n.max(1)]).is_err() {
                break;
            }
        }
        f.sync_all().ok();
        filler
    }

    fn free(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.dir).expect("statvfs");
        s.blocks_available() as u64 * s.fragment_size() as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn run(project: &Project, lake: &Path, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_restock"))
        .current_dir(project.path())
        .env_remove("RESTOCK_CONFIG")
        .env("RESTOCK_LAKE", lake)
        .env("RESTOCK_STATE", state)
        .args(["run", "full", "--date", DATE, "--force"])
        .output()
        .expect("run restock")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_previous_intact(lake: &Path) {
    assert_eq!(
        local_files(&lake.join("curated")),
        vec!["q/ds=2026-11-27/part-00000.parquet"],
        "only the previous file is visible"
    );
    let read = pyarrow_read(&lake.join(FINAL));
    assert_eq!(read["rows"], 10, "the previous partition is unchanged");
    assert_eq!(read["data"][9], serde_json::json!({"v": 10, "r": 5.0}));
}

/// Fill the lake's disk, run `sql`, and check the failure; then free the
/// space and check that the next run publishes.
fn lake_fills_during(sql: &str) {
    let project = Project::new(&[("q.sql", SMALL)]);
    project.write("jobs/full.yaml", DAG);
    let lake = project.path().join("lake");
    let state = project.path().join(".restock/state.db");
    let Some(disk) = Tmpfs::mount(&lake, "24m") else {
        return;
    };
    let o = run(&project, &lake, &state);
    assert!(o.status.success(), "{}", text(&o));
    assert_previous_intact(&lake);

    project.write("sql/q.sql", sql);
    let filler = disk.fill(1024 * 1024);
    let o = run(&project, &lake, &state);
    let out = text(&o);
    assert!(!o.status.success(), "a write to a full disk fails:\n{out}");
    assert!(!out.contains("panicked"), "{out}");
    let staged = format!("{}/_staging/curated/q/ds={DATE}/", lake.display());
    assert!(out.contains("the disk is full"), "{out}");
    assert!(out.contains(&staged), "names the file: {out}");
    let recorded = project_error(&state);
    assert!(recorded.contains("the disk is full"), "{recorded}");
    assert!(recorded.contains(&staged), "{recorded}");
    assert_previous_intact(&lake);
    assert_eq!(local_files(&lake.join("_staging")), Vec::<String>::new());

    std::fs::remove_file(filler).expect("free space");
    let o = run(&project, &lake, &state);
    assert!(o.status.success(), "{}", text(&o));
    let read = pyarrow_read(&lake.join(FINAL));
    assert!(
        read["rows"].as_u64().expect("rows") > 10,
        "the new partition"
    );
    assert_eq!(local_files(&lake.join("_staging")), Vec::<String>::new());
}

/// The error of the newest failed attempt in the history.
fn project_error(state: &Path) -> String {
    let conn = rusqlite::Connection::open(state).expect("open state");
    conn.query_row(
        "SELECT error FROM task_attempts WHERE state = 'failed' \
         ORDER BY started_at DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .expect("a failed attempt")
}

#[test]
fn lake_disk_full_at_finish() {
    lake_fills_during(ONE_PUT);
}

#[test]
fn lake_disk_full_between_parts() {
    lake_fills_during(MULTIPART);
}

/// The state database's disk fills: opening it (SQLite needs room for the
/// WAL index) and, with the index already there, writing a new run (the
/// WAL must grow). Both fail naming the file; the history stays intact.
#[test]
fn state_database_disk_full() {
    let project = Project::new(&[("q.sql", SMALL)]);
    project.write("jobs/full.yaml", DAG);
    let lake = project.path().join("lake");
    let state_dir = project.path().join("state");
    let state = state_dir.join("state.db");
    let Some(disk) = Tmpfs::mount(&state_dir, "4m") else {
        return;
    };
    let o = run(&project, &lake, &state);
    assert!(o.status.success(), "{}", text(&o));
    let full = format!(
        "the disk is full writing the state database {}",
        state.display()
    );

    // Closed database, full disk: opening fails.
    let filler = disk.fill(0);
    let o = run(&project, &lake, &state);
    let out = text(&o);
    assert!(
        !o.status.success(),
        "a full state disk fails the run:\n{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
    assert!(out.contains(&full), "{out}");
    std::fs::remove_file(filler).expect("free space");
    assert_intact(&state, 1);

    // Open database (its WAL index exists, the WAL is empty): the first
    // write of the run cannot grow the WAL.
    let held = rusqlite::Connection::open(&state).expect("open state");
    held.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let filler = disk.fill(0);
    let o = run(&project, &lake, &state);
    let out = text(&o);
    assert!(
        !o.status.success(),
        "a full state disk fails the run:\n{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
    assert!(out.contains(&full), "{out}");
    std::fs::remove_file(filler).expect("free space");
    drop(held);
    assert_intact(&state, 1);

    let o = run(&project, &lake, &state);
    assert!(o.status.success(), "{}", text(&o));
    assert_intact(&state, 2);
}

/// The history passes SQLite's integrity check, holds `runs` successful
/// runs and no attempt left `running`.
fn assert_intact(state: &Path, runs: i64) {
    let conn = rusqlite::Connection::open(state).expect("open state");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok", "no corruption");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT count(*) FROM dag_runs WHERE state = 'succeeded'"),
        runs
    );
    assert_eq!(
        count("SELECT count(*) FROM task_attempts WHERE state = 'running'"),
        0,
        "no attempt left running"
    );
}
