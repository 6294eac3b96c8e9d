//! Kafka plumbing for the service: librdkafka client configuration (at-least-once consumer,
//! idempotent producer, `--kafka-option` passthrough), the consumer context (rebalance
//! events, per-partition lag from statistics, librdkafka logs into tracing), output records
//! with their retry-able owned form, dead-letter records, and topic creation.

use crate::admin::AdminState;
use crate::config::KafkaConfig;
use crate::metrics::RebalanceKind;
use crate::sink::Sink;
use crate::ConfigError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::StreamConsumer;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::Offset;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(leader_guard)]
pub mod leader_guard;
pub mod produce;
pub mod refusal;
pub mod topics;
pub mod watch;

/// Dead-letter header names (values are UTF-8 text).
pub const HDR_SOURCE_TOPIC: &str = "source_topic";
pub const HDR_SOURCE_PARTITION: &str = "source_partition";
pub const HDR_SOURCE_OFFSET: &str = "source_offset";
pub const HDR_ERROR_KIND: &str = "error_kind";
pub const HDR_ERROR_MESSAGE: &str = "error_message";
/// Issue #19: set when a dead letter carries only a prefix of an oversized payload.
pub const HDR_ORIGINAL_SIZE: &str = "original_size";
pub const HDR_ORIGINAL_SHA256: &str = "original_sha256";

/// Builds a client config from the validated connection settings; `--kafka-option` values
/// are applied last so SASL/SSL and tuning reach librdkafka unchanged.
fn base_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    // librdkafka logs go through `ClientContext::log` into tracing.
    c.set_log_level(log_level(kafka));
    for o in &kafka.options {
        c.set(&o.key, &o.value);
    }
    c
}

/// librdkafka's log level: warnings, or debug when `--kafka-option debug=…` asks for
/// debug contexts (e.g. `cgrp,consumer` for group membership and rebalances): the level
/// is applied after the client is created and would otherwise drop every debug line.
/// They reach the log as `followguard::kafka` debug events (`RUST_LOG`).
fn log_level(kafka: &KafkaConfig) -> RDKafkaLogLevel {
    if kafka
        .options
        .iter()
        .any(|o| o.key == "debug" && !o.value.trim().is_empty())
    {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Warning
    }
}

/// For every reader that can fall behind (the service and the rebuild reader). When the
/// prefetch queue fills (queued.max.messages.kbytes), librdkafka postpones the partition's
/// next fetch by this much (default 1000 ms) even after the queue has drained: catching up
/// went in cycles of ~0.9 s of work and ~0.5 s idle with nothing to read (118k -> 208k
/// events/s with 10 ms; BENCHMARKS.md, end to end). The check is a local timer, not a request.
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// At-least-once consumer: librdkafka auto-commits only offsets we store explicitly,
/// after every record an event caused has been acknowledged.
pub fn consumer_config(
    kafka: &KafkaConfig,
    group_id: &str,
    stats_interval: Duration,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Some brokers (tansu) hold every fetch for the full wait even when records are
        // there, which with librdkafka's 500 ms default put seconds between an event and
        // its alert (BENCHMARKS.md, end to end). Kafka answers as soon as data exists, so
        // a short wait only adds idle fetches there.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        .set(
            "statistics.interval.ms",
            stats_interval.as_millis().to_string(),
        );
    // User options win over our defaults (but reserved keys were refused in config).
    for (k, v) in base_config(kafka).config_map().iter() {
        c.set(*k, *v);
    }
    c.set_log_level(log_level(kafka));
    c
}

