//! Pipeline records on disk, under `<data-dir>/pipelines/`: one JSON file per registered
//! version (`specs/NAME/V.json`, written once), per run (`runs/ID.json`, replaced atomically
//! on every change) and per cache entry (`cache/KEY.json`). Files, not the fleet database: runs
//! change from many tasks while the core owns its database alone, and a run file is readable
//! with `cat` when something goes wrong. One `edgefleet serve` per data directory (its database
//! lock) makes it the only writer.

use super::record::{CacheEntry, PipelineVersion, RunRecord};
use edgefleet_protocol::Digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Reading or writing pipeline records failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record that does not parse (written by a newer version, or damaged).
    #[error("{path}: not a pipeline record: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// The records.
#[derive(Debug)]
pub struct PipelineStore {
    root: PathBuf,
    /// Serializes read-modify-write of run files and the allocation of numbers.
    lock: Mutex<()>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Writes `value` as JSON at `path` through a temporary file and a rename (readers see the
/// old record or the new one, never half of one), synced so a crash keeps the last state.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(&bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
    }
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::Io { path: dir.to_path_buf(), source: e }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

impl PipelineStore {
    /// The records under `<data_dir>/pipelines`.
    pub fn open(data_dir: &Path) -> Self {
        PipelineStore { root: data_dir.join("pipelines"), lock: Mutex::new(()) }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where a run's working files (step directories, logs) go.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join("work").join(id)
    }

    /// Every version of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<PipelineVersion>, StoreError> {
        let mut out: Vec<PipelineVersion> = Vec::new();
        for path in json_files(&self.root.join("specs").join(name))? {
            out.extend(read_json::<PipelineVersion>(&path)?);
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    /// Every registered pipeline name.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("specs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            if entry.path().is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Registers a version: returns an existing one with the same spec and code digests, or
    /// stores `make(next_version)`. The bool says whether it is new.
    pub fn register(
        &self,
        name: &str,
        spec_digest: &Digest,
        code_digest: &Digest,
        make: impl FnOnce(u64) -> PipelineVersion,
    ) -> Result<(PipelineVersion, bool), StoreError> {
        let _g = self.guard();
        let versions = self.versions(name)?;
        if let Some(same) =
            versions.iter().rev().find(|v| &v.spec_digest == spec_digest && &v.code_digest == code_digest)
        {
            return Ok((same.clone(), false));
        }
        let version = make(versions.last().map_or(1, |v| v.version + 1));
        write_json(&self.root.join("specs").join(name).join(format!("{}.json", version.version)), &version)?;
        Ok((version, true))
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        if !super::spec::valid_name(id) {
            return Ok(None);
        }
        read_json(&self.root.join("runs").join(format!("{id}.json")))
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut out: Vec<RunRecord> = Vec::new();
        for path in json_files(&self.root.join("runs"))? {
            out.extend(read_json::<RunRecord>(&path)?);
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    /// Stores a new run, numbered after the pipeline's last: `make(number)` builds it.
    pub fn create_run(&self, pipeline: &str, make: impl FnOnce(u64) -> RunRecord) -> Result<RunRecord, StoreError> {
        let _g = self.guard();
        let last = self.runs()?.iter().filter(|r| r.pipeline == pipeline).map(|r| r.number).max().unwrap_or(0);
        let run = make(last + 1);
        write_json(&self.root.join("runs").join(format!("{}.json", run.id)), &run)?;
        Ok(run)
    }

    /// Changes a stored run; returns it as stored.
    pub fn update_run(&self, id: &str, change: impl FnOnce(&mut RunRecord)) -> Result<RunRecord, StoreError> {
        let _g = self.guard();
        let path = self.root.join("runs").join(format!("{id}.json"));
        let mut run: RunRecord = read_json(&path)?.ok_or_else(|| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such run"),
        })?;
        change(&mut run);
        write_json(&path, &run)?;
        Ok(run)
    }

    /// A cache entry.
    pub fn cached(&self, key: &Digest) -> Result<Option<CacheEntry>, StoreError> {
        read_json(&self.root.join("cache").join(format!("{}.json", key.to_hex())))
    }

    /// Stores a cache entry.
    pub fn put_cached(&self, key: &Digest, entry: &CacheEntry) -> Result<(), StoreError> {
        write_json(&self.root.join("cache").join(format!("{}.json", key.to_hex())), entry)
    }
}
