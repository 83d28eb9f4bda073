//! `restock init [DIR]`: write the embedded example project (see
//! [`restock::project`]) into a folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use restock::project::{self, Written};

#[derive(clap::Args)]
pub struct InitArgs {
    /// Folder to write the project into (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite files that exist with other contents.
    #[arg(long)]
    pub force: bool,
}

pub fn init(args: InitArgs) -> Result<ExitCode> {
    write(&args.dir, args.force)?;
    println!(
        "next: cd {} && restock validate && restock demo",
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Write the example project into `dir`, one line per file.
pub fn write(dir: &Path, force: bool) -> Result<()> {
    for (path, what) in project::write(dir, force)? {
        let what = match what {
            Written::Created => "created",
            Written::Unchanged => "unchanged",
            Written::Overwritten => "overwritten",
        };
        println!("  {what:<11} {}", path.display());
    }
    Ok(())
}
