//! Handing batches to the acknowledgement task, and what happens when it cannot take
//! them: a full channel for a second pauses the input partitions while polling goes on
//! (the member stays in its group, /healthz stays up) until there is room again.
//! Issue #19: so do unacknowledged output records over `--max-in-flight-bytes`.

use super::ack::Batch;
use super::consume::Service;
use super::{now_ms, Consumer_, BATCH};
use crate::metrics::StateBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the stored-state byte gauges are refreshed: measuring walks the detector's
/// and the evidence store's maps, far too dear per batch, cheap every few seconds.
const STATE_REPORT_EVERY_MS: i64 = 5_000;

/// How long the in-flight window may stay full before the input is paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// A record received while the input is paused (from a partition assigned after the
/// pause): seek back to it, so it is read again on resume.
pub(super) fn rewind<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
    m: impl Message,
) {
    let (t, p, o) = (m.topic().to_string(), m.partition(), m.offset());
    drop(m);
    if let Err(e) = consumer.seek(&t, p, Offset::Offset(o), Duration::from_secs(1)) {
        tracing::warn!(error = %e, partition = p, "could not rewind while paused");
    }
}

/// Shutdown with a batch the full channel cannot take yet: a task queues it behind the
/// others, so the drain still acknowledges it in order (or the grace period gives up).
pub(super) fn hand_over_late(tx: &mpsc::Sender<Batch>, batch: Batch) {
    if batch.is_empty() {
        return;
    }
    if let Err(mpsc::error::TrySendError::Full(batch)) = tx.try_send(batch) {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(batch).await;
        });
    }
}

