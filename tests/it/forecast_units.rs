//! Forecasting pieces on tiny handmade inputs: data preparation edge cases,
//! metrics and losses against hand-computed values, baselines, weekly and
//! monthly frequencies end to end, the Arrow output and the config block.

// In tests a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use arrow::array::{Array, Date32Array, Float64Array, Int32Array, StringArray};
use candle_core::{Device, Tensor};
use chrono::NaiveDate;
use restock::forecast::baselines::{self, normal_quantile};
use restock::forecast::metrics::{self, Scales, SeriesEval, pinball};
use restock::forecast::pipeline::{BacktestScore, LSTM_MIN_SERIES, choose_champion, combo_members};
use restock::forecast::prepare::{PrepareError, prepare, prepare_group};
use restock::forecast::{
    Flag, ForecastRow, Frequency, FutureCovariates, Metrics, ModelConfig, ModelKind, Series,
    forecast_batch, train_all_groups, train_group,
};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn days(start: NaiveDate, n: usize) -> Vec<NaiveDate> {
    start.iter_days().take(n).collect()
}

fn series(key: &str, dates: Vec<NaiveDate>, values: Vec<f64>) -> Series {
    Series {
        key: vec![key.to_string()],
        group: "g".into(),
        dates,
        values,
        ..Series::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// ---------- preparation ----------

#[test]
fn gaps_are_filled_with_zeros_and_counted() {
    let s = series(
        "a",
        vec![d(2024, 1, 1), d(2024, 1, 2), d(2024, 1, 4), d(2024, 1, 5)],
        vec![1.0, 2.0, 4.0, 5.0],
    );
    let p = prepare(&s, Frequency::Daily, 3).unwrap();
    assert_eq!(p.values, vec![1.0, 2.0, 0.0, 4.0, 5.0]);
    assert_eq!(p.dates[2], d(2024, 1, 3));
    assert_eq!(p.quality.gaps_filled, 1);
    assert!(p.quality.has(Flag::GapsFilled));
}

#[test]
fn returns_are_clamped_and_nan_is_missing() {
    let s = series(
        "a",
        days(d(2024, 1, 1), 5),
        vec![3.0, -2.0, f64::NAN, 4.0, -1.0],
    );
    let p = prepare(&s, Frequency::Daily, 3).unwrap();
    assert_eq!(p.values, vec![3.0, 0.0, 0.0, 4.0, 0.0]);
    assert_eq!(p.quality.negatives_clamped, 2);
    assert_eq!(p.quality.missing, 1);
    // Two sales in five days also makes the series intermittent (5/2 > 1.32).
    assert_eq!(
        p.quality.joined(),
        "negative_clamped,missing_values,intermittent"
    );
}

#[test]
fn unsorted_and_duplicate_dates_are_sorted_and_summed() {
    let s = series(
        "a",
        vec![d(2024, 1, 3), d(2024, 1, 1), d(2024, 1, 2), d(2024, 1, 2)],
        vec![3.0, 1.0, 2.0, 5.0],
    );
    let p = prepare(&s, Frequency::Daily, 1).unwrap();
    assert_eq!(p.values, vec![1.0, 7.0, 3.0]);
    assert!(p.quality.has(Flag::DuplicateDates));
}

#[test]
fn all_zero_intermittent_and_short_series_are_flagged() {
    let zero = prepare(
        &series("z", days(d(2024, 1, 1), 4), vec![0.0; 4]),
        Frequency::Daily,
        2,
    )
    .unwrap();
    assert!(zero.quality.has(Flag::AllZero));
    assert!(!zero.quality.has(Flag::Intermittent));

    let sparse = vec![0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 3.0, 0.0];
    let p = prepare(
        &series("i", days(d(2024, 1, 1), 8), sparse),
        Frequency::Daily,
        2,
    )
    .unwrap();
    assert!(
        p.quality.has(Flag::Intermittent),
        "8 days / 2 sales = 4 > 1.32"
    );

    let dense = vec![1.0, 2.0, 0.0, 5.0, 1.0, 1.0, 3.0, 2.0];
    let p = prepare(
        &series("d", days(d(2024, 1, 1), 8), dense),
        Frequency::Daily,
        9,
    )
    .unwrap();
    assert!(!p.quality.has(Flag::Intermittent), "8 / 7 = 1.14");
    assert!(p.quality.has(Flag::ColdStart), "8 observations < 9 needed");
}

#[test]
fn a_group_of_one_is_flagged() {
    let one = vec![series("a", days(d(2024, 1, 1), 3), vec![1.0; 3])];
    let p = prepare_group(&one, Frequency::Daily, 1).unwrap();
    assert!(p[0].quality.has(Flag::SingleSeriesGroup));
    let two = vec![
        one[0].clone(),
        series("b", days(d(2024, 1, 1), 3), vec![1.0; 3]),
    ];
    let p = prepare_group(&two, Frequency::Daily, 1).unwrap();
    assert!(!p[0].quality.has(Flag::SingleSeriesGroup));
}

#[test]
fn weekly_grid_fills_missing_weeks_and_rejects_other_weekdays() {
    let s = series(
        "w",
        vec![d(2024, 1, 1), d(2024, 1, 8), d(2024, 1, 22)],
        vec![1.0, 2.0, 3.0],
    );
    let p = prepare(&s, Frequency::Weekly, 1).unwrap();
    assert_eq!(p.values, vec![1.0, 2.0, 0.0, 3.0]);
    assert_eq!(p.dates[2], d(2024, 1, 15));
    let off = series("w", vec![d(2024, 1, 1), d(2024, 1, 9)], vec![1.0, 2.0]);
    let err = prepare(&off, Frequency::Weekly, 1).unwrap_err();
    assert!(matches!(err, PrepareError::Calendar { .. }));
    assert!(err.to_string().contains("2024-01-09"), "{err}");
}

#[test]
fn monthly_grid_uses_first_of_month_and_fills_missing_months() {
    let s = series(
        "m",
        vec![d(2023, 11, 15), d(2023, 12, 3), d(2024, 2, 20)],
        vec![1.0, 2.0, 3.0],
    );
    let p = prepare(&s, Frequency::Monthly, 1).unwrap();
    assert_eq!(p.values, vec![1.0, 2.0, 0.0, 3.0]);
    assert_eq!(
        p.dates,
        vec![d(2023, 11, 1), d(2023, 12, 1), d(2024, 1, 1), d(2024, 2, 1)]
    );
}

#[test]
fn mismatched_lengths_name_the_series() {
    let mut s = series("bad", days(d(2024, 1, 1), 3), vec![1.0; 3]);
    s.price = Some(vec![1.0; 2]);
    let err = prepare(&s, Frequency::Daily, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series [\"bad\"]: price has 2 entries, expected 3"
    );
}

// ---------- metrics ----------

#[test]
fn pinball_loss_matches_hand_computation() {
    // e = +2 → 0.9·2 = 1.8; e = −2 → 0.1·2 = 0.2; mean 1.0
    assert!(close(pinball(&[10.0, 10.0], &[8.0, 12.0], 0.9), 1.0));
    // q = 0.1: e = +2 → 0.2; e = −2 → 1.8
    assert!(close(pinball(&[10.0, 10.0], &[8.0, 12.0], 0.1), 1.0));
    assert!(close(pinball(&[3.0], &[1.0], 0.5), 1.0));
}

#[test]
fn training_loss_is_pinball_plus_half_mse() {
    // quantiles 0.1, 0.9 and the mean; target [1, 2]
    // step 0: preds 0.5, 1.5 → 0.05 + 0.05; step 1: preds 2.5, 3.0 → 0.45 + 0.1
    // pinball mean = 0.65 / 4 = 0.1625; mean outputs 1, 1 → mse 0.5 → ×0.5
    let pred = Tensor::from_vec(
        vec![0.5f32, 1.5, 1.0, 2.5, 3.0, 1.0],
        (1, 2, 3),
        &Device::Cpu,
    )
    .unwrap();
    let target = Tensor::from_vec(vec![1.0f32, 2.0], (1, 2), &Device::Cpu).unwrap();
    let l = restock::forecast::train::loss(&pred, &target, &[0.1, 0.9]).unwrap();
    let v = f64::from(l.to_scalar::<f32>().unwrap());
    assert!((v - 0.4125).abs() < 1e-6, "{v}");
}

#[test]
fn scales_skip_leading_zeros() {
    // from the first non-zero: [1, 3, 2, 4, 3]; lag-2 diffs 1, 1, 1; lag-1 squares 4, 1, 4, 1
    let s = metrics::scales(&[0.0, 0.0, 1.0, 3.0, 2.0, 4.0, 3.0], 2);
    assert_eq!(s.mase, Some(1.0));
    assert_eq!(s.rmsse, Some(2.5));
    assert_eq!(
        metrics::scales(&[0.0, 0.0], 2),
        Scales {
            mase: None,
            rmsse: None
        }
    );
}

#[test]
fn mase_rmsse_wape_bias_and_coverage_match_hand_computation() {
    let a = SeriesEval {
        actual: vec![2.0, 4.0],
        mean: vec![3.0, 3.0],
        quantiles: vec![vec![1.0, 1.0], vec![5.0, 5.0]],
        scales: Scales {
            mase: Some(1.0),
            rmsse: Some(2.5),
        },
    };
    assert!(close(a.mase().unwrap(), 1.0));
    assert!(close(a.rmsse().unwrap(), (1.0f64 / 2.5).sqrt()));
    // An all-zero history has no scale: out of MASE/RMSSE, in the pooled ones.
    let b = SeriesEval {
        actual: vec![0.0, 0.0],
        mean: vec![1.0, 0.0],
        quantiles: vec![vec![0.0, 0.0], vec![1.0, 1.0]],
        scales: Scales {
            mase: None,
            rmsse: None,
        },
    };
    let m = metrics::aggregate(&[a, b], &[0.1, 0.9]);
    assert!(close(m.mase, 1.0));
    assert!(close(m.rmsse, 0.4f64.sqrt()));
    assert!(close(m.wape, 3.0 / 6.0), "|e| 1+1+1+0 over Σy 6");
    assert!(close(m.bias, 1.0 / 6.0), "(1 − 1 + 1 + 0) / 6");
    // The zeros of b tie its p10 (clamped at zero): its chance of zero
    // lies between 0.1 and 0.9, read as 0.5, so each tie counts
    // 0.1 / 0.5 = 0.2; a lies above its p10 at both points.
    assert!(close(m.coverage[0], 0.4 / 4.0), "{:?}", m.coverage);
    assert!(close(m.coverage[1], 1.0));
    assert_eq!(m.series, 2);
}

/// A backtest score with only the RMSSE mattering.
fn score(kind: ModelKind, rmsse: f64) -> BacktestScore {
    BacktestScore {
        kind,
        metrics: Metrics {
            mase: 1.0,
            rmsse,
            wape: 0.5,
            bias: 0.0,
            coverage: vec![],
            series: 100,
        },
        by_origin: vec![],
        spread: 1.0,
        spread_coverage: None,
    }
}

#[test]
fn champion_needs_strictly_better_rmsse_and_ties_go_to_baselines() {
    let scores = vec![
        score(ModelKind::Naive, 1.2),
        score(ModelKind::SeasonalNaive, 0.9),
        score(ModelKind::Ets, 0.95),
        score(ModelKind::Lstm, 0.9),
    ];
    assert_eq!(choose_champion(&scores), ModelKind::SeasonalNaive);
    let mut better = scores.clone();
    better[3] = score(ModelKind::Lstm, 0.7);
    assert_eq!(choose_champion(&better), ModelKind::Lstm);
    let mut nan = better.clone();
    nan[3] = score(ModelKind::Lstm, f64::NAN);
    assert_eq!(choose_champion(&nan), ModelKind::SeasonalNaive);
    assert_eq!(choose_champion(&[]), ModelKind::SeasonalNaive);
}

#[test]
fn the_combination_takes_the_candidates_within_ten_percent_of_the_best() {
    let scores = vec![
        score(ModelKind::Naive, 2.0),
        score(ModelKind::Theta, 1.08),
        score(ModelKind::Ets, 1.0),
        score(ModelKind::Regression, 1.05),
        score(ModelKind::Lstm, 1.2),
        // The combination's own score never makes it a member.
        score(ModelKind::Combo, 0.5),
        score(ModelKind::Croston, f64::NAN),
    ];
    assert_eq!(
        combo_members(&scores),
        vec![ModelKind::Theta, ModelKind::Ets, ModelKind::Regression]
    );
    // One clear winner still gets a partner: the best two.
    let lone = vec![
        score(ModelKind::Naive, 2.0),
        score(ModelKind::Ets, 1.0),
        score(ModelKind::Lstm, 1.5),
    ];
    assert_eq!(combo_members(&lone), vec![ModelKind::Ets, ModelKind::Lstm]);
    assert!(combo_members(&[]).is_empty());
}

#[test]
fn an_lstm_scored_on_too_few_series_neither_serves_nor_joins_the_combination() {
    let few = |rmsse| BacktestScore {
        metrics: Metrics {
            series: LSTM_MIN_SERIES - 1,
            ..score(ModelKind::Lstm, rmsse).metrics
        },
        ..score(ModelKind::Lstm, rmsse)
    };
    let scores = vec![
        score(ModelKind::Naive, 1.2),
        score(ModelKind::Ets, 1.0),
        score(ModelKind::Regression, 1.05),
        few(0.5),
    ];
    assert_eq!(choose_champion(&scores), ModelKind::Ets);
    assert_eq!(
        combo_members(&scores),
        vec![ModelKind::Ets, ModelKind::Regression]
    );
    let mut enough = scores.clone();
    enough[3].metrics.series = LSTM_MIN_SERIES;
    assert_eq!(choose_champion(&enough), ModelKind::Lstm);
}

// ---------- baselines ----------

#[test]
fn normal_quantiles_match_tables() {
    assert!((normal_quantile(0.9) - 1.2815515655446004).abs() < 1e-8);
    assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-8);
    assert!((normal_quantile(0.01) + 2.3263478740408408).abs() < 1e-8);
    assert_eq!(normal_quantile(0.5), 0.0);
}

#[test]
fn naive_and_seasonal_naive_match_hand_computation() {
    let f = baselines::naive(&[1.0, 3.0, 2.0, 4.0, 3.0], 3, &[0.1, 0.5]).unwrap();
    assert_eq!(f.mean, vec![3.0, 3.0, 3.0]);
    // residual σ = sqrt((4+1+4+1)/4); step 2 widens by √2
    let want = 3.0 - 1.2815515655446004 * 2.5f64.sqrt() * 2f64.sqrt();
    assert!((f.quantiles[0][1] - want).abs() < 1e-7);
    assert_eq!(f.quantiles[1], f.mean);

    let h = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
    let f = baselines::seasonal_naive(&h, 3, 5, &[0.9]).unwrap();
    assert_eq!(f.mean, vec![10.0, 20.0, 30.0, 10.0, 20.0]);
    // lag-3 residuals 9, 18, 27; the second season widens by √2
    let sd = ((81.0 + 324.0 + 729.0) / 3.0f64).sqrt();
    assert!((f.quantiles[0][0] - (10.0 + 1.2815515655446004 * sd)).abs() < 1e-7);
    assert!((f.quantiles[0][3] - (10.0 + 1.2815515655446004 * sd * 2f64.sqrt())).abs() < 1e-7);
    // Quantiles never go below zero.
    let f = baselines::naive(&[5.0, 0.0, 5.0, 0.0], 2, &[0.1]).unwrap();
    assert!(f.quantiles[0].iter().all(|&q| q == 0.0));
}

#[test]
fn ets_recovers_a_clean_seasonal_pattern() {
    let pattern = [10.0, 12.0, 11.0, 13.0, 15.0, 20.0, 18.0];
    // A little deterministic noise: an exact fit makes the likelihood degenerate.
    let h: Vec<f64> = (0..70)
        .map(|t| pattern[t % 7] + 0.3 * ((t * t) as f64 * 0.7).sin())
        .collect();
    let f = baselines::ets(&h, 7, 7, &[0.1, 0.5, 0.9]).unwrap();
    for (t, m) in f.mean.iter().enumerate() {
        assert!(
            (m - pattern[t]).abs() < 0.5,
            "step {t}: {m} vs {}",
            pattern[t]
        );
    }
    assert!(f.quantiles[0][0] <= f.quantiles[1][0] && f.quantiles[1][0] <= f.quantiles[2][0]);
}

/// A history without significant weekly seasonality is not decomposed:
/// it gets the same forecast as with no season at all, a flat level. The
/// seasonal one above is decomposed (its forecast follows the pattern).
#[test]
fn ets_decomposes_only_a_significantly_seasonal_history() {
    // White noise around 10 (a fixed linear congruential sequence).
    let mut x: u64 = 42;
    let h: Vec<f64> = (0..140)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            10.0 + 4.0 * ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
        })
        .collect();
    let weekly = baselines::ets(&h, 7, 7, &[0.1, 0.5, 0.9]).unwrap();
    let plain = baselines::ets(&h, 1, 7, &[0.1, 0.5, 0.9]).unwrap();
    assert_eq!(weekly, plain);
    let spread = weekly.mean.iter().cloned().fold(f64::MIN, f64::max)
        - weekly.mean.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.5, "{:?}", weekly.mean);
}

