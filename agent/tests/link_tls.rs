//! `mqtts://`: the link against a private Mosquitto with a TLS listener and a test CA made
//! with openssl; a record is published and acknowledged over TLS, and a broker whose
//! certificate the configured CA did not sign is never talked to.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_agent::config::{Overrides, load};
use edgefleet_agent::link::{LinkParts, LinkState, MemoryUplink, run};
use edgefleet_protocol::hardware::{HardwareClass, HardwareInfo};
use edgefleet_protocol::topic::TopicKind;
use edgefleet_protocol::uplink::Birth;
use edgefleet_protocol::{DeviceId, SemVer};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, and a server certificate for localhost signed by it.
fn make_certs(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca.key");
    let ca_crt = format!("{name}-ca.crt");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca_crt,
            "-days",
            "2",
            "-subj",
            "/CN=edgefleet test CA",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}-server.key"),
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &format!("{name}-server.crt"),
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_tls_broker(dir: &Path) -> (Broker, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = format!(
        "listener {port} 127.0.0.1\ncafile {d}/good-ca.crt\ncertfile {d}/good-server.crt\nkeyfile {d}/good-server.key\nallow_anonymous true\npersistence false\n{user}",
        d = dir.display(),
        // As root, mosquitto would switch to its own user, which cannot read a private temp dir.
        user = if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() { "user root\n" } else { "" },
    );
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let broker = Broker(
        Command::new("mosquitto")
            .args(["-c", dir.join("mosquitto.conf").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (broker, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("private mosquitto did not start");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn birth() -> Birth {
    Birth {
        device_id: DeviceId::new("tls-dev").unwrap(),
        boot_id: 1,
        agent_version: SemVer::new(0, 1, 0),
        hardware: HardwareInfo {
            class: HardwareClass::Cpu,
            cpu_arch: "x86_64".into(),
            cpu_cores: 1,
            memory_bytes: 0,
            gpu: None,
            accelerator: None,
        },
        free_disk_bytes: 0,
        free_memory_bytes: 0,
        active_models: vec![],
        seq: 1,
    }
}

/// Runs the link with `ca` for up to 3 s; returns whether it connected and drained the record.
async fn try_link(dir: &Path, port: u16, ca: &str) -> (bool, bool) {
    let env = vec![
        ("EDGEFLEET_AGENT__MQTT__CA_FILE".to_string(), dir.join(ca).display().to_string()),
        ("EDGEFLEET_AGENT__MQTT__RECONNECT_MIN_MS".to_string(), "50".to_string()),
        ("EDGEFLEET_AGENT__MQTT__RECONNECT_MAX_MS".to_string(), "200".to_string()),
    ];
    let flags = Overrides {
        device_id: Some("tls-dev".into()),
        broker_url: Some(format!("mqtts://localhost:{port}")),
        data_dir: Some(dir.to_path_buf()),
        ..Overrides::default()
    };
    let settings = load(None, env, &flags).unwrap();
    assert!(settings.broker.tls);
    let uplink = Arc::new(MemoryUplink::default());
    uplink.push(TopicKind::Health, 1, vec![1, 3, 0]);
    let (inbound_tx, _inbound_rx) = mpsc::channel(4);
    let (_chunk_tx, chunk_rx) = mpsc::channel(1);
    let (state_tx, state_rx) = watch::channel(LinkState::Disconnected);
    let parts = LinkParts {
        uplink: uplink.clone(),
        wake: Arc::new(Notify::new()),
        rebirth: Arc::new(Notify::new()),
        birth: Box::new(birth),
        inbound_tx,
        chunk_rx,
        state_tx,
        sensor_rx: None,
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(settings, 1, parts, cancel.clone()));
    let mut connected = false;
    for _ in 0..60 {
        connected |= *state_rx.borrow() == LinkState::Connected;
        if connected && uplink.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    (connected, uplink.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_tls_and_refuses_an_untrusted_broker() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), "good");
    make_certs(dir.path(), "other");
    let (_broker, port) = start_tls_broker(dir.path()).await;
    assert_eq!(try_link(dir.path(), port, "good-ca.crt").await, (true, true), "TLS with the right CA");
    assert_eq!(try_link(dir.path(), port, "other-ca.crt").await, (false, false), "a CA that did not sign the broker");
}
