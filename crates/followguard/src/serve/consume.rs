//! The consume loop: takes records librdkafka already fetched in chunks (never waiting
//! for more), applies rebalances before the records that follow them, prepares and
//! observes each chunk in input order and hands the outputs on in batches.

use super::ack::Batch;
use super::route::Observed;
use super::{now_ms, Consumer_, BATCH};
use crate::admin::AdminState;
use crate::config::ServeConfig;
use crate::kafka::{self, OutputTopics, RebalanceEvent};
use crate::metrics::Metrics;
use crate::prepare::Preparer;
use followguard_core::event::EventError;
use followguard_core::pipeline::{Pipeline, Prepared};
use rdkafka::message::{BorrowedMessage, Message};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long one `recv` may wait before the loop reports progress while idle.
pub(super) const IDLE_TICK: Duration = Duration::from_millis(500);

/// The consume loop's state.
pub(super) struct Service<'a> {
    pub cfg: &'a ServeConfig,
    pub consumer: Arc<Consumer_>,
    pub producers: kafka::OutputProducers,
    pub topics: OutputTopics,
    pub pipeline: Pipeline,
    pub admin: Arc<AdminState>,
    pub metrics: Metrics,
    /// Whether alerts are also paged (the webhook itself lives in the ack task).
    pub webhook_on: bool,
    /// Issue #19: bytes of unacknowledged output records, shared with the ack task.
    pub in_flight_bytes: crate::inflight::InFlightBytes,
    pub rebalances: Arc<Mutex<VecDeque<RebalanceEvent>>>,
    /// Alert ids the alerts topic already holds as `open` (read at assignment).
    pub already_open: HashSet<String>,
    pub rebuild_window: Duration,
    /// Wall clock for event age, refreshed per batch (a clock read per event costs more
    /// than the age histogram's resolution needs).
    pub now_ms: i64,
    /// Issue #23: the prepare helpers' score-cache (hits, misses), after the last chunk.
    pub helper_cache_stats: (u64, u64),
    /// Issue #23: revoked partitions' open alerts are no longer resent.
    pub webhook: Option<crate::webhook::Webhook>,
    /// Issue 21: the detector-state changelog, when `--changelog-topic` is set.
    pub changelog: Option<super::state::ChangelogSink>,
    /// Issue 21: per partition, the input offset the restored state reflects.
    pub in_state: std::collections::HashMap<i32, i64>,
}

/// Polls `f` once without waiting: a record librdkafka already fetched is taken with no
/// timer and no task wake-up.
fn poll_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

impl Service<'_> {
    pub async fn consume(
        &mut self,
        shutdown: &CancellationToken,
        tx: mpsc::Sender<Batch>,
        mut preparer: Preparer,
    ) -> anyhow::Result<()> {
        let consumer = self.consumer.clone();
        let mut batch: Batch = Vec::with_capacity(BATCH);
        // A record that came after a rebalance, held for the next chunk.
        let mut carry: Option<BorrowedMessage<'_>> = None;
        loop {
            if shutdown.is_cancelled() {
                // Issue 21 hook (state.rs): the batch's state travels with it.
                self.attach_state(&mut batch);
                super::backpressure::hand_over_late(&tx, batch);
                return Ok(());
            }
            let msg = match carry.take().map(Ok).or_else(|| poll_now(consumer.recv())) {
                Some(m) => m,
                None => {
                    // Nothing fetched yet: hand over what is done before waiting, so no
                    // event waits for later ones to be acknowledged.
                    if !self.flush(shutdown, &tx, &mut batch).await? {
                        return Ok(());
                    }
                    self.apply_rebalances(shutdown).await;
                    let r = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return Ok(()),
                        r = tokio::time::timeout(IDLE_TICK, consumer.recv()) => r,
                    };
                    self.now_ms = now_ms();
                    match r {
                        Err(_idle) => continue,
                        Ok(m) => m,
                    }
                }
            };
            let m = match msg {
                Err(e) => {
                    self.metrics.consumer_error();
                    tracing::warn!(error = %e, "consumer error");
                    continue;
                }
                Ok(m) => m,
            };
            // A rebalance may have been served inside recv(); state must match first.
            self.apply_rebalances(shutdown).await;
            // More records already fetched join the chunk, up to a rebalance: a record
            // returned by the poll that served one belongs after it.
            let mut chunk = vec![m];
            // Only records already fetched: a chunk never waits for more.
            while chunk.len() < preparer.max_chunk() {
                match poll_now(consumer.recv()) {
                    Some(Ok(m)) if self.rebalance_pending() => {
                        carry = Some(m);
                        break;
                    }
                    Some(Ok(m)) => chunk.push(m),
                    Some(Err(e)) => {
                        self.metrics.consumer_error();
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                    None => break,
                }
            }
            let inputs: Vec<(&[u8], Option<i64>)> = chunk
                .iter()
                .map(|m| (m.payload().unwrap_or_default(), m.timestamp().to_millis()))
                .collect();
            // Detection and output records in input order (parse and score of later
            // records overlapped on the helpers, if any), then the sends.
            let mut observed = Vec::with_capacity(chunk.len());
            preparer.run(
                self,
                |s| &mut s.pipeline,
                &inputs,
                |s, i, (result, secs)| {
                    observed.push(s.observe_one(&chunk[i], result, secs));
                },
            );
            self.helper_cache_stats = preparer.cache_stats();
            for o in observed {
                let pending = self.send_records(o).await;
                batch.push(pending);
                if batch.len() >= BATCH && !self.flush(shutdown, &tx, &mut batch).await? {
                    return Ok(());
                }
            }
        }
    }

    fn rebalance_pending(&self) -> bool {
        self.rebalances
            .lock()
            .map(|q| !q.is_empty())
            .unwrap_or(false)
    }

    /// Turns one prepared input record into its output records (not yet sent).
    /// `prep_secs`: time its parse and score took.
    fn observe_one(
        &mut self,
        m: &BorrowedMessage<'_>,
        prepared: Result<Prepared<'_>, EventError>,
        prep_secs: f64,
    ) -> Observed {
        let (partition, offset) = (m.partition(), m.offset());
        // Issue 21 hook (state.rs): already counted in the restored state.
        if self.already_in_state(partition, offset) {
            return Observed {
                partition,
                offset,
                records: Vec::new(),
                webhooks: Vec::new(),
            };
        }
        let started = Instant::now();
        let result = prepared.and_then(|p| self.pipeline.observe(p, partition));
        self.metrics
            .processing_seconds(prep_secs + started.elapsed().as_secs_f64());
        let mut records = Vec::new();
        let mut webhooks = Vec::new();
        match result {
            Ok(outcome) => {
                self.outcome_records(&outcome, partition, &mut records, &mut webhooks);
                self.note_evidence(&outcome, partition);
            }
            Err(e) => {
                let kind = e.kind();
                self.metrics.event_rejected(kind);
                self.metrics.dead_lettered(kind);
                records.push(kafka::dead_letter(
                    m.topic(),
                    partition,
                    offset,
                    m.key(),
                    m.payload().unwrap_or_default(),
                    kind,
                    &e.to_string(),
                ));
            }
        }
        Observed {
            partition,
            offset,
            records,
            webhooks,
        }
    }
}
