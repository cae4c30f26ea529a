//! SIGKILL the agent while it pushes to its outbox, on redb and on sled, and restart it on the
//! same data dir: nothing acknowledged to the producer may be lost, seqs stay contiguous and
//! are never reused, and the store opens after every kill.
//!
//! The child is `edgefleet-agent outbox-stress`, which prints each seq once `push` returned
//! `Ok`. `Child::kill` sends SIGKILL on Unix. This tests process crashes (the page cache
//! survives); power cuts depend on the engines' fsync, which this cannot simulate.
//!
//! `EDGEFLEET_AGENT_BIN` overrides the binary (default: this build's `edgefleet-agent`), e.g. to
//! soak a private copy while other checkouts share the target dir and rebuild it.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_agent::outbox::{RedbStore, SledStore, Store, StoreError, Stream};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;
/// Fresh data dirs killed within the first milliseconds, while the store file is being created.
const CREATION_ROUNDS: usize = 20;

type Open = dyn Fn(&Path) -> Result<Box<dyn Store>, StoreError>;

fn agent() -> Command {
    Command::new(
        std::env::var_os("EDGEFLEET_AGENT_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgefleet-agent").into()),
    )
}

/// One run of the stress child on `dir`, SIGKILLed after `delay_ms`; then the store is opened
/// and checked against what the child printed. Returns (records stored, seqs printed), or the
/// error the store gave when it would not open.
fn kill_round(
    engine: &str,
    round: usize,
    dir: &Path,
    delay_ms: u64,
    stored_before: u64,
    open: &Open,
) -> Result<(u64, usize), StoreError> {
    let mut child = agent()
        .args(["outbox-stress", "--engine", engine, "--count", "100000000", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.code().is_none(), "{engine} round {round}: the child exited by itself ({status}): {stderr}");

    // Only complete lines were acknowledged; a kill can cut the last one.
    let text = String::from_utf8(out).unwrap();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let printed: Vec<u64> = complete.lines().map(|l| l.parse().unwrap()).collect();

    let store = open(dir)?;
    let records = store.range(Stream::Health, 0, usize::MAX).unwrap();
    let stored = records.len() as u64;
    let present: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(present, (1..=stored).collect::<Vec<_>>(), "{engine} round {round}: seqs not contiguous from 1");
    for r in &records {
        let text = String::from_utf8_lossy(&r.payload);
        assert!(
            text.starts_with(&format!("health seq={} ", r.seq)),
            "{engine} round {round}: seq {} holds {text}",
            r.seq
        );
    }
    // Everything printed is stored, and this run continued after what the last run stored.
    if let (Some(&first), Some(&last)) = (printed.first(), printed.last()) {
        assert_eq!(first, stored_before + 1, "{engine} round {round}: seq reused or skipped after restart");
        assert!(printed.windows(2).all(|w| w[1] == w[0] + 1), "{engine} round {round}: printed seqs not contiguous");
        assert!(
            last <= stored,
            "{engine} round {round}: printed {last} but only {stored} stored: acknowledged push lost"
        );
    }
    assert!(stored >= stored_before, "{engine} round {round}: store shrank from {stored_before} to {stored}");
    let stats = store.stats().unwrap();
    assert_eq!(stats[Stream::Health].records, stored);
    assert_eq!(stats[Stream::Health].next_seq, stored + 1, "{engine} round {round}: next seq");
    Ok((stored, printed.len()))
}

/// Kills the stress child `ROUNDS` times at seeded random points on one data dir, checking the
/// store each time; then `CREATION_ROUNDS` times on fresh dirs within its first milliseconds.
/// A store that will not open after a kill fails the test unless `unopenable_allowed` (the
/// comparison engine): then it is counted and the rounds go on in a fresh dir, which is what
/// an operator does with a corrupt outbox (`StoreError::Corrupt` says to move it aside).
fn kill_and_restart(engine: &str, seed: u64, open: &Open, unopenable_allowed: bool) {
    let mut unopenable = Vec::new();
    let mut outcome = |round: usize, result: Result<(u64, usize), StoreError>| match result {
        Ok(counts) => Some(counts),
        Err(e) if unopenable_allowed => {
            unopenable.push(format!("round {round}: {e}"));
            None
        }
        Err(e) => panic!("{engine} round {round}: the store does not open after the kill: {e}"),
    };
    let mut dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut stored = 0u64;
    let mut printed_total = 0usize;
    let mut early_kills = 0;
    for round in 0..ROUNDS {
        // One kill in five lands in the first few ms: during process start and store open.
        let delay_ms = if rng.random_ratio(1, 5) { rng.random_range(0..5) } else { rng.random_range(5..250) };
        let Some((now_stored, printed)) = outcome(round, kill_round(engine, round, dir.path(), delay_ms, stored, open))
        else {
            dir = tempfile::tempdir().unwrap();
            stored = 0;
            continue;
        };
        early_kills += usize::from(printed == 0);
        printed_total += printed;
        stored = now_stored;
    }

    // A final run to completion continues the sequence and exits cleanly.
    let output = agent()
        .args(["outbox-stress", "--engine", engine, "--count", "3", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected: String = (1..=3).map(|i| format!("{}\n", stored + i)).collect();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);

    let mut created = 0;
    for round in 0..CREATION_ROUNDS {
        let fresh = tempfile::tempdir().unwrap();
        let delay_ms = rng.random_range(0..8);
        if let Some((stored_fresh, _)) =
            outcome(ROUNDS + round, kill_round(engine, ROUNDS + round, fresh.path(), delay_ms, 0, open))
        {
            created += usize::from(stored_fresh > 0);
        }
    }

    eprintln!(
        "{engine}: {ROUNDS} SIGKILLs on one data dir ({early_kills} before the first ack), {printed_total} acknowledged \
         pushes, {stored} stored, none lost; {CREATION_ROUNDS} SIGKILLs in the first 8 ms of a fresh dir ({created} \
         after the first commit); stores that did not reopen: {} {unopenable:?}; {:.1} s",
        unopenable.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn redb_outbox_survives_sigkill() {
    kill_and_restart(
        "redb",
        0x5eed_0001,
        &|dir| {
            let mut store = RedbStore::open(dir.join(RedbStore::FILE_NAME))?;
            assert!(store.check_integrity()?, "redb integrity check failed after repair");
            Ok(Box::new(store))
        },
        false,
    );
}

/// sled, the engine the design named, for comparison (ARCHITECTURE.md, "Durable outbox"): when
/// its store opens after a kill, nothing acknowledged is lost; but now and then (seen: in 1 of 9
/// runs of this test, 50 kills each) sled 0.34.7 reports its store corrupt after a SIGKILL, so
/// a corrupt store is counted here rather than failed.
#[test]
fn sled_outbox_loses_nothing_when_it_reopens_after_sigkill() {
    kill_and_restart("sled", 0x5eed_0002, &|dir| Ok(Box::new(SledStore::open(dir.join(SledStore::DIR_NAME))?)), true);
}
