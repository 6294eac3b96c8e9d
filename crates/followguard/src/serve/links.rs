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
//! State on assignment: a link-stage partition's state is rebuilt, before its first
//! record is processed, by re-reading the partition from its beginning up to that record
//! with outputs muted (a group-less reader). Both stages are functions of their input
//! (re-delivery is idempotent), so the rebuilt state is the state the previous owner
//! had. On revoke the partition's state is dropped.

use super::ack::{self, Ack};
use crate::config::{KafkaConfig, LinksConfig};
use crate::kafka::{self, LogContext, OutRecord, OutputProducers, OutputTopics};
use crate::metrics::Metrics;
use crate::sink::Sink;
use followguard_core::links::{
    CampaignGraph, FlaggedLink, FollowerStage, LinkConfig, PairCount, StageCounts,
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
/// for the loop, which drops their state.
struct LinkContext {
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
}

impl ClientContext for LinkContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        LogContext.log(level, fac, msg);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LogContext.error(error, reason);
    }
}

impl ConsumerContext for LinkContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = topic_partitions(tpl);
            tracing::info!(partitions = ?parts, "link stage: partitions revoked");
            if let Ok(mut q) = self.revoked.lock() {
                q.extend(parts);
            }
        }
    }
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = topic_partitions(tpl);
            tracing::info!(partitions = ?parts, "link stage: partitions assigned");
        }
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
}

impl Stages {
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
#[derive(Clone, Copy, PartialEq, Eq)]
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
    let consumer: StreamConsumer<LinkContext> =
        kafka::consumer_config(&p.kafka, &p.group_id, Duration::ZERO)
            .set("client.id", "followguard-links")
            .create_with_context(LinkContext {
                revoked: revoked.clone(),
            })
            .map_err(|e| kafka::config_error("link-stage consumer", e))?;
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
    };
    let ack = Ack {
        producers: &p.producers,
        topics: &p.topics,
        metrics: &p.metrics,
        give_up: &p.give_up,
        stall_warn: p.stall_warn,
    };
    loop {
        let first = tokio::select! {
            () = p.stop.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        for (topic, part) in revoked
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
        {
            if topic == p.links.links_topic {
                stages.followers.remove(&part);
            } else if topic == p.links.pairs_topic {
                stages.graph = None;
            }
        }
        // Records of a partition revoked meanwhile are left to its next owner (state
        // built for them here would go stale if the partition came back later).
        let owned: std::collections::HashSet<(String, i32)> = consumer
            .assignment()
            .map(|a| topic_partitions(&a).into_iter().collect())
            .unwrap_or_default();
        let mut deliveries = Vec::new();
        let mut reached: Vec<(String, i32, i64)> = Vec::new();
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
                rebuild(&p, &mut stages, topic, m.topic(), part, offset).await?;
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
                .find(|(t, q, _)| t == m.topic() && *q == part)
            {
                Some(r) => r.2 = r.2.max(offset + 1),
                None => reached.push((m.topic().to_string(), part, offset + 1)),
            }
        }
        if !ack::acknowledge(deliveries, &ack).await {
            break;
        }
        for (topic, part, next) in reached {
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
    // Commit what was stored before leaving the group (or, with
    // `--leave-group-on-shutdown false`, before disconnecting from it).
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    let leave = p.leave_group;
    let _ = tokio::task::spawn_blocking(move || kafka::close_group_consumer(consumer, leave)).await;
    Ok(())
}

/// Rebuilds link-stage partition `part`'s state from records `[0, until)`, outputs muted.
async fn rebuild(
    p: &Parts,
    stages: &mut Stages,
    topic: Topic,
    topic_name: &str,
    part: i32,
    until: i64,
) -> anyhow::Result<()> {
    let reader = kafka::reader(&kafka::replay_config(&p.kafka, &p.group_id))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic_name, part, Offset::Beginning)?;
    reader.assign(&tpl)?;
    let started = std::time::Instant::now();
    let mut n = 0u64;
    // A fresh state even if nothing is read (the first record then finds it).
    match topic {
        Topic::Links => {
            stages
                .followers
                .insert(part, FollowerStage::new(stages.cfg.clone(), part));
        }
        Topic::Pairs => stages.graph = Some(CampaignGraph::new(stages.cfg.clone())),
    }
    loop {
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
    p.metrics.links.rebuilt(n);
    tracing::info!(
        topic = topic_name,
        partition = part,
        records = n,
        seconds = started.elapsed().as_secs_f64(),
        "link stage: partition state rebuilt"
    );
    Ok(())
}

/// Creates the links topic (as many partitions as `input_topic`) and the pairs topic
/// (one partition) when missing.
pub(super) async fn ensure_topics(
    kafka_cfg: &KafkaConfig,
    links: &LinksConfig,
    input_topic: &str,
) -> anyhow::Result<()> {
    let reader = Arc::new(kafka::reader(&kafka::replay_config(
        kafka_cfg,
        "followguard.links-setup",
    ))?);
    let input = crate::changelog::partition_count(&reader, input_topic).await;
    let partitions = i32::try_from(input.max(1)).unwrap_or(i32::MAX);
    kafka::create_topics(kafka_cfg, &[&links.links_topic], partitions).await?;
    kafka::create_topics(kafka_cfg, &[&links.pairs_topic], 1).await
}
