//! Where a step's command runs: the [`Executor`] seam, and the local executor (a subprocess per
//! attempt in its own process group, output captured to files, a clean environment).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One attempt of one step, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Command and arguments, references substituted.
    pub argv: Vec<String>,
    /// Working directory (the step's copy of the spec's directory).
    pub cwd: PathBuf,
    /// The whole environment of the command.
    pub env: BTreeMap<String, String>,
    /// Appended with the command's standard output.
    pub stdout: PathBuf,
    /// Appended with the command's standard error.
    pub stderr: PathBuf,
    /// Longest the attempt may run.
    pub timeout: Option<Duration>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The command exited with this code.
    Exited(i32),
    /// A signal ended it (not one the executor sent).
    Signalled(i32),
    /// It ran past its timeout; its process group was killed.
    TimedOut,
    /// The run was cancelled; its process group was killed.
    Cancelled,
    /// It could not be started (no such program, bad working directory, ...).
    CannotStart(String),
}

/// Runs step attempts (the local executor here; a Ray cluster is the next one).
pub trait Executor: Send + Sync + 'static {
    /// A name for the executor, part of every step's cache key.
    fn kind(&self) -> &'static str;
    /// Runs one attempt to its end.
    fn run(&self, job: Job, cancel: CancellationToken) -> impl Future<Output = Attempt> + Send;
}

/// The embedded default: each attempt a subprocess of the fleet manager.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor;

/// How often a running attempt is checked for its end, its timeout and cancellation.
const POLL: Duration = Duration::from_millis(10);

impl Executor for LocalExecutor {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn run(&self, job: Job, cancel: CancellationToken) -> Attempt {
        tokio::task::spawn_blocking(move || run_blocking(&job, &cancel))
            .await
            .unwrap_or_else(|e| Attempt::CannotStart(format!("the attempt's thread failed: {e}")))
    }
}

fn append(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

fn run_blocking(job: &Job, cancel: &CancellationToken) -> Attempt {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let Some((program, args)) = job.argv.split_first() else {
        return Attempt::CannotStart("empty command".into());
    };
    let (stdout, stderr) = match (append(&job.stdout), append(&job.stderr)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return Attempt::CannotStart(format!("cannot open the step's log files: {e}")),
    };
    let mut child = match std::process::Command::new(program)
        .args(args)
        .current_dir(&job.cwd)
        .env_clear()
        .envs(&job.env)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group, so a timeout or cancel ends the children it started too.
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Attempt::CannotStart(format!("cannot start {program:?}: {e}")),
    };
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let kill_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // Whatever it left running in its group goes with it.
                kill_group();
                return match (status.code(), status.signal()) {
                    (Some(code), _) => Attempt::Exited(code),
                    (None, Some(signal)) => Attempt::Signalled(signal),
                    (None, None) => Attempt::Exited(-1),
                };
            }
            Ok(None) => {}
            Err(e) => {
                kill_group();
                let _ = child.wait();
                return Attempt::CannotStart(format!("lost track of the process: {e}"));
            }
        }
        let timed_out = job.timeout.is_some_and(|t| started.elapsed() >= t);
        if timed_out || cancel.is_cancelled() {
            kill_group();
            let _ = child.wait();
            return if timed_out { Attempt::TimedOut } else { Attempt::Cancelled };
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &std::path::Path, script: &str, timeout: Option<Duration>) -> Job {
        Job {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: [("PATH".to_string(), std::env::var("PATH").unwrap_or_default())].into(),
            stdout: dir.join("stdout.log"),
            stderr: dir.join("stderr.log"),
            timeout,
        }
    }

    #[tokio::test]
    async fn exit_codes_logs_and_a_clean_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let attempt = LocalExecutor
            .run(
                job(dir.path(), "echo out; echo err >&2; echo \"home=$SECRET\"; exit 3", None),
                CancellationToken::new(),
            )
            .await;
        assert_eq!(attempt, Attempt::Exited(3));
        let out = std::fs::read_to_string(dir.path().join("stdout.log")).expect("stdout");
        assert_eq!(out, "out\nhome=\n", "the fleet manager's environment does not leak into steps");
        assert_eq!(std::fs::read_to_string(dir.path().join("stderr.log")).expect("stderr"), "err\n");
        let missing = LocalExecutor
            .run(Job { argv: vec!["/nonexistent/prog".into()], ..job(dir.path(), "", None) }, CancellationToken::new())
            .await;
        assert!(matches!(missing, Attempt::CannotStart(ref m) if m.contains("/nonexistent/prog")), "{missing:?}");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_process_group_children_included() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The child sleeps in the background and would write its pid file after 2 s.
        let script = "(sleep 2; touch survived) & echo $! > child.pid; sleep 30";
        let started = Instant::now();
        let attempt = LocalExecutor
            .run(job(dir.path(), script, Some(Duration::from_millis(300))), CancellationToken::new())
            .await;
        assert_eq!(attempt, Attempt::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(dir.path().join("child.pid").exists(), "the child had started");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!dir.path().join("survived").exists(), "the background child was killed with its group");
    }

    #[tokio::test]
    async fn cancel_kills_a_running_attempt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            later.cancel();
        });
        assert_eq!(LocalExecutor.run(job(dir.path(), "sleep 30", None), cancel).await, Attempt::Cancelled);
    }
}
