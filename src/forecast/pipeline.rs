//! One group end to end: prepare the series, train the global model on all
//! but the last `horizon` steps, backtest it against naive, seasonal naive
//! and AutoETS on those held-out steps, pick the champion by RMSSE, and
//! produce the forecast rows. Also trains many groups in a bounded pool of
//! threads. Synchronous: async callers wrap it in `spawn_blocking`.
//!
//! Champion/challenger: candidates are compared on the mean backtest RMSSE
//! of the group's series with enough history; the LSTM serves only when it
//! is strictly better than every baseline, so the product is never silently
//! worse than a simple method. Ties go to the simpler model.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::artifact::{self, ArtifactError};
use super::baselines::{self, ModelKind, PointForecast};
use super::calendar::{self, CalendarError};
use super::config::{ConfigError, Frequency, ModelConfig};
use super::device::{self, DeviceError};
use super::features::{AttachedEvents, FeatureLayout};
use super::metrics::{self, Metrics, SeriesEval};
use super::output::ForecastRow;
use super::prepare::{self, PrepareError, Prepared};
use super::series::{Flag, Series};
use super::train::{self, EpochReport, TrainError, TrainedModel};

/// Errors of a group run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error("group {group:?}: {source}")]
    Baseline {
        group: String,
        source: baselines::BaselineError,
    },
    #[error(
        "group {group:?}: the model was trained with events ({names}); give the task the same `events:` table"
    )]
    MissingEvents { group: String, names: String },
    #[error("a training thread panicked for group {0:?}")]
    Panicked(String),
}

/// Backtest of one candidate over a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestScore {
    pub kind: ModelKind,
    pub metrics: Metrics,
}

/// Wall-clock seconds of each phase.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Timings {
    pub train: f64,
    pub backtest: f64,
    pub forecast: f64,
}

/// Everything a group run produced.
#[derive(Debug, Clone)]
pub struct GroupResult {
    pub group: String,
    /// The model that serves the forecast.
    pub champion: ModelKind,
    pub model_id: String,
    /// The trained LSTM (also when a baseline won), for the artifact store.
    pub model: Option<TrainedModel>,
    pub backtest: Vec<BacktestScore>,
    /// Per candidate, the series evaluations behind `backtest`.
    pub evals: Vec<(ModelKind, Vec<SeriesEval>)>,
    pub forecasts: Vec<ForecastRow>,
    pub series: usize,
    pub cold_start: usize,
    pub timings: Timings,
}

impl GroupResult {
    pub fn score(&self, kind: ModelKind) -> Option<&Metrics> {
        self.backtest
            .iter()
            .find(|b| b.kind == kind)
            .map(|b| &b.metrics)
    }
}

fn needs_fallback(s: &Prepared) -> bool {
    s.quality.has(Flag::ColdStart) || s.quality.has(Flag::AllZero)
}

/// The baseline for series the global model cannot serve: zeros for
/// all-zero series, seasonal naive when a season of history exists, else
/// naive.
fn fallback(
    s: &Prepared,
    freq: Frequency,
    config: &ModelConfig,
) -> Result<(ModelKind, PointForecast), baselines::BaselineError> {
    let kind = if s.len() >= freq.season() && !s.quality.has(Flag::AllZero) {
        ModelKind::SeasonalNaive
    } else {
        ModelKind::Naive
    };
    let f = baselines::run(
        kind,
        &s.values,
        freq.season(),
        config.horizon,
        &config.quantiles,
    )?;
    Ok((kind, f))
}

/// Runs a baseline; when ETS cannot fit, seasonal naive stands in.
fn baseline_or_fallback(
    kind: ModelKind,
    history: &[f64],
    freq: Frequency,
    config: &ModelConfig,
) -> Result<(ModelKind, PointForecast), baselines::BaselineError> {
    let (season, h, q) = (freq.season(), config.horizon, &config.quantiles);
    match baselines::run(kind, history, season, h, q) {
        Ok(f) => Ok((kind, f)),
        Err(_) if kind == ModelKind::Ets => Ok((
            ModelKind::SeasonalNaive,
            baselines::seasonal_naive(history, season, h, q)?,
        )),
        Err(e) => Err(e),
    }
}

