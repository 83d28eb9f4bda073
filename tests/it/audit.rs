//! Regression tests for the audit's defects, each through the real binary
//! or the real daemon: a DAG nested thousands deep, run ownership between a
//! daemon and `restock run`, rerunning a date the daemon ran, secrets and
//! file modes, injected outputs, the command kind's streams, `cwd:` with
//! outputs, concurrent runs and first opens of the state database, and
//! `--task` with a dependency between the selected tasks.

use crate::common;

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

fn attempts_of(p: &Project, task: &str) -> Vec<Vec<String>> {
    p.query(&format!(
        "SELECT try_number, state, IFNULL(error, '') FROM task_attempts WHERE task_id = '{task}' ORDER BY try_number"
    ))
}

fn wait_running(p: &Project, task: &str) {
    let found = wait_for(Duration::from_secs(20), || {
        // The file appears before its tables: wait for the schema too.
        let created = "SELECT 1 FROM sqlite_master WHERE name = 'task_attempts'";
        if !p.state().exists() || p.query(created).is_empty() {
            return None;
        }
        let rows = p.query(&format!(
            "SELECT 1 FROM task_attempts WHERE task_id = '{task}' AND state = 'running'"
        ));
        (!rows.is_empty()).then_some(())
    });
    assert!(found.is_some(), "task `{task}` never started");
}

