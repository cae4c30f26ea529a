use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let file = dir.path().join("serve.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn the_embedded_default_loads() {
    let c = ServeConfig::load(None, [], &Overrides::default()).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("edgefleet-data"));
    assert_eq!(c.http_listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.broker, BrokerChoice::Embedded("127.0.0.1:1883".parse().unwrap()));
    assert_eq!(c.namespace.as_str(), "edgefleet");
    assert_eq!(c.trust_store, PathBuf::from("edgefleet-data/trust.toml"));
    assert_eq!(c.unreachable_after, Duration::from_secs(120));
    assert_eq!((c.health_retention, c.history_retention, c.max_packet_bytes), (16, 32, 262_144));
    assert_eq!(
        c.probation,
        ProbationBudget { duration_ms: 30_000, min_inferences: 20, max_error_rate_ppm: 10_000, max_p99_latency_us: 0 }
    );
    assert_eq!((c.drift.fdr, c.drift.min_rows, c.drift.min_psi, c.drift.max_missing_rate), (0.01, 100, 0.1, 0.05));
    assert_eq!((c.drift.persist_k, c.drift.persist_n, c.drift_retention), (3, 5, 16));
}

#[test]
fn layers_default_file_env_and_flags_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "namespace = \"plant\"\n[probation]\nduration = \"5s\"\n");
    let env = env(&[("EDGEFLEET_SERVE__PROBATION__MIN_INFERENCES", "3")]);
    let flags = Overrides { mqtt_listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
    let c = ServeConfig::load(Some(&file), env, &flags).unwrap();
    assert_eq!(c.namespace.as_str(), "plant");
    assert_eq!(c.probation.duration_ms, 5000);
    assert_eq!(c.probation.min_inferences, 3);
    assert_eq!(c.probation.max_error_rate_ppm, 10_000);
    assert_eq!(c.broker, BrokerChoice::Embedded("127.0.0.1:0".parse().unwrap()));
    assert_eq!(c.trust_store, PathBuf::from("edgefleet-data/trust.toml"));

    let file = write(&dir, "http_listn = \"x\"\n");
    let e = ServeConfig::load(Some(&file), [], &Overrides::default()).unwrap_err();
    assert_eq!(e.field, "http_listn");
    let flags = Overrides { http_listen: Some("localhost".into()), ..Overrides::default() };
    assert_eq!(ServeConfig::load(None, [], &flags).unwrap_err().field, "http_listen");
    let flags = Overrides { mqtt_url: Some("mqtt://127.0.0.1:1883".into()), ..Overrides::default() };
    assert!(matches!(ServeConfig::load(None, [], &flags).unwrap().broker, BrokerChoice::External(_)));
}

#[test]
fn unknown_keys_are_refused_with_their_name_and_layer() {
    let dir = tempfile::tempdir().unwrap();
    for (text, field) in [
        ("http_listn = \"x\"\n", "http_listn"),
        ("[probation]\nduraton = \"5s\"\n", "probation.duraton"),
        ("[rollout]\nstages = 3\n", "rollout"),
    ] {
        let file = write(&dir, text);
        let e = ServeConfig::load(Some(&file), [], &Overrides::default()).unwrap_err();
        assert_eq!(e.field, field, "{text}: {e}");
        let name = field.rsplit('.').next().unwrap();
        assert!(e.detail.contains(&format!("unknown field `{name}`")), "{e}");
        assert!(e.detail.contains("serve.toml"), "{e}");
    }
    for (var, field) in [("EDGEFLEET_SERVE__HTTP_LISTN", "http_listn"), ("EDGEFLEET_SERVE__DRIFT__FDRR", "drift.fdrr")]
    {
        let e = ServeConfig::load(None, env(&[(var, "1")]), &Overrides::default()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.detail.contains(var), "{e}");
    }
    // Other prefixes are not ours (EDGEFLEET_SERVER is the CLI's).
    assert!(ServeConfig::load(None, env(&[("EDGEFLEET_SERVER", "http://x")]), &Overrides::default()).is_ok());
}

