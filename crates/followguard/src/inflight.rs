//! Bytes of output records awaiting broker acknowledgement (issue #19: in-flight work
//! bounded in bytes, not only in events). `serve` adds a record's bytes when it hands it
//! to the producer and the acknowledgement task releases them once the event's records
//! are settled; while more than `--max-in-flight-bytes` are held the input is paused
//! exactly as when `--max-in-flight` events are.

use crate::kafka::OutRecord;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Per-record bookkeeping librdkafka and our queues add to the bytes themselves.
const RECORD_OVERHEAD: usize = 128;

/// Shared counter of held bytes with its budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InFlightBytes {
    held: Arc<AtomicUsize>,
    budget: usize,
}

impl InFlightBytes {
    pub fn new(budget: usize) -> Self {
        InFlightBytes {
            held: Arc::new(AtomicUsize::new(0)),
            budget,
        }
    }

    pub fn add(&self, n: usize) {
        self.held.fetch_add(n, Ordering::Relaxed);
    }

    pub fn release(&self, n: usize) {
        // Never below zero, whatever the caller passes.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub fn over_budget(&self) -> bool {
        self.held() > self.budget
    }

    /// Over budget counting only what is held besides `own` (the bytes of the batch about
    /// to be handed over, which can only be released after it is): waiting on this never
    /// deadlocks, and memory stays within the budget plus one batch.
    pub fn over_budget_besides(&self, own: usize) -> bool {
        self.held().saturating_sub(own) > self.budget
    }
}

/// Bytes one output record holds until acknowledged (payload, key, headers, overhead).
pub fn record_bytes(rec: &OutRecord) -> usize {
    rec.payload.len()
        + rec.key.len()
        + rec
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + RECORD_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Sink;

    #[test]
    fn held_bytes_follow_adds_and_releases_and_never_underflow() {
        let b = InFlightBytes::new(1000);
        let rec = OutRecord {
            sink: Sink::Alerts,
            key: b"k".to_vec(),
            payload: vec![0; 900],
            headers: vec![("h", b"v".to_vec())],
        };
        let n = record_bytes(&rec);
        assert_eq!(n, 900 + 1 + 2 + RECORD_OVERHEAD);
        b.add(n);
        assert!(b.over_budget());
        assert!(!b.over_budget_besides(n));
        b.clone().release(n);
        assert_eq!(b.held(), 0);
        b.release(5);
        assert_eq!(b.held(), 0);
        assert!(!b.over_budget());
    }
}
