//! Training the global model of one group and running it: window sampling
//! across series, pinball + squared-error loss, AdamW with global gradient
//! clipping, early stopping on a validation window with the best weights
//! restored, and batched inference. Synchronous and CPU-heavy: async
//! callers run it in `tokio::task::spawn_blocking` or a thread pool.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::baselines::ModelKind;
use super::calendar::CalendarError;
use super::config::ModelConfig;
use super::features::{FeatureLayout, Window, context_scale};
use super::network::{self, Network, NetworkError};
use super::pipeline::BacktestScore;
use super::prepare::Prepared;
use super::rng::SplitMix64;
use super::series::Flag;

/// Errors while training or predicting.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(
        "series {key:?} has {len} observations, the model needs at least {context} before the forecast origin"
    )]
    TooShort {
        key: Vec<String>,
        len: usize,
        context: usize,
    },
    #[error("training diverged: loss is {0}")]
    Diverged(f64),
}

/// Losses after one epoch, for the attempt log and the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    #[serde(deserialize_with = "super::metrics::f64_or_nan")]
    pub train_loss: f64,
    pub val_loss: Option<f64>,
}

/// What data the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// Earliest date of any training series.
    pub first_date: Option<NaiveDate>,
    /// Last date visible to training (later data was held out).
    pub last_date: Option<NaiveDate>,
    pub series: usize,
    /// Windows seen over all epochs.
    pub windows_trained: usize,
    pub train_seconds: f64,
}

/// A trained (or loaded) network with everything needed to forecast.
#[derive(Clone)]
pub struct TrainedModel {
    pub group: String,
    pub config: ModelConfig,
    pub layout: FeatureLayout,
    pub network: Network,
    pub params: VarMap,
    pub device: Device,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub window: TrainingWindow,
    /// Which model serves this group's forecast (set by the backtest).
    pub serving: ModelKind,
    /// Backtest scores of every candidate, when known.
    pub backtest: Vec<BacktestScore>,
}

impl std::fmt::Debug for TrainedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedModel")
            .field("group", &self.group)
            .field("layout", &self.layout)
            .field("best_epoch", &self.best_epoch)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

struct Batch {
    enc: Tensor,
    dec: Tensor,
    target: Tensor,
    /// 1 where the target period was recorded, 0 where it was not; `None`
    /// when every target was recorded.
    mask: Option<Tensor>,
}

/// One training window: its inputs, the target values and which of them
/// were recorded.
type Example<'a> = (Window, &'a [f64], &'a [bool]);

fn example<'a>(
    layout: &FeatureLayout,
    s: &'a Prepared,
    t: usize,
) -> Result<Example<'a>, TrainError> {
    let h = layout.horizon;
    Ok((
        layout.window(s, t)?,
        &s.values[t..t + h],
        &s.observed[t..t + h],
    ))
}

