//! The alert lifecycle of one followee: `open` when a trigger fires, rate-limited
//! `update`s while the burst grows, `resolved` once it has been quiet for
//! `resolve_after_ms`; and what an open alert collects meanwhile (flagged followers,
//! their reasons, a sample of ids).

use super::triggers::{self, Eval};
use super::{Detector, Emitted, FlaggedFollow, Observation, DETECTOR_VERSION};
use crate::age::AGE_BINS;
use crate::alert::{self, Alert, AlertKind, AlertStatus, ReasonCount, Severity, SCHEMA_VERSION};
use crate::bounds::json_str_len;
use crate::keys::key_of;
use crate::time::format_rfc3339_ms;
use crate::window::{FolloweeId, LONG_BUCKET_MS};

/// State of an alert between `open` and `resolved`. Only alerted followees have one.
#[derive(Debug, Clone)]
pub(super) struct OpenAlert {
    pub alert_id: String,
    /// Its node in the campaign links (`key_of(alert_id)`).
    pub link_key: u64,
    pub followee_id: String,
    pub kind: AlertKind,
    pub burst_start_ms: i64,
    pub last_hot_ms: i64,
    pub last_update_ms: i64,
    pub last_reported_suspicious: u32,
    pub peak_excess: f32,
    pub flagged: u32,
    pub score_sum: f64,
    pub reasons: Vec<ReasonCount>,
    pub sample: Vec<String>,
    /// Issue #19: JSON bytes of `sample` (ids, quotes, commas), and the ids left out of
    /// it for the record's byte budget.
    pub sample_bytes: usize,
    pub samples_truncated: u32,
    pub campaign_id: Option<String>,
    pub campaign_followees: u32,
    /// Issue #19: campaign size in this alert's last campaign `update` (rate limit,
    /// `campaign_rate`).
    pub campaign_reported: u32,
    /// Issue #20: flagged follows by too-new accounts withheld during this alert.
    pub withheld_too_new: u32,
    /// Issue #20: accounts in the tight registration band when the newcomer channel
    /// opened this alert (0 when another trigger did).
    pub newcomer_batch: u32,
}

/// What opening an alert needs: the followee's slot, the event that fired (placed at
/// `t`), which trigger fired and the figures it fired on.
pub(super) struct Opening<'o, 'a> {
    pub key: u64,
    pub obs: &'o Observation<'a>,
    pub t: i64,
    pub kind: AlertKind,
    pub eval: Eval,
}

impl Detector {
    /// Opens followee `at.key`'s alert: the `open` record, moderation records for the
    /// flagged follows of the firing window (those remembered before and the one that
    /// fired), and updates of alerts whose campaign this links.
    pub(super) fn open_alert(&mut self, at: Opening<'_, '_>, out: &mut Emitted) {
        let Opening {
            key,
            obs: o,
            t,
            kind,
            eval,
        } = at;
        let window = eval.window(kind);
        let mut burst_start = window.start_ms;
        let followee = FolloweeId::new(o.followee_id);
        if let Some(&(prev, _)) = self.last_burst.get(&followee) {
            if burst_start <= prev {
                burst_start = prev + 1;
            }
        }
        let alert_id = alert::alert_id(o.followee_id, burst_start);
        let link_key = key_of(&alert_id);
        self.open.insert(
            key,
            OpenAlert {
                alert_id,
                link_key,
                followee_id: o.followee_id.to_string(),
                kind,
                burst_start_ms: burst_start,
                last_hot_ms: t,
                last_update_ms: t,
                last_reported_suspicious: window.counts.suspicious,
                peak_excess: window.excess,
                flagged: 0,
                score_sum: 0.0,
                reasons: Vec::new(),
                sample: Vec::new(),
                sample_bytes: 0,
                samples_truncated: 0,
                campaign_id: None,
                campaign_followees: 1,
                campaign_reported: 1,
                withheld_too_new: 0,
                newcomer_batch: 0,
            },
        );
        if let Some(w) = self.win_mut(key) {
            w.frozen = true;
        }
        // Flagged follows seen before the alert opened belong to the burst if they fall
        // in the firing window.
        let earlier = self.pending.take(&followee, window.start_ms);
        let mut records = Vec::new();
        let mut relinked = Vec::new();
        for f in &earlier {
            let reasons = self.pending.reasons(f);
            let (m, r) = self.take_flagged(
                key,
                &FlaggedFollow {
                    follower_id: f.follower_id(),
                    event_id: f.event_id(),
                    ts_ms: f.ts_ms,
                    prob: f.prob,
                    reasons,
                },
            );
            records.extend(m);
            relinked.extend(r);
        }
        let (m, r) = self.take_flagged(key, &FlaggedFollow::observed(o, t));
        records.extend(m);
        relinked.extend(r);
        if let Some(a) = self.build_alert(key, AlertStatus::Open, t, &eval) {
            out.alerts.push(a);
        }
        // Moderation records carry the campaign id known at emission time.
        out.moderation.extend(records);
        self.emit_relinked(relinked, Some(key), t, out);
    }

