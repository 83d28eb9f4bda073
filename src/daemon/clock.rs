//! The daemon's notion of now: the seam between scheduling decisions and
//! the wall clock.
//!
//! [`SystemClock`] is the wall clock; the daemon then looks at the
//! schedule on a one-second heartbeat. [`ManualClock`] only moves when told
//! to, and the daemon looks at the schedule each time it moves, so tests of
//! catchup, DST, `max_active_runs` and reload step through days of
//! schedule in milliseconds without waiting on real cron minutes. Only
//! scheduling reads the clock; timestamps recorded in the run history are
//! wall-clock times.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// The source of "now" for scheduling decisions.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// `None` for a clock that moves by itself (the daemon polls it on a
    /// heartbeat); otherwise a receiver that sees every move, on which the
    /// daemon schedules.
    fn moves(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until [`ManualClock::set`] or
/// [`ManualClock::advance`] moves it.
pub struct ManualClock {
    tx: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            tx: watch::Sender::new(start),
        })
    }

    /// Move to `t` (backwards too: a clock stepped back by NTP).
    pub fn set(&self, t: DateTime<Utc>) {
        self.tx.send_replace(t);
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.tx.send_modify(|t| *t += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.tx.borrow()
    }

    fn moves(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_told_and_says_so() {
        let t0 = "2026-03-28T00:00:00Z".parse().expect("t0");
        let c = ManualClock::new(t0);
        let mut rx = c.moves().expect("receiver");
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::hours(25));
        rx.changed().await.expect("changed");
        assert_eq!(*rx.borrow_and_update(), t0 + chrono::Duration::hours(25));
        assert_eq!(c.now(), t0 + chrono::Duration::hours(25));
        assert!(SystemClock.moves().is_none());
    }
}
