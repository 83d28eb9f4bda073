//! Planner overrides: the rows planners write to the `overrides` table
//! (Parquet or CSV in the lake) and what they do to the next run.
//!
//! Three families, each row naming one series and a date range:
//! * **forecast**: `forecast_multiply` (value × the model) or
//!   `forecast_set` (the value replaces the model's mean) for the forecast
//!   dates in the range;
//! * **order**: `order_quantity` (the value replaces the planned quantity)
//!   or `order_reject` (no order) for the plan dates in the range;
//! * **exclude**: the series is neither ordered nor alerted on.
//!
//! Every row needs an `id`, an `author` and a `reason`; `created_at`, when
//! the row was written, is kept when the file has it (the API always
//! writes it). A bad row (unknown
//! kind or series, a missing field, a range ending before it starts, a
//! range overlapping an earlier row of the same family for the series, a
//! repeated id) is rejected with a message naming its file and row; the
//! valid rows still apply. Pure: `tasks/overrides.rs` reads the table.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

/// What an override does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    ForecastMultiply(f64),
    ForecastSet(f64),
    OrderQuantity(i64),
    OrderReject,
    Exclude,
}

/// Rows of one family may not overlap for a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Forecast,
    Order,
    Exclude,
}

impl Action {
    pub fn family(self) -> Family {
        match self {
            Action::ForecastMultiply(_) | Action::ForecastSet(_) => Family::Forecast,
            Action::OrderQuantity(_) | Action::OrderReject => Family::Order,
            Action::Exclude => Family::Exclude,
        }
    }

    /// How a report shows it: `×1.20`, `=40`, `qty 12`, `reject`, `exclude`.
    pub fn describe(self) -> String {
        match self {
            Action::ForecastMultiply(m) => format!("×{m:.2}"),
            Action::ForecastSet(v) => format!("={}", super::reason::qty(v)),
            Action::OrderQuantity(q) => format!("qty {q}"),
            Action::OrderReject => "reject".into(),
            Action::Exclude => "exclude".into(),
        }
    }
}

/// A row as read from the table, every field optional, with where it came
/// from (file and 1-based data row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRow {
    pub file: String,
    pub row: usize,
    pub id: Option<String>,
    pub kind: Option<String>,
    pub key: Vec<Option<String>>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub value: Option<f64>,
    pub author: Option<String>,
    /// When the row was written, as stored (the API stamps it).
    pub created_at: Option<String>,
    pub reason: Option<String>,
}

/// A validated override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub id: String,
    pub key: Vec<String>,
    /// Inclusive; `None` = open-ended.
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    pub action: Action,
    pub author: String,
    /// When it was written, as stored; `None` in a file without the column.
    pub created_at: Option<String>,
    pub reason: String,
}

impl Override {
    pub fn covers(&self, d: NaiveDate) -> bool {
        self.start.is_none_or(|s| s <= d) && self.end.is_none_or(|e| d <= e)
    }

    fn overlaps(&self, o: &Override) -> bool {
        let starts_before_other_ends = match (self.start, o.end) {
            (Some(s), Some(e)) => s <= e,
            _ => true,
        };
        let other_starts_before_end = match (o.start, self.end) {
            (Some(s), Some(e)) => s <= e,
            _ => true,
        };
        starts_before_other_ends && other_starts_before_end
    }

    /// `override O-12 by alice (×1.20): store opening`.
    pub fn label(&self) -> String {
        format!(
            "override {} by {} ({}): {}",
            self.id,
            self.author,
            self.action.describe(),
            self.reason
        )
    }
}