#[test]
fn the_file_overrides_the_default_and_the_environment_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "health_retention = 4\nunreachable_after = \"10s\"\n[drift]\nmin_rows = 50\nfdr = 0.05\n[probation]\nmax_error_rate = 0.02\n",
    );
    let c = ServeConfig::load(Some(&file), [], &Overrides::default()).unwrap();
    assert_eq!((c.health_retention, c.unreachable_after), (4, Duration::from_secs(10)));
    assert_eq!((c.drift.min_rows, c.drift.fdr), (50, 0.05));
    assert_eq!(c.probation.max_error_rate_ppm, 20_000);
    assert_eq!(c.history_retention, 32, "keys the file leaves out keep their default");

    let vars = env(&[
        ("EDGEFLEET_SERVE__HEALTH_RETENTION", "8"),
        ("EDGEFLEET_SERVE__DRIFT__MIN_ROWS", "60"),
        ("EDGEFLEET_SERVE__DRIFT__FDR", "0.1"),
        ("EDGEFLEET_SERVE__NAMESPACE", "plant"),
        ("EDGEFLEET_SERVE__PROBATION__MAX_ERROR_RATE", "5%"),
    ]);
    let c = ServeConfig::load(Some(&file), vars.clone(), &Overrides::default()).unwrap();
    assert_eq!((c.health_retention, c.drift.min_rows, c.drift.fdr), (8, 60, 0.1));
    assert_eq!(c.namespace.as_str(), "plant");
    assert_eq!(c.probation.max_error_rate_ppm, 50_000);
    assert_eq!(c.unreachable_after, Duration::from_secs(10), "the file still wins over the default");

    let flags = Overrides { data_dir: Some("/srv/fleet".into()), ..Overrides::default() };
    let vars = env(&[("EDGEFLEET_SERVE__DATA_DIR", "/from/env")]);
    let c = ServeConfig::load(Some(&file), vars, &flags).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/srv/fleet"), "flags win over the environment");
    assert_eq!(c.trust_store, PathBuf::from("/srv/fleet/trust.toml"));
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (text, field, reason) in [
        ("health_retention = -1\n", "health_retention", "non-negative integer"),
        ("health_retention = \"many\"\n", "health_retention", "\"many\" is not a number"),
        ("namespace = 5\n", "namespace", "string"),
        ("unreachable_after = \"soon\"\n", "unreachable_after", "ms, s, m or h"),
        ("data_dir = \"\"\n", "data_dir", "must not be empty"),
        ("mqtt_listen = \"nowhere\"\n", "mqtt_listen", "not an address"),
        ("mqtt_url = \"mqtts://broker\"\n", "mqtt_url", "not supported"),
        ("mqtt_url = \"http://broker\"\n", "mqtt_url", "mqtt://"),
        ("max_packet_bytes = 1024\n", "max_packet_bytes", "at least 81920"),
        ("probation = 5\n", "probation", "struct"),
        ("[probation]\nmax_error_rate = \"lots\"\n", "probation.max_error_rate", "percentage"),
        ("[probation]\nmin_inferences = 5000000000\n", "probation.min_inferences", "too large"),
        ("[drift]\nfdr = 2.0\n", "drift.fdr", "(0, 1)"),
        ("[drift]\npersist_k = 6\n", "drift.persist_k", "persist_n"),
        ("[drift]\nretention = 2\n", "drift.retention", "persist_n = 5"),
    ] {
        let file = write(&dir, text);
        let e = ServeConfig::load(Some(&file), [], &Overrides::default()).unwrap_err();
        assert_eq!(e.field, field, "{text}: {e}");
        assert!(e.detail.contains(reason) && e.detail.contains("serve.toml"), "{text}: {e}");
    }
    let e = ServeConfig::load(None, env(&[("EDGEFLEET_SERVE__DRIFT__MIN_ROWS", "few")]), &Overrides::default())
        .unwrap_err();
    assert_eq!(e.field, "drift.min_rows");
    assert!(
        e.detail.contains("\"few\" is not a number") && e.detail.contains("EDGEFLEET_SERVE__DRIFT__MIN_ROWS"),
        "{e}"
    );

    let e = ServeConfig::load(Some(&dir.path().join("missing.toml")), [], &Overrides::default()).unwrap_err();
    assert_eq!(e.field, "--config");
    let file = write(&dir, "namespace = \n");
    assert_eq!(ServeConfig::load(Some(&file), [], &Overrides::default()).unwrap_err().field, "--config");
}
