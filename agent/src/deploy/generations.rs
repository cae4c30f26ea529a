//! Installed model versions on disk, and which one is active.
//!
//! ```text
//! data_dir/models/<model>/<version_seq>-<package id prefix>/model.onnx   the verified variant blob
//!                                                          /head.bin     the signed package head
//! data_dir/models/<model>/active.json   { "current": …, "previous": … }  (atomic replace)
//! ```
//! A generation directory is complete before `active.json` names it (files fsynced, directory
//! renamed into place), and `active.json` is replaced atomically, so after a crash at any point
//! the pointer names a complete, verified generation: the old one or the new one.

use super::fsutil::{sync_parent, write_atomic};
use edgefleet_protocol::{Digest, ModelName};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// Model name.
    pub model: ModelName,
    /// Version sequence.
    pub version_seq: u64,
    /// Human label.
    pub label: String,
    /// Package id it came from.
    pub package_id: Digest,
    /// Directory name under the model's directory.
    pub dir: String,
}

/// The active pointer of one model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Active {
    /// Serving now.
    pub current: Option<Generation>,
    /// Last-known-good: what a rollback returns to.
    pub previous: Option<Generation>,
}

/// Installed generations under `data_dir/models`.
#[derive(Debug, Clone)]
pub struct Generations {
    root: PathBuf,
}

impl Generations {
    /// Opens (creating) `data_dir/models`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("models");
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn model_dir(&self, model: &ModelName) -> PathBuf {
        self.root.join(model.as_str())
    }

    /// The directory holding every generation of `model`.
    pub fn model_dir_path(&self, model: &ModelName) -> PathBuf {
        self.model_dir(model)
    }

    /// The directory of `generation`.
    pub fn path(&self, generation: &Generation) -> PathBuf {
        self.model_dir(&generation.model).join(&generation.dir)
    }

    /// The ONNX file of `generation`.
    pub fn model_file(&self, generation: &Generation) -> PathBuf {
        self.path(generation).join("model.onnx")
    }

    /// Models with an active pointer.
    pub fn models(&self) -> io::Result<Vec<ModelName>> {
        let mut models = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str().and_then(|n| ModelName::new(n).ok())
                && entry.path().join("active.json").exists()
            {
                models.push(name);
            }
        }
        models.sort();
        Ok(models)
    }

    /// The active pointer of `model` (empty when nothing was ever activated).
    pub fn active(&self, model: &ModelName) -> io::Result<Active> {
        match fs::read(self.model_dir(model).join("active.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Active::default()),
            Err(e) => Err(e),
        }
    }

    /// Installs a verified blob and head as a new generation: writes into `<dir>.partial`,
    /// fsyncs, then renames to `<dir>`. `blob` is moved (renamed) into place.
    pub fn install(
        &self,
        model: &ModelName,
        version_seq: u64,
        label: &str,
        package_id: Digest,
        head: &[u8],
        blob: &Path,
    ) -> io::Result<Generation> {
        let dir = format!("{version_seq}-{}", &package_id.to_hex()[..12]);
        let generation = Generation { model: model.clone(), version_seq, label: label.into(), package_id, dir };
        let final_dir = self.path(&generation);
        if final_dir.join("model.onnx").exists() {
            return Ok(generation); // already installed (an interrupted deployment resumed)
        }
        let partial = final_dir.with_extension("partial");
        if partial.exists() {
            fs::remove_dir_all(&partial)?;
        }
        fs::create_dir_all(&partial)?;
        write_atomic(&partial.join("head.bin"), head)?;
        fs::rename(blob, partial.join("model.onnx"))?;
        fs::File::open(partial.join("model.onnx"))?.sync_all()?;
        fs::File::open(&partial)?.sync_all()?;
        fs::rename(&partial, &final_dir)?;
        sync_parent(&final_dir)?;
        Ok(generation)
    }

    /// Makes `generation` current; the old current becomes last-known-good.
    pub fn activate(&self, generation: &Generation) -> io::Result<Active> {
        let mut active = self.active(&generation.model)?;
        if active.current.as_ref() == Some(generation) {
            return Ok(active);
        }
        active.previous = active.current.take();
        active.current = Some(generation.clone());
        self.write_active(&generation.model, &active)?;
        Ok(active)
    }

    /// Returns to the last-known-good generation (or to `to_version_seq` if it is installed).
    /// The generation rolled back from is kept on disk for inspection until the next prune.
    pub fn rollback(&self, model: &ModelName, to_version_seq: Option<u64>) -> io::Result<Option<Active>> {
        let mut active = self.active(model)?;
        let target = match to_version_seq {
            None => active.previous.clone(),
            Some(seq) => self.installed(model)?.into_iter().find(|g| g.version_seq == seq),
        };
        let Some(target) = target else { return Ok(None) };
        active.previous = None;
        active.current = Some(target);
        self.write_active(model, &active)?;
        Ok(Some(active))
    }

    /// Every complete generation of `model` on disk.
    pub fn installed(&self, model: &ModelName) -> io::Result<Vec<Generation>> {
        let dir = self.model_dir(model);
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else { return Ok(out) };
        for entry in entries {
            let path = entry?.path();
            if let Ok(head) = fs::read(path.join("head.bin"))
                && path.join("model.onnx").exists()
                && let Ok(parsed) = edgefleet_protocol::package::PackageHead::from_bytes(&head)
                && let Ok(manifest) = parsed.manifest_unverified()
                && let Some(dir) = path.file_name().and_then(|n| n.to_str())
            {
                out.push(Generation {
                    model: model.clone(),
                    version_seq: manifest.version_seq,
                    label: manifest.label,
                    package_id: parsed.package_id(),
                    dir: dir.to_string(),
                });
            }
        }
        out.sort_by_key(|g| g.version_seq);
        Ok(out)
    }

    /// Deletes generations that are neither current nor last-known-good, and leftovers of
    /// interrupted installs.
    pub fn prune(&self, model: &ModelName) -> io::Result<()> {
        let active = self.active(model)?;
        let keep: Vec<&str> =
            [&active.current, &active.previous].into_iter().flatten().map(|g| g.dir.as_str()).collect();
        let Ok(entries) = fs::read_dir(self.model_dir(model)) else { return Ok(()) };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if entry.path().is_dir() && !keep.contains(&name) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    fn write_active(&self, model: &ModelName, active: &Active) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(active).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.model_dir(model).join("active.json"), &bytes)
    }
}
