//! `serve` configuration: the raw clap flags (every one settable through a `FOLLOWGUARD_…`
//! environment variable) and their validation into a [`ServeConfig`]. Anything wrong here
//! is a [`ConfigError`] (exit 64). Secrets (`--kafka-option` values whose key names a
//! password, key or token; webhook credentials) never appear in `Debug` output or logs.

use crate::ConfigError;
use clap::{Args, ValueEnum};
use followguard_core::detector::DetectorConfig;
use followguard_core::pipeline::PipelineConfig;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// librdkafka properties the service sets itself: overriding them would silently break
/// at-least-once delivery or the group, so `--kafka-option` refuses them.
const RESERVED_KAFKA_OPTIONS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "enable.idempotence",
    "statistics.interval.ms",
];

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Kafka connection flags shared by `serve`, `produce` and `topics`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated (host:port,...).
    #[arg(long, env = "FOLLOWGUARD_BROKERS", default_value = "localhost:9092")]
    pub brokers: String,

    /// Extra librdkafka property as key=value, repeatable (e.g. security.protocol=SASL_SSL,
    /// sasl.username=..., sasl.password=...). Unknown properties are rejected at start.
    /// In the environment variable, separate several with `;` (values may contain commas).
    #[arg(
        long = "kafka-option",
        env = "FOLLOWGUARD_KAFKA_OPTIONS",
        value_delimiter = ';',
        value_name = "KEY=VALUE"
    )]
    pub kafka_options: Vec<String>,

    /// A client.properties-style file of librdkafka properties (`key=value` per line, `#`
    /// or `!` comments), e.g. SASL settings with their password, so secrets stay out of the
    /// environment and the command line. Precedence: --kafka-option (and
    /// FOLLOWGUARD_KAFKA_OPTIONS) over this file over librdkafka's defaults.
    #[arg(
        long = "kafka-config",
        env = "FOLLOWGUARD_KAFKA_CONFIG",
        value_name = "FILE"
    )]
    pub kafka_config: Option<PathBuf>,
}

/// One `key=value` librdkafka property from `what` (a flag, or a file and line).
fn parse_kafka_option(raw: &str, what: &str) -> Result<Option<KafkaOption>, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let Some((k, v)) = raw.split_once('=') else {
        return Err(ConfigError(format!(
            "{what}: expected key=value, got {:?}",
            raw.split_once(':').map_or(raw, |(k, _)| k)
        )));
    };
    let key = k.trim().to_string();
    if key.is_empty() {
        return Err(ConfigError(format!("{what}: empty key")));
    }
    if RESERVED_KAFKA_OPTIONS.contains(&key.as_str()) {
        return Err(ConfigError(format!(
            "{what}: {key} is set by followguard itself and cannot be overridden \
             (use the dedicated flag where there is one)"
        )));
    }
    Ok(Some(KafkaOption {
        key,
        value: v.trim().to_string(),
    }))
}

/// The properties of a `--kafka-config` file, in file order.
fn read_kafka_config(path: &std::path::Path) -> Result<Vec<KafkaOption>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("--kafka-config: reading {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with('!') {
            continue;
        }
        let what = format!("--kafka-config {} line {}", path.display(), i + 1);
        out.extend(parse_kafka_option(t, &what)?);
    }
    Ok(out)
}

/// Topic name flags shared by `serve` and `topics`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kafka")]
pub struct TopicArgs {
    /// Topic the follow events are read from.
    #[arg(long, env = "FOLLOWGUARD_INPUT_TOPIC", default_value = "follows")]
    pub input_topic: String,

    /// Topic alerts are written to (keyed by followee id).
    #[arg(
        long,
        env = "FOLLOWGUARD_ALERTS_TOPIC",
        default_value = "followguard.alerts"
    )]
    pub alerts_topic: String,

    /// Topic flagged-follower moderation records are written to (keyed by followee id).
    #[arg(
        long,
        env = "FOLLOWGUARD_MODERATION_TOPIC",
        default_value = "followguard.moderation"
    )]
    pub moderation_topic: String,

    /// Dead-letter topic for input that can never be processed (original bytes + reason headers).
    #[arg(long, env = "FOLLOWGUARD_DLQ_TOPIC", default_value = "followguard.dlq")]
    pub dlq_topic: String,
}

/// `--moderation-dedup-hours`' default, from [`DetectorConfig::default`].
fn default_dedup_hours() -> f32 {
    DetectorConfig::default().moderation_dedup_ms as f32 / 3_600_000.0
}

/// `--newcomer-max-age-min`'s default, from [`DetectorConfig::default`].
fn default_newcomer_max_age_min() -> f64 {
    DetectorConfig::default().newcomer_max_age_ms as f64 / 60_000.0
}