// ---------- end to end on tiny groups ----------

fn tiny(horizon: usize, context: usize) -> ModelConfig {
    ModelConfig {
        context,
        horizon,
        hidden: 4,
        epochs: 2,
        batch_size: 8,
        batches_per_epoch: 2,
        ..ModelConfig::default()
    }
}

fn wave(n: usize, period: usize, level: f64) -> Vec<f64> {
    (0..n).map(|t| level + (t % period) as f64).collect()
}

#[test]
fn a_large_group_is_backtested_on_a_sample_and_forecast_whole() {
    let start = d(2024, 1, 1);
    let data: Vec<Series> = (0..9)
        .map(|i| {
            let key = format!("s{i}");
            series(&key, days(start, 60), wave(60, 4 + i, 3.0))
        })
        .collect();
    let all = train_group("g", &data, Frequency::Daily, &tiny(7, 14), &mut |_| {}).unwrap();
    let capped = ModelConfig {
        backtest_series: 4,
        ..tiny(7, 14)
    };
    let some = train_group("g", &data, Frequency::Daily, &capped, &mut |_| {}).unwrap();
    for b in &all.backtest {
        assert_eq!(b.metrics.series, 9, "{:?}", b.kind);
    }
    for b in &some.backtest {
        assert_eq!(b.metrics.series, 4, "{:?}", b.kind);
    }
    let naive = |r: &restock::forecast::GroupResult| r.score(ModelKind::Naive).unwrap().rmsse;
    assert_ne!(naive(&all), naive(&some));
    assert_eq!(some.forecasts.len(), 9 * 7);
    assert_eq!(some.series, 9);
}

