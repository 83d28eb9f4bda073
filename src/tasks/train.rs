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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Deserialize;

use super::accuracy;
use super::inherit;
use super::metrics_table::metrics_batch;
use super::model_store::ModelStore;
use super::series_input::{self, InputSpec};
use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::forecast::{self, DeviceChoice, ModelConfig, ModelKind};

mod retrain;

use retrain::{Plan, Retrain};

pub struct TrainKind;

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

/// The previous run's forecast, scored against the demand in this run's
/// input (empty without `forecasts:` or without a previous forecast).
struct Scored {
    previous: Option<accuracy::Previous>,
    realized: Vec<forecast::accuracy::GroupAccuracy>,
    /// Planner overrides among the scored rows: their value added.
    overrides: Vec<forecast::accuracy::GroupAccuracy>,
}

/// The groups trained in this run, their models saved.
#[derive(Default)]
struct Trained {
    results: Vec<forecast::GroupResult>,
    /// Per group: champion and RMSSE.
    champions: serde_json::Map<String, serde_json::Value>,
    saved: usize,
    windows: usize,
    train_secs: f64,
    gaps: forecast::prepare::GapSummary,
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
        let series = self.load(cx).await?;
        let total_groups = series
            .iter()
            .map(|s| &s.group)
            .collect::<BTreeSet<_>>()
            .len();
        let scored = self.score_previous(cx, &series).await?;
        let plan = self.plan(cx, ds, &series, &scored.realized).await?;
        let to_train: Vec<forecast::Series> = series
            .into_iter()
            .filter(|s| plan.train.contains(&s.group))
            .collect();
        let n_series = to_train.len();
        cx.log.progress(&format!(
            "training {} group(s) over {n_series} series ({} reused)",
            plan.train.len(),
            plan.reused.len()
        ));
        let results = self.train(cx, ds, to_train).await?;
        let trained = self.save(cx, ds, results).await?;
        let mut out = Outputs::new();
        let overall = self.write_metrics(cx, &trained, &mut out).await?;
        self.write_accuracy(cx, &scored, &plan, &mut out).await?;
        self.summarize(cx, &plan, &trained, &overall, &mut out);
        out.insert("groups".into(), total_groups.into());
        out.insert("series".into(), n_series.into());
        Ok(out)
    }
}

impl TrainRunner {
    /// Step 1: the history, one series per key.
    async fn load(&self, cx: &AttemptContext) -> Result<Vec<forecast::Series>, TaskError> {
        let series = self.input.load(cx, self.config.horizon).await?;
        if series.is_empty() {
            return Err(TaskError::Fatal(format!(
                "table `{}` has no rows for {}",
                self.input.input, cx.vars.ds
            )));
        }
        Ok(series)
    }

    /// Step 2: score the previous run's forecast against what has
    /// happened since.
    async fn score_previous(
        &self,
        cx: &AttemptContext,
        series: &[forecast::Series],
    ) -> Result<Scored, TaskError> {
        let previous = match &self.forecasts {
            Some(t) => accuracy::previous_forecast(cx, t, &self.input.series_key).await?,
            None => None,
        };
        let read = forecast::accuracy::Actuals {
            frequency: self.input.frequency,
            gaps: self.input.gap_policy(),
        };
        let realized = previous.as_ref().map_or_else(Vec::new, |p| {
            forecast::accuracy::evaluate(&p.rows, series, read, &p.levels)
        });
        let overrides = previous.as_ref().map_or_else(Vec::new, |p| {
            forecast::accuracy::value_added(&p.rows, series, read, &p.levels)
        });
        Ok(Scored {
            previous,
            realized,
            overrides,
        })
    }

