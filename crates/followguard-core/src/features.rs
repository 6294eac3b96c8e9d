//! Profile → fixed feature vector: the one code path shared by training and serving.
//!
//! Owns [`FEATURE_NAMES`], [`extract`] and the screen-name [`NameModel`]. Features are
//! deliberately mostly scale-free (rates per day of account age, ratios, proportions):
//! absolute counts drift as a platform ages, rates and ratios drift much less. Dataset
//! artefacts (`lang`, `time_zone`, `utc_offset`, colours, `verified`, the size of `id`)
//! are never read. No I/O, no clock: "now" is the event time passed in.

use crate::event::Profile;
use serde::{Deserialize, Serialize};

/// Number of features produced by [`extract`].
pub const N_FEATURES: usize = 18;

/// The first `N_LINEAR` features (the count ratios) also feed the model's linear part:
/// monotone, smooth signals that carry across vendors and populations.
pub const N_LINEAR: usize = 4;

/// Feature names, in vector order. A model file records the list it was trained with and
/// is refused if it differs (see `model::Model::from_file`).
///
/// Account age itself is deliberately absent: in cresci-2015 it separates vendors (one
/// vendor's accounts were all created in 2013) rather than bots from humans, and bought
/// accounts are increasingly aged. It enters only through per-day rates.
///
/// So are the counts themselves (log statuses, followers, friends, favourites, listed):
/// they grow with an account's age and a platform's, and a model leaning on them learns
/// "few tweets = bot", which aged purchased accounts defeat. Removing them raised ROC-AUC
/// on every held-out vendor and on the cresci-2017 spambots (models/MODEL_CARD.md).
/// They still enter through the ratios, the per-day rates and the class-A rules.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "friends_followers_ratio_log",
    "followers_statuses_ratio_log",
    "favourites_statuses_ratio_log",
    "listed_followers_ratio_log",
    "statuses_per_day_log",
    "followers_per_day_log",
    "friends_per_day_log",
    "favourites_per_day_log",
    "description_len_log",
    "has_url",
    "has_location",
    "default_profile",
    "class_a_rules_failed",
    "screen_name_len",
    "screen_name_digit_frac",
    "name_len",
    "name_digit_frac",
    "screen_name_bigram_ll",
];

/// For each feature, the reason code used when it pushes a score towards "bot" and the
/// one used when it pushes towards "human". Trees are not monotone, but for every
/// feature here one direction is the bot-like one in the data (checked against the
/// training groups), so the code names the value's direction rather than the tree's.
pub const REASON_CODES: [[&str; 2]; N_FEATURES] = [
    [
        "friends_followers_ratio_high",
        "friends_followers_ratio_typical",
    ],
    [
        "followers_statuses_ratio_high",
        "followers_statuses_ratio_typical",
    ],
    [
        "favourites_statuses_ratio_atypical",
        "favourites_statuses_ratio_typical",
    ],
    [
        "listed_followers_ratio_high",
        "listed_followers_ratio_typical",
    ],
    ["statuses_rate_low", "statuses_rate_typical"],
    ["followers_rate_low", "followers_rate_typical"],
    ["friends_rate_high", "friends_rate_typical"],
    ["favourites_rate_low", "favourites_rate_typical"],
    ["description_short", "description_present"],
    ["no_url", "has_url"],
    ["location_atypical", "location_typical"],
    ["default_profile", "customised_profile"],
    ["class_a_rules_failed", "class_a_rules_passed"],
    ["screen_name_length_atypical", "screen_name_length_typical"],
    ["screen_name_digits_many", "screen_name_digits_few"],
    ["name_length_atypical", "name_length_typical"],
    ["name_digits_many", "name_digits_few"],
    ["screen_name_unusual", "screen_name_typical"],
];

const MS_PER_DAY: f64 = 86_400_000.0;

/// Accounts younger than this are treated as this old, so a rate on a minutes-old
/// account does not explode (and a creation time after "now" cannot divide by ≤ 0).
const MIN_AGE_DAYS: f64 = 1.0;

/// Character classes of the screen-name model. Coarse on purpose: a letter-level model
/// learned from the training humans (mostly Italian) would learn "Italian-looking",
/// a population artefact; shapes (case changes, digit runs, vowel/consonant alternation,
/// underscores) carry the bot signal (generated handles, name + digit suffixes) across
/// languages.
const N_CLASSES: usize = 9;
const CLASS_START: usize = 7;
const CLASS_END: usize = 8;

