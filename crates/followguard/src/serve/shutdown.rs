//! The drain after shutdown is requested, every step bounded by the grace period:
//! acknowledgements, the final offset commit, producer flush, webhook queue, admin
//! server, and leaving the group.

use super::Consumer_;
use crate::admin::AdminState;
use crate::kafka;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the drain stops, in order.
pub(super) struct Parts {
    pub grace: Duration,
    pub admin: Arc<AdminState>,
    /// The acknowledgement task (ends when everything handed to it is acknowledged).
    pub acker: JoinHandle<()>,
    /// Tells the acknowledgement task to stop waiting (the grace period is over).
    pub give_up: CancellationToken,
    pub consumer: Arc<Consumer_>,
    /// Issue 21: `--leave-group-on-shutdown`.
    pub leave_group: bool,
    pub producers: kafka::OutputProducers,
    /// The webhook's sender task; it drains once the acknowledgement task, which owns
    /// the webhook handle, has ended.
    pub webhook_task: Option<JoinHandle<()>>,
    pub admin_stop: CancellationToken,
    pub admin_task: JoinHandle<()>,
}

/// Fetching has stopped and the current event is finished; drains the acknowledgements,
/// commits, flushes, all before the grace deadline.
pub(super) async fn drain(p: Parts) {
    p.admin.set_draining();
    let deadline = Instant::now() + p.grace;
    let drained = tokio::time::timeout_at(deadline, p.acker).await.is_ok();
    if !drained {
        p.give_up.cancel();
        tracing::warn!("grace period ended before every output was acknowledged; their events will be redelivered");
    }
    let c = p.consumer.clone();
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
    let producers = p.producers;
    let _ = tokio::time::timeout_at(
        deadline,
        tokio::task::spawn_blocking(move || producers.flush(left)),
    )
    .await;
    if let Some(t) = p.webhook_task {
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            tracing::warn!("webhook queue not drained in the grace period");
        }
    }
    p.admin_stop.cancel();
    let _ = tokio::time::timeout_at(deadline, p.admin_task).await;
    // Closing the consumer leaves the group (unless `--leave-group-on-shutdown false`);
    // it can hang when the broker is gone.
    let (consumer, leave) = (p.consumer, p.leave_group);
    let close = tokio::task::spawn_blocking(move || match Arc::try_unwrap(consumer) {
        Ok(c) => kafka::close_group_consumer(c, leave),
        // Still shared (not expected once the loop and the acknowledgement task ended):
        // the last holder's drop closes it.
        Err(shared) => drop(shared),
    });
    if tokio::time::timeout_at(deadline + Duration::from_secs(1), close)
        .await
        .is_err()
    {
        tracing::warn!("consumer did not close in time; exiting anyway");
    }
}
