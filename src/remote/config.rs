//! The `executors:` section of `restock.yaml`, in two phases: the serde
//! mirror ([`RawExecutor`], unknown keys refused) and the compiled
//! [`ExecutorConfig`] with durations parsed and every error collected.
//!
//! ```yaml
//! executors:
//!   gpu: { kind: slurm, partition: gpu, gres: "gpu:1", time_limit: 2h, start_timeout: 30m, shared_filesystem: true }
//!   ray: { kind: ray, address: http://ray-head:8265, num_gpus: 1, start_timeout: 30m }
//! ```
//!
//! Every key can be overridden from the environment as
//! `RESTOCK_EXECUTOR_<NAME>_<KEY>` (e.g. `RESTOCK_EXECUTOR_GPU_PARTITION`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// One executor as written in `restock.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawExecutor {
    Slurm(RawSlurm),
    Ray(RawRay),
}

/// Keys both engines accept.
pub const COMMON_KEYS: &[&str] = &[
    "start_timeout",
    "cancel_grace",
    "poll_interval",
    "shared_filesystem",
    "worker",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlurm {
    #[serde(default)]
    pub partition: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// `--time`, e.g. `2h` (converted to Slurm's minutes).
    #[serde(default)]
    pub time_limit: Option<String>,
    /// Ask `sacct` about jobs squeue no longer shows (needs slurmdbd).
    #[serde(default)]
    pub accounting: bool,
    /// More `sbatch` arguments, passed as written.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    #[serde(default)]
    pub start_timeout: Option<String>,
    #[serde(default)]
    pub cancel_grace: Option<String>,
    #[serde(default)]
    pub poll_interval: Option<String>,
    #[serde(default)]
    pub shared_filesystem: bool,
    #[serde(default)]
    pub worker: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRay {
    /// The Jobs API (the dashboard), e.g. `http://ray-head:8265`.
    pub address: String,
    #[serde(default)]
    pub num_gpus: Option<f64>,
    #[serde(default)]
    pub num_cpus: Option<f64>,
    #[serde(default)]
    pub start_timeout: Option<String>,
    #[serde(default)]
    pub cancel_grace: Option<String>,
    #[serde(default)]
    pub poll_interval: Option<String>,
    #[serde(default)]
    pub shared_filesystem: bool,
    #[serde(default)]
    pub worker: Option<Vec<String>>,
}

/// Settings every remote executor has.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSettings {
    /// A job that has not started by then is cancelled and the attempt
    /// fails, naming what it waited for.
    pub start_timeout: Duration,
    /// After a cancel, how long to wait for the engine to confirm the job
    /// ended before the attempt is recorded anyway.
    pub cancel_grace: Duration,
    pub poll_interval: Duration,
    /// Every node sees the local-folder lake at the same path (NFS,
    /// Lustre, or a single-node cluster).
    pub shared_filesystem: bool,
    /// The worker command on the nodes (default: this binary's path).
    pub worker: Vec<String>,
    /// GPUs each attempt asks for (0 = a CPU executor).
    pub gpus: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub gres: Option<String>,
    /// Minutes, as `sbatch --time` takes them.
    pub time_limit_minutes: Option<u64>,
    pub accounting: bool,
    pub sbatch_args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RayConfig {
    pub address: String,
    pub num_gpus: f64,
    pub num_cpus: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineConfig {
    Slurm(SlurmConfig),
    Ray(RayConfig),
}

impl EngineConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            EngineConfig::Slurm(_) => "slurm",
            EngineConfig::Ray(_) => "ray",
        }
    }
}

/// One compiled executor.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    pub name: String,
    pub settings: RemoteSettings,
    pub engine: EngineConfig,
}

