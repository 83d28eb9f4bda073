//! One group end to end: prepare the series, choose the backtest windows
//! (several origins, stepping back over unrecorded stretches), train the
//! global LSTM and the group regression on what precedes the earliest
//! window, backtest every candidate (naive, seasonal naive, Croston, TSB,
//! Theta, ETS, regression, their trimmed combination, the LSTM) on every
//! window, pick the champion by mean RMSSE, spread its quantiles by its
//! calibration factor ([`super::calibration`]) and produce the forecast
//! rows. Also trains many groups in a bounded pool of threads.
//! Synchronous: async callers wrap it in `spawn_blocking`.
//!
//! Champion/challenger: ties go to the simpler model, so the product is
//! never silently worse than a simple method on its own backtest; every
//! candidate's pooled and per-origin scores are kept for audit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::artifact::{self, ArtifactError};
use super::baselines::{self, ModelKind, PointForecast};
use super::calendar::{self, CalendarError};
use super::calibration::{
    Calibration, Point, fit_spread, out_of_origin_coverage, outer_points, spread,
};
use super::config::{ConfigError, Frequency, ModelConfig};
use super::device::{self, DeviceError};
use super::events::EventCalendar;
use super::features::{AttachedEvents, FeatureLayout};
use super::metrics::{self, Metrics, SeriesEval};
use super::output::ForecastRow;
use super::prepare::{self, PrepareError, PrepareOptions, Prepared};
use super::regression;
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

/// Backtest of one candidate over a group: over all origins pooled, and
/// per origin (index 0 = the latest cut-off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestScore {
    pub kind: ModelKind,
    pub metrics: Metrics,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_origin: Vec<Metrics>,
    /// The factor the candidate's quantiles are spread by around its
    /// median when it serves, so the outer pair covers its nominal share
    /// of the backtest points ([`spread_factor`]); `metrics` are before it.
    #[serde(default = "one")]
    pub spread: f64,
    /// The outer pair's coverage of each origin's points once spread by
    /// the factor fitted on the other origins (out of sample; `None` with
    /// one origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_coverage: Option<f64>,
}

fn one() -> f64 {
    1.0
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
    /// Per candidate, the series evaluations behind `backtest` (one per
    /// series and origin).
    pub evals: Vec<(ModelKind, Vec<SeriesEval>)>,
    /// The backtest cut-offs (the last date each candidate saw), latest
    /// first, of the group's longest series.
    pub origins: Vec<chrono::NaiveDate>,
    pub forecasts: Vec<ForecastRow>,
    pub series: usize,
    pub cold_start: usize,
    /// Missing and stale periods of the group's series.
    pub gaps: prepare::GapSummary,
    pub timings: Timings,
}

impl GroupResult {
    pub fn score(&self, kind: ModelKind) -> Option<&Metrics> {
        self.backtest
            .iter()
            .find(|b| b.kind == kind)
            .map(|b| &b.metrics)
    }

