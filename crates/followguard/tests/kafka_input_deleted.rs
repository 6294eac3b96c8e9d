//! Issue 21, what an operator may do to a running service: delete the input topic under
//! `serve`, or delete and re-create it under the same name. The service stops with a
//! message saying what happened and what to do (a failed exit, never a signal).
//!
//! Before the guard in `src/kafka/leader_guard.rs` this killed the process (SIGSEGV)
//! within ~50-150 ms of the DeleteTopics on tansu, in librdkafka 2.12.1's main thread:
//! `rd_kafka_poll_cb` (op `METADATA_UPDATE`, from `rd_kafka_handle_Fetch_metadata_update`,
//! the KIP-951 leader hints of a Fetch v16 response) → `rd_kafka_metadata_update_op` →
//! `rd_kafka_metadata_cache_find(rk, NULL)` → `strcmp(NULL, …)`: tansu answers the fetch of
//! a deleted topic with a zero topic id and `CurrentLeader` / `NodeEndpoints` tags, and
//! librdkafka's leader-discovery code never names the topic. docs/state.md, "The input
//! topic deleted".

mod kafka_support;

use kafka_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// Deletes `t`'s input under a running `serve` (re-creating it with `recreate`) and
/// checks the service stops with the message: a failed exit, no signal. Returns the
/// message line.
fn delete_under_serve(name: &str, seed: u64, recreate: bool) -> Option<String> {
    let env = env()?;
    let (events, _) = env.generate(name, &Stream::small_campaigns(seed));
    let t = Topics::new(name);
    env.create_topics(&t);
    let mut svc = env.serve(&t, &unique("g"), &[]);
    assert!(
        svc.wait_ready(Duration::from_secs(60)),
        "{}",
        svc.log_text()
    );
    env.produce(&events, &t.input);
    svc.wait_events(100.0, Duration::from_secs(60));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = AdminOptions::new();
    let deleted = rt
        .block_on(admin.delete_topics(&[&t.input], &opts))
        .unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    let start = Instant::now();
    if recreate {
        let topic = NewTopic::new(&t.input, PARTITIONS, TopicReplication::Fixed(1));
        let created = rt.block_on(admin.create_topics(&[topic], &opts)).unwrap();
        assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
        env.produce(&events, &t.input);
    }
    let exit = svc.wait_exit(Duration::from_secs(30));
    let log = svc.log_text();
    let Some(Exit::Process(status)) = &exit else {
        panic!("serve still running 30 s after its input was deleted ({exit:?}):\n{log}");
    };
    assert!(
        status.signal().is_none() && status.code().is_some_and(|c| c != 0),
        "a failed exit, no signal: {status:?} after {:?}:\n{log}",
        start.elapsed()
    );
    let line = log
        .lines()
        .find(|l| l.contains(&format!("input topic {} was deleted", t.input)))
        .unwrap_or_else(|| panic!("the message naming the deleted input:\n{log}"))
        .to_string();
    assert!(line.contains("new --group-id"), "what to do: {line}");
    eprintln!("stopped after {:?} ({status}): {line}", start.elapsed());
    Some(line)
}

/// The input deleted while `serve` consumes it: a failed exit with the message.
#[test]
fn the_input_deleted_under_serve_stops_it_with_a_message() {
    delete_under_serve("del", 41, false);
}

/// The input deleted and at once re-created under the same name (new records in it):
/// the same stop; the message says "re-created" when the watch saw the new topic id
/// before it saw the topic missing (both orders are possible; `judge_input`'s unit test
/// covers each).
#[test]
fn the_input_deleted_and_re_created_under_serve_stops_it_with_a_message() {
    delete_under_serve("recreated", 43, true);
}
