//! A guard around one librdkafka function, linked in with `ld --wrap` (build.rs): the
//! bundled librdkafka 2.12.1 (rdkafka-sys 4.10.0, the newest) crashes the process when a
//! Fetch or Produce response carries KIP-951 leader hints (`CurrentLeader` and
//! `NodeEndpoints` tags) for a topic with a zero topic id. Its leader-discovery code
//! never names the topic (the name is NULL), so with no id either,
//! `rd_kafka_metadata_update_op` looks the NULL name up in the metadata cache and
//! `strcmp` dereferences it (SIGSEGV). tansu answers the fetch of a deleted topic that way,
//! so deleting the input under `serve` killed it within ~50 ms (docs/state.md, "The input
//! topic deleted"; test `kafka_input_deleted`).
//!
//! The guard drops such entries from the update before librdkafka reads it: a hint about
//! a topic it cannot identify is one it could not apply anyway (for an entry with an id
//! it looks the id up, and warns and skips one it does not know). Every other entry, and
//! the broker list, go through unchanged. Remove it (and the link arguments in build.rs)
//! once librdkafka checks the name itself.

use rdkafka::bindings as rd;
use std::os::raw::{c_int, c_void};

/// librdkafka's `rd_kafka_metadata_topic_internal_t` (rdkafka_metadata.h, 2.12.1): what
/// the guard reads (the topic id) and moves.
#[repr(C)]
#[derive(Clone, Copy)]
struct TopicInternal {
    partitions: *mut c_void,
    id_msb: i64,
    id_lsb: i64,
    id_base64: [std::os::raw::c_char; 23],
    authorized_operations: i32,
    is_internal: c_int,
}

/// The head of librdkafka's `rd_kafka_metadata_internal_t`: the public metadata, then
/// the sorted brokers, the internal brokers, and the internal topics (one per topic).
#[repr(C)]
struct MetadataInternal {
    metadata: rd::rd_kafka_metadata_t,
    brokers_sorted: *mut c_void,
    brokers: *mut c_void,
    topics: *mut TopicInternal,
}

/// The librdkafka version whose internal layout `TopicInternal` and `MetadataInternal`
/// copy (2.12.1, `RD_KAFKA_VERSION` of the bundled library).
const LAYOUT_VERSION: c_int = 0x020c_01ff;

extern "C" {
    /// The original function (`ld --wrap` names it so).
    fn __real_rd_kafka_metadata_update_op(rk: *mut rd::rd_kafka_t, mdi: *mut c_void) -> c_int;
}

/// Called by librdkafka in place of `rd_kafka_metadata_update_op` (its main thread,
/// one op at a time): drops the entries naming neither a topic nor an id, then calls
/// the original.
///
/// # Safety
/// Called by librdkafka only, with the op's metadata (`mdi`: `topic_cnt` public and
/// internal topic entries, one allocation the op owns).
#[no_mangle]
pub unsafe extern "C" fn __wrap_rd_kafka_metadata_update_op(
    rk: *mut rd::rd_kafka_t,
    mdi: *mut c_void,
) -> c_int {
    // The layout below is 2.12.1's: a librdkafka of another version (a dynamically
    // linked one, say) is passed through untouched rather than misread.
    // SAFETY: `rd_kafka_version` takes no arguments and only returns a constant.
    if !mdi.is_null() && unsafe { rd::rd_kafka_version() } == LAYOUT_VERSION {
        // SAFETY: `mdi` is the op's `rd_kafka_metadata_internal_t`, whose layout starts as
        // `MetadataInternal`; `topics` and `metadata.topics` hold `topic_cnt` entries each.
        // Entries are only moved within those arrays (their pointers keep pointing into
        // the same allocation, which the op frees as a whole) and the count lowered.
        unsafe { drop_unnamed(&mut *(mdi as *mut MetadataInternal)) };
    }
    // SAFETY: the original function, with the arguments librdkafka passed.
    unsafe { __real_rd_kafka_metadata_update_op(rk, mdi) }
}

