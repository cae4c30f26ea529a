//! Per-step overhead of the pipeline executors (`cargo bench -p edgefleet --bench
//! pipeline_overhead -- [--local N] [--ray N]`): the same trivial command (`true`, then
//! `python3 -c pass`) run N times each
//! 1. by hand with `std::process::Command` (the baseline),
//! 2. through `LocalExecutor` (process group, clean environment, log files, 10 ms polling),
//! 3. through `RayExecutor` on a private single-node Ray cluster started here (submission,
//!    supervisor actor, the entrypoint wrapper, 100 ms status polling).
//!
//! Prints the median and the ratio to the baseline, and the overhead per step (median minus the
//! baseline's). Needs `python3 -m pip install 'ray[default]'`. Each executor's first run is a
//! warm-up, not counted.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/common/ray_cluster.rs"]
mod ray_cluster;

use edgefleet::pipeline::{Attempt, Executor, Job, LocalExecutor, RayExecutor};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn job(dir: &Path, argv: &[&str]) -> Job {
    Job {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        cwd: dir.to_path_buf(),
        env: [
            ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".to_string(), dir.display().to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ]
        .into(),
        stdout: dir.join("stdout.log"),
        stderr: dir.join("stderr.log"),
        timeout: None,
        pid_file: None,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn by_hand(dir: &Path, argv: &[&str], runs: usize) -> Duration {
    let once = || {
        let started = Instant::now();
        let status = std::process::Command::new(argv[0]).args(&argv[1..]).current_dir(dir).status().unwrap();
        assert!(status.success());
        started.elapsed()
    };
    once();
    median((0..runs).map(|_| once()).collect())
}

async fn through(executor: &impl Executor, dir: &Path, argv: &[&str], runs: usize) -> Duration {
    let once = || async {
        let started = Instant::now();
        let attempt = executor.run(job(dir, argv), CancellationToken::new()).await;
        assert_eq!(attempt, Attempt::Exited(0), "{argv:?} through {}", executor.kind());
        started.elapsed()
    };
    once().await;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(once().await);
    }
    median(samples)
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (local_runs, ray_runs) = (flag(&args, "--local", 50), flag(&args, "--ray", 10));
    let dir = tempfile::tempdir().unwrap();
    let cluster = tokio::task::spawn_blocking(ray_cluster::RayCluster::start).await.unwrap();
    println!("ray head answered after {:.1} s", cluster.started_in.as_secs_f64());
    let ray = RayExecutor::new(cluster.address());
    println!(
        "ray {}, {local_runs} runs by hand and local, {ray_runs} through ray; medians\n",
        ray.version().await.unwrap().ray_version
    );
    println!("{:<18} {:<8} {:>10} {:>8} {:>13}", "command", "how", "median ms", "ratio", "overhead ms");
    for argv in [&["true"][..], &["python3", "-c", "pass"][..]] {
        let name = argv.join(" ");
        let base = by_hand(dir.path(), argv, local_runs);
        let local = through(&LocalExecutor, dir.path(), argv, local_runs).await;
        let on_ray = through(&ray, dir.path(), argv, ray_runs).await;
        for (how, median) in [("by hand", base), ("local", local), ("ray", on_ray)] {
            println!(
                "{name:<18} {how:<8} {:>10.1} {:>7.1}x {:>13.1}",
                ms(median),
                median.as_secs_f64() / base.as_secs_f64(),
                ms(median) - ms(base)
            );
        }
    }
    drop(cluster);
}
