//! Turning a prepared series into model inputs for one forecast origin:
//! per-series scaling, the encoder sequence, static features, and the
//! future-known covariates of each horizon step. Owns the feature list
//! (names and order) that artifacts record and check on load.

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::calendar::{self, CalendarError};
use super::config::Frequency;
use super::events::{self, EventCalendar};
use super::network::NetworkSpec;
use super::prepare::Prepared;
use super::series::Flag;

/// Which inputs the model reads, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureLayout {
    pub frequency: Frequency,
    pub context: usize,
    pub horizon: usize,
    pub has_price: bool,
    pub has_promo: bool,
    /// Known values of the static feature, one-hot encoded in this order.
    pub static_categories: Vec<String>,
    /// Names of the events the model reads (before/on/after flags each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The dates behind `events`, attached at run time: artifacts keep the
    /// names, every run reads the calendar from the lake.
    #[serde(skip)]
    pub event_calendar: AttachedEvents,
    /// The named covariates (`covariates: {known, past}`): every one in
    /// the encoder, the known ones in the decoder too, each relative to
    /// its mean absolute value over the group's history
    /// ([`CovariateInput::input`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covariates: Vec<CovariateInput>,
}

/// One named covariate the model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CovariateInput {
    pub name: String,
    /// Known ahead: read in the horizon from the plan.
    pub known: bool,
    pub scale: f64,
}

impl CovariateInput {
    /// The network's input for value `v`: relative to the group's mean
    /// absolute value, on a signed log scale so that a rare large value
    /// (a display in every store of a chain that seldom has one) stays
    /// within a few units.
    fn input(&self, v: f64) -> f32 {
        let x = v / self.scale;
        (x.signum() * x.abs().ln_1p()) as f32
    }
}

/// An [`EventCalendar`] attached to a layout. Layouts compare equal
/// whatever calendar is attached: the names are what a model depends on.
#[derive(Clone, Default)]
pub struct AttachedEvents(pub Option<Arc<EventCalendar>>);

impl PartialEq for AttachedEvents {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for AttachedEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "attached" } else { "none" })
    }
}

/// Inputs of one window, ready to be copied into a batch.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// context × enc_features, row-major.
    pub enc: Vec<f32>,
    /// static features, then horizon × dec_features.
    pub dec: Vec<f32>,
    /// Mean absolute demand over the context (1.0 when that is zero).
    pub scale: f64,
    /// Conditions noticed while building (assumed covariates, unknown static).
    pub flags: Vec<Flag>,
}

/// The scale of a window: the mean absolute demand over its context, 1
/// when that is zero. Targets and the demand input are divided by it.
pub fn context_scale(context: &[f64]) -> f64 {
    let mean_abs = context.iter().map(|v| v.abs()).sum::<f64>() / context.len().max(1) as f64;
    if mean_abs > 0.0 { mean_abs } else { 1.0 }
}

impl FeatureLayout {
    /// The layout for a group: price/promotion are used when any series has
    /// them; the static categories are the sorted distinct values.
    pub fn for_group(series: &[Prepared], freq: Frequency, context: usize, horizon: usize) -> Self {
        let mut cats: Vec<String> = series
            .iter()
            .filter_map(|s| s.static_feature.clone())
            .collect();
        cats.sort();
        cats.dedup();
        Self {
            frequency: freq,
            context,
            horizon,
            has_price: series.iter().any(|s| s.price.is_some()),
            has_promo: series.iter().any(|s| s.promo.is_some()),
            static_categories: cats,
            events: Vec::new(),
            event_calendar: AttachedEvents::default(),
            covariates: super::regression::covariate_scales(series)
                .into_iter()
                .map(|(name, known, scale)| CovariateInput { name, known, scale })
                .collect(),
        }
    }

