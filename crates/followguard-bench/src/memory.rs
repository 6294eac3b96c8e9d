//! `followguard bench-memory`: resident memory per tracked followee and per cached
//! follower score (issue #6), measured as RSS growth over the real structures —
//! followees inserted through [`Detector::observe`], scores through
//! [`ScoreCache::get_or_score`] with the real model — next to the structures' own
//! accounting (`size_of`, allocation sizes), so the two can be compared. Prints a stable
//! block of `bench.memory.<what>.<metric> <value> <unit>` lines (or JSON with `--json`).
//! Linux only: RSS comes from `/proc/self/status`.

use anyhow::{bail, Context};
use followguard_core::detector::{Detector, DetectorConfig, Observation};
use followguard_core::event::Profile;
use followguard_core::model::{Model, ScoreCache};
use followguard_train::model_file::{self, DEFAULT_MODEL_PATH};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// `bench-memory` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchMemoryArgs {
    /// Tracked-followee populations to measure, comma-separated (e.g. 1000000,10000000).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub followees: Vec<usize>,
    /// Populations of followees that each also hold one pending flagged follow (a
    /// suspicious follow that did not open an alert), comma-separated; 0 to skip.
    #[arg(long, value_delimiter = ',', default_value = "1000000")]
    pub flagged: Vec<usize>,
    /// Score-cache sizes to measure, comma-separated; each cache is filled completely
    /// (the steady state of a bounded cache) with distinct followers.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub scores: Vec<usize>,
    /// Model file (the scores cached are the real model's).
    #[arg(long, env = "FOLLOWGUARD_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Issue #19, hostile ids: this many follow events, each of a distinct followee whose
    /// id is `--followee-id-bytes` long, through the whole pipeline (parse, id limit,
    /// score, detector); 0 to skip.
    #[arg(long, default_value_t = 0)]
    pub long_id_followees: usize,
    #[arg(long, default_value_t = 2048)]
    pub followee_id_bytes: usize,
    /// Issue #19, hostile ids: this many suspicious follows by distinct bots whose ids are
    /// `--bot-id-bytes` long, 50 per followee (every followee alerts), through the whole
    /// pipeline and the evidence store, every record serialised; 0 to skip.
    #[arg(long, default_value_t = 0)]
    pub long_id_bots: usize,
    #[arg(long, default_value_t = 30 * 1024)]
    pub bot_id_bytes: usize,
    /// The pipeline's id limit and record budget in the two hostile-id runs (the
    /// service's `--max-id-bytes` / `--max-record-bytes`).
    #[arg(long, default_value_t = followguard_core::bounds::DEFAULT_MAX_ID_BYTES)]
    pub max_id_bytes: usize,
    #[arg(long, default_value_t = followguard_core::bounds::DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,
    /// Print the figures as one JSON object instead of `bench.memory.*` lines.
    #[arg(long)]
    pub json: bool,
    /// Measure in this process instead of one fresh child process per figure. Internal:
    /// memory freed by one measurement stays resident in the allocator and would be
    /// reused, unseen, by the next, so each runs in its own process.
    #[arg(long, hide = true)]
    pub in_process: bool,
}

/// Issue #6's targets.
const TARGET_BYTES_PER_FOLLOWEE: f64 = 200.0;
const TARGET_BYTES_PER_SCORE: f64 = 24.0;
const TARGET_RSS_AT_10M: f64 = 4e9;

/// Event time of the first synthetic follow (2026-11-18).
const T0_MS: i64 = 1_795_000_000_000;

struct Metric {
    name: String,
    /// Formatted value (integers as integers, ratios with fixed decimals).
    value: String,
    unit: String,
}

#[derive(Default)]
struct Report {
    metrics: Vec<Metric>,
}

impl Report {
    fn add(&mut self, what: &str, metric: &str, value: f64, decimals: usize, unit: &str) {
        self.metrics.push(Metric {
            name: format!("bench.memory.{what}.{metric}"),
            value: format!("{value:.decimals$}"),
            unit: unit.to_string(),
        });
    }

    fn print_lines(&self) {
        for m in &self.metrics {
            println!("{} {} {}", m.name, m.value, m.unit);
        }
    }

    fn int(&mut self, what: &str, metric: &str, value: usize, unit: &'static str) {
        self.add(what, metric, value as f64, 0, unit);
    }
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> anyhow::Result<usize> {
    status_kb("VmRSS:")
}

/// Peak resident set size of this process, in bytes.
fn peak_rss_bytes() -> anyhow::Result<usize> {
    status_kb("VmHWM:")
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_kb(key: &str) -> anyhow::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("bench-memory reads RSS from /proc/self/status (Linux only)")?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            let kb: usize = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("parsing VmRSS in /proc/self/status")?;
            return Ok(kb * 1024);
        }
    }
    bail!("no {key} line in /proc/self/status")
}

