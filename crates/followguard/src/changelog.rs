//! Issue 21: the changelog topic of detector state (docs/state.md). Building the records
//! a batch's state changes make (`f/<followee>`, `m/<follower key>`, `p/<partition>`,
//! `o/<partition>`; a null value is a tombstone) and the full partition snapshots between
//! `s/<partition>` begin / end markers, producing them, and restoring the state of
//! assigned partitions: from the begin marker of each partition's latest complete
//! snapshot (found from the partition's last records: the `o/` record every batch ends
//! with points back at it; else by searching backwards for an end marker) to the
//! partition's end, so a restore reads about one snapshot plus what was logged after it,
//! on a broker that never compacts too. `serve/state.rs` is the service's side.

use crate::kafka::Reader;
use crate::metrics::Metrics;
use anyhow::Context as _;
use followguard_core::detector::state::{
    FolloweeState, LockstepChange, LockstepKey, ModerationEntry, PartitionState, SharedState,
    STATE_VERSION,
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

/// Longest a restore works without handing its thread back to the runtime. `serve`
/// polls its group consumer in the same task while it restores, and librdkafka evicts a
/// member not polled for `max.poll.interval.ms`: records arrive faster than they are
/// applied, so a read loop that only awaits `recv` never yields, nor does the import.
const YIELD_EVERY: Duration = Duration::from_millis(50);

/// A changelog key read by a restore, with its partition.
type Key = (i32, String);

/// Yields to the runtime once per [`YIELD_EVERY`] of work (so a `select!` around the
/// restore gets to run its other branches).
pub(crate) struct Yielder(Instant);

impl Yielder {
    pub(crate) fn new() -> Yielder {
        Yielder(Instant::now())
    }

    pub(crate) async fn tick(&mut self) {
        if self.0.elapsed() >= YIELD_EVERY {
            tokio::task::yield_now().await;
            self.0 = Instant::now();
        }
    }
}
/// Records read in the first step of the backward search for the latest snapshot end
/// marker; each further step reads 4× more.
pub const SCAN_CHUNK: i64 = 1024;

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

/// Key of one lockstep (campaign link) entry: a flagged follower, an alert pair or a
/// campaign node.
pub fn link_key(k: LockstepKey) -> String {
    match k {
        LockstepKey::Follower(f) => format!("k/f/{f:016x}"),
        LockstepKey::Pair(a, b) => format!("k/p/{a:016x}-{b:016x}"),
        LockstepKey::Link(l) => format!("k/l/{l:016x}"),
    }
}

/// Key of the input offset a partition's logged state reflects.
pub fn offset_key(partition: i32) -> String {
    format!("o/{partition}")
}

/// The record saying that the state logged for `partition` reflects every input record
/// before `next_offset` (logged after that state; restore skips those records, so a
/// restored state never counts an event twice). Value: `"<next offset>"`;
/// [`Pointers::stamp`] appends `" <seq> <back>"`: the partition's latest complete snapshot
/// began `back` records before this one, so a restore finds it from the partition's last
/// records.
pub fn offset_record(partition: i32, next_offset: i64) -> Record {
    Record {
        partition,
        key: offset_key(partition),
        value: Some(next_offset.to_string().into_bytes()),
    }
}

/// Per partition, the latest snapshot this writer logged: `(seq, records logged since its
/// begin marker, its end marker logged)`. One writer per partition, records logged in
/// order, so a record's distance to the begin marker is known when it is built.
#[derive(Debug, Clone, Default)]
pub struct Pointers(HashMap<i32, (u64, u64, bool)>);

impl Pointers {
    /// Notes `records` as the next ones logged, in order, and stamps every `o/` record
    /// that follows a complete snapshot with `(seq, back)`.
    pub fn stamp(&mut self, records: &mut [Record]) {
        for r in records.iter_mut() {
            if r.key.starts_with("s/") {
                let marker = r
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<Marker>(v).ok());
                match marker {
                    Some(m) if m.snapshot == "begin" => {
                        self.0.insert(r.partition, (m.seq, 0, false));
                    }
                    Some(m) if m.snapshot == "end" => {
                        if let Some(e) = self.0.get_mut(&r.partition).filter(|e| e.0 == m.seq) {
                            e.2 = true;
                        }
                    }
                    _ => {}
                }
            } else if r.key.starts_with("o/") {
                if let (Some(&(seq, back, true)), Some(v)) =
                    (self.0.get(&r.partition), r.value.as_mut())
                {
                    v.extend_from_slice(format!(" {seq} {back}").as_bytes());
                }
            }
            if let Some(e) = self.0.get_mut(&r.partition) {
                e.1 += 1;
            }
        }
    }

    /// Forgets a partition (revoked: its next writer snapshots it first).
    pub fn forget(&mut self, partition: i32) {
        self.0.remove(&partition);
    }
}

/// `(next offset, snapshot (seq, back))` of an `o/` value.
fn parse_offset_value(v: &[u8]) -> Option<(i64, Option<(u64, u64)>)> {
    let text = std::str::from_utf8(v).ok()?;
    let mut it = text.split(' ');
    let next = it.next()?.parse().ok()?;
    let snapshot = match (it.next(), it.next()) {
        (Some(seq), Some(back)) => Some((seq.parse().ok()?, back.parse().ok()?)),
        _ => None,
    };
    Some((next, snapshot))
}

