//! Optional best-effort webhook sink: posts alerts in Alertmanager's `POST /api/v2/alerts`
//! format so they route to Slack/PagerDuty through a team's existing Alertmanager.
//!
//! Alertmanager's resend contract (issue #23), as Prometheus keeps it: every alert still
//! open is re-posted every `--webhook-resend-interval` (a timer, not only when the alert
//! changes) with `endsAt` four intervals ahead, so Alertmanager keeps it firing for as long
//! as followguard does, whatever its `resolve_timeout`; a resolved alert is posted once with
//! `endsAt` = now and forgotten. If followguard stops, its open alerts expire in
//! Alertmanager four intervals after the last resend. The labels identify the alert
//! (`alertname`, `source`, `alert_id`, `kind`, `followee_id`); `severity` is an annotation,
//! so a severity change updates the one Alertmanager alert instead of creating a second.
//! `generatorURL` points at the alert's evidence page under `--public-url`.
//!
//! Transport: rustls (webpki roots plus `--webhook-ca-file`), a bearer token or basic auth
//! from a file or the environment, redirects never followed (a 3xx is a failed attempt).
//! Bounded queue (new alerts are dropped and counted when full), per-request timeout,
//! retries with exponential backoff, and a drop counter when every retry failed. It never
//! holds up offset commits: Kafka topics are the durable sinks, this one is a courtesy.

use crate::config::{WebhookAuth, WebhookConfig};
use crate::metrics::{Metrics, WebhookDrop, WebhookResult};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest batch posted in one request.
const MAX_BATCH: usize = 64;
/// First retry delay; doubled per attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// An open alert's `endsAt` is this many resend intervals ahead (Prometheus uses 4 × its
/// resend delay): three resends may fail before Alertmanager resolves it.
const ENDS_AHEAD_RESENDS: u32 = 4;
/// Most open alerts kept for resending; beyond that a new alert is posted once and
/// counted as dropped (`untracked`), so it may expire in Alertmanager while still open.
pub const MAX_TRACKED: usize = 100_000;

/// The webhook's view of an alert: just what Alertmanager needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAlert {
    pub id: String,
    pub kind: String,
    pub severity: String,
    /// `open`, `update` or `resolved`; `resolved` sets `endsAt` to now.
    pub status: String,
    pub followee_id: String,
    /// Input partition of the alert's followee (its open alerts are forgotten on revoke).
    pub partition: i32,
    pub starts_at_ms: i64,
    pub summary: String,
    pub campaign_id: Option<String>,
    pub campaign_followees: u32,
}

impl WebhookAlert {
    /// The webhook's view of an alert record: it starts at the burst start (the record's
    /// event time when that does not parse).
    pub fn from_alert(a: &followguard_core::alert::Alert, partition: i32) -> WebhookAlert {
        WebhookAlert {
            id: a.alert_id.clone(),
            kind: a.kind.as_str().to_string(),
            severity: a.severity.as_str().to_string(),
            status: a.status.as_str().to_string(),
            followee_id: a.followee_id.clone(),
            partition,
            starts_at_ms: followguard_core::time::parse_time_ms(&a.burst_start)
                .unwrap_or(a.event_time_ms),
            summary: format!(
                "{} suspicious of {} new followers ({} alert, {})",
                a.suspicious_count,
                a.new_followers,
                a.kind.as_str(),
                a.status.as_str()
            ),
            campaign_id: a.campaign_id.clone(),
            campaign_followees: a.campaign_followees,
        }
    }

    fn is_resolved(&self) -> bool {
        self.status == "resolved"
    }
}

/// One element of Alertmanager's `postableAlerts` array.
#[derive(Debug, Serialize, PartialEq)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Wall-clock milliseconds since the Unix epoch.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where a posted alert links to: the evidence pages' public base and the runbook.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `--public-url` without a trailing `/`; `None` leaves `generatorURL` out.
    pub public_url: Option<String>,
    pub runbook_url: String,
}

