//! restock's integration tests, in one test binary.
//!
//! Every test here runs the real binary or the real library against real
//! parts (SQLite files, SMTP and S3-compatible servers, Slurm and Ray on
//! loopback, headless Chromium, Parquet read back by DuckDB or pyarrow).
//! They live in one binary because each test binary links all of DataFusion
//! and candle: one per file cost several GB of disk and a link each. nextest
//! still runs every test in its own process, so a test's environment and
//! globals stay its own. Select a file's tests with its module path, e.g.
//! `cargo nextest run -E 'test(/^kill_storm::/)'`.

// Shared helpers.
mod common;
mod lake_support;
mod mail_common;
mod remote_support;
mod seasonal_lake;
mod web_support;

mod audit;
mod cli;
mod daemon;
mod daemon_clock;
mod demo_lake;
mod disk_full;
mod executor;
mod executors_config;
mod forecast_accuracy;
mod forecast_gradients;
mod forecast_inherit;
mod forecast_model;
mod forecast_real_data;
mod forecast_reference;
mod forecast_units;
mod fuzz_regressions;
mod init;
mod inventory_tasks;
mod kill_storm;
mod lake_crash;
mod lake_errors;
mod lake_local;
mod lake_s3;
mod mail_outbox;
mod mail_smtp;
mod mail_task;
mod policy_backtest;
mod remote_engines;
mod sql_golden;
mod train_cancel;
mod validate;
mod web_api;
mod web_browser;
mod worker;
mod your_data;