    /// A flagged follow `o` (placed at `t`) of followee `key`, whose alert is open.
    pub(super) fn flag_in_alert(
        &mut self,
        key: u64,
        o: &Observation<'_>,
        t: i64,
        out: &mut Emitted,
    ) {
        let (m, relinked) = self.take_flagged(key, &FlaggedFollow::observed(o, t));
        out.moderation.extend(m);
        self.emit_relinked(relinked, None, t, out);
    }

    /// Takes suspicious follow `f` into followee `key`'s open alert when it is flagged
    /// (prob ≥ `flag_threshold`): its evidence, its moderation record (unless
    /// de-duplicated) and the campaign links it adds (the followee keys whose campaign
    /// membership changed).
    fn take_flagged(
        &mut self,
        key: u64,
        f: &FlaggedFollow<'_>,
    ) -> (Option<crate::alert::ModerationRecord>, Vec<u64>) {
        // Counted by the windows but under the flag threshold: no record, no evidence.
        if !self.flags(f.prob) {
            return (None, Vec::new());
        }
        self.note_flagged(key, f);
        self.note_link(key, f);
        let record = self.moderation_for(key, f);
        (record, self.lockstep_note(key, f.follower_id, f.ts_ms))
    }

    /// Folds a flagged follower into its open alert's evidence.
    fn note_flagged(&mut self, key: u64, f: &FlaggedFollow<'_>) {
        let sample_size = self.cfg.sample_size;
        // The fixed part allows a model version of up to 1 KiB; a longer one costs samples.
        let fixed = crate::bounds::RECORD_FIXED_BYTES
            + json_str_len(&self.cfg.model_version).saturating_sub(1024);
        let max_record = self.cfg.max_record_bytes;
        let Some(a) = self.open.get_mut(&key) else {
            return;
        };
        a.flagged += 1;
        a.score_sum += f64::from(f.prob);
        if a.sample.len() < sample_size {
            // Issue #19: the record stays within `max_record_bytes` (fixed fields, the
            // followee id, then the sample ids with their commas).
            let budget = max_record
                .saturating_sub(fixed)
                .saturating_sub(json_str_len(&a.followee_id));
            let need = json_str_len(f.follower_id) + 1;
            if a.sample_bytes + need <= budget {
                a.sample.push(f.follower_id.to_string());
                a.sample_bytes += need;
            } else {
                a.samples_truncated = a.samples_truncated.saturating_add(1);
            }
        }
        for (code, _) in &f.reasons {
            if code.is_empty() {
                continue;
            }
            match a.reasons.iter_mut().find(|r| r.code == *code) {
                Some(r) => r.count += 1,
                None => a.reasons.push(ReasonCount { code, count: 1 }),
            }
        }
    }

    /// An `update` record when the alert's suspicious count grew by `update_growth` since
    /// the last record and the last one is `update_min_interval_ms` old.
    pub(super) fn maybe_update(&mut self, key: u64, t: i64, eval: &Eval, out: &mut Emitted) {
        let (interval, growth) = (self.cfg.update_min_interval_ms, self.cfg.update_growth);
        let Some(a) = self.open.get_mut(&key) else {
            return;
        };
        let window = eval.window(a.kind);
        a.peak_excess = a.peak_excess.max(eval.short.excess).max(eval.long.excess);
        let grown =
            window.counts.suspicious as f32 >= a.last_reported_suspicious as f32 * (1.0 + growth);
        if grown && t - a.last_update_ms >= interval {
            a.last_update_ms = t;
            a.last_reported_suspicious = window.counts.suspicious;
            if let Some(rec) = self.build_alert(key, AlertStatus::Update, t, eval) {
                out.alerts.push(rec);
            }
        }
    }

