//! The dataset index on disk: one immutable JSON manifest per version,
//! `<data-dir>/datasets/<name>/<N>.json`, and the CSV bytes content-addressed in the artifact
//! store (`<data-dir>/artifacts/sha256/<hex>`).
//!
//! Invariants:
//! - A manifest, once visible, never changes: it is written to a temporary file, fsynced, and
//!   then hard-linked to its final name, which fails when the name exists. So two writers can
//!   never both create version `N`; the loser takes `N + 1`.
//! - A manifest only ever names data that is already stored (the data goes in first).
//! - Creating content equal to the name's latest version returns that version (no new one).

use super::snapshot::snapshot;
use super::{DatasetError, DatasetVersion, Provenance};
use crate::pipeline::artifacts::{DirStore, ObjectStore, digest_file};
use edgefleet_protocol::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A dataset store over a fleet manager's data dir.
#[derive(Debug, Clone)]
pub struct DatasetStore {
    root: PathBuf,
    artifacts: DirStore,
}

/// What [`DatasetStore::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The version (new, or the latest one when the content equals it).
    pub version: DatasetVersion,
    /// False when the content equals the latest version's and that version is returned.
    pub created: bool,
}

/// Unique temporary names within this process.
static TEMP: AtomicU64 = AtomicU64::new(0);

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DatasetError {
    let context = context.into();
    move |source| DatasetError::Io { context, source }
}

/// Checks a dataset name: 1–64 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), DatasetError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok { Ok(()) } else { Err(DatasetError::BadName(name.to_string())) }
}

impl DatasetStore {
    /// The store of the fleet manager whose data dir is `data_dir` (nothing is created until
    /// the first dataset is).
    pub fn open(data_dir: &Path) -> Result<Self, DatasetError> {
        let root = data_dir.join("datasets");
        if root.exists() && !root.is_dir() {
            return Err(DatasetError::Io {
                context: format!("opening {}", root.display()),
                source: std::io::Error::other("exists and is not a directory"),
            });
        }
        Ok(DatasetStore { root, artifacts: DirStore::new(data_dir.join("artifacts")) })
    }

    /// The artifact store holding the data files.
    pub fn artifacts(&self) -> &DirStore {
        &self.artifacts
    }

    /// Snapshots `csv` as the next version of `name`, or returns the latest version when its
    /// content is the same.
    pub fn create(&self, name: &str, csv: &[u8], provenance: Provenance) -> Result<Created, DatasetError> {
        check_name(name)?;
        let content = snapshot(csv)?;
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        self.store_data(csv, &content.data)?;
        loop {
            let versions = self.versions(name)?;
            if let Some(latest) = versions.last().filter(|v| v.digest == content.digest) {
                return Ok(Created { version: latest.clone(), created: false });
            }
            let version = DatasetVersion {
                name: name.to_string(),
                version: versions.last().map_or(1, |v| v.version + 1),
                digest: content.digest,
                data: content.data,
                bytes: csv.len() as u64,
                rows: content.rows,
                schema: content.columns.clone(),
                provenance: provenance.clone(),
            };
            if self.write_exclusive(&dir, &version)? {
                return Ok(Created { version, created: true });
            }
            // Another writer took this number first: look again.
        }
    }

    fn store_data(&self, csv: &[u8], data: &Digest) -> Result<(), DatasetError> {
        let stored = self.artifacts.put_bytes(csv).map_err(io("storing the data file"))?;
        debug_assert_eq!(&stored, data);
        Ok(())
    }

