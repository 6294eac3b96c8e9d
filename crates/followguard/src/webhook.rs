//! Optional best-effort webhook sink: posts alerts in Alertmanager's `POST /api/v2/alerts`
//! format so they route to Slack/PagerDuty through a team's existing Alertmanager.
//! Bounded queue (new alerts are dropped and counted when full), per-request timeout,
//! retries with exponential backoff, and a drop counter when every retry failed. It never
//! holds up offset commits: Kafka topics are the durable sinks, this one is a courtesy.

use crate::config::WebhookConfig;
use crate::metrics::{Metrics, WebhookDrop};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest batch posted in one request.
const MAX_BATCH: usize = 64;
/// First retry delay; doubled per attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// The webhook's view of an alert: just what Alertmanager needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAlert {
    pub id: String,
    pub kind: String,
    pub severity: String,
    /// `open`, `update` or `resolved`; `resolved` sets `endsAt`.
    pub status: String,
    pub followee_id: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub summary: String,
}

impl WebhookAlert {
    /// The webhook's view of an alert record: it starts at the burst start (the record's
    /// event time when that does not parse) and ends at a resolved record's event time.
    pub fn from_alert(a: &followguard_core::alert::Alert) -> WebhookAlert {
        use followguard_core::alert::AlertStatus;
        WebhookAlert {
            id: a.alert_id.clone(),
            kind: a.kind.as_str().to_string(),
            severity: a.severity.as_str().to_string(),
            status: a.status.as_str().to_string(),
            followee_id: a.followee_id.clone(),
            starts_at_ms: followguard_core::time::parse_time_ms(&a.burst_start)
                .unwrap_or(a.event_time_ms),
            ends_at_ms: (a.status == AlertStatus::Resolved).then_some(a.event_time_ms),
            summary: format!(
                "{} suspicious of {} new followers ({} alert, {})",
                a.suspicious_count,
                a.new_followers,
                a.kind.as_str(),
                a.status.as_str()
            ),
        }
    }
}

/// One element of Alertmanager's `postableAlerts` array.
#[derive(Debug, Serialize, PartialEq)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl WebhookAlert {
    /// Alertmanager groups and deduplicates by label set, so the labels identify the burst
    /// (alert id) and route it (kind, severity); everything else is an annotation.
    pub fn to_postable(&self) -> PostableAlert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".into(), "FollowerPurchaseSuspected".into());
        labels.insert("source".into(), "followguard".into());
        labels.insert("alert_id".into(), self.id.clone());
        labels.insert("kind".into(), self.kind.clone());
        labels.insert("severity".into(), self.severity.clone());
        labels.insert("followee_id".into(), self.followee_id.clone());
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".into(), self.summary.clone());
        annotations.insert("status".into(), self.status.clone());
        PostableAlert {
            labels,
            annotations,
            starts_at: rfc3339(self.starts_at_ms),
            ends_at: self.ends_at_ms.map(rfc3339),
        }
    }
}

/// Handle for enqueueing alerts; the worker task does the HTTP.
pub struct Webhook {
    tx: mpsc::Sender<WebhookAlert>,
    metrics: Metrics,
}

impl Webhook {
    /// Starts the worker. It stops after the last [`Webhook`] handle is dropped and the
    /// queue is drained (or `drain_deadline` passes once the queue is closed).
    pub fn start(
        cfg: WebhookConfig,
        metrics: Metrics,
    ) -> anyhow::Result<(Webhook, JoinHandle<()>)> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("building the webhook HTTP client: {e}"))?;
        let (tx, rx) = mpsc::channel(cfg.queue);
        let worker = tokio::spawn(run_worker(client, cfg, rx, metrics.clone()));
        Ok((Webhook { tx, metrics }, worker))
    }

    /// Never waits: a full queue drops the alert (counted) instead of stalling the consumer.
    pub fn enqueue(&self, alert: WebhookAlert) {
        if self.tx.try_send(alert).is_err() {
            self.metrics.webhook_dropped(WebhookDrop::QueueFull);
        }
    }
}