/// Trains, backtests and forecasts one group. `progress` is called after
/// every epoch of the LSTM.
pub fn train_group(
    group: &str,
    series: &[Series],
    freq: Frequency,
    config: &ModelConfig,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<GroupResult, PipelineError> {
    config.validate()?;
    let device = device::select(config.device)?;
    let (c, h) = (config.context, config.horizon);
    let prepared = prepare::prepare_group(series, freq, c + h)?;
    let mut layout = FeatureLayout::for_group(&prepared, freq, c, h);
    let events = series.iter().find_map(|s| s.events.clone());
    let first = prepared.iter().filter_map(|s| s.dates.first()).min();
    let last = prepared.iter().filter_map(|s| s.dates.last()).max();
    if let (Some(events), Some(&first), Some(&last)) = (events, first, last) {
        let to = calendar::date_at(freq, last, h as i64)?;
        layout = layout.with_events(Some(events), first, to);
    }
    let bl_err = |source| PipelineError::Baseline {
        group: group.to_string(),
        source,
    };

    // Backtest: everything but the last `h` steps is visible to training.
    let started = Instant::now();
    let visible: Vec<usize> = prepared.iter().map(|s| s.len().saturating_sub(h)).collect();
    let model = train::train(
        group, &prepared, &visible, &layout, config, &device, progress,
    )?;
    let train_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let eligible: Vec<usize> = (0..prepared.len())
        .filter(|&i| !needs_fallback(&prepared[i]))
        .collect();
    let mut evals: Vec<(ModelKind, Vec<SeriesEval>)> = Vec::new();
    let eval_of = |s: &Prepared, f: PointForecast| SeriesEval {
        actual: s.values[s.len() - h..].to_vec(),
        mean: f.mean,
        quantiles: f.quantiles,
        scales: metrics::scales(&s.values[..s.len() - h], freq.season()),
    };
    for kind in [ModelKind::Naive, ModelKind::SeasonalNaive, ModelKind::Ets] {
        let fits = par_map(&eligible, |&i| {
            let s = &prepared[i];
            baseline_or_fallback(kind, &s.values[..s.len() - h], freq, config)
        });
        let mut ev = Vec::with_capacity(eligible.len());
        for (&i, fit) in eligible.iter().zip(fits) {
            let (_, f) = fit.map_err(bl_err)?;
            ev.push(eval_of(&prepared[i], f));
        }
        evals.push((kind, ev));
    }
    if let Some(m) = &model {
        let jobs: Vec<(&Prepared, usize)> = eligible
            .iter()
            .map(|&i| (&prepared[i], prepared[i].len() - h))
            .collect();
        let preds = m.predict(&jobs)?;
        let ev = jobs
            .iter()
            .zip(preds)
            .map(|(&(s, _), p)| {
                eval_of(
                    s,
                    PointForecast {
                        mean: p.mean,
                        quantiles: p.quantiles,
                    },
                )
            })
            .collect();
        evals.push((ModelKind::Lstm, ev));
    }
    let nq = config.quantiles.len();
    let backtest: Vec<BacktestScore> = evals
        .iter()
        .map(|(kind, ev)| BacktestScore {
            kind: *kind,
            metrics: metrics::aggregate(ev, nq),
        })
        .collect();
    let champion = choose_champion(&backtest);
    let backtest_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut model = model;
    if let Some(m) = model.as_mut() {
        m.serving = champion;
        m.backtest = backtest.clone();
    }
    let lstm_id = match &model {
        Some(m) => Some(artifact::model_id(m)?),
        None => None,
    };
    let forecasts = forecast_rows(
        &prepared,
        freq,
        config,
        champion,
        model.as_ref().zip(lstm_id.as_deref()),
    )?;
    let model_id = match (champion, &lstm_id) {
        (ModelKind::Lstm, Some(id)) => id.clone(),
        _ => baseline_id(champion, group),
    };
    Ok(GroupResult {
        group: group.to_string(),
        champion,
        model_id,
        model,
        backtest,
        evals,
        forecasts,
        series: prepared.len(),
        cold_start: prepared
            .iter()
            .filter(|s| s.quality.has(Flag::ColdStart))
            .count(),
        timings: Timings {
            train: train_secs,
            backtest: backtest_secs,
            forecast: started.elapsed().as_secs_f64(),
        },
    })
}

fn baseline_id(kind: ModelKind, group: &str) -> String {
    format!("{}-{group}", kind.as_str())
}

/// The candidate with the lowest backtest RMSSE; baselines are listed
/// before the LSTM and win ties. Seasonal naive when nothing is scored.
pub fn choose_champion(scores: &[BacktestScore]) -> ModelKind {
    let order = [
        ModelKind::Naive,
        ModelKind::SeasonalNaive,
        ModelKind::Ets,
        ModelKind::Lstm,
    ];
    let mut best: Option<(ModelKind, f64)> = None;
    for kind in order {
        let Some(score) = scores.iter().find(|s| s.kind == kind) else {
            continue;
        };
        let r = score.metrics.rmsse;
        if !r.is_finite() {
            continue;
        }
        if best.is_none_or(|(_, b)| r < b) {
            best = Some((kind, r));
        }
    }
    best.map_or(ModelKind::SeasonalNaive, |(k, _)| k)
}

/// Forecast rows for the `horizon` steps after each series' last date.
fn forecast_rows(
    prepared: &[Prepared],
    freq: Frequency,
    config: &ModelConfig,
    champion: ModelKind,
    model: Option<(&TrainedModel, &str)>,
) -> Result<Vec<ForecastRow>, PipelineError> {
    let h = config.horizon;
    let mut out = Vec::with_capacity(prepared.len() * h);
    let lstm_jobs: Vec<usize> = match (champion, model) {
        (ModelKind::Lstm, Some(_)) => (0..prepared.len())
            .filter(|&i| !needs_fallback(&prepared[i]) && prepared[i].len() >= config.context)
            .collect(),
        _ => Vec::new(),
    };
    let mut lstm_preds = BTreeMap::new();
    if let Some((m, _)) = model.filter(|_| !lstm_jobs.is_empty()) {
        let jobs: Vec<(&Prepared, usize)> = lstm_jobs
            .iter()
            .map(|&i| (&prepared[i], prepared[i].len()))
            .collect();
        for (i, p) in lstm_jobs.iter().zip(m.predict(&jobs)?) {
            lstm_preds.insert(*i, p);
        }
    }
    // Baselines are fitted per series (AutoETS dominates): spread them over
    // the cores; the rows are then assembled in series order.
    let baseline_fits = par_map(&(0..prepared.len()).collect::<Vec<_>>(), |&i| {
        let s = &prepared[i];
        if lstm_preds.contains_key(&i) {
            None
        } else if needs_fallback(s) || champion == ModelKind::Lstm {
            Some(fallback(s, freq, config))
        } else {
            Some(baseline_or_fallback(champion, &s.values, freq, config))
        }
    });
    for ((i, s), fit) in prepared.iter().enumerate().zip(baseline_fits) {
        let group = s.group.clone();
        let bl_err = |source| PipelineError::Baseline {
            group: group.clone(),
            source,
        };
        let mut quality = s.quality.clone();
        let (kind, id, f) = if let Some(p) = lstm_preds.remove(&i) {
            for flag in &p.flags {
                quality.add(*flag);
            }
            let id = model.map_or_else(String::new, |(_, id)| id.to_string());
            let f = PointForecast {
                mean: p.mean,
                quantiles: p.quantiles,
            };
            (ModelKind::Lstm, id, f)
        } else {
            let Some(fit) = fit else {
                continue;
            };
            let (k, f) = fit.map_err(bl_err)?;
            (k, baseline_id(k, &s.group), f)
        };
        let flags = quality.joined();
        let anchor = s.dates[0];
        for step in 0..h {
            out.push(ForecastRow {
                key: s.key.clone(),
                group: s.group.clone(),
                forecast_date: calendar::date_at(freq, anchor, (s.len() + step) as i64)?,
                step: (step + 1) as u32,
                quantiles: f.quantiles.iter().map(|q| q[step]).collect(),
                mean: f.mean[step],
                model_id: id.clone(),
                model_kind: kind,
                flags: flags.clone(),
            });
        }
    }
    Ok(out)
}

/// Maps `f` over `items` on all cores (scoped threads taking blocks of
/// items from a shared counter, so uneven costs balance), keeping order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const BLOCK: usize = 16;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().div_ceil(BLOCK))
        .max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let start = next.fetch_add(BLOCK, Ordering::Relaxed);
                        if start >= items.len() {
                            break out;
                        }
                        for (i, item) in items.iter().enumerate().skip(start).take(BLOCK) {
                            out.push((i, f(item)));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all: Vec<(usize, R)> = parts.drain(..).flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Forecasts with a stored model (e.g. loaded from an artifact) without
/// retraining: the LSTM serves when it was the group's champion, otherwise
/// the recorded champion baseline does; cold-start and all-zero series get
/// the fallback baseline.
pub fn forecast_with_model(
    model: &TrainedModel,
    series: &[Series],
    freq: Frequency,
) -> Result<Vec<ForecastRow>, PipelineError> {
    let config = &model.config;
    let prepared = prepare::prepare_group(series, freq, config.context + config.horizon)?;
    let id = artifact::model_id(model)?;
    let mut model = model.clone();
    if !model.layout.events.is_empty() {
        let events = series.iter().find_map(|s| s.events.clone());
        if events.is_none() && model.serving == ModelKind::Lstm {
            return Err(PipelineError::MissingEvents {
                group: model.group.clone(),
                names: model.layout.events.join(", "),
            });
        }
        model.layout.event_calendar = AttachedEvents(events);
    }
    forecast_rows(&prepared, freq, config, model.serving, Some((&model, &id)))
}

/// Trains every group (series grouped by `group`) on at most `threads`
/// worker threads; results come back sorted by group name. `progress`
/// receives the group name with each epoch report.
pub fn train_all_groups(
    series: Vec<Series>,
    freq: Frequency,
    config: &ModelConfig,
    threads: usize,
    progress: &(dyn Fn(&str, &EpochReport) + Sync),
) -> Vec<(String, Result<GroupResult, PipelineError>)> {
    let mut groups: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for s in series {
        groups.entry(s.group.clone()).or_default().push(s);
    }
    let groups: Vec<(String, Vec<Series>)> = groups.into_iter().collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<GroupResult, PipelineError>>>> =
        Mutex::new((0..groups.len()).map(|_| None).collect());
    let workers = threads.max(1).min(groups.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((name, members)) = groups.get(i) else {
                        break;
                    };
                    let mut cb = |r: &EpochReport| progress(name, r);
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        train_group(name, members, freq, config, &mut cb)
                    }))
                    .unwrap_or_else(|_| Err(PipelineError::Panicked(name.clone())));
                    let mut guard = results.lock().unwrap_or_else(|e| e.into_inner());
                    guard[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    groups
        .into_iter()
        .zip(results)
        .map(|((name, _), r)| {
            let r = r.unwrap_or_else(|| Err(PipelineError::Panicked(name.clone())));
            (name, r)
        })
        .collect()
}

/// Backtest metrics over all groups: per candidate kind, and for the
/// served champions (`None` key).
pub fn overall_metrics(
    results: &[GroupResult],
    n_quantiles: usize,
) -> Vec<(Option<ModelKind>, Metrics)> {
    let mut out = Vec::new();
    for kind in ModelKind::ALL {
        let pooled: Vec<SeriesEval> = results
            .iter()
            .flat_map(|r| r.evals.iter().filter(|(k, _)| *k == kind))
            .flat_map(|(_, ev)| ev.iter().cloned())
            .collect();
        if !pooled.is_empty() {
            out.push((Some(kind), metrics::aggregate(&pooled, n_quantiles)));
        }
    }
    let served: Vec<SeriesEval> = results
        .iter()
        .flat_map(|r| r.evals.iter().filter(move |(k, _)| *k == r.champion))
        .flat_map(|(_, ev)| ev.iter().cloned())
        .collect();
    out.push((None, metrics::aggregate(&served, n_quantiles)));
    out
}

/// Progress sink that can cross into the blocking pool.
pub type SharedProgress = std::sync::Arc<dyn Fn(&str, &EpochReport) + Send + Sync>;

/// `train_all_groups` for async callers: the CPU-heavy work runs on
/// tokio's blocking pool (never on the runtime's worker threads), itself
/// spreading groups over at most `threads` threads.
pub async fn train_all_groups_blocking(
    series: Vec<Series>,
    freq: Frequency,
    config: ModelConfig,
    threads: usize,
    progress: SharedProgress,
) -> Result<Vec<(String, Result<GroupResult, PipelineError>)>, PipelineError> {
    tokio::task::spawn_blocking(move || {
        train_all_groups(series, freq, &config, threads, &*progress)
    })
    .await
    .map_err(|e| PipelineError::Panicked(format!("blocking pool: {e}")))
}
