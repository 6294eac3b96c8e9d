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
use followguard_core::adapt::InputFormat;
use followguard_core::event::EventError;
use followguard_core::pipeline::{Pipeline, Prepared};
use followguard_core::profiles::{self, ProfileTable, Resolved};
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
    /// Issue #19: the prepare helpers' score-cache bytes, and when the stored-state
    /// gauges were last refreshed (wall clock, ms).
    pub helper_cache_bytes: usize,
    pub state_reported_ms: i64,
    /// Issue #23: revoked partitions' open alerts are no longer resent.
    pub webhook: Option<crate::webhook::Webhook>,
    /// Issue 21: the detector-state changelog, when `--changelog-topic` is set.
    pub changelog: Option<super::state::ChangelogSink>,
    /// Issue 21: per partition, the input offset the restored state reflects.
    pub in_state: std::collections::HashMap<i32, i64>,
    /// Issue 24: the profile table (`--profile-topic`), for formats without profiles.
    pub profiles: Option<super::profiles::ProfileFeed>,
    /// Issue 24: moderators' decisions waiting to be applied (`--decisions-topic`).
    pub decisions: Option<super::profiles::DecisionQueue>,
    /// Issue 21 (rebalance.rs): input partitions assigned and not revoked, the batches
    /// handed to the acknowledgement task and how far it got, and the context's switch
    /// for leaving revokes to the loop.
    pub owned: HashSet<i32>,
    pub hand_over: super::rebalance::HandOver,
    pub defer_revoke: Arc<std::sync::atomic::AtomicBool>,
    /// Issue 21: set when the input topic was deleted or re-created under the service
    /// (`kafka::topics::watch_input`); the loop stops with it.
    pub input_gone: Arc<std::sync::OnceLock<String>>,
}

/// Issue 24: what one input record became before the pipeline.
enum Plan {
    /// Its events are `inputs[from..to]`.
    Events(usize, usize),
    Ignored(&'static str),
    Failed(EventError),
}

/// Polls `f` once without waiting: a record librdkafka already fetched is taken with no
/// timer and no task wake-up.
/// [`poll_now`] of a group consumer, its poll gap measured (`kafka::PollGap`).
pub(super) fn poll_group_now<'a, C: crate::kafka::PollGapContext>(
    consumer: &'a rdkafka::consumer::StreamConsumer<C>,
    site: &'static str,
) -> Option<rdkafka::error::KafkaResult<BorrowedMessage<'a>>> {
    let gap = rdkafka::consumer::Consumer::context(consumer).poll_gap();
    if let Some(g) = gap {
        g.began(site);
    }
    let r = poll_now(consumer.recv());
    if let Some(g) = gap {
        g.ended(site);
    }
    r
}

/// Waits up to [`IDLE_TICK`] for a record of a group consumer, its poll gap measured
/// ([`poll_group_within`]).
pub(super) async fn poll_group<'a, C: crate::kafka::PollGapContext>(
    consumer: &'a rdkafka::consumer::StreamConsumer<C>,
    site: &'static str,
) -> Result<rdkafka::error::KafkaResult<BorrowedMessage<'a>>, tokio::time::error::Elapsed> {
    poll_group_within(consumer, site, IDLE_TICK).await
}