/// Detector settings as command-line flags (`serve`, `replay`, `bench-detect`, `bench-pipeline`).
/// Defaults are [`DetectorConfig::default`], the settings measured in DETECTION.md, and
/// `--help` shows them (issue #23).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Detector")]
pub struct DetectorArgs {
    /// Issue 24: how long a moderator's verdict holds from its own time (a cleared
    /// follower is not flagged, a false alert's followee not alerted, a confirmed bot
    /// counted as bought): accounts change hands, so not forever.
    #[arg(long, env = "FOLLOWGUARD_DECISION_TTL", default_value = "30d")]
    pub decision_ttl: String,
    /// Prior share of organic followers that score as suspicious; keep it above the
    /// model's false-positive rate on real humans, or viral spikes will alert.
    #[arg(long, env = "FOLLOWGUARD_P_FLOOR", default_value_t = DetectorConfig::default().p_floor)]
    pub p_floor: f32,
    /// Pseudo-count (follows per 3 h) pulling a followee's learned suspicious share
    /// towards the floor: lower trusts the followee's own history sooner.
    #[arg(long, env = "FOLLOWGUARD_PRIOR_WEIGHT", default_value_t = DetectorConfig::default().prior_weight)]
    pub prior_weight: f32,
    /// Poisson z-score the suspicious excess must reach (higher = fewer, later alerts).
    #[arg(long, env = "FOLLOWGUARD_Z", default_value_t = DetectorConfig::default().z)]
    pub z: f32,
    /// Minimum excess of suspicious follows in the short (6 min) window.
    #[arg(long, env = "FOLLOWGUARD_SHORT_MIN_EXCESS", default_value_t = DetectorConfig::default().short_min_excess)]
    pub short_min_excess: f32,
    /// Minimum suspicious share in the short window (separates bursts from viral spikes).
    #[arg(long, env = "FOLLOWGUARD_SHORT_MIN_SHARE", default_value_t = DetectorConfig::default().short_min_share)]
    pub short_min_share: f32,
    /// Minimum excess of suspicious follows in the long (24 h) window (drip detection).
    #[arg(long, env = "FOLLOWGUARD_LONG_MIN_EXCESS", default_value_t = DetectorConfig::default().long_min_excess)]
    pub long_min_excess: f32,
    /// Minimum suspicious share in the long window.
    #[arg(long, env = "FOLLOWGUARD_LONG_MIN_SHARE", default_value_t = DetectorConfig::default().long_min_share)]
    pub long_min_share: f32,
    /// Ignore each followee's learned suspicious share; use the floor only.
    #[arg(long, env = "FOLLOWGUARD_NO_OWN_BASELINE")]
    pub no_own_baseline: bool,
    /// Also require the short-window follow rate to beat the followee's own baseline.
    #[arg(long, env = "FOLLOWGUARD_USE_RATE")]
    pub use_rate: bool,
    /// Disable the long (24 h) window trigger: bursts only.
    #[arg(long, env = "FOLLOWGUARD_NO_DRIP")]
    pub no_drip: bool,
    /// Disable the short window trigger: drips only.
    #[arg(long, env = "FOLLOWGUARD_NO_BURST")]
    pub no_burst: bool,
    /// A follower gets at most one moderation record per this many hours.
    #[arg(long, env = "FOLLOWGUARD_MODERATION_DEDUP_HOURS", default_value_t = default_dedup_hours())]
    pub moderation_dedup_hours: f32,
    /// Shared flagged followers that link two alerts into one campaign (0 = off).
    #[arg(long, env = "FOLLOWGUARD_LOCKSTEP_MIN_SHARED", default_value_t = DetectorConfig::default().lockstep_min_shared)]
    pub lockstep_min_shared: u32,
    /// Disable the creation-date batching trigger (cohorts created in the same weeks
    /// arriving far above the usual rate, with partial model support).
    #[arg(long, env = "FOLLOWGUARD_NO_CREATION_TRIGGER")]
    pub no_creation_trigger: bool,
    /// Issue #20: withhold the verdict on followers younger than this many minutes at
    /// the follow (organic sign-ups look bought); 0 = judge every follower.
    #[arg(long, env = "FOLLOWGUARD_NEWCOMER_MAX_AGE_MIN", default_value_t = default_newcomer_max_age_min())]
    pub newcomer_max_age_min: f64,
    /// Issue #20: withheld (too-new) followers of one followee registered within one
    /// 10-minute band open a `cohort` alert from this many (and half of the last 2 h of
    /// such followers); 0 = off.
    #[arg(long, env = "FOLLOWGUARD_NEWCOMER_BATCH_MIN", default_value_t = DetectorConfig::default().newcomer_batch_min)]
    pub newcomer_batch_min: u32,
    /// Follower-score cache capacity.
    #[arg(long, env = "FOLLOWGUARD_CACHE_CAPACITY", default_value_t = 1 << 18)]
    pub cache_capacity: usize,
    /// How far (seconds) an event may be ahead of its partition's clock and still move
    /// it; a later one is counted at the clock (issue #19: one follow stamped 2100 must
    /// not blind the partition). Raise it if producers' clocks really drift that much.
    #[arg(long, env = "FOLLOWGUARD_MAX_FUTURE_SKEW_SECS", default_value_t = 3600)]
    pub max_future_skew_secs: u32,
    /// Events that must agree on a time beyond the skew before the partition clock jumps
    /// there (a real jump: the whole stream moved forward after a pause).
    #[arg(long, env = "FOLLOWGUARD_CLOCK_CONFIRM", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub clock_confirm: u16,
    /// Longest accepted id (event, followee, follower) in bytes; a longer one is
    /// dead-lettered as `bad_id` (issue #19: alert samples and stored ids stay bounded).
    #[arg(long, env = "FOLLOWGUARD_MAX_ID_BYTES", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub max_id_bytes: u32,
    /// Largest alert or moderation record in bytes (issue #19): an alert's sample of
    /// follower ids is trimmed to fit (`samples_truncated` says how many were left out).
    /// Must hold three ids of --max-id-bytes at worst JSON escaping plus 4 KiB (the
    /// default id limit needs 8,704); keep it under the broker's `message.max.bytes`.
    #[arg(long, env = "FOLLOWGUARD_MAX_RECORD_BYTES", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(4096..=64 << 20))]
    pub max_record_bytes: u32,
    /// Bytes (entries and ids) every pending flagged follow together may hold (issue
    /// #19); beyond it a flagged follow is not remembered, so it cannot join a later
    /// burst's alert (counted in `followguard_pending_refused_total`).
    #[arg(long, env = "FOLLOWGUARD_PENDING_MAX_BYTES",
          default_value_t = DetectorConfig::default().pending_max_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub pending_max_bytes: u64,
}

/// Largest `--cache-capacity`: 2^28 scores (6.4 GB of slots) — more is a typo, and the
/// allocation would abort the process instead of failing with a message.
pub const MAX_CACHE_CAPACITY: usize = 1 << 28;

impl DetectorArgs {
    /// The pipeline's settings; a value out of range is a [`ConfigError`].
    pub fn pipeline_config(&self) -> Result<PipelineConfig, ConfigError> {
        if self.cache_capacity > MAX_CACHE_CAPACITY {
            return Err(ConfigError(format!(
                "--cache-capacity must be at most {MAX_CACHE_CAPACITY} (24 bytes per score)"
            )));
        }
        let max_id_bytes = usize::try_from(self.max_id_bytes)
            .unwrap_or(followguard_core::bounds::DEFAULT_MAX_ID_BYTES);
        let max_record_bytes = usize::try_from(self.max_record_bytes).unwrap_or(usize::MAX);
        let needed = followguard_core::bounds::min_record_bytes(max_id_bytes);
        if max_record_bytes < needed {
            return Err(ConfigError(format!(
                "--max-record-bytes {max_record_bytes} cannot hold a moderation record of \
                 three {max_id_bytes}-byte ids: raise it to at least {needed} or lower \
                 --max-id-bytes"
            )));
        }
        let m = self.newcomer_max_age_min;
        if !(m.is_finite() && (0.0..=525_600.0).contains(&m)) {
            return Err(crate::ConfigError(
                "--newcomer-max-age-min must be between 0 and 525600".into(),
            ));
        }
        let d = DetectorConfig {
            p_floor: self.p_floor,
            z: self.z,
            prior_weight: self.prior_weight,
            short_min_excess: if self.no_burst {
                f32::INFINITY
            } else {
                self.short_min_excess
            },
            short_min_share: self.short_min_share,
            long_min_excess: if self.no_drip {
                f32::INFINITY
            } else {
                self.long_min_excess
            },
            long_min_share: self.long_min_share,
            use_own_baseline: !self.no_own_baseline,
            use_rate: self.use_rate,
            moderation_dedup_ms: (self.moderation_dedup_hours * 3_600_000.0) as i64,
            lockstep_min_shared: self.lockstep_min_shared,
            creation_trigger: !self.no_creation_trigger,
            newcomer_max_age_ms: (m * 60_000.0) as i64,
            newcomer_batch_min: self.newcomer_batch_min,
            max_record_bytes,
            pending_max_bytes: usize::try_from(self.pending_max_bytes).unwrap_or(usize::MAX),
            ..DetectorConfig::default()
        };
        let ttl = parse_duration("decision-ttl", &self.decision_ttl)?;
        Ok(PipelineConfig {
            decisions: followguard_core::decisions::DecisionConfig {
                ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
                ..Default::default()
            },
            detector: d,
            cache_capacity: self.cache_capacity,
            max_id_bytes,
            clock: followguard_core::timeguard::ClockConfig {
                max_future_skew_ms: i64::from(self.max_future_skew_secs) * 1000,
                confirm: usize::from(self.clock_confirm),
            },
        })
    }
}