/// Group-less reader for rebuilding partition state: assigned by hand, never commits, so
/// it cannot disturb the service's group or offsets. (librdkafka wants a group id for any
/// consumer; this one is never joined.)
pub fn replay_config(kafka: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("group.id", format!("{group_id}.rebuild"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // End-of-partition tells the alert scan when it has read everything.
        .set("enable.partition.eof", "true")
        // The replay reads a bounded backlog as fast as possible; no point waiting for
        // fuller fetches; and it processes slower than it reads (see consumer_config).
        .set("fetch.wait.max.ms", "20")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    for (k, v) in base_config(kafka).config_map().iter() {
        c.set(*k, *v);
    }
    c.set_log_level(log_level(kafka));
    c
}

/// linger.ms of the alerts producer (and of `produce`): alerts are few, and their
/// latency is what a trust team sees.
pub const ALERTS_LINGER_MS: u32 = 5;

/// linger.ms of serve's bulk producer (moderation and dead-letter records, up to one per
/// event): fuller batches mean fewer produce requests, which leaves the CPU to the consume
/// loop. At 63k events/s it cut the event → alert-produced p99 from 122–166 ms to 37–38 ms
/// (BENCHMARKS.md, end to end). A flagged follower reaches the moderation queue up to this
/// much later; its input offset is stored only once it is acknowledged, as before.
pub const BULK_LINGER_MS: u32 = 50;

/// `message.timeout.ms` of serve's producers: zero, librdkafka's "no timeout" (issue #19).
/// A transient error (broker away, leader moving, request timed out) is retried by the
/// idempotent producer itself, in order per partition, for as long as it lasts; a record
/// never comes back failed for a transient reason, so serve never re-sends one by hand
/// behind later records of the same key. What still comes back is permanent (refused:
/// [`refusal`]) or a broken producer (fenced: [`SharedProducer::renew`], then the record
/// is re-sent in acknowledgement order, which is input order).
pub const SERVE_MESSAGE_TIMEOUT: Duration = Duration::ZERO;

/// Idempotent producer: retries inside librdkafka never duplicate or reorder records.
/// `delivery_timeout` is `message.timeout.ms` (zero: none).
/// Lingers [`ALERTS_LINGER_MS`].
pub fn producer_config(kafka: &KafkaConfig, delivery_timeout: Duration) -> ClientConfig {
    producer_config_lingering(kafka, delivery_timeout, ALERTS_LINGER_MS)
}

/// [`producer_config`] with another default linger (a `--kafka-option linger.ms=…` still
/// wins).
pub fn producer_config_lingering(
    kafka: &KafkaConfig,
    delivery_timeout: Duration,
    linger_ms: u32,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        );
    for (k, v) in base_config(kafka).config_map().iter() {
        c.set(*k, *v);
    }
    c.set_log_level(log_level(kafka));
    c
}

/// Turns a client-creation failure (unknown property, bad value) into a configuration error.
pub fn config_error(what: &str, e: KafkaError) -> anyhow::Error {
    match e {
        KafkaError::ClientConfig(_, msg, key, value) => {
            let secret = crate::config::KafkaOption {
                key: key.clone(),
                value: String::new(),
            }
            .is_secret();
            let (shown, msg) = if secret && !value.is_empty() {
                // librdkafka may quote the value in its message too.
                ("<redacted>".to_string(), msg.replace(&value, "<redacted>"))
            } else {
                (value, msg)
            };
            ConfigError(format!("kafka option {key}={shown}: {msg}")).into()
        }
        KafkaError::ClientCreation(msg) => {
            ConfigError(format!("cannot create the Kafka {what}: {msg}")).into()
        }
        other => anyhow::Error::new(other).context(format!("creating the Kafka {what}")),
    }
}

/// Partition assignment changes seen by the consumer context, handled by the consume loop
/// (which owns the detector state) before it processes the next record.
/// With cooperative-sticky the lists name only the partitions added or removed; with an
/// eager strategy a revoke names every partition held and an assign the whole new set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Revoked and already released by the callback (the loop was not running).
    Revoked(Vec<i32>),
    /// Issue 21: revoked but still assigned: the consume loop hands their state over
    /// (outputs and changelog acknowledged, offsets committed), drops it, and only then
    /// releases them ([`release_revoked`]), so the next owner restores what was logged.
    Revoking(Vec<i32>),
    Assigned(Vec<i32>),
}

/// Consumer context: forwards rebalances to the loop, lag to metrics, logs to tracing.
pub struct ServiceContext {
    pub admin: Arc<AdminState>,
    pub input_topic: String,
    pub events: Arc<Mutex<VecDeque<RebalanceEvent>>>,
    /// Issue 21: while set (the consume loop runs), a revoke is not completed inside the
    /// callback but queued as [`RebalanceEvent::Revoking`] for the loop to finish.
    pub defer_revoke: Arc<AtomicBool>,
    /// Issue 21: assigned partitions are restored from a changelog: `/readyz` reports
    /// "restoring" from the assignment on, until the loop has restored them.
    pub restores: bool,
    /// Issue 21: the longest stretches without a poll of this consumer
    /// (`followguard_consumer_poll_gap_seconds`).
    pub poll_gap: PollGap,
}