impl WebhookAlert {
    /// Alertmanager identifies an alert by its label set, so the labels are what never
    /// changes for a burst (alert id, kind, followee) and route it (`source`); severity,
    /// status, summary, campaign and runbook are annotations. `now_ms` is the wall clock;
    /// an open alert ends `ahead` later (it is resent before then), a resolved one now.
    pub fn to_postable(&self, links: &Links, now_ms: i64, ahead: Duration) -> PostableAlert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".into(), "FollowerPurchaseSuspected".into());
        labels.insert("source".into(), "followguard".into());
        labels.insert("alert_id".into(), self.id.clone());
        labels.insert("kind".into(), self.kind.clone());
        labels.insert("followee_id".into(), self.followee_id.clone());
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".into(), self.summary.clone());
        annotations.insert("status".into(), self.status.clone());
        annotations.insert("severity".into(), self.severity.clone());
        annotations.insert("runbook_url".into(), links.runbook_url.clone());
        if let Some(c) = &self.campaign_id {
            annotations.insert("campaign_id".into(), c.clone());
            annotations.insert(
                "campaign_followees".into(),
                self.campaign_followees.to_string(),
            );
        }
        let ends_at_ms = if self.is_resolved() {
            now_ms
        } else {
            now_ms.saturating_add(i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX))
        };
        PostableAlert {
            labels,
            annotations,
            // An alert cannot end before it starts (a replayed stream's burst may lie in
            // the future of a resolve's wall clock only if event time runs ahead).
            starts_at: rfc3339(self.starts_at_ms.min(ends_at_ms)),
            ends_at: rfc3339(ends_at_ms),
            generator_url: links
                .public_url
                .as_ref()
                .map(|base| format!("{base}/alerts/{}", self.id)),
        }
    }
}

/// What the worker is told.
enum Msg {
    Alert(WebhookAlert),
    /// Partitions this instance no longer owns: stop resending their open alerts (the
    /// new owner posts their updates and resolutions).
    Forget(Vec<i32>),
}

/// Handle for enqueueing alerts; the worker task does the HTTP.
#[derive(Clone)]
pub struct Webhook {
    tx: mpsc::Sender<Msg>,
    metrics: Metrics,
}

/// The webhook's HTTP client: rustls with the webpki roots plus `--webhook-ca-file`'s
/// certificates, the per-request timeout, and no redirects.
pub fn http_client(cfg: &WebhookConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(cfg.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &cfg.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| anyhow::anyhow!("--webhook-ca-file: {e}"))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| anyhow::anyhow!("building the webhook HTTP client: {e}"))
}

impl Webhook {
    /// Starts the worker. It stops after the last [`Webhook`] handle is dropped and the
    /// queue is drained (or `drain_deadline` passes once the queue is closed).
    pub fn start(
        cfg: WebhookConfig,
        metrics: Metrics,
    ) -> anyhow::Result<(Webhook, JoinHandle<()>)> {
        let client = http_client(&cfg)?;
        let (tx, rx) = mpsc::channel(cfg.queue);
        let worker = tokio::spawn(run_worker(client, cfg, rx, metrics.clone()));
        Ok((Webhook { tx, metrics }, worker))
    }

    /// Never waits: a full queue drops the alert (counted) instead of stalling the consumer.
    pub fn enqueue(&self, alert: WebhookAlert) {
        if self.tx.try_send(Msg::Alert(alert)).is_err() {
            self.metrics.webhook_dropped(WebhookDrop::QueueFull);
        }
    }

    /// Partitions revoked from this instance: their open alerts are no longer resent.
    pub fn forget_partitions(&self, parts: Vec<i32>) {
        if self.tx.try_send(Msg::Forget(parts)).is_err() {
            tracing::warn!("webhook queue full: revoked partitions' alerts stay tracked");
        }
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// The worker's state: open alerts by id, resent on every tick.
struct Worker {
    client: reqwest::Client,
    cfg: WebhookConfig,
    links: Links,
    metrics: Metrics,
    open: HashMap<String, WebhookAlert>,
}

async fn run_worker(
    client: reqwest::Client,
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<Msg>,
    metrics: Metrics,
) {
    let mut resend = tokio::time::interval(cfg.resend_interval);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resend.tick().await; // the first tick is immediate
    let mut w = Worker {
        client,
        links: Links {
            public_url: cfg.public_url.clone(),
            runbook_url: cfg.runbook_url.clone(),
        },
        cfg,
        metrics,
        open: HashMap::new(),
    };
    let mut msgs = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut msgs, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
                let alerts = w.take(&mut msgs);
                w.post_all(&alerts).await;
            }
            _ = resend.tick() => {
                let open: Vec<WebhookAlert> = w.open.values().cloned().collect();
                w.post_all(&open).await;
            }
        }
    }
}

