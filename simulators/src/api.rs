//! The fleet manager's HTTP API from async code: [`edgefleet::client::Client`] is blocking, so
//! each call runs on tokio's blocking pool.

use anyhow::{Context, Result};
use edgefleet::client::Client;
use serde_json::Value;

/// `POST path` with `body`, or `GET path` without one; the JSON answer.
pub async fn call(client: &Client, path: &str, body: Option<Value>) -> Result<Value> {
    let (c, p) = (client.clone(), path.to_string());
    let answer = tokio::task::spawn_blocking(move || match body {
        Some(b) => c.post_json(&p, &b),
        None => c.get(&p),
    })
    .await?;
    answer.with_context(|| format!("fleet manager API {path}"))
}
