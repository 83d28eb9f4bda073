//! The global forecasting network: a stacked LSTM encoder over the context
//! window, and an MLP head that maps the final hidden state, the static
//! features and the future-known covariates of every horizon step directly
//! to `horizon × (quantiles + 1)` outputs (MQ-RNN style; the extra output is
//! the mean). Owns the layer layout, tensor names and seeded
//! initialisation; not training or data.
//!
//! On the CPU the encoder runs by hand (`lstm.rs`, forward and backward
//! through time) and only the head goes through candle's autograd; on other
//! devices candle-nn's `LSTM` runs it. Both read the same parameters.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{LSTM, LSTMConfig, Linear, Module, RNN, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::lstm::{self, LayerWeights, Tape};
use super::rng::SplitMix64;

/// Errors building or running the network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("parameter store lock poisoned")]
    Poisoned,
}

/// Sizes that fix the network's tensor shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Inputs per context step (scaled demand + covariates).
    pub enc_features: usize,
    /// Known covariates per horizon step.
    pub dec_features: usize,
    /// Per-series static inputs (log scale + one-hot of the static feature).
    pub static_features: usize,
    pub hidden: usize,
    pub layers: usize,
    pub horizon: usize,
    pub quantiles: usize,
}

impl NetworkSpec {
    /// Width of the decoder input: static plus all horizon covariates.
    pub fn dec_width(&self) -> usize {
        self.static_features + self.horizon * self.dec_features
    }

    /// Outputs per horizon step: the quantiles, then the mean.
    pub fn outputs(&self) -> usize {
        self.quantiles + 1
    }

    /// Every parameter name with its shape, in a fixed order.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let h = self.hidden;
        let mut out = Vec::new();
        for l in 0..self.layers {
            let input = if l == 0 { self.enc_features } else { h };
            out.push((format!("lstm.weight_ih_l{l}"), vec![4 * h, input]));
            out.push((format!("lstm.weight_hh_l{l}"), vec![4 * h, h]));
            out.push((format!("lstm.bias_ih_l{l}"), vec![4 * h]));
            out.push((format!("lstm.bias_hh_l{l}"), vec![4 * h]));
        }
        out.push(("head1.weight".into(), vec![h, h + self.dec_width()]));
        out.push(("head1.bias".into(), vec![h]));
        out.push((
            "head2.weight".into(),
            vec![self.horizon * self.outputs(), h],
        ));
        out.push(("head2.bias".into(), vec![self.horizon * self.outputs()]));
        out
    }
}

