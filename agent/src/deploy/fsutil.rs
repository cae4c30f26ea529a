//! Crash-safe file primitives: write to a temporary name, fsync, rename, fsync the directory.
//! After a power cut a path holds either its old content or its new content, never a mix.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` atomically with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, so a rename or create in it is durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// How much space is left where the agent writes: checked before every download and reported
/// in each heartbeat. A device asks its file system ([`FileSystem`]); the simulator plugs in a
/// disk it can fill (`daemon::Embedding::disk`).
pub trait DiskSpace: Send + Sync + fmt::Debug {
    /// Free bytes on the file system holding `path`.
    fn available(&self, path: &Path) -> io::Result<u64>;
}

/// The real file system (`statvfs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSystem;

impl DiskSpace for FileSystem {
    fn available(&self, path: &Path) -> io::Result<u64> {
        fs2::available_space(path)
    }
}