    fn temp_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!(".tmp-{}-{}", std::process::id(), TEMP.fetch_add(1, Ordering::Relaxed)))
    }

    /// Writes `version`'s manifest unless its number is taken; false when it is.
    fn write_exclusive(&self, dir: &Path, version: &DatasetVersion) -> Result<bool, DatasetError> {
        let target = dir.join(format!("{}.json", version.version));
        let json =
            serde_json::to_vec_pretty(version).map_err(|e| io("encoding a manifest")(std::io::Error::other(e)))?;
        let tmp = self.temp_path(dir);
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            match std::fs::hard_link(&tmp, &target) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        let linked = result.map_err(io(format!("writing {}", target.display())))?;
        if linked && let Ok(d) = std::fs::File::open(dir) {
            // The new name survives a power cut once the directory is synced.
            let _ = d.sync_all();
        }
        Ok(linked)
    }

    /// Every version of `name`, oldest first (empty when there is none).
    pub fn versions(&self, name: &str) -> Result<Vec<DatasetVersion>, DatasetError> {
        check_name(name)?;
        let dir = self.root.join(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
            let file_name = entry.file_name();
            let Some(number) = file_name.to_str().and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse().ok())
            else {
                continue; // temporary files and anything else that is not a manifest
            };
            versions.push(self.read_manifest(&entry.path(), name, number)?);
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    fn read_manifest(&self, path: &Path, name: &str, number: u64) -> Result<DatasetVersion, DatasetError> {
        let corrupt = |detail: String| DatasetError::Corrupt { path: path.to_path_buf(), detail };
        let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        let version: DatasetVersion = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if version.name != name || version.version != number {
            return Err(corrupt(format!("names {}, not {name}@{number}", version.label())));
        }
        Ok(version)
    }

    /// Every dataset name, sorted.
    pub fn names(&self) -> Result<Vec<String>, DatasetError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("reading {}", self.root.display()))(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("reading {}", self.root.display())))?;
            if let Some(name) = entry.file_name().to_str().filter(|n| check_name(n).is_ok())
                && entry.path().is_dir()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every version of every dataset, by name, then version.
    pub fn list(&self) -> Result<Vec<DatasetVersion>, DatasetError> {
        let mut all = Vec::new();
        for name in self.names()? {
            all.extend(self.versions(&name)?);
        }
        Ok(all)
    }

    /// The version of `name` that `version` names: `latest`, a number (`3`) or a dataset
    /// digest (`sha256:<64 hex>`: the newest version with that content).
    pub fn resolve(&self, name: &str, version: &str) -> Result<DatasetVersion, DatasetError> {
        enum Want {
            Latest,
            Number(u64),
            Digest(Digest),
        }
        let want = match version {
            "latest" | "" => Want::Latest,
            v if v.bytes().all(|b| b.is_ascii_digit()) => {
                Want::Number(v.parse().map_err(|_| DatasetError::BadVersion(v.to_string()))?)
            }
            v => match v.strip_prefix("sha256:").map(str::parse::<Digest>) {
                Some(Ok(d)) => Want::Digest(d),
                _ => return Err(DatasetError::BadVersion(v.to_string())),
            },
        };
        let versions = self.versions(name)?;
        let Some(latest) = versions.last() else { return Err(DatasetError::NoDataset { name: name.to_string() }) };
        match want {
            Want::Latest => Ok(latest.clone()),
            Want::Number(n) => versions
                .iter()
                .find(|v| v.version == n)
                .cloned()
                .ok_or_else(|| DatasetError::NoVersion { name: name.to_string(), latest: latest.version, asked: n }),
            Want::Digest(d) => versions
                .iter()
                .rev()
                .find(|v| v.digest == d)
                .cloned()
                .ok_or(DatasetError::NoDigest { name: name.to_string(), digest: d }),
        }
    }

    /// The stored file holding `version`'s CSV bytes, after checking it is there and whole.
    pub fn data_path(&self, version: &DatasetVersion) -> Result<PathBuf, DatasetError> {
        let path = self.artifacts.path_of(&version.data);
        match digest_file(&path) {
            Ok(d) if d == version.data => Ok(path),
            _ => Err(DatasetError::DataMissing { label: version.label(), data: version.data }),
        }
    }

    /// `version`'s CSV bytes, checked against its data digest.
    pub fn read_data(&self, version: &DatasetVersion) -> Result<Vec<u8>, DatasetError> {
        let path = self.artifacts.path_of(&version.data);
        match std::fs::read(&path) {
            Ok(bytes) if Digest::sha256(&bytes) == version.data => Ok(bytes),
            _ => Err(DatasetError::DataMissing { label: version.label(), data: version.data }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"x,y\n1,2\n3,4\n";
    const B: &[u8] = b"x,y\n3,4\n1,2\n";

    fn who(at: u64) -> Provenance {
        Provenance { source: "csv".into(), created_by: "ana".into(), created_at_ms: at, ..Provenance::default() }
    }

    fn store() -> (tempfile::TempDir, DatasetStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DatasetStore::open(dir.path()).expect("open");
        (dir, store)
    }

    #[test]
    fn the_same_bytes_give_the_same_digest_in_two_stores() {
        let ((_a, one), (_b, two)) = (store(), store());
        let x = one.create("vib", A, who(1)).expect("create").version;
        let y = two.create("other-name", A, who(99)).expect("create").version;
        assert_eq!((x.digest, x.data), (y.digest, y.data));
        assert_ne!(x.provenance, y.provenance);
        let reordered = one.create("vib", B, who(2)).expect("create").version;
        assert_ne!(reordered.digest, x.digest);
    }

    #[test]
    fn versions_are_numbered_per_name_and_equal_content_is_not_a_new_version() {
        let (_d, s) = store();
        let v1 = s.create("vib", A, who(1)).expect("create");
        assert!(v1.created && v1.version.version == 1);
        let again = s.create("vib", A, who(2)).expect("create");
        assert_eq!((again.created, again.version.version, again.version.provenance.created_at_ms), (false, 1, 1));
        assert_eq!(s.create("vib", B, who(3)).expect("create").version.version, 2);
        // Back to A: the latest is B, so A becomes version 3 (same digest as version 1).
        let v3 = s.create("vib", A, who(4)).expect("create");
        assert!(v3.created && v3.version.version == 3 && v3.version.digest == v1.version.digest);
        assert_eq!(s.create("temp", A, who(5)).expect("create").version.version, 1);
        assert_eq!(s.names().expect("names"), ["temp", "vib"]);
        assert_eq!(s.list().expect("list").len(), 4);
        assert_eq!(s.read_data(&v3.version).expect("data"), A);
    }

    #[test]
    fn resolve_by_latest_number_and_digest() {
        let (_d, s) = store();
        let v1 = s.create("vib", A, who(1)).expect("create").version;
        let v2 = s.create("vib", B, who(2)).expect("create").version;
        assert_eq!(s.resolve("vib", "latest").expect("latest"), v2);
        assert_eq!(s.resolve("vib", "1").expect("1"), v1);
        assert_eq!(s.resolve("vib", &format!("sha256:{}", v1.digest)).expect("digest"), v1);
        let err = |name: &str, version: &str| s.resolve(name, version).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err("vib", "7"), "vib has versions 1..2, not 7");
        assert_eq!(err("nope", "latest"), "no dataset \"nope\"; `edgefleet dataset list` shows the known ones");
        assert!(err("vib", "sha256:1234").contains("not a dataset version"));
        assert!(err("vib", "v2").contains("not a dataset version"));
        assert!(err("vib", &format!("sha256:{}", Digest::sha256(b"x"))).contains("no version of vib has digest"));
        assert!(err("../etc", "1").contains("not a dataset name"));
        assert!(err("vib", "99999999999999999999999").contains("not a dataset version"));
    }

    #[test]
    fn a_taken_number_is_never_overwritten() {
        let (_d, s) = store();
        let v1 = s.create("vib", A, who(1)).expect("create").version;
        let dir = s.root.join("vib");
        let mut fake = v1.clone();
        fake.version = 2;
        fake.provenance.created_by = "other writer".into();
        assert!(s.write_exclusive(&dir, &fake).expect("write"));
        assert!(!s.write_exclusive(&dir, &fake).expect("write"), "version 2 is taken");
        // The other writer's version 2 has A's content; B goes to 3.
        assert_eq!(s.create("vib", B, who(2)).expect("create").version.version, 3);
        assert_eq!(s.resolve("vib", "2").expect("2").provenance.created_by, "other writer");
    }

    #[test]
    fn bad_csv_and_damaged_stores_are_named() {
        let (d, s) = store();
        assert!(matches!(s.create("vib", b"x,y\n1\n", who(1)), Err(DatasetError::Invalid(_))));
        assert!(s.names().expect("names").is_empty() || s.versions("vib").expect("versions").is_empty());
        let v1 = s.create("vib", A, who(1)).expect("create").version;
        std::fs::write(s.artifacts.path_of(&v1.data), b"tampered").expect("write");
        assert!(matches!(s.read_data(&v1), Err(DatasetError::DataMissing { .. })));
        std::fs::write(d.path().join("datasets/vib/1.json"), b"{").expect("write");
        assert!(matches!(s.resolve("vib", "1"), Err(DatasetError::Corrupt { .. })));
    }
}
