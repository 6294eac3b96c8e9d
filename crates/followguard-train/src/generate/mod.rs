//! Synthetic follow streams with injected bought-follower campaigns and their ground
//! truth (`followguard generate`), for demos, golden tests and the detection benchmark.
//!
//! Organic traffic: followees with heavy-tailed (log-normal) popularity, a daily cycle,
//! organic unfollows, and viral spikes (×10–×100 for hours, human followers) as hard
//! negatives. Campaigns: 100–50k bought follows delivered in minutes, hours, days or a
//! 7-day drip, bots that also follow popular accounts (camouflage), and cohorts re-sold
//! to several customers. Profiles come from a built-in parametric generator, or are
//! sampled from labelled CSVs (`--profiles`): humans for organic traffic, bots for
//! campaigns. Same config and seed → byte-identical output. Issue #20's newcomer traffic
//! (off by default) is in [`organic`].

pub mod organic;

use crate::dataset::table_time_ms;
use anyhow::{bail, Context};
use followguard_core::time::{format_rfc3339_ms, parse_time_ms};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Follower ids at or above this value are bought accounts (recorded in the truth file
/// so the benchmark can label follows; the model never sees ids as a feature).
pub const BOT_ID_MIN: u64 = 9_000_000_000;
const HUMAN_ID_MIN: u64 = 1_000_000_000;
pub(crate) const FOLLOWEE_ID_MIN: u64 = 100_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Generation parameters (see `GenerateArgs` for their meaning).
#[derive(Debug, Clone, Serialize)]
pub struct GenConfig {
    pub followees: usize,
    pub days: u32,
    pub start_ms: i64,
    pub seed: u64,
    pub median_daily_follows: f64,
    pub popularity_sigma: f64,
    pub max_daily_follows: f64,
    pub humans: u64,
    pub viral_spikes: usize,
    pub campaigns: usize,
    pub min_campaign: u32,
    pub max_campaign: u32,
    pub resell_prob: f64,
    pub camouflage: f64,
    pub unfollow_rate: f64,
    /// Issue #20 traffic (newcomers, surges, fresh batches); off by default.
    pub organic: organic::OrganicConfig,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            followees: 10_000,
            days: 14,
            start_ms: 1_793_491_200_000, // 2026-11-01T00:00:00Z
            seed: 1,
            median_daily_follows: 3.0,
            popularity_sigma: 1.5,
            max_daily_follows: 20_000.0,
            humans: 300_000,
            viral_spikes: 100,
            campaigns: 150,
            min_campaign: 100,
            max_campaign: 50_000,
            resell_prob: 0.3,
            camouflage: 0.05,
            unfollow_rate: 0.03,
            organic: organic::OrganicConfig::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Profiles

/// A profile snapshot to emit; `age_s` is the account age at the stream start, so ages
/// measured at event time match the ages the CSV rows had at their crawl time.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub screen_name: String,
    pub name: String,
    pub description: String,
    pub url: Option<String>,
    pub location: String,
    pub age_s: i64,
    /// followers, friends, statuses, favourites, listed
    pub counts: [u64; 5],
    pub default_profile: bool,
    pub default_profile_image: bool,
    pub profile_use_background_image: bool,
    pub protected: bool,
}

/// Where follower profiles come from.
#[derive(Debug, Clone)]
pub enum Profiles {
    /// Parametric human and bought-bot generators (works on a fresh machine).
    Builtin,
    /// Rows sampled from labelled CSVs (with small jitter so repeats are not identical).
    Pools {
        humans: Vec<Template>,
        bots: Vec<Template>,
    },
}

/// SplitMix64: derives an account's profile from its id, so accounts need no storage.
struct Mix(u64);

impl Mix {
    fn new(seed: u64) -> Self {
        Mix(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FIRST: [&str; 24] = [
    "Anna", "Marco", "Giulia", "Luca", "Sara", "Paolo", "Emma", "John", "Maria", "David", "Laura",
    "Ahmed", "Yuki", "Chen", "Sofia", "Lucas", "Olga", "Pedro", "Fatima", "Noah", "Elena", "Tom",
    "Aisha", "Kenji",
];
const LAST: [&str; 20] = [
    "Rossi", "Smith", "Bianchi", "Garcia", "Müller", "Kim", "Tanaka", "Silva", "Ferrari", "Brown",
    "Costa", "Nguyen", "Khan", "Lopez", "Ricci", "Novak", "Ivanova", "Santos", "Park", "Moreau",
];
const WORDS: [&str; 24] = [
    "music",
    "coffee",
    "football",
    "dad",
    "teacher",
    "photography",
    "travel",
    "design",
    "news",
    "runner",
    "books",
    "engineer",
    "student",
    "politics",
    "food",
    "art",
    "science",
    "mom",
    "gamer",
    "films",
    "writer",
    "nurse",
    "cycling",
    "jazz",
];
const PLACES: [&str; 12] = [
    "Roma",
    "Milano",
    "London",
    "New York",
    "Tokyo",
    "Madrid",
    "Berlin",
    "Paris",
    "São Paulo",
    "Jakarta",
    "Lagos",
    "Toronto",
];

fn clamp_count(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round().min(5e7) as u64
    } else {
        0
    }
}

/// A parametric human: older accounts, active, balanced follower/friend counts.
fn builtin_human(id: u64) -> Template {
    let mut r = Mix::new(id);
    let first = r.pick(&FIRST);
    let last = r.pick(&LAST);
    let mut screen = format!(
        "{}{}",
        first.to_lowercase(),
        &last[..3.min(last.len())].to_lowercase()
    );
    if r.chance(0.2) {
        screen.push_str(&format!("{}", r.next() % 100));
    }
    let followers = r.lognormal(250.0, 1.3);
    let description = if r.chance(0.8) {
        format!(
            "{} | {} | {}",
            r.pick(&WORDS),
            r.pick(&WORDS),
            r.pick(&WORDS)
        )
    } else {
        String::new()
    };
    Template {
        screen_name: screen,
        name: format!("{first} {last}"),
        description,
        url: r
            .chance(0.3)
            .then(|| format!("https://{}.example.org", first.to_lowercase())),
        location: if r.chance(0.65) {
            r.pick(&PLACES).to_string()
        } else {
            String::new()
        },
        age_s: (r.lognormal(1500.0, 0.7).clamp(30.0, 6000.0) * 86_400.0) as i64,
        counts: [
            clamp_count(followers),
            clamp_count(r.lognormal(300.0, 1.0)),
            clamp_count(r.lognormal(1500.0, 1.5)),
            clamp_count(r.lognormal(300.0, 1.8)),
            clamp_count(followers / 60.0 * r.lognormal(1.0, 0.8)),
        ],
        default_profile: r.chance(0.25),
        default_profile_image: r.chance(0.03),
        profile_use_background_image: r.chance(0.8),
        protected: r.chance(0.05),
    }
}

/// A parametric bought follower: young account created with its cohort, few tweets and
/// followers, many friends, default profile. `cohort_age_days` centres the cohort's
/// creation dates (vendors register accounts in batches).
fn builtin_bot(id: u64, cohort_age_days: f64, premium: bool) -> Template {
    let mut r = Mix::new(id ^ 0x5bd1_e995);
    let first = r.pick(&FIRST);
    let last = r.pick(&LAST);
    let mut screen = format!("{}{}", first.to_lowercase(), last.to_lowercase());
    screen.truncate(9);
    if r.chance(0.6) {
        screen.push_str(&format!("{}", 1000 + r.next() % 9_000_000));
    }
    let age_days = (cohort_age_days + 12.0 * r.normal()).max(3.0);
    let (statuses, followers, friends, favs) = if premium {
        (
            r.lognormal(60.0, 1.0),
            r.lognormal(35.0, 0.9),
            r.lognormal(650.0, 0.5),
            r.lognormal(10.0, 1.2),
        )
    } else {
        (
            r.lognormal(15.0, 1.3),
            r.lognormal(8.0, 1.2),
            r.lognormal(600.0, 0.6),
            r.lognormal(2.0, 1.5),
        )
    };
    let desc_p = if premium { 0.4 } else { 0.15 };
    Template {
        screen_name: screen,
        name: if r.chance(0.7) {
            format!("{first} {last}")
        } else {
            first.to_string()
        },
        description: if r.chance(desc_p) {
            r.pick(&WORDS).to_string()
        } else {
            String::new()
        },
        url: r.chance(0.01).then(|| "http://example.net".to_string()),
        location: if r.chance(0.15) {
            r.pick(&PLACES).to_string()
        } else {
            String::new()
        },
        age_s: (age_days * 86_400.0) as i64,
        counts: [
            clamp_count(followers),
            clamp_count(friends),
            clamp_count(statuses),
            clamp_count(favs),
            if r.chance(0.1) { 1 } else { 0 },
        ],
        default_profile: r.chance(if premium { 0.55 } else { 0.75 }),
        default_profile_image: r.chance(if premium { 0.1 } else { 0.35 }),
        profile_use_background_image: r.chance(0.9),
        protected: false,
    }
}

/// A pooled row with per-account jitter (counts ±10 %, age ±3 days) so the same row
/// reused for many accounts does not give identical snapshots.
fn jittered(t: &Template, id: u64) -> Template {
    let mut r = Mix::new(id ^ 0x2545_f491);
    let mut out = t.clone();
    for c in &mut out.counts {
        let f = 0.9 + 0.2 * r.unit();
        *c = clamp_count(*c as f64 * f);
    }
    out.age_s = (t.age_s + ((r.unit() - 0.5) * 6.0 * 86_400.0) as i64).max(86_400);
    out
}

// ---------------------------------------------------------------------------------------
// Loading labelled CSVs

/// Label of a `--profiles` file given as `PATH=bot` / `PATH=human`, else from a `label`
/// (`bot`/`human`) or `label_fake` (`1`/`0`) column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Bot,
    Human,
}

/// Parses `PATH[=bot|human]`.
pub fn parse_profile_spec(spec: &str) -> anyhow::Result<(PathBuf, Option<Label>)> {
    match spec.rsplit_once('=') {
        Some((p, "bot")) | Some((p, "fake")) => Ok((PathBuf::from(p), Some(Label::Bot))),
        Some((p, "human")) => Ok((PathBuf::from(p), Some(Label::Human))),
        Some((_, other)) => {
            bail!("--profiles {spec}: label must be `bot` or `human`, got {other:?}")
        }
        None => Ok((PathBuf::from(spec), None)),
    }
}

fn row_count(v: &str) -> u64 {
    let v = v.trim();
    v.parse::<u64>()
        .ok()
        .or_else(|| {
            v.parse::<f64>()
                .ok()
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        })
        .unwrap_or(0)
}

fn row_bool(v: &str) -> bool {
    matches!(v.trim(), "1" | "true" | "True" | "TRUE")
}

fn row_str(v: &str) -> String {
    let v = v.trim();
    if v == "NULL" {
        String::new()
    } else {
        v.to_string()
    }
}

/// Reads one CSV of v1.1 user rows (cresci format, or flat with a `label` column).
/// Returns (humans, bots, rows skipped for a missing/invalid creation date or label).
pub fn load_profiles(
    path: &Path,
    label: Option<Label>,
) -> anyhow::Result<(Vec<Template>, Vec<Template>, usize)> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening profiles CSV {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let created =
        col("created_at").with_context(|| format!("{}: no `created_at` column", path.display()))?;
    let crawl = col("crawled_at").or_else(|| col("updated"));
    let label_col = col("label");
    let label_fake = col("label_fake");
    if label.is_none() && label_col.is_none() && label_fake.is_none() {
        bail!(
            "{}: no `label`/`label_fake` column; give the label as --profiles {}=bot or =human",
            path.display(),
            path.display()
        );
    }
    let names = [
        "screen_name",
        "name",
        "description",
        "url",
        "location",
        "followers_count",
        "friends_count",
        "statuses_count",
        "favourites_count",
        "listed_count",
        "default_profile",
        "default_profile_image",
        "profile_use_background_image",
        "protected",
    ];
    let idx: Vec<Option<usize>> = names.iter().map(|n| col(n)).collect();
    let mut rows: Vec<(Template, i64, i64, Label)> = Vec::new();
    let mut skipped = 0;
    let mut max_created = i64::MIN;
    for rec in rdr.records() {
        let Ok(rec) = rec else {
            skipped += 1;
            continue;
        };
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("");
        let Some(created_ms) = table_time_ms(get(Some(created))) else {
            skipped += 1;
            continue;
        };
        let row_label = match (label, get(label_col).trim(), get(label_fake).trim()) {
            (Some(l), _, _) => Some(l),
            (None, "bot" | "fake" | "1", _) => Some(Label::Bot),
            (None, "human" | "genuine" | "0", _) => Some(Label::Human),
            (None, _, "1") => Some(Label::Bot),
            (None, _, "0") => Some(Label::Human),
            _ => None,
        };
        let Some(row_label) = row_label else {
            skipped += 1;
            continue;
        };
        max_created = max_created.max(created_ms);
        let crawl_ms = crawl
            .and_then(|c| table_time_ms(get(Some(c))))
            .unwrap_or(i64::MIN);
        let url = row_str(get(idx[3]));
        let t = Template {
            screen_name: row_str(get(idx[0])),
            name: row_str(get(idx[1])),
            description: row_str(get(idx[2])),
            url: (!url.is_empty()).then_some(url),
            location: row_str(get(idx[4])),
            age_s: 0,
            counts: [
                row_count(get(idx[5])),
                row_count(get(idx[6])),
                row_count(get(idx[7])),
                row_count(get(idx[8])),
                row_count(get(idx[9])),
            ],
            default_profile: row_bool(get(idx[10])),
            default_profile_image: row_bool(get(idx[11])),
            profile_use_background_image: idx[12].is_none() || row_bool(get(idx[12])),
            protected: row_bool(get(idx[13])),
        };
        rows.push((t, crawl_ms, created_ms, row_label));
    }
    let (mut humans, mut bots) = (Vec::new(), Vec::new());
    for (mut t, crawl_ms, created_ms, l) in rows {
        // Without a crawl time, measure age against the newest account in the file.
        let now = if crawl_ms == i64::MIN {
            max_created + DAY_MS
        } else {
            crawl_ms
        };
        t.age_s = ((now - created_ms) / 1000).max(86_400);
        match l {
            Label::Human => humans.push(t),
            Label::Bot => bots.push(t),
        }
    }
    Ok((humans, bots, skipped))
}

// ---------------------------------------------------------------------------------------
// Ground truth

/// One injected campaign (one customer).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthCampaign {
    pub campaign: String,
    pub followee_id: String,
    pub cohort: u32,
    pub resold: bool,
    pub premium: bool,
    /// Bought follows delivered within the stream.
    pub size: u32,
    pub speed: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Time of the 100th bought follow (None for campaigns under 100).
    pub t100_ms: Option<i64>,
    /// Issue #20: a fresh-batch campaign (bots registered together hours to days before
    /// delivery, newcomer-looking profiles). Absent from today's truth files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_batch: bool,
    /// Issue #20: a fast fresh batch (delivered 5–50 min after a registration batch of a
    /// few minutes: every follower under an hour old). Absent unless true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_fast: bool,
}

/// One organic viral spike (a hard negative).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthViral {
    pub followee_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub multiplier: f64,
    pub extra_follows: u64,
}