/// Issue 21: measures the stretches in which the application did not poll the group
/// consumer (librdkafka evicts the member after `max.poll.interval.ms` of them). Every
/// place that polls it calls [`PollGap::began`] before and [`PollGap::ended`] after the
/// poll (a `recv` that waits polls librdkafka when it starts and when a record wakes
/// it, not in between: `serve::consume::poll_group`): each gap, from the end of one poll
/// to the start of the next, goes into the histogram, and one longer than
/// [`PollGap::WARN_AFTER`] is logged with the places it ran between.
pub struct PollGap {
    last: Mutex<Option<(std::time::Instant, &'static str)>>,
    seconds: prometheus::Histogram,
    /// Which consumer (`metrics::GroupConsumer`), for the log line.
    consumer: &'static str,
}

/// Issue 21: a consumer context whose polls are measured ([`PollGap`]); `None`: not
/// measured.
pub trait PollGapContext: ConsumerContext + 'static {
    fn poll_gap(&self) -> Option<&PollGap>;
}

impl PollGapContext for ServiceContext {
    fn poll_gap(&self) -> Option<&PollGap> {
        Some(&self.poll_gap)
    }
}

impl PollGap {
    /// A gap this long is logged: twice the idle consume loop's wait (`IDLE_TICK`, a
    /// gap of its own since a waiting `recv` does not poll librdkafka), and the smallest
    /// `max.poll.interval.ms` tested.
    pub const WARN_AFTER: Duration = Duration::from_secs(1);

    /// The gaps of `consumer` (the group consumer of the input or the link stage's).
    pub fn new(
        metrics: &crate::metrics::Metrics,
        consumer: crate::metrics::GroupConsumer,
    ) -> PollGap {
        PollGap {
            last: Mutex::new(None),
            seconds: metrics.poll_gap_histogram(consumer),
            consumer: consumer.as_str(),
        }
    }

    /// A poll starts at `site`: the gap since the previous one ended is observed.
    pub fn began(&self, site: &'static str) {
        let Ok(last) = self.last.lock() else { return };
        if let Some((t, from)) = *last {
            let gap = t.elapsed();
            self.seconds.observe(gap.as_secs_f64());
            if gap >= Self::WARN_AFTER {
                tracing::warn!(
                    seconds = gap.as_secs_f64(),
                    consumer = self.consumer,
                    from,
                    to = site,
                    "long stretch without polling the group consumer"
                );
            }
        }
    }

    /// The poll at `site` returned.
    pub fn ended(&self, site: &'static str) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((std::time::Instant::now(), site));
        }
    }

    /// When the last poll returned (`None`: not polled yet).
    pub fn last_poll(&self) -> Option<std::time::Instant> {
        self.last.lock().ok().and_then(|l| l.map(|(t, _)| t))
    }
}

/// Issue 21: completes a revoke the context deferred: `incremental_unassign` of `parts`
/// under a cooperative protocol, `unassign` (everything) under an eager one. librdkafka
/// waits for this call before it goes on with the rebalance (the member rejoins after it).
pub fn release_revoked<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    topic: &str,
    parts: &[i32],
) -> KafkaResult<()> {
    if matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    ) {
        let mut tpl = TopicPartitionList::new();
        for &p in parts {
            tpl.add_partition(topic, p);
        }
        consumer.incremental_unassign(&tpl)
    } else {
        consumer.unassign()
    }
}

