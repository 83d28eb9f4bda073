//! The input side of the `train` and `forecast` kinds: which table holds
//! the demand history and how its columns map onto [`Series`]. The model
//! artifact store is [`super::model_store`]; how a `forecast` task takes
//! this mapping from its `train` task is [`super::inherit`].
//!
//! ```yaml
//! input: daily_sales          # a declared table; read at the run's ds when partitioned by ds
//! series_key: [store, sku]
//! group_by: category          # one model per distinct value
//! static_feature: department  # optional
//! date_column: date           # default `date`
//! value_column: units         # default `units`
//! future: promo_plan          # optional: planned price / on_promo after ds
//! events: calendar            # optional: `date` + string columns naming holidays/events
//! frequency: daily            # daily | weekly | monthly | quarterly | yearly
//! gaps: zero                  # zero | missing; default zero for daily, missing for weekly/monthly
//! ```
//!
//! `gaps:` says what a period without a row means: `zero` (nothing sold) or
//! `missing` (not recorded: left out of the loss, the scales and the
//! scores, and bridged in the model inputs). Every history is brought up
//! to the run's date by the same policy, so forecasts always cover the
//! `horizon` periods after the run's date.
//!
//! A `future:` plan missing some periods of a series keeps the periods it
//! has; the others get the last planned price and no promotion, and the
//! series is flagged `future_covariates_filled` (counted in the outputs).
//!
//! `events:` is read whole: every non-null value of a string column other
//! than `date` names an event on that date (e.g. `holiday`, `event`). It
//! should reach past the horizon, so the model sees the coming events.
//!
//! Covariates: without `covariates:`, `price` and `on_promo` columns are
//! used when the input has them. With it, exactly the columns listed are:
//!
//! ```yaml
//! covariates:
//!   known: [price, display, feature]   # in the history and, for the horizon, in `future:`
//!   past: [temperature]                # in the history only
//! ```
//!
//! `price` and `on_promo` keep their meaning (relative price, promotion
//! flag); any other numeric or boolean column is read as a number. A known
//! covariate's missing plan periods are 0 (counted as filled).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::tables::{self, Cols};
use super::{AttemptContext, KindCompileCx, TaskError};
use crate::forecast::{
    Covariate, EventCalendar, Frequency, FutureCovariates, GapPolicy, PrepareOptions, Series,
};

fn d_date() -> String {
    "date".into()
}
fn d_value() -> String {
    "units".into()
}
fn d_freq() -> Frequency {
    Frequency::Daily
}

/// Keys of [`InputSpec`], split off a task's mapping before the rest is
/// deserialized by the kind (serde cannot deny unknown fields across a
/// flattened struct).
pub const INPUT_KEYS: &[&str] = &[
    "input",
    "series_key",
    "group_by",
    "static_feature",
    "date_column",
    "value_column",
    "future",
    "events",
    "frequency",
    "gaps",
    "covariates",
];

/// Split a task's kind-specific mapping into the input part and the rest.
pub fn split(spec: serde_yaml::Value) -> (serde_yaml::Value, serde_yaml::Value) {
    let mut input = serde_yaml::Mapping::new();
    let mut rest = serde_yaml::Mapping::new();
    if let serde_yaml::Value::Mapping(m) = spec {
        for (k, v) in m {
            if k.as_str().is_some_and(|k| INPUT_KEYS.contains(&k)) {
                input.insert(k, v);
            } else {
                rest.insert(k, v);
            }
        }
    }
    (
        serde_yaml::Value::Mapping(input),
        serde_yaml::Value::Mapping(rest),
    )
}

/// The fields shared by `train` and `forecast`. Serialized (every field,
/// see [`InputSpec::resolved`]) into the `input` of a model's
/// `model.json`, and compared field by field through that form, so a key
/// added here is stored, inherited and checked with no further code (its
/// type needs `Serialize`, nothing more).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub input: String,
    pub series_key: Vec<String>,
    pub group_by: String,
    #[serde(default)]
    pub static_feature: Option<String>,
    #[serde(default = "d_date")]
    pub date_column: String,
    #[serde(default = "d_value")]
    pub value_column: String,
    #[serde(default)]
    pub future: Option<String>,
    #[serde(default)]
    pub events: Option<String>,
    #[serde(default = "d_freq")]
    pub frequency: Frequency,
    #[serde(default)]
    pub gaps: Option<GapPolicy>,
    #[serde(default)]
    pub covariates: Option<CovariateSpec>,
}