/// The ground-truth file written next to the events.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Truth {
    pub generator: String,
    pub seed: u64,
    pub profiles: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub days: u32,
    pub followees: usize,
    pub bot_id_min: u64,
    pub events: u64,
    pub organic_follows: u64,
    pub bought_follows: u64,
    pub camouflage_follows: u64,
    pub unfollows: u64,
    pub campaigns: Vec<TruthCampaign>,
    pub viral: Vec<TruthViral>,
    /// Issue #20 traffic (absent when off, so today's truth files are unchanged):
    /// organic sign-ups, their follows, and suggested-list surges (hard negatives).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub newcomers: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub newcomer_follows: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surges: Vec<organic::TruthSurge>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

// ---------------------------------------------------------------------------------------
// Generation

#[derive(Debug, Clone, Copy)]
pub(crate) struct Ev {
    pub(crate) ts: i64,
    pub(crate) followee: u32,
    pub(crate) follower: u64,
    pub(crate) unfollow: bool,
    /// Cohort-derived creation centre for built-in bots (days), premium flag.
    pub(crate) cohort_age: f32,
    pub(crate) premium: bool,
    /// Issue #20: `organic::KIND_*` (0 = today's traffic); for newcomer-style
    /// accounts their creation time (epoch s) and friends count at this follow.
    pub(crate) kind: u8,
    pub(crate) created_s: i64,
    pub(crate) friends: u16,
}

