//! Admin HTTP: the axum [`router`] for `/metrics` (Prometheus text), `/healthz` (the consume
//! loop made progress recently), `/readyz` (model loaded and partitions assigned) and
//! `/info` (build and model identity), plus the alert evidence pages of `web`. The router is a plain value, testable without a
//! socket; [`serve_admin`] binds it.
//!
//! Issue #23: the evidence pages (`/`, `/alerts…`, `/api/alerts…`) show flagged followers'
//! ids, names and bios, so with `--admin-token-file` (or FOLLOWGUARD_ADMIN_TOKEN) they
//! answer only a request carrying the token, as `Authorization: Bearer <token>` or as the
//! password of HTTP basic auth (any user name; browsers prompt for it). `/metrics`,
//! `/healthz`, `/readyz` and `/info` stay open for probes and scrapers.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Identity shown on `/info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    pub version: &'static str,
    pub model_version: String,
    pub model_sha256: String,
    pub input_topic: String,
    pub group_id: String,
}

/// Shared, lock-light state the service updates and the admin endpoints read.
pub struct AdminState {
    pub metrics: Metrics,
    pub info: Info,
    model_loaded: AtomicBool,
    assigned_partitions: AtomicUsize,
    /// Set when shutdown starts: a draining instance should get no new traffic.
    draining: AtomicBool,
    /// Issue 21: partitions' state is being restored from the changelog.
    restoring: AtomicBool,
    last_progress: Mutex<Instant>,
    stale_after: Duration,
    /// Alert evidence for the web view (`web`): the consume loop writes, pages read.
    pub evidence: crate::web::SharedEvidence,
    /// Issue 21: the campaigns topic as a table, with the link stage (`web`).
    pub campaigns: crate::web::SharedCampaigns,
    /// Issue #23: the token the evidence pages require (none: open).
    admin_token: std::sync::OnceLock<String>,
    /// Issue 24: a live reload asked for (`POST /admin/reload` or SIGHUP), with an
    /// optional operating-threshold override; the consume loop takes it between chunks.
    reload: Mutex<Option<Reload>>,
}

/// Issue 24: a requested live reload of the model file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reload {
    /// Operating threshold to use instead of the model file's.
    pub threshold: Option<f32>,
    /// Detector trigger thresholds to change (`Detector::RETUNABLE` names).
    pub detector: Vec<(&'static str, f32)>,
}

impl AdminState {
    pub fn new(metrics: Metrics, info: Info, stale_after: Duration) -> Arc<AdminState> {
        Arc::new(AdminState {
            metrics,
            info,
            model_loaded: AtomicBool::new(false),
            assigned_partitions: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            restoring: AtomicBool::new(false),
            last_progress: Mutex::new(Instant::now()),
            stale_after,
            evidence: Arc::default(),
            campaigns: Arc::default(),
            admin_token: std::sync::OnceLock::new(),
            reload: Mutex::new(None),
        })
    }

    /// Requires `token` on the evidence pages from now on (set once, at start).
    pub fn set_admin_token(&self, token: String) {
        let _ = self.admin_token.set(token);
    }

    /// Whether a request's `Authorization` header carries the admin token (always true
    /// when none is set).
    fn authorised(&self, authorization: Option<&str>) -> bool {
        let Some(want) = self.admin_token.get() else {
            return true;
        };
        let given = match authorization {
            Some(h) if h.starts_with("Bearer ") => h["Bearer ".len()..].trim().to_string(),
            Some(h) if h.starts_with("Basic ") => {
                basic_password(h["Basic ".len()..].trim()).unwrap_or_default()
            }
            _ => return false,
        };
        constant_time_eq(given.as_bytes(), want.as_bytes())
    }

    /// Issue 24: asks the consume loop to reload the model file (a later request
    /// replaces an earlier one not yet taken).
    pub fn request_reload(&self, r: Reload) {
        if let Ok(mut slot) = self.reload.lock() {
            *slot = Some(r);
        }
    }

    /// The pending reload request, if any (taken: the loop acts on it once).
    pub fn take_reload(&self) -> Option<Reload> {
        self.reload.lock().ok().and_then(|mut s| s.take())
    }

    pub fn set_model_loaded(&self) {
        self.model_loaded.store(true, Ordering::Release);
    }

    pub fn set_assigned_partitions(&self, n: usize) {
        self.assigned_partitions.store(n, Ordering::Release);
        self.metrics.set_assigned_partitions(n);
    }

    /// Issue 21: not ready while assigned partitions' state is restored.
    pub fn set_restoring(&self, on: bool) {
        self.restoring.store(on, Ordering::Release);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Called by the consume loop on every iteration, including idle ones.
    pub fn progress(&self) {
        let now = Instant::now();
        if let Ok(mut p) = self.last_progress.lock() {
            *p = now;
        }
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.metrics.progress(unix);
    }

    /// Why the instance is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.model_loaded.load(Ordering::Acquire) {
            Some("model not loaded")
        } else if self.draining.load(Ordering::Acquire) {
            Some("shutting down")
        } else if self.restoring.load(Ordering::Acquire) {
            Some("restoring state from the changelog")
        } else if self.assigned_partitions.load(Ordering::Acquire) == 0 {
            Some("no partitions assigned")
        } else {
            None
        }
    }

    /// Time since the loop last made progress, if that is longer than allowed.
    pub fn stalled_for(&self) -> Option<Duration> {
        let last = self.last_progress.lock().map(|p| *p).ok()?;
        let idle = Instant::now().saturating_duration_since(last);
        (idle > self.stale_after).then_some(idle)
    }
}

