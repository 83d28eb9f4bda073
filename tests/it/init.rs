//! `restock init` and `restock demo` outside a clone of the repository:
//! the embedded example project is written out (never over someone's
//! edits without `--force`), validates and runs.

use crate::common;

use common::Project;

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn init_writes_a_project_that_validates_and_runs_outside_the_repository() {
    let p = Project::new();
    let o = p.restock().args(["init", "shop"]).output().expect("init");
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("created     shop/jobs/nightly_inventory.yaml"),
        "{}",
        out(&o)
    );
    let dir = p.path().join("shop");
    for f in ["restock.yaml", "jobs/example.yaml", "sql/daily_sales.sql"] {
        assert!(dir.join(f).is_file(), "{f}");
    }

    let in_shop = |args: &[&str]| {
        let mut c = p.restock();
        c.current_dir(&dir).args(args);
        c.output().expect("restock")
    };
    let o = in_shop(&["validate"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        2,
        "{}",
        out(&o)
    );
    let o = in_shop(&["run", "example", "--date", "2026-11-27"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        dir.join(".restock/state.db").is_file(),
        "restock.yaml's paths are used"
    );

    // An edited file is never overwritten without --force.
    let edited = dir.join("jobs/example.yaml");
    std::fs::write(&edited, "id: mine\ntasks:\n  - id: a\n    kind: empty\n").expect("edit");
    let o = in_shop(&["init"]);
    assert!(!o.status.success(), "{}", out(&o));
    let msg = out(&o);
    assert!(
        msg.contains("jobs/example.yaml")
            && msg.contains("--force")
            && msg.contains("nothing was written"),
        "{msg}"
    );
    assert!(
        std::fs::read_to_string(&edited)
            .expect("read")
            .starts_with("id: mine")
    );
    let o = in_shop(&["init", "--force"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("overwritten"), "{}", out(&o));
    assert!(
        !std::fs::read_to_string(&edited)
            .expect("read")
            .starts_with("id: mine")
    );
}

#[test]
fn demo_in_an_empty_folder_writes_the_example_project_and_the_lake() {
    let p = Project::new();
    std::fs::remove_dir(p.path().join("jobs")).expect("an empty folder");
    let o = p
        .restock()
        .args(["demo", "--no-run", "--end-date", "2026-11-27"])
        .output()
        .expect("demo");
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("writing the example project"),
        "{}",
        out(&o)
    );
    assert!(p.path().join("jobs/nightly_inventory.yaml").is_file());
    assert!(p.path().join("lake").is_dir());
    // The main job's first task reads the generated lake with the
    // written SQL, in this folder.
    let o = p
        .restock()
        .args([
            "run",
            "nightly_inventory",
            "--date",
            "2026-11-27",
            "--task",
            "daily_sales",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", out(&o));
    // A second demo uses the folder's own project as it is.
    std::fs::write(p.path().join("sql/README.md"), "edited\n").expect("edit");
    let o = p
        .restock()
        .args(["demo", "--no-run", "--end-date", "2026-11-27"])
        .output()
        .expect("demo");
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        !out(&o).contains("writing the example project"),
        "{}",
        out(&o)
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("sql/README.md")).expect("read"),
        "edited\n"
    );
}
