//! Cleaning of raw series before any model sees them: sorting, summing
//! duplicate dates, filling calendar gaps with zeros, clamping returns,
//! treating NaN as missing, and flagging all-zero, intermittent and
//! short (cold-start) histories. Owns nothing about models.

use chrono::NaiveDate;

use super::calendar::{self, CalendarError};
use super::config::Frequency;
use super::series::{Flag, Quality, Series};

/// Errors in the input data; all are user faults and name the series.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PrepareError {
    #[error("series {key:?}: {field} has {got} entries, expected {expected}")]
    Length {
        key: Vec<String>,
        field: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("series {key:?} has no observations")]
    Empty { key: Vec<String> },
    #[error("series {key:?}: {source}")]
    Calendar {
        key: Vec<String>,
        source: CalendarError,
    },
}

/// A series on a gap-free grid with clean, non-negative values.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub key: Vec<String>,
    pub group: String,
    pub static_feature: Option<String>,
    /// Consecutive grid dates (monthly: first of month).
    pub dates: Vec<NaiveDate>,
    pub values: Vec<f64>,
    /// Price per date, forward-filled (then back-filled) over gaps and NaN.
    pub price: Option<Vec<f64>>,
    /// 1.0 on promotion, else 0.0.
    pub promo: Option<Vec<f64>>,
    pub future_price: Option<Vec<f64>>,
    pub future_promo: Option<Vec<f64>>,
    pub quality: Quality,
}

impl Prepared {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The last observed date.
    pub fn last_date(&self) -> Option<NaiveDate> {
        self.dates.last().copied()
    }
}

/// Prepares one series. `min_len` is the history needed to train the
/// global model (context + horizon); shorter series are flagged cold start.
pub fn prepare(s: &Series, freq: Frequency, min_len: usize) -> Result<Prepared, PrepareError> {
    let key = s.key.clone();
    let n_in = s.dates.len();
    let check = |field: &'static str, got: usize| {
        if got == n_in {
            Ok(())
        } else {
            Err(PrepareError::Length {
                key: key.clone(),
                field,
                got,
                expected: n_in,
            })
        }
    };
    check("values", s.values.len())?;
    if let Some(p) = &s.price {
        check("price", p.len())?;
    }
    if let Some(p) = &s.on_promo {
        check("on_promo", p.len())?;
    }
    if n_in == 0 {
        return Err(PrepareError::Empty { key });
    }
    let cal = |source| PrepareError::Calendar {
        key: key.clone(),
        source,
    };

    let mut order: Vec<usize> = (0..n_in).collect();
    order.sort_by_key(|&i| s.dates[i]);
    let anchor = s.dates[order[0]];
    let last = s.dates[order[n_in - 1]];
    let n =
        usize::try_from(calendar::step_index(freq, anchor, last).map_err(cal)?).unwrap_or(0) + 1;

    let mut quality = Quality::default();
    let mut values = vec![f64::NAN; n];
    let mut seen = vec![false; n];
    let mut price = s.price.as_ref().map(|_| vec![f64::NAN; n]);
    let mut promo = s.on_promo.as_ref().map(|_| vec![0.0; n]);
    for &i in &order {
        let idx = usize::try_from(calendar::step_index(freq, anchor, s.dates[i]).map_err(cal)?)
            .unwrap_or(0);
        let v = s.values[i];
        if seen[idx] {
            quality.add(Flag::DuplicateDates);
            if !v.is_nan() {
                values[idx] = if values[idx].is_nan() {
                    v
                } else {
                    values[idx] + v
                };
            }
        } else {
            values[idx] = v;
            seen[idx] = true;
        }
        if let (Some(out), Some(src)) = (price.as_mut(), s.price.as_ref()) {
            out[idx] = src[i];
        }
        if let (Some(out), Some(src)) = (promo.as_mut(), s.on_promo.as_ref()) {
            if src[i] {
                out[idx] = 1.0;
            }
        }
    }
    for (v, seen) in values.iter_mut().zip(&seen) {
        if !seen {
            quality.gaps_filled += 1;
            *v = 0.0;
        } else if v.is_nan() {
            quality.missing += 1;
            *v = 0.0;
        } else if *v < 0.0 {
            quality.negatives_clamped += 1;
            *v = 0.0;
        }
    }
    if quality.gaps_filled > 0 {
        quality.add(Flag::GapsFilled);
    }
    if quality.missing > 0 {
        quality.add(Flag::MissingValues);
    }
    if quality.negatives_clamped > 0 {
        quality.add(Flag::NegativeClamped);
    }
    let nonzero = values.iter().filter(|&&v| v > 0.0).count();
    if nonzero == 0 {
        quality.add(Flag::AllZero);
    } else if n as f64 / nonzero as f64 > 1.32 {
        quality.add(Flag::Intermittent);
    }
    if n < min_len {
        quality.add(Flag::ColdStart);
    }
    if let Some(p) = price.as_mut() {
        fill_price(p);
    }

    let mut dates = Vec::with_capacity(n);
    let grid_anchor = calendar::date_at(freq, anchor, 0).map_err(cal)?;
    for k in 0..n {
        dates.push(calendar::date_at(freq, grid_anchor, k as i64).map_err(cal)?);
    }

    let future = s.future.as_ref();
    let future_price = future.and_then(|f| f.price.as_ref()).map(|p| {
        let mut p = p.clone();
        fill_price(&mut p);
        p
    });
    let future_promo = future
        .and_then(|f| f.on_promo.as_ref())
        .map(|p| p.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect());

    Ok(Prepared {
        key,
        group: s.group.clone(),
        static_feature: s.static_feature.clone(),
        dates,
        values,
        price,
        promo,
        future_price,
        future_promo,
        quality,
    })
}

/// Forward-fills NaN or non-positive prices, then back-fills the leading
/// ones; an all-missing price becomes 1.0 (relative prices are then flat).
fn fill_price(p: &mut [f64]) {
    let valid = |x: f64| x.is_finite() && x > 0.0;
    let mut last = p.iter().copied().find(|&x| valid(x)).unwrap_or(1.0);
    for x in p.iter_mut() {
        if valid(*x) {
            last = *x;
        } else {
            *x = last;
        }
    }
}

/// Prepares a group's series and flags a group of one.
pub fn prepare_group(
    series: &[Series],
    freq: Frequency,
    min_len: usize,
) -> Result<Vec<Prepared>, PrepareError> {
    let mut out = series
        .iter()
        .map(|s| prepare(s, freq, min_len))
        .collect::<Result<Vec<_>, _>>()?;
    if out.len() == 1 {
        out[0].quality.add(Flag::SingleSeriesGroup);
    }
    Ok(out)
}
