//! `followguard serve`: the async driver around the pure pipeline. It owns the consume
//! loop, the in-order acknowledgement of output records and offset storage
//! (at-least-once), partition-state rebuild on assignment, signals and the bounded
//! shutdown sequence. The detector itself never sees Kafka.
//!
//! Delivery rule: an input offset is stored (and later auto-committed) only after every
//! record the event caused — alerts, moderation records or its dead-letter copy — has been
//! acknowledged by the broker, and offsets are stored in input order per partition.
//!
//! Rebalance choice: on revoke, the partition's detector state is dropped; on assign, the
//! last `--rebuild-window` of the partition (by record time, found with
//! `offsets_for_times`) up to the committed offset is re-read by a separate, group-less
//! consumer and fed to the pipeline with sinks muted. Alert ids depend only on the input,
//! so the rebuilt state reopens nothing that was already announced. The replay spans the
//! detector's longest memory (`--rebuild-window auto`), all assigned partitions interleaved
//! in arrival order; the alerts topic is scanned for already-open alert ids so events
//! re-processed after a crash do not announce an alert twice.
//!
//! Batching: the loop hands processed events to the acknowledgement task in batches of
//! up to [`BATCH`], and hands over whatever it holds before it waits for input, so a
//! batch never waits for more records. Offsets are stored once per partition per batch.
//! This keeps thread wake-ups, offset stores and health bookkeeping off the per-event
//! path without adding latency (see BENCHMARKS.md, end to end).
//!
//! Backpressure: at most about `--max-in-flight` events await acknowledgement. When that window
//! stays full for a second (a stalled sink, a broker outage), the input partitions are
//! paused and polling goes on, so the member stays in its group and /healthz stays up;
//! they resume once acknowledgements flow. Records the broker does not acknowledge are
//! re-sent with backoff (a fenced idempotent producer is replaced first); their offsets
//! are never stored before that succeeds.

use crate::admin::{self, AdminState, Info};
use crate::config::{LogFormat, ServeArgs, ServeConfig};
use crate::kafka::{self, OutRecord, OutputTopics, RebalanceEvent, ServiceContext};
use crate::metrics::{EventOutcome, Metrics};
use crate::prepare::Preparer;
use crate::sink::Sink;
use crate::webhook::{Webhook, WebhookAlert};
use crate::ConfigError;
use anyhow::Context as _;
use followguard_core::alert::AlertStatus;
use followguard_core::event::EventError;
use followguard_core::model::Model;
use followguard_core::pipeline::{Outcome, Pipeline, PipelineConfig, Prepared};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long one `recv` may wait before the loop reports progress while idle.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// How long the in-flight window may stay full before the input is paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);
/// Most events handed to the acknowledgement task at once.
const BATCH: usize = 256;
/// Longest pause between re-sends of a record the broker did not acknowledge.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);
/// Metadata calls (committed offsets, offsets for times) during a rebuild.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// The alert scan stops when nothing arrives for this long (or at end of partition).
const SCAN_IDLE: Duration = Duration::from_secs(1);

type Consumer_ = StreamConsumer<ServiceContext>;

