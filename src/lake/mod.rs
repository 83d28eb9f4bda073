//! The lake: one object store, rooted at the lake URL, that every task reads
//! and writes through.
//!
//! A lake URL is a local folder (`./lake`, `/data/lake`, `file:///data/lake`),
//! `s3://bucket/prefix`, or `memory://` (tests). Paths inside the lake are
//! relative (`raw/sales/ds=2026-11-27/part-00000.parquet`) whatever the
//! backend. DataFusion reads through the same store: [`Lake::register`] puts
//! it on a session's runtime under [`DATAFUSION_URL`].
//!
//! This module owns opening the store and naming locations; the DataFusion
//! session lives in [`session`], atomic Parquet output in [`publish`].

pub mod publish;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

/// Where a session's runtime finds the lake's store. Table locations handed
/// to DataFusion are under this URL.
pub const DATAFUSION_URL: &str = "restock-lake://lake/";

/// Hidden area at the lake root where outputs are written before they are
/// published; no table may live under it.
pub const STAGING_DIR: &str = "_staging";

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake URL `{url}`: {message}")]
    Url { url: String, message: String },
    #[error("lake folder `{}`: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lake `{url}`: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
}

/// The lake every task of a process shares. Cheap to clone.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// The lake URL as users write it (no trailing slash but for
    /// `memory://`); locations in messages and outputs are shown under it.
    display: String,
    /// The folder of a local lake (where a killed process can leave
    /// partial upload files that the store's listing does not show).
    local_root: Option<PathBuf>,
    /// Parquet footers and file statistics DataFusion has read, shared by
    /// every session over this lake (see [`session::Caches`]).
    caches: session::Caches,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("url", &self.display).finish()
    }
}

impl Default for Lake {
    /// An empty in-memory lake.
    fn default() -> Self {
        Self::memory()
    }
}

impl Lake {
    /// Open the lake a URL names, reading S3 settings from the process
    /// environment.
    pub fn open(url: &str) -> Result<Self, LakeError> {
        Self::open_with_env(url, |k| std::env::var(k).ok())
    }

    /// Open the lake a URL names, reading S3 settings through `env`
    /// (injectable for tests). Keys read: every `AWS_*` setting object_store
    /// knows (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL` …), plus
    /// `RESTOCK_S3_ENDPOINT` and `RESTOCK_S3_REGION`, which win.
    pub fn open_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LakeError> {
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(url_err(url, "is empty"));
        }
        if trimmed == "memory://" || trimmed == "memory:" || trimmed.starts_with("memory://") {
            return Ok(Self::memory());
        }
        if let Some(rest) = trimmed.strip_prefix("s3://") {
            return Self::open_s3(url, rest, &env);
        }
        if let Some(rest) = trimmed.strip_prefix("file://") {
            return Self::open_folder(url, PathBuf::from(rest));
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            return Err(url_err(
                url,
                format!(
                    "unsupported scheme `{scheme}` (use a folder, s3://bucket/prefix or memory://)"
                ),
            ));
        }
        Self::open_folder(url, PathBuf::from(trimmed))
    }

    fn new(store: Arc<dyn ObjectStore>, display: String, local_root: Option<PathBuf>) -> Self {
        Self {
            store,
            display,
            local_root,
            caches: session::Caches::default(),
        }
    }

    /// A fresh, empty in-memory lake.
    pub fn memory() -> Self {
        Self::new(Arc::new(InMemory::new()), "memory://".into(), None)
    }

    fn open_folder(url: &str, dir: PathBuf) -> Result<Self, LakeError> {
        std::fs::create_dir_all(&dir).map_err(|source| LakeError::Folder {
            path: dir.clone(),
            source,
        })?;
        let abs = std::fs::canonicalize(&dir).map_err(|source| LakeError::Folder {
            path: dir.clone(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&abs)
            .map_err(|source| LakeError::Store {
                url: url.to_string(),
                source,
            })?
            // Deleting a partition's last file removes its folder too.
            .with_automatic_cleanup(true);
        let display = abs.display().to_string().trim_end_matches('/').to_string();
        Ok(Self::new(Arc::new(store), display, Some(abs)))
    }

    fn open_s3(
        url: &str,
        rest: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LakeError> {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(url_err(
                url,
                "names no bucket (expected s3://bucket/prefix)",
            ));
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for key in S3_ENV_KEYS {
            if let Some(v) = env(key) {
                if let Ok(k) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(k, v);
                }
            }
        }
        if let Some(region) = env("RESTOCK_S3_REGION") {
            builder = builder.with_region(region);
        }
        let endpoint = env("RESTOCK_S3_ENDPOINT")
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"));
        if let Some(ep) = endpoint {
            // A custom endpoint (MinIO, moto, Ceph …) is addressed path-style;
            // plain HTTP is allowed only when the endpoint asks for it.
            builder = builder
                .with_endpoint(&ep)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(ep.starts_with("http://"));
        }
        let s3 = builder.build().map_err(|source| LakeError::Store {
            url: url.to_string(),
            source,
        })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        let display = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        Ok(Self::new(store, display, None))
    }

    /// The store, rooted at the lake: paths are lake-relative.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The folder of a local lake; `None` for S3 and memory.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The lake URL as shown in messages (no trailing slash).
    pub fn url(&self) -> &str {
        &self.display
    }

    /// Where a lake-relative location is, for messages and outputs.
    pub fn describe(&self, location: &Path) -> String {
        let rel = location.as_ref();
        if rel.is_empty() {
            self.display.clone()
        } else if self.display.ends_with('/') {
            format!("{}{rel}", self.display)
        } else {
            format!("{}/{rel}", self.display)
        }
    }

    /// The same lake seen through another store built around this one
    /// (tests count requests or inject failures this way). Caches start
    /// empty, so the new store sees every read.
    pub fn wrap(self, f: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        Self::new(f(self.store), self.display, self.local_root)
    }

    pub(crate) fn caches(&self) -> &session::Caches {
        &self.caches
    }

    /// Let `ctx` read and write the lake under [`DATAFUSION_URL`].
    pub fn register(&self, ctx: &SessionContext) {
        // The URL is a constant that parses; the fallback is never taken.
        if let Ok(url) = Url::parse(DATAFUSION_URL) {
            ctx.register_object_store(&url, Arc::clone(&self.store));
        }
    }

    /// The DataFusion URL of a folder in the lake (with a trailing slash, so
    /// DataFusion lists it as a collection).
    pub fn datafusion_url(dir: &Path) -> String {
        format!("{DATAFUSION_URL}{dir}/")
    }
}

/// AWS settings read from the environment for an `s3://` lake.
const S3_ENV_KEYS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_SKIP_SIGNATURE",
    "AWS_IMDSV1_FALLBACK",
    "AWS_METADATA_ENDPOINT",
    "AWS_UNSIGNED_PAYLOAD",
    "AWS_CHECKSUM_ALGORITHM",
    "AWS_S3_EXPRESS",
    "AWS_REQUEST_PAYER",
];

