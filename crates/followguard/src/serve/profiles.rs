//! Issue 24: the profile table of `serve` (the core's `profiles::ProfileTable`) fed from
//! the compacted `--profile-topic`, the Kafka Streams GlobalKTable way: every instance
//! assigns itself every partition of the topic from the beginning (no group: profiles
//! are keyed by follower and follows by followee, so no instance could own "its"
//! profiles), reads it to the end before the first follow is consumed, then keeps
//! tailing it. A record with no value (tombstone) deletes the account. The same reader
//! (`read_global`) feeds moderators' decisions (`--decisions-topic`) to the consume loop.

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

/// The table, shared with the consume loop.
#[derive(Clone)]
pub(crate) struct ProfileFeed {
    pub table: Arc<RwLock<ProfileTable>>,
}

/// Issue 24: decisions read from `--decisions-topic`, waiting for the consume loop
/// (which applies them between chunks, so a verdict never lands mid-chunk).
pub(crate) type DecisionQueue = Arc<std::sync::Mutex<Vec<followguard_core::decisions::Decision>>>;

/// Starts the reader of `cfg.input.decisions_topic` (none without one); returns once
/// every decision already on the topic is queued.
pub(super) async fn start_decisions(
    cfg: &ServeConfig,
    metrics: &Metrics,
    admin: &Arc<crate::admin::AdminState>,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(DecisionQueue, tokio::task::JoinHandle<()>)>> {
    let Some(topic) = cfg.input.decisions_topic.clone() else {
        return Ok(None);
    };
    let queue: DecisionQueue = Arc::default();
    let q = queue.clone();
    let m = metrics.clone();
    let apply = move |_: Option<&str>, value: Option<&[u8]>| {
        let Some(value) = value else { return };
        match followguard_core::decisions::parse(value) {
            Ok(d) => {
                m.input.decision(d.verdict.name());
                if let Ok(mut q) = q.lock() {
                    q.push(d);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "decision record rejected");
                m.input.decision("rejected");
            }
        }
    };
    let (_, task) = read_global(cfg, &topic, "decisions", apply, admin, stop).await?;
    Ok(Some((queue, task)))
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
    let table = Arc::new(RwLock::new(ProfileTable::new(
        cfg.input.profile_table_bytes,
    )));
    let t = table.clone();
    let m = metrics.clone();
    let apply = move |key: Option<&str>, value: Option<&[u8]>| {
        let Ok(mut table) = t.write() else {
            return;
        };
        let result = match (table.apply(key, value), value) {
            (Ok(()), None) => "tombstone",
            (Ok(()), Some(_)) => "applied",
            (Err(e), _) => {
                tracing::debug!(error = %e, "profile record rejected");
                "rejected"
            }
        };
        m.input.profile_record(result);
        m.input
            .profile_table(table.bytes(), table.len(), table.evicted());
    };
    let (_, task) = read_global(cfg, &topic, "profiles", apply, admin, stop).await?;
    let n = table.read().map(|t| t.len()).unwrap_or(0);
    tracing::info!(topic = %topic, profiles = n, "profile table loaded");
    Ok(Some((ProfileFeed { table }, task)))
}

/// Reads every partition of `topic` from the beginning, group-less, handing each record
/// (key, value; `None` value = tombstone) to `apply`, on a task that runs until `stop`.
/// Returns once the topic has been read to its end (every partition reported its end
/// once), with the flag that says so and the task. Used for the profile table and the
/// decisions topic (issue 24): tables every instance needs whole.
pub(super) async fn read_global(
    cfg: &ServeConfig,
    topic: &str,
    what: &str,
    apply: impl FnMut(Option<&str>, Option<&[u8]>) + Send + 'static,
    admin: &Arc<crate::admin::AdminState>,
    stop: &CancellationToken,
) -> anyhow::Result<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)> {
    let mut config = kafka::replay_config(&cfg.kafka, &format!("{}.{what}", cfg.group_id));
    // Table updates arrive at any rate: fetch them as they come.
    config.set("fetch.wait.max.ms", "100");
    let reader = Arc::new(kafka::reader(&config)?);
    let r = reader.clone();
    let t = topic.to_string();
    let meta = tokio::task::spawn_blocking(move || r.fetch_metadata(Some(&t), METADATA_TIMEOUT))
        .await
        .context("topic metadata task")?
        .with_context(|| format!("reading the metadata of the {what} topic {topic}"))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(crate::ConfigError(format!(
            "the {what} topic {topic} has no partitions (create it, compacted, keyed by id)"
        ))
        .into());
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    reader.assign(&tpl)?;
    let caught_up = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(tail(
        reader,
        caught_up.clone(),
        partitions.into_iter().collect(),
        apply,
        stop.clone(),
    ));
    while !caught_up.load(Ordering::Acquire) && !stop.is_cancelled() && !task.is_finished() {
        admin.progress();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((caught_up, task))
}

/// Applies every record to `apply` until `stop`; sets `caught_up` once every partition
/// has reported its end once.
async fn tail(
    reader: Arc<kafka::Reader>,
    caught_up: Arc<AtomicBool>,
    mut not_at_end: HashSet<i32>,
    mut apply: impl FnMut(Option<&str>, Option<&[u8]>),
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
                    caught_up.store(true, Ordering::Release);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "table topic read failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(m) => apply(
                m.key().and_then(|k| std::str::from_utf8(k).ok()),
                m.payload(),
            ),
        }
    }
}