/// Entry point of `followguard serve`: validates flags, sets up logging and runs the service.
pub fn main(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.validate()?;
    init_tracing(cfg.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let res = rt.block_on(run(cfg));
    // A consumer drop stuck on a dead broker (rust-rdkafka #611) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    res
}

/// Logs to stderr, text or JSON, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests, other commands) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Loads the model; a missing, unreadable, incompatible or unpinned model is a
/// configuration error (exit 64).
pub fn load_model(cfg: &ServeConfig) -> Result<Model, ConfigError> {
    let model = followguard_train::model_file::load(&cfg.model)
        .map_err(|e| ConfigError(format!("--model {}: {e}", cfg.model.display())))?;
    if let Some(want) = &cfg.model_sha256 {
        if model.sha256() != want {
            return Err(ConfigError(format!(
                "--model {}: sha256 is {}, but --model-sha256 pins {want}",
                cfg.model.display(),
                model.sha256()
            )));
        }
    }
    Ok(model)
}

/// Events handed over together, in input order.
type Batch = Vec<Pending>;

/// One input record observed: its output records, not yet sent.
struct Observed {
    partition: i32,
    offset: i64,
    records: Vec<OutRecord>,
}

/// Event records awaiting acknowledgement, in input order.
struct Pending {
    partition: i32,
    offset: i64,
    /// Each record with its delivery report and the producer generation that sent it.
    deliveries: Vec<(OutRecord, Option<DeliveryFuture>, u64)>,
}

/// Runs the service until a shutdown signal, then drains within the grace period.
pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let model = load_model(&cfg)?;
    tracing::info!(
        path = %cfg.model.display(),
        version = model.version(),
        sha256 = model.sha256(),
        "model loaded"
    );
    let metrics = Metrics::new(prometheus::Registry::new(), model.version(), model.sha256());
    let admin_state = AdminState::new(
        metrics.clone(),
        Info {
            version: env!("CARGO_PKG_VERSION"),
            model_version: model.version().to_string(),
            model_sha256: model.sha256().to_string(),
            input_topic: cfg.input_topic.clone(),
            group_id: cfg.group_id.clone(),
        },
        cfg.health_stale_after,
    );
    admin_state.set_model_loaded();

    let rebalances = Arc::new(Mutex::new(VecDeque::new()));
    let consumer: Arc<Consumer_> = Arc::new(
        kafka::consumer_config(&cfg.kafka, &cfg.group_id, cfg.stats_interval)
            .create_with_context(ServiceContext {
                admin: admin_state.clone(),
                input_topic: cfg.input_topic.clone(),
                events: rebalances.clone(),
            })
            .map_err(|e| kafka::config_error("consumer", e))?,
    );
    let producers = kafka::OutputProducers::new(&cfg.kafka, cfg.delivery_timeout)?;

    let admin_stop = CancellationToken::new();
    let (admin_addr, admin_task) =
        admin::serve_admin(cfg.admin_addr, admin_state.clone(), admin_stop.clone()).await?;
    tracing::info!(addr = %admin_addr, "admin http listening");

    consumer
        .subscribe(&[&cfg.input_topic])
        .with_context(|| format!("subscribing to {}", cfg.input_topic))?;
    tracing::info!(
        brokers = %cfg.kafka.brokers,
        topic = %cfg.input_topic,
        group = %cfg.group_id,
        "consuming"
    );

    let shutdown = CancellationToken::new();
    let give_up = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(
        shutdown.clone(),
        give_up.clone(),
        cfg.shutdown_grace,
    ));

    let (webhook, webhook_task) = match cfg.webhook.clone() {
        Some(w) => {
            let (h, t) = Webhook::start(w, metrics.clone())?;
            (Some(h), Some(t))
        }
        None => (None, None),
    };

    let topics = OutputTopics {
        alerts: cfg.alerts_topic.clone(),
        moderation: cfg.moderation_topic.clone(),
        dead_letter: cfg.dlq_topic.clone(),
    };
    let (tx, rx) = mpsc::channel::<Batch>((cfg.max_in_flight / BATCH).max(1));
    let acker = tokio::spawn(ack_loop(
        rx,
        consumer.clone(),
        producers.clone(),
        topics.clone(),
        cfg.input_topic.clone(),
        metrics.clone(),
        give_up.clone(),
    ));

    let pipeline_cfg = cfg.pipeline.clone();
    let rebuild_window = cfg
        .rebuild_window
        .unwrap_or_else(|| state_horizon(&pipeline_cfg));
    let preparer = Preparer::new(cfg.prepare_threads, pipeline_cfg.cache_capacity)?;
    let pipeline = Pipeline::new(Arc::new(model), pipeline_cfg);
    let mut service = Service {
        cfg: &cfg,
        consumer: consumer.clone(),
        producers: producers.clone(),
        topics,
        pipeline,
        admin: admin_state.clone(),
        metrics: metrics.clone(),
        webhook,
        rebalances,
        already_open: HashSet::new(),
        rebuild_window,
        now_ms: now_ms(),
    };
    let loop_result = service.consume(&shutdown, tx, preparer).await;
    let Service { webhook, .. } = service;

    // Shutdown: fetching has stopped and the current event is finished; drain the
    // acknowledgements, commit, flush, all before the grace deadline.
    shutdown.cancel();
    admin_state.set_draining();
    let deadline = Instant::now() + cfg.shutdown_grace;
    let drained = tokio::time::timeout_at(deadline, acker).await.is_ok();
    if !drained {
        give_up.cancel();
        tracing::warn!("grace period ended before every output was acknowledged; their events will be redelivered");
    }
    let c = consumer.clone();
    let commit = tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync));
    match tokio::time::timeout_at(deadline, commit).await {
        Ok(Ok(Ok(()))) => tracing::info!("offsets committed"),
        // Auto-commit already wrote everything stored.
        Ok(Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)))) => {
            tracing::info!("offsets committed")
        }
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "final offset commit failed"),
        _ => tracing::warn!("final offset commit did not finish in the grace period"),
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = tokio::time::timeout_at(
        deadline,
        tokio::task::spawn_blocking(move || producers.flush(left)),
    )
    .await;
    drop(webhook);
    if let Some(t) = webhook_task {
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            tracing::warn!("webhook queue not drained in the grace period");
        }
    }
    admin_stop.cancel();
    let _ = tokio::time::timeout_at(deadline, admin_task).await;
    // Dropping the consumer leaves the group; it can hang when the broker is gone.
    let close = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout_at(deadline + Duration::from_secs(1), close)
        .await
        .is_err()
    {
        tracing::warn!("consumer did not close in time; exiting anyway");
    }
    signals.abort();
    loop_result?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// First SIGTERM/SIGINT starts the graceful shutdown; a second one, or the grace period