/// The record cache (Kafka Streams' `cache.max.bytes.buffering` with
/// `commit.interval.ms`): the detector's dirty sets are the cached keys (their values are
/// the detector's state itself), logged once per flush however many batches changed
/// them. Here: when a flush is due (every `flush_every`, or early once the records it
/// would write reach `max_bytes`), the input offsets the batches since the last flush
/// reached (the flush's `o/` records), and records exported before a flush was due (a
/// restore must not swallow the dirty marks of partitions it does not restore).
#[derive(Debug, Clone)]
pub struct RecordCache {
    pub flush_every: Duration,
    pub max_bytes: usize,
    last_flush: Option<Instant>,
    /// Per partition, the next input offset the batches since the last flush reached.
    reached: BTreeMap<i32, i64>,
    /// Records exported early, written first at the next flush (in order).
    stash: Vec<Record>,
    stash_bytes: usize,
    /// Mean bytes of a record of the last flush: the estimate of a dirty key's record.
    record_bytes: usize,
}

/// First estimate of a dirty key's record (a followee's is ≈ 420 B).
const RECORD_BYTES_GUESS: usize = 512;

/// Bytes a record holds in memory (key, value, the struct).
pub fn record_bytes(r: &Record) -> usize {
    std::mem::size_of::<Record>() + r.key.len() + r.value.as_ref().map_or(0, Vec::len)
}

impl RecordCache {
    pub fn new(flush_every: Duration, max_bytes: usize) -> RecordCache {
        RecordCache {
            flush_every,
            max_bytes,
            last_flush: None,
            reached: BTreeMap::new(),
            stash: Vec::new(),
            stash_bytes: 0,
            record_bytes: RECORD_BYTES_GUESS,
        }
    }

    /// A batch processed input record `next_offset - 1` of `partition`.
    pub fn note(&mut self, partition: i32, next_offset: i64) {
        let e = self.reached.entry(partition).or_insert(next_offset);
        *e = (*e).max(next_offset);
    }

    /// Partitions with input processed since the last flush.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.reached.keys().copied()
    }

    /// Estimated bytes the next flush writes, with `dirty` keys in the detector.
    pub fn bytes(&self, dirty: usize) -> usize {
        dirty
            .saturating_mul(self.record_bytes)
            .saturating_add(self.stash_bytes)
            .saturating_add(self.reached.len() * 64)
    }

    /// Nothing to flush: no input since the last flush, no dirty key, nothing stashed.
    pub fn is_empty(&self, dirty: usize) -> bool {
        self.reached.is_empty() && self.stash.is_empty() && dirty == 0
    }

    /// Whether a flush is due at `now` with `dirty` keys: never flushed, the interval
    /// elapsed, or the byte bound reached.
    pub fn due(&self, now: Instant, dirty: usize) -> bool {
        self.last_flush
            .is_none_or(|t| now.saturating_duration_since(t) >= self.flush_every)
            || self.bytes(dirty) >= self.max_bytes
    }

    /// Keeps records exported before a flush, for the next flush.
    pub fn stash(&mut self, records: Vec<Record>) {
        self.stash_bytes += records.iter().map(record_bytes).sum::<usize>();
        self.stash.extend(records);
    }

    /// Starts a flush at `now`: the stashed records and the offsets reached since the
    /// last flush (sorted by partition).
    pub fn take(&mut self, now: Instant) -> (Vec<Record>, Vec<(i32, i64)>) {
        self.last_flush = Some(now);
        self.stash_bytes = 0;
        (
            std::mem::take(&mut self.stash),
            std::mem::take(&mut self.reached).into_iter().collect(),
        )
    }

    /// A flush wrote `records`: their mean size is the next estimate.
    pub fn flushed(&mut self, records: &[Record]) {
        if !records.is_empty() {
            let total: usize = records.iter().map(record_bytes).sum();
            self.record_bytes = (total / records.len()).max(1);
        }
    }

    /// Forgets a revoked partition's offsets and stashed records (its next owner
    /// re-processes its input from the committed offset).
    pub fn forget(&mut self, partition: i32) {
        self.reached.remove(&partition);
        self.stash.retain(|r| r.partition != partition);
        self.stash_bytes = self.stash.iter().map(record_bytes).sum();
    }
}

/// Key of the record naming what a changelog partition's state belongs to (written in
/// every snapshot, after its begin marker).
pub fn identity_key(partition: i32) -> String {
    format!("i/{partition}")
}

/// What a changelog's state belongs to: its `o/` offsets are offsets of `input_topic`,
/// its partition *p* is input partition *p* of a topic of `partitions` partitions (0:
/// unknown), and one consumer group (`group`) writes it. A restore that finds another
/// identity stops: the state is foreign ([`ForeignChangelog`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub v: u32,
    pub input_topic: String,
    pub partitions: u32,
    pub group: String,
    /// The broker's id of the input topic when the snapshot was written (KIP-516;
    /// absent when the broker gives none or the writer predates it): a topic deleted and
    /// re-created under the same name has another id, and its offsets are not these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_topic_id: Option<String>,
}

impl Identity {
    pub fn new(input_topic: &str, partitions: usize, group: &str) -> Identity {
        Identity {
            v: STATE_VERSION,
            input_topic: input_topic.to_string(),
            partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
            group: group.to_string(),
            input_topic_id: None,
        }
    }

    /// The identity naming the input topic's id (`None`: unknown).
    pub fn with_topic_id(mut self, id: Option<String>) -> Identity {
        self.input_topic_id = id;
        self
    }

