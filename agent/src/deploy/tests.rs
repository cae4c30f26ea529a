//! Deployer scenarios with a fake runtime and an in-memory chunk source: the real download,
//! verification, generations and persisted steps.

use super::download::Fetcher;
use super::state::{DeployDir, Pending, Step};
use super::*;
use ed25519_dalek::SigningKey;
use edgefleet_protocol::command::{CommandId, DeployCommand, DeploymentId, ProbationBudget};
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::{
    FORMAT_VERSION, Lineage, Manifest, PackageError, TrustStore, Variant, write_package,
};
use edgefleet_protocol::tensor::{Dim, ElemType, TensorSpec, Tolerance};
use edgefleet_protocol::transfer::{ChunkBody, ChunkRequest, ChunkResponse};
use edgefleet_protocol::uplink::{DeploymentState, FailureReason};
use edgefleet_protocol::{Digest, ModelName, PublicKey, SemVer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MODEL: &[u8] = include_bytes!("../../../fixtures/models/vibration_mlp.onnx");

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

/// A signed package (head, blob) for `seq` with `blob` as its only (cpu) variant.
fn package(seq: u64, blob: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let spec = |name: &str| TensorSpec { name: name.into(), elem: ElemType::F32, shape: vec![Dim::Fixed(1)] };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: ModelName::new("vib").unwrap(),
        version_seq: seq,
        label: format!("1.{seq}.0"),
        min_agent_version: SemVer::new(0, 0, 1),
        inputs: vec![spec("features")],
        outputs: vec![spec("scores")],
        variants: vec![Variant {
            hardware: HardwareClass::Cpu,
            precision: Precision::Fp32,
            accelerator_kind: None,
            digest: Digest::sha256(blob),
            size: blob.len() as u64,
            golden_tolerance: Tolerance { abs: 1e-4, rel: 1e-4 },
        }],
        golden: vec![],
        drift_reference: Default::default(),
        lineage: Lineage::default(),
    };
    let mut file = Vec::new();
    write_package(&mut file, &manifest, &key(), &mut [blob]).unwrap();
    let head_len = file.len() - blob.len();
    (file[..head_len].to_vec(), blob.to_vec())
}

/// Objects by digest; `corrupt` flips a byte of served data for that digest.
#[derive(Clone, Default)]
struct Objects {
    by_digest: Arc<Mutex<HashMap<Digest, Vec<u8>>>>,
    corrupt: Arc<Mutex<Option<Digest>>>,
}

impl Objects {
    fn add(&self, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256(bytes);
        self.by_digest.lock().unwrap().insert(digest, bytes.to_vec());
        digest
    }

    fn serve(&self) -> Fetcher {
        let (req_tx, mut req_rx) = mpsc::channel::<ChunkRequest>(4);
        let (resp_tx, resp_rx) = mpsc::channel(4);
        let objects = self.clone();
        tokio::spawn(async move {
            while let Some(r) = req_rx.recv().await {
                let object = objects.by_digest.lock().unwrap().get(&r.digest).cloned();
                let corrupt = *objects.corrupt.lock().unwrap() == Some(r.digest);
                let body = match object {
                    None => ChunkBody::NotFound,
                    Some(o) => {
                        let start = r.offset as usize;
                        let end = (start + r.max_len as usize).min(o.len());
                        let mut data = o[start..end].to_vec();
                        if corrupt {
                            data[0] ^= 1;
                        }
                        ChunkBody::Data(data)
                    }
                };
                let response =
                    ChunkResponse { request_id: r.request_id, digest: r.digest, offset: r.offset, total_size: 0, body };
                if resp_tx.send(response).await.is_err() {
                    break;
                }
            }
        });
        Fetcher::new(req_tx, resp_rx)
    }
}

#[derive(Clone, Default)]
struct FakeRuntime {
    served: Arc<Mutex<Vec<ServedModel>>>,
    golden_fails: Arc<Mutex<bool>>,
    stats: Arc<Mutex<ProbationStats>>,
}

impl Runtime for FakeRuntime {
    async fn validate(&self, model_file: &Path, _: &Manifest, _: &Variant) -> Result<(), FailureReason> {
        assert!(model_file.exists());
        if *self.golden_fails.lock().unwrap() {
            return Err(FailureReason::GoldenMismatch { vector: 0, max_abs_diff: 0.5 });
        }
        Ok(())
    }
    async fn serve(&self, model_file: &Path, info: ServedModel) -> Result<(), FailureReason> {
        assert!(model_file.exists(), "served a missing file");
        self.served.lock().unwrap().push(info);
        Ok(())
    }
    fn probation_stats(&self, _: &ModelName, _: u64) -> ProbationStats {
        *self.stats.lock().unwrap()
    }
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<DeploymentState>>>);

