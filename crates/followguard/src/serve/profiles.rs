//! Issue 24: the profile table of `serve` (the core's `profiles::ProfileTable`) fed from
//! the compacted `--profile-topic`, the Kafka Streams GlobalKTable way: every instance
//! assigns itself every partition of the topic from the beginning (no group: profiles
//! are keyed by follower and follows by followee, so no instance could own "its"
//! profiles), reads it to the end before the first follow is consumed, then keeps
//! tailing it. A record with no value (tombstone) deletes the account.

use crate::config::ServeConfig;
use crate::kafka;
use crate::metrics::Metrics;
use anyhow::Context as _;
use followguard_core::profiles::ProfileTable;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The table and whether its first full read is done; shared with the consume loop.
#[derive(Clone)]
pub(crate) struct ProfileFeed {
    pub table: Arc<RwLock<ProfileTable>>,
    caught_up: Arc<AtomicBool>,
}

impl ProfileFeed {
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }
}

/// Starts the reader task of `cfg.input.profile_topic` (none without one) and waits,
/// reporting progress, until the topic has been read to its end (or `stop`).
pub(super) async fn start(
    cfg: &ServeConfig,
    metrics: &Metrics,
    admin: &Arc<crate::admin::AdminState>,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(ProfileFeed, tokio::task::JoinHandle<()>)>> {
    let Some(topic) = cfg.input.profile_topic.clone() else {
        return Ok(None);
    };
    let mut config = kafka::replay_config(&cfg.kafka, &format!("{}.profiles", cfg.group_id));
    // Profiles arrive at any rate: fetch them as they come.
    config.set("fetch.wait.max.ms", "100");
    let reader = Arc::new(kafka::reader(&config)?);
    let r = reader.clone();
    let t = topic.clone();
    let meta = tokio::task::spawn_blocking(move || r.fetch_metadata(Some(&t), METADATA_TIMEOUT))
        .await
        .context("profile topic metadata task")?
        .with_context(|| format!("reading the metadata of --profile-topic {topic}"))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(crate::ConfigError(format!(
            "--profile-topic {topic} has no partitions (create it, compacted, keyed by account id)"
        ))
        .into());
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(&topic, *p, Offset::Beginning)?;
    }
    reader.assign(&tpl)?;
    let feed = ProfileFeed {
        table: Arc::new(RwLock::new(ProfileTable::new(
            cfg.input.profile_table_bytes,
        ))),
        caught_up: Arc::new(AtomicBool::new(false)),
    };
    let task = tokio::spawn(tail(
        reader,
        feed.clone(),
        partitions.into_iter().collect(),
        metrics.clone(),
        stop.clone(),
    ));
    while !feed.caught_up() && !stop.is_cancelled() && !task.is_finished() {
        admin.progress();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = feed.table.read().map(|t| t.len()).unwrap_or(0);
    tracing::info!(topic = %topic, profiles = n, "profile table loaded");
    Ok(Some((feed, task)))
}

/// Applies every record of the topic to the table until `stop`; marks the feed caught up
/// once every partition has reported its end once.
async fn tail(
    reader: Arc<kafka::Reader>,
    feed: ProfileFeed,
    mut not_at_end: HashSet<i32>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        let m = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            m = reader.recv() => m,
        };
        match m {
            Err(KafkaError::PartitionEOF(p)) => {
                not_at_end.remove(&p);
                if not_at_end.is_empty() {
                    feed.caught_up.store(true, Ordering::Release);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "profile topic read failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(m) => {
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
                let Ok(mut table) = feed.table.write() else {
                    return;
                };
                let result = match (table.apply(key, m.payload()), m.payload()) {
                    (Ok(()), None) => "tombstone",
                    (Ok(()), Some(_)) => "applied",
                    (Err(e), _) => {
                        tracing::debug!(error = %e, "profile record rejected");
                        "rejected"
                    }
                };
                metrics.input.profile_record(result);
                metrics
                    .input
                    .profile_table(table.bytes(), table.len(), table.evicted());
            }
        }
    }
}