fn char_class(c: char) -> usize {
    match c {
        'a' | 'e' | 'i' | 'o' | 'u' | 'y' => 0,
        'b'..='z' => 1,
        'A' | 'E' | 'I' | 'O' | 'U' | 'Y' => 2,
        'B'..='Z' => 3,
        '0'..='9' => 4,
        '_' => 5,
        _ => 6,
    }
}

/// Bigram log-likelihood model of screen-name shapes, fitted on human screen names.
/// Stored in the model file so serving uses exactly the training table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NameModel {
    /// `log_prob[a][b]` = ln P(next class b | class a), add-one smoothed.
    pub log_prob: Vec<Vec<f32>>,
}

impl NameModel {
    /// Fits the bigram table on the given (human) screen names.
    pub fn fit<'a>(names: impl IntoIterator<Item = &'a str>) -> NameModel {
        let mut counts = [[1.0f64; N_CLASSES]; N_CLASSES];
        for name in names {
            let mut prev = CLASS_START;
            for c in name.chars() {
                let k = char_class(c);
                counts[prev][k] += 1.0;
                prev = k;
            }
            counts[prev][CLASS_END] += 1.0;
        }
        let log_prob = counts
            .iter()
            .map(|row| {
                let total: f64 = row.iter().sum();
                row.iter().map(|&c| (c / total).ln() as f32).collect()
            })
            .collect();
        NameModel { log_prob }
    }

    /// Checks the table's shape (a hand-edited or truncated model file must not make
    /// [`NameModel::mean_log_prob`] index out of bounds).
    pub fn is_valid(&self) -> bool {
        self.log_prob.len() == N_CLASSES
            && self
                .log_prob
                .iter()
                .all(|r| r.len() == N_CLASSES && r.iter().all(|v| v.is_finite()))
    }

    /// Mean log-probability per transition (start → chars → end). A malformed table
    /// (rejected at model load anyway) contributes 0 per missing entry instead of
    /// panicking; checking the whole table here on every call would double the cost.
    pub fn mean_log_prob(&self, name: &str) -> f32 {
        let lp = |a: usize, b: usize| {
            self.log_prob
                .get(a)
                .and_then(|r| r.get(b))
                .copied()
                .unwrap_or(0.0)
        };
        let mut prev = CLASS_START;
        let mut sum = 0.0f32;
        let mut n = 0u32;
        for c in name.chars() {
            let k = char_class(c);
            sum += lp(prev, k);
            n += 1;
            prev = k;
        }
        sum += lp(prev, CLASS_END);
        sum / (n + 1) as f32
    }
}

/// ln(1 + x) in single precision (features are f32; `log1pf` is about twice as fast as
/// the double version).
fn ln1p(x: f64) -> f32 {
    (x.max(0.0) as f32).ln_1p()
}

/// Character count and fraction of ASCII digits.
fn len_and_digit_frac(s: &str) -> (f32, f32) {
    let mut n = 0u32;
    let mut d = 0u32;
    for c in s.chars() {
        n += 1;
        if c.is_ascii_digit() {
            d += 1;
        }
    }
    let frac = if n == 0 { 0.0 } else { d as f32 / n as f32 };
    (n as f32, frac)
}

/// Number of Cresci et al. (2015) "class A" checks of a genuine-looking profile that fail:
/// no bio, no location, no URL, fewer than 30 followers, fewer than 50 tweets, and
/// following at least 50× as many accounts as follow it. Counting failures gives one
/// robust summary instead of six brittle booleans. `None` when a count it needs
/// (followers, friends, statuses) is missing: an unknown count neither passes nor fails.
pub fn class_a_failures(p: &Profile<'_>) -> Option<u32> {
    let (fo, fr, st) = (p.followers_count?, p.friends_count?, p.statuses_count?);
    if p.lacks(Profile::UNKNOWN_LOCATION | Profile::UNKNOWN_URL) {
        return None;
    }
    let checks = [
        p.description.trim().is_empty(),
        p.location.trim().is_empty(),
        p.url.is_none(),
        fo < 30,
        st < 50,
        fr >= fo.max(1).saturating_mul(50),
    ];
    Some(checks.iter().filter(|&&c| c).count() as u32)
}

