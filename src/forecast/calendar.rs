//! The time grid of each frequency and the calendar covariates derived from
//! a date. Owns how dates map to step indices and which calendar features
//! the model sees; nothing else.

use chrono::{Datelike, Months, NaiveDate};

use super::config::Frequency;

/// Errors mapping dates onto a frequency's grid.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CalendarError {
    #[error(
        "date {date} is not on the weekly grid that starts at {anchor} (same weekday expected)"
    )]
    OffGrid { date: NaiveDate, anchor: NaiveDate },
    #[error("date out of range {steps} steps after {anchor}")]
    OutOfRange { anchor: NaiveDate, steps: i64 },
}

/// Step index of `date` relative to `anchor` on the grid of `freq`.
/// Monthly, quarterly and yearly dates may fall on any day of their
/// calendar period.
pub fn step_index(
    freq: Frequency,
    anchor: NaiveDate,
    date: NaiveDate,
) -> Result<i64, CalendarError> {
    match freq {
        Frequency::Daily => Ok((date - anchor).num_days()),
        Frequency::Weekly => {
            let days = (date - anchor).num_days();
            if days.rem_euclid(7) != 0 {
                return Err(CalendarError::OffGrid { date, anchor });
            }
            Ok(days.div_euclid(7))
        }
        Frequency::Monthly | Frequency::Quarterly | Frequency::Yearly => {
            Ok(periods_between(months_per_step(freq), anchor, date))
        }
    }
}

/// Months per step of a calendar-period frequency (1 for daily and
/// weekly, which are not counted in months).
fn months_per_step(freq: Frequency) -> u32 {
    match freq {
        Frequency::Daily | Frequency::Weekly | Frequency::Monthly => 1,
        Frequency::Quarterly => 3,
        Frequency::Yearly => 12,
    }
}

/// Calendar periods of `n` months (months, quarters, years) from
/// `anchor`'s to `date`'s; a date may fall on any day of its period.
fn periods_between(n: u32, anchor: NaiveDate, date: NaiveDate) -> i64 {
    let p = |d: NaiveDate| (i64::from(d.year()) * 12 + i64::from(d.month0())).div_euclid(n.into());
    p(date) - p(anchor)
}

/// First day of the calendar period (month, quarter, year) `date` is in.
fn period_start(n: u32, date: NaiveDate) -> Option<NaiveDate> {
    let month0 = date.month0() - date.month0() % n;
    NaiveDate::from_ymd_opt(date.year(), month0 + 1, 1)
}

/// Index of the last grid step on or before `date` (weekly: the week that
/// `date` falls in, whatever its weekday).
pub fn step_on_or_before(freq: Frequency, anchor: NaiveDate, date: NaiveDate) -> i64 {
    match freq {
        Frequency::Weekly => (date - anchor).num_days().div_euclid(7),
        Frequency::Daily => (date - anchor).num_days(),
        Frequency::Monthly | Frequency::Quarterly | Frequency::Yearly => {
            periods_between(months_per_step(freq), anchor, date)
        }
    }
}

/// The date `steps` grid steps after `anchor` (monthly, quarterly, yearly:
/// the first day of the period).
pub fn date_at(freq: Frequency, anchor: NaiveDate, steps: i64) -> Result<NaiveDate, CalendarError> {
    let err = CalendarError::OutOfRange { anchor, steps };
    match freq {
        Frequency::Daily => anchor
            .checked_add_signed(chrono::Duration::days(steps))
            .ok_or(err),
        Frequency::Weekly => anchor
            .checked_add_signed(chrono::Duration::days(steps * 7))
            .ok_or(err),
        Frequency::Monthly | Frequency::Quarterly | Frequency::Yearly => {
            let n = months_per_step(freq);
            let first = period_start(n, anchor).ok_or(err.clone())?;
            let months = steps
                .unsigned_abs()
                .checked_mul(n.into())
                .and_then(|m| u32::try_from(m).ok())
                .ok_or(err.clone())?;
            let months = Months::new(months);
            if steps >= 0 {
                first.checked_add_months(months).ok_or(err)
            } else {
                first.checked_sub_months(months).ok_or(err)
            }
        }
    }
}