/// running out (plus a small margin for the steps that honour it), exits at once.
async fn watch_signals(shutdown: CancellationToken, give_up: CancellationToken, grace: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = shutdown.cancelled() => return,
    };
    tracing::info!(
        signal = name,
        grace_secs = grace.as_secs_f64(),
        "shutdown requested"
    );
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = tokio::time::sleep(grace + Duration::from_secs(2)) => {
            give_up.cancel();
            tracing::error!("shutdown exceeded the grace period; exiting");
            std::process::exit(1);
        }
    }
    tracing::warn!("second signal; exiting immediately");
    std::process::exit(130);
}

/// Waits for each event's records in input order, re-sending what the broker refused,
/// then stores the offsets the batch reached (per partition, after all its records are
/// acknowledged). Ends when the loop closes the channel and everything is acknowledged,
/// or immediately (storing nothing more) when `give_up` fires.
async fn ack_loop(
    mut rx: mpsc::Receiver<Batch>,
    consumer: Arc<Consumer_>,
    producers: kafka::OutputProducers,
    topics: OutputTopics,
    input_topic: String,
    metrics: Metrics,
    give_up: CancellationToken,
) {
    // Next offset to store per partition, for the batch in hand.
    let mut reached: Vec<(i32, i64)> = Vec::new();
    while let Some(batch) = rx.recv().await {
        reached.clear();
        for p in batch {
            if !acknowledge(p.deliveries, &producers, &topics, &metrics, &give_up).await {
                return;
            }
            match reached.iter_mut().find(|(q, _)| *q == p.partition) {
                Some(r) => r.1 = r.1.max(p.offset + 1),
                None => reached.push((p.partition, p.offset + 1)),
            }
        }
        for &(partition, next) in &reached {
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(&input_topic, partition, Offset::Offset(next))
                .is_ok()
            {
                if let Err(e) = consumer.store_offsets(&tpl) {
                    // The partition was revoked meanwhile; its next owner reprocesses the events.
                    tracing::debug!(error = %e, partition, "offset not stored");
                }
            }
        }
    }
}

/// Waits until every record of one event is acknowledged, re-sending refused ones with
/// backoff. Returns false when `give_up` fired first.
async fn acknowledge(
    deliveries: Vec<(OutRecord, Option<DeliveryFuture>, u64)>,
    producers: &kafka::OutputProducers,
    topics: &OutputTopics,
    metrics: &Metrics,
    give_up: &CancellationToken,
) -> bool {
    {
        for (rec, mut fut, mut generation) in deliveries {
            let producer = producers.for_sink(rec.sink);
            let mut attempt: u32 = 0;
            loop {
                let err = match fut.take() {
                    Some(f) => tokio::select! {
                        r = f => match r {
                            Ok(Ok(_)) => None,
                            Ok(Err((e, _))) => Some(e),
                            Err(_) => Some(KafkaError::Canceled),
                        },
                        _ = give_up.cancelled() => return false,
                    },
                    None => Some(KafkaError::Canceled),
                };
                let Some(err) = err else {
                    metrics.delivered(rec.sink);
                    break;
                };
                metrics.delivery_failed(rec.sink);
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
                fut = kafka::send(&p, topics, &rec).await.ok();
            }
        }
    }
    true
}

