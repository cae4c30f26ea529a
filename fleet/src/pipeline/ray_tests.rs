//! The Ray executor's pure parts: quoting, the entrypoint script (run here by `/bin/sh` as a
//! Ray node runs it), and how Ray's answers read. `fleet/tests/ray_executor.rs` runs it all
//! against a real cluster.

use super::*;
use std::process::{Command, Stdio};

fn job(dir: &Path, argv: &[&str]) -> Job {
    Job {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        cwd: dir.to_path_buf(),
        env: [("PATH".to_string(), std::env::var("PATH").unwrap_or_default())].into(),
        stdout: dir.join("stdout.log"),
        stderr: dir.join("stderr.log"),
        timeout: None,
        pid_file: None,
    }
}

/// Runs an entrypoint the way Ray does: `/bin/sh -c`, in a session of its own, in an
/// environment with a variable the step must not see and Ray's driver address.
fn spawn_like_ray(script: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .env("RAYLET_ONLY", "leaked")
        .env("RAY_ADDRESS", "127.0.0.1:6379")
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("sh")
}

#[test]
fn shell_quote_keeps_every_character_through_sh() {
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
    let words = [
        "plain",
        "two words",
        "it's",
        "'",
        "''",
        "\"double\"",
        "$HOME",
        "${PATH}",
        "$(echo no)",
        "`echo no`",
        "back\\slash",
        "new\nline",
        "tab\there",
        "*",
        "-n",
        "",
        "ünïcödé",
    ];
    let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    let out =
        Command::new("/bin/sh").arg("-c").arg(format!("printf '%s\\0' {}", quoted.join(" "))).output().expect("sh");
    assert!(out.status.success());
    let back: Vec<&str> =
        std::str::from_utf8(&out.stdout).expect("utf-8").strip_suffix('\0').expect("NUL").split('\0').collect();
    assert_eq!(back, words);
}

#[test]
fn jobs_that_cannot_be_written_as_an_entrypoint_are_refused() {
    let dir = Path::new("/tmp");
    assert_eq!(entrypoint(&job(dir, &[])), Err("empty command".into()));
    assert!(entrypoint(&job(dir, &["a=b"])).is_err_and(|e| e.contains("'='")));
    assert!(entrypoint(&job(dir, &["echo", "a\0b"])).is_err_and(|e| e.contains("NUL")));
    let mut bad_env = job(dir, &["true"]);
    bad_env.env.insert("A=B".into(), "x".into());
    assert!(entrypoint(&bad_env).is_err());
}

#[test]
fn the_entrypoint_runs_the_command_with_its_logs_exit_code_and_only_its_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut step = job(
        dir.path(),
        &[
            "sh",
            "-c",
            "echo \"out $1\"; echo err >&2; echo \"leak=$RAYLET_ONLY ray=$RAY_ADDRESS v=$V\"; pwd; exit 3",
            "-",
            "a'b $x",
        ],
    );
    step.env.insert("V".into(), "${HOME} $PATH".into());
    let script = entrypoint(&step).expect("entrypoint");
    let child = spawn_like_ray(&script);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "nothing reaches Ray's log: {:?}", String::from_utf8_lossy(&out.stdout));
    let stdout = std::fs::read_to_string(dir.path().join("stdout.log")).expect("stdout");
    let cwd = dir.path().display();
    assert_eq!(stdout, format!("out a'b $x\nleak= ray=127.0.0.1:6379 v=${{HOME}} $PATH\n{cwd}\n"));
    assert_eq!(std::fs::read_to_string(dir.path().join("stderr.log")).expect("stderr"), "err\n");
}

#[test]
fn the_entrypoint_refuses_what_the_node_lacks_in_ray_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        Job { cwd: dir.path().join("missing"), ..job(dir.path(), &["true"]) },
        job(dir.path(), &["no-such-program-here"]),
        job(dir.path(), &["./not-here.sh"]),
        Job { stdout: dir.path().join("no/such/dir/stdout.log"), ..job(dir.path(), &["true"]) },
    ];
    for (case, expected) in cases.iter().zip(["no working directory", "no program", "no program", "cannot append"]) {
        let out = spawn_like_ray(&entrypoint(case).expect("entrypoint")).wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(REFUSED));
        let log = String::from_utf8_lossy(&out.stdout);
        let reason = refusal(&log).unwrap_or_else(|| panic!("no refusal line in {log:?}"));
        assert!(reason.contains(expected), "{reason}");
    }
}

