//! The fuzz targets' inputs, replayed on stable: every file of the
//! committed corpus (`fuzz/corpus/<target>/`) and every crash, hang or
//! memory blow-up the fuzzer found (`fuzz/regressions/<target>/`) goes
//! through the same entry points the targets call
//! (`restock::fuzzing`), and each must finish without a panic and within
//! a few seconds. CI runs these inputs, not the fuzzer (docs/fuzzing.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generous for a debug build on a busy machine; a hang the fuzzer found
/// ran for far longer than this.
const PER_INPUT: Duration = Duration::from_secs(10);

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    out.sort();
    out
}

/// Feed every input of `target` to `entry`; report every slow input.
fn replay(target: &str, min_inputs: usize, entry: impl Fn(&str)) {
    let files = inputs(target);
    assert!(
        files.len() >= min_inputs,
        "{target}: {} input(s) committed, expected at least {min_inputs}",
        files.len()
    );
    let mut slow = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read input");
        // The targets skip bytes that are not UTF-8, as restock never
        // sees them (files are read as UTF-8 text first).
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let t = Instant::now();
        entry(text);
        if t.elapsed() > PER_INPUT {
            slow.push(format!("{} ({:.1?})", file.display(), t.elapsed()));
        }
    }
    assert!(slow.is_empty(), "{target}: slow inputs: {slow:?}");
}

#[test]
fn dag_compile_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    replay("dag_compile", 20, |text| {
        restock::fuzzing::dag_file(text, Path::new("fuzz.yaml"), root)
    });
}

#[test]
fn template_check_inputs() {
    replay("template_check", 20, restock::fuzzing::template_text);
}

#[test]
fn config_load_inputs() {
    replay("config_load", 5, restock::fuzzing::config_text);
}
