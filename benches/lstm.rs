//! The forecaster's training step and inference against PyTorch's, on the
//! shapes of `../shared/anchors/torch_lstm_bench.py`: an LSTM over 56 steps
//! of 8 inputs, hidden 64 (or 128), a 28-step × 3-quantile head, pinball
//! loss, AdamW, gradient clipping, 2 threads. restock's step is the one
//! `train` runs (`Stepper::step`): its head has one more layer (hidden →
//! hidden, ReLU) and a mean output per step trained with ½·MSE, so it does a
//! little more work per window than the PyTorch script.
//!
//! Per config: 5 warm-up steps, then 50 timed ones (as the script does).
//! Prints a table and one JSON line (`{"train": {"B=256,H=64": w/s, …},
//! "infer": {…}}`) that scripts/lstm_vs_torch.sh reads.
//!
//!   cargo bench --profile bench-opt --bench lstm
//! RESTOCK_BENCH_THREADS (default 2), RESTOCK_BENCH_STEPS (50).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use restock::forecast::ModelConfig;
use restock::forecast::network::{Network, NetworkSpec, init_params};
use restock::forecast::train::Stepper;

const STEPS: usize = 56;
const FEATURES: usize = 8;
const HORIZON: usize = 28;
const TRAIN: [(usize, usize); 4] = [(64, 64), (256, 64), (1024, 64), (256, 128)];
const INFER: (usize, usize) = (1024, 64);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic standard-ish normal values (sum of uniforms).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| (next() + next() + next() + next() - 2.0) * 1.7)
        .collect()
}

struct Setup {
    net: Network,
    stepper: Stepper,
    enc: Tensor,
    dec: Tensor,
    target: Tensor,
}

fn setup(batch: usize, hidden: usize) -> Result<Setup, Box<dyn std::error::Error + Send + Sync>> {
    let dev = Device::Cpu;
    // One static input (the log scale every window carries), no horizon
    // covariates: the PyTorch model's head sees the hidden state only.
    let spec = NetworkSpec {
        enc_features: FEATURES,
        dec_features: 0,
        static_features: 1,
        hidden,
        layers: 1,
        horizon: HORIZON,
        quantiles: 3,
    };
    let config = ModelConfig {
        hidden,
        batch_size: batch,
        ..ModelConfig::default()
    };
    let params = init_params(&spec, (batch * 1000 + hidden) as u64, &dev)?;
    let net = Network::new(spec, VarBuilder::from_varmap(&params, DType::F32, &dev))?;
    let stepper = Stepper::new(net.clone(), &params, &config)?;
    Ok(Setup {
        net,
        stepper,
        enc: Tensor::from_vec(
            noise(batch * STEPS * FEATURES, 1),
            (batch, STEPS, FEATURES),
            &dev,
        )?,
        dec: Tensor::from_vec(noise(batch, 2), (batch, 1), &dev)?,
        target: Tensor::from_vec(noise(batch * HORIZON, 3), (batch, HORIZON), &dev)?,
    })
}

fn time<F: FnMut() -> Result<(), Box<dyn std::error::Error + Send + Sync>>>(
    steps: usize,
    mut f: F,
) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
    for _ in 0..5 {
        f()?;
    }
    let started = Instant::now();
    for _ in 0..steps {
        f()?;
    }
    Ok(started.elapsed().as_secs_f64() / steps as f64)
}

fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let threads = env("RESTOCK_BENCH_THREADS", 2);
    let steps = env("RESTOCK_BENCH_STEPS", 50);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "restock LSTM step: T={STEPS} F={FEATURES} horizon {HORIZON} x 3 quantiles + mean, {threads} threads, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| {
        let mut train = Vec::new();
        for (b, h) in TRAIN {
            let mut s = setup(b, h)?;
            let dt = time(steps, || {
                s.stepper.step(&s.enc, &s.dec, &s.target, None)?;
                Ok(())
            })?;
            println!(
                "train B={b:<5} H={h:<4} {:>8.2} ms/step {:>9.0} windows/s",
                dt * 1e3,
                b as f64 / dt
            );
            train.push(format!("\"B={b},H={h}\": {:.1}", b as f64 / dt));
        }
        let (b, h) = INFER;
        let s = setup(b, h)?;
        let dt = time(steps, || {
            s.net.forward(&s.enc, &s.dec)?;
            Ok(())
        })?;
        println!(
            "infer B={b:<5} H={h:<4} {:>8.2} ms/batch {:>8.0} windows/s",
            dt * 1e3,
            b as f64 / dt
        );
        println!(
            "{{\"train\": {{{}}}, \"infer\": {{\"B={b},H={h}\": {:.1}}}}}",
            train.join(", "),
            b as f64 / dt
        );
        Ok(())
    })
}

fn main() {
    if let Err(e) = run() {
        eprintln!("lstm bench failed: {e}");
        std::process::exit(1);
    }
}
