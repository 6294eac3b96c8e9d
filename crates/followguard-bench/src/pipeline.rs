//! `followguard bench-pipeline`: in-process throughput and per-event latency of
//! [`Pipeline::process`] on one thread, with sinks to memory (issue #6).
//!
//! Owns the benchmark driver only: building the input stream (the built-in generator,
//! padded to ~0.8 KB events, or a JSONL file), the cold / warm follower-cache cases, the
//! in-memory sinks that consume every outcome the way `serve` does (alert and moderation
//! records serialised to JSON, the evidence store fed), and the stable report format
//! `bench.pipeline.<case>.<metric> <value> <unit>`.

use anyhow::{bail, Context};
use followguard::config::DetectorArgs;
use followguard::prepare::Preparer;
use followguard::replay::load_model;
use followguard_core::evidence::EvidenceStore;
use followguard_core::pipeline::{Outcome, Pipeline, PipelineConfig};
use followguard_train::generate::{self, GenConfig, Profiles};
use followguard_train::model_file::DEFAULT_MODEL_PATH;
use serde::Serialize;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Issue #6 targets, printed next to the measurements as ratios.
pub const TARGET_COLD_EVENTS_PER_S: f64 = 250_000.0;
pub const TARGET_WARM_EVENTS_PER_S: f64 = 400_000.0;
pub const TARGET_P99_US: f64 = 20.0;
pub const TARGET_P999_US: f64 = 100.0;

/// `bench-pipeline` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchPipelineArgs {
    /// Events per case (the stream is cut after this many lines).
    #[arg(long, env = "FOLLOWGUARD_BENCH_EVENTS", default_value_t = 1_000_000)]
    pub events: usize,
    /// Replay this JSONL file instead of generating a stream (used as is, not padded).
    #[arg(long, env = "FOLLOWGUARD_BENCH_INPUT")]
    pub input: Option<PathBuf>,
    /// Generator seed (built-in profiles, default stream shape of `generate`).
    #[arg(long, env = "FOLLOWGUARD_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Do not pad generated events with the v1.1 user-object extras a producer forwards
    /// unfiltered (colours, image URLs, …); padded events average ~0.8 KB.
    #[arg(long)]
    pub no_pad: bool,
    /// Do not feed the evidence store (the admin web view's per-alert evidence).
    #[arg(long)]
    pub no_evidence: bool,
    /// Cases to run: `cold` (every follower distinct, never cached) and/or `warm` (every
    /// follower already in the cache).
    #[arg(long, value_delimiter = ',', default_value = "cold,warm")]
    pub cases: Vec<Case>,
    /// Model file.
    #[arg(long, env = "FOLLOWGUARD_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Print one JSON object on stdout instead of the `bench.pipeline.*` lines.
    #[arg(long)]
    pub json: bool,
    /// Also run the cold stream the way `serve --prepare-threads N` does (chunks of up to
    /// 256 events parsed and scored on the calling thread plus N helpers, then observed
    /// in order), once with N = 0 and once with each given N, and report wall-clock
    /// events/s (per-event latency is not defined there). Text output only.
    #[arg(long, value_delimiter = ',')]
    pub prepare_threads: Vec<usize>,
    /// Issue 21: also do what `serve --changelog-topic` adds on the consume loop: dirty
    /// tracking, and every 256 events (a batch) the changed state's changelog records
    /// (exported and serialized, counted in the sink bytes), plus a partition snapshot
    /// once 200,000 records were logged (`--changelog-snapshot-records`'s default). The
    /// producing itself runs on serve's acknowledgement task (bench-e2e measures it).
    #[arg(long)]
    pub changelog: bool,
    /// Issue 21 (`--changelog`): the record cache's flush interval in ms, as `serve
    /// --changelog-flush-every` (its default 1 s; 0: every batch, as before the cache),
    /// with serve's default byte bound (`--changelog-cache-bytes`, 10 MiB).
    #[arg(long, default_value_t = 1000)]
    pub changelog_flush_ms: u64,
    #[command(flatten)]
    pub detector: DetectorArgs,
}

