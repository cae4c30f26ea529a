//! The local API through `tower::ServiceExt::oneshot`: no sockets, a fake model for the
//! error paths and the real tract model on the committed fixture.
#![allow(clippy::unwrap_used, missing_docs)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgefleet_agent::api::{ApiState, router};
use edgefleet_agent::inference::{
    FnModel, InferenceError, InferenceHandle, InferenceStats, InferenceWorker, Model, ModelInfo, TractModel,
    WorkerConfig,
};
use edgefleet_protocol::ModelName;
use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::Path;
use tower::ServiceExt;

fn info(name: &str, seq: u64) -> ModelInfo {
    ModelInfo { name: ModelName::new(name).unwrap(), version_seq: seq, label: format!("{seq}.0.0") }
}

fn app() -> (Router, InferenceHandle) {
    let stats = InferenceStats::new();
    let (handle, _worker) = InferenceWorker::spawn(WorkerConfig::default(), stats.clone()).unwrap();
    let state = ApiState::new(handle.clone(), stats).with_agent_status(|| json!({"device_id": "dev-1"}));
    (router(state), handle)
}

async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

/// A model that sums its `[2]` input into a `[1]` output, and fails on a negative first value.
fn summer() -> Box<dyn Model> {
    let spec = |name: &str, n| TensorSpec { name: name.into(), elem: ElemType::F32, shape: vec![Dim::Fixed(n)] };
    Box::new(FnModel::new(vec![spec("x", 2)], vec![spec("sum", 1)], |inputs: &[Tensor]| {
        let values = inputs[0].data.to_f64();
        if values[0] < 0.0 {
            return Err(InferenceError::Run { model: "summer".into(), reason: "negative".into() });
        }
        Ok(vec![Tensor { shape: vec![1], data: TensorData::F32(vec![values.iter().sum::<f64>() as f32]) }])
    }))
}