    /// Step 4: train the groups on a bounded pool off the runtime,
    /// streaming epoch progress to the log; cancellation stops every
    /// worker within one epoch and saves nothing.
    async fn train(
        &self,
        cx: &AttemptContext,
        ds: NaiveDate,
        to_train: Vec<forecast::Series>,
    ) -> Result<
        Vec<(
            String,
            Result<forecast::GroupResult, forecast::PipelineError>,
        )>,
        TaskError,
    > {
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
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let job = tokio::task::spawn_blocking(move || {
            let progress = move |group: &str, r: &forecast::EpochReport| {
                // Cancelled: unwind out of this group's training (the
                // pipeline catches it per group, so every worker thread
                // stops within one epoch). `resume_unwind` skips the panic
                // hook: this is a stop, not a bug.
                if stop_flag.load(Ordering::Relaxed) {
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
                _ = cx.cancel.cancelled() => {
                    // Stop the worker threads at their next epoch and wait
                    // for them (the executor's grace bounds the wait);
                    // nothing is saved.
                    stop.store(true, Ordering::Relaxed);
                    let _ = (&mut job).await;
                    return Err(TaskError::Interrupted("training stopped".into()));
                }
            }
        };
        while let Ok(line) = rx.try_recv() {
            cx.log.progress(&line);
        }
        results.map_err(|e| TaskError::Failed(format!("training thread: {e}")))
    }

    /// Step 5: save each trained group's model (weights, then
    /// `model.json`) and log its champion; a group that failed fails the
    /// task.
    async fn save(
        &self,
        cx: &AttemptContext,
        ds: NaiveDate,
        results: Vec<(
            String,
            Result<forecast::GroupResult, forecast::PipelineError>,
        )>,
    ) -> Result<Trained, TaskError> {
        let models = ModelStore::new(cx.services.lake.store().as_ref(), &cx.dag_id);
        // How this task read its input, for the forecast task to check.
        let input = inherit::to_stored(&self.input).map_err(|e| TaskError::Fatal(e.to_string()))?;
        let mut t = Trained::default();
        for (group, r) in results {
            let r = r.map_err(|e| TaskError::Fatal(format!("group {group}: {e}")))?;
            t.gaps.add(&r.gaps);
            if let Some(model) = &r.model {
                t.windows += model.window.windows_trained;
                t.train_secs += model.window.train_seconds;
                let (weights, meta) =
                    forecast::artifact::to_bytes_with_input(model, Some(input.clone()))
                        .map_err(|e| TaskError::Fatal(format!("group {group}: {e}")))?;
                models
                    .save(&group, ds, weights, meta)
                    .await
                    .map_err(|e| TaskError::Failed(format!("saving the model of {group}: {e}")))?;
                t.saved += 1;
            }
            let rmsse = r.score(r.champion).map(|m| m.rmsse);
            let calibration = r.calibration(&self.config.quantiles);
            cx.log.progress(&format!(
                "group {group}: champion {} (RMSSE {}), trained in {:.1} s{}",
                r.champion.as_str(),
                rmsse.map_or("-".into(), |v| format!("{v:.3}")),
                r.timings.train,
                calibration.map_or(String::new(), |c| format!("; {}", c.describe()))
            ));
            t.champions.insert(
                group.clone(),
                serde_json::json!({
                    "champion": r.champion.as_str(),
                    "rmsse": rmsse.filter(|v| v.is_finite()),
                    "interval_coverage": calibration.map(|c| c.coverage),
                    "interval_calibrated": calibration.map(|c| c.within()),
                }),
            );
            t.results.push(r);
        }
        Ok(t)
    }

    /// Step 6: the backtest of the trained groups to `metrics`; returns the
    /// overall metrics per candidate (`None`: the served models).
    async fn write_metrics(
        &self,
        cx: &AttemptContext,
        trained: &Trained,
        out: &mut Outputs,
    ) -> Result<Vec<(Option<ModelKind>, forecast::Metrics)>, TaskError> {
        let overall = forecast::overall_metrics(&trained.results, &self.config.quantiles);
        if !trained.results.is_empty() {
            let batch = metrics_batch(&trained.results, &overall, &self.config.quantiles)
                .map_err(|e| TaskError::Fatal(e.to_string()))?;
            let written = super::tables::publish_partition(cx, &self.metrics, batch).await?;
            out.insert("metrics_path".into(), written["path"].clone());
        }
        Ok(overall)
    }

    /// Step 7: the scored previous forecast to `accuracy`, with what was
    /// decided per group.
    async fn write_accuracy(
        &self,
        cx: &AttemptContext,
        scored: &Scored,
        plan: &Plan,
        out: &mut Outputs,
    ) -> Result<(), TaskError> {
        let Some(p) = &scored.previous else {
            return Ok(());
        };
        if !scored.realized.is_empty() {
            let mut rows = scored.realized.clone();
            rows.extend(scored.overrides.iter().cloned());
            let batch = accuracy::accuracy_batch(p.ds, &p.levels, &rows, &plan.decisions)
                .map_err(|e| TaskError::Fatal(e.to_string()))?;
            let written = super::tables::publish_partition(cx, &self.accuracy, batch).await?;
            out.insert("accuracy_path".into(), written["path"].clone());
        }
        if let Some(all) = scored.realized.iter().find(|a| a.group.is_none()) {
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
        Ok(())
    }

    /// Step 8: the run's outputs (counts, gaps, champions, RMSSE of the
    /// served models and of the best baseline).
    fn summarize(
        &self,
        cx: &AttemptContext,
        plan: &Plan,
        trained: &Trained,
        overall: &[(Option<ModelKind>, forecast::Metrics)],
        out: &mut Outputs,
    ) {
        let gaps = &trained.gaps;
        out.insert("drifted".into(), serde_json::json!(plan.drifted));
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
        out.insert("windows_trained".into(), trained.windows.into());
        out.insert("train_seconds".into(), trained.train_secs.into());
        let by_kind: serde_json::Map<String, serde_json::Value> = overall
            .iter()
            .filter_map(|(k, m)| {
                let k = k.map_or("served", |k| k.as_str());
                m.rmsse.is_finite().then(|| (k.to_string(), m.rmsse.into()))
            })
            .collect();
        out.insert("rmsse_by_kind".into(), serde_json::Value::Object(by_kind));
        out.insert("trained".into(), trained.saved.into());
        out.insert("reused".into(), plan.reused.len().into());
        out.insert(
            "champions".into(),
            serde_json::Value::Object(trained.champions.clone()),
        );
        let served = overall
            .iter()
            .find(|(k, _)| k.is_none())
            .map(|(_, m)| m.rmsse);
        if let Some(v) = served.filter(|v| v.is_finite()) {
            out.insert("rmsse".into(), v.into());
        }
        let best_baseline = overall
            .iter()
            .filter(|(k, _)| k.is_some_and(|k| k != ModelKind::Lstm))
            .map(|(_, m)| m.rmsse)
            .filter(|v| v.is_finite())
            .fold(f64::INFINITY, f64::min);
        if best_baseline.is_finite() {
            out.insert("best_baseline_rmsse".into(), best_baseline.into());
        }
        let models = ModelStore::new(cx.services.lake.store().as_ref(), &cx.dag_id);
        out.insert(
            "models".into(),
            cx.services.lake.describe(&models.root()).into(),
        );
    }
}
