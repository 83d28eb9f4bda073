//! The `train` kind: one global LSTM per group, trained off the async
//! runtime on a bounded pool, backtested against the baselines, saved to
//! the lake, with the backtest written to `forecast_metrics/ds=…/`.
//!
//! ```yaml
//! - id: train
//!   kind: train
//!   depends_on: [daily_sales]
//!   input: daily_sales
//!   series_key: [store, sku]
//!   group_by: category
//!   frequency: daily
//!   horizon: 28
//!   model: { context: 56, hidden: 64, layers: 1, quantiles: [0.1, 0.5, 0.9], epochs: 30, batch_size: 256, learning_rate: 0.001, seed: 7 }
//!   device: cpu               # cpu | cuda | auto
//!   retrain: weekly           # always | weekly | monthly | on_drift: otherwise reuse the newest model
//!   metrics: forecast_metrics # lake path of the backtest table
//!   forecasts: forecasts      # declared table of past forecasts: scored every run
//!   accuracy: forecast_accuracy # lake path of the realized-accuracy table
//!   drift_threshold: 0.25     # on_drift: retrain when realized RMSSE > backtest × 1.25
//!   drift_min_points: 28      # ... and at least this many points were scored
//! ```
//!
//! With `forecasts:`, every run first scores the previous run's forecast
//! against the demand that has happened since and appends the result to
//! `forecast_accuracy/ds=…/` (see [`crate::forecast::accuracy`]).
//!
//! Outputs: `groups`, `trained`, `reused`, `series`, per-group champion and
//! RMSSE under `champions`, `rmsse` (served models, overall) and the best
//! baseline's, `rmsse_by_kind` (overall backtest RMSSE per candidate),
//! `windows_trained` and `train_seconds` (summed over groups), `models`
//! (lake folder); with past forecasts also
//! `accuracy_rmsse`, `accuracy_wape` (overall), `drifted` (groups retrained
//! on drift) and `accuracy_path`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use serde::Deserialize;

use super::accuracy;
use super::series_input::{self, InputSpec};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::forecast::{self, DeviceChoice, ModelConfig, ModelKind};

pub struct TrainKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Retrain {
    #[default]
    Always,
    Weekly,
    Monthly,
    /// Reuse the newest model until its realized accuracy drifts.
    OnDrift,
}

impl Retrain {
    /// Age below which a model is reused; `None`: age does not decide.
    fn max_age_days(self) -> Option<i64> {
        match self {
            Retrain::Always => Some(0),
            Retrain::Weekly => Some(7),
            Retrain::Monthly => Some(28),
            Retrain::OnDrift => None,
        }
    }
}

fn d_accuracy() -> String {
    "forecast_accuracy".into()
}
fn d_drift_threshold() -> f64 {
    0.25
}
fn d_drift_min_points() -> usize {
    28
}

