//! The web view's axum routes (merged into the admin port): pages and JSON over the
//! shared evidence store, rendered outside its lock, served with a CSP that forbids
//! scripts.

use super::escape::esc;
use super::render::{
    alert_json, list_json_of, page, render_alert_with, render_list_of, siblings, Links,
    ListSnapshot, Sibling,
};
use super::Filter;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use followguard_core::evidence::{AlertEvidence, EvidenceStore};
use followguard_core::links::CampaignTable;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The evidence store shared by the consume loop (writer) and the web handlers (readers).
pub type SharedEvidence = Arc<Mutex<EvidenceStore>>;

/// Issue 21: the campaigns topic as a table (alert id → cross-instance campaign id),
/// filled by `serve`'s campaigns reader when the link stage runs; `None` otherwise.
pub type SharedCampaigns = Arc<Mutex<Option<CampaignTable>>>;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'";

fn lock(s: &SharedEvidence) -> MutexGuard<'_, EvidenceStore> {
    // The store's methods cannot leave it inconsistent, so a poisoned lock is still usable.
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The web view's routes over `store` (and the cross-instance `campaigns`).
pub fn router(store: SharedEvidence, campaigns: SharedCampaigns) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/alerts") }))
        .route("/alerts", get(list_page))
        .route("/alerts/{id}", get(alert_page))
        .route("/api/alerts", get(list_api))
        .route("/api/alerts/{id}", get(alert_api))
        .layer(Extension(campaigns))
        .with_state(store)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn error_page(status: StatusCode, msg: &str) -> Response {
    html(
        status,
        page(
            "followguard",
            &format!(
                r#"<nav><a href="/alerts">all alerts</a></nav><p>{}</p>"#,
                esc(msg)
            ),
        ),
    )
}

async fn list_page(State(s): State<SharedEvidence>, Query(f): Query<Filter>) -> Response {
    match f.parse() {
        Err(msg) => error_page(StatusCode::BAD_REQUEST, &msg),
        Ok((sev, camp)) => {
            // Issue #23: copy under the lock, render after releasing it (the consume loop
            // takes this lock on every event).
            let snap = ListSnapshot::of(&lock(&s), sev, camp);
            let body = render_list_of(&snap, sev, camp, Links::Server);
            html(StatusCode::OK, body)
        }
    }
}

/// Clones what one page needs so rendering happens outside the lock.
fn snapshot(s: &SharedEvidence, id: &str) -> Option<(AlertEvidence, Vec<Sibling>)> {
    let store = lock(s);
    let e = store.get(id)?.clone();
    let sibs = siblings(&store, id);
    Some((e, sibs))
}

/// Issue 21: `Some(campaign id if known)` when the campaigns table is kept.
fn cross_campaign(campaigns: &SharedCampaigns, id: &str) -> Option<Option<String>> {
    let table = campaigns.lock().unwrap_or_else(PoisonError::into_inner);
    table.as_ref().map(|t| t.campaign_of(id))
}

async fn alert_page(
    State(s): State<SharedEvidence>,
    Extension(campaigns): Extension<SharedCampaigns>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    match snapshot(&s, &id) {
        Some((e, sibs)) => {
            let cross = cross_campaign(&campaigns, &id);
            html(
                StatusCode::OK,
                render_alert_with(
                    &e,
                    &sibs,
                    Links::Server,
                    cross.as_ref().map(Option::as_deref),
                ),
            )
        }
        None => error_page(
            StatusCode::NOT_FOUND,
            &format!("no alert {id:?} is kept (unknown, or evicted from the bounded store)"),
        ),
    }
}

async fn list_api(State(s): State<SharedEvidence>, Query(f): Query<Filter>) -> Response {
    match f.parse() {
        Err(msg) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": msg })),
        )
            .into_response(),
        Ok((sev, camp)) => {
            let snap = ListSnapshot::of(&lock(&s), sev, camp);
            Json(list_json_of(&snap)).into_response()
        }
    }
}

async fn alert_api(
    State(s): State<SharedEvidence>,
    Extension(campaigns): Extension<SharedCampaigns>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    match snapshot(&s, &id) {
        Some((e, sibs)) => {
            let mut body = alert_json(&e, &sibs);
            // Issue 21: the campaign across instances (the alert's own `campaign_id` is
            // its instance's lockstep); null while no campaign record names the alert.
            if let Some(c) = cross_campaign(&campaigns, &id) {
                body["cross_instance_campaign_id"] = c.into();
            }
            Json(body).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "alert not found", "alert_id": id })),
        )
            .into_response(),
    }
}
