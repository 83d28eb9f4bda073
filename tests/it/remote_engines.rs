//! Remote executors against real engines, through the real daemon and the
//! real binary: a single-node Slurm cluster and a single-node Ray cluster
//! on loopback, each with one (declared) GPU. Each behaviour is checked on
//! both engines: retries with backoff, a timeout that cancels the job on
//! the engine, SIGTERM of the daemon, a job that never starts hitting
//! `start_timeout`, and SIGKILL of the daemon followed by a restart that
//! adopts the running job (one submission per try).

use crate::remote_support;

use nix::sys::signal::Signal;

use remote_support::{Engine, RemoteProject, daily_dag, wait};

fn attempt_logs(p: &RemoteProject, task: &str) -> String {
    remote_support::walk(&p.path().join(".restock/logs"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(&format!("/{task}/")))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The job ended because we stopped it: the engine says so, or the worker
/// stopped itself on the cancel marker first and reported the interruption.
/// The engine stopped the job on our cancel, or the worker itself ended
/// it on our signal or our deadline (its own timer and the daemon's race;
/// either way the job is gone and the attempt is recorded as timed out).
fn stopped_by_us(engine: Engine, p: &RemoteProject, state: &str) -> bool {
    if engine.is_stopped(state) {
        return true;
    }
    let results = remote_support::walk(&p.path().join("lake/_attempts"));
    engine.is_ended(state)
        && results
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".result.json"))
            .all(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("\"interrupted\"")
                    || std::fs::read_to_string(f)
                        .unwrap_or_default()
                        .contains("\"timed_out\"")
            })
}

fn finished(p: &RemoteProject, secs: u64) -> Option<String> {
    wait(secs, || {
        p.run_state()
            .filter(|s| !matches!(s.as_str(), "running" | "queued"))
    })
}

fn retries_with_backoff(engine: Engine) {
    if !engine.require() {
        return;
    }
    let p = RemoteProject::new(engine, "");
    let dag = format!("retry_{}", std::process::id());
    // Fails twice, then succeeds: the counter lives in the shared folder.
    let counter = p.path().join("count");
    let cmd = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo try $n; [ $n -ge 3 ] && echo '{{\"tries\": '$n'}}' || exit 1",
        c = counter.display()
    );
    p.write_dag(
        "d.yaml",
        &daily_dag(
            &dag,
            "retries: 3, retry_delay: 1s, retry_backoff: exponential, executor: gpu",
            &format!("  - id: flaky\n    kind: command\n    command: [\"sh\", \"-c\", {cmd:?}]\n"),
        ),
    );
    let d = p.start_daemon("5s");
    let state = finished(&p, 120);
    assert_eq!(state.as_deref(), Some("succeeded"), "{}", p.diagnose(&d));
    let atts = p.attempts("flaky");
    let states: Vec<&str> = atts.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(
        states,
        ["failed", "failed", "succeeded"],
        "{}",
        p.diagnose(&d)
    );
    assert!(atts[0].2.contains("exit"), "{atts:?}");
    // One job per try, named by (run, task, try).
    let jobs = engine.jobs(&RemoteProject::prefix(&dag));
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    for t in 1..=3 {
        assert_eq!(
            jobs.iter()
                .filter(|(n, _)| n.contains(&format!("-flaky-{t}-")))
                .count(),
            1,
            "{jobs:?}"
        );
    }
    let outputs = p.query("SELECT outputs FROM task_instances WHERE task_id = 'flaky'");
    assert!(outputs[0][0].contains("\"tries\":3"), "{outputs:?}");
    // The worker's log came back from the lake into the attempt log.
    let logs = attempt_logs(&p, "flaky");
    assert!(logs.contains("try 2") && logs.contains("try 3"), "{logs}");
    assert!(logs.contains("worker on"), "{logs}");
}

fn timeout_cancels_the_job(engine: Engine) {
    if !engine.require() {
        return;
    }
    let p = RemoteProject::new(engine, "");
    let dag = format!("timeout_{}", std::process::id());
    p.write_dag(
        "d.yaml",
        &daily_dag(
            &dag,
            "executor: gpu",
            "  - id: slow\n    kind: command\n    timeout: 4s\n    command: [\"sleep\", \"300\"]\n",
        ),
    );
    let d = p.start_daemon("5s");
    let state = finished(&p, 120);
    assert_eq!(state.as_deref(), Some("failed"), "{}", p.diagnose(&d));
    let atts = p.attempts("slow");
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert!(atts[0].2.contains("timed out after 4s"), "{atts:?}");
    // Recorded only once the engine confirmed the job ended.
    let jobs = engine.jobs(&RemoteProject::prefix(&dag));
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(
        stopped_by_us(engine, &p, &jobs[0].1),
        "{jobs:?}\n{}",
        p.diagnose(&d)
    );
    assert!(
        attempt_logs(&p, "slow").contains("stopped on"),
        "{}",
        p.diagnose(&d)
    );
}

