//! Issue #19, bounded dead letters: a dead letter of a 1.1 MB input holds a bounded
//! prefix plus the original size and SHA-256; a small input is carried whole.

use followguard::kafka::{dead_letter, HDR_ORIGINAL_SHA256, HDR_ORIGINAL_SIZE};

#[test]
fn dead_letter_of_an_oversized_input_is_bounded() {
    let big = vec![b'{'; 1_100_000];
    let rec = dead_letter(
        "follows",
        0,
        7,
        Some(&big),
        &big,
        "too_large",
        &"x".repeat(50_000),
    );
    let size = rec.payload.len()
        + rec.key.len()
        + rec
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    assert!(size < 20 * 1024, "{size}");
    let h = |k: &str| {
        rec.headers
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(h(HDR_ORIGINAL_SIZE).as_deref(), Some("1100000"));
    assert_eq!(
        h(HDR_ORIGINAL_SHA256).unwrap(),
        followguard_core::bounds::sha256_hex(&big)
    );
    // A small input is carried whole, with no truncation headers.
    let rec = dead_letter("follows", 0, 8, None, b"{bad", "invalid_json", "x");
    let h = |k: &str| rec.headers.iter().any(|(n, _)| *n == k);
    assert_eq!(rec.payload, b"{bad");
    assert!(!h(HDR_ORIGINAL_SIZE) && !h(HDR_ORIGINAL_SHA256));
}