/// Raw `serve` flags, as typed. Turned into a [`ServeConfig`] by [`ServeArgs::validate`].
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub topics: TopicArgs,

    /// Detector thresholds (the same flags as `replay`), e.g. from a Kubernetes ConfigMap.
    #[command(flatten)]
    pub detector: DetectorArgs,

    /// Consumer group id; instances with the same id split the input partitions.
    #[arg(
        help_heading = "Kafka",
        long,
        env = "FOLLOWGUARD_GROUP_ID",
        default_value = "followguard"
    )]
    pub group_id: String,

    /// Kafka bootstrap servers of the output topics (alerts, moderation, dead letters),
    /// when they live on another cluster than the input (issue #19): an outage of the
    /// output cluster then pauses input without stopping it at its source. The same
    /// --kafka-option / --kafka-config settings apply to both. Default: --brokers.
    #[arg(help_heading = "Kafka", long, env = "FOLLOWGUARD_OUTPUT_BROKERS")]
    pub output_brokers: Option<String>,

    /// Model file to score followers with.
    #[arg(
        help_heading = "Model",
        long,
        env = "FOLLOWGUARD_MODEL",
        default_value = "models/default.json"
    )]
    pub model: PathBuf,

    /// Refuse to start unless the model file has this sha256 (pins the deployed model).
    #[arg(help_heading = "Model", long, env = "FOLLOWGUARD_MODEL_SHA256")]
    pub model_sha256: Option<String>,

    /// Address of the admin HTTP server (/metrics, /healthz, /readyz, /info).
    #[arg(
        help_heading = "Admin HTTP",
        long,
        env = "FOLLOWGUARD_ADMIN_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    pub admin_addr: String,

    /// How long shutdown may take (finish event, flush, commit) before the process exits anyway.
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_SHUTDOWN_GRACE",
        default_value = "10s"
    )]
    pub shutdown_grace: String,

    /// Issue 21: whether a stopping member leaves its consumer group (a LeaveGroup
    /// request, so its partitions move at once). With `false` it only commits and
    /// disconnects: the group reassigns its partitions when its session times out
    /// (`session.timeout.ms`), as after a crash and as static members
    /// (`group.instance.id`) always do. Set `false` on tansu: a LeaveGroup from the
    /// group's leader during a rebalance wedges tansu's group for good
    /// (docs/state.md, "Rebalance behaviour").
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_LEAVE_GROUP_ON_SHUTDOWN",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub leave_group_on_shutdown: bool,

    /// Events whose output records may be awaiting broker acknowledgement at once; raise for
    /// throughput, lower to bound memory and redelivery after a crash. When the window stays
    /// full (a stalled sink) the input is paused, not the poll loop blocked. The window
    /// must cover one acknowledgement round trip at full rate (about 1 s of input with
    /// tansu's produce latency; BENCHMARKS.md, end to end).
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_MAX_IN_FLIGHT",
        default_value_t = 50_000
    )]
    pub max_in_flight: usize,

    /// Bytes of output records that may await broker acknowledgement at once (issue #19:
    /// memory bounded in bytes, not only events); above it the input is paused as for
    /// `--max-in-flight`. Keep it well under the pod's memory limit.
    #[arg(help_heading = "Processing", long, env = "FOLLOWGUARD_MAX_IN_FLIGHT_BYTES", default_value_t = 256 << 20)]
    pub max_in_flight_bytes: usize,

    /// Extra threads that parse and score fetched records while serve is behind (the
    /// detector stays on the consume loop, in input order); 0 = the loop does everything.
    /// They work only when 16+ records are waiting, so at a steady live rate they idle.
    /// Worth 1 where serve has a spare core: catching up, one helper gave 1.96x with a
    /// free core and 1.10x on a 2-vCPU host shared with the broker (BENCHMARKS.md).
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_PREPARE_THREADS",
        default_value_t = 0
    )]
    pub prepare_threads: usize,

    /// How long a produced record may wait for its acknowledgement before serve logs it as
    /// stalled (a warning, repeated at this interval). Records are never timed
    /// out: librdkafka's idempotent producer retries transient errors itself, in order
    /// (issue #19); the input pauses at --max-in-flight meanwhile, the poll loop goes on.
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_DELIVERY_TIMEOUT",
        default_value = "30s"
    )]
    pub delivery_timeout: String,

    /// Interval of librdkafka statistics (consumer lag per partition).
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_STATS_INTERVAL",
        default_value = "5s"
    )]
    pub stats_interval: String,

    /// /healthz fails when the consume loop has not made progress for this long.
    #[arg(
        help_heading = "Admin HTTP",
        long,
        env = "FOLLOWGUARD_HEALTH_STALE_AFTER",
        default_value = "60s"
    )]
    pub health_stale_after: String,

    /// On partition assignment, re-read this much input (by record time) before the committed
    /// offset with sinks muted, to rebuild detector state. `auto` = the detector's longest
    /// memory (so the rebuilt state equals the lost one); 0s disables the replay.
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_REBUILD_WINDOW",
        default_value = "auto"
    )]
    pub rebuild_window: String,

    /// Most records re-read per partition when rebuilding state (bounds start-up work when
    /// the broker cannot look offsets up by time).
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_REBUILD_MAX_RECORDS",
        default_value_t = 200_000
    )]
    pub rebuild_max_records: i64,

    /// Issue 21 (partial): compacted changelog topic of detector state, with as many
    /// partitions as the input (created so at start when missing). When set, each batch's state changes are produced to it
    /// before the batch's offsets can be stored, and an assigned partition's state is
    /// restored from it (falling back to the input rebuild when it holds nothing).
    /// docs/state.md.
    #[arg(help_heading = "Processing", long, env = "FOLLOWGUARD_CHANGELOG_TOPIC")]
    pub changelog_topic: Option<String>,

    /// Issue 21: how often each partition's full state (every followee, its clocks and
    /// the campaign links) is written to the changelog besides the changes of each batch;
    /// `0s`: with every batch (tests). docs/state.md, "Snapshot cadence".
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_CHANGELOG_SNAPSHOT_EVERY",
        default_value = "10m"
    )]
    pub changelog_snapshot_every: String,

    /// Issue 21: cross-instance campaigns. Internal topic of flagged follows keyed by
    /// follower id (created at start with the input's partition count; its pair stage
    /// uses `<links-topic>-pairs`, one partition). The same consumer group runs the link
    /// stage on its partitions and writes campaign records to `--campaigns-topic`.
    /// docs/state.md, "Cross-instance campaigns".
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_LINKS_TOPIC",
        requires = "campaigns_topic"
    )]
    pub links_topic: Option<String>,

    /// Issue 21: output topic of campaign records (with `--links-topic`).
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_CAMPAIGNS_TOPIC",
        requires = "links_topic"
    )]
    pub campaigns_topic: Option<String>,

    /// Issue 21: byte budget of each link-stage state (the follower stage of each link
    /// partition, the campaign graph); what would exceed it is dropped and counted.
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_LINKS_MAX_BYTES",
        default_value_t = 64 << 20
    )]
    pub links_max_bytes: usize,

    /// Issue 21: each link-stage partition's state is written whole to its state topic
    /// (`<links-topic>-state`, `<links-topic>-pairs-state`) once it processed this many
    /// records since its last snapshot, so a restore reads one snapshot plus fewer than
    /// this many records. docs/state.md, "Cross-instance campaigns".
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_LINKS_SNAPSHOT_RECORDS",
        default_value_t = 100_000
    )]
    pub links_snapshot_records: u64,

    /// Issue 21: a partition's full state is also written once this many changelog
    /// records were logged for it since its last snapshot, so a restore (which reads from
    /// the latest complete snapshot) reads at most about one snapshot plus this many
    /// records plus one batch. docs/state.md, "Snapshot cadence".
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_CHANGELOG_SNAPSHOT_RECORDS",
        default_value_t = 200_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub changelog_snapshot_records: u64,

    /// Issue 21: the changelog's record cache (Kafka Streams' `commit.interval.ms`): the
    /// state a batch changed is kept as dirty keys and logged at most this often, one
    /// record per key however many batches changed it; the input offsets of the batches
    /// it covers are stored only once that flush is acknowledged. `0s`: every batch.
    /// docs/state.md, "The record cache".
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_CHANGELOG_FLUSH_EVERY",
        default_value = "1s"
    )]
    pub changelog_flush_every: String,

    /// Issue 21: byte bound of the record cache (Kafka Streams'
    /// `cache.max.bytes.buffering`): once the records the next flush would write (dirty
    /// keys × the last flush's mean record size) reach it, the cache is flushed early.
    #[arg(
        help_heading = "Processing",
        long,
        env = "FOLLOWGUARD_CHANGELOG_CACHE_BYTES",
        default_value_t = 10 << 20
    )]
    pub changelog_cache_bytes: usize,

    /// Optional Alertmanager-compatible webhook (POST /api/v2/alerts); best effort.
    #[arg(help_heading = "Webhook", long, env = "FOLLOWGUARD_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Per-request timeout of the webhook.
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_TIMEOUT",
        default_value = "5s"
    )]
    pub webhook_timeout: String,

    /// Attempts per alert batch before the webhook drops it.
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_RETRIES",
        default_value_t = 3
    )]
    pub webhook_retries: u32,

    /// Alerts the webhook may have queued; beyond that new alerts are dropped (and counted).
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_QUEUE",
        default_value_t = 1000
    )]
    pub webhook_queue: usize,

    /// Every open alert is re-posted this often with `endsAt` four intervals ahead, so
    /// Alertmanager keeps it firing (keep it below Alertmanager's resolve_timeout).
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_RESEND_INTERVAL",
        default_value = "1m"
    )]
    pub webhook_resend_interval: String,

    /// File holding a bearer token for the webhook (`Authorization: Bearer …`; trailing
    /// newline ignored). Prefer this or FOLLOWGUARD_WEBHOOK_BEARER_TOKEN to a URL password.
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_BEARER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub webhook_bearer_token_file: Option<PathBuf>,

    /// Bearer token for the webhook, from the environment only (not a flag: command lines
    /// are visible to every local user).
    #[arg(
        help_heading = "Webhook",
        long = "webhook-bearer-token-env-only",
        env = "FOLLOWGUARD_WEBHOOK_BEARER_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub webhook_bearer_token: Option<String>,

    /// File holding `user:password` for webhook basic auth (trailing newline ignored).
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_BASIC_AUTH_FILE",
        value_name = "FILE"
    )]
    pub webhook_basic_auth_file: Option<PathBuf>,

    /// PEM file of extra CA certificates the webhook trusts (besides the built-in webpki
    /// roots), e.g. a private CA or a self-signed receiver.
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_WEBHOOK_CA_FILE",
        value_name = "FILE"
    )]
    pub webhook_ca_file: Option<PathBuf>,

    /// Public base URL of the admin port's evidence pages (e.g.
    /// https://followguard.example.com); webhook alerts link `<URL>/alerts/<id>` as
    /// generatorURL. Unset: no generatorURL.
    #[arg(
        help_heading = "Admin HTTP",
        long,
        env = "FOLLOWGUARD_PUBLIC_URL",
        value_name = "URL"
    )]
    pub public_url: Option<String>,

    /// File holding the token the evidence pages (/alerts, /api/alerts, …; flagged
    /// followers' ids, names and bios) require, as `Authorization: Bearer <token>` or the
    /// basic-auth password. /metrics, /healthz, /readyz, /info stay open. Unset (and no
    /// FOLLOWGUARD_ADMIN_TOKEN): the pages are open to whoever reaches the admin port.
    #[arg(
        help_heading = "Admin HTTP",
        long,
        env = "FOLLOWGUARD_ADMIN_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub admin_token_file: Option<PathBuf>,

    /// The evidence pages' token, from the environment only (see --admin-token-file).
    #[arg(
        help_heading = "Admin HTTP",
        long = "admin-token-env-only",
        env = "FOLLOWGUARD_ADMIN_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Runbook link put on webhook alerts (the `runbook_url` annotation).
    #[arg(
        help_heading = "Webhook",
        long,
        env = "FOLLOWGUARD_RUNBOOK_URL",
        default_value = DEFAULT_RUNBOOK_URL,
        value_name = "URL"
    )]
    pub runbook_url: String,

    /// Log format.
    #[arg(
        help_heading = "Logging",
        long,
        env = "FOLLOWGUARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Issue 24: the input's payload format.
    #[command(flatten)]
    pub format: followguard_train::input::FormatArgs,

    /// Compacted topic of profiles keyed by account id (the profile table of
    /// `--input-format activitypub` / `jetstream`). Every instance reads it in full, from
    /// the beginning, before consuming follows, and keeps reading it (a GlobalKTable:
    /// profiles are keyed by follower, follows by followee, so they are not
    /// co-partitioned). A record with no value (tombstone) deletes the account.
    #[arg(help_heading = "Input", long, env = "FOLLOWGUARD_PROFILE_TOPIC")]
    pub profile_topic: Option<String>,

    /// How long a follow whose follower's profile is not in the table yet may wait for it,
    /// in processing time from the record's broker timestamp (the profile comes from
    /// another producer: its event time says nothing about when it reaches us). Past it
    /// the follow is dead-lettered as `unknown_profile`. Raise it when the platform
    /// publishes profiles late; it holds the input while it waits.
    #[arg(
        help_heading = "Input",
        long,
        env = "FOLLOWGUARD_PROFILE_WAIT",
        default_value = "2s"
    )]
    pub profile_wait: String,

    /// Byte budget of the profile table; past it the profiles updated longest ago go.
    #[arg(help_heading = "Input", long, env = "FOLLOWGUARD_PROFILE_TABLE_BYTES", default_value_t = followguard_core::profiles::DEFAULT_MAX_BYTES)]
    pub profile_table_bytes: usize,

    /// Topic of moderators' decisions (issue 24): `{"verdict": "human" | "bot" |
    /// "false_alert" | "confirmed", "follower_id"?, "followee_id"?, "alert_id"?, "who",
    /// "at"}`. Every instance reads it in full from the beginning and keeps reading it:
    /// a cleared follower is not flagged again, a false alert's followee is not alerted
    /// for its next burst, confirmed bots count as bought (`--decision-ttl`).
    #[arg(help_heading = "Input", long, env = "FOLLOWGUARD_DECISIONS_TOPIC")]
    pub decisions_topic: Option<String>,

    /// A candidate model scored beside the live one (issue 24): its score goes on
    /// moderation records (`shadow_score`) and into
    /// `followguard_shadow_follows_total{live,shadow}` (where the two agree and where
    /// they do not); it never flags, alerts or moderates. Costs one more (uncached)
    /// score per event on the consume loop.
    #[arg(help_heading = "Model", long, env = "FOLLOWGUARD_SHADOW_MODEL")]
    pub shadow_model: Option<PathBuf>,
}

