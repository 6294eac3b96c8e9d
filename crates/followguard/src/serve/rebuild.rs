//! Rebalances: a revoked partition's state is handed over and dropped (`rebalance.rs`); an
//! assigned one's is restored from the changelog (`state.rs`) or rebuilt by
//! re-reading the last `--rebuild-window` of input before its committed offset (sinks
//! muted; the evidence store still fed; alerts still open at the end are handed to the
//! webhook, which resends them from then on), after scanning the alerts topic for the alerts
//! already announced.

use super::consume::Service;
use super::now_ms;
use crate::kafka::{self, RebalanceEvent};
use anyhow::Context as _;
use followguard_core::adapt::InputFormat;
use followguard_core::pipeline::PipelineConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Metadata calls (committed offsets, offsets for times) during a rebuild.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// The alert scan stops when nothing arrives for this long (or at end of partition).
const SCAN_IDLE: Duration = Duration::from_secs(1);

/// How far back detector state reaches: the longest of its memories (idle followees,
/// moderation de-duplication, campaign linking). Replaying this much rebuilds it exactly.
pub(super) fn state_horizon(cfg: &PipelineConfig) -> Duration {
    let d = &cfg.detector;
    let ms = d
        .idle_ttl_ms
        .max(d.moderation_dedup_ms)
        .max(d.lockstep_window_ms)
        .max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Service<'_> {
    /// A reader of the alerts topic: `input_reader` itself, or one on the output cluster
    /// when the outputs live elsewhere (issue #19, `--output-brokers`).
    pub(super) fn alerts_reader(
        &self,
        input_reader: &Arc<kafka::Reader>,
        group: &str,
    ) -> anyhow::Result<Arc<kafka::Reader>> {
        if self.cfg.output_kafka.brokers == self.cfg.kafka.brokers {
            return Ok(input_reader.clone());
        }
        Ok(Arc::new(kafka::reader(&kafka::replay_config(
            &self.cfg.output_kafka,
            group,
        ))?))
    }

    /// Applies revokes (drop state) and assigns (rebuild state) queued by the context.
    pub(super) async fn apply_rebalances(&mut self, shutdown: &CancellationToken) {
        loop {
            let ev = match self.rebalances.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            match ev {
                None => return,
                // Issue 21 (rebalance.rs): handed over, dropped, then released.
                // The group consumer polled meanwhile (`state::keep_member`): the wait for
                // acknowledgements and the commit may outlast `max.poll.interval.ms`.
                Some(RebalanceEvent::Revoking(parts)) => {
                    let consumer = self.consumer.clone();
                    super::state::keep_member(&consumer, self.hand_over_revoked(&parts)).await;
                }
                // A revoke already released (a lost assignment: the member was evicted):
                // dropping a million followees takes seconds, the consumer polled
                // meanwhile so the member rejoins without waiting for it.
                Some(RebalanceEvent::Revoked(parts)) => {
                    let consumer = self.consumer.clone();
                    super::state::keep_member(&consumer, async { self.drop_partitions(&parts) })
                        .await;
                }
                Some(RebalanceEvent::Assigned(parts)) => {
                    self.take_ownership(&parts);
                    // Issue 21 hook (state.rs): restore from the changelog; the input
                    // rebuild only when it holds nothing for these partitions.
                    let mut restored = false;
                    if self.changelog.is_some() && !parts.is_empty() {
                        let r = tokio::select! {
                            r = self.restore_state(&parts) => r,
                            _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted by shutdown")),
                        };
                        match r {
                            Ok(0) => {
                                tracing::info!(partitions = ?parts, "changelog holds no state for these partitions; rebuilding from the input")
                            }
                            Ok(keys) => {
                                restored = true;
                                tracing::info!(partitions = ?parts, keys, "partition state restored from the changelog");
                            }
                            Err(e) if e.is::<crate::changelog::ForeignChangelog>() => {
                                // Never restored nor rebuilt over: the service stops.
                                tracing::error!(error = %e, partitions = ?parts, "changelog refused: it belongs to another input topic (or incarnation of it), group or partition count");
                                if let Some(c) = self.changelog.as_mut() {
                                    c.refused = Some(e.to_string());
                                }
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), partitions = ?parts, "partition state not restored from the changelog; rebuilding from the input")
                            }
                        }
                    }
                    // Set at the assignment by the consumer context.
                    self.admin.set_restoring(false);
                    if !restored && !self.rebuild_window.is_zero() && !parts.is_empty() {
                        // The group consumer polled meanwhile, as during a restore.
                        let consumer = self.consumer.clone();
                        let started = std::time::Instant::now();
                        let rebuild = super::state::keep_member(&consumer, self.rebuild(&parts));
                        let r = tokio::select! {
                            r = rebuild => r,
                            _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted by shutdown")),
                        };
                        match r {
                            Ok(n) => {
                                tracing::info!(partitions = ?parts, replayed = n, seconds = started.elapsed().as_secs_f64(), "partition state rebuilt")
                            }
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), partitions = ?parts, "partition state not rebuilt; detection restarts from empty windows")
                            }
                        }
                    }
                }
            }
        }
    }

    /// Re-reads the last window before each partition's committed offset, sinks muted.
    async fn rebuild(&mut self, parts: &[i32]) -> anyhow::Result<u64> {
        let topic = self.cfg.input_topic.clone();
        let mut tpl = TopicPartitionList::new();
        for p in parts {
            tpl.add_partition(&topic, *p);
        }
        let c = self.consumer.clone();
        let committed =
            tokio::task::spawn_blocking(move || c.committed_offsets(tpl, METADATA_TIMEOUT))
                .await
                .context("committed offsets task")?
                .context("reading committed offsets")?;
        let ends: Vec<(i32, i64)> = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => Some((e.partition(), o)),
                _ => None,
            })
            .collect();
        let replay = Arc::new(kafka::reader(&kafka::replay_config(
            &self.cfg.kafka,
            &self.cfg.group_id,
        ))?);
        // Alerts already announced (record time = when they were produced, wall clock).
        let since = now_ms()
            .saturating_sub(i64::try_from(self.rebuild_window.as_millis()).unwrap_or(i64::MAX));
        let alerts_reader = self.alerts_reader(&replay, &self.cfg.group_id)?;
        self.already_open = match kafka::scan_opened_alerts(
            &alerts_reader,
            &self.cfg.alerts_topic,
            since,
            SCAN_IDLE,
        )
        .await
        {
            Ok(ids) => ids,
            Err(e) => {
                // Only costs duplicate opens after a crash; detection is unaffected.
                tracing::warn!(error = %format!("{e:#}"), "could not read already-opened alerts");
                HashSet::new()
            }
        };
        let window_ms = i64::try_from(self.rebuild_window.as_millis()).unwrap_or(i64::MAX);
        // Per partition: [start, end) to re-read and the record time the window starts at.
        let mut ranges: HashMap<i32, (i64, i64, i64)> = HashMap::new();
        for (p, end) in ends {
            // Time of the last committed record anchors the window (record time ≈ event time).
            let Some(last) = read_one(&replay, &topic, p, end - 1).await? else {
                continue;
            };
            let Some(last_ts) = last.1 else { continue };
            let from_ts = last_ts.saturating_sub(window_ms);
            let start = seek_time(&replay, &topic, p, from_ts).await?;
            // Some brokers answer a time lookup with the log start; the cap bounds the work.
            let start = start
                .unwrap_or(end)
                .min(end)
                .max(end.saturating_sub(self.cfg.rebuild_max_records));
            tracing::debug!(partition = p, start, end, last_ts, "rebuild range");
            if start < end {
                ranges.insert(p, (start, end, from_ts));
            }
        }
        // All partitions at once, in arrival order, as live consumption interleaves them.
        let mut tpl = TopicPartitionList::new();
        for (p, (start, _, _)) in &ranges {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(*start))?;
        }
        let mut total = 0;
        // Issue #23: the alerts still open at the end of the replay, which this instance
        // now resends to Alertmanager (their previous owner stopped resending them).
        let mut adopted: HashMap<String, crate::webhook::WebhookAlert> = HashMap::new();
        if !ranges.is_empty() {
            replay.assign(&tpl)?;
        }
        // Replaying is CPU work on records already fetched: yield to the runtime
        // regularly, so the group consumer's poll beside it runs (`state::keep_member`).
        let mut yielder = crate::changelog::Yielder::new();
        while !ranges.is_empty() {
            yielder.tick().await;
            self.admin.progress();
            let m = match tokio::time::timeout(METADATA_TIMEOUT, replay.recv())
                .await
                .context("replay read timed out")?
            {
                Err(KafkaError::PartitionEOF(_)) => continue,
                r => r?,
            };
            let p = m.partition();
            let Some(&(_, end, from_ts)) = ranges.get(&p) else {
                continue;
            };
            if m.offset() >= end {
                ranges.remove(&p);
                continue;
            }
            if m.offset() + 1 >= end {
                ranges.remove(&p);
            }
            if m.timestamp().to_millis().is_some_and(|t| t < from_ts) {
                continue;
            }
            // Outputs are discarded: they were produced when the record was first seen.
            // The evidence store still takes them, so the web view survives a restart.
            let payload = m.payload().unwrap_or_default();
            let ts = m.timestamp().to_millis();
            // Issue 24: other formats are adapted and joined as when the record was first
            // seen (a profile that has changed since gives today's score; the table keeps
            // only the latest).
            let events: Vec<std::borrow::Cow<'_, [u8]>> =
                if self.cfg.input.format == InputFormat::Canonical {
                    vec![std::borrow::Cow::Borrowed(payload)]
                } else {
                    self.adapted(payload)
                        .into_iter()
                        .map(std::borrow::Cow::Owned)
                        .collect()
                };
            for event in &events {
                let Ok(o) = self.pipeline.process(event, ts, p) else {
                    continue;
                };
                self.note_evidence(&o, p);
                if self.webhook.is_some() {
                    for a in &o.alerts {
                        if a.status == followguard_core::alert::AlertStatus::Resolved {
                            adopted.remove(&a.alert_id);
                        } else {
                            let w = crate::webhook::WebhookAlert::from_alert(a, p);
                            adopted.insert(a.alert_id.clone(), w);
                        }
                    }
                }
            }
            total += 1;
        }
        if let Some(w) = &self.webhook {
            if !adopted.is_empty() {
                tracing::info!(alerts = adopted.len(), "open alerts adopted for resending");
            }
            for a in adopted.into_values() {
                w.enqueue(a);
            }
        }
        self.metrics.replayed(total);
        self.metrics
            .set_tracked_followees(self.pipeline.tracked_followees());
        Ok(total)
    }
}