/// Issue 21 (`--changelog`): events per changelog batch, and records logged between
/// snapshots (serve's `--changelog-snapshot-records` default).
const CHANGELOG_BATCH: usize = 256;
const CHANGELOG_SNAPSHOT_RECORDS: usize = 200_000;

/// Follower-cache state of a measured run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    Cold,
    Warm,
}

impl Case {
    fn as_str(self) -> &'static str {
        match self {
            Case::Cold => "cold",
            Case::Warm => "warm",
        }
    }
}

/// The input: every event line back to back in one buffer (no per-line allocation, so
/// the measured loop reads memory the way a consumer reads a fetched batch).
pub struct Stream {
    pub bytes: Vec<u8>,
    /// (start, end) of each line in `bytes`, newline excluded.
    pub lines: Vec<(usize, usize)>,
}

impl Stream {
    fn push(&mut self, line: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.lines.push((start, self.bytes.len()));
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn line(&self, i: usize) -> &[u8] {
        let (s, e) = self.lines[i];
        &self.bytes[s..e]
    }

    pub fn mean_bytes(&self) -> f64 {
        if self.lines.is_empty() {
            return 0.0;
        }
        self.bytes.len() as f64 / self.lines.len() as f64
    }
}

/// The v1.1 user-object fields a producer typically forwards besides the ones the model
/// reads (ignored by `event::parse`, but parsed past on every event).
fn pad_extras(out: &mut Vec<u8>, id: &[u8], screen_name: &[u8]) {
    out.extend_from_slice(
        br#","lang":null,"time_zone":null,"utc_offset":null,"geo_enabled":false,"profile_background_color":"C0DEED","profile_link_color":"1DA1F2","entities":{"description":{"urls":[]}},"profile_image_url_https":"https://pbs.twimg.com/profile_images/"#,
    );
    out.extend_from_slice(id);
    out.push(b'/');
    out.extend_from_slice(screen_name);
    out.extend_from_slice(br#"_normal.jpg""#);
}

/// The string value following `"key":"` in `line` (generated lines have no escapes in
/// ids and screen names), with its byte range.
fn string_field(line: &[u8], key: &[u8]) -> Option<(usize, usize)> {
    let start = find(line, key)? + key.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    Some((start, start + len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Error text `Collect` stops the generator with once it has enough lines.
const ENOUGH: &str = "bench-pipeline: enough events";

/// Collects the generator's output lines (padded) until `limit`, discarding the rest.
struct Collect {
    stream: Stream,
    limit: usize,
    pending: Vec<u8>,
    pad: bool,
    line: Vec<u8>,
}

impl Collect {
    fn take_line(&mut self, raw: &[u8]) {
        if self.stream.len() >= self.limit {
            return;
        }
        if !self.pad || !raw.ends_with(b"}}") {
            self.stream.push(raw);
            return;
        }
        let id = string_field(raw, br#""follower":{"id":""#).unwrap_or((0, 0));
        let sn = string_field(raw, br#""screen_name":""#).unwrap_or((0, 0));
        self.line.clear();
        self.line.extend_from_slice(&raw[..raw.len() - 2]);
        let (id, sn) = (raw[id.0..id.1].to_vec(), raw[sn.0..sn.1].to_vec());
        pad_extras(&mut self.line, &id, &sn);
        self.line.extend_from_slice(b"}}");
        let line = std::mem::take(&mut self.line);
        self.stream.push(&line);
        self.line = line;
    }
}

impl Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stream.len() >= self.limit {
            // Stops the generator: the rest of the stream is not needed.
            return Err(std::io::Error::other(ENOUGH));
        }
        self.pending.extend_from_slice(buf);
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let rest = self.pending.split_off(nl + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            self.take_line(&line[..nl]);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Generates the default `generate` stream (heavy-tailed followees, bought followers
/// re-sold across followees, viral spikes) and keeps its first `events` lines.
pub fn generated_stream(events: usize, seed: u64, pad: bool) -> anyhow::Result<Stream> {
    let mut cfg = GenConfig {
        seed,
        ..GenConfig::default()
    };
    // The default 14-day stream has ~2.2M events; lengthen it for larger runs.
    if events > 2_000_000 {
        cfg.days = (cfg.days as usize * events.div_ceil(2_000_000)).min(365) as u32;
    }
    let mut sink = Collect {
        stream: Stream {
            bytes: Vec::with_capacity(events.saturating_mul(if pad { 820 } else { 520 })),
            lines: Vec::with_capacity(events),
        },
        limit: events,
        pending: Vec::new(),
        pad,
        line: Vec::with_capacity(2048),
    };
    let done = generate::generate(&cfg, &Profiles::Builtin, &mut sink, |_, _| {});
    match done {
        Err(e) if sink.stream.len() < events || !format!("{e:#}").contains(ENOUGH) => Err(e),
        _ => Ok(sink.stream),
    }
}

/// Reads the first `events` non-empty lines of a JSONL file.
pub fn file_stream(path: &std::path::Path, events: usize) -> anyhow::Result<Stream> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut s = Stream {
        bytes: Vec::new(),
        lines: Vec::new(),
    };
    let mut buf = Vec::with_capacity(4096);
    while s.len() < events {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if !buf.is_empty() {
            s.push(&buf);
        }
    }
    Ok(s)
}

/// Makes every follower id distinct (the cold case: nothing can be served from the
/// cache), in place: the id's digits are overwritten with a unique number of the same
/// width, so the bytes parsed per event do not change. Returns how many lines were
/// rewritten (ids too short to hold a unique number are left as they are).
pub fn make_followers_distinct(s: &mut Stream) -> usize {
    let width = s.len().max(1).to_string().len() + 1;
    let mut rewritten = 0;
    for i in 0..s.len() {
        let (ls, le) = s.lines[i];
        let line = &s.bytes[ls..le];
        let Some((a, b)) = string_field(line, br#""follower":{"id":""#) else {
            continue;
        };
        if b - a < width {
            continue;
        }
        // "7" then the line number zero-padded: never equal to another line's id.
        let digits = format!("7{:0w$}", i, w = b - a - 1);
        s.bytes[ls + a..ls + b].copy_from_slice(digits.as_bytes());
        rewritten += 1;
    }
    rewritten
}

/// In-memory sinks: what `serve` does with an outcome besides producing to Kafka.
struct MemSinks {
    buf: Vec<u8>,
    bytes: u64,
    alerts: u64,
    moderation: u64,
    evidence: Option<EvidenceStore>,
}

impl MemSinks {
    fn new(evidence: bool) -> MemSinks {
        MemSinks {
            buf: Vec::with_capacity(1 << 24),
            bytes: 0,
            alerts: 0,
            moderation: 0,
            evidence: evidence.then(EvidenceStore::default),
        }
    }

    fn take(&mut self, o: &Outcome) -> anyhow::Result<()> {
        for a in &o.alerts {
            serde_json::to_writer(&mut self.buf, a)?;
            self.buf.extend_from_slice(a.key().as_bytes());
            self.alerts += 1;
        }
        for r in &o.moderation {
            serde_json::to_writer(&mut self.buf, r)?;
            self.buf.extend_from_slice(r.key().as_bytes());
            self.moderation += 1;
        }
        if self.buf.len() > 1 << 24 {
            // Bounded like a producer's queue: count, then reuse the buffer.
            self.bytes += self.buf.len() as u64;
            self.buf.clear();
        }
        if let Some(e) = self.evidence.as_mut() {
            e.observe(o);
        }
        Ok(())
    }
}

/// Results of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: Case,
    pub events: u64,
    pub rejected: u64,
    /// Loop time (includes the warm case's priming and the latency bookkeeping).
    pub wall_s: f64,
    pub cpu_s: f64,
    /// Sum of the timed per-event work (`Pipeline::process` plus the sinks).
    pub busy_s: f64,
    /// Events per second of timed work: `events / busy_s`.
    pub events_per_s: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Events that took over 100 µs, and their share of the timed work.
    pub events_over_100us: u64,
    pub over_100us_share: f64,
    pub cache_hit_rate: f64,
    pub alerts: u64,
    pub moderation: u64,
    pub sink_bytes: u64,
    pub target_events_per_s: f64,
}

/// Report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub events: usize,
    pub mean_event_bytes: f64,
    pub source: String,
    pub evidence: bool,
    pub cases: Vec<CaseResult>,
}

/// CPU time of the calling thread in seconds: the machines are shared, so wall time also
/// counts other processes' turns on the core.
fn thread_cpu_s() -> f64 {
    // /proc/thread-self/schedstat: first field is time on CPU in nanoseconds.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn percentile_us(sorted_ns: &[u32], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ns.len() as f64 * q).ceil() as usize).clamp(1, sorted_ns.len()) - 1;
    f64::from(sorted_ns[i]) / 1e3
}

/// Runs one case over `stream` with a fresh pipeline.
pub fn run_case(
    case: Case,
    stream: &Stream,
    a: &BenchPipelineArgs,
    model: &std::sync::Arc<followguard_core::model::Model>,
) -> anyhow::Result<CaseResult> {
    let mut cfg: PipelineConfig = a.detector.pipeline_config()?;
    if case == Case::Warm {
        cfg.cache_capacity = cfg.cache_capacity.max(1 << 16);
    }
    let mut p = Pipeline::new(model.clone(), cfg);
    p.detector_mut().track_dirty(a.changelog);
    let mut logged = 0usize;
    let mut cache = followguard::changelog::RecordCache::new(
        std::time::Duration::from_millis(a.changelog_flush_ms),
        10 << 20,
    );
    let mut sinks = MemSinks::new(!a.no_evidence);
    let mut lat: Vec<u32> = Vec::with_capacity(stream.len());
    let mut rejected = 0u64;
    let mut hits = 0u64;
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    for i in 0..stream.len() {
        let line = stream.line(i);
        if case == Case::Warm {
            // Warm: this follower's score for this day is cached just before the event
            // (outside the timed part). Priming the whole stream up front cannot do
            // that: the cache keeps one entry per follower, for its latest day.
            let _ = p.warm_cache(line, None);
        }
        let s = Instant::now();
        match p.process(line, None, 0) {
            Ok(o) => {
                hits += u64::from(o.cache_hit);
                sinks.take(&o)?;
            }
            Err(_) => rejected += 1,
        }
        let flush = a.changelog && (i + 1) % CHANGELOG_BATCH == 0 && {
            cache.note(0, i as i64 + 1);
            cache.due(Instant::now(), p.detector().dirty_len())
        };
        if flush {
            cache.take(Instant::now());
            let mut records = followguard::changelog::dirty_records(&mut p, i as u64);
            cache.flushed(&records);
            logged += records.len();
            if logged >= CHANGELOG_SNAPSHOT_RECORDS {
                logged = 0;
                records.extend(followguard::changelog::snapshot_records(
                    &p,
                    0,
                    i as u64,
                    Some(i as i64),
                    &std::collections::BTreeSet::new(),
                ));
            }
            sinks.bytes += records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, Vec::len) as u64)
                .sum::<u64>();
        }
        lat.push(u32::try_from(s.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = thread_cpu_s() - cpu0;
    sinks.bytes += sinks.buf.len() as u64;
    let n = stream.len() as u64;
    // Throughput from the timed per-event work (process + sinks): the warm case's
    // priming happens between the timed parts.
    let busy_s = lat.iter().map(|&x| f64::from(x)).sum::<f64>() / 1e9;
    let mean_us = busy_s * 1e6 / n.max(1) as f64;
    lat.sort_unstable();
    let slow = lat.partition_point(|&x| x <= 100_000);
    let slow_s = lat[slow..].iter().map(|&x| f64::from(x)).sum::<f64>() / 1e9;
    Ok(CaseResult {
        case,
        events: n,
        rejected,
        wall_s,
        cpu_s,
        busy_s,
        events_per_s: n as f64 / busy_s.max(1e-9),
        mean_us,
        p50_us: percentile_us(&lat, 0.50),
        p99_us: percentile_us(&lat, 0.99),
        p999_us: percentile_us(&lat, 0.999),
        max_us: lat.last().map_or(0.0, |&x| f64::from(x) / 1e3),
        events_over_100us: (lat.len() - slow) as u64,
        over_100us_share: slow_s / busy_s.max(1e-9),
        cache_hit_rate: hits as f64 / (n - rejected).max(1) as f64,
        alerts: sinks.alerts,
        moderation: sinks.moderation,
        sink_bytes: sinks.bytes,
        target_events_per_s: match case {
            Case::Cold => TARGET_COLD_EVENTS_PER_S,
            Case::Warm => TARGET_WARM_EVENTS_PER_S,
        },
    })
}

/// The cold stream through [`Preparer`] in chunks, as `serve` runs it: wall-clock
/// events/s and the calling thread's CPU seconds. Outputs are counted as a check that
/// every thread count gives the same results.
pub fn run_chunked(
    stream: &Stream,
    a: &BenchPipelineArgs,
    model: &std::sync::Arc<followguard_core::model::Model>,
    threads: usize,
) -> anyhow::Result<(f64, f64, f64, u64, u64)> {
    let cfg: PipelineConfig = a.detector.pipeline_config()?;
    let mut preparer = Preparer::new(threads, cfg.cache_capacity)?;
    // (pipeline, sinks, first sink error)
    let mut state = (
        Pipeline::new(model.clone(), cfg),
        MemSinks::new(!a.no_evidence),
        None::<anyhow::Error>,
    );
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let chunk = preparer.max_chunk();
    let mut inputs = Vec::with_capacity(chunk);
    let mut i = 0;
    while i < stream.len() {
        let end = (i + chunk).min(stream.len());
        inputs.clear();
        inputs.extend((i..end).map(|j| (stream.line(j), None)));
        preparer.run(
            &mut state,
            |s| &mut s.0,
            &inputs,
            |(p, sinks, err), _, (r, _)| {
                if let Ok(Ok(o)) = r.map(|prepared| p.observe(prepared, 0)) {
                    if let Err(e) = sinks.take(&o) {
                        err.get_or_insert(e);
                    }
                }
            },
        );
        if let Some(e) = state.2.take() {
            return Err(e);
        }
        i = end;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0;
    Ok((
        stream.len() as f64 / wall.max(1e-9),
        wall,
        cpu,
        state.1.alerts,
        state.1.moderation,
    ))
}

/// The stable, grep-able text report: `bench.pipeline.<case>.<metric> <value> <unit>`.
pub fn report_lines(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String, unit: &str| {
        s.push_str(&format!("bench.pipeline.{k} {v} {unit}\n"));
    };
    line("events", r.events.to_string(), "events");
    line(
        "event_bytes_mean",
        format!("{:.0}", r.mean_event_bytes),
        "bytes",
    );
    line("evidence", u8::from(r.evidence).to_string(), "bool");
    for c in &r.cases {
        let k = c.case.as_str();
        line(
            &format!("{k}.events_per_s"),
            format!("{:.0}", c.events_per_s),
            "events/s",
        );
        line(
            &format!("{k}.events_per_s_vs_target"),
            format!("{:.2}", c.events_per_s / c.target_events_per_s),
            "ratio",
        );
        line(
            &format!("{k}.latency_mean"),
            format!("{:.2}", c.mean_us),
            "us",
        );
        line(
            &format!("{k}.latency_p50"),
            format!("{:.2}", c.p50_us),
            "us",
        );
        line(
            &format!("{k}.latency_p99"),
            format!("{:.2}", c.p99_us),
            "us",
        );
        line(
            &format!("{k}.latency_p999"),
            format!("{:.2}", c.p999_us),
            "us",
        );
        line(
            &format!("{k}.latency_max"),
            format!("{:.1}", c.max_us),
            "us",
        );
        line(
            &format!("{k}.events_over_100us"),
            c.events_over_100us.to_string(),
            "events",
        );
        line(
            &format!("{k}.over_100us_share"),
            format!("{:.3}", c.over_100us_share),
            "ratio",
        );
        line(
            &format!("{k}.p99_vs_target"),
            format!("{:.2}", c.p99_us / TARGET_P99_US),
            "ratio",
        );
        line(
            &format!("{k}.p999_vs_target"),
            format!("{:.2}", c.p999_us / TARGET_P999_US),
            "ratio",
        );
        line(
            &format!("{k}.cache_hit_rate"),
            format!("{:.4}", c.cache_hit_rate),
            "ratio",
        );
        line(&format!("{k}.rejected"), c.rejected.to_string(), "events");
        line(&format!("{k}.alerts"), c.alerts.to_string(), "records");
        line(
            &format!("{k}.moderation"),
            c.moderation.to_string(),
            "records",
        );
        line(
            &format!("{k}.sink_bytes"),
            c.sink_bytes.to_string(),
            "bytes",
        );
        line(&format!("{k}.busy"), format!("{:.3}", c.busy_s), "s");
        line(&format!("{k}.wall"), format!("{:.3}", c.wall_s), "s");
        line(&format!("{k}.cpu"), format!("{:.3}", c.cpu_s), "s");
    }
    s
}

/// Runs `bench-pipeline`.
pub fn run(a: BenchPipelineArgs) -> anyhow::Result<()> {
    if a.events == 0 {
        bail!("--events must be at least 1");
    }
    let model = load_model(&a.model)?;
    let started = Instant::now();
    let (mut stream, source) = match &a.input {
        Some(path) => (file_stream(path, a.events)?, path.display().to_string()),
        None => (
            generated_stream(a.events, a.seed, !a.no_pad)?,
            format!(
                "generate --seed {}{}",
                a.seed,
                if a.no_pad { "" } else { " (padded)" }
            ),
        ),
    };
    if stream.is_empty() {
        bail!("no events in the input");
    }
    eprintln!(
        "bench-pipeline: {} events ({:.0} bytes mean) from {source} in {:.1}s",
        stream.len(),
        stream.mean_bytes(),
        started.elapsed().as_secs_f64()
    );
    let mut cases = a.cases.clone();
    // Warm first: the cold case rewrites the follower ids in place.
    cases.sort_by_key(|c| *c == Case::Cold);
    cases.dedup();
    let mut results = Vec::new();
    for case in cases {
        if case == Case::Cold {
            let n = make_followers_distinct(&mut stream);
            if n < stream.len() {
                eprintln!(
                    "bench-pipeline: note: {} of {} follower ids could not be made distinct",
                    stream.len() - n,
                    stream.len()
                );
            }
        }
        let r = run_case(case, &stream, &a, &model)?;
        eprintln!(
            "bench-pipeline: {}: {:.0} events/s, p99 {:.2} us, cache hit rate {:.3}",
            case.as_str(),
            r.events_per_s,
            r.p99_us,
            r.cache_hit_rate
        );
        results.push(r);
    }
    results.sort_by_key(|r| r.case == Case::Warm);
    let report = Report {
        events: stream.len(),
        mean_event_bytes: stream.mean_bytes(),
        source,
        evidence: !a.no_evidence,
        cases: results,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(report_lines(&report).as_bytes())?;
    }
    if !a.prepare_threads.is_empty() {
        if !a.cases.contains(&Case::Cold) {
            make_followers_distinct(&mut stream);
        }
        let mut counts = vec![0];
        counts.extend(a.prepare_threads.iter().copied().filter(|&t| t > 0));
        let mut base = None;
        for t in counts {
            let (rate, wall, cpu, alerts, moderation) = run_chunked(&stream, &a, &model, t)?;
            let base_rate = *base.get_or_insert(rate);
            eprintln!("bench-pipeline: cold, chunked, {t} prepare threads: {rate:.0} events/s");
            let k = format!("bench.pipeline.cold_chunked.threads_{t}");
            writeln!(out, "{k}.events_per_s {rate:.0} events/s")?;
            writeln!(out, "{k}.vs_threads_0 {:.2} ratio", rate / base_rate)?;
            writeln!(out, "{k}.wall {wall:.3} s")?;
            writeln!(out, "{k}.calling_thread_cpu {cpu:.3} s")?;
            writeln!(out, "{k}.alerts {alerts} records")?;
            writeln!(out, "{k}.moderation {moderation} records")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_generated_events_parse_and_are_about_800_bytes() {
        let s = generated_stream(2000, 3, true).unwrap();
        assert_eq!(s.len(), 2000);
        let mean = s.mean_bytes();
        assert!((700.0..950.0).contains(&mean), "mean {mean}");
        for i in 0..s.len() {
            followguard_core::event::parse(s.line(i)).expect("padded line parses");
        }
    }

    #[test]
    fn distinct_followers_are_distinct_and_still_parse() {
        let mut s = generated_stream(3000, 5, false).unwrap();
        let before = s.bytes.len();
        assert_eq!(make_followers_distinct(&mut s), 3000);
        assert_eq!(s.bytes.len(), before);
        let mut ids = std::collections::HashSet::new();
        for i in 0..s.len() {
            let e = followguard_core::event::parse(s.line(i)).unwrap();
            assert!(ids.insert(e.follower.id.into_owned()));
        }
    }

    #[test]
    fn percentiles_pick_the_rank() {
        let v: Vec<u32> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(percentile_us(&v, 0.5), 500.0);
        assert_eq!(percentile_us(&v, 0.99), 990.0);
        assert_eq!(percentile_us(&v, 0.999), 999.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }

    #[test]
    fn report_lines_are_stable_and_grepable() {
        let r = Report {
            events: 10,
            mean_event_bytes: 800.0,
            source: "test".into(),
            evidence: true,
            cases: vec![CaseResult {
                case: Case::Cold,
                events: 10,
                rejected: 0,
                wall_s: 1.0,
                cpu_s: 1.0,
                busy_s: 0.5,
                events_per_s: 500_000.0,
                mean_us: 2.0,
                p50_us: 1.5,
                p99_us: 10.0,
                p999_us: 50.0,
                max_us: 80.0,
                events_over_100us: 0,
                over_100us_share: 0.0,
                cache_hit_rate: 0.0,
                alerts: 1,
                moderation: 2,
                sink_bytes: 3,
                target_events_per_s: TARGET_COLD_EVENTS_PER_S,
            }],
        };
        let text = report_lines(&r);
        assert!(text.contains("bench.pipeline.cold.events_per_s 500000 events/s\n"));
        assert!(text.contains("bench.pipeline.cold.events_per_s_vs_target 2.00 ratio\n"));
        assert!(text.contains("bench.pipeline.cold.latency_p99 10.00 us\n"));
        for l in text.lines() {
            assert_eq!(l.split(' ').count(), 3, "{l}");
            assert!(l.starts_with("bench.pipeline."));
        }
    }
}
