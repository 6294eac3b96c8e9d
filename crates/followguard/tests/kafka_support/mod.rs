//! Shared helpers for the integration tests against a real Kafka-protocol broker: finding
//! the broker (FOLLOWGUARD_TEST_BROKERS), unique topic/group names, generating and
//! producing streams with the real binary, running the service — as a `followguard serve`
//! child process, or in this test process through `serve::run` and its shutdown future —
//! and reading output topics back.
#![allow(dead_code)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 4;

/// Where the broker, binary and model are.
pub struct Env {
    pub brokers: String,
    pub bin: PathBuf,
    pub model: PathBuf,
    pub tmp: tempfile::TempDir,
}

/// The broker address, or `None` (with a note) when it is not configured outside CI.
/// Under `CI=true` a missing broker is a failure: the README test command starts one.
pub fn env() -> Option<Env> {
    let brokers = match std::env::var("FOLLOWGUARD_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "FOLLOWGUARD_TEST_BROKERS is not set; run the tests through scripts/test.sh \
                     (it starts a local broker) or point it at a Kafka broker"
                );
            }
            eprintln!(
                "note: skipping broker test: FOLLOWGUARD_TEST_BROKERS is not set \
                 (scripts/test.sh starts a broker and sets it)"
            );
            return None;
        }
    };
    let mut tmp = tempfile::tempdir().expect("temp dir");
    // Diagnosis: the members' logs (and generated inputs) are kept after the test.
    if std::env::var_os("FOLLOWGUARD_TEST_KEEP_TMP").is_some() {
        tmp.disable_cleanup(true);
        eprintln!("note: test files kept in {}", tmp.path().display());
    }
    Some(Env {
        brokers,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_followguard")),
        model: model_path(),
        tmp,
    })
}

/// The model the service is started with: FOLLOWGUARD_TEST_MODEL or the shipped default.
pub fn model_path() -> PathBuf {
    std::env::var_os("FOLLOWGUARD_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json"))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!(
        "t.{prefix}.{}.{nanos}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The four topic names one service instance uses.
#[derive(Clone, Debug)]
pub struct Topics {
    pub input: String,
    pub alerts: String,
    pub moderation: String,
    pub dlq: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        let base = unique(prefix);
        Topics {
            input: format!("{base}.follows"),
            alerts: format!("{base}.alerts"),
            moderation: format!("{base}.moderation"),
            dlq: format!("{base}.dlq"),
        }
    }

    /// Same input, fresh outputs (for a second group on the same stream).
    pub fn with_new_outputs(&self, prefix: &str) -> Topics {
        let o = Topics::new(prefix);
        Topics {
            input: self.input.clone(),
            ..o
        }
    }

    pub fn args(&self) -> Vec<String> {
        vec![
            "--input-topic".into(),
            self.input.clone(),
            "--alerts-topic".into(),
            self.alerts.clone(),
            "--moderation-topic".into(),
            self.moderation.clone(),
            "--dlq-topic".into(),
            self.dlq.clone(),
        ]
    }
}

pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Env {
    /// Every record of `topic`, which must hold exactly `n` (the whole produced input).
    pub fn read_all(&self, topic: &str, n: usize) -> Vec<Rec> {
        let recs = read_topic(
            &self.brokers,
            topic,
            n,
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        assert_eq!(recs.len(), n, "records in {topic}");
        recs
    }

    /// Creates the topics with `followguard topics`.
    pub fn create_topics(&self, t: &Topics) {
        run_ok(
            Command::new(&self.bin)
                .arg("topics")
                .args(["--brokers", &self.brokers])
                .args(t.args())
                .args(["--partitions", &PARTITIONS.to_string()]),
            "followguard topics",
        );
    }

    /// Creates a compacted table topic with `followguard topics FLAG NAME` (issue 24:
    /// `--profile-topic`, `--decisions-topic`).
    #[allow(dead_code)] // only the issue-24 tests have table topics
    pub fn create_table_topic(&self, t: &Topics, flag: &str, name: &str) {
        run_ok(
            Command::new(&self.bin)
                .args(["topics", "--brokers", &self.brokers, flag, name])
                .args(t.args())
                .args(["--partitions", &PARTITIONS.to_string()]),
            "followguard topics",
        );
    }

    /// Generates a stream with `followguard generate`; returns (events file, truth JSON).
    pub fn generate(&self, name: &str, stream: &Stream) -> (PathBuf, serde_json::Value) {
        let events = self.tmp.path().join(format!("{name}.jsonl"));
        let truth = self.tmp.path().join(format!("{name}.truth.json"));
        run_ok(
            Command::new(&self.bin)
                .arg("generate")
                .arg("--out")
                .arg(&events)
                .arg("--truth")
                .arg(&truth)
                .args(stream.args()),
            "followguard generate",
        );
        let t = std::fs::read(&truth).expect("truth file");
        (events, serde_json::from_slice(&t).expect("truth json"))
    }

    /// Writes `lines` into a new file (for hand-made malformed input).
    pub fn write_lines(&self, name: &str, lines: &[Vec<u8>]) -> PathBuf {
        let p = self.tmp.path().join(name);
        let mut f = std::fs::File::create(&p).expect("create");
        for l in lines {
            f.write_all(l).expect("write");
            f.write_all(b"\n").expect("write");
        }
        p
    }

    /// Produces a JSONL file with `followguard produce`.
    pub fn produce(&self, file: &Path, topic: &str) {
        run_ok(
            Command::new(&self.bin)
                .arg("produce")
                .args(["--brokers", &self.brokers, "--topic", topic])
                .arg("--input")
                .arg(file),
            "followguard produce",
        );
    }

    /// Produces a JSONL file with `followguard produce` and extra flags (e.g. a larger
    /// `message.max.bytes` for a deliberately oversized record).
    pub fn produce_with(&self, file: &Path, topic: &str, extra: &[&str]) {
        run_ok(
            Command::new(&self.bin)
                .arg("produce")
                .args(["--brokers", &self.brokers, "--topic", topic])
                .arg("--input")
                .arg(file)
                .args(extra),
            "followguard produce",
        );
    }

    /// The flags `serve` gets in these tests, with the admin server on `port`.
    fn serve_args(&self, t: &Topics, group: &str, port: u16, extra: &[&str]) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["--brokers", &self.brokers, "--group-id", group]
            .map(OsString::from)
            .into();
        args.extend(t.args().into_iter().map(OsString::from));
        args.extend([OsString::from("--model"), self.model.clone().into()]);
        args.extend(
            [
                "--admin-addr",
                &format!("127.0.0.1:{port}"),
                // tansu serves a joining member's first fetch after ~half the session timeout.
                "--kafka-option",
                "session.timeout.ms=6000",
                "--kafka-option",
                "auto.commit.interval.ms=500",
                "--stats-interval",
                "500ms",
            ]
            .map(OsString::from),
        );
        args.extend(extra.iter().map(OsString::from));
        // Diagnosis: librdkafka debug contexts for every member (e.g. `cgrp,consumer`);
        // their lines reach the member's log with FOLLOWGUARD_TEST_SERVE_LOG below.
        if let Ok(d) = std::env::var("FOLLOWGUARD_TEST_KAFKA_DEBUG") {
            args.extend(["--kafka-option".into(), format!("debug={d}").into()]);
        }
        args
    }

    /// Starts `followguard serve` on a free admin port.
    pub fn serve(&self, t: &Topics, group: &str, extra: &[&str]) -> Svc {
        let port = free_port();
        let log = self.tmp.path().join(format!("serve-{group}-{port}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&self.bin)
            .arg("serve")
            .args(self.serve_args(t, group, port, extra))
            // Diagnosis: another filter, e.g. `info,followguard::kafka=debug`.
            .env(
                "RUST_LOG",
                std::env::var("FOLLOWGUARD_TEST_SERVE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn serve");
        Svc {
            runner: Some(Runner::Child(child)),
            port,
            log,
        }
    }

    /// Runs the service in this test process, as `followguard serve` would with the same
    /// flags (`serve::run` on its own runtime, on a thread of its own), on a free admin
    /// port; [`Svc::sigterm`] resolves its shutdown future. Its logs are not captured.
    pub fn serve_in_process(&self, t: &Topics, group: &str, extra: &[&str]) -> Svc {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: followguard::config::ServeArgs,
        }
        let port = free_port();
        let argv =
            std::iter::once(OsString::from("serve")).chain(self.serve_args(t, group, port, extra));
        let cfg = <Serve as clap::Parser>::try_parse_from(argv)
            .expect("serve flags")
            .args
            .validate()
            .expect("a valid serve configuration");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let shutdown = async move {
                // A dropped sender (the test gave up) stops the service too.
                let _ = stopped.await;
            };
            followguard::serve::run_blocking(cfg, shutdown).map_err(|e| format!("{e:#}"))
        });
        Svc {
            runner: Some(Runner::InProcess {
                stop: Some(stop),
                thread,
            }),
            port,
            log: PathBuf::new(),
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How a service under test runs.
enum Runner {
    /// A `followguard serve` child process.
    Child(Child),
    /// `serve::run` on a thread of this process; `stop` resolves its shutdown future.
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: std::thread::JoinHandle<Result<(), String>>,
    },
}

/// A running service: a child process (killed on drop if still running) or one in this
/// process (asked to stop on drop).
pub struct Svc {
    runner: Option<Runner>,
    pub port: u16,
    pub log: PathBuf,
}

/// How a service ended: a child's exit status, or what `serve::run` returned.
#[derive(Debug)]
pub enum Exit {
    Process(ExitStatus),
    InProcess(Result<(), String>),
}

impl Exit {
    pub fn success(&self) -> bool {
        match self {
            Exit::Process(s) => s.success(),
            Exit::InProcess(r) => r.is_ok(),
        }
    }

    /// The exit code (in process: 0 for `Ok`, 1 for an error).
    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Process(s) => s.code(),
            Exit::InProcess(r) => Some(if r.is_ok() { 0 } else { 1 }),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Process(s) => write!(f, "{s}"),
            Exit::InProcess(Ok(())) => f.write_str("in-process run returned Ok"),
            Exit::InProcess(Err(e)) => write!(f, "in-process run failed: {e}"),
        }
    }
}