/// Issue 24: the input format and the profile table of `serve`.
#[derive(Debug, Clone)]
pub struct InputConfig {
    pub format: followguard_core::adapt::InputFormat,
    pub profile_topic: Option<String>,
    pub profile_wait: Duration,
    pub profile_table_bytes: usize,
    pub decisions_topic: Option<String>,
    pub shadow_model: Option<PathBuf>,
}

/// A `key=value` librdkafka property; `Debug` redacts the value of secret-looking keys.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOption {
    pub key: String,
    pub value: String,
}

impl KafkaOption {
    pub fn is_secret(&self) -> bool {
        let k = self.key.to_ascii_lowercase();
        [
            "password",
            "secret",
            "token",
            ".key",
            "key.pem",
            "oauthbearer.config",
            "jaas",
        ]
        .iter()
        .any(|s| k.contains(s))
    }
}

impl fmt::Debug for KafkaOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_secret() {
            write!(f, "{}=<redacted>", self.key)
        } else {
            write!(f, "{}={}", self.key, self.value)
        }
    }
}

/// Validated Kafka connection settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub options: Vec<KafkaOption>,
}

/// Where the runbook is published (issue #23: absolute links; deploy/prometheus/rules.yml
/// uses the same base, see deploy/README.md to change it).
pub const DEFAULT_RUNBOOK_URL: &str =
    "https://runbooks.example.com/followguard/runbook#followerpurchasesuspected";

