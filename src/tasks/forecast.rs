//! The `forecast` kind: loads the newest model of each group (on or before
//! the run's date; the one `train` saved in the same run when it trained)
//! and forecasts every series `horizon` steps from the run's date into
//! `forecasts/ds=…/`: series keys, group, forecast_date, step, one column
//! per quantile, mean, model_id, model_kind (the group's champion from the
//! backtest: lstm or a baseline) and data-quality flags.
//!
//! ```yaml
//! - id: forecast
//!   kind: forecast
//!   depends_on: [train]
//!   train: train          # the train task whose models it serves: its input keys are inherited
//!   output: forecasts
//! ```
//!
//! The input keys (`input`, `series_key`, `group_by`, `frequency` …, see
//! [`super::series_input`]) come from the named train task
//! ([`super::inherit`]); one the task also gives must agree with it. Each
//! model served must have been trained with the same mapping (stored in
//! its `model.json`), else the task fails.
//!
//! Outputs: `series`, `rows`, `groups`, `groups_without_model`, `by_model_kind`,
//! `path`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::inherit;
use super::model_store::{ModelStore, StoredModel};
use super::series_input::{self, InputSpec};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::forecast::artifact::ModelMeta;
use crate::forecast::{self, DeviceChoice};

pub struct ForecastKind;

fn d_output() -> String {
    "forecasts".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastSpec {
    /// The train task whose models this task serves; its input keys are
    /// inherited (read by [`inherit::compile_input`]).
    #[serde(default)]
    train: Option<String>,
    #[serde(default = "d_output")]
    output: String,
    #[serde(default)]
    device: Option<DeviceChoice>,
    /// Declared table of planner overrides (`forecast_multiply`,
    /// `forecast_set` rows apply to the forecast dates they cover).
    #[serde(default)]
    overrides: Option<String>,
}

#[derive(Debug)]
struct ForecastRunner {
    /// The train task whose input mapping this task took, if it names one.
    train: Option<String>,
    input: InputSpec,
    output: String,
    device: DeviceChoice,
    overrides: Option<String>,
}

impl TaskKind for ForecastKind {
    fn name(&self) -> &'static str {
        "forecast"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let (own, rest) = series_input::split(spec);
        let own = match own {
            serde_yaml::Value::Mapping(m) => m,
            _ => serde_yaml::Mapping::new(),
        };
        let train = rest
            .get(inherit::KEY)
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_string);
        let input = inherit::compile_input(cx, own, train.as_deref());
        let spec: Option<ForecastSpec> = cx.deserialize(rest);
        let (input, spec) = (input?, spec?);
        let mut ok = true;
        if let Err(e) = crate::lake::check_table_path(&spec.output) {
            cx.error("output", e);
            ok = false;
        }
        ok.then(|| {
            Arc::new(ForecastRunner {
                train: spec.train,
                input,
                output: spec.output,
                device: spec.device.unwrap_or(DeviceChoice::Cpu),
                overrides: spec.overrides,
            }) as Arc<dyn TaskRunner>
        })
    }
}

#[async_trait]
impl TaskRunner for ForecastRunner {
    fn overrides_read(&self) -> Option<super::OverridesRead> {
        Some(super::OverridesRead {
            table: self.overrides.clone()?,
            key_names: self.input.series_key.clone(),
        })
    }

