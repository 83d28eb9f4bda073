//! Helpers for the lake tests: scratch projects with SQL files, compiled
//! DAGs, task attempts run directly, Parquet inputs, a moto S3 server on
//! loopback, a request-counting store, and Python readers (pyarrow, DuckDB)
//! as the independent check of what was written.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::TcpStream;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use restock::config::Config;
use restock::dag::Dag;
use restock::lake::Lake;
use restock::tasks::{AttemptContext, AttemptLog, Outputs, Registry, Services, TaskError};
use restock::template::RunVars;
use tokio_util::sync::CancellationToken;

/// A scratch project folder with `sql/` files.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(sql: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in sql {
            let p = dir.path().join("sql").join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("sql dir");
            std::fs::write(p, text).expect("write sql");
        }
        Self { dir }
    }

    pub fn path(&self) -> &FsPath {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(p, text).expect("write");
    }

    /// Compile a DAG against this project; panics with every diagnostic.
    pub fn dag(&self, yaml: &str) -> Arc<Dag> {
        let file = self.path().join("jobs/test.yaml");
        match restock::dag::compile_str(&file, yaml, &Registry::builtin(), self.path()) {
            Ok(d) => Arc::new(d),
            Err(diags) => panic!(
                "DAG does not compile:\n{}",
                diags
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// Compile a DAG that must fail; returns the diagnostics as text.
    pub fn dag_errors(&self, yaml: &str) -> Vec<String> {
        let file = self.path().join("jobs/test.yaml");
        match restock::dag::compile_str(&file, yaml, &Registry::builtin(), self.path()) {
            Ok(_) => panic!("DAG compiled but should not have"),
            Err(diags) => diags.iter().map(|d| d.to_string()).collect(),
        }
    }
}

pub fn services(lake: Lake) -> Arc<Services> {
    Arc::new(Services {
        executors: Default::default(),
        config: Config::default(),
        lake,
    })
}

/// One attempt of `task` for the day `ds` (UTC).
pub fn attempt(dag: &Arc<Dag>, task: &str, services: &Arc<Services>, ds: &str) -> AttemptContext {
    let start: chrono::DateTime<chrono::Utc> =
        format!("{ds}T00:00:00Z").parse().expect("ds timestamp");
    let end = start + chrono::Duration::days(1);
    let run_id = format!("{}.{ds}", dag.id);
    let vars = RunVars::new(&dag.id, &run_id, &dag.tz, start, end, dag.params.clone());
    AttemptContext {
        dag: Arc::clone(dag),
        dag_id: dag.id.clone(),
        task_id: task.to_string(),
        run_id,
        try_number: 1,
        vars: Arc::new(vars),
        log: AttemptLog::discard(),
        cancel: CancellationToken::new(),
        services: Arc::clone(services),
    }
}

pub async fn run_task(
    dag: &Arc<Dag>,
    task: &str,
    services: &Arc<Services>,
    ds: &str,
) -> Result<Outputs, TaskError> {
    let cx = attempt(dag, task, services, ds);
    let t = dag.task(task).expect("task exists");
    t.runner.run(&cx).await
}

/// A batch of sales rows: (sku, store, qty, price).
pub fn sales(rows: &[(&str, &str, i64, f64)]) -> RecordBatch {
    let sku: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let store: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    let qty: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2)));
    let price: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3)));
    RecordBatch::try_from_iter([
        ("sku", sku),
        ("store", store),
        ("qty", qty),
        ("price", price),
    ])
    .expect("sales batch")
}

/// A batch of products: (sku, category).
pub fn products(rows: &[(&str, &str)]) -> RecordBatch {
    let sku: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let cat: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    RecordBatch::try_from_iter([("sku", sku), ("category", cat)]).expect("products batch")
}

/// Write `batch` as one Parquet object at `path` in the lake.
pub async fn put_parquet(lake: &Lake, path: &str, batch: &RecordBatch) {
    let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None)
        .expect("parquet writer");
    w.write(batch).expect("write batch");
    let bytes = w.into_inner().expect("finish parquet");
    lake.store()
        .put(&Path::from(path), PutPayload::from(bytes))
        .await
        .expect("put parquet");
}

/// Every key in the lake, sorted.
pub async fn keys(lake: &Lake) -> Vec<String> {
    let mut k: Vec<String> = lake
        .store()
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list lake");
    k.sort();
    k
}

/// Keys a reader of the lake's tables can see (outside `_staging/`).
pub async fn visible_keys(lake: &Lake) -> Vec<String> {
    keys(lake)
        .await
        .into_iter()
        .filter(|k| !k.starts_with("_staging/"))
        .collect()
}

