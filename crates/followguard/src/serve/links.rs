//! Issue 21, cross-instance campaigns: the Kafka edge of the follower-keyed link stage
//! (the logic is `followguard_core::links`). docs/state.md, "Cross-instance campaigns".
//!
//! The consume loop produces every flagged follow of an open alert to `--links-topic`,
//! keyed by follower id, on the same acknowledgement path as the alerts (an input offset
//! is stored only once its links are acknowledged). This task is a second member of the
//! service's consumer group, subscribed to the links topic and `<links-topic>-pairs`
//! (one partition): Kafka Streams' repartition topic and sub-topology. For each record
//! of a links partition it owns it runs that partition's [`FollowerStage`] and produces
//! the pair counts to the pairs topic; the member owning the pairs partition runs the
//! [`CampaignGraph`] and produces campaign records to `--campaigns-topic`. Offsets of
//! both are stored only after what the records produced is acknowledged.
//!
//! State on assignment (bounded restore): each owner writes a snapshot of a partition's
//! stage to the partition's state topic (`<links-topic>-state` per links partition,
//! `<links-topic>-pairs-state` for the graph) once it processed `--links-snapshot-records`
//! records since the last one, after their outputs are acknowledged (Flink's full
//! checkpoint with the source offset, counted in records): the changelog's snapshot format
//! (`changelog::chunk_snapshot`: `s/<p>` markers, state chunks, the `o/<p>` offset it
//! reflects). Before the first record of a newly assigned partition is processed, its
//! latest complete snapshot is read and the partition is re-read from the snapshot's
//! offset up to that record with outputs muted (a group-less reader); without a snapshot,
//! from its beginning. Both stages are functions of their input and re-delivery is
//! idempotent, so the state is the previous owner's; a restore reads one snapshot plus
//! fewer than `--links-snapshot-records` records, not the partition's history. On
//! revoke (a rebalance hands the partition to another member, or back to this one), the
//! revoke is not completed inside librdkafka's callback: the loop first writes a
//! snapshot of each revoked partition that processed records since its last one (its
//! outputs are acknowledged: the snapshot reflects every record before its stored
//! offset), commits the offsets, drops the state and only then releases the partitions,
//! so their next owner restores from that snapshot and re-reads next to nothing.

use super::ack::{self, Ack};
use crate::config::{KafkaConfig, LinksConfig};
use crate::kafka::{self, LogContext, OutRecord, OutputProducers, OutputTopics};
use crate::metrics::Metrics;
use crate::sink::Sink;
use followguard_core::links::{
    CampaignGraph, CampaignRecord, FlaggedLink, FollowerChunk, FollowerStage, GraphChunk,
    LinkConfig, PairCount, StageCounts,
};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most records taken into one acknowledgement round.
const BATCH: usize = 512;
/// Longest wait for one record while rebuilding a partition's state.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Estimated JSON bytes per snapshot record (well below the broker's 1 MB default).
const CHUNK_BYTES: usize = 256 << 10;
/// Longest wait for a message before the loop looks at revokes queued meanwhile.
const REVOKE_TICK: Duration = Duration::from_millis(200);
/// Longest a revoke's snapshots and commit may take before the partitions are released
/// anyway (the next owner then restores from the previous snapshot).
const REVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the link stage works with.
pub(super) struct Parts {
    /// The input cluster (where the group and the internal topics live).
    pub kafka: KafkaConfig,
    pub group_id: String,
    pub links: LinksConfig,
    pub stage: LinkConfig,
    pub producers: OutputProducers,
    pub topics: OutputTopics,
    pub metrics: Metrics,
    pub stop: CancellationToken,
    pub give_up: CancellationToken,
    pub stall_warn: Duration,
    /// `--leave-group-on-shutdown`.
    pub leave_group: bool,
}