/// How the webhook authenticates. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookAuth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookAuth::None => f.write_str("None"),
            WebhookAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            WebhookAuth::Basic { user, .. } => write!(f, "Basic({user}:<redacted>)"),
        }
    }
}

/// Validated webhook settings. `Debug` redacts credentials in the URL and the auth.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    pub queue: usize,
    /// Issue #23: open alerts are re-posted this often.
    pub resend_interval: Duration,
    pub auth: WebhookAuth,
    /// Extra trusted CA certificates (PEM), read at start.
    pub ca_pem: Option<Vec<u8>>,
    /// `--public-url` without a trailing `/`.
    pub public_url: Option<String>,
    pub runbook_url: String,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("queue", &self.queue)
            .field("resend_interval", &self.resend_interval)
            .field("auth", &self.auth)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("public_url", &self.public_url)
            .field("runbook_url", &self.runbook_url)
            .finish()
    }
}

/// A secret file's contents without the trailing newline; empty or unreadable is an error.
pub fn read_secret_file(flag: &str, path: &std::path::Path) -> Result<String, ConfigError> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("--{flag}: reading {}: {e}", path.display())))?;
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(ConfigError(format!(
            "--{flag}: {} is empty",
            path.display()
        )));
    }
    Ok(s)
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Issue 21: the link stage's topics and budget (`serve --links-topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinksConfig {
    pub links_topic: String,
    /// `<links-topic>-pairs`: the pair counts, one partition.
    pub pairs_topic: String,
    pub campaigns_topic: String,
    pub max_bytes: usize,
    /// `--links-snapshot-records`.
    pub snapshot_records: u64,
}

impl LinksConfig {
    /// The link stage on `links_topic` (its pair counts on `<links-topic>-pairs`),
    /// writing campaign records to `campaigns_topic`.
    pub fn new(
        links_topic: &str,
        campaigns_topic: &str,
        max_bytes: usize,
        snapshot_records: u64,
    ) -> LinksConfig {
        LinksConfig {
            links_topic: links_topic.to_string(),
            pairs_topic: format!("{links_topic}-pairs"),
            campaigns_topic: campaigns_topic.to_string(),
            max_bytes,
            snapshot_records,
        }
    }

    /// The state (snapshot) topic of the links partitions, or of the pairs partition.
    pub fn state_topic(&self, pairs: bool) -> String {
        if pairs {
            format!("{}-state", self.pairs_topic)
        } else {
            format!("{}-state", self.links_topic)
        }
    }
}

/// Validated `serve` configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Issue #23: the evidence pages' token (`--admin-token-file` / FOLLOWGUARD_ADMIN_TOKEN).
    pub admin_token: Option<Secret>,
    pub kafka: KafkaConfig,
    /// Issue #19: the cluster of the output topics (`--output-brokers`; by default the
    /// input's), with the same client options.
    pub output_kafka: KafkaConfig,
    pub input_topic: String,
    pub alerts_topic: String,
    pub moderation_topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    pub model: PathBuf,
    pub model_sha256: Option<String>,
    pub admin_addr: SocketAddr,
    pub shutdown_grace: Duration,
    /// Issue 21: `--leave-group-on-shutdown`.
    pub leave_group_on_shutdown: bool,
    pub max_in_flight: usize,
    /// Issue #19: byte budget of unacknowledged output records.
    pub max_in_flight_bytes: usize,
    /// Helper threads for parsing and scoring (`--prepare-threads`).
    pub prepare_threads: usize,
    pub delivery_timeout: Duration,
    pub stats_interval: Duration,
    pub health_stale_after: Duration,
    /// `None` = `auto` (the detector's state horizon, decided by `serve`).
    pub rebuild_window: Option<Duration>,
    pub rebuild_max_records: i64,
    /// Issue 21: `--changelog-topic`.
    pub changelog_topic: Option<String>,
    /// Issue 21: `--changelog-snapshot-every`.
    pub changelog_snapshot_every: Duration,
    /// Issue 21: `--links-topic`, `--campaigns-topic` (both or neither) and
    /// `--links-max-bytes`.
    pub links: Option<LinksConfig>,
    /// Issue 21: `--changelog-snapshot-records`.
    pub changelog_snapshot_records: u64,
    /// Issue 21: `--changelog-flush-every`, `--changelog-cache-bytes` (the record cache).
    pub changelog_flush_every: Duration,
    pub changelog_cache_bytes: usize,
    pub webhook: Option<WebhookConfig>,
    pub log_format: LogFormat,
    /// Detector thresholds and score-cache size.
    pub pipeline: PipelineConfig,
    /// Issue 24: input format and profile table.
    pub input: InputConfig,
}

/// Upper bound of `--prepare-threads`.
pub const MAX_PREPARE_THREADS: usize = 16;
/// Largest `--webhook-queue` (alerts waiting for the webhook; the channel allocates it).
pub const MAX_WEBHOOK_QUEUE: usize = 1_000_000;

/// Parses `500ms`, `10s`, `2m`, `1h`, `7d` (or a bare number of seconds).
pub fn parse_duration(flag: &str, s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    let bad = || {
        ConfigError(format!(
            "--{flag}: {s:?} is not a duration (examples: 500ms, 10s, 2m, 1h, 7d)"
        ))
    };
    let (num, mult_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1u64)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000)
    } else if let Some(n) = t.strip_suffix('d') {
        (n, 86_400_000)
    } else {
        (t, 1_000)
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    n.checked_mul(mult_ms)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

fn check_topic(flag: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "--{flag}: {name:?} is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])"
        )))
    }
}

/// Hides `user:password@` in a URL.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://<redacted>@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

impl KafkaArgs {
    pub fn validate(&self) -> Result<KafkaConfig, ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError("--brokers must not be empty".into()));
        }
        // The file first; a --kafka-option with the same key replaces its entry.
        let mut options = match &self.kafka_config {
            Some(p) => read_kafka_config(p)?,
            None => Vec::new(),
        };
        for raw in &self.kafka_options {
            if let Some(o) = parse_kafka_option(raw, "--kafka-option")? {
                match options.iter_mut().find(|x| x.key == o.key) {
                    Some(x) => *x = o,
                    None => options.push(o),
                }
            }
        }
        Ok(KafkaConfig {
            brokers: self.brokers.trim().to_string(),
            options,
        })
    }
}