fn d_metrics() -> String {
    "forecast_metrics".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainSpec {
    #[serde(default)]
    horizon: Option<usize>,
    #[serde(default)]
    model: ModelConfig,
    #[serde(default)]
    device: Option<DeviceChoice>,
    #[serde(default)]
    retrain: Retrain,
    #[serde(default = "d_metrics")]
    metrics: String,
    #[serde(default)]
    forecasts: Option<String>,
    #[serde(default = "d_accuracy")]
    accuracy: String,
    #[serde(default = "d_drift_threshold")]
    drift_threshold: f64,
    #[serde(default = "d_drift_min_points")]
    drift_min_points: usize,
}

#[derive(Debug)]
struct TrainRunner {
    input: InputSpec,
    config: ModelConfig,
    retrain: Retrain,
    metrics: String,
    forecasts: Option<String>,
    accuracy: String,
    drift_threshold: f64,
    drift_min_points: usize,
}

/// Model configuration of a `train`/`forecast` task: `model:` with the
/// task-level `horizon` and `device` applied.
fn effective(
    mut model: ModelConfig,
    horizon: Option<usize>,
    device: Option<DeviceChoice>,
) -> ModelConfig {
    if let Some(h) = horizon {
        model.horizon = h;
    }
    if let Some(d) = device {
        model.device = d;
    }
    model
}

impl TaskKind for TrainKind {
    fn name(&self) -> &'static str {
        "train"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let (input, rest) = series_input::split(spec);
        let input: Option<InputSpec> = cx.deserialize(input);
        let spec: Option<TrainSpec> = cx.deserialize(rest);
        let (input, spec) = (input?, spec?);
        let mut ok = input.check(cx);
        if let Some(t) = &spec.forecasts {
            ok &= cx.reads_table("forecasts", t);
            let mut need: Vec<&str> = input.series_key.iter().map(String::as_str).collect();
            need.extend(super::accuracy::FORECAST_COLUMNS);
            ok &= cx.needs_columns("forecasts", t, &need);
        }
        let config = effective(spec.model, spec.horizon, spec.device);
        if let Err(e) = config.validate() {
            cx.error("model", e.to_string());
            ok = false;
        }
        for (field, path) in [("metrics", &spec.metrics), ("accuracy", &spec.accuracy)] {
            if let Err(e) = crate::lake::check_table_path(path) {
                cx.error(field, e);
                ok = false;
            }
        }
        if spec.retrain == Retrain::OnDrift && spec.forecasts.is_none() {
            cx.error(
                "retrain",
                "`on_drift` needs `forecasts:` (the declared table of past forecasts to score)",
            );
            ok = false;
        }
        if !(spec.drift_threshold.is_finite() && spec.drift_threshold >= 0.0) {
            cx.error(
                "drift_threshold",
                "must be a number ≥ 0 (e.g. 0.25 for 25% worse)",
            );
            ok = false;
        }
        ok.then(|| {
            Arc::new(TrainRunner {
                input,
                config,
                retrain: spec.retrain,
                metrics: spec.metrics,
                forecasts: spec.forecasts,
                accuracy: spec.accuracy,
                drift_threshold: spec.drift_threshold,
                drift_min_points: spec.drift_min_points,
            }) as Arc<dyn TaskRunner>
        })
    }
}

#[async_trait]
impl TaskRunner for TrainRunner {
    fn planning(&self) -> Option<super::PlanningTable> {
        Some(super::PlanningTable::Accuracy {
            metrics: self.metrics.trim_end_matches('/').to_string(),
            accuracy: self.accuracy.trim_end_matches('/').to_string(),
        })
    }

    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let ds = cx.ds_date()?;
        let store = Arc::clone(cx.services.lake.store());
        let series = self.input.load(cx, self.config.horizon).await?;
        if series.is_empty() {
            return Err(TaskError::Fatal(format!(
                "table `{}` has no rows for {}",
                self.input.input, cx.vars.ds
            )));
        }
        let mut groups: std::collections::BTreeSet<String> =
            series.iter().map(|s| s.group.clone()).collect();
        let total_groups = groups.len();

        // Score the previous run's forecast against what has happened since.
        let previous = match &self.forecasts {
            Some(t) => accuracy::previous_forecast(cx, t, &self.input.series_key).await?,
            None => None,
        };
        let realized = previous.as_ref().map_or_else(Vec::new, |p| {
            forecast::accuracy::evaluate(
                &p.rows,
                &series,
                self.input.frequency.season(),
                p.levels.len(),
            )
        });
        // Planner overrides among the scored rows: their value added.
        let override_rows = previous.as_ref().map_or_else(Vec::new, |p| {
            forecast::accuracy::value_added(&p.rows, &series, p.levels.len())
        });