/// Consumer context: librdkafka logs into tracing; revoked link-stage partitions queued
/// for the loop, which drops their state. While `defer` is set (the loop runs), a revoke
/// is not completed in the callback: the loop snapshots the partitions first and then
/// releases them ([`release`]).
struct LinkContext {
    revoked: Arc<Mutex<Vec<Revoked>>>,
    defer: Arc<std::sync::atomic::AtomicBool>,
    /// The member's stretches without a poll
    /// (`followguard_consumer_poll_gap_seconds{consumer="links"}`).
    poll_gap: crate::kafka::PollGap,
}

/// A revoked link-stage partition queued for the loop, and whether it still waits to be
/// released (a deferred revoke).
type Revoked = ((String, i32), bool);

impl ClientContext for LinkContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        LogContext.log(level, fac, msg);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LogContext.error(error, reason);
    }
}

impl crate::kafka::PollGapContext for LinkContext {
    fn poll_gap(&self) -> Option<&crate::kafka::PollGap> {
        Some(&self.poll_gap)
    }
}

impl ConsumerContext for LinkContext {
    /// As rust-rdkafka's default, except that a revoke while the loop runs is left for the
    /// loop to complete (after it snapshotted the partitions), as the main consumer's.
    fn rebalance(
        &self,
        c: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr as E;
        let cooperative = matches!(
            c.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        let result = match err {
            E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let r = if cooperative {
                    c.incremental_assign(tpl)
                } else {
                    c.assign(tpl)
                };
                // librdkafka keeps a partition's pause flag across a revoke and a new
                // assignment: one paused by `state::keep_member` around this member's
                // revoke hand-over and assigned back to it would never be fetched again.
                // The link stage never wants an assigned partition paused (a keep_member
                // running now rewinds what slips through).
                if let Err(e) = c.resume(tpl) {
                    tracing::debug!(error = %e, "link stage: resume on assignment failed");
                }
                self.post_rebalance(c, &Rebalance::Assign(tpl));
                r
            }
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // A lost assignment may have a new owner already: released at once.
                let defer =
                    self.defer.load(std::sync::atomic::Ordering::Acquire) && !c.assignment_lost();
                let parts = topic_partitions(tpl);
                tracing::info!(partitions = ?parts, deferred = defer, "link stage: partitions revoked");
                if let Ok(mut q) = self.revoked.lock() {
                    q.extend(parts.into_iter().map(|p| (p, defer)));
                }
                if defer {
                    return;
                }
                if cooperative {
                    c.incremental_unassign(tpl)
                } else {
                    c.unassign()
                }
            }
            other => {
                let code: rdkafka::error::RDKafkaErrorCode = other.into();
                let r = c.unassign();
                self.post_rebalance(c, &Rebalance::Error(KafkaError::Rebalance(code)));
                r
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "link stage: applying a rebalance failed");
        }
    }
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = topic_partitions(tpl);
            tracing::info!(partitions = ?parts, "link stage: partitions assigned");
        }
    }
}

/// Completes a deferred revoke of `parts`: `incremental_unassign` under a cooperative
/// protocol, `unassign` (everything) under an eager one.
fn release<C: ConsumerContext>(consumer: &StreamConsumer<C>, parts: &[(String, i32)]) {
    let r = if matches!(
        consumer.rebalance_protocol(),
        rdkafka::consumer::RebalanceProtocol::Cooperative
    ) {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in parts {
            tpl.add_partition(t, *p);
        }
        consumer.incremental_unassign(&tpl)
    } else {
        consumer.unassign()
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, partitions = ?parts, "link stage: releasing revoked partitions failed");
    }
}

/// (topic, partition) of every element of `tpl`.
fn topic_partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The two stages' state for the partitions this member owns.
struct Stages {
    cfg: LinkConfig,
    followers: HashMap<i32, FollowerStage>,
    graph: Option<CampaignGraph>,
    /// Drops and duplicates already reported to the metrics.
    reported: StageCounts,
    /// Per owned partition, records processed since its last snapshot.
    since: HashMap<(Topic, i32), u64>,
    /// Per owned partition, the offset after the last record processed and acknowledged
    /// (what a snapshot taken now reflects).
    next: HashMap<(Topic, i32), i64>,
    /// Order of this writer's snapshots (the markers' `seq`), from the wall clock in µs.
    seq: u64,
}

