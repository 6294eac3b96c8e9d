//! Issue 21: revoked partitions are handed over before they are released. The consumer
//! context does not complete a revoke inside librdkafka's callback while the consume loop
//! runs ([`RebalanceEvent::Revoking`]); the loop first hands over everything it holds
//! (the batch in hand, with the state it changed), waits until the acknowledgement task
//! has acknowledged every batch handed over (outputs, then changelog state, then offsets
//! stored), commits the offsets, drops the partitions' state and only then releases them
//! (`incremental_unassign` under cooperative-sticky, `unassign` under an eager strategy).
//! librdkafka goes on with the rebalance after that call, so the next owner's restore
//! reads the state this instance logged for those partitions. With cooperative-sticky
//! only the partitions named are dropped and released; the others keep their state and
//! their input.
//!
//! Records of partitions this instance does not own (fetched before a revoke, returned
//! after it) are not processed: the next owner reads them from the committed offset.

use super::consume::Service;
use crate::kafka::{self, RebalanceEvent};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::time::{Duration, Instant};

/// Longest a revoke waits for what was handed over to be acknowledged before it releases
/// its partitions anyway (an output outage): well under librdkafka's default
/// `max.poll.interval.ms` (5 min), since the loop does not poll meanwhile.
pub(super) const REVOKE_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The final commit of a revoke.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the acknowledgement task is: batches handed to it and batches it has finished
/// (outputs and state acknowledged, offsets stored).
pub(super) struct HandOver {
    pub handed: u64,
    pub acked: tokio::sync::watch::Receiver<u64>,
    /// A batch over the in-flight budget waits in `wait_paused`, not handed over yet.
    pub holding: bool,
}

impl HandOver {
    pub fn new(acked: tokio::sync::watch::Receiver<u64>) -> HandOver {
        HandOver {
            handed: 0,
            acked,
            holding: false,
        }
    }

    /// Waits until every batch handed over is acknowledged (a held one cannot be until
    /// the window frees: it is not waited for). Returns false after `timeout`, when the
    /// acknowledgement task stopped, or when a batch is held (its state is not logged).
    async fn settled(&self, timeout: Duration) -> bool {
        let target = self.handed.saturating_sub(u64::from(self.holding));
        let mut rx = self.acked.clone();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|&n| n >= target)).await,
            Ok(Ok(_))
        ) && !self.holding
    }
}

impl Service<'_> {
    /// Whether input partition `p` is this instance's now.
    pub(super) fn owns(&self, p: i32) -> bool {
        self.owned.contains(&p)
    }

    /// A revoke the context left to the loop: hands the partitions over, drops their
    /// state and releases them.
    pub(super) async fn hand_over_revoked(&mut self, parts: &[i32]) {
        let started = Instant::now();
        let mut complete = self.hand_over.settled(REVOKE_FLUSH_TIMEOUT).await;
        if complete {
            let c = self.consumer.clone();
            let commit =
                tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync));
            complete = match tokio::time::timeout(COMMIT_TIMEOUT, commit).await {
                Ok(Ok(Ok(())))
                | Ok(Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)))) => true,
                Ok(Ok(Err(e))) => {
                    tracing::warn!(error = %e, partitions = ?parts, "offset commit on revoke failed");
                    false
                }
                _ => false,
            };
        } else {
            tracing::warn!(partitions = ?parts, timeout_s = REVOKE_FLUSH_TIMEOUT.as_secs(),
                "revoked partitions released before their outputs and state were acknowledged; the next owner re-processes from the committed offset");
        }
        self.drop_partitions(parts);
        self.release(parts);
        let secs = started.elapsed().as_secs_f64();
        self.metrics.revoke_flushed(secs, complete);
        tracing::info!(partitions = ?parts, seconds = secs, complete, "revoked partitions handed over and released");
    }

    /// Drops revoked partitions' state (detector, evidence, webhook resends).
    pub(super) fn drop_partitions(&mut self, parts: &[i32]) {
        if let Some(w) = &self.webhook {
            w.forget_partitions(parts.to_vec());
        }
        for &p in parts {
            self.owned.remove(&p);
            self.in_state.remove(&p);
            if let Some(c) = self.changelog.as_mut() {
                c.forget(p);
            }
            self.pipeline.drop_partition(p);
            self.evidence().drop_partition(p);
        }
        self.metrics
            .set_tracked_followees(self.pipeline.tracked_followees());
    }

    /// Completes a deferred revoke in librdkafka.
    fn release(&self, parts: &[i32]) {
        if let Err(e) = kafka::release_revoked(&*self.consumer, &self.cfg.input_topic, parts) {
            tracing::warn!(error = %e, partitions = ?parts, "releasing revoked partitions failed");
        }
        let n = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.admin.set_assigned_partitions(n);
    }

    /// The loop has ended: revokes still queued are released at once (the drain
    /// acknowledges what was handed over), and later ones complete inside the callback.
    pub(super) fn release_unfinished_revokes(&mut self) {
        self.defer_revoke
            .store(false, std::sync::atomic::Ordering::Release);
        let queued: Vec<RebalanceEvent> = match self.rebalances.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for ev in queued {
            if let RebalanceEvent::Revoking(parts) = ev {
                self.release(&parts);
                self.metrics.revoke_flushed(0.0, false);
            }
        }
    }

    /// Records assigned partitions as owned (their state is restored or rebuilt next).
    pub(super) fn take_ownership(&mut self, parts: &[i32]) {
        self.owned.extend(parts.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_revoke_waits_for_every_batch_handed_over() {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let mut h = HandOver::new(rx);
        let short = Duration::from_millis(30);
        assert!(h.settled(short).await, "nothing handed over yet");
        h.handed = 2;
        tx.send_replace(1);
        assert!(!h.settled(short).await, "one batch still unacknowledged");
        // Acknowledged while the revoke waits.
        let waiter = tokio::spawn(async move {
            let ok = h.settled(Duration::from_secs(5)).await;
            (h, ok)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send_replace(2);
        let (mut h, ok) = waiter.await.unwrap();
        assert!(ok);
        // A batch held back by the in-flight budget is not handed over: incomplete.
        h.handed = 3;
        h.holding = true;
        assert!(!h.settled(short).await);
        // The acknowledgement task ended: incomplete, and no hang.
        h.holding = false;
        h.handed = 4;
        drop(tx);
        assert!(!h.settled(Duration::from_secs(5)).await);
    }
}
