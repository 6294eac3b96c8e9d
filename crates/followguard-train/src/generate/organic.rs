//! Issue #20 traffic for `followguard generate` (all off by default, so today's streams
//! stay byte-identical): traffic that looks bought to a profile classifier but is not,
//! and the adversary's answer to it.
//!
//! - **Organic newcomers** (`--newcomer-share S`): people who registered minutes ago. At
//!   sign-up the platform suggests popular accounts (the top 5 % by popularity here); a
//!   newcomer follows 5–15 of them (chosen in proportion to popularity) between 1 and 40
//!   minutes after registering, with an empty profile: platform-made handle (first name +
//!   8 digits), default avatar, no bio, no posts, no followers, `friends_count` = the
//!   accounts followed so far. Sign-ups are sized so that they make a share `S` of the
//!   popular accounts' new followers.
//! - **Suggested-list surges** (`--surges N`): an account (not popular, not a campaign
//!   customer) joins the suggested list for 1–2 days and gets 1 000–6 000 newcomer
//!   follows; each of those newcomers also follows 4–14 popular accounts, in a random
//!   order, within its first 40 minutes. Hard negatives, in the truth (`surges`).
//! - **Fresh-batch campaigns** (`--fresh-campaigns N`): a vendor registers 200–5 000
//!   accounts within two hours and delivers them to one customer 2 hours to 5 days later,
//!   in minutes, hours or days, with the same empty newcomer profiles; a fifth of the
//!   bots also follow one to three popular accounts during the delivery or the two days
//!   after it (camouflage, looking like onboarding). Positives, in the truth's `campaigns` with `fresh_batch: true`.
//! - **Fast fresh batches** (`--fast-fresh-campaigns N`): as above, but a script
//!   registers the 200–5 000 accounts within 1–10 minutes and the vendor delivers them
//!   5–50 minutes after the last registration, over 5–30 minutes: every bot is under an
//!   hour old at its follow (`fresh_batch` and `fresh_fast: true` in the truth).
//!
//! Uses its own random stream (derived from the seed), so turning it on never changes
//! the rest of the stream's draws.

use super::{Ev, TruthCampaign, BOT_ID_MIN, FOLLOWEE_ID_MIN};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Newcomer (organic sign-up) follower ids: between the humans' and the bots' ranges.
pub const NEWCOMER_ID_MIN: u64 = 5_000_000_000;
const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// `Ev::kind` values.
pub const KIND_ORGANIC: u8 = 0;
pub const KIND_NEWCOMER: u8 = 1;
pub const KIND_FRESH_BOT: u8 = 2;

/// Options of the issue-#20 traffic (all zero = off).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OrganicConfig {
    /// Share of the popular accounts' new followers that are newcomers (0 ≤ S < 0.9).
    pub newcomer_share: f64,
    pub surges: usize,
    pub fresh_campaigns: usize,
    /// Fast fresh batches: registered within 1–10 minutes, delivered 5–50 minutes after
    /// the last registration, over 5–30 minutes.
    pub fast_fresh_campaigns: usize,
}

impl OrganicConfig {
    pub fn is_off(&self) -> bool {
        self.newcomer_share <= 0.0
            && self.surges == 0
            && self.fresh_campaigns == 0
            && self.fast_fresh_campaigns == 0
    }
}

/// One suggested-list surge (a hard negative).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthSurge {
    pub followee_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Newcomer follows the surge brought to the followee.
    pub newcomers: u64,
}

/// What the new traffic adds to the truth.
#[derive(Debug, Default)]
pub struct OrganicTruth {
    pub newcomers: u64,
    pub newcomer_follows: u64,
    pub surges: Vec<TruthSurge>,
    pub campaigns: Vec<TruthCampaign>,
    pub bought_follows: u64,
    pub camouflage_follows: u64,
}