fn make_batch(
    layout: &FeatureLayout,
    windows: &[Example<'_>],
    device: &Device,
) -> Result<Batch, TrainError> {
    let b = windows.len();
    let c = layout.context;
    let h = layout.horizon;
    let fe = windows.first().map_or(0, |w| w.0.enc.len() / c.max(1));
    let fd = windows.first().map_or(0, |w| w.0.dec.len());
    let mut enc = Vec::with_capacity(b * c * fe);
    let mut dec = Vec::with_capacity(b * fd);
    let mut target = Vec::with_capacity(b * h);
    let mut mask = Vec::with_capacity(b * h);
    for (w, y, o) in windows {
        enc.extend_from_slice(&w.enc);
        dec.extend_from_slice(&w.dec);
        target.extend(y.iter().map(|v| (v / w.scale) as f32));
        mask.extend(o.iter().map(|&o| if o { 1.0f32 } else { 0.0 }));
    }
    let mask = if mask.iter().all(|&m| m == 1.0) {
        None
    } else {
        Some(Tensor::from_vec(mask, (b, h), device)?)
    };
    Ok(Batch {
        enc: Tensor::from_vec(enc, (b, c, fe), device)?,
        dec: Tensor::from_vec(dec, (b, fd), device)?,
        target: Tensor::from_vec(target, (b, h), device)?,
        mask,
    })
}

impl Batch {
    fn loss(&self, pred: &Tensor, quantiles: &[f64]) -> Result<Tensor, TrainError> {
        match &self.mask {
            None => loss(pred, &self.target, quantiles),
            Some(m) => masked_loss(pred, &self.target, m, quantiles),
        }
    }
}

/// One optimisation step per batch, as [`train`] runs it: forward, loss,
/// backward, global gradient-norm clipping, AdamW. Public so the
/// benchmark times exactly this step.
pub struct Stepper {
    net: Network,
    vars: Vec<Var>,
    opt: AdamW,
    quantiles: Vec<f64>,
    max_grad_norm: f64,
}

impl Stepper {
    /// An optimiser over every parameter in `params` (which `net` reads).
    pub fn new(net: Network, params: &VarMap, config: &ModelConfig) -> Result<Self, TrainError> {
        let vars = sorted_vars(params)?;
        let opt = AdamW::new(
            vars.clone(),
            ParamsAdamW {
                lr: config.learning_rate,
                ..ParamsAdamW::default()
            },
        )?;
        Ok(Self {
            net,
            vars,
            opt,
            quantiles: config.quantiles.clone(),
            max_grad_norm: config.max_grad_norm,
        })
    }

    /// Trains on one batch (`mask` as in [`masked_loss`]); returns its loss.
    pub fn step(
        &mut self,
        enc: &Tensor,
        dec: &Tensor,
        target: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<f64, TrainError> {
        let fwd = self.net.forward_train(enc, dec)?;
        let l = match mask {
            None => loss(&fwd.output, target, &self.quantiles)?,
            Some(m) => masked_loss(&fwd.output, target, m, &self.quantiles)?,
        };
        let lv = f64::from(l.to_scalar::<f32>()?);
        if !lv.is_finite() {
            return Err(TrainError::Diverged(lv));
        }
        let mut grads = fwd.backward(&l)?;
        clip_gradients(&mut grads, &self.vars, self.max_grad_norm)?;
        self.opt.step(&grads)?;
        Ok(lv)
    }
}

/// [`loss`] over the recorded targets only: `mask` (B, H) is 1 where the
/// target was recorded and 0 where it was not (gap policy `missing`), so an
/// unrecorded period neither pulls the forecast down nor up.
pub fn masked_loss(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    quantiles: &[f64],
) -> Result<Tensor, TrainError> {
    let q = quantiles.len();
    let qs: Vec<f32> = quantiles.iter().map(|&x| x as f32).collect();
    let qs = Tensor::from_vec(qs, (1, 1, q), pred.device())?;
    let n = (mask.sum_all()?.to_scalar::<f32>()?).max(1.0);
    let qpred = pred.narrow(2, 0, q)?;
    let mean = pred.narrow(2, q, 1)?.squeeze(2)?;
    let e = target.unsqueeze(2)?.broadcast_sub(&qpred)?;
    let over = e.broadcast_mul(&qs)?;
    let under = e.broadcast_mul(&(qs - 1.0)?)?;
    let pin = over
        .maximum(&under)?
        .broadcast_mul(&mask.unsqueeze(2)?)?
        .sum_all()?;
    let pin = (pin / f64::from(n * q as f32))?;
    let mse = ((target - mean)?.sqr()? * mask)?.sum_all()?;
    let mse = (mse / f64::from(n))?;
    Ok((pin + (mse * 0.5)?)?)
}

/// Mean pinball loss over quantiles plus half the mean squared error of the
/// mean output, in scaled units. `pred`: (B, H, Q+1), `target`: (B, H).
pub fn loss(pred: &Tensor, target: &Tensor, quantiles: &[f64]) -> Result<Tensor, TrainError> {
    let q = quantiles.len();
    let qs: Vec<f32> = quantiles.iter().map(|&x| x as f32).collect();
    let qs = Tensor::from_vec(qs, (1, 1, q), pred.device())?;
    let qpred = pred.narrow(2, 0, q)?;
    let mean = pred.narrow(2, q, 1)?.squeeze(2)?;
    let e = target.unsqueeze(2)?.broadcast_sub(&qpred)?;
    let over = e.broadcast_mul(&qs)?;
    let under = e.broadcast_mul(&(qs - 1.0)?)?;
    let pin = over.maximum(&under)?.mean_all()?;
    let mse = (target - mean)?.sqr()?.mean_all()?;
    Ok((pin + (mse * 0.5)?)?)
}

fn sorted_vars(params: &VarMap) -> Result<Vec<Var>, TrainError> {
    let data = params
        .data()
        .lock()
        .map_err(|_| TrainError::Network(NetworkError::Poisoned))?;
    let mut named: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named.into_iter().map(|(_, v)| v).collect())
}

/// Trains the group's model on the first `visible[i]` observations of each
/// series. Origins whose horizon ends in the last `horizon` visible steps
/// form the validation set (one per series); earlier origins are sampled for
/// training. Returns `None` when no series offers a training window.
pub fn train(
    group: &str,
    series: &[Prepared],
    visible: &[usize],
    layout: &FeatureLayout,
    config: &ModelConfig,
    device: &Device,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<Option<TrainedModel>, TrainError> {
    let started = Instant::now();
    let (c, h) = (config.context, config.horizon);
    let mut rng = SplitMix64::new(config.seed ^ 0x5EED_0FF0_CA57);
    // Per series: the range of training origins [c, last] and a validation origin.
    let mut train_ranges: Vec<(usize, usize)> = Vec::new();
    let mut val_origins: Vec<(usize, usize)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let vis = visible[i].min(s.len());
        if s.quality.has(Flag::ColdStart) || s.quality.has(Flag::AllZero) || vis < c + h {
            continue;
        }
        let val_t = vis - h;
        if val_t >= c + h {
            val_origins.push((i, val_t));
            train_ranges.push((i, val_t - h));
        } else {
            train_ranges.push((i, val_t));
        }
    }
    if train_ranges.is_empty() {
        return Ok(None);
    }
    rng.shuffle(&mut val_origins);
    val_origins.truncate(2048);
    val_origins.sort();

    let spec = layout.spec(config.hidden, config.layers, config.quantiles.len());
    let params = network::init_params(&spec, config.seed, device)?;
    let vb = VarBuilder::from_varmap(&params, candle_core::DType::F32, device);
    let net = Network::new(spec, vb)?;
    let prior = output_prior(series, &train_ranges, config);
    network::set_output_prior(&params, &spec, &prior)?;
    let mut stepper = Stepper::new(net.clone(), &params, config)?;

    let total_origins: usize = train_ranges.iter().map(|&(_, last)| last - c + 1).sum();
    let per_epoch = (config.batches_per_epoch * config.batch_size)
        .min(total_origins)
        .max(1);
    let budget = match config.max_passes {
        0 => usize::MAX,
        p => p.saturating_mul(total_origins).max(1),
    };

    let val_batches: Vec<Batch> = {
        let mut out = Vec::new();
        for chunk in val_origins.chunks(config.batch_size.max(1)) {
            let ws = chunk
                .iter()
                .map(|&(i, t)| example(layout, &series[i], t))
                .collect::<Result<Vec<_>, TrainError>>()?;
            out.push(make_batch(layout, &ws, device)?);
        }
        out
    };

    let mut history = Vec::new();
    let mut best = (f64::INFINITY, 0usize);
    let mut best_snapshot = network::snapshot(&params)?;
    let mut windows_trained = 0usize;
    for epoch in 1..=config.epochs {
        if windows_trained >= budget {
            break;
        }
        let mut epoch_loss = 0.0;
        let mut batches = 0usize;
        let mut remaining = per_epoch.min(budget - windows_trained);
        while remaining > 0 {
            let b = remaining.min(config.batch_size);
            remaining -= b;
            let mut ws = Vec::with_capacity(b);
            for _ in 0..b {
                let (i, last) = train_ranges[rng.below(train_ranges.len())];
                let t = c + rng.below(last - c + 1);
                ws.push(example(layout, &series[i], t)?);
            }
            let batch = make_batch(layout, &ws, device)?;
            let lv = stepper.step(&batch.enc, &batch.dec, &batch.target, batch.mask.as_ref())?;
            epoch_loss += lv;
            batches += 1;
            windows_trained += b;
        }
        let train_loss = epoch_loss / batches.max(1) as f64;
        let val_loss = if val_batches.is_empty() {
            None
        } else {
            let (mut sum, mut n) = (0.0, 0usize);
            for vb in &val_batches {
                let pred = net.forward(&vb.enc, &vb.dec)?;
                let rows = vb.target.dim(0)?;
                sum +=
                    f64::from(vb.loss(&pred, &config.quantiles)?.to_scalar::<f32>()?) * rows as f64;
                n += rows;
            }
            Some(sum / n.max(1) as f64)
        };
        let report = EpochReport {
            epoch,
            train_loss,
            val_loss,
        };
        progress(&report);
        history.push(report);
        let score = val_loss.unwrap_or(train_loss);
        if score < best.0 {
            best = (score, epoch);
            best_snapshot = network::snapshot(&params)?;
        } else if epoch - best.1 >= config.patience.max(1) {
            break;
        }
    }
    network::restore(&params, &best_snapshot)?;

    let first_date = series.iter().filter_map(|s| s.dates.first().copied()).min();
    let last_date = series
        .iter()
        .zip(visible)
        .filter_map(|(s, &v)| s.dates.get(v.min(s.len()).checked_sub(1)?).copied())
        .max();
    Ok(Some(TrainedModel {
        group: group.to_string(),
        config: config.clone(),
        layout: layout.clone(),
        network: net,
        params,
        device: device.clone(),
        history,
        best_epoch: best.1,
        window: TrainingWindow {
            first_date,
            last_date,
            series: train_ranges.len(),
            windows_trained,
            train_seconds: started.elapsed().as_secs_f64(),
        },
        serving: ModelKind::Lstm,
        backtest: Vec::new(),
    }))
}

/// Scales all gradients down so their global L2 norm is at most `max_norm`.
/// The marginal distribution of the scaled training targets: the empirical
/// quantile at each level, then the mean, over the recorded targets of up
/// to [`PRIOR_WINDOWS`] windows sampled from `ranges`. The output layer
/// starts there ([`network::set_output_prior`]): a small group gives an
/// epoch only a few steps, AdamW moves a bias by about the learning rate
/// per step, and a network started near zero would still under-forecast
/// when training ends (cheese's LSTM had a backtest bias of −50%).
fn output_prior(series: &[Prepared], ranges: &[(usize, usize)], config: &ModelConfig) -> Vec<f32> {
    let (c, h) = (config.context, config.horizon);
    let mut rng = SplitMix64::new(config.seed ^ 0x9E10_0F0E_1A5C);
    let mut ys = Vec::new();
    for _ in 0..PRIOR_WINDOWS.min(ranges.iter().map(|&(_, last)| last - c + 1).sum()) {
        let (i, last) = ranges[rng.below(ranges.len())];
        let t = c + rng.below(last - c + 1);
        let s = &series[i];
        let scale = context_scale(&s.values[t - c..t]);
        ys.extend(
            (t..t + h)
                .filter(|&k| s.observed[k] && s.values[k].is_finite())
                .map(|k| s.values[k] / scale),
        );
    }
    ys.sort_by(f64::total_cmp);
    let at = |tau: f64| super::metrics::sorted_quantile(&ys, tau).unwrap_or(1.0);
    let mean = if ys.is_empty() {
        1.0
    } else {
        ys.iter().sum::<f64>() / ys.len() as f64
    };
    config
        .quantiles
        .iter()
        .map(|&q| at(q) as f32)
        .chain([mean as f32])
        .collect()
}

/// Windows [`output_prior`] reads at most.
const PRIOR_WINDOWS: usize = 4096;

fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    max_norm: f64,
) -> Result<(), TrainError> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm && norm.is_finite() {
        let factor = max_norm / norm;
        for v in vars {
            if let Some(g) = grads.get(v) {
                let scaled = (g * factor)?;
                grads.insert(v, scaled);
            }
        }
    }
    Ok(())
}

