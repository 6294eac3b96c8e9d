//! Acknowledgement, in input order: waits for each event's output records (librdkafka
//! retries transient errors itself, in order), dead-letters what the broker refuses for
//! good, re-sends a record only after replacing a fenced or failed producer (or a local
//! send error), pages the webhook
//! for acknowledged alert records, and stores the offsets a batch reached once all of its
//! records are acknowledged.

use super::Consumer_;
use crate::inflight::InFlightBytes;
use crate::kafka::{self, OutRecord, OutputTopics};
use crate::metrics::Metrics;
use crate::webhook::{Webhook, WebhookAlert};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest pause between re-sends of a record the broker did not acknowledge.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// Events handed over together, in input order.
pub(super) type Batch = Vec<Pending>;

/// One output record handed to a producer: its delivery report and the producer
/// generation that sent it. Issue #19: `Err` keeps a produce call's own refusal
/// (permanent ones are not retried).
pub(super) type Delivery = (OutRecord, Result<DeliveryFuture, KafkaError>, u64);

/// An event's output records awaiting acknowledgement.
pub(super) struct Pending {
    pub partition: i32,
    pub offset: i64,
    pub deliveries: Vec<Delivery>,
    /// Issue #19: enqueued to the webhook after `deliveries` are acknowledged.
    pub webhooks: Vec<WebhookAlert>,
    /// Issue #19: bytes `deliveries` hold (released by the ack task).
    pub bytes: usize,
    /// Issue #21: detector-state changelog records of the batch this event ends (empty
    /// otherwise), produced once every output record of the batch is acknowledged and
    /// acknowledged before its offsets are stored.
    pub state: Vec<crate::changelog::Record>,
}

impl Pending {
    /// Issue #21: an entry without an input event (offset -1), carrying a record-cache
    /// flush when no batch is in hand (idle, a rebalance, shutdown).
    pub fn state_only() -> Pending {
        Pending {
            partition: 0,
            offset: -1,
            deliveries: Vec::new(),
            webhooks: Vec::new(),
            bytes: 0,
            state: Vec::new(),
        }
    }
}

/// Issue #21, the record cache: input offsets of batches whose state is still only in
/// the cache (the batch carried no flush) are held here; the next batch that carries a
/// flush takes them, and they are stored when that flush is acknowledged. A flush
/// covers every batch handed over before it, so an offset is never stored before the
/// state it produced is logged.
#[derive(Debug, Default)]
pub(super) struct HoldBack(Vec<(i32, i64)>);

impl HoldBack {
    /// A batch reached `reached` (next offset per partition). With `flushed`, the
    /// offsets to store once its flush is acknowledged (the held ones included);
    /// otherwise nothing: they are held.
    pub fn batch(&mut self, reached: &[(i32, i64)], flushed: bool) -> Option<Vec<(i32, i64)>> {
        for &(p, o) in reached {
            match self.0.iter_mut().find(|(q, _)| *q == p) {
                Some(e) => e.1 = e.1.max(o),
                None => self.0.push((p, o)),
            }
        }
        flushed.then(|| std::mem::take(&mut self.0))
    }
}

/// What the acknowledgement task works with.
pub(super) struct Acker {
    pub consumer: Arc<Consumer_>,
    pub producers: kafka::OutputProducers,
    pub topics: OutputTopics,
    pub input_topic: String,
    pub metrics: Metrics,
    /// Tells the task to stop waiting (the grace period is over).
    pub give_up: CancellationToken,
    /// Issue #19: the task owns the webhook, so a page is sent only for an alert record
    /// the broker acknowledged (never lost between enqueue and ack).
    pub webhook: Option<Webhook>,
    /// Issue #19: bytes of unacknowledged output records, released here.
    pub in_flight_bytes: InFlightBytes,
    /// `--delivery-timeout`: a record unacknowledged this long is logged as stalled.
    pub stall_warn: Duration,
    /// Issue #21: the detector-state changelog, when configured.
    pub changelog: Option<super::state::ChangelogSink>,
    /// Issue #21: batches finished (outputs and state acknowledged, offsets stored), for
    /// a revoke to wait on (rebalance.rs).
    pub acked: tokio::sync::watch::Sender<u64>,
}