impl StatusSink for Sink {
    fn report(&self, _: DeploymentId, _: &ModelName, _: u64, state: DeploymentState) {
        self.0.lock().unwrap().push(state);
    }
}

struct Harness {
    dir: tempfile::TempDir,
    objects: Objects,
    runtime: FakeRuntime,
    sink: Sink,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let trust = TrustStore::single("test", PublicKey(key().verifying_key().to_bytes()));
        std::fs::write(dir.path().join("trust.toml"), trust.to_toml()).unwrap();
        Self { dir, objects: Objects::default(), runtime: FakeRuntime::default(), sink: Sink::default() }
    }

    fn deployer(&self) -> Deployer<FakeRuntime, Sink> {
        let config = DeployerConfig {
            data_dir: self.dir.path().to_path_buf(),
            trust_store: self.dir.path().join("trust.toml"),
            hardware: HardwareClass::Gpu, // falls back to the cpu variant
            disk: std::sync::Arc::new(crate::deploy::fsutil::FileSystem),
            clock: crate::clock::Clock::SYSTEM,
        };
        Deployer::new(config, self.objects.serve(), self.runtime.clone(), self.sink.clone()).unwrap()
    }

    fn command(&self, seq: u64, blob: &[u8], probation_ms: u64) -> DeployCommand {
        let (head, blob) = package(seq, blob);
        self.objects.add(&blob);
        DeployCommand {
            deployment_id: DeploymentId(seq),
            model: ModelName::new("vib").unwrap(),
            version_seq: seq,
            package_id: self.objects.add(&head),
            head_size: head.len() as u64,
            probation: ProbationBudget {
                duration_ms: probation_ms,
                min_inferences: 10,
                max_error_rate_ppm: 10_000,
                max_p99_latency_us: 0,
            },
            downgrade: None,
        }
    }

    fn active_seq(&self) -> Option<u64> {
        let generations = super::generations::Generations::open(self.dir.path()).unwrap();
        generations.active(&ModelName::new("vib").unwrap()).unwrap().current.map(|g| g.version_seq)
    }

    fn states(&self) -> Vec<String> {
        self.sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| format!("{s:?}").split(['(', ' ', '{']).next().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn installs_validates_activates_and_commits() {
    let h = Harness::new();
    let mut deployer = h.deployer();
    let cmd = h.command(1, MODEL, 0);
    let outcome = deployer.deploy(CommandId(1), cmd, &CancellationToken::new()).await;
    assert_eq!(outcome, Outcome::Committed);
    assert_eq!(
        h.states(),
        ["Accepted", "Downloading", "Downloading", "Verified", "Installed", "Activated", "Committed"]
    );
    assert_eq!(h.active_seq(), Some(1));
    assert_eq!(h.runtime.served.lock().unwrap().last().unwrap().version_seq, 1);
    // A redelivered command for the installed package is a no-op success...
    let again = deployer.deploy(CommandId(2), h.command(1, MODEL, 0), &CancellationToken::new()).await;
    assert_eq!(again, Outcome::Committed);
    // ...while another package with the same version is refused by anti-rollback.
    let other = deployer.deploy(CommandId(3), h.command(1, b"other model", 0), &CancellationToken::new()).await;
    assert!(matches!(
        other,
        Outcome::Failed(FailureReason::Package(PackageError::NotNewer { installed: 1, offered: 1 }))
    ));
}

#[tokio::test]
async fn tampered_blob_and_failed_golden_leave_the_old_version_serving() {
    let h = Harness::new();
    let mut deployer = h.deployer();
    assert_eq!(
        deployer.deploy(CommandId(1), h.command(1, MODEL, 0), &CancellationToken::new()).await,
        Outcome::Committed
    );

    let v2 = h.command(2, b"a different model v2", 0);
    *h.objects.corrupt.lock().unwrap() = Some(Digest::sha256(b"a different model v2"));
    let outcome = deployer.deploy(CommandId(2), v2, &CancellationToken::new()).await;
    assert!(
        matches!(outcome, Outcome::Failed(FailureReason::Package(PackageError::DigestMismatch { .. }))),
        "{outcome:?}"
    );
    assert_eq!(h.active_seq(), Some(1));

    *h.objects.corrupt.lock().unwrap() = None;
    *h.runtime.golden_fails.lock().unwrap() = true;
    let outcome = deployer.deploy(CommandId(3), h.command(3, b"model v3", 0), &CancellationToken::new()).await;
    assert!(matches!(outcome, Outcome::Failed(FailureReason::GoldenMismatch { .. })), "{outcome:?}");
    assert_eq!(h.active_seq(), Some(1));
}

#[tokio::test]
async fn probation_errors_roll_back_to_last_known_good() {
    let h = Harness::new();
    let mut deployer = h.deployer();
    assert_eq!(
        deployer.deploy(CommandId(1), h.command(1, MODEL, 0), &CancellationToken::new()).await,
        Outcome::Committed
    );
    *h.runtime.stats.lock().unwrap() = ProbationStats { inferences: 100, errors: 30, p99_us: 10 };
    let outcome = deployer.deploy(CommandId(2), h.command(2, b"bad model", 5_000), &CancellationToken::new()).await;
    assert!(
        matches!(outcome, Outcome::RolledBack(FailureReason::ProbationErrors { errors: 30, total: 100 })),
        "{outcome:?}"
    );
    assert_eq!(h.active_seq(), Some(1));
    assert_eq!(h.runtime.served.lock().unwrap().last().unwrap().version_seq, 1);
    assert_eq!(h.states().last().unwrap(), "RolledBack");
}

#[tokio::test]
async fn resumes_an_interrupted_download_and_rolls_back_a_crash_on_probation() {
    let h = Harness::new();
    let cmd = h.command(1, MODEL, 0);
    {
        // A previous run fetched the head and half the blob, then died.
        let dir = DeployDir::open(h.dir.path()).unwrap();
        let (head, blob) = package(1, MODEL);
        std::fs::write(dir.partial("head"), &head).unwrap();
        std::fs::write(dir.partial("blob"), &blob[..blob.len() / 2]).unwrap();
        dir.save(&Pending { command_id: CommandId(1), deploy: cmd.clone(), step: Step::FetchBlob { index: 0 } })
            .unwrap();
    }
    let mut deployer = h.deployer();
    assert_eq!(deployer.resume(&CancellationToken::new()).await, Some(Outcome::Committed));
    assert_eq!(h.active_seq(), Some(1));

    // v2 activated, then the agent "crashed" on probation: the restart rolls back to v1.
    let cmd2 = h.command(2, b"model two", 60_000);
    {
        let cancel = CancellationToken::new();
        let mut deployer = h.deployer();
        let run = deployer.deploy(CommandId(2), cmd2, &cancel);
        tokio::pin!(run);
        // Let it reach probation, then drop it mid-probation (as a SIGKILL would).
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), &mut run).await;
    }
    assert_eq!(h.active_seq(), Some(2), "the pointer had switched");
    let mut restarted = h.deployer();
    let outcome = restarted.resume(&CancellationToken::new()).await;
    assert!(matches!(outcome, Some(Outcome::RolledBack(FailureReason::Crashed(_)))), "{outcome:?}");
    assert_eq!(h.active_seq(), Some(1));
    assert!(restarted.serve_active().await.iter().any(|m| m.version_seq == 1));
}

