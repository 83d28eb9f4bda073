//! `restock validate`: every error in every file, or one line per DAG.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use restock::config::Config;
use restock::dag;

pub fn validate(config: &Config, paths: Vec<PathBuf>) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![config.jobs.clone()]
    } else {
        paths
    };
    let registry = super::registry(config);
    let (dags, diags) = dag::load_all(&paths, &registry, &config.root);
    for d in &dags {
        println!("{}", dag::summary(d));
        for w in &d.warnings {
            eprintln!("{w}");
        }
    }
    for d in &diags {
        eprintln!("{d}");
    }
    if diags.is_empty() {
        if dags.is_empty() {
            eprintln!(
                "no DAG files found in {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(ExitCode::from(2));
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} error(s)", diags.len());
        Ok(ExitCode::from(2))
    }
}
