//! Issue 21: `serve`'s side of the changelog (docs/state.md, `crate::changelog`).
//! The state each batch changed is exported when the batch is handed over and travels
//! with it; the acknowledgement task produces it once every output record of the batch is
//! acknowledged, and stores the batch's offsets only once the state is acknowledged too:
//! outputs, then state, then offsets. So a restored state never runs ahead of the outputs
//! it implies (an alert resolved in the state was announced as resolved), and no offset is
//! stored before the state it produced is durable (at-least-once). On assignment, the
//! partitions' state is restored from their changelog partitions, `/readyz` not ready
//! meanwhile, the group consumer polled (input paused) so the member keeps its
//! assignment. Full partition snapshots bound what a restore reads: one is written every
//! `--changelog-snapshot-every`, or once `--changelog-snapshot-records` records were
//! logged for the partition since its last one.

use super::consume::Service;
use crate::changelog;
use crate::kafka;
use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The alert scan stops when nothing arrives for this long (or at end of partition).
const SCAN_IDLE: Duration = Duration::from_secs(1);

/// Longest the consume loop works (a snapshot, a flush, a chunk's events) without
/// polling its group consumer.
const KEEPALIVE_EVERY: Duration = Duration::from_millis(200);

/// Keeps the member in its group while the consume loop builds a long snapshot or
/// flush, or observes a long chunk (millions of followees take seconds, and librdkafka
/// evicts a member not polled for `max.poll.interval.ms`): once per [`KEEPALIVE_EVERY`]
/// since the group consumer's last poll (wherever it was: work done before this exists
/// counts) the group consumer is polled,
/// the input paused from the first such poll on (a record that slips through is sought
/// back, as during a restore) and resumed when this is dropped. Work shorter than
/// that neither pauses nor polls. Rebalances the poll sees are queued by the context and
/// applied by the loop afterwards.
pub(super) struct KeepAlive {
    consumer: Arc<super::Consumer_>,
    last: std::time::Instant,
    paused: Option<TopicPartitionList>,
    /// Where it polls, for `kafka::PollGap`'s log line.
    site: &'static str,
}

impl KeepAlive {
    pub(super) fn new(consumer: Arc<super::Consumer_>, site: &'static str) -> KeepAlive {
        use crate::kafka::PollGapContext;
        let last = consumer
            .context()
            .poll_gap()
            .and_then(kafka::PollGap::last_poll)
            .unwrap_or_else(std::time::Instant::now);
        KeepAlive {
            consumer,
            last,
            paused: None,
            site,
        }
    }

    pub(super) fn tick(&mut self) {
        if self.last.elapsed() < KEEPALIVE_EVERY {
            return;
        }
        if self.paused.is_none() {
            let a = self.consumer.assignment().unwrap_or_default();
            if let Err(e) = self.consumer.pause(&a) {
                tracing::debug!(error = %e, "pause for the snapshot failed");
            }
            self.paused = Some(a);
        }
        // One poll, not waited on: a librdkafka poll of the consumer queue is what
        // `max.poll.interval.ms` counts.
        if let Some(Ok(m)) = super::consume::poll_group_now(&self.consumer, self.site) {
            super::backpressure::rewind(&self.consumer, m);
        }
        self.last = std::time::Instant::now();
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Some(paused) = self.paused.take() {
            if let Err(e) = self.consumer.resume(&paused) {
                tracing::warn!(error = %e, "resume after the snapshot failed");
            }
        }
    }
}

