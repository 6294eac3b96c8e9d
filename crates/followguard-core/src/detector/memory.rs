//! What the detector's state holds, for reports (DETECTION.md, BENCHMARKS.md) and the
//! memory tests.

use super::lifecycle::OpenAlert;
use super::Detector;
use crate::alert::ReasonCount;
use crate::expiry::ExpiryIndex;
use crate::window::{FolloweeId, TableMemory};
use std::mem::size_of;

/// Memory held by the detector, for reporting (see DETECTION.md, BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    pub tracked_followees: usize,
    /// Slab slots (tracked + free).
    pub followee_table_capacity: usize,
    /// `size_of` of one slot (exact id + window).
    pub followee_entry_bytes: usize,
    /// Followee table bytes (slots, index, non-numeric ids, free list) plus the idle
    /// eviction index, per tracked followee.
    pub followee_bytes_per_tracked: usize,
    /// Bytes of the idle-eviction index (one 4-byte entry per tracked followee, plus
    /// stale entries and bucket overhead).
    pub idle_index_bytes: usize,
    /// Bytes of the other expiry indexes (pending, moderation dedup, lockstep).
    pub expiry_index_bytes: usize,
    /// The followee table's bytes by part.
    pub followee_table: TableMemory,
    pub pending_flagged: usize,
    /// Bytes held by pending flagged follows (queues, ids, map entries).
    pub pending_bytes: usize,
    pub open_alerts: usize,
    pub moderation_dedup_entries: usize,
    pub lockstep_followers: usize,
    /// Issue #19, memory in bytes: open alerts (state, ids, sample ids, reasons).
    pub open_alert_bytes: usize,
    /// Campaign links (nodes, follower lists, overlaps).
    pub lockstep_bytes: usize,
    /// Burst starts of resolved alerts (entries and followee keys).
    pub last_burst_bytes: usize,
    /// Moderation de-duplication (entries; keyed by id hash, no ids).
    pub moderation_dedup_bytes: usize,
    /// Account-id bytes held anywhere in the detector: followee keys (table, pending,
    /// last bursts), pending follower and event ids, open alerts' ids and samples,
    /// campaign nodes' ids. Each is at most `max_id_bytes` (followee keys at most
    /// `ID_DIGEST_ABOVE`), and every holder is bounded in count or bytes.
    pub id_bytes: usize,
    /// Pending flagged follows: bytes held against `pending_max_bytes`, and follows
    /// refused because it was full.
    pub pending_budget_bytes: usize,
    pub pending_refused: u64,
}

impl MemoryReport {
    /// Bytes held by the detector's state, all parts.
    pub fn total_bytes(&self) -> usize {
        self.followee_bytes_per_tracked * self.tracked_followees
            + self.expiry_index_bytes
            + self.pending_bytes
            + self.open_alert_bytes
            + self.lockstep_bytes
            + self.last_burst_bytes
            + self.moderation_dedup_bytes
    }
}

/// Bytes of open alert `a`, and of those its id bytes.
fn open_alert_bytes(a: &OpenAlert) -> (usize, usize) {
    let ids = a.alert_id.capacity()
        + a.followee_id.capacity()
        + a.sample.iter().map(String::capacity).sum::<usize>()
        + a.campaign_id.as_ref().map_or(0, String::capacity);
    let rest = size_of::<(u64, OpenAlert)>()
        + a.sample.capacity() * size_of::<String>()
        + a.reasons.capacity() * size_of::<ReasonCount>();
    (ids + rest, ids)
}

impl Detector {
    /// Memory held, for reports and the memory test.
    pub fn memory_report(&self) -> MemoryReport {
        let table = self.followees.memory();
        let idle_index_bytes: usize = self.idle_due.values().map(ExpiryIndex::heap_bytes).sum();
        let (open_alert_bytes, open_ids) = self
            .open
            .values()
            .map(open_alert_bytes)
            .fold((0, 0), |(b, i), (x, y)| (b + x, i + y));
        let (lockstep_bytes, lockstep_ids) = self.lockstep.bytes();
        let burst_ids: usize = self.last_burst.keys().map(FolloweeId::heap_bytes).sum();
        let last_burst_bytes =
            self.last_burst.len() * size_of::<(FolloweeId, (i64, i64))>() + burst_ids;
        let (pending_budget_bytes, pending_refused) = self.pending.budget();
        MemoryReport {
            tracked_followees: self.followees.len(),
            followee_table_capacity: table.slots,
            followee_entry_bytes: table.slot_bytes,
            followee_bytes_per_tracked: (table.total() + idle_index_bytes)
                .checked_div(self.followees.len())
                .unwrap_or(0),
            idle_index_bytes,
            expiry_index_bytes: self.pending.index_bytes()
                + self.moderated.index_bytes()
                + self.lockstep.index_bytes(),
            followee_table: table,
            pending_flagged: self.pending.len(),
            pending_bytes: self.pending.bytes(),
            open_alerts: self.open.len(),
            moderation_dedup_entries: self.moderated.entries(),
            lockstep_followers: self.lockstep.followers(),
            open_alert_bytes,
            lockstep_bytes,
            last_burst_bytes,
            moderation_dedup_bytes: self.moderated.entries() * size_of::<(u64, i64)>(),
            id_bytes: table.id_heap_bytes
                + self.pending.id_bytes()
                + open_ids
                + lockstep_ids
                + burst_ids,
            pending_budget_bytes,
            pending_refused,
        }
    }
}