#[test]
fn a_stop_signal_kills_the_commands_whole_group_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A child of the command, and an orphan whose parent exited (Ray's stop misses the orphan),
    // each writing a file after 1 s; the command ignores SIGTERM (Ray would wait 3 s).
    let script = "(sleep 1; touch child) & sh -c '(sleep 1; touch orphan) &'; trap '' TERM; echo started; sleep 30";
    let step = job(dir.path(), &["sh", "-c", script]);
    let mut child = spawn_like_ray(&entrypoint(&step).expect("entrypoint"));
    let log = dir.path().join("stdout.log");
    let started = Instant::now();
    while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let stopped = Instant::now();
    child.wait().expect("wait");
    assert!(stopped.elapsed() < Duration::from_millis(900), "the wrapper did not wait for a grace period");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!dir.path().join("child").exists(), "the command's child was killed");
    assert!(!dir.path().join("orphan").exists(), "the orphan in the command's group was killed");
}

/// `GET /api/jobs/{id}` as Ray 2.60 answered it (trimmed of fields the executor ignores).
const FAILED: &str = r#"{"type": "SUBMISSION", "job_id": null, "submission_id": "ef-test-1",
    "driver_info": null, "status": "FAILED", "entrypoint": "exit 3",
    "message": "Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\nout\n",
    "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "start_time": 1796632255324, "end_time": 1796632256239,
    "metadata": null, "runtime_env": {"env_vars": {"FOO": "bar"}},
    "driver_agent_http_address": "http://127.0.0.1:47059", "driver_node_id": "1036c70c", "driver_exit_code": 3}"#;

fn details(json: &str) -> JobDetails {
    serde_json::from_str(json).expect("JobDetails")
}

#[test]
fn rays_answers_read_as_attempts() {
    assert_eq!(ended(&details(FAILED)), Some(Ended::Attempt(Attempt::Exited(3))));
    let with = |status: &str, code: &str| details(&format!(r#"{{"status": "{status}", "driver_exit_code": {code}}}"#));
    assert_eq!(ended(&with("PENDING", "null")), None);
    assert_eq!(ended(&with("RUNNING", "null")), None);
    assert_eq!(ended(&with("SOMETHING_NEW", "null")), None, "a status a later Ray adds is waited out");
    assert_eq!(ended(&with("SUCCEEDED", "0")), Some(Ended::Attempt(Attempt::Exited(0))));
    assert_eq!(ended(&with("FAILED", "-9")), Some(Ended::Attempt(Attempt::Signalled(9))));
    assert_eq!(ended(&with("FAILED", "125")), Some(Ended::MaybeRefused));
    assert_eq!(ended(&with("STOPPED", "null")), Some(Ended::Attempt(Attempt::Signalled(15))));
    let setup = details(
        r#"{"status": "FAILED", "message": "Failed to set up runtime environment.", "error_type": "RUNTIME_ENV_SETUP_FAILURE"}"#,
    );
    assert!(
        matches!(ended(&setup), Some(Ended::Attempt(Attempt::CannotStart(m))) if m.contains("RUNTIME_ENV_SETUP_FAILURE") && m.contains("set up runtime"))
    );
    let logs = "2026-12-07 INFO job_manager.py:581 -- Runtime env is setting up.\nedgefleet: cannot start: no program \"x\"\nRunning entrypoint for job j: ...\n";
    assert_eq!(refusal(logs), Some("no program \"x\""));
    assert_eq!(refusal("Running entrypoint for job j: echo edgefleet: cannot start: no\n"), None);
}

#[test]
fn submission_ids_are_unique_and_plain() {
    let (a, b) = (submission_id().expect("id"), submission_id().expect("id"));
    assert_ne!(a, b);
    assert!(a.starts_with("edgefleet-") && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{a}");
}
