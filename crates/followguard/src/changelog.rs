//! Issue 21 (partial): the changelog topic of detector state (docs/state.md). Building
//! the records a batch's state changes make (`f/<followee>`, `m/<follower key>`,
//! `p/<partition>`; a null value is a tombstone), producing them, and restoring the
//! state of assigned partitions by reading their changelog partitions to the end.
//!
//! Not yet wired into `serve` (the ack path and the assignment hook are the next step,
//! docs/state.md "Missing"); `tests/kafka_changelog.rs` runs it against the broker.

use crate::kafka::Reader;
use crate::metrics::Metrics;
use anyhow::Context as _;
use followguard_core::detector::state::{
    FolloweeState, ModerationEntry, PartitionState, SharedState,
};
use followguard_core::pipeline::Pipeline;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for one changelog record (or a watermark lookup) during a restore.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Progress is logged at most this often during a restore.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One changelog record: partition = the input partition the state belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub key: String,
    /// `None`: a tombstone (the key holds no state any more).
    pub value: Option<Vec<u8>>,
}

/// Key of a followee's state.
pub fn followee_key(id: &str) -> String {
    format!("f/{id}")
}

/// Key of a moderation dedup entry.
pub fn moderation_key(follower_key: u64) -> String {
    format!("m/{follower_key:016x}")
}

/// Key of the lockstep (campaign link) state written with a snapshot of `partition`.
pub fn lockstep_key(partition: i32) -> String {
    format!("l/{partition}")
}

/// Key of the input offset a partition's logged state reflects.
pub fn offset_key(partition: i32) -> String {
    format!("o/{partition}")
}

/// The record saying that the state logged for `partition` reflects every input record
/// before `next_offset` (logged after that state; restore skips those records, so a
/// restored state never counts an event twice).
pub fn offset_record(partition: i32, next_offset: i64) -> Record {
    Record {
        partition,
        key: offset_key(partition),
        value: Some(next_offset.to_string().into_bytes()),
    }
}

/// Key of a partition's clocks.
pub fn clock_key(partition: i32) -> String {
    format!("p/{partition}")
}

/// The records for the state changed since the last call (the pipeline's detector must
/// track dirty state: `detector_mut().track_dirty(true)`): one per dirty followee (its
/// state, or a tombstone), one per changed moderation dedup entry, and the clocks of
/// every partition involved.
pub fn dirty_records(p: &mut Pipeline) -> Vec<Record> {
    let dirty = p.detector_mut().take_dirty();
    let moderation = p.detector_mut().take_dirty_moderation();
    let mut parts = BTreeSet::new();
    let mut out = Vec::with_capacity(dirty.len() + moderation.len() + 1);
    for (id, partition) in dirty {
        parts.insert(partition);
        out.push(Record {
            partition,
            key: followee_key(&id.to_string()),
            value: p.detector().export_followee(&id).map(|s| s.to_bytes()),
        });
    }
    for (m, partition) in moderation {
        parts.insert(partition);
        out.push(Record {
            partition,
            key: moderation_key(m.follower_key),
            value: m.last_ms.map(|_| m.to_bytes()),
        });
    }
    for partition in parts {
        if let Some(c) = p.export_clock(partition) {
            out.push(Record {
                partition,
                key: clock_key(partition),
                value: Some(c.to_bytes()),
            });
        }
    }
    out
}

/// A full snapshot of `partition`: its clocks, every followee it tracks, and the
/// instance's lockstep state (campaign links are not tracked key by key yet: between
/// snapshots their changes are not logged; docs/state.md). The snapshot cadence of
/// docs/state.md; tombstones for keys no longer held are the caller's.
pub fn snapshot_records(p: &Pipeline, partition: i32) -> Vec<Record> {
    let snap = p.detector().export_partition(partition);
    let mut out: Vec<Record> = snap
        .followees
        .iter()
        .map(|f| Record {
            partition,
            key: followee_key(&f.followee_id),
            value: Some(f.to_bytes()),
        })
        .collect();
    if let Some(c) = p.export_clock(partition) {
        out.push(Record {
            partition,
            key: clock_key(partition),
            value: Some(c.to_bytes()),
        });
    }
    let mut shared = p.detector().export_shared();
    shared.moderation.clear(); // logged per key (`m/`)
    out.push(Record {
        partition,
        key: lockstep_key(partition),
        value: Some(shared.to_bytes()),
    });
    out
}

