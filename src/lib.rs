//! restock: a scheduled batch job orchestrator over a data lake, made for
//! inventory planning. See ARCHITECTURE.md for how the modules fit.

pub mod backtest;
pub mod config;
pub mod daemon;
pub mod dag;
pub mod demo;
pub mod executor;
pub mod forecast;
pub mod fuzzing;
pub mod inventory;
pub mod lake;
pub mod mail;
pub mod project;
pub mod remote;
pub mod schedule;
pub mod secrets;
pub mod store;
pub mod tasks;
pub mod template;
pub mod web;
pub mod worker;