/// One LSTM layer's parameter tensors, as stored.
#[derive(Debug, Clone)]
struct LayerParams {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

impl LayerParams {
    fn weights(&self) -> Result<LayerWeights, NetworkError> {
        let (g4, input) = self.w_ih.dims2()?;
        let flat = |t: &Tensor| -> Result<Vec<f32>, NetworkError> {
            Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
        };
        Ok(LayerWeights::new(
            flat(&self.w_ih)?,
            flat(&self.w_hh)?,
            &flat(&self.b_ih)?,
            &flat(&self.b_hh)?,
            input,
            g4 / 4,
        ))
    }
}

/// A forward pass kept for its backward pass ([`Network::forward_train`]).
pub struct TrainForward {
    /// (batch, horizon, quantiles + 1) in scaled units.
    pub output: Tensor,
    /// The hand-written encoder's tape, the leaf its last hidden state
    /// entered the head as, and the weights it ran with; `None` when candle
    /// ran the encoder.
    encoder: Option<(Tape, Var, Vec<LayerWeights>)>,
    layers: Vec<LayerParams>,
}

impl TrainForward {
    /// Gradients of `loss` (computed from `output`) for every parameter.
    pub fn backward(self, loss: &Tensor) -> Result<GradStore, NetworkError> {
        let mut grads = loss.backward()?;
        let Some((tape, h_last, weights)) = self.encoder else {
            return Ok(grads);
        };
        let device = h_last.device().clone();
        let d_last = match grads.remove(h_last.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
            None => vec![0.0; h_last.elem_count()],
        };
        for ((p, w), g) in self
            .layers
            .iter()
            .zip(&weights)
            .zip(tape.backward(&weights, &d_last))
        {
            let (g4, input, h) = (4 * w.hidden(), w.input(), w.hidden());
            let bias = Tensor::from_vec(g.bias, g4, &device)?;
            grads.insert(&p.w_ih, Tensor::from_vec(g.w_ih, (g4, input), &device)?);
            grads.insert(&p.w_hh, Tensor::from_vec(g.w_hh, (g4, h), &device)?);
            grads.insert(&p.b_ih, bias.clone());
            grads.insert(&p.b_hh, bias);
        }
        Ok(grads)
    }
}

/// LSTM encoder + direct multi-horizon MLP head.
#[derive(Debug, Clone)]
pub struct Network {
    lstms: Vec<LSTM>,
    layers: Vec<LayerParams>,
    head1: Linear,
    head2: Linear,
    spec: NetworkSpec,
}

impl Network {
    /// Builds the layers from a parameter store holding every tensor of
    /// `spec.parameters()`.
    pub fn new(spec: NetworkSpec, vb: VarBuilder) -> Result<Self, NetworkError> {
        let mut lstms = Vec::with_capacity(spec.layers);
        let mut layers = Vec::with_capacity(spec.layers);
        let h = spec.hidden;
        for l in 0..spec.layers {
            let input = if l == 0 { spec.enc_features } else { h };
            let cfg = LSTMConfig {
                layer_idx: l,
                ..LSTMConfig::default()
            };
            lstms.push(candle_nn::lstm(input, h, cfg, vb.pp("lstm"))?);
            let vb = vb.pp("lstm");
            layers.push(LayerParams {
                w_ih: vb.get((4 * h, input), &format!("weight_ih_l{l}"))?,
                w_hh: vb.get((4 * h, h), &format!("weight_hh_l{l}"))?,
                b_ih: vb.get(4 * h, &format!("bias_ih_l{l}"))?,
                b_hh: vb.get(4 * h, &format!("bias_hh_l{l}"))?,
            });
        }
        let head1 = candle_nn::linear(spec.hidden + spec.dec_width(), spec.hidden, vb.pp("head1"))?;
        let head2 = candle_nn::linear(spec.hidden, spec.horizon * spec.outputs(), vb.pp("head2"))?;
        Ok(Self {
            lstms,
            layers,
            head1,
            head2,
            spec,
        })
    }

    pub fn spec(&self) -> NetworkSpec {
        self.spec
    }

    /// `enc`: (batch, context, enc_features); `dec`: (batch, dec_width).
    /// Returns (batch, horizon, quantiles + 1) in scaled units.
    pub fn forward(&self, enc: &Tensor, dec: &Tensor) -> Result<Tensor, NetworkError> {
        if !enc.device().is_cpu() {
            return self.forward_candle(enc, dec);
        }
        let weights = self.weights()?;
        let (h, _tape) = self.encode(&weights, enc)?;
        self.head(&h, dec)
    }

    /// [`Network::forward`], keeping what [`TrainForward::backward`] needs.
    pub fn forward_train(&self, enc: &Tensor, dec: &Tensor) -> Result<TrainForward, NetworkError> {
        if !enc.device().is_cpu() {
            return Ok(TrainForward {
                output: self.forward_candle(enc, dec)?,
                encoder: None,
                layers: Vec::new(),
            });
        }
        let weights = self.weights()?;
        let (h, tape) = self.encode(&weights, enc)?;
        let h = Var::from_tensor(&h)?;
        Ok(TrainForward {
            output: self.head(h.as_tensor(), dec)?,
            encoder: Some((tape, h, weights)),
            layers: self.layers.clone(),
        })
    }

    /// The forward pass with candle-nn's LSTM (every device; candle's
    /// autograd differentiates it).
    pub fn forward_candle(&self, enc: &Tensor, dec: &Tensor) -> Result<Tensor, NetworkError> {
        let mut xs = enc.clone();
        let mut last = None;
        for (i, lstm) in self.lstms.iter().enumerate() {
            let states = lstm.seq(&xs)?;
            if i + 1 < self.lstms.len() {
                xs = lstm.states_to_tensor(&states)?;
            }
            last = states.last().map(|s| s.h().clone());
        }
        let h = match last {
            Some(h) => h,
            None => return Err(candle_core::Error::Msg("empty context window".into()).into()),
        };
        self.head(&h, dec)
    }

    fn weights(&self) -> Result<Vec<LayerWeights>, NetworkError> {
        self.layers.iter().map(LayerParams::weights).collect()
    }

