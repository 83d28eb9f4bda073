//! A real browser (Debian's headless Chromium, driven by Playwright's
//! `playwright-core` from tests/browser) against the real server: open the
//! DAG list, trigger a run, watch it finish on the run page and open its
//! log; and the planning pages over the demo lake. Screenshots are kept
//! under target/test-artifacts/web-browser/ when a scenario fails.

use crate::common;
use crate::web_support;

use common::Project;
use web_support::{Server, demo_project};

/// Run `tests/browser/<script>` against `s` (with `extra` arguments after
/// the screenshot folder); on failure keep the screenshots and show the
/// scenario's and the server's output.
fn drive(p: &Project, s: &Server, script: &str, dag: &str, extra: &[&str]) {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/browser/node_modules/playwright-core"
        ))
        .exists(),
        "run `npm ci --prefix tests/browser` (see .ci/run)"
    );
    let shots = p.path().join("shots");
    let out = std::process::Command::new("node")
        .arg(format!("{root}/tests/browser/{script}"))
        .arg(&s.base)
        .arg(dag)
        .arg(&shots)
        .args(extra)
        .output()
        .expect("node");
    if !out.status.success() {
        let keep = std::path::PathBuf::from(root).join("target/test-artifacts/web-browser");
        let _ = std::fs::create_dir_all(&keep);
        for e in std::fs::read_dir(&shots).into_iter().flatten().flatten() {
            let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
        }
        panic!(
            "browser scenario {script} failed (screenshots in {}):\n{}\n{}\nserver log:\n{}",
            keep.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            s.log_text()
        );
    }
}

#[test]
fn dag_list_trigger_run_page_and_log_in_chromium() {
    let p = Project::new();
    p.write_dag(
        "hello.yaml",
        "id: hello\ndescription: says hello\ntasks:\n  - id: greet\n    kind: command\n    command: \"echo '<b>hello</b>'\"\n  - id: after\n    kind: command\n    depends_on: [greet]\n    command: \"true\"\n",
    );
    let s = Server::start(&p, "daemon", &[]);
    drive(&p, &s, "ui.mjs", "hello", &[]);
    let runs = p.query("SELECT state FROM dag_runs WHERE dag_id = 'hello'");
    assert_eq!(runs, vec![vec!["succeeded".to_string()]]);
}

#[test]
fn planning_page_headline_filter_and_sku_chart_in_chromium() {
    let p = demo_project(&["2026-11-27"]);
    // The mail's headline at 3 lines, fewer than the monitor puts on it,
    // so the page's list is seen capped at the mail's setting.
    let dag = p.path().join("jobs/nightly_inventory.yaml");
    let yaml = std::fs::read_to_string(&dag).expect("demo DAG");
    let capped = yaml.replace(
        "    history_days: 28\n",
        "    history_days: 28\n    headline: 3\n",
    );
    assert_ne!(capped, yaml, "the demo DAG's email task moved");
    std::fs::write(&dag, capped).expect("write DAG");
    let s = Server::start(&p, "serve", &[]);
    drive(&p, &s, "planning.mjs", "nightly_inventory", &["3"]);
}

#[test]
fn overrides_form_adds_a_row_and_shows_the_apis_error_in_chromium() {
    let p = Project::new();
    p.write_dag(
        "planned.yaml",
        "id: planned\ntables:\n  overrides: { path: overrides }\ntasks:\n  - id: noop\n    kind: empty\n",
    );
    let lake = p.path().join("lake");
    std::fs::create_dir_all(&lake).expect("lake");
    let s = Server::start(
        &p,
        "serve",
        &[("RESTOCK_LAKE", lake.to_str().expect("utf8"))],
    );
    drive(&p, &s, "overrides.mjs", "planned", &[]);
    // What the form stored is one CSV in the overrides table, in the
    // layout the run reads, and the refused row is not in it; the edit
    // and the withdrawal kept both versions, marked.
    let files: Vec<String> = std::fs::read_dir(lake.join("overrides"))
        .expect("overrides folder")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut lines = files[0].lines();
    assert_eq!(
        lines.next(),
        Some(
            "id,kind,sku,store,start_date,end_date,value,author,created_at,reason,\
             withdrawn_by,withdrawn_at,withdrawn_reason"
        )
    );
    let first = lines.next().expect("the first version");
    assert!(
        first.starts_with("ui-")
            && first.contains(",forecast_multiply,A,CA_1,2026-12-01,2026-12-07,1.2,alice,20")
            && first.contains("Z,store opening,carol,")
            && first.ends_with(",edited: store opening"),
        "{first}"
    );
    let second = lines.next().expect("the edit");
    assert!(
        second.contains(",forecast_multiply,A,CA_1,2026-12-01,2026-12-07,1.3,carol,20")
            && second.contains("Z,store opening,dave,")
            && second.ends_with(",opening postponed"),
        "{second}"
    );
    assert_eq!(lines.next(), None, "{}", files[0]);
}