async fn run_worker(
    client: reqwest::Client,
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<WebhookAlert>,
    metrics: Metrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let body: Vec<PostableAlert> = batch.iter().map(WebhookAlert::to_postable).collect();
        let n = batch.len();
        batch.clear();
        let mut delivered = false;
        for attempt in 0..cfg.retries {
            if attempt > 0 {
                tokio::time::sleep(BASE_BACKOFF * 2u32.saturating_pow(attempt - 1)).await;
            }
            match client.post(&cfg.url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) => {
                    tracing::warn!(
                        status = r.status().as_u16(),
                        attempt,
                        "webhook rejected alerts"
                    )
                }
                Err(e) => {
                    // reqwest errors may embed the URL; print only the kind.
                    let what = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect"
                    } else {
                        "request"
                    };
                    tracing::warn!(error = what, attempt, "webhook post failed")
                }
            }
        }
        for _ in 0..n {
            if delivered {
                metrics.webhook_sent();
            } else {
                metrics.webhook_dropped(WebhookDrop::Failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::StatusCode;
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
            starts_at_ms: 1_700_000_000_000 + i,
            ends_at_ms: None,
            summary: "burst of suspicious follows".into(),
        }
    }

    type Received = Arc<Mutex<Vec<serde_json::Value>>>;

    /// A real HTTP receiver on loopback answering `status` to every post.
    async fn receiver(status: StatusCode) -> (String, Received) {
        let got: Received = Arc::default();
        let app = Router::new()
            .route(
                "/api/v2/alerts",
                post(
                    move |State(g): State<Received>, Json(v): Json<serde_json::Value>| async move {
                        if let Ok(mut g) = g.lock() {
                            g.push(v);
                        }
                        status
                    },
                ),
            )
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
        }
    }

    fn counter(m: &Metrics, series: &str) -> f64 {
        m.render()
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    }

    #[tokio::test]
    async fn posts_alertmanager_format() {
        let (url, got) = receiver(StatusCode::OK).await;
        let m = Metrics::new(Registry::new(), "v", "s");
        let (wh, worker) = Webhook::start(cfg(url, 10), m.clone()).expect("start");
        wh.enqueue(alert(1));
        drop(wh);
        worker.await.expect("worker");
        let got = got.lock().expect("lock").clone();
        assert_eq!(got.len(), 1);
        let a = &got[0][0];
        assert_eq!(a["labels"]["alertname"], "FollowerPurchaseSuspected");
        assert_eq!(a["labels"]["alert_id"], "a1");
        assert_eq!(a["labels"]["severity"], "high");
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20.001Z");
        assert!(a.get("endsAt").is_none());
        assert_eq!(counter(&m, "followguard_webhook_sent_total"), 1.0);
    }

    #[tokio::test]
    async fn failing_receiver_is_retried_then_counted_as_dropped() {
        let (url, got) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
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
    }

    #[test]
    fn alert_records_map_to_open_and_resolved_webhook_alerts() {
        use followguard_core::alert::AlertStatus;
        use followguard_core::fixtures::alert as test_alert;
        // Open: starts at the burst start, no end.
        let mut open = test_alert("42", "fga-1", AlertStatus::Open, 1_700_000_600_000);
        open.burst_start = "2023-11-14T22:00:00Z".into();
        let w = WebhookAlert::from_alert(&open);
        assert_eq!((w.id.as_str(), w.status.as_str()), ("fga-1", "open"));
        assert_eq!(w.starts_at_ms, 1_699_999_200_000);
        assert_eq!(w.ends_at_ms, None);
        assert_eq!(
            w.summary,
            "8 suspicious of 10 new followers (burst alert, open)"
        );
        let p = w.to_postable();
        assert_eq!(p.ends_at, None);
        assert_eq!(p.starts_at, "2023-11-14T22:00:00.000Z");
        // Resolved: ends at the record's event time.
        let mut res = open.clone();
        res.status = AlertStatus::Resolved;
        res.event_time_ms = 1_700_000_060_000;
        let p = WebhookAlert::from_alert(&res).to_postable();
        assert_eq!(p.ends_at.as_deref(), Some("2023-11-14T22:14:20.000Z"));
        // A burst start that does not parse falls back to the event time.
        res.burst_start = "not a time".into();
        assert_eq!(
            WebhookAlert::from_alert(&res).starts_at_ms,
            1_700_000_060_000
        );
    }
}