    /// What differs between a changelog written as `self` and a service that is
    /// `ours`, as a sentence saying what to fix; `None` when it is ours.
    pub fn mismatch(&self, ours: &Identity, changelog_topic: &str) -> Option<String> {
        let fix = "point --changelog-topic at a changelog of its own (a new topic name; \
                   the state is then rebuilt from the input) or restore the input topic \
                   and group it was written for";
        if self.input_topic != ours.input_topic {
            return Some(format!(
                "changelog topic {changelog_topic} holds state of input topic {}, not of \
                 {}: {fix}",
                self.input_topic, ours.input_topic
            ));
        }
        if let (Some(was), Some(now)) = (&self.input_topic_id, &ours.input_topic_id) {
            if was != now {
                return Some(format!(
                    "changelog topic {changelog_topic} holds state of an earlier incarnation \
                     of input topic {} (topic id {was}; it has id {now} now: it was deleted \
                     and re-created, and its offsets are not the ones the changelog \
                     processed): {fix}",
                    ours.input_topic
                ));
            }
        }
        if self.group != ours.group {
            return Some(format!(
                "changelog topic {changelog_topic} is written by consumer group {}, not {}: \
                 {fix}",
                self.group, ours.group
            ));
        }
        if self.partitions != ours.partitions && self.partitions != 0 && ours.partitions != 0 {
            return Some(format!(
                "changelog topic {changelog_topic} holds state of {} with {} partitions, \
                 it has {} now: events are keyed to other partitions than the state \
                 ({fix})",
                ours.input_topic, self.partitions, ours.partitions
            ));
        }
        None
    }

    fn record(&self, partition: i32) -> Record {
        Record {
            partition,
            key: identity_key(partition),
            value: serde_json::to_vec(self).ok(),
        }
    }
}

/// A restore found a changelog written for another input topic, group or partition
/// count: the service must stop, not restore it (nor rebuild over it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignChangelog(pub String);

impl std::fmt::Display for ForeignChangelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForeignChangelog {}

/// Key of a partition's snapshot markers.
pub fn snapshot_key(partition: i32) -> String {
    format!("s/{partition}")
}

/// The value of a snapshot marker (`s/<partition>`). A snapshot is the records between a
/// `begin` and the `end` of the same `seq`; `end` counts them, so the begin marker's
/// offset is `end offset - records - 1` (one writer per partition) and is checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub v: u32,
    /// `"begin"` or `"end"`.
    pub snapshot: String,
    pub seq: u64,
    /// In an `end` marker: records of the snapshot between its two markers.
    #[serde(default)]
    pub records: u64,
}

impl Marker {
    fn record(partition: i32, snapshot: &str, seq: u64, records: u64) -> Record {
        let m = Marker {
            v: STATE_VERSION,
            snapshot: snapshot.to_string(),
            seq,
            records,
        };
        Record {
            partition,
            key: snapshot_key(partition),
            value: serde_json::to_vec(&m).ok(),
        }
    }

    /// The marker `m` holds, if it is one of `partition`'s.
    fn of(m: &impl Message, partition: i32) -> Option<Marker> {
        let key = std::str::from_utf8(m.key()?).ok()?;
        if key != snapshot_key(partition) {
            return None;
        }
        serde_json::from_slice::<Marker>(m.payload()?)
            .ok()
            .filter(|m| m.v == STATE_VERSION)
    }
}

/// Key of a partition's clocks.
pub fn clock_key(partition: i32) -> String {
    format!("p/{partition}")
}

/// The records for the state changed since the last call (the pipeline's detector must
/// track dirty state: `detector_mut().track_dirty(true)`): one per dirty followee (its
/// state, or a tombstone), one per changed moderation dedup entry, one per changed
/// lockstep key (campaign links; `order`: the writer's order of this batch, increasing,
/// the order of the snapshots' markers too), and the clocks of every partition involved.
pub fn dirty_records(p: &mut Pipeline, order: u64) -> Vec<Record> {
    dirty_records_ticking(p, order, &mut || {})
}

/// Dirty followees exported between two calls of a [`dirty_records_ticking`] tick.
pub const DIRTY_TICK_STEP: usize = 64;

