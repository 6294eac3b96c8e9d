//! Time-bucketed expiry index: which keys of a map may hold state older than a cutoff,
//! so the detector's periodic maintenance visits only those instead of every entry.
//!
//! Pure core: no I/O, no clock; times are event-time milliseconds supplied by the caller.
//!
//! The contract with the map it indexes: **every key in the map has an entry in a bucket
//! no later than the bucket of the key's oldest time.** Keys are filed when they enter the
//! map (and again whenever their oldest time moves to an earlier bucket); times that move
//! forward need nothing. [`ExpiryIndex::due`] hands back, deduplicated, the keys filed in
//! buckets up to the cutoff's; the caller drops their expired state and re-files the keys
//! that still hold something at that something's time. Each key therefore costs one
//! entry and is looked at about once per expiry period, whatever the map's size: the
//! sweep's work is proportional to what expires, not to what is held.
//!
//! Stale entries (a key removed from the map by other means and perhaps re-added) are
//! harmless: the caller finds the key absent, or finds its current state and re-files
//! it, and duplicates merge when they fall due together.

use std::collections::BTreeMap;

/// Keys filed by the bucket of an event time. See the module docs for the contract.
#[derive(Debug, Clone)]
pub struct ExpiryIndex<K> {
    width_ms: i64,
    buckets: BTreeMap<i64, Vec<K>>,
    entries: usize,
}

impl<K: Ord + Clone> ExpiryIndex<K> {
    /// An empty index with buckets `width_ms` wide (clamped to at least 1 ms). The width
    /// trades how many entries fall due early (and are re-filed) against the number of
    /// buckets; the detector uses its sweep period.
    pub fn new(width_ms: i64) -> Self {
        ExpiryIndex {
            width_ms: width_ms.max(1),
            buckets: BTreeMap::new(),
            entries: 0,
        }
    }

    fn bucket(&self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.width_ms)
    }

    /// Files `key` under the bucket of `at_ms`.
    pub fn file(&mut self, key: K, at_ms: i64) {
        let b = self.bucket(at_ms);
        self.buckets.entry(b).or_default().push(key);
        self.entries += 1;
    }

    /// Whether moving a key's oldest time from `old_ms` to `new_ms` needs a new entry
    /// (it does when the new time falls in an earlier bucket).
    pub fn needs_refile(&self, old_ms: i64, new_ms: i64) -> bool {
        self.bucket(new_ms) < self.bucket(old_ms)
    }

    /// Removes and returns, sorted and deduplicated, the keys filed in buckets up to and
    /// including the one holding `cutoff_ms`. Keys whose state is older than the cutoff
    /// are among them; the caller re-files those it keeps.
    pub fn due(&mut self, cutoff_ms: i64) -> Vec<K> {
        let last = self.bucket(cutoff_ms);
        if self
            .buckets
            .first_key_value()
            .is_none_or(|(&b, _)| b > last)
        {
            return Vec::new();
        }
        let later = match last.checked_add(1) {
            Some(next) => self.buckets.split_off(&next),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.buckets, later);
        let mut keys: Vec<K> = due.into_values().flatten().collect();
        self.entries -= keys.len();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Entries held (including stale ones).
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes held: the entries' vectors (capacity) and the bucket map's nodes (estimated
    /// per bucket).
    pub fn heap_bytes(&self) -> usize {
        let per_bucket = std::mem::size_of::<(i64, Vec<K>)>() * 3 / 2;
        self.buckets
            .values()
            .map(|v| v.capacity() * std::mem::size_of::<K>() + per_bucket)
            .sum()
    }

    /// Forgets everything (the caller re-files what it still holds).
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.entries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn due_returns_keys_up_to_the_cutoff_bucket_once() {
        let mut ix = ExpiryIndex::new(10);
        ix.file(1u32, 5);
        ix.file(2, 15);
        ix.file(1, 7);
        ix.file(3, 25);
        ix.file(4, -3);
        assert_eq!(ix.len(), 5);
        assert_eq!(ix.due(3), vec![1, 4], "buckets -1 and 0; key 1 once");
        assert_eq!(
            ix.due(3),
            Vec::<u32>::new(),
            "nothing left up to the cutoff"
        );
        assert_eq!(ix.due(19), vec![2]);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.due(i64::MAX), vec![3]);
        assert!(ix.is_empty());
        assert_eq!(ix.heap_bytes(), 0);
    }

    #[test]
    fn refile_is_needed_only_for_an_earlier_bucket() {
        let ix: ExpiryIndex<u32> = ExpiryIndex::new(10);
        assert!(ix.needs_refile(25, 19));
        assert!(!ix.needs_refile(25, 21));
        assert!(!ix.needs_refile(25, 99));
    }

    /// The contract in use: a map of key → time swept by a cutoff through the index
    /// ends exactly as `retain(time >= cutoff)` on the same map, whatever the updates.
    #[test]
    fn indexed_sweep_matches_retain() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut indexed: HashMap<u64, i64> = HashMap::new();
        let mut plain: HashMap<u64, i64> = HashMap::new();
        let mut ix = ExpiryIndex::new(100);
        let mut now = 0i64;
        for step in 0..20_000 {
            now += i64::try_from(next(7)).unwrap_or(0);
            let key = next(500);
            // Mostly current times, sometimes late ones (earlier buckets).
            let t = now - i64::try_from(next(if step % 5 == 0 { 400 } else { 20 })).unwrap_or(0);
            plain.insert(key, t);
            match indexed.insert(key, t) {
                None => ix.file(key, t),
                Some(old) if ix.needs_refile(old, t) => ix.file(key, t),
                Some(_) => {}
            }
            if step % 50 == 0 {
                let cutoff = now - 300;
                plain.retain(|_, &mut v| v >= cutoff);
                for k in ix.due(cutoff) {
                    match indexed.get(&k) {
                        Some(&v) if v < cutoff => {
                            indexed.remove(&k);
                        }
                        Some(&v) => ix.file(k, v),
                        None => {}
                    }
                }
                assert_eq!(indexed, plain, "step {step}");
                assert!(ix.len() <= 2 * indexed.len() + 64, "entries stay bounded");
            }
        }
    }
}
