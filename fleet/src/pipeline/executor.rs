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
    /// Where the local executor writes the attempt's process group (`PID STARTTIME`), so a
    /// fleet manager restarted after a crash can end what the crashed one left running
    /// ([`kill_leftover`]).
    pub pid_file: Option<PathBuf>,
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

/// The executor `[pipelines] executor` picks.
#[derive(Debug, Clone)]
pub enum AnyExecutor {
    /// `local`.
    Local(LocalExecutor),
    /// `ray`.
    Ray(super::ray::RayExecutor),
}

impl Executor for AnyExecutor {
    fn kind(&self) -> &'static str {
        match self {
            AnyExecutor::Local(e) => e.kind(),
            AnyExecutor::Ray(e) => e.kind(),
        }
    }

    async fn run(&self, job: Job, cancel: CancellationToken) -> Attempt {
        match self {
            AnyExecutor::Local(e) => e.run(job, cancel).await,
            AnyExecutor::Ray(e) => e.run(job, cancel).await,
        }
    }
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
    if let Some(path) = &job.pid_file {
        let started = process_start_time(child.id()).unwrap_or_default();
        let _ = std::fs::write(path, format!("{} {started}\n", child.id()));
    }
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

/// The start time of a process (field 22 of `/proc/PID/stat`, in clock ticks since boot): with
/// the pid it names one process, even after the pid is reused.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the process group a crashed fleet manager's attempt left running, named by its pid
/// file, when that process still exists (same pid and start time); removes the file. Returns
/// whether a group was killed.
pub fn kill_leftover(pid_file: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(pid_file) else { return false };
    let _ = std::fs::remove_file(pid_file);
    let mut words = text.split_whitespace();
    if text.starts_with("ray ") {
        let (_, Some(address), Some(id)) = (words.next(), words.next(), words.next()) else { return false };
        return super::ray::stop_leftover(address, id);
    }
    let (Some(Ok(pid)), Some(Ok(started))) = (words.next().map(str::parse::<u32>), words.next().map(str::parse::<u64>))
    else {
        return false;
    };
    if pid == 0 || process_start_time(pid) != Some(started) {
        return false;
    }
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).is_ok()
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
            pid_file: Some(dir.join("pid")),
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

    #[test]
    fn a_leftover_group_is_killed_only_while_its_pid_names_the_same_process() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .process_group(0)
            .spawn()
            .expect("spawn");
        let pid_file = dir.path().join("pid");
        std::fs::write(&pid_file, format!("{} {}", child.id(), process_start_time(child.id()).expect("stat")))
            .expect("write");
        assert!(kill_leftover(&pid_file), "the group was running");
        assert!(!pid_file.exists());
        let status = child.wait().expect("wait");
        assert!(!status.success(), "killed, not exited");
        // A stale file (a start time that no longer matches) kills nothing.
        std::fs::write(&pid_file, format!("{} 1", std::process::id())).expect("write");
        assert!(!kill_leftover(&pid_file));
    }
}
