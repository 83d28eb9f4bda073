//! Cron schedules in a time zone, data intervals, and catchup.
//!
//! Owns the calendar arithmetic: which instants a schedule fires at, what
//! data interval a run covers, and which intervals the daemon still owes
//! after downtime. Everything here is pure (the caller passes `now`), so the
//! daemon and `restock run --from/--to` share it and tests drive it with
//! fixed instants.
//!
//! Semantics follow Airflow: ticks `T0 < T1 < ...`; the run for interval
//! `[Ti, Ti+1)` has logical date `Ti` and becomes due at `Ti+1`.
//!
//! Daylight saving time (croner's rules, pinned by tests below): a wall-clock
//! time that does not exist (the skipped hour in spring) fires once at the
//! first valid instant after the gap; a wall-clock time that happens twice
//! (the repeated hour in autumn) fires once, at its first occurrence.
//! Schedules that fire every hour fire on every real hour.

use chrono::{DateTime, NaiveDate, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// What the daemon does about intervals missed while it was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Catchup {
    /// Run every missed interval, oldest first.
    All,
    /// Run only the newest missed interval.
    #[default]
    Last,
    /// Skip missed intervals; wait for the next tick.
    None,
}

/// A validated cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    pub tz: Tz,
    pub catchup: Catchup,
    /// Intervals starting before this instant are never scheduled.
    pub start_date: Option<DateTime<Utc>>,
}

/// How late an interval may be noticed and still count as on time for
/// `catchup: none` (the daemon checks every second).
pub const ON_TIME: chrono::Duration = chrono::Duration::seconds(10);

/// The span of data one run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("invalid cron expression `{expr}`: {reason}")]
    Cron { expr: String, reason: String },
    #[error("unknown time zone `{0}` (expected an IANA name such as Europe/Berlin)")]
    Timezone(String),
    #[error("schedule `{0}` never fires")]
    NeverFires(String),
}

/// Parse a 5-field cron expression or a nickname (`@daily`, `@hourly`,
/// `@weekly`, `@monthly`, `@yearly`).
pub fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let err = |reason: String| ScheduleError::Cron {
        expr: expr.to_string(),
        reason,
    };
    let trimmed = expr.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
        return Err(err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            trimmed.split_whitespace().count()
        )));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|e| err(e.to_string()))
}

pub fn parse_tz(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::Timezone(name.to_string()))
}

/// A tick as an exact instant. croner keeps the sub-second part of the
/// instant it searched from (`01:00:00.825`); ticks, and so interval
/// boundaries, logical dates and run ids, are whole seconds.
fn exact(t: DateTime<Tz>) -> DateTime<Utc> {
    t.with_timezone(&Utc).trunc_subsecs(0)
}

impl Schedule {
    pub fn new(expr: &str, tz: Tz, catchup: Catchup) -> Result<Self, ScheduleError> {
        let cron = parse_cron(expr)?;
        let s = Self {
            expr: expr.to_string(),
            cron,
            tz,
            catchup,
            start_date: None,
        };
        // A pattern such as `0 0 31 2 *` parses but never fires.
        s.next_after(Utc::now())
            .ok_or_else(|| ScheduleError::NeverFires(expr.to_string()))?;
        Ok(s)
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// First tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(exact)
    }

    /// First tick at or after `t`.
    pub fn next_from(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(exact)
    }

