//! Detector thresholds and periods.

/// Detector thresholds and periods. Defaults are the settings measured in DETECTION.md.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Floor of the share of organic followers expected to score as suspicious. Must sit
    /// above the model's false-positive rate on real humans, or viral spikes alert.
    pub p_floor: f32,
    /// Learn each followee's own suspicious share (shrunk towards the floor) once it has
    /// `min_history` closed 3 h buckets; otherwise use the floor alone.
    pub use_own_baseline: bool,
    pub min_history: u16,
    /// Pseudo-count (follows per 3 h bucket) of the floor when shrinking the own share.
    pub prior_weight: f32,
    /// Poisson z-score the suspicious excess must reach.
    pub z: f32,
    /// Short (minutes) window: minimum excess of suspicious follows and minimum share.
    pub short_min_excess: f32,
    pub short_min_share: f32,
    /// Long (24 h) window: minimum excess and minimum share.
    pub long_min_excess: f32,
    pub long_min_share: f32,
    /// Also require the short-window follow rate to exceed the followee's baseline.
    pub use_rate: bool,
    pub rate_z_min: f32,
    /// Floor of the baseline follow rate for accounts with little history.
    pub rate_floor_per_hour: f32,
    /// An open alert stays "hot" while either excess is above this fraction of its
    /// threshold (hysteresis, so a burst does not flap open/resolved).
    pub hold_fraction: f32,
    /// Resolve after this long without being hot.
    pub resolve_after_ms: i64,
    /// Updates: at most one per interval, and only when the suspicious count grew by
    /// this fraction since the last record.
    pub update_min_interval_ms: i64,
    pub update_growth: f32,
    /// Followees idle longer than this are forgotten (lazily and by eviction).
    pub idle_ttl_ms: i64,
    /// How far behind its partition's newest event an event may be and still be placed
    /// at its own time; older events are counted at the watermark.
    pub allowed_lateness_ms: i64,
    /// Event-time period of the maintenance sweep (resolve quiet alerts, evict idle).
    pub sweep_interval_ms: i64,
    /// A follower gets at most one moderation record per period.
    pub moderation_dedup_ms: i64,
    /// Follower ids kept as a sample in each alert.
    pub sample_size: usize,
    /// Issue #19: largest alert record in bytes; the sample is trimmed to fit
    /// (`samples_truncated` counts the ids left out). See `bounds::min_record_bytes`.
    pub max_record_bytes: usize,
    /// Flagged follows remembered per followee before an alert opens (they become the
    /// alert's first moderation records).
    pub pending_cap: usize,
    /// Issue #19: bytes (entries and ids) all pending flagged follows may hold; beyond
    /// it a flagged follow is not remembered (counted in `MemoryReport::pending_refused`).
    pub pending_max_bytes: usize,
    /// Lockstep: alerts sharing this many flagged followers within the window are linked.
    pub lockstep_min_shared: u32,
    pub lockstep_window_ms: i64,
    /// Creation-date batching as a trigger: the followee's recent followers (at least
    /// `creation_min_followers` in the decayed histogram) sit in two adjacent account-age
    /// bins (share ≥ `creation_concentration_min`), its follow rate is far above its
    /// baseline (`rate_z_min`), and the model backs it with a smaller suspicious excess
    /// (`creation_min_excess`). Catches cohorts the model only partly flags.
    pub creation_trigger: bool,
    pub creation_min_followers: u32,
    pub creation_concentration_min: f32,
    pub creation_min_excess: f32,
    /// Issue #20 (`newcomer.rs`): a follower younger than this at the follow has its
    /// suspicious verdict withheld (organic sign-ups look bought). 0 = off.
    pub newcomer_max_age_ms: i64,
    /// Issue #20 fast-batch signal (`newcomer::NewcomerChannel`): withheld followers of
    /// one followee whose densest 10-minute creation band holds at least this many (0 =
    /// off) and this share of the last 2 h of creation times open a `cohort` alert.
    pub newcomer_batch_min: u32,
    pub newcomer_batch_share: f32,
    /// Issue 22: a suspicious follow (counted in the windows at the model's detection
    /// threshold) is *flagged* — a moderation record, alert evidence (count, mean score,
    /// reasons, sample) and a lockstep link — only at prob ≥ this. The pipeline sets it
    /// to the model's per-follower threshold; 0 flags every suspicious follow.
    pub flag_threshold: f32,
    /// Model version stamped on records (set by the pipeline).
    pub model_version: String,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            p_floor: 0.06,
            use_own_baseline: true,
            min_history: 8,
            prior_weight: 10.0,
            z: 5.0,
            short_min_excess: 15.0,
            short_min_share: 0.2,
            long_min_excess: 30.0,
            long_min_share: 0.0,
            use_rate: false,
            rate_z_min: 3.0,
            rate_floor_per_hour: 6.0,
            hold_fraction: 0.5,
            resolve_after_ms: 3_600_000,
            update_min_interval_ms: 60_000,
            update_growth: 0.5,
            idle_ttl_ms: 3 * 86_400_000,
            allowed_lateness_ms: 300_000,
            sweep_interval_ms: 600_000,
            moderation_dedup_ms: 7 * 86_400_000,
            sample_size: 20,
            max_record_bytes: crate::bounds::DEFAULT_MAX_RECORD_BYTES,
            pending_cap: 64,
            pending_max_bytes: 128 << 20,
            lockstep_min_shared: 10,
            lockstep_window_ms: 2 * 86_400_000,
            creation_trigger: true,
            creation_min_followers: 32,
            creation_concentration_min: 0.8,
            creation_min_excess: 10.0,
            newcomer_max_age_ms: 3_600_000,
            newcomer_batch_min: 60,
            newcomer_batch_share: 0.5,
            flag_threshold: 0.0,
            model_version: String::new(),
        }
    }
}
