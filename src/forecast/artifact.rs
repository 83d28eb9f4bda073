//! Model artifacts: `model.safetensors` (the weights) and `model.json`
//! (config, feature lists, scaler, training window, per-epoch losses,
//! restock version, format version, weights checksum), as bytes or in a
//! folder such as `models/<dag>/<group>/<ds>/`. Loading checks that the
//! artifact fits this build and, optionally, the current config.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::baselines::ModelKind;
use super::config::ModelConfig;
use super::features::FeatureLayout;
use super::network::{self, Network, NetworkError, NetworkSpec};
use super::pipeline::BacktestScore;
use super::train::{EpochReport, TrainedModel, TrainingWindow};

/// Version of the artifact layout; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const META_FILE: &str = "model.json";

/// Errors saving or loading artifacts.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("model.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model.safetensors: {0}")]
    Weights(String),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("incompatible model artifact: {0}")]
    Incompatible(String),
}

/// Everything in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub format_version: u32,
    pub restock_version: String,
    pub model_id: String,
    pub group: String,
    pub config: ModelConfig,
    pub layout: FeatureLayout,
    pub encoder_features: Vec<String>,
    pub decoder_features: Vec<String>,
    pub static_features: Vec<String>,
    pub network: NetworkSpec,
    /// How inputs and outputs are scaled.
    pub scaler: String,
    pub training_window: TrainingWindow,
    pub epochs: Vec<EpochReport>,
    pub best_epoch: usize,
    /// The model that won the backtest and serves the forecast.
    pub champion: ModelKind,
    pub backtest: Vec<BacktestScore>,
    /// FNV-1a 64 of `model.safetensors`, hex.
    pub weights_fnv64: String,
    /// How the training task read its input (table, keys, frequency, gap
    /// policy …): the `train` task's input mapping, owned by
    /// `tasks::series_input::InputSpec` and opaque here. A forecast task
    /// serving the model must read the same; absent in models saved
    /// before it was stored, and when the model was trained in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
}

const SCALER: &str = "per-series mean absolute demand over the context window; \
demand inputs and all outputs are divided by it; price is divided by the \
context mean price";

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Serialized weights (tensors sorted by name; identical weights give
/// identical bytes).
pub fn weights_bytes(model: &TrainedModel) -> Result<Vec<u8>, ArtifactError> {
    let snap = network::snapshot(&model.params)?;
    let cpu: Vec<(String, Tensor)> = snap
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&Device::Cpu)?)))
        .collect::<Result<_, candle_core::Error>>()
        .map_err(|e| ArtifactError::Weights(e.to_string()))?;
    safetensors::tensor::serialize(cpu.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|e| ArtifactError::Weights(e.to_string()))
}

/// Identifier of a trained model: group plus a checksum of its weights.
pub fn model_id(model: &TrainedModel) -> Result<String, ArtifactError> {
    Ok(format!(
        "lstm-{}-{:016x}",
        model.group,
        fnv64(&weights_bytes(model)?)
    ))
}

/// Weights and metadata as bytes: `(model.safetensors, model.json)`.
pub fn to_bytes(model: &TrainedModel) -> Result<(Vec<u8>, Vec<u8>), ArtifactError> {
    to_bytes_with_input(model, None)
}

/// [`to_bytes`], recording in `model.json` how the task read its input
/// (see [`ModelMeta::input`]).
pub fn to_bytes_with_input(
    model: &TrainedModel,
    input: Option<serde_json::Value>,
) -> Result<(Vec<u8>, Vec<u8>), ArtifactError> {
    let weights = weights_bytes(model)?;
    let hash = fnv64(&weights);
    let meta = ModelMeta {
        format_version: FORMAT_VERSION,
        restock_version: env!("CARGO_PKG_VERSION").to_string(),
        model_id: format!("lstm-{}-{hash:016x}", model.group),
        group: model.group.clone(),
        config: model.config.clone(),
        layout: model.layout.clone(),
        encoder_features: model.layout.enc_names(),
        decoder_features: model.layout.dec_names(),
        static_features: model.layout.static_names(),
        network: model.network.spec(),
        scaler: SCALER.to_string(),
        training_window: model.window.clone(),
        epochs: model.history.clone(),
        best_epoch: model.best_epoch,
        champion: model.serving,
        backtest: model.backtest.clone(),
        weights_fnv64: format!("{hash:016x}"),
        input,
    };
    Ok((weights, serde_json::to_vec_pretty(&meta)?))
}

