//! Issue #23: Alertmanager's resend contract across instances. An instance resends its open
//! alerts on a timer; when it stops and another takes its partitions over, the new owner
//! rebuilds the state and resends the alerts still open, with no new input, so
//! Alertmanager does not resolve a burst that is still going on.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Alert ids whose last record on the alerts topic is not `resolved`.
fn still_open(records: &[Rec]) -> BTreeSet<String> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("alert JSON");
        if let (Some(id), Some(status)) = (v["alert_id"].as_str(), v["status"].as_str()) {
            last.insert(id.to_string(), status.to_string());
        }
    }
    last.into_iter()
        .filter(|(_, s)| s != "resolved")
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn the_next_owner_resends_the_alerts_still_open() {
    let Some(env) = env() else { return };
    let (events, truth) = env.generate("adopt", &Stream::small_campaigns(41));
    // The stream ends with the last campaign, so its bursts are still open.
    let lines = lines_until_last_campaign_end(&events, &truth);
    let input = env.write_lines("adopt-cut.jsonl", &lines);

    let t = Topics::new("adopt");
    env.create_topics(&t);
    let group = unique("g");
    let first = AlertReceiver::start();
    let flags = |url: &str| {
        vec![
            "--webhook-url".to_string(),
            url.to_string(),
            "--webhook-resend-interval".to_string(),
            "300ms".to_string(),
        ]
    };
    let a_flags = flags(&first.url);
    let a_flags: Vec<&str> = a_flags.iter().map(String::as_str).collect();
    let mut a = env.serve(&t, &group, &a_flags);
    a.wait_ready(Duration::from_secs(60));
    env.produce(&input, &t.input);
    let m = a.wait_events(lines.len() as f64, Duration::from_secs(120));
    let n_alerts = metric_sum(&m, "followguard_alerts_total") as usize;
    let open = still_open(&env.read_all(&t.alerts, n_alerts));
    assert!(!open.is_empty(), "the cut stream leaves bursts open");
    // The first instance resends them on its timer.
    std::thread::sleep(Duration::from_secs(1));
    let posted = first.open_posts();
    for id in &open {
        assert!(
            posted.get(id).copied().unwrap_or(0) >= 2,
            "{id} resent: {posted:?}"
        );
    }
    a.sigterm();
    assert!(a
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|e| e.success()));

    // The next owner: no new input, yet it posts every alert still open, again and again.
    let second = AlertReceiver::start();
    let b_flags = flags(&second.url);
    let b_flags: Vec<&str> = b_flags.iter().map(String::as_str).collect();
    let mut b = env.serve(&t, &group, &b_flags);
    b.wait_ready(Duration::from_secs(60));
    let start = Instant::now();
    loop {
        let posted = second.open_posts();
        if open
            .iter()
            .all(|id| posted.get(id).copied().unwrap_or(0) >= 2)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the next owner resent {posted:?}, want every one of {open:?} twice\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(b.log_text().contains("open alerts adopted for resending"));
    b.sigterm();
    assert!(b
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|e| e.success()));
}