/// Inserts `n` followees, one follow each, through the detector; RSS before and after.
/// With `flagged`, each follow is suspicious (too few to alert), so every followee also
/// holds one pending flagged follow (follower id and event id of realistic length).
fn followees(n: usize, flagged: bool, r: &mut Report) -> anyhow::Result<()> {
    let what = if flagged {
        format!("flagged_followees_{n}")
    } else {
        format!("followees_{n}")
    };
    // Warm-up: one-time allocations of a first observation (thread-locals, hasher
    // keys) are not per-followee memory; make them before the baseline.
    Detector::new(DetectorConfig::default()).observe(&observation("0", 0));
    let mut d = Detector::new(DetectorConfig::default());
    let before = rss_bytes()?;
    let start = Instant::now();
    let mut id = String::with_capacity(24);
    let (mut follower, mut event) = (String::with_capacity(24), String::with_capacity(24));
    for i in 0..n {
        id.clear();
        // Platform-style numeric ids; one millisecond apart, so no followee goes idle
        // (nothing is evicted) and the watermark sweeps run as they would live.
        let _ = write!(id, "{}", 1_000_000_000u64 + i as u64);
        let mut o = observation(&id, i as i64);
        if flagged {
            follower.clear();
            event.clear();
            let _ = write!(follower, "{}", 3_000_000_000u64 + i as u64);
            let _ = write!(event, "g1-{}", 50_000_000 + i);
            o.follower_id = &follower;
            o.event_id = &event;
            o.prob = 0.9;
            o.suspicious = true;
            o.reasons = [
                ("friends_followers_ratio_high", 0.3),
                ("followers_rate_low", 0.2),
                ("statuses_rate_low", 0.1),
            ];
        }
        d.observe(&o);
        if i > 0 && i % 2_000_000 == 0 {
            eprintln!("bench-memory: {i} of {n} followees");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = rss_bytes()?;
    let m = d.memory_report();
    if m.tracked_followees != n {
        bail!(
            "expected {n} tracked followees, the detector has {}",
            m.tracked_followees
        );
    }
    let growth = after.saturating_sub(before);
    let t = m.followee_table;
    r.int(&what, "count", n, "followees");
    r.int(&what, "rss_before", before, "bytes");
    r.int(&what, "rss", after, "bytes");
    r.int(&what, "rss_growth", growth, "bytes");
    r.add(
        &what,
        "bytes_per_followee",
        growth as f64 / n as f64,
        1,
        "bytes",
    );
    r.int(&what, "slot_size_of", t.slot_bytes, "bytes");
    r.int(&what, "index_bytes", t.index_bytes, "bytes");
    r.int(&what, "id_heap_bytes", t.id_heap_bytes, "bytes");
    r.int(&what, "idle_index_bytes", m.idle_index_bytes, "bytes");
    // Table plus the idle-eviction index: what the detector holds per followee.
    let accounted = t.total() + m.idle_index_bytes;
    r.int(&what, "accounted_bytes", accounted, "bytes");
    r.add(
        &what,
        "accounted_bytes_per_followee",
        accounted as f64 / n as f64,
        1,
        "bytes",
    );
    r.int(&what, "pending_flagged", m.pending_flagged, "follows");
    r.int(&what, "pending_accounted_bytes", m.pending_bytes, "bytes");
    r.add(
        &what,
        "accounted_bytes_per_followee_with_pending",
        (accounted + m.pending_bytes) as f64 / n as f64,
        1,
        "bytes",
    );
    if m.open_alerts != 0 {
        bail!("the synthetic follows opened {} alerts", m.open_alerts);
    }
    r.add(&what, "insert_seconds", secs, 2, "s");
    drop(d);
    Ok(())
}

/// A plain (not suspicious) follow of `followee_id`, `offset_ms` after [`T0_MS`].
fn observation(followee_id: &str, offset_ms: i64) -> Observation<'_> {
    Observation {
        event_id: "bench",
        followee_id,
        follower_id: "1",
        follow: true,
        ts_ms: T0_MS + offset_ms,
        partition: 0,
        prob: 0.01,
        suspicious: false,
        follower_created_s: 1_500_000_000,
        reasons: [("", 0.0); 3],
    }
}

/// The `k`-th distinct synthetic follower profile (counts vary, so scores do).
fn profile(id: &str, k: u64) -> Profile<'_> {
    Profile {
        id: Cow::Borrowed(id),
        screen_name: Cow::Borrowed("follower_account"),
        name: Cow::Borrowed("Follower Account"),
        description: Cow::Borrowed("coffee | travel | photos"),
        url: None,
        location: Cow::Borrowed(""),
        created_at_s: 1_500_000_000 + (k % 100_000) as i64 * 3_000,
        followers_count: Some(k % 5_000),
        friends_count: Some((k * 7) % 3_000),
        statuses_count: Some((k * 13) % 40_000),
        favourites_count: Some((k * 3) % 2_000),
        listed_count: Some(k % 7),
        default_profile: k % 3 == 0,
        default_profile_image: k % 11 == 0,
        profile_use_background_image: true,
        protected: false,
        unknown: 0,
    }
}