/// The consume loop's state.
struct Service<'a> {
    cfg: &'a ServeConfig,
    consumer: Arc<Consumer_>,
    producers: kafka::OutputProducers,
    topics: OutputTopics,
    pipeline: Pipeline,
    admin: Arc<AdminState>,
    metrics: Metrics,
    webhook: Option<Webhook>,
    rebalances: Arc<Mutex<VecDeque<RebalanceEvent>>>,
    /// Alert ids the alerts topic already holds as `open` (read at assignment).
    already_open: HashSet<String>,
    rebuild_window: Duration,
    /// Wall clock for event age, refreshed per batch (a clock read per event costs more
    /// than the age histogram's resolution needs).
    now_ms: i64,
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

/// Shutdown with a batch the full channel cannot take yet: a task queues it behind the
/// others, so the drain still acknowledges it in order (or the grace period gives up).
fn hand_over_late(tx: &mpsc::Sender<Batch>, batch: Batch) {
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

/// How far back detector state reaches: the longest of its memories (idle followees,
/// moderation de-duplication, campaign linking). Replaying this much rebuilds it exactly.
fn state_horizon(cfg: &PipelineConfig) -> Duration {
    let d = &cfg.detector;
    let ms = d
        .idle_ttl_ms
        .max(d.moderation_dedup_ms)
        .max(d.lockstep_window_ms)
        .max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Service<'_> {
    async fn consume(
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
                hand_over_late(&tx, batch);
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

    /// Hands the batch to the acknowledgement task and does the per-batch bookkeeping
    /// (health, tracked followees, wall clock). Returns false on shutdown.
    async fn flush(
        &mut self,
        shutdown: &CancellationToken,
        tx: &mpsc::Sender<Batch>,
        batch: &mut Batch,
    ) -> anyhow::Result<bool> {
        self.admin.progress();
        self.now_ms = now_ms();
        if batch.is_empty() {
            return Ok(true);
        }
        self.metrics
            .set_tracked_followees(self.pipeline.tracked_followees());
        let b = std::mem::replace(batch, Vec::with_capacity(BATCH));
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

    /// `--max-in-flight` events await acknowledgement (a sink stalls): pause fetching and
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
        let permit = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    hand_over_late(tx, pending);
                    return Ok(false);
                }
                p = tx.reserve() => match p {
                    Ok(p) => break p,
                    Err(_) => anyhow::bail!("acknowledgement task stopped unexpectedly"),
                },
                r = tokio::time::timeout(IDLE_TICK, consumer.recv()) => {
                    self.admin.progress();
                    if let Ok(Ok(m)) = r {
                        // From a partition assigned after the pause: read it again later.
                        let (t, p, o) = (m.topic().to_string(), m.partition(), m.offset());
                        drop(m);
                        if let Err(e) = consumer.seek(&t, p, Offset::Offset(o), Duration::from_secs(1)) {
                            tracing::warn!(error = %e, partition = p, "could not rewind while paused");
                        }
                    }
                    self.apply_rebalances(shutdown).await;
                    pause(&consumer, &mut paused);
                }
            }
        };
        permit.send(pending);
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

    /// Turns one prepared input record into its output records (not yet sent).
    /// `prep_secs`: time its parse and score took.
    fn observe_one(
        &mut self,
        m: &BorrowedMessage<'_>,
        prepared: Result<Prepared<'_>, EventError>,
        prep_secs: f64,
    ) -> Observed {
        let (partition, offset) = (m.partition(), m.offset());
        let started = Instant::now();
        let result = prepared.map(|p| self.pipeline.observe(p, partition));
        self.metrics
            .processing_seconds(prep_secs + started.elapsed().as_secs_f64());
        let mut records = Vec::new();
        match result {
            Ok(outcome) => {
                self.outcome_records(&outcome, &mut records);
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
        }
    }

    /// Hands an input record's output records to the producer; the deliveries to await
    /// before its offset may be stored.
    async fn send_records(&mut self, o: Observed) -> Pending {
        let mut deliveries = Vec::with_capacity(o.records.len());
        for rec in o.records {
            let (producer, generation) = self.producers.for_sink(rec.sink).get_with_generation();
            let fut = match kafka::send(&producer, &self.topics, &rec).await {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, sink = rec.sink.as_str(), "produce failed; will retry");
                    None
                }
            };
            deliveries.push((rec, fut, generation));
        }
        Pending {
            partition: o.partition,
            offset: o.offset,
            deliveries,
        }
    }

    /// Feeds the web view's evidence store (a short, uncontended lock per event).
    fn note_evidence(&self, o: &Outcome, partition: i32) {
        self.evidence().observe_partition(o, partition);
    }

    fn evidence(&self) -> std::sync::MutexGuard<'_, followguard_core::evidence::EvidenceStore> {
        self.admin
            .evidence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn outcome_records(&self, o: &Outcome, out: &mut Vec<OutRecord>) {
        let suspicious = o.suspicious;
        self.metrics.event(if suspicious {
            EventOutcome::Suspicious
        } else {
            EventOutcome::Clean
        });
        self.metrics
            .follower_scored(f64::from(o.score.prob), o.suspicious_follow());
        self.metrics
            .event_age_seconds((self.now_ms - o.event_time_ms) as f64 / 1000.0);
        for a in &o.alerts {
            if a.status == AlertStatus::Open && self.already_open.contains(&a.alert_id) {
                // Re-processing after a crash: this open is already on the topic.
                self.metrics.duplicate_open_suppressed();
                continue;
            }
            self.metrics
                .alert_emitted(a.kind.as_str(), a.severity.as_str(), a.status.as_str());
            match serde_json::to_vec(a) {
                Ok(payload) => out.push(OutRecord {
                    sink: Sink::Alerts,
                    key: a.key().as_bytes().to_vec(),
                    payload,
                    headers: Vec::new(),
                }),
                Err(e) => tracing::error!(error = %e, "alert not serialisable"),
            }
            if let Some(w) = &self.webhook {
                w.enqueue(WebhookAlert::from_alert(a));
            }
        }
        for r in &o.moderation {
            self.metrics.moderation_emitted();
            match serde_json::to_vec(r) {
                Ok(payload) => out.push(OutRecord {
                    sink: Sink::Moderation,
                    key: r.key().as_bytes().to_vec(),
                    payload,
                    headers: Vec::new(),
                }),
                Err(e) => tracing::error!(error = %e, "moderation record not serialisable"),
            }
        }
    }

    /// Applies revokes (drop state) and assigns (rebuild state) queued by the context.
    async fn apply_rebalances(&mut self, shutdown: &CancellationToken) {
        loop {
            let ev = match self.rebalances.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            match ev {
                None => return,
                Some(RebalanceEvent::Revoked(parts)) => {
                    for p in parts {
                        self.pipeline.drop_partition(p);
                        self.evidence().drop_partition(p);
                    }
                    self.metrics
                        .set_tracked_followees(self.pipeline.tracked_followees());
                }
                Some(RebalanceEvent::Assigned(parts)) => {
                    if !self.rebuild_window.is_zero() && !parts.is_empty() {
                        let r = tokio::select! {
                            r = self.rebuild(&parts) => r,
                            _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted by shutdown")),
                        };
                        match r {
                            Ok(n) => {
                                tracing::info!(partitions = ?parts, replayed = n, "partition state rebuilt")
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
        self.already_open = match kafka::scan_opened_alerts(
            &replay,
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
        if !ranges.is_empty() {
            replay.assign(&tpl)?;
        }
        while !ranges.is_empty() {
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
            if let Ok(o) = self.pipeline.process(
                m.payload().unwrap_or_default(),
                m.timestamp().to_millis(),
                p,
            ) {
                self.note_evidence(&o, p);
            }
            total += 1;
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
