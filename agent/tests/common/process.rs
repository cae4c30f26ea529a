//! The real `edgefleet-agent` binary as a child process, and a tiny HTTP client for its API.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct AgentProcess {
    child: Child,
    pub data_dir: PathBuf,
}

/// Writes an agent config for a test device.
pub fn write_config(dir: &Path, device: &str, namespace: &str, broker: &str, trust: &Path) -> PathBuf {
    let data_dir = dir.join("data");
    let config = format!(
        "device_id = \"{device}\"\nnamespace = \"{namespace}\"\nbroker_url = \"mqtt://{broker}\"\n\
         data_dir = \"{}\"\ntrust_store = \"{}\"\napi_listen = \"127.0.0.1:0\"\n\
         [mqtt]\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n[health]\ninterval_secs = 1\n",
        data_dir.display(),
        trust.display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    path
}

impl AgentProcess {
    /// Starts `edgefleet-agent run --config CONFIG`, optionally with a crash point armed.
    pub fn start(config: &Path, crash_at: Option<&str>) -> Self {
        let dir = config.parent().unwrap();
        let data_dir = dir.join("data");
        let _ = std::fs::remove_file(data_dir.join("api.addr"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("agent.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgefleet-agent"));
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        match crash_at {
            Some(point) => command.env("EDGEFLEET_AGENT_CRASH_AT", point),
            None => command.env_remove("EDGEFLEET_AGENT_CRASH_AT"),
        };
        Self { child: command.spawn().unwrap(), data_dir }
    }

    /// The local API address, once the agent wrote it.
    pub async fn api(&self) -> String {
        let path = self.data_dir.join("api.addr");
        for _ in 0..200 {
            if let Ok(addr) = std::fs::read_to_string(&path) {
                return addr;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("agent never wrote {}", path.display());
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit(10).await
    }

    pub async fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        for _ in 0..secs * 20 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("agent did not exit within {secs}s");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; returns the status code and body.
pub async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