impl Stages {
    /// A partition's stage as snapshot chunks (JSON values).
    fn chunks(&self, topic: Topic, part: i32) -> Option<Vec<Vec<u8>>> {
        fn json<T: serde::Serialize>(v: Vec<T>) -> Vec<Vec<u8>> {
            v.iter()
                .filter_map(|c| serde_json::to_vec(c).ok())
                .collect()
        }
        match topic {
            Topic::Links => self
                .followers
                .get(&part)
                .map(|s| json(s.export_chunks(CHUNK_BYTES))),
            Topic::Pairs => self
                .graph
                .as_ref()
                .map(|g| json(g.export_chunks(CHUNK_BYTES))),
        }
    }

    /// Installs a stage for `part` filled from snapshot chunks; an error (nothing
    /// installed) if a chunk cannot be decoded or imported.
    fn import(&mut self, topic: Topic, part: i32, chunks: &[Vec<u8>]) -> Result<(), String> {
        match topic {
            Topic::Links => {
                let mut st = FollowerStage::new(self.cfg.clone(), part);
                for c in chunks {
                    let c: FollowerChunk = serde_json::from_slice(c).map_err(|e| e.to_string())?;
                    st.import_chunk(&c).map_err(|e| e.to_string())?;
                }
                self.followers.insert(part, st);
            }
            Topic::Pairs => {
                let mut g = CampaignGraph::new(self.cfg.clone());
                for c in chunks {
                    let c: GraphChunk = serde_json::from_slice(c).map_err(|e| e.to_string())?;
                    g.import_chunk(&c).map_err(|e| e.to_string())?;
                }
                self.graph = Some(g);
            }
        }
        Ok(())
    }

    fn counts(&self) -> StageCounts {
        let mut c = self
            .graph
            .as_ref()
            .map(CampaignGraph::counts)
            .unwrap_or_default();
        for s in self.followers.values() {
            let s = s.counts();
            c.duplicates += s.duplicates;
            c.over_budget += s.over_budget;
        }
        c
    }

    /// Moves the drop counters and the byte gauges.
    fn report(&mut self, metrics: &Metrics) {
        let now = self.counts();
        // A dropped partition takes its counts along: count only growth.
        metrics.links.dropped(
            "duplicate",
            now.duplicates.saturating_sub(self.reported.duplicates),
        );
        metrics.links.dropped(
            "over_budget",
            now.over_budget.saturating_sub(self.reported.over_budget),
        );
        self.reported = now;
        let followers: usize = self.followers.values().map(FollowerStage::bytes).sum();
        metrics.links.set_bytes("followers", followers);
        metrics
            .links
            .set_bytes("graph", self.graph.as_ref().map_or(0, CampaignGraph::bytes));
    }
}

/// Which link-stage topic a record came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Topic {
    Links,
    Pairs,
}

/// One record through its stage: the records it produces (a rebuild discards them).
fn process(
    stages: &mut Stages,
    topic: Topic,
    partition: i32,
    payload: &[u8],
    metrics: &Metrics,
) -> Vec<OutRecord> {
    let mut out = Vec::new();
    match topic {
        Topic::Links => {
            let Ok(l) = serde_json::from_slice::<FlaggedLink>(payload) else {
                metrics.links.dropped("corrupt", 1);
                return out;
            };
            let cfg = stages.cfg.clone();
            let stage = stages
                .followers
                .entry(partition)
                .or_insert_with(|| FollowerStage::new(cfg, partition));
            for c in stage.observe(&l) {
                out.extend(record(Sink::Pairs, &c.key(), &c));
            }
        }
        Topic::Pairs => {
            let Ok(c) = serde_json::from_slice::<PairCount>(payload) else {
                metrics.links.dropped("corrupt", 1);
                return out;
            };
            let cfg = stages.cfg.clone();
            let graph = stages.graph.get_or_insert_with(|| CampaignGraph::new(cfg));
            if let Some(r) = graph.apply(&c) {
                out.extend(record(Sink::Campaigns, &r.campaign_id, &r));
            }
        }
    }
    out
}

