//! The Ray executor: each attempt one job on a Ray cluster, submitted through Ray's Job
//! Submission REST API (the dashboard's `/api/jobs/`, which `pip install 'ray[default]'` brings).
//!
//! # The fleet manager and the Ray nodes share a filesystem
//! A step's working directory, its output paths and its two log files are the fleet manager's
//! paths, used as they are on the Ray node that runs the job, as on a single-machine cluster
//! (or with the same network mount at the same path on every node). Nothing is uploaded: no
//! `working_dir` in the runtime env, since the step's copy of the spec's directory is already on
//! that filesystem and its outputs must land there for the next step and the artifact store.
//! Where a node cannot see those paths, the attempt ends as [`Attempt::CannotStart`] naming
//! the path.
//!
//! # What runs on the Ray node
//! The entrypoint (Ray runs it with `/bin/sh -c`, in a session of its own) is a short POSIX
//! shell script that
//! 1. checks the working directory, the log files, the program and `setsid` on the node: if
//!    one is missing it prints `edgefleet: cannot start: ...` to Ray's job log and exits 125,
//!    which the executor reads back as [`Attempt::CannotStart`] (the command's own output never
//!    reaches that log, so it cannot forge the line);
//! 2. appends the command's stdout and stderr to the step's two log files itself. Ray's own job
//!    log merges both streams, puts its own lines among the command's (out of order: seen with
//!    Ray 2.60) and is only readable whole through the API; the step's files stay as the local
//!    executor writes them;
//! 3. runs the command with `setsid` in its own session and process group, under `env -i` with
//!    exactly [`Job::env`] (Ray starts entrypoints in the raylet's environment, which would leak
//!    into the step) plus `RAY_ADDRESS` and `RAY_JOB_CONFIG_JSON_ENV_VAR`, the two variables
//!    Ray sets for a job's driver, so that a step calling `ray.init()` joins this cluster as
//!    this job instead of starting a cluster of its own. The step's values win over those;
//! 4. on Ray's stop signal (SIGTERM, or SIGINT where the cluster sets `RAY_JOB_STOP_SIGNAL`)
//!    kills the command's whole process group with SIGKILL at once, and when the command exits
//!    kills what it left in its group, as the local executor does. Ray alone is not enough: it
//!    signals only the descendants it finds at stop time (a grandchild whose parent already
//!    exited is not among them and survives, seen with Ray 2.60), and waits 3 s before SIGKILL;
//! 5. exits with the command's status, which Ray reports as `driver_exit_code`.
//!
//! # Exit codes
//! Ray's `driver_exit_code` is the wrapper's status, which is the command's as a shell reports
//! it: a command ended by signal N is `Exited(128 + N)`, a program that cannot be executed
//! after the checks is env's 126/127. A job that failed with no exit code never ran its
//! command (runtime env setup, the job's supervisor actor): that is `CannotStart` with Ray's
//! message. A job stopped by someone else (the dashboard, `ray job stop`) is `Signalled(15)`.
//!
//! # Timeouts and cancellation
//! [`Job::timeout`] counts from the submission, so the time a job waits for the cluster's
//! resources counts too. On timeout or cancel the job is stopped through the API and the
//! executor waits until Ray reports it ended before returning, so the command's processes are
//! gone when [`Executor::run`] returns.
//!
//! The step's environment is also given to Ray as the job's `runtime_env.env_vars`, so that Ray
//! tasks and actors the step starts see it too; Ray expands `$VAR` and `${VAR}` in those values,
//! which is why the step's own environment comes from the entrypoint instead. The job's
//! entrypoint, and with it the step's environment, is visible to whoever can read the cluster's
//! dashboard (who can also run code on the cluster: Ray's API has no authentication by default).