/// `v`, or `NaN` when the platform lacks the field behind it.
fn known(p: &Profile<'_>, bit: u8, v: f32) -> f32 {
    if p.lacks(bit) {
        f32::NAN
    } else {
        v
    }
}

/// Computes the feature vector of a profile at time `now_ms` (the event time; in
/// training, the crawl time of the dataset row). Never panics, never allocates. A feature
/// that needs a missing count is `NaN` (issue 24): the model treats it as unknown
/// (`model::Model::raw`), never as zero.
pub fn extract(p: &Profile<'_>, now_ms: i64, names: &NameModel) -> [f32; N_FEATURES] {
    let age_days =
        ((now_ms as f64 - p.created_at_s as f64 * 1000.0) / MS_PER_DAY).max(MIN_AGE_DAYS);
    let per_day = |c: Option<u64>| c.map_or(f32::NAN, |c| ln1p(c as f64 / age_days));
    // Five logs, for the ratios (ln((a+1)/(b+1)) = ln(a+1) − ln(b+1)): logs are most of
    // this function's cost. A missing count's log is NaN, and so is every ratio using it.
    let log = |c: Option<u64>| c.map_or(f32::NAN, |c| ln1p(c as f64));
    let st = log(p.statuses_count);
    let fo = log(p.followers_count);
    let fr = log(p.friends_count);
    let fav = log(p.favourites_count);
    let li = log(p.listed_count);
    let (sn_len, sn_digits) = len_and_digit_frac(&p.screen_name);
    let (name_len, name_digits) = len_and_digit_frac(&p.name);
    let desc_len = p.description.trim().chars().count() as f64;
    let flag = |b: bool| f32::from(u8::from(b));
    [
        fr - fo,
        fo - st,
        fav - st,
        li - fo,
        per_day(p.statuses_count),
        per_day(p.followers_count),
        per_day(p.friends_count),
        per_day(p.favourites_count),
        ln1p(desc_len),
        known(p, Profile::UNKNOWN_URL, flag(p.url.is_some())),
        known(
            p,
            Profile::UNKNOWN_LOCATION,
            flag(!p.location.trim().is_empty()),
        ),
        known(p, Profile::UNKNOWN_DEFAULT_PROFILE, flag(p.default_profile)),
        class_a_failures(p).map_or(f32::NAN, |n| n as f32),
        sn_len,
        sn_digits,
        name_len,
        name_digits,
        names.mean_log_prob(&p.screen_name),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn profile() -> Profile<'static> {
        Profile {
            id: Cow::Borrowed("1"),
            screen_name: Cow::Borrowed("ab12"),
            name: Cow::Borrowed("Anna 2"),
            description: Cow::Borrowed("hello"),
            url: None,
            location: Cow::Borrowed(""),
            created_at_s: 0,
            followers_count: Some(9),
            friends_count: Some(99),
            statuses_count: Some(19),
            favourites_count: Some(0),
            listed_count: Some(0),
            default_profile: true,
            ..Profile::default()
        }
    }

    #[test]
    fn names_and_codes_line_up() {
        assert_eq!(FEATURE_NAMES.len(), N_FEATURES);
        let mut seen = std::collections::HashSet::new();
        for n in FEATURE_NAMES {
            assert!(seen.insert(n), "duplicate feature name {n}");
        }
        for [bot, human] in REASON_CODES {
            assert_ne!(bot, human);
        }
    }

    #[test]
    fn hand_computed_values() {
        let names = NameModel::fit(["abc"]);
        // 9 days old at "now".
        let now_ms = 9 * 86_400_000;
        let f = extract(&profile(), now_ms, &names);
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-5;
        let want: [(usize, f64, &str); 13] = [
            (0, 10f64.ln(), "(99+1)/(9+1)"),
            (1, 0.5f64.ln(), "(9+1)/(19+1)"),
            (2, (1.0 / 20.0f64).ln(), "(0+1)/(19+1)"),
            (3, 0.1f64.ln(), "(0+1)/(9+1)"),
            (4, (1.0 + 19.0 / 9.0f64).ln(), "19 statuses / 9 days"),
            (5, 2f64.ln(), "9 followers / 9 days = 1/day"),
            (6, 12f64.ln(), "99 friends / 9 days = 11/day"),
            (7, 0.0, "no favourites"),
            (8, 6f64.ln(), "5 chars of bio"),
            (13, 4.0, "ab12"),
            (14, 0.5, "2 of 4 digits"),
            (15, 6.0, "Anna 2"),
            (16, 1.0 / 6.0, "1 of 6 digits"),
        ];
        for (i, v, why) in want {
            assert!(
                close(f[i], v),
                "{} = {} want {v} ({why})",
                FEATURE_NAMES[i],
                f[i]
            );
        }
        assert_eq!(
            (f[9], f[10], f[11]),
            (0.0, 0.0, 1.0),
            "no url, no location, default"
        );
        // No location, no URL, followers < 30, statuses < 50; has bio; 99 < 50 × 9.
        assert_eq!(f[12], 4.0);
        // Fitted on "abc" (vowel, consonant, consonant); add-one smoothing over 9 classes.
        // "ab12": start→vowel (2/10), vowel→consonant (2/10), consonant→digit (1/11),
        // digit→digit (1/9), digit→end (1/9).
        let bigram =
            ((0.2f64).ln() + (0.2f64).ln() + (1.0 / 11.0f64).ln() + 2.0 * (1.0 / 9.0f64).ln())
                / 5.0;
        assert!(close(f[17], bigram), "{} vs {bigram}", f[17]);
    }

    #[test]
    fn creation_after_now_and_huge_counts_stay_finite() {
        let mut p = profile();
        p.created_at_s = i64::MAX / 1000;
        p.followers_count = Some(u64::MAX);
        p.statuses_count = Some(u64::MAX);
        let f = extract(&p, i64::MIN, &NameModel::fit([]));
        assert!(f.iter().all(|v| v.is_finite()), "{f:?}");
        // Age clamps to one day: the rate is ln(1 + count).
        assert_eq!(
            f[4],
            ln1p(u64::MAX as f64),
            "statuses per day on a 'future' account"
        );
    }

    #[test]
    fn missing_counts_are_nan_features_never_zero() {
        let names = NameModel::fit(["abc"]);
        let now_ms = 9 * 86_400_000;
        let full = extract(&profile(), now_ms, &names);
        // Mastodon: no listed count. Only the listed ratio is unknown.
        let mut p = profile();
        p.listed_count = None;
        let f = extract(&p, now_ms, &names);
        for i in 0..N_FEATURES {
            assert_eq!(f[i].is_nan(), i == 3, "{}", FEATURE_NAMES[i]);
            if i != 3 {
                assert_eq!(f[i], full[i], "{}", FEATURE_NAMES[i]);
            }
        }
        // Bluesky: no favourites. The favourites ratio and rate are unknown.
        let mut p = profile();
        p.favourites_count = None;
        let f = extract(&p, now_ms, &names);
        let nan: Vec<_> = (0..N_FEATURES).filter(|&i| f[i].is_nan()).collect();
        assert_eq!(nan, vec![2, 7]);
        // No followers count: its ratios, its rate and the class-A rules are unknown.
        let mut p = profile();
        p.followers_count = None;
        let f = extract(&p, now_ms, &names);
        let nan: Vec<_> = (0..N_FEATURES).filter(|&i| f[i].is_nan()).collect();
        assert_eq!(nan, vec![0, 1, 3, 5, 12]);
        assert_eq!(class_a_failures(&p), None);
        // Mastodon / Bluesky: no location field; Bluesky no website either.
        let mut p = profile();
        p.unknown = Profile::UNKNOWN_LOCATION | Profile::UNKNOWN_URL;
        let f = extract(&p, now_ms, &names);
        let nan: Vec<_> = (0..N_FEATURES).filter(|&i| f[i].is_nan()).collect();
        assert_eq!(nan, vec![9, 10, 12]);
    }

    #[test]
    fn invalid_name_table_is_harmless() {
        let bad = NameModel {
            log_prob: vec![vec![0.0; 3]],
        };
        assert!(!bad.is_valid());
        assert_eq!(bad.mean_log_prob("abc"), 0.0);
    }
}
