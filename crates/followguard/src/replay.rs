//! `followguard replay`: the same [`Pipeline`] the Kafka service runs, driven by a JSONL
//! file source with file / stdout sinks. Malformed lines are counted by kind, never
//! fatal; progress goes to stderr, a summary at the end.

use crate::config::DetectorArgs;
use anyhow::Context;
use followguard_core::alert::AlertStatus;
use followguard_core::event::EventType;
use followguard_core::model::Model;
use followguard_core::pipeline::{Outcome, Pipeline};
use followguard_core::profiles::Decoded;
use followguard_train::input::{Decoder, FormatArgs, ProfileFileArgs};
use followguard_train::model_file::{self, DEFAULT_MODEL_PATH};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Loads a model, mapping a failure to a configuration error (exit 64).
pub fn load_model(path: &Path) -> anyhow::Result<Arc<Model>> {
    model_file::load(path).map(Arc::new).map_err(|e| {
        anyhow::Error::new(crate::ConfigError(format!("model {}: {e}", path.display())))
    })
}

/// Counters of one replay.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReplaySummary {
    pub lines: u64,
    pub events: u64,
    pub follows: u64,
    pub unfollows: u64,
    pub suspicious_follows: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    /// Issue 24: well-formed payloads holding no follow (other activities, Bluesky
    /// deletes…), by reason; counted, not rejected.
    pub ignored: BTreeMap<&'static str, u64>,
    pub alerts_open: u64,
    pub alerts_update: u64,
    pub alerts_resolved: u64,
    pub moderation_records: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub tracked_followees: usize,
    pub followee_bytes_per_tracked: usize,
    pub elapsed_s: f64,
    pub events_per_s: f64,
}

/// Runs every line of `input` through `pipeline`, handing each outcome to `on_outcome`
/// (the sinks). `progress` is called every 100k lines.
pub fn run_lines<R: BufRead>(
    pipeline: &mut Pipeline,
    input: R,
    on_outcome: impl FnMut(&Outcome) -> anyhow::Result<()>,
    progress: impl FnMut(&ReplaySummary),
) -> anyhow::Result<ReplaySummary> {
    run_lines_as(pipeline, &Decoder::default(), input, on_outcome, progress)
}

/// [`run_lines`] for any input format (issue 24): each line is decoded (adapted and
/// joined with the decoder's profile table) into zero or more canonical events.
pub fn run_lines_as<R: BufRead>(
    pipeline: &mut Pipeline,
    decoder: &Decoder,
    mut input: R,
    mut on_outcome: impl FnMut(&Outcome) -> anyhow::Result<()>,
    mut progress: impl FnMut(&ReplaySummary),
) -> anyhow::Result<ReplaySummary> {
    let started = Instant::now();
    let mut s = ReplaySummary::default();
    let mut buf = Vec::with_capacity(2048);
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).context("reading input")?;
        if n == 0 {
            break;
        }
        let line = trim_line(&buf);
        if line.is_empty() {
            continue;
        }
        s.lines += 1;
        let decoded = match decoder.decode(line) {
            Ok(Decoded::Ignored(why)) => {
                *s.ignored.entry(why).or_default() += 1;
                continue;
            }
            Ok(d) => d,
            Err(e) => {
                *s.rejected.entry(e.kind()).or_default() += 1;
                continue;
            }
        };
        for event in decoded.events() {
            observe_one(pipeline, event, &mut s, &mut on_outcome)?;
        }
        if s.lines % 100_000 == 0 {
            s.elapsed_s = started.elapsed().as_secs_f64();
            progress(&s);
        }
    }
    let (hits, misses) = pipeline.cache_stats();
    s.cache_hits = hits;
    s.cache_misses = misses;
    s.tracked_followees = pipeline.tracked_followees();
    s.followee_bytes_per_tracked = pipeline.memory_report().0.followee_bytes_per_tracked;
    s.elapsed_s = started.elapsed().as_secs_f64();
    s.events_per_s = if s.elapsed_s > 0.0 {
        s.lines as f64 / s.elapsed_s
    } else {
        0.0
    };
    Ok(s)
}