/// A row refused, with the reason in a sentence naming the row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub file: String,
    pub row: usize,
    pub message: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} row {}: {}", self.file, self.row, self.message)
    }
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// One row to an override, or why not (series are checked by `validate`).
fn parse(r: &RawRow) -> Result<Override, String> {
    let id = text(&r.id).ok_or("no `id`")?;
    let author = text(&r.author).ok_or_else(|| format!("override {id} has no `author`"))?;
    let reason = text(&r.reason)
        .ok_or_else(|| format!("override {id} has no `reason` (every override needs one)"))?;
    let kind = text(&r.kind).ok_or_else(|| format!("override {id} has no `kind`"))?;
    let value = |what: &str| {
        r.value
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("override {id} ({kind}) needs a `value` of 0 or more ({what})"))
    };
    let action = match kind {
        "forecast_multiply" => Action::ForecastMultiply(value("the multiplier")?),
        "forecast_set" => Action::ForecastSet(value("units per period")?),
        "order_quantity" => Action::OrderQuantity(value("units")?.round() as i64),
        "order_reject" => Action::OrderReject,
        "exclude" => Action::Exclude,
        other => {
            return Err(format!(
                "override {id} has unknown kind `{other}` (expected forecast_multiply, \
                 forecast_set, order_quantity, order_reject or exclude)"
            ));
        }
    };
    if let (Some(s), Some(e)) = (r.start_date, r.end_date) {
        if e < s {
            return Err(format!("override {id} ends ({e}) before it starts ({s})"));
        }
    }
    let mut key = Vec::with_capacity(r.key.len());
    for k in &r.key {
        key.push(
            text(k)
                .ok_or_else(|| format!("override {id} does not name its series"))?
                .into(),
        );
    }
    Ok(Override {
        id: id.into(),
        key,
        start: r.start_date,
        end: r.end_date,
        action,
        author: author.into(),
        created_at: text(&r.created_at).map(str::to_string),
        reason: reason.into(),
    })
}

/// Validates every row against the known series. Rows are taken in
/// order; a row overlapping an earlier valid one of the same family for
/// the same series is the one refused.
pub fn validate(rows: &[RawRow], known: &HashSet<Vec<String>>) -> (Vec<Override>, Vec<Rejected>) {
    let mut ok: Vec<Override> = Vec::new();
    let mut rejected = Vec::new();
    let mut ids: HashMap<String, (String, usize)> = HashMap::new();
    for r in rows {
        let reject = |message: String| Rejected {
            file: r.file.clone(),
            row: r.row,
            message,
        };
        let o = match parse(r) {
            Ok(o) => o,
            Err(m) => {
                rejected.push(reject(m));
                continue;
            }
        };
        if let Some((file, row)) = ids.get(&o.id) {
            rejected.push(reject(format!(
                "override id {} is already used by {file} row {row}",
                o.id
            )));
            continue;
        }
        if !known.contains(&o.key) {
            rejected.push(reject(format!(
                "override {} names series {}, which the run does not know",
                o.id,
                o.key.join("/")
            )));
            continue;
        }
        let family = o.action.family();
        if let Some(prev) = ok
            .iter()
            .find(|p| p.key == o.key && p.action.family() == family && p.overlaps(&o))
        {
            rejected.push(reject(format!(
                "override {} overlaps override {} for {} over the same dates",
                o.id,
                prev.id,
                o.key.join("/")
            )));
            continue;
        }
        ids.insert(o.id.clone(), (r.file.clone(), r.row));
        ok.push(o);
    }
    (ok, rejected)
}

/// The checks that need no knowledge of the run's series (fields, kinds,
/// ranges, repeated ids and overlaps among `rows`): what the API applies
/// before it stores rows; the run checks the series.
pub fn check_rows(rows: &[RawRow]) -> Vec<Rejected> {
    let known: HashSet<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.key
                .iter()
                .map(|k| k.clone().unwrap_or_default())
                .collect()
        })
        .collect();
    validate(rows, &known).1
}

/// The valid overrides by series, for lookups while writing rows.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    by_key: HashMap<Vec<String>, Vec<Override>>,
}

