//! The real `restock daemon` as a child process: start it, read its log,
//! signal it, wait for it to exit.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Project, wait_for};

/// A running `restock daemon`, its stderr in a log file; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Start one with this shutdown grace period and reload interval.
    pub fn start(p: &Project, grace: &str, reload: &str) -> Daemon {
        Self::start_with(p, grace, reload, &[])
    }

    /// Start one with more environment variables set.
    pub fn start_with(p: &Project, grace: &str, reload: &str, env: &[(&str, &str)]) -> Daemon {
        let n = std::fs::read_dir(p.path()).map(|d| d.count()).unwrap_or(0);
        let log = p.path().join(format!("daemon-{n}.log"));
        let child = p
            .restock()
            .arg("daemon")
            .env("RESTOCK_SHUTDOWN_GRACE", grace)
            .env("RESTOCK_RELOAD_INTERVAL", reload)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, secs: u64) {
        let found = wait_for(Duration::from_secs(secs), || {
            self.log().contains(needle).then_some(())
        });
        assert!(
            found.is_some(),
            "`{needle}` not in daemon log:\n{}",
            self.log()
        );
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal");
    }

    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let st = wait_for(Duration::from_secs(secs), || {
            self.child.try_wait().ok().flatten()
        });
        match st {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                panic!("daemon did not exit in {secs}s:\n{}", self.log());
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