/// Issue 21: closes a group consumer at shutdown (offsets already committed), either
/// leaving the group (librdkafka's close: a LeaveGroup request, the partitions move at
/// once) or not (`--leave-group-on-shutdown false`): the client is destroyed with
/// `RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE`, so the broker drops the member when its
/// session times out, as after a crash and as with static membership (KIP-345: a
/// static member never sends LeaveGroup). On tansu a LeaveGroup from the group's leader
/// while a rebalance is in progress leaves a departed member as the leader and no
/// member ever gets an assignment again; a session timeout is handled (docs/state.md).
/// Blocks until librdkafka has shut the client down.
pub fn close_group_consumer<C: ConsumerContext + 'static>(
    consumer: StreamConsumer<C>,
    leave: bool,
) {
    if leave {
        consumer.unsubscribe();
        drop(consumer);
        return;
    }
    let client = consumer.client().native_ptr();
    // rust-rdkafka's drop always closes the consumer (and so leaves the group); its
    // handles are given up instead and librdkafka destroys the client without the close.
    // What is given up is a little memory: the consumer queue handle (librdkafka purges
    // and disables the queue itself) and the wake-up slab the queue's callback points to,
    // which therefore stays valid while librdkafka shuts down.
    std::mem::forget(consumer);
    // SAFETY: `client` is the live client of the consumer just forgotten, so nothing
    // else uses or destroys it; librdkafka destroys it exactly once, here.
    unsafe {
        rdkafka::bindings::rd_kafka_destroy_flags(
            client,
            rdkafka::bindings::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE as std::os::raw::c_int,
        );
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect()
}

/// Routes librdkafka's own log lines into tracing.
fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    // `--kafka-option` goes to every client; a consumer-only property ignored by the
    // producer (or the reverse) is expected, not worth a warning.
    if fac == "CONFWARN" && msg.contains("will be ignored by this") {
        tracing::debug!(facility = fac, "librdkafka: {msg}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility = fac, "librdkafka: {msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {msg}"),
        _ => tracing::debug!(facility = fac, "librdkafka: {msg}"),
    }
}

/// Client-level errors into tracing. End-of-partition is not one: it is how the readers
/// below learn they are caught up.
fn client_error(error: &KafkaError, reason: &str) {
    if !matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    ) {
        tracing::warn!(error = %error, "kafka client error: {reason}");
    }
}

/// Context of the service's producers: librdkafka logs and errors into tracing.
#[derive(Clone, Copy, Default)]
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

impl ConsumerContext for LogContext {}

/// A group-less reader (state rebuild, alert scan, `watch`).
pub type Reader = StreamConsumer<LogContext>;

/// Creates a [`Reader`] from `config` (see [`replay_config`]). Needs a tokio runtime.
pub fn reader(config: &ClientConfig) -> anyhow::Result<Reader> {
    config
        .create_with_context(LogContext)
        .map_err(|e| config_error("reader", e))
}

/// The producer type used for every output topic.
pub type Producer = FutureProducer<LogContext>;

/// The output producer, replaceable: an idempotent producer whose epoch the broker has
/// fenced (after delivery timeouts, some brokers answer every later record with
/// `ProducerFenced`) never recovers, so it is swapped for a fresh one (new producer id).
#[derive(Clone)]
pub struct SharedProducer {
    /// The producer and its generation (bumped by every renewal).
    current: Arc<std::sync::RwLock<(Producer, u64)>>,
    config: ClientConfig,
}

impl SharedProducer {
    pub fn new(config: ClientConfig) -> anyhow::Result<SharedProducer> {
        let p: Producer = config
            .create_with_context(LogContext)
            .map_err(|e| config_error("producer", e))?;
        Ok(SharedProducer {
            current: Arc::new(std::sync::RwLock::new((p, 0))),
            config,
        })
    }

    /// The producer to send with now (a cheap handle clone).
    pub fn get(&self) -> Producer {
        self.get_with_generation().0
    }

    /// The producer and its generation, to pass to [`SharedProducer::renew`] later.
    pub fn get_with_generation(&self) -> (Producer, u64) {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the producer of generation `seen` with a new instance; records in flight
    /// on the old one are re-sent by their owners. Returns false when it was already
    /// replaced (every record of a fenced producer fails; one renewal is enough).
    pub fn renew(&self, seen: u64) -> anyhow::Result<bool> {
        let mut cur = match self.current.write() {
            Ok(cur) => cur,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cur.1 != seen {
            return Ok(false);
        }
        let p: Producer = self
            .config
            .create_with_context(LogContext)
            .map_err(|e| config_error("producer", e))?;
        *cur = (p, seen + 1);
        Ok(true)
    }
}

/// serve's output producers: one for the alerts topic, one for the bulk sinks (moderation
/// and dead letters), so the bulk records can wait for fuller batches
/// ([`BULK_LINGER_MS`]) without delaying an alert. Each topic keeps a single producer,
/// so the records of one topic stay in order.
#[derive(Clone)]
pub struct OutputProducers {
    alerts: SharedProducer,
    bulk: SharedProducer,
    /// Issue 21: the link stage's internal topics (links, pairs) live on the input
    /// cluster, where its consumer group reads them (`with_internal`).
    internal: Option<SharedProducer>,
}

impl OutputProducers {
    /// serve's producers never time a record out (`message.timeout.ms=0`, see
    /// [`SERVE_MESSAGE_TIMEOUT`]).
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        Ok(OutputProducers {
            alerts: SharedProducer::new(producer_config(kafka, SERVE_MESSAGE_TIMEOUT))?,
            bulk: SharedProducer::new(producer_config_lingering(
                kafka,
                SERVE_MESSAGE_TIMEOUT,
                BULK_LINGER_MS,
            ))?,
            internal: None,
        })
    }

    /// Issue 21: adds the producer of the link stage's internal topics, on `kafka` (the
    /// input cluster).
    pub fn with_internal(mut self, kafka: &KafkaConfig) -> anyhow::Result<Self> {
        self.internal = Some(SharedProducer::new(producer_config_lingering(
            kafka,
            SERVE_MESSAGE_TIMEOUT,
            BULK_LINGER_MS,
        ))?);
        Ok(self)
    }

    /// The producer that writes `sink`'s records.
    pub fn for_sink(&self, sink: Sink) -> &SharedProducer {
        match sink {
            Sink::Alerts => &self.alerts,
            Sink::Moderation | Sink::DeadLetter | Sink::Campaigns => &self.bulk,
            Sink::Links | Sink::Pairs => self.internal.as_ref().unwrap_or(&self.bulk),
        }
    }

    /// Flushes both producers within `timeout` overall (blocking).
    pub fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        for p in [&self.alerts, &self.bulk].into_iter().chain(&self.internal) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let _ = p.get().flush(left);
        }
    }
}

