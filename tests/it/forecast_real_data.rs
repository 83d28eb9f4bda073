//! Accuracy on real data in CI: `restock bench accuracy tuna` (Dominick's
//! canned tuna, 7 weekly series with price and display, last 13 weeks held
//! out) must stay within a wide margin of the naive forecast. The figure is
//! printed; the real comparison against statsforecast's baselines is the
//! benchmark's job (docs/forecasting.md), this only catches a forecaster
//! that has broken down. Reads `../shared/data/` relative to the repo root
//! (override with RESTOCK_SHARED_DATA); needs python3 with pandas and pyarrow.

use crate::common;

/// Naive's holdout RMSSE on this split, measured with statsforecast's
/// `Naive` and restock's own naive alike (1.079).
const NAIVE_RMSSE: f64 = 1.079;

#[test]
fn served_forecast_on_real_tuna_data_is_within_a_wide_margin_of_naive() {
    let data = std::env::var("RESTOCK_SHARED_DATA").unwrap_or_else(|_| "../shared/data".into());
    let out = common::restock()
        .args([
            "bench",
            "accuracy",
            "tuna",
            "--no-baselines",
            "--data",
            &data,
        ])
        .output()
        .expect("run restock");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    let served: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("served_rmsse="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no served_rmsse line in:\n{stdout}"));
    println!("tuna holdout: served RMSSE {served:.3}, naive {NAIVE_RMSSE:.3}");
    assert!(
        served.is_finite() && served < 1.25 * NAIVE_RMSSE,
        "served RMSSE {served:.3} is more than 25% worse than naive's {NAIVE_RMSSE:.3}"
    );
}