    /// Reads the events of `calendar` that occur between `from` and `to`
    /// (the group's dates and its horizon).
    pub fn with_events(
        mut self,
        calendar: Option<Arc<EventCalendar>>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Self {
        if let Some(c) = &calendar {
            self.events = c.names_between(from, to);
        }
        self.event_calendar = AttachedEvents(calendar);
        self
    }

    fn push_events(&self, date: NaiveDate, bits: &[Option<u32>], out: &mut Vec<f32>) {
        match &self.event_calendar.0 {
            Some(c) => c.features(self.frequency, date, bits, out),
            None => out.extend(std::iter::repeat_n(0.0, 3 * self.events.len())),
        }
    }

    fn covariate_names(&self) -> Vec<String> {
        let mut v = calendar::feature_names(self.frequency);
        v.extend(events::feature_names(&self.events));
        if self.has_price {
            v.push("price_rel".into());
        }
        if self.has_promo {
            v.push("on_promo".into());
        }
        v
    }

    /// Names of the per-step encoder inputs.
    pub fn enc_names(&self) -> Vec<String> {
        let mut v = vec!["demand_scaled".to_string()];
        v.extend(self.covariate_names());
        v.extend(self.covariates.iter().map(|c| c.name.clone()));
        v
    }

    /// Names of the per-step known future inputs.
    pub fn dec_names(&self) -> Vec<String> {
        let mut v = self.covariate_names();
        v.extend(
            self.covariates
                .iter()
                .filter(|c| c.known)
                .map(|c| c.name.clone()),
        );
        v
    }

    /// Names of the static inputs.
    pub fn static_names(&self) -> Vec<String> {
        let mut v = vec!["log_scale".to_string()];
        v.extend(self.static_categories.iter().map(|c| format!("static={c}")));
        v
    }

    /// Network shapes for this layout.
    pub fn spec(&self, hidden: usize, layers: usize, quantiles: usize) -> NetworkSpec {
        NetworkSpec {
            enc_features: self.enc_names().len(),
            dec_features: self.dec_names().len(),
            static_features: self.static_names().len(),
            hidden,
            layers,
            horizon: self.horizon,
            quantiles,
        }
    }

    /// Builds the inputs for forecast origin `t` (context `[t−C, t)`,
    /// horizon `[t, t+H)`). Needs `t ≥ C` and `t ≤ len`. Horizon covariates
    /// come from the history when `t + H ≤ len`, otherwise from the
    /// series' future covariates, or last price / no promotion if absent.
    pub fn window(&self, s: &Prepared, t: usize) -> Result<Window, CalendarError> {
        let c = self.context;
        let scale = context_scale(&s.values[t - c..t]);
        let price_ref = s.price.as_ref().map(|p| {
            let m = p[t - c..t].iter().sum::<f64>() / c as f64;
            if m > 0.0 { m } else { 1.0 }
        });
        let mut w = Window {
            enc: Vec::with_capacity(c * self.enc_names().len()),
            dec: Vec::with_capacity(self.static_names().len() + self.horizon * 16),
            scale,
            flags: Vec::new(),
        };
        let anchor = s.dates[0];
        let bits = match &self.event_calendar.0 {
            Some(c) => c.bits(&self.events),
            None => Vec::new(),
        };
        // The series' own column for each covariate of the layout.
        let named: Vec<Option<&super::series::Covariate>> = self
            .covariates
            .iter()
            .map(|c| s.covariates.iter().find(|x| x.name == c.name))
            .collect();
        for i in t - c..t {
            w.enc.push((s.values[i] / scale) as f32);
            calendar::features(self.frequency, s.dates[i], &mut w.enc);
            self.push_events(s.dates[i], &bits, &mut w.enc);
            if self.has_price {
                let p = match (&s.price, price_ref) {
                    (Some(p), Some(r)) => p[i] / r,
                    _ => 1.0,
                };
                w.enc.push(p as f32);
            }
            if self.has_promo {
                w.enc.push(s.promo.as_ref().map_or(0.0, |p| p[i] as f32));
            }
            for (c, series) in self.covariates.iter().zip(&named) {
                let v = series.and_then(|x| x.values.get(i)).copied();
                w.enc.push(v.map_or(0.0, |v| c.input(v)));
            }
        }
        w.dec.push(scale.ln_1p() as f32);
        let mut known = false;
        for cat in &self.static_categories {
            let hit = s.static_feature.as_deref() == Some(cat.as_str());
            known |= hit;
            w.dec.push(if hit { 1.0 } else { 0.0 });
        }
        if s.static_feature.is_some() && !known {
            w.flags.push(Flag::UnknownStaticFeature);
        }
        let n = s.values.len();
        let mut assumed = false;
        for k in 0..self.horizon {
            let idx = t + k;
            let date = calendar::date_at(self.frequency, anchor, idx as i64)?;
            calendar::features(self.frequency, date, &mut w.dec);
            self.push_events(date, &bits, &mut w.dec);
            if self.has_price {
                let r = price_ref.unwrap_or(1.0);
                let last = s.price.as_ref().and_then(|p| p.get(t - 1)).copied();
                let p = if idx < n {
                    s.price.as_ref().map(|p| p[idx])
                } else {
                    let f = s
                        .future_price
                        .as_ref()
                        .and_then(|p| p.get(idx - n))
                        .copied();
                    if f.is_none() && s.price.is_some() {
                        assumed = true;
                    }
                    f.or(last)
                };
                w.dec.push(p.map_or(1.0, |p| p / r) as f32);
            }
            if self.has_promo {
                let p = if idx < n {
                    s.promo.as_ref().map(|p| p[idx])
                } else {
                    let f = s
                        .future_promo
                        .as_ref()
                        .and_then(|p| p.get(idx - n))
                        .copied();
                    if f.is_none() && s.promo.is_some() {
                        assumed = true;
                    }
                    f
                };
                w.dec.push(p.unwrap_or(0.0) as f32);
            }
            for (c, series) in self.covariates.iter().zip(&named) {
                if !c.known {
                    continue;
                }
                let v = match series {
                    Some(x) if idx < n => x.values.get(idx).copied(),
                    Some(x) => x.future.as_ref().and_then(|f| f.get(idx - n)).copied(),
                    None => None,
                };
                let v = v.filter(|v| v.is_finite());
                assumed |= v.is_none() && series.is_some();
                w.dec.push(v.map_or(0.0, |v| c.input(v)));
            }
        }
        if assumed {
            w.flags.push(Flag::FutureCovariatesAssumed);
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::prepare::prepare;
    use crate::forecast::series::{Covariate, Series};

    #[test]
    fn named_covariates_enter_the_encoder_and_known_ones_the_decoder() {
        // Six days; `display` is known (planned 4 then 8 ahead), `traffic`
        // past-only. Means of absolute values: display 2, traffic 10.
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
        let s = Series {
            key: vec!["a".into()],
            group: "G".into(),
            dates: (0..6).map(|i| start + chrono::Days::new(i)).collect(),
            values: vec![1.0; 6],
            covariates: vec![
                Covariate {
                    name: "display".into(),
                    known: true,
                    values: vec![0.0, 2.0, 4.0, 0.0, 2.0, 4.0],
                    future: Some(vec![4.0, 8.0]),
                },
                Covariate {
                    name: "traffic".into(),
                    known: false,
                    values: vec![10.0; 6],
                    future: None,
                },
            ],
            ..Series::default()
        };
        let p = prepare(&s, Frequency::Daily, 6).expect("prepare");
        let layout = FeatureLayout::for_group(std::slice::from_ref(&p), Frequency::Daily, 4, 3);
        let enc = layout.enc_names();
        assert_eq!(enc[enc.len() - 2..], ["display", "traffic"]);
        let dec = layout.dec_names();
        assert_eq!(dec.last().map(String::as_str), Some("display"));
        assert!(!dec.iter().any(|n| n == "traffic"));
        // Origin 5: context days 1..=4, horizon day 5 (history) then the
        // plan's 4 and 8.
        let w = layout.window(&p, 5).expect("window");
        let width = enc.len();
        let last_step = &w.enc[3 * width..];
        let one = 2f32.ln(); // ln(1 + 1): display 2 / 2, traffic 10 / 10
        assert_eq!(last_step[width - 2..], [one, one]);
        let step = dec.len();
        let statics = layout.static_names().len();
        let display_at = |k: usize| w.dec[statics + k * step + step - 1];
        let expect = [2.0f64, 2.0, 4.0].map(|x| x.ln_1p() as f32);
        assert_eq!([display_at(0), display_at(1), display_at(2)], expect);
        assert!(w.flags.is_empty(), "{:?}", w.flags);
    }
}