/// One series' model forecast in original units.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelForecast {
    pub mean: Vec<f64>,
    /// `quantiles[i][t]`, non-decreasing in i, non-negative.
    pub quantiles: Vec<Vec<f64>>,
    pub flags: Vec<Flag>,
}

impl TrainedModel {
    /// Forecasts each `(series, origin)`: the horizon after the first
    /// `origin` observations. Origins must be at least `context`.
    pub fn predict(&self, jobs: &[(&Prepared, usize)]) -> Result<Vec<ModelForecast>, TrainError> {
        let (c, h) = (self.layout.context, self.layout.horizon);
        let nq = self.config.quantiles.len();
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(1024) {
            let mut ws = Vec::with_capacity(chunk.len());
            let zeros = vec![0.0; h];
            let all = vec![true; h];
            for &(s, t) in chunk {
                if t < c || t > s.len() {
                    return Err(TrainError::TooShort {
                        key: s.key.clone(),
                        len: t.min(s.len()),
                        context: c,
                    });
                }
                ws.push((self.layout.window(s, t)?, zeros.as_slice(), all.as_slice()));
            }
            let batch = make_batch(&self.layout, &ws, &self.device)?;
            let pred = self.network.forward(&batch.enc, &batch.dec)?;
            let pred: Vec<Vec<Vec<f32>>> = pred.to_vec3()?;
            for ((w, _, _), p) in ws.into_iter().zip(pred) {
                let mut quantiles = vec![vec![0.0; h]; nq];
                let mut mean = vec![0.0; h];
                for (step, row) in p.iter().enumerate().take(h) {
                    let mut qs: Vec<f64> = row[..nq]
                        .iter()
                        .map(|&x| (f64::from(x) * w.scale).max(0.0))
                        .collect();
                    qs.sort_by(f64::total_cmp);
                    for (i, q) in qs.into_iter().enumerate() {
                        quantiles[i][step] = q;
                    }
                    mean[step] = (f64::from(row[nq]) * w.scale).max(0.0);
                }
                out.push(ModelForecast {
                    mean,
                    quantiles,
                    flags: w.flags,
                });
            }
        }
        Ok(out)
    }
}
