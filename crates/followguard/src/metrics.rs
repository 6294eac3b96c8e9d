//! Prometheus metrics: the only module that registers metrics. One [`Metrics`] struct on
//! an explicit [`Registry`] (no globals, so every test gets a fresh one), with named
//! methods; label values come only from bounded enums, never from account ids.

use crate::sink::Sink;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;

/// What happened to one input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Parsed and scored below the suspicion threshold.
    Clean,
    /// Parsed and scored at or above the suspicion threshold.
    Suspicious,
    /// Could not be parsed; dead-lettered.
    Rejected,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Clean => "clean",
            EventOutcome::Suspicious => "suspicious",
            EventOutcome::Rejected => "rejected",
        }
    }
    const ALL: [EventOutcome; 3] = [
        EventOutcome::Clean,
        EventOutcome::Suspicious,
        EventOutcome::Rejected,
    ];
}

/// Why the webhook sink gave up on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDrop {
    /// The bounded queue was full (the receiver is slower than the alert rate).
    QueueFull,
    /// Every retry failed (timeout, connection error, redirect or non-2xx answer).
    Failed,
    /// Posted once but not kept for resending: `webhook::MAX_TRACKED` alerts already open.
    Untracked,
}

impl WebhookDrop {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookDrop::QueueFull => "queue_full",
            WebhookDrop::Failed => "failed",
            WebhookDrop::Untracked => "untracked",
        }
    }
    const ALL: [WebhookDrop; 3] = [
        WebhookDrop::QueueFull,
        WebhookDrop::Failed,
        WebhookDrop::Untracked,
    ];
}

/// How one webhook HTTP request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// A 2xx answer.
    Success,
    /// A 3xx answer: redirects are never followed.
    Redirect,
    /// A 4xx answer (a wrong token is a 401 or 403).
    Rejected,
    /// A 5xx (or other non-2xx) answer.
    ServerError,
    Timeout,
    /// Connection or TLS handshake failed (an untrusted certificate lands here).
    Connect,
    Error,
}

impl WebhookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Success => "success",
            WebhookResult::Redirect => "redirect",
            WebhookResult::Rejected => "rejected",
            WebhookResult::ServerError => "server_error",
            WebhookResult::Timeout => "timeout",
            WebhookResult::Connect => "connect",
            WebhookResult::Error => "error",
        }
    }
    pub const ALL: [WebhookResult; 7] = [
        WebhookResult::Success,
        WebhookResult::Redirect,
        WebhookResult::Rejected,
        WebhookResult::ServerError,
        WebhookResult::Timeout,
        WebhookResult::Connect,
        WebhookResult::Error,
    ];
}

/// Issue #19: bytes held by each store of state, for `followguard_state_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateBytes {
    /// The detector (`MemoryReport::total_bytes`, id bytes included).
    pub detector: usize,
    /// The web view's evidence store.
    pub evidence: usize,
    /// Every follower-score cache (the pipeline's and the prepare helpers').
    pub score_cache: usize,
    /// The profile table (`--profile-topic`; 0 without one).
    pub profiles: usize,
}

impl StateBytes {
    pub const STORES: [&'static str; 4] = ["detector", "evidence", "score_cache", "profiles"];

    fn by_store(self) -> [(&'static str, usize); 4] {
        [
            ("detector", self.detector),
            ("evidence", self.evidence),
            ("score_cache", self.score_cache),
            ("profiles", self.profiles),
        ]
    }
}

/// Partition assignment changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceKind {
    Assign,
    Revoke,
}

impl RebalanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceKind::Assign => "assign",
            RebalanceKind::Revoke => "revoke",
        }
    }
}

/// Issue #21: which of `serve`'s group consumers a poll gap belongs to (the
/// `consumer` label of `followguard_consumer_poll_gap_seconds`): each is a member of the
/// group, evicted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupConsumer {
    /// The consume loop's consumer of the input topic.
    Input,
    /// The link stage's consumer of the links and pairs topics (`serve/links.rs`).
    Links,
}

impl GroupConsumer {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupConsumer::Input => "input",
            GroupConsumer::Links => "links",
        }
    }
}

