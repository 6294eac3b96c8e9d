//! The trigger maths, as free functions over the settings and one followee's window:
//! [`evaluate`] turns the window into the figures of one instant ([`Eval`]), [`fires`]
//! decides whether they open an alert (and of which kind), [`is_hot`] whether an open
//! alert's burst is still going. No state of their own: the lifecycle calls them.

use super::DetectorConfig;
use crate::alert::AlertKind;
use crate::window::{
    bucket_index, Counts, FolloweeWindow, LONG_BUCKETS, LONG_BUCKET_MS, SHORT_BUCKETS,
    SHORT_BUCKET_MS,
};

/// Length of the short window (the current, partial bucket included).
pub const SHORT_SPAN_MS: i64 = SHORT_BUCKET_MS * SHORT_BUCKETS as i64;
/// Length of the long window: how long pending flagged follows and resolved bursts are
/// remembered, too.
pub const LONG_SPAN_MS: i64 = LONG_BUCKET_MS * LONG_BUCKETS as i64;

/// Figures of one window at one instant.
#[derive(Debug, Clone, Copy)]
pub struct WindowEval {
    pub counts: Counts,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Suspicious follows organic traffic of this size brings (prior share × follows).
    pub expected: f32,
    /// Suspicious follows above `expected`.
    pub excess: f32,
    /// What `excess` must reach to fire (minimum excess or the Poisson z bar).
    pub threshold: f32,
}

impl WindowEval {
    /// Suspicious share of the window's follows (0 when it holds none).
    pub fn share(&self) -> f32 {
        if self.counts.follows == 0 {
            0.0
        } else {
            self.counts.suspicious as f32 / self.counts.follows as f32
        }
    }
}

/// A followee's figures at one instant: both windows and the follow rate against its own
/// baseline. What the trigger and hold rules read and what alert records report.
#[derive(Debug, Clone, Copy)]
pub struct Eval {
    pub short: WindowEval,
    pub long: WindowEval,
    /// Follows in the short window against the followee's baseline, as a Poisson z-score.
    pub rate_z: f32,
}

impl Eval {
    /// The window an alert of `kind` is about: the short one for a burst, the long one
    /// for a drip or a cohort.
    pub fn window(&self, kind: AlertKind) -> WindowEval {
        match kind {
            AlertKind::Burst => self.short,
            AlertKind::Drip | AlertKind::Cohort => self.long,
        }
    }
}

/// The followee's prior suspicious share: its own learned share shrunk towards the floor,
/// or the floor alone while its history is short.
fn prior_share(cfg: &DetectorConfig, w: &FolloweeWindow) -> f32 {
    let floor = cfg.p_floor;
    if !cfg.use_own_baseline || w.history < cfg.min_history {
        return floor;
    }
    let m = cfg.prior_weight;
    ((w.base_suspicious + floor * m) / (w.base_follows + m)).max(floor)
}

/// Short and long window figures of window `w` at time `t`, and the rate z-score. No
/// window (not tracked): empty figures that fire nothing.
pub fn evaluate(cfg: &DetectorConfig, w: Option<&FolloweeWindow>, t: i64) -> Eval {
    let Some(w) = w else {
        let empty = WindowEval {
            counts: Counts::default(),
            start_ms: t,
            end_ms: t,
            expected: 0.0,
            excess: 0.0,
            threshold: f32::INFINITY,
        };
        return Eval {
            short: empty,
            long: empty,
            rate_z: 0.0,
        };
    };
    let p0 = prior_share(cfg, w);
    let s_at = bucket_index(t, SHORT_BUCKET_MS);
    let l_at = bucket_index(t, LONG_BUCKET_MS);
    let eval = |counts: Counts, at: u32, width: i64, n: usize, min_excess: f32| {
        let expected = p0 * counts.follows as f32;
        let excess = counts.suspicious as f32 - expected;
        let threshold = min_excess.max(cfg.z * expected.max(1.0).sqrt());
        let end_ms = (i64::from(at) + 1) * width;
        WindowEval {
            counts,
            start_ms: end_ms - width * n as i64,
            end_ms,
            expected,
            excess,
            threshold,
        }
    };
    let short = eval(
        w.short_sum(s_at),
        s_at,
        SHORT_BUCKET_MS,
        SHORT_BUCKETS,
        cfg.short_min_excess,
    );
    let long = eval(
        w.long_sum(l_at),
        l_at,
        LONG_BUCKET_MS,
        LONG_BUCKETS,
        cfg.long_min_excess,
    );
    // Baseline follows per short window: own EWMA per 3 h bucket scaled to the short
    // span, floored for accounts with little history.
    let per_ms = if w.history >= cfg.min_history {
        w.base_follows / LONG_BUCKET_MS as f32
    } else {
        0.0
    };
    let floor_per_ms = cfg.rate_floor_per_hour / 3_600_000.0;
    let mu = per_ms.max(floor_per_ms) * SHORT_SPAN_MS as f32;
    let rate_z = (short.counts.follows as f32 - mu) / mu.max(1e-3).sqrt();
    Eval {
        short,
        long,
        rate_z,
    }
}

/// Which trigger, if any, the figures `e` of a followee without an open alert fire: a
/// burst (short window), a drip (long window), or a creation-date cohort (follow rate far
/// above the baseline, a smaller model-backed excess, and a batched creation histogram).
pub fn fires(cfg: &DetectorConfig, w: Option<&FolloweeWindow>, e: &Eval) -> Option<AlertKind> {
    let (short, long) = (&e.short, &e.long);
    let short_ok = short.excess >= short.threshold
        && short.share() >= cfg.short_min_share
        && (!cfg.use_rate || e.rate_z >= cfg.rate_z_min);
    if short_ok {
        return Some(AlertKind::Burst);
    }
    if long.excess >= long.threshold && long.share() >= cfg.long_min_share {
        return Some(AlertKind::Drip);
    }
    if cfg.creation_trigger
        && e.rate_z >= cfg.rate_z_min
        && long.excess
            >= cfg
                .creation_min_excess
                .max(cfg.z * long.expected.max(1.0).sqrt())
        && creation_batched(cfg, w)
    {
        return Some(AlertKind::Cohort);
    }
    None
}

/// Whether an open alert's burst is still going: either excess above `hold_fraction` of
/// its threshold, or (cohort trigger) the batched cohort still dominating recent
/// followers with half the model-backed excess. Hysteresis, so alerts do not flap.
pub fn is_hot(cfg: &DetectorConfig, w: Option<&FolloweeWindow>, e: &Eval) -> bool {
    if e.short.excess >= cfg.hold_fraction * e.short.threshold
        || e.long.excess >= cfg.hold_fraction * e.long.threshold
    {
        return true;
    }
    cfg.creation_trigger
        && e.long.excess >= cfg.hold_fraction * cfg.creation_min_excess
        && creation_batched(cfg, w)
}

/// Whether the followee's recent followers were created in one batch: enough of them in
/// the decayed creation histogram, and most in two adjacent account-age bins.
fn creation_batched(cfg: &DetectorConfig, w: Option<&FolloweeWindow>) -> bool {
    w.is_some_and(|w| {
        let (total, pair) = w.creation_batch();
        total >= cfg.creation_min_followers
            && pair as f32 >= cfg.creation_concentration_min * total as f32
    })
}