/// One canonical event through the pipeline, counted into `s`.
fn observe_one(
    pipeline: &mut Pipeline,
    line: &[u8],
    s: &mut ReplaySummary,
    on_outcome: &mut impl FnMut(&Outcome) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    {
        match pipeline.process(line, None, 0) {
            Ok(o) => {
                s.events += 1;
                match o.kind {
                    EventType::Follow => s.follows += 1,
                    EventType::Unfollow => s.unfollows += 1,
                }
                if o.suspicious_follow() {
                    s.suspicious_follows += 1;
                }
                for a in &o.alerts {
                    match a.status {
                        AlertStatus::Open => s.alerts_open += 1,
                        AlertStatus::Update => s.alerts_update += 1,
                        AlertStatus::Resolved => s.alerts_resolved += 1,
                    }
                }
                s.moderation_records += o.moderation.len() as u64;
                on_outcome(&o)?;
            }
            Err(e) => *s.rejected.entry(e.kind()).or_default() += 1,
        }
    }
    Ok(())
}

fn trim_line(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &b[..end]
}

/// A record sink: a file, stdout, or nowhere.
pub enum Sink {
    Null,
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<std::fs::File>),
}

impl Sink {
    /// `None` → discard, `-` → stdout, else a file (created / truncated).
    pub fn open(path: Option<&Path>) -> anyhow::Result<Sink> {
        Ok(match path {
            None => Sink::Null,
            Some(p) if p.as_os_str() == "-" => Sink::Stdout(BufWriter::new(std::io::stdout())),
            Some(p) => Sink::File(BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
        })
    }

    pub fn write<T: Serialize>(&mut self, rec: &T) -> anyhow::Result<()> {
        let w: &mut dyn Write = match self {
            Sink::Null => return Ok(()),
            Sink::Stdout(w) => w,
            Sink::File(w) => w,
        };
        serde_json::to_writer(&mut *w, rec)?;
        w.write_all(b"\n")?;
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Sink::Null => Ok(()),
            Sink::Stdout(w) => Ok(w.flush()?),
            Sink::File(w) => Ok(w.flush()?),
        }
    }
}

/// `replay` command arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// JSONL follow events, one per line (`-` for stdin).
    #[arg(long, env = "FOLLOWGUARD_REPLAY_INPUT")]
    pub input: PathBuf,
    /// Where alert records go: a file, or `-` for stdout (the default).
    #[arg(long, env = "FOLLOWGUARD_REPLAY_ALERTS", default_value = "-")]
    pub alerts: PathBuf,
    /// Where moderation records go (a file or `-`); discarded when not given.
    #[arg(long, env = "FOLLOWGUARD_REPLAY_MODERATION")]
    pub moderation: Option<PathBuf>,
    /// Issue 21: where campaign records go (a file or `-`): the follower-keyed link stage
    /// run in-process on the flagged follows, as `serve --campaigns-topic` does across
    /// instances (same ids). Not run when not given.
    #[arg(long, env = "FOLLOWGUARD_REPLAY_CAMPAIGNS")]
    pub campaigns: Option<PathBuf>,
    /// Model file.
    #[arg(long, env = "FOLLOWGUARD_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Print the summary as JSON on stderr instead of text.
    #[arg(long, env = "FOLLOWGUARD_REPLAY_JSON")]
    pub json: bool,
    /// Also write the alert evidence pages (the admin web view, as static HTML + JSON)
    /// into this folder, to review a backtest offline. Bounded like the service's store.
    #[arg(long, env = "FOLLOWGUARD_REPLAY_REPORT")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub detector: DetectorArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub profiles: ProfileFileArgs,
    /// Moderators' decisions (issue 24; JSON lines as on `serve --decisions-topic`),
    /// applied before the first event: what the stream would give with those verdicts.
    #[arg(long, env = "FOLLOWGUARD_REPLAY_DECISIONS")]
    pub decisions: Option<PathBuf>,
}

/// Reads a JSON-lines decisions file into `pipeline` (issue 24); returns how many were
/// applied and how many lines were unreadable.
pub fn apply_decisions_file(pipeline: &mut Pipeline, path: &Path) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut ok, mut bad) = (0, 0);
    for line in text.split(|b| *b == b'\n').map(trim_line) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match followguard_core::decisions::parse(line) {
            Ok(d) => {
                pipeline.apply_decision(&d);
                ok += 1;
            }
            Err(_) => bad += 1,
        }
    }
    Ok((ok, bad))
}

