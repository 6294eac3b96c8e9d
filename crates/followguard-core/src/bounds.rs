//! Byte bounds on what one input may make the service hold or write (issue #19).
//!
//! Pure core: ids longer than `max_id_bytes` are rejected (`bad_id`), so every stored id
//! and every id-bearing output record (an alert carries at most `sample_size` follower
//! ids) has a size known in advance; a dead letter carries at most
//! [`DEAD_LETTER_PREFIX_BYTES`] of the refused payload plus its size and SHA-256, so a
//! 1 MB input can never make a dead letter the broker refuses in turn. An output record
//! is at most `max_record_bytes` ([`DEFAULT_MAX_RECORD_BYTES`]): an alert's sample list
//! is trimmed to fit (the record says how many ids were left out, `samples_truncated`),
//! and a moderation record's three ids fit by configuration ([`min_record_bytes`]).

use crate::event::EventError;
use sha2::{Digest, Sha256};

/// Default longest accepted id (`event_id`, `followee_id`, follower `id`), in bytes.
/// Real platform ids are ≤ 20 digits; 256 leaves room for prefixed string ids.
pub const DEFAULT_MAX_ID_BYTES: usize = 256;

/// Bytes of an oversized payload kept in its dead letter.
pub const DEAD_LETTER_PREFIX_BYTES: usize = 16 * 1024;

/// Default largest output record (alert or moderation JSON), in bytes: well under
/// librdkafka's default `message.max.bytes` (1,000,000), so no record the detector
/// writes is refused for its size.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// Upper bound of a record's bytes besides its account ids: every fixed field at its
/// longest, five reason codes, a campaign id and a model version of up to 1 KiB (the
/// alert test in this module checks the worst alert against it).
pub const RECORD_FIXED_BYTES: usize = 4096;

/// Worst growth of an id in JSON: a control character (1 byte) is written `\u00XX`.
pub const JSON_ESCAPE_FACTOR: usize = 6;

/// The smallest `max_record_bytes` that holds every record ids of up to `max_id_bytes`
/// can make: a moderation record carries three ids (follower, followee, event) that
/// cannot be trimmed; an alert's sample list is trimmed to what is left.
pub fn min_record_bytes(max_id_bytes: usize) -> usize {
    RECORD_FIXED_BYTES.saturating_add(max_id_bytes.saturating_mul(3 * JSON_ESCAPE_FACTOR))
}

/// Bytes `s` takes as a JSON string (quotes included), written as serde_json writes it.
pub fn json_str_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => JSON_ESCAPE_FACTOR,
            _ => 1,
        })
        .sum::<usize>()
}

/// Rejects an event whose ids exceed `max` bytes (kind `bad_id`).
pub fn check_ids(
    event_id: &str,
    followee_id: &str,
    follower_id: &str,
    max: usize,
) -> Result<(), EventError> {
    for (field, v) in [
        ("event_id", event_id),
        ("followee_id", followee_id),
        ("follower.id", follower_id),
    ] {
        if v.len() > max {
            return Err(EventError::IdTooLong {
                field,
                len: v.len(),
                max,
            });
        }
    }
    Ok(())
}

/// A payload as a dead letter may carry it: whole when at most `limit` bytes, else its
/// first `limit` bytes plus the original size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedPayload<'a> {
    pub bytes: &'a [u8],
    /// `Some((original size, sha256 hex))` when truncated.
    pub truncated: Option<(usize, String)>,
}

pub fn bound_payload(payload: &[u8], limit: usize) -> BoundedPayload<'_> {
    if payload.len() <= limit {
        return BoundedPayload {
            bytes: payload,
            truncated: None,
        };
    }
    BoundedPayload {
        bytes: &payload[..limit],
        truncated: Some((payload.len(), sha256_hex(payload))),
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Cuts `s` to at most `max` bytes on a char boundary (for error texts built from input).
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_over_the_limit_are_bad_ids() {
        assert!(check_ids("e", "f", "1", 3).is_ok());
        let long = "x".repeat(257);
        let e = check_ids("e", "f", &long, DEFAULT_MAX_ID_BYTES).unwrap_err();
        assert_eq!(e.kind(), "bad_id");
        assert!(e.to_string().contains("257"), "{e}");
        assert_eq!(
            check_ids(&long, "f", "1", 256).unwrap_err().kind(),
            "bad_id"
        );
    }

    #[test]
    fn json_lengths_match_serde_json() {
        for s in [
            "",
            "123",
            "a\"b\\c",
            "\n\r\t\u{8}\u{c}",
            "\u{1}\u{1f}x",
            "é€😀",
            "\u{7f}/",
        ] {
            let written = serde_json::to_string(s).unwrap().len();
            assert_eq!(json_str_len(s), written, "{s:?}");
        }
        let worst = "\u{1}".repeat(256);
        assert_eq!(json_str_len(&worst), 2 + 256 * JSON_ESCAPE_FACTOR);
        assert_eq!(min_record_bytes(256), 4096 + 256 * 18);
        assert!(min_record_bytes(DEFAULT_MAX_ID_BYTES) <= DEFAULT_MAX_RECORD_BYTES);
    }

    #[test]
    fn oversized_payloads_keep_a_prefix_size_and_hash() {
        let small = bound_payload(b"abc", 16);
        assert_eq!(small.bytes, b"abc");
        assert!(small.truncated.is_none());
        let big = vec![b'a'; 1_100_000];
        let b = bound_payload(&big, DEAD_LETTER_PREFIX_BYTES);
        assert_eq!(b.bytes.len(), DEAD_LETTER_PREFIX_BYTES);
        let (len, sha) = b.truncated.unwrap();
        assert_eq!(len, 1_100_000);
        assert_eq!(sha.len(), 64);
        assert_eq!(truncate_str("héllo", 2), "h");
    }
}
