//! Issue #23, the command line as an operator meets it: `serve --help` grouped under
//! headings with every detector flag's default, shell completions and man pages generated
//! by clap's own crates, and fatal errors as one JSON line under `--log-format json`.

use std::process::{Command, Output};

fn followguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_followguard"))
        .args(args)
        .output()
        .expect("run followguard")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn serve_help_is_grouped_and_shows_detector_defaults() {
    let o = followguard(&["serve", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Kafka:",
            "Detector:",
            "Model:",
            "Admin HTTP:",
            "Processing:",
            "Webhook:",
            "Logging:",
            "Input:"
        ]
    );
    // Issue 24's input flags sit under their own heading.
    let input = help.split("\nInput:\n").nth(1).unwrap_or_default();
    for flag in [
        "--input-format",
        "--profile-topic",
        "--profile-wait",
        "--decisions-topic",
    ] {
        assert!(input.contains(flag), "{flag} under Input:\n{input}");
    }
    // Every detector flag that takes a value shows its default.
    let detector = help
        .split("Detector:")
        .nth(1)
        .and_then(|s| s.split("Model:").next())
        .unwrap_or_default();
    let flags: Vec<&str> = detector
        .split("\n      --")
        .skip(1)
        .filter(|f| f.contains(" <"))
        .collect();
    assert!(flags.len() >= 14, "{detector}");
    for f in flags {
        assert!(f.contains("[default: "), "no default shown: --{f}");
    }
    assert!(
        detector.contains("[env: FOLLOWGUARD_Z=] [default: 5]"),
        "{detector}"
    );
}

#[test]
fn completions_and_man_pages() {
    let o = followguard(&["completions", "bash"]);
    assert!(o.status.success());
    let bash = stdout(&o);
    assert!(bash.contains("_followguard()") && bash.contains("healthcheck"));
    let o = followguard(&["completions", "zsh"]);
    assert!(o.status.success() && stdout(&o).contains("#compdef followguard"));
    let o = followguard(&["man"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains(".TH followguard 1"));
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    assert!(followguard(&["man", "--out-dir", d]).status.success());
    let serve = std::fs::read_to_string(dir.path().join("followguard-serve.1")).expect("page");
    assert!(serve.contains("webhook\\-resend\\-interval"), "{serve}");
    assert!(dir.path().join("followguard-healthcheck.1").is_file());
}

#[test]
fn fatal_errors_honour_log_format_json() {
    let o = followguard(&[
        "serve",
        "--log-format",
        "json",
        "--brokers",
        "127.0.0.1:9",
        "--model",
        "/nonexistent/model.json",
    ]);
    assert_eq!(o.status.code(), Some(64));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).expect("one JSON line");
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["fields"]["exit_code"], 64);
    assert!(v["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("/nonexistent/model.json")));
    // Text format: the plain `error:` line.
    let o = followguard(&[
        "serve",
        "--brokers",
        "127.0.0.1:9",
        "--model",
        "/nonexistent/m.json",
    ]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error: --model"));
}
