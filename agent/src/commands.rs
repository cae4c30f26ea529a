//! Remembers which commands were executed, across restarts, so a redelivered command is
//! acknowledged as `Duplicate` and not run twice.

use crate::deploy::fsutil::write_atomic;
use edgefleet_protocol::command::CommandId;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Command ids remembered.
const REMEMBERED: usize = 256;

/// The most recent executed command ids, persisted in `data_dir/commands.json`.
#[derive(Debug)]
pub struct CommandLog {
    path: PathBuf,
    seen: VecDeque<u64>,
}

impl CommandLog {
    /// Loads the log (empty when absent or unreadable: a duplicate then runs again, which
    /// every command tolerates — deploys are refused as not newer).
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join("commands.json");
        let seen = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self { path, seen }
    }

    /// True when `id` was executed before.
    pub fn seen(&self, id: CommandId) -> bool {
        self.seen.contains(&id.0)
    }

    /// Records `id` as executed (durably).
    pub fn record(&mut self, id: CommandId) -> std::io::Result<()> {
        if self.seen(id) {
            return Ok(());
        }
        self.seen.push_back(id.0);
        while self.seen.len() > REMEMBERED {
            self.seen.pop_front();
        }
        let bytes =
            serde_json::to_vec(&self.seen).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CommandLog::open(dir.path());
        for id in 0..300 {
            log.record(CommandId(id)).unwrap();
        }
        let log = CommandLog::open(dir.path());
        assert!(log.seen(CommandId(299)));
        assert!(!log.seen(CommandId(0)), "oldest forgotten");
    }
}
