//! Regression tests for the audit's defects, each through the real binary
//! or the real daemon: a DAG nested thousands deep, run ownership between a
//! daemon and `restock run`, rerunning a date the daemon ran, secrets and
//! file modes, injected outputs, the command kind's streams, `cwd:` with
//! outputs, concurrent runs and first opens of the state database, and
//! `--task` with a dependency between the selected tasks.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::{Project, wait_for};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(p: &Project, reload: &str) -> Daemon {
        let n = std::fs::read_dir(p.path()).map(|d| d.count()).unwrap_or(0);
        let log = p.path().join(format!("daemon-{n}.log"));
        let child = p
            .restock()
            .arg("daemon")
            .env("RESTOCK_SHUTDOWN_GRACE", "5s")
            .env("RESTOCK_RELOAD_INTERVAL", reload)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, secs: u64) {
        let found = wait_for(Duration::from_secs(secs), || {
            self.log().contains(needle).then_some(())
        });
        assert!(
            found.is_some(),
            "`{needle}` not in daemon log:\n{}",
            self.log()
        );
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nested_dag(id: &str, depth: usize) -> String {
    format!(
        "id: {id}\ndescription:\n  {}x\ntasks:\n  - id: a\n    kind: empty\n",
        "- ".repeat(depth)
    )
}

// Defect 1: yaml-rust2's recursive loader overflowed the stack on a 6 KB
// file nested 3,000 deep, before serde_yaml's depth limit could refuse it.
#[test]
fn deeply_nested_dag_is_refused_by_validate_and_a_running_daemon() {
    let p = Project::new();
    let deep = p.write_dag("deep.yaml", &nested_dag("deep", 3_000));
    let o = p
        .restock()
        .args(["validate", deep.to_str().expect("utf-8")])
        .output()
        .expect("validate");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("deep.yaml:3:129: YAML nested deeper than 64 levels"),
        "{}",
        text(&o)
    );

    // A daemon that loaded a good version keeps it when the file turns deep.
    std::fs::remove_file(&deep).expect("rm");
    let file = p.write_dag("hot.yaml", "id: hot\ntasks:\n  - id: a\n    kind: empty\n");
    let mut d = Daemon::start(&p, "200ms");
    d.wait_log("DAG loaded dag=hot", 20);
    std::fs::write(&file, nested_dag("hot", 3_000)).expect("edit");
    d.wait_log("keeping the previous valid version", 20);
    assert!(
        d.log().contains("YAML nested deeper than 64 levels"),
        "{}",
        d.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.alive(), "daemon died:\n{}", d.log());
}