fn record(sink: Sink, key: &str, v: &impl serde::Serialize) -> Option<OutRecord> {
    serde_json::to_vec(v).ok().map(|payload| OutRecord {
        sink,
        key: key.as_bytes().to_vec(),
        payload,
        headers: Vec::new(),
    })
}

/// Runs the link stage until `stop` fires (or `give_up`, when the acknowledgement wait
/// is abandoned).
pub(super) async fn run(p: Parts) -> anyhow::Result<()> {
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let defer = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let consumer: Arc<StreamConsumer<LinkContext>> = Arc::new(
        kafka::consumer_config(&p.kafka, &p.group_id, Duration::ZERO)
            .set("client.id", "followguard-links")
            .create_with_context(LinkContext {
                revoked: revoked.clone(),
                defer: defer.clone(),
                poll_gap: kafka::PollGap::new(&p.metrics, crate::metrics::GroupConsumer::Links),
            })
            .map_err(|e| kafka::config_error("link-stage consumer", e))?,
    );
    consumer.subscribe(&[&p.links.links_topic, &p.links.pairs_topic])?;
    tracing::info!(
        links = %p.links.links_topic,
        pairs = %p.links.pairs_topic,
        campaigns = %p.links.campaigns_topic,
        "link stage consuming"
    );
    let mut stages = Stages {
        cfg: p.stage.clone(),
        followers: HashMap::new(),
        graph: None,
        reported: StageCounts::default(),
        since: HashMap::new(),
        next: HashMap::new(),
        seq: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
    };
    let ack = Ack {
        producers: &p.producers,
        topics: &p.topics,
        metrics: &p.metrics,
        give_up: &p.give_up,
        stall_warn: p.stall_warn,
    };
    loop {
        // (A tick: a revoke queued while no record arrives is handed over in time.)
        let first = tokio::select! {
            () = p.stop.cancelled() => break,
            m = super::consume::poll_group_within(&consumer, "links (wait)", REVOKE_TICK) => m.ok(),
        };
        let mut batch: Vec<_> = first.into_iter().collect();
        while !batch.is_empty() && batch.len() < BATCH {
            match super::consume::poll_group_now(&consumer, "links (batch)") {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        let queued = revoked
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        if !queued.is_empty() {
            // The link stage's member polled meanwhile (`state::keep_member`): the
            // snapshots and the commit may take up to REVOKE_TIMEOUT.
            super::state::keep_member(
                &consumer,
                hand_over_revoked(&p, &consumer, &mut stages, queued),
            )
            .await;
        }
        if batch.is_empty() {
            continue;
        }
        // Records of a partition revoked meanwhile are left to its next owner (state
        // built for them here would go stale if the partition came back later).
        let owned: std::collections::HashSet<(String, i32)> = consumer
            .assignment()
            .map(|a| topic_partitions(&a).into_iter().collect())
            .unwrap_or_default();
        let mut deliveries = Vec::new();
        // (topic, partition, next offset, records processed) per partition of the round.
        let mut reached: Vec<(Topic, String, i32, i64, u64)> = Vec::new();
        for m in batch {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "link stage: consumer error");
                    continue;
                }
            };
            let topic = if m.topic() == p.links.links_topic {
                Topic::Links
            } else {
                Topic::Pairs
            };
            let (part, offset) = (m.partition(), m.offset());
            if !owned.contains(&(m.topic().to_string(), part)) {
                continue;
            }
            let fresh = match topic {
                Topic::Links => !stages.followers.contains_key(&part),
                Topic::Pairs => stages.graph.is_none(),
            };
            if fresh && offset > 0 {
                // The link stage's member polled meanwhile (`state::keep_member`): a
                // rebuild may outlast `max.poll.interval.ms`.
                let rebuilt = rebuild(&p, &mut stages, topic, m.topic(), part, offset);
                super::state::keep_member(&consumer, rebuilt).await?;
            }
            p.metrics.links.consumed(match topic {
                Topic::Links => "links",
                Topic::Pairs => "pairs",
            });
            let out = process(
                &mut stages,
                topic,
                part,
                m.payload().unwrap_or(&[]),
                &p.metrics,
            );
            for rec in out {
                if rec.sink == Sink::Campaigns {
                    p.metrics.links.campaign();
                }
                let (producer, generation) = p.producers.for_sink(rec.sink).get_with_generation();
                let fut = kafka::send(&producer, &p.topics, &rec).await;
                deliveries.push((rec, fut, generation));
            }
            match reached
                .iter_mut()
                .find(|(_, t, q, _, _)| t == m.topic() && *q == part)
            {
                Some(r) => {
                    r.3 = r.3.max(offset + 1);
                    r.4 += 1;
                }
                None => reached.push((topic, m.topic().to_string(), part, offset + 1, 1)),
            }
        }
        if !ack::acknowledge(deliveries, &ack).await {
            break;
        }
        for (kind, topic, part, next, n) in reached {
            // The state now reflects every record before `next`, and what they produced
            // is acknowledged: a snapshot written now needs nothing before `next`.
            stages.next.insert((kind, part), next);
            let since = stages.since.entry((kind, part)).or_default();
            *since += n;
            if *since >= p.links.snapshot_records.max(1) {
                write_snapshot(&p, &mut stages, kind, part, next).await;
            }
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(&topic, part, Offset::Offset(next))
                .is_ok()
            {
                if let Err(e) = consumer.store_offsets(&tpl) {
                    // Revoked meanwhile: the next owner re-does the records.
                    tracing::debug!(error = %e, topic, part, "link stage: offset not stored");
                }
            }
        }
        stages.report(&p.metrics);
    }
    // Revokes from now on complete in the callback; those queued are released.
    defer.store(false, std::sync::atomic::Ordering::Release);
    let queued: Vec<(String, i32)> = revoked
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(tp, deferred)| deferred.then_some(tp))
        .collect();
    if !queued.is_empty() {
        release(&consumer, &queued);
    }
    // Commit what was stored before leaving the group (or, with
    // `--leave-group-on-shutdown false`, before disconnecting from it).
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    let leave = p.leave_group;
    // The only holder left (`state::keep_member`'s thread has ended).
    if let Ok(consumer) = Arc::try_unwrap(consumer) {
        let _ =
            tokio::task::spawn_blocking(move || kafka::close_group_consumer(consumer, leave)).await;
    }
    Ok(())
}