/// Checks that `meta` can be run by this build.
pub fn check_meta(meta: &ModelMeta) -> Result<(), ArtifactError> {
    let bad = |m: String| Err(ArtifactError::Incompatible(m));
    if meta.format_version != FORMAT_VERSION {
        return bad(format!(
            "format version {} (written by restock {}), this build reads version {FORMAT_VERSION}; retrain the model",
            meta.format_version, meta.restock_version
        ));
    }
    let layout = &meta.layout;
    for (what, stored, now) in [
        ("encoder", &meta.encoder_features, layout.enc_names()),
        ("decoder", &meta.decoder_features, layout.dec_names()),
        ("static", &meta.static_features, layout.static_names()),
    ] {
        if *stored != now {
            return bad(format!(
                "{what} feature list {stored:?} differs from this build's {now:?}; retrain the model"
            ));
        }
    }
    let expected = layout.spec(
        meta.config.hidden,
        meta.config.layers,
        meta.config.quantiles.len(),
    );
    if expected != meta.network {
        return bad(format!(
            "network shape {:?} does not match its config (expected {expected:?})",
            meta.network
        ));
    }
    Ok(())
}

/// Checks that a stored model serves the current DAG config: same
/// quantiles, hidden size, layers, context and horizon.
pub fn check_config(meta: &ModelMeta, config: &ModelConfig) -> Result<(), ArtifactError> {
    let m = &meta.config;
    let mut diffs = Vec::new();
    if m.quantiles != config.quantiles {
        diffs.push(format!(
            "quantiles {:?} vs configured {:?}",
            m.quantiles, config.quantiles
        ));
    }
    for (name, a, b) in [
        ("hidden", m.hidden, config.hidden),
        ("layers", m.layers, config.layers),
        ("context", m.context, config.context),
        ("horizon", m.horizon, config.horizon),
    ] {
        if a != b {
            diffs.push(format!("{name} {a} vs configured {b}"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(ArtifactError::Incompatible(format!(
            "model {} was trained with {}; retrain it",
            meta.model_id,
            diffs.join(", ")
        )))
    }
}

/// Loads a model from `(model.safetensors, model.json)` bytes.
pub fn from_bytes(
    weights: &[u8],
    meta_json: &[u8],
    device: &Device,
) -> Result<TrainedModel, ArtifactError> {
    let meta: ModelMeta = serde_json::from_slice(meta_json)?;
    check_meta(&meta)?;
    let hash = format!("{:016x}", fnv64(weights));
    if hash != meta.weights_fnv64 {
        return Err(ArtifactError::Incompatible(format!(
            "weights checksum {hash} does not match model.json ({}): the two files are from different models",
            meta.weights_fnv64
        )));
    }
    let tensors = candle_core::safetensors::load_buffer(weights, device)
        .map_err(|e| ArtifactError::Weights(e.to_string()))?;
    for (name, shape) in meta.network.parameters() {
        match tensors.get(&name) {
            Some(t) if t.dims() == shape.as_slice() => {}
            Some(t) => {
                return Err(ArtifactError::Incompatible(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            None => {
                return Err(ArtifactError::Incompatible(format!(
                    "tensor {name} is missing"
                )));
            }
        }
    }
    let params = network::params_from_tensors(tensors)?;
    let vb = VarBuilder::from_varmap(&params, DType::F32, device);
    let net = Network::new(meta.network, vb)?;
    Ok(TrainedModel {
        group: meta.group,
        config: meta.config,
        layout: meta.layout,
        network: net,
        params,
        device: device.clone(),
        history: meta.epochs,
        best_epoch: meta.best_epoch,
        window: meta.training_window,
        serving: meta.champion,
        backtest: meta.backtest,
    })
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `model.safetensors` and `model.json` into `dir` (created if
/// needed). Returns the metadata written.
pub fn save_dir(model: &TrainedModel, dir: &Path) -> Result<ModelMeta, ArtifactError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (weights, meta) = to_bytes(model)?;
    let wp = dir.join(WEIGHTS_FILE);
    std::fs::write(&wp, &weights).map_err(io(&wp))?;
    let mp = dir.join(META_FILE);
    std::fs::write(&mp, &meta).map_err(io(&mp))?;
    Ok(serde_json::from_slice(&meta)?)
}

/// Loads a model saved by `save_dir`.
pub fn load_dir(dir: &Path, device: &Device) -> Result<TrainedModel, ArtifactError> {
    let wp = dir.join(WEIGHTS_FILE);
    let weights = std::fs::read(&wp).map_err(io(&wp))?;
    let mp = dir.join(META_FILE);
    let meta = std::fs::read(&mp).map_err(io(&mp))?;
    from_bytes(&weights, &meta, device)
}

/// Loads a model saved by `save_dir` and checks it serves `config` (see
/// `check_config`): what the forecast task calls.
pub fn load_dir_for(
    dir: &Path,
    config: &ModelConfig,
    device: &Device,
) -> Result<TrainedModel, ArtifactError> {
    let mp = dir.join(META_FILE);
    let meta_bytes = std::fs::read(&mp).map_err(io(&mp))?;
    let meta: ModelMeta = serde_json::from_slice(&meta_bytes)?;
    check_meta(&meta)?;
    check_config(&meta, config)?;
    let wp = dir.join(WEIGHTS_FILE);
    let weights = std::fs::read(&wp).map_err(io(&wp))?;
    from_bytes(&weights, &meta_bytes, device)
}