/// Fills a cache of `n` slots with distinct followers' real scores; RSS before and after.
fn scores(n: usize, model: &Model, r: &mut Report) -> anyhow::Result<()> {
    let what = format!("scores_{n}");
    // Warm-up: one-time allocations of a first score and a first cache (feature
    // extraction, hasher keys) are not per-score memory; make them before the baseline.
    ScoreCache::new(8).get_or_score(model, &profile("1", 1), T0_MS);
    let before = rss_bytes()?;
    let start = Instant::now();
    let mut cache = ScoreCache::new(n);
    let cap = cache.capacity();
    // Sets are 8-way: a full cache needs a few times `cap` distinct followers (every set
    // must receive 8); 5× fills all but ~1e-9 of the sets.
    let limit = cap.saturating_mul(5);
    let mut id = String::with_capacity(24);
    let mut inserted = 0usize;
    let day_ms = T0_MS;
    while cache.len() < cap && inserted < limit {
        id.clear();
        let _ = write!(id, "{}", 2_000_000_000u64 + inserted as u64);
        cache.get_or_score(model, &profile(&id, inserted as u64), day_ms);
        inserted += 1;
        if inserted % 5_000_000 == 0 {
            eprintln!(
                "bench-memory: {inserted} followers scored, {} of {cap} slots filled",
                cache.len()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = rss_bytes()?;
    let growth = after.saturating_sub(before);
    let held = cache.len().max(1);
    r.int(&what, "capacity", cap, "scores");
    r.int(&what, "cached", cache.len(), "scores");
    r.int(&what, "followers_scored", inserted, "followers");
    r.int(&what, "rss_before", before, "bytes");
    r.int(&what, "rss", after, "bytes");
    r.int(&what, "rss_growth", growth, "bytes");
    r.add(
        &what,
        "bytes_per_cached_score",
        growth as f64 / held as f64,
        2,
        "bytes",
    );
    r.int(&what, "slot_size_of", ScoreCache::SLOT_BYTES, "bytes");
    r.int(&what, "accounted_bytes", cache.memory_bytes(), "bytes");
    r.add(
        &what,
        "accounted_bytes_per_cached_score",
        cache.memory_bytes() as f64 / held as f64,
        2,
        "bytes",
    );
    r.add(&what, "fill_seconds", secs, 2, "s");
    drop(cache);
    Ok(())
}

/// Issue #19's hostile-id runs, through the whole pipeline: `followees` plain follows of
/// distinct followees with `followee_id_bytes`-byte ids, or `bots` suspicious follows by
/// distinct bots with `bot_id_bytes`-byte ids, 50 per followee. Every record is
/// serialised (as serve does before producing) and dropped (acknowledged at once: the
/// in-flight budget is serve's, measured end to end); an evidence store takes every
/// outcome. Reports peak RSS, what was rejected (`bad_id`) and the detector's accounting.
fn hostile_ids(
    a: &BenchMemoryArgs,
    bots: bool,
    model: Model,
    r: &mut Report,
) -> anyhow::Result<()> {
    use followguard_core::evidence::EvidenceStore;
    use followguard_core::pipeline::{Pipeline, PipelineConfig};
    let (n, id_bytes) = if bots {
        (a.long_id_bots, a.bot_id_bytes)
    } else {
        (a.long_id_followees, a.followee_id_bytes)
    };
    let what = if bots {
        format!("bots_{n}_ids_{id_bytes}_max_{}", a.max_id_bytes)
    } else {
        format!("followees_{n}_ids_{id_bytes}_max_{}", a.max_id_bytes)
    };
    let mut cfg = PipelineConfig {
        max_id_bytes: a.max_id_bytes,
        ..PipelineConfig::default()
    };
    cfg.detector.max_record_bytes = a.max_record_bytes;
    let mut p = Pipeline::new(std::sync::Arc::new(model), cfg);
    let mut evidence = EvidenceStore::default();
    let before = rss_bytes()?;
    let start = Instant::now();
    let (mut accepted, mut bad_id, mut alerts, mut moderation) = (0usize, 0usize, 0usize, 0usize);
    let (mut largest, mut trimmed) = (0usize, 0u64);
    let mut line = String::with_capacity(id_bytes + 1024);
    for i in 0..n {
        line.clear();
        if bots {
            // 50 bots per followee, one second apart: each followee's burst alerts.
            let (followee, k) = (i / 50, (i % 50) as i64);
            let ts = T0_MS + followee as i64 * 3_600_000 + k * 1000;
            let _ = write!(
                line,
                r#"{{"event_id":"b{i}","type":"follow","ts":{ts},"followee_id":"{}","follower":{{"id":"{i:0>id_bytes$}","screen_name":"kdjw83920183","name":"kdjw","description":"","created_at":"2026-09-01T00:00:00Z","followers_count":2,"friends_count":1450,"statuses_count":0,"favourites_count":0,"listed_count":0,"default_profile":true,"default_profile_image":true}}}}"#,
                1_000_000_000 + followee
            );
        } else {
            let _ = write!(
                line,
                r#"{{"event_id":"f{i}","type":"follow","ts":{},"followee_id":"{i:0>id_bytes$}","follower":{{"id":"42","screen_name":"follower_account","name":"Follower Account","description":"coffee","created_at":"2014-03-01T00:00:00Z","followers_count":310,"friends_count":280,"statuses_count":5400,"favourites_count":900,"listed_count":3}}}}"#,
                T0_MS + i as i64
            );
        }
        match p.process(line.as_bytes(), None, 0) {
            Ok(o) => {
                accepted += 1;
                for rec in &o.alerts {
                    let bytes = serde_json::to_vec(rec)?;
                    largest = largest.max(bytes.len());
                    trimmed = trimmed.max(u64::from(rec.samples_truncated));
                    alerts += 1;
                }
                for rec in &o.moderation {
                    largest = largest.max(serde_json::to_vec(rec)?.len());
                    moderation += 1;
                }
                evidence.observe(&o);
            }
            Err(e) if e.kind() == "bad_id" => bad_id += 1,
            Err(e) => bail!("event {i}: {e}"),
        }
        if i > 0 && i % 200_000 == 0 {
            eprintln!("bench-memory: {i} of {n} events");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (after, peak) = (rss_bytes()?, peak_rss_bytes()?);
    let (m, _) = p.memory_report();
    r.int(&what, "events", n, "events");
    r.int(&what, "id_bytes", id_bytes, "bytes");
    r.int(&what, "max_id_bytes", a.max_id_bytes, "bytes");
    r.int(&what, "max_record_bytes", a.max_record_bytes, "bytes");
    r.int(&what, "accepted", accepted, "events");
    r.int(&what, "bad_id", bad_id, "events");
    r.int(&what, "tracked_followees", m.tracked_followees, "followees");
    r.int(&what, "alert_records", alerts, "records");
    r.int(&what, "moderation_records", moderation, "records");
    r.int(&what, "largest_record", largest, "bytes");
    r.int(&what, "max_samples_truncated", trimmed as usize, "ids");
    r.int(&what, "rss_before", before, "bytes");
    r.int(&what, "rss", after, "bytes");
    r.int(&what, "peak_rss", peak, "bytes");
    r.int(&what, "detector_accounted_bytes", m.total_bytes(), "bytes");
    r.int(&what, "detector_id_bytes", m.id_bytes, "bytes");
    r.int(
        &what,
        "pending_refused",
        m.pending_refused as usize,
        "follows",
    );
    r.int(
        &what,
        "evidence_accounted_bytes",
        evidence.memory_bytes(),
        "bytes",
    );
    r.add(&what, "seconds", secs, 2, "s");
    Ok(())
}

/// Runs one measurement in a fresh child process (`--in-process`) and collects its lines.
fn in_child(kind: &str, n: usize, a: &BenchMemoryArgs, r: &mut Report) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the followguard-bench binary")?;
    let count = |k: &str| if kind == k { n } else { 0 };
    let out = std::process::Command::new(exe)
        .arg("bench-memory")
        .arg("--in-process")
        .arg(format!("--followees={}", count("followees")))
        .arg(format!("--flagged={}", count("flagged")))
        .arg(format!("--scores={}", count("scores")))
        .arg(format!(
            "--long-id-followees={}",
            count("long_id_followees")
        ))
        .arg(format!("--long-id-bots={}", count("long_id_bots")))
        .arg(format!("--followee-id-bytes={}", a.followee_id_bytes))
        .arg(format!("--bot-id-bytes={}", a.bot_id_bytes))
        .arg(format!("--max-id-bytes={}", a.max_id_bytes))
        .arg(format!("--max-record-bytes={}", a.max_record_bytes))
        .arg("--model")
        .arg(&a.model)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the bench-memory child process")?;
    if !out.status.success() {
        bail!("bench-memory child for {n} {kind} failed ({})", out.status);
    }
    let text = String::from_utf8(out.stdout).context("child output is not UTF-8")?;
    for line in text.lines() {
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(value), Some(unit), None) if name.starts_with("bench.memory.") => {
                r.metrics.push(Metric {
                    name: name.to_string(),
                    value: value.to_string(),
                    unit: unit.to_string(),
                })
            }
            _ => bail!("unexpected line from the bench-memory child: {line:?}"),
        }
    }
    Ok(())
}

/// Runs `bench-memory`.
pub fn run(a: BenchMemoryArgs) -> anyhow::Result<()> {
    let followee_sizes: Vec<usize> = a.followees.iter().copied().filter(|&n| n > 0).collect();
    let flagged_sizes: Vec<usize> = a.flagged.iter().copied().filter(|&n| n > 0).collect();
    let score_sizes: Vec<usize> = a.scores.iter().copied().filter(|&n| n > 0).collect();
    if a.in_process {
        let mut r = Report::default();
        for n in followee_sizes {
            eprintln!("bench-memory: {n} tracked followees");
            followees(n, false, &mut r)?;
        }
        for n in flagged_sizes {
            eprintln!("bench-memory: {n} tracked followees with a pending flagged follow");
            followees(n, true, &mut r)?;
        }
        if !score_sizes.is_empty() {
            let model = load_model(&a.model)?;
            for n in score_sizes {
                eprintln!("bench-memory: score cache of {n}");
                scores(n, &model, &mut r)?;
            }
        }
        if a.long_id_followees > 0 {
            eprintln!(
                "bench-memory: {} followees with long ids",
                a.long_id_followees
            );
            hostile_ids(&a, false, load_model(&a.model)?, &mut r)?;
        }
        if a.long_id_bots > 0 {
            eprintln!("bench-memory: {} bots with long ids", a.long_id_bots);
            hostile_ids(&a, true, load_model(&a.model)?, &mut r)?;
        }
        r.print_lines();
        return Ok(());
    }
    if !score_sizes.is_empty() || a.long_id_followees > 0 || a.long_id_bots > 0 {
        // Fail early, before minutes of followee runs, if the model is unusable.
        load_model(&a.model)?;
    }
    let mut r = Report::default();
    r.add(
        "target",
        "bytes_per_followee",
        TARGET_BYTES_PER_FOLLOWEE,
        0,
        "bytes",
    );
    r.add(
        "target",
        "bytes_per_cached_score",
        TARGET_BYTES_PER_SCORE,
        0,
        "bytes",
    );
    r.add(
        "target",
        "rss_at_10000000_followees",
        TARGET_RSS_AT_10M,
        0,
        "bytes",
    );
    for n in followee_sizes {
        in_child("followees", n, &a, &mut r)?;
    }
    for n in flagged_sizes {
        in_child("flagged", n, &a, &mut r)?;
    }
    for n in score_sizes {
        in_child("scores", n, &a, &mut r)?;
    }
    if a.long_id_followees > 0 {
        in_child("long_id_followees", a.long_id_followees, &a, &mut r)?;
    }
    if a.long_id_bots > 0 {
        in_child("long_id_bots", a.long_id_bots, &a, &mut r)?;
    }
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> = r
            .metrics
            .iter()
            .map(|m| {
                let value = m
                    .value
                    .parse::<f64>()
                    .map_or(serde_json::Value::Null, serde_json::Value::from);
                (
                    m.name.clone(),
                    serde_json::json!({ "value": value, "unit": m.unit }),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        r.print_lines();
    }
    Ok(())
}

fn load_model(path: &std::path::Path) -> anyhow::Result<Model> {
    model_file::load(path).map_err(|e| {
        anyhow::Error::new(followguard::ConfigError(format!(
            "loading model {}: {e}",
            path.display()
        )))
    })
}
