//! `followguard serve`: the async driver around the pure pipeline. It owns the consume
//! loop, the in-order acknowledgement of output records and offset storage
//! (at-least-once), partition-state rebuild on assignment and the bounded shutdown
//! sequence. The detector itself never sees Kafka. [`run`] takes the shutdown signal as a
//! future (the binary's `main` turns SIGTERM/SIGINT into it), so tests can run the
//! service in-process and stop it.
//!
//! Delivery rule: an input offset is stored (and later auto-committed) only after every
//! record the event caused — alerts, moderation records or its dead-letter copy — has been
//! acknowledged by the broker, and offsets are stored in input order per partition.
//!
//! Rebalance choice: on revoke, what the loop holds is handed over first (outputs and,
//! with `--changelog-topic`, the partition's state acknowledged, offsets committed), then
//! the partition's detector state is dropped and only then is it released to the group
//! (`rebalance`; incremental under cooperative-sticky: only the partitions named). On
//! assign, the partition's state is restored from the changelog (`state`), or else the
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
//! Backpressure: at most about `--max-in-flight` events, and `--max-in-flight-bytes` of
//! output records (issue #19), await acknowledgement. When that window stays full for a
//! second (a stalled sink, a broker outage), or the bytes exceed the budget, the input
//! partitions are paused and polling goes on, so the member stays in its group and /healthz stays up;
//! they resume once acknowledgements flow. Serve's idempotent producers never time a
//! record out (issue #19): librdkafka retries transient errors itself, in order per
//! partition; a record refused for good is dead-lettered, and one whose producer was
//! fenced is re-sent after the producer is replaced. Offsets are never stored before
//! every record of the event is acknowledged.
//!
//! Files by concern: `consume` (the loop: fetch, chunk, prepare and observe),
//! `route` (an outcome's metrics, output records, webhook and evidence), `backpressure`
//! (handing batches over, pausing the input while the window is full), `ack`
//! (acknowledgement in input order, re-sends, webhook pages, offset storage), `rebuild` (revokes and
//! assigns: dropping and rebuilding partition state), `rebalance` (revokes handed over
//! before release), `state` (the changelog), `shutdown` (the drain sequence).

mod ack;
mod backpressure;
mod consume;
/// Issue 21: the follower-keyed link stage (cross-instance campaigns).
mod links;
mod profiles;
mod rebalance;
mod rebuild;
mod route;
mod shutdown;
mod state;

use crate::admin::{self, AdminState, Info};
use crate::config::{LogFormat, ServeConfig};
use crate::kafka::{self, OutputTopics, ServiceContext};
use crate::metrics::Metrics;
use crate::prepare::Preparer;
use crate::webhook::Webhook;
use crate::ConfigError;
use anyhow::Context as _;
use consume::Service;
use followguard_core::model::Model;
use followguard_core::pipeline::Pipeline;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most events handed to the acknowledgement task at once.
pub const BATCH: usize = 256;

type Consumer_ = StreamConsumer<ServiceContext>;