        // Reuse models per the retrain policy.
        let mut reused = Vec::new();
        let mut drifted = Vec::new();
        let mut decisions: BTreeMap<String, accuracy::GroupDecision> = BTreeMap::new();
        for g in groups.clone() {
            let dir = series_input::model_dir(&cx.dag_id, &g);
            let newest = series_input::newest_model(store.as_ref(), &dir, ds)
                .await
                .map_err(|e| TaskError::Failed(format!("listing models of {g}: {e}")))?;
            let decision = decisions.entry(g.clone()).or_default();
            decision.action = "trained".into();
            let Some((date, path)) = newest else {
                continue;
            };
            let meta = series_input::read_model_meta(store.as_ref(), &path)
                .await
                .map_err(|e| TaskError::Failed(format!("reading the model of {g}: {e}")))?;
            // An unreadable model is replaced, not an error: training fixes it.
            let served = meta.as_ref().map(|m| {
                let kind = m.champion.as_str().to_string();
                let rmsse = m
                    .backtest
                    .iter()
                    .find(|b| b.kind == m.champion)
                    .map(|b| b.metrics.rmsse);
                (kind, rmsse)
            });
            let drift = served.as_ref().and_then(|(kind, expected)| {
                realized
                    .iter()
                    .find(|a| {
                        a.group.as_deref() == Some(g.as_str())
                            && a.model_kind.as_deref() == Some(kind.as_str())
                    })
                    .filter(|a| a.points >= self.drift_min_points)
                    .and_then(|a| Some((a.drift(*expected)?, a.metrics.rmsse, (*expected)?)))
            });
            decision.served = served;
            let reuse = match (self.retrain.max_age_days(), drift) {
                (Some(max_age), _) => (ds - date).num_days() < max_age,
                (None, Some((d, realized, expected))) if d > self.drift_threshold => {
                    cx.log.progress(&format!(
                        "group {g}: realized RMSSE {realized:.3} is {:.0}% above the backtest's {expected:.3}; retraining",
                        d * 100.0
                    ));
                    drifted.push(g.clone());
                    decision.action = "retrained_on_drift".into();
                    false
                }
                (None, _) => meta.is_some(),
            };
            if reuse {
                cx.log
                    .progress(&format!("group {g}: reusing the model of {date}"));
                decision.action = "reused".into();
                reused.push(g.clone());
                groups.remove(&g);
            } else if decision.action == "trained" && self.retrain != Retrain::Always {
                decision.action = "retrained".into();
            }
        }
        let to_train: Vec<forecast::Series> = series
            .into_iter()
            .filter(|s| groups.contains(&s.group))
            .collect();
        let n_series = to_train.len();
        cx.log.progress(&format!(
            "training {} group(s) over {n_series} series ({} reused)",
            groups.len(),
            reused.len()
        ));

        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut config = self.config.clone();
        // On an executor that gives the job a GPU, `auto` means CUDA: a
        // build without it fails loudly instead of training on the CPU.
        if cx.services.config.gpu_attempt && config.device == DeviceChoice::Auto {
            config.device = DeviceChoice::Cuda;
        }
        cx.log
            .progress(&format!("training on device {:?}", config.device));
        let freq = self.input.frequency;
        let opts = self.input.prepare_options(ds);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let cancel = cx.cancel.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_flag = stop.clone();
        let job = tokio::task::spawn_blocking(move || {
            let progress = move |group: &str, r: &forecast::EpochReport| {
                // Cancelled: unwind out of this group's training (the
                // pipeline catches it per group, so every worker thread
                // stops within one epoch). `resume_unwind` skips the panic
                // hook: this is a stop, not a bug.
                if stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::panic::resume_unwind(Box::new("training stopped"));
                }
                let val = r.val_loss.map_or("-".to_string(), |v| format!("{v:.4}"));
                let _ = tx.send(format!(
                    "group {group}: epoch {} train loss {:.4} val loss {val}",
                    r.epoch, r.train_loss
                ));
            };
            forecast::train_all_groups_with(to_train, freq, &config, &opts, threads, &progress)
        });
        tokio::pin!(job);
        let results = loop {
            tokio::select! {
                Some(line) = rx.recv() => cx.log.progress(&line),
                r = &mut job => break r,
                _ = cancel.cancelled() => {
                    // Stop the worker threads at their next epoch and wait
                    // for them (the executor's grace bounds the wait);
                    // nothing is saved.
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = (&mut job).await;
                    return Err(TaskError::Interrupted("training stopped".into()));
                }
            }
        };
        while let Ok(line) = rx.try_recv() {
            cx.log.progress(&line);
        }
        let results = results.map_err(|e| TaskError::Failed(format!("training thread: {e}")))?;

        let mut ok_results = Vec::new();
        let mut champions = serde_json::Map::new();
        let mut saved = 0usize;
        let (mut windows, mut train_secs) = (0usize, 0.0f64);
        let mut gaps = forecast::prepare::GapSummary::default();
        for (group, r) in results {
            let r = r.map_err(|e| TaskError::Fatal(format!("group {group}: {e}")))?;
            gaps.add(&r.gaps);
            if let Some(model) = &r.model {
                windows += model.window.windows_trained;
                train_secs += model.window.train_seconds;
                let (weights, meta) = forecast::artifact::to_bytes(model)
                    .map_err(|e| TaskError::Fatal(format!("group {group}: {e}")))?;
                let dir = series_input::model_dir(&cx.dag_id, &group).join(cx.vars.ds.as_str());
                series_input::save_model(store.as_ref(), &dir, weights, meta)
                    .await
                    .map_err(|e| TaskError::Failed(format!("saving the model of {group}: {e}")))?;
                saved += 1;
            }
            let rmsse = r.score(r.champion).map(|m| m.rmsse);
            cx.log.progress(&format!(
                "group {group}: champion {} (RMSSE {}), trained in {:.1} s",
                r.champion.as_str(),
                rmsse.map_or("-".into(), |v| format!("{v:.3}")),
                r.timings.train
            ));
            champions.insert(
                group.clone(),
                serde_json::json!({"champion": r.champion.as_str(), "rmsse": rmsse.filter(|v| v.is_finite())}),
            );
            ok_results.push(r);
        }
        let nq = self.config.quantiles.len();
        let overall = forecast::overall_metrics(&ok_results, nq);
        let mut out = Outputs::new();
        if !ok_results.is_empty() {
            let batch = metrics_batch(&ok_results, &overall, &self.config.quantiles)
                .map_err(|e| TaskError::Fatal(e.to_string()))?;
            let written = super::tables::publish_partition(cx, &self.metrics, batch).await?;
            out.insert("metrics_path".into(), written["path"].clone());
        }
        let served = overall
            .iter()
            .find(|(k, _)| k.is_none())
            .map(|(_, m)| m.rmsse);
        let best_baseline = overall
            .iter()
            .filter(|(k, _)| k.is_some_and(|k| k != ModelKind::Lstm))
            .map(|(_, m)| m.rmsse)
            .filter(|v| v.is_finite())
            .fold(f64::INFINITY, f64::min);
        if let Some(p) = &previous {
            if !realized.is_empty() {
                let mut rows = realized.clone();
                rows.extend(override_rows);
                let batch = accuracy::accuracy_batch(p.ds, &p.levels, &rows, &decisions)
                    .map_err(|e| TaskError::Fatal(e.to_string()))?;
                let written = super::tables::publish_partition(cx, &self.accuracy, batch).await?;
                out.insert("accuracy_path".into(), written["path"].clone());
            }
            if let Some(all) = realized.iter().find(|a| a.group.is_none()) {
                cx.log.progress(&format!(
                    "forecast of {}: {} points realized, RMSSE {:.3}, WAPE {:.3}, bias {:+.3}",
                    p.ds, all.points, all.metrics.rmsse, all.metrics.wape, all.metrics.bias
                ));
                for (k, v) in [
                    ("accuracy_rmsse", all.metrics.rmsse),
                    ("accuracy_wape", all.metrics.wape),
                ] {
                    if v.is_finite() {
                        out.insert(k.into(), v.into());
                    }
                }
            }
        }
        out.insert("drifted".into(), serde_json::json!(drifted));
        cx.log.progress(&format!(
            "gaps ({}): {} series with {} missing period(s); {} series ended before {} ({} period(s) filled up to it)",
            self.input.gap_policy().as_str(),
            gaps.series_with_gaps,
            gaps.gap_periods,
            gaps.stale_series,
            cx.vars.ds,
            gaps.stale_periods
        ));
        out.insert(
            "gaps".into(),
            serde_json::json!({
                "policy": self.input.gap_policy().as_str(),
                "series_with_gaps": gaps.series_with_gaps,
                "gap_periods": gaps.gap_periods,
                "stale_series": gaps.stale_series,
                "stale_periods": gaps.stale_periods,
            }),
        );
        out.insert("windows_trained".into(), windows.into());
        out.insert("train_seconds".into(), train_secs.into());
        let by_kind: serde_json::Map<String, serde_json::Value> = overall
            .iter()
            .filter_map(|(k, m)| {
                let k = k.map_or("served", |k| k.as_str());
                m.rmsse.is_finite().then(|| (k.to_string(), m.rmsse.into()))
            })
            .collect();
        out.insert("rmsse_by_kind".into(), serde_json::Value::Object(by_kind));
        out.insert("groups".into(), total_groups.into());
        out.insert("trained".into(), saved.into());
        out.insert("reused".into(), reused.len().into());
        out.insert("series".into(), n_series.into());
        out.insert("champions".into(), serde_json::Value::Object(champions));
        if let Some(v) = served.filter(|v| v.is_finite()) {
            out.insert("rmsse".into(), v.into());
        }
        if best_baseline.is_finite() {
            out.insert("best_baseline_rmsse".into(), best_baseline.into());
        }
        out.insert(
            "models".into(),
            cx.services
                .lake
                .describe(&object_store::path::Path::from(format!(
                    "models/{}",
                    cx.dag_id
                )))
                .into(),
        );
        Ok(out)
    }
}