/// [`dirty_records`], calling `tick` once per [`DIRTY_TICK_STEP`] followees exported
/// (`serve` polls its group consumer there: a flush after a sweep or a restore may
/// export tens of thousands of followees, seconds in a debug build).
pub fn dirty_records_ticking(p: &mut Pipeline, order: u64, tick: &mut dyn FnMut()) -> Vec<Record> {
    let dirty = p.detector_mut().take_dirty();
    let moderation = p.detector_mut().take_dirty_moderation();
    let links = p.detector_mut().take_dirty_lockstep();
    let mut parts = BTreeSet::new();
    let mut out = Vec::with_capacity(dirty.len() + moderation.len() + links.len() + 1);
    for (mut c, partition) in links {
        c.n = order;
        out.push(Record {
            partition,
            key: link_key(c.key),
            value: Some(c.to_bytes()),
        });
    }
    for (i, (id, partition)) in dirty.into_iter().enumerate() {
        parts.insert(partition);
        out.push(Record {
            partition,
            key: followee_key(&id.to_string()),
            value: p.detector().export_followee(&id).map(|s| s.to_bytes()),
        });
        if i % DIRTY_TICK_STEP == DIRTY_TICK_STEP - 1 {
            tick();
        }
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

/// A full snapshot of `partition` between `s/<partition>` begin / end markers (`seq`):
/// every followee it tracks, its clocks, the instance's lockstep state (`l/`), the
/// moderation dedup entries logged for the partition (`moderation`: each as held now, a
/// tombstone for one no longer held), and the input offset the state reflects. A restore
/// that starts at the begin marker needs nothing written before it.
pub fn snapshot_records(
    p: &Pipeline,
    partition: i32,
    seq: u64,
    next_offset: Option<i64>,
    moderation: &BTreeSet<u64>,
) -> Vec<Record> {
    snapshot_records_of(p, partition, seq, next_offset, moderation, None)
}

/// [`snapshot_records`] naming what the state belongs to (`identity`, an `i/` record
/// after the begin marker; serve writes it, a restore checks it).
pub fn snapshot_records_of(
    p: &Pipeline,
    partition: i32,
    seq: u64,
    next_offset: Option<i64>,
    moderation: &BTreeSet<u64>,
    identity: Option<&Identity>,
) -> Vec<Record> {
    snapshot_records_ticking(
        p,
        partition,
        seq,
        next_offset,
        moderation,
        identity,
        &mut || {},
    )
}

/// [`snapshot_records_of`], calling `tick` after each followee: a snapshot of millions
/// of followees takes seconds, during which `serve` keeps its group membership.
pub fn snapshot_records_ticking(
    p: &Pipeline,
    partition: i32,
    seq: u64,
    next_offset: Option<i64>,
    moderation: &BTreeSet<u64>,
    identity: Option<&Identity>,
    tick: &mut dyn FnMut(),
) -> Vec<Record> {
    // One followee exported, serialized and dropped at a time (the order of
    // `export_partition`), so no single step takes long.
    let ids = p.detector().partition_followee_ids_ticking(partition, tick);
    tick();
    let mut out = Vec::with_capacity(ids.len() + moderation.len() + 6);
    out.push(Marker::record(partition, "begin", seq, 0));
    out.extend(identity.map(|i| i.record(partition)));
    for id in &ids {
        if let Some(f) = p.detector().export_followee(id) {
            out.push(Record {
                partition,
                key: followee_key(&f.followee_id),
                value: Some(f.to_bytes()),
            });
        }
        tick();
    }
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
    for &k in moderation {
        let e = p.detector().moderation_entry(k);
        out.push(Record {
            partition,
            key: moderation_key(k),
            value: e.last_ms.map(|_| e.to_bytes()),
        });
    }
    if let Some(o) = next_offset {
        out.push(offset_record(partition, o));
    }
    let records = out.len() as u64 - 1;
    out.push(Marker::record(partition, "end", seq, records));
    out
}

/// Keeps `logged` (per partition, the moderation dedup keys whose last changelog record
/// holds a value) up to date with `records` as they are logged: the keys a snapshot
/// writes again, or tombstones once they are no longer held.
pub fn note_moderation(logged: &mut HashMap<i32, BTreeSet<u64>>, records: &[Record]) {
    for r in records {
        let Some(k) = r
            .key
            .strip_prefix("m/")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let set = logged.entry(r.partition).or_default();
        if r.value.is_some() {
            set.insert(k);
        } else {
            set.remove(&k);
        }
    }
}

/// Produces `records` to `topic` and waits until the broker acknowledged every one.
pub async fn produce<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    records: &[Record],
) -> anyhow::Result<()> {
    delivered(send(producer, topic, records)?).await
}

/// Hands `records` to `producer`, in order, without waiting: the delivery reports, for
/// [`delivered`]. The serve acknowledgement task overlaps one batch's state with the
/// next batch's outputs this way (the producer keeps records of a partition in order).
pub fn send<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    records: &[Record],
) -> anyhow::Result<Vec<rdkafka::producer::DeliveryFuture>> {
    send_waiting(producer, topic, records, false)
}

/// [`send`] for a thread of its own (serve's `changelog-send`): while the producer's
/// queue is full (a snapshot or a large flush behind a slow broker) it sleeps and tries
/// again, instead of failing the flush.
pub fn send_blocking<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    records: &[Record],
) -> anyhow::Result<Vec<rdkafka::producer::DeliveryFuture>> {
    send_waiting(producer, topic, records, true)
}

fn send_waiting<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    records: &[Record],
    wait_when_full: bool,
) -> anyhow::Result<Vec<rdkafka::producer::DeliveryFuture>> {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        loop {
            let mut fr: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
                .key(r.key.as_str())
                .partition(r.partition);
            if let Some(v) = &r.value {
                fr = fr.payload(v.as_slice());
            }
            match producer.send_result(fr) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) if wait_when_full => std::thread::sleep(Duration::from_millis(5)),
                Err((e, _)) => anyhow::bail!("producing to {topic}: {e}"),
            }
        }
    }
    Ok(pending)
}

/// Waits until every record [`send`] handed over is acknowledged.
pub async fn delivered(pending: Vec<rdkafka::producer::DeliveryFuture>) -> anyhow::Result<()> {
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
    /// Records read (every version of every key, and the records the search for the
    /// latest snapshot read).
    pub records: u64,
    /// Of `records`, those the search for the latest snapshot read.
    pub scanned: u64,
    /// Keys holding state at the end (after tombstones), imported or refused.
    pub keys: u64,
    /// Records skipped: undecodable, unknown key or refused on import.
    pub corrupt: u64,
    /// Records of a batch cut by a crash (after the partition's last `o/` record): not
    /// applied.
    pub incomplete: u64,
    pub seconds: f64,
    /// Per partition, the input offset the restored state reflects (`o/` records):
    /// input records before it are already in the state.
    pub offsets: BTreeMap<i32, i64>,
    /// Per partition, the changelog offset the restore read from: the begin marker of
    /// its latest complete snapshot, or the partition's start when it has none.
    pub from: BTreeMap<i32, i64>,
    /// Per partition, the moderation dedup keys restored (a snapshot logs them again).
    pub moderation: BTreeMap<i32, BTreeSet<u64>>,
}