impl Service<'_> {
    /// Issue #19: bytes of stored state by store, and the pending follows the detector
    /// refused for its byte budget (`followguard_state_bytes`,
    /// `followguard_pending_refused_total`).
    pub(super) fn report_state_bytes(&mut self) {
        self.state_reported_ms = self.now_ms;
        let (detector, cache) = self.pipeline.memory_report();
        let profiles = self
            .profiles
            .as_ref()
            .and_then(|p| p.table.read().ok().map(|t| t.bytes()))
            .unwrap_or(0);
        self.metrics.set_state_bytes(StateBytes {
            detector: detector.total_bytes(),
            evidence: self.evidence().memory_bytes(),
            score_cache: cache + self.helper_cache_bytes,
            profiles,
        });
        self.metrics
            .set_pending_refused_total(detector.pending_refused);
    }

    /// Hands the batch to the acknowledgement task and does the per-batch bookkeeping
    /// (health, tracked followees, wall clock). Returns false on shutdown.
    pub(super) async fn flush(
        &mut self,
        shutdown: &CancellationToken,
        tx: &mpsc::Sender<Batch>,
        batch: &mut Batch,
    ) -> anyhow::Result<bool> {
        self.admin.progress();
        self.now_ms = now_ms();
        if self.now_ms - self.state_reported_ms >= STATE_REPORT_EVERY_MS {
            self.report_state_bytes();
        }
        // Issue 21: a rebalance flushes the record cache first (the revoke's next owner
        // restores what was logged; a restore must not meet cached changes), and an idle
        // loop flushes it when due, with or without a batch.
        let force = self.changelog.is_some() && self.rebalance_pending();
        if batch.is_empty() && !self.cache_flush_wanted(force) {
            return Ok(true);
        }
        self.metrics
            .set_tracked_followees(self.pipeline.tracked_followees());
        // Issue #23: open alerts and the score caches' totals (the pipeline's and the
        // prepare helpers').
        self.metrics.set_open_alerts(self.pipeline.open_alerts());
        let (hits, misses) = self.pipeline.cache_stats();
        let (h2, m2) = self.helper_cache_stats;
        self.metrics.set_score_cache_totals(hits + h2, misses + m2);
        let mut b = std::mem::replace(batch, Vec::with_capacity(BATCH));
        // Issue 21 hook (state.rs): the state this batch changed travels with it.
        self.attach_state_forced(&mut b, force);
        if b.is_empty() {
            return Ok(true);
        }
        // Issue 21 hook (rebalance.rs): a revoke waits for every batch handed over.
        self.hand_over.handed += 1;
        // Issue #19 hook: over the byte budget, pause the input until acks bring it back.
        self.metrics
            .set_in_flight_bytes(self.in_flight_bytes.held());
        let own: usize = b.iter().map(|p| p.bytes).sum();
        if self.in_flight_bytes.over_budget_besides(own) {
            return self.wait_paused(shutdown, tx, b).await;
        }
        match tx.try_send(b) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                anyhow::bail!("acknowledgement task stopped unexpectedly")
            }
            Err(mpsc::error::TrySendError::Full(b)) => {
                // Room usually frees within milliseconds; only a real stall pauses
                // the input (a pause drops prefetched records, so it is not cheap).
                let reserved = tokio::select! {
                    _ = shutdown.cancelled() => {
                        let mut b = b;
                        self.attach_state_forced(&mut b, true);
                        hand_over_late(tx, b);
                        return Ok(false);
                    }
                    r = tokio::time::timeout(PAUSE_AFTER, tx.reserve()) => r,
                };
                match reserved {
                    Ok(Ok(permit)) => {
                        permit.send(b);
                        Ok(true)
                    }
                    Ok(Err(_)) => anyhow::bail!("acknowledgement task stopped unexpectedly"),
                    Err(_stalled) => self.wait_paused(shutdown, tx, b).await,
                }
            }
        }
    }

    /// `--max-in-flight` events (or Issue #19: more than `--max-in-flight-bytes` of output
    /// records) await acknowledgement (a sink stalls): pause fetching and
    /// keep polling, so the group still sees a live member (no `max.poll.interval.ms`
    /// eviction) and /healthz still sees progress, until there is room again. librdkafka
    /// drops the paused partitions' prefetched records and fetches them again from the
    /// current position on resume, so nothing is skipped. Returns false on shutdown.
    async fn wait_paused(
        &mut self,
        shutdown: &CancellationToken,
        tx: &mpsc::Sender<Batch>,
        pending: Batch,
    ) -> anyhow::Result<bool> {
        let consumer = self.consumer.clone();
        let own: usize = pending.iter().map(|p| p.bytes).sum();
        // Every partition paused, even if the assignment changes meanwhile: librdkafka keeps
        // a partition's pause flag across rebalances, so each must be resumed explicitly.
        let mut paused: HashSet<i32> = HashSet::new();
        let pause = |c: &Consumer_, paused: &mut HashSet<i32>| {
            if let Ok(a) = c.assignment() {
                paused.extend(a.elements().iter().map(|e| e.partition()));
                if let Err(e) = c.pause(&a) {
                    tracing::debug!(error = %e, "pause failed");
                }
            }
        };
        tracing::warn!(
            in_flight = self.cfg.max_in_flight,
            "outputs are not being acknowledged; input paused"
        );
        self.metrics.input_paused();
        pause(&consumer, &mut paused);
        self.hand_over.holding = true;
        let permit = loop {
            // Issue #19: room means a free batch slot *and* bytes back under the budget.
            let bytes_ok = !self.in_flight_bytes.over_budget_besides(own);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let mut pending = pending;
                    self.attach_state_forced(&mut pending, true);
                    hand_over_late(tx, pending);
                    return Ok(false);
                }
                p = tx.reserve(), if bytes_ok => match p {
                    Ok(p) => break p,
                    Err(_) => anyhow::bail!("acknowledgement task stopped unexpectedly"),
                },
                r = super::consume::poll_group(&consumer, "input paused") => {
                    self.admin.progress();
                    // The stored-state gauges stay fresh while paused (a rebuild may run).
                    self.now_ms = now_ms();
                    if self.now_ms - self.state_reported_ms >= STATE_REPORT_EVERY_MS {
                        self.report_state_bytes();
                    }
                    if let Ok(Ok(m)) = r {
                        rewind(&consumer, m);
                    }
                    self.apply_rebalances(shutdown).await;
                    self.refuse_foreign_changelog()?;
                    pause(&consumer, &mut paused);
                }
            }
        };
        permit.send(pending);
        self.hand_over.holding = false;
        let mut tpl = TopicPartitionList::new();
        for p in &paused {
            tpl.add_partition(&self.cfg.input_topic, *p);
        }
        if let Err(e) = consumer.resume(&tpl) {
            tracing::warn!(error = %e, "resume failed");
        }
        tracing::info!("outputs acknowledged again; input resumed");
        Ok(true)
    }
}