/// `covariates:` of a train/forecast task: the columns read as covariates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CovariateSpec {
    /// Known in advance: read from the history and from the `future:` plan.
    #[serde(default)]
    pub known: Vec<String>,
    /// Seen in the history only.
    #[serde(default)]
    pub past: Vec<String>,
}

/// Which covariates a read uses, resolved against the input's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Resolved {
    price: bool,
    promo: bool,
    /// Columns beyond price and on_promo, with whether each is known ahead.
    other: Vec<(String, bool)>,
}

impl Resolved {
    fn names(&self) -> String {
        let mut v: Vec<String> = Vec::new();
        if self.price {
            v.push("price (known)".into());
        }
        if self.promo {
            v.push("on_promo (known)".into());
        }
        for (n, known) in &self.other {
            v.push(format!("{n} ({})", if *known { "known" } else { "past" }));
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// How much of a `future:` plan had to be filled in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FutureFill {
    /// Series whose plan lacked some periods.
    pub series: usize,
    /// Periods filled (last planned price, no promotion).
    pub periods: usize,
}

impl InputSpec {
    /// The gap policy (the frequency's default unless given).
    pub fn gap_policy(&self) -> GapPolicy {
        self.gaps
            .unwrap_or_else(|| GapPolicy::default_for(self.frequency))
    }

    /// The same mapping with every default written out (the gap policy of
    /// the frequency), so that two specs that mean the same compare equal.
    pub fn resolved(&self) -> Self {
        Self {
            gaps: Some(self.gap_policy()),
            ..self.clone()
        }
    }

    /// How the forecast module prepares these series on the run's date.
    pub fn prepare_options(&self, ds: NaiveDate) -> PrepareOptions {
        PrepareOptions {
            gaps: self.gap_policy(),
            until: Some(ds),
        }
    }

    pub fn check(&self, cx: &mut KindCompileCx) -> bool {
        let mut ok = true;
        if self.series_key.is_empty() {
            cx.error("series_key", "needs at least one column");
            ok = false;
        }
        let names = self
            .series_key
            .iter()
            .chain([&self.group_by, &self.date_column, &self.value_column])
            .chain(self.static_feature.iter());
        for n in names {
            if let Err(e) = crate::lake::check_identifier(n) {
                cx.error("", format!("column `{n}`: {e}"));
                ok = false;
            }
        }
        if let Some(c) = &self.covariates {
            let mut seen = std::collections::BTreeSet::new();
            for n in c.known.iter().chain(&c.past) {
                if let Err(e) = crate::lake::check_identifier(n) {
                    cx.error("covariates", format!("column `{n}`: {e}"));
                    ok = false;
                } else if !seen.insert(n.as_str()) {
                    cx.error("covariates", format!("column `{n}` is listed twice"));
                    ok = false;
                }
            }
            for n in &c.past {
                if n == "price" || n == "on_promo" {
                    cx.error(
                        "covariates.past",
                        format!("`{n}` is a known-future covariate; list it under `known`"),
                    );
                    ok = false;
                }
            }
        }
        let tables = [
            ("input", Some(&self.input)),
            ("future", self.future.as_ref()),
            ("events", self.events.as_ref()),
        ];
        for (key, table) in tables {
            if let Some(table) = table {
                ok &= cx.reads_table(key, table);
            }
        }
        ok &= self.check_declared_columns(cx);
        ok
    }

    /// What the run reads from each table, checked against the columns
    /// the DAG declares for it (tables without `columns:` pass).
    fn check_declared_columns(&self, cx: &mut KindCompileCx) -> bool {
        let keys: Vec<&str> = self.series_key.iter().map(String::as_str).collect();
        let mut need = keys.clone();
        need.extend([
            self.group_by.as_str(),
            self.date_column.as_str(),
            self.value_column.as_str(),
        ]);
        need.extend(self.static_feature.as_deref());
        let mut ok = cx.needs_columns("input", &self.input, &need);
        if let Some(future) = &self.future {
            let mut need = keys.clone();
            need.push("date");
            ok &= cx.needs_columns("future", future, &need);
        }
        if let Some(events) = &self.events {
            ok &= cx.needs_columns("events", events, &["date"]);
        }
        ok
    }

    fn partition_filter(&self, cx: &AttemptContext, table: &str) -> String {
        match cx.dag.tables.get(table) {
            Some(t) if t.partition_by.iter().any(|c| c == "ds") => {
                format!("WHERE ds = '{}'", cx.vars.ds)
            }
            _ => String::new(),
        }
    }

    /// Read the history into one [`Series`] per key, with future
    /// covariates for `horizon` steps when a `future` table is given.
    pub async fn load(
        &self,
        cx: &AttemptContext,
        horizon: usize,
    ) -> Result<Vec<Series>, TaskError> {
        Ok(self.load_counted(cx, horizon).await?.0)
    }

    /// What the task actually reads and uses, for the attempt log: a
    /// covariate that is absent or a plan with no files is a silent
    /// fallback otherwise.
    fn settings_line(&self, present: &[String], cov: &Resolved) -> String {
        let optional = |what: &str, t: &Option<String>| match t {
            None => format!("{what} none"),
            Some(t) if present.iter().any(|p| p == t) => format!("{what} `{t}`"),
            Some(t) => format!("{what} `{t}` (no files: not used)"),
        };
        format!(
            "settings: frequency {}, history `{}` (key {}, date `{}`, value `{}`, one model per `{}`), \
             covariates {}, {}, {}, gaps {}",
            self.frequency.as_str(),
            self.input,
            self.series_key.join("+"),
            self.date_column,
            self.value_column,
            self.group_by,
            cov.names(),
            optional("future plan", &self.future),
            optional("events", &self.events),
            self.gap_policy().as_str(),
        )
    }

    /// The covariates a read uses: the listed ones, or without
    /// `covariates:` the `price` and `on_promo` columns the input has.
    fn resolve(&self, cols: &[String]) -> Resolved {
        let Some(c) = &self.covariates else {
            return Resolved {
                price: cols.iter().any(|c| c == "price"),
                promo: cols.iter().any(|c| c == "on_promo"),
                other: Vec::new(),
            };
        };
        let special = |n: &String| n == "price" || n == "on_promo";
        Resolved {
            price: c.known.iter().any(|n| n == "price"),
            promo: c.known.iter().any(|n| n == "on_promo"),
            other: c
                .known
                .iter()
                .filter(|n| !special(n))
                .map(|n| (n.clone(), true))
                .chain(c.past.iter().map(|n| (n.clone(), false)))
                .collect(),
        }
    }

    /// [`Self::load`], also saying how much of the `future:` plan was filled.
    pub async fn load_counted(
        &self,
        cx: &AttemptContext,
        horizon: usize,
    ) -> Result<(Vec<Series>, FutureFill), TaskError> {
        let optional: Vec<&str> = self.future.iter().map(String::as_str).collect();
        let mut required = vec![self.input.as_str()];
        required.extend(self.events.as_deref());
        let (ctx, present) = tables::session(cx, &required, &optional).await?;
        let cols = tables::columns(&ctx, &self.input).await?;
        let mut need: Vec<&str> = self.series_key.iter().map(String::as_str).collect();
        need.extend([
            self.group_by.as_str(),
            self.date_column.as_str(),
            self.value_column.as_str(),
        ]);
        if let Some(s) = &self.static_feature {
            need.push(s);
        }
        let cov = self.resolve(&cols);
        need.extend(cov.other.iter().map(|(n, _)| n.as_str()));
        if self.covariates.is_some() {
            need.extend(cov.price.then_some("price"));
            need.extend(cov.promo.then_some("on_promo"));
        }
        tables::require(&self.input, &cols, &need)?;
        let (has_price, has_promo) = (cov.price, cov.promo);
        // The forecast task's first read (horizon 0) is followed by one
        // with the future plan; the settings are said once.
        if horizon > 0 || self.future.is_none() {
            cx.log.progress(&self.settings_line(&present, &cov));
        }
        let keys = self.series_key.join(", ");
        let mut select = format!(
            "SELECT {keys}, {g} AS __group, {d} AS __date, CAST({v} AS DOUBLE) AS __value",
            g = self.group_by,
            d = self.date_column,
            v = self.value_column
        );
        if let Some(s) = &self.static_feature {
            select.push_str(&format!(", CAST({s} AS VARCHAR) AS __static"));
        }
        if has_price {
            select.push_str(", CAST(price AS DOUBLE) AS __price");
        }
        if has_promo {
            select.push_str(", CAST(on_promo AS BOOLEAN) AS __promo");
        }
        for (i, (n, _)) in cov.other.iter().enumerate() {
            select.push_str(&format!(", CAST({n} AS DOUBLE) AS __cov{i}"));
        }
        // No ORDER BY: sorting 20 M rows in DataFusion holds them all at
        // once. Rows are folded into their series as batches stream in, and
        // each series is put in date order afterwards.
        let sql = format!(
            "{select} FROM {} {}",
            self.input,
            self.partition_filter(cx, &self.input)
        );
        let mut stream = tables::query_stream(&ctx, &cx.task_id, &sql).await?;
        let cov_cols: Vec<String> = (0..cov.other.len()).map(|i| format!("__cov{i}")).collect();
        let mut series: BTreeMap<Vec<String>, Series> = BTreeMap::new();
        while let Some(batch) = stream.next().await {
            let b = &batch.map_err(|e| tables::read_failed(&cx.task_id, e))?;
            let c = Cols::new(b, &self.input);
            let promo = b.column_by_name("__promo").map(|a| {
                use arrow::array::AsArray;
                a.as_boolean().clone()
            });
            for r in 0..b.num_rows() {
                let mut key = Vec::with_capacity(self.series_key.len());
                for k in &self.series_key {
                    key.push(c.str(k, r)?.unwrap_or_default());
                }
                let Some(date) = c.date("__date", r)? else {
                    continue;
                };
                let s = series.entry(key.clone()).or_insert_with(|| Series {
                    key,
                    group: String::new(),
                    static_feature: None,
                    dates: Vec::new(),
                    values: Vec::new(),
                    price: has_price.then(Vec::new),
                    on_promo: has_promo.then(Vec::new),
                    future: None,
                    events: None,
                    covariates: cov
                        .other
                        .iter()
                        .map(|(name, known)| Covariate {
                            name: name.clone(),
                            known: *known,
                            ..Covariate::default()
                        })
                        .collect(),
                });
                if s.group.is_empty() {
                    s.group = c.str("__group", r)?.unwrap_or_else(|| "unknown".into());
                    if self.static_feature.is_some() {
                        s.static_feature = c.str("__static", r)?;
                    }
                }
                s.dates.push(date);
                s.values.push(c.f64("__value", r)?.unwrap_or(f64::NAN));
                if let Some(p) = s.price.as_mut() {
                    p.push(c.f64("__price", r)?.unwrap_or(f64::NAN));
                }
                if let (Some(v), Some(a)) = (s.on_promo.as_mut(), promo.as_ref()) {
                    use arrow::array::Array;
                    v.push(!a.is_null(r) && a.value(r));
                }
                for (cv, col) in s.covariates.iter_mut().zip(&cov_cols) {
                    cv.values.push(c.f64(col, r)?.unwrap_or(f64::NAN));
                }
            }
        }
        drop(stream);
        for s in series.values_mut() {
            sort_by_date(s);
        }
        let mut fill = FutureFill::default();
        if let Some(future) = self
            .future
            .as_deref()
            .filter(|f| present.iter().any(|p| p == f))
        {
            fill = self
                .load_future(cx, &ctx, future, horizon, &mut series)
                .await?;
            if fill.series > 0 {
                cx.log.progress(&format!(
                    "future plan `{future}`: {} series lacked {} period(s) of the {horizon}; filled with the last planned price and no promotion",
                    fill.series, fill.periods
                ));
            }
        }
        if let Some(table) = &self.events {
            let events = std::sync::Arc::new(load_events(cx, &ctx, table).await?);
            cx.log.line(&format!(
                "events from `{table}`: {} name(s), known until {}",
                events.names().len(),
                events
                    .last_date()
                    .map_or_else(|| "-".to_string(), |d| d.to_string())
            ));
            for s in series.values_mut() {
                s.events = Some(std::sync::Arc::clone(&events));
            }
        }
        Ok((series.into_values().collect(), fill))
    }

    async fn load_future(
        &self,
        cx: &AttemptContext,
        ctx: &datafusion::prelude::SessionContext,
        table: &str,
        horizon: usize,
        series: &mut BTreeMap<Vec<String>, Series>,
    ) -> Result<FutureFill, TaskError> {
        let cols = tables::columns(ctx, table).await?;
        let mut need: Vec<&str> = self.series_key.iter().map(String::as_str).collect();
        need.push("date");
        let cov = self.resolve(&cols);
        let known: Vec<&str> = cov
            .other
            .iter()
            .filter(|(_, k)| *k)
            .map(|(n, _)| n.as_str())
            .collect();
        need.extend(&known);
        tables::require(table, &cols, &need)?;
        // The plan may lack price or on_promo even where the history has them.
        let has_price = cov.price && cols.iter().any(|c| c == "price");
        let has_promo = cov.promo && cols.iter().any(|c| c == "on_promo");
        let keys = self.series_key.join(", ");
        let end = tables::ds_minus(&cx.vars.ds, -(horizon as i64) * self.frequency.max_days());
        let extra: String = known
            .iter()
            .enumerate()
            .map(|(i, n)| format!(", CAST({n} AS DOUBLE) AS __cov{i}"))
            .collect();
        let sql = format!(
            "SELECT {keys}, date, {} AS __price, {} AS __promo{extra} FROM {table}
             WHERE date > DATE '{ds}' AND date <= DATE '{end}' ORDER BY {keys}, date",
            if has_price {
                "CAST(price AS DOUBLE)"
            } else {
                "CAST(NULL AS DOUBLE)"
            },
            if has_promo {
                "CAST(on_promo AS BOOLEAN)"
            } else {
                "CAST(NULL AS BOOLEAN)"
            },
            ds = cx.vars.ds,
        );
        let batches = tables::query(ctx, &cx.task_id, &sql).await?;
        let ds = cx.ds_date()?;
        type Plan = (Vec<f64>, Vec<Option<bool>>, Vec<Vec<f64>>);
        let mut plans: BTreeMap<Vec<String>, Plan> = BTreeMap::new();
        let cov_cols: Vec<String> = (0..known.len()).map(|i| format!("__cov{i}")).collect();
        for b in &batches {
            let c = Cols::new(b, table);
            for r in 0..b.num_rows() {
                let mut key = Vec::with_capacity(self.series_key.len());
                for k in &self.series_key {
                    key.push(c.str(k, r)?.unwrap_or_default());
                }
                let Some(date) = c.date("date", r)? else {
                    continue;
                };
                let Some(k) = future_step(self.frequency, ds, date).filter(|&k| k < horizon) else {
                    continue;
                };
                let e = plans.entry(key).or_insert_with(|| {
                    (
                        vec![f64::NAN; horizon],
                        vec![None; horizon],
                        vec![vec![f64::NAN; horizon]; known.len()],
                    )
                });
                e.0[k] = c.f64("__price", r)?.unwrap_or(f64::NAN);
                e.1[k] = Some(c.f64("__promo", r).ok().flatten().is_some_and(|v| v > 0.0));
                for (plan, col) in e.2.iter_mut().zip(&cov_cols) {
                    plan[k] = c.f64(col, r)?.unwrap_or(f64::NAN);
                }
            }
        }
        let mut fill = FutureFill::default();
        for (key, (price, promo, planned)) in plans {
            let Some(s) = series.get_mut(&key) else {
                continue;
            };
            for (c, plan) in s.covariates.iter_mut().filter(|c| c.known).zip(planned) {
                c.future = Some(plan);
            }
            let missing = promo.iter().filter(|p| p.is_none()).count();
            if missing > 0 {
                fill.series += 1;
                fill.periods += missing;
            }
            let any_price = price.iter().any(|p| p.is_finite());
            s.future = Some(FutureCovariates {
                price: (has_price && any_price).then_some(price),
                on_promo: has_promo.then(|| promo.iter().map(|p| p.unwrap_or(false)).collect()),
                filled: missing,
            });
        }
        Ok(fill)
    }
}

/// Step (0-based) of a planned date among the horizon after `ds`: daily the
/// days after it, weekly the 7-day blocks after it, monthly, quarterly and
/// yearly the calendar periods.
fn future_step(freq: Frequency, ds: NaiveDate, date: NaiveDate) -> Option<usize> {
    let days = (date - ds).num_days();
    let k = match freq {
        Frequency::Daily => days - 1,
        Frequency::Weekly => (days - 1).div_euclid(7),
        Frequency::Monthly | Frequency::Quarterly | Frequency::Yearly => {
            crate::forecast::calendar::step_on_or_before(freq, ds, date) - 1
        }
    };
    usize::try_from(k).ok().filter(|_| days > 0)
}

/// The event calendar: `date` plus every string column's non-null values.
pub(super) async fn load_events(
    cx: &AttemptContext,
    ctx: &datafusion::prelude::SessionContext,
    table: &str,
) -> Result<EventCalendar, TaskError> {
    use arrow::datatypes::DataType;
    let df = ctx
        .table(table)
        .await
        .map_err(|e| TaskError::Fatal(format!("table `{table}`: {}", e.strip_backtrace())))?;
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .filter(|f| {
            f.name() != "date"
                && matches!(
                    f.data_type(),
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Dictionary(_, _)
                )
        })
        .map(|f| f.name().clone())
        .collect();
    let cols = tables::columns(ctx, table).await?;
    tables::require(table, &cols, &["date"])?;
    if names.is_empty() {
        return Err(TaskError::Fatal(format!(
            "table `{table}` has no string column naming events (besides `date`)"
        )));
    }
    let select: Vec<String> = names
        .iter()
        .map(|n| crate::template::quote_ident(n))
        .collect();
    let batches = tables::query(
        ctx,
        &cx.task_id,
        &format!("SELECT date, {} FROM {table}", select.join(", ")),
    )
    .await?;
    let mut entries = Vec::new();
    for b in &batches {
        let c = Cols::new(b, table);
        for r in 0..b.num_rows() {
            let Some(date) = c.date("date", r)? else {
                continue;
            };
            for n in &names {
                if let Some(v) = c.str(n, r)? {
                    entries.push((date, v));
                }
            }
        }
    }
    Ok(EventCalendar::new(entries))
}

/// Put a series' observations in date order (stable, so rows of the same
/// date keep the order they were read in).
fn sort_by_date(s: &mut Series) {
    if s.dates.is_sorted() {
        return;
    }
    let mut order: Vec<usize> = (0..s.dates.len()).collect();
    order.sort_by_key(|&i| s.dates[i]);
    fn permute<T: Copy>(v: &mut Vec<T>, order: &[usize]) {
        *v = order.iter().map(|&i| v[i]).collect();
    }
    permute(&mut s.dates, &order);
    permute(&mut s.values, &order);
    if let Some(p) = s.price.as_mut() {
        permute(p, &order);
    }
    if let Some(p) = s.on_promo.as_mut() {
        permute(p, &order);
    }
    for c in &mut s.covariates {
        permute(&mut c.values, &order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(covariates: Option<CovariateSpec>) -> InputSpec {
        let mut s: InputSpec =
            serde_yaml::from_str("{input: sales, series_key: [sku], group_by: category}")
                .expect("spec");
        s.covariates = covariates;
        s
    }

    #[test]
    fn covariates_are_the_listed_columns_or_by_default_price_and_on_promo() {
        let cols: Vec<String> = ["sku", "price", "on_promo", "display", "temp"]
            .map(String::from)
            .to_vec();
        let default = spec(None).resolve(&cols);
        assert!(default.price && default.promo && default.other.is_empty());
        let listed = spec(Some(CovariateSpec {
            known: vec!["price".into(), "display".into()],
            past: vec!["temp".into()],
        }))
        .resolve(&cols);
        assert!(listed.price && !listed.promo);
        assert_eq!(
            listed.other,
            vec![("display".to_string(), true), ("temp".to_string(), false)]
        );
        assert_eq!(
            listed.names(),
            "price (known), display (known), temp (past)"
        );
    }

    #[test]
    fn rows_read_out_of_order_are_put_in_date_order_with_their_covariates() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).expect("date");
        let mut s = Series {
            key: vec!["CA_1".into(), "FOODS_1_001".into()],
            group: "FOODS".into(),
            static_feature: None,
            dates: vec![d(3), d(1), d(2)],
            values: vec![3.0, 1.0, 2.0],
            price: Some(vec![3.5, 1.5, 2.5]),
            on_promo: Some(vec![true, false, false]),
            future: None,
            events: None,
            covariates: vec![Covariate {
                name: "display".into(),
                known: true,
                values: vec![0.3, 0.1, 0.2],
                future: None,
            }],
        };
        sort_by_date(&mut s);
        assert_eq!(s.covariates[0].values, vec![0.1, 0.2, 0.3]);
        assert_eq!(s.dates, vec![d(1), d(2), d(3)]);
        assert_eq!(s.values, vec![1.0, 2.0, 3.0]);
        assert_eq!(s.price, Some(vec![1.5, 2.5, 3.5]));
        assert_eq!(s.on_promo, Some(vec![false, false, true]));
    }
}