/// Reads records `[from, until)` of `topic`/`partition` (`until: None`: to the
/// partition's end) and returns the offset and value of the last snapshot end marker
/// among them. Every record read is counted in `read`.
async fn last_end_marker(
    reader: &Reader,
    topic: &str,
    partition: i32,
    from: i64,
    until: Option<i64>,
    read: &mut u64,
    last_offset_record: &mut Option<i64>,
) -> anyhow::Result<Option<(i64, Marker)>> {
    let okey = offset_key(partition);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&tpl)?;
    let mut last = None;
    let mut yielder = Yielder::new();
    loop {
        yielder.tick().await;
        let m = match tokio::time::timeout(READ_TIMEOUT, reader.recv())
            .await
            .context("changelog read timed out")?
        {
            Err(KafkaError::PartitionEOF(p)) if p == partition => break,
            Err(KafkaError::PartitionEOF(_)) => continue,
            r => r?,
        };
        let o = m.offset();
        if m.partition() != partition || o < from {
            continue;
        }
        if until.is_some_and(|u| o >= u) {
            break;
        }
        *read += 1;
        if let Some(mk) = Marker::of(&m, partition).filter(|mk| mk.snapshot == "end") {
            last = Some((o, mk));
        }
        // An offset record pointing back at its snapshot's begin marker stands for that
        // snapshot's end (it is written after the snapshot's last record).
        if m.key() == Some(okey.as_bytes()) {
            if last_offset_record.is_none_or(|l| o > l) {
                *last_offset_record = Some(o);
            }
            if let Some((_, Some((seq, back)))) = m.payload().and_then(parse_offset_value) {
                let records = back.saturating_sub(1);
                last = Some((
                    o,
                    Marker {
                        v: STATE_VERSION,
                        snapshot: "end".into(),
                        seq,
                        records,
                    },
                ));
            }
        }
        if until.is_some_and(|u| o + 1 >= u) {
            break;
        }
    }
    Ok(last)
}

/// The offset to restore `partition` from: the begin marker of its latest complete
/// snapshot, found by reading backwards from the partition's end (`high`, which may be
/// short: the first step reads to the end of partition) in chunks growing 4× until an
/// end marker, or an `o/` record pointing at a complete snapshot, turns up (the first
/// chunk holds the last batch's `o/` record); the begin marker must sit where it says,
/// with the same `seq`. A snapshot cut by a crash has no end marker and is never chosen (its
/// records are read as ordinary changes after the complete one). No snapshot, or a
/// begin marker not where it should be: `low` (everything is read). `first_chunk`: the
/// records read in the first step ([`SCAN_CHUNK`] for the detector's changelog).
async fn snapshot_start(
    reader: &Reader,
    topic: &str,
    partition: i32,
    (low, high): (i64, i64),
    first_chunk: i64,
    read: &mut u64,
    last_offset_record: &mut Option<i64>,
) -> anyhow::Result<i64> {
    let mut until = None;
    let mut chunk = first_chunk.max(1);
    let mut from = high.saturating_sub(chunk).max(low);
    loop {
        if let Some((end, mk)) = last_end_marker(
            reader,
            topic,
            partition,
            from,
            until,
            read,
            last_offset_record,
        )
        .await?
        {
            let begin = end - i64::try_from(mk.records).unwrap_or(i64::MAX) - 1;
            if begin >= low {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(topic, partition, Offset::Offset(begin))?;
                reader.assign(&tpl)?;
                loop {
                    let m = tokio::time::timeout(READ_TIMEOUT, reader.recv())
                        .await
                        .context("changelog read timed out")??;
                    if m.partition() != partition || m.offset() < begin {
                        continue;
                    }
                    *read += 1;
                    let ok = m.offset() == begin
                        && Marker::of(&m, partition)
                            .is_some_and(|b| b.snapshot == "begin" && b.seq == mk.seq);
                    if ok {
                        return Ok(begin);
                    }
                    break;
                }
            }
            tracing::warn!(
                topic,
                partition,
                end,
                seq = mk.seq,
                "snapshot begin marker not where its end marker says; restoring from the start"
            );
            return Ok(low);
        }
        if from <= low {
            return Ok(low);
        }
        until = Some(from);
        chunk = chunk.saturating_mul(4);
        from = from.saturating_sub(chunk).max(low);
    }
}

/// Reads changelog partitions `partitions` of `topic` from the begin marker of their
/// latest complete snapshot (or their start) to their end (end of partition) and imports
/// the last value of each key into `pipeline` — clocks, then moderation dedup entries,
/// then followees. A record that cannot be decoded or imported is logged, counted
/// (`followguard_changelog_corrupt_total`) and skipped. `progress` is called after every
/// record (health bookkeeping); `followguard_restore_pending_records{partition}` and a
/// log line every 5 s show each partition's progress.
pub async fn restore(
    reader: Arc<Reader>,
    topic: &str,
    partitions: &[i32],
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    progress: impl FnMut(),
) -> anyhow::Result<Restored> {
    restore_checked(reader, topic, partitions, pipeline, metrics, progress, None).await
}