fn url_err(url: &str, message: impl Into<String>) -> LakeError {
    LakeError::Url {
        url: url.to_string(),
        message: message.into(),
    }
}

/// Check a table path from a DAG file (pure): relative, `/`-separated,
/// no empty, `.`/`..` or hidden (`_`, `.`) segments, no URL.
pub fn check_table_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("table path is empty".into());
    }
    if path.contains("://") {
        return Err(format!(
            "table path `{path}` must be relative to the lake, not a URL"
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "table path `{path}` must be relative to the lake (no leading `/`)"
        ));
    }
    for seg in path.trim_end_matches('/').split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(format!(
                "table path `{path}` has an empty, `.` or `..` segment"
            ));
        }
        if seg.starts_with('_') || seg.starts_with('.') {
            return Err(format!(
                "table path `{path}`: segment `{seg}` starts with `_` or `.`, which readers treat as hidden"
            ));
        }
        if seg.contains('=') {
            return Err(format!(
                "table path `{path}`: segment `{seg}` contains `=`, which readers take for a partition"
            ));
        }
        if seg
            .chars()
            .any(|c| c.is_control() || c == '\\' || c == '#' || c == '*' || c == '?')
        {
            return Err(format!(
                "table path `{path}`: segment `{seg}` contains a character not allowed in object keys"
            ));
        }
    }
    Ok(())
}

/// Check a table or column name used in SQL (pure): lowercase letters,
/// digits and `_`, not starting with a digit (DataFusion folds unquoted
/// names to lowercase).
pub fn check_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name `{name}`: use lowercase letters, digits and `_`, not starting with a digit"
        ))
    }
}

/// A table path from a (checked) DAG file as a lake location.
pub fn table_location(path: &str) -> Path {
    Path::from(path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_paths() {
        assert!(check_table_path("raw/sales").is_ok());
        assert!(check_table_path("raw/sales/").is_ok());
        for bad in [
            "",
            "/raw/sales",
            "s3://b/raw",
            "raw//sales",
            "raw/../x",
            "_staging/x",
            "raw/.hidden",
            "raw/ds=1",
        ] {
            assert!(check_table_path(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn identifiers() {
        assert!(check_identifier("daily_sales2").is_ok());
        assert!(check_identifier("Sales").is_err());
        assert!(check_identifier("2x").is_err());
        assert!(check_identifier("a-b").is_err());
    }

    #[test]
    fn urls() {
        let no_env = |_: &str| None;
        let m = Lake::open_with_env("memory://", no_env).expect("memory");
        assert_eq!(m.url(), "memory://");
        assert_eq!(m.describe(&Path::from("raw/x")), "memory://raw/x");
        assert!(Lake::open_with_env("gs://b/p", no_env).is_err());
        assert!(Lake::open_with_env("s3:///p", no_env).is_err());
        let env = |k: &str| match k {
            "RESTOCK_S3_ENDPOINT" => Some("http://127.0.0.1:1".to_string()),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("x".to_string()),
            _ => None,
        };
        let s3 = Lake::open_with_env("s3://bucket/some/prefix/", env).expect("s3");
        assert_eq!(s3.url(), "s3://bucket/some/prefix");
        assert_eq!(
            s3.describe(&Path::from("raw/sales")),
            "s3://bucket/some/prefix/raw/sales"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/lake");
        let local = Lake::open_with_env(nested.to_str().expect("utf8"), no_env).expect("local");
        assert!(nested.is_dir(), "the lake folder is created");
        assert!(local.url().ends_with("a/lake"));
    }
}