/// Waits up to `wait` for a record of a group consumer, its poll gap measured.
/// A waiting `recv` polls librdkafka when it starts and again only when woken by a
/// record: the wait itself is not a poll for `max.poll.interval.ms`, so only its start
/// and a record's return count as polls.
pub(super) async fn poll_group_within<'a, C: crate::kafka::PollGapContext>(
    consumer: &'a rdkafka::consumer::StreamConsumer<C>,
    site: &'static str,
    wait: Duration,
) -> Result<rdkafka::error::KafkaResult<BorrowedMessage<'a>>, tokio::time::error::Elapsed> {
    let gap = rdkafka::consumer::Consumer::context(consumer).poll_gap();
    let polled = || {
        if let Some(g) = gap {
            g.began(site);
            g.ended(site);
        }
    };
    polled();
    let r = tokio::time::timeout(wait, consumer.recv()).await;
    if r.is_ok() {
        polled();
    }
    r
}

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
                // Issue 21 hook (state.rs): the batch's state travels with it, and the
                // record cache is flushed.
                self.attach_state_forced(&mut batch, true);
                super::backpressure::hand_over_late(&tx, batch);
                return Ok(());
            }
            let msg = match carry
                .take()
                .map(Ok)
                .or_else(|| poll_group_now(&consumer, "consume"))
            {
                Some(m) => m,
                None => {
                    // Nothing fetched yet: hand over what is done before waiting, so no
                    // event waits for later ones to be acknowledged.
                    if !self.flush(shutdown, &tx, &mut batch).await? {
                        return Ok(());
                    }
                    self.apply_rebalances(shutdown).await;
                    self.refuse_foreign_changelog()?;
                    self.apply_reload(&mut preparer);
                    let r = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => {
                            // Issue 21: the record cache is flushed at shutdown.
                            self.attach_state_forced(&mut batch, true);
                            super::backpressure::hand_over_late(&tx, batch);
                            return Ok(());
                        }
                        r = poll_group(&consumer, "consume (idle)") => r,
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
            // A rebalance may have been served inside recv(); state must match first,
            // and a revoke hands over what is done before it drops anything (issue 21).
            if self.rebalance_pending() && !self.flush(shutdown, &tx, &mut batch).await? {
                return Ok(());
            }
            self.apply_rebalances(shutdown).await;
            self.refuse_foreign_changelog()?;
            if !self.owns(m.partition()) {
                // Fetched before a revoke: its next owner reads it from the committed offset.
                continue;
            }
            self.apply_decisions();
            self.apply_reload(&mut preparer);
            // More records already fetched join the chunk, up to a rebalance: a record
            // returned by the poll that served one belongs after it.
            let mut chunk = vec![m];
            // Only records already fetched: a chunk never waits for more.
            while chunk.len() < preparer.max_chunk() {
                match poll_group_now(&consumer, "consume (chunk)") {
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
            let observed = if self.cfg.input.format == InputFormat::Canonical {
                let inputs: Vec<(&[u8], Option<i64>)> = chunk
                    .iter()
                    .map(|m| (m.payload().unwrap_or_default(), m.timestamp().to_millis()))
                    .collect();
                self.prepare_and_observe(&mut preparer, &chunk, &inputs, |i| i)
            } else {
                self.wait_for_profiles(shutdown, &chunk).await;
                self.observe_adapted(&chunk, &mut preparer)
            };
            self.helper_cache_stats = preparer.cache_stats();
            self.helper_cache_bytes = preparer.cache_bytes();
            for o in observed {
                let pending = self.send_records(o).await;
                batch.push(pending);
                if batch.len() >= BATCH && !self.flush(shutdown, &tx, &mut batch).await? {
                    return Ok(());
                }
            }
        }
    }

    /// Issue 24: a chunk of another format. Each record is adapted (and joined with the
    /// profile table) into zero or more canonical events, which go through the pipeline
    /// in input order; a record holding no follow is counted, a malformed one or one
    /// whose follower has no profile is dead-lettered. Outputs stay in input order, so
    /// offsets are still stored only after everything before them is acknowledged.
    fn observe_adapted(
        &mut self,
        chunk: &[BorrowedMessage<'_>],
        preparer: &mut Preparer,
    ) -> Vec<Observed> {
        let decoded: Vec<Result<Resolved, EventError>> = chunk
            .iter()
            .map(|m| self.resolve(m.payload().unwrap_or_default()))
            .collect();
        let mut inputs: Vec<(&[u8], Option<i64>)> = Vec::with_capacity(chunk.len());
        let mut owner = Vec::with_capacity(chunk.len());
        let mut plans = Vec::with_capacity(chunk.len());
        for (i, (m, d)) in chunk.iter().zip(&decoded).enumerate() {
            plans.push(match d {
                Ok(Resolved::Events(events)) => {
                    let from = inputs.len();
                    for e in events {
                        inputs.push((e.as_slice(), m.timestamp().to_millis()));
                        owner.push(i);
                    }
                    Plan::Events(from, inputs.len())
                }
                Ok(Resolved::Ignored(why)) => Plan::Ignored(why),
                Err(e) => Plan::Failed(e.clone()),
            });
        }
        let mut by_input: Vec<Option<Observed>> = self
            .prepare_and_observe(preparer, chunk, &inputs, |i| owner[i])
            .into_iter()
            .map(Some)
            .collect();
        let mut observed = Vec::with_capacity(chunk.len());
        for (m, plan) in chunk.iter().zip(plans) {
            match plan {
                Plan::Events(from, to) => {
                    observed.extend(by_input[from..to].iter_mut().filter_map(Option::take))
                }
                Plan::Ignored(why) => {
                    self.metrics.input.ignored(why);
                    observed.push(Observed {
                        partition: m.partition(),
                        offset: m.offset(),
                        records: Vec::new(),
                        webhooks: Vec::new(),
                    });
                }
                Plan::Failed(e) => observed.push(self.observe_one(m, Err(e), 0.0)),
            }
        }
        observed
    }

    /// Detection and output records in input order (parse and score of later inputs
    /// overlapped on the helpers, if any); input `i` came from `chunk[owner(i)]`.
    fn prepare_and_observe(
        &mut self,
        preparer: &mut Preparer,
        chunk: &[BorrowedMessage<'_>],
        inputs: &[(&[u8], Option<i64>)],
        owner: impl Fn(usize) -> usize,
    ) -> Vec<Observed> {
        let mut observed = Vec::with_capacity(inputs.len());
        // Issue 21: an event may take long (a sweep expiring the pending follows of
        // thousands of followees after a restore): the member is kept between events.
        let mut keep_alive = super::state::KeepAlive::new(self.consumer.clone(), "observe");
        preparer.run(
            self,
            |s| &mut s.pipeline,
            inputs,
            |s, i, (result, secs)| {
                observed.push(s.observe_one(&chunk[owner(i)], result, secs));
                keep_alive.tick();
            },
        );
        observed
    }

    /// Issue 24: the canonical events of one record of another format (none when it
    /// holds no follow, is malformed or its follower has no profile).
    pub(super) fn adapted(&self, payload: &[u8]) -> Vec<Vec<u8>> {
        match self.resolve(payload) {
            Ok(Resolved::Events(v)) => v,
            Ok(Resolved::Ignored(_)) | Err(_) => Vec::new(),
        }
    }

    /// One record of a non-canonical format adapted and joined with the profile table.
    fn resolve(&self, payload: &[u8]) -> Result<Resolved, EventError> {
        let empty = ProfileTable::new(0);
        let guard = self.profiles.as_ref().and_then(|f| f.table.read().ok());
        let table = guard.as_deref().unwrap_or(&empty);
        profiles::resolve(self.cfg.input.format, payload, table)
    }

    /// Issue 24: waits while a record of `chunk` names a follower the profile table does
    /// not know yet and its wait (`--profile-wait`, processing time from the record's
    /// timestamp) has not run out. A record older than the wait (a backlog being caught
    /// up) is not waited for: its profile had that long already.
    async fn wait_for_profiles(
        &mut self,
        shutdown: &CancellationToken,
        chunk: &[BorrowedMessage<'_>],
    ) {
        let Some(feed) = self.profiles.clone() else {
            return;
        };
        let wait_ms = i64::try_from(self.cfg.input.profile_wait.as_millis()).unwrap_or(i64::MAX);
        let format = self.cfg.input.format;
        let mut counted = false;
        loop {
            let deadline = {
                let Ok(table) = feed.table.read() else {
                    return;
                };
                chunk
                    .iter()
                    .filter(|m| {
                        !profiles::profiles_ready(format, m.payload().unwrap_or_default(), &table)
                    })
                    .filter_map(|m| m.timestamp().to_millis())
                    .map(|t| t.saturating_add(wait_ms))
                    .max()
            };
            let now = now_ms();
            match deadline {
                Some(d) if d > now && !shutdown.is_cancelled() => {
                    if !counted {
                        self.metrics.input.profile_wait();
                        counted = true;
                    }
                    self.admin.progress();
                    let nap = Duration::from_millis(u64::try_from(d - now).unwrap_or(0).min(20));
                    tokio::time::sleep(nap).await;
                }
                _ => return,
            }
        }
    }

    /// Issue 24: a requested live reload, between chunks: the model file is read again
    /// and swapped in with the detector state kept (no event is dropped or re-read: the
    /// loop simply prepares its next chunk with the new model). A file that does not
    /// load (or does not match `--model-sha256`) leaves the running model in place.
    fn apply_reload(&mut self, preparer: &mut Preparer) {
        let Some(r) = self.admin.take_reload() else {
            return;
        };
        // Detector thresholds apply whatever becomes of the model file.
        for (name, value) in &r.detector {
            if self.pipeline.retune(name, *value) {
                tracing::info!(name, value, "detector threshold changed");
            }
        }
        match super::load_model(self.cfg) {
            Ok(m) => {
                tracing::info!(
                    version = m.version(),
                    sha256 = m.sha256(),
                    threshold = r.threshold.unwrap_or(m.threshold()),
                    "model reloaded"
                );
                self.metrics.set_model(m.version(), m.sha256());
                self.pipeline.replace_model(Arc::new(m), r.threshold);
                preparer.clear_caches();
                self.metrics.input.model_reload("ok");
                self.reload_shadow();
            }
            Err(e) => {
                tracing::warn!(error = %e, "model reload failed; the running model stays");
                self.metrics.input.model_reload("failed");
            }
        }
    }

    /// Issue 24: the shadow model file is reloaded with the live one (a file that does
    /// not load keeps the running shadow; counted as a failed reload).
    fn reload_shadow(&mut self) {
        let Some(path) = &self.cfg.input.shadow_model else {
            return;
        };
        match followguard_train::model_file::load(path) {
            Ok(m) => {
                self.metrics.input.set_shadow(m.version(), m.sha256());
                self.pipeline.set_shadow(Arc::new(m));
            }
            Err(e) => {
                tracing::warn!(error = %e, "shadow model reload failed; the running shadow stays");
                self.metrics.input.model_reload("failed");
            }
        }
    }

    /// Issue 24: applies the decisions read since the last chunk (between chunks, so
    /// every event of a chunk sees the same verdicts).
    fn apply_decisions(&mut self) {
        let Some(q) = &self.decisions else { return };
        let pending = match q.lock() {
            Ok(mut q) if !q.is_empty() => std::mem::take(&mut *q),
            _ => return,
        };
        for d in &pending {
            self.pipeline.apply_decision(d);
        }
        self.metrics
            .input
            .decisions_held(self.pipeline.decision_sizes());
    }

    pub(super) fn rebalance_pending(&self) -> bool {
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