/// [`restore`], refusing a changelog whose snapshots name another identity than
/// `expect` (input topic, group, partition count): an error holding a
/// [`ForeignChangelog`], before anything is imported.
pub async fn restore_checked(
    reader: Arc<Reader>,
    topic: &str,
    partitions: &[i32],
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    mut progress: impl FnMut(),
    expect: Option<&Identity>,
) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let mut out = Restored::default();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut applied_until: HashMap<i32, Option<i64>> = HashMap::new();
    let mut at: BTreeMap<i32, i64> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (r, t) = (reader.clone(), topic.to_string());
        let (low, high) =
            tokio::task::spawn_blocking(move || r.fetch_watermarks(&t, p, READ_TIMEOUT))
                .await
                .context("watermark task")?
                .with_context(|| format!("changelog watermarks of {topic}/{p}"))?;
        tracing::debug!(topic, partition = p, low, high, "changelog partition range");
        metrics.restore_pending(p, high - low);
        if high > low {
            let mut last_o = None;
            let from = snapshot_start(
                &reader,
                topic,
                p,
                (low, high),
                SCAN_CHUNK,
                &mut out.scanned,
                &mut last_o,
            )
            .await?;
            // A batch's records for a partition end with its `o/` record; records after
            // the partition's last one are a batch cut by a crash (the producer keeps a
            // partition's records in order, so the log holds a prefix of it): they are
            // not applied, and the input from the logged offset re-creates them. The
            // backward search above has read that record (it reads from the end until it
            // finds an `o/` record or an end marker, and a snapshot holds an `o/` record
            // before its end marker).
            applied_until.insert(p, last_o);
            tracing::info!(
                topic,
                partition = p,
                from,
                end = high,
                skipped = from - low,
                "restoring partition from its latest complete snapshot"
            );
            metrics.restore_pending(p, high - from);
            out.from.insert(p, from);
            ends.insert(p, high);
            at.insert(p, from);
            tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
        }
    }
    out.records = out.scanned;
    let mut latest: BTreeMap<Key, Option<Vec<u8>>> = BTreeMap::new();
    // The lockstep state is a whole copy of the writer's in each partition's snapshot:
    // only the newest copy (by the order of its snapshot's begin marker) is imported,
    // then the per-key lockstep changes (`k/`) not older than it, the newest per key.
    let mut newest_links: Option<(u64, Vec<u8>)> = None;
    let mut link_changes: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
    let mut snapshot_order: HashMap<i32, u64> = HashMap::new();
    if !ends.is_empty() {
        reader.assign(&tpl)?;
    }
    let mut last_log = Instant::now();
    let mut yielder = Yielder::new();
    while !ends.is_empty() {
        progress();
        yielder.tick().await;
        let m = match tokio::time::timeout(READ_TIMEOUT, reader.recv())
            .await
            .context("changelog read timed out")?
        {
            Err(KafkaError::PartitionEOF(p)) => {
                if ends.remove(&p).is_some() {
                    tracing::debug!(partition = p, "changelog partition end");
                    metrics.restore_pending(p, 0);
                }
                continue;
            }
            r => r?,
        };
        let p = m.partition();
        tracing::trace!(partition = p, offset = m.offset(), "changelog record");
        // Read to the partition's end (PartitionEOF), not just to the high watermark
        // seen at the start: nobody else writes a partition being restored, and the dev
        // broker (tansu) has been seen reporting a watermark one short of its last
        // record. Records before the partition's start offset are stale (an earlier
        // assignment of the reader; a stale one after it is read again in order).
        if !ends.contains_key(&p) || out.from.get(&p).is_some_and(|&f| m.offset() < f) {
            continue;
        }
        at.insert(p, m.offset() + 1);
        out.records += 1;
        if applied_until
            .get(&p)
            .is_none_or(|last| last.is_none_or(|l| m.offset() > l))
        {
            out.incomplete += 1;
            continue;
        }
        match m.key().map(std::str::from_utf8) {
            Some(Ok(k)) if k.starts_with("s/") => {
                if let Some(mk) = Marker::of(&m, p).filter(|mk| mk.snapshot == "begin") {
                    snapshot_order.insert(p, mk.seq);
                }
            }
            Some(Ok(k)) if k.starts_with("i/") => {
                let found = m
                    .payload()
                    .and_then(|v| serde_json::from_slice::<Identity>(v).ok());
                let foreign = match (found, expect) {
                    (Some(found), Some(ours)) => found.mismatch(ours, topic),
                    (None, _) => {
                        out.corrupt += 1;
                        metrics.changelog_corrupt();
                        None
                    }
                    _ => None,
                };
                if let Some(why) = foreign {
                    reader.unassign().ok();
                    return Err(anyhow::Error::new(ForeignChangelog(why)));
                }
            }
            Some(Ok(k)) if k.starts_with("l/") => {
                let n = snapshot_order.get(&p).copied().unwrap_or(0);
                if let Some(v) = m.payload().filter(|v| !v.is_empty()) {
                    if newest_links.as_ref().is_none_or(|(o, _)| n >= *o) {
                        newest_links = Some((n, v.to_vec()));
                    }
                }
            }
            Some(Ok(k)) if k.starts_with("k/") => {
                let v = m.payload().unwrap_or_default();
                match LockstepChange::from_bytes(v) {
                    Ok(c) => {
                        if link_changes.get(k).is_none_or(|(o, _)| c.n >= *o) {
                            link_changes.insert(k.to_string(), (c.n, v.to_vec()));
                        }
                    }
                    Err(e) => {
                        out.corrupt += 1;
                        metrics.changelog_corrupt();
                        tracing::warn!(topic, partition = p, offset = m.offset(), error = %e,
                            "changelog record skipped");
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
            for (&q, &end) in &ends {
                let next = at.get(&q).copied().unwrap_or(end);
                metrics.restore_pending(q, end - next);
                tracing::info!(topic, partition = q, offset = next, end, "restoring state");
            }
        }
    }
    reader.unassign().ok();
    let copy_order = newest_links.as_ref().map_or(0, |(n, _)| *n);
    if let Some((_, v)) = newest_links {
        latest.insert((-1, "l/newest".to_string()), Some(v));
    }
    // Changes of the copy's own batch are in it (equal values); older ones are not used.
    for (k, (n, v)) in link_changes {
        if n >= copy_order {
            latest.insert((-1, k), Some(v));
        }
    }
    // Clocks first (imports file expiry by them), then dedup entries, then followees;
    // by partition and key within each (the map's order: no sort, which took seconds
    // of cloned keys at a million followees without yielding).
    let rank = |k: &str| match k.split_once('/').map(|(kind, _)| kind) {
        Some("p") => 0,
        Some("m") | Some("l") => 1,
        Some("k") => 2,
        _ => 3,
    };
    // Owned, so each value is freed right after its import (a million at once took
    // long too).
    let mut live: [Vec<(Key, Vec<u8>)>; 4] = Default::default();
    for (k, v) in latest {
        if let Some(v) = v {
            live[rank(&k.1)].push((k, v));
        }
        yielder.tick().await;
    }
    for ((p, key), value) in live.into_iter().flatten() {
        let (p, key, value) = (&p, &key, &value);
        yielder.tick().await;
        out.keys += 1;
        let result = match key.split_once('/').map(|(kind, _)| kind) {
            Some("p") => PartitionState::from_bytes(value).and_then(|s| pipeline.import_clock(&s)),
            Some("o") => parse_offset_value(value)
                .map(|(o, _)| {
                    out.offsets.insert(*p, o);
                })
                .ok_or(followguard_core::detector::state::StateError::Malformed(
                    "offset record",
                )),
            Some("l") => SharedState::from_bytes(value)
                .and_then(|s| pipeline.detector_mut().import_shared(&s)),
            Some("k") => LockstepChange::from_bytes(value)
                .and_then(|c| pipeline.detector_mut().import_lockstep_change(&c)),
            Some("m") => ModerationEntry::from_bytes(value).and_then(|s| {
                out.moderation.entry(*p).or_default().insert(s.follower_key);
                pipeline.detector_mut().import_moderation(&s)
            }),
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
    if out.incomplete > 0 {
        tracing::info!(topic, records = out.incomplete,
            "records after a partition's last offset record (a batch cut by a crash) not applied; their input is processed again");
    }
    out.seconds = started.elapsed().as_secs_f64();
    metrics.restored(out.records, out.seconds);
    tracing::info!(topic, partitions = ?partitions, records = out.records, keys = out.keys,
        corrupt = out.corrupt, seconds = out.seconds, "state restored from the changelog");
    Ok(out)
}

/// Issue 21, the link stage's bounded restore: a snapshot of opaque state `chunks` of
/// `partition` between `s/<partition>` begin / end markers (`seq`), the chunks as
/// `c/<partition>/<seq>/<i>` records, then the input offset the state reflects
/// (`o/<partition>/<seq>`). The markers are the detector changelog's, so
/// [`read_snapshot`] finds the latest complete one as a detector restore does; the
/// `seq` in every key keeps two writers' snapshots apart should they interleave (a
/// zombie owner).
pub fn chunk_snapshot(
    partition: i32,
    seq: u64,
    chunks: Vec<Vec<u8>>,
    next_offset: i64,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(chunks.len() + 3);
    out.push(Marker::record(partition, "begin", seq, 0));
    out.extend(chunks.into_iter().enumerate().map(|(i, v)| Record {
        partition,
        key: format!("c/{partition}/{seq}/{i}"),
        value: Some(v),
    }));
    out.push(Record {
        partition,
        key: format!("o/{partition}/{seq}"),
        value: Some(next_offset.to_string().into_bytes()),
    });
    let records = out.len() as u64 - 1;
    out.push(Marker::record(partition, "end", seq, records));
    out
}

/// Records read in the first step of the search for the latest [`chunk_snapshot`].
const CHUNK_SCAN: i64 = 8;

/// The latest complete [`chunk_snapshot`] of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSnapshot {
    pub chunks: Vec<Vec<u8>>,
    /// The input offset the state reflects.
    pub next_offset: i64,
    /// Records read to find and read it.
    pub records: u64,
    pub bytes: u64,
}

/// Reads the latest complete [`chunk_snapshot`] of `topic`/`partition`: the begin marker
/// found from the partition's end (as [`restore`] does), then its records up to the end
/// marker of the same `seq`. `None`: the partition holds no complete snapshot (a snapshot
/// cut by a crash is never used: a later begin marker starts over, and one without its
/// end marker is not returned).
pub async fn read_snapshot(
    reader: &Arc<Reader>,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Option<ChunkSnapshot>> {
    let (r, t) = (reader.clone(), topic.to_string());
    let (low, high) =
        tokio::task::spawn_blocking(move || r.fetch_watermarks(&t, partition, READ_TIMEOUT))
            .await
            .context("watermark task")?
            .with_context(|| format!("watermarks of {topic}/{partition}"))?;
    if high <= low {
        return Ok(None);
    }
    let mut read = 0u64;
    let mut last_o = None;
    // A chunk snapshot is a few records (markers, `o/`, one per 256 KiB of state) and
    // nothing else is written to its partition: its end marker is the last record unless
    // a crash cut the next snapshot, so a short first step finds it.
    let from = snapshot_start(
        reader,
        topic,
        partition,
        (low, high),
        CHUNK_SCAN,
        &mut read,
        &mut last_o,
    )
    .await?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&tpl)?;
    let mut open: Option<(u64, ChunkSnapshot)> = None;
    let result = loop {
        let m = match tokio::time::timeout(READ_TIMEOUT, reader.recv())
            .await
            .context("snapshot read timed out")?
        {
            Err(KafkaError::PartitionEOF(p)) if p == partition => break None,
            Err(KafkaError::PartitionEOF(_)) => continue,
            r => r?,
        };
        if m.partition() != partition || m.offset() < from {
            continue;
        }
        read += 1;
        let payload = m.payload().unwrap_or_default();
        if let Some(mk) = Marker::of(&m, partition) {
            match (mk.snapshot.as_str(), open.as_mut()) {
                ("begin", _) => open = Some((mk.seq, ChunkSnapshot::default())),
                // Complete: every chunk and the offset of this `seq` were read.
                ("end", Some((seq, snap)))
                    if *seq == mk.seq && snap.chunks.len() as u64 + 1 == mk.records =>
                {
                    let mut snap = std::mem::take(snap);
                    snap.records = read;
                    break Some(snap);
                }
                _ => {}
            }
            continue;
        }
        let Some((seq, snap)) = open.as_mut() else {
            continue;
        };
        // Only this snapshot's records (another writer's may be interleaved).
        let key = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("");
        if key == format!("o/{partition}/{seq}") {
            if let Some((o, _)) = parse_offset_value(payload) {
                snap.next_offset = o;
                snap.bytes += payload.len() as u64;
            }
        } else if key.starts_with(&format!("c/{partition}/{seq}/")) {
            snap.bytes += payload.len() as u64;
            snap.chunks.push(payload.to_vec());
        }
    };
    reader.unassign().ok();
    Ok(result)
}

/// Partitions of `topic` (0: unknown); also used by the link stage's topic setup.
pub(crate) use crate::kafka::topics::partition_count;

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: i32, bytes: usize) -> Record {
        Record {
            partition,
            key: "f/x".into(),
            value: Some(vec![b'x'; bytes]),
        }
    }

    /// The record cache's flush rules: due at first, then once per interval or once the
    /// records the flush would write reach the byte bound; offsets reached are the
    /// highest per partition and go with the flush; a revoked partition's are dropped.
    #[test]
    fn the_record_cache_flushes_by_interval_and_by_bytes() {
        let t0 = Instant::now();
        let mut c = RecordCache::new(Duration::from_secs(1), 64 * 1024);
        assert!(c.is_empty(0));
        assert!(c.due(t0, 0), "never flushed: due");
        c.note(1, 10);
        c.note(0, 7);
        c.note(1, 4);
        let (stash, reached) = c.take(t0);
        assert!(stash.is_empty());
        assert_eq!(reached, vec![(0, 7), (1, 10)]);
        assert!(c.is_empty(0));
        // Within the interval: not due with a few dirty keys...
        let half = t0 + Duration::from_millis(500);
        c.note(0, 9);
        assert!(!c.is_empty(0));
        assert!(!c.due(half, 10));
        // ...due once the estimate reaches the bound (the last flush's mean record size).
        c.flushed(&[rec(0, 1000), rec(0, 1000)]);
        let per_key = record_bytes(&rec(0, 1000));
        assert!(!c.due(half, 64 * 1024 / per_key - 1));
        assert!(c.due(half, 64 * 1024 / per_key + 1));
        // Stashed records count too, and come back first at the flush.
        c.stash(vec![rec(2, 70 * 1024)]);
        assert!(c.due(half, 0));
        c.forget(2);
        assert!(!c.due(half, 0), "a revoked partition's stash is dropped");
        c.stash(vec![rec(0, 10)]);
        c.forget(0);
        assert!(c.is_empty(0), "and its offsets");
        // The interval elapsed: due.
        c.note(3, 1);
        assert!(c.due(t0 + Duration::from_secs(1), 0));
        c.stash(vec![rec(3, 10)]);
        let (stash, reached) = c.take(t0 + Duration::from_secs(1));
        assert_eq!((stash.len(), reached), (1, vec![(3, 1)]));
        assert!(!c.due(t0 + Duration::from_millis(1500), 0));
    }

    /// The flush's export of dirty followees calls its tick once per
    /// [`DIRTY_TICK_STEP`] followees (serve polls its group consumer there), and
    /// exports exactly what [`dirty_records`] does.
    #[test]
    fn the_dirty_export_ticks_every_few_followees() {
        use followguard_core::pipeline::PipelineConfig;
        use followguard_train::generate::{generate, GenConfig, Profiles};
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
        let model = std::sync::Arc::new(
            followguard_train::model_file::load(&path).expect("models/default.json loads"),
        );
        let cfg = GenConfig {
            followees: 400,
            days: 1,
            humans: 3_000,
            viral_spikes: 0,
            campaigns: 2,
            min_campaign: 100,
            max_campaign: 200,
            ..GenConfig::default()
        };
        let mut jsonl = Vec::new();
        generate(&cfg, &Profiles::Builtin, &mut jsonl, |_, _| {}).expect("generates");
        let dirty = || {
            let mut p = Pipeline::new(model.clone(), PipelineConfig::default());
            p.detector_mut().track_dirty(true);
            for l in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let _ = p.process(l, None, 0);
            }
            p
        };
        let mut ticks = 0;
        let ticked = dirty_records_ticking(&mut dirty(), 7, &mut || ticks += 1);
        let followees = ticked.iter().filter(|r| r.key.starts_with("f/")).count();
        assert!(
            followees >= 4 * DIRTY_TICK_STEP,
            "{followees} dirty followees"
        );
        assert_eq!(ticks, followees / DIRTY_TICK_STEP);
        assert!(ticked == dirty_records(&mut dirty(), 7), "the same records");
    }

    #[test]
    fn an_identity_of_another_incarnation_of_the_input_is_foreign() {
        let ours = Identity::new("follows", 4, "g").with_topic_id(Some("new-id".into()));
        let was = Identity::new("follows", 4, "g").with_topic_id(Some("old-id".into()));
        let why = was.mismatch(&ours, "cl").unwrap_or_default();
        assert!(
            why.contains("earlier incarnation of input topic follows (topic id old-id")
                && why.contains("it has id new-id now")
                && why.contains("point --changelog-topic at a changelog of its own"),
            "{why}"
        );
        assert_eq!(ours.mismatch(&ours, "cl"), None);
        // An id unknown on either side (an older writer, a broker without ids) is accepted.
        let unknown = Identity::new("follows", 4, "g");
        assert_eq!(unknown.mismatch(&ours, "cl"), None);
        assert_eq!(ours.mismatch(&unknown, "cl"), None);
        // Written without the field (older writers), read back as unknown.
        let old = br#"{"v":1,"input_topic":"follows","partitions":4,"group":"g"}"#;
        let read: Identity = serde_json::from_slice(old).expect("old identity");
        assert_eq!(read.input_topic_id, None);
        let json = serde_json::to_string(&unknown).unwrap_or_default();
        assert!(!json.contains("input_topic_id"), "{json}");
    }
}
