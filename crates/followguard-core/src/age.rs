//! Account-age bins of the creation-date histogram (account age at the follow): what a
//! followee's window counts, alerts report and the web view labels.

/// Number of account-age bins in the creation-date histogram (see [`AGE_BIN_UPPER_DAYS`]).
pub const AGE_BINS: usize = 12;

/// Upper edges (exclusive, in days of account age at follow time) of the first eleven
/// creation-date bins; the twelfth is open-ended. Narrow at the young end, where bought
/// cohorts registered "in the same few weeks" land together.
pub const AGE_BIN_UPPER_DAYS: [u32; AGE_BINS - 1] =
    [14, 30, 61, 91, 182, 365, 548, 730, 1095, 1461, 2191];

/// Bin index of an account aged `age_days` at the follow.
pub fn age_bin(age_days: i64) -> usize {
    AGE_BIN_UPPER_DAYS
        .iter()
        .position(|&upper| age_days < i64::from(upper))
        .unwrap_or(AGE_BINS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bins_cover_all_ages() {
        assert_eq!(age_bin(-5), 0);
        assert_eq!(age_bin(0), 0);
        assert_eq!(age_bin(13), 0);
        assert_eq!(age_bin(14), 1);
        assert_eq!(age_bin(2190), 10);
        assert_eq!(age_bin(2191), 11);
        assert_eq!(age_bin(i64::MAX), 11);
    }
}
