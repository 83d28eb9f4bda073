//! A real browser (Debian's headless Chromium, driven by Playwright's
//! `playwright-core` from tests/browser) against the real server: open the
//! DAG list, trigger a run, watch it finish on the run page and open its
//! log; and the planning pages over the demo lake. Screenshots are kept
//! under target/test-artifacts/web-browser/ when a scenario fails.

use crate::common;
use crate::web_support;

use common::Project;
use web_support::{Server, demo_project};

/// Run `tests/browser/<script>` against `s`; on failure keep the
/// screenshots and show the scenario's and the server's output.
fn drive(p: &Project, s: &Server, script: &str, dag: &str) {
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
    drive(&p, &s, "ui.mjs", "hello");
    let runs = p.query("SELECT state FROM dag_runs WHERE dag_id = 'hello'");
    assert_eq!(runs, vec![vec!["succeeded".to_string()]]);
}

#[test]
fn planning_page_filter_and_sku_chart_in_chromium() {
    let p = demo_project(&["2026-11-27"]);
    let s = Server::start(&p, "serve", &[]);
    drive(&p, &s, "planning.mjs", "nightly_inventory");
}