/// Delivery errors after which this producer instance will never succeed again.
pub fn producer_is_broken(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
                | RDKafkaErrorCode::Fatal
        )
    )
}

impl ClientContext for ServiceContext {
    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.input_topic) else {
            return;
        };
        for (p, s) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; lag is -1 until known.
            if *p >= 0 && s.desired && s.consumer_lag >= 0 {
                self.admin.metrics.set_consumer_lag(*p, s.consumer_lag);
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

impl ServiceContext {
    /// A revoke's bookkeeping (counted, lag forgotten, logged, queued for the loop).
    fn revoked(&self, tpl: &TopicPartitionList, deferred: bool) {
        let parts = partitions_of(tpl, &self.input_topic);
        self.admin.metrics.rebalance(RebalanceKind::Revoke);
        self.admin
            .metrics
            .rebalance_partitions(RebalanceKind::Revoke, parts.len());
        for p in &parts {
            self.admin.metrics.clear_consumer_lag(*p);
        }
        tracing::info!(partitions = ?parts, deferred, "partitions revoked");
        if let Ok(mut q) = self.events.lock() {
            q.push_back(if deferred {
                RebalanceEvent::Revoking(parts)
            } else {
                RebalanceEvent::Revoked(parts)
            });
        }
    }
}

impl ConsumerContext for ServiceContext {
    /// As rust-rdkafka's default (pre-rebalance, (incremental) assign or unassign,
    /// post-rebalance), except that a revoke while the consume loop runs is left for the
    /// loop to complete (issue 21: [`RebalanceEvent::Revoking`], [`release_revoked`]).
    fn rebalance(&self, c: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(c.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let r = if cooperative {
                    c.incremental_assign(tpl)
                } else {
                    c.assign(tpl)
                };
                self.post_rebalance(c, &Rebalance::Assign(tpl));
                r
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // A lost assignment (session timed out) may have a new owner already:
                // nothing of it is handed over, it is released at once.
                if self.defer_revoke.load(Ordering::Acquire) && !c.assignment_lost() {
                    self.revoked(tpl, true);
                    return;
                }
                self.revoked(tpl, false);
                let r = if cooperative {
                    c.incremental_unassign(tpl)
                } else {
                    c.unassign()
                };
                self.post_rebalance(c, &Rebalance::Revoke(tpl));
                r
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                let r = c.unassign();
                self.post_rebalance(c, &Rebalance::Error(KafkaError::Rebalance(code)));
                r
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "applying a rebalance failed");
        }
    }

    fn post_rebalance(&self, c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions_of(tpl, &self.input_topic);
                self.admin.metrics.rebalance(RebalanceKind::Assign);
                self.admin
                    .metrics
                    .rebalance_partitions(RebalanceKind::Assign, parts.len());
                if self.restores && !parts.is_empty() {
                    self.admin.set_restoring(true);
                }
                tracing::info!(partitions = ?parts, "partitions assigned");
                if let Ok(mut q) = self.events.lock() {
                    q.push_back(RebalanceEvent::Assigned(parts));
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
        let n = c.assignment().map(|a| a.count()).unwrap_or(0);
        self.admin.set_assigned_partitions(n);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            // An auto-commit with nothing new to commit is not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
            Err(e) => {
                // Routine during rebalances (the partition moved); the next owner redoes
                // the work. Counted (issue #23): a steady rate means offsets stop moving.
                self.admin.metrics.commit_error();
                tracing::debug!(error = %e, "offset commit failed");
            }
        }
    }
}

