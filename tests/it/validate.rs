//! `restock validate` on invalid DAG files: the exact messages, with file,
//! line, column and key path, every error of a file at once, exit code 2.
//! Messages speak of the YAML (a whole number, a list), never of Rust
//! types or serde's untagged enums.

use crate::common;

/// (fixture, expected stderr lines without the file prefix).
const CASES: &[(&str, &[&str])] = &[
    (
        "bad_catchup.yaml",
        &[
            "4:3: schedule.catchup: unknown variant `sometimes`, expected one of `all`, `last`, `none`",
        ],
    ),
    (
        "bad_cron.yaml",
        &[
            "3:3: schedule.cron: invalid cron expression `0 25 * * *`: Component error: Number out of bounds.",
        ],
    ),
    (
        "bad_duration.yaml",
        &[
            "3:3: defaults.retry_delay: invalid duration `soon` (expected number at 0; expected e.g. 30s, 10m, 1h)",
            "7:5: tasks[0].timeout: invalid duration `5 parsecs` (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations); expected e.g. 30s, 10m, 1h)",
        ],
    ),
    (
        "bad_ids.yaml",
        &[
            "1:1: id: invalid DAG id `my dag`: use letters, digits, `_` and `-` (at most 128)",
            "3:5: tasks[0].id: invalid task id `load/all`: use letters, digits, `_` and `-` (at most 128)",
        ],
    ),
    (
        "bad_start_date.yaml",
        &["4:3: schedule.start_date: invalid date `2026-13-01` (expected YYYY-MM-DD)"],
    ),
    (
        "bad_template.yaml",
        &[
            "5:23: tasks[0].command[1]: template does not parse: syntax error: unexpected end of input, expected end of variable block (template line 1)",
        ],
    ),
    (
        "bad_timezone.yaml",
        &[
            "4:3: schedule.timezone: unknown time zone `Europe/Berln` (expected an IANA name such as Europe/Berlin)",
        ],
    ),
    (
        "bad_trigger_rule.yaml",
        &[
            "8:5: tasks[1].trigger_rule: unknown variant `all_sucess`, expected one of `all_success`, `all_done`, `all_failed`, `one_success`, `one_failed`, `none_failed`",
        ],
    ),
    (
        "bad_when.yaml",
        &[
            "8:5: tasks[1].when: template does not parse: syntax error: unexpected end of input, expected expression (template line 1)",
        ],
    ),
    (
        "cron_six_fields.yaml",
        &[
            "3:3: schedule.cron: invalid cron expression `0 0 2 * * *`: expected 5 fields (minute hour day-of-month month day-of-week), found 6",
        ],
    ),
    (
        "cycle.yaml",
        &["8:5: tasks[1].depends_on: dependency cycle: a -> b -> c -> a"],
    ),
    (
        "duplicate_task.yaml",
        &["5:5: tasks[1].id: duplicate task id `t` (first defined at tasks[0])"],
    ),
    (
        "empty_command.yaml",
        &["5:5: tasks[0].command: command is empty"],
    ),
    (
        "empty_tasks.yaml",
        &["2:1: tasks: a DAG needs at least one task"],
    ),
    (
        "malformed_yaml.yaml",
        &["5:4: invalid YAML: did not find expected '-' indicator"],
    ),
    (
        "many_errors.yaml",
        &[
            "3:3: schedule.cron: invalid cron expression `every day`: expected 5 fields (minute hour day-of-month month day-of-week), found 2",
            "4:3: schedule.timezone: unknown time zone `Nowhere/City` (expected an IANA name such as Europe/Berlin)",
            "8:18: tasks[0].depends_on[0]: depends_on unknown task `missing`, expected one of: a, c",
            "9:5: tasks[1].id: duplicate task id `a` (first defined at tasks[0])",
            "10:5: tasks[1].kind: unknown task kind `emty`, did you mean `empty`?",
            "13:23: tasks[2].command[1]: template does not parse: syntax error: unexpected end of input, expected end of variable block (template line 1)",
            "14:5: tasks[2].timeout: invalid duration `forever` (expected number at 0; expected e.g. 30s, 10m, 1h)",
        ],
    ),
    (
        "missing_kind.yaml",
        &["3:5: tasks[0]: missing field `kind`"],
    ),
    (
        "missing_script.yaml",
        &["5:26: tasks[0].command[1]: file `./scripts/does_not_exist.py` does not exist"],
    ),
    ("missing_tasks.yaml", &["1:1: missing field `tasks`"]),
    (
        "self_dependency.yaml",
        &["5:18: tasks[0].depends_on[0]: task `t` depends on itself"],
    ),
    (
        "sql_syntax_error.yaml",
        &[
            "7:5: tasks[0].sql: ./tests/fixtures/sql/syntax_error.sql:5:7: SQL error: ParserError(\"Expected: end of statement, found: BY at Line: 5, Column: 7\")",
        ],
    ),
    (
        "sql_too_much_work.yaml",
        &[
            "7:5: tasks[0].sql: ./tests/fixtures/sql/too_much_work.sql: template failed to render: the template does more work than allowed (1000000 steps or about 64 MB of text); a loop or a repeated string is too large (template line 4)",
        ],
    ),
    (
        "sql_undeclared_table.yaml",
        &[
            "8:5: tasks[0].sql: ./tests/fixtures/sql/undeclared_table.sql:7:6: unknown table `returns` (declared tables: sales); declare it under `tables:`",
        ],
    ),
    (
        "task_not_mapping.yaml",
        &["3:5: tasks[0]: a task must be a mapping with `id` and `kind`"],
    ),
    (
        "train_undeclared_input.yaml",
        &[
            "7:5: tasks[0].input: unknown table `dialy_sales` (declared tables: daily_sales); declare it under `tables:`",
            "16:5: tasks[1].future: unknown table `promo_plan` (declared tables: daily_sales); declare it under `tables:`",
        ],
    ),
    (
        "forecast_contradicts_train.yaml",
        &[
            "16:5: tasks[1].frequency: forecast task `forecast` has `frequency: daily`, but its train task `train` has `frequency: weekly` (line 10); drop the key to inherit it, or make the two agree",
            "17:5: tasks[1].static_feature: forecast task `forecast` has `static_feature: department`, but its train task `train` has no `static_feature`; drop the key to inherit it, or make the two agree",
            "18:5: tasks[1].gaps: forecast task `forecast` has `gaps: zero`, but its train task `train` has `gaps: missing` (its default); drop the key to inherit it, or make the two agree",
        ],
    ),
    (
        "forecast_train_errors.yaml",
        &[
            "7:5: tasks[0].input: unknown table `dialy_sales` (declared tables: daily_sales); declare it under `tables:`",
            "12:5: tasks[1].train: `train:` refers to task `train`, which is not upstream of `not_upstream`; its outputs are only known once it has finished, so add `train` to `depends_on` (directly or through another task)",
            "18:5: tasks[3].train: task `extract` has kind `empty`; `train:` names the `train` task whose models this task serves",
            "21:5: tasks[4].train: unknown task `trian` (train tasks: train)",
            "22:5: tasks[5]: name the train task whose models this task serves (`train: ID`), or give the input keys yourself (`input`, `series_key`, `group_by` …)",
        ],
    ),
    (
        "unknown_dependency.yaml",
        &[
            "7:18: tasks[1].depends_on[0]: depends_on unknown task `extrct`, did you mean `extract`?",
        ],
    ),
    (
        "unknown_kind.yaml",
        &["4:5: tasks[0].kind: unknown task kind `comand`, did you mean `command`?"],
    ),
    (
        "unknown_task_field.yaml",
        &["5:5: tasks[0].comand: unknown field `comand`, did you mean `command`?"],
    ),
    (
        "unknown_top_field.yaml",
        &["2:1: shedule: unknown field `shedule`, did you mean `schedule`?"],
    ),
    (
        "when_unknown_task.yaml",
        &["5:5: tasks[0].when: `when` refers to unknown task `monitor`"],
    ),
    (
        "wrong_type.yaml",
        &[
            "2:1: parallelism: invalid type: string \"two\", expected a whole number of 0 or more",
            "6:5: tasks[0].retries: invalid type: string \"many\", expected a whole number of 0 or more",
        ],
    ),
    (
        "limits_out_of_range.yaml",
        &[
            "2:1: parallelism: `parallelism: 0` is out of range: allowed 1..=4096",
            "3:1: max_active_runs: `max_active_runs: 0` is out of range: allowed 1..=1024",
            "5:3: defaults.retries: `retries: 1000` is out of range: allowed 0..=100",
            "9:5: tasks[0].retries: `retries: 101` is out of range: allowed 0..=100",
        ],
    ),
    (
        "command_wrong_shape.yaml",
        &[
            "5:5: tasks[0].command: `command` must be a list of strings or one string",
            "9:5: tasks[1].timeout: expected a duration such as `30s` or `10m`, or a number of seconds",
        ],
    ),
    (
        "reorder_undeclared_tables.yaml",
        &[
            "7:5: tasks[0].products: unknown table `product_master` (declared tables: forecasts); declare it under `tables:`",
            "9:5: tasks[0].inventory: unknown table `stock` (declared tables: forecasts); declare it under `tables:`",
        ],
    ),
    (
        "reorder_single_key_forecasts.yaml",
        &[
            "20:5: tasks[2].forecasts: `forecasts` is written by task `forecast`, keyed by [series_id]; `reorder` works on two keys, a store and a sku: key the forecast by two columns",
        ],
    ),
    (
        "declared_columns_missing.yaml",
        &[
            "11:38: tables.bad.columns[1]: column `a` is listed twice",
            "11:41: tables.bad.columns[2]: invalid column name `b c`: use lowercase letters, digits and `_`, not starting with a digit",
            "22:5: tasks[1].input: task `forecast` needs column(s) `units` of table `sales`, which declares only `store`, `sku`, `category`, `date`, `qty`, `ds`",
            "25:5: tasks[1].future: task `forecast` needs column(s) `sku`, `date` of table `future_plan`, which declares only `store`, `price`",
            "29:5: tasks[2].forecasts: task `plan` needs at least two quantile columns such as `p10` and `p90` of table `forecasts`, which declares only `store`, `sku`, `step`, `mean`, `p50`, `ds`",
            "36:5: tasks[3].inventory: task `watch` needs column(s) `sku` of table `stock`, which declares only `store`, `item`, `on_hand`, `on_order`, `ds`",
            "37:5: tasks[3].sales: task `watch` needs column(s) `units` of table `sales`, which declares only `store`, `sku`, `category`, `date`, `qty`, `ds`",
        ],
    ),
    (
        "when_not_upstream.yaml",
        &[
            "8:5: tasks[1].when: `when` refers to task `count`, which is not upstream of `report`; its outputs are only known once it has finished, so add `count` to `depends_on` (directly or through another task)",
            "9:23: tasks[1].command[1]: the template refers to task `count`, which is not upstream of `report`; its outputs are only known once it has finished, so add `count` to `depends_on` (directly or through another task)",
            "12:23: tasks[2].command[1]: the template refers to its own task `self`, whose outputs do not exist while it runs",
        ],
    ),
];