/// Reads the record at `offset` of `topic`/`p`: its key bytes and record time.
async fn read_one(
    c: &kafka::Reader,
    topic: &str,
    p: i32,
    offset: i64,
) -> anyhow::Result<Option<(Vec<u8>, Option<i64>)>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(offset))?;
    c.assign(&tpl)?;
    let m = loop {
        match tokio::time::timeout(METADATA_TIMEOUT, c.recv())
            .await
            .context("reading the last committed record timed out")?
        {
            Err(KafkaError::PartitionEOF(_)) => continue,
            r => break r?,
        }
    };
    if m.partition() != p {
        return Ok(None);
    }
    Ok(Some((
        m.key().unwrap_or_default().to_vec(),
        m.timestamp().to_millis(),
    )))
}

/// First offset of `topic`/`p` with record time ≥ `ts_ms`, if the broker knows one.
async fn seek_time(
    c: &Arc<kafka::Reader>,
    topic: &str,
    p: i32,
    ts_ms: i64,
) -> anyhow::Result<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(ts_ms))?;
    let c = c.clone();
    let found = tokio::task::spawn_blocking(move || c.offsets_for_times(tpl, METADATA_TIMEOUT))
        .await
        .context("offsets_for_times task")?
        .context("looking up offsets by time")?;
    Ok(found.elements().first().and_then(|e| match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }))
}