/// Hands revoked partitions over: a snapshot of each deferred one that processed records
/// since its last snapshot (its state reflects every record before its stored offset,
/// their outputs acknowledged), the stored offsets committed, the state dropped, and the
/// deferred ones released (librdkafka goes on with the rebalance then), so the next
/// owner restores from the snapshot. Bounded by [`REVOKE_TIMEOUT`]: past it the
/// partitions are released with their older snapshot.
async fn hand_over_revoked(
    p: &Parts,
    consumer: &StreamConsumer<LinkContext>,
    stages: &mut Stages,
    queued: Vec<Revoked>,
) {
    if queued.is_empty() {
        return;
    }
    let kind_of = |topic: &str| {
        if topic == p.links.links_topic {
            Some(Topic::Links)
        } else if topic == p.links.pairs_topic {
            Some(Topic::Pairs)
        } else {
            None
        }
    };
    let deferred: Vec<(String, i32)> = queued
        .iter()
        .filter(|(_, d)| *d)
        .map(|(tp, _)| tp.clone())
        .collect();
    if !deferred.is_empty() {
        let snapshots = async {
            for (topic, part) in &deferred {
                let Some(kind) = kind_of(topic) else { continue };
                let key = (kind, *part);
                let due = stages.since.get(&key).is_some_and(|&n| n > 0);
                if let (true, Some(&next)) = (due, stages.next.get(&key)) {
                    if write_snapshot(p, stages, kind, *part, next).await {
                        tracing::info!(
                            topic,
                            partition = part,
                            next,
                            "link stage: snapshot written on revoke"
                        );
                    }
                }
            }
            // (Synchronous, as at shutdown: the rebalance waits for it anyway.)
            let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
        };
        if tokio::time::timeout(REVOKE_TIMEOUT, snapshots)
            .await
            .is_err()
        {
            tracing::warn!(partitions = ?deferred, timeout_s = REVOKE_TIMEOUT.as_secs(),
                "link stage: revoked partitions released before their snapshots were written");
        }
    }
    for ((topic, part), _) in &queued {
        let Some(kind) = kind_of(topic) else { continue };
        match kind {
            Topic::Links => {
                stages.followers.remove(part);
            }
            Topic::Pairs => stages.graph = None,
        }
        stages.since.remove(&(kind, *part));
        stages.next.remove(&(kind, *part));
    }
    if !deferred.is_empty() {
        release(consumer, &deferred);
    }
}