    /// Last tick at or before `t`.
    pub fn prev_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(exact)
    }

    /// The interval that starts at tick `start`.
    pub fn interval_at(&self, start: DateTime<Utc>) -> Option<Interval> {
        Some(Interval {
            start,
            end: self.next_after(start)?,
        })
    }

    /// The newest interval that has fully elapsed at `now`.
    ///
    /// croner's backward search places a tick that falls into a DST gap at
    /// the last second before the gap, while its forward search places it
    /// at the first instant after; intervals are defined by the forward
    /// search, so this steps back a few ticks and walks forward.
    pub fn latest_complete(&self, now: DateTime<Utc>) -> Option<Interval> {
        let mut t = self.prev_at_or_before(now)?;
        for _ in 0..3 {
            t = self
                .cron
                .find_previous_occurrence(&t.with_timezone(&self.tz), false)
                .map(exact)
                .ok()?;
        }
        let mut a = self.next_from(t)?;
        let mut b = self.next_after(a)?;
        if b > now {
            return None;
        }
        while let Some(c) = self.next_after(b) {
            if c > now {
                break;
            }
            a = b;
            b = c;
        }
        Some(Interval { start: a, end: b })
    }

    /// The scheduled interval for a calendar date given on the command line:
    /// the first tick on or after local midnight of `date`.
    pub fn interval_for_date(&self, date: NaiveDate) -> Option<Interval> {
        let midnight = local_midnight(&self.tz, date)?;
        let start = self.next_from(midnight)?;
        self.interval_at(start)
    }

    /// Every interval whose start falls on a date in `[from, to]`, in order.
    pub fn intervals_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<Interval> {
        let mut out = Vec::new();
        let (Some(lo), Some(hi)) = (
            local_midnight(&self.tz, from),
            to.succ_opt().and_then(|d| local_midnight(&self.tz, d)),
        ) else {
            return out;
        };
        let mut t = self.next_from(lo);
        while let Some(start) = t {
            if start >= hi {
                break;
            }
            match self.interval_at(start) {
                Some(iv) => out.push(iv),
                None => break,
            }
            t = self.next_after(start);
        }
        out
    }

    /// Intervals owed at `now`, given the start of the newest interval the
    /// history already holds (`last_start`), oldest first. `max` bounds the
    /// `all` policy so that a schedule left off for years cannot flood the
    /// queue.
    pub fn due(
        &self,
        last_start: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        policy: Catchup,
        max: usize,
    ) -> Vec<Interval> {
        let Some(latest) = self.latest_complete(now) else {
            return Vec::new();
        };
        if let Some(sd) = self.start_date {
            if latest.start < sd {
                return Vec::new();
            }
        }
        match last_start {
            Some(last) if last >= latest.start => Vec::new(),
            None => vec![latest],
            Some(last) => match policy {
                Catchup::Last => vec![latest],
                Catchup::None => {
                    // The interval right after the newest run is on time;
                    // an older gap is skipped, and the newest interval
                    // runs only if it ended moments ago.
                    let on_time = self
                        .next_after(last)
                        .is_some_and(|next| next >= latest.start);
                    if on_time || latest.end + ON_TIME >= now {
                        vec![latest]
                    } else {
                        Vec::new()
                    }
                }
                Catchup::All => {
                    let mut out = Vec::new();
                    let mut t = self.next_after(last);
                    while let Some(start) = t {
                        if start > latest.start {
                            break;
                        }
                        if self.start_date.is_none_or(|sd| start >= sd) {
                            if let Some(iv) = self.interval_at(start) {
                                out.push(iv);
                            }
                        }
                        t = self.next_after(start);
                    }
                    if out.len() > max {
                        out.drain(..out.len() - max);
                    }
                    out
                }
            },
        }
    }
}

/// Local midnight of `date` in `tz` (the first instant of the day when a
/// DST change happens at midnight).
pub fn local_midnight(tz: &Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            let later = naive + chrono::Duration::hours(1);
            tz.from_local_datetime(&later)
                .earliest()
                .map(|d| d.with_timezone(&Utc))
        }
    }
}