#[test]
fn max_passes_cuts_the_training_budget_to_passes_over_the_windows() {
    let start = d(2024, 1, 1);
    let data: Vec<Series> = (0..3)
        .map(|i| series(&format!("s{i}"), days(start, 60), wave(60, 4 + i, 3.0)))
        .collect();
    let trained = |epochs: usize, max_passes: usize| {
        let config = ModelConfig {
            epochs,
            max_passes,
            patience: 1000,
            batches_per_epoch: 1000,
            ..tiny(7, 14)
        };
        let r = train_group("g", &data, Frequency::Daily, &config, &mut |_| {}).unwrap();
        r.model.expect("an LSTM").window.windows_trained
    };
    // An epoch this large is one pass over every training window.
    let pass = trained(1, 0);
    assert!(pass > 0 && pass < 8000, "{pass}");
    assert_eq!(trained(3, 0), 3 * pass);
    assert_eq!(trained(50, 2), 2 * pass);
    assert_eq!(trained(1, 2), pass);
}

#[test]
fn cold_start_and_all_zero_series_fall_back_to_baselines() {
    let start = d(2024, 1, 1);
    let data = vec![
        series("long1", days(start, 60), wave(60, 7, 5.0)),
        series("long2", days(start, 60), wave(60, 7, 9.0)),
        series("zero", days(start, 60), vec![0.0; 60]),
        series("short", days(start, 10), wave(10, 7, 3.0)),
        series("tiny", days(start, 3), vec![1.0, 2.0, 3.0]),
    ];
    let r = train_group("g", &data, Frequency::Daily, &tiny(7, 14), &mut |_| {}).unwrap();
    assert_eq!(r.forecasts.len(), 5 * 7);
    assert_eq!(r.cold_start, 2);
    let rows =
        |k: &str| -> Vec<&ForecastRow> { r.forecasts.iter().filter(|f| f.key[0] == k).collect() };
    for row in rows("zero") {
        assert_eq!(row.model_kind, ModelKind::Naive);
        assert_eq!(row.mean, 0.0);
        assert!(row.flags.contains("all_zero"));
    }
    let short = rows("short");
    assert_eq!(short[0].model_kind, ModelKind::SeasonalNaive);
    assert!(short[0].flags.contains("cold_start"));
    assert_eq!(short[0].forecast_date, d(2024, 1, 11));
    // Seasonal naive repeats the last week: values 3..9 at t = 3..9.
    assert_eq!(
        short.iter().map(|r| r.mean).collect::<Vec<_>>(),
        vec![6.0, 7.0, 8.0, 9.0, 3.0, 4.0, 5.0]
    );
    let tiny_rows = rows("tiny");
    assert_eq!(tiny_rows[0].model_kind, ModelKind::Naive);
    assert_eq!(tiny_rows[6].mean, 3.0);
    // The backtest scores only series the global model serves: not the
    // cold-start ones, not the all-zero one.
    assert_eq!(r.score(ModelKind::SeasonalNaive).unwrap().series, 2);
    // A perfectly periodic history: seasonal naive is exact and must win.
    assert_eq!(r.score(ModelKind::SeasonalNaive).unwrap().rmsse, 0.0);
    assert_eq!(r.champion, ModelKind::SeasonalNaive);
    assert!(
        rows("long1")
            .iter()
            .all(|f| f.model_kind == ModelKind::SeasonalNaive)
    );
}