/// Produces `records` to `topic` and waits until the broker acknowledged every one.
pub async fn produce<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    records: &[Record],
) -> anyhow::Result<()> {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let mut fr: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
            .key(r.key.as_str())
            .partition(r.partition);
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        let f = producer
            .send_result(fr)
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
        pending.push(f);
    }
    for f in pending {
        f.await
            .context("changelog delivery cancelled")?
            .map_err(|(e, _)| anyhow::anyhow!("changelog record not acknowledged: {e}"))?;
    }
    Ok(())
}

/// What a restore read and imported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restored {
    /// Records read (every version of every key).
    pub records: u64,
    /// Keys holding state at the end (after tombstones), imported or refused.
    pub keys: u64,
    /// Records skipped: undecodable, unknown key or refused on import.
    pub corrupt: u64,
    pub seconds: f64,
    /// Per partition, the input offset the restored state reflects (`o/` records):
    /// input records before it are already in the state.
    pub offsets: BTreeMap<i32, i64>,
}

/// Reads changelog partitions `partitions` of `topic` from their start to their end
/// (end of partition) and imports the last value of each key into `pipeline`
/// — clocks, then moderation dedup entries, then followees. A record that cannot be
/// decoded or imported is logged, counted (`followguard_changelog_corrupt_total`) and
/// skipped. `progress` is called after every record (health bookkeeping).
pub async fn restore(
    reader: Arc<Reader>,
    topic: &str,
    partitions: &[i32],
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    mut progress: impl FnMut(),
) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (r, t) = (reader.clone(), topic.to_string());
        let (low, high) =
            tokio::task::spawn_blocking(move || r.fetch_watermarks(&t, p, READ_TIMEOUT))
                .await
                .context("watermark task")?
                .with_context(|| format!("changelog watermarks of {topic}/{p}"))?;
        tracing::debug!(topic, partition = p, low, high, "changelog partition range");
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    let total: i64 = ends.values().sum();
    let mut latest: BTreeMap<(i32, String), Option<Vec<u8>>> = BTreeMap::new();
    // The lockstep state is a whole copy of the writer's in each partition's snapshot:
    // only the newest copy (by record time) is imported.
    let mut newest_links: Option<(i64, Vec<u8>)> = None;
    let mut out = Restored::default();
    if !ends.is_empty() {
        reader.assign(&tpl)?;
    }
    let mut last_log = Instant::now();
    while !ends.is_empty() {
        progress();
        let m = match tokio::time::timeout(READ_TIMEOUT, reader.recv())
            .await
            .context("changelog read timed out")?
        {
            Err(KafkaError::PartitionEOF(p)) => {
                tracing::debug!(partition = p, "changelog partition end");
                ends.remove(&p);
                continue;
            }
            r => r?,
        };
        let p = m.partition();
        tracing::trace!(partition = p, offset = m.offset(), "changelog record");
        if !ends.contains_key(&p) {
            continue;
        }
        // Read to the partition's end (PartitionEOF), not just to the high watermark
        // seen at the start: nobody else writes a partition being restored, and the dev
        // broker (tansu) has been seen reporting a watermark one short of its last
        // record.
        out.records += 1;
        match m.key().map(std::str::from_utf8) {
            Some(Ok(k)) if k.starts_with("l/") => {
                let ts = m.timestamp().to_millis().unwrap_or(0);
                if let Some(v) = m.payload().filter(|v| !v.is_empty()) {
                    if newest_links.as_ref().is_none_or(|(t, _)| ts >= *t) {
                        newest_links = Some((ts, v.to_vec()));
                    }
                }
            }
            Some(Ok(k)) => {
                let v = m.payload().filter(|v| !v.is_empty()).map(<[u8]>::to_vec);
                latest.insert((p, k.to_string()), v);
            }
            _ => {
                out.corrupt += 1;
                metrics.changelog_corrupt();
                tracing::warn!(
                    topic,
                    partition = p,
                    offset = m.offset(),
                    "changelog record without a text key skipped"
                );
            }
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            tracing::info!(
                topic,
                read = out.records,
                of_at_most = total,
                "restoring state"
            );
        }
    }
    reader.unassign().ok();
    if let Some((_, v)) = newest_links {
        latest.insert((-1, "l/newest".to_string()), Some(v));
    }
    // Clocks first (imports file expiry by them), then dedup entries, then followees.
    let rank = |k: &str| match k.split_once('/').map(|(kind, _)| kind) {
        Some("p") => 0,
        Some("m") | Some("l") => 1,
        _ => 2,
    };
    let mut live: Vec<(&(i32, String), &Vec<u8>)> = latest
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
    live.sort_by_key(|((p, k), _)| (rank(k), *p, k.clone()));
    for ((p, key), value) in live {
        out.keys += 1;
        let result = match key.split_once('/').map(|(kind, _)| kind) {
            Some("p") => PartitionState::from_bytes(value).and_then(|s| pipeline.import_clock(&s)),
            Some("o") => std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .map(|o| {
                    out.offsets.insert(*p, o);
                })
                .ok_or(followguard_core::detector::state::StateError::Malformed(
                    "offset record",
                )),
            Some("l") => SharedState::from_bytes(value)
                .and_then(|s| pipeline.detector_mut().import_shared(&s)),
            Some("m") => ModerationEntry::from_bytes(value)
                .and_then(|s| pipeline.detector_mut().import_moderation(&s)),
            Some("f") => FolloweeState::from_bytes(value)
                .and_then(|s| pipeline.detector_mut().import_followee(&s)),
            _ => Err(followguard_core::detector::state::StateError::Malformed(
                "unknown changelog key",
            )),
        };
        if let Err(e) = result {
            out.corrupt += 1;
            metrics.changelog_corrupt();
            tracing::warn!(topic, partition = *p, key = %key.chars().take(80).collect::<String>(), error = %e,
                "changelog record skipped");
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    metrics.restored(out.records, out.seconds);
    tracing::info!(topic, partitions = ?partitions, records = out.records, keys = out.keys,
        corrupt = out.corrupt, seconds = out.seconds, "state restored from the changelog");
    Ok(out)
}

/// Partitions of `topic` the broker reports (0: the topic does not exist).
/// Partitions of `topic` (0: unknown); also used by the link stage's topic setup.
pub(crate) async fn partition_count(reader: &Arc<Reader>, topic: &str) -> usize {
    let (r, t) = (reader.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        r.fetch_metadata(Some(&t), READ_TIMEOUT)
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|mt| mt.name() == t && mt.error().is_none())
                    .map(|mt| mt.partitions().len())
            })
            .unwrap_or(0)
    })
    .await
    .unwrap_or(0)
}

