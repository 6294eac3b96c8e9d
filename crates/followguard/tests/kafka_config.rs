//! Bad `serve` configuration exits 64 (EX_USAGE) with a message naming the problem,
//! before touching the broker: unknown librdkafka option, missing model, model built for
//! other features, model not matching the pinned sha256, malformed flag values. Secrets
//! passed as options never appear in the output.

use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> PathBuf {
    std::env::var_os("FOLLOWGUARD_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json"))
}

/// Runs `serve` with `args` against an address nothing listens on; returns (code, stderr).
fn serve(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_followguard"))
        .arg("serve")
        .args(["--brokers", "127.0.0.1:9", "--admin-addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run followguard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_exit_64(args: &[&str], needle: &str) -> String {
    let (code, err) = serve(args);
    assert_eq!(code, Some(64), "args {args:?}: stderr:\n{err}");
    assert!(
        err.contains(needle),
        "args {args:?}: expected {needle:?} in:\n{err}"
    );
    err
}

#[test]
fn unknown_kafka_option_exits_64() {
    let m = model();
    let m = m.to_str().expect("utf-8 path");
    assert_exit_64(
        &["--model", m, "--kafka-option", "no.such.property=1"],
        "no.such.property",
    );
}

#[test]
fn secret_option_values_are_not_printed() {
    let m = model();
    let m = m.to_str().expect("utf-8 path");
    let err = assert_exit_64(
        &[
            "--model",
            m,
            "--kafka-option",
            "sasl.password=hunter2",
            "--kafka-option",
            "no.such.property=1",
        ],
        "no.such.property",
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn missing_model_exits_64() {
    assert_exit_64(
        &["--model", "/nonexistent/followguard-model.json"],
        "/nonexistent/followguard-model.json",
    );
}

#[test]
fn model_for_other_features_exits_64() {
    let text = std::fs::read_to_string(model()).expect("model file");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("model json");
    v["feature_names"][0] = serde_json::Value::String("feature_from_another_build".into());
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("mismatched.json");
    std::fs::write(&p, serde_json::to_vec(&v).expect("json")).expect("write");
    assert_exit_64(
        &["--model", p.to_str().expect("utf-8")],
        "feature_from_another_build",
    );
}

#[test]
fn model_not_matching_pinned_sha256_exits_64() {
    let m = model();
    let zeros = "0".repeat(64);
    assert_exit_64(
        &[
            "--model",
            m.to_str().expect("utf-8"),
            "--model-sha256",
            &zeros,
        ],
        "--model-sha256",
    );
}

#[test]
fn malformed_flag_values_exit_64() {
    let m = model();
    let m = m.to_str().expect("utf-8 path");
    assert_exit_64(
        &["--model", m, "--shutdown-grace", "soon"],
        "--shutdown-grace",
    );
    assert_exit_64(
        &[
            "--model",
            m,
            "--kafka-option",
            "enable.auto.offset.store=true",
        ],
        "cannot be overridden",
    );
    assert_exit_64(
        &["--model", m, "--input-topic", "no spaces allowed"],
        "--input-topic",
    );
}

/// Issue #23: SASL mechanisms this build does not carry are refused at start with
/// librdkafka's reason (deploy/README.md, "Kafka client: what this build speaks").
#[test]
fn sasl_mechanisms_not_built_are_config_errors() {
    let model = model();
    let m = model.to_str().expect("utf-8 path");
    assert_exit_64(
        &[
            "--model",
            m,
            "--kafka-option",
            "security.protocol=SASL_PLAINTEXT",
            "--kafka-option",
            "sasl.mechanism=GSSAPI",
        ],
        "No provider for SASL mechanism GSSAPI",
    );
    assert_exit_64(
        &[
            "--model",
            m,
            "--kafka-option",
            "sasl.oauthbearer.method=oidc",
        ],
        "OAuth/OIDC depends on libcurl",
    );
}
