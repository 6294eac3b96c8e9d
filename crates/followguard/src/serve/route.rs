//! Routing one observed event: its metrics, its output records (alerts, moderation,
//! dead letters) handed to the producers, its alerts to the webhook and its outcome to
//! the web view's evidence store.

use super::ack::Pending;
use super::consume::Service;
use crate::kafka::{self, OutRecord};
use crate::metrics::EventOutcome;
use crate::sink::Sink;
use crate::webhook::WebhookAlert;
use followguard_core::alert::AlertStatus;
use followguard_core::event::EventType;
use followguard_core::evidence::EvidenceStore;
use followguard_core::pipeline::Outcome;

/// One input record observed: its output records, not yet sent.
pub(super) struct Observed {
    pub partition: i32,
    pub offset: i64,
    pub records: Vec<OutRecord>,
    /// Issue #19: pages for the webhook, sent only once `records` are acknowledged.
    pub webhooks: Vec<WebhookAlert>,
}

/// `rec` as a record for `sink`, keyed by `key` (`what` names it in the error log should
/// it not serialise).
fn record(sink: Sink, key: &str, rec: &impl serde::Serialize, what: &str) -> Option<OutRecord> {
    match serde_json::to_vec(rec) {
        Ok(payload) => Some(OutRecord {
            sink,
            key: key.as_bytes().to_vec(),
            payload,
            headers: Vec::new(),
        }),
        Err(e) => {
            tracing::error!(error = %e, "{what} not serialisable");
            None
        }
    }
}

impl Service<'_> {
    /// Counts the outcome and turns its alerts and moderation records into output
    /// records (alerts also become webhook pages, sent once their records are
    /// acknowledged); an `open` the alerts topic already holds (re-processing after a
    /// crash) is suppressed.
    pub(super) fn outcome_records(
        &self,
        o: &Outcome,
        partition: i32,
        out: &mut Vec<OutRecord>,
        webhooks: &mut Vec<WebhookAlert>,
    ) {
        let suspicious = o.suspicious;
        self.metrics.event(if suspicious {
            EventOutcome::Suspicious
        } else {
            EventOutcome::Clean
        });
        self.metrics.follower_scored(
            f64::from(o.score.prob),
            o.kind == followguard_core::event::EventType::Follow,
            o.suspicious_follow(),
        );
        self.metrics
            .event_age_seconds((self.now_ms - o.event_time_ms) as f64 / 1000.0);
        // Issue #19 hook: clamped / clock-jump events counted.
        self.metrics.event_time_placed(o.placement);
        // Issue 24: what moderators' verdicts changed; the shadow model's verdict.
        self.metrics
            .input
            .decision_effect(o.decision, o.suppressed_records);
        if let (Some(p), Some(shadow), EventType::Follow) =
            (o.shadow_prob, self.pipeline.shadow(), o.kind)
        {
            self.metrics
                .input
                .shadow_follow(o.suspicious, p >= shadow.threshold());
        }
        for a in &o.alerts {
            if a.status == AlertStatus::Open && self.already_open.contains(&a.alert_id) {
                // Re-processing after a crash: this open is already on the topic.
                self.metrics.duplicate_open_suppressed();
                continue;
            }
            self.metrics
                .alert_emitted(a.kind.as_str(), a.severity.as_str(), a.status.as_str());
            out.extend(record(Sink::Alerts, a.key(), a, "alert"));
            if self.webhook_on {
                webhooks.push(WebhookAlert::from_alert(a, partition));
            }
        }
        if o.judgment_withheld {
            // Issue #20: counted where outcomes are counted (see core's newcomer.rs).
            self.metrics.judgment_withheld();
        }
        for r in &o.moderation {
            self.metrics.moderation_emitted();
            out.extend(record(Sink::Moderation, r.key(), r, "moderation record"));
        }
        // Issue 21: flagged follows, keyed by follower, for the link stage (links.rs).
        if self.cfg.links.is_some() {
            for l in &o.links {
                out.extend(record(Sink::Links, &l.follower_id, l, "flagged link"));
            }
        }
    }

    /// Hands an input record's output records to the producer; the deliveries to await
    /// before its offset may be stored.
    pub(super) async fn send_records(&mut self, o: Observed) -> Pending {
        let mut deliveries = Vec::with_capacity(o.records.len());
        let bytes: usize = o.records.iter().map(crate::inflight::record_bytes).sum();
        self.in_flight_bytes.add(bytes);
        for rec in o.records {
            let (producer, generation) = self.producers.for_sink(rec.sink).get_with_generation();
            let fut = kafka::send(&producer, &self.topics, &rec).await;
            if let Err(e) = &fut {
                tracing::warn!(error = %e, sink = rec.sink.as_str(), "produce failed");
            }
            deliveries.push((rec, fut, generation));
        }
        Pending {
            partition: o.partition,
            offset: o.offset,
            deliveries,
            webhooks: o.webhooks,
            bytes,
            state: Vec::new(),
        }
    }

    /// Feeds the web view's evidence store (a short, uncontended lock per event).
    pub(super) fn note_evidence(&self, o: &Outcome, partition: i32) {
        self.evidence().observe_partition(o, partition);
    }

    pub(super) fn evidence(&self) -> std::sync::MutexGuard<'_, EvidenceStore> {
        self.admin
            .evidence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