fn poisson(rng: &mut Xoshiro256PlusPlus, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= rng.gen::<f64>();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    let u1: f64 = rng.gen::<f64>().max(1e-12);
    let u2: f64 = rng.gen();
    let n = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (lambda + lambda.sqrt() * n).round().max(0.0) as u64
}

fn lognormal(rng: &mut Xoshiro256PlusPlus, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.gen::<f64>().max(1e-12);
    let u2: f64 = rng.gen();
    median * (sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()).exp()
}

/// Stream events (unsorted) plus truth. Events are sorted by the writer.
struct Plan {
    events: Vec<Ev>,
    truth: Truth,
}

fn plan(cfg: &GenConfig, profiles_label: &str) -> anyhow::Result<Plan> {
    if cfg.followees == 0 || cfg.days == 0 {
        bail!("--followees and --days must be at least 1");
    }
    if cfg.min_campaign == 0 || cfg.min_campaign > cfg.max_campaign {
        bail!("campaign sizes must satisfy 1 <= min <= max");
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let start = cfg.start_ms;
    let end = start + i64::from(cfg.days) * DAY_MS;
    // Organic-only warm-up before any campaign or spike: followees learn a baseline.
    let warmup = DAY_MS.min((end - start) / 4);
    let n = cfg.followees;
    // Heavy-tailed popularity and a per-followee phase of the daily cycle (time zone).
    let rates: Vec<f64> = (0..n)
        .map(|_| {
            lognormal(&mut rng, cfg.median_daily_follows, cfg.popularity_sigma)
                .min(cfg.max_daily_follows)
        })
        .collect();
    let phases: Vec<f64> = (0..n).map(|_| rng.gen::<f64>()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| rates[b].total_cmp(&rates[a]).then(a.cmp(&b)));
    // Camouflage targets: the top 5 % by popularity, so each gets a thin sprinkle of
    // cohort bots among plenty of organic followers (what bots do to look normal).
    let popular: Vec<usize> = order.iter().copied().take((n / 20).max(1)).collect();

    let mut events: Vec<Ev> = Vec::new();
    let human = |rng: &mut Xoshiro256PlusPlus| HUMAN_ID_MIN + rng.gen_range(0..cfg.humans.max(1));
    let organic_ev = |ts: i64, followee: usize, follower: u64| Ev {
        ts,
        followee: followee as u32,
        follower,
        unfollow: false,
        cohort_age: 0.0,
        premium: false,
        kind: 0,
        created_s: 0,
        friends: 0,
    };

    // Organic follows with a daily cycle (amplitude 0.6), by thinning.
    let mut organic = 0u64;
    for f in 0..n {
        let count = poisson(&mut rng, rates[f] * f64::from(cfg.days));
        let mut made = 0;
        while made < count {
            let ts = start + rng.gen_range(0..(end - start));
            let day_frac = ((ts - start) % DAY_MS) as f64 / DAY_MS as f64;
            let intensity = 1.0 + 0.6 * (2.0 * std::f64::consts::PI * (day_frac - phases[f])).sin();
            if rng.gen::<f64>() * 1.6 > intensity {
                continue;
            }
            events.push(organic_ev(ts, f, human(&mut rng)));
            made += 1;
        }
        organic += count;
    }

    // Viral spikes: ×10–×100 for 1–8 hours, human followers.
    let mut viral = Vec::new();
    for _ in 0..cfg.viral_spikes {
        let f = rng.gen_range(0..n);
        let hours = rng.gen_range(1.0..8.0f64);
        let mult = (rng.gen_range(10f64.ln()..100f64.ln())).exp();
        let s = start + warmup + rng.gen_range(0..((end - start - 2 * warmup).max(1)));
        let e = (s + (hours * HOUR_MS as f64) as i64).min(end).max(s + 1);
        let extra = poisson(
            &mut rng,
            (rates[f] / 24.0 * (mult - 1.0) * hours).min(500_000.0),
        );
        for _ in 0..extra {
            let ts = rng.gen_range(s..e);
            events.push(organic_ev(ts, f, human(&mut rng)));
        }
        organic += extra;
        viral.push(TruthViral {
            followee_id: (FOLLOWEE_ID_MIN + f as u64).to_string(),
            start_ms: s,
            end_ms: e,
            multiplier: (mult * 10.0).round() / 10.0,
            extra_follows: extra,
        });
    }

    // Campaigns.
    struct Cohort {
        first_bot: u64,
        size: u32,
        age_days: f32,
        premium: bool,
        start_ms: i64,
    }
    let mut cohorts: Vec<Cohort> = Vec::new();
    let mut next_bot = BOT_ID_MIN;
    let mut campaigns = Vec::new();
    let mut targets_used = std::collections::HashSet::new();
    let (mut bought, mut camouflage) = (0u64, 0u64);
    let speeds = ["minutes", "hours", "days", "drip"];
    for c in 0..cfg.campaigns {
        let size = (rng
            .gen_range(f64::from(cfg.min_campaign).ln()..=f64::from(cfg.max_campaign).ln()))
        .exp()
        .round() as u32;
        let speed = speeds[rng.gen_range(0..speeds.len())];
        let dur = match speed {
            "minutes" => rng.gen_range(5 * 60_000..60 * 60_000),
            "hours" => rng.gen_range(HOUR_MS..24 * HOUR_MS),
            "days" => rng.gen_range(DAY_MS..3 * DAY_MS),
            _ => 7 * DAY_MS,
        };
        let resell = !cohorts.is_empty() && rng.gen::<f64>() < cfg.resell_prob;
        let (cohort_idx, s) = if resell {
            let k = rng.gen_range(0..cohorts.len());
            // Re-sold within a day and a half: the same bots serve several customers.
            let s = (cohorts[k].start_ms + rng.gen_range(0..36 * HOUR_MS)).min(end - dur - HOUR_MS);
            (k, s.max(start + warmup))
        } else {
            let latest = (end - dur - HOUR_MS).max(start + warmup + 1);
            let s = rng.gen_range(start + warmup..latest);
            cohorts.push(Cohort {
                first_bot: next_bot,
                size,
                age_days: rng.gen_range(45.0..900.0),
                premium: rng.gen::<f64>() < 0.1,
                start_ms: s,
            });
            next_bot += u64::from(size);
            (cohorts.len() - 1, s)
        };
        let cohort = &cohorts[cohort_idx];
        let size = size.min(cohort.size);
        let mut target = rng.gen_range(0..n);
        for _ in 0..100 {
            if !targets_used.contains(&target) && !popular.contains(&target) {
                break;
            }
            target = rng.gen_range(0..n);
        }
        targets_used.insert(target);
        let mut times: Vec<i64> = (0..size)
            .map(|_| s + rng.gen_range(0..dur))
            .filter(|&t| t < end)
            .collect();
        times.sort_unstable();
        let size = times.len() as u32;
        for (i, &ts) in times.iter().enumerate() {
            let bot = cohort.first_bot + i as u64;
            let ev = Ev {
                ts,
                followee: target as u32,
                follower: bot,
                unfollow: false,
                cohort_age: cohort.age_days,
                premium: cohort.premium,
                kind: 0,
                created_s: 0,
                friends: 0,
            };
            events.push(ev);
            bought += 1;
            if rng.gen::<f64>() < cfg.camouflage {
                let p = popular[rng.gen_range(0..popular.len())];
                let cts = s + rng.gen_range(0..(dur + 2 * DAY_MS));
                if cts < end {
                    events.push(Ev {
                        ts: cts,
                        followee: p as u32,
                        ..ev
                    });
                    camouflage += 1;
                }
            }
            // Vendors' accounts get purged: some bought follows are undone days later.
            if rng.gen::<f64>() < 0.05 {
                let uts = ts + rng.gen_range(DAY_MS..7 * DAY_MS);
                if uts < end {
                    events.push(Ev {
                        ts: uts,
                        unfollow: true,
                        ..ev
                    });
                }
            }
        }
        campaigns.push(TruthCampaign {
            campaign: format!("c{c:04}"),
            followee_id: (FOLLOWEE_ID_MIN + target as u64).to_string(),
            cohort: cohort_idx as u32,
            resold: resell,
            premium: cohort.premium,
            size,
            speed: speed.to_string(),
            start_ms: times.first().copied().unwrap_or(s),
            end_ms: times.last().copied().unwrap_or(s),
            t100_ms: times.get(99).copied(),
            fresh_batch: false,
            fresh_fast: false,
        });
    }

    // Organic unfollows (a share of organic follows are undone later).
    let organic_len = events.len();
    let mut unfollows = 0u64;
    for i in 0..organic_len {
        let e = events[i];
        if e.follower >= BOT_ID_MIN || e.unfollow {
            continue;
        }
        if rng.gen::<f64>() < cfg.unfollow_rate {
            let uts = e.ts + (-(rng.gen::<f64>().max(1e-9)).ln() * 2.0 * DAY_MS as f64) as i64;
            if uts < end {
                events.push(Ev {
                    ts: uts,
                    unfollow: true,
                    ..e
                });
                unfollows += 1;
            }
        }
    }
    unfollows += events
        .iter()
        .filter(|e| e.unfollow && e.follower >= BOT_ID_MIN)
        .count() as u64;
    // Issue #20 hook: newcomers, surges, fresh batches (own RNG; nothing when off).
    let extra = organic::add(
        &cfg.organic,
        cfg.seed,
        &organic::PlanView {
            rates: &rates,
            popular: &popular,
            targets_used: &targets_used,
            next_bot,
            first_campaign: campaigns.len(),
            start,
            end,
            warmup,
            days: cfg.days,
        },
        &mut events,
    );
    bought += extra.bought_follows;
    camouflage += extra.camouflage_follows;
    campaigns.extend(extra.campaigns);
    events.sort_unstable_by_key(|e| (e.ts, e.followee, e.follower, e.unfollow));

    Ok(Plan {
        truth: Truth {
            generator: "followguard-generate-1".into(),
            seed: cfg.seed,
            profiles: profiles_label.to_string(),
            start_ms: start,
            end_ms: end,
            days: cfg.days,
            followees: n,
            bot_id_min: BOT_ID_MIN,
            events: events.len() as u64,
            organic_follows: organic,
            bought_follows: bought,
            camouflage_follows: camouflage,
            unfollows,
            campaigns,
            viral,
            newcomers: extra.newcomers,
            newcomer_follows: extra.newcomer_follows,
            surges: extra.surges,
        },
        events,
    })
}

#[derive(Serialize)]
struct FollowerOut<'a> {
    id: &'a str,
    screen_name: &'a str,
    name: &'a str,
    description: &'a str,
    url: Option<&'a str>,
    location: &'a str,
    created_at: &'a str,
    followers_count: u64,
    friends_count: u64,
    statuses_count: u64,
    favourites_count: u64,
    listed_count: u64,
    default_profile: bool,
    default_profile_image: bool,
    profile_use_background_image: bool,
    verified: bool,
    protected: bool,
}