/// Creates the changelog topic when it does not exist: as many partitions as
/// `input_topic` (restore reads changelog partition *p* for input partition *p*) and
/// `cleanup.policy=compact`. An existing changelog with fewer partitions than the input is
/// an error. Nothing is done while the input topic does not exist yet (logged).
pub async fn ensure_topic(
    kafka_cfg: &crate::config::KafkaConfig,
    topic: &str,
    input_topic: &str,
) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let reader = Arc::new(crate::kafka::reader(&crate::kafka::replay_config(
        kafka_cfg,
        "followguard.changelog-setup",
    ))?);
    let input = partition_count(&reader, input_topic).await;
    if input == 0 {
        tracing::warn!(
            topic,
            input_topic,
            "input topic not found; changelog topic not checked"
        );
        return Ok(());
    }
    let have = partition_count(&reader, topic).await;
    if have > 0 {
        anyhow::ensure!(
            have >= input,
            "changelog topic {topic} has {have} partitions, fewer than the {input} of {input_topic}"
        );
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        crate::kafka::producer_config(kafka_cfg, crate::kafka::SERVE_MESSAGE_TIMEOUT)
            .create()
            .map_err(|e| crate::kafka::config_error("admin client", e))?;
    let partitions = i32::try_from(input).unwrap_or(i32::MAX);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(READ_TIMEOUT));
    for r in admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| anyhow::anyhow!("creating changelog topic {topic}: {e}"))?
    {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating changelog topic {name}: {code}"),
        }
    }
    tracing::info!(
        topic,
        partitions,
        "changelog topic created (cleanup.policy=compact)"
    );
    Ok(())
}
