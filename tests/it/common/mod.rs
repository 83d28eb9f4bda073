//! Helpers shared by the integration tests: the real `restock` binary and
//! scratch project folders.
#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The `restock` binary built for these tests, run from the repo root.
pub fn restock() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_restock"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("RESTOCK_CONFIG");
    c
}

/// A scratch project: its own jobs folder, state file and logs.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("jobs")).expect("jobs dir");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.path().join(".restock/state.db")
    }

    pub fn write_dag(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path().join("jobs").join(name);
        std::fs::write(&p, yaml).expect("write dag");
        p
    }

    /// `restock` with this project as working directory.
    pub fn restock(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_restock"));
        c.current_dir(self.path());
        c.env_remove("RESTOCK_CONFIG");
        c.env("RESTOCK_LOG", "info");
        // Daemons in parallel tests each get a free port for their web
        // server (they log `web server listening listen=…`).
        c.env("RESTOCK_LISTEN", "127.0.0.1:0");
        c.env_remove("RESTOCK_API_TOKEN");
        c
    }

    /// Query the state database with SQLite directly.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let conn = rusqlite::Connection::open(self.state()).expect("open state");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        let mut stmt = conn.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        let v: rusqlite::types::Value = r.get(i)?;
                        Ok(match v {
                            rusqlite::types::Value::Null => "NULL".to_string(),
                            rusqlite::types::Value::Integer(i) => i.to_string(),
                            rusqlite::types::Value::Real(f) => f.to_string(),
                            rusqlite::types::Value::Text(t) => t,
                            rusqlite::types::Value::Blob(_) => "<blob>".to_string(),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .expect("query");
        rows.collect::<rusqlite::Result<Vec<_>>>().expect("rows")
    }
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
