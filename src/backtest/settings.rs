//! The backtest's settings in two phases: [`BacktestArgs`] is what the user
//! typed, [`Settings`] the validated form, compiled against the DAG whose
//! `reorder` task gives the policy and its costs. Compiling collects every
//! problem at once and touches no lake.

use chrono::NaiveDate;

use super::BacktestError;
use crate::dag::Dag;
use crate::inventory::Policy;

/// Days of sales before the window that the forecasts and the reference
/// policies may look back on.
pub const HISTORY_DAYS: usize = 112;
/// Longest window accepted.
pub const MAX_WINDOW_DAYS: i64 = 3650;

/// What the user asked for, as typed.
#[derive(Debug, Clone)]
pub struct BacktestArgs {
    pub window_days: i64,
    /// Last day replayed; default the last sales date.
    pub end: Option<NaiveDate>,
    /// Seed of the lead-time draws.
    pub seed: u64,
    /// The `reorder` task whose policy is replayed; default the DAG's only
    /// (or first) one.
    pub reorder_task: Option<String>,
    pub sales: String,
    pub inventory: String,
    pub products: String,
    /// Product column that names a series' group.
    pub group_by: String,
    /// Lake path of the output table.
    pub output: String,
    /// Days between forecast refits.
    pub refit_days: i64,
    /// Replay restock's policy on the forecasts the DAG stored (the
    /// `reorder` task's forecasts table) where a day has them.
    pub stored_forecasts: bool,
}

impl Default for BacktestArgs {
    fn default() -> Self {
        Self {
            window_days: 90,
            end: None,
            seed: 7,
            reorder_task: None,
            sales: "sales".into(),
            inventory: "inventory".into(),
            products: "products".into(),
            group_by: "category".into(),
            output: "policy_backtest".into(),
            refit_days: 7,
            stored_forecasts: false,
        }
    }
}

/// A declared table, resolved.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub table: crate::dag::model::Table,
}

/// The declared tables the backtest reads.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Daily units per series (`store, sku, date, units`): the demand.
    pub sales: Source,
    /// Daily stock snapshots (`store, sku, on_hand, on_order`, dated by
    /// `date` or `snapshot_date`): the stock at the window's start.
    pub inventory: Source,
    /// The product master (the `reorder` kind's product columns).
    pub products: Source,
    /// The `reorder` task's forecasts table, when the replay uses the
    /// stored forecasts.
    pub forecasts: Option<Source>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub window_days: usize,
    pub end: Option<NaiveDate>,
    pub seed: u64,
    pub refit_days: usize,
    pub policy: Policy,
    pub holding_rate: f64,
    pub order_cost: f64,
    pub sources: Sources,
    pub group_by: String,
    pub output: String,
    pub history_days: usize,
}

impl Settings {
    /// Check `args` against `dag`, reporting every problem at once.
    pub fn compile(args: &BacktestArgs, dag: &Dag) -> Result<Self, BacktestError> {
        let mut errors = Vec::new();
        if !(1..=MAX_WINDOW_DAYS).contains(&args.window_days) {
            errors.push(format!(
                "--window-days {} is outside 1..={MAX_WINDOW_DAYS}",
                args.window_days
            ));
        }
        if !(1..=366).contains(&args.refit_days) {
            errors.push(format!(
                "refit every {} days: must be 1..=366",
                args.refit_days
            ));
        }
        if let Err(e) = crate::lake::check_table_path(&args.output) {
            errors.push(format!("--output {}: {e}", args.output));
        }
        if let Err(e) = crate::lake::check_identifier(&args.group_by) {
            errors.push(format!("--group-by {}: {e}", args.group_by));
        }
        let source = |errors: &mut Vec<String>, flag: &str, name: &str| match dag.tables.get(name) {
            Some(t) => Some(Source {
                name: name.to_string(),
                table: t.clone(),
            }),
            None => {
                let declared: Vec<&str> = dag.tables.keys().map(String::as_str).collect();
                errors.push(format!(
                    "--{flag} {name}: no such table under `tables:` in {} (declared: {})",
                    dag.file.display(),
                    declared.join(", ")
                ));
                None
            }
        };
        let sales = source(&mut errors, "sales", &args.sales);
        let inventory = source(&mut errors, "inventory", &args.inventory);
        let products = source(&mut errors, "products", &args.products);
        let reorder = reorder_settings(args, dag, &mut errors);
        let forecasts = match (&reorder, args.stored_forecasts) {
            (Some(r), true) => source(
                &mut errors,
                "stored-forecasts: the reorder task's forecasts",
                &r.forecasts,
            ),
            _ => None,
        };
        let stored_ok = !args.stored_forecasts || forecasts.is_some();
        match (sales, inventory, products, reorder) {
            (Some(sales), Some(inventory), Some(products), Some(r))
                if errors.is_empty() && stored_ok =>
            {
                Ok(Self {
                    window_days: args.window_days as usize,
                    end: args.end,
                    seed: args.seed,
                    refit_days: args.refit_days as usize,
                    policy: r.policy,
                    holding_rate: r.holding_rate,
                    order_cost: r.order_cost,
                    sources: Sources {
                        sales,
                        inventory,
                        products,
                        forecasts,
                    },
                    group_by: args.group_by.clone(),
                    output: args.output.clone(),
                    history_days: HISTORY_DAYS,
                })
            }
            _ => Err(BacktestError::Invalid(errors)),
        }
    }
}

/// The policy settings of the DAG's `reorder` task (named, or the first).
fn reorder_settings(
    args: &BacktestArgs,
    dag: &Dag,
    errors: &mut Vec<String>,
) -> Option<crate::tasks::reorder::ReorderSettings> {
    match &args.reorder_task {
        Some(id) => match dag.task(id) {
            Some(t) => t.runner.reorder_settings().or_else(|| {
                errors.push(format!(
                    "task `{id}` of DAG `{}` is a `{}` task, not `reorder`",
                    dag.id, t.kind
                ));
                None
            }),
            None => {
                errors.push(format!("DAG `{}` has no task `{id}`", dag.id));
                None
            }
        },
        None => {
            let first = dag.tasks.iter().find_map(|t| t.runner.reorder_settings());
            if first.is_none() {
                errors.push(format!(
                    "DAG `{}` ({}) has no `reorder` task whose policy could be replayed",
                    dag.id,
                    dag.file.display()
                ));
            }
            first
        }
    }
}
