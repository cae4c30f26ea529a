//! `edgefleet serve` as a real process: killed with SIGKILL in the middle of a rollout stage it
//! restarts with everything it had acknowledged and finishes the rollout; and hostile or broken
//! MQTT clients on its embedded broker cost only their own connection.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use edgefleet::client::Client;
use edgefleet_protocol::hardware::HardwareClass::Cpu;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stage_then_restart_resumes_the_rollout_and_keeps_acknowledged_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeProcess::start(dir.path());
    let namespace = serve.namespace.clone();
    let client = Client::new(&serve.http, "bob");
    serve.ready(&client).await;

    let agents = Agents::start(dir.path(), &serve.mqtt, &namespace, &devices("edge", 8, Cpu));
    wait_for(&client, "/v1/devices", 60, |d| d.as_array().unwrap().len() == 8).await;
    post(&client, "/v1/devices/edge-03/labels", json!({"set": {"site": "plant-9"}})).await.unwrap();
    let good = model("vibration_mlp.onnx");
    push(&client, package(2, &[(Cpu, &good)])).await.unwrap();
    // Probation of 4 s keeps stage 1 in flight long enough to kill the fleet manager in it.
    let plan = json!({
        "model": "vibration-mlp", "version_seq": 2, "stages": "50%,100%", "bake": "0s",
        "max_failure_rate": "45%", "confidence": "90%", "min_sample": 4,
        "probation": "4s", "probation_min_inferences": 1000, "max_concurrent_downloads": 8,
    });
    let id = post(&client, "/v1/rollouts", plan).await.unwrap()["id"].as_u64().unwrap();
    let path = format!("/v1/rollouts/{id}");
    wait_for(&client, &path, 60, |r| {
        let counts = &r["tracks"][0]["counts"];
        counts["installing"].as_u64().unwrap_or(0) + counts["dispatched"].as_u64().unwrap_or(0) > 0
    })
    .await;
    serve.sigkill();

    // Devices keep installing while the fleet manager is down; their reports wait in their outboxes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.respawn();
    serve.ready(&client).await;
    let before = get(&client, &path).await;
    assert_eq!(before["tracks"][0]["stage"], 1, "resumed in the stage it was killed in: {before:#}");
    let done = wait_for(&client, &path, 120, |r| status(r) != "running").await;
    assert_eq!(status(&done), "completed", "{done:#}");
    assert_eq!(done["tracks"][0]["counts"]["committed"], 8);
    let all = wait_for(&client, "/v1/devices", 60, |d| versions(d, "vibration-mlp").get("2") == Some(&8)).await;
    let labelled = all.as_array().unwrap().iter().find(|d| d["id"] == "edge-03").unwrap();
    assert_eq!(labelled["labels"]["site"], "plant-9", "an acknowledged label survived SIGKILL");
    let audit = get(&client, "/v1/audit").await;
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "rollout.completed"));
    assert_eq!(get(&client, "/v1/audit/verify").await["ok"], true);
    // `serve` logs each decision once, in words, without colour codes (its stderr is a file).
    let log = std::fs::read_to_string(dir.path().join("fleet.log")).unwrap();
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines(&format!("rollout {id} cpu: gate passed, stage 2 (committed 4")), 1, "{log}");
    assert_eq!(lines(&format!("rollout {id} cpu: last gate passed, track done")), 1, "{log}");
    assert_eq!(lines(&format!("rollout {id}: completed")), 1, "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log}");
    agents.stop().await;
}