#[test]
fn a_group_of_only_cold_start_series_still_forecasts() {
    let data = vec![series(
        "a",
        days(d(2024, 1, 1), 5),
        vec![1.0, 0.0, 2.0, 0.0, 1.0],
    )];
    let r = train_group("g", &data, Frequency::Daily, &tiny(7, 14), &mut |_| {}).unwrap();
    assert!(r.model.is_none());
    assert_eq!(r.forecasts.len(), 7);
    assert!(r.forecasts[0].flags.contains("single_series_group"));
    assert!(
        r.forecasts[0].flags.contains("intermittent")
            || r.forecasts[0].flags.contains("cold_start")
    );
}

#[test]
fn weekly_frequency_end_to_end() {
    let start = d(2022, 1, 3);
    let weeks = |n: usize| -> Vec<NaiveDate> {
        (0..n)
            .map(|k| start + chrono::Duration::days(7 * k as i64))
            .collect()
    };
    let data = vec![
        series("a", weeks(40), wave(40, 4, 10.0)),
        series("b", weeks(40), wave(40, 5, 20.0)),
    ];
    let r = train_group("g", &data, Frequency::Weekly, &tiny(4, 8), &mut |_| {}).unwrap();
    assert!(r.model.is_some());
    let a: Vec<&ForecastRow> = r.forecasts.iter().filter(|f| f.key[0] == "a").collect();
    assert_eq!(a.len(), 4);
    let last = start + chrono::Duration::days(7 * 39);
    for (k, row) in a.iter().enumerate() {
        assert_eq!(row.step as usize, k + 1);
        assert_eq!(
            row.forecast_date,
            last + chrono::Duration::days(7 * (k as i64 + 1))
        );
    }
    // 40 weeks < a 52-week season: seasonal naive falls back to naive.
    let sn = baselines::seasonal_naive(&wave(40, 4, 10.0), Frequency::Weekly.season(), 2, &[0.5])
        .unwrap();
    assert_eq!(sn.mean, vec![13.0, 13.0]);
    let layout_names = r.model.unwrap().layout.enc_names();
    assert!(layout_names.contains(&"woy_sin1".to_string()));
}