/// Writes a snapshot of partition `part`'s stage, reflecting every record before `next`,
/// to its state topic and waits for it (a failure is logged; the next round tries again,
/// and a restore meanwhile re-reads from the previous snapshot). True once written.
async fn write_snapshot(
    p: &Parts,
    stages: &mut Stages,
    topic: Topic,
    part: i32,
    next: i64,
) -> bool {
    let Some(chunks) = stages.chunks(topic, part) else {
        return false;
    };
    stages.seq += 1;
    let records = crate::changelog::chunk_snapshot(part, stages.seq, chunks, next);
    let state_topic = p.links.state_topic(topic == Topic::Pairs);
    let producer = p.producers.for_sink(Sink::Links).get();
    match crate::changelog::produce(&producer, &state_topic, &records).await {
        Ok(()) => {
            p.metrics.links.snapshot("written", records.len() as u64);
            stages.since.insert((topic, part), 0);
            tracing::debug!(
                topic = state_topic,
                partition = part,
                next,
                records = records.len(),
                "link stage: snapshot written"
            );
            true
        }
        Err(e) => {
            tracing::warn!(topic = state_topic, partition = part, error = %format!("{e:#}"),
                "link stage: snapshot not written");
            false
        }
    }
}

/// Restores link-stage partition `part`'s state as it was before record `until`: its
/// latest complete snapshot, then records from the snapshot's offset up to `until`
/// re-read with outputs muted (from the partition's start without a usable snapshot).
async fn rebuild(
    p: &Parts,
    stages: &mut Stages,
    topic: Topic,
    topic_name: &str,
    part: i32,
    until: i64,
) -> anyhow::Result<()> {
    let reader = Arc::new(kafka::reader(&kafka::replay_config(&p.kafka, &p.group_id))?);
    let started = std::time::Instant::now();
    // A fresh state even if nothing is read (the first record then finds it).
    match topic {
        Topic::Links => {
            stages
                .followers
                .insert(part, FollowerStage::new(stages.cfg.clone(), part));
        }
        Topic::Pairs => stages.graph = Some(CampaignGraph::new(stages.cfg.clone())),
    }
    let state_topic = p.links.state_topic(topic == Topic::Pairs);
    let mut from = Offset::Beginning;
    let mut snapshot_records = 0u64;
    match crate::changelog::read_snapshot(&reader, &state_topic, part).await {
        Ok(Some(snap)) => {
            p.metrics.links.snapshot("read", snap.records);
            snapshot_records = snap.records;
            match stages.import(topic, part, &snap.chunks) {
                Ok(()) => from = Offset::Offset(snap.next_offset),
                Err(e) => {
                    p.metrics.links.dropped("corrupt", 1);
                    tracing::warn!(topic = state_topic, partition = part, error = %e,
                        "link stage: snapshot refused; re-reading the partition from its start");
                    // The partial import is discarded.
                    match topic {
                        Topic::Links => {
                            stages
                                .followers
                                .insert(part, FollowerStage::new(stages.cfg.clone(), part));
                        }
                        Topic::Pairs => {
                            stages.graph = Some(CampaignGraph::new(stages.cfg.clone()));
                        }
                    }
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(topic = state_topic, partition = part, error = %format!("{e:#}"),
            "link stage: no snapshot read; re-reading the partition from its start"),
    }
    let mut n = 0u64;
    if matches!(from, Offset::Offset(o) if o >= until) {
        report_rebuilt(
            p,
            stages,
            (topic, topic_name, part),
            snapshot_records,
            n,
            started,
        );
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic_name, part, from)?;
    reader.assign(&tpl)?;
    // Re-reading is CPU work on records already fetched: yield regularly, so the
    // member's poll beside it runs (`state::keep_member`).
    let mut yielder = crate::changelog::Yielder::new();
    loop {
        yielder.tick().await;
        let m = match tokio::time::timeout(READ_TIMEOUT, reader.recv()).await {
            Err(_) => anyhow::bail!("link stage: rebuilding {topic_name}/{part} timed out"),
            Ok(Err(KafkaError::PartitionEOF(_))) => break,
            Ok(r) => r?,
        };
        if m.offset() >= until {
            break;
        }
        n += 1;
        // Muted: what these records produced was acknowledged before their offsets were.
        let _ = process(stages, topic, part, m.payload().unwrap_or(&[]), &p.metrics);
        if m.offset() + 1 >= until {
            break;
        }
    }
    report_rebuilt(
        p,
        stages,
        (topic, topic_name, part),
        snapshot_records,
        n,
        started,
    );
    Ok(())
}

/// Logs and counts a restore; the records re-read count towards the next snapshot, so
/// a restore never re-reads more than `--links-snapshot-records` records even after
/// restarts in a row.
fn report_rebuilt(
    p: &Parts,
    stages: &mut Stages,
    (kind, topic, part): (Topic, &str, i32),
    snapshot_records: u64,
    replayed: u64,
    started: std::time::Instant,
) {
    stages.since.insert((kind, part), replayed);
    p.metrics.links.rebuilt(replayed);
    tracing::info!(
        topic,
        partition = part,
        snapshot_records,
        records = replayed,
        seconds = started.elapsed().as_secs_f64(),
        "link stage: partition state rebuilt"
    );
}

/// Reads the campaigns topic as a table into `table` (every partition from its start, then
/// following it) until `stop` fires: what `/api/alerts/{id}` shows as the alert's
/// cross-instance campaign. Waits for the topic to exist; read errors are logged and
/// retried. docs/state.md, "Campaign ids where a trust team looks".
pub(super) async fn follow_campaigns(
    kafka_cfg: KafkaConfig,
    group_id: String,
    topic: String,
    table: crate::web::SharedCampaigns,
    fresh: followguard_core::links::CampaignTable,
    stop: CancellationToken,
) {
    let reader = match kafka::reader(&kafka::replay_config(
        &kafka_cfg,
        &format!("{group_id}.campaigns"),
    )) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "campaigns table: no reader");
            return;
        }
    };
    if let Ok(mut t) = table.lock() {
        *t = Some(fresh);
    }
    let partitions = loop {
        let n = crate::changelog::partition_count(&reader, &topic).await;
        if n > 0 {
            break n;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
        if tpl
            .add_partition_offset(&topic, p, Offset::Beginning)
            .is_err()
        {
            return;
        }
    }
    if let Err(e) = reader.assign(&tpl) {
        tracing::error!(error = %e, topic, "campaigns table: assign failed");
        return;
    }
    tracing::info!(topic, partitions, "campaigns table: reading");
    loop {
        let m = tokio::select! {
            () = stop.cancelled() => break,
            m = reader.recv() => m,
        };
        match m {
            Ok(m) => {
                let Some(r) = m
                    .payload()
                    .and_then(|v| serde_json::from_slice::<CampaignRecord>(v).ok())
                else {
                    tracing::debug!(
                        topic,
                        offset = m.offset(),
                        "campaigns table: record skipped"
                    );
                    continue;
                };
                if let Ok(mut t) = table.lock() {
                    if let Some(t) = t.as_mut() {
                        t.apply(&r);
                    }
                }
            }
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, topic, "campaigns table: read error");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
