//! `restock runs` and `restock show`: the run history as tables or JSON.

use std::process::ExitCode;

use anyhow::Result;

use restock::config::Config;
use restock::store;

fn dur(
    a: Option<chrono::DateTime<chrono::Utc>>,
    b: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}s", (b - a).num_milliseconds() as f64 / 1000.0),
        (Some(_), None) => "…".into(),
        _ => "-".into(),
    }
}

/// A run's duration: the time it spent executing, which for a resumed run
/// or a `--task` rerun is less than the span from its first start.
fn run_dur(r: &store::RunRecord) -> String {
    match (r.started_at, r.ended_at) {
        (Some(_), Some(_)) if r.ran_ms > 0 => format!("{:.2}s", r.ran_ms as f64 / 1000.0),
        (a, b) => dur(a, b),
    }
}

fn short(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn runs(config: &Config, dag: Option<&str>, limit: usize, json: bool) -> Result<ExitCode> {
    let store = super::open_store(config)?;
    let runs = store.with(|c| store::list_runs(c, dag, limit))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<44} {:<20} {:<10} {:<10} {:<15} {:<19} {:>9}",
        "RUN", "DAG", "DATE", "TYPE", "STATE", "STARTED (UTC)", "DURATION"
    );
    for r in runs {
        println!(
            "{:<44} {:<20} {:<10} {:<10} {:<15} {:<19} {:>9}",
            r.run_id,
            r.dag_id,
            r.ds,
            r.run_type,
            r.state.as_str(),
            short(r.started_at),
            run_dur(&r)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(config: &Config, run_id: &str, json: bool) -> Result<ExitCode> {
    let store = super::open_store(config)?;
    let run = store.with(|c| store::get_run(c, run_id))?;
    let attempts = store.with(|c| store::attempts(c, run_id))?;
    let tis = store.with(|c| store::task_instances(c, run_id))?;
    if json {
        let v = serde_json::json!({ "run": run, "tasks": tis, "attempts": attempts });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run       {}", run.run_id);
    println!("dag       {}", run.dag_id);
    println!(
        "date      {} [{} .. {})",
        run.ds,
        run.data_interval_start.to_rfc3339(),
        run.data_interval_end.to_rfc3339()
    );
    println!("type      {}", run.run_type);
    println!("state     {}", run.state);
    println!("duration  {}", run_dur(&run));
    println!();
    println!(
        "{:<24} {:>3} {:<15} {:<19} {:>9}  DETAIL",
        "TASK", "TRY", "STATE", "STARTED (UTC)", "DURATION"
    );
    for a in &attempts {
        let detail = match &a.error {
            Some(e) => format!("error: {e}"),
            None if a.outputs.as_object().is_some_and(|o| !o.is_empty()) => {
                format!("outputs: {}", a.outputs)
            }
            None => String::new(),
        };
        println!(
            "{:<24} {:>3} {:<15} {:<19} {:>9}  {}",
            a.task_id,
            a.try_number,
            a.state.as_str(),
            short(a.started_at),
            dur(a.started_at, a.ended_at),
            detail
        );
        if let Some(p) = &a.log_path {
            println!("{:<24}      log: {p}", "");
        }
    }
    for t in tis.iter().filter(|t| t.tries == 0) {
        println!(
            "{:<24} {:>3} {:<15} {:<19} {:>9}  {}",
            t.task_id,
            "-",
            t.state.as_str(),
            "-",
            "-",
            t.error.clone().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