#[test]
fn monthly_frequency_end_to_end() {
    let months: Vec<NaiveDate> = (0..48)
        .map(|k| d(2020 + k / 12, (k % 12) as u32 + 1, 1))
        .collect();
    let seasonal: Vec<f64> = (0..48).map(|k| 100.0 + 10.0 * ((k % 12) as f64)).collect();
    let data = vec![
        series("a", months.clone(), seasonal.clone()),
        series("b", months, seasonal.iter().map(|v| v * 2.0).collect()),
    ];
    let r = train_group("g", &data, Frequency::Monthly, &tiny(6, 12), &mut |_| {}).unwrap();
    let a: Vec<&ForecastRow> = r.forecasts.iter().filter(|f| f.key[0] == "a").collect();
    assert_eq!(a[0].forecast_date, d(2024, 1, 1));
    assert_eq!(a[5].forecast_date, d(2024, 6, 1));
    // Exactly yearly: seasonal naive (season 12) is perfect and serves.
    assert_eq!(r.champion, ModelKind::SeasonalNaive);
    assert_eq!(a[0].mean, 100.0);
    assert_eq!(a[5].mean, 150.0);
}

#[test]
fn missing_future_covariates_are_assumed_and_flagged() {
    let spec = restock::forecast::synthetic::SyntheticSpec {
        series: 4,
        days: 50,
        future_days: 7,
        groups: 1,
        seed: 1,
        median_level: 5.0,
        promo_rate: 0.2,
    };
    let (mut data, _) = restock::forecast::synthetic::generate(&spec);
    data[0].future = None;
    data[1].future = Some(FutureCovariates {
        price: None,
        on_promo: Some(vec![true; 7]),
        filled: 0,
    });
    let r = train_group("g", &data, Frequency::Daily, &tiny(7, 14), &mut |_| {}).unwrap();
    let mut model = r.model.unwrap();
    model.serving = ModelKind::Lstm;
    let rows = restock::forecast::forecast_with_model(&model, &data, Frequency::Daily).unwrap();
    let flags = |i: usize| rows[i * 7].flags.clone();
    assert!(flags(0).contains("future_covariates_assumed"));
    assert!(
        flags(1).contains("future_covariates_assumed"),
        "price missing"
    );
    assert!(!flags(2).contains("future_covariates_assumed"));
}