#[tokio::test]
async fn infer_maps_every_error_to_its_status() {
    let (app, handle) = app();
    let body = r#"{"inputs":[{"name":"x","shape":[2],"data":[1,2]}]}"#;

    let (status, json) = call(&app, "POST", "/v1/infer", body).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("no_model")));
    assert!(json["message"].as_str().unwrap().contains("no model is loaded"));

    handle.swap(summer(), info("summer", 3)).await.unwrap();
    let (status, json) = call(&app, "POST", "/v1/infer", body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["outputs"], json!([{"name": "sum", "shape": [1], "dtype": "f32", "data": [3.0]}]));
    assert_eq!(json["model"], json!({"name": "summer", "version_seq": 3, "label": "3.0.0"}));
    assert!(json["latency_us"].is_u64() && json["inference_id"] == 1);

    for (bad, needle) in [
        ("{not json", "invalid request body"),
        (r#"{"inputs":[{"shape":[3],"data":[1,2,3]}]}"#, "dimension 0 is 3, must be 2"),
        (r#"{"inputs":[{"shape":[2],"data":[1]}]}"#, "does not hold 1 values"),
        (r#"{"inputs":[{"name":"y","shape":[2],"data":[1,2]}]}"#, "no input \"y\"; its inputs are x"),
        (r#"{"inputs":[{"shape":[2],"dtype":"i64","data":[1,2]}]}"#, "must be f32, got i64"),
        (r#"{"inputs":[]}"#, "takes 1 input(s) (x), got 0"),
    ] {
        let (status, json) = call(&app, "POST", "/v1/infer", bad).await;
        assert_eq!((status, json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{bad}");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(needle), "{bad}: {message}");
    }

    let (status, json) = call(&app, "POST", "/v1/infer", r#"{"inputs":[{"shape":[2],"data":[-1,2]}]}"#).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("internal")));

    let (status, json) = call(&app, "GET", "/v1/nope", "").await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn status_reports_the_active_model_and_its_counters() {
    let (app, handle) = app();
    let (status, json) = call(&app, "GET", "/v1/status", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((json["active_model"].clone(), json["models"].clone()), (Value::Null, json!([])));
    assert_eq!(json["agent"]["device_id"], "dev-1");

    handle.swap(summer(), info("summer", 1)).await.unwrap();
    for body in [r#"{"inputs":[{"shape":[2],"data":[1,2]}]}"#, r#"{"inputs":[{"shape":[2],"data":[-1,2]}]}"#] {
        call(&app, "POST", "/v1/infer", body).await;
    }
    call(&app, "POST", "/v1/infer", r#"{"inputs":[{"shape":[9],"data":[1,2,3,4,5,6,7,8,9]}]}"#).await;
    handle.swap(summer(), info("summer", 2)).await.unwrap();

    let (_, json) = call(&app, "GET", "/v1/status", "").await;
    assert_eq!(json["active_model"], json!({"name": "summer", "version_seq": 2, "label": "2.0.0"}));
    let models = json["models"].as_array().unwrap();
    let v1 = models.iter().find(|m| m["version_seq"] == 1).unwrap();
    assert_eq!((v1["active"].clone(), v1["inference_count"].clone()), (json!(false), json!(2)));
    assert_eq!((v1["error_count"].clone(), v1["rejected_count"].clone()), (json!(1), json!(1)));
    assert!(v1["latency_p50_us"].is_u64() && v1["latency_p99_us"].is_u64() && v1["throughput_per_s"].is_f64());
    let v2 = models.iter().find(|m| m["version_seq"] == 2).unwrap();
    assert_eq!((v2["active"].clone(), v2["latency_p50_us"].clone()), (json!(true), Value::Null));
}

#[tokio::test]
async fn serves_the_real_tract_model() {
    let (app, handle) = app();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/vibration_mlp.onnx");
    handle.swap(Box::new(TractModel::load(&path).unwrap()), info("vibration-mlp", 1)).await.unwrap();

    let data: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    let body = json!({"inputs": [{"name": "features", "shape": [1, 8], "data": data}]}).to_string();
    let (status, json) = call(&app, "POST", "/v1/infer", &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let out = &json["outputs"][0];
    assert_eq!((out["name"].as_str(), out["shape"].clone()), (Some("scores"), json!([1, 4])));
    let sum: f64 = out["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-5, "{sum}");

    // A batch of two (nested data) through a second plan: each row sums to 1.
    let body = json!({"inputs": [{"shape": [2, 8], "data": [data, data]}]}).to_string();
    let (status, json) = call(&app, "POST", "/v1/infer", &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let scores: Vec<f64> = json["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(scores.len(), 8);
    assert_eq!(scores[..4], scores[4..]);

    let body = json!({"inputs": [{"shape": [1, 7], "data": [0, 0, 0, 0, 0, 0, 0]}]}).to_string();
    let (status, json) = call(&app, "POST", "/v1/infer", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["message"].as_str().unwrap().contains("input \"features\" has shape [1, 7]"), "{json}");
}

/// A 3-class classifier over a `[1, 2]` input: scores `[x0, x1, 0.5]`.
fn classifier() -> Box<dyn Model> {
    let spec = |name: &str, n| TensorSpec {
        name: name.into(),
        elem: ElemType::F32,
        shape: vec![Dim::Fixed(1), Dim::Fixed(n)],
    };
    Box::new(FnModel::new(vec![spec("x", 2)], vec![spec("scores", 3)], |inputs: &[Tensor]| {
        let v = inputs[0].data.to_f64();
        Ok(vec![Tensor { shape: vec![1, 3], data: TensorData::F32(vec![v[0] as f32, v[1] as f32, 0.5]) }])
    }))
}

#[tokio::test]
async fn feedback_labels_a_served_inference() {
    use edgefleet_agent::drift::{Drift, DriftHub, Overrides, Policy};
    use edgefleet_protocol::drift::{Binning, DriftReference, FeatureReference};
    use std::sync::Arc;

    let policy = Policy { sample_rate: 0.0, max_sample_bytes_per_hour: 0, drift_window_ms: 60_000 };
    let drift = Drift::new(DriftHub::new(policy, Overrides::default(), 1));
    let stats = InferenceStats::new();
    let (handle, _worker) =
        InferenceWorker::spawn_with_drift(WorkerConfig::default(), stats.clone(), Some(drift.clone())).unwrap();
    let app = router(ApiState::new(handle.clone(), stats).with_drift(drift.clone()));
    let classes = Binning::Categorical { codes: vec![0, 1, 2] };
    let reference = DriftReference {
        prediction: Some(FeatureReference { name: "class".into(), binning: classes, counts: vec![1; 4] }),
        ..DriftReference::default()
    };
    let loaded = edgefleet_agent::inference::LoadedModel {
        model: classifier(),
        info: info("clf", 2),
        drift_reference: Arc::new(reference),
    };
    handle.swap_loaded(loaded).await.unwrap();

    let (status, out) = call(&app, "POST", "/v1/infer", r#"{"inputs":[{"shape":[1,2],"data":[0.9,0.1]}]}"#).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let id = out["inference_id"].as_u64().unwrap();

    let (status, json) = call(&app, "POST", "/v1/feedback", &format!(r#"{{"inference_id":{id},"label":0}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["correct"], true);
    assert_eq!(json["predicted"], 0);
    assert_eq!(json["model"], json!({"name": "clf", "version_seq": 2, "label": "2.0.0"}));
    let (_, json) = call(&app, "POST", "/v1/feedback", &format!(r#"{{"inference_id":{id},"label":2}}"#)).await;
    assert_eq!((json["correct"].clone(), json["counted"].clone()), (json!(false), json!(false)));

    let (status, json) = call(&app, "POST", "/v1/feedback", r#"{"inference_id":999,"label":0}"#).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_inference")));
    for bad in [
        "{not json",
        r#"{"inference_id":1}"#,
        r#"{"inference_id":-1,"label":0}"#,
        r#"{"inference_id":1,"label":0,"x":1}"#,
    ] {
        let (status, json) = call(&app, "POST", "/v1/feedback", bad).await;
        assert_eq!((status, json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{bad}");
    }

    // The first label was counted in the window of the version that served it.
    assert_eq!(drift.status().window_rows, 1);
    let reports = drift.lock().flush(u64::MAX / 2);
    let Some(edgefleet_agent::drift::Report::Drift(window)) = reports.first() else { panic!("{reports:?}") };
    assert_eq!((window.rows, window.feedback.labelled, window.feedback.correct), (1, 1, 1));
    assert_eq!(window.prediction.as_ref().unwrap().bin_counts, vec![1, 0, 0, 0]);

    // Without drift state every id is unknown.
    let (plain, _plain_handle) = self::app();
    let (status, _) = call(&plain, "POST", "/v1/feedback", r#"{"inference_id":1,"label":0}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
