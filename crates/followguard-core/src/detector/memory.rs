//! What the detector's state holds, for reports (DETECTION.md, BENCHMARKS.md) and the
//! memory tests.

use super::Detector;
use crate::expiry::ExpiryIndex;
use crate::window::TableMemory;

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
}

impl Detector {
    /// Memory held, for reports and the memory test.
    pub fn memory_report(&self) -> MemoryReport {
        let table = self.followees.memory();
        let idle_index_bytes: usize = self.idle_due.values().map(ExpiryIndex::heap_bytes).sum();
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
        }
    }
}