impl TopicArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_topic("input-topic", &self.input_topic)?;
        check_topic("alerts-topic", &self.alerts_topic)?;
        check_topic("moderation-topic", &self.moderation_topic)?;
        check_topic("dlq-topic", &self.dlq_topic)?;
        let names = [
            &self.input_topic,
            &self.alerts_topic,
            &self.moderation_topic,
            &self.dlq_topic,
        ];
        for (i, a) in names.iter().enumerate() {
            if names[i + 1..].contains(a) {
                return Err(ConfigError(format!(
                    "topic {a:?} is used for two purposes; input, alerts, moderation and \
                     dead-letter topics must all differ"
                )));
            }
        }
        Ok(())
    }
}

impl ServeArgs {
    /// The webhook's credentials: at most one of the bearer token (file or environment)
    /// and the basic-auth file.
    fn webhook_auth(&self) -> Result<WebhookAuth, ConfigError> {
        let env_token = self
            .webhook_bearer_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let given = [
            self.webhook_bearer_token_file.is_some(),
            env_token.is_some(),
            self.webhook_basic_auth_file.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(ConfigError(
                "give one of --webhook-bearer-token-file, FOLLOWGUARD_WEBHOOK_BEARER_TOKEN and \
                 --webhook-basic-auth-file"
                    .into(),
            ));
        }
        if let Some(p) = &self.webhook_bearer_token_file {
            return Ok(WebhookAuth::Bearer(read_secret_file(
                "webhook-bearer-token-file",
                p,
            )?));
        }
        if let Some(t) = env_token {
            return Ok(WebhookAuth::Bearer(t.to_string()));
        }
        if let Some(p) = &self.webhook_basic_auth_file {
            let s = read_secret_file("webhook-basic-auth-file", p)?;
            let Some((user, password)) = s.split_once(':') else {
                return Err(ConfigError(format!(
                    "--webhook-basic-auth-file: {} must hold user:password",
                    p.display()
                )));
            };
            return Ok(WebhookAuth::Basic {
                user: user.to_string(),
                password: password.to_string(),
            });
        }
        Ok(WebhookAuth::None)
    }