#[derive(Serialize)]
struct EventOut<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    ts: &'a str,
    followee_id: &'a str,
    follower: FollowerOut<'a>,
}

/// Twitter v1.1 `created_at` format: `Fri Apr 06 10:58:22 +0000 2007`.
pub fn format_twitter_time(s: i64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = s.div_euclid(86_400);
    let rem = s.rem_euclid(86_400);
    let (y, m, d) = followguard_core::time::civil_from_days(days);
    let wd = WD[(days + 4).rem_euclid(7) as usize];
    let mo = MO[(m - 1).clamp(0, 11) as usize];
    format!(
        "{wd} {mo} {d:02} {:02}:{:02}:{:02} +0000 {y:04}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Generates the stream into `events` (JSONL) and returns the truth.
pub fn generate<W: Write>(
    cfg: &GenConfig,
    profiles: &Profiles,
    events_out: &mut W,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<Truth> {
    let label = match profiles {
        Profiles::Builtin => "builtin".to_string(),
        Profiles::Pools { humans, bots } => {
            format!("csv: {} humans, {} bots", humans.len(), bots.len())
        }
    };
    if let Profiles::Pools { humans, bots } = profiles {
        if humans.is_empty() || bots.is_empty() {
            bail!(
                "--profiles must provide both human and bot rows (got {} humans, {} bots)",
                humans.len(),
                bots.len()
            );
        }
    }
    let p = plan(cfg, &label)?;
    let total = p.events.len() as u64;
    let mut line = Vec::with_capacity(1024);
    for (i, e) in p.events.iter().enumerate() {
        let t = match profiles {
            // Issue #20 hook: newcomers and fresh-batch bots have empty new profiles.
            _ if e.kind != organic::KIND_ORGANIC => organic::newcomer_template(e, cfg.start_ms),
            Profiles::Builtin if e.follower >= BOT_ID_MIN => {
                builtin_bot(e.follower, f64::from(e.cohort_age), e.premium)
            }
            Profiles::Builtin => builtin_human(e.follower),
            Profiles::Pools { humans, bots } => {
                let pool = if e.follower >= BOT_ID_MIN {
                    bots
                } else {
                    humans
                };
                let k = (Mix::new(e.follower).next() % pool.len() as u64) as usize;
                jittered(&pool[k], e.follower)
            }
        };
        let follower_id = e.follower.to_string();
        let followee_id = (FOLLOWEE_ID_MIN + u64::from(e.followee)).to_string();
        let created = format_twitter_time(cfg.start_ms.div_euclid(1000) - t.age_s);
        let ts = format_rfc3339_ms(e.ts);
        let event_id = format!("g{}-{i}", cfg.seed);
        let out = EventOut {
            event_id: &event_id,
            kind: if e.unfollow { "unfollow" } else { "follow" },
            ts: &ts,
            followee_id: &followee_id,
            follower: FollowerOut {
                id: &follower_id,
                screen_name: &t.screen_name,
                name: &t.name,
                description: &t.description,
                url: t.url.as_deref(),
                location: &t.location,
                created_at: &created,
                followers_count: t.counts[0],
                friends_count: t.counts[1],
                statuses_count: t.counts[2],
                favourites_count: t.counts[3],
                listed_count: t.counts[4],
                default_profile: t.default_profile,
                default_profile_image: t.default_profile_image,
                profile_use_background_image: t.profile_use_background_image,
                verified: false,
                protected: t.protected,
            },
        };
        line.clear();
        serde_json::to_writer(&mut line, &out)?;
        line.push(b'\n');
        events_out.write_all(&line)?;
        if i % 100_000 == 0 {
            progress(i as u64, total);
        }
    }
    progress(total, total);
    Ok(p.truth)
}

/// `generate` command arguments.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Events output (JSONL), `-` for stdout.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_OUT", default_value = "events.jsonl")]
    pub out: PathBuf,
    /// Ground-truth output (JSON): injected campaigns and viral spikes.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_TRUTH", default_value = "truth.json")]
    pub truth: PathBuf,
    /// Labelled profile CSVs to sample from instead of the built-in generator:
    /// `PATH` (with a `label` bot/human or `label_fake` column) or `PATH=bot` / `PATH=human`.
    /// Humans feed organic traffic, bots feed campaigns. Repeatable.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_PROFILES", value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Random seed: the same seed and options give byte-identical output.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Followed accounts in the stream.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_FOLLOWEES", default_value_t = 10_000)]
    pub followees: usize,
    /// Length of the stream in days.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_DAYS", default_value_t = 14)]
    pub days: u32,
    /// Stream start (RFC 3339).
    #[arg(
        long,
        env = "FOLLOWGUARD_GENERATE_START",
        default_value = "2026-11-01T00:00:00Z"
    )]
    pub start: String,
    /// Median organic follows per followee per day (popularity is log-normal around it).
    #[arg(long, env = "FOLLOWGUARD_GENERATE_MEDIAN_DAILY", default_value_t = 3.0)]
    pub median_daily: f64,
    /// Log-normal sigma of popularity: larger = heavier tail of big accounts.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_SIGMA", default_value_t = 1.5)]
    pub sigma: f64,
    /// Size of the human population following (distinct human accounts).
    #[arg(long, env = "FOLLOWGUARD_GENERATE_HUMANS", default_value_t = 300_000)]
    pub humans: u64,
    /// Organic viral spikes (hard negatives).
    #[arg(long, env = "FOLLOWGUARD_GENERATE_VIRAL", default_value_t = 100)]
    pub viral: usize,
    /// Bought-follower campaigns to inject.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_CAMPAIGNS", default_value_t = 150)]
    pub campaigns: usize,
    /// Smallest and largest campaign (log-uniform in between).
    #[arg(long, env = "FOLLOWGUARD_GENERATE_MIN_CAMPAIGN", default_value_t = 100)]
    pub min_campaign: u32,
    #[arg(
        long,
        env = "FOLLOWGUARD_GENERATE_MAX_CAMPAIGN",
        default_value_t = 50_000
    )]
    pub max_campaign: u32,
    /// Probability that a campaign re-uses (re-sells) an earlier cohort of bots.
    #[arg(long, env = "FOLLOWGUARD_GENERATE_RESELL", default_value_t = 0.3)]
    pub resell: f64,
    /// Share of bought follows that also follow a popular (top 5 %) account (camouflage).
    #[arg(long, env = "FOLLOWGUARD_GENERATE_CAMOUFLAGE", default_value_t = 0.05)]
    pub camouflage: f64,
    /// Issue #20: share of the popular accounts' new followers that are organic
    /// newcomers (sign-ups following 5–15 suggested popular accounts within minutes,
    /// empty profiles). 0 = none (today's stream).
    #[arg(
        long,
        env = "FOLLOWGUARD_GENERATE_NEWCOMER_SHARE",
        default_value_t = 0.0
    )]
    pub newcomer_share: f64,
    /// Issue #20: suggested-list surges (an account gets 1 000–6 000 newcomer follows
    /// over 1–2 days; hard negatives).
    #[arg(long, env = "FOLLOWGUARD_GENERATE_SURGES", default_value_t = 0)]
    pub surges: usize,
    /// Issue #20: fresh-batch campaigns (bots registered together 2 h – 5 days before
    /// delivery, newcomer-looking profiles), in addition to `--campaigns`.
    #[arg(
        long,
        env = "FOLLOWGUARD_GENERATE_FRESH_CAMPAIGNS",
        default_value_t = 0
    )]
    pub fresh_campaigns: usize,
    /// Issue #20: fast fresh-batch campaigns (registered within 1–10 min, delivered
    /// 5–50 min later over 5–30 min: every bot under an hour old at its follow).
    #[arg(
        long,
        env = "FOLLOWGUARD_GENERATE_FAST_FRESH_CAMPAIGNS",
        default_value_t = 0
    )]
    pub fast_fresh_campaigns: usize,
}