/// Runs `work` (a restore, an input rebuild, a revoke's hand-over: seconds of reading,
/// CPU work or waiting) with the input paused and the group consumer polled beside it
/// once per [`KEEPALIVE_EVERY`] by a thread of its own, so the member keeps its group
/// however long `work` takes and whether or not it yields (librdkafka evicts a member
/// not polled for `max.poll.interval.ms`). Records that slip through are sought back;
/// rebalances the polls see are queued by the context and applied afterwards. The
/// partitions paused here and still assigned are resumed at the end.
pub(super) async fn keep_member<C, F>(
    consumer: &Arc<rdkafka::consumer::StreamConsumer<C>>,
    work: F,
) -> F::Output
where
    C: crate::kafka::PollGapContext + Send + Sync,
    F: std::future::Future,
{
    let paused = consumer.assignment().unwrap_or_default();
    if let Err(e) = consumer.pause(&paused) {
        tracing::debug!(error = %e, "pause while keeping the member failed");
    }
    let stop = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let poller = {
        let (consumer, stop) = (consumer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("keep-member".into())
            .spawn(move || {
                let (done, wake) = &*stop;
                let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                while !*done {
                    // A poll that does not wait: a waiting `recv` is not a poll for
                    // librdkafka between its start and a record.
                    if let Some(Ok(m)) = super::consume::poll_group_now(&consumer, "keep_member") {
                        super::backpressure::rewind(&consumer, m);
                    }
                    done = wake
                        .wait_timeout(done, KEEPALIVE_EVERY)
                        .map(|(d, _)| d)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            })
    };
    if let Err(e) = &poller {
        tracing::warn!(error = %e, "could not start the thread that keeps the member");
    }
    let r = work.await;
    {
        let (done, wake) = &*stop;
        *done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }
    if let Ok(t) = poller {
        let _ = t.join();
    }
    // A revoke released some of them meanwhile: only those still assigned.
    let now = consumer.assignment().unwrap_or_default();
    let mut resume = TopicPartitionList::new();
    for e in paused.elements() {
        if now.find_partition(e.topic(), e.partition()).is_some() {
            resume.add_partition(e.topic(), e.partition());
        }
    }
    if resume.count() > 0 {
        if let Err(e) = consumer.resume(&resume) {
            tracing::warn!(error = %e, "resume after keeping the member failed");
        }
    }
    r
}

/// Where and through what the changelog is written.
#[derive(Clone)]
pub(super) struct ChangelogSink {
    pub topic: String,
    /// `--changelog-snapshot-every`, and when each partition's last snapshot was taken
    /// (the consume loop's copy; the ack task's is unused).
    pub snapshot_every: std::time::Duration,
    pub snapshots: HashMap<i32, std::time::Instant>,
    /// Per partition, the input offset its last logged `o/` record named.
    pub logged_next: HashMap<i32, i64>,
    /// `--changelog-snapshot-records`, and the records logged per partition since its
    /// last snapshot.
    pub snapshot_records: u64,
    pub since_snapshot: HashMap<i32, u64>,
    /// Per partition, the moderation dedup keys logged with a value: each snapshot writes
    /// them again, or their tombstones once expired.
    pub moderation: HashMap<i32, BTreeSet<u64>>,
    /// The writer's order: one step per batch, in the snapshot markers and the lockstep
    /// changes of the batch (a restore uses the newest). Starts at the wall clock in µs,
    /// so a restarted writer goes on above its predecessor.
    pub seq: u64,
    /// Where each partition's latest snapshot began (stamped on the `o/` records).
    pub pointers: changelog::Pointers,
    /// The record cache: dirty state is logged once per `--changelog-flush-every` (or
    /// early at `--changelog-cache-bytes`), not with every batch.
    pub cache: changelog::RecordCache,
    /// What the state belongs to (input topic, its partition count, group), written in
    /// every snapshot and checked by every restore; known from the first restore on.
    pub identity: Option<changelog::Identity>,
    /// A restore found a foreign changelog: the service stops with this message.
    pub refused: Option<String>,
    /// The thread that hands each flush's records to the producer, in flush order, so
    /// the acknowledgement task never stalls on a flush of several MB.
    handing: std::sync::mpsc::Sender<Handoff>,
}

/// A flush's records for the hand-over thread, and where it says how the produce
/// calls went (each record's delivery future, or the first refusal).
type Handoff = (
    Vec<changelog::Record>,
    tokio::sync::oneshot::Sender<anyhow::Result<Vec<rdkafka::producer::DeliveryFuture>>>,
);

/// Starts the hand-over thread of `producer` (it ends when every sender is dropped).
fn start_handing(
    producer: &kafka::Producer,
    topic: &str,
) -> anyhow::Result<std::sync::mpsc::Sender<Handoff>> {
    let (tx, rx) = std::sync::mpsc::channel::<Handoff>();
    let (producer, topic) = (producer.clone(), topic.to_string());
    std::thread::Builder::new()
        .name("changelog-send".into())
        .spawn(move || {
            while let Ok((records, reply)) = rx.recv() {
                let _ = reply.send(changelog::send_blocking(&producer, &topic, &records));
            }
        })?;
    Ok(tx)
}

impl ChangelogSink {
    /// The changelog of `cfg`, if one is configured (its producer is idempotent and never
    /// times a record out, as the output producers).
    pub fn new(cfg: &crate::config::ServeConfig) -> anyhow::Result<Option<ChangelogSink>> {
        let Some(topic) = cfg.changelog_topic.clone() else {
            return Ok(None);
        };
        // Changelog records come in flushes of thousands: the bulk producer's linger makes
        // fuller produce requests (only the offsets wait for them, never an output).
        let producer = kafka::producer_config_lingering(
            &cfg.kafka,
            kafka::SERVE_MESSAGE_TIMEOUT,
            kafka::BULK_LINGER_MS,
        )
        .create_with_context(kafka::LogContext)
        .map_err(|e| kafka::config_error("changelog producer", e))?;
        let handing = start_handing(&producer, &topic)?;
        Ok(Some(ChangelogSink {
            topic,
            handing,
            snapshot_every: cfg.changelog_snapshot_every,
            snapshots: HashMap::new(),
            logged_next: HashMap::new(),
            snapshot_records: cfg.changelog_snapshot_records,
            since_snapshot: HashMap::new(),
            moderation: HashMap::new(),
            seq: u64::try_from(super::now_ms())
                .unwrap_or(0)
                .saturating_mul(1000),
            pointers: changelog::Pointers::default(),
            cache: changelog::RecordCache::new(
                cfg.changelog_flush_every,
                cfg.changelog_cache_bytes,
            ),
            identity: None,
            refused: None,
        }))
    }

    /// Forgets a revoked partition (its next owner restores and snapshots it).
    pub fn forget(&mut self, partition: i32) {
        self.logged_next.remove(&partition);
        self.snapshots.remove(&partition);
        self.since_snapshot.remove(&partition);
        self.moderation.remove(&partition);
        self.pointers.forget(partition);
        self.cache.forget(partition);
    }

    /// Whether `partition` is due a snapshot: never taken since its assignment, its
    /// cadence elapsed, or `--changelog-snapshot-records` logged since the last.
    fn snapshot_due(&self, partition: i32, now: std::time::Instant) -> bool {
        self.snapshots
            .get(&partition)
            .is_none_or(|t| now.duration_since(*t) >= self.snapshot_every)
            || self
                .since_snapshot
                .get(&partition)
                .is_some_and(|&n| n >= self.snapshot_records)
    }

    /// Hands `records` to the producer without waiting for them: the hand-over thread
    /// makes the produce calls (a flush is thousands of records, tens of ms of librdkafka
    /// calls the acknowledgement task would otherwise spend instead of acknowledging the
    /// next batches' outputs), in flush order. The acknowledgement task stores the
    /// batch's offsets when [`Logged::wait`] says they are acknowledged, and meanwhile
    /// goes on with the next batch's outputs; a refusal comes back through it.
    pub fn send(&self, records: Vec<changelog::Record>) -> Logged {
        let (reply, handed) = tokio::sync::oneshot::channel();
        let sent = self.handing.send((records, reply));
        let topic = self.topic.clone();
        Logged {
            topic,
            done: Box::pin(async move {
                anyhow::ensure!(sent.is_ok(), "the changelog hand-over thread stopped");
                let pending = handed
                    .await
                    .map_err(|_| anyhow::anyhow!("the changelog hand-over thread stopped"))??;
                changelog::delivered(pending).await
            }),
        }
    }
}

/// One batch's state records handed to the changelog producer, not yet acknowledged.
pub(super) struct Logged {
    topic: String,
    done: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>,
}

impl Logged {
    /// Waits for the acknowledgement. False when `give_up` fired first, or on a
    /// permanent refusal (logged): the caller then stores no more offsets, and the
    /// service stops with its acknowledgement task.
    pub async fn wait(mut self, give_up: &CancellationToken) -> bool {
        self.wait_mut(give_up).await
    }

    /// [`Logged::wait`] without giving the batch up (it stays at the head of the queue,
    /// so a `select!` may leave it for later).
    pub async fn wait_mut(&mut self, give_up: &CancellationToken) -> bool {
        tokio::select! {
            r = &mut self.done => match r {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), topic = %self.topic,
                        "changelog record refused; no more offsets are stored");
                    false
                }
            },
            () = give_up.cancelled() => false,
        }
    }
}