// Defect 2: the daemon treated every unfinished run as orphaned, so it ran
// try 2 of a task a `restock run` beside it was still running.
#[test]
fn a_daemon_leaves_a_run_another_process_executes_and_adopts_it_once_that_dies() {
    let p = Project::new();
    p.write_dag(
        "own.yaml",
        "id: own\ntasks:\n  - id: slow\n    kind: command\n    command: [\"sh\", \"-c\", \"sleep 4\"]\n",
    );
    let mut cli = p
        .restock()
        .args(["run", "own", "--date", "2026-11-27"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restock run");
    wait_running(&p, "slow");
    let d = Daemon::start(&p, "200ms");
    d.wait_log("run is executed by another process; leaving it", 20);
    let st = cli.wait().expect("wait run");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        attempts_of(&p, "slow"),
        [["1", "succeeded", ""]],
        "{}",
        d.log()
    );
    assert!(!d.log().contains("resuming run"), "{}", d.log());

    // A `restock run` that dies mid-run: the daemon adopts its run.
    p.write_dag(
        "dies.yaml",
        "id: dies\ntasks:\n  - id: t\n    kind: command\n    command: [\"sh\", \"-c\", \"if [ $RESTOCK_TRY_NUMBER = 1 ]; then exec sleep 30; fi\"]\n",
    );
    d.wait_log("DAG loaded dag=dies", 20);
    let mut cli = p
        .restock()
        .args(["run", "dies", "--date", "2026-11-27"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restock run");
    wait_running(&p, "t");
    cli.kill().expect("kill");
    let _ = cli.wait();
    let done = wait_for(Duration::from_secs(30), || {
        let a = attempts_of(&p, "t");
        (a.len() == 2 && a[1][1] == "succeeded").then_some(a)
    });
    let a = done.unwrap_or_else(|| panic!("not adopted: {:?}\n{}", attempts_of(&p, "t"), d.log()));
    assert_eq!(a[0], ["1", "failed", "process died"]);
}

// Defect 3: catchup stored `logical_date` with the milliseconds of the
// moment it was computed, so the date could not be run again.
#[test]
fn a_date_the_daemon_ran_can_be_run_again() {
    let p = Project::new();
    p.write_dag(
        "daily.yaml",
        "id: daily\nschedule:\n  cron: \"0 0 * * *\"\n  catchup: last\ntasks:\n  - id: a\n    kind: empty\n",
    );
    let d = Daemon::start(&p, "200ms");
    let run = wait_for(Duration::from_secs(30), || {
        if !p.state().exists() {
            return None;
        }
        p.query("SELECT ds, logical_date FROM dag_runs WHERE state = 'succeeded'")
            .into_iter()
            .next()
    })
    .unwrap_or_else(|| panic!("no run:\n{}", d.log()));
    drop(d);
    assert!(run[1].ends_with(":00.000Z"), "{run:?}");
    let o = p
        .restock()
        .args(["run", "daily", "--date", &run[0]])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    let o = p
        .restock()
        .args(["run", "daily", "--date", &run[0], "--force"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let gens = p.query("SELECT generation, state FROM dag_runs ORDER BY generation");
    assert_eq!(gens, [["1", "succeeded"], ["2", "succeeded"]]);
}

// Defect 3 (existing files): rows stored with sub-second boundaries by an
// older version are repaired by the migration.
#[test]
fn the_migration_repairs_sub_second_boundaries() {
    let p = Project::new();
    p.write_dag(
        "daily.yaml",
        "id: daily\nschedule:\n  cron: \"0 1 * * *\"\ntasks:\n  - id: a\n    kind: empty\n",
    );
    std::fs::create_dir_all(p.state().parent().expect("dir")).expect("mkdir");
    {
        let c = rusqlite::Connection::open(p.state()).expect("open");
        c.execute_batch(
            "CREATE TABLE dag_runs (run_id TEXT PRIMARY KEY, dag_id TEXT NOT NULL, logical_date TEXT NOT NULL,
               ds TEXT NOT NULL, data_interval_start TEXT NOT NULL, data_interval_end TEXT NOT NULL,
               run_type TEXT NOT NULL, state TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 1,
               created_at TEXT NOT NULL, started_at TEXT, ended_at TEXT, UNIQUE (dag_id, logical_date, generation));
             CREATE INDEX dag_runs_by_state ON dag_runs (state);
             CREATE TABLE task_instances (run_id TEXT NOT NULL REFERENCES dag_runs (run_id) ON DELETE CASCADE,
               task_id TEXT NOT NULL, state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0, outputs TEXT,
               error TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (run_id, task_id));
             CREATE TABLE task_attempts (run_id TEXT NOT NULL REFERENCES dag_runs (run_id) ON DELETE CASCADE,
               task_id TEXT NOT NULL, try_number INTEGER NOT NULL, state TEXT NOT NULL, started_at TEXT,
               ended_at TEXT, error TEXT, outputs TEXT, log_path TEXT, PRIMARY KEY (run_id, task_id, try_number));
             CREATE TABLE sent_mail (dag_id TEXT NOT NULL, ds TEXT NOT NULL, message_id TEXT NOT NULL,
               sent_at TEXT NOT NULL, transport TEXT NOT NULL, recipients TEXT NOT NULL,
               forced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (dag_id, ds, message_id));
             INSERT INTO dag_runs VALUES ('daily.20261130T010000Z', 'daily', '2026-11-30T01:00:00.825Z',
               '2026-11-30', '2026-11-30T01:00:00.825Z', '2026-12-01T01:00:00.000Z', 'catchup', 'succeeded', 1,
               '2026-12-01T01:00:01.000Z', '2026-12-01T01:00:01.000Z', '2026-12-01T01:00:03.500Z');
             PRAGMA user_version = 2;",
        )
        .expect("old schema");
    }
    let o = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-30"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("already exists (daily.20261130T010000Z, succeeded)"),
        "{}",
        text(&o)
    );
    let rows = p.query("SELECT logical_date, data_interval_start, ran_ms FROM dag_runs");
    assert_eq!(
        rows,
        [[
            "2026-11-30T01:00:00.000Z",
            "2026-11-30T01:00:00.000Z",
            "2500"
        ]]
    );
    let o = p
        .restock()
        .args(["run", "daily", "--date", "2026-11-30", "--force"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

// Defect 4: the child inherited restock's whole environment, secrets
// included, and printed them into a world-readable log.
#[test]
fn a_task_sees_no_secrets_and_its_files_are_private() {
    let p = Project::new();
    p.write_dag(
        "envs.yaml",
        "id: envs\ntasks:\n  - id: show\n    kind: command\n    command: [\"sh\", \"-c\", \"env; echo token=$MY_API_TOKEN; echo region=$REGION\"]\n    pass_env: [MY_API_TOKEN]\n    env: { REGION: eu }\n",
    );
    let o = p
        .restock()
        .args(["run", "envs", "--date", "2026-11-27"])
        .env("RESTOCK_SMTP_PASSWORD", "smtp-pass-9f3k2")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-77xq")
        .env("MY_API_TOKEN", "tok-allowed-1234")
        .env("UNLISTED_SETTING", "plain-value")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let log_path = p
        .path()
        .join(&p.query("SELECT log_path FROM task_attempts")[0][0]);
    let log = std::fs::read_to_string(&log_path).expect("log");
    for secret in ["smtp-pass-9f3k2", "aws-secret-77xq", "tok-allowed-1234"] {
        assert!(!log.contains(secret), "{secret} in log:\n{log}");
        assert!(!text(&o).contains(secret), "{secret} on the terminal");
    }
    assert!(!log.contains("RESTOCK_SMTP_PASSWORD"), "{log}");
    assert!(!log.contains("AWS_SECRET_ACCESS_KEY"), "{log}");
    assert!(!log.contains("UNLISTED_SETTING"), "{log}");
    // Passed on request, masked in the log.
    assert!(log.contains("token=***"), "{log}");
    assert!(log.contains("region=eu"), "{log}");
    assert!(log.contains("PATH="), "{log}");
    assert!(
        log.contains("RESTOCK_RUN_ID=envs.20261127T000000Z"),
        "{log}"
    );

    assert_eq!(mode(&p.state()), 0o600);
    assert_eq!(mode(p.state().parent().expect("dir")), 0o700);
    assert_eq!(mode(&log_path), 0o600);
    assert_eq!(mode(&p.path().join(".restock/logs")), 0o700);
    assert_eq!(mode(&p.path().join(".restock/state.db.locks")), 0o700);
    let wal = p.path().join(".restock/state.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
}

// Defect 5: outputs were pasted into SQL and shell unescaped.
#[test]
fn upstream_outputs_cannot_rewrite_sql_or_shell() {
    let p = Project::new();
    std::fs::create_dir_all(p.path().join("sql")).expect("sql dir");
    std::fs::write(
        p.path().join("sql/raw.sql"),
        "SELECT name FROM (VALUES ('a'), ('b')) t(name)\nWHERE name = '{{ tasks.up.outputs.v }}'\n",
    )
    .expect("sql");
    std::fs::write(
        p.path().join("sql/quoted.sql"),
        "SELECT name FROM (VALUES ('a'), ('b')) t(name)\nWHERE name = {{ tasks.up.outputs.v | sql_literal }}\n",
    )
    .expect("sql");
    std::fs::write(p.path().join("up.json"), r#"{"v": "NOPE' OR '1'='1"}"#).expect("json");
    let dag = |sql: &str| {
        format!(
            "id: inj\ntasks:\n  - id: up\n    kind: command\n    command: [cat, up.json]\n  - id: q\n    kind: sql\n    depends_on: [up]\n    sql: {sql}\n    output: {{ table: out/q }}\n"
        )
    };
    let f = p.write_dag("inj.yaml", &dag("sql/raw.sql"));
    let o = p
        .restock()
        .args(["validate", f.to_str().expect("utf-8")])
        .output()
        .expect("validate");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("sql/raw.sql:2: `{{ tasks.up.outputs.v }}` inserts an upstream output into SQL as raw text; quote it with `| sql_literal`"),
        "{}",
        text(&o)
    );
    p.write_dag("inj.yaml", &dag("sql/quoted.sql"));
    let o = p
        .restock()
        .args(["run", "inj", "--date", "2026-11-27"])
        .env("RESTOCK_LAKE", p.path().join("lake"))
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let out = p.query("SELECT outputs FROM task_instances WHERE task_id = 'up'");
    assert!(out[0][0].contains("NOPE' OR '1'='1"), "{out:?}");
    let rows =
        p.query("SELECT json_extract(outputs, '$.rows') FROM task_instances WHERE task_id = 'q'");
    assert_eq!(rows, [["0"]], "the injected condition matched rows");

    // Shell: a string command with an output warns; shell_word quotes it.
    std::fs::write(p.path().join("sh.json"), r#"{"v": "$(touch pwned)"}"#).expect("json");
    let shell = "id: sh\ntasks:\n  - id: up\n    kind: command\n    command: [cat, sh.json]\n  - id: use\n    kind: command\n    depends_on: [up]\n    command: \"echo {{ tasks.up.outputs.v | shell_word }} > seen.txt\"\n  - id: raw\n    kind: command\n    depends_on: [up]\n    command: \"echo {{ tasks.up.outputs.v }}\"\n    when: \"false\"\n";
    let f = p.write_dag("sh.yaml", shell);
    let o = p
        .restock()
        .args(["validate", f.to_str().expect("utf-8")])
        .output()
        .expect("validate");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("tasks[2].command: warning: a string `command` runs with `sh -c`"),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("tasks[1].command: warning"),
        "{}",
        text(&o)
    );
    let o = p
        .restock()
        .args(["run", "sh", "--date", "2026-11-27"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !p.path().join("pwned").exists(),
        "the output ran as shell code"
    );
    let seen = std::fs::read_to_string(p.path().join("seen.txt")).expect("seen");
    assert_eq!(seen, "$(touch pwned)\n");
}

fn one_task(p: &Project, id: &str, body: &str) {
    p.write_dag(
        &format!("{id}.yaml"),
        &format!("id: {id}\ntasks:\n  - id: t\n    kind: command\n{body}"),
    );
}

fn run_date(p: &Project, dag: &str) -> Output {
    p.restock()
        .args(["run", dag, "--date", "2026-11-27"])
        .output()
        .expect("run")
}

fn gone(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
}

// Defect 6: one invalid UTF-8 line stopped the reading (and the child died
// of SIGPIPE); a background grandchild held the attempt past its timeout
// and survived; logs and outputs had no bound.
#[test]
fn the_command_kind_reads_bytes_kills_background_children_and_caps_sizes() {
    let p = Project::new();
    one_task(
        &p,
        "bytes",
        "    command: [\"sh\", \"-c\", \"printf 'a\\\\377b\\\\n'; seq 1 20000; echo '{\\\"ok\\\": 1}'\"]\n",
    );
    let o = run_date(&p, "bytes");
    assert!(o.status.success(), "{}", text(&o));
    let out = p.query("SELECT outputs FROM task_instances WHERE run_id LIKE 'bytes.%'");
    assert_eq!(out[0][0], r#"{"ok":1}"#);

    // The command exits; its background child keeps stdout open.
    one_task(
        &p,
        "bg",
        "    command: \"sleep 60 & echo $! > bg.pid; echo started\"\n    timeout: 20s\n",
    );
    let t0 = std::time::Instant::now();
    let o = run_date(&p, "bg");
    assert!(o.status.success(), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let pid: i32 = std::fs::read_to_string(p.path().join("bg.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(wait_for(Duration::from_secs(5), || gone(pid).then_some(())).is_some());

    // A timeout with a background child holding stdout.
    one_task(
        &p,
        "slowbg",
        "    command: \"sleep 60 & echo $! > slowbg.pid; sleep 60\"\n    timeout: 1s\n",
    );
    let t0 = std::time::Instant::now();
    let o = run_date(&p, "slowbg");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(text(&o).contains("timed out after 1s"), "{}", text(&o));
    let pid: i32 = std::fs::read_to_string(p.path().join("slowbg.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(wait_for(Duration::from_secs(5), || gone(pid).then_some(())).is_some());

    // A 100 MB line: capped log, clear error.
    one_task(
        &p,
        "huge",
        "    command: [\"sh\", \"-c\", \"head -c 100000000 /dev/zero | tr '\\\\000' x; echo\"]\n",
    );
    let o = run_date(&p, "huge");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("wrote more than 64 MiB to stdout and stderr"),
        "{}",
        text(&o)
    );
    let log = p
        .path()
        .join(&p.query("SELECT log_path FROM task_attempts WHERE run_id LIKE 'huge.%'")[0][0]);
    let size = std::fs::metadata(&log).expect("log").len();
    assert!(size < 2 << 20, "log is {size} bytes");

    // A big outputs file.
    one_task(
        &p,
        "bigout",
        "    command: [\"sh\", \"-c\", \"head -c 2000000 /dev/zero | tr '\\\\000' 1 > \\\"$RESTOCK_OUTPUTS\\\"\"]\n",
    );
    let o = run_date(&p, "bigout");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("is 2000000 bytes; outputs are for small values"),
        "{}",
        text(&o)
    );
}

// Defect 7: `$RESTOCK_OUTPUTS` was relative, so a task with `cwd:` wrote
// its outputs somewhere else and they were lost.
#[test]
fn a_task_with_cwd_writes_its_outputs() {
    let p = Project::new();
    std::fs::create_dir_all(p.path().join("sub")).expect("sub");
    one_task(
        &p,
        "cwd",
        "    cwd: sub\n    command: [\"sh\", \"-c\", \"echo '{\\\"n\\\": 5}' > \\\"$RESTOCK_OUTPUTS\\\"\"]\n",
    );
    let o = run_date(&p, "cwd");
    assert!(o.status.success(), "{}", text(&o));
    let out = p.query("SELECT outputs FROM task_instances");
    assert_eq!(out[0][0], r#"{"n":5}"#);
}

// Defect 8: two `restock run` for one date sometimes met a raw `database is
// locked`; first opens raced in the migration.
#[test]
fn concurrent_runs_and_first_opens_of_the_state_database() {
    let p = Project::new();
    one_task(&p, "conc", "    command: [\"sleep\", \"1\"]\n");
    let kids: Vec<Child> = (0..4)
        .map(|_| {
            p.restock()
                .args(["run", "conc", "--date", "2026-11-27"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<Output> = kids
        .into_iter()
        .map(|k| k.wait_with_output().expect("wait"))
        .collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{:#?}", outs.iter().map(text).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| !o.status.success()) {
        let t = text(o);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(
            t.contains("already exists") || t.contains("is being executed by another process"),
            "{t}"
        );
        assert!(!t.contains("database is locked"), "{t}");
    }
    assert_eq!(p.query("SELECT COUNT(*) FROM dag_runs"), [["1"]]);

    // Eight processes open a new database at once.
    let fresh = Project::new();
    let kids: Vec<Child> = (0..8)
        .map(|_| {
            fresh
                .restock()
                .args(["runs"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", text(&o));
    }

    // Another writer holds the lock: a bounded wait and a clear message.
    let c = rusqlite::Connection::open(p.state()).expect("open");
    c.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let o = p
        .restock()
        .args(["run", "conc", "--date", "2026-11-28"])
        .env("RESTOCK_STATE_BUSY_TIMEOUT", "1s")
        .output()
        .expect("run");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("database is locked by another process (waited 1s): .restock/state.db"),
        "{}",
        text(&o)
    );
    drop(c);

    // A file that is not a state database is refused by name.
    let junk = Project::new();
    std::fs::create_dir_all(junk.state().parent().expect("dir")).expect("dir");
    std::fs::write(junk.state(), vec![b'z'; 8192]).expect("junk");
    let o = junk.restock().args(["runs"]).output().expect("runs");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains(".restock/state.db: not a restock state database, or corrupt"),
        "{}",
        text(&o)
    );
}

// Defect 9: `--task A --task B` started B beside its upstream A; the run's
// duration was counted from the original start.
#[test]
fn selected_tasks_keep_their_dependencies_and_the_duration_is_the_time_run() {
    let p = Project::new();
    p.write_dag(
        "sel.yaml",
        "id: sel\ntasks:\n  - id: a\n    kind: command\n    command: [\"sh\", \"-c\", \"sleep 1; if [ -f fail ]; then exit 1; fi; date +%s%N > a.end\"]\n  - id: b\n    kind: command\n    depends_on: [a]\n    command: [\"sh\", \"-c\", \"date +%s%N > b.start\"]\n",
    );
    let o = run_date(&p, "sel");
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_secs(3));
    let o = p
        .restock()
        .args([
            "run",
            "sel",
            "--date",
            "2026-11-27",
            "--task",
            "a",
            "--task",
            "b",
        ])
        .output()
        .expect("rerun");
    assert!(o.status.success(), "{}", text(&o));
    let read = |f: &str| -> u128 {
        std::fs::read_to_string(p.path().join(f))
            .expect(f)
            .trim()
            .parse()
            .expect("ns")
    };
    assert!(read("b.start") >= read("a.end"), "b started before a ended");
    let runs = p.restock().args(["runs", "--json"]).output().expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("json");
    let ran = v[0]["ran_ms"].as_i64().expect("ran_ms");
    assert!((1000..3000).contains(&ran), "ran {ran} ms");
    let table = p.restock().args(["runs"]).output().expect("runs");
    let line = String::from_utf8_lossy(&table.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let secs: f64 = line
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .trim_end_matches('s')
        .parse()
        .expect("secs");
    assert!(secs < 3.0, "{line}");

    // When the selected upstream fails, its selected downstream does not run.
    std::fs::write(p.path().join("fail"), "").expect("fail");
    std::fs::remove_file(p.path().join("b.start")).expect("rm");
    let o = p
        .restock()
        .args([
            "run",
            "sel",
            "--date",
            "2026-11-27",
            "--task",
            "a",
            "--task",
            "b",
        ])
        .output()
        .expect("rerun");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!p.path().join("b.start").exists(), "b ran after a failed");
    let b = p.query("SELECT state FROM task_instances WHERE task_id = 'b'");
    assert_eq!(b, [["upstream_failed"]]);
}

// Defect 10: `sql:` accepted files outside the project root, and the first
// line of such a file showed up in errors.
#[test]
fn sql_files_outside_the_project_root_are_refused() {
    let p = Project::new();
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret.sql");
    std::fs::write(&secret, "top-secret-line-7q\n").expect("write secret");
    let rel = "../../secret.sql".to_string();
    for (name, path) in [
        ("abs", secret.to_str().expect("utf-8").to_string()),
        ("rel", rel),
    ] {
        let file = p.write_dag(
            &format!("{name}.yaml"),
            &format!("id: {name}\ntasks:\n  - id: q\n    kind: sql\n    sql: {path}\n    output: {{ table: out }}\n"),
        );
        let o = p
            .restock()
            .args(["validate", file.to_str().expect("utf-8")])
            .output()
            .expect("validate");
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(t.contains("outside the project root"), "{t}");
        assert!(!t.contains("top-secret-line-7q"), "{t}");
    }
}
