//! When a campaign change is worth a record (issue #19: lockstep output linear in the
//! input). Pure core.
//!
//! A re-sold cohort links many alerts into one campaign. Emitting an `update` to every
//! member each time one more alert joins costs one record per member per link — 300
//! followees sharing 40 bots gave 44,850 updates. Instead a member's alert is re-sent
//! for a campaign change only when its `campaign_id` changed (it joined a campaign, or
//! two campaigns merged under an older root) or the campaign's followee count at least
//! doubled since that alert last reported it. Each member then reports O(log n) times,
//! so campaign records stay within a small multiple of the opens; every record still
//! carries the current campaign id and size, and the alert's other records (`update` on
//! growth, `resolved`) carry the current size too.

/// Growth factor of a campaign's followee count that earns its members an update.
pub const CAMPAIGN_REPORT_GROWTH: u32 = 2;

/// Whether a member alert should get an `update` record for a campaign change.
/// `reported`: campaign followee count in the alert's last campaign record (0: none).
pub fn relink_update_due(
    prev_cid: Option<&str>,
    new_cid: &str,
    reported: u32,
    followees: u32,
) -> bool {
    prev_cid != Some(new_cid) || followees >= reported.saturating_mul(CAMPAIGN_REPORT_GROWTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_on_new_campaign_id_or_doubling_only() {
        assert!(relink_update_due(None, "c", 1, 2));
        assert!(relink_update_due(Some("old"), "c", 50, 51));
        assert!(!relink_update_due(Some("c"), "c", 2, 3));
        assert!(relink_update_due(Some("c"), "c", 2, 4));
        // One member of a cohort growing 2 → 300: at most log2(300) reports.
        let (mut reported, mut sent) = (2, 0);
        for n in 3..=300 {
            if relink_update_due(Some("c"), "c", reported, n) {
                reported = n;
                sent += 1;
            }
        }
        assert!(sent <= 8, "{sent}");
    }
}