impl Overrides {
    pub fn new(list: Vec<Override>) -> Self {
        let mut by_key: HashMap<Vec<String>, Vec<Override>> = HashMap::new();
        for o in list {
            by_key.entry(o.key.clone()).or_default().push(o);
        }
        Self { by_key }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The override of `family` for the series on `date`, if any.
    pub fn find(&self, key: &[String], family: Family, date: NaiveDate) -> Option<&Override> {
        self.by_key
            .get(key)?
            .iter()
            .find(|o| o.action.family() == family && o.covers(date))
    }

    pub fn excluded(&self, key: &[String], date: NaiveDate) -> Option<&Override> {
        self.find(key, Family::Exclude, date)
    }
}

/// A forecast's mean and quantiles after a forecast override: a
/// multiplier scales every number; a set value becomes the mean, with the
/// quantiles scaled by the same ratio (all set to it when the model's mean
/// is 0).
pub fn adjust_forecast(action: Action, mean: f64, quantiles: &mut [f64]) -> f64 {
    let ratio = match action {
        Action::ForecastMultiply(m) => m,
        Action::ForecastSet(v) if mean > 0.0 => v / mean,
        Action::ForecastSet(v) => {
            quantiles.iter_mut().for_each(|q| *q = v);
            return v;
        }
        _ => return mean,
    };
    quantiles.iter_mut().for_each(|q| *q *= ratio);
    mean * ratio
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).expect("date")
    }

    fn row(n: usize, id: &str, kind: &str, sku: &str, from: u32, to: u32, value: f64) -> RawRow {
        RawRow {
            file: "overrides/planners.csv".into(),
            row: n,
            id: Some(id.into()),
            kind: Some(kind.into()),
            key: vec![Some("CA_1".into()), Some(sku.into())],
            start_date: Some(day(from)),
            end_date: Some(day(to)),
            value: Some(value),
            author: Some("alice".into()),
            created_at: None,
            reason: Some("store opening".into()),
        }
    }

    fn known() -> HashSet<Vec<String>> {
        ["A", "B"]
            .iter()
            .map(|s| vec!["CA_1".to_string(), s.to_string()])
            .collect()
    }

    #[test]
    fn bad_rows_are_refused_by_name_and_good_ones_kept() {
        let mut no_reason = row(3, "O-3", "order_reject", "A", 1, 9, 0.0);
        no_reason.reason = Some("  ".into());
        let rows = vec![
            row(1, "O-1", "forecast_multiply", "A", 1, 10, 1.5),
            row(2, "O-2", "forecast_set", "A", 8, 12, 40.0),
            no_reason,
            row(4, "O-4", "order_quantity", "Z", 1, 2, 5.0),
            row(5, "O-1", "exclude", "B", 1, 2, 0.0),
            row(6, "O-6", "forecast_bump", "B", 1, 2, 1.0),
            row(7, "O-7", "forecast_set", "B", 5, 2, 1.0),
            row(8, "O-8", "order_quantity", "A", 1, 31, 12.0),
            row(9, "O-9", "forecast_multiply", "A", 11, 20, 0.5),
        ];
        let (ok, bad) = validate(&rows, &known());
        let ids: Vec<&str> = ok.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["O-1", "O-8", "O-9"]);
        let msgs: Vec<String> = bad.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "overrides/planners.csv row 2: override O-2 overlaps override O-1 for CA_1/A over the same dates",
                "overrides/planners.csv row 3: override O-3 has no `reason` (every override needs one)",
                "overrides/planners.csv row 4: override O-4 names series CA_1/Z, which the run does not know",
                "overrides/planners.csv row 5: override id O-1 is already used by overrides/planners.csv row 1",
                "overrides/planners.csv row 6: override O-6 has unknown kind `forecast_bump` (expected forecast_multiply, forecast_set, order_quantity, order_reject or exclude)",
                "overrides/planners.csv row 7: override O-7 ends (2026-12-02) before it starts (2026-12-05)",
            ]
        );
    }

    #[test]
    fn lookups_follow_the_dates_and_families() {
        let rows = vec![
            row(1, "O-1", "forecast_multiply", "A", 1, 10, 1.5),
            row(2, "O-2", "exclude", "B", 3, 3, 0.0),
        ];
        let (ok, _) = validate(&rows, &known());
        let o = Overrides::new(ok);
        let a = vec!["CA_1".to_string(), "A".to_string()];
        let b = vec!["CA_1".to_string(), "B".to_string()];
        assert_eq!(
            o.find(&a, Family::Forecast, day(10)).map(|x| x.id.as_str()),
            Some("O-1")
        );
        assert!(o.find(&a, Family::Forecast, day(11)).is_none());
        assert!(o.find(&a, Family::Order, day(5)).is_none());
        assert!(o.excluded(&b, day(2)).is_none());
        assert!(o.excluded(&b, day(3)).is_some());
    }

    #[test]
    fn forecast_adjustments_scale_the_band() {
        let mut q = [2.0, 4.0, 8.0];
        assert_eq!(
            adjust_forecast(Action::ForecastMultiply(1.5), 4.0, &mut q),
            6.0
        );
        assert_eq!(q, [3.0, 6.0, 12.0]);
        let mut q = [2.0, 4.0, 8.0];
        assert_eq!(
            adjust_forecast(Action::ForecastSet(10.0), 5.0, &mut q),
            10.0
        );
        assert_eq!(q, [4.0, 8.0, 16.0]);
        let mut q = [0.0, 0.0, 0.0];
        assert_eq!(adjust_forecast(Action::ForecastSet(3.0), 0.0, &mut q), 3.0);
        assert_eq!(q, [3.0, 3.0, 3.0]);
    }
}