use super::executor::{Attempt, Executor, Job};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a job's status is asked for.
const POLL: Duration = Duration::from_millis(100);
/// How long the cluster may fail to answer while a job runs before the attempt is given up.
const LOST_AFTER: Duration = Duration::from_secs(15);
/// The longest wait for a stopped job to end (Ray's own grace period is 3 s).
const STOP_WAIT: Duration = Duration::from_secs(15);
/// The wrapper's exit code when it refuses to start the command (env's own failure code).
const REFUSED: i32 = 125;
/// How a refusal line in Ray's job log starts.
const REFUSAL: &str = "edgefleet: cannot start: ";
/// The variables Ray sets for a job's driver that a step keeps (see the module docs).
const RAY_DRIVER_VARS: [&str; 2] = ["RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR"];
/// Bodies read from the cluster, at most (a job's details carry up to 20 000 characters of log).
const BODY_LIMIT: u64 = 16 << 20;

/// Runs each attempt as a job on the Ray cluster whose dashboard is at an address like
/// `http://127.0.0.1:8265`; see the module docs for what the cluster must share with the
/// fleet manager.
#[derive(Debug, Clone)]
pub struct RayExecutor {
    api: Api,
}

impl RayExecutor {
    /// The executor for the cluster whose dashboard (job server) is at `address`
    /// (`http://host:port`; `host:port` means `http://host:port`). Nothing is contacted yet.
    pub fn new(address: &str) -> Self {
        let address = address.trim_end_matches('/');
        let address = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            // A submission waits for the job's supervisor actor; a loaded head can take a while.
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        RayExecutor { api: Api { address, agent } }
    }

    /// The dashboard's address, as requests use it.
    pub fn address(&self) -> &str {
        &self.api.address
    }

    /// `GET /api/version`: whether the job server answers, and which Ray it runs.
    pub async fn version(&self) -> Result<RayVersion, RayError> {
        let api = self.api.clone();
        let address = api.address.clone();
        tokio::task::spawn_blocking(move || api.version()).await.unwrap_or_else(|e| {
            Err(RayError::Protocol {
                address,
                what: "GET /api/version".into(),
                detail: format!("the request's thread failed: {e}"),
            })
        })
    }
}

impl Executor for RayExecutor {
    fn kind(&self) -> &'static str {
        "ray"
    }

    async fn run(&self, job: Job, cancel: CancellationToken) -> Attempt {
        let api = self.api.clone();
        tokio::task::spawn_blocking(move || run_blocking(&api, &job, &cancel))
            .await
            .unwrap_or_else(|e| Attempt::CannotStart(format!("the attempt's thread failed: {e}")))
    }
}

/// A request to the cluster that failed.
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    /// No answer (connection refused, timeout, DNS).
    #[error(
        "cannot reach the Ray cluster at {address}: {detail} (is its head running with the job server: `ray start --head --include-dashboard=true`, from `pip install 'ray[default]'`?)"
    )]
    Unreachable {
        /// The dashboard's address.
        address: String,
        /// Why.
        detail: String,
    },
    /// An HTTP error status.
    #[error("the Ray cluster at {address} refused {what}: HTTP {status}: {body}")]
    Refused {
        /// The dashboard's address.
        address: String,
        /// The request, like `POST /api/jobs/`.
        what: String,
        /// HTTP status.
        status: u16,
        /// The start of Ray's answer (plain text, often a Python traceback).
        body: String,
    },
    /// An answer that is not the JSON expected.
    #[error("unexpected answer from the Ray cluster at {address} to {what}: {detail}")]
    Protocol {
        /// The dashboard's address.
        address: String,
        /// The request.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// `GET /api/version`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct RayVersion {
    /// The Jobs API's version (`"4"` in Ray 2.60).
    pub version: String,
    /// Ray's version on the cluster.
    pub ray_version: String,
}

/// `POST /api/jobs/`'s body.
#[derive(Debug, Serialize)]
struct SubmitRequest<'a> {
    entrypoint: &'a str,
    submission_id: &'a str,
    runtime_env: RuntimeEnv<'a>,
    metadata: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
struct RuntimeEnv<'a> {
    env_vars: &'a BTreeMap<String, String>,
}

/// `POST /api/jobs/`'s answer (`job_id` is the same id; only the submission id is used).
#[derive(Debug, Deserialize)]
struct SubmitResponse {
    submission_id: String,
}

/// The part of `GET /api/jobs/{id}`'s answer (Ray's `JobDetails`) the executor reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct JobDetails {
    status: JobStatus,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    driver_exit_code: Option<i32>,
}