/// Copy an object out of the lake into a local file (for the Python
/// readers).
pub async fn fetch(lake: &Lake, key: &str, dest: &FsPath) {
    let bytes = lake
        .store()
        .get(&Path::from(key))
        .await
        .expect("get object")
        .bytes()
        .await
        .expect("object bytes");
    std::fs::write(dest, &bytes).expect("write local copy");
}

/// Run a Python script; panics with its stderr when it fails (a missing
/// pyarrow/duckdb/moto says so and how to install it).
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed to run the lake tests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") {
        panic!(
            "a Python package the lake tests need is missing; install them with \
             `pip install -r tests/requirements.txt` (moto[server], pyarrow, duckdb):\n{stderr}"
        );
    }
    assert!(out.status.success(), "python failed:\n{stderr}");
    String::from_utf8(out.stdout).expect("utf8 stdout")
}

/// What pyarrow reads from one Parquet file: row count, schema
/// (`name: type` strings), rows as JSON objects, compression and row
/// groups.
pub fn pyarrow_read(file: &FsPath) -> serde_json::Value {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
t = f.read()
md = f.metadata
cols = [md.row_group(0).column(i) for i in range(md.num_columns)] if md.num_row_groups else []
print(json.dumps({
    "rows": t.num_rows,
    "schema": [f"{x.name}: {x.type}" for x in t.schema],
    "data": t.to_pylist(),
    "row_groups": md.num_row_groups,
    "compression": sorted({c.compression for c in cols}),
    "statistics": all(c.is_stats_set for c in cols),
}))
"#;
    let out = python(script, &[file.to_str().expect("utf8 path")]);
    serde_json::from_str(out.trim()).expect("pyarrow json")
}

/// Run a DuckDB query; returns its rows as JSON arrays.
pub fn duckdb(sql: &str) -> serde_json::Value {
    let script = r#"
import json, sys
import duckdb
rows = duckdb.sql(sys.argv[1]).fetchall()
print(json.dumps([list(r) for r in rows], default=str))
"#;
    let out = python(script, &[sql]);
    serde_json::from_str(out.trim()).expect("duckdb json")
}

/// A moto S3 server on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 must be installed to run the S3 tests");
        let mut moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = moto.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "moto server exited ({status}); install it with `pip install \"moto[server]\"`:\n{err}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto server did not listen on port {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a lake on this server is opened with.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let endpoint = self.endpoint();
        move |k: &str| match k {
            "RESTOCK_S3_ENDPOINT" => Some(endpoint.clone()),
            "AWS_ACCESS_KEY_ID" => Some("testing".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("testing".into()),
            "AWS_REGION" => Some("us-east-1".into()),
            _ => None,
        }
    }

    pub fn create_bucket(&self, bucket: &str) {
        let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
s3.create_bucket(Bucket=sys.argv[2])
"#;
        python(script, &[&self.endpoint(), bucket]);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Requests seen by a [`Counting`] store.
#[derive(Debug, Default)]
pub struct Requests {
    /// Object reads (get/get_ranges), by key.
    pub gets: BTreeMap<String, usize>,
    /// Listing prefixes.
    pub lists: Vec<String>,
    /// Multipart uploads started, by key.
    pub multipart: Vec<String>,
    /// Single-request puts, by key.
    pub puts: Vec<String>,
}

/// Wraps the lake's real store and records what is asked of it.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn ObjectStore>,
    pub seen: Arc<Mutex<Requests>>,
}

impl Counting {
    pub fn wrap(lake: Lake) -> (Lake, Arc<Mutex<Requests>>) {
        let seen = Arc::new(Mutex::new(Requests::default()));
        let s = Arc::clone(&seen);
        let lake = lake.wrap(move |inner| Arc::new(Counting { inner, seen: s }));
        (lake, seen)
    }

    fn note(&self, f: impl FnOnce(&mut Requests)) {
        let mut g = self.seen.lock().expect("requests lock");
        f(&mut g);
    }
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.note(|r| r.puts.push(location.to_string()));
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.note(|r| r.multipart.push(location.to_string()));
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.note(|r| *r.gets.entry(location.to_string()).or_default() += 1);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.note(|r| *r.gets.entry(location.to_string()).or_default() += 1);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.note(|r| {
            r.lists
                .push(prefix.map(|p| p.to_string()).unwrap_or_default())
        });
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.note(|r| {
            r.lists
                .push(prefix.map(|p| p.to_string()).unwrap_or_default())
        });
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.note(|r| {
            r.lists
                .push(prefix.map(|p| p.to_string()).unwrap_or_default())
        });
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// Wait until `f` holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Files under a local folder, recursively, relative to it (sorted).
pub fn local_files(dir: &FsPath) -> Vec<String> {
    fn walk(base: &FsPath, dir: &FsPath, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p: PathBuf = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
