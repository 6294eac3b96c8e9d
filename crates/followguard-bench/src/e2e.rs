//! `followguard bench-e2e`: the end-to-end benchmark through a real broker (issue #6).
//! It owns the measurement only, never the service: it pre-produces a generated stream,
//! reads it back with a plain consumer (the broker's ceiling), runs the real `serve`
//! binary on the same topic until its group has processed and committed everything, and
//! then measures event → alert latency with a paced producer at a fraction of the
//! measured rate. Last, it searches the live capacity — the highest paced rate serve keeps
//! up with while the broker ingests the input on the same machine — and measures latency
//! at the same fraction of that (`live_*` figures). Results are printed as `bench.e2e.<metric> <value> <unit>` lines (or
//! JSON with `--json`).
//!
//! Latency definition: from the wall-clock moment the bench hands an event to its
//! producer (also the record's CreateTime) to the moment a consumer tailing the alerts
//! topic receives the `open` alert that event caused. The broker only serves records it
//! has appended and acknowledged, so this is an upper bound of event → alert acknowledged;
//! it includes the input producer's linger, the broker hops in and out and serve's own
//! processing and output batching. The triggering event is found by the alert's
//! `followee_id` and `event_time_ms`, which the detector copies from that event.

use clap::Args;
use followguard::config::{KafkaArgs, KafkaConfig};
use followguard::kafka::produce::key_and_time;
use followguard::kafka::{self, LogContext, Producer, Reader};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryFuture, DeliveryResult, FutureRecord, Producer as _, ProducerContext,
    ThreadedProducer,
};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Records awaiting acknowledgement before the pre-producer waits for the oldest.
const MAX_PENDING: usize = 50_000;
/// How often serve's /metrics is sampled while it works.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// A phase that sees no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// Flags of `followguard bench-e2e`.
#[derive(Debug, Clone, Args)]
pub struct BenchE2eArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Generated JSONL stream (`followguard generate`), produced as-is, keyed by followee.
    #[arg(long)]
    pub input: PathBuf,

    /// Stream for the latency phase (default: --input); one dense in campaigns gives
    /// more alerts to measure.
    #[arg(long)]
    pub latency_input: Option<PathBuf>,

    /// Use only the first N lines of --input for the throughput phases (0 = all).
    #[arg(long, default_value_t = 0)]
    pub events: u64,

    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,

    /// Model file for serve.
    #[arg(long, default_value = "models/default.json")]
    pub model: PathBuf,

    /// serve binary (default: the `followguard` binary next to this executable).
    #[arg(long)]
    pub serve_bin: Option<PathBuf>,

    /// Admin address given to serve (its /metrics is how progress is sampled).
    #[arg(long, default_value = "127.0.0.1:19464")]
    pub admin_addr: String,

    /// Extra arguments for serve (repeatable), e.g. `--serve-arg=--kafka-option=linger.ms=1`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,

    /// Issue 21: run serve with `--changelog-topic <input topic>.changelog` (one changelog
    /// per phase's input topic, as a deployment pairs them): what logging state costs.
    #[arg(long)]
    pub changelog: bool,

    /// linger.ms of the latency phase's input producer (the upstream application; 5 is
    /// librdkafka's default). It is inside the measured latency. 0 sends nearly every
    /// record in its own request, which at half load costs tansu most of a core of the
    /// machine serve runs on (BENCHMARKS.md, end to end).
    #[arg(long, default_value_t = 5)]
    pub input_linger_ms: u32,

    /// Also tail the input topic during the latency phase, for the broker-alone
    /// send → readable figures. Off by default: a second full-rate reader is load on the
    /// broker and the CPU that serve does not share in production.
    #[arg(long)]
    pub broker_tail: bool,

    /// Latency phase rate as a fraction of the measured end-to-end maximum.
    #[arg(long, default_value_t = 0.5)]
    pub latency_load: f64,

    /// Run only the latency phase, at this many events/s (for tuning serve's settings).
    #[arg(long)]
    pub latency_only_rate: Option<f64>,

    /// Events of --input fed in the latency phase (0 = all; it runs for events / rate).
    #[arg(long, default_value_t = 0)]
    pub latency_events: u64,

    /// Skip the live-capacity search and the latency phase at a fraction of it.
    #[arg(long)]
    pub no_live: bool,

    /// Run only the live-capacity search (from --live-start-rate) and the latency phase
    /// at --latency-load of the capacity found.
    #[arg(long)]
    pub live_only: bool,

    /// First rate of the live-capacity search (default: 0.3 of serve's catch-up rate;
    /// 60,000 events/s with --live-only).
    #[arg(long)]
    pub live_start_rate: Option<f64>,

    /// Seconds each live-capacity step plays (bounded by the stream's length).
    #[arg(long, default_value_t = 8.0)]
    pub live_step_secs: f64,

    /// Broker process id: its CPU use per phase is reported (scripts/bench-e2e.sh sets it).
    #[arg(long)]
    pub broker_pid: Option<u32>,

    /// Directory for serve's logs (default: a new temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,

    /// Print one JSON object instead of the `bench.e2e.*` lines.
    #[arg(long)]
    pub json: bool,
}

/// One reported figure.
struct Figure {
    name: String,
    value: String,
    unit: &'static str,
}

#[derive(Default)]
struct Report(Vec<Figure>);

