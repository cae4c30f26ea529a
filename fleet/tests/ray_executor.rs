//! The Ray executor against a real single-node Ray cluster of its own (`ray start --head` on
//! free ports, see `common/ray_cluster.rs`): exit codes, the step's two logs, a clean
//! environment, `ray.init()` from a step, a timeout that kills the command's children,
//! cancellation, and clusters that cannot be reached or refuse. One test function, so that the
//! head (the slow part, 5-20 s) starts once. Needs `python3 -m pip install 'ray[default]'`.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "common/ray_cluster.rs"]
mod ray_cluster;

use edgefleet::pipeline::{Attempt, Executor, Job, RayExecutor};
use ray_cluster::{RAYLET_ONLY_VAR, RayCluster};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn step_env(dir: &Path) -> BTreeMap<String, String> {
    [
        ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_string(), dir.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ]
    .into()
}

fn job(dir: &Path, argv: &[&str], timeout: Option<Duration>) -> Job {
    Job {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        cwd: dir.to_path_buf(),
        env: step_env(dir),
        stdout: dir.join("stdout.log"),
        stderr: dir.join("stderr.log"),
        timeout,
        pid_file: None,
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn wait_for_file(path: &Path, within: Duration) {
    let asked = Instant::now();
    while !path.exists() {
        assert!(asked.elapsed() < within, "{} did not appear within {within:?}", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ray_executor_against_a_real_cluster() {
    let total = Instant::now();
    let cluster = tokio::task::spawn_blocking(RayCluster::start).await.unwrap();
    eprintln!("ray head answered after {:?}", cluster.started_in);
    let ray = RayExecutor::new(cluster.address());
    assert_eq!(ray.kind(), "ray");
    let version = ray.version().await.unwrap();
    eprintln!("ray {} (jobs API {})", version.ray_version, version.version);

    let timed = Instant::now();
    exit_codes_and_logs(&ray).await;
    eprintln!("exit codes and logs: {:?}", timed.elapsed());
    let timed = Instant::now();
    only_the_steps_environment(&ray).await;
    eprintln!("environment: {:?}", timed.elapsed());
    let timed = Instant::now();
    a_step_can_use_the_cluster(&ray).await;
    eprintln!("ray.init() from a step: {:?}", timed.elapsed());
    let timed = Instant::now();
    a_timeout_kills_the_command_and_its_children(&ray).await;
    eprintln!("timeout: {:?}", timed.elapsed());
    let timed = Instant::now();
    cancel_stops_a_running_job(&ray).await;
    eprintln!("cancel: {:?}", timed.elapsed());
    let timed = Instant::now();
    a_pipeline_runs_on_the_cluster_through_serve(cluster.address()).await;
    eprintln!("a pipeline through serve: {:?}", timed.elapsed());
    let timed = Instant::now();
    clusters_that_cannot_take_the_job().await;
    eprintln!("unreachable and refusing clusters: {:?}", timed.elapsed());

    let stopping = Instant::now();
    drop(cluster);
    eprintln!("ray head stopped in {:?}; whole test {:?}", stopping.elapsed(), total.elapsed());
}

async fn exit_codes_and_logs(ray: &RayExecutor) {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo out; echo err >&2; printf '[%s]' "$@"; echo; exit 3"#;
    let attempt = ray
        .run(
            job(dir.path(), &["sh", "-c", script, "-", "two words", "it's", "$HOME", ""], None),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(attempt, Attempt::Exited(3));
    assert_eq!(read(dir.path().join("stdout.log")), "out\n[two words][it's][$HOME][]\n", "stdout, arguments verbatim");
    assert_eq!(read(dir.path().join("stderr.log")), "err\n", "stderr stays apart");

    let ok = tempfile::tempdir().unwrap();
    assert_eq!(ray.run(job(ok.path(), &["true"], None), CancellationToken::new()).await, Attempt::Exited(0));
    // Relative paths resolve in the step's working directory, on the node.
    std::fs::write(ok.path().join("step.sh"), "echo from script; exit 42\n").unwrap();
    let attempt = ray.run(job(ok.path(), &["sh", "step.sh"], None), CancellationToken::new()).await;
    assert_eq!(attempt, Attempt::Exited(42));
    assert_eq!(read(ok.path().join("stdout.log")), "from script\n");

    let missing = ray.run(job(ok.path(), &["/nonexistent/prog"], None), CancellationToken::new()).await;
    assert!(matches!(missing, Attempt::CannotStart(ref m) if m.contains("/nonexistent/prog")), "{missing:?}");
    let no_dir = Job { cwd: ok.path().join("gone"), ..job(ok.path(), &["true"], None) };
    let no_dir = ray.run(no_dir, CancellationToken::new()).await;
    assert!(
        matches!(no_dir, Attempt::CannotStart(ref m) if m.contains("gone") && m.contains("share a filesystem")),
        "{no_dir:?}"
    );
}

async fn only_the_steps_environment(ray: &RayExecutor) {
    let dir = tempfile::tempdir().unwrap();
    let mut step = job(dir.path(), &["env", "-0"], None);
    // Literal: Ray would expand `$...` in runtime_env values, the step gets them as written.
    step.env.insert("EDGEFLEET_STEP".into(), "train".into());
    step.env.insert("QUOTED".into(), "it's ${HOME} $PATH `x` \"y\"".into());
    let expected = step.env.clone();
    assert_eq!(ray.run(step, CancellationToken::new()).await, Attempt::Exited(0));
    let out = read(dir.path().join("stdout.log"));
    let seen: BTreeMap<&str, &str> =
        out.split('\0').filter(|l| !l.is_empty()).map(|l| l.split_once('=').unwrap()).collect();
    for (key, value) in &expected {
        assert_eq!(seen.get(key.as_str()), Some(&value.as_str()), "{key}");
    }
    let extra: Vec<&&str> = seen.keys().filter(|k| !expected.contains_key(**k)).collect();
    assert_eq!(
        extra,
        [&"RAY_ADDRESS", &"RAY_JOB_CONFIG_JSON_ENV_VAR"],
        "only the job's variables and Ray's two driver variables: nothing of the raylet's ({RAYLET_ONLY_VAR}) or \
         the fleet manager's environment"
    );
    assert!(!out.contains(RAYLET_ONLY_VAR));
    if let Ok(own) = std::env::var("CARGO_MANIFEST_DIR") {
        assert!(!out.contains(&own), "the fleet manager's environment leaked");
    }
}

async fn a_step_can_use_the_cluster(ray: &RayExecutor) {
    let dir = tempfile::tempdir().unwrap();
    // A Ray task from the step runs on this cluster, as part of this job.
    let code = "import ray; ray.init(); print(ray.get(ray.remote(lambda: 40 + 2).remote()))";
    let mut step = job(dir.path(), &["python3", "-c", code], Some(Duration::from_secs(120)));
    // This test cluster listens on 127.0.0.1 only (see common/ray_cluster.rs); without this, the
    // step's Ray client replaces 127.0.0.1 in RAY_ADDRESS with the machine's outward address.
    step.env.insert("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER".into(), "0".into());
    let attempt = ray.run(step, CancellationToken::new()).await;
    assert_eq!(attempt, Attempt::Exited(0), "stderr: {}", read(dir.path().join("stderr.log")));
    assert_eq!(read(dir.path().join("stdout.log")).lines().last(), Some("42"));
}

async fn a_timeout_kills_the_command_and_its_children(ray: &RayExecutor) {
    let dir = tempfile::tempdir().unwrap();
    // A background child and an orphan (its parent exits at once: Ray's own stop misses it),
    // each touching a file 3 s after it starts; the command ignores SIGTERM.
    let script = "(sleep 3; touch survived) & echo $! > child.pid; \
                  sh -c '(sleep 3; touch orphan_survived) &'; trap '' TERM; sleep 30";
    let started = Instant::now();
    let attempt =
        ray.run(job(dir.path(), &["sh", "-c", script], Some(Duration::from_secs(2))), CancellationToken::new()).await;
    assert_eq!(attempt, Attempt::TimedOut);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(12), "{took:?}");
    assert!(dir.path().join("child.pid").exists(), "the command had started");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!dir.path().join("survived").exists(), "the background child was killed");
    assert!(!dir.path().join("orphan_survived").exists(), "the orphan in the command's group was killed");
}

async fn cancel_stops_a_running_job(ray: &RayExecutor) {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let later = cancel.clone();
    let started = dir.path().join("started");
    let watched = started.clone();
    tokio::spawn(async move {
        wait_for_file(&watched, Duration::from_secs(30)).await;
        later.cancel();
    });
    let script = "touch started; sleep 3; touch survived; sleep 30";
    let cancelled = Instant::now();
    assert_eq!(ray.run(job(dir.path(), &["sh", "-c", script], None), cancel).await, Attempt::Cancelled);
    assert!(started.exists());
    eprintln!("  cancel returned {:?} after submission", cancelled.elapsed());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!dir.path().join("survived").exists(), "the cancelled command was killed");
}

async fn clusters_that_cannot_take_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let address = format!("http://127.0.0.1:{closed}");
    let attempt = RayExecutor::new(&address).run(job(dir.path(), &["true"], None), CancellationToken::new()).await;
    assert!(
        matches!(attempt, Attempt::CannotStart(ref m) if m.contains(&address) && m.contains("cannot reach")),
        "{attempt:?}"
    );

    // A server that answers every request with HTTP 500, as a job server without agents does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = "No available agent to submit job, please try again later.";
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let attempt = RayExecutor::new(&address).run(job(dir.path(), &["true"], None), CancellationToken::new()).await;
    assert!(
        matches!(attempt, Attempt::CannotStart(ref m) if m.contains(&address) && m.contains("HTTP 500") && m.contains("No available agent")),
        "{attempt:?}"
    );
}

/// `edgefleet serve` with `[pipelines] executor = "ray"`: a two-step pipeline runs its steps
/// as Ray jobs, records `executor: ray`, and a second run is served from the cache.
async fn a_pipeline_runs_on_the_cluster_through_serve(address: &str) {
    use edgefleet::client::Client;
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let (server, shutdown) = common::start_server_with(
        dir.path(),
        &common::unique_namespace(),
        None,
        &[("EDGEFLEET_SERVE__PIPELINES__EXECUTOR", "ray"), ("EDGEFLEET_SERVE__PIPELINES__RAY_ADDRESS", address)],
    )
    .await;
    let client = Client::new(&format!("http://{}", server.http_addr), "ray-test");
    let spec = r#"name: on-ray
inputs: {data: "file:words.txt"}
steps:
  sort:
    run: [sh, -c, 'sort "$1" > "$2"', sort, "${inputs.data}", "${outputs.sorted}"]
    outputs: [sorted]
  count:
    run: [sh, -c, 'n=$(wc -l < "$1"); echo $n > "$2"; echo "{\"lines\": $n}" > metrics.json', count, "${steps.sort.outputs.sorted}", "${outputs.n}"]
    outputs: [n]
"#;
    let files = json!([
        {"path": "pipeline.yaml", "hex": hex::encode(spec)},
        {"path": "words.txt", "hex": hex::encode("pear\napple\nfig\n")},
    ]);
    let c = client.clone();
    let registered: Value = tokio::task::spawn_blocking(move || {
        c.post_json("/v1/pipelines", &json!({"spec_file": "pipeline.yaml", "spec": spec, "files": files}))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(registered["new"], true);
    for (n, cached) in [(1, false), (2, true)] {
        let c = client.clone();
        let started: Value = tokio::task::spawn_blocking(move || c.post_json("/v1/pipelines/on-ray/runs", &json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(started["id"], format!("on-ray-{n}"));
        let run = common::wait_for(&client, &format!("/v1/runs/on-ray-{n}"), 120, |r| {
            matches!(r["status"].as_str(), Some("succeeded" | "failed" | "cancelled"))
        })
        .await;
        assert_eq!(run["status"], "succeeded", "{run:#}");
        assert_eq!(run["executor"], "ray");
        assert_eq!(run["steps"]["count"]["metrics"]["lines"], 3.0, "{run:#}");
        for step in ["sort", "count"] {
            assert_eq!(run["steps"][step]["cached"], cached, "{run:#}");
        }
    }
    let sorted =
        std::fs::read_to_string(dir.path().join("fleet/pipelines/work/on-ray-1/steps/sort/outputs/sorted")).unwrap();
    assert_eq!(sorted, "apple\nfig\npear\n");
    shutdown.cancel();
    let _ = server.task.await;
}