#[tokio::test]
async fn a_signed_downgrade_passes_anti_rollback_and_a_forged_one_does_not() {
    use edgefleet_protocol::package::{Downgrade, SignedDowngrade};
    let h = Harness::new();
    let mut deployer = h.deployer();
    assert_eq!(
        deployer.deploy(CommandId(1), h.command(5, MODEL, 0), &CancellationToken::new()).await,
        Outcome::Committed
    );

    let mut older = h.command(2, b"the old model", 0);
    let body = |cmd: &DeployCommand, expires_at_ms| Downgrade {
        model: cmd.model.clone(),
        version_seq: cmd.version_seq,
        package_id: cmd.package_id,
        expires_at_ms,
    };
    // Signed by an untrusted key: refused with that reason.
    older.downgrade = Some(SignedDowngrade::sign(body(&older, u64::MAX), &SigningKey::from_bytes(&[9; 32])).unwrap());
    let outcome = deployer.deploy(CommandId(2), older.clone(), &CancellationToken::new()).await;
    assert!(matches!(outcome, Outcome::Failed(FailureReason::Package(PackageError::UnknownKey(_)))), "{outcome:?}");
    // Expired: refused.
    older.downgrade = Some(SignedDowngrade::sign(body(&older, 1), &key()).unwrap());
    let outcome = deployer.deploy(CommandId(3), older.clone(), &CancellationToken::new()).await;
    assert!(
        matches!(outcome, Outcome::Failed(FailureReason::Package(PackageError::InvalidManifest(_)))),
        "{outcome:?}"
    );
    assert_eq!(h.active_seq(), Some(5));
    // Valid: installs the older version.
    older.downgrade = Some(SignedDowngrade::sign(body(&older, u64::MAX), &key()).unwrap());
    assert_eq!(deployer.deploy(CommandId(4), older, &CancellationToken::new()).await, Outcome::Committed);
    assert_eq!(h.active_seq(), Some(2));
}
