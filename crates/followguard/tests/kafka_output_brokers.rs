//! Issue #19, `--output-brokers`: the output topics (alerts, moderation, dead letters) on
//! another cluster than the input. A second private tansu broker is started next to the
//! test broker; serve reads the input from the first and every output record lands on
//! the second, none on the first, and the input offsets are committed on the first.

mod kafka_support;

use kafka_support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A second broker (scripts/broker.sh with its own run dir and port), stopped on drop.
struct SecondBroker {
    dir: PathBuf,
    brokers: String,
}

fn broker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/broker.sh")
}

impl SecondBroker {
    fn start(dir: PathBuf) -> SecondBroker {
        let port = free_port();
        let out = Command::new(broker_script())
            .args(["start", &port.to_string()])
            .env("FOLLOWGUARD_BROKER_DIR", &dir)
            .output()
            .expect("run scripts/broker.sh");
        assert!(
            out.status.success(),
            "second broker did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let brokers = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!brokers.is_empty(), "broker.sh printed no address");
        SecondBroker { dir, brokers }
    }
}

impl Drop for SecondBroker {
    fn drop(&mut self) {
        let _ = Command::new(broker_script())
            .arg("stop")
            .env("FOLLOWGUARD_BROKER_DIR", &self.dir)
            .output();
    }
}

#[test]
fn outputs_land_on_the_output_cluster() {
    let Some(env) = env() else { return };
    let out = SecondBroker::start(env.tmp.path().join("broker2"));
    assert_ne!(out.brokers, env.brokers);
    let (events, _truth) = env.generate("outbrokers", &Stream::small_campaigns(5));
    // Malformed lines, so the dead-letter topic has something to carry too.
    let lines = with_malformed(&events, 500);
    let input = env.write_lines("outbrokers-input", &lines);
    let t = Topics::new("outbrokers");
    // Every topic on both clusters: the outputs must stay empty on the input cluster.
    env.create_topics(&t);
    let out_env = Env {
        brokers: out.brokers.clone(),
        bin: env.bin.clone(),
        model: env.model.clone(),
        tmp: tempfile::tempdir().expect("temp dir"),
    };
    out_env.create_topics(&t);

    let group = unique("g");
    let mut svc = env.serve(&t, &group, &["--output-brokers", &out.brokers]);
    svc.wait_ready(Duration::from_secs(60));
    env.produce(&input, &t.input);
    let inputs = read_topic(
        &env.brokers,
        &t.input,
        1,
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    assert_eq!(inputs.len(), lines.len());
    let m = svc.wait_events(inputs.len() as f64, Duration::from_secs(120));
    let alerts_counted = metric_sum(&m, "followguard_alerts_total");
    assert!(alerts_counted > 0.0, "the stream's campaigns were alerted");

    // Input offsets are committed on the input cluster once the outputs are acknowledged
    // by the output cluster.
    let end = end_offsets(&inputs);
    let started = Instant::now();
    loop {
        let c = committed(&env.brokers, &group, &t.input);
        if end.iter().all(|(p, e)| c.get(p) == Some(e)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{c:?} {end:?}\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let idle = Duration::from_secs(1);
    let alerts = read_topic(&out.brokers, &t.alerts, 1, idle, Duration::from_secs(30));
    assert_eq!(alerts.len() as f64, alerts_counted);
    let moderation = read_topic(
        &out.brokers,
        &t.moderation,
        1,
        idle,
        Duration::from_secs(30),
    );
    assert!(
        !moderation.is_empty(),
        "moderation records on the output cluster"
    );
    let dlq = read_topic(&out.brokers, &t.dlq, 1, idle, Duration::from_secs(30));
    let malformed = lines.len() - std::fs::read_to_string(&events).map_or(0, |s| s.lines().count());
    assert_eq!(dlq.len(), malformed, "every malformed line dead-lettered");
    let (opened, dup) = opened(&alerts);
    assert!(!opened.is_empty());
    assert_eq!(dup, 0, "duplicate opens");
    for topic in [&t.alerts, &t.moderation, &t.dlq] {
        let stray = read_topic(&env.brokers, topic, 0, idle, Duration::from_secs(5));
        assert!(
            stray.is_empty(),
            "{topic} on the input cluster holds {} records",
            stray.len()
        );
    }
    svc.sigterm();
    svc.wait_exit(Duration::from_secs(20));
}
