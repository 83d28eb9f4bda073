//! The model artifact store in the lake: where the `train` task saves one
//! model per group and run date, and where the `forecast` task finds the
//! newest one. It moves bytes and lists folders; what the bytes mean is
//! [`crate::forecast::artifact`]'s business.
//!
//! Layout: `models/<dag>/<group>/<ds>/model.{safetensors,json}`, the group
//! made path-safe. `model.json` is written last, so a folder without it
//! (a save cut short) is ignored.

use bytes::Bytes;
use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::forecast::artifact::{META_FILE, ModelMeta, WEIGHTS_FILE};

/// A failed lake operation on the model store, with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum ModelStoreError {
    #[error("listing {dir}: {source}")]
    List {
        dir: Path,
        source: object_store::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: Path,
        source: object_store::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: Path,
        source: object_store::Error,
    },
}

/// One saved model: its run date and its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    pub date: NaiveDate,
    pub dir: Path,
}

/// The models of one DAG.
#[derive(Clone, Copy)]
pub struct ModelStore<'a> {
    store: &'a dyn ObjectStore,
    dag: &'a str,
}

impl<'a> ModelStore<'a> {
    pub fn new(store: &'a dyn ObjectStore, dag: &'a str) -> Self {
        Self { store, dag }
    }

    /// `models/<dag>`: the folder every model of the DAG lives under.
    pub fn root(&self) -> Path {
        Path::from(format!("models/{}", self.dag))
    }

    /// `models/<dag>/<group>/`, with the group made path-safe.
    pub fn group_dir(&self, group: &str) -> Path {
        let safe: String = group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Path::from(format!("models/{}/{safe}", self.dag))
    }

    /// Save one model's files under `<group>/<ds>/`; `model.json` last.
    pub async fn save(
        &self,
        group: &str,
        date: NaiveDate,
        weights: Vec<u8>,
        meta: Vec<u8>,
    ) -> Result<StoredModel, ModelStoreError> {
        let dir = self
            .group_dir(group)
            .join(date.format("%Y-%m-%d").to_string());
        for (file, bytes) in [(WEIGHTS_FILE, weights), (META_FILE, meta)] {
            let path = dir.clone().join(file);
            self.store
                .put(&path, PutPayload::from(Bytes::from(bytes)))
                .await
                .map_err(|source| ModelStoreError::Write { path, source })?;
        }
        Ok(StoredModel { date, dir })
    }

    /// The newest model of a group with a date on or before `ds`.
    pub async fn newest(
        &self,
        group: &str,
        ds: NaiveDate,
    ) -> Result<Option<StoredModel>, ModelStoreError> {
        let group_dir = self.group_dir(group);
        let listed: Vec<_> = self
            .store
            .list(Some(&group_dir))
            .try_collect()
            .await
            .map_err(|source| ModelStoreError::List {
                dir: group_dir.clone(),
                source,
            })?;
        let mut best: Option<StoredModel> = None;
        for meta in listed {
            let loc = meta.location;
            if loc.filename() != Some(META_FILE) {
                continue;
            }
            let parts: Vec<String> = loc.parts().map(|p| p.as_ref().to_string()).collect();
            let Some(day) = parts.iter().rev().nth(1) else {
                continue;
            };
            let Ok(date) = NaiveDate::parse_from_str(day.trim_start_matches("ds="), "%Y-%m-%d")
            else {
                continue;
            };
            if date <= ds && best.as_ref().is_none_or(|b| date > b.date) {
                let dir = Path::from_iter(parts[..parts.len() - 1].iter().map(String::as_str));
                best = Some(StoredModel { date, dir });
            }
        }
        Ok(best)
    }

    async fn get(&self, path: Path) -> Result<Bytes, ModelStoreError> {
        let got = match self.store.get(&path).await {
            Ok(g) => g,
            Err(source) => return Err(ModelStoreError::Read { path, source }),
        };
        got.bytes()
            .await
            .map_err(|source| ModelStoreError::Read { path, source })
    }

    /// The `model.json` of a model folder; `None` when it does not parse
    /// (written by an incompatible version, or damaged).
    pub async fn read_meta(
        &self,
        model: &StoredModel,
    ) -> Result<Option<ModelMeta>, ModelStoreError> {
        let m = self.get(model.dir.clone().join(META_FILE)).await?;
        Ok(serde_json::from_slice(&m).ok())
    }

    /// Both files of a model folder: `(model.safetensors, model.json)`.
    pub async fn read(&self, model: &StoredModel) -> Result<(Vec<u8>, Vec<u8>), ModelStoreError> {
        let w = self.get(model.dir.clone().join(WEIGHTS_FILE)).await?;
        let m = self.get(model.dir.clone().join(META_FILE)).await?;
        Ok((w.to_vec(), m.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_newest_complete_model_on_or_before_the_date_is_found() {
        let mem = object_store::memory::InMemory::new();
        let store = ModelStore::new(&mem, "nightly");
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        for ds in ["2026-11-01", "2026-11-08", "2026-11-15"] {
            store
                .save("FOODS & CO", d(ds), vec![1], b"{}".to_vec())
                .await
                .expect("save");
        }
        // A save cut short: weights without model.json.
        let partial = store.group_dir("FOODS & CO").join("2026-11-10");
        mem.put(
            &partial.join(WEIGHTS_FILE),
            PutPayload::from(Bytes::from_static(b"w")),
        )
        .await
        .expect("put");
        let got = store
            .newest("FOODS & CO", d("2026-11-12"))
            .await
            .expect("list")
            .expect("a model");
        assert_eq!(got.date, d("2026-11-08"));
        assert_eq!(got.dir.as_ref(), "models/nightly/FOODS___CO/2026-11-08");
        assert!(
            store
                .newest("FOODS & CO", d("2026-10-31"))
                .await
                .expect("list")
                .is_none()
        );
        let (w, m) = store.read(&got).await.expect("read");
        assert_eq!((w, m), (vec![1], b"{}".to_vec()));
        // `{}` is not a model.json this build reads.
        assert_eq!(store.read_meta(&got).await.expect("read"), None);
    }
}
