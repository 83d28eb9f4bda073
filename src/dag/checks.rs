//! Semantic checks of the compile step that need the whole DAG: numeric
//! limits with their allowed ranges, and that every `when` and template
//! names only tasks upstream of the task it belongs to (at run time such a
//! reference would depend on which task happened to finish first).
//!
//! Pure: the caller passes what parsed; every problem becomes one located
//! diagnostic.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::diag::Diagnostics;

/// Allowed `parallelism` (task attempts of one run at once).
pub const PARALLELISM: RangeInclusive<u32> = 1..=4096;
/// Allowed `max_active_runs` (runs of one DAG at once).
pub const MAX_ACTIVE_RUNS: RangeInclusive<u32> = 1..=1024;
/// Allowed `retries` (attempts after the first).
pub const RETRIES: RangeInclusive<u32> = 0..=100;

/// Report `value` at `path` unless it lies in `range`.
pub fn limit(d: &mut Diagnostics, path: &str, value: Option<u32>, range: &RangeInclusive<u32>) {
    if let Some(v) = value {
        if !range.contains(&v) {
            let key = path.rsplit('.').next().unwrap_or(path);
            d.error(
                path,
                format!(
                    "`{key}: {v}` is out of range: allowed {}..={}",
                    range.start(),
                    range.end()
                ),
            );
        }
    }
}

/// A template or `when` expression of one task, at its key path.
#[derive(Debug, Clone)]
pub struct TemplateUse {
    /// Key path, e.g. `tasks[3].when` or `tasks[3].command[1]`.
    pub path: String,
    /// `when` (an expression) or another key (a template).
    pub what: &'static str,
    pub source: String,
}

/// The task references of one task's templates, checked against its
/// ancestors: a name must be a task of the DAG and upstream of `task`.
pub fn task_references(
    d: &mut Diagnostics,
    task: usize,
    task_id: &str,
    uses: &[TemplateUse],
    by_id: &HashMap<String, usize>,
    upstream: &[Vec<usize>],
) {
    let mut ancestors: Option<Vec<bool>> = None;
    for u in uses {
        for name in referenced_tasks(&u.source) {
            let Some(&j) = by_id.get(&name) else {
                d.error(
                    &u.path,
                    format!("{} refers to unknown task `{name}`", u.what),
                );
                continue;
            };
            let anc = ancestors.get_or_insert_with(|| ancestors_of(task, upstream));
            if !anc[j] {
                let msg = if j == task {
                    format!(
                        "{} refers to its own task `{name}`, whose outputs do not exist while it runs",
                        u.what
                    )
                } else {
                    format!(
                        "{} refers to task `{name}`, which is not upstream of `{task_id}`; its outputs are only known once it has finished, so add `{name}` to `depends_on` (directly or through another task)",
                        u.what
                    )
                };
                d.error(&u.path, msg);
            }
        }
    }
}

/// Which tasks are (transitively) upstream of `task`; iterative, so long
/// chains are fine, and safe on cycles.
fn ancestors_of(task: usize, upstream: &[Vec<usize>]) -> Vec<bool> {
    let mut seen = vec![false; upstream.len()];
    let mut stack: Vec<usize> = upstream.get(task).cloned().unwrap_or_default();
    while let Some(u) = stack.pop() {
        if u < seen.len() && !seen[u] {
            seen[u] = true;
            stack.extend(upstream[u].iter().copied());
        }
    }
    seen
}

/// Task ids named as `tasks.ID` in an expression.
pub fn referenced_tasks(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("tasks.") {
        let before_ok = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let tail = &rest[i + 6..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if before_ok && !name.is_empty() && !out.contains(&name) {
            out.push(name.clone());
        }
        rest = &tail[name.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_once_each() {
        assert_eq!(
            referenced_tasks("tasks.a.outputs.n > 0 and tasks.b-2.x or tasks.a.y"),
            ["a", "b-2"]
        );
        assert!(referenced_tasks("mytasks.a").is_empty());
        assert!(referenced_tasks("x.tasks.a").is_empty());
    }

    #[test]
    fn ancestors_follow_chains_and_survive_cycles() {
        // 0 <- 1 <- 2, and 3 <-> 4.
        let up = vec![vec![], vec![0], vec![1], vec![4], vec![3]];
        assert_eq!(ancestors_of(2, &up), [true, true, false, false, false]);
        assert_eq!(ancestors_of(3, &up), [false, false, false, true, true]);
    }
}