/// One record to write, owned so it can be re-sent if the broker does not acknowledge it.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub sink: Sink,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

/// The three output topic names, indexed by [`Sink`].
#[derive(Debug, Clone)]
pub struct OutputTopics {
    pub alerts: String,
    pub moderation: String,
    pub dead_letter: String,
    /// Issue 21: the link stage's topics (empty without `--links-topic`).
    pub links: String,
    pub pairs: String,
    pub campaigns: String,
}

impl OutputTopics {
    pub fn topic(&self, sink: Sink) -> &str {
        match sink {
            Sink::Alerts => &self.alerts,
            Sink::Moderation => &self.moderation,
            Sink::DeadLetter => &self.dead_letter,
            Sink::Links => &self.links,
            Sink::Pairs => &self.pairs,
            Sink::Campaigns => &self.campaigns,
        }
    }
}

/// Dead-letter record: the original key and bytes, plus where they came from and why
/// they were refused.
pub fn dead_letter(
    source_topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    payload: &[u8],
    error_kind: &str,
    error_message: &str,
) -> OutRecord {
    // Issue #19 hook: a dead letter is bounded (payload prefix + size + sha256, key and
    // error text cut), so an oversized input never yields a record the broker refuses.
    use followguard_core::bounds::{bound_payload, truncate_str, DEAD_LETTER_PREFIX_BYTES};
    let b = bound_payload(payload, DEAD_LETTER_PREFIX_BYTES);
    let key = key.unwrap_or_default();
    let mut headers = vec![
        (HDR_SOURCE_TOPIC, source_topic.as_bytes().to_vec()),
        (HDR_SOURCE_PARTITION, partition.to_string().into_bytes()),
        (HDR_SOURCE_OFFSET, offset.to_string().into_bytes()),
        (HDR_ERROR_KIND, error_kind.as_bytes().to_vec()),
        (
            HDR_ERROR_MESSAGE,
            truncate_str(error_message, 1024).as_bytes().to_vec(),
        ),
    ];
    if let Some((len, sha)) = b.truncated {
        headers.push((HDR_ORIGINAL_SIZE, len.to_string().into_bytes()));
        headers.push((HDR_ORIGINAL_SHA256, sha.into_bytes()));
    }
    OutRecord {
        sink: Sink::DeadLetter,
        key: key[..key.len().min(1024)].to_vec(),
        payload: b.bytes.to_vec(),
        headers,
    }
}