impl Report {
    fn num(&mut self, name: impl Into<String>, v: f64, unit: &'static str) {
        // Whole numbers and large figures without decimals, small ones with three.
        let value = if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        };
        self.0.push(Figure {
            name: name.into(),
            value,
            unit,
        });
    }
    /// `<name>_p50` and `<name>_p99` of the samples (sorted ascending).
    fn p50_p99(&mut self, name: &str, sorted: &[f64], unit: &'static str) {
        self.num(format!("{name}_p50"), percentile(sorted, 0.50), unit);
        self.num(format!("{name}_p99"), percentile(sorted, 0.99), unit);
    }
    fn text(&mut self, name: impl Into<String>, v: &str, unit: &'static str) {
        self.0.push(Figure {
            name: name.into(),
            value: v.to_string(),
            unit,
        });
    }
    fn print(&self, json: bool) {
        if json {
            let mut m = serde_json::Map::new();
            for f in &self.0 {
                let v = f
                    .value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number)
                    .unwrap_or_else(|| serde_json::Value::String(f.value.clone()));
                m.insert(
                    f.name.clone(),
                    serde_json::json!({ "value": v, "unit": f.unit }),
                );
            }
            println!("{}", serde_json::Value::Object(m));
        } else {
            for f in &self.0 {
                println!("bench.e2e.{} {} {}", f.name, f.value, f.unit);
            }
        }
    }
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Seconds the threads of a process have spent runnable but waiting for a CPU (the
/// scheduler's run-queue delay, /proc/PID/task/*/schedstat field 2); None off Linux.
fn runq_secs(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        ns += s.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// CPU use of a process over a phase.
struct CpuMeter {
    pid: Option<u32>,
    start: Option<f64>,
    at: Instant,
}

impl CpuMeter {
    fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            start: cpu_secs(pid),
            at: Instant::now(),
        }
    }
    /// Cores used on average since `start` (1.0 = one core fully busy).
    fn cores(&self) -> Option<f64> {
        let secs = self.at.elapsed().as_secs_f64();
        Some((cpu_secs(self.pid)? - self.start?) / secs.max(1e-9))
    }
}

/// The latency phase's input, read and keyed before the phase so that pacing it costs
/// only the sends: one buffer of lines, each line's key (followee id, when the line is a
/// valid event), and the first line of each (followee, event time) — the event an alert
/// that names them was opened by.
struct PacedStream {
    buf: Vec<u8>,
    lines: Vec<(usize, usize)>,
    keys: Vec<Option<String>>,
    first: HashMap<(String, i64), usize>,
}

impl PacedStream {
    /// Reads the non-blank lines of `path`, at most `limit` (0 = all).
    fn load(path: &Path, limit: u64) -> anyhow::Result<PacedStream> {
        let mut s = PacedStream {
            buf: Vec::new(),
            lines: Vec::new(),
            keys: Vec::new(),
            first: HashMap::new(),
        };
        for line in open_input(path)?.split(b'\n') {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if limit > 0 && s.lines.len() as u64 >= limit {
                break;
            }
            let i = s.lines.len();
            let (key, ts) = key_and_time(&line);
            if let (Some(k), Some(ts)) = (&key, ts) {
                // Same followee and millisecond: the first one sent is the earliest bound.
                s.first.entry((k.clone(), ts)).or_insert(i);
            }
            s.lines.push((s.buf.len(), line.len()));
            s.buf.extend_from_slice(&line);
            s.keys.push(key);
        }
        Ok(s)
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn line(&self, i: usize) -> &[u8] {
        let (at, len) = self.lines[i];
        &self.buf[at..at + len]
    }

    fn key(&self, i: usize) -> Option<&str> {
        self.keys[i].as_deref()
    }

    /// Index of the first line of this followee with this event time.
    fn first_index(&self, followee_id: &str, event_time_ms: i64) -> Option<usize> {
        self.first
            .get(&(followee_id.to_string(), event_time_ms))
            .copied()
    }
}

/// Delivery reports of the paced producer, counted in its own thread (no per-record
/// future or allocation on the pacing loop).
#[derive(Default)]
struct Deliveries {
    failed: std::sync::atomic::AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Deliveries {
    /// Fails when any record so far was not acknowledged.
    fn check(&self) -> anyhow::Result<()> {
        let failed = self.failed.load(std::sync::atomic::Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let first = match self.first_error.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        anyhow::bail!(
            "{failed} records were not acknowledged (first: {})",
            first.unwrap_or_default()
        )
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        LogContext.log(level, fac, msg);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        LogContext.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if self
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                == 0
            {
                if let Ok(mut g) = self.first_error.lock() {
                    *g = Some(e.to_string());
                }
            }
        }
    }
}

fn open_input(path: &Path) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(path)
        .map_err(|e| followguard::ConfigError(format!("--input {}: {e}", path.display())))?;
    Ok(std::io::BufReader::with_capacity(1 << 20, f))
}

async fn await_one(f: DeliveryFuture) -> anyhow::Result<()> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => anyhow::bail!("a record was not acknowledged: {e}"),
        Err(_) => anyhow::bail!("a delivery report was lost"),
    }
}

/// Sends one record, waiting for older deliveries while librdkafka's queue is full.
async fn send(
    producer: &Producer,
    pending: &mut VecDeque<DeliveryFuture>,
    rec: FutureRecord<'_, str, [u8]>,
) -> anyhow::Result<()> {
    let mut rec = rec;
    loop {
        match producer.send_result(rec) {
            Ok(f) => {
                pending.push_back(f);
                return Ok(());
            }
            Err((e, r)) => {
                rec = r;
                match pending.pop_front() {
                    Some(f) => await_one(f).await?,
                    None => anyhow::bail!("producing: {e}"),
                }
            }
        }
    }
}

/// Produces the first `limit` lines (0 = all) as fast as the broker takes them.
/// Returns (records, payload bytes).
async fn pre_produce(
    producer: &Producer,
    topic: &str,
    input: &Path,
    limit: u64,
) -> anyhow::Result<(u64, u64)> {
    let mut pending = VecDeque::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    for line in open_input(input)?.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if limit > 0 && n >= limit {
            break;
        }
        let (key, ts) = key_and_time(&line);
        let mut rec = FutureRecord::to(topic).payload(line.as_slice());
        if let Some(k) = &key {
            rec = rec.key(k.as_str());
        }
        if let Some(ts) = ts {
            rec = rec.timestamp(ts);
        }
        send(producer, &mut pending, rec).await?;
        n += 1;
        bytes += line.len() as u64;
        while pending.len() >= MAX_PENDING {
            if let Some(f) = pending.pop_front() {
                await_one(f).await?;
            }
        }
    }
    for f in pending {
        await_one(f).await?;
    }
    Ok((n, bytes))
}

/// Low/high watermarks of every partition of `topic`.
fn watermarks(c: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<Vec<(i64, i64)>> {
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(|e| anyhow::anyhow!("watermarks of {topic}/{p}: {e}"))
        })
        .collect()
}

