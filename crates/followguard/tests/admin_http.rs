//! The admin server on a real socket: /metrics, /healthz, /readyz and /info answer over
//! HTTP, readiness follows model and assignment state, and the server stops on cancel;
//! with an admin token the evidence pages (issue #23) and the live reload (issue 24) answer
//! 401 without it.

use followguard::admin::{serve_admin, AdminState, Info};
use followguard::metrics::{EventOutcome, Metrics};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    get_with(addr, path, None).await
}

/// GET with an optional `Authorization` header value.
async fn get_with(addr: std::net::SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("admin answers");
    let code = r.status().as_u16();
    (code, r.text().await.expect("body"))
}

fn state(metrics: &Metrics) -> std::sync::Arc<AdminState> {
    AdminState::new(
        metrics.clone(),
        Info {
            version: env!("CARGO_PKG_VERSION"),
            model_version: "m-test".into(),
            model_sha256: "abc123".into(),
            input_topic: "follows".into(),
            group_id: "g".into(),
        },
        Duration::from_secs(30),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_pages_need_the_admin_token_probes_do_not() {
    let metrics = Metrics::new(prometheus::Registry::new(), "m-test", "abc123");
    let state = state(&metrics);
    state.set_admin_token("s3cret".into());
    state.set_model_loaded();
    state.set_assigned_partitions(1);
    state.progress();
    let stop = CancellationToken::new();
    let state_for_reload = state.clone();
    let (addr, task) = serve_admin("127.0.0.1:0".parse().expect("addr"), state, stop.clone())
        .await
        .expect("bind");
    for path in [
        "/alerts",
        "/api/alerts",
        "/alerts/fga-1",
        "/api/alerts/fga-1",
        "/",
    ] {
        assert_eq!(get(addr, path).await.0, 401, "{path} without a token");
        assert_eq!(
            get_with(addr, path, Some("Bearer wrong")).await.0,
            401,
            "{path} with a wrong token"
        );
    }
    let (code, body) = get_with(addr, "/api/alerts", Some("Bearer s3cret")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"alerts\""), "{body}");
    assert_eq!(
        get_with(addr, "/alerts", Some("Bearer s3cret")).await.0,
        200
    );
    // Basic auth with the token as the password (what a browser sends): "x:s3cret".
    assert_eq!(
        get_with(addr, "/alerts", Some("Basic eDpzM2NyZXQ="))
            .await
            .0,
        200
    );
    assert_eq!(
        get_with(addr, "/alerts/none", Some("Bearer s3cret"))
            .await
            .0,
        404
    );
    for path in ["/metrics", "/healthz", "/readyz", "/info"] {
        assert_eq!(get(addr, path).await.0, 200, "{path} stays open");
    }
    // Issue 24's live reload changes what is flagged: behind the same token, and a
    // refused request queues nothing.
    let post = |auth: Option<&'static str>| {
        let mut req =
            reqwest::Client::new().post(format!("http://{addr}/admin/reload?threshold=0.7"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { req.send().await.expect("admin answers").status().as_u16() }
    };
    assert_eq!(post(None).await, 401, "reload without a token");
    assert_eq!(
        post(Some("Bearer wrong")).await,
        401,
        "reload with a wrong token"
    );
    assert_eq!(
        state_for_reload.take_reload(),
        None,
        "a refused reload is not queued"
    );
    assert_eq!(
        post(Some("Bearer s3cret")).await,
        202,
        "reload with the token"
    );
    assert_eq!(
        state_for_reload.take_reload().and_then(|r| r.threshold),
        Some(0.7),
        "the accepted reload is queued with its threshold"
    );
    // Issue #23: the image's HEALTHCHECK, `followguard healthcheck`, probes the same port
    // (a wildcard address through loopback): 0 when healthy, 1 on another status or no
    // server.
    let healthcheck = |admin: String, path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_followguard"))
            .args(["healthcheck", "--admin-addr", &admin, "--path", path])
            .output()
            .expect("run followguard healthcheck")
    };
    let wildcard = format!("0.0.0.0:{}", addr.port());
    let out = tokio::task::spawn_blocking(move || healthcheck(wildcard, "/healthz"))
        .await
        .expect("join");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("/healthz 200 ok"));
    let a = addr.to_string();
    let out = tokio::task::spawn_blocking(move || healthcheck(a, "/alerts"))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1), "401 is unhealthy: {out:?}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("admin server stops on cancel")
        .expect("task");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_followguard"))
        .args([
            "healthcheck",
            "--admin-addr",
            &addr.to_string(),
            "--timeout",
            "1s",
        ])
        .output()
        .expect("run followguard healthcheck");
    assert_eq!(out.status.code(), Some(1), "no server: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_over_http() {
    let metrics = Metrics::new(prometheus::Registry::new(), "m-test", "abc123");
    let state = state(&metrics);
    let stop = CancellationToken::new();
    let (addr, task) = serve_admin(
        "127.0.0.1:0".parse().expect("addr"),
        state.clone(),
        stop.clone(),
    )
    .await
    .expect("bind");

    assert_eq!(get(addr, "/readyz").await.0, 503);
    state.set_model_loaded();
    state.set_assigned_partitions(4);
    assert_eq!(get(addr, "/readyz").await, (200, "ready\n".into()));
    state.progress();
    assert_eq!(get(addr, "/healthz").await.0, 200);

    metrics.event(EventOutcome::Suspicious);
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("followguard_events_total{outcome=\"suspicious\"} 1"),
        "{body}"
    );
    assert!(body.contains("followguard_assigned_partitions 4"), "{body}");

    let (code, body) = get(addr, "/info").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["model_version"], "m-test");
    assert_eq!(v["model_sha256"], "abc123");

    assert_eq!(get(addr, "/nope").await.0, 404);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("admin server stops on cancel")
        .expect("task");
}

#[tokio::test]
async fn admin_port_in_use_is_a_config_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let state = AdminState::new(
        Metrics::new(prometheus::Registry::new(), "m", "s"),
        Info {
            version: "t",
            model_version: "m".into(),
            model_sha256: "s".into(),
            input_topic: "f".into(),
            group_id: "g".into(),
        },
        Duration::from_secs(30),
    );
    let err = serve_admin(addr, state, CancellationToken::new())
        .await
        .expect_err("port in use");
    assert_eq!(followguard::exit_code(&err), 64, "{err:#}");
    assert!(format!("{err:#}").contains("--admin-addr"));
}