/// The password of a basic-auth credential (`base64(user:password)`).
fn basic_password(b64: &str) -> Option<String> {
    let bytes = base64_decode(b64)?;
    let s = String::from_utf8(bytes).ok()?;
    s.split_once(':').map(|(_, p)| p.to_string())
}

/// Standard base64 (with or without padding); `None` on any other byte.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Refuses a request to the evidence pages without the admin token (401 with a basic-auth
/// challenge, so a browser asks for it).
async fn require_token(
    State(s): State<Arc<AdminState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if s.authorised(auth) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Basic realm="followguard evidence", charset="UTF-8""#,
            )],
            "the evidence pages and /admin/reload need the admin token (Authorization: Bearer <token>)\n",
        )
            .into_response()
    }
}

/// The admin routes, bound to `state`.
pub fn router(state: Arc<AdminState>) -> Router {
    let web = crate::web::router(state.evidence.clone(), state.campaigns.clone()).layer(
        axum::middleware::from_fn_with_state(state.clone(), require_token),
    );
    // The reload endpoint changes what is flagged: behind the same token as the pages.
    let admin = Router::new()
        .route("/admin/reload", axum::routing::post(reload))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state.clone());
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/info", get(info))
        .with_state(state)
        .merge(web)
        .merge(admin)
}

/// `POST /admin/reload[?threshold=0.6&z=6…]` (issue 24): reload the model file, and
/// optionally override its operating threshold and detector trigger thresholds
/// (`Detector::RETUNABLE`), without a restart; answered at once
/// (202), applied by the consume loop before its next chunk. The outcome shows in
/// `followguard_model_reloads_total{result}` and `followguard_model_info`.
async fn reload(
    State(s): State<Arc<AdminState>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let threshold = match q.get("threshold").map(|t| t.parse::<f32>()) {
        None => None,
        Some(Ok(t)) if (0.0..=1.0).contains(&t) => Some(t),
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "threshold must be a number in [0, 1]\n",
            )
                .into_response()
        }
    };
    let mut detector = Vec::new();
    for (k, v) in &q {
        if k == "threshold" {
            continue;
        }
        let name = followguard_core::detector::Detector::RETUNABLE
            .iter()
            .find(|n| **n == k.as_str());
        match (name, v.parse::<f32>()) {
            (Some(n), Ok(v)) if v.is_finite() && v >= 0.0 => detector.push((*n, v)),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{k}: not a non-negative number for one of threshold, {}\n",
                        followguard_core::detector::Detector::RETUNABLE.join(", ")
                    ),
                )
                    .into_response()
            }
        }
    }
    s.request_reload(Reload {
        threshold,
        detector,
    });
    (StatusCode::ACCEPTED, "reload requested\n").into_response()
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<Arc<AdminState>>) -> Response {
    match s.stalled_for() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(d) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "consume loop made no progress for {:.1}s\n",
                d.as_secs_f64()
            ),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    match s.not_ready_reason() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn info(State(s): State<Arc<AdminState>>) -> Json<Info> {
    Json(s.info.clone())
}

/// Binds `addr` and serves the admin router until `shutdown` resolves. Returns the bound
/// address (useful with port 0) once listening.
pub async fn serve_admin(
    addr: SocketAddr,
    state: Arc<AdminState>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::ConfigError(format!("--admin-addr: cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let app = router(state);
    let handle = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((bound, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use prometheus::Registry;
    use tower::ServiceExt;

    fn state() -> Arc<AdminState> {
        let metrics = Metrics::new(Registry::new(), "m1", "deadbeef");
        let info = Info {
            version: env!("CARGO_PKG_VERSION"),
            model_version: "m1".into(),
            model_sha256: "deadbeef".into(),
            input_topic: "follows".into(),
            group_id: "g".into(),
        };
        AdminState::new(metrics, info, Duration::from_secs(30))
    }

    async fn get(s: &Arc<AdminState>, path: &str) -> (StatusCode, String) {
        let resp = router(s.clone())
            .oneshot(
                Request::builder()
                    .uri(path)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible router");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_needs_model_and_partitions() {
        let s = state();
        let (code, body) = get(&s, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("model not loaded"));
        s.set_model_loaded();
        let (code, body) = get(&s, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no partitions"));
        s.set_assigned_partitions(2);
        assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);
        // Issue 21: not ready while restoring state from the changelog.
        s.set_restoring(true);
        let (code, body) = get(&s, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("restoring"), "{body}");
        s.set_restoring(false);
        assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);
        s.set_draining();
        assert_eq!(get(&s, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn healthz_fails_when_loop_stalls() {
        let metrics = Metrics::new(Registry::new(), "m1", "x");
        let s = AdminState::new(metrics, state().info.clone(), Duration::from_millis(100));
        s.progress();
        assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (code, body) = get(&s, "/healthz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no progress"), "{body}");
        s.progress();
        assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_and_info_render() {
        let s = state();
        s.set_assigned_partitions(3);
        let (code, body) = get(&s, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("followguard_assigned_partitions 3"), "{body}");
        let (code, body) = get(&s, "/info").await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["model_sha256"], "deadbeef");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }
}
