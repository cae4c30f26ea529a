//! A private single-node Ray cluster for the Ray executor's tests and benchmark
//! (`#[path = ".../common/ray_cluster.rs"] mod ray_cluster;`: it is not part of `common`'s
//! `mod.rs`, so tests that do not need Ray do not compile it).
//!
//! `ray start --head --block` runs in the foreground as our child, with every port Ray would
//! otherwise take at a fixed default (6379, 8265, 10001, 52365, 44217, 44227) picked free by
//! binding port 0, its own `--temp-dir`, and everything on 127.0.0.1. Dropping the cluster sends
//! that process SIGTERM, on which it shuts down the processes it started and only those; `ray
//! stop` is never used, since it stops every Ray process on the machine, other clusters too.
//! Ray not installed is a failure that names the pip command, never a skip.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the head may take to answer `GET /api/version` (about 4 s on an idle 2-core box).
const START_WAIT: Duration = Duration::from_secs(90);
/// How long `ray start --block` may take to shut its cluster down after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(40);

/// Set in the head's environment, so in the raylet's and every Ray worker's: a step must not
/// see it.
pub(crate) const RAYLET_ONLY_VAR: &str = "EDGEFLEET_RAYLET_ONLY";

/// A running head; dropping it stops it.
pub(crate) struct RayCluster {
    head: Child,
    address: String,
    temp: tempfile::TempDir,
    /// How long the head took to answer.
    pub(crate) started_in: Duration,
}

fn free_ports<const N: usize>() -> [u16; N] {
    // All bound at once so that they differ, then released for Ray to take.
    let listeners: Vec<std::net::TcpListener> =
        (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

fn version_answers(address: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
    agent.get(format!("{address}/api/version")).call().is_ok_and(|r| r.status().as_u16() == 200)
}

impl RayCluster {
    /// Starts a head and waits for its job server; panics with what to do when Ray is missing.
    pub(crate) fn start() -> RayCluster {
        match Command::new("ray").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            other => panic!(
                "Ray is not installed (`ray --version`: {other:?}); these tests need a real Ray cluster: \
                 python3 -m pip install 'ray[default]'"
            ),
        }
        let temp = tempfile::Builder::new()
            // Ray's unix sockets live under --temp-dir: keep the path short.
            .prefix("efray")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let [
            gcs,
            dashboard,
            client,
            agent_http,
            agent_grpc,
            runtime_env,
            metrics,
            autoscaler_metrics,
            dashboard_metrics,
        ] = free_ports::<9>();
        let log = std::fs::File::create(temp.path().join("head.log")).expect("head log");
        let started = Instant::now();
        let head = Command::new("ray")
            .args(["start", "--head", "--block", "--disable-usage-stats", "--include-dashboard=true"])
            .args(["--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1"])
            .arg(format!("--port={gcs}"))
            .arg(format!("--dashboard-port={dashboard}"))
            .arg(format!("--ray-client-server-port={client}"))
            .arg(format!("--dashboard-agent-listen-port={agent_http}"))
            .arg(format!("--dashboard-agent-grpc-port={agent_grpc}"))
            .arg(format!("--runtime-env-agent-port={runtime_env}"))
            .arg(format!("--metrics-export-port={metrics}"))
            .arg(format!("--temp-dir={}", temp.path().display()))
            // Without this, Ray replaces 127.0.0.1 with the machine's outward address.
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            .env("AUTOSCALER_METRIC_PORT", autoscaler_metrics.to_string())
            .env("DASHBOARD_METRIC_PORT", dashboard_metrics.to_string())
            .env(RAYLET_ONLY_VAR, "leaked")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // Its own group: the fallback kill in `drop` reaches what it started and nothing else.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `ray start`: {e} (python3 -m pip install 'ray[default]')"));
        let mut cluster =
            RayCluster { head, address: format!("http://127.0.0.1:{dashboard}"), temp, started_in: Duration::ZERO };
        while !version_answers(&cluster.address) {
            if let Ok(Some(status)) = cluster.head.try_wait() {
                panic!("`ray start --head` exited with {status}:\n{}", cluster.head_log());
            }
            if started.elapsed() > START_WAIT {
                panic!(
                    "the Ray head did not answer on {} within {START_WAIT:?}:\n{}",
                    cluster.address,
                    cluster.head_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.started_in = started.elapsed();
        cluster
    }

    /// The dashboard's address, `http://127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The end of `ray start`'s output.
    pub(crate) fn head_log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.temp.path().join("head.log")).and_then(|mut f| f.read_to_string(&mut text));
        let skip = text.chars().count().saturating_sub(4000);
        text.chars().skip(skip).collect()
    }
}

impl Drop for RayCluster {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.head.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let asked = Instant::now();
        while asked.elapsed() < STOP_WAIT {
            if let Ok(Some(_)) = self.head.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("the Ray head did not stop within {STOP_WAIT:?} of SIGTERM: killing its process group");
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.head.wait();
    }
}