    /// Issue #20: counts a withheld (too-new) follow on followee `key`'s open alert.
    pub(super) fn note_withheld(&mut self, key: u64, withheld: bool) {
        if let Some(a) = self.open.get_mut(&key) {
            a.withheld_too_new = a.withheld_too_new.saturating_add(u32::from(withheld));
        }
    }

    /// Notes that followee `key`'s open alert was hot at `t`.
    pub(super) fn mark_hot(&mut self, key: u64, t: i64) {
        if let Some(a) = self.open.get_mut(&key) {
            a.last_hot_ms = a.last_hot_ms.max(t);
        }
    }

    /// Resolves followee `key`'s alert if it has not been hot for `resolve_after`.
    pub(super) fn check_resolve(&mut self, key: u64, t: i64, out: &mut Emitted) {
        let eval = triggers::evaluate(&self.cfg, self.win(key), t);
        let resolve_after = self.cfg.resolve_after_ms;
        let hot = self.is_hot(key, &eval);
        let Some(a) = self.open.get_mut(&key) else {
            return;
        };
        if hot {
            a.last_hot_ms = a.last_hot_ms.max(t);
            return;
        }
        if t - a.last_hot_ms < resolve_after {
            return;
        }
        if let Some(rec) = self.build_alert(key, AlertStatus::Resolved, t, &eval) {
            out.alerts.push(rec);
        }
        if let Some(a) = self.open.remove(&key) {
            self.last_burst
                .insert(FolloweeId::new(&a.followee_id), (a.burst_start_ms, t));
            self.lockstep.part = self.slot_partition(key);
            self.lockstep.resolved(a.link_key, t);
        }
        if let Some(w) = self.win_mut(key) {
            w.frozen = false;
        }
        self.newcomer_resolved(key);
    }

    /// The record of followee `key`'s open alert at `t`, with the figures `eval`.
    pub(super) fn build_alert(
        &self,
        key: u64,
        status: AlertStatus,
        t: i64,
        eval: &Eval,
    ) -> Option<Alert> {
        let a = self.open.get(&key)?;
        let w = self.win(key)?;
        let window = eval.window(a.kind);
        let mut top = a.reasons.clone();
        top.sort_by(|x, y| y.count.cmp(&x.count).then(x.code.cmp(y.code)));
        top.truncate(5);
        let baseline_rate_per_hour = if w.history > 0 {
            w.base_follows * 3_600_000.0 / LONG_BUCKET_MS as f32
        } else {
            self.cfg.rate_floor_per_hour
        };
        let hist: [u16; AGE_BINS] = w.hist.map(u16::from);
        Some(Alert {
            schema_version: SCHEMA_VERSION,
            alert_id: a.alert_id.clone(),
            status,
            kind: a.kind,
            severity: Severity::from_excess(
                a.peak_excess.max(window.excess),
                a.campaign_followees > 1,
            ),
            followee_id: a.followee_id.clone(),
            event_time: format_rfc3339_ms(t),
            event_time_ms: t,
            burst_start: format_rfc3339_ms(a.burst_start_ms),
            window_start: format_rfc3339_ms(window.start_ms),
            window_end: format_rfc3339_ms(window.end_ms),
            new_followers: window.counts.follows,
            baseline_rate_per_hour,
            rate_z: eval.rate_z,
            suspicious_count: window.counts.suspicious,
            expected_suspicious: window.expected,
            suspicious_share: window.share(),
            mean_score: if a.flagged == 0 {
                0.0
            } else {
                (a.score_sum / f64::from(a.flagged)) as f32
            },
            creation_histogram: hist,
            creation_concentration: w.creation_concentration(),
            sample_follower_ids: a.sample.clone(),
            samples_truncated: a.samples_truncated,
            top_reasons: top,
            campaign_id: a.campaign_id.clone(),
            campaign_followees: a.campaign_followees,
            withheld_too_new: a.withheld_too_new,
            newcomer_batch: a.newcomer_batch,
            model_version: self.cfg.model_version.clone(),
            detector_version: DETECTOR_VERSION,
        })
    }
}
