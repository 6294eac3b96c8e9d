//! The `replay` driver on the core's golden stream (`followguard-core/tests/golden`):
//! `run_lines` reproduces the recorded alert records and the recorded counts, so the file
//! driver adds nothing to and drops nothing from what `Pipeline::process` decides.

use followguard::replay::{load_model, run_lines};
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use std::path::{Path, PathBuf};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../followguard-core/tests/golden")
        .join(name)
}

#[test]
fn replay_reproduces_the_golden_records_and_counts() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
    let model = load_model(&shipped).expect("shipped model");
    let mut p = Pipeline::new(model, PipelineConfig::default());
    let input = std::fs::File::open(golden("small.jsonl")).expect("golden input");
    let (mut alerts, mut moderation) = (Vec::new(), 0usize);
    let s = run_lines(
        &mut p,
        std::io::BufReader::new(input),
        |o| {
            for a in &o.alerts {
                alerts.push(serde_json::to_string(a)?);
            }
            moderation += o.moderation.len();
            Ok(())
        },
        |_| {},
    )
    .expect("replay runs");

    let expected = std::fs::read_to_string(golden("small.expected.jsonl")).expect("golden");
    let recorded: Vec<&str> = expected.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(alerts, recorded);
    assert!(expected.contains(&format!("\n# moderation records: {moderation}\n")));
    assert_eq!(s.moderation_records, moderation as u64);
    // The recorded counts, `# summary: events=N follows=N …`, against the driver's.
    let recorded: Vec<(&str, u64)> = expected
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("# summary: "))
        .expect("a summary line")
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().expect("a count")))
        .collect();
    let counted = [
        ("events", s.events),
        ("follows", s.follows),
        ("unfollows", s.unfollows),
        ("suspicious", s.suspicious_follows),
        ("opened", s.alerts_open),
        ("updates", s.alerts_update),
        ("resolved", s.alerts_resolved),
    ];
    assert_eq!(recorded, counted);
    assert_eq!(s.lines, s.events + s.rejected.values().sum::<u64>());
    assert_eq!(s.rejected.values().sum::<u64>(), 3);
}