impl Worker {
    /// Applies the messages to the open set; the alerts to post now.
    fn take(&mut self, msgs: &mut Vec<Msg>) -> Vec<WebhookAlert> {
        let mut alerts = Vec::with_capacity(msgs.len());
        for m in msgs.drain(..) {
            match m {
                Msg::Alert(a) => {
                    if a.is_resolved() {
                        self.open.remove(&a.id);
                    } else if self.open.len() < MAX_TRACKED || self.open.contains_key(&a.id) {
                        self.open.insert(a.id.clone(), a.clone());
                    } else {
                        self.metrics.webhook_dropped(WebhookDrop::Untracked);
                    }
                    alerts.push(a);
                }
                Msg::Forget(parts) => self.open.retain(|_, a| !parts.contains(&a.partition)),
            }
        }
        self.metrics.set_webhook_tracked(self.open.len());
        alerts
    }

    /// Posts `alerts` in batches of at most [`MAX_BATCH`].
    async fn post_all(&self, alerts: &[WebhookAlert]) {
        let ahead = self.cfg.resend_interval * ENDS_AHEAD_RESENDS;
        for chunk in alerts.chunks(MAX_BATCH) {
            let now = wall_ms();
            let body: Vec<PostableAlert> = chunk
                .iter()
                .map(|a| a.to_postable(&self.links, now, ahead))
                .collect();
            let delivered = self.post(&body).await;
            for _ in chunk {
                if delivered {
                    self.metrics.webhook_sent();
                } else {
                    self.metrics.webhook_dropped(WebhookDrop::Failed);
                }
            }
        }
    }