#[test]
fn groups_train_in_a_bounded_pool_and_come_back_sorted() {
    let start = d(2024, 1, 1);
    let mut data = Vec::new();
    for (g, level) in [("b", 3.0), ("a", 5.0), ("c", 7.0)] {
        let mut s = series(&format!("{g}1"), days(start, 40), wave(40, 7, level));
        s.group = g.into();
        data.push(s);
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let results = train_all_groups(data, Frequency::Daily, &tiny(7, 14), 2, &|g, e| {
        seen.lock().unwrap().push((g.to_string(), e.epoch))
    });
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    for (name, r) in &results {
        let r = r.as_ref().unwrap();
        assert_eq!(&r.group, name);
        assert_eq!(r.forecasts.len(), 7);
    }
    let seen = seen.into_inner().unwrap();
    for g in ["a", "b", "c"] {
        assert!(seen.iter().any(|(n, _)| n == g), "progress for {g}");
    }
}

// ---------- output and config ----------

#[test]
fn forecast_rows_become_an_arrow_batch() {
    let row = |sku: &str, step: u32| ForecastRow {
        key: vec!["CA_1".into(), sku.into()],
        group: "FOODS".into(),
        forecast_date: d(2024, 1, step),
        step,
        quantiles: vec![1.0, 2.0, 3.0],
        mean: 2.5,
        model_id: "lstm-FOODS-00ff".into(),
        model_kind: ModelKind::Lstm,
        flags: "intermittent".into(),
        frequency: Frequency::Daily,
        promotion: step == 2,
        events: String::new(),
        adjustment: None,
    };
    let names = vec!["store".to_string(), "sku".to_string()];
    let batch = forecast_batch(&names, &[0.1, 0.5, 0.9], &[row("x", 1), row("y", 2)]).unwrap();
    let cols: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        cols,
        vec![
            "store",
            "sku",
            "group",
            "forecast_date",
            "step",
            "p10",
            "p50",
            "p90",
            "mean",
            "model_id",
            "model_kind",
            "flags",
            "frequency",
            "promotion",
            "events",
            "model_mean",
            "override_id"
        ]
    );
    assert_eq!(batch.num_rows(), 2);
    let sku = batch
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(sku.value(1), "y");
    let date = batch
        .column(3)
        .as_any()
        .downcast_ref::<Date32Array>()
        .unwrap();
    assert_eq!(date.value_as_date(1), Some(d(2024, 1, 2)));
    let step = batch
        .column(4)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert_eq!(step.value(1), 2);
    let p90 = batch
        .column(7)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(p90.value(0), 3.0);
    let kind = batch
        .column(10)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(kind.value(0), "lstm");
    assert_eq!(batch.column(11).null_count(), 0);

    let mut bad = row("z", 1);
    bad.key.pop();
    let err = forecast_batch(&names, &[0.1, 0.5, 0.9], &[bad]).unwrap_err();
    assert!(
        err.to_string().contains("1 key values, expected 2"),
        "{err}"
    );
}

