//! The operator CLI's client for the fleet manager's HTTP API (see [`crate::server::http`]).

use serde_json::Value;
use std::time::Duration;

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error(
        "cannot reach the fleet manager at {server}: {detail} (is `edgefleet serve` running? set --server or EDGEFLEET_SERVER)"
    )]
    Unreachable {
        /// Base URL.
        server: String,
        /// Why.
        detail: String,
    },
    /// The server refused the request.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The answer was not JSON.
    #[error("unexpected answer from the fleet manager: {0}")]
    Protocol(String),
}

/// A client for one fleet manager, acting as one operator.
#[derive(Clone)]
pub struct Client {
    base: String,
    actor: String,
    agent: ureq::Agent,
}

impl Client {
    /// `server` like `http://127.0.0.1:8080`; `actor` is recorded in the audit log.
    pub fn new(server: &str, actor: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Client { base: server.trim_end_matches('/').to_string(), actor: actor.to_string(), agent }
    }

    fn finish(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, ClientError> {
        let mut response =
            result.map_err(|e| ClientError::Unreachable { server: self.base.clone(), detail: e.to_string() })?;
        let status = response.status().as_u16();
        let value: Value = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_json()
            .map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}")))?;
        if status >= 400 {
            let message = value.get("error").and_then(Value::as_str).unwrap_or("request refused").to_string();
            return Err(ClientError::Refused { status, message });
        }
        Ok(value)
    }

    /// GET `path` (with its query string).
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        self.finish(self.agent.get(&url).header("x-edgefleet-actor", &self.actor).call())
    }

    /// POST JSON to `path`.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        self.finish(self.agent.post(&url).header("x-edgefleet-actor", &self.actor).send_json(body))
    }

    /// POST raw bytes to `path`.
    pub fn post_bytes(&self, path: &str, bytes: &[u8]) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        self.finish(
            self.agent
                .post(&url)
                .header("x-edgefleet-actor", &self.actor)
                .header("content-type", "application/octet-stream")
                .send(bytes),
        )
    }
}

/// Percent-encodes a query value.
pub fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