/// Compile the raw section; every error is returned, each naming
/// `executors.NAME.KEY`.
pub fn compile(
    raw: BTreeMap<String, serde_yaml::Value>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ExecutorConfig>, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, value) in raw {
        if name == "local" {
            errors.push("executors.local: `local` is built in and cannot be redefined".into());
            continue;
        }
        let value = apply_env(&name, value, &env);
        match serde_yaml::from_value::<RawExecutor>(value) {
            Ok(r) => match compile_one(&name, r) {
                Ok(c) => {
                    out.insert(name, c);
                }
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(format!("executors.{name}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

const ENV_KEYS: &[&str] = &[
    "kind",
    "partition",
    "gres",
    "time_limit",
    "accounting",
    "address",
    "num_gpus",
    "num_cpus",
    "start_timeout",
    "cancel_grace",
    "poll_interval",
    "shared_filesystem",
];

fn apply_env(
    name: &str,
    value: serde_yaml::Value,
    env: &impl Fn(&str) -> Option<String>,
) -> serde_yaml::Value {
    let serde_yaml::Value::Mapping(mut map) = value else {
        return value;
    };
    let prefix = format!(
        "RESTOCK_EXECUTOR_{}_",
        name.to_ascii_uppercase().replace('-', "_")
    );
    for key in ENV_KEYS {
        if let Some(v) = env(&format!("{prefix}{}", key.to_ascii_uppercase())) {
            // Scalars parse as YAML (numbers, booleans), like the file.
            let parsed = serde_yaml::from_str(&v).unwrap_or(serde_yaml::Value::String(v));
            map.insert(serde_yaml::Value::String((*key).into()), parsed);
        }
    }
    serde_yaml::Value::Mapping(map)
}

fn duration(
    errors: &mut Vec<String>,
    at: String,
    text: Option<&str>,
    default: Duration,
) -> Duration {
    match text {
        None => default,
        Some(t) => humantime::parse_duration(t.trim()).unwrap_or_else(|e| {
            errors.push(format!("{at}: invalid duration `{t}`: {e}"));
            default
        }),
    }
}

struct CommonRaw<'a> {
    start_timeout: Option<&'a str>,
    cancel_grace: Option<&'a str>,
    poll_interval: Option<&'a str>,
    shared_filesystem: bool,
    worker: Option<&'a Vec<String>>,
}

fn settings(name: &str, c: CommonRaw, gpus: u32, errors: &mut Vec<String>) -> RemoteSettings {
    let at = |k: &str| format!("executors.{name}.{k}");
    let worker = match c.worker {
        Some(w) if w.is_empty() => {
            errors.push(format!("{}: must name a command", at("worker")));
            Vec::new()
        }
        Some(w) => w.clone(),
        None => Vec::new(),
    };
    RemoteSettings {
        start_timeout: duration(
            errors,
            at("start_timeout"),
            c.start_timeout,
            Duration::from_secs(1800),
        ),
        cancel_grace: duration(
            errors,
            at("cancel_grace"),
            c.cancel_grace,
            Duration::from_secs(30),
        ),
        poll_interval: duration(
            errors,
            at("poll_interval"),
            c.poll_interval,
            Duration::from_millis(500),
        ),
        shared_filesystem: c.shared_filesystem,
        worker,
        gpus,
    }
}

fn compile_one(name: &str, raw: RawExecutor) -> Result<ExecutorConfig, Vec<String>> {
    let mut errors = Vec::new();
    let (settings, engine) = match raw {
        RawExecutor::Slurm(s) => {
            let gpus = s.gres.as_deref().map_or(0, gres_gpus);
            let time_limit_minutes = s.time_limit.as_deref().map(|t| {
                let d = duration(
                    &mut errors,
                    format!("executors.{name}.time_limit"),
                    Some(t),
                    Duration::ZERO,
                );
                d.as_secs().div_ceil(60).max(1)
            });
            let common = CommonRaw {
                start_timeout: s.start_timeout.as_deref(),
                cancel_grace: s.cancel_grace.as_deref(),
                poll_interval: s.poll_interval.as_deref(),
                shared_filesystem: s.shared_filesystem,
                worker: s.worker.as_ref(),
            };
            let settings = settings(name, common, gpus, &mut errors);
            let engine = EngineConfig::Slurm(SlurmConfig {
                partition: s.partition,
                gres: s.gres,
                time_limit_minutes,
                accounting: s.accounting,
                sbatch_args: s.sbatch_args,
            });
            (settings, engine)
        }
        RawExecutor::Ray(r) => {
            if url::Url::parse(&r.address).is_err() {
                errors.push(format!(
                    "executors.{name}.address: `{}` is not a URL (e.g. http://ray-head:8265)",
                    r.address
                ));
            }
            let num_gpus = r.num_gpus.unwrap_or(0.0);
            if num_gpus < 0.0 {
                errors.push(format!("executors.{name}.num_gpus: must not be negative"));
            }
            let common = CommonRaw {
                start_timeout: r.start_timeout.as_deref(),
                cancel_grace: r.cancel_grace.as_deref(),
                poll_interval: r.poll_interval.as_deref(),
                shared_filesystem: r.shared_filesystem,
                worker: r.worker.as_ref(),
            };
            let settings = settings(name, common, num_gpus.ceil() as u32, &mut errors);
            let engine = EngineConfig::Ray(RayConfig {
                address: r.address.trim_end_matches('/').to_string(),
                num_gpus,
                num_cpus: r.num_cpus,
            });
            (settings, engine)
        }
    };
    if errors.is_empty() {
        Ok(ExecutorConfig {
            name: name.to_string(),
            settings,
            engine,
        })
    } else {
        Err(errors)
    }
}

/// GPUs in a `--gres` value: `gpu:2`, `gpu:a100:2`, `gpu` (one).
fn gres_gpus(gres: &str) -> u32 {
    gres.split(',')
        .filter(|g| g.starts_with("gpu"))
        .map(|g| {
            g.rsplit(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> BTreeMap<String, serde_yaml::Value> {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    #[test]
    fn both_kinds_compile_with_defaults_and_env_overrides() {
        let r = raw(
            "gpu: { kind: slurm, partition: gpu, gres: \"gpu:1\", time_limit: 2h, start_timeout: 30m, shared_filesystem: true }\nray: { kind: ray, address: http://ray-head:8265, num_gpus: 1 }\n",
        );
        let c = compile(r, |k| {
            (k == "RESTOCK_EXECUTOR_GPU_PARTITION").then(|| "big".into())
        })
        .expect("compiles");
        let gpu = &c["gpu"];
        assert_eq!(gpu.settings.gpus, 1);
        assert_eq!(gpu.settings.start_timeout, Duration::from_secs(1800));
        let EngineConfig::Slurm(s) = &gpu.engine else {
            panic!("slurm")
        };
        assert_eq!(s.partition.as_deref(), Some("big"));
        assert_eq!(s.time_limit_minutes, Some(120));
        let EngineConfig::Ray(r) = &c["ray"].engine else {
            panic!("ray")
        };
        assert_eq!(r.address, "http://ray-head:8265");
        assert_eq!(c["ray"].settings.gpus, 1);
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let r = raw(
            "a: { kind: slurm, start_timeout: soon, time_limit: x }\nb: { kind: ray }\nc: { kind: k8s }\nd: { kind: slurm, partiton: gpu }\n",
        );
        let errs = compile(r, |_| None).expect_err("invalid");
        let all = errs.join("\n");
        assert!(
            all.contains("executors.a.start_timeout: invalid duration `soon`"),
            "{all}"
        );
        assert!(all.contains("executors.a.time_limit"), "{all}");
        assert!(
            all.contains("executors.b: missing field `address`"),
            "{all}"
        );
        assert!(all.contains("executors.c: unknown variant `k8s`"), "{all}");
        assert!(
            all.contains("executors.d: unknown field `partiton`"),
            "{all}"
        );
    }

    #[test]
    fn gres_counts_gpus() {
        assert_eq!(gres_gpus("gpu:2"), 2);
        assert_eq!(gres_gpus("gpu:a100:4,shard:1"), 4);
        assert_eq!(gres_gpus("gpu"), 1);
        assert_eq!(gres_gpus("tmpdisk:10"), 0);
    }
}