#[test]
fn every_invalid_fixture_gives_its_exact_messages() {
    assert!(CASES.len() >= 20);
    let mut failures = Vec::new();
    for (fixture, want) in CASES {
        let path = format!("tests/fixtures/invalid/{fixture}");
        let out = common::restock()
            .args(["validate", &path])
            .output()
            .expect("run restock");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let got: Vec<String> = stderr
            .lines()
            .filter(|l| !l.ends_with("error(s)"))
            .map(|l| l.strip_prefix(&format!("{path}:")).unwrap_or(l).to_string())
            .collect();
        if out.status.code() != Some(2) {
            failures.push(format!("{fixture}: exit {:?}, want 2", out.status.code()));
        }
        if got != *want {
            failures.push(format!("{fixture}:\n  got  {got:#?}\n  want {want:#?}"));
        }
        assert!(
            stderr.contains(&format!("{} error(s)", want.len())),
            "{fixture}: missing error count in {stderr}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_fixtures_at_once_report_every_file() {
    let out = common::restock()
        .args(["validate", "tests/fixtures/invalid"])
        .output()
        .expect("run restock");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let total: usize = CASES.iter().map(|(_, w)| w.len()).sum();
    assert!(stderr.contains(&format!("{total} error(s)")), "{stderr}");
    for (fixture, _) in CASES {
        assert!(stderr.contains(fixture), "no error for {fixture}");
    }
}

#[test]
fn valid_dags_print_one_summary_line_each() {
    let out = common::restock()
        .args(["validate", "jobs"])
        .output()
        .expect("run restock");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = std::fs::read_dir("jobs")
        .expect("jobs")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert_eq!(stdout.lines().count(), files, "{stdout}");
    assert!(stdout.lines().all(|l| l.contains(": ok (")), "{stdout}");
}

#[test]
fn no_message_names_rust_types_or_serde_internals() {
    let out = common::restock()
        .args(["validate", "tests/fixtures/invalid"])
        .output()
        .expect("run restock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for internal in [
        "untagged enum",
        "expected u32",
        "expected u64",
        "expected usize",
        "expected f64",
        "expected i64",
        "Raw",
        "variant identifier",
    ] {
        assert!(!stderr.contains(internal), "`{internal}` in:\n{stderr}");
    }
}

/// The fixture `declared_columns_missing.yaml` with every column its
/// tasks read declared: no error, and the series key mapping of
/// `reorder` is followed (`item` is the lake's sku column).
#[test]
fn declared_columns_that_cover_every_task_pass() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("complete.yaml");
    std::fs::write(
        &file,
        r#"id: declared_columns_complete
tables:
  sales: { path: raw/sales, partition_by: [ds], columns: [store, sku, category, date, units] }
  future_plan: { path: raw/plan, columns: [store, sku, date, price] }
  forecasts: { path: forecasts, partition_by: [ds], columns: [store, sku, group, forecast_date, step, mean, p10, p90, model_kind] }
  stock: { path: raw/stock, partition_by: [ds], columns: [store, item, on_hand, on_order] }
  products: { path: raw/products, columns: [item, unit_cost, case_pack, moq, lead_time_days, lead_time_std_days, review_period_days, service_level] }
tasks:
  - id: train
    kind: train
    input: sales
    series_key: [store, sku]
    group_by: category
    forecasts: forecasts
  - id: forecast
    kind: forecast
    depends_on: [train]
    input: sales
    series_key: [store, sku]
    group_by: category
    future: future_plan
  - id: plan
    kind: reorder
    depends_on: [forecast]
    forecasts: forecasts
    inventory: stock
    products: products
    series_key: { sku: item }
  - id: watch
    kind: monitor
    depends_on: [plan]
    inventory: stock
    sales: sales
    series_key: { sku: item }
"#,
    )
    .expect("write");
    let out = common::restock()
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run restock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}
