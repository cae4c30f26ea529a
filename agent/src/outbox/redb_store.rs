//! [`Store`] on redb 4, the default engine.
//!
//! One file, two tables: `records` keyed by (stream id, seq) holding
//! `created_ms (u64 LE) ‖ payload`, and `meta` keyed by (counter kind, stream id) holding the
//! next seq and the eviction count. Appends commit with [`Durability::Immediate`] (redb's
//! two-slot commit and fsync); deletions commit with [`Durability::None`] and are made durable
//! by the next append, as the [`Store`] contract allows. A killed process leaves a file that
//! redb repairs on the next open.

use super::store::{RECORD_OVERHEAD, Record, Removed, Store, StoreError, StreamStats, decode_value, encode_value};
use super::stream::{PerStream, Stream};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::fs::File;
use std::path::{Path, PathBuf};

const RECORDS: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("records");
const META: TableDefinition<(u8, u8), u64> = TableDefinition::new("meta");
const META_NEXT_SEQ: u8 = 1;
const META_EVICTED: u8 = 2;
/// redb's page cache. Its default (1 GiB) let RSS reach 175 MiB after 100k × 1 KiB records.
const CACHE_BYTES: usize = 16 << 20;

/// The outbox in one redb file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// The file name the agent uses inside its data dir.
    pub const FILE_NAME: &'static str = "outbox.redb";

    /// Opens the store at `path`, creating the file (and its parent directory) if it is missing
    /// or empty. After a crash, redb repairs the file here.
    ///
    /// A new file is initialized under a temporary name and renamed into place: redb leaves a
    /// file that a kill interrupted during its creation unopenable ("magic number mismatch",
    /// found by `tests/outbox_kill.rs`), so the final path only ever holds a complete database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let empty = match std::fs::metadata(&path) {
            Ok(meta) => meta.len() == 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(StoreError::io(&path, "looking for it", e)),
        };
        if empty {
            create_atomically(&path)?;
        }
        let db =
            Database::builder().set_cache_size(CACHE_BYTES).open(&path).map_err(|e| map_err(&path, "opening", e))?;
        Ok(RedbStore { db, path })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs redb's full integrity check (every page and checksum); `Ok(true)` when the file was
    /// intact, `Ok(false)` when it had to be repaired.
    pub fn check_integrity(&mut self) -> Result<bool, StoreError> {
        self.db.check_integrity().map_err(|e| map_err(&self.path, "checking integrity", e))
    }

    fn write<T>(
        &self,
        op: &'static str,
        durability: Durability,
        body: impl FnOnce(&WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let run = || -> Result<T, redb::Error> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(durability)?;
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run().map_err(|e| map_err(&self.path, op, e))
    }
}

impl Store for RedbStore {
    fn append(&self, records: &[Record]) -> Result<(), StoreError> {
        self.write("appending", Durability::Immediate, |tx| {
            let mut table = tx.open_table(RECORDS)?;
            let mut highest = PerStream::<u64>::default();
            for r in records {
                table.insert((r.stream.id(), r.seq), encode_value(r.created_ms, &r.payload).as_slice())?;
                highest[r.stream] = highest[r.stream].max(r.seq);
            }
            let mut meta = tx.open_table(META)?;
            for (stream, &seq) in highest.iter().filter(|(_, seq)| **seq > 0) {
                let key = (META_NEXT_SEQ, stream.id());
                let current = meta.get(key)?.map(|v| v.value()).unwrap_or(1);
                meta.insert(key, current.max(seq + 1))?;
            }
            Ok(())
        })
    }

