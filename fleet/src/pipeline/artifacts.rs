//! The artifact store: content-addressed files (step outputs, input snapshots), named by their
//! SHA-256. A directory by default (`<data-dir>/artifacts/sha256/<hex>`); the [`ObjectStore`]
//! seam is what an S3-compatible store implements later.

use edgefleet_protocol::Digest;
use sha2::Digest as _;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where artifacts live.
pub trait ObjectStore: Send + Sync {
    /// Stores the file at `path` under its digest (a no-op when already stored); returns it.
    fn put_file(&self, path: &Path) -> std::io::Result<Digest>;
    /// Stores `bytes` under their digest; returns it.
    fn put_bytes(&self, bytes: &[u8]) -> std::io::Result<Digest>;
    /// Writes the artifact `digest` to `to` (a fresh file; the store's copy stays read-only).
    fn get_file(&self, digest: &Digest, to: &Path) -> std::io::Result<()>;
    /// Whether `digest` is stored.
    fn contains(&self, digest: &Digest) -> bool;
}

/// Artifacts as files in a directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    /// The file holding `digest`.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.to_hex())
    }
}

/// The SHA-256 of a file, read in chunks.
pub fn digest_file(path: &Path) -> std::io::Result<Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest(hasher.finalize().into()))
}

impl DirStore {
    /// Writes an artifact under a temporary name with `write`, then renames it into place: a
    /// reader never sees half an artifact, and one already stored is not written again.
    fn install(&self, digest: Digest, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<Digest> {
        let target = self.path_of(&digest);
        if target.exists() {
            return Ok(digest);
        }
        let dir = self.root.join("sha256");
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{}.{}", digest.to_hex(), std::process::id()));
        write(&tmp)?;
        std::fs::rename(&tmp, &target)?;
        Ok(digest)
    }
}

impl ObjectStore for DirStore {
    fn put_file(&self, path: &Path) -> std::io::Result<Digest> {
        self.install(digest_file(path)?, |tmp| std::fs::copy(path, tmp).map(|_| ()))
    }

    fn put_bytes(&self, bytes: &[u8]) -> std::io::Result<Digest> {
        self.install(Digest::sha256(bytes), |tmp| std::fs::write(tmp, bytes))
    }

    fn get_file(&self, digest: &Digest, to: &Path) -> std::io::Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(self.path_of(digest), to)?;
        Ok(())
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }
}

/// The files of a directory a pipeline snapshots: relative `/`-separated paths, sorted;
/// hidden entries and `__pycache__` are left out.
pub fn list_files(root: &Path) -> std::io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(root, &entry.path(), out)?;
            } else if kind.is_file() {
                let rel = entry.path().strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or(name);
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_content_is_stored_once_under_its_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirStore::new(dir.path().join("artifacts"));
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"same").expect("write");
        std::fs::write(&b, b"same").expect("write");
        let da = store.put_file(&a).expect("put");
        assert_eq!(da, store.put_file(&b).expect("put"));
        assert_eq!(da, Digest::sha256(b"same"));
        assert!(store.contains(&da));
        store.get_file(&da, &dir.path().join("out/c")).expect("get");
        assert_eq!(std::fs::read(dir.path().join("out/c")).expect("read"), b"same");
    }

    #[test]
    fn a_snapshot_lists_code_files_and_leaves_out_hidden_ones_and_pycache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let code = dir.path().join("code");
        std::fs::create_dir_all(code.join("lib")).expect("mkdir");
        std::fs::write(code.join("train.py"), b"print(1)").expect("write");
        std::fs::write(code.join("lib/util.py"), b"x = 2").expect("write");
        std::fs::write(code.join(".secret"), b"no").expect("write");
        std::fs::create_dir_all(code.join("__pycache__")).expect("mkdir");
        std::fs::write(code.join("__pycache__/train.pyc"), b"junk").expect("write");
        assert_eq!(list_files(&code).expect("list"), vec!["lib/util.py", "train.py"]);
    }
}
