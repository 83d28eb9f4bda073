//! `executors:` in `restock.yaml` as `restock validate` sees it: unknown
//! names, a remote task over a local-folder lake, and settings that do
//! not parse, each reported with file and line.

use crate::common;

fn validate(dir: &std::path::Path, config: &str, dag: &str) -> (i32, String) {
    std::fs::write(dir.join("restock.yaml"), config).expect("config");
    std::fs::create_dir_all(dir.join("jobs")).expect("jobs");
    std::fs::write(dir.join("jobs/d.yaml"), dag).expect("dag");
    let out = common::restock()
        .current_dir(dir)
        .arg("validate")
        .output()
        .expect("validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const DAG: &str = "id: d\ndefaults: { executor: gpu }\ntasks:\n  - id: a\n    kind: empty\n  - id: b\n    kind: empty\n    executor: grpu\n  - id: c\n    kind: empty\n    executor: local\n";

#[test]
fn executor_names_and_lake_visibility_are_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let (code, out) = validate(
        dir.path(),
        "lake: ./lake\nexecutors:\n  gpu: { kind: slurm, gres: \"gpu:1\" }\n",
        DAG,
    );
    assert_ne!(code, 0, "{out}");
    // `a` inherits `gpu`: its workers cannot see a local folder.
    assert!(
        out.contains("d.yaml:2:") && out.contains("cannot see the lake `./lake`"),
        "{out}"
    );
    assert!(out.contains("shared_filesystem: true"), "{out}");
    assert!(
        out.contains("d.yaml:8:") && out.contains("unknown executor `grpu`"),
        "{out}"
    );
    assert!(out.contains("restock.yaml defines: local, gpu"), "{out}");

    let (code, out) = validate(
        dir.path(),
        "lake: ./lake\nexecutors:\n  gpu: { kind: slurm, gres: \"gpu:1\", shared_filesystem: true }\n",
        &DAG.replace("grpu", "gpu"),
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_executor_settings_name_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let (code, out) = validate(
        dir.path(),
        "lake: s3://b/p\nexecutors:\n  gpu: { kind: slurm, start_timeout: soon }\n  ray:\n    kind: ray\n    adress: http://x:8265\n",
        "id: d\ntasks:\n  - id: a\n    kind: empty\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("restock.yaml:3: executors.gpu.start_timeout: invalid duration `soon`"),
        "{out}"
    );
    assert!(
        out.contains("restock.yaml:4: executors.ray: unknown field `adress`"),
        "{out}"
    );
}