    /// How well the served interval is calibrated on the backtest, for the
    /// log and the run's outputs (see [`Calibration`]).
    pub fn calibration(&self, levels: &[f64]) -> Option<Calibration> {
        let b = self.backtest.iter().find(|b| b.kind == self.champion)?;
        Calibration::judge(b.spread, b.spread_coverage?, levels)
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

/// Trains, backtests and forecasts one group (gaps are zero sales, no run
/// date). `progress` is called after every epoch of the LSTM.
pub fn train_group(
    group: &str,
    series: &[Series],
    freq: Frequency,
    config: &ModelConfig,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<GroupResult, PipelineError> {
    train_group_with(group, series, freq, config, &PrepareOptions::ZERO, progress)
}

/// One backtest forecast: series index, origin index, cut-off.
#[derive(Debug, Clone, Copy)]
struct Job {
    series: usize,
    origin: usize,
    cut: usize,
}

/// The (series, origin) pairs every candidate is scored on: series the
/// LSTM can serve, at the cut-offs of [`window_cuts`]; past
/// [`ModelConfig::backtest_series`] eligible series, an evenly spaced
/// sample of them.
fn backtest_jobs(prepared: &[Prepared], config: &ModelConfig) -> Vec<Job> {
    let eligible: Vec<usize> = (0..prepared.len())
        .filter(|&i| !needs_fallback(&prepared[i]))
        .collect();
    let mut jobs = Vec::new();
    for i in sample_evenly(&eligible, config.backtest_series) {
        let cuts = window_cuts(&prepared[i], config).take(config.origins.max(1));
        jobs.extend(cuts.enumerate().map(|(origin, cut)| Job {
            series: i,
            origin,
            cut,
        }));
    }
    jobs
}

/// A series' backtest cut-offs, latest first: every
/// [`ModelConfig::origin_step`] periods back from its end, while a full
/// context precedes the cut, skipping a window that recorded fewer than
/// half of its `horizon` periods. Without gaps (or with gap policy `zero`)
/// these are the last `origins` steps; a window that falls in an
/// unrecorded stretch (tuna's 40-week hole) would score on a handful of
/// points, so the origin moves back to where the series was recorded, as a
/// cross-validation over rows does.
fn window_cuts<'a>(s: &'a Prepared, config: &ModelConfig) -> impl Iterator<Item = usize> + 'a {
    let (c, h, step) = (config.context, config.horizon, config.origin_step());
    (0..)
        .map_while(move |k: usize| s.len().checked_sub(h + k * step))
        .take_while(move |&cut| cut >= c.max(1))
        .filter(move |&cut| {
            let recorded = s.observed[cut..cut + h].iter().filter(|&&o| o).count();
            2 * recorded >= h
        })
}

/// Steps of each series that the LSTM and the regression may fit on: all
/// but the [`ModelConfig::held_out`] last ones, and nothing from its
/// earliest backtest cut-off on.
fn visible_steps(prepared: &[Prepared], jobs: &[Job], config: &ModelConfig) -> Vec<usize> {
    let held = config.held_out();
    let mut visible: Vec<usize> = prepared
        .iter()
        .map(|s| s.len().saturating_sub(held))
        .collect();
    for j in jobs {
        visible[j.series] = visible[j.series].min(j.cut);
    }
    visible
}

/// `cap` items of `items` evenly spaced from the first (all of them when
/// `cap` is 0 or not smaller than their number).
fn sample_evenly(items: &[usize], cap: usize) -> Vec<usize> {
    let n = items.len();
    if cap == 0 || n <= cap {
        return items.to_vec();
    }
    (0..cap).map(|k| items[k * n / cap]).collect()
}

fn eval_at(s: &Prepared, cut: usize, h: usize, season: usize, f: PointForecast) -> SeriesEval {
    SeriesEval {
        actual: s.scored_values(cut..cut + h),
        mean: f.mean,
        quantiles: f.quantiles,
        scales: metrics::scales(&s.scored_values(0..cut), season),
    }
}

/// Every candidate's backtest evaluations, one per job, in job order.
fn backtest_candidates(
    group: &str,
    prepared: &[Prepared],
    visible: &[usize],
    jobs: &[Job],
    (freq, config): (Frequency, &ModelConfig),
    model: Option<&TrainedModel>,
    events: Option<&Arc<EventCalendar>>,
) -> Result<Vec<(ModelKind, Vec<SeriesEval>)>, PipelineError> {
    let h = config.horizon;
    let season = freq.season();
    let mut evals: Vec<(ModelKind, Vec<SeriesEval>)> = Vec::new();
    for kind in ModelKind::BASELINES {
        let fits = par_map(jobs, |job| {
            let s = &prepared[job.series];
            baseline_or_fallback(kind, &s.values[..job.cut], freq, config)
        });
        let mut ev = Vec::with_capacity(jobs.len());
        for (job, fit) in jobs.iter().zip(fits) {
            let (_, f) = fit.map_err(|source| PipelineError::Baseline {
                group: group.to_string(),
                source,
            })?;
            ev.push(eval_at(&prepared[job.series], job.cut, h, season, f));
        }
        evals.push((kind, ev));
    }
    let lstm = match model {
        Some(m) if !jobs.is_empty() => {
            let inputs: Vec<(&Prepared, usize)> =
                jobs.iter().map(|j| (&prepared[j.series], j.cut)).collect();
            let preds = m.predict(&inputs)?;
            let ev: Vec<SeriesEval> = jobs
                .iter()
                .zip(preds)
                .map(|(j, p)| {
                    let f = PointForecast {
                        mean: p.mean,
                        quantiles: p.quantiles,
                    };
                    eval_at(&prepared[j.series], j.cut, h, season, f)
                })
                .collect();
            Some(ev)
        }
        _ => None,
    };
    let reg = regression_evals(prepared, visible, jobs, (freq, config), events, &evals);
    if let Some(ev) = lstm {
        evals.push((ModelKind::Lstm, ev));
    }
    if let Some(ev) = reg {
        evals.push((ModelKind::Regression, ev));
    }
    Ok(evals)
}

/// The group regression fitted on what precedes the backtest windows and
/// scored at every job; a job whose window is too sparse for it takes
/// naive's forecast, so every candidate is scored on the same points.
fn regression_evals(
    prepared: &[Prepared],
    visible: &[usize],
    jobs: &[Job],
    (freq, config): (Frequency, &ModelConfig),
    events: Option<&Arc<EventCalendar>>,
    evals: &[(ModelKind, Vec<SeriesEval>)],
) -> Option<Vec<SeriesEval>> {
    if jobs.is_empty() {
        return None;
    }
    let fitted = regression::fit(prepared, visible, freq, config, events)?;
    let naive = evals
        .iter()
        .find(|(k, _)| *k == ModelKind::Naive)
        .map(|(_, e)| e)?;
    let (h, season) = (config.horizon, freq.season());
    Some(
        jobs.iter()
            .zip(naive)
            .map(|(j, fallback)| {
                let s = &prepared[j.series];
                match fitted.predict(s, j.cut) {
                    Some(f) => eval_at(s, j.cut, h, season, f),
                    None => fallback.clone(),
                }
            })
            .collect(),
    )
}

/// Candidates whose pooled backtest RMSSE is within this factor of the
/// best one's join the combination.
const COMBO_WITHIN: f64 = 1.10;

/// The combination's members: every candidate that races (the combination
/// itself aside) within [`COMBO_WITHIN`] of the best backtest RMSSE, at
/// least the best two, in the champion rule's order. Recomputed from the
/// stored scores when a saved model serves, so it is never stored apart.
pub fn combo_members(scores: &[BacktestScore]) -> Vec<ModelKind> {
    let mut ranked: Vec<(ModelKind, f64)> = champion_order()
        .into_iter()
        .filter(|k| *k != ModelKind::Combo)
        .filter_map(|k| {
            let s = scores.iter().find(|s| s.kind == k).filter(|s| races(s))?;
            Some((k, s.metrics.rmsse))
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let Some(&(_, best)) = ranked.first() else {
        return Vec::new();
    };
    let mut members: Vec<ModelKind> = ranked
        .iter()
        .enumerate()
        .filter(|(i, (_, r))| *i < 2 || *r <= best * COMBO_WITHIN)
        .map(|(_, (k, _))| *k)
        .collect();
    let order = champion_order();
    members.sort_by_key(|k| order.iter().position(|o| o == k));
    members
}

/// The combination's evaluations: its members' forecasts averaged (means
/// and quantiles) at every job.
fn combine_evals(evals: &[(ModelKind, Vec<SeriesEval>)], members: &[ModelKind]) -> Vec<SeriesEval> {
    let parts: Vec<&Vec<SeriesEval>> = members
        .iter()
        .filter_map(|m| evals.iter().find(|(k, _)| k == m).map(|(_, e)| e))
        .collect();
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let fcs: Vec<PointForecast> = parts
                .iter()
                .map(|e| PointForecast {
                    mean: e[i].mean.clone(),
                    quantiles: e[i].quantiles.clone(),
                })
                .collect();
            let avg = baselines::average(&fcs.iter().collect::<Vec<_>>());
            SeriesEval {
                actual: first[i].actual.clone(),
                mean: avg.mean,
                quantiles: avg.quantiles,
                scales: first[i].scales,
            }
        })
        .collect()
}

/// Pooled and per-origin scores of every candidate.
fn score_candidates(
    evals: &[(ModelKind, Vec<SeriesEval>)],
    jobs: &[Job],
    origins: usize,
    levels: &[f64],
) -> Vec<BacktestScore> {
    let distinct = jobs
        .iter()
        .map(|j| j.series)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    evals
        .iter()
        .map(|(kind, ev)| {
            let by_origin = (0..origins)
                .map(|o| {
                    let part: Vec<SeriesEval> = ev
                        .iter()
                        .zip(jobs)
                        .filter(|(_, j)| j.origin == o)
                        .map(|(e, _)| e.clone())
                        .collect();
                    metrics::aggregate(&part, levels)
                })
                .collect();
            let mut pooled = metrics::aggregate(ev, levels);
            pooled.series = distinct;
            // Each origin's interval points, gathered once for the pooled
            // factor and its out-of-origin check.
            let per_origin: Option<Vec<Vec<Point>>> = (0..origins)
                .map(|o| {
                    let part = ev.iter().zip(jobs).filter(|(_, j)| j.origin == o);
                    outer_points(part.map(|(e, _)| e), levels)
                })
                .collect();
            let (spread, spread_coverage) = match &per_origin {
                Some(per) => (
                    fit_spread(&per.concat(), levels),
                    out_of_origin_coverage(per, levels),
                ),
                None => (1.0, None),
            };
            BacktestScore {
                kind: *kind,
                metrics: pooled,
                by_origin,
                spread,
                spread_coverage,
            }
        })
        .collect()
}

/// Trains, backtests and forecasts one group, with the gap policy and the
/// run's date of `opts`. The LSTM trains on all but the last
/// [`ModelConfig::held_out`] steps; every candidate forecasts from each of
/// the `origins` cut-offs after that, and the champion is the lowest mean
/// RMSSE over all of them.
pub fn train_group_with(
    group: &str,
    series: &[Series],
    freq: Frequency,
    config: &ModelConfig,
    opts: &PrepareOptions,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<GroupResult, PipelineError> {
    config.validate()?;
    let device = device::select(config.device)?;
    let (c, h) = (config.context, config.horizon);
    let prepared = prepare::prepare_group_with(series, freq, c + h, opts)?;
    let layout = group_layout(&prepared, series, freq, config)?;

    let started = Instant::now();
    let jobs = backtest_jobs(&prepared, config);
    let visible = visible_steps(&prepared, &jobs, config);
    let model = train::train(
        group, &prepared, &visible, &layout, config, &device, progress,
    )?;
    let train_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let events = series.iter().find_map(|s| s.events.clone());
    let evals = backtest_candidates(
        group,
        &prepared,
        &visible,
        &jobs,
        (freq, config),
        model.as_ref(),
        events.as_ref(),
    )?;
    let (origins_n, levels) = (config.origins.max(1), &config.quantiles);
    let mut evals = evals;
    let mut backtest = score_candidates(&evals, &jobs, origins_n, levels);
    let members = combo_members(&backtest);
    if members.len() >= 2 {
        let combo = vec![(ModelKind::Combo, combine_evals(&evals, &members))];
        backtest.extend(score_candidates(&combo, &jobs, origins_n, levels));
        evals.extend(combo);
    }
    let champion = choose_champion(&backtest);
    let backtest_secs = started.elapsed().as_secs_f64();
    let origins = origin_dates(&prepared, config);

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
    let serving = Serving {
        champion,
        members: &members,
        spread: spread_of(&backtest, champion),
    };
    let forecasts = forecast_rows(
        &prepared,
        (freq, config),
        serving,
        model.as_ref().zip(lstm_id.as_deref()),
        events.as_ref(),
    )?;
    let model_id = match (champion, &lstm_id) {
        (ModelKind::Lstm | ModelKind::Combo, Some(id)) => id.clone(),
        _ => baseline_id(champion, group),
    };
    Ok(GroupResult {
        group: group.to_string(),
        champion,
        model_id,
        model,
        backtest,
        evals,
        origins,
        forecasts,
        series: prepared.len(),
        gaps: prepare::GapSummary::of(&prepared),
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

/// The feature layout of a group, with the events of its dates and horizon.
fn group_layout(
    prepared: &[Prepared],
    series: &[Series],
    freq: Frequency,
    config: &ModelConfig,
) -> Result<FeatureLayout, PipelineError> {
    let (c, h) = (config.context, config.horizon);
    let mut layout = FeatureLayout::for_group(prepared, freq, c, h);
    let events = series.iter().find_map(|s| s.events.clone());
    let first = prepared.iter().filter_map(|s| s.dates.first()).min();
    let last = prepared.iter().filter_map(|s| s.dates.last()).max();
    if let (Some(events), Some(&first), Some(&last)) = (events, first, last) {
        let to = calendar::date_at(freq, last, h as i64)?;
        layout = layout.with_events(Some(events), first, to);
    }
    Ok(layout)
}

/// The last date before each backtest cut-off of the longest series.
fn origin_dates(prepared: &[Prepared], config: &ModelConfig) -> Vec<chrono::NaiveDate> {
    let Some(s) = prepared.iter().max_by_key(|s| s.len()) else {
        return Vec::new();
    };
    window_cuts(s, config)
        .take(config.origins.max(1))
        .filter_map(|cut| s.dates.get(cut.checked_sub(1)?).copied())
        .collect()
}

fn baseline_id(kind: ModelKind, group: &str) -> String {
    format!("{}-{group}", kind.as_str())
}

/// Candidates simplest first: an earlier one wins ties.
fn champion_order() -> Vec<ModelKind> {
    let mut order = ModelKind::BASELINES.to_vec();
    order.extend([ModelKind::Regression, ModelKind::Combo, ModelKind::Lstm]);
    order
}

/// Fewest series a group's LSTM must be backtested on to race (be
/// champion or join the combination); it is still trained, scored and
/// reported. A global model over a handful of series is a few local
/// models sharing weights, and its backtest on them says little about its
/// future: on tuna (7 series) the LSTM backtested best of all candidates
/// (RMSSE 0.29) and forecast the holdout worst (1.46 to 1.62 over four
/// seeds, naive 1.08).
pub const LSTM_MIN_SERIES: usize = 30;

/// Whether a scored candidate may serve: a finite RMSSE and, for the
/// LSTM, at least [`LSTM_MIN_SERIES`] series behind it.
fn races(score: &BacktestScore) -> bool {
    score.metrics.rmsse.is_finite()
        && (score.kind != ModelKind::Lstm || score.metrics.series >= LSTM_MIN_SERIES)
}

/// The candidate with the lowest mean backtest RMSSE over all origins;
/// the per-series methods are listed simplest first, then the regression,
/// the combination and the LSTM, and an earlier candidate wins ties. Non-finite scores are
/// ignored, and so is an LSTM scored on too few series ([`LSTM_MIN_SERIES`]);
/// seasonal naive when nothing is scored.
pub fn choose_champion(scores: &[BacktestScore]) -> ModelKind {
    let order = champion_order();
    let mut best: Option<(ModelKind, f64)> = None;
    for kind in order {
        let Some(score) = scores.iter().find(|s| s.kind == kind).filter(|s| races(s)) else {
            continue;
        };
        let r = score.metrics.rmsse;
        if best.is_none_or(|(_, b)| r < b) {
            best = Some((kind, r));
        }
    }
    best.map_or(ModelKind::SeasonalNaive, |(k, _)| k)
}

fn spread_of(scores: &[BacktestScore], kind: ModelKind) -> f64 {
    scores
        .iter()
        .find(|s| s.kind == kind)
        .map_or(1.0, |s| s.spread)
}

/// A series' per-series forecasts: the fallback when the group's models
/// cannot serve it, else the serving methods' fits.
enum Fit {
    Fallback(ModelKind, PointForecast),
    Methods(Vec<(ModelKind, PointForecast)>),
}

/// What serves a group: its champion, and when that is the combination,
/// the members averaged.
#[derive(Debug, Clone, Copy)]
struct Serving<'a> {
    champion: ModelKind,
    members: &'a [ModelKind],
    /// The champion's [`BacktestScore::spread`].
    spread: f64,
}

impl Serving<'_> {
    fn uses(&self, kind: ModelKind) -> bool {
        self.champion == kind || (self.champion == ModelKind::Combo && self.members.contains(&kind))
    }

    /// The per-series methods to fit for a series the group models serve.
    fn baselines(&self) -> Vec<ModelKind> {
        match self.champion {
            // Scores too few to choose members from: ETS and Theta averaged.
            ModelKind::Combo if self.members.is_empty() => vec![ModelKind::Combo],
            ModelKind::Combo => self
                .members
                .iter()
                .copied()
                .filter(|k| !matches!(k, ModelKind::Lstm | ModelKind::Regression))
                .collect(),
            ModelKind::Lstm | ModelKind::Regression => Vec::new(),
            k => vec![k],
        }
    }
}

/// The LSTM's forecasts from the end of every series it can serve, when
/// it serves (alone or in the combination).
fn lstm_forecasts(
    prepared: &[Prepared],
    config: &ModelConfig,
    serving: Serving<'_>,
    model: Option<(&TrainedModel, &str)>,
) -> Result<BTreeMap<usize, train::ModelForecast>, PipelineError> {
    let mut out = BTreeMap::new();
    let Some((m, _)) = model.filter(|_| serving.uses(ModelKind::Lstm)) else {
        return Ok(out);
    };
    let idx: Vec<usize> = (0..prepared.len())
        .filter(|&i| !needs_fallback(&prepared[i]) && prepared[i].len() >= config.context)
        .collect();
    if idx.is_empty() {
        return Ok(out);
    }
    let jobs: Vec<(&Prepared, usize)> = idx
        .iter()
        .map(|&i| (&prepared[i], prepared[i].len()))
        .collect();
    for (i, p) in idx.iter().zip(m.predict(&jobs)?) {
        out.insert(*i, p);
    }
    Ok(out)
}

/// The regression's forecasts from the end of every series, fitted on the
/// whole history, when it serves (alone or in the combination).
fn regression_forecasts(
    prepared: &[Prepared],
    (freq, config): (Frequency, &ModelConfig),
    serving: Serving<'_>,
    events: Option<&Arc<EventCalendar>>,
) -> BTreeMap<usize, PointForecast> {
    let mut out = BTreeMap::new();
    if !serving.uses(ModelKind::Regression) {
        return out;
    }
    let ends: Vec<usize> = prepared.iter().map(Prepared::len).collect();
    let Some(fitted) = regression::fit(prepared, &ends, freq, config, events) else {
        return out;
    };
    for (i, s) in prepared.iter().enumerate() {
        if needs_fallback(s) {
            continue;
        }
        if let Some(f) = fitted.predict(s, s.len()) {
            out.insert(i, f);
        }
    }
    out
}

/// Forecast rows for the `horizon` steps after each series' last period
/// (the run's date, when the series were prepared with one).
fn forecast_rows(
    prepared: &[Prepared],
    (freq, config): (Frequency, &ModelConfig),
    serving: Serving<'_>,
    model: Option<(&TrainedModel, &str)>,
    events: Option<&Arc<EventCalendar>>,
) -> Result<Vec<ForecastRow>, PipelineError> {
    let h = config.horizon;
    let mut out = Vec::with_capacity(prepared.len() * h);
    let mut lstm_preds = lstm_forecasts(prepared, config, serving, model)?;
    let mut reg_preds = regression_forecasts(prepared, (freq, config), serving, events);
    let methods = serving.baselines();
    // Baselines are fitted per series (AutoETS dominates): spread them over
    // the cores; the rows are then assembled in series order.
    let baseline_fits = par_map(&(0..prepared.len()).collect::<Vec<_>>(), |&i| {
        let s = &prepared[i];
        let served_by_group_model = match serving.champion {
            ModelKind::Lstm => lstm_preds.contains_key(&i),
            ModelKind::Regression => reg_preds.contains_key(&i),
            _ => true,
        };
        if needs_fallback(s) || !served_by_group_model {
            return fallback(s, freq, config).map(|(k, f)| Fit::Fallback(k, f));
        }
        methods
            .iter()
            .map(|&k| baseline_or_fallback(k, &s.values, freq, config))
            .collect::<Result<Vec<_>, _>>()
            .map(Fit::Methods)
    });
    let lstm_id = model.map_or_else(String::new, |(_, id)| id.to_string());
    for ((i, s), fit) in prepared.iter().enumerate().zip(baseline_fits) {
        let fit = fit.map_err(|source| PipelineError::Baseline {
            group: s.group.clone(),
            source,
        })?;
        let mut quality = s.quality.clone();
        let lf = lstm_preds.remove(&i).map(|p| {
            for flag in &p.flags {
                quality.add(*flag);
            }
            PointForecast {
                mean: p.mean,
                quantiles: p.quantiles,
            }
        });
        let rf = reg_preds.remove(&i);
        let fell_back = matches!(fit, Fit::Fallback(..));
        let (kind, id, mut f) = match (fit, serving.champion) {
            (Fit::Fallback(k, f), _) => (k, baseline_id(k, &s.group), f),
            (Fit::Methods(_), ModelKind::Lstm) => match lf {
                Some(f) => (ModelKind::Lstm, lstm_id.clone(), f),
                None => continue,
            },
            (Fit::Methods(_), ModelKind::Regression) => match rf {
                Some(f) => (
                    ModelKind::Regression,
                    baseline_id(ModelKind::Regression, &s.group),
                    f,
                ),
                None => continue,
            },
            (Fit::Methods(fits), ModelKind::Combo) => {
                let id = if lf.is_some() {
                    lstm_id.clone()
                } else {
                    baseline_id(ModelKind::Combo, &s.group)
                };
                let mut parts: Vec<PointForecast> = fits.into_iter().map(|(_, f)| f).collect();
                parts.extend(lf);
                parts.extend(rf);
                if parts.is_empty() {
                    continue;
                }
                let f = baselines::average(&parts.iter().collect::<Vec<_>>());
                (ModelKind::Combo, id, f)
            }
            // A single baseline (seasonal naive where ETS could not fit).
            (Fit::Methods(fits), _) => {
                let Some((k, f)) = fits.into_iter().next() else {
                    continue;
                };
                (k, baseline_id(k, &s.group), f)
            }
        };
        if !fell_back {
            spread(&mut f, serving.spread, &config.quantiles);
        }
        let events = model.and_then(|(m, _)| m.layout.event_calendar.0.as_deref());
        let row = RowInfo {
            kind,
            id: &id,
            flags: quality.joined(),
            events,
        };
        push_rows(&mut out, s, freq, h, &row, &f)?;
    }
    Ok(out)
}

/// What the rows of one series share.
struct RowInfo<'a> {
    kind: ModelKind,
    id: &'a str,
    flags: String,
    events: Option<&'a super::events::EventCalendar>,
}

fn push_rows(
    out: &mut Vec<ForecastRow>,
    s: &Prepared,
    freq: Frequency,
    h: usize,
    row: &RowInfo<'_>,
    f: &PointForecast,
) -> Result<(), PipelineError> {
    let anchor = s.dates[0];
    for step in 0..h {
        let date = calendar::date_at(freq, anchor, (s.len() + step) as i64)?;
        let next = calendar::date_at(freq, anchor, (s.len() + step + 1) as i64)?;
        let events = row.events.map_or_else(String::new, |c| {
            c.names_between(date, next.pred_opt().unwrap_or(date))
                .join(",")
        });
        out.push(ForecastRow {
            key: s.key.clone(),
            group: s.group.clone(),
            forecast_date: date,
            step: (step + 1) as u32,
            quantiles: f.quantiles.iter().map(|q| q[step]).collect(),
            mean: f.mean[step],
            model_id: row.id.to_string(),
            model_kind: row.kind,
            flags: row.flags.clone(),
            frequency: freq,
            promotion: s
                .future_promo
                .as_ref()
                .and_then(|p| p.get(step))
                .is_some_and(|&p| p > 0.0),
            events,
            adjustment: None,
        });
    }
    Ok(())
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
    forecast_with_model_at(model, series, freq, &PrepareOptions::ZERO)
}

/// [`forecast_with_model`] with a gap policy and the run's date: every
/// forecast covers the `horizon` periods after the run's date.
pub fn forecast_with_model_at(
    model: &TrainedModel,
    series: &[Series],
    freq: Frequency,
    opts: &PrepareOptions,
) -> Result<Vec<ForecastRow>, PipelineError> {
    let config = &model.config;
    let prepared =
        prepare::prepare_group_with(series, freq, config.context + config.horizon, opts)?;
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
    let events = series.iter().find_map(|s| s.events.clone());
    let members = combo_members(&model.backtest);
    let serving = Serving {
        champion: model.serving,
        members: &members,
        spread: spread_of(&model.backtest, model.serving),
    };
    forecast_rows(
        &prepared,
        (freq, config),
        serving,
        Some((&model, &id)),
        events.as_ref(),
    )
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
    train_all_groups_with(
        series,
        freq,
        config,
        &PrepareOptions::ZERO,
        threads,
        progress,
    )
}

/// [`train_all_groups`] with a gap policy and the run's date.
pub fn train_all_groups_with(
    series: Vec<Series>,
    freq: Frequency,
    config: &ModelConfig,
    opts: &PrepareOptions,
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
                        train_group_with(name, members, freq, config, opts, &mut cb)
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
    levels: &[f64],
) -> Vec<(Option<ModelKind>, Metrics)> {
    let mut out = Vec::new();
    for kind in ModelKind::ALL {
        let pooled: Vec<SeriesEval> = results
            .iter()
            .flat_map(|r| r.evals.iter().filter(|(k, _)| *k == kind))
            .flat_map(|(_, ev)| ev.iter().cloned())
            .collect();
        if !pooled.is_empty() {
            let mut m = metrics::aggregate(&pooled, levels);
            m.series = results
                .iter()
                .filter_map(|r| r.score(kind))
                .map(|m| m.series)
                .sum();
            out.push((Some(kind), m));
        }
    }
    let served: Vec<SeriesEval> = results
        .iter()
        .flat_map(|r| r.evals.iter().filter(move |(k, _)| *k == r.champion))
        .flat_map(|(_, ev)| ev.iter().cloned())
        .collect();
    let mut m = metrics::aggregate(&served, levels);
    m.series = results
        .iter()
        .filter_map(|r| r.score(r.champion))
        .map(|m| m.series)
        .sum();
    out.push((None, m));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A weekly series of `n` weeks from 2020-01-06 without the weeks in
    /// `hole`, prepared with gap policy `missing`.
    fn weekly_with_hole(n: usize, hole: std::ops::Range<usize>) -> Prepared {
        let start = chrono::NaiveDate::from_ymd_opt(2020, 1, 6).expect("date");
        let weeks: Vec<usize> = (0..n).filter(|w| !hole.contains(w)).collect();
        let series = Series {
            key: vec!["s".into()],
            group: "g".into(),
            dates: weeks
                .iter()
                .map(|&w| start + chrono::Duration::weeks(w as i64))
                .collect(),
            values: weeks.iter().map(|&w| 10.0 + (w % 3) as f64).collect(),
            ..Series::default()
        };
        let opts = PrepareOptions {
            gaps: super::super::config::GapPolicy::Missing,
            until: None,
        };
        prepare::prepare_group_with(&[series], Frequency::Weekly, 1, &opts)
            .expect("prepares")
            .remove(0)
    }

    #[test]
    fn backtest_windows_step_back_over_an_unrecorded_stretch() {
        let config = ModelConfig {
            context: 13,
            horizon: 13,
            origins: 2,
            ..ModelConfig::default()
        };
        assert_eq!(config.origin_step(), 7);
        // Recorded throughout: the last two steps, as before.
        let full = weekly_with_hole(120, 0..0);
        assert_eq!(
            window_cuts(&full, &config).take(2).collect::<Vec<_>>(),
            [107, 100]
        );
        // Weeks 60..110 unrecorded (a hole like tuna's), 10 recorded after
        // it. The latest window (107..120) records 10 weeks; the ones back
        // from it fewer than 7 until 51..64, before the hole.
        let holed = weekly_with_hole(120, 60..110);
        assert_eq!(holed.observed.iter().filter(|&&o| !o).count(), 50);
        let cuts: Vec<usize> = window_cuts(&holed, &config).take(2).collect();
        assert_eq!(cuts, [107, 51]);
        // Window 51..64 records 9 weeks (51..60), 58..71 only 2; no cut
        // leaves less than a context before it.
        assert!(window_cuts(&holed, &config).all(|c| c >= 13));
        let jobs = backtest_jobs(std::slice::from_ref(&holed), &config);
        let got: Vec<(usize, usize)> = jobs.iter().map(|j| (j.origin, j.cut)).collect();
        assert_eq!(got, [(0, 107), (1, 51)]);
        // The models fitted before the backtest see nothing from the
        // earliest cut on; without a hole, all but the held-out steps.
        assert_eq!(
            visible_steps(std::slice::from_ref(&holed), &jobs, &config),
            [51]
        );
        let jobs = backtest_jobs(std::slice::from_ref(&full), &config);
        assert_eq!(
            visible_steps(std::slice::from_ref(&full), &jobs, &config),
            [120 - config.held_out()]
        );
    }

    #[test]
    fn the_backtest_sample_is_evenly_spaced_and_capped() {
        let items: Vec<usize> = (0..10).map(|i| i * 3).collect();
        assert_eq!(sample_evenly(&items, 0), items);
        assert_eq!(sample_evenly(&items, 10), items);
        assert_eq!(sample_evenly(&items, 4), [0, 6, 15, 21]);
        assert_eq!(sample_evenly(&items, 1), [0]);
        assert!(sample_evenly(&[], 3).is_empty());
    }
}