    fn planning(&self) -> Option<super::PlanningTable> {
        Some(super::PlanningTable::Forecasts {
            path: self.output.trim_end_matches('/').to_string(),
            history: super::HistorySource {
                table: self.input.input.clone(),
                series_key: self.input.series_key.clone(),
                date_column: self.input.date_column.clone(),
                value_column: self.input.value_column.clone(),
            },
        })
    }

    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let ds = cx.ds_date()?;
        let store = Arc::clone(cx.services.lake.store());
        // Models first: their horizon decides how much future to read.
        let mut by_group: BTreeMap<String, Vec<forecast::Series>> = BTreeMap::new();
        let mut models = BTreeMap::new();
        let mut horizon = 0usize;
        let (probe, _) = self.input.load_counted(cx, 0).await?;
        for s in probe {
            by_group.entry(s.group.clone()).or_default().push(s);
        }
        if by_group.is_empty() {
            return Err(TaskError::Fatal(format!(
                "table `{}` has no rows for {}",
                self.input.input, cx.vars.ds
            )));
        }
        if let Some(t) = &self.train {
            cx.log
                .line(&format!("input settings taken from train task `{t}`"));
        }
        let device =
            forecast::select_device(self.device).map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut missing = Vec::new();
        let models_of = ModelStore::new(store.as_ref(), &cx.dag_id);
        for g in by_group.keys() {
            let newest = models_of
                .newest(g, ds)
                .await
                .map_err(|e| TaskError::Failed(format!("listing models of {g}: {e}")))?;
            let Some(stored) = newest else {
                missing.push(g.clone());
                continue;
            };
            let (w, m) = models_of
                .read(&stored)
                .await
                .map_err(|e| TaskError::Failed(format!("reading the model of {g}: {e}")))?;
            let described = cx.services.lake.describe(&stored.dir);
            let model = forecast::artifact::from_bytes(&w, &m, &device)
                .map_err(|e| TaskError::Fatal(format!("model {described}: {e}")))?;
            let meta: ModelMeta = serde_json::from_slice(&m)
                .map_err(|e| TaskError::Fatal(format!("model {described}: model.json: {e}")))?;
            self.check_served(cx, g, &stored, &meta)?;
            horizon = horizon.max(model.config.horizon);
            cx.log.progress(&format!(
                "group {g}: model of {} (champion {})",
                stored.date,
                model.serving.as_str()
            ));
            models.insert(g.clone(), model);
        }
        if models.is_empty() {
            return Err(TaskError::Fatal(format!(
                "no model for any group of `{}` on or before {}; run the train task first (looked under {})",
                self.input.input,
                cx.vars.ds,
                cx.services.lake.describe(&models_of.root())
            )));
        }
        for g in &missing {
            cx.log.progress(&format!(
                "group {g}: no model yet; its series are not forecast"
            ));
        }
        // Reload with future covariates for the models' horizon.
        let mut filled = series_input::FutureFill::default();
        if self.input.future.is_some() {
            by_group.clear();
            let (series, fill) = self.input.load_counted(cx, horizon).await?;
            filled = fill;
            for s in series {
                by_group.entry(s.group.clone()).or_default().push(s);
            }
        }
        let freq = self.input.frequency;
        let opts = self.input.prepare_options(ds);
        let quantiles = models
            .values()
            .next()
            .map(|m| m.config.quantiles.clone())
            .unwrap_or_default();
        let key_names = self.input.series_key.clone();
        let n_groups = by_group.len();
        let job = tokio::task::spawn_blocking(move || {
            let mut rows = Vec::new();
            for (g, model) in &models {
                let Some(series) = by_group.get(g) else {
                    continue;
                };
                rows.extend(forecast::forecast_with_model_at(
                    model, series, freq, &opts,
                )?);
            }
            let n_series = by_group
                .iter()
                .filter(|(g, _)| models.contains_key(*g))
                .map(|(_, s)| s.len())
                .sum::<usize>();
            Ok::<_, forecast::PipelineError>((rows, n_series))
        });
        let (mut rows, n_series) = job
            .await
            .map_err(|e| TaskError::Failed(format!("forecast thread: {e}")))?
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        let adjusted = match &self.overrides {
            Some(table) => apply_overrides(cx, table, &key_names, &mut rows).await?,
            None => 0,
        };
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        let (mut stale, mut gappy) = (0u64, 0u64);
        for r in rows.iter().filter(|r| r.step == 1) {
            *kinds.entry(r.model_kind.as_str()).or_default() += 1;
            stale += u64::from(r.flags.contains("stale_history"));
            gappy += u64::from(r.flags.contains("gaps_filled") || r.flags.contains("gaps_bridged"));
        }
        let batch = forecast::forecast_batch(&key_names, &quantiles, &rows)
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut out = super::tables::publish_partition(cx, &self.output, batch).await?;
        out.insert("series".into(), n_series.into());
        out.insert("rows_overridden".into(), adjusted.into());
        out.insert("groups".into(), (n_groups - missing.len()).into());
        out.insert("groups_without_model".into(), serde_json::json!(missing));
        out.insert(
            "gaps".into(),
            serde_json::json!({
                "policy": self.input.gap_policy().as_str(),
                "series_with_gaps": gappy,
                "stale_series": stale,
            }),
        );
        out.insert(
            "future_filled".into(),
            serde_json::json!({"series": filled.series, "periods": filled.periods}),
        );
        out.insert(
            "by_model_kind".into(),
            serde_json::to_value(&kinds).unwrap_or_default(),
        );
        Ok(out)
    }
}

impl ForecastRunner {
    /// Refuses a model trained with another input mapping than this
    /// task's: a weekly model read as daily data gives daily dates and
    /// nonsense, not an error, unless it is checked here.
    fn check_served(
        &self,
        cx: &AttemptContext,
        group: &str,
        stored: &StoredModel,
        meta: &ModelMeta,
    ) -> Result<(), TaskError> {
        let model = format!("the model of {} ({})", stored.date, meta.model_id);
        let trained = inherit::stored(meta)
            .map_err(|e| TaskError::Fatal(format!("group {group}: {model}: {e}")))?;
        let Some(trained) = trained else {
            cx.log.line(&format!(
                "group {group}: {model} was saved without its input settings; not checked against this task's"
            ));
            return Ok(());
        };
        let diffs = inherit::differences(&self.input, &trained)
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        if diffs.is_empty() {
            return Ok(());
        }
        Err(TaskError::Fatal(format!(
            "group {group}: {model} does not fit this task: {}; name the train task with `train:` so that both read the same settings, or retrain the model",
            inherit::describe(&diffs, "this task reads", "the model was trained with")
        )))
    }
}

/// Applies the planners' forecast overrides to the rows they cover and
/// returns how many rows changed; each keeps the model's mean and the
/// override's id.
async fn apply_overrides(
    cx: &AttemptContext,
    table: &str,
    key_names: &[String],
    rows: &mut [forecast::ForecastRow],
) -> Result<usize, TaskError> {
    use crate::inventory::overrides::{Family, adjust_forecast};
    let known: std::collections::HashSet<Vec<String>> =
        rows.iter().map(|r| r.key.clone()).collect();
    let o = super::overrides::load(cx, table, key_names, &known).await?;
    let mut n = 0;
    for r in rows.iter_mut() {
        let Some(ov) = o.find(&r.key, Family::Forecast, r.forecast_date) else {
            continue;
        };
        let model_mean = r.mean;
        r.mean = adjust_forecast(ov.action, r.mean, &mut r.quantiles);
        r.adjustment = Some(forecast::Adjustment {
            model_mean,
            override_id: ov.id.clone(),
        });
        n += 1;
    }
    Ok(n)
}