/// Ray's `JobStatus`; a status a later Ray adds reads as `Other` and is waited out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum JobStatus {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
    #[serde(other)]
    Other,
}

/// `GET /api/jobs/{id}/logs`'s answer.
#[derive(Debug, Deserialize)]
struct LogsResponse {
    logs: String,
}

/// `POST /api/jobs/{id}/stop`'s answer.
#[derive(Debug, Deserialize)]
struct StopResponse {
    stopped: bool,
}

/// The job server's HTTP API, blocking (callers are on `spawn_blocking`).
#[derive(Debug, Clone)]
struct Api {
    address: String,
    agent: ureq::Agent,
}

impl Api {
    fn read<T: DeserializeOwned>(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, RayError> {
        let mut response =
            result.map_err(|e| RayError::Unreachable { address: self.address.clone(), detail: e.to_string() })?;
        let status = response.status().as_u16();
        let protocol =
            |detail: String| RayError::Protocol { address: self.address.clone(), what: what.to_string(), detail };
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| protocol(format!("HTTP {status}: {e}")))?;
        if status >= 400 {
            let body: String = body.trim().chars().take(2000).collect();
            return Err(RayError::Refused { address: self.address.clone(), what: what.to_string(), status, body });
        }
        serde_json::from_str(&body).map_err(|e| protocol(format!("HTTP {status}: {e}")))
    }

    fn version(&self) -> Result<RayVersion, RayError> {
        self.read("GET /api/version", self.agent.get(format!("{}/api/version", self.address)).call())
    }

    fn submit(&self, request: &SubmitRequest<'_>) -> Result<SubmitResponse, RayError> {
        // The trailing slash matters to Ray's router.
        self.read("POST /api/jobs/", self.agent.post(format!("{}/api/jobs/", self.address)).send_json(request))
    }

    fn details(&self, id: &str) -> Result<JobDetails, RayError> {
        let what = format!("GET /api/jobs/{id}");
        self.read(&what, self.agent.get(format!("{}/api/jobs/{id}", self.address)).call())
    }

    fn logs(&self, id: &str) -> Result<String, RayError> {
        let what = format!("GET /api/jobs/{id}/logs");
        let logs: LogsResponse =
            self.read(&what, self.agent.get(format!("{}/api/jobs/{id}/logs", self.address)).call())?;
        Ok(logs.logs)
    }

    fn stop(&self, id: &str) -> Result<StopResponse, RayError> {
        let what = format!("POST /api/jobs/{id}/stop");
        self.read(&what, self.agent.post(format!("{}/api/jobs/{id}/stop", self.address)).send_empty())
    }
}

fn run_blocking(api: &Api, job: &Job, cancel: &CancellationToken) -> Attempt {
    let script = match entrypoint(job) {
        Ok(script) => script,
        Err(reason) => return Attempt::CannotStart(reason),
    };
    let id = match submission_id() {
        Ok(id) => id,
        Err(reason) => return Attempt::CannotStart(reason),
    };
    let request = SubmitRequest {
        entrypoint: &script,
        submission_id: &id,
        runtime_env: RuntimeEnv { env_vars: &job.env },
        metadata: [("submitted_by", "edgefleet")].into(),
    };
    let started = Instant::now();
    let id = match api.submit(&request) {
        Ok(answer) => answer.submission_id,
        Err(e) => {
            if !matches!(e, RayError::Refused { .. }) {
                // A submission that timed out may still have created the job: not left running.
                let _ = api.stop(&id);
            }
            return Attempt::CannotStart(e.to_string());
        }
    };
    if let Some(path) = &job.pid_file {
        // A fleet manager restarted after a crash stops the job this one leaves (kill_leftover).
        let _ = std::fs::write(path, format!("ray {} {id}\n", api.address));
    }
    let mut failing_since: Option<Instant> = None;
    loop {
        match api.details(&id) {
            Ok(details) => {
                failing_since = None;
                if let Some(end) = ended(&details) {
                    return finish(api, &id, end);
                }
            }
            Err(RayError::Refused { status: 404, .. }) => {
                return Attempt::CannotStart(format!("the Ray cluster at {} lost job {id}", api.address));
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= LOST_AFTER {
                    let _ = api.stop(&id);
                    return Attempt::CannotStart(format!("lost track of Ray job {id}: {e}"));
                }
            }
        }
        let timed_out = job.timeout.is_some_and(|t| started.elapsed() >= t);
        if timed_out || cancel.is_cancelled() {
            stop_and_wait(api, &id);
            return if timed_out { Attempt::TimedOut } else { Attempt::Cancelled };
        }
        std::thread::sleep(POLL);
    }
}

