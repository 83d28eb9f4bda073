//! Unit tests of the Theta family on small handmade series, and against
//! statsforecast's `AutoTheta`.

use super::model::{self, Variant};
use super::theta;

fn close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs(),
            "step {k}: got {g}, want {w} (±{rel} relative)\n got {got:?}"
        );
    }
}

#[test]
fn a_linear_trend_continues() {
    let y: Vec<f64> = (0..30).map(|t| 10.0 + 2.0 * t as f64).collect();
    let f = theta(&y, 1, 6, &[]).expect("forecast");
    let want: Vec<f64> = (30..36).map(|t| 10.0 + 2.0 * t as f64).collect();
    close(&f.mean, &want, 0.01);
    for w in f.mean.windows(2) {
        assert!((w[1] - w[0] - 2.0).abs() < 0.2, "{:?}", f.mean);
    }
}

#[test]
fn a_flat_series_stays_flat() {
    let y = vec![5.0; 24];
    let f = theta(&y, 12, 12, &[0.1, 0.9]).expect("forecast");
    close(&f.mean, &[5.0; 12], 1e-3);
}

#[test]
fn a_seasonal_series_keeps_its_pattern() {
    let s = [0.6, 0.7, 0.9, 1.0, 1.2, 1.4, 1.5, 1.3, 1.05, 0.9, 0.75, 0.7];
    let y: Vec<f64> = (0..48).map(|t| 100.0 * s[t % 12]).collect();
    let f = theta(&y, 12, 12, &[]).expect("forecast");
    let want: Vec<f64> = (48..60).map(|t| 100.0 * s[t % 12]).collect();
    close(&f.mean, &want, 0.02);
}

#[test]
fn a_seasonal_series_with_zeros_keeps_its_pattern() {
    // Not positive, so the season comes off as additive offsets.
    let s = [
        -10.0, -6.0, -2.0, 0.0, 4.0, 8.0, 10.0, 6.0, 2.0, -2.0, -4.0, -6.0,
    ];
    let y: Vec<f64> = (0..48).map(|t| 10.0 + s[t % 12]).collect();
    let f = theta(&y, 12, 12, &[]).expect("forecast");
    for (k, m) in f.mean.iter().enumerate() {
        let want = 10.0 + s[(48 + k) % 12];
        assert!((m - want).abs() < 0.2, "step {k}: {m} against {want}");
    }
}

#[test]
fn quantiles_bracket_the_mean() {
    let y: Vec<f64> = (0..30)
        .map(|t| 20.0 + t as f64 + if t % 2 == 0 { 1.5 } else { -1.5 })
        .collect();
    let f = theta(&y, 1, 4, &[0.1, 0.9]).expect("forecast");
    for t in 0..4 {
        assert!(f.quantiles[0][t] < f.mean[t] && f.mean[t] < f.quantiles[1][t]);
    }
    // Wider with the horizon.
    assert!(f.quantiles[1][3] - f.quantiles[0][3] > f.quantiles[1][0] - f.quantiles[0][0]);
}

#[test]
fn short_histories_are_served() {
    assert!(theta(&[], 1, 3, &[]).is_err());
    let f = theta(&[3.0, 4.0, 5.0], 1, 2, &[]).expect("naive");
    assert_eq!(f.mean, vec![5.0, 5.0]);
}

// Expected values from statsforecast 2.1.1 (the `~/.venvs/fc` venv):
//
//     from statsforecast.theta import auto_theta, forecast_theta
//     mod = auto_theta(y, m)              # and auto_theta(y, m, model=...)
//     forecast_theta(mod, h)["mean"], mod["modeltype"], mod["par"]
//
// with `y`, `m` and `h` as in each test.

/// Series A: short, trending, not seasonal (m = 1), h = 6.
const A: [f64; 15] = [
    10.0, 12.0, 11.5, 13.0, 14.2, 13.8, 15.1, 16.0, 15.7, 17.2, 18.0, 17.6, 19.1, 20.3, 19.8,
];

#[test]
fn matches_statsforecast_auto_theta_on_a_trend() {
    let f = theta(&A, 1, 6, &[]).expect("forecast");
    // AutoTheta chose OTM (level 1.2903, α 0.10352, θ 15.991).
    let want = [
        20.859296, 21.507486, 22.155676, 22.803866, 23.452056, 24.100246,
    ];
    close(&f.mean, &want, 1e-3);
}

#[test]
fn each_variant_matches_statsforecast() {
    let cases: [(Variant, f64, [f64; 6]); 4] = [
        (
            Variant::Stm,
            0.5472611573161912,
            [
                20.277543, 20.623257, 20.968971, 21.314685, 21.660400, 22.006114,
            ],
        ),
        (
            Variant::Otm,
            0.17510180042636017,
            [
                20.859296, 21.507486, 22.155676, 22.803866, 23.452056, 24.100246,
            ],
        ),
        (
            Variant::Dstm,
            0.4337592058736209,
            [
                20.295377, 20.627882, 20.950746, 21.264080, 21.568163, 21.863363,
            ],
        ),
        (
            Variant::Dotm,
            0.2671145114370372,
            [
                20.734335, 21.324176, 21.909402, 22.490436, 23.067633, 23.641290,
            ],
        ),
    ];
    for (variant, score, want) in cases {
        let fit = model::fit(&A, variant, 6);
        assert!(
            (fit.score - score).abs() <= 1e-3 * score,
            "{variant:?}: score {} want {score}",
            fit.score
        );
        close(&fit.mean, &want, 1e-3);
    }
}

#[test]
fn matches_statsforecast_auto_theta_on_a_seasonal_series() {
    // Monthly, four years: a multiplicative season on a rising level plus
    // a fixed wiggle. AutoTheta decomposed it and chose OTM.
    let s = [0.6, 0.7, 0.9, 1.0, 1.2, 1.4, 1.5, 1.3, 1.05, 0.9, 0.75, 0.7];
    let wiggle = [
        0.3, -0.2, 0.5, -0.4, 0.1, 0.0, -0.3, 0.2, 0.4, -0.1, -0.5, 0.3,
    ];
    let y: Vec<f64> = (0..48)
        .map(|t| (50.0 + 0.3 * t as f64) * s[t % 12] + wiggle[(5 * t) % 12])
        .collect();
    let f = theta(&y, 12, 12, &[]).expect("forecast");
    let want = [
        38.856853, 45.047574, 57.565977, 64.434646, 78.724619, 91.633037, 98.671219, 86.724031,
        70.255308, 60.273209, 51.113810, 47.514618,
    ];
    close(&f.mean, &want, 2e-3);
}
