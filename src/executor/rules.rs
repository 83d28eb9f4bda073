//! Trigger rules: whether a task runs, given its upstream tasks' final
//! states. Pure; mirrors Airflow's rules of the same names.

use crate::dag::TriggerRule;
use crate::store::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run,
    Skip(String),
    UpstreamFailed(String),
    Fail(String),
}

fn is_failed(s: State) -> bool {
    matches!(s, State::Failed | State::UpstreamFailed)
}

/// Decide for a task whose upstreams are all final.
pub fn decide(rule: TriggerRule, upstream: &[State]) -> Decision {
    let failed = upstream.iter().filter(|s| is_failed(**s)).count();
    let succeeded = upstream.iter().filter(|s| **s == State::Succeeded).count();
    let skipped = upstream.iter().filter(|s| **s == State::Skipped).count();
    let total = upstream.len();
    match rule {
        TriggerRule::AllSuccess => {
            if failed > 0 {
                Decision::UpstreamFailed(format!("{failed} upstream task(s) failed"))
            } else if skipped > 0 {
                Decision::Skip(format!("{skipped} upstream task(s) skipped"))
            } else {
                Decision::Run
            }
        }
        TriggerRule::AllDone => Decision::Run,
        TriggerRule::AllFailed => {
            if failed == total {
                Decision::Run
            } else {
                Decision::Skip("not every upstream task failed".into())
            }
        }
        TriggerRule::OneSuccess => {
            if succeeded > 0 || total == 0 {
                Decision::Run
            } else if failed > 0 {
                Decision::UpstreamFailed("no upstream task succeeded".into())
            } else {
                Decision::Skip("no upstream task succeeded".into())
            }
        }
        TriggerRule::OneFailed => {
            if failed > 0 {
                Decision::Run
            } else {
                Decision::Skip("no upstream task failed".into())
            }
        }
        TriggerRule::NoneFailed => {
            if failed > 0 {
                Decision::UpstreamFailed(format!("{failed} upstream task(s) failed"))
            } else {
                Decision::Run
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    #[test]
    fn rules_table() {
        let cases: &[(TriggerRule, &[State], &str)] = &[
            (TriggerRule::AllSuccess, &[], "run"),
            (TriggerRule::AllSuccess, &[Succeeded, Succeeded], "run"),
            (
                TriggerRule::AllSuccess,
                &[Succeeded, Failed],
                "upstream_failed",
            ),
            (
                TriggerRule::AllSuccess,
                &[Succeeded, UpstreamFailed],
                "upstream_failed",
            ),
            (TriggerRule::AllSuccess, &[Succeeded, Skipped], "skip"),
            (TriggerRule::AllDone, &[Failed, Skipped, Succeeded], "run"),
            (TriggerRule::AllFailed, &[Failed, UpstreamFailed], "run"),
            (TriggerRule::AllFailed, &[Failed, Succeeded], "skip"),
            (TriggerRule::OneSuccess, &[Failed, Succeeded], "run"),
            (
                TriggerRule::OneSuccess,
                &[Failed, Failed],
                "upstream_failed",
            ),
            (TriggerRule::OneSuccess, &[Skipped], "skip"),
            (TriggerRule::OneFailed, &[Succeeded, Failed], "run"),
            (TriggerRule::OneFailed, &[Succeeded], "skip"),
            (TriggerRule::NoneFailed, &[Succeeded, Skipped], "run"),
            (
                TriggerRule::NoneFailed,
                &[Succeeded, Failed],
                "upstream_failed",
            ),
        ];
        for (rule, ups, want) in cases {
            let got = match decide(*rule, ups) {
                Decision::Run => "run",
                Decision::Skip(_) => "skip",
                Decision::UpstreamFailed(_) => "upstream_failed",
                Decision::Fail(_) => "fail",
            };
            assert_eq!(got, *want, "{rule:?} with {ups:?}");
        }
    }
}