/// Committed offsets of `group` on `topic` (missing = 0), read without joining the group.
fn committed(kafka: &KafkaConfig, group: &str, topic: &str, partitions: i32) -> Option<Vec<i64>> {
    let c: BaseConsumer = kafka::consumer_config(kafka, group, Duration::ZERO)
        .set("statistics.interval.ms", "0")
        .create()
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
    Some(
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            })
            .collect(),
    )
}

/// Phase 2: a plain group consumer, same client settings as serve, no processing.
/// Returns (events/s between the first and the last record, cores used by this process,
/// each partition's last offset + 1: the offsets a caught-up group has committed).
async fn plain_consume(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partitions: i32,
    expect: u64,
) -> anyhow::Result<(f64, f64, Vec<i64>)> {
    let mut ends = vec![0i64; usize::try_from(partitions).unwrap_or(0)];
    let c: Reader = kafka::reader(&kafka::consumer_config(
        kafka,
        group,
        Duration::from_secs(5),
    ))?;
    c.subscribe(&[topic])?;
    let mut n = 0u64;
    let mut bytes = 0usize;
    let mut first: Option<Instant> = None;
    let mut cpu = CpuMeter::start(None);
    while n < expect {
        let m = tokio::time::timeout(STALL, c.recv())
            .await
            .map_err(|_| anyhow::anyhow!("plain consumer: no record for {STALL:?} after {n}"))??;
        bytes += m.payload().map_or(0, <[u8]>::len);
        if let Some(e) = usize::try_from(m.partition())
            .ok()
            .and_then(|p| ends.get_mut(p))
        {
            *e = (*e).max(m.offset() + 1);
        }
        if first.is_none() {
            first = Some(Instant::now());
            cpu = CpuMeter::start(None);
        }
        n += 1;
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    tracing::debug!(bytes, "plain consumer done");
    let cores = cpu.cores().unwrap_or(f64::NAN);
    // The first record starts the clock, so n - 1 records were read in `secs`.
    Ok(((n.saturating_sub(1)) as f64 / secs.max(1e-9), cores, ends))
}

/// serve's `followguard_events_total`, summed over outcomes.
async fn events_done(http: &reqwest::Client, admin: &str) -> Option<u64> {
    let text = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut sum = 0.0;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("followguard_events_total{") {
            sum += rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        }
    }
    Some(sum as u64)
}