/// Hands `rec` to the producer. When librdkafka's local queue is full, waits briefly and
/// tries again (that wait is the backpressure on the consume loop); other errors are
/// returned for the caller to count and retry later.
pub async fn send(
    producer: &Producer,
    topics: &OutputTopics,
    rec: &OutRecord,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        let mut r = FutureRecord::to(topics.topic(rec.sink)).payload(&rec.payload);
        // Only dead letters carry headers; an empty header list would still cost
        // librdkafka an allocation per alert and moderation record.
        if !rec.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
            for (k, v) in &rec.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            r = r.headers(headers);
        }
        if !rec.key.is_empty() {
            r = r.key(&rec.key);
        }
        match producer.send_result(r) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Ids of alerts already written with status `open` to `topic` since `since_ms` (record
/// time). Read once per assignment so that events re-processed after a crash (their
/// offsets were not yet committed) do not announce the same alert a second time.
/// Reads until every partition reports end-of-partition or nothing arrives for `idle`.
pub async fn scan_opened_alerts(
    c: &Arc<Reader>,
    topic: &str,
    since_ms: i64,
    idle: Duration,
) -> anyhow::Result<HashSet<String>> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        alert_id: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        status: std::borrow::Cow<'a, str>,
    }
    let (cc, t) = (c.clone(), topic.to_string());
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<TopicPartitionList> {
        let meta = cc.fetch_metadata(Some(&t), Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        for mt in meta.topics() {
            for p in mt.partitions() {
                tpl.add_partition_offset(mt.name(), p.id(), Offset::Offset(since_ms))?;
            }
        }
        Ok(cc.offsets_for_times(tpl, Duration::from_secs(10))?)
    })
    .await??;
    let mut tpl = TopicPartitionList::new();
    let mut open_parts = HashSet::new();
    for e in found.elements() {
        // No record at or after the time: nothing to read in that partition.
        if let Offset::Offset(o) = e.offset() {
            tpl.add_partition_offset(topic, e.partition(), Offset::Offset(o))?;
            open_parts.insert(e.partition());
        }
    }
    let mut ids = HashSet::new();
    if open_parts.is_empty() {
        return Ok(ids);
    }
    c.assign(&tpl)?;
    while !open_parts.is_empty() {
        match tokio::time::timeout(idle, c.recv()).await {
            Err(_) => break,
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                open_parts.remove(&p);
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(m)) => {
                if let Some(h) = m
                    .payload()
                    .and_then(|b| serde_json::from_slice::<Head<'_>>(b).ok())
                {
                    if h.status == "open" {
                        ids.insert(h.alert_id.into_owned());
                    }
                }
            }
        }
    }
    Ok(ids)
}

/// Creates `names` with `partitions` partitions each; topics that already exist are fine.
pub async fn create_topics(
    kafka: &KafkaConfig,
    names: &[&str],
    partitions: i32,
) -> anyhow::Result<()> {
    create_topics_with(kafka, names, partitions, false).await
}