/// Every metric the service exports. Cheap to clone (handles are reference counted).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    events_by_outcome: HashMap<&'static str, IntCounter>,
    rejected: IntCounterVec,
    follower_score: Histogram,
    suspicious_follows: IntCounter,
    /// Issue #23: follow events (not unfollows), the suspicious share's denominator.
    follows: IntCounter,
    alerts: IntCounterVec,
    moderation_records: IntCounter,
    /// Issue #20: flagged follows whose verdict was withheld (follower too new).
    judgment_withheld: IntCounter,
    dead_letter_records: IntCounterVec,
    processing_duration: Histogram,
    event_age: Histogram,
    tracked_followees: IntGauge,
    consumer_lag: IntGaugeVec,
    assigned_partitions: IntGauge,
    rebalances: IntCounterVec,
    replayed_events: IntCounter,
    suppressed_opens: IntCounter,
    producer_renewals: IntCounter,
    input_pauses: IntCounter,
    delivery_failures: IntCounterVec,
    records_produced: IntCounterVec,
    webhook_drops: IntCounterVec,
    webhook_sent: IntCounter,
    /// Issue #23: webhook HTTP requests by result, and their duration.
    webhook_requests: IntCounterVec,
    webhook_duration: Histogram,
    /// Issue #23: open alerts the webhook resends.
    webhook_tracked: IntGauge,
    /// Issue #23: alerts open in the detector.
    open_alerts: IntGauge,
    /// Issue #23: follower-score cache lookups (totals of every cache of the process).
    score_cache_hits: IntCounter,
    score_cache_misses: IntCounter,
    /// Issue #23: errors the Kafka consumer reported, and failed offset commits.
    consumer_errors: IntCounter,
    commit_errors: IntCounter,
    last_progress: Gauge,
    /// Issue #19: partition-clock decisions (clamped, jumped, reanchored).
    event_time_adjustments: IntCounterVec,
    /// Issue #19: records the broker refused for good, by sink and reason.
    produce_refused: IntCounterVec,
    /// Issue #19: bytes of output records awaiting acknowledgement.
    in_flight_bytes: IntGauge,
    /// Issue #21: state restore from the changelog topic.
    changelog: ChangelogMetrics,
    /// Issue #21: partitions moved by rebalances, and revoked partitions' state flush.
    moves: RebalanceMetrics,
    /// Issue #19: bytes of stored state by store, and flagged follows not remembered
    /// because the pending-follows byte budget was full.
    state_bytes: IntGaugeVec,
    pending_refused: IntCounter,
    /// Issue 24: input formats, the profile table.
    pub input: InputMetrics,
    /// Issue 21: the follower-keyed link stage (cross-instance campaigns).
    pub links: LinkMetrics,
    /// The model identity gauge (relabelled on a live reload, issue 24).
    model_info: GaugeVec,
}

/// Issue 21: the link stage (serve/links.rs): what it read, emitted, dropped and holds.
#[derive(Clone)]
pub struct LinkMetrics {
    consumed: IntCounterVec,
    campaigns: IntCounter,
    dropped: IntCounterVec,
    rebuilt: IntCounter,
    snapshot: IntCounterVec,
    bytes: IntGaugeVec,
}