/// Asks Ray to stop the job (the wrapper then kills the command's process group) and waits
/// until Ray reports it ended, so that nothing of it runs once the attempt is over.
fn stop_and_wait(api: &Api, id: &str) {
    if let Err(e) = api.stop(id) {
        tracing::warn!(job = id, "cannot stop the Ray job: {e}");
    }
    let asked = Instant::now();
    while asked.elapsed() < STOP_WAIT {
        if matches!(api.details(id), Ok(details) if details.status.is_terminal()) {
            return;
        }
        std::thread::sleep(POLL);
    }
    tracing::warn!(job = id, "the Ray job has not ended {} s after it was stopped", STOP_WAIT.as_secs());
}

impl JobStatus {
    fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Stopped | JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// How a job that ended reads as an attempt, before its log is looked at.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The attempt's result.
    Attempt(Attempt),
    /// Exit code 125: the wrapper's refusal if Ray's log has its line, else the command's code.
    MaybeRefused,
}

/// The end of a job from its details; `None` while it is pending or running.
fn ended(details: &JobDetails) -> Option<Ended> {
    Some(match details.status {
        JobStatus::Pending | JobStatus::Running | JobStatus::Other => return None,
        JobStatus::Succeeded => Ended::Attempt(Attempt::Exited(0)),
        // Stopped by someone else: Ray sent SIGTERM, the wrapper killed the group.
        JobStatus::Stopped => Ended::Attempt(Attempt::Signalled(15)),
        JobStatus::Failed => match details.driver_exit_code {
            Some(REFUSED) => Ended::MaybeRefused,
            // The wrapper itself was killed by a signal (the OOM killer, say).
            Some(code) if code < 0 => Ended::Attempt(Attempt::Signalled(-code)),
            Some(code) => Ended::Attempt(Attempt::Exited(code)),
            None => {
                let message: String = details.message.as_deref().unwrap_or("no message").chars().take(2000).collect();
                let error = details.error_type.as_deref().unwrap_or("no error type");
                Ended::Attempt(Attempt::CannotStart(format!(
                    "Ray failed the job before its command ran ({error}): {}",
                    message.trim()
                )))
            }
        },
    })
}

fn finish(api: &Api, id: &str, end: Ended) -> Attempt {
    match end {
        Ended::Attempt(Attempt::CannotStart(reason)) => {
            Attempt::CannotStart(format!("{reason} (Ray job {id} at {})", api.address))
        }
        Ended::Attempt(attempt) => attempt,
        Ended::MaybeRefused => match api.logs(id) {
            Ok(logs) => refusal(&logs).map_or(Attempt::Exited(REFUSED), |reason| {
                Attempt::CannotStart(format!("{reason} (Ray job {id} at {})", api.address))
            }),
            Err(e) => {
                tracing::warn!(job = id, "cannot read the Ray job's log to tell a refusal from exit code 125: {e}");
                Attempt::Exited(REFUSED)
            }
        },
    }
}

/// The wrapper's refusal in Ray's job log, if there is one.
fn refusal(logs: &str) -> Option<&str> {
    logs.lines().find_map(|line| line.strip_prefix(REFUSAL))
}

fn submission_id() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a Ray submission id: {e}"))?;
    Ok(format!("edgefleet-{}", hex::encode(bytes)))
}

/// `s` as one POSIX shell word: single-quoted, each `'` written as `'\''`. Nothing is special
/// inside single quotes, so `$`, backquotes, backslashes, spaces and newlines stay as they are.
pub fn shell_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('\'');
    for c in s.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

fn utf8_absolute(what: &str, path: &Path) -> Result<String, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("cannot make the {what} {path:?} absolute: {e}"))?;
    absolute
        .into_os_string()
        .into_string()
        .map_err(|p| format!("the {what} {p:?} is not UTF-8 (Ray's API carries text only)"))
}