#[test]
fn model_config_has_defaults_and_rejects_unknown_fields() {
    let c: ModelConfig = serde_yaml::from_str("{}").unwrap();
    assert_eq!(c, ModelConfig::default());
    assert_eq!(
        (c.context, c.hidden, c.layers, c.epochs, c.horizon),
        (56, 64, 1, 30, 28)
    );
    assert_eq!(c.quantile_names(), vec!["p10", "p50", "p90"]);
    let c: ModelConfig =
        serde_yaml::from_str("horizon: 14\nquantiles: [0.025, 0.5]\ndevice: cpu").unwrap();
    assert_eq!(c.horizon, 14);
    assert_eq!(c.quantile_names(), vec!["p2_5", "p50"]);
    let err = serde_yaml::from_str::<ModelConfig>("contxt: 5").unwrap_err();
    assert!(err.to_string().contains("unknown field `contxt`"), "{err}");
    let bad = ModelConfig {
        quantiles: vec![0.9, 0.1],
        ..ModelConfig::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("strictly increasing")
    );
    let zero = ModelConfig {
        horizon: 0,
        ..ModelConfig::default()
    };
    assert_eq!(
        zero.validate().unwrap_err().to_string(),
        "model.horizon must be at least 1, got 0"
    );
}

#[test]
fn cuda_without_the_feature_is_a_clear_error_and_auto_is_cpu() {
    use restock::forecast::{DeviceChoice, device};
    if cfg!(feature = "cuda") {
        return;
    }
    let err = device::select(DeviceChoice::Cuda).unwrap_err();
    assert!(err.to_string().contains("without the `cuda` feature"));
    assert!(device::select(DeviceChoice::Auto).unwrap().is_cpu());
}