/// Waits for each event's records in input order (see [`acknowledge`]), then pages the webhook for them and stores the offsets the batch reached (per
/// partition, after all its records are acknowledged). Ends when the loop closes the
/// channel and everything is acknowledged, or immediately (storing nothing more) when
/// `give_up` fires; either way the webhook handle is dropped, so its queue drains.
pub(super) async fn ack_loop(a: Acker, mut rx: mpsc::Receiver<Batch>) {
    let Acker {
        consumer,
        producers,
        topics,
        input_topic,
        metrics,
        give_up,
        webhook,
        in_flight_bytes,
        stall_warn,
        changelog,
        acked,
    } = a;
    // Batches whose outputs are acknowledged and whose state is handed to the changelog
    // producer but not yet acknowledged, oldest first, with the offsets each reached:
    // the next batch's outputs are acknowledged meanwhile (issue 21: one round trip per
    // batch on this task cost most of serve's rate), and offsets are still stored only
    // after the state they produced, in batch order.
    let mut logging: VecDeque<(super::state::Logged, Vec<(i32, i64)>)> = VecDeque::new();
    let mut held = HoldBack::default();
    let store = |reached: &[(i32, i64)]| {
        for &(partition, next) in reached {
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(&input_topic, partition, Offset::Offset(next))
                .is_ok()
            {
                if let Err(e) = consumer.store_offsets(&tpl) {
                    metrics.commit_error();
                    // The partition was revoked meanwhile; its next owner reprocesses the events.
                    tracing::debug!(error = %e, partition, "offset not stored");
                }
            }
        }
        acked.send_modify(|n| *n += 1);
    };
    loop {
        // The oldest batch's state acknowledged: its offsets are stored; else the next
        // batch from the loop (or the channel closed: everything is waited for).
        let room = logging.len() < MAX_STATE_BATCHES_IN_FLIGHT;
        let batch = if let Some((logged, _)) = logging.front_mut() {
            tokio::select! {
                biased;
                ok = logged.wait_mut(&give_up) => {
                    if !ok {
                        return;
                    }
                    if let Some((_, reached)) = logging.pop_front() {
                        store(&reached);
                    }
                    continue;
                }
                b = rx.recv(), if room => b,
            }
        } else {
            rx.recv().await
        };
        let Some(batch) = batch else {
            while let Some((logged, reached)) = logging.pop_front() {
                if !logged.wait(&give_up).await {
                    return;
                }
                store(&reached);
            }
            return;
        };
        let mut reached: Vec<(i32, i64)> = Vec::new();
        let mut state: Vec<crate::changelog::Record> = Vec::new();
        for mut p in batch {
            state.append(&mut p.state);
            let ack = Ack {
                producers: &producers,
                topics: &topics,
                metrics: &metrics,
                give_up: &give_up,
                stall_warn,
            };
            if !acknowledge(p.deliveries, &ack).await {
                return;
            }
            in_flight_bytes.release(p.bytes);
            // Issue #19 hook: pages only for acknowledged alert records.
            if let Some(w) = &webhook {
                for a in p.webhooks {
                    w.enqueue(a);
                }
            }
            if p.offset < 0 {
                continue; // Issue #21: a flush without an input event.
            }
            match reached.iter_mut().find(|(q, _)| *q == p.partition) {
                Some(r) => r.1 = r.1.max(p.offset + 1),
                None => reached.push((p.partition, p.offset + 1)),
            }
        }
        // Issue #21 hook (state.rs): the state the batch produced, after its outputs and
        // before its offsets (a restored state never runs ahead of delivered outputs);
        // a batch without a record-cache flush has its offsets held for the next flush.
        match &changelog {
            Some(cl) => match held.batch(&reached, !state.is_empty()) {
                None => acked.send_modify(|n| *n += 1),
                Some(covered) => logging.push_back((cl.send(state), covered)),
            },
            None => store(&reached),
        }
    }
}