    /// The hand-written encoder: the top layer's last hidden state
    /// (batch, hidden) and the tape.
    fn encode(
        &self,
        weights: &[LayerWeights],
        enc: &Tensor,
    ) -> Result<(Tensor, Tape), NetworkError> {
        let (batch, steps, features) = enc.dims3()?;
        if steps == 0 || weights.is_empty() {
            return Err(candle_core::Error::Msg("empty context window".into()).into());
        }
        if features != self.spec.enc_features {
            return Err(candle_core::Error::Msg(format!(
                "encoder input has {features} features, the network expects {}",
                self.spec.enc_features
            ))
            .into());
        }
        let x = enc.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let (h, tape) = lstm::forward(weights, &x, batch, steps);
        Ok((
            Tensor::from_vec(h, (batch, self.spec.hidden), enc.device())?,
            tape,
        ))
    }

    fn head(&self, h: &Tensor, dec: &Tensor) -> Result<Tensor, NetworkError> {
        let z = Tensor::cat(&[h, dec], 1)?;
        let z = self.head1.forward(&z)?.relu()?;
        let out = self.head2.forward(&z)?;
        let batch = out.dim(0)?;
        Ok(out.reshape((batch, self.spec.horizon, self.spec.outputs()))?)
    }
}

/// A parameter store initialised from `seed`: weights uniform in
/// ±1/√fan_in (PyTorch's LSTM and Linear defaults), LSTM forget-gate
/// biases at +0.5 each so the cell starts by remembering.
pub fn init_params(spec: &NetworkSpec, seed: u64, device: &Device) -> Result<VarMap, NetworkError> {
    let mut rng = SplitMix64::new(seed);
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().map_err(|_| NetworkError::Poisoned)?;
        for (name, shape) in spec.parameters() {
            let fan_in = if name.starts_with("lstm") {
                spec.hidden
            } else if name.starts_with("head1") {
                spec.hidden + spec.dec_width()
            } else {
                spec.hidden
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            let n: usize = shape.iter().product();
            let mut v: Vec<f32> = (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect();
            if name.starts_with("lstm.bias") {
                let h = spec.hidden;
                v[h..2 * h].iter_mut().for_each(|x| *x = 0.5);
            }
            let t = Tensor::from_vec(v, shape.as_slice(), device)?;
            data.insert(name, Var::from_tensor(&t)?);
        }
    }
    Ok(varmap)
}

/// Sets the output layer's bias to `prior` (one value per output,
/// quantiles then mean) at every horizon step, so that an untrained
/// network already forecasts the training targets' marginal distribution
/// and training learns the departures from it.
pub fn set_output_prior(
    varmap: &VarMap,
    spec: &NetworkSpec,
    prior: &[f32],
) -> Result<(), NetworkError> {
    let data = varmap.data().lock().map_err(|_| NetworkError::Poisoned)?;
    let Some(bias) = data.get("head2.bias") else {
        return Ok(());
    };
    let v: Vec<f32> = (0..spec.horizon)
        .flat_map(|_| prior.iter().copied())
        .collect();
    let t = Tensor::from_vec(v, spec.horizon * spec.outputs(), bias.device())?;
    bias.set(&t)?;
    Ok(())
}

/// A parameter store holding the given tensors (e.g. loaded from disk).
pub fn params_from_tensors(tensors: HashMap<String, Tensor>) -> Result<VarMap, NetworkError> {
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().map_err(|_| NetworkError::Poisoned)?;
        for (name, t) in tensors {
            data.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
        }
    }
    Ok(varmap)
}

/// Copies every parameter (sorted by name) out of the store.
pub fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>, NetworkError> {
    let data = varmap.data().lock().map_err(|_| NetworkError::Poisoned)?;
    let mut out = Vec::with_capacity(data.len());
    for (name, var) in data.iter() {
        out.push((name.clone(), var.as_tensor().copy()?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes a snapshot back into the store.
pub fn restore(varmap: &VarMap, snap: &[(String, Tensor)]) -> Result<(), NetworkError> {
    let data = varmap.data().lock().map_err(|_| NetworkError::Poisoned)?;
    for (name, t) in snap {
        if let Some(var) = data.get(name) {
            var.set(t)?;
        }
    }
    Ok(())
}
