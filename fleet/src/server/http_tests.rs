//! The router against its OpenAPI document, without sockets.

use super::*;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A router whose core is gone: every request that reaches the core answers 503 (the large
/// reads go to an empty in-memory store instead).
fn state() -> HttpState {
    let (inputs, _) = mpsc::channel(1);
    HttpState {
        inputs,
        trust_store: PathBuf::from("/nonexistent/trust"),
        data_dir: PathBuf::from("/nonexistent/data"),
        objects: Arc::new(RwLock::new(ObjectStore::default())),
        store: Arc::new(crate::server::store::MemoryStore::default()),
        clock: Arc::new(crate::server::clock::ManualClock::at(1_000)),
        pipelines: None,
    }
}

async fn call(method: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let method: Method = method.to_uppercase().parse().unwrap_or(Method::GET);
    let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
    let response = router(state()).oneshot(request).await.expect("infallible");
    let status = response.status();
    (status, response.into_body().collect().await.expect("body").to_bytes().to_vec())
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_the_router_serves() {
    let (status, body) = call("get", "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("the document is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi {version:?}");
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is not in the document");
    }
    let documented: usize = paths.values().map(|p| p.as_object().map_or(0, |m| m.len())).sum();
    assert_eq!(documented, ROUTES.len(), "the document has operations the router does not serve");
}

#[tokio::test]
async fn every_route_is_served() {
    for (method, path) in ROUTES {
        let concrete =
            path.replace("{id}", "1").replace("{name}", "m").replace("{op}", "pause").replace("{version}", "1");
        let (status, body) = call(method, &concrete).await;
        // A route the router lacks is an empty 404; a handler's "no such thing" has a body.
        assert!(
            !(status == StatusCode::NOT_FOUND && body.is_empty()) && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[tokio::test]
async fn refusals_keep_their_body_and_status() {
    let (status, body) = call("get", "/v1/status").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body: crate::api::errors::ErrorBody = serde_json::from_slice(&body).expect("an error body");
    assert_eq!(body.error, "the fleet manager is shutting down");
    let (status, _) = call("post", "/v1/rollouts/1/dance").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call("get", "/v1/rollouts/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
