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
/// Monthly dates may fall on any day of their month.
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
        Frequency::Monthly => {
            let m = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            Ok(m(date) - m(anchor))
        }
    }
}

/// Index of the last grid step on or before `date` (weekly: the week that
/// `date` falls in, whatever its weekday).
pub fn step_on_or_before(freq: Frequency, anchor: NaiveDate, date: NaiveDate) -> i64 {
    match freq {
        Frequency::Weekly => (date - anchor).num_days().div_euclid(7),
        Frequency::Daily => (date - anchor).num_days(),
        Frequency::Monthly => {
            let m = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            m(date) - m(anchor)
        }
    }
}

/// The date `steps` grid steps after `anchor` (monthly: first of the month).
pub fn date_at(freq: Frequency, anchor: NaiveDate, steps: i64) -> Result<NaiveDate, CalendarError> {
    let err = CalendarError::OutOfRange { anchor, steps };
    match freq {
        Frequency::Daily => anchor
            .checked_add_signed(chrono::Duration::days(steps))
            .ok_or(err),
        Frequency::Weekly => anchor
            .checked_add_signed(chrono::Duration::days(steps * 7))
            .ok_or(err),
        Frequency::Monthly => {
            let first = anchor.with_day(1).ok_or(err.clone())?;
            let months = Months::new(u32::try_from(steps.unsigned_abs()).map_err(|_| err.clone())?);
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
    }
}

/// Number of calendar features for `freq`.
pub fn feature_count(freq: Frequency) -> usize {
    match freq {
        Frequency::Daily => 9,
        Frequency::Weekly => 4,
        Frequency::Monthly => 12,
    }
}

/// Appends the calendar features of `date` to `out`: day-of-week one-hot
/// and annual sine/cosine for daily data, two annual harmonics of the week
/// of year for weekly data, month one-hot for monthly data.
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
    }
}
