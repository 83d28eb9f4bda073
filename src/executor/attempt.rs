//! Supervision of one attempt, the same for every kind and executor:
//! the timeout, cancellation, and panics are enforced here, once, instead
//! of being trusted to each task kind.
//!
//! When the timeout passes or the run is cancelled, the attempt's token is
//! cancelled and the work gets a grace period to stop (a command kills its
//! process group, training stops its worker threads, a remote job is
//! cancelled on its engine and confirmed gone). After the grace period the
//! work is abandoned and the attempt is recorded anyway, so a kind that
//! ignores its token cannot hold a run open. A panic inside a task kind is
//! a bug; it fails that attempt alone (not retried) and the run goes on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::tasks::{Outputs, TaskError};

/// How long a local attempt gets to stop after its token is cancelled.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// Run `work` under `timeout`, stopping it through `cancel` (the attempt's
/// own token, a child of the run's) within `grace`.
pub async fn supervise<F>(
    work: F,
    cancel: &CancellationToken,
    timeout: Option<Duration>,
    grace: Duration,
) -> Result<Outputs, TaskError>
where
    F: Future<Output = Result<Outputs, TaskError>>,
{
    let work = AssertUnwindSafe(work).catch_unwind();
    tokio::pin!(work);
    let timer = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timer);
    let timed_out = tokio::select! {
        r = &mut work => return flatten(r),
        _ = &mut timer => true,
        _ = cancel.cancelled() => false,
    };
    cancel.cancel();
    let stopped = tokio::time::timeout(grace, &mut work).await;
    if timed_out {
        if let Some(limit) = timeout {
            return Err(TaskError::Timeout(limit));
        }
    }
    match stopped.map(flatten) {
        // It finished its work just as the stop came: keep the result.
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(TaskError::Interrupted(m))) => Err(TaskError::Interrupted(m)),
        Ok(Err(e)) => Err(TaskError::Interrupted(format!("cancelled ({e})"))),
        Err(_) => Err(TaskError::Interrupted(format!(
            "cancelled; the task did not stop within {} and was abandoned",
            humantime::format_duration(grace)
        ))),
    }
}

fn flatten(
    r: Result<Result<Outputs, TaskError>, Box<dyn std::any::Any + Send>>,
) -> Result<Outputs, TaskError> {
    r.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown payload".into());
        Err(TaskError::Fatal(format!("task panicked: {msg}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_fails_the_attempt_instead_of_the_run() {
        let cancel = CancellationToken::new();
        let r = supervise(
            async { panic!("boom") },
            &cancel,
            None,
            Duration::from_millis(10),
        )
        .await;
        let e = r.expect_err("panicked");
        assert!(matches!(e, TaskError::Fatal(_)), "{e:?}");
        assert!(e.to_string().contains("boom"), "{e}");
    }

    #[tokio::test]
    async fn work_that_ignores_its_token_is_abandoned_after_the_grace() {
        let cancel = CancellationToken::new();
        let t0 = std::time::Instant::now();
        let r = supervise(
            std::future::pending(),
            &cancel,
            Some(Duration::from_millis(50)),
            Duration::from_millis(100),
        )
        .await;
        assert!(matches!(r, Err(TaskError::Timeout(_))), "{r:?}");
        assert!(cancel.is_cancelled());
        assert!(t0.elapsed() < Duration::from_secs(2));
        let c2 = CancellationToken::new();
        c2.cancel();
        let r = supervise(std::future::pending(), &c2, None, Duration::from_millis(20)).await;
        let e = r.expect_err("cancelled");
        assert!(e.to_string().contains("abandoned"), "{e}");
    }
}