/// Runs [`run`] on a runtime of its own (two worker threads) until `shutdown` resolves
/// and the service has drained; what `followguard serve` does after parsing its flags.
/// A task stuck in a consumer drop on a dead broker (rust-rdkafka #611) is given one
/// second, then abandoned, so it cannot hold the caller.
pub fn run_blocking(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let res = rt.block_on(run(cfg, shutdown));
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

/// Runs the service until `shutdown` resolves, then drains within the grace period
/// (`--shutdown-grace`): stops fetching, finishes the current event, waits for the
/// outputs' acknowledgements, commits offsets and flushes the producers.
pub async fn run(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
    if let Some(t) = &cfg.admin_token {
        admin_state.set_admin_token(t.0.clone());
    }

    let rebalances = Arc::new(Mutex::new(VecDeque::new()));
    // Issue 21: revokes are left to the consume loop while it runs (rebalance.rs).
    let defer_revoke = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let consumer: Arc<Consumer_> = Arc::new(
        kafka::consumer_config(&cfg.kafka, &cfg.group_id, cfg.stats_interval)
            .create_with_context(ServiceContext {
                admin: admin_state.clone(),
                input_topic: cfg.input_topic.clone(),
                events: rebalances.clone(),
                defer_revoke: defer_revoke.clone(),
                restores: cfg.changelog_topic.is_some(),
                poll_gap: kafka::PollGap::new(&metrics, crate::metrics::GroupConsumer::Input),
            })
            .map_err(|e| kafka::config_error("consumer", e))?,
    );
    let mut producers = kafka::OutputProducers::new(&cfg.output_kafka)?;
    if cfg.links.is_some() {
        // Issue 21: the link stage's internal topics live on the input cluster.
        producers = producers.with_internal(&cfg.kafka)?;
    }

    // Issue 24: SIGHUP asks for a live model reload, as POST /admin/reload does.
    let hup = {
        let admin = admin_state.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                admin.request_reload(crate::admin::Reload::default());
            }
        })
    };
    let admin_stop = CancellationToken::new();
    let (admin_addr, admin_task) =
        admin::serve_admin(cfg.admin_addr, admin_state.clone(), admin_stop.clone()).await?;
    tracing::info!(addr = %admin_addr, "admin http listening");

    let stop = CancellationToken::new();
    // Issue 24: the profile table is read in full before the first follow.
    let profile_feed = profiles::start(&cfg, &metrics, &admin_state, &stop).await?;
    let decision_feed = profiles::start_decisions(&cfg, &metrics, &admin_state, &stop).await?;
    consumer
        .subscribe(&[&cfg.input_topic])
        .with_context(|| format!("subscribing to {}", cfg.input_topic))?;
    tracing::info!(
        brokers = %cfg.kafka.brokers,
        output_brokers = %cfg.output_kafka.brokers,
        topic = %cfg.input_topic,
        group = %cfg.group_id,
        "consuming"
    );

    let give_up = CancellationToken::new();
    let requested = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => stop.cancel(),
                () = stop.cancelled() => {}
            }
        })
    };

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
        links: cfg
            .links
            .as_ref()
            .map(|l| l.links_topic.clone())
            .unwrap_or_default(),
        pairs: cfg
            .links
            .as_ref()
            .map(|l| l.pairs_topic.clone())
            .unwrap_or_default(),
        campaigns: cfg
            .links
            .as_ref()
            .map(|l| l.campaigns_topic.clone())
            .unwrap_or_default(),
    };
    let (tx, rx) = mpsc::channel((cfg.max_in_flight / BATCH).max(1));
    let (acked, acked_rx) = tokio::sync::watch::channel(0u64);
    // Issue #19: the acknowledgement task owns the webhook, so a page is sent only for an
    // alert record the broker acknowledged (never lost between enqueue and ack).
    let webhook_on = webhook.is_some();
    let webhook_forget = webhook.clone();
    let in_flight_bytes = crate::inflight::InFlightBytes::new(cfg.max_in_flight_bytes);
    let changelog = state::ChangelogSink::new(&cfg)?;
    // Issue 21: the state topics, created (or checked) as `followguard topics` does.
    kafka::topics::ensure(
        &cfg.kafka,
        &kafka::topics::state_topics(
            &cfg.input_topic,
            cfg.changelog_topic.as_deref(),
            cfg.links.as_ref(),
            cfg.pipeline.detector.lockstep_window_ms,
        ),
    )
    .await?;
    // Issue 21: the input topic deleted (or re-created) under the service stops it.
    let input_gone =
        kafka::topics::watch_input(&cfg.kafka, &cfg.group_id, &cfg.input_topic, stop.clone())?;
    // Issue 21: the link stage, a second member of the group on the internal topics.
    let link_stage = match &cfg.links {
        Some(l) => {
            let d = &cfg.pipeline.detector;
            // The campaigns topic (an output) read as a table for the web view.
            tokio::spawn(links::follow_campaigns(
                cfg.output_kafka.clone(),
                cfg.group_id.clone(),
                l.campaigns_topic.clone(),
                admin_state.campaigns.clone(),
                followguard_core::links::CampaignTable::new(
                    d.lockstep_window_ms.saturating_mul(2),
                    l.max_bytes,
                ),
                stop.clone(),
            ));
            let parts = links::Parts {
                kafka: cfg.kafka.clone(),
                group_id: cfg.group_id.clone(),
                links: l.clone(),
                stage: followguard_core::links::LinkConfig {
                    min_shared: d.lockstep_min_shared,
                    window_ms: d.lockstep_window_ms,
                    max_bytes: l.max_bytes,
                    ..Default::default()
                },
                producers: producers.clone(),
                topics: topics.clone(),
                metrics: metrics.clone(),
                stop: stop.clone(),
                give_up: give_up.clone(),
                stall_warn: cfg.delivery_timeout,
                leave_group: cfg.leave_group_on_shutdown,
            };
            Some(tokio::spawn(async move {
                // Logged when it happens: the member's link stage leaves the group and
                // the others take over its partitions (serve itself goes on).
                let r = links::run(parts).await;
                if let Err(e) = &r {
                    tracing::error!(error = %format!("{e:#}"), "link stage stopped");
                }
                r
            }))
        }
        None => None,
    };
    let acker = tokio::spawn(ack::ack_loop(
        ack::Acker {
            consumer: consumer.clone(),
            producers: producers.clone(),
            topics: topics.clone(),
            input_topic: cfg.input_topic.clone(),
            metrics: metrics.clone(),
            give_up: give_up.clone(),
            webhook,
            in_flight_bytes: in_flight_bytes.clone(),
            stall_warn: cfg.delivery_timeout,
            changelog: changelog.clone(),
            acked,
        },
        rx,
    ));

    let pipeline_cfg = cfg.pipeline.clone();
    let rebuild_window = cfg
        .rebuild_window
        .unwrap_or_else(|| rebuild::state_horizon(&pipeline_cfg));
    let preparer = Preparer::new(cfg.prepare_threads, pipeline_cfg.cache_capacity)?;
    let mut pipeline = Pipeline::new(Arc::new(model), pipeline_cfg);
    if let Some(path) = &cfg.input.shadow_model {
        // Issue 24: a candidate scored beside the live model; same refusal rules.
        let shadow = followguard_train::model_file::load(path)
            .map_err(|e| ConfigError(format!("--shadow-model {}: {e}", path.display())))?;
        tracing::info!(
            version = shadow.version(),
            sha256 = shadow.sha256(),
            "shadow model loaded"
        );
        metrics.input.set_shadow(shadow.version(), shadow.sha256());
        pipeline = pipeline.with_shadow(Arc::new(shadow));
    }
    // Issue 21: with a changelog, the detector records what each batch changes.
    if changelog.is_some() {
        pipeline.detector_mut().track_dirty(true);
    }
    // Issue 21: flagged follows for the link stage.
    if cfg.links.is_some() {
        pipeline.detector_mut().emit_links(true);
    }
    let mut service = Service {
        cfg: &cfg,
        consumer: consumer.clone(),
        producers: producers.clone(),
        topics,
        pipeline,
        admin: admin_state.clone(),
        metrics: metrics.clone(),
        webhook_on,
        in_flight_bytes,
        rebalances,
        already_open: HashSet::new(),
        rebuild_window,
        now_ms: now_ms(),
        helper_cache_stats: (0, 0),
        helper_cache_bytes: 0,
        state_reported_ms: 0,
        webhook: webhook_forget,
        profiles: profile_feed.as_ref().map(|(f, _)| f.clone()),
        decisions: decision_feed.as_ref().map(|(q, _)| q.clone()),
        changelog,
        in_state: std::collections::HashMap::new(),
        owned: HashSet::new(),
        hand_over: rebalance::HandOver::new(acked_rx),
        defer_revoke,
        input_gone,
    };
    let loop_result = service.consume(&stop, tx, preparer).await;
    service.release_unfinished_revokes();
    drop(service);

    stop.cancel();
    if let Some((_, task)) = profile_feed {
        task.abort();
    }
    if let Some((_, task)) = decision_feed {
        task.abort();
    }
    // Issue 21: the link stage stops at `stop` after acknowledging its round, alongside
    // the drain and within the same grace period (then `give_up` ends its wait).
    let (link_give_up, grace) = (give_up.clone(), cfg.shutdown_grace);
    let link_done = async move {
        let Some(task) = link_stage else { return };
        match tokio::time::timeout(grace, task).await {
            // An error was logged when it happened.
            Ok(_) => {}
            Err(_) => {
                link_give_up.cancel();
                tracing::warn!("link stage did not stop within the grace period");
            }
        }
    };
    let drained = shutdown::drain(shutdown::Parts {
        grace: cfg.shutdown_grace,
        admin: admin_state,
        acker,
        give_up,
        consumer,
        leave_group: cfg.leave_group_on_shutdown,
        producers,
        webhook_task,
        admin_stop,
        admin_task,
    });
    tokio::join!(drained, link_done);
    requested.abort();
    hup.abort();
    loop_result?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Wall clock in epoch milliseconds: for event age and the rebuild's alert scan only,
/// never for detection.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