#[tokio::test]
async fn async_callers_train_on_the_blocking_pool() {
    let start = d(2024, 1, 1);
    let data = vec![series("a", days(start, 40), wave(40, 7, 4.0))];
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let progress: restock::forecast::SharedProgress = std::sync::Arc::new(move |_, _| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let results = restock::forecast::train_all_groups_blocking(
        data,
        Frequency::Daily,
        tiny(7, 14),
        1,
        progress,
    )
    .await
    .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1.as_ref().unwrap().forecasts.len(), 7);
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[test]
fn ets_on_degenerate_histories_errors_or_forecasts_but_never_panics() {
    let sparse: Vec<f64> = (0..60)
        .map(|t| if t % 9 == 0 { 1.0 } else { 0.0 })
        .collect();
    for h in [
        vec![0.0; 60],
        vec![5.0; 60],
        sparse,
        vec![3.0],
        vec![1.0, 2.0],
    ] {
        if let Ok(f) = baselines::ets(&h, 7, 7, &[0.1, 0.5, 0.9]) {
            assert!(f.mean.iter().all(|m| m.is_finite() && *m >= 0.0), "{h:?}");
        }
    }
}

#[test]
fn stacked_layers_train_and_unknown_static_values_are_flagged() {
    let spec = restock::forecast::synthetic::SyntheticSpec {
        series: 6,
        days: 50,
        future_days: 7,
        groups: 1,
        seed: 2,
        median_level: 5.0,
        promo_rate: 0.1,
    };
    let (mut data, _) = restock::forecast::synthetic::generate(&spec);
    let config = ModelConfig {
        layers: 2,
        ..tiny(7, 14)
    };
    let r = train_group("g", &data, Frequency::Daily, &config, &mut |_| {}).unwrap();
    let mut model = r.model.unwrap();
    assert_eq!(model.network.spec().layers, 2);
    assert!(model.history.iter().all(|e| e.train_loss.is_finite()));
    model.serving = ModelKind::Lstm;
    data[0].static_feature = Some("dept_new".into());
    let rows = restock::forecast::forecast_with_model(&model, &data, Frequency::Daily).unwrap();
    assert!(rows[0].flags.contains("unknown_static_feature"));
    assert!(!rows[7].flags.contains("unknown_static_feature"));
}