fn sigterm_cancels_the_job(engine: Engine) {
    if !engine.require() {
        return;
    }
    let p = RemoteProject::new(engine, "");
    let dag = format!("term_{}", std::process::id());
    p.write_dag(
        "d.yaml",
        &daily_dag(
            &dag,
            "executor: gpu",
            "  - id: slow\n    kind: command\n    command: [\"sleep\", \"300\"]\n",
        ),
    );
    let mut d = p.start_daemon("1s");
    let prefix = RemoteProject::prefix(&dag);
    let running = wait(60, || {
        engine
            .jobs(&prefix)
            .iter()
            .any(|(_, s)| s == "RUNNING")
            .then_some(())
    });
    assert!(running.is_some(), "{}", p.diagnose(&d));
    d.signal(Signal::SIGTERM);
    d.wait_exit(60);
    let jobs = engine.jobs(&prefix);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(
        stopped_by_us(engine, &p, &jobs[0].1),
        "{jobs:?}\n{}",
        p.diagnose(&d)
    );
    let atts = p.attempts("slow");
    assert_eq!(atts[0].1, "interrupted", "{}", p.diagnose(&d));
}

fn start_timeout_names_what_it_waited_for(engine: Engine) {
    if !engine.require() {
        return;
    }
    let hold = engine.hold_gpu();
    let p = RemoteProject::new(engine, ", start_timeout: 3s, cancel_grace: 3s");
    let dag = format!("pending_{}", std::process::id());
    p.write_dag(
        "d.yaml",
        &daily_dag(
            &dag,
            "executor: gpu",
            "  - id: wants_gpu\n    kind: empty\n",
        ),
    );
    let d = p.start_daemon("5s");
    let state = finished(&p, 120);
    assert_eq!(state.as_deref(), Some("failed"), "{}", p.diagnose(&d));
    let atts = p.attempts("wants_gpu");
    assert_eq!(atts.len(), 1, "{atts:?}");
    let err = &atts[0].2;
    assert!(
        err.contains("executor `gpu`") && err.contains("did not start within 3s"),
        "{err}"
    );
    assert!(err.contains("GPU") || err.contains("gpu:1"), "{err}");
    assert!(
        attempt_logs(&p, "wants_gpu").contains("did not start"),
        "{}",
        p.diagnose(&d)
    );
    // Slurm cancels a pending job at once. Ray cannot stop a job that is
    // still waiting and starts it once the GPU frees up: the cancel marker
    // in the lake makes that late worker stop before running the task.
    drop(hold);
    let prefix = RemoteProject::prefix(&dag);
    let ended = wait(60, || {
        let jobs = engine.jobs(&prefix);
        (!jobs.is_empty() && jobs.iter().all(|(_, s)| engine.is_ended(s))).then_some(jobs)
    });
    assert!(ended.is_some(), "{:?}", engine.jobs(&prefix));
    let results = remote_support::walk(&p.path().join("lake/_attempts"));
    for r in results
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".result.json"))
    {
        let text = std::fs::read_to_string(r).unwrap_or_default();
        assert!(
            text.contains("\"interrupted\"") && text.contains("before it started"),
            "{text}"
        );
    }
}

fn sigkill_restart_adopts_the_job(engine: Engine) {
    if !engine.require() {
        return;
    }
    let p = RemoteProject::new(engine, "");
    let dag = format!("adopt_{}", std::process::id());
    p.write_dag(
        "d.yaml",
        &daily_dag(
            &dag,
            "executor: gpu",
            "  - id: long\n    kind: command\n    command: [\"sh\", \"-c\", \"echo started; sleep 8; echo '{\\\"done\\\": 1}'\"]\n  - id: after\n    kind: empty\n    depends_on: [long]\n",
        ),
    );
    let prefix = RemoteProject::prefix(&dag);
    let mut d = p.start_daemon("5s");
    let running = wait(60, || {
        engine
            .jobs(&prefix)
            .iter()
            .any(|(_, s)| s == "RUNNING")
            .then_some(())
    });
    assert!(running.is_some(), "{}", p.diagnose(&d));
    d.signal(Signal::SIGKILL);
    d.wait_exit(10);
    let d2 = p.start_daemon("5s");
    let state = finished(&p, 120);
    assert_eq!(
        state.as_deref(),
        Some("succeeded"),
        "{}\n{}",
        p.diagnose(&d),
        p.diagnose(&d2)
    );
    let jobs: Vec<_> = engine
        .jobs(&prefix)
        .into_iter()
        .filter(|(n, _)| n.contains("-long-"))
        .collect();
    assert_eq!(jobs.len(), 1, "exactly one submission: {jobs:?}");
    let atts = p.attempts("long");
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0].1, "succeeded", "{atts:?}");
    assert!(d2.log().contains("resuming run"), "{}", d2.log());
    assert!(
        attempt_logs(&p, "long").contains("adopting"),
        "{}",
        p.diagnose(&d2)
    );
}