impl LinkMetrics {
    /// Link-stage topics by label value.
    pub const TOPICS: [&'static str; 2] = ["links", "pairs"];
    /// Why a link-stage record was dropped.
    pub const DROPPED: [&'static str; 3] = ["duplicate", "over_budget", "corrupt"];
    /// Link-stage stores.
    pub const STORES: [&'static str; 2] = ["followers", "graph"];
    /// What happened to link-stage snapshot records.
    pub const SNAPSHOT_OPS: [&'static str; 2] = ["written", "read"];

    fn new(r: &Registry) -> LinkMetrics {
        let consumed = counter_vec(
            r,
            "followguard_link_records_total",
            "Records the link stage processed, by topic (links: flagged follows keyed by \
             follower; pairs: alert-pair counts).",
            &["topic"],
        );
        for t in Self::TOPICS {
            consumed.with_label_values(&[t]);
        }
        let dropped = counter_vec(
            r,
            "followguard_link_dropped_total",
            "Link-stage records not counted, by reason (duplicate: re-delivered; \
             over_budget: the stage's byte budget was full; corrupt: undecodable).",
            &["reason"],
        );
        for d in Self::DROPPED {
            dropped.with_label_values(&[d]);
        }
        let bytes = IntGaugeVec::new(
            Opts::new(
                "followguard_link_state_bytes",
                "Bytes held by the link stage, by store (followers: follower -> alerts and \
                 pair counts of the owned link partitions; graph: the campaign graph).",
            ),
            &["store"],
        )
        .expect("static metric definition");
        r.register(Box::new(bytes.clone()))
            .expect("metric registered once");
        for s in Self::STORES {
            bytes.with_label_values(&[s]);
        }
        let snapshot = counter_vec(
            r,
            "followguard_link_snapshot_records_total",
            "Records of link-stage state snapshots (the state topics), by op (written: \
             snapshots of owned link-stage partitions; read: restoring a newly assigned one).",
            &["op"],
        );
        for o in Self::SNAPSHOT_OPS {
            snapshot.with_label_values(&[o]);
        }
        LinkMetrics {
            snapshot,
            consumed,
            campaigns: counter(
                r,
                "followguard_campaign_records_total",
                "Campaign records the link stage emitted (a campaign formed, grew or merged).",
            ),
            dropped,
            rebuilt: counter(
                r,
                "followguard_link_rebuilt_records_total",
                "Link-stage records re-read to rebuild the state of a newly assigned \
                 link-stage partition (those after its latest snapshot).",
            ),
            bytes,
        }
    }

    pub fn consumed(&self, topic: &str) {
        self.consumed.with_label_values(&[topic]).inc();
    }
    pub fn campaign(&self) {
        self.campaigns.inc();
    }
    pub fn dropped(&self, reason: &str, n: u64) {
        self.dropped.with_label_values(&[reason]).inc_by(n);
    }
    pub fn rebuilt(&self, n: u64) {
        self.rebuilt.inc_by(n);
    }
    pub fn snapshot(&self, op: &str, n: u64) {
        self.snapshot.with_label_values(&[op]).inc_by(n);
    }
    pub fn set_bytes(&self, store: &str, bytes: usize) {
        self.bytes
            .with_label_values(&[store])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Issue 24: what the input adapters ignored and the profile table's state.
#[derive(Clone)]
pub struct InputMetrics {
    ignored: IntCounterVec,
    profile_records: IntCounterVec,
    profile_table_bytes: IntGauge,
    profile_table_entries: IntGauge,
    profile_table_evictions: IntGauge,
    profile_waits: IntCounter,
    decisions: IntCounterVec,
    decision_effects: IntCounterVec,
    decisions_held: IntGaugeVec,
    model_reloads: IntCounterVec,
    shadow_follows: IntCounterVec,
    shadow_info: GaugeVec,
}

impl InputMetrics {
    fn new(r: &Registry) -> InputMetrics {
        let ignored = counter_vec(
            r,
            "followguard_input_ignored_total",
            "Well-formed input records holding no follow (other activities or collections,              Bluesky deletes…), by reason: counted, not dead-lettered.",
            &["reason"],
        );
        for reason in followguard_core::adapt::IGNORED_REASONS {
            ignored.with_label_values(&[reason]);
        }
        let profile_records = counter_vec(
            r,
            "followguard_profile_records_total",
            "Profile-topic records read into the profile table, by result (applied,              tombstone, rejected).",
            &["result"],
        );
        for k in ["applied", "tombstone", "rejected"] {
            profile_records.with_label_values(&[k]);
        }
        let decisions = counter_vec(
            r,
            "followguard_decisions_total",
            "Moderators' verdicts read from the decisions topic, by verdict (human, bot,              false_alert, confirmed; rejected = unreadable).",
            &["verdict"],
        );
        for (_, v) in followguard_core::decisions::Verdict::ALL {
            decisions.with_label_values(&[v]);
        }
        decisions.with_label_values(&["rejected"]);
        let decision_effects = counter_vec(
            r,
            "followguard_decision_effects_total",
            "What verdicts changed: cleared_follower (a suspicious follower not flagged),              confirmed_follower (a follower counted as bought despite its score),              suppressed_record (an alert or moderation record of a burst a false_alert              verdict suppressed).",
            &["effect"],
        );
        for e in [
            "cleared_follower",
            "confirmed_follower",
            "suppressed_record",
        ] {
            decision_effects.with_label_values(&[e]);
        }
        let decisions_held = IntGaugeVec::new(
            Opts::new(
                "followguard_decisions_held",
                "Verdicts in force, by kind (cleared, confirmed, suppressed); each bounded.",
            ),
            &["kind"],
        )
        .expect("static metric definition");
        r.register(Box::new(decisions_held.clone()))
            .expect("metric registered once");
        let model_reloads = counter_vec(
            r,
            "followguard_model_reloads_total",
            "Live reloads of the model file (POST /admin/reload or SIGHUP), by result (ok; \
             failed = the file could not be loaded, the running model stays).",
            &["result"],
        );
        for k in ["ok", "failed"] {
            model_reloads.with_label_values(&[k]);
        }
        let shadow_follows = counter_vec(
            r,
            "followguard_shadow_follows_total",
            "Follows scored by both the live and the shadow model (--shadow-model), by \
             each one's verdict at its own threshold (live, shadow: flag or pass).",
            &["live", "shadow"],
        );
        let shadow_info = GaugeVec::new(
            Opts::new(
                "followguard_shadow_model_info",
                "Always 1 while a shadow model runs; labels say which file.",
            ),
            &["version", "sha256"],
        )
        .expect("static metric definition");
        r.register(Box::new(shadow_info.clone()))
            .expect("metric registered once");
        InputMetrics {
            shadow_follows,
            shadow_info,
            model_reloads,
            decisions,
            decision_effects,
            decisions_held,
            ignored,
            profile_records,
            profile_table_bytes: int_gauge(
                r,
                "followguard_profile_table_bytes",
                "Bytes held by the profile table (bounded by --profile-table-bytes).",
            ),
            profile_table_entries: int_gauge(
                r,
                "followguard_profile_table_entries",
                "Accounts in the profile table.",
            ),
            profile_table_evictions: int_gauge(
                r,
                "followguard_profile_table_evictions",
                "Profiles dropped from the table to stay within its byte budget, since start.",
            ),
            profile_waits: counter(
                r,
                "followguard_profile_waits_total",
                "Input chunks that waited (bounded by --profile-wait) for a follower's                  profile to reach the table.",
            ),
        }
    }

    pub fn ignored(&self, reason: &'static str) {
        self.ignored.with_label_values(&[reason]).inc();
    }

    pub fn profile_record(&self, result: &'static str) {
        self.profile_records.with_label_values(&[result]).inc();
    }

    pub fn profile_table(&self, bytes: usize, entries: usize, evicted: u64) {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.profile_table_bytes.set(n(bytes));
        self.profile_table_entries.set(n(entries));
        self.profile_table_evictions
            .set(i64::try_from(evicted).unwrap_or(i64::MAX));
    }

    pub fn profile_wait(&self) {
        self.profile_waits.inc();
    }

    /// The shadow model in use (issue 24).
    pub fn set_shadow(&self, version: &str, sha256: &str) {
        self.shadow_info.reset();
        self.shadow_info
            .with_label_values(&[version, sha256])
            .set(1.0);
        for live in ["flag", "pass"] {
            for shadow in ["flag", "pass"] {
                self.shadow_follows.with_label_values(&[live, shadow]);
            }
        }
    }

    /// One follow scored by both models.
    pub fn shadow_follow(&self, live: bool, shadow: bool) {
        let v = |b: bool| if b { "flag" } else { "pass" };
        self.shadow_follows
            .with_label_values(&[v(live), v(shadow)])
            .inc();
    }

    /// A live model reload: `ok` or `failed` (the old model stays).
    pub fn model_reload(&self, result: &'static str) {
        self.model_reloads.with_label_values(&[result]).inc();
    }

    /// A verdict read (`verdict` name, or "rejected").
    pub fn decision(&self, verdict: &'static str) {
        self.decisions.with_label_values(&[verdict]).inc();
    }

    /// What verdicts changed about one event.
    pub fn decision_effect(
        &self,
        effect: followguard_core::pipeline::DecisionEffect,
        suppressed: u32,
    ) {
        if effect != followguard_core::pipeline::DecisionEffect::None {
            self.decision_effects
                .with_label_values(&[effect.name()])
                .inc();
        }
        if suppressed > 0 {
            self.decision_effects
                .with_label_values(&["suppressed_record"])
                .inc_by(u64::from(suppressed));
        }
    }

    pub fn decisions_held(&self, (cleared, confirmed, suppressed): (usize, usize, usize)) {
        for (k, v) in [
            ("cleared", cleared),
            ("confirmed", confirmed),
            ("suppressed", suppressed),
        ] {
            self.decisions_held
                .with_label_values(&[k])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}

/// Issue #21: partitions moved by rebalances (incremental assignments count only the
/// partitions added or removed), and how long a revoke took to hand its partitions' state
/// over (outputs and changelog acknowledged, offsets committed) before they were released.
#[derive(Clone)]
struct RebalanceMetrics {
    partitions: IntCounterVec,
    flush_seconds: Histogram,
    flush_incomplete: IntCounter,
    /// Stretches without a poll of a group consumer (`kafka::PollGap`), by consumer.
    poll_gap: HistogramVec,
}

impl RebalanceMetrics {
    fn new(r: &Registry) -> Self {
        let partitions = counter_vec(
            r,
            "followguard_rebalance_partitions_total",
            "Input partitions assigned to or revoked from this instance, by kind (assign, revoke).",
            &["kind"],
        );
        for k in [RebalanceKind::Assign, RebalanceKind::Revoke] {
            partitions.with_label_values(&[k.as_str()]);
        }
        RebalanceMetrics {
            partitions,
            flush_seconds: histogram(
                r,
                "followguard_revoke_flush_seconds",
                "Time from a revoke to releasing the partitions: their outputs and changelog state acknowledged and offsets committed.",
                vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0],
            ),
            flush_incomplete: counter(
                r,
                "followguard_revoke_flush_incomplete_total",
                "Revokes that released their partitions before everything handed over was acknowledged (the flush timed out or the service was stopping).",
            ),
            poll_gap: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "followguard_consumer_poll_gap_seconds",
                        "Stretches in which a group consumer was not polled, from the end of one poll to the start of the next, by consumer (input, links: the link stage's member) (librdkafka evicts the member after max.poll.interval.ms of one).",
                    )
                    .buckets(vec![
                        0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                    ]),
                    &["consumer"],
                )
                .expect("static metric definition");
                r.register(Box::new(h.clone()))
                    .expect("metric registered once");
                for c in [GroupConsumer::Input, GroupConsumer::Links] {
                    h.with_label_values(&[c.as_str()]);
                }
                h
            },
        }
    }
}

/// Issue #21: restoring detector state from the changelog topic (`changelog`).
#[derive(Clone)]
struct ChangelogMetrics {
    restore_records: IntCounter,
    restore_seconds: Histogram,
    corrupt: IntCounter,
    restore_pending: IntGaugeVec,
    flushes: IntCounter,
    flushed_records: IntCounter,
}

impl ChangelogMetrics {
    fn new(r: &Registry) -> Self {
        ChangelogMetrics {
            restore_records: counter(
                r,
                "followguard_restore_records_total",
                "Changelog records read to restore detector state after an assignment.",
            ),
            restore_seconds: histogram(
                r,
                "followguard_restore_seconds",
                "Time to restore one assignment's detector state from the changelog topic.",
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            ),
            corrupt: counter(
                r,
                "followguard_changelog_corrupt_total",
                "Changelog records skipped because they could not be decoded or imported.",
            ),
            flushes: counter(
                r,
                "followguard_changelog_flushes_total",
                "Record-cache flushes: the dirty state of the batches since the last one \
                 handed to the changelog producer.",
            ),
            flushed_records: counter(
                r,
                "followguard_changelog_records_total",
                "Changelog records written by record-cache flushes (snapshots included).",
            ),
            restore_pending: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "followguard_restore_pending_records",
                        "Changelog records a partition's restore still has to read (an \
                         estimate from the partition's end offset; 0 once restored).",
                    ),
                    &["partition"],
                )
                .expect("static metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
        }
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("static metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    /// Registers every metric on `registry`. `model_version` and `model_sha256` label the
    /// fixed `followguard_model_info` gauge (bounded: one model per process).
    pub fn new(registry: Registry, model_version: &str, model_sha256: &str) -> Metrics {
        let r = &registry;
        let build_info = GaugeVec::new(
            Opts::new(
                "followguard_build_info",
                "Always 1; labels say which build is running.",
            ),
            &["version"],
        )
        .expect("static metric definition");
        r.register(Box::new(build_info.clone()))
            .expect("metric registered once");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        let model_info = GaugeVec::new(
            Opts::new(
                "followguard_model_info",
                "Always 1; labels say which model file is loaded.",
            ),
            &["version", "sha256"],
        )
        .expect("static metric definition");
        r.register(Box::new(model_info.clone()))
            .expect("metric registered once");
        model_info
            .with_label_values(&[model_version, model_sha256])
            .set(1.0);

        let events = counter_vec(
            r,
            "followguard_events_total",
            "Input records handled, by outcome (rejected = dead-lettered; suspicious = a follow \
             or unfollow whose follower scored at or above the threshold; clean = the rest).",
            &["outcome"],
        );
        let events_by_outcome = EventOutcome::ALL
            .iter()
            .map(|o| (o.as_str(), events.with_label_values(&[o.as_str()])))
            .collect();
        let rejected = counter_vec(
            r,
            "followguard_events_rejected_total",
            "Input records that failed parsing or validation, by error kind.",
            &["kind"],
        );
        for kind in followguard_core::event::EventError::KINDS {
            rejected.with_label_values(&[kind]);
        }
        let follower_score = histogram(
            r,
            "followguard_follower_score_ratio",
            "Classifier probability that the follower is a bought account.",
            (1..=20).map(|i| f64::from(i) * 0.05).collect(),
        );
        let suspicious_follows = counter(
            r,
            "followguard_suspicious_follows_total",
            "Follow events whose follower scored at or above the threshold.",
        );
        let follows = counter(
            r,
            "followguard_follows_total",
            "Follow events scored (unfollows not counted): the denominator of the suspicious share.",
        );
        let alerts = counter_vec(
            r,
            "followguard_alerts_total",
            "Alert records emitted, by alert kind, severity and status.",
            &["kind", "severity", "status"],
        );
        let moderation_records = counter(
            r,
            "followguard_moderation_records_total",
            "Flagged-follower records emitted to the moderation topic.",
        );
        let judgment_withheld = counter(
            r,
            "followguard_judgment_withheld_total",
            "Follows scored suspicious whose verdict was withheld because the follower was too new to judge (minutes old at the follow): not counted as suspicious, no moderation record.",
        );
        let dead_letter_records = counter_vec(
            r,
            "followguard_dead_letter_records_total",
            "Records written to the dead-letter topic, by error kind.",
            &["kind"],
        );
        let processing_duration = histogram(
            r,
            "followguard_processing_duration_seconds",
            "Time spent turning one input record into an outcome: parse and score (serve charges each record the mean of the chunk share it was prepared in) plus detect.",
            vec![
                1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1,
            ],
        );
        let event_age = histogram(
            r,
            "followguard_event_age_seconds",
            "Wall-clock time between an event's time and its processing.",
            vec![
                0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0, 604800.0,
            ],
        );
        let tracked_followees = int_gauge(
            r,
            "followguard_tracked_followees",
            "Followees with live detector state.",
        );
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "followguard_consumer_lag_records",
                "Consumer lag per assigned input partition, from librdkafka statistics.",
            ),
            &["partition"],
        )
        .expect("static metric definition");
        r.register(Box::new(consumer_lag.clone()))
            .expect("metric registered once");
        let assigned_partitions = int_gauge(
            r,
            "followguard_assigned_partitions",
            "Input partitions currently assigned to this instance.",
        );
        let rebalances = counter_vec(
            r,
            "followguard_rebalances_total",
            "Partition assignment changes, by kind (assign, revoke).",
            &["kind"],
        );
        for k in [RebalanceKind::Assign, RebalanceKind::Revoke] {
            rebalances.with_label_values(&[k.as_str()]);
        }
        let replayed_events = counter(
            r,
            "followguard_replayed_events_total",
            "Records re-read with sinks muted to rebuild detector state after an assignment.",
        );
        let suppressed_opens = counter(
            r,
            "followguard_duplicate_alert_opens_suppressed_total",
            "Re-processed events' alert opens not re-sent because the alerts topic already has them.",
        );
        let producer_renewals = counter(
            r,
            "followguard_producer_renewals_total",
            "Times the output producer was replaced after the broker fenced or failed it.",
        );
        let input_pauses = counter(
            r,
            "followguard_input_pauses_total",
            "Times input fetching was paused because outputs awaited acknowledgement.",
        );
        let delivery_failures = counter_vec(
            r,
            "followguard_producer_delivery_failures_total",
            "Records the broker did not acknowledge (they are retried), by sink.",
            &["sink"],
        );
        let records_produced = counter_vec(
            r,
            "followguard_records_produced_total",
            "Records acknowledged by the broker, by sink.",
            &["sink"],
        );
        for s in Sink::ALL {
            delivery_failures.with_label_values(&[s.as_str()]);
            records_produced.with_label_values(&[s.as_str()]);
        }
        let webhook_drops = counter_vec(
            r,
            "followguard_webhook_dropped_total",
            "Alerts the webhook sink gave up on, by reason (queue_full, failed).",
            &["reason"],
        );
        let webhook_sent = counter(
            r,
            "followguard_webhook_sent_total",
            "Alerts the webhook receiver accepted.",
        );
        for d in WebhookDrop::ALL {
            webhook_drops.with_label_values(&[d.as_str()]);
        }
        let webhook_requests = counter_vec(
            r,
            "followguard_webhook_requests_total",
            "Webhook HTTP requests (each retry counts), by result (success, redirect: never \
             followed, rejected: 4xx such as a wrong token, server_error, timeout, connect: \
             connection or TLS failure, error).",
            &["result"],
        );
        for res in WebhookResult::ALL {
            webhook_requests.with_label_values(&[res.as_str()]);
        }
        let webhook_duration = histogram(
            r,
            "followguard_webhook_request_duration_seconds",
            "Duration of webhook HTTP requests, whatever their result.",
            vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        );
        let webhook_tracked = int_gauge(
            r,
            "followguard_webhook_tracked_alerts",
            "Open alerts the webhook resends every --webhook-resend-interval.",
        );
        let open_alerts = int_gauge(
            r,
            "followguard_open_alerts",
            "Bought-follower alerts currently open in the detector (this instance's partitions).",
        );
        let score_cache_hits = counter(
            r,
            "followguard_score_cache_hits_total",
            "Follower scores served from the score cache.",
        );
        let score_cache_misses = counter(
            r,
            "followguard_score_cache_misses_total",
            "Follower scores computed because the score cache did not hold them.",
        );
        let consumer_errors = counter(
            r,
            "followguard_consumer_errors_total",
            "Errors the Kafka consumer returned instead of a record (the loop carries on).",
        );
        let commit_errors = counter(
            r,
            "followguard_commit_errors_total",
            "Offset commits or offset stores the broker or client refused.",
        );
        let last_progress = Gauge::new(
            "followguard_last_progress_timestamp_seconds",
            "Unix time at which the consume loop last made progress.",
        )
        .expect("static metric definition");
        r.register(Box::new(last_progress.clone()))
            .expect("metric registered once");

        // Issue #23: the standard unprefixed `process_*` series (CPU, resident and virtual
        // memory, open and maximum file descriptors, threads, start time) from the
        // prometheus crate's collector, which generic dashboards and rules expect.
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("metric registered once");
        let event_time_adjustments = counter_vec(
            r,
            "followguard_event_time_adjustments_total",
            "Events the partition clock did not place at their own time (clamped: too far \
             ahead, counted at the clock) or that moved the clock (jumped: confirmed forward \
             jump; reanchored: an absurd first time replaced).",
            &["kind"],
        );
        let produce_refused = counter_vec(
            r,
            "followguard_produce_refused_total",
            "Records the broker refused for good (not retried; dead-lettered instead, or \
             dropped if the dead letter is refused too), by sink and reason.",
            &["sink", "reason"],
        );
        for s in Sink::ALL {
            for reason in crate::sink::REFUSAL_REASONS {
                produce_refused.with_label_values(&[s.as_str(), reason]);
            }
        }
        let in_flight_bytes = int_gauge(
            r,
            "followguard_in_flight_bytes",
            "Bytes of output records handed to the producer and not yet acknowledged \
             (input pauses above --max-in-flight-bytes).",
        );
        for k in ["clamped", "jumped", "reanchored"] {
            event_time_adjustments.with_label_values(&[k]);
        }
        let state_bytes = IntGaugeVec::new(
            Opts::new(
                "followguard_state_bytes",
                "Bytes of stored state by store (detector: followee windows, pending \
                 flagged follows, open alerts, campaign links, ids; evidence: the web \
                 view's evidence store; score_cache: every follower-score cache; profiles: \
                 the profile table), refreshed every few seconds.",
            ),
            &["store"],
        )
        .expect("static metric definition");
        r.register(Box::new(state_bytes.clone()))
            .expect("metric registered once");
        for s in StateBytes::STORES {
            state_bytes.with_label_values(&[s]);
        }
        let pending_refused = counter(
            r,
            "followguard_pending_refused_total",
            "Flagged follows not remembered because the pending-follows byte budget \
             (pending_max_bytes) was full: they cannot join a later burst's alert.",
        );
        let input = InputMetrics::new(r);
        let links = LinkMetrics::new(r);

        let changelog = ChangelogMetrics::new(r);
        let moves = RebalanceMetrics::new(r);
        Metrics {
            registry,
            events,
            events_by_outcome,
            rejected,
            follower_score,
            suspicious_follows,
            follows,
            alerts,
            moderation_records,
            judgment_withheld,
            dead_letter_records,
            processing_duration,
            event_age,
            tracked_followees,
            consumer_lag,
            assigned_partitions,
            rebalances,
            replayed_events,
            suppressed_opens,
            producer_renewals,
            input_pauses,
            delivery_failures,
            records_produced,
            webhook_drops,
            webhook_sent,
            webhook_requests,
            webhook_duration,
            webhook_tracked,
            open_alerts,
            score_cache_hits,
            score_cache_misses,
            consumer_errors,
            commit_errors,
            last_progress,
            event_time_adjustments,
            produce_refused,
            in_flight_bytes,
            state_bytes,
            pending_refused,
            input,
            links,
            model_info,
            changelog,
            moves,
        }
    }

    /// Issue 24: after a live reload, `followguard_model_info` names the new model only.
    pub fn set_model(&self, version: &str, sha256: &str) {
        self.model_info.reset();
        self.model_info
            .with_label_values(&[version, sha256])
            .set(1.0);
    }

    /// Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding error: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn event(&self, outcome: EventOutcome) {
        match self.events_by_outcome.get(outcome.as_str()) {
            Some(c) => c.inc(),
            None => self.events.with_label_values(&[outcome.as_str()]).inc(),
        }
    }

    /// Issue #19: how the partition clock placed an event (nothing for on-time events).
    pub fn event_time_placed(&self, p: followguard_core::timeguard::Placement) {
        use followguard_core::timeguard::Placement;
        let kind = match p {
            Placement::OnTime => return,
            Placement::Clamped { .. } => "clamped",
            Placement::Jumped { .. } => "jumped",
            Placement::Reanchored { .. } => "reanchored",
        };
        self.event_time_adjustments.with_label_values(&[kind]).inc();
    }

    /// Issue #19: a record refused for good (`reason` from `sink::REFUSAL_REASONS`).
    pub fn produce_refused(&self, sink: Sink, reason: &'static str) {
        self.produce_refused
            .with_label_values(&[sink.as_str(), reason])
            .inc();
    }

    pub fn set_in_flight_bytes(&self, n: usize) {
        self.in_flight_bytes
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn event_rejected(&self, kind: &'static str) {
        self.event(EventOutcome::Rejected);
        self.rejected.with_label_values(&[kind]).inc();
    }

    /// A scored event: `follow` says whether it was a follow (not an unfollow), and
    /// `suspicious` whether it was a suspicious follow.
    pub fn follower_scored(&self, prob: f64, follow: bool, suspicious: bool) {
        self.follower_score.observe(prob);
        if follow {
            self.follows.inc();
        }
        if suspicious {
            self.suspicious_follows.inc();
        }
    }

    /// `kind`, `severity` and `status` are the alert's bounded enum labels.
    pub fn alert_emitted(&self, kind: &str, severity: &str, status: &str) {
        self.alerts
            .with_label_values(&[kind, severity, status])
            .inc();
    }

    pub fn moderation_emitted(&self) {
        self.moderation_records.inc();
    }

    /// Issue #20: a suspicious-looking follow by a too-new account was not judged.
    pub fn judgment_withheld(&self) {
        self.judgment_withheld.inc();
    }

    pub fn dead_lettered(&self, kind: &'static str) {
        self.dead_letter_records.with_label_values(&[kind]).inc();
    }

    pub fn processing_seconds(&self, secs: f64) {
        self.processing_duration.observe(secs);
    }

    pub fn event_age_seconds(&self, secs: f64) {
        self.event_age.observe(secs.max(0.0));
    }

    pub fn set_tracked_followees(&self, n: usize) {
        self.tracked_followees
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_consumer_lag(&self, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[&partition.to_string()])
            .set(lag.max(0));
    }

    /// Forgets a revoked partition's lag so a stale value is not exported forever.
    pub fn clear_consumer_lag(&self, partition: i32) {
        let _ = self
            .consumer_lag
            .remove_label_values(&[&partition.to_string()]);
    }

    pub fn set_assigned_partitions(&self, n: usize) {
        self.assigned_partitions
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn rebalance(&self, kind: RebalanceKind) {
        self.rebalances.with_label_values(&[kind.as_str()]).inc();
    }

    /// Issue #21: `n` input partitions assigned or revoked by one rebalance.
    pub fn rebalance_partitions(&self, kind: RebalanceKind, n: usize) {
        self.moves
            .partitions
            .with_label_values(&[kind.as_str()])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Issue #21: the histogram `consumer`'s poll gaps go into (`kafka::PollGap`).
    pub fn poll_gap_histogram(&self, consumer: GroupConsumer) -> Histogram {
        self.moves.poll_gap.with_label_values(&[consumer.as_str()])
    }

    /// Issue #21: a revoke released its partitions after `seconds`; `complete` is false
    /// when it did so before everything handed over was acknowledged.
    pub fn revoke_flushed(&self, seconds: f64, complete: bool) {
        self.moves.flush_seconds.observe(seconds);
        if !complete {
            self.moves.flush_incomplete.inc();
        }
    }

    /// Issue #21: `n` changelog records read in a restore that took `seconds`.
    pub fn restored(&self, n: u64, seconds: f64) {
        self.changelog.restore_records.inc_by(n);
        self.changelog.restore_seconds.observe(seconds);
    }

    /// Issue #21: changelog records partition `partition`'s restore still has to read.
    pub fn restore_pending(&self, partition: i32, records: i64) {
        self.changelog
            .restore_pending
            .with_label_values(&[&partition.to_string()])
            .set(records.max(0));
    }

    /// Issue #21: a record-cache flush wrote `records` changelog records.
    pub fn changelog_flushed(&self, records: usize) {
        self.changelog.flushes.inc();
        self.changelog.flushed_records.inc_by(records as u64);
    }

    /// Issue #21: a changelog record skipped (undecodable or refused on import).
    pub fn changelog_corrupt(&self) {
        self.changelog.corrupt.inc();
    }

    pub fn replayed(&self, n: u64) {
        self.replayed_events.inc_by(n);
    }

    pub fn duplicate_open_suppressed(&self) {
        self.suppressed_opens.inc();
    }

    pub fn input_paused(&self) {
        self.input_pauses.inc();
    }

    pub fn producer_renewed(&self) {
        self.producer_renewals.inc();
    }

    pub fn delivery_failed(&self, sink: Sink) {
        self.delivery_failures
            .with_label_values(&[sink.as_str()])
            .inc();
    }

    pub fn delivered(&self, sink: Sink) {
        self.records_produced
            .with_label_values(&[sink.as_str()])
            .inc();
    }

    pub fn webhook_dropped(&self, why: WebhookDrop) {
        self.webhook_drops.with_label_values(&[why.as_str()]).inc();
    }

    pub fn webhook_sent(&self) {
        self.webhook_sent.inc();
    }

    /// One webhook HTTP request: its result and duration.
    pub fn webhook_request(&self, result: WebhookResult, secs: f64) {
        self.webhook_requests
            .with_label_values(&[result.as_str()])
            .inc();
        self.webhook_duration.observe(secs);
    }

    pub fn set_webhook_tracked(&self, n: usize) {
        self.webhook_tracked
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_open_alerts(&self, n: usize) {
        self.open_alerts.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Score-cache totals (hits, misses) of every cache: the counters move up to them.
    pub fn set_score_cache_totals(&self, hits: u64, misses: u64) {
        for (c, total) in [
            (&self.score_cache_hits, hits),
            (&self.score_cache_misses, misses),
        ] {
            let now = c.get();
            if total > now {
                c.inc_by(total - now);
            }
        }
    }

    /// Issue #19: bytes of stored state, by store.
    pub fn set_state_bytes(&self, b: StateBytes) {
        for (store, v) in b.by_store() {
            self.state_bytes
                .with_label_values(&[store])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Issue #19: the detector's total of refused pending follows; the counter moves up
    /// to it (never back).
    pub fn set_pending_refused_total(&self, total: u64) {
        let now = self.pending_refused.get();
        if total > now {
            self.pending_refused.inc_by(total - now);
        }
    }

    pub fn consumer_error(&self) {
        self.consumer_errors.inc();
    }

    pub fn commit_error(&self) {
        self.commit_errors.inc();
    }

    pub fn progress(&self, unix_secs: f64) {
        self.last_progress.set(unix_secs);
    }
}

/// Burns CPU in 1M-step slices until `done` holds, for at most 5 s: tests of the
/// `/proc` CPU counters (10 ms clock ticks) need some to have been used.
#[cfg(test)]
fn burn_cpu_until(mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut x = 0u64;
    while !done() && std::time::Instant::now() < until {
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn counters_move_and_render_with_prefix() {
        let m = Metrics::new(Registry::new(), "v1", "abc");
        m.event(EventOutcome::Clean);
        m.event_rejected("invalid_json");
        m.dead_lettered("invalid_json");
        m.alert_emitted("burst", "high", "open");
        m.set_consumer_lag(3, 17);
        let text = m.render();
        assert_eq!(
            sample(&text, "followguard_events_total{outcome=\"clean\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "followguard_events_total{outcome=\"rejected\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "followguard_events_rejected_total{kind=\"invalid_json\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "followguard_consumer_lag_records{partition=\"3\"}"),
            Some(17.0)
        );
        assert_eq!(
            sample(
                &text,
                "followguard_model_info{sha256=\"abc\",version=\"v1\"}"
            ),
            Some(1.0)
        );
        m.clear_consumer_lag(3);
        assert!(!m.render().contains("partition=\"3\""));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            // Issue #23: only the standard process collector's series are unprefixed.
            assert!(
                line.starts_with("followguard_") || line.starts_with("process_"),
                "unprefixed: {line}"
            );
        }
    }

    #[test]
    fn process_metrics_read_proc() {
        let m = Metrics::new(Registry::new(), "v", "s");
        // Burn CPU until the counter (10 ms clock ticks) has something to show.
        let mut text = m.render();
        if cfg!(target_os = "linux") {
            burn_cpu_until(|| {
                text = m.render();
                sample(&text, "process_cpu_seconds_total").unwrap_or(0.0) > 0.0
            });
        }
        if cfg!(target_os = "linux") {
            assert!(sample(&text, "process_resident_memory_bytes").unwrap_or(0.0) > 1e6);
            let start = sample(&text, "process_start_time_seconds").unwrap_or(0.0);
            assert!(start > 1.6e9, "start time {start}");
            assert!(sample(&text, "process_cpu_seconds_total").unwrap_or(0.0) > 0.0);
            assert!(sample(&text, "process_open_fds").unwrap_or(0.0) >= 3.0);
            assert!(sample(&text, "process_threads").unwrap_or(0.0) >= 1.0);
        }
    }

    #[test]
    fn fresh_registry_per_instance() {
        // Two Metrics in one process must not collide (no global registry).
        let a = Metrics::new(Registry::new(), "v", "s");
        let b = Metrics::new(Registry::new(), "v", "s");
        a.moderation_emitted();
        assert_eq!(
            sample(&a.render(), "followguard_moderation_records_total"),
            Some(1.0)
        );
        assert_eq!(
            sample(&b.render(), "followguard_moderation_records_total"),
            Some(0.0)
        );
    }
}
