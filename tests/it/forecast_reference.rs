//! The forecasting network checked against numbers computed independently
//! with NumPy (tests/fixtures/lstm_reference.py → lstm_reference.json).

// In tests a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{RNN, VarBuilder};
use restock::forecast::network::{Network, NetworkSpec, params_from_tensors};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lstm_reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn params(fx: &Value) -> HashMap<String, Tensor> {
    fx["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, p)| {
            let shape: Vec<usize> = p["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let t = Tensor::from_vec(floats(&p["data"]), shape, &Device::Cpu).unwrap();
            (name.clone(), t)
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "{what}[{i}]: candle {g} vs numpy {w}");
    }
}

#[test]
fn candle_lstm_layer_matches_numpy_gate_equations() {
    let fx = fixture();
    let p = params(&fx);
    let (b, c) = (2, 5);
    let vb = VarBuilder::from_tensors(p, DType::F32, &Device::Cpu);
    let lstm = candle_nn::lstm(3, 4, Default::default(), vb.pp("lstm")).unwrap();
    let enc = Tensor::from_vec(floats(&fx["enc"]), (b, c, 3), &Device::Cpu).unwrap();
    let states = lstm.seq(&enc).unwrap();
    let h_seq = lstm.states_to_tensor(&states).unwrap();
    let got: Vec<f32> = h_seq.flatten_all().unwrap().to_vec1().unwrap();
    assert_close(&got, &floats(&fx["layer0_h_seq"]), "layer 0 hidden states");
    let c_last: Vec<f32> = states[c - 1].c().flatten_all().unwrap().to_vec1().unwrap();
    assert_close(
        &c_last,
        &floats(&fx["layer0_c_last"]),
        "layer 0 last cell state",
    );
}

#[test]
fn network_forward_matches_numpy() {
    let fx = fixture();
    let spec: NetworkSpec = serde_json::from_value(fx["spec"].clone()).unwrap();
    let varmap = params_from_tensors(params(&fx)).unwrap();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let net = Network::new(spec, vb).unwrap();
    let enc = Tensor::from_vec(floats(&fx["enc"]), (2, 5, 3), &Device::Cpu).unwrap();
    let dec = Tensor::from_vec(floats(&fx["dec"]), (2, spec.dec_width()), &Device::Cpu).unwrap();
    let out = net.forward(&enc, &dec).unwrap();
    assert_eq!(out.dims(), &[2, 2, 3]);
    let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
    assert_close(&got, &floats(&fx["output"]), "network output");
}

#[test]
fn fixture_names_match_the_network_parameter_list() {
    let fx = fixture();
    let spec: NetworkSpec = serde_json::from_value(fx["spec"].clone()).unwrap();
    let mut names: Vec<String> = spec.parameters().into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut stored: Vec<String> = fx["params"].as_object().unwrap().keys().cloned().collect();
    stored.sort();
    assert_eq!(names, stored);
}
