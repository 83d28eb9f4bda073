//! Known holidays and events as model covariates. Retailers know their
//! calendar (Thanksgiving, Black Friday, Christmas, a store's own events)
//! in advance, and demand around them is where simple methods fail most:
//! an exponential smoother cannot know that next Friday sells twice a
//! normal Friday. Owns the event calendar and the features derived from it:
//! per event name, three flags per grid step: the event falls in the next
//! two steps (`before`, the run-up), in this step (`on`), or in the
//! previous two steps (`after`). A step is one day, week or month, so the
//! same names work for every frequency.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::calendar;
use super::config::Frequency;

/// At most this many distinct event names are kept (the first in sorted
/// order); a bit mask per day holds them.
pub const MAX_EVENTS: usize = 64;

/// Dates of named events, shared by every series of a run. Stored as one
/// bit mask per day from the first to the last event date.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventCalendar {
    names: Vec<String>,
    start: Option<NaiveDate>,
    masks: Vec<u64>,
}

impl EventCalendar {
    /// Builds the calendar from `(date, name)` pairs; blank names are ignored.
    pub fn new(entries: impl IntoIterator<Item = (NaiveDate, String)>) -> Self {
        let entries: Vec<(NaiveDate, String)> = entries
            .into_iter()
            .map(|(d, n)| (d, n.trim().to_string()))
            .filter(|(_, n)| !n.is_empty())
            .collect();
        let names: Vec<String> = entries
            .iter()
            .map(|(_, n)| n.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(MAX_EVENTS)
            .collect();
        let (Some(first), Some(last)) = (
            entries.iter().map(|e| e.0).min(),
            entries.iter().map(|e| e.0).max(),
        ) else {
            return Self::default();
        };
        let mut masks = vec![0u64; (last - first).num_days() as usize + 1];
        for (d, n) in &entries {
            if let Ok(bit) = names.binary_search(n) {
                masks[(*d - first).num_days() as usize] |= 1 << bit;
            }
        }
        Self {
            names,
            start: Some(first),
            masks,
        }
    }

    /// Union of the events on the days in `[from, until)`.
    fn mask(&self, from: NaiveDate, until: NaiveDate) -> u64 {
        let Some(start) = self.start else {
            return 0;
        };
        let lo = (from - start).num_days().max(0);
        let hi = (until - start).num_days().min(self.masks.len() as i64);
        if lo >= hi {
            return 0;
        }
        self.masks[lo as usize..hi as usize]
            .iter()
            .fold(0, |acc, m| acc | m)
    }

    /// Distinct names that occur between `from` and `to` (inclusive), sorted.
    pub fn names_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<String> {
        let m = self.mask(from, to.succ_opt().unwrap_or(to));
        self.names
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// The first date in `[from, to]` with an event, and its names (sorted).
    pub fn first_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Option<(NaiveDate, Vec<String>)> {
        let start = self.start?;
        let lo = (from - start).num_days().max(0);
        let hi = (to - start).num_days().min(self.masks.len() as i64 - 1);
        let at = (lo..=hi).find(|&k| self.masks[k as usize] != 0)?;
        let m = self.masks[at as usize];
        let names = self
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .map(|(_, n)| n.clone())
            .collect();
        Some((start + chrono::Days::new(at as u64), names))
    }

    /// Every name, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Last date the calendar knows of.
    pub fn last_date(&self) -> Option<NaiveDate> {
        let start = self.start?;
        Some(start + chrono::Days::new(self.masks.len().saturating_sub(1) as u64))
    }

    /// Bit positions of `names` (unknown names: `None`), for [`Self::features`].
    pub fn bits(&self, names: &[String]) -> Vec<Option<u32>> {
        names
            .iter()
            .map(|n| self.names.binary_search(n).ok().map(|i| i as u32))
            .collect()
    }

    /// Appends `before`, `on`, `after` for each name (as [`Self::bits`])
    /// at the grid step that starts on `date`.
    pub fn features(
        &self,
        freq: Frequency,
        date: NaiveDate,
        bits: &[Option<u32>],
        out: &mut Vec<f32>,
    ) {
        let at = |k: i64| calendar::date_at(freq, date, k).unwrap_or(date);
        let before = self.mask(at(1), at(3));
        let on = self.mask(date, at(1));
        let after = self.mask(at(-2), date);
        for bit in bits {
            let flag = |m: u64| match bit {
                Some(b) if m & (1 << b) != 0 => 1.0,
                _ => 0.0,
            };
            out.extend([flag(before), flag(on), flag(after)]);
        }
    }
}

/// Feature names for `names`, in the order [`EventCalendar::features`] fills.
pub fn feature_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| ["before", "on", "after"].map(|w| format!("event={n}:{w}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn cal() -> EventCalendar {
        EventCalendar::new([
            (d("2026-11-26"), "Thanksgiving".to_string()),
            (d("2026-11-27"), "BlackFriday".to_string()),
            (d("2026-12-25"), " ".to_string()),
        ])
    }

    fn feats(freq: Frequency, date: &str) -> Vec<f32> {
        let names = vec!["BlackFriday".to_string(), "Thanksgiving".to_string()];
        let mut out = Vec::new();
        let c = cal();
        c.features(freq, d(date), &c.bits(&names), &mut out);
        out
    }

    #[test]
    fn the_first_event_in_a_window_with_its_names() {
        let c = EventCalendar::new([
            (d("2026-11-26"), "Thanksgiving".to_string()),
            (d("2026-11-26"), "Parade".to_string()),
            (d("2026-11-27"), "BlackFriday".to_string()),
        ]);
        let both = vec!["Parade".to_string(), "Thanksgiving".to_string()];
        assert_eq!(
            c.first_between(d("2026-11-01"), d("2026-12-31")),
            Some((d("2026-11-26"), both))
        );
        assert_eq!(
            c.first_between(d("2026-11-27"), d("2026-11-27")),
            Some((d("2026-11-27"), vec!["BlackFriday".to_string()]))
        );
        assert_eq!(c.first_between(d("2026-11-28"), d("2026-12-31")), None);
        assert_eq!(c.first_between(d("2026-11-01"), d("2026-11-25")), None);
        assert_eq!(
            EventCalendar::default().first_between(d("2026-11-01"), d("2026-12-31")),
            None
        );
    }

    #[test]
    fn daily_flags_mark_the_run_up_the_day_and_the_days_after() {
        // [BF before, on, after, TG before, on, after]
        assert_eq!(
            feats(Frequency::Daily, "2026-11-24"),
            [0., 0., 0., 1., 0., 0.]
        );
        assert_eq!(
            feats(Frequency::Daily, "2026-11-25"),
            [1., 0., 0., 1., 0., 0.]
        );
        assert_eq!(
            feats(Frequency::Daily, "2026-11-26"),
            [1., 0., 0., 0., 1., 0.]
        );
        assert_eq!(
            feats(Frequency::Daily, "2026-11-27"),
            [0., 1., 0., 0., 0., 1.]
        );
        assert_eq!(
            feats(Frequency::Daily, "2026-11-28"),
            [0., 0., 1., 0., 0., 1.]
        );
        assert_eq!(
            feats(Frequency::Daily, "2026-11-30"),
            [0., 0., 0., 0., 0., 0.]
        );
    }

    #[test]
    fn weekly_and_monthly_steps_cover_their_whole_period() {
        // The week starting Monday 2026-11-23 contains both days.
        assert_eq!(
            feats(Frequency::Weekly, "2026-11-23"),
            [0., 1., 0., 0., 1., 0.]
        );
        assert_eq!(
            feats(Frequency::Weekly, "2026-11-16"),
            [1., 0., 0., 1., 0., 0.]
        );
        assert_eq!(
            feats(Frequency::Monthly, "2026-11-01"),
            [0., 1., 0., 0., 1., 0.]
        );
        assert_eq!(
            feats(Frequency::Monthly, "2027-01-01"),
            [0., 0., 1., 0., 0., 1.]
        );
    }

    #[test]
    fn names_come_from_the_range_and_blanks_are_ignored() {
        let c = cal();
        assert_eq!(
            c.names_between(d("2026-01-01"), d("2026-12-31")),
            ["BlackFriday", "Thanksgiving"]
        );
        assert_eq!(
            c.names_between(d("2026-11-27"), d("2026-12-31")),
            ["BlackFriday"]
        );
        assert_eq!(c.last_date(), Some(d("2026-11-27")));
        assert_eq!(
            feature_names(&["X".to_string()]),
            ["event=X:before", "event=X:on", "event=X:after"]
        );
    }
}