/// Runs `replay`.
pub fn run(a: ReplayArgs) -> anyhow::Result<()> {
    let model = load_model(&a.model)?;
    let decoder = Decoder::open(a.format.input_format, &a.profiles)?;
    let mut pipeline = Pipeline::new(model, a.detector.pipeline_config()?);
    if let Some(path) = &a.decisions {
        let (ok, bad) = apply_decisions_file(&mut pipeline, path)?;
        eprintln!("decisions: {ok} applied, {bad} unreadable");
    }
    let mut alerts = Sink::open(Some(&a.alerts))?;
    let mut moderation = Sink::open(a.moderation.as_deref())?;
    let mut campaigns = Sink::open(a.campaigns.as_deref())?;
    // Issue 21: the link stage in-process (one link partition: the ids do not depend
    // on the spread, core `links`).
    let mut link_stage = a.campaigns.as_ref().map(|_| {
        pipeline.detector_mut().emit_links(true);
        let d = pipeline.detector_config();
        followguard_core::links::InProcessLinks::new(
            followguard_core::links::LinkConfig {
                min_shared: d.lockstep_min_shared,
                window_ms: d.lockstep_window_ms,
                ..Default::default()
            },
            1,
        )
    });
    let mut evidence = a
        .report
        .as_ref()
        .map(|_| followguard_core::evidence::EvidenceStore::default());
    let input: Box<dyn BufRead> = if a.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(&a.input)
                .with_context(|| format!("opening {}", a.input.display()))?,
        ))
    };
    let s = run_lines_as(
        &mut pipeline,
        &decoder,
        input,
        |o| {
            for r in &o.alerts {
                alerts.write(r)?;
            }
            for r in &o.moderation {
                moderation.write(r)?;
            }
            if let Some(stage) = link_stage.as_mut() {
                for l in &o.links {
                    for c in stage.observe(l) {
                        campaigns.write(&c)?;
                    }
                }
            }
            if let Some(e) = evidence.as_mut() {
                e.observe(o);
            }
            Ok(())
        },
        |s| {
            eprint!(
                "\rreplay: {} lines, {} alerts opened, {:.0} lines/s",
                s.lines,
                s.alerts_open,
                s.lines as f64 / s.elapsed_s.max(1e-9)
            )
        },
    )?;
    alerts.flush()?;
    moderation.flush()?;
    campaigns.flush()?;
    if s.lines >= 100_000 {
        eprintln!();
    }
    if let (Some(dir), Some(store)) = (&a.report, &evidence) {
        let started = Instant::now();
        let r = crate::web::write_report(store, dir)?;
        eprintln!(
            "report: {} alerts, {} files in {} ({:.2}s; evidence store ~{:.1} MB, {} alerts evicted)",
            r.alerts,
            r.files,
            dir.display(),
            started.elapsed().as_secs_f64(),
            store.memory_bytes() as f64 / 1e6,
            store.evicted()
        );
    }
    if a.json {
        eprintln!("{}", serde_json::to_string(&s)?);
    } else {
        eprintln!("{}", summary_text(&s));
    }
    Ok(())
}

/// Human-readable summary.
pub fn summary_text(s: &ReplaySummary) -> String {
    let rejected: u64 = s.rejected.values().sum();
    let kinds: Vec<String> = s.rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ignored: Vec<String> = s.ignored.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!(
        "replay summary: {} events ({} follows, {} unfollows, {} suspicious follows); rejected {}{}; \
         alerts: {} opened, {} updates, {} resolved; {} flagged followers (moderation records); \
         cache {} hits / {} misses; {} followees tracked ({} B each incl. table); {:.1}s, {:.0} events/s",
        s.events,
        s.follows,
        s.unfollows,
        s.suspicious_follows,
        rejected,
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
        s.alerts_open,
        s.alerts_update,
        s.alerts_resolved,
        s.moderation_records,
        s.cache_hits,
        s.cache_misses,
        s.tracked_followees,
        s.followee_bytes_per_tracked,
        s.elapsed_s,
        s.events_per_s
    );
    if ignored.is_empty() {
        text
    } else {
        format!("{text}; ignored {}", ignored.join(", "))
    }
}