fn metrics_batch(
    results: &[forecast::GroupResult],
    overall: &[(Option<ModelKind>, forecast::Metrics)],
    quantiles: &[f64],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut group = Vec::new();
    let mut kind = Vec::new();
    let mut champion = Vec::new();
    let mut rows: Vec<&forecast::Metrics> = Vec::new();
    for r in results {
        for b in &r.backtest {
            group.push(r.group.clone());
            kind.push(b.kind.as_str().to_string());
            champion.push(b.kind == r.champion);
            rows.push(&b.metrics);
        }
    }
    for (k, m) in overall {
        group.push("_overall".into());
        kind.push(k.map_or("served", |k| k.as_str()).to_string());
        champion.push(k.is_none());
        rows.push(m);
    }
    let mut fields = vec![
        Field::new("group", DataType::Utf8, false),
        Field::new("model_kind", DataType::Utf8, false),
        Field::new("champion", DataType::Boolean, false),
        Field::new("series", DataType::Int64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(group)),
        Arc::new(StringArray::from(kind)),
        Arc::new(arrow::array::BooleanArray::from(champion)),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|m| m.series as i64),
        )),
    ];
    push_metric_columns(&rows, quantiles, &mut fields, &mut cols);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}

/// Appends `mase`, `rmsse`, `wape`, `bias` and one `coverage_pNN` per
/// quantile level (nulls where a value is not finite): the accuracy
/// columns shared by `forecast_metrics` and `forecast_accuracy`.
pub(super) fn push_metric_columns(
    rows: &[&forecast::Metrics],
    levels: &[f64],
    fields: &mut Vec<Field>,
    cols: &mut Vec<ArrayRef>,
) {
    let finite = |v: f64| v.is_finite().then_some(v);
    type Measure = fn(&forecast::Metrics) -> f64;
    let measures: [(&str, Measure); 4] = [
        ("mase", |m| m.mase),
        ("rmsse", |m| m.rmsse),
        ("wape", |m| m.wape),
        ("bias", |m| m.bias),
    ];
    for (name, get) in measures {
        fields.push(Field::new(name, DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|m| finite(get(m))),
        )));
    }
    for (i, q) in levels.iter().enumerate() {
        fields.push(Field::new(
            format!("coverage_p{}", (q * 100.0).round() as i64),
            DataType::Float64,
            true,
        ));
        cols.push(Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|m| m.coverage.get(i).copied().and_then(finite)),
        )));
    }
}