/// Blocking HTTP GET on loopback (status, body); no client crate needed.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path)
}

/// Blocking HTTP POST with an empty body on loopback (status, body).
#[allow(dead_code)] // not every broker test posts
pub fn http_post(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "POST", path)
}

fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Value of one series in a Prometheus text exposition (exact series text).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Sum of every series of a metric family (all label values).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

impl Svc {
    /// The child's process id (an in-process service has none of its own).
    pub fn pid(&self) -> u32 {
        match &self.runner {
            Some(Runner::Child(c)) => c.id(),
            _ => panic!("an in-process service has no process of its own"),
        }
    }

    pub fn log_text(&self) -> String {
        match &self.runner {
            Some(Runner::InProcess { .. }) => "(in process: logs not captured)".to_string(),
            _ => std::fs::read_to_string(&self.log).unwrap_or_default(),
        }
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// Polls /readyz until 200; returns whether a not-ready answer was seen first.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        let mut saw_not_ready = false;
        loop {
            match self.get("/readyz") {
                Some((200, _)) => return saw_not_ready,
                Some((503, _)) => saw_not_ready = true,
                _ => {}
            }
            if let Some(exit) = self.try_exit() {
                panic!("serve exited early ({exit}):\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < timeout,
                "serve not ready after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls /metrics until `events_total` (all outcomes) reaches `n`.
    pub fn wait_events(&self, n: f64, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics();
            if metric_sum(&m, "followguard_events_total") >= n {
                return m;
            }
            assert!(
                start.elapsed() < timeout,
                "only {} of {n} events processed after {timeout:?}:\n{}",
                metric_sum(&m, "followguard_events_total"),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to the child; for an in-process service, its shutdown future resolves.
    pub fn sigterm(&mut self) {
        if let Some(Runner::InProcess { stop, .. }) = self.runner.as_mut() {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
            return;
        }
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not send SIGTERM");
    }

    /// SIGKILL: no chance to flush or commit. (An in-process service is asked to stop.)
    pub fn kill9(&mut self) {
        match self.runner.take() {
            Some(Runner::Child(mut c)) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            // Dropping the sender resolves the shutdown future; the thread finishes alone.
            Some(Runner::InProcess { .. }) | None => {}
        }
    }

    /// How it ended, if it has (then it is no longer running).
    fn try_exit(&mut self) -> Option<Exit> {
        match self.runner.as_mut()? {
            Runner::Child(c) => {
                let st = c.try_wait().ok()??;
                self.runner = None;
                Some(Exit::Process(st))
            }
            Runner::InProcess { thread, .. } => {
                if !thread.is_finished() {
                    return None;
                }
                let Some(Runner::InProcess { thread, .. }) = self.runner.take() else {
                    return None;
                };
                Some(Exit::InProcess(
                    thread
                        .join()
                        .unwrap_or_else(|_| Err("serve panicked".into())),
                ))
            }
        }
    }

    /// Waits for exit; `None` when it did not exit within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Exit> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(exit) = self.try_exit() {
                return Some(exit);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Rec {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "record is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.payload)
            )
        })
    }
}

fn reader(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("reader consumer")
}

/// A reader assigned every partition of `topic` from its beginning.
fn reader_from_beginning(brokers: &str, topic: &str) -> BaseConsumer {
    let c = reader(brokers);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    c
}

/// Whether `topic` holds a record within `timeout` (returns at the first one).
pub fn has_record(brokers: &str, topic: &str, timeout: Duration) -> bool {
    let c = reader_from_beginning(brokers, topic);
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            return true;
        }
    }
    false
}

/// Reads every record of `topic` from the beginning: stops once `idle` passes without a
/// new record (after at least `min` records, or at `timeout`).
pub fn read_topic(
    brokers: &str,
    topic: &str,
    min: usize,
    idle: Duration,
    timeout: Duration,
) -> Vec<Rec> {
    let c = reader_from_beginning(brokers, topic);
    let start = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < timeout {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let mut headers = BTreeMap::new();
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        headers.insert(
                            hd.key.to_string(),
                            String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Rec {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("reader error on {topic}: {e}"),
            None => {
                if out.len() >= min && last.elapsed() >= idle {
                    break;
                }
            }
        }
    }
    out
}

/// Committed offsets of `group` on `topic`, by partition (absent = nothing committed).
pub fn committed(brokers: &str, group: &str, topic: &str) -> HashMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Next offset per partition of what `read_topic` saw (the broker's own high watermark is
/// not used: tansu reports it in record batches, not records).
pub fn end_offsets(records: &[Rec]) -> HashMap<i32, i64> {
    let mut m = HashMap::new();
    for r in records {
        let e = m.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    m
}

/// A minimal HTTP receiver on loopback standing in for Alertmanager's
/// `POST /api/v2/alerts`: stores each JSON body and answers 200.
pub struct AlertReceiver {
    pub url: String,
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl AlertReceiver {
    pub fn start() -> AlertReceiver {
        use std::io::{BufRead, BufReader, Read};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!("http://{}/api/v2/alerts", l.local_addr().expect("addr"));
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = bodies.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let mut r = BufReader::new(conn);
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        if let Ok(mut b) = store.lock() {
                            b.push(v);
                        }
                    }
                }
                let mut conn = r.into_inner();
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        AlertReceiver { url, bodies }
    }

    /// Every alert posted so far (the bodies are arrays of alerts).
    /// Posts of each alert id received with a status other than `resolved`.
    pub fn open_posts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut n = std::collections::BTreeMap::new();
        for a in self.alerts() {
            if a["annotations"]["status"] != "resolved" {
                if let Some(id) = a["labels"]["alert_id"].as_str() {
                    *n.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        }
        n
    }

    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .map(|b| {
                b.iter()
                    .filter_map(|v| v.as_array().cloned())
                    .flatten()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Open alerts in an alerts topic as (alert id → followee), and how many ids were opened
/// more than once (checking that any repeat describes the same burst).
pub fn opened(records: &[Rec]) -> (BTreeMap<String, String>, usize) {
    let mut seen: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut duplicates = 0;
    for r in records {
        let a = r.json();
        if a["status"] != "open" {
            continue;
        }
        let id = a["alert_id"].as_str().expect("alert_id").to_string();
        let burst = (
            a["followee_id"].as_str().unwrap_or_default().to_string(),
            a["kind"].as_str().unwrap_or_default().to_string(),
            a["burst_start"].as_str().unwrap_or_default().to_string(),
        );
        if let Some(prev) = seen.insert(id.clone(), burst.clone()) {
            duplicates += 1;
            assert_eq!(prev, burst, "alert id {id} opened for two different bursts");
        }
    }
    let ids = seen.into_iter().map(|(id, (f, _, _))| (id, f)).collect();
    (ids, duplicates)
}

/// A small generated stream for broker tests: the generator flags that vary between
/// tests; bought followers never follow other accounts (no camouflage) unless asked.
pub struct Stream {
    pub seed: u64,
    pub followees: u32,
    pub days: u32,
    pub humans: u32,
    pub viral: u32,
    pub campaigns: u32,
    pub min_campaign: u32,
    pub max_campaign: u32,
    /// Keep the generator's default camouflage instead of 0.
    pub camouflage: bool,
    /// Probability that a campaign's cohort is re-sold to another customer.
    pub resell: Option<f64>,
}

impl Stream {
    /// Two days of 150 followees and 5,000 humans with three uncamouflaged campaigns of
    /// 200–400 bots: the small stream the fault tests (issue #19) inject into.
    pub fn small_campaigns(seed: u64) -> Stream {
        Stream {
            seed,
            followees: 150,
            days: 2,
            humans: 5000,
            viral: 0,
            campaigns: 3,
            min_campaign: 200,
            max_campaign: 400,
            camouflage: false,
            resell: None,
        }
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            ("--seed", self.seed.to_string()),
            ("--followees", self.followees.to_string()),
            ("--days", self.days.to_string()),
            ("--humans", self.humans.to_string()),
            ("--viral", self.viral.to_string()),
            ("--campaigns", self.campaigns.to_string()),
            ("--min-campaign", self.min_campaign.to_string()),
            ("--max-campaign", self.max_campaign.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect();
        if !self.camouflage {
            a.extend(["--camouflage".to_string(), "0".to_string()]);
        }
        if let Some(r) = self.resell {
            a.extend(["--resell".to_string(), r.to_string()]);
        }
        a
    }
}

/// The lines of a generated file with a truncated JSON record inserted before every
/// `every`-th line (at offsets every/2, every/2 + every, …): malformed input spread
/// through the stream, each of which must reach the dead-letter topic.
pub fn with_malformed(events: &Path, every: usize) -> Vec<Vec<u8>> {
    let text = std::fs::read(events).expect("events");
    let mut lines = Vec::new();
    for (i, l) in text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i % every == every / 2 {
            lines.push(format!("{{\"broken\": {i}").into_bytes());
        }
        lines.push(l.to_vec());
    }
    lines
}

/// Event time (ms) of a generated event line (`ts`), if it has one.
pub fn event_time_ms(line: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| {
            v["ts"]
                .as_str()
                .and_then(followguard_core::time::parse_time_ms)
        })
}

/// The lines of a generated stream up to the end of its last campaign (that burst is
/// then still open when the input stops): the webhook-adoption tests' input.
pub fn lines_until_last_campaign_end(
    events: &std::path::Path,
    truth: &serde_json::Value,
) -> Vec<Vec<u8>> {
    let last_end = truth["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .filter_map(|c| c["end_ms"].as_i64())
        .max()
        .expect("a campaign");
    std::fs::read(events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter(|l| event_time_ms(l).is_some_and(|t| t <= last_end))
        .map(<[u8]>::to_vec)
        .collect()
}

// Issue 21, cross-instance campaigns: the link stage's topics and its campaign records.

/// Alert id → campaign id: each record names its members; a record's `merged` ids are
/// retired into its own (followed transitively), so the answer does not depend on the
/// order records of different campaigns are read in.
pub fn campaign_of(records: &[Rec]) -> BTreeMap<String, String> {
    campaign_of_json(records.iter().map(Rec::json))
}

pub fn campaign_of_json(
    records: impl Iterator<Item = serde_json::Value>,
) -> BTreeMap<String, String> {
    let mut named = BTreeMap::new();
    let mut retired: BTreeMap<String, String> = BTreeMap::new();
    for r in records {
        let cid = r["campaign_id"].as_str().unwrap_or_default().to_string();
        for m in r["merged"].as_array().into_iter().flatten() {
            retired.insert(m.as_str().unwrap_or_default().to_string(), cid.clone());
        }
        for a in r["alerts"].as_array().into_iter().flatten() {
            let id = a["alert_id"].as_str().unwrap_or_default().to_string();
            // Records of one campaign are read in order (its key's partition); a
            // member only ever moves to an older root, never back.
            named.insert(id, cid.clone());
        }
    }
    named
        .into_iter()
        .map(|(a, mut c)| {
            for _ in 0..retired.len() {
                match retired.get(&c) {
                    Some(n) if *n != c => c = n.clone(),
                    _ => break,
                }
            }
            (a, c)
        })
        .collect()
}

pub fn links_args(t: &Topics) -> Vec<String> {
    vec![
        "--links-topic".into(),
        format!("{}.links", t.alerts),
        "--campaigns-topic".into(),
        format!("{}.campaigns", t.alerts),
    ]
}

/// Waits until the group has committed every record of the links topic and of the
/// pairs topic (the link stage is done), then reads the campaigns topic.
pub fn settle_links(env: &Env, t: &Topics, group: &str, svcs: &[&Svc]) -> Vec<Rec> {
    let links_topic = format!("{}.links", t.alerts);
    let pairs_topic = format!("{links_topic}-pairs");
    let start = Instant::now();
    loop {
        let read = |topic: &str| {
            end_offsets(&read_topic(
                &env.brokers,
                topic,
                1,
                Duration::from_millis(500),
                Duration::from_secs(30),
            ))
        };
        let (links, pairs) = (read(&links_topic), read(&pairs_topic));
        let done_links = committed(&env.brokers, group, &links_topic) == links;
        let done_pairs = committed(&env.brokers, group, &pairs_topic).get(&0) == pairs.get(&0);
        if done_links && done_pairs && !pairs.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "link stage not done: links {done_links}, pairs {done_pairs}\n{}",
            svcs.iter()
                .map(|s| s.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    read_topic(
        &env.brokers,
        &format!("{}.campaigns", t.alerts),
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
}

/// The input partitions a service's main consumer owns now, from its log: every
/// "partitions assigned" line adds its partitions and every "partitions revoked" line
/// removes its own, in order (link-stage lines are skipped). Under cooperative-sticky
/// both lines are incremental, and a rebalance that moves nothing to a member logs an
/// empty assignment, so the last line alone is not the member's assignment.
pub fn owned_partitions(log: &str) -> BTreeSet<i32> {
    let mut owned = BTreeSet::new();
    for line in strip_ansi(log).lines() {
        if line.contains("link stage") {
            continue;
        }
        let assigned = line.contains("partitions assigned");
        if !assigned && !line.contains("partitions revoked") {
            continue;
        }
        let Some(list) = line
            .split("partitions=[")
            .nth(1)
            .and_then(|s| s.split(']').next())
        else {
            continue;
        };
        for p in list.split(',').filter_map(|p| p.trim().parse::<i32>().ok()) {
            if assigned {
                owned.insert(p);
            } else {
                owned.remove(&p);
            }
        }
    }
    owned
}

/// `text` without terminal colour codes (the service's log may carry them).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