fn raw(addr: &str, bytes: &[u8], hold: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let _ = stream.write_all(bytes);
    std::thread::sleep(hold);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn connect_packet(level: u8, client_id: &str, v5_properties: bool) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, 0x02, 0, 30];
    if v5_properties {
        body.extend([5, 0x11, 0, 0, 0, 10]); // session expiry interval property
    }
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mqtt_clients_leave_the_broker_and_the_fleet_serving_every_other_device() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeProcess::start(dir.path());
    let namespace = serve.namespace.clone();
    let client = Client::new(&serve.http, "carol");
    serve.ready(&client).await;
    let agents = Agents::start(dir.path(), &serve.mqtt, &namespace, &devices("steady", 2, Cpu));
    wait_for(&client, "/v1/devices", 60, |d| d.as_array().unwrap().len() == 2).await;

    let addr = serve.mqtt.trim_start_matches("mqtt://").to_string();
    let topic = format!("{namespace}/devices/evil/birth");
    let mut publish_garbage = connect_packet(4, "evil-1", false);
    let mut p = vec![0x32]; // PUBLISH QoS 1
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend(topic.as_bytes());
    body.extend([0, 1]); // packet id
    body.extend(b"\x01\xff not postcard at all");
    p.push(body.len() as u8);
    p.extend(body);
    publish_garbage.extend(p);
    let mut v5_publish = connect_packet(5, "evil-v5", true);
    v5_publish.extend([0x30, 9, 0, 3, b'a', b'/', b'b', 2, 0x01, 1, b'x']); // v5 PUBLISH with a property
    let mut bad_subscribe = connect_packet(4, "evil-sub", false);
    bad_subscribe.extend([0x82, 7, 0, 1, 0, 2, 0xff, 0xfe, 1]); // SUBSCRIBE, invalid UTF-8 filter

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage bytes", b"\xff\xfe\xfd\xfc garbage".to_vec()),
        ("truncated CONNECT", connect_packet(4, "evil-t", false)[..7].to_vec()),
        ("oversized remaining length", vec![0x10, 0xff, 0xff, 0xff, 0x7f, 0, 4, b'M']),
        ("malformed remaining length", vec![0x10, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("protocol level 9", connect_packet(9, "evil-9", false)),
        ("MQTT 5 client with properties", v5_publish),
        ("PUBLISH before CONNECT", vec![0x30, 5, 0, 1, b'x', b'h', b'i']),
        ("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("two CONNECTs", [connect_packet(4, "evil-2", false), connect_packet(4, "evil-2", false)].concat()),
        ("invalid UTF-8 subscription", bad_subscribe),
        ("malformed device message", publish_garbage),
        ("zero-length client id without clean session", {
            let mut c = connect_packet(4, "", false);
            c[9] = 0; // clean session off
            c
        }),
    ];
    for (name, bytes) in &cases {
        let a = addr.clone();
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || raw(&a, &bytes, Duration::from_millis(100))).await.unwrap();
        assert!(serve.alive(), "the fleet manager died on: {name}");
    }
    // Idle half-open connections (slowloris): the broker keeps serving.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            let _ = s.write_all(&[0x10]);
            s
        })
        .collect();

    // Every other device is still served: a new device registers, the old ones stay online,
    // and the malformed message created nothing.
    let newcomer = Agents::start(dir.path(), &serve.mqtt, &namespace, &devices("newcomer", 1, Cpu));
    let listed = wait_for(&client, "/v1/devices", 60, |d| d.as_array().unwrap().len() == 3).await;
    assert!(listed.as_array().unwrap().iter().all(|d| d["online"] == true), "{listed:#}");
    assert!(!listed.as_array().unwrap().iter().any(|d| d["id"] == "evil"));
    push(&client, package(2, &[(Cpu, &model("vibration_mlp.onnx"))])).await.unwrap();
    let plan = json!({"model": "vibration-mlp", "version_seq": 2, "stages": "100%", "bake": "0s",
        "max_failure_rate": "50%", "min_sample": 1, "probation": "1s"});
    let id = post(&client, "/v1/rollouts", plan).await.unwrap()["id"].as_u64().unwrap();
    let done = wait_for(&client, &format!("/v1/rollouts/{id}"), 60, |r| status(r) != "running").await;
    assert_eq!(status(&done), "completed", "{done:#}");
    assert!(serve.alive());
    drop(idle);
    newcomer.stop().await;
    agents.stop().await;
}