    /// One batch with retries; whether the receiver accepted it.
    async fn post(&self, body: &[PostableAlert]) -> bool {
        for attempt in 0..self.cfg.retries {
            if attempt > 0 {
                tokio::time::sleep(BASE_BACKOFF * 2u32.saturating_pow(attempt - 1)).await;
            }
            let req = self.client.post(&self.cfg.url).json(&body);
            let req = match &self.cfg.auth {
                WebhookAuth::None => req,
                WebhookAuth::Bearer(t) => req.bearer_auth(t),
                WebhookAuth::Basic { user, password } => req.basic_auth(user, Some(password)),
            };
            let started = Instant::now();
            let res = req.send().await;
            let result = match &res {
                Ok(r) if r.status().is_success() => WebhookResult::Success,
                Ok(r) if r.status().is_redirection() => WebhookResult::Redirect,
                Ok(r) if r.status().is_client_error() => WebhookResult::Rejected,
                Ok(_) => WebhookResult::ServerError,
                // reqwest errors may embed the URL; report only the kind.
                Err(e) if e.is_timeout() => WebhookResult::Timeout,
                Err(e) if e.is_connect() => WebhookResult::Connect,
                Err(_) => WebhookResult::Error,
            };
            self.metrics
                .webhook_request(result, started.elapsed().as_secs_f64());
            match res {
                Ok(r) if result == WebhookResult::Success => {
                    drop(r);
                    return true;
                }
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    attempt,
                    result = result.as_str(),
                    "webhook rejected alerts"
                ),
                Err(e) => tracing::warn!(
                    error = result.as_str(),
                    // The cause chain (an untrusted certificate, a refused connection),
                    // without the URL, which may carry credentials.
                    cause = %error_chain(&e.without_url()),
                    attempt,
                    "webhook post failed"
                ),
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use prometheus::Registry;
    use std::sync::{Arc, Mutex};

    fn alert(i: i64) -> WebhookAlert {
        WebhookAlert {
            id: format!("a{i}"),
            kind: "burst".into(),
            severity: "high".into(),
            status: "open".into(),
            followee_id: "42".into(),
            partition: 0,
            starts_at_ms: 1_700_000_000_000 + i,
            summary: "burst of suspicious follows".into(),
            campaign_id: None,
            campaign_followees: 1,
        }
    }

    type Received = Arc<Mutex<Vec<serde_json::Value>>>;

    /// What the test receiver answers.
    #[derive(Clone, Copy)]
    enum Answer {
        Status(StatusCode),
        /// 401 unless `Authorization: Bearer secret-token`.
        NeedsToken,
        /// 307 to a path that would accept the post.
        Redirect,
    }

    /// A real HTTP receiver on loopback; every post it accepts (or not) is recorded.
    async fn receiver(answer: Answer) -> (String, Received) {
        let got: Received = Arc::default();
        let app = Router::new()
            .route(
                "/api/v2/alerts",
                post(
                    move |State(g): State<Received>,
                          headers: HeaderMap,
                          Json(v): Json<serde_json::Value>| async move {
                        if let Ok(mut g) = g.lock() {
                            g.push(v);
                        }
                        let r: Response = match answer {
                            Answer::Status(s) => s.into_response(),
                            Answer::NeedsToken => {
                                let auth =
                                    headers.get("authorization").and_then(|v| v.to_str().ok());
                                if auth == Some("Bearer secret-token") {
                                    StatusCode::OK.into_response()
                                } else {
                                    StatusCode::UNAUTHORIZED.into_response()
                                }
                            }
                            Answer::Redirect => Redirect::temporary("/elsewhere").into_response(),
                        };
                        r
                    },
                ),
            )
            .route("/elsewhere", post(|| async { StatusCode::OK }))
            .with_state(got.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (format!("http://{addr}/api/v2/alerts"), got)
    }

    fn cfg(url: String, queue: usize) -> WebhookConfig {
        WebhookConfig {
            url,
            timeout: Duration::from_secs(2),
            retries: 2,
            queue,
            resend_interval: Duration::from_secs(60),
            auth: WebhookAuth::None,
            ca_pem: None,
            public_url: Some("https://fg.example.com".into()),
            runbook_url: "https://runbooks.example.com/fg#followerpurchasesuspected".into(),
        }
    }

    /// A webhook resending every 100 ms to a receiver that accepts everything.
    async fn resending_every_100ms() -> (Received, Metrics, Webhook, JoinHandle<()>) {
        let (url, got) = receiver(Answer::Status(StatusCode::OK)).await;
        let m = Metrics::new(Registry::new(), "v", "s");
        let mut c = cfg(url, 10);
        c.resend_interval = Duration::from_millis(100);
        let (wh, worker) = Webhook::start(c, m.clone()).expect("start");
        (got, m, wh, worker)
    }

    fn counter(m: &Metrics, series: &str) -> f64 {
        m.render()
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    }

    fn ms(rfc: &serde_json::Value) -> i64 {
        rfc.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis())
            .unwrap_or(-1)
    }

    #[tokio::test]
    async fn posts_alertmanager_format() {
        let (url, got) = receiver(Answer::Status(StatusCode::OK)).await;
        let m = Metrics::new(Registry::new(), "v", "s");
        let (wh, worker) = Webhook::start(cfg(url, 10), m.clone()).expect("start");
        let before = wall_ms();
        let mut a = alert(1);
        a.campaign_id = Some("fgc-7".into());
        a.campaign_followees = 3;
        wh.enqueue(a);
        drop(wh);
        worker.await.expect("worker");
        let got = got.lock().expect("lock").clone();
        assert_eq!(got.len(), 1);
        let a = &got[0][0];
        assert_eq!(a["labels"]["alertname"], "FollowerPurchaseSuspected");
        assert_eq!(a["labels"]["alert_id"], "a1");
        // Severity is an annotation: a severity change keeps the label set.
        assert!(a["labels"].get("severity").is_none());
        assert_eq!(a["annotations"]["severity"], "high");
        assert_eq!(a["annotations"]["campaign_id"], "fgc-7");
        assert_eq!(a["annotations"]["campaign_followees"], "3");
        assert_eq!(
            a["annotations"]["runbook_url"],
            "https://runbooks.example.com/fg#followerpurchasesuspected"
        );
        assert_eq!(a["generatorURL"], "https://fg.example.com/alerts/a1");
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20.001Z");
        // Open: ends four resend intervals ahead of the post.
        let ends = ms(&a["endsAt"]);
        assert!(ends >= before + 4 * 60_000, "endsAt {}", a["endsAt"]);
        assert!(ends <= wall_ms() + 4 * 60_000, "endsAt {}", a["endsAt"]);
        assert_eq!(counter(&m, "followguard_webhook_sent_total"), 1.0);
        assert_eq!(
            counter(&m, "followguard_webhook_requests_total{result=\"success\"}"),
            1.0
        );
        assert_eq!(
            counter(&m, "followguard_webhook_request_duration_seconds_count"),
            1.0
        );
        assert_eq!(counter(&m, "followguard_webhook_tracked_alerts"), 1.0);
    }

    #[tokio::test]
    async fn open_alerts_are_resent_on_a_timer_until_resolved() {
        let (got, m, wh, worker) = resending_every_100ms().await;
        wh.enqueue(alert(1));
        // No new records: only the timer posts it again.
        tokio::time::sleep(Duration::from_millis(450)).await;
        let n_open = got.lock().expect("lock").len();
        assert!(n_open >= 3, "{n_open} posts in 450 ms at a 100 ms resend");
        let mut resolved = alert(1);
        resolved.status = "resolved".into();
        let before = wall_ms();
        wh.enqueue(resolved);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let posts = got.lock().expect("lock").clone();
        let last = &posts[posts.len() - 1][0];
        assert_eq!(last["annotations"]["status"], "resolved");
        let ends = ms(&last["endsAt"]);
        assert!(ends >= before && ends <= wall_ms(), "resolved endsAt = now");
        // Every open post's endsAt (post time + 4 × 100 ms) lies ahead of the next post.
        let ends: Vec<i64> = posts[..posts.len() - 1]
            .iter()
            .map(|p| ms(&p[0]["endsAt"]))
            .collect();
        for w in ends.windows(2) {
            let next_post = w[1] - 400;
            assert!(w[1] > w[0], "endsAt moves forward: {ends:?}");
            assert!(
                w[0] > next_post,
                "endsAt ahead of the next resend: {ends:?}"
            );
        }
        // Resolved: no more resends.
        let n = posts.len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(got.lock().expect("lock").len(), n, "resent after resolve");
        assert_eq!(counter(&m, "followguard_webhook_tracked_alerts"), 0.0);
        drop(wh);
        worker.await.expect("worker");
    }

    #[tokio::test]
    async fn revoked_partitions_alerts_are_not_resent() {
        let (got, m, wh, worker) = resending_every_100ms().await;
        let mut other = alert(2);
        other.partition = 1;
        wh.enqueue(alert(1));
        wh.enqueue(other);
        wh.forget_partitions(vec![1]);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(counter(&m, "followguard_webhook_tracked_alerts"), 1.0);
        drop(wh);
        worker.await.expect("worker");
        let posts = got.lock().expect("lock").clone();
        let resent: Vec<_> = posts[1..]
            .iter()
            .flat_map(|b| b.as_array().cloned().unwrap_or_default())
            .map(|a| a["labels"]["alert_id"].clone())
            .collect();
        assert!(!resent.is_empty());
        assert!(resent.iter().all(|i| i == "a1"), "{resent:?}");
    }

    #[tokio::test]
    async fn bearer_token_is_sent_and_a_wrong_one_counts_as_rejected() {
        let (url, got) = receiver(Answer::NeedsToken).await;
        for (token, sent, rejected) in [("secret-token", 1.0, 0.0), ("wrong", 0.0, 2.0)] {
            let m = Metrics::new(Registry::new(), "v", "s");
            let mut c = cfg(url.clone(), 10);
            c.auth = WebhookAuth::Bearer(token.into());
            let (wh, worker) = Webhook::start(c, m.clone()).expect("start");
            wh.enqueue(alert(1));
            drop(wh);
            worker.await.expect("worker");
            assert_eq!(counter(&m, "followguard_webhook_sent_total"), sent);
            assert_eq!(
                counter(
                    &m,
                    "followguard_webhook_requests_total{result=\"rejected\"}"
                ),
                rejected,
                "token {token}"
            );
        }
        assert_eq!(got.lock().expect("lock").len(), 3);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (url, got) = receiver(Answer::Redirect).await;
        let m = Metrics::new(Registry::new(), "v", "s");
        let (wh, worker) = Webhook::start(cfg(url, 10), m.clone()).expect("start");
        wh.enqueue(alert(1));
        drop(wh);
        worker.await.expect("worker");
        assert_eq!(
            got.lock().expect("lock").len(),
            2,
            "two attempts, no follow"
        );
        assert_eq!(
            counter(
                &m,
                "followguard_webhook_requests_total{result=\"redirect\"}"
            ),
            2.0
        );
        assert_eq!(
            counter(&m, "followguard_webhook_dropped_total{reason=\"failed\"}"),
            1.0
        );
    }

    #[tokio::test]
    async fn failing_receiver_is_retried_then_counted_as_dropped() {
        let (url, got) = receiver(Answer::Status(StatusCode::INTERNAL_SERVER_ERROR)).await;
        let m = Metrics::new(Registry::new(), "v", "s");
        let (wh, worker) = Webhook::start(cfg(url, 10), m.clone()).expect("start");
        wh.enqueue(alert(1));
        drop(wh);
        worker.await.expect("worker");
        assert_eq!(got.lock().expect("lock").len(), 2, "two attempts");
        assert_eq!(
            counter(&m, "followguard_webhook_dropped_total{reason=\"failed\"}"),
            1.0
        );
        assert_eq!(
            counter(
                &m,
                "followguard_webhook_requests_total{result=\"server_error\"}"
            ),
            2.0
        );
    }

    #[tokio::test]
    async fn full_queue_drops_without_waiting() {
        // Nothing listens on this port; the worker is busy retrying the first batch.
        let m = Metrics::new(Registry::new(), "v", "s");
        let (wh, worker) =
            Webhook::start(cfg("http://127.0.0.1:9/api/v2/alerts".into(), 1), m.clone())
                .expect("start");
        for i in 0..5 {
            wh.enqueue(alert(i));
        }
        let dropped = counter(
            &m,
            "followguard_webhook_dropped_total{reason=\"queue_full\"}",
        );
        assert!(dropped >= 3.0, "dropped {dropped}");
        drop(wh);
        worker.await.expect("worker");
        assert!(counter(&m, "followguard_webhook_requests_total{result=\"connect\"}") >= 1.0);
    }

    #[test]
    fn alert_records_map_to_open_and_resolved_webhook_alerts() {
        use followguard_core::alert::AlertStatus;
        use followguard_core::fixtures::alert as test_alert;
        let links = Links::default();
        let now = 1_700_000_900_000;
        let ahead = Duration::from_secs(240);
        // Open: starts at the burst start, ends `ahead` after now.
        let mut open = test_alert("42", "fga-1", AlertStatus::Open, 1_700_000_600_000);
        open.burst_start = "2023-11-14T22:00:00Z".into();
        let w = WebhookAlert::from_alert(&open, 3);
        assert_eq!((w.id.as_str(), w.status.as_str()), ("fga-1", "open"));
        assert_eq!(w.starts_at_ms, 1_699_999_200_000);
        assert_eq!(w.partition, 3);
        assert_eq!(
            w.summary,
            "8 suspicious of 10 new followers (burst alert, open)"
        );
        let p = w.to_postable(&links, now, ahead);
        assert_eq!(p.ends_at, "2023-11-14T22:32:20.000Z");
        assert_eq!(p.starts_at, "2023-11-14T22:00:00.000Z");
        assert_eq!(p.generator_url, None);
        // Resolved: ends now.
        let mut res = open.clone();
        res.status = AlertStatus::Resolved;
        res.event_time_ms = 1_700_000_060_000;
        let p = WebhookAlert::from_alert(&res, 3).to_postable(&links, now, ahead);
        assert_eq!(p.ends_at, "2023-11-14T22:28:20.000Z");
        // A burst start that does not parse falls back to the event time.
        res.burst_start = "not a time".into();
        assert_eq!(
            WebhookAlert::from_alert(&res, 3).starts_at_ms,
            1_700_000_060_000
        );
    }
}