/// Batches whose state may await its acknowledgement at once (each holds its offsets
/// back); beyond it the task waits for the oldest before taking the next batch.
const MAX_STATE_BATCHES_IN_FLIGHT: usize = 64;

/// What [`acknowledge`] works with (also the link stage's, issue 21).
pub(super) struct Ack<'a> {
    pub producers: &'a kafka::OutputProducers,
    pub topics: &'a OutputTopics,
    pub metrics: &'a Metrics,
    pub give_up: &'a CancellationToken,
    /// `--delivery-timeout`: a record unacknowledged this long is logged as stalled.
    pub stall_warn: Duration,
}

/// Waits until every record of one event is acknowledged. Returns false when `give_up`
/// fired first.
///
/// Issue #19: serve's producers never time a record out (`kafka::SERVE_MESSAGE_TIMEOUT`),
/// so librdkafka retries transient errors itself, in order; what reaches the loop below is
/// a permanent refusal (dead-lettered, never retried), a broken producer (renewed, then
/// the record is re-sent — in acknowledgement order, which is input order) or a local
/// error (re-sent with backoff).
pub(super) async fn acknowledge(deliveries: Vec<Delivery>, ack: &Ack<'_>) -> bool {
    let Ack {
        producers,
        topics,
        metrics,
        give_up,
        stall_warn,
    } = *ack;
    // Issue #19 hook: a queue, so a permanently refused record's dead-letter stand-in
    // is acknowledged in its place before the next record (and the offset) moves on.
    let mut queue: VecDeque<_> = deliveries
        .into_iter()
        .map(|(rec, fut, generation)| (rec, Some(fut), generation))
        .collect();
    while let Some((rec, mut fut, mut generation)) = queue.pop_front() {
        let producer = producers.for_sink(rec.sink);
        let mut attempt: u32 = 0;
        loop {
            let err = match fut.take() {
                Some(Err(e)) => Some(e),
                Some(Ok(f)) => {
                    tokio::pin!(f);
                    let mut waited = Duration::ZERO;
                    loop {
                        tokio::select! {
                            r = &mut f => break match r {
                                Ok(Ok(_)) => None,
                                Ok(Err((e, _))) => Some(e),
                                Err(_) => Some(KafkaError::Canceled),
                            },
                            _ = tokio::time::sleep(stall_warn) => {
                                waited += stall_warn;
                                tracing::warn!(sink = rec.sink.as_str(), waited_s = waited.as_secs(),
                                    "record not acknowledged yet; librdkafka keeps retrying it in order");
                            }
                            _ = give_up.cancelled() => return false,
                        }
                    }
                }
                None => Some(KafkaError::Canceled),
            };
            let Some(err) = err else {
                metrics.delivered(rec.sink);
                break;
            };
            metrics.delivery_failed(rec.sink);
            // Issue #19 hook: permanent refusals (kafka::refusal) are never retried.
            if let Some(reason) = kafka::refusal::permanent_reason(&err) {
                metrics.produce_refused(rec.sink, reason);
                tracing::error!(sink = rec.sink.as_str(), reason, bytes = rec.payload.len(), error = %err,
                    "broker refused a record for good; dead-lettering it and moving on");
                if let Some(dl) =
                    kafka::refusal::replacement(&rec, topics.topic(rec.sink), reason, &err)
                {
                    let (p, g) = producers.for_sink(dl.sink).get_with_generation();
                    let f = kafka::send(&p, topics, &dl).await;
                    queue.push_front((dl, Some(f), g));
                }
                break;
            }
            if attempt % 20 == 0 {
                tracing::warn!(sink = rec.sink.as_str(), attempt, error = %err, "record not acknowledged; retrying");
            }
            let fatal = producer.get().client().fatal_error();
            if kafka::producer_is_broken(&err) || fatal.is_some() {
                match producer.renew(generation) {
                    Ok(false) => {}
                    Ok(true) => {
                        metrics.producer_renewed();
                        tracing::warn!(error = %err, "producer fenced or failed; replaced it with a new one");
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "could not replace the producer")
                    }
                }
            }
            let backoff = (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(6)))
                .min(MAX_RETRY_BACKOFF);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = give_up.cancelled() => return false,
            }
            let (p, g) = producer.get_with_generation();
            generation = g;
            fut = Some(kafka::send(&p, topics, &rec).await);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::HoldBack;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Batches: per partition the records each consumed (offsets grow per partition in
    /// input order), and whether the batch carried a record-cache flush.
    fn batches() -> impl Strategy<Value = Vec<(Vec<(i32, i64)>, bool)>> {
        prop::collection::vec(
            (
                prop::collection::vec((0i32..4, 1i64..50), 0..4),
                any::<bool>(),
            ),
            0..40,
        )
    }

    proptest! {
        /// The hold-back rule, with the flushes acknowledged up to a crash at batch
        /// `cut`: an offset is stored only with a flush handed over at or after the batch
        /// that reached it (so never ahead of the logged state a restart restores), the
        /// stored offsets never go back, and a final flush (shutdown, revoke) covers
        /// every offset reached.
        #[test]
        fn offsets_wait_for_the_flush_that_covers_them(spec in batches(), cut in 0usize..40) {
            let mut held = HoldBack::default();
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            let mut logged: BTreeMap<i32, i64> = BTreeMap::new();
            let mut stored: BTreeMap<i32, i64> = BTreeMap::new();
            let mut covered_all: BTreeMap<i32, i64> = BTreeMap::new();
            for (i, (steps, flushed)) in spec.iter().enumerate() {
                let mut reached: Vec<(i32, i64)> = Vec::new();
                for &(p, step) in steps {
                    let o = next.entry(p).or_insert(0);
                    *o += step;
                    match reached.iter_mut().find(|e| e.0 == p) {
                        Some(e) => e.1 = *o,
                        None => reached.push((p, *o)),
                    }
                }
                let out = held.batch(&reached, *flushed);
                prop_assert_eq!(out.is_some(), *flushed);
                let Some(covered) = out else { continue };
                // The flush logs the state of every batch so far (offsets `next`).
                logged.clone_from(&next);
                for &(p, o) in &covered {
                    prop_assert!(o <= logged[&p], "covers input beyond the state it logs");
                    covered_all.insert(p, o);
                }
                if i < cut {
                    for (p, o) in covered {
                        let before = stored.insert(p, o).unwrap_or(0);
                        prop_assert!(o >= before, "stored offsets go back");
                    }
                }
                for (p, o) in &stored {
                    prop_assert!(*o <= logged[p], "an offset stored ahead of its state");
                }
            }
            // Batches after the last flush are held, not stored...
            let pending = held.batch(&[], true).unwrap_or_default();
            for (p, o) in pending {
                covered_all.insert(p, o);
            }
            // ...until a final flush covers them: every offset reached, exactly.
            prop_assert_eq!(covered_all, next);
        }
    }

    #[test]
    fn a_batch_without_a_flush_is_held_until_one() {
        let mut h = HoldBack::default();
        assert_eq!(h.batch(&[(0, 10), (1, 5)], false), None);
        assert_eq!(h.batch(&[(0, 20)], false), None);
        assert_eq!(h.batch(&[(1, 7)], true), Some(vec![(0, 20), (1, 7)]));
        assert_eq!(h.batch(&[], true), Some(vec![]));
    }
}