/// [`create_topics`], compacted (`cleanup.policy=compact`) when `compact`: tables keyed
/// by id, such as the profile and decision topics (issue 24), keep each key's latest.
pub async fn create_topics_with(
    kafka: &KafkaConfig,
    names: &[&str],
    partitions: i32,
    compact: bool,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(kafka)
        .create()
        .map_err(|e| config_error("admin client", e))?;
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            let t = NewTopic::new(n, partitions, TopicReplication::Fixed(1));
            if compact {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| anyhow::anyhow!("creating topics on {}: {e}", kafka.brokers))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaOption;

    fn kafka(options: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            options: options
                .iter()
                .map(|(k, v)| KafkaOption {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    /// Issue 21: `--kafka-option debug=…` must not be silenced by the log level (it is
    /// applied after the client is created and would drop every debug line).
    #[test]
    fn debug_contexts_raise_the_client_log_level() {
        let quiet = kafka(&[("client.id", "x")]);
        let debug = kafka(&[("debug", "cgrp,consumer")]);
        for (c, want) in [
            (
                consumer_config(&quiet, "g", Duration::ZERO),
                RDKafkaLogLevel::Warning,
            ),
            (
                consumer_config(&debug, "g", Duration::ZERO),
                RDKafkaLogLevel::Debug,
            ),
            (replay_config(&debug, "g"), RDKafkaLogLevel::Debug),
            (
                producer_config(&debug, Duration::ZERO),
                RDKafkaLogLevel::Debug,
            ),
        ] {
            assert_eq!(c.log_level as i32, want as i32);
        }
        assert_eq!(
            log_level(&kafka(&[("debug", " ")])) as i32,
            RDKafkaLogLevel::Warning as i32
        );
    }

    #[test]
    fn consumer_is_at_least_once_and_options_pass_through() {
        let c = consumer_config(
            &kafka(&[("session.timeout.ms", "6000")]),
            "g",
            Duration::from_secs(5),
        );
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("enable.auto.commit"), Some("true"));
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        assert_eq!(c.get("statistics.interval.ms"), Some("5000"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        // librdkafka knows the property (a typo would only fail at client creation).
        let created: Result<BaseConsumer, _> = c.create();
        assert!(created.is_ok(), "{:?}", created.err());
        let p = producer_config(&kafka(&[]), Duration::from_secs(30));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("message.timeout.ms"), Some("30000"));
        // Issue #19: serve's producers never time a record out; librdkafka accepts it.
        let p = producer_config(&kafka(&[]), SERVE_MESSAGE_TIMEOUT);
        assert_eq!(p.get("message.timeout.ms"), Some("0"));
        let created: Result<FutureProducer, _> = p.create();
        assert!(created.is_ok(), "{:?}", created.err());
    }

    #[test]
    fn unknown_option_is_a_config_error_naming_it() {
        let r: Result<FutureProducer, _> =
            producer_config(&kafka(&[("no.such.option", "1")]), Duration::from_secs(5)).create();
        let e = config_error("producer", r.err().expect("unknown option refused"));
        assert_eq!(crate::exit_code(&e), 64);
        assert!(e.to_string().contains("no.such.option"), "{e}");
    }

    #[test]
    fn secret_option_values_never_reach_error_text() {
        let err = KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for sasl.password".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        let e = config_error("producer", err);
        let text = format!("{e:#}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("sasl.password"), "{text}");
    }

    #[test]
    fn a_fenced_producer_is_renewed_once_per_generation() {
        let p = SharedProducer::new(producer_config(&kafka(&[]), Duration::from_secs(5)))
            .expect("producer");
        let (_, g0) = p.get_with_generation();
        assert!(p.renew(g0).expect("renew"));
        // A second failure reported against the old instance does not renew again.
        assert!(!p.renew(g0).expect("renew"));
        let (_, g1) = p.get_with_generation();
        assert_eq!(g1, g0 + 1);
        assert!(producer_is_broken(&KafkaError::MessageProduction(
            RDKafkaErrorCode::ProducerFenced
        )));
        assert!(!producer_is_broken(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )));
    }

    #[test]
    fn bulk_sinks_share_a_lingering_producer_and_alerts_have_their_own() {
        let c = producer_config_lingering(&kafka(&[]), Duration::from_secs(5), BULK_LINGER_MS);
        assert_eq!(c.get("linger.ms"), Some("50"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(
            producer_config(&kafka(&[]), Duration::from_secs(5)).get("linger.ms"),
            Some("5")
        );
        // An operator's linger wins over both defaults.
        let c = producer_config_lingering(
            &kafka(&[("linger.ms", "1")]),
            Duration::from_secs(5),
            BULK_LINGER_MS,
        );
        assert_eq!(c.get("linger.ms"), Some("1"));

        let p = OutputProducers::new(&kafka(&[])).expect("producers");
        let generation = |s: Sink| p.for_sink(s).get_with_generation().1;
        let g = generation(Sink::Moderation);
        assert!(p.for_sink(Sink::Moderation).renew(g).expect("renew"));
        // Moderation and dead letters go through the renewed bulk producer; alerts do not.
        assert_eq!(generation(Sink::Moderation), g + 1);
        assert_eq!(generation(Sink::DeadLetter), g + 1);
        assert_eq!(generation(Sink::Alerts), 0);
    }

    #[test]
    fn dead_letter_keeps_bytes_and_says_why() {
        let r = dead_letter(
            "follows",
            2,
            17,
            Some(b"k"),
            b"{nope",
            "invalid_json",
            "eof",
        );
        assert_eq!(r.payload, b"{nope");
        assert_eq!(r.key, b"k");
        let h: std::collections::HashMap<_, _> = r.headers.iter().cloned().collect();
        assert_eq!(h[HDR_SOURCE_TOPIC], b"follows");
        assert_eq!(h[HDR_SOURCE_PARTITION], b"2");
        assert_eq!(h[HDR_SOURCE_OFFSET], b"17");
        assert_eq!(h[HDR_ERROR_KIND], b"invalid_json");
        assert_eq!(h[HDR_ERROR_MESSAGE], b"eof");
    }
}