/// Inputs from the main plan.
pub struct PlanView<'a> {
    pub rates: &'a [f64],
    pub popular: &'a [usize],
    pub targets_used: &'a std::collections::HashSet<usize>,
    pub next_bot: u64,
    pub first_campaign: usize,
    pub start: i64,
    pub end: i64,
    pub warmup: i64,
    pub days: u32,
}

fn ev(ts: i64, followee: usize, follower: u64, kind: u8, created_ms: i64, friends: u16) -> Ev {
    Ev {
        ts,
        followee: followee as u32,
        follower,
        unfollow: false,
        cohort_age: 0.0,
        premium: false,
        kind,
        created_s: created_ms.div_euclid(1000),
        friends,
    }
}

/// Picks `k` distinct popular accounts in proportion to popularity.
fn pick_popular(
    rng: &mut Xoshiro256PlusPlus,
    v: &PlanView<'_>,
    cum: &[f64],
    k: usize,
) -> Vec<usize> {
    let total = cum.last().copied().unwrap_or(0.0);
    let mut out: Vec<usize> = Vec::with_capacity(k);
    let k = k.min(v.popular.len());
    let mut tries = 0;
    while out.len() < k && tries < 20 * k + 20 {
        tries += 1;
        let x = rng.gen::<f64>() * total;
        let i = cum.partition_point(|&c| c <= x).min(v.popular.len() - 1);
        let p = v.popular[i];
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// One fresh batch's delivery: bots registered within `reg_span` from `registered`,
/// delivered at `start + [0, dur)`.
struct Batch {
    target: usize,
    first_bot: u64,
    registered: i64,
    reg_span: i64,
    start: i64,
    dur: i64,
}

/// Delivers a fresh batch's follows at `times` (one bot each). Camouflage as for today's
/// campaigns: a fifth of the bots also follow 1–3 popular accounts, spread over the
/// delivery and the two days after it (a vendor does not point a whole batch at the
/// popular accounts within the hour, which would itself be a bought-looking burst).
fn deliver(
    rng: &mut Xoshiro256PlusPlus,
    v: &PlanView<'_>,
    cum: &[f64],
    b: &Batch,
    times: &[i64],
    events: &mut Vec<Ev>,
    t: &mut OrganicTruth,
) {
    for (i, &ts) in times.iter().enumerate() {
        let bot = b.first_bot + i as u64;
        let created = b.registered + rng.gen_range(0..b.reg_span);
        let friends = rng.gen_range(0..12u16);
        events.push(ev(ts, b.target, bot, KIND_FRESH_BOT, created, friends));
        t.bought_follows += 1;
        if rng.gen::<f64>() < 0.2 {
            let k = rng.gen_range(1..=3);
            for p in pick_popular(rng, v, cum, k) {
                let cts = b.start + rng.gen_range(0..b.dur + 2 * DAY_MS);
                if cts < v.end && cts > created {
                    events.push(ev(cts, p, bot, KIND_FRESH_BOT, created, friends));
                    t.camouflage_follows += 1;
                }
            }
        }
    }
}

/// A newcomer's follows: `targets` in order, between 1 and 40 minutes after `created`.
fn sign_up(
    rng: &mut Xoshiro256PlusPlus,
    events: &mut Vec<Ev>,
    id: u64,
    created: i64,
    targets: &[usize],
    end: i64,
) -> u64 {
    let mut offsets: Vec<i64> = (0..targets.len())
        .map(|_| rng.gen_range(MIN_MS..40 * MIN_MS))
        .collect();
    offsets.sort_unstable();
    let mut n = 0;
    for (j, (&f, off)) in targets.iter().zip(offsets).enumerate() {
        let ts = created + off;
        if ts < end {
            events.push(ev(ts, f, id, KIND_NEWCOMER, created, j as u16));
            n += 1;
        }
    }
    n
}

/// Adds the configured traffic to `events`.
pub(crate) fn add(
    cfg: &OrganicConfig,
    seed: u64,
    v: &PlanView<'_>,
    events: &mut Vec<Ev>,
) -> OrganicTruth {
    let mut t = OrganicTruth::default();
    if cfg.is_off() || v.popular.is_empty() {
        return t;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x0020_0020_5eed_0020);
    let cum: Vec<f64> = v
        .popular
        .iter()
        .scan(0.0, |acc, &p| {
            *acc += v.rates[p].max(1e-9);
            Some(*acc)
        })
        .collect();
    let mut next_newcomer = NEWCOMER_ID_MIN;

    // Steady onboarding.
    let share = cfg.newcomer_share.clamp(0.0, 0.9);
    if share > 0.0 {
        let organic_popular: f64 =
            v.popular.iter().map(|&p| v.rates[p]).sum::<f64>() * f64::from(v.days);
        let follows = organic_popular * share / (1.0 - share);
        let signups = (follows / 10.0).round() as u64; // 5–15 follows each, mean 10
        for _ in 0..signups {
            let created = rng.gen_range(v.start..v.end);
            let k = rng.gen_range(5..=15);
            let targets = pick_popular(&mut rng, v, &cum, k);
            let n = sign_up(&mut rng, events, next_newcomer, created, &targets, v.end);
            next_newcomer += 1;
            t.newcomers += 1;
            t.newcomer_follows += n;
        }
    }

    // Suggested-list surges.
    let n = v.rates.len();
    let mut surge_targets = Vec::new();
    for _ in 0..cfg.surges {
        let mut f = rng.gen_range(0..n);
        for _ in 0..200 {
            if !v.targets_used.contains(&f)
                && !v.popular.contains(&f)
                && !surge_targets.contains(&f)
            {
                break;
            }
            f = rng.gen_range(0..n);
        }
        surge_targets.push(f);
        let dur = rng.gen_range(DAY_MS..2 * DAY_MS);
        let latest = (v.end - dur).max(v.start + v.warmup + 1);
        let s = rng.gen_range(v.start + v.warmup..latest);
        let size = rng.gen_range(1000f64.ln()..6000f64.ln()).exp() as u64;
        let mut got = 0;
        for _ in 0..size {
            let created = rng.gen_range(s..s + dur);
            let k = rng.gen_range(4..=14);
            let mut targets = pick_popular(&mut rng, v, &cum, k);
            let at = rng.gen_range(0..=targets.len());
            targets.insert(at, f);
            let before = events.len();
            let made = sign_up(&mut rng, events, next_newcomer, created, &targets, v.end);
            got += events[before..]
                .iter()
                .filter(|e| e.followee as usize == f)
                .count() as u64;
            next_newcomer += 1;
            t.newcomers += 1;
            t.newcomer_follows += made;
        }
        t.surges.push(TruthSurge {
            followee_id: (FOLLOWEE_ID_MIN + f as u64).to_string(),
            start_ms: s,
            end_ms: s + dur,
            newcomers: got,
        });
    }

    // Fresh-batch campaigns.
    let mut next_bot = v.next_bot.max(BOT_ID_MIN);
    let speeds = ["minutes", "hours", "days"];
    for c in 0..cfg.fresh_campaigns {
        let mut target = rng.gen_range(0..n);
        for _ in 0..200 {
            if !v.targets_used.contains(&target)
                && !v.popular.contains(&target)
                && !surge_targets.contains(&target)
            {
                break;
            }
            target = rng.gen_range(0..n);
        }
        surge_targets.push(target);
        let size = rng.gen_range(200f64.ln()..5000f64.ln()).exp().round() as u32;
        let speed = speeds[rng.gen_range(0..speeds.len())];
        let dur = match speed {
            "minutes" => rng.gen_range(5 * MIN_MS..60 * MIN_MS),
            "hours" => rng.gen_range(HOUR_MS..24 * HOUR_MS),
            _ => rng.gen_range(DAY_MS..3 * DAY_MS),
        };
        let lag = rng
            .gen_range((2.0 * HOUR_MS as f64).ln()..(5.0 * DAY_MS as f64).ln())
            .exp() as i64;
        let latest = (v.end - dur - HOUR_MS).max(v.start + v.warmup + 1);
        let s = rng.gen_range(v.start + v.warmup..latest);
        let registered = s - lag - 2 * HOUR_MS;
        let mut times: Vec<i64> = (0..size)
            .map(|_| s + rng.gen_range(0..dur))
            .filter(|&x| x < v.end)
            .collect();
        times.sort_unstable();
        let batch = Batch {
            target,
            first_bot: next_bot,
            registered,
            reg_span: 2 * HOUR_MS,
            start: s,
            dur,
        };
        deliver(&mut rng, v, &cum, &batch, &times, events, &mut t);
        next_bot += u64::from(size);
        t.campaigns.push(TruthCampaign {
            campaign: format!("f{:04}", v.first_campaign + c),
            followee_id: (FOLLOWEE_ID_MIN + target as u64).to_string(),
            cohort: u32::MAX,
            resold: false,
            premium: false,
            size: times.len() as u32,
            speed: speed.to_string(),
            start_ms: times.first().copied().unwrap_or(s),
            end_ms: times.last().copied().unwrap_or(s),
            t100_ms: times.get(99).copied(),
            fresh_batch: true,
            fresh_fast: false,
        });
    }

    // Fast fresh batches (after the others, so streams without them are unchanged): a
    // script registers the accounts within minutes and the vendor delivers them before
    // they are an hour old, so every verdict is withheld by the age gate.
    for c in 0..cfg.fast_fresh_campaigns {
        let mut target = rng.gen_range(0..n);
        for _ in 0..200 {
            if !v.targets_used.contains(&target)
                && !v.popular.contains(&target)
                && !surge_targets.contains(&target)
            {
                break;
            }
            target = rng.gen_range(0..n);
        }
        surge_targets.push(target);
        let size = rng.gen_range(200f64.ln()..5000f64.ln()).exp().round() as u32;
        let reg_span = rng.gen_range(MIN_MS..10 * MIN_MS);
        let lag = rng.gen_range(5 * MIN_MS..50 * MIN_MS);
        let dur = rng.gen_range(5 * MIN_MS..30 * MIN_MS);
        let latest = (v.end - dur - HOUR_MS).max(v.start + v.warmup + 1);
        let s = rng.gen_range(v.start + v.warmup..latest);
        let registered = s - lag - reg_span;
        let mut times: Vec<i64> = (0..size)
            .map(|_| s + rng.gen_range(0..dur))
            .filter(|&x| x < v.end)
            .collect();
        times.sort_unstable();
        let batch = Batch {
            target,
            first_bot: next_bot,
            registered,
            reg_span,
            start: s,
            dur,
        };
        deliver(&mut rng, v, &cum, &batch, &times, events, &mut t);
        next_bot += u64::from(size);
        t.campaigns.push(TruthCampaign {
            campaign: format!("f{:04}", v.first_campaign + cfg.fresh_campaigns + c),
            followee_id: (FOLLOWEE_ID_MIN + target as u64).to_string(),
            cohort: u32::MAX,
            resold: false,
            premium: false,
            size: times.len() as u32,
            speed: "minutes".to_string(),
            start_ms: times.first().copied().unwrap_or(s),
            end_ms: times.last().copied().unwrap_or(s),
            t100_ms: times.get(99).copied(),
            fresh_batch: true,
            fresh_fast: true,
        });
    }
    t
}

/// The empty profile of a newcomer or a fresh-batch bot (the same distribution for both:
/// the profile alone cannot tell them apart). Deterministic in the id.
pub(crate) fn newcomer_template(e: &Ev, start_ms: i64) -> crate::generate::Template {
    const FIRST: [&str; 12] = [
        "Anna", "Marco", "Giulia", "Luca", "Sara", "John", "Maria", "David", "Yuki", "Chen",
        "Sofia", "Lucas",
    ];
    let mut h = e.follower ^ 0x7f4a_7c15_0000_0020;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let first = FIRST[((h >> 33) % FIRST.len() as u64) as usize];
    let digits = (h >> 7) % 100_000_000;
    crate::generate::Template {
        screen_name: format!("{first}{digits:08}"),
        name: first.to_string(),
        description: String::new(),
        url: None,
        location: String::new(),
        // The writer emits `start − age_s` as the creation time.
        age_s: start_ms.div_euclid(1000) - e.created_s,
        counts: [(h >> 60) % 3, u64::from(e.friends) + 1, 0, 0, 0],
        default_profile: true,
        default_profile_image: true,
        profile_use_background_image: true,
        protected: false,
    }
}

#[cfg(test)]
mod tests {
    use crate::generate::{generate, GenConfig, Profiles};
    use followguard_core::event::parse;

    /// With the options on: newcomers follow minutes after registering, fresh-batch bots
    /// hours to days after, surges and fresh campaigns are in the truth; off: nothing.
    #[test]
    fn newcomers_surges_and_fresh_batches() {
        let cfg = GenConfig {
            followees: 200,
            days: 6,
            campaigns: 2,
            viral_spikes: 1,
            max_campaign: 300,
            humans: 2000,
            organic: super::OrganicConfig {
                newcomer_share: 0.3,
                surges: 2,
                fresh_campaigns: 3,
                fast_fresh_campaigns: 2,
            },
            ..GenConfig::default()
        };
        let mut out = Vec::new();
        let t = generate(&cfg, &Profiles::Builtin, &mut out, |_, _| {}).unwrap();
        assert_eq!(t.surges.len(), 2);
        assert!(
            t.surges.iter().all(|s| s.newcomers >= 900),
            "{:?}",
            t.surges
        );
        assert_eq!(t.campaigns.iter().filter(|c| c.fresh_batch).count(), 5);
        assert_eq!(t.campaigns.iter().filter(|c| c.fresh_fast).count(), 2);
        assert!(t.newcomers > 0 && t.newcomer_follows >= 5 * t.newcomers / 2);
        let fresh: std::collections::HashSet<&str> = t
            .campaigns
            .iter()
            .filter(|c| c.fresh_batch && !c.fresh_fast)
            .map(|c| c.followee_id.as_str())
            .collect();
        let fast: std::collections::HashSet<&str> = t
            .campaigns
            .iter()
            .filter(|c| c.fresh_fast)
            .map(|c| c.followee_id.as_str())
            .collect();
        let (mut newcomer, mut fresh_bots, mut fast_bots) = (0, 0, 0);
        for line in out.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let e = parse(line).unwrap();
            let id: u64 = e.follower.id.parse().unwrap();
            let age_ms = e.ts_ms.unwrap() - e.follower.created_at_s * 1000;
            if (super::NEWCOMER_ID_MIN..t.bot_id_min).contains(&id) {
                newcomer += 1;
                assert!((0..=40 * 60_000 + 1000).contains(&age_ms), "{age_ms}");
                assert_eq!(e.follower.statuses_count, Some(0));
                assert!(e.follower.default_profile_image);
            } else if fresh.contains(&*e.followee_id) && id >= t.bot_id_min {
                fresh_bots += 1;
                assert!(age_ms >= 2 * 3_600_000, "{age_ms}");
                assert_eq!(e.follower.statuses_count, Some(0));
            } else if fast.contains(&*e.followee_id) && id >= t.bot_id_min {
                fast_bots += 1;
                assert!((5 * 60_000..90 * 60_000).contains(&age_ms), "{age_ms}");
            }
        }
        assert_eq!(newcomer, t.newcomer_follows);
        assert!(fresh_bots > 0 && fast_bots > 0);
        assert!(GenConfig::default().organic.is_off());
    }
}