/// Interval for an unscheduled DAG run on `date`: that local day.
pub fn day_interval(tz: &Tz, date: NaiveDate) -> Option<Interval> {
    Some(Interval {
        start: local_midnight(tz, date)?,
        end: local_midnight(tz, date.succ_opt()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid timestamp")
    }

    fn berlin(expr: &str, catchup: Catchup) -> Schedule {
        Schedule::new(expr, parse_tz("Europe/Berlin").expect("tz"), catchup).expect("schedule")
    }

    #[test]
    fn rejects_bad_cron_and_tz() {
        assert!(matches!(
            parse_cron("61 * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            parse_cron("* * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            parse_cron("0 0 * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("@hourly").is_ok());
        assert!(parse_cron("@weekly").is_ok());
        assert_eq!(
            parse_tz("Mars/Olympus"),
            Err(ScheduleError::Timezone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn daily_interval_follows_airflow() {
        let s = berlin("0 2 * * *", Catchup::Last);
        // 2026-11-28 03:00 Berlin = 02:00 UTC; the latest complete interval
        // is [11-27 02:00, 11-28 02:00) Berlin time.
        let iv = s.latest_complete(utc("2026-11-28T02:00:00Z")).expect("iv");
        assert_eq!(iv.start, utc("2026-11-27T01:00:00Z"));
        assert_eq!(iv.end, utc("2026-11-28T01:00:00Z"));
        let d = s
            .interval_for_date(NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"))
            .expect("iv");
        assert_eq!(d, iv);
    }

    #[test]
    fn dst_skipped_hour_fires_once_after_the_gap() {
        // 2026-03-29: Berlin clocks jump from 02:00 to 03:00.
        let s = berlin("30 2 * * *", Catchup::Last);
        let next = s.next_after(utc("2026-03-28T12:00:00Z")).expect("tick");
        // 02:30 does not exist; it runs at 03:00 CEST = 01:00 UTC.
        assert_eq!(next, utc("2026-03-29T01:00:00Z"));
        let after = s.next_after(next).expect("tick");
        assert_eq!(after, utc("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn dst_repeated_hour_fires_once() {
        // 2026-10-25: Berlin clocks fall back from 03:00 to 02:00.
        let s = berlin("30 2 * * *", Catchup::Last);
        let first = s.next_after(utc("2026-10-24T12:00:00Z")).expect("tick");
        assert_eq!(first, utc("2026-10-25T00:30:00Z")); // 02:30 CEST
        let second = s.next_after(first).expect("tick");
        assert_eq!(second, utc("2026-10-26T01:30:00Z")); // next day, CET
        // The daily interval across the change is 25 hours long.
        let iv = s.interval_at(utc("2026-10-24T00:30:00Z")).expect("iv");
        assert_eq!(iv.end - iv.start, chrono::Duration::hours(24));
        let iv = s.interval_at(first).expect("iv");
        assert_eq!(iv.end - iv.start, chrono::Duration::hours(25));
    }

    #[test]
    fn the_daemon_sees_dst_ticks_when_they_come_due() {
        let s = berlin("30 2 * * *", Catchup::Last);
        // Spring: the 02:30 tick of 29 March happens at 03:00 CEST.
        let before = s.latest_complete(utc("2026-03-29T00:59:00Z")).expect("iv");
        assert_eq!(before.end, utc("2026-03-28T01:30:00Z"));
        let after = s.latest_complete(utc("2026-03-29T01:00:05Z")).expect("iv");
        assert_eq!(after.start, utc("2026-03-28T01:30:00Z"));
        assert_eq!(after.end, utc("2026-03-29T01:00:00Z"));
        // Autumn: 02:30 of 25 October comes due once, at 02:30 CEST; an hour
        // later (02:30 CET) nothing new is due.
        let first = s.latest_complete(utc("2026-10-25T00:30:05Z")).expect("iv");
        assert_eq!(first.end, utc("2026-10-25T00:30:00Z"));
        let later = s.latest_complete(utc("2026-10-25T01:30:05Z")).expect("iv");
        assert_eq!(later, first);
        let last = Some(first.start);
        assert_eq!(
            s.due(last, utc("2026-10-25T01:30:05Z"), Catchup::All, 10),
            vec![]
        );
    }

    #[test]
    fn catchup_policies() {
        let s = Schedule::new("0 2 * * *", Tz::UTC, Catchup::All).expect("s");
        let now = utc("2026-11-28T12:00:00Z");
        let last = Some(utc("2026-11-23T02:00:00Z"));
        let all = s.due(last, now, Catchup::All, 100);
        let starts: Vec<_> = all.iter().map(|i| i.start.to_rfc3339()).collect();
        assert_eq!(
            starts,
            vec![
                "2026-11-24T02:00:00+00:00",
                "2026-11-25T02:00:00+00:00",
                "2026-11-26T02:00:00+00:00",
                "2026-11-27T02:00:00+00:00"
            ]
        );
        assert_eq!(s.due(last, now, Catchup::All, 2).len(), 2);
        let latest = s.due(last, now, Catchup::Last, 100);
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].start, utc("2026-11-27T02:00:00Z"));
        assert!(s.due(last, now, Catchup::None, 100).is_empty());
        // Right at the tick, `none` still runs the interval that just ended.
        let at_tick = utc("2026-11-28T02:00:10Z");
        assert_eq!(s.due(last, at_tick, Catchup::None, 100).len(), 1);
        // Nothing owed when the history is current.
        assert!(
            s.due(Some(utc("2026-11-27T02:00:00Z")), now, Catchup::All, 100)
                .is_empty()
        );
    }

    #[test]
    fn backfill_range_hourly() {
        let s = Schedule::new("0 * * * *", Tz::UTC, Catchup::All).expect("s");
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        assert_eq!(s.intervals_between(d, d).len(), 24);
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 2).expect("date");
        assert_eq!(s.intervals_between(d, d2).len(), 48);
    }

    #[test]
    fn intervals_have_whole_second_boundaries_whatever_now_is() {
        let s = Schedule::new("0 2 * * *", Tz::Europe__Berlin, Catchup::All).expect("schedule");
        let now = utc("2026-11-30T12:00:00.825Z");
        let due = s.due(Some(utc("2026-11-27T01:00:00Z")), now, Catchup::All, 100);
        assert_eq!(due.len(), 2);
        for iv in &due {
            assert_eq!(iv.start.timestamp_subsec_nanos(), 0, "{iv:?}");
            assert_eq!(iv.end.timestamp_subsec_nanos(), 0, "{iv:?}");
        }
        assert_eq!(due[1].start, utc("2026-11-29T01:00:00Z"));
        let latest = s.latest_complete(now).expect("latest");
        assert_eq!(latest.start, utc("2026-11-29T01:00:00Z"));
    }
}
