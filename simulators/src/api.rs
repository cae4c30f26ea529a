//! The fleet manager's HTTP API from async code: [`edgefleet::client::Client`] is blocking, so
//! each call runs on tokio's blocking pool. Answers come back as the typed structs of
//! [`edgefleet::api`] (or any other type the answer deserializes into).

use anyhow::{Context, Result};
use edgefleet::client::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `POST path` with `body`, or `GET path` without one; the answer as `T`.
pub async fn call<T: DeserializeOwned + Send + 'static>(client: &Client, path: &str, body: Option<Value>) -> Result<T> {
    let (c, p) = (client.clone(), path.to_string());
    let answer = tokio::task::spawn_blocking(move || match body {
        Some(b) => c.post_json(&p, &b),
        None => c.get(&p),
    })
    .await?;
    answer.with_context(|| format!("fleet manager API {path}"))
}

/// `POST path` with a typed `body`; the answer as `T`.
pub async fn post<T: DeserializeOwned + Send + 'static>(
    client: &Client,
    path: &str,
    body: &impl Serialize,
) -> Result<T> {
    let body = serde_json::to_value(body).with_context(|| format!("request body for {path}"))?;
    call(client, path, Some(body)).await
}
