//! Issue 24 on a real broker: the model file and the operating threshold are reloaded
//! live (`POST /admin/reload`, as SIGHUP does) while `serve` works through a stream,
//! without a restart: every event is processed once, offsets reach the end, detector
//! state carries on (no alert opened twice), and the model identity follows the file.

mod kafka_support;

use kafka_support::*;
use std::time::{Duration, Instant};

#[test]
fn model_and_threshold_reload_under_load_loses_no_event() {
    let Some(mut env) = env() else { return };
    let (events, _) = env.generate("reload", &Stream::small_campaigns(11));
    let n = std::fs::read(&events)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    // The service reads its model from a copy the test replaces while it runs.
    let shipped = model_path();
    let model = env.tmp.path().join("live-model.json");
    std::fs::copy(&shipped, &model).unwrap();
    env.model = model.clone();
    let other = shipped.with_file_name("lovo-TWT.json");
    // A shadow model too, reloaded with the live one.
    let shadow = env.tmp.path().join("shadow-model.json");
    std::fs::copy(shipped.with_file_name("lovo-INT.json"), &shadow).unwrap();

    let t = Topics::new("reload");
    env.create_topics(&t);
    let group = unique("g");
    let mut svc = env.serve_in_process(
        &t,
        &group,
        &[
            "--prepare-threads",
            "1",
            "--shadow-model",
            shadow.to_str().unwrap(),
        ],
    );
    svc.wait_ready(Duration::from_secs(60));
    let before = svc.metrics();
    let first_version = http_get(svc.port, "/info").unwrap().1;

    // The stream in three parts: the third is produced only once every reload has been
    // applied, so each reload lands while events are still flowing.
    let text = std::fs::read(&events).unwrap();
    let lines: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let third = lines.len() / 3;
    let parts = [
        env.write_lines("part1.jsonl", &lines[..third]),
        env.write_lines("part2.jsonl", &lines[third..2 * third]),
        env.write_lines("part3.jsonl", &lines[2 * third..]),
    ];
    let port = svc.port;
    let post = |path: &str| http_post(port, path).map(|(status, _)| status);
    let reloads = |result: &str| {
        metric(
            &svc.metrics(),
            &format!("followguard_model_reloads_total{{result=\"{result}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !what() {
            assert!(start.elapsed() < Duration::from_secs(60), "timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let mut events_at_reload = Vec::new();
    std::thread::scope(|scope| {
        let (env, t, parts) = (&env, &t, &parts);
        scope.spawn(move || {
            env.produce(&parts[0], &t.input);
            env.produce(&parts[1], &t.input);
            let _ = gate.recv();
            env.produce(&parts[2], &t.input);
        });
        wait_for(&|| metric_sum(&svc.metrics(), "followguard_events_total") >= (n / 10) as f64);
        // The same file with a threshold override; a bad override is refused.
        assert_eq!(post("/admin/reload?threshold=7"), Some(400));
        assert_eq!(post("/admin/reload?zz=1"), Some(400));
        assert_eq!(
            post("/admin/reload?threshold=0.6&z=5&p_floor=0.06"),
            Some(202)
        );
        wait_for(&|| reloads("ok") >= 1.0);
        events_at_reload.push(metric_sum(&svc.metrics(), "followguard_events_total"));
        // A file that does not load: the running model stays.
        std::fs::write(&model, b"{not a model").unwrap();
        assert_eq!(post("/admin/reload"), Some(202));
        wait_for(&|| reloads("failed") >= 1.0);
        // A different model, and a different shadow.
        std::fs::copy(&other, &model).unwrap();
        std::fs::copy(shipped.with_file_name("lovo-FSF.json"), &shadow).unwrap();
        assert_eq!(post("/admin/reload"), Some(202));
        wait_for(&|| reloads("ok") >= 2.0);
        events_at_reload.push(metric_sum(&svc.metrics(), "followguard_events_total"));
        let _ = go.send(());
    });
    assert!(
        events_at_reload.iter().all(|&e| e < n as f64),
        "reloaded mid-stream: {events_at_reload:?} of {n}"
    );
    let m = svc.wait_events(n as f64, Duration::from_secs(120));
    assert_eq!(
        metric_sum(&m, "followguard_events_total"),
        n as f64,
        "each event once"
    );
    assert_eq!(
        metric(&m, "followguard_model_reloads_total{result=\"ok\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&m, "followguard_model_reloads_total{result=\"failed\"}"),
        Some(1.0)
    );
    // The identity gauge names the reloaded model only.
    let info: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("followguard_model_info{"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(info[0].contains("fg-rf-lovo-TWT"), "{info:?}");
    let shadow_info: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("followguard_shadow_model_info{"))
        .collect();
    assert_eq!(shadow_info.len(), 1, "{shadow_info:?}");
    assert!(shadow_info[0].contains("fg-rf-lovo-FSF"), "{shadow_info:?}");
    assert!(metric_sum(&m, "followguard_shadow_follows_total") > 0.0);
    assert!(before.contains("followguard_model_info{"));
    // Detector state carried on: the campaigns are alerted, none opened twice.
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    let (opened, duplicates) = opened(&alerts);
    assert!(!opened.is_empty());
    assert_eq!(duplicates, 0);
    // Every offset committed: nothing lost or held back by the reloads.
    let input = env.read_all(&t.input, n);
    let ends = end_offsets(&input);
    let start = Instant::now();
    while committed(&env.brokers, &group, &t.input) != ends {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "offsets not committed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!first_version.contains("lovo"));
    svc.sigterm();
    assert!(svc.wait_exit(Duration::from_secs(20)).is_some());
}