/// The shell script Ray runs for `job` (module docs, "What runs on the Ray node"), or why the
/// job cannot be written as one.
fn entrypoint(job: &Job) -> Result<String, String> {
    let Some(program) = job.argv.first() else {
        return Err("empty command".into());
    };
    if program.contains('=') {
        return Err(format!("the program name {program:?} contains '=': env(1) would read it as a variable"));
    }
    if let Some(arg) = job.argv.iter().find(|a| a.contains('\0')) {
        return Err(format!("the argument {arg:?} contains a NUL byte"));
    }
    for (key, value) in &job.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(format!("the environment variable {key:?} cannot be set (empty, '=' or NUL)"));
        }
    }
    let cwd = utf8_absolute("working directory", &job.cwd)?;
    let out = shell_quote(&utf8_absolute("stdout log", &job.stdout)?);
    let err = shell_quote(&utf8_absolute("stderr log", &job.stderr)?);
    let refuse = |why: String| format!("{{ echo {}; exit {REFUSED}; }}", shell_quote(&format!("{REFUSAL}{why}")));
    let no_cwd = refuse(format!(
        "no working directory {cwd} on this Ray node (the fleet manager and the Ray nodes must share a filesystem)"
    ));
    let no_logs = refuse(format!(
        "cannot append to the step's logs {} and {} on this Ray node",
        job.stdout.display(),
        job.stderr.display()
    ));
    // execvp's search path when PATH is unset (glibc), for the check to match what env does.
    let path = job.env.get("PATH").map_or("/bin:/usr/bin", String::as_str);
    let no_program = refuse(format!("no program {program:?} (PATH {path}) on this Ray node"));
    let no_setsid = refuse("no /usr/bin/setsid on this Ray node (util-linux)".into());
    let mut command = String::from("/usr/bin/setsid /usr/bin/env -i --");
    // Ray's driver variables first, so that the step's own values win (env keeps the last).
    for name in RAY_DRIVER_VARS {
        command.push_str(&format!(" ${{{name}+\"{name}=${name}\"}}"));
    }
    for (key, value) in &job.env {
        command.push(' ');
        command.push_str(&shell_quote(&format!("{key}={value}")));
    }
    for arg in &job.argv {
        command.push(' ');
        command.push_str(&shell_quote(arg));
    }
    let (cwd, program, path) = (shell_quote(&cwd), shell_quote(program), shell_quote(path));
    Ok([
        format!("cd {cwd} 2>/dev/null || {no_cwd}"),
        format!("{{ true >>{out} && true >>{err}; }} 2>/dev/null || {no_logs}"),
        format!("(PATH={path}; command -v {program}) >/dev/null 2>&1 || {no_program}"),
        format!("[ -x /usr/bin/setsid ] || {no_setsid}"),
        format!("exec </dev/null >>{out} 2>>{err}"),
        // Until the command's pid is known, a stop only takes note.
        "trap 'stop=1' INT TERM HUP".into(),
        format!("{command} &"),
        "pid=$!".into(),
        // The pid first, so that it forks no more; then its group, whatever it already started.
        "trap 'kill -KILL $pid 2>/dev/null; kill -KILL -$pid 2>/dev/null' INT TERM HUP".into(),
        "[ -z \"$stop\" ] || { kill -KILL $pid; kill -KILL -$pid; } 2>/dev/null".into(),
        "wait $pid".into(),
        "status=$?".into(),
        "kill -KILL -$pid 2>/dev/null".into(),
        "exit $status".into(),
    ]
    .join("\n"))
}

#[cfg(test)]
#[path = "ray_tests.rs"]
mod tests;

/// Stops the job a crashed fleet manager's attempt left on the cluster at `address`
/// (what [`super::executor::kill_leftover`] does for a `ray ADDRESS ID` pid file). Returns
/// whether the cluster stopped it.
pub fn stop_leftover(address: &str, submission_id: &str) -> bool {
    let executor = RayExecutor::new(address);
    executor.api.stop(submission_id).is_ok_and(|answer| answer.stopped)
}