/// The main job's `daily_sales` and `train` tasks on a small demo lake,
/// `train` on the GPU executor.
fn main_job_train_runs_on_the_gpu_executor(engine: Engine) {
    if !engine.require() {
        return;
    }
    let p = RemoteProject::new(engine, "");
    let repo = env!("CARGO_MANIFEST_DIR");
    let cfg = std::fs::read_to_string(p.path().join("restock.yaml")).expect("config");
    std::fs::write(
        p.path().join("restock.yaml"),
        format!("root: {repo}\n{cfg}"),
    )
    .expect("config");
    let ds = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let demo = p
        .restock()
        .args(["demo", "--no-run", "--end-date", &ds.to_string()])
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let dag = format!("train_{}", std::process::id());
    let main: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{repo}/jobs/nightly_inventory.yaml")).expect("main job"),
    )
    .expect("yaml");
    let mut m = main.as_mapping().expect("mapping").clone();
    m.insert("id".into(), dag.clone().into());
    m.insert(
        "schedule".into(),
        serde_yaml::from_str("{cron: \"0 0 * * *\", timezone: UTC, catchup: last}")
            .expect("schedule"),
    );
    m.insert(
        "defaults".into(),
        serde_yaml::from_str("{retries: 0}").expect("defaults"),
    );
    let tasks: Vec<serde_yaml::Value> = m["tasks"]
        .as_sequence()
        .expect("tasks")
        .iter()
        .filter(|t| ["daily_sales", "train"].contains(&t["id"].as_str().unwrap_or("")))
        .cloned()
        .map(|mut t| {
            if t["id"] == "train" {
                let t = t.as_mapping_mut().expect("task");
                t.insert("executor".into(), "gpu".into());
                // The test cluster's GPU is declared, not real.
                t.insert("device".into(), "cpu".into());
            }
            t
        })
        .collect();
    m.insert("tasks".into(), serde_yaml::Value::Sequence(tasks));
    p.write_dag("main.yaml", &serde_yaml::to_string(&m).expect("yaml"));
    let d = p.start_daemon("5s");
    let state = finished(&p, 420);
    assert_eq!(state.as_deref(), Some("succeeded"), "{}", p.diagnose(&d));
    let atts = p.attempts("train");
    assert_eq!(atts.len(), 1, "{atts:?}");
    // The model and the backtest landed in the lake.
    let lake = remote_support::walk(&p.path().join("lake"));
    let names: Vec<String> = lake
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains(&format!("models/{dag}/")) && n.ends_with("model.safetensors")),
        "no model in the lake"
    );
    assert!(
        names.iter().any(|n| n.contains("forecast_metrics/")),
        "no backtest in the lake"
    );
    // The engine saw a GPU request, and the worker got the GPU.
    let job = engine
        .jobs(&RemoteProject::prefix(&dag))
        .into_iter()
        .find(|(n, _)| n.contains("-train-"))
        .expect("train job");
    let record = engine.record(&job.0);
    match engine {
        Engine::Slurm => assert!(record.contains("gpu:1"), "{record}"),
        Engine::Ray => assert!(
            record.contains("\"GPU\": 1") || record.contains("\"GPU\":1"),
            "{record}"
        ),
    }
    let logs = attempt_logs(&p, "train");
    assert!(logs.contains("CUDA_VISIBLE_DEVICES=0"), "{logs}");
    assert!(logs.contains("epoch"), "{logs}");
}

macro_rules! on_both {
    ($($name:ident),*) => {
        mod slurm {
            $(#[test] fn $name() { super::$name(super::Engine::Slurm) })*
        }
        mod ray {
            $(#[test] fn $name() { super::$name(super::Engine::Ray) })*
        }
    };
}

on_both!(
    main_job_train_runs_on_the_gpu_executor,
    retries_with_backoff,
    timeout_cancels_the_job,
    sigterm_cancels_the_job,
    start_timeout_names_what_it_waited_for,
    sigkill_restart_adopts_the_job
);