    fn range(&self, stream: Stream, after_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let Some(start) = after_seq.checked_add(1) else { return Ok(Vec::new()) };
        let run = || -> Result<Result<Vec<Record>, String>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(RECORDS)?;
            let mut out = Vec::with_capacity(limit.min(1024));
            for entry in table.range((stream.id(), start)..=(stream.id(), u64::MAX))?.take(limit) {
                let (key, value) = entry?;
                match decode_value(stream, key.value().1, value.value()) {
                    Ok(record) => out.push(record),
                    Err(detail) => return Ok(Err(detail)),
                }
            }
            Ok(Ok(out))
        };
        run()
            .map_err(|e| map_err(&self.path, "reading", e))?
            .map_err(|detail| StoreError::Corrupt { path: self.path.clone(), detail })
    }

    fn delete(&self, stream: Stream, seqs: &[u64]) -> Result<Removed, StoreError> {
        self.write("deleting acknowledged records", Durability::None, |tx| {
            let mut table = tx.open_table(RECORDS)?;
            let mut removed = Removed::default();
            for &seq in seqs {
                if let Some(value) = table.remove((stream.id(), seq))? {
                    removed.records += 1;
                    removed.bytes += stored_size(value.value());
                }
            }
            Ok(removed)
        })
    }

    fn delete_oldest(&self, stream: Stream, count: u64) -> Result<Removed, StoreError> {
        self.write("evicting records", Durability::None, |tx| {
            let mut table = tx.open_table(RECORDS)?;
            let mut removed = Removed::default();
            let mut doomed = Vec::new();
            for entry in table.range((stream.id(), 0)..=(stream.id(), u64::MAX))? {
                if doomed.len() as u64 >= count {
                    break;
                }
                let (key, value) = entry?;
                doomed.push(key.value().1);
                removed.bytes += stored_size(value.value());
            }
            for &seq in &doomed {
                table.remove((stream.id(), seq))?;
            }
            removed.records = doomed.len() as u64;
            let mut meta = tx.open_table(META)?;
            let key = (META_EVICTED, stream.id());
            let evicted = meta.get(key)?.map(|v| v.value()).unwrap_or(0);
            meta.insert(key, evicted + removed.records)?;
            Ok(removed)
        })
    }

    fn stats(&self) -> Result<PerStream<StreamStats>, StoreError> {
        let run = || -> Result<PerStream<StreamStats>, redb::Error> {
            let tx = self.db.begin_read()?;
            let mut stats = PerStream::<StreamStats>::default();
            let meta = tx.open_table(META)?;
            for stream in Stream::all() {
                if let Some(next) = meta.get((META_NEXT_SEQ, stream.id()))? {
                    stats[stream].next_seq = next.value().max(1);
                }
                if let Some(evicted) = meta.get((META_EVICTED, stream.id()))? {
                    stats[stream].evicted = evicted.value();
                }
            }
            let table = tx.open_table(RECORDS)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                if let Some(stream) = Stream::from_id(key.value().0) {
                    stats[stream].records += 1;
                    stats[stream].bytes += stored_size(value.value());
                }
            }
            Ok(stats)
        };
        run().map_err(|e| map_err(&self.path, "reading statistics", e))
    }
}

/// Creates an empty store with both tables at `path`: initialized and synced as
/// `<path>.partial`, then renamed, then the directory synced.
fn create_atomically(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, "creating its directory", e))?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(&partial, "removing a creation left by a crash", e)),
    }
    {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&partial)
            .map_err(|e| map_err(&partial, "creating", e))?;
        // Both tables exist from the start, so readers never see them missing.
        let store = RedbStore { db, path: partial.clone() };
        store.write("creating tables", Durability::Immediate, |tx| {
            tx.open_table(RECORDS)?;
            tx.open_table(META)?;
            Ok(())
        })?;
        store.db.close().map_err(|e| map_err(&partial, "closing after creation", e))?;
    }
    let sync = |p: &Path, op| File::open(p).and_then(|f| f.sync_all()).map_err(|e| StoreError::io(p, op, e));
    sync(&partial, "syncing the new file")?;
    std::fs::rename(&partial, path).map_err(|e| StoreError::io(path, "renaming the new file into place", e))?;
    sync(&dir, "syncing its directory")
}

/// [`Record::size`] of a stored value (`created_ms ‖ payload`).
fn stored_size(value: &[u8]) -> u64 {
    (value.len() as u64).saturating_sub(8) + RECORD_OVERHEAD
}

fn map_err(path: &Path, op: &'static str, error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(source) => StoreError::io(path, op, source),
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_path_buf() },
        redb::Error::Corrupted(detail) => StoreError::Corrupt { path: path.to_path_buf(), detail },
        other => StoreError::Engine { path: path.to_path_buf(), engine: "redb", op, detail: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::store::contract::{record, survives_reopen};

    #[test]
    fn records_counters_and_deletions_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(RedbStore::FILE_NAME);
        let store = survives_reopen(|path| RedbStore::open(path).unwrap(), &path);
        assert!(store.range(Stream::Samples, u64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn a_creation_interrupted_by_a_crash_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RedbStore::FILE_NAME);
        // What a kill during creation leaves: a partial file beside, or an empty file at, the path.
        std::fs::write(dir.path().join("outbox.redb.partial"), b"redb\x1a\x0a\xa9").unwrap();
        std::fs::write(&path, b"").unwrap();
        let store = RedbStore::open(&path).unwrap();
        store.append(&[record(Stream::Ack, 1, b"x")]).unwrap();
        assert!(!dir.path().join("outbox.redb.partial").exists());
        drop(store);
        assert_eq!(RedbStore::open(&path).unwrap().stats().unwrap()[Stream::Ack].records, 1);
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RedbStore::FILE_NAME);
        let _first = RedbStore::open(&path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RedbStore::FILE_NAME);
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}
