//! The hand-written LSTM encoder (forward and backward through time)
//! checked against candle-nn's LSTM differentiated by candle's autograd, on
//! small networks: same outputs, same gradient for every parameter.

// In tests a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use restock::forecast::network::{Network, NetworkSpec, init_params, snapshot};
use restock::forecast::train::loss;

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn check(spec: NetworkSpec, batch: usize, steps: usize) {
    let dev = Device::Cpu;
    let quantiles = [0.1, 0.9][..spec.quantiles].to_vec();
    let params = init_params(&spec, 3, &dev).unwrap();
    let net = Network::new(spec, VarBuilder::from_varmap(&params, DType::F32, &dev)).unwrap();
    let enc = Tensor::from_vec(
        values(batch * steps * spec.enc_features, 1, 2.0),
        (batch, steps, spec.enc_features),
        &dev,
    )
    .unwrap();
    let dec = Tensor::from_vec(
        values(batch * spec.dec_width(), 2, 1.0),
        (batch, spec.dec_width()),
        &dev,
    )
    .unwrap();
    let target = Tensor::from_vec(
        values(batch * spec.horizon, 4, 3.0),
        (batch, spec.horizon),
        &dev,
    )
    .unwrap();

    let fwd = net.forward_train(&enc, &dec).unwrap();
    let fast_out: Vec<f32> = fwd.output.flatten_all().unwrap().to_vec1().unwrap();
    let l = loss(&fwd.output, &target, &quantiles).unwrap();
    let fast = fwd.backward(&l).unwrap();

    let out = net.forward_candle(&enc, &dec).unwrap();
    let want_out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
    let reference = loss(&out, &target, &quantiles).unwrap().backward().unwrap();

    for (i, (g, w)) in fast_out.iter().zip(&want_out).enumerate() {
        assert!(
            (g - w).abs() < 1e-5,
            "output[{i}]: hand-written {g} vs candle {w}"
        );
    }
    for (name, _) in snapshot(&params).unwrap() {
        let var = params.data().lock().unwrap()[&name].clone();
        let got: Vec<f32> = fast
            .get(&var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = reference
            .get(&var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = want.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-4 * scale,
                "d loss / d {name}[{i}]: hand-written {g} vs autograd {w} (largest {scale})"
            );
        }
    }
}

#[test]
fn one_layer_gradients_match_autograd_across_several_blocks() {
    // 70 rows: two full blocks of 32 and a ragged one.
    let spec = NetworkSpec {
        enc_features: 3,
        dec_features: 2,
        static_features: 1,
        hidden: 5,
        layers: 1,
        horizon: 3,
        quantiles: 2,
    };
    check(spec, 70, 7);
}

#[test]
fn stacked_layers_gradients_match_autograd() {
    let spec = NetworkSpec {
        enc_features: 4,
        dec_features: 1,
        static_features: 2,
        hidden: 6,
        layers: 3,
        horizon: 2,
        quantiles: 1,
    };
    check(spec, 9, 5);
}

#[test]
fn a_single_step_window_works() {
    let spec = NetworkSpec {
        enc_features: 2,
        dec_features: 1,
        static_features: 1,
        hidden: 4,
        layers: 2,
        horizon: 1,
        quantiles: 2,
    };
    check(spec, 3, 1);
}

#[test]
fn gradients_are_bit_identical_whatever_the_thread_count() {
    let spec = NetworkSpec {
        enc_features: 3,
        dec_features: 1,
        static_features: 1,
        hidden: 8,
        layers: 2,
        horizon: 2,
        quantiles: 2,
    };
    let (batch, steps) = (100, 6);
    let dev = Device::Cpu;
    let params = init_params(&spec, 5, &dev).unwrap();
    let net = Network::new(spec, VarBuilder::from_varmap(&params, DType::F32, &dev)).unwrap();
    let enc = Tensor::from_vec(
        values(batch * steps * spec.enc_features, 7, 2.0),
        (batch, steps, spec.enc_features),
        &dev,
    )
    .unwrap();
    let dec = Tensor::from_vec(
        values(batch * spec.dec_width(), 8, 1.0),
        (batch, spec.dec_width()),
        &dev,
    )
    .unwrap();
    let target = Tensor::from_vec(
        values(batch * spec.horizon, 9, 3.0),
        (batch, spec.horizon),
        &dev,
    )
    .unwrap();
    let run = |threads: usize| -> Vec<Vec<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let fwd = net.forward_train(&enc, &dec).unwrap();
            let l = loss(&fwd.output, &target, &[0.1, 0.9]).unwrap();
            let grads = fwd.backward(&l).unwrap();
            snapshot(&params)
                .unwrap()
                .into_iter()
                .map(|(name, _)| {
                    let var = params.data().lock().unwrap()[&name].clone();
                    grads
                        .get(&var)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect()
        })
    };
    assert_eq!(run(1), run(3));
}