impl Service<'_> {
    /// Whether input record `offset` of `partition` is already in the restored state
    /// (logged before the crash, its offset not yet committed): it is skipped, not
    /// counted twice. Its offset is still stored in order.
    pub(super) fn already_in_state(&self, partition: i32, offset: i64) -> bool {
        self.in_state
            .get(&partition)
            .is_some_and(|&next| offset < next)
    }

    /// Whether the record cache wants a flush now (`force`: a rebalance or shutdown),
    /// with or without a batch to carry it.
    pub(super) fn cache_flush_wanted(&self, force: bool) -> bool {
        let Some(sink) = &self.changelog else {
            return false;
        };
        let dirty = self.pipeline.detector().dirty_len();
        !sink.cache.is_empty(dirty) && (force || sink.cache.due(std::time::Instant::now(), dirty))
    }

    /// Attaches the state the batch changed to its last event: the ack task produces it
    /// after the batch's output records are acknowledged and before storing its offsets.
    /// With the record cache, only when a flush is due (`force`: whether due or not — a
    /// rebalance, shutdown): otherwise the batch carries no state, its changes stay
    /// dirty in the detector and its offsets are held by the ack task until the flush
    /// that covers them is acknowledged. An empty batch gets an event-less entry to carry a
    /// flush. Appends to a state already attached (a batch handed over again at
    /// shutdown), so the records stay in order.
    pub(super) fn attach_state_forced(&mut self, batch: &mut super::ack::Batch, force: bool) {
        let Some(sink) = self.changelog.as_mut() else {
            return;
        };
        let mut keep_alive = KeepAlive::new(self.consumer.clone(), "snapshot");
        for p in batch.iter().filter(|p| p.offset >= 0) {
            sink.cache.note(p.partition, p.offset + 1);
        }
        let now = std::time::Instant::now();
        let dirty = self.pipeline.detector().dirty_len();
        let snapshot = sink.cache.partitions().any(|p| sink.snapshot_due(p, now));
        if sink.cache.is_empty(dirty) || !(force || snapshot || sink.cache.due(now, dirty)) {
            return;
        }
        let (mut records, mut next) = sink.cache.take(now);
        changelog::note_moderation(&mut sink.moderation, &records);
        sink.seq += 1;
        // Records exported before (a restore), then snapshots of the partitions that
        // are due, then the changes since the last flush, then the input offsets the
        // state reflects.
        for &(p, o) in &next {
            if sink.snapshot_due(p, now) {
                sink.snapshots.insert(p, now);
                sink.since_snapshot.insert(p, 0);
                let logged = sink.moderation.remove(&p).unwrap_or_default();
                let snap = changelog::snapshot_records_ticking(
                    &self.pipeline,
                    p,
                    sink.seq,
                    Some(o),
                    &logged,
                    sink.identity.as_ref(),
                    &mut || keep_alive.tick(),
                );
                sink.moderation.insert(p, logged);
                changelog::note_moderation(&mut sink.moderation, &snap);
                records.extend(snap);
            }
        }
        keep_alive.tick();
        let changes = records.len();
        records.extend(changelog::dirty_records_ticking(
            &mut self.pipeline,
            sink.seq,
            &mut || keep_alive.tick(),
        ));
        keep_alive.tick();
        // Every partition the flush logged records for ends with its `o/` record (a
        // restore applies a partition's records only up to its last one): the flush's
        // own partitions with the offset they reached, others (a campaign relink or a
        // moderation entry of another partition's alert) with the offset last logged.
        for &(p, o) in &next {
            sink.logged_next.insert(p, o);
        }
        let mut touched: Vec<i32> = records
            .iter()
            .map(|r| r.partition)
            .filter(|p| !next.iter().any(|(q, _)| q == p))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        for p in touched {
            let logged = sink.logged_next.get(&p).or(self.in_state.get(&p)).copied();
            if let Some(o) = logged {
                next.push((p, o));
            }
        }
        records.extend(
            next.into_iter()
                .map(|(p, o)| changelog::offset_record(p, o)),
        );
        keep_alive.tick();
        changelog::note_moderation(&mut sink.moderation, &records[changes..]);
        keep_alive.tick();
        for r in &records[changes..] {
            *sink.since_snapshot.entry(r.partition).or_default() += 1;
        }
        keep_alive.tick();
        sink.pointers.stamp(&mut records);
        keep_alive.tick();
        sink.cache.flushed(&records[changes..]);
        keep_alive.tick();
        self.metrics.changelog_flushed(records.len());
        if batch.is_empty() {
            batch.push(super::ack::Pending::state_only());
        }
        if let Some(last) = batch.last_mut() {
            last.state.extend(records);
        }
    }

    /// Stops the service when a restore found a foreign changelog, or the input topic
    /// was deleted under it (the messages say what to fix); the consume loop calls it
    /// after applying rebalances and at every idle tick.
    pub(super) fn refuse_foreign_changelog(&self) -> anyhow::Result<()> {
        if let Some(why) = self.input_gone.get() {
            anyhow::bail!("{why}");
        }
        match self.changelog.as_ref().and_then(|c| c.refused.as_ref()) {
            Some(why) => anyhow::bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Restores `parts`' state from the changelog. Returns the keys restored (0: nothing
    /// logged yet, the caller rebuilds from the input instead).
    pub(super) async fn restore_state(&mut self, parts: &[i32]) -> anyhow::Result<u64> {
        let Some(sink) = &self.changelog else {
            return Ok(0);
        };
        let topic = sink.topic.clone();
        // The restore's import is not a change to log, but the dirty keys the cache holds
        // for the other partitions are: they are exported now and written first at the
        // next flush (their offsets stay held until then).
        if let Some(sink) = self.changelog.as_mut() {
            sink.seq += 1;
            let early = changelog::dirty_records(&mut self.pipeline, sink.seq);
            if !early.is_empty() {
                tracing::info!(
                    records = early.len(),
                    "cached changes of other partitions exported before the restore"
                );
            }
            sink.cache.stash(early);
        }
        let reader = Arc::new(kafka::reader(&kafka::replay_config(
            &self.cfg.kafka,
            &format!("{}.changelog", self.cfg.group_id),
        ))?);
        let alerts_reader =
            self.alerts_reader(&reader, &format!("{}.changelog", self.cfg.group_id))?;
        // What this service's state is (the input's partition count now).
        let input_partitions = changelog::partition_count(&reader, &self.cfg.input_topic).await;
        let identity =
            changelog::Identity::new(&self.cfg.input_topic, input_partitions, &self.cfg.group_id)
                .with_topic_id(kafka::topics::topic_id_of(&reader, &self.cfg.input_topic).await);
        // The input gained partitions since the start (a rebalance follows the metadata
        // refresh that sees them): the changelog has none for the new ones.
        let have = changelog::partition_count(&reader, &topic).await;
        if have > 0 {
            if let Some(why) = kafka::topics::too_few_partitions(
                "changelog",
                &topic,
                have,
                &self.cfg.input_topic,
                input_partitions,
            ) {
                return Err(anyhow::Error::new(changelog::ForeignChangelog(why)));
            }
        }
        if let Some(sink) = self.changelog.as_mut() {
            sink.identity = Some(identity.clone());
        }
        self.admin.set_restoring(true);
        // Outputs are acknowledged before the state they imply is logged, so events
        // re-processed after a crash may open an alert the restored state does not hold
        // yet: suppress the opens the alerts topic already has, as the rebuild does.
        let horizon = if self.rebuild_window.is_zero() {
            super::rebuild::state_horizon(&self.cfg.pipeline)
        } else {
            self.rebuild_window
        };
        let since =
            super::now_ms().saturating_sub(i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX));
        let admin = self.admin.clone();
        // The input is paused and the group consumer polled while the alert scan and the
        // restore read (the restore yields to the runtime every few ms for that), so a
        // restore longer than `max.poll.interval.ms` keeps the member's assignment
        // (rebalances it sees are queued and applied afterwards).
        let consumer = self.consumer.clone();
        let (already_open, pipeline, metrics) =
            (&mut self.already_open, &mut self.pipeline, &self.metrics);
        let work = async {
            match kafka::scan_opened_alerts(
                &alerts_reader,
                &self.cfg.alerts_topic,
                since,
                SCAN_IDLE,
            )
            .await
            {
                Ok(ids) => *already_open = ids,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not read already-opened alerts");
                }
            }
            changelog::restore_checked(
                reader,
                &topic,
                parts,
                pipeline,
                metrics,
                || admin.progress(),
                Some(&identity),
            )
            .await
        };
        let r = keep_member(&consumer, work).await;
        self.admin.set_restoring(false);
        // What follows walks the restored state several times (seconds at a million
        // followees in a debug build): the member is kept between the walks.
        let mut keep_alive = KeepAlive::new(self.consumer.clone(), "after the restore");
        if let (Ok(r), Some(sink)) = (&r, self.changelog.as_mut()) {
            for (&p, &o) in &r.offsets {
                self.in_state.insert(p, o);
            }
            for (&p, keys) in &r.moderation {
                sink.moderation.entry(p).or_default().extend(keys);
            }
        }
        // Issue #23 parity with the rebuild: the open alerts restored are resent by this
        // instance's webhook from now on (their previous owner stopped resending them),
        // and shown by the web view again (their figures now, follows from now on: the
        // follows before the restore are not in the changelog).
        if r.is_ok() {
            let mut n = 0;
            for &p in parts {
                for a in self.pipeline.detector().open_alert_records(p) {
                    self.evidence().record_partition(&a, p);
                    if let Some(w) = &self.webhook {
                        w.enqueue(crate::webhook::WebhookAlert::from_alert(&a, p));
                        n += 1;
                    }
                }
            }
            if n > 0 {
                tracing::info!(alerts = n, "open alerts adopted for resending");
            }
        }
        keep_alive.tick();
        // What the import added is the logged state itself, not a change to log again.
        self.pipeline.detector_mut().take_dirty();
        keep_alive.tick();
        self.pipeline.detector_mut().take_dirty_moderation();
        keep_alive.tick();
        self.metrics
            .set_tracked_followees(self.pipeline.tracked_followees());
        keep_alive.tick();
        self.metrics.set_open_alerts(self.pipeline.open_alerts());
        keep_alive.tick();
        Ok(r?.keys)
    }
}
