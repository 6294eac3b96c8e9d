//! The admin server on a real socket: /metrics, /healthz, /readyz and /info answer over
//! HTTP, readiness follows model and assignment state, and the server stops on cancel.

use followguard::admin::{serve_admin, AdminState, Info};
use followguard::metrics::{EventOutcome, Metrics};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("admin answers");
    let code = r.status().as_u16();
    (code, r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_over_http() {
    let metrics = Metrics::new(prometheus::Registry::new(), "m-test", "abc123");
    let state = AdminState::new(
        metrics.clone(),
        Info {
            version: env!("CARGO_PKG_VERSION"),
            model_version: "m-test".into(),
            model_sha256: "abc123".into(),
            input_topic: "follows".into(),
            group_id: "g".into(),
        },
        Duration::from_secs(30),
    );
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