/// Names of the calendar features for `freq`, in the order `features` fills.
pub fn feature_names(freq: Frequency) -> Vec<String> {
    match freq {
        Frequency::Daily => {
            let mut v: Vec<String> = (0..7).map(|d| format!("dow_{d}")).collect();
            v.push("doy_sin".into());
            v.push("doy_cos".into());
            v
        }
        Frequency::Weekly => ["woy_sin1", "woy_cos1", "woy_sin2", "woy_cos2"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Frequency::Monthly => (1..=12).map(|m| format!("month_{m}")).collect(),
        Frequency::Quarterly => (1..=4).map(|q| format!("quarter_{q}")).collect(),
        Frequency::Yearly => Vec::new(),
    }
}

/// Number of calendar features for `freq`.
pub fn feature_count(freq: Frequency) -> usize {
    match freq {
        Frequency::Daily => 9,
        Frequency::Weekly => 4,
        Frequency::Monthly => 12,
        Frequency::Quarterly => 4,
        Frequency::Yearly => 0,
    }
}

/// Appends the calendar features of `date` to `out`: day-of-week one-hot
/// and annual sine/cosine for daily data, two annual harmonics of the week
/// of year for weekly data, month one-hot for monthly data, quarter one-hot
/// for quarterly data, nothing for yearly data.
pub fn features(freq: Frequency, date: NaiveDate, out: &mut Vec<f32>) {
    use std::f64::consts::TAU;
    match freq {
        Frequency::Daily => {
            let dow = date.weekday().num_days_from_monday() as usize;
            out.extend((0..7).map(|d| if d == dow { 1.0 } else { 0.0 }));
            let a = TAU * f64::from(date.ordinal0()) / 365.25;
            out.push(a.sin() as f32);
            out.push(a.cos() as f32);
        }
        Frequency::Weekly => {
            let a = TAU * f64::from(date.ordinal0()) / 365.25;
            out.extend([a.sin(), a.cos(), (2.0 * a).sin(), (2.0 * a).cos()].map(|x| x as f32));
        }
        Frequency::Monthly => {
            let m = date.month0() as usize;
            out.extend((0..12).map(|i| if i == m { 1.0 } else { 0.0 }));
        }
        Frequency::Quarterly => {
            let q = (date.month0() / 3) as usize;
            out.extend((0..4).map(|i| if i == q { 1.0 } else { 0.0 }));
        }
        Frequency::Yearly => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn quarterly_and_yearly_steps_are_calendar_periods() {
        let q = Frequency::Quarterly;
        // Any day of a quarter is that quarter; steps count quarters.
        assert_eq!(step_index(q, d("2026-01-01"), d("2026-03-31")), Ok(0));
        assert_eq!(step_index(q, d("2026-02-15"), d("2026-04-01")), Ok(1));
        assert_eq!(step_index(q, d("2026-01-01"), d("2025-12-31")), Ok(-1));
        assert_eq!(date_at(q, d("2026-05-20"), 0), Ok(d("2026-04-01")));
        assert_eq!(date_at(q, d("2026-05-20"), 3), Ok(d("2027-01-01")));
        assert_eq!(date_at(q, d("2026-05-20"), -2), Ok(d("2025-10-01")));
        let y = Frequency::Yearly;
        assert_eq!(step_index(y, d("2000-01-01"), d("2003-12-31")), Ok(3));
        assert_eq!(date_at(y, d("2000-06-01"), 2), Ok(d("2002-01-01")));
        assert_eq!(step_on_or_before(y, d("2000-01-01"), d("1999-07-01")), -1);
    }

    #[test]
    fn quarterly_features_are_a_quarter_one_hot_and_yearly_has_none() {
        let mut out = Vec::new();
        features(Frequency::Quarterly, d("2026-08-01"), &mut out);
        assert_eq!(out, [0.0, 0.0, 1.0, 0.0]);
        assert_eq!(feature_names(Frequency::Quarterly).len(), 4);
        assert_eq!(feature_count(Frequency::Quarterly), 4);
        let mut out = Vec::new();
        features(Frequency::Yearly, d("2026-08-01"), &mut out);
        assert!(out.is_empty());
        assert_eq!(feature_count(Frequency::Yearly), 0);
    }

    #[test]
    fn frequencies_parse_from_their_names() {
        for f in [
            Frequency::Daily,
            Frequency::Weekly,
            Frequency::Monthly,
            Frequency::Quarterly,
            Frequency::Yearly,
        ] {
            assert_eq!(Frequency::parse(f.as_str()), Some(f));
        }
        assert_eq!(Frequency::parse("hourly"), None);
    }

    #[test]
    fn monthly_steps_are_unchanged() {
        let m = Frequency::Monthly;
        assert_eq!(step_index(m, d("2026-01-31"), d("2026-03-01")), Ok(2));
        assert_eq!(date_at(m, d("2026-01-31"), 13), Ok(d("2027-02-01")));
    }
}