/// Removes, in place, the topics with a NULL name and a zero id; returns how many.
///
/// # Safety
/// `m.metadata.topics` and `m.topics` point to `m.metadata.topic_cnt` entries each.
unsafe fn drop_unnamed(m: &mut MetadataInternal) -> usize {
    let n = usize::try_from(m.metadata.topic_cnt).unwrap_or(0);
    if n == 0 || m.metadata.topics.is_null() || m.topics.is_null() {
        return 0;
    }
    // SAFETY: the caller's contract: both arrays hold `n` entries.
    let (public, internal) = unsafe {
        (
            std::slice::from_raw_parts_mut(m.metadata.topics, n),
            std::slice::from_raw_parts_mut(m.topics, n),
        )
    };
    let mut kept = 0;
    for i in 0..n {
        let unnamed =
            public[i].topic.is_null() && internal[i].id_msb == 0 && internal[i].id_lsb == 0;
        if unnamed {
            continue;
        }
        public.swap(kept, i);
        internal.swap(kept, i);
        kept += 1;
    }
    if kept < n {
        tracing::debug!(
            dropped = n - kept,
            "librdkafka leader hint naming no topic dropped (a deleted topic)"
        );
        // `kept` < `n`, which came from an `i32`.
        m.metadata.topic_cnt = kept as c_int;
    }
    n - kept
}

/// Whether the guard is linked into this binary (build.rs names it undefined, so the
/// linker takes it out of this crate's rlib; a test checks it is there).
pub fn installed() -> bool {
    let f: unsafe extern "C" fn(*mut rd::rd_kafka_t, *mut c_void) -> c_int =
        __wrap_rd_kafka_metadata_update_op;
    !std::hint::black_box(f as *const ()).is_null()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: *mut std::os::raw::c_char) -> rd::rd_kafka_metadata_topic_t {
        rd::rd_kafka_metadata_topic_t {
            topic: name,
            partition_cnt: 0,
            partitions: std::ptr::null_mut(),
            err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
        }
    }

    fn internal(id: i64) -> TopicInternal {
        TopicInternal {
            partitions: std::ptr::null_mut(),
            id_msb: id,
            id_lsb: 0,
            id_base64: [0; 23],
            authorized_operations: -1,
            is_internal: 0,
        }
    }

    #[test]
    fn leader_hints_naming_no_topic_are_dropped_the_rest_kept_in_order() {
        let mut name = *b"follows\0";
        let named = name.as_mut_ptr().cast();
        let null = std::ptr::null_mut();
        // (name, id): unnamed without id, named, unnamed with an id, unnamed without id.
        let mut public = [topic(null), topic(named), topic(null), topic(null)];
        let mut internal = [internal(0), internal(0), internal(7), internal(0)];
        let mut m = MetadataInternal {
            metadata: rd::rd_kafka_metadata_t {
                broker_cnt: 0,
                brokers: std::ptr::null_mut(),
                topic_cnt: 4,
                topics: public.as_mut_ptr(),
                orig_broker_id: 0,
                orig_broker_name: std::ptr::null_mut(),
            },
            brokers_sorted: std::ptr::null_mut(),
            brokers: std::ptr::null_mut(),
            topics: internal.as_mut_ptr(),
        };
        assert_eq!(unsafe { drop_unnamed(&mut m) }, 2);
        assert_eq!(m.metadata.topic_cnt, 2);
        assert_eq!(public[0].topic, named);
        assert_eq!((internal[0].id_msb, internal[1].id_msb), (0, 7));
        assert!(public[1].topic.is_null());
        assert!(installed());
    }

    #[test]
    fn the_layout_is_the_one_of_librdkafka_2_12() {
        // rd_kafka_metadata_topic_internal_t: pointer, 16-byte id + 23 chars, two ints.
        assert_eq!(std::mem::size_of::<TopicInternal>(), 56);
        assert_eq!(std::mem::offset_of!(MetadataInternal, topics), 64);
        assert_eq!(rd::RD_KAFKA_VERSION, LAYOUT_VERSION);
        // The library linked in is the one the bindings describe.
        assert_eq!(unsafe { rd::rd_kafka_version() }, LAYOUT_VERSION);
    }
}
