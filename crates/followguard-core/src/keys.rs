//! Hashing ids into table keys: the detector's moderation de-duplication and campaign
//! links, and the evidence store's per-followee lookups, key their maps by it.

/// Stable 64-bit FNV-1a hash of an id: table keys (not ids on the wire).
pub fn key_of(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