async fn ready(http: &reqwest::Client, admin: &str) -> bool {
    http.get(format!("http://{admin}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A running `serve` child, stopped with SIGTERM when dropped.
struct Serve {
    child: Child,
}

impl Serve {
    fn start(
        a: &BenchE2eArgs,
        kafka: &KafkaConfig,
        topics: &Topics,
        group: &str,
        log: &Path,
    ) -> anyhow::Result<Serve> {
        let bin = match &a.serve_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.with_file_name("followguard"),
        };
        let log_file = std::fs::File::create(log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--brokers", &kafka.brokers])
            .args(["--input-topic", &topics.input])
            .args(["--alerts-topic", &topics.alerts])
            .args(["--moderation-topic", &topics.moderation])
            .args(["--dlq-topic", &topics.dlq])
            .args(["--group-id", group])
            .arg("--model")
            .arg(&a.model)
            .args(["--admin-addr", &a.admin_addr])
            // tansu hands a new member its first records after half the session timeout.
            .args(["--kafka-option", "session.timeout.ms=6000"])
            .args(["--stats-interval", "1s"]);
        for o in &kafka.options {
            cmd.args(["--kafka-option", &format!("{}={}", o.key, o.value)]);
        }
        if a.changelog {
            cmd.args(["--changelog-topic", &format!("{}.changelog", topics.input)]);
        }
        cmd.args(&a.serve_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        Ok(Serve {
            child: cmd
                .spawn()
                .map_err(|e| anyhow::anyhow!("starting serve: {e}"))?,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self, http: &reqwest::Client, admin: &str) -> anyhow::Result<()> {
        let until = Instant::now() + STALL;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("serve exited during start-up ({status})");
            }
            if ready(http, admin).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("serve was not ready within {STALL:?}")
    }

    /// SIGTERM, then waits for the drain; returns whether it exited 0.
    fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone)]
struct Topics {
    input: String,
    alerts: String,
    moderation: String,
    dlq: String,
}

impl Topics {
    fn new(prefix: &str) -> Topics {
        Topics {
            input: format!("{prefix}.follows"),
            alerts: format!("{prefix}.alerts"),
            moderation: format!("{prefix}.moderation"),
            dlq: format!("{prefix}.dlq"),
        }
    }
    fn all(&self) -> [&str; 4] {
        [&self.input, &self.alerts, &self.moderation, &self.dlq]
    }
}

/// What the serve throughput phase measured.
struct ServeRun {
    rate: f64,
    processed_secs: f64,
    caught_up_secs: Option<f64>,
    serve_cores: f64,
    /// Cores' worth of time serve's threads were runnable without a CPU.
    serve_runq: f64,
    broker_cores: Option<f64>,
    exited_ok: bool,
}

/// Phase 3: serve on the pre-produced topic with a fresh group, until it has processed
/// `expect` events and its committed offsets reach the high watermarks.
#[allow(clippy::too_many_arguments)]
async fn serve_throughput(
    a: &BenchE2eArgs,
    kafka: &KafkaConfig,
    http: &reqwest::Client,
    topics: &Topics,
    group: &str,
    expect: u64,
    ends: &[i64],
    work: &Path,
) -> anyhow::Result<ServeRun> {
    let mut serve = Serve::start(a, kafka, topics, group, &work.join("serve-throughput.log"))?;
    serve.wait_ready(http, &a.admin_addr).await?;
    let spid = Some(serve.pid());
    let mut first: Option<(Instant, u64)> = None;
    let mut last_change = (Instant::now(), 0u64);
    let (mut scpu, mut bcpu) = (CpuMeter::start(spid), CpuMeter::start(a.broker_pid));
    let mut runq0 = None;
    let done_at = loop {
        if let Some(status) = serve.child.try_wait()? {
            anyhow::bail!("serve exited while consuming ({status})");
        }
        let now = Instant::now();
        let n = events_done(http, &a.admin_addr).await.unwrap_or(0);
        if n > 0 && first.is_none() {
            first = Some((now, n));
            scpu = CpuMeter::start(spid);
            bcpu = CpuMeter::start(a.broker_pid);
            runq0 = runq_secs(serve.pid());
        }
        if n >= expect {
            break now;
        }
        if n != last_change.1 {
            last_change = (now, n);
        } else if now.duration_since(last_change.0) > STALL {
            anyhow::bail!("serve stalled at {n} of {expect} events");
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    };
    let serve_cores = scpu.cores().unwrap_or(f64::NAN);
    let broker_cores = bcpu.cores();
    let (t0, n0) = first.unwrap_or((done_at, 0));
    let secs = done_at.duration_since(t0).as_secs_f64();
    let serve_runq = match (runq0, runq_secs(serve.pid())) {
        (Some(a0), Some(a1)) => (a1 - a0) / secs.max(1e-9),
        _ => f64::NAN,
    };
    let rate = (expect - n0) as f64 / secs.max(1e-9);
    // Caught up: every partition's committed offset is past its last record (auto-commit
    // runs every 5 s by default). The plain consumer saw the last offsets: tansu's high
    // watermark counts record batches, not records, so it cannot say.
    let want: i64 = ends.iter().sum();
    let mut caught_up_secs = None;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let k = kafka.clone();
        let (g, t, p) = (group.to_string(), topics.input.clone(), a.partitions);
        let got = tokio::task::spawn_blocking(move || committed(&k, &g, &t, p))
            .await
            .ok()
            .flatten();
        if got.is_some_and(|c| c.iter().sum::<i64>() >= want) {
            caught_up_secs = Some(t0.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited_ok = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap_or(false);
    Ok(ServeRun {
        rate,
        processed_secs: secs,
        caught_up_secs,
        serve_cores,
        serve_runq,
        broker_cores,
        exited_ok,
    })
}

/// One `open` or `update` alert record seen on the alerts topic.
struct SeenAlert {
    open: bool,
    followee_id: String,
    event_time_ms: i64,
    received_us: i64,
    created_ms: Option<i64>,
}

/// A reader tailing one topic from the beginning, polled on its own thread.
type Tail = BaseConsumer<LogContext>;

/// Polls `c` on a thread of its own until `stop`, handing each record and the wall-clock
/// moment (µs) it left librdkafka to `on`. A thread rather than a task: the receive time
/// must not wait for the bench's async work (pacing, sampling) to yield.
fn tail_thread<T: Send + 'static>(
    c: Tail,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut on: impl FnMut(&rdkafka::message::BorrowedMessage<'_>, i64, &mut Vec<T>) + Send + 'static,
) -> std::thread::JoinHandle<anyhow::Result<Vec<T>>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match c.poll(Duration::from_millis(20)) {
                None | Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
                Some(Ok(m)) => on(&m, wall_us(), &mut out),
                Some(Err(e)) => return Err(e.into()),
            }
        }
        Ok(out)
    })
}

/// Waits for a tail thread without blocking the runtime.
async fn join_tail<T: Send + 'static>(
    h: std::thread::JoinHandle<anyhow::Result<Vec<T>>>,
) -> anyhow::Result<Vec<T>> {
    tokio::task::spawn_blocking(move || {
        h.join()
            .map_err(|_| anyhow::anyhow!("a tail thread panicked"))?
    })
    .await?
}

/// Tails the alerts topic, collecting `open` and `update` records.
fn tail_alerts(
    c: Tail,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Vec<SeenAlert>>> {
    #[derive(serde::Deserialize)]
    struct Head {
        status: String,
        followee_id: String,
        event_time_ms: i64,
    }
    tail_thread(c, stop, |m, received_us, seen| {
        let Some(h) = m
            .payload()
            .and_then(|b| serde_json::from_slice::<Head>(b).ok())
        else {
            return;
        };
        if h.status == "open" || h.status == "update" {
            seen.push(SeenAlert {
                open: h.status == "open",
                followee_id: h.followee_id,
                event_time_ms: h.event_time_ms,
                received_us,
                created_ms: m.timestamp().to_millis(),
            });
        }
    })
}

/// Tails the input topic: send → readable delay of every record (its CreateTime is the
/// bench's send time), the broker's own share of the latency.
fn tail_input(
    c: Tail,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Vec<f64>>> {
    tail_thread(c, stop, |m, now_us, lat| {
        if let Some(ts) = m.timestamp().to_millis() {
            lat.push((now_us - ts * 1000) as f64 / 1000.0);
        }
    })
}

/// A group-less reader of every partition of `topic` from the start, polling often so its
/// own wait adds little to what it measures. tansu answers a waiting fetch only when its
/// `fetch.wait.max.ms` runs out, not when records arrive (measured: 100 ms instead of 5
/// moved the latency phase's p50 from 24 to 51 ms at 63k/s), so the wait stays short.
fn tail_reader(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Tail> {
    let mut cfg = kafka::replay_config(kafka, group);
    cfg.set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "5");
    let r: Tail = cfg
        .create_with_context(LogContext)
        .map_err(|e| kafka::config_error("consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    r.assign(&tpl)?;
    Ok(r)
}

/// What the latency phase measured.
struct LatencyRun {
    rate: f64,
    achieved_rate: f64,
    events: u64,
    /// Event sent → open alert received from the alerts topic, ms.
    ack_ms: Vec<f64>,
    /// Event sent → serve produced the alert (the alert record's CreateTime), ms.
    produced_ms: Vec<f64>,
    unmatched: usize,
    /// Event sent → open or update record received, ms: every alert record an event
    /// caused (an update reports a burst's growth), so the tail has more than a few dozen
    /// samples. Campaign-link updates are emitted at another followee's event and stay
    /// unmatched.
    records_ms: Vec<f64>,
    records_unmatched: usize,
    serve_cores: f64,
    /// serve's threads runnable but not running, in cores (CPU starvation).
    serve_runq: f64,
    broker_cores: Option<f64>,
    /// This bench process (paced producer, alert tail, sampling).
    bench_cores: f64,
    /// Event sent → readable by a plain reader of the input topic, ms (the broker alone).
    broker_ms: Vec<f64>,
    /// serve's backlog in events, sampled every 100 ms.
    lags: Vec<f64>,
    /// How fast the backlog grew over the second half of the played stream (least-squares
    /// slope, events/s; the first half has serve's score cache warming up): about zero
    /// when serve keeps up, the shortfall when it does not.
    backlog_growth: f64,
}

/// What a latency phase plays: the first `events` lines of `stream` (0 = all); `tag`
/// names serve's log file.
#[derive(Clone, Copy)]
struct Play<'a> {
    stream: &'a PacedStream,
    events: usize,
    tag: &'a str,
}

impl<'a> Play<'a> {
    /// All of `stream`.
    fn whole(stream: &'a PacedStream, tag: &'a str) -> Self {
        Play {
            stream,
            events: 0,
            tag,
        }
    }
}

/// Least-squares slope of the backlog samples `(seconds, events)` taken between `from`
/// and `to`, in events/s; NaN with fewer than three samples.
fn backlog_growth(samples: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let inside: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|&(t, _)| t >= from && t <= to)
        .collect();
    if inside.len() < 3 {
        return f64::NAN;
    }
    let n = inside.len() as f64;
    let mt = inside.iter().map(|s| s.0).sum::<f64>() / n;
    let ml = inside.iter().map(|s| s.1).sum::<f64>() / n;
    let cov: f64 = inside.iter().map(|s| (s.0 - mt) * (s.1 - ml)).sum();
    let var: f64 = inside.iter().map(|s| (s.0 - mt) * (s.0 - mt)).sum();
    if var > 0.0 {
        cov / var
    } else {
        f64::NAN
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Phase 4: serve on fresh topics; a paced producer at `rate`; open alerts matched to
/// the events that opened them.
#[allow(clippy::too_many_arguments)]
async fn latency(
    a: &BenchE2eArgs,
    kafka: &KafkaConfig,
    http: &reqwest::Client,
    topics: &Topics,
    group: &str,
    rate: f64,
    play: Play<'_>,
    work: &Path,
) -> anyhow::Result<LatencyRun> {
    let Play {
        stream,
        events: limit,
        tag,
    } = play;
    let mut serve = Serve::start(
        a,
        kafka,
        topics,
        group,
        &work.join(format!("serve-{tag}.log")),
    )?;
    serve.wait_ready(http, &a.admin_addr).await?;
    let spid = Some(serve.pid());

    let tail = tail_reader(
        kafka,
        &format!("{group}.tail"),
        &topics.alerts,
        a.partitions,
    )?;
    let in_tail = if a.broker_tail {
        Some(tail_reader(
            kafka,
            &format!("{group}.in"),
            &topics.input,
            a.partitions,
        )?)
    } else {
        None
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let tails_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tail_task = tail_alerts(tail, tails_stop.clone());
    let in_task = in_tail.map(|t| tail_input(t, tails_stop.clone()));

    let played = if limit == 0 {
        stream.len()
    } else {
        limit.min(stream.len())
    };

    // The input producer's linger (the upstream application's batching) counts as latency.
    let mut pcfg = kafka::producer_config(kafka, Duration::from_secs(60));
    pcfg.set("linger.ms", a.input_linger_ms.to_string());
    let producer: ThreadedProducer<Deliveries> = pcfg
        .create_with_context(Deliveries::default())
        .map_err(|e| kafka::config_error("producer", e))?;

    // Warm-up: one unparseable record per partition (serve dead-letters it); pacing
    // starts once serve has handled them all, so group start-up is not counted.
    for p in 0..a.partitions {
        let rec = BaseRecord::<str, [u8]>::to(&topics.input)
            .partition(p)
            .payload(b"bench-e2e warm-up (not an event)".as_slice());
        producer
            .send(rec)
            .map_err(|(e, _)| anyhow::anyhow!("warm-up record: {e}"))?;
    }
    let p2 = producer.clone();
    tokio::task::spawn_blocking(move || p2.flush(Duration::from_secs(60)))
        .await?
        .map_err(|e| anyhow::anyhow!("warm-up records: {e}"))?;
    producer.context().check()?;
    let warm = u64::try_from(a.partitions).unwrap_or(0);
    let until = Instant::now() + STALL;
    while events_done(http, &a.admin_addr).await.unwrap_or(0) < warm {
        if Instant::now() > until {
            anyhow::bail!("serve did not consume the warm-up records within {STALL:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // serve's backlog (records sent, not yet handled), sampled while the stream plays.
    // Each sample is (seconds since `t0`, backlog in events).
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = Instant::now();
    let lag_task = {
        let (sent, stop, http, admin) = (
            sent.clone(),
            stop.clone(),
            http.clone(),
            a.admin_addr.clone(),
        );
        tokio::spawn(async move {
            let mut lags = Vec::new();
            while !stop.is_cancelled() {
                let s = sent.load(std::sync::atomic::Ordering::Relaxed);
                if let Some(done) = events_done(&http, &admin).await {
                    let lag = s.saturating_sub(done.saturating_sub(warm)) as f64;
                    lags.push((t0.elapsed().as_secs_f64(), lag));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            lags
        })
    };
    let mut sent_us: Vec<i64> = Vec::with_capacity(played);
    let scpu = CpuMeter::start(spid);
    let bcpu = CpuMeter::start(a.broker_pid);
    let own_cpu = CpuMeter::start(None);
    let runq0 = runq_secs(serve.pid());
    let start = tokio::time::Instant::now();
    let play_from = t0.elapsed().as_secs_f64();
    for i in 0..played {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let now_us = wall_us();
        let mut rec = BaseRecord::to(&topics.input)
            .payload(stream.line(i))
            .timestamp(now_us / 1000);
        if let Some(k) = stream.key(i) {
            rec = rec.key(k);
        }
        // librdkafka's queue is full: wait for the broker, the record keeps its send time.
        while let Err((e, r)) = producer.send(rec) {
            if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                anyhow::bail!("producing: {e}");
            }
            rec = r;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent_us.push(now_us);
        sent.store(sent_us.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let n = sent_us.len() as u64;
    let produce_secs = start.elapsed().as_secs_f64();
    let play_to = t0.elapsed().as_secs_f64();
    let p2 = producer.clone();
    tokio::task::spawn_blocking(move || p2.flush(Duration::from_secs(120)))
        .await?
        .map_err(|e| anyhow::anyhow!("flushing the paced stream: {e}"))?;
    producer.context().check()?;
    // Wait for serve to handle everything, then for the last alerts to arrive.
    let want = warm + n;
    let mut last = (Instant::now(), 0u64);
    loop {
        let got = events_done(http, &a.admin_addr).await.unwrap_or(0);
        if got >= want {
            break;
        }
        if got != last.1 {
            last = (Instant::now(), got);
        } else if last.0.elapsed() > STALL {
            anyhow::bail!("serve stalled at {got} of {want} events in the latency phase");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let serve_cores = scpu.cores().unwrap_or(f64::NAN);
    let broker_cores = bcpu.cores();
    let bench_cores = own_cpu.cores().unwrap_or(f64::NAN);
    let serve_runq = match (runq0, runq_secs(serve.pid())) {
        (Some(a0), Some(a1)) => (a1 - a0) / start.elapsed().as_secs_f64().max(1e-9),
        _ => f64::NAN,
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    tails_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = join_tail(tail_task).await?;
    let mut broker_ms = match in_task {
        Some(t) => join_tail(t).await?,
        None => Vec::new(),
    };
    let samples = lag_task.await?;
    // serve starts with a cold score cache; the growth is judged on the second half.
    let backlog_growth = backlog_growth(&samples, (play_from + play_to) / 2.0, play_to);
    let csv: String = std::iter::once("seconds,backlog_events\n".to_string())
        .chain(
            samples
                .iter()
                .map(|(t, l)| format!("{:.3},{l:.0}\n", t - play_from)),
        )
        .collect();
    std::fs::write(work.join(format!("backlog-{tag}.csv")), csv)?;
    let mut lags: Vec<f64> = samples.iter().map(|s| s.1).collect();
    lags.sort_by(f64::total_cmp);
    broker_ms.sort_by(f64::total_cmp);
    let _ = tokio::task::spawn_blocking(move || serve.stop()).await;

    let (mut ack_ms, mut produced_ms, mut unmatched) = (Vec::new(), Vec::new(), 0);
    let (mut records_ms, mut records_unmatched) = (Vec::new(), 0);
    for s in &seen {
        let sent = stream
            .first_index(&s.followee_id, s.event_time_ms)
            .and_then(|i| sent_us.get(i));
        match sent {
            Some(&sent) => records_ms.push((s.received_us - sent) as f64 / 1000.0),
            None => records_unmatched += 1,
        }
        if !s.open {
            continue;
        }
        match sent {
            Some(&sent) => {
                ack_ms.push((s.received_us - sent) as f64 / 1000.0);
                if let Some(c) = s.created_ms {
                    produced_ms.push((c * 1000 - sent) as f64 / 1000.0);
                }
            }
            None => unmatched += 1,
        }
    }
    ack_ms.sort_by(f64::total_cmp);
    produced_ms.sort_by(f64::total_cmp);
    records_ms.sort_by(f64::total_cmp);
    Ok(LatencyRun {
        rate,
        achieved_rate: n as f64 / produce_secs.max(1e-9),
        events: n,
        ack_ms,
        produced_ms,
        unmatched,
        records_ms,
        records_unmatched,
        serve_cores,
        serve_runq,
        broker_cores,
        bench_cores,
        broker_ms,
        lags,
        backlog_growth,
    })
}

/// Entry point of `followguard bench-e2e`.
pub fn run(a: BenchE2eArgs) -> anyhow::Result<()> {
    let kafka = a.kafka.validate()?;
    if a.partitions < 1 {
        return Err(followguard::ConfigError("--partitions must be at least 1".into()).into());
    }
    if !(a.latency_load > 0.0 && a.latency_load <= 1.0) {
        return Err(followguard::ConfigError("--latency-load must be in (0, 1]".into()).into());
    }
    let work = match &a.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("followguard-bench-e2e-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(bench(&a, &kafka, &work))?;
    report.print(a.json);
    eprintln!("bench-e2e: serve logs in {}", work.display());
    Ok(())
}

async fn bench(a: &BenchE2eArgs, kafka: &KafkaConfig, work: &Path) -> anyhow::Result<Report> {
    let run_id = format!("bench-e2e.{}", wall_us() / 1000);
    let lat_topics = Topics::new(&format!("{run_id}.lat"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    kafka::create_topics(kafka, &lat_topics.all(), a.partitions).await?;
    let mut r = Report::default();
    if a.live_only {
        let stream = paced_stream(a)?;
        let start = a.live_start_rate.unwrap_or(60_000.0);
        live_phases(
            a,
            kafka,
            &http,
            &run_id,
            &stream,
            start,
            f64::INFINITY,
            work,
            &mut r,
        )
        .await?;
        return Ok(r);
    }
    // Phases 1–3 measure the end-to-end maximum, unless the latency rate is given.
    let (rate, max_rate) = match a.latency_only_rate {
        Some(rate) => (rate, None),
        None => {
            let max = throughput_phases(a, kafka, &http, &run_id, work, &mut r).await?;
            (a.latency_load * max, Some(max))
        }
    };

    // 4. Latency at a fraction of the end-to-end maximum.
    let stream = paced_stream(a)?;
    latency_report(
        a,
        kafka,
        &http,
        &lat_topics,
        &format!("{run_id}.lat"),
        rate,
        Play::whole(&stream, "latency"),
        work,
        &mut r,
        "",
    )
    .await?;

    // 5 and 6. What the machine sustains with the input arriving live, and latency at a
    // fraction of that.
    if let Some(max_rate) = max_rate.filter(|_| !a.no_live) {
        let start = a.live_start_rate.unwrap_or(0.3 * max_rate);
        live_phases(
            a, kafka, &http, &run_id, &stream, start, max_rate, work, &mut r,
        )
        .await?;
    }
    Ok(r)
}

/// The latency phases' input, read and keyed once before them, so the pacing loop
/// (measured as the bench's own CPU, on the machine serve runs on) only sends.
fn paced_stream(a: &BenchE2eArgs) -> anyhow::Result<PacedStream> {
    let input = a.latency_input.as_ref().unwrap_or(&a.input);
    PacedStream::load(input, a.latency_events)
}

/// Phases 1–3: pre-produce, the plain consumer, serve catching up; returns the
/// end-to-end maximum (the smaller of serve's and the plain consumer's rates).
async fn throughput_phases(
    a: &BenchE2eArgs,
    kafka: &KafkaConfig,
    http: &reqwest::Client,
    run_id: &str,
    work: &Path,
    r: &mut Report,
) -> anyhow::Result<f64> {
    let topics = Topics::new(run_id);
    kafka::create_topics(kafka, &topics.all(), a.partitions).await?;

    // 1. Pre-produce.
    let producer: Producer = {
        let mut c = kafka::producer_config(kafka, Duration::from_secs(120));
        c.set("linger.ms", "20").set("batch.size", "1000000");
        c.create_with_context(LogContext)
            .map_err(|e| kafka::config_error("producer", e))?
    };
    eprintln!(
        "bench-e2e: producing {} into {}",
        a.input.display(),
        topics.input
    );
    let t = Instant::now();
    let (n, bytes) = pre_produce(&producer, &topics.input, &a.input, a.events).await?;
    let produce_secs = t.elapsed().as_secs_f64();
    drop(producer);
    if n == 0 {
        anyhow::bail!("--input {} holds no events", a.input.display());
    }
    let meta: BaseConsumer =
        kafka::consumer_config(kafka, &format!("{run_id}.meta"), Duration::ZERO)
            .set("statistics.interval.ms", "0")
            .create()
            .map_err(|e| kafka::config_error("consumer", e))?;
    let (t2, parts) = (topics.input.clone(), a.partitions);
    let marks = tokio::task::spawn_blocking(move || watermarks(&meta, &t2, parts)).await??;
    let highs: Vec<i64> = marks.iter().map(|m| m.1).collect();
    r.num("events", n as f64, "events");
    r.num("partitions", f64::from(a.partitions), "partitions");
    r.num("event_bytes_mean", bytes as f64 / n as f64, "bytes");
    r.num("produce_rate", n as f64 / produce_secs, "events/s");
    r.num(
        "high_watermark_sum",
        highs.iter().sum::<i64>() as f64,
        "offsets",
    );

    // 2. The broker alone: a plain consumer.
    eprintln!("bench-e2e: plain consumer");
    let bcpu = CpuMeter::start(a.broker_pid);
    let (plain_rate, plain_cores, ends) = plain_consume(
        kafka,
        &format!("{run_id}.plain"),
        &topics.input,
        a.partitions,
        n,
    )
    .await?;
    r.num(
        "last_offset_sum",
        ends.iter().sum::<i64>() as f64,
        "offsets",
    );
    let plain_broker_cores = bcpu.cores();
    r.num("plain_consumer_rate", plain_rate, "events/s");
    r.num("plain_consumer_cpu", plain_cores, "cores");
    r.num(
        "plain_consumer_cpu_per_event",
        plain_cores / plain_rate * 1e6,
        "us",
    );
    if let Some(c) = plain_broker_cores {
        r.num("broker_cpu_during_plain", c, "cores");
    }

    // 3. serve, fresh group, same topic.
    eprintln!("bench-e2e: serve throughput");
    let s = serve_throughput(
        a,
        kafka,
        http,
        &topics,
        &format!("{run_id}.serve"),
        n,
        &ends,
        work,
    )
    .await?;
    let ratio = s.rate / plain_rate;
    r.num("serve_rate", s.rate, "events/s");
    r.num("serve_processed_seconds", s.processed_secs, "s");
    match s.caught_up_secs {
        Some(c) => r.num("serve_caught_up_seconds", c, "s"),
        None => r.text("serve_caught_up_seconds", "not-within-30s", "s"),
    }
    r.num("serve_vs_plain", ratio, "ratio");
    r.num("serve_cpu", s.serve_cores, "cores");
    // CPU per event is steadier than rates on a shared machine.
    r.num("serve_cpu_per_event", s.serve_cores / s.rate * 1e6, "us");
    r.num("serve_runqueue_wait", s.serve_runq, "cores");
    if let Some(c) = s.broker_cores {
        r.num("broker_cpu_during_serve", c, "cores");
    }
    r.text(
        "serve_exit",
        if s.exited_ok { "clean" } else { "unclean" },
        "-",
    );
    // followguard limits when it reads clearly slower than the broker can deliver.
    r.text(
        "bottleneck",
        if ratio >= 0.8 {
            "broker"
        } else {
            "followguard"
        },
        "-",
    );

    Ok(s.rate.min(plain_rate))
}

/// Phase 5: the live capacity — the highest paced rate at which serve keeps up while the
/// broker ingests the input and the bench produces it on the same machine (the catch-up
/// rate of phase 3 has the broker only serving reads). Rates step up by 15 % from `start`
/// (down, if `start` is already too fast) until a step fails; a step passes when the
/// paced producer reached 97 % of its rate and serve's backlog grew by less than 2 % of
/// it over the second half of the step (`LatencyRun::backlog_growth`). Phase 6: latency at `--latency-load` of that capacity.
#[allow(clippy::too_many_arguments)]
async fn live_phases(
    a: &BenchE2eArgs,
    kafka: &KafkaConfig,
    http: &reqwest::Client,
    run_id: &str,
    stream: &PacedStream,
    start: f64,
    max_rate: f64,
    work: &Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    const STEP: f64 = 1.15;
    const MAX_STEPS: usize = 12;
    let (mut rate, mut best, mut down) = (start, None::<f64>, false);
    let mut steps = Vec::new();
    for k in 0..MAX_STEPS {
        let name = format!("{run_id}.live{k}");
        let topics = Topics::new(&name);
        kafka::create_topics(kafka, &topics.all(), a.partitions).await?;
        let events = ((rate * a.live_step_secs) as usize).max(1);
        let tag = format!("live-step{k}");
        let play = Play {
            stream,
            events,
            tag: &tag,
        };
        eprintln!("bench-e2e: live capacity step {k} at {rate:.0} events/s");
        let l = latency(a, kafka, http, &topics, &name, rate, play, work).await?;
        let ok = l.achieved_rate >= 0.97 * rate && l.backlog_growth <= 0.02 * rate;
        steps.push(format!(
            "{rate:.0}:{}:{:+.0}/s",
            if ok { "kept-up" } else { "fell-behind" },
            l.backlog_growth
        ));
        if ok {
            best = Some(rate);
            if down || rate * STEP > max_rate {
                break;
            }
            rate *= STEP;
        } else if best.is_some() {
            break;
        } else {
            down = true;
            rate /= STEP;
        }
    }
    r.text("live_steps", &steps.join(","), "rate:verdict:growth");
    let Some(capacity) = best else {
        r.text("live_capacity_rate", "none-kept-up", "events/s");
        return Ok(());
    };
    r.num("live_capacity_rate", capacity, "events/s");
    let topics = Topics::new(&format!("{run_id}.livelat"));
    kafka::create_topics(kafka, &topics.all(), a.partitions).await?;
    latency_report(
        a,
        kafka,
        http,
        &topics,
        &format!("{run_id}.livelat"),
        a.latency_load * capacity,
        Play::whole(stream, "live-latency"),
        work,
        r,
        "live_",
    )
    .await
}

/// A latency phase and its figures, named `<prefix>latency_…`.
#[allow(clippy::too_many_arguments)]
async fn latency_report(
    a: &BenchE2eArgs,
    kafka: &KafkaConfig,
    http: &reqwest::Client,
    lat_topics: &Topics,
    group: &str,
    rate: f64,
    play: Play<'_>,
    work: &Path,
    r: &mut Report,
    prefix: &str,
) -> anyhow::Result<()> {
    eprintln!("bench-e2e: {prefix}latency at {rate:.0} events/s");
    let l = latency(a, kafka, http, lat_topics, group, rate, play, work).await?;
    r.num(format!("{prefix}latency_target_rate"), l.rate, "events/s");
    r.num(
        format!("{prefix}latency_achieved_rate"),
        l.achieved_rate,
        "events/s",
    );
    r.num(format!("{prefix}latency_events"), l.events as f64, "events");
    r.num(format!("{prefix}latency_serve_cpu"), l.serve_cores, "cores");
    r.num(
        format!("{prefix}latency_serve_runqueue_wait"),
        l.serve_runq,
        "cores",
    );
    if let Some(c) = l.broker_cores {
        r.num(format!("{prefix}latency_broker_cpu"), c, "cores");
    }
    r.num(format!("{prefix}latency_bench_cpu"), l.bench_cores, "cores");
    r.num(
        format!("{prefix}latency_alerts"),
        l.ack_ms.len() as f64,
        "alerts",
    );
    r.num(
        format!("{prefix}latency_alerts_unmatched"),
        l.unmatched as f64,
        "alerts",
    );
    r.p50_p99(&format!("{prefix}latency"), &l.ack_ms, "ms");
    r.num(
        format!("{prefix}latency_max"),
        l.ack_ms.last().copied().unwrap_or(f64::NAN),
        "ms",
    );
    r.num(
        format!("{prefix}latency_serve_backlog_p50"),
        percentile(&l.lags, 0.5),
        "events",
    );
    r.num(
        format!("{prefix}latency_serve_backlog_max"),
        l.lags.last().copied().unwrap_or(f64::NAN),
        "events",
    );
    r.num(
        format!("{prefix}latency_serve_backlog_growth"),
        l.backlog_growth,
        "events/s",
    );
    if !l.broker_ms.is_empty() {
        r.p50_p99(&format!("{prefix}broker_latency"), &l.broker_ms, "ms");
    }
    r.p50_p99(
        &format!("{prefix}latency_to_alert_produced"),
        &l.produced_ms,
        "ms",
    );
    r.num(
        format!("{prefix}latency_records"),
        l.records_ms.len() as f64,
        "records",
    );
    r.num(
        format!("{prefix}latency_records_unmatched"),
        l.records_unmatched as f64,
        "records",
    );
    r.p50_p99(&format!("{prefix}latency_records"), &l.records_ms, "ms");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn backlog_growth_is_the_slope_inside_the_played_window() {
        // 5,000 events/s of growth from t = 1 s to t = 3 s; the samples before and after
        // (warm-up, drain) are outside the window and must not count.
        let mut samples = vec![(0.0, 90_000.0), (0.5, 0.0)];
        samples.extend((0..=20).map(|i| {
            let t = 1.0 + f64::from(i) * 0.1;
            (t, 1_000.0 + 5_000.0 * (t - 1.0))
        }));
        samples.push((3.5, 0.0));
        let g = backlog_growth(&samples, 1.0, 3.0);
        assert!((g - 5_000.0).abs() < 1e-6, "slope {g}");
        // A backlog that only jitters does not grow.
        let flat: Vec<(f64, f64)> = (0..30)
            .map(|i| (f64::from(i) * 0.1, if i % 2 == 0 { 800.0 } else { 1_200.0 }))
            .collect();
        assert!(backlog_growth(&flat, 0.0, 3.0).abs() < 50.0);
        // Too few samples, or all at one instant: no slope.
        assert!(backlog_growth(&samples, 3.2, 3.4).is_nan());
        assert!(backlog_growth(&[(1.0, 1.0); 5], 0.0, 2.0).is_nan());
    }

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let start = cpu_secs(None).expect("own /proc/self/stat");
        // Use some CPU (10 ms clock ticks), for at most 5 s.
        let until = Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while cpu_secs(None).expect("own stat") <= start && Instant::now() < until {
            x = (0..1_000_000u64).fold(x, |x, i| x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        assert!(
            cpu_secs(None).expect("own stat") > start,
            "CPU time did not grow"
        );
        assert!(cpu_secs(Some(u32::MAX)).is_none(), "no such process");
    }

    #[test]
    fn own_run_queue_wait_is_readable() {
        // Every thread of this test binary has some schedstat line; a missing process has none.
        assert!(runq_secs(std::process::id()).is_some_and(|s| s >= 0.0));
        assert!(runq_secs(u32::MAX).is_none());
    }
}