/// Runs `generate`: writes events and truth, reports progress and a summary on stderr.
pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let start_ms = parse_time_ms(&a.start).ok_or_else(|| {
        followguard_core::ConfigError(format!("--start {:?} is not an RFC 3339 time", a.start))
    })?;
    let cfg = GenConfig {
        followees: a.followees,
        days: a.days,
        start_ms,
        seed: a.seed,
        median_daily_follows: a.median_daily,
        popularity_sigma: a.sigma,
        humans: a.humans,
        viral_spikes: a.viral,
        campaigns: a.campaigns,
        min_campaign: a.min_campaign,
        max_campaign: a.max_campaign,
        resell_prob: a.resell,
        camouflage: a.camouflage,
        organic: organic::OrganicConfig {
            newcomer_share: a.newcomer_share,
            surges: a.surges,
            fresh_campaigns: a.fresh_campaigns,
            fast_fresh_campaigns: a.fast_fresh_campaigns,
        },
        ..GenConfig::default()
    };
    let profiles = if a.profiles.is_empty() {
        Profiles::Builtin
    } else {
        let (mut humans, mut bots) = (Vec::new(), Vec::new());
        for spec in &a.profiles {
            let (path, label) = parse_profile_spec(spec)?;
            let (h, b, skipped) = load_profiles(&path, label)?;
            eprintln!(
                "profiles {}: {} humans, {} bots, {} rows skipped",
                path.display(),
                h.len(),
                b.len(),
                skipped
            );
            humans.extend(h);
            bots.extend(b);
        }
        Profiles::Pools { humans, bots }
    };
    let started = std::time::Instant::now();
    let truth = if a.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let t = generate(&cfg, &profiles, &mut w, |_, _| {})?;
        w.flush()?;
        t
    } else {
        let f = std::fs::File::create(&a.out)
            .with_context(|| format!("creating {}", a.out.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let t = generate(&cfg, &profiles, &mut w, |i, n| {
            if n > 500_000 {
                eprint!("\rgenerate: {i}/{n} events");
            }
        })?;
        w.flush()?;
        eprintln!();
        t
    };
    let tf = std::fs::File::create(&a.truth)
        .with_context(|| format!("creating {}", a.truth.display()))?;
    serde_json::to_writer_pretty(std::io::BufWriter::new(tf), &truth)?;
    eprintln!(
        "generate: {} events ({} organic follows, {} bought, {} camouflage, {} unfollows), {} campaigns, {} viral spikes, {:.1}s",
        truth.events,
        truth.organic_follows,
        truth.bought_follows,
        truth.camouflage_follows,
        truth.unfollows,
        truth.campaigns.len(),
        truth.viral.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use followguard_core::event::parse;

    fn small() -> GenConfig {
        GenConfig {
            followees: 50,
            days: 3,
            campaigns: 3,
            viral_spikes: 2,
            max_campaign: 500,
            humans: 1000,
            ..GenConfig::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_and_every_line_parses() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let ta = generate(&small(), &Profiles::Builtin, &mut a, |_, _| {}).unwrap();
        let tb = generate(&small(), &Profiles::Builtin, &mut b, |_, _| {}).unwrap();
        assert_eq!(a, b);
        assert_eq!(ta, tb);
        let mut last = i64::MIN;
        let mut bots = 0;
        for line in a.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let e = parse(line).unwrap();
            let ts = e.ts_ms.unwrap();
            assert!(ts >= last, "events are in time order");
            last = ts;
            if e.follower.id.parse::<u64>().unwrap() >= BOT_ID_MIN {
                bots += 1;
            }
        }
        assert!(bots as u64 >= ta.bought_follows);
        assert_eq!(ta.campaigns.len(), 3);
        let other = GenConfig { seed: 2, ..small() };
        let mut c = Vec::new();
        generate(&other, &Profiles::Builtin, &mut c, |_, _| {}).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn twitter_time_format_round_trips() {
        for s in [0i64, 1_175_857_102, 1_370_949_635, 1_793_491_200] {
            let txt = format_twitter_time(s);
            assert_eq!(parse_time_ms(&txt), Some(s * 1000), "{txt}");
        }
        assert_eq!(
            format_twitter_time(1_175_857_102),
            "Fri Apr 06 10:58:22 +0000 2007"
        );
    }

    #[test]
    fn flat_csv_with_label_column_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flat.csv");
        std::fs::write(
            &p,
            "screen_name,name,created_at,followers_count,friends_count,statuses_count,favourites_count,listed_count,default_profile,crawled_at,label\n\
             ann,Ann,Tue Jun 11 11:20:35 +0000 2013,10,20,30,NULL,1,1,2015-05-02 06:41:46,human\n\
             bob99,Bob,2014-01-01T00:00:00Z,1,900,2,0,0,,2015-01-01 00:00:00,bot\n\
             bad,Bad,not a date,1,1,1,1,1,,,bot\n",
        )
        .unwrap();
        let (h, b, skipped) = load_profiles(&p, None).unwrap();
        assert_eq!((h.len(), b.len(), skipped), (1, 1, 1));
        assert_eq!(h[0].counts, [10, 20, 30, 0, 1]);
        assert!(h[0].default_profile);
        assert_eq!(b[0].age_s, 365 * 86_400);
        let no_label = dir.path().join("nolabel.csv");
        std::fs::write(&no_label, "created_at\nTue Jun 11 11:20:35 +0000 2013\n").unwrap();
        assert!(load_profiles(&no_label, None).is_err());
        assert_eq!(
            load_profiles(&no_label, Some(Label::Bot)).unwrap().1.len(),
            1
        );
    }
}