    /// `--public-url` without its trailing `/`; it must be an http(s) URL.
    pub fn public_url(&self) -> Result<Option<String>, ConfigError> {
        match self.public_url.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Ok(Some(u.trim_end_matches('/').to_string()))
            }
            Some(u) => Err(ConfigError(format!(
                "--public-url: {} must start with http:// or https://",
                redact_url(u)
            ))),
        }
    }

    /// Checks every flag and converts it; the first problem found is returned.
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        let kafka = self.kafka.validate()?;
        let output_kafka = match self.output_brokers.as_deref().map(str::trim) {
            None => kafka.clone(),
            Some("") => return Err(ConfigError("--output-brokers must not be empty".into())),
            Some(b) => KafkaConfig {
                brokers: b.to_string(),
                options: kafka.options.clone(),
            },
        };
        self.topics.validate()?;
        if self.group_id.trim().is_empty() {
            return Err(ConfigError("--group-id must not be empty".into()));
        }
        let admin_addr: SocketAddr = self.admin_addr.parse().map_err(|_| {
            ConfigError(format!(
                "--admin-addr: {:?} is not an ip:port address",
                self.admin_addr
            ))
        })?;
        if let Some(sha) = &self.model_sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError(
                    "--model-sha256 must be 64 hexadecimal characters".into(),
                ));
            }
        }
        if let Some(t) = &self.changelog_topic {
            check_topic("changelog-topic", t)?;
        }
        if let Some(t) = &self.links_topic {
            check_topic("links-topic", t)?;
        }
        if let Some(t) = &self.campaigns_topic {
            check_topic("campaigns-topic", t)?;
        }
        if self.rebuild_max_records < 0 {
            return Err(ConfigError(
                "--rebuild-max-records must not be negative".into(),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError("--max-in-flight must be at least 1".into()));
        }
        if self.prepare_threads > MAX_PREPARE_THREADS {
            return Err(ConfigError(format!(
                "--prepare-threads must be at most {MAX_PREPARE_THREADS} (the detector, \
                 on one thread, is the limit beyond a few)"
            )));
        }
        let shutdown_grace = parse_duration("shutdown-grace", &self.shutdown_grace)?;
        let delivery_timeout = parse_duration("delivery-timeout", &self.delivery_timeout)?;
        if delivery_timeout < Duration::from_secs(1) || delivery_timeout > Duration::from_secs(240)
        {
            return Err(ConfigError(
                "--delivery-timeout must be between 1s and 240s (how long a record may wait \
                 for its acknowledgement before it is logged as stalled)"
                    .into(),
            ));
        }
        let stats_interval = parse_duration("stats-interval", &self.stats_interval)?;
        if stats_interval < Duration::from_millis(100) {
            return Err(ConfigError(
                "--stats-interval must be at least 100ms".into(),
            ));
        }
        let health_stale_after = parse_duration("health-stale-after", &self.health_stale_after)?;
        let rebuild_window = match self.rebuild_window.trim() {
            "auto" => None,
            w => Some(parse_duration("rebuild-window", w)?),
        };
        let webhook = match &self.webhook_url {
            None => None,
            Some(u) if u.trim().is_empty() => None,
            Some(u) => {
                let u = u.trim();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(ConfigError(format!(
                        "--webhook-url: {} must start with http:// or https://",
                        redact_url(u)
                    )));
                }
                if self.webhook_queue == 0 || self.webhook_queue > MAX_WEBHOOK_QUEUE {
                    return Err(ConfigError(format!(
                        "--webhook-queue must be between 1 and {MAX_WEBHOOK_QUEUE}"
                    )));
                }
                let resend_interval =
                    parse_duration("webhook-resend-interval", &self.webhook_resend_interval)?;
                if resend_interval < Duration::from_millis(100) {
                    return Err(ConfigError(
                        "--webhook-resend-interval must be at least 100ms".into(),
                    ));
                }
                Some(WebhookConfig {
                    url: u.to_string(),
                    timeout: parse_duration("webhook-timeout", &self.webhook_timeout)?,
                    retries: self.webhook_retries.max(1),
                    queue: self.webhook_queue,
                    resend_interval,
                    auth: self.webhook_auth()?,
                    ca_pem: match &self.webhook_ca_file {
                        None => None,
                        Some(p) => Some(std::fs::read(p).map_err(|e| {
                            ConfigError(format!("--webhook-ca-file: reading {}: {e}", p.display()))
                        })?),
                    },
                    public_url: self.public_url()?,
                    runbook_url: self.runbook_url.trim().to_string(),
                })
            }
        };
        let env_admin_token = self
            .admin_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let admin_token = match (&self.admin_token_file, env_admin_token) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "give one of --admin-token-file and FOLLOWGUARD_ADMIN_TOKEN".into(),
                ))
            }
            (Some(p), None) => Some(Secret(read_secret_file("admin-token-file", p)?)),
            (None, Some(t)) => Some(Secret(t.to_string())),
            (None, None) => None,
        };
        let format = self.format.input_format;
        let profile_topic = self.profile_topic.clone().filter(|t| !t.trim().is_empty());
        if let Some(t) = &profile_topic {
            check_topic("profile-topic", t)?;
        }
        if format.needs_profiles() && profile_topic.is_none() {
            return Err(ConfigError(format!(
                "--input-format {} carries no profiles: give the profile table with --profile-topic",
                format.name()
            )));
        }
        let decisions_topic = self
            .decisions_topic
            .clone()
            .filter(|t| !t.trim().is_empty());
        if let Some(t) = &decisions_topic {
            check_topic("decisions-topic", t)?;
        }
        let input = InputConfig {
            shadow_model: self.shadow_model.clone(),
            decisions_topic,
            format,
            profile_topic,
            profile_wait: parse_duration("profile-wait", &self.profile_wait)?,
            profile_table_bytes: self.profile_table_bytes,
        };
        Ok(ServeConfig {
            admin_token,
            input,
            kafka,
            output_kafka,
            pipeline: self.detector.pipeline_config()?,
            input_topic: self.topics.input_topic.clone(),
            alerts_topic: self.topics.alerts_topic.clone(),
            moderation_topic: self.topics.moderation_topic.clone(),
            dlq_topic: self.topics.dlq_topic.clone(),
            group_id: self.group_id.trim().to_string(),
            model: self.model.clone(),
            model_sha256: self.model_sha256.as_ref().map(|s| s.to_ascii_lowercase()),
            admin_addr,
            shutdown_grace,
            leave_group_on_shutdown: self.leave_group_on_shutdown,
            max_in_flight: self.max_in_flight,
            max_in_flight_bytes: self.max_in_flight_bytes,
            prepare_threads: self.prepare_threads,
            delivery_timeout,
            stats_interval,
            health_stale_after,
            rebuild_window,
            rebuild_max_records: self.rebuild_max_records,
            changelog_topic: self.changelog_topic.clone(),
            changelog_snapshot_every: parse_duration(
                "changelog-snapshot-every",
                &self.changelog_snapshot_every,
            )?,
            links: match (&self.links_topic, &self.campaigns_topic) {
                (Some(l), Some(c)) => Some(LinksConfig::new(
                    l,
                    c,
                    self.links_max_bytes,
                    self.links_snapshot_records,
                )),
                _ => None,
            },
            changelog_snapshot_records: self.changelog_snapshot_records,
            changelog_flush_every: parse_duration(
                "changelog-flush-every",
                &self.changelog_flush_every,
            )?,
            changelog_cache_bytes: self.changelog_cache_bytes,
            webhook,
            log_format: self.log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(extra);
        T::try_parse_from(v).expect("flags parse").serve
    }

    /// Issue #23: the detector flags' defaults (shown by --help) are the detector's.
    #[test]
    fn detector_flag_defaults_are_the_detector_defaults() {
        let p = args(&[]).detector.pipeline_config().expect("valid");
        assert_eq!(
            format!("{:?}", p.detector),
            format!("{:?}", DetectorConfig::default())
        );
    }

    /// Issue #23: a client.properties file; --kafka-option overrides it key by key.
    #[test]
    fn kafka_config_file_and_precedence() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("client.properties");
        std::fs::write(
            &f,
            "# SASL\n! also a comment\n\nsecurity.protocol = SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\nsasl.password=s3cret=with=equals\n\
             compression.type=zstd\n",
        )
        .expect("write");
        let path = f.to_str().expect("utf-8 path");
        let cfg = args(&[
            "--kafka-config",
            path,
            "--kafka-option",
            "compression.type=lz4",
            "--kafka-option",
            "client.id=fg",
        ])
        .validate()
        .expect("valid");
        let got: Vec<(&str, &str)> = cfg
            .kafka
            .options
            .iter()
            .map(|o| (o.key.as_str(), o.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.password", "s3cret=with=equals"),
                ("compression.type", "lz4"),
                ("client.id", "fg"),
            ]
        );
        assert!(!format!("{cfg:?}").contains("s3cret"), "password redacted");
        // Errors name the file and line; reserved keys are refused there too.
        std::fs::write(&f, "client.id=a\ngroup.id=x\n").expect("write");
        let e = args(&["--kafka-config", path])
            .validate()
            .expect_err("reserved");
        assert!(
            e.0.contains("line 2") && e.0.contains("group.id"),
            "{}",
            e.0
        );
        std::fs::write(&f, "no separator\n").expect("write");
        let e = args(&["--kafka-config", path])
            .validate()
            .expect_err("bad line");
        assert!(e.0.contains("line 1"), "{}", e.0);
        let e = args(&["--kafka-config", "/nonexistent/client.properties"])
            .validate()
            .expect_err("missing file");
        assert!(e.0.contains("--kafka-config"), "{}", e.0);
    }

    /// Issue #23: webhook credentials from a file or the environment, one at a time;
    /// the admin token likewise.
    #[test]
    fn webhook_auth_and_admin_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let tok = dir.path().join("token");
        std::fs::write(&tok, "abc123\n").expect("write");
        let basic = dir.path().join("basic");
        std::fs::write(&basic, "am:pa:ss\n").expect("write");
        let url = ["--webhook-url", "https://am.example.com/api/v2/alerts"];
        let t = tok.to_str().expect("path");
        let b = basic.to_str().expect("path");
        let w = |extra: &[&str]| {
            let mut v = url.to_vec();
            v.extend_from_slice(extra);
            args(&v).validate()
        };
        let cfg = w(&["--webhook-bearer-token-file", t]).expect("bearer");
        let wh = cfg.webhook.expect("webhook");
        assert_eq!(wh.auth, WebhookAuth::Bearer("abc123".into()));
        assert!(!format!("{wh:?}").contains("abc123"));
        let cfg = w(&["--webhook-basic-auth-file", b]).expect("basic");
        assert_eq!(
            cfg.webhook.expect("webhook").auth,
            WebhookAuth::Basic {
                user: "am".into(),
                password: "pa:ss".into()
            }
        );
        assert!(w(&[
            "--webhook-bearer-token-file",
            t,
            "--webhook-basic-auth-file",
            b
        ])
        .is_err());
        assert!(w(&["--webhook-ca-file", "/nonexistent.pem"]).is_err());
        assert!(w(&["--webhook-resend-interval", "10ms"]).is_err());
        let cfg = w(&["--public-url", "https://fg.example.com/"]).expect("public url");
        assert_eq!(
            cfg.webhook.expect("webhook").public_url.as_deref(),
            Some("https://fg.example.com")
        );
        assert!(w(&["--public-url", "fg.example.com"]).is_err());
        let cfg = args(&["--admin-token-file", t]).validate().expect("token");
        assert_eq!(cfg.admin_token, Some(Secret("abc123".into())));
        assert!(!format!("{cfg:?}").contains("abc123"));
    }

    #[test]
    fn defaults_validate() {
        let c = args(&[]).validate().expect("defaults are valid");
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.input_topic, "follows");
        assert!(c.webhook.is_none());
        assert!(c.leave_group_on_shutdown);
        let c = args(&["--leave-group-on-shutdown", "false"])
            .validate()
            .expect("valid");
        assert!(!c.leave_group_on_shutdown);
    }

    /// Issue #19: the record budget must hold a moderation record of the longest ids.
    #[test]
    fn record_budget_must_hold_the_longest_ids() {
        let c = args(&[]).validate().expect("defaults are valid");
        assert_eq!(c.pipeline.detector.max_record_bytes, 65536);
        let e = args(&["--max-id-bytes", "32768"]).validate().unwrap_err();
        assert!(e.0.contains("at least 593920"), "{e}");
        let c = args(&["--max-id-bytes", "32768", "--max-record-bytes", "600000"])
            .validate()
            .expect("valid");
        assert_eq!(c.pipeline.detector.max_record_bytes, 600_000);
        assert_eq!(c.pipeline.max_id_bytes, 32_768);
    }

    /// Issue 21: the changelog flags.
    #[test]
    fn changelog_flags() {
        let c = args(&[]).validate().expect("defaults");
        assert_eq!(c.changelog_topic, None);
        assert_eq!(c.changelog_snapshot_every, Duration::from_secs(600));
        assert_eq!(c.changelog_snapshot_records, 200_000);
        assert_eq!(c.changelog_flush_every, Duration::from_secs(1));
        assert_eq!(c.changelog_cache_bytes, 10 << 20);
        let c = args(&[
            "--changelog-topic",
            "follows-changelog",
            "--changelog-snapshot-every",
            "0s",
            "--changelog-snapshot-records",
            "5000",
            "--changelog-flush-every",
            "250ms",
            "--changelog-cache-bytes",
            "65536",
        ])
        .validate()
        .expect("changelog flags");
        assert_eq!(c.changelog_topic.as_deref(), Some("follows-changelog"));
        assert_eq!(c.changelog_snapshot_every, Duration::ZERO);
        assert_eq!(c.changelog_snapshot_records, 5000);
        assert_eq!(c.changelog_flush_every, Duration::from_millis(250));
        assert_eq!(c.changelog_cache_bytes, 65536);
        assert!(args(&["--changelog-flush-every", "often"])
            .validate()
            .is_err());
        assert!(T::try_parse_from(["t", "--changelog-snapshot-records", "0"]).is_err());
        assert!(args(&["--changelog-topic", "bad topic"])
            .validate()
            .is_err());
        assert!(args(&["--changelog-snapshot-every", "soon"])
            .validate()
            .is_err());
    }

    /// Issue 21: the link-stage flags (both topics or neither; the pairs topic derived).
    #[test]
    fn links_flags() {
        assert_eq!(args(&[]).validate().expect("defaults").links, None);
        let c = args(&[
            "--links-topic",
            "follows-links",
            "--campaigns-topic",
            "campaigns",
            "--links-max-bytes",
            "4096",
            "--links-snapshot-records",
            "500",
        ])
        .validate()
        .expect("links flags");
        assert_eq!(
            c.links,
            Some(LinksConfig {
                links_topic: "follows-links".into(),
                pairs_topic: "follows-links-pairs".into(),
                campaigns_topic: "campaigns".into(),
                max_bytes: 4096,
                snapshot_records: 500,
            })
        );
        let l = c.links.expect("links");
        assert_eq!(l.state_topic(false), "follows-links-state");
        assert_eq!(l.state_topic(true), "follows-links-pairs-state");
        assert!(T::try_parse_from(["t", "--links-topic", "l"]).is_err());
        assert!(T::try_parse_from(["t", "--campaigns-topic", "c"]).is_err());
        assert!(
            args(&["--links-topic", "bad topic", "--campaigns-topic", "c"])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn output_brokers_default_to_the_input_brokers() {
        let c = args(&["--brokers", "in:9092", "--kafka-option", "client.id=x"])
            .validate()
            .expect("valid");
        assert_eq!(c.output_kafka.brokers, "in:9092");
        let c = args(&[
            "--brokers",
            "in:9092",
            "--output-brokers",
            " out:9092,out2:9092 ",
            "--kafka-option",
            "client.id=x",
        ])
        .validate()
        .expect("valid");
        assert_eq!(c.kafka.brokers, "in:9092");
        assert_eq!(c.output_kafka.brokers, "out:9092,out2:9092");
        assert_eq!(c.output_kafka.options.len(), c.kafka.options.len());
        let e = args(&["--output-brokers", " "]).validate().unwrap_err();
        assert!(e.0.contains("--output-brokers"), "{e}");
    }

    #[test]
    fn pending_byte_budget_is_a_flag() {
        let c = args(&[]).validate().expect("defaults are valid");
        assert_eq!(c.pipeline.detector.pending_max_bytes, 128 << 20);
        let c = args(&["--pending-max-bytes", "4096"])
            .validate()
            .expect("valid");
        assert_eq!(c.pipeline.detector.pending_max_bytes, 4096);
        assert!(T::try_parse_from(["t", "--pending-max-bytes", "0"]).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("x", "250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("x", "2m").ok(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_duration("x", "7").ok(), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_duration("x", "2d").ok(),
            Some(Duration::from_secs(172_800))
        );
        let e = parse_duration("shutdown-grace", "soon").unwrap_err();
        assert!(e.0.contains("--shutdown-grace"), "{e}");
    }

    #[test]
    fn kafka_option_must_be_key_value_and_not_reserved() {
        let e = args(&["--kafka-option", "nonsense"])
            .validate()
            .unwrap_err();
        assert!(e.0.contains("key=value"), "{e}");
        let e = args(&["--kafka-option", "enable.auto.offset.store=true"])
            .validate()
            .unwrap_err();
        assert!(e.0.contains("cannot be overridden"), "{e}");
        let c = args(&["--kafka-option", "fetch.wait.max.ms=50"])
            .validate()
            .expect("valid");
        assert_eq!(c.kafka.options[0].key, "fetch.wait.max.ms");
    }

    #[test]
    fn kafka_option_values_may_contain_commas() {
        let c = args(&["--kafka-option", "ssl.cipher.suites=A,B"])
            .validate()
            .expect("valid");
        assert_eq!(c.kafka.options.len(), 1);
        assert_eq!(c.kafka.options[0].value, "A,B");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = args(&[
            "--kafka-option",
            "sasl.password=hunter2",
            "--kafka-option",
            "sasl.username=bob",
            "--webhook-url",
            "http://u:pw@am.local:9093/api/v2/alerts",
        ])
        .validate()
        .expect("valid");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("u:pw"), "{dbg}");
        assert!(dbg.contains("sasl.username=bob"), "{dbg}");
        assert!(dbg.contains("am.local:9093"), "{dbg}");
    }

    #[test]
    fn bad_values_give_flag_named_errors() {
        for (flags, needle) in [
            (vec!["--admin-addr", "nowhere"], "--admin-addr"),
            (vec!["--input-topic", "bad topic"], "--input-topic"),
            (vec!["--alerts-topic", "follows"], "two purposes"),
            (vec!["--model-sha256", "abc"], "--model-sha256"),
            (vec!["--delivery-timeout", "10m"], "--delivery-timeout"),
            (vec!["--webhook-url", "ftp://x"], "--webhook-url"),
            (vec!["--max-in-flight", "0"], "--max-in-flight"),
            (vec!["--prepare-threads", "17"], "--prepare-threads"),
            (vec!["--cache-capacity", "268435457"], "--cache-capacity"),
            (
                vec![
                    "--webhook-url",
                    "http://am:9093/api/v2/alerts",
                    "--webhook-queue",
                    "2305843009213693952",
                ],
                "--webhook-queue",
            ),
        ] {
            let e = args(&flags).validate().unwrap_err();
            assert!(e.0.contains(needle), "{flags:?}: {e}");
        }
    }
}
