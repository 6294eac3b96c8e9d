//! The moderator web view of alerts: server-side rendered HTML with inline SVG charts
//! (no scripts, no external assets, works offline) and JSON equivalents, as an axum
//! [`router`] merged into the admin port; [`write_report`] writes the same pages to a
//! folder for `replay --report`.
//!
//! Pages: `/alerts` (newest first, filterable by `severity` and `campaign`) and
//! `/alerts/{id}` (the follower-factory chart, new-follower rate against the baseline,
//! creation-date histogram, top reasons, flagged followers, links to the campaign's other
//! alerts). JSON: `/api/alerts`, `/api/alerts/{id}`.
//!
//! Every account-controlled string (ids, screen names, descriptions) goes through
//! [`esc`] (HTML escaping plus visible bidi/control characters) inside a `<bdi>`; pages
//! are served with a CSP that forbids scripts, as a second line of defence.

use anyhow::Context as _;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use followguard_core::age::AGE_BINS;
use followguard_core::alert::{AlertStatus, Severity};
use followguard_core::evidence::{AlertEvidence, EvidenceStore, FollowerPoint};
use followguard_core::time::format_rfc3339_ms;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The evidence store shared by the consume loop (writer) and the web handlers (readers).
pub type SharedEvidence = Arc<Mutex<EvidenceStore>>;

/// Flagged followers listed on an alert page (the JSON has all kept points).
pub const MAX_TABLE_ROWS: usize = 300;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'";

/// Labels of the creation-date histogram bins (account age at the follow), matching
/// [`followguard_core::age::AGE_BIN_UPPER_DAYS`].
pub const AGE_BIN_LABELS: [&str; AGE_BINS] = [
    "<14 d",
    "14–30 d",
    "1–2 mo",
    "2–3 mo",
    "3–6 mo",
    "6–12 mo",
    "1–1.5 y",
    "1.5–2 y",
    "2–3 y",
    "3–4 y",
    "4–6 y",
    "≥6 y",
];

// ---------------------------------------------------------------------------------------
// Escaping

/// Escapes `s` for HTML text and double- or single-quoted attributes. Bidirectional
/// overrides/isolates and other control characters are replaced by a visible `[U+XXXX]`
/// so an account name cannot reorder the text around it or hide characters.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_invisible_control(c) => out.push_str(&format!("[U+{:04X}]", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn is_invisible_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// An account-controlled string as inline HTML: escaped and bidi-isolated.
fn acct(s: &str) -> String {
    format!("<bdi>{}</bdi>", esc(s))
}

/// Characters safe in a file name / URL path segment; anything else is replaced.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Percent-encodes a query value.
fn url_q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Links: the live server and the offline report use different URLs for the same pages.

/// Where links point: the admin server's routes, or files of a `--report` folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Server,
    Report,
}

impl Links {
    fn alert(self, id: &str) -> String {
        match self {
            Links::Server => format!("/alerts/{}", url_q(id)),
            Links::Report => format!("{}.html", safe_name(id)),
        }
    }
    fn list(self) -> &'static str {
        match self {
            Links::Server => "/alerts",
            Links::Report => "index.html",
        }
    }
    fn campaign(self, cid: &str) -> String {
        match self {
            Links::Server => format!("/alerts?campaign={}", url_q(cid)),
            Links::Report => format!("campaign-{}.html", safe_name(cid)),
        }
    }
    fn severity(self, s: Severity) -> String {
        match self {
            Links::Server => format!("/alerts?severity={}", s.as_str()),
            Links::Report => format!("severity-{}.html", s.as_str()),
        }
    }
}

/// `/alerts` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Filter {
    pub severity: Option<String>,
    pub campaign: Option<String>,
}

impl Filter {
    /// Validated form: `None` fields mean "any". An unknown severity is an error.
    fn parse(&self) -> Result<(Option<Severity>, Option<&str>), String> {
        let sev = match self.severity.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                Severity::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        format!("unknown severity {s:?}; use one of low, medium, high, critical")
                    })?,
            ),
        };
        let campaign = self
            .campaign
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        Ok((sev, campaign))
    }
}

fn matches(e: &AlertEvidence, sev: Option<Severity>, campaign: Option<&str>) -> bool {
    sev.is_none_or(|s| e.alert.severity == s)
        && campaign.is_none_or(|c| e.alert.campaign_id.as_deref() == Some(c))
}

// ---------------------------------------------------------------------------------------
// Formatting helpers

fn date(s: i64) -> String {
    let t = format_rfc3339_ms(s.saturating_mul(1000));
    t.get(..10).unwrap_or("?").to_string()
}

fn datetime(ms: i64) -> String {
    let t = format_rfc3339_ms(ms);
    format!(
        "{} {}",
        t.get(..10).unwrap_or("?"),
        t.get(11..16).unwrap_or("")
    )
}

fn pct(x: f32) -> String {
    format!("{:.0}%", x * 100.0)
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:0 24px 40px;color:#1d2330;background:#fff}}
h1{{font-size:20px;margin:18px 0 6px}} h2{{font-size:16px;margin:26px 0 6px}}
table{{border-collapse:collapse;margin:6px 0}} td,th{{padding:3px 9px;border-bottom:1px solid #e3e6ec;text-align:left;vertical-align:top}}
th{{background:#f4f6f9;font-weight:600}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.sev{{padding:1px 7px;border-radius:9px;font-size:12px;color:#fff}}
.sev-low{{background:#6b7a90}} .sev-medium{{background:#c98a00}} .sev-high{{background:#d9480f}} .sev-critical{{background:#a51111}}
.st-resolved{{color:#5b6575}} .st-open{{color:#b42318;font-weight:600}}
dl{{display:grid;grid-template-columns:max-content auto;gap:2px 14px}} dt{{color:#5b6575}} dd{{margin:0}}
.note{{color:#5b6575;font-size:12px}} svg{{background:#fbfcfd;border:1px solid #e3e6ec}}
nav a{{margin-right:12px}} form{{margin:8px 0}} code,bdi.id{{font-family:ui-monospace,monospace;font-size:12px}}
</style></head><body>
{body}
</body></html>
"#,
        title = esc(title)
    )
}

/// What a moderator needs from the lifecycle: still going, or over. (`update` records
/// are open alerts with new figures.)
fn state(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Open | AlertStatus::Update => "open",
        AlertStatus::Resolved => "resolved",
    }
}

fn severity_badge(s: Severity) -> String {
    format!(r#"<span class="sev sev-{0}">{0}</span>"#, s.as_str())
}

// ---------------------------------------------------------------------------------------
// /alerts

/// The alerts list page (newest first), restricted by the filter.
pub fn render_list(
    store: &EvidenceStore,
    sev: Option<Severity>,
    campaign: Option<&str>,
    links: Links,
) -> String {
    let all = store.alerts_newest_first();
    let shown: Vec<&AlertEvidence> = all
        .iter()
        .copied()
        .filter(|e| matches(e, sev, campaign))
        .collect();
    let mut b = String::new();
    b.push_str(&format!(
        r#"<nav><a href="{}">all alerts</a></nav><h1>followguard — alerts</h1>"#,
        links.list()
    ));
    match links {
        Links::Server => {
            b.push_str(r#"<form method="get" action="/alerts">severity <select name="severity"><option value="">any</option>"#);
            for s in Severity::ALL {
                b.push_str(&format!(
                    r#"<option value="{0}"{1}>{0}</option>"#,
                    s.as_str(),
                    if sev == Some(s) { " selected" } else { "" }
                ));
            }
            b.push_str(&format!(
                r#"</select> campaign <input name="campaign" size="40" value="{}"> <button>filter</button></form>"#,
                esc(campaign.unwrap_or(""))
            ));
        }
        Links::Report => {
            b.push_str("<p>severity: ");
            for s in Severity::ALL {
                b.push_str(&format!(
                    r#"<a href="{}">{}</a> "#,
                    links.severity(s),
                    s.as_str()
                ));
            }
            b.push_str("</p>");
        }
    }
    let mut filters = Vec::new();
    if let Some(s) = sev {
        filters.push(format!("severity {}", s.as_str()));
    }
    if let Some(c) = campaign {
        filters.push(format!("campaign {}", acct(c)));
    }
    b.push_str(&format!(
        r#"<p class="note" id="count" data-shown="{}">{} of {} alerts kept{}{}. Bounded store: at most {} alerts; {} older ones evicted.</p>"#,
        shown.len(),
        shown.len(),
        all.len(),
        if filters.is_empty() { "" } else { " matching " },
        filters.join(", "),
        store.config().max_alerts,
        store.evicted()
    ));
    b.push_str(r#"<table id="alerts"><thead><tr><th>opened (UTC)</th><th>status</th><th>severity</th><th>kind</th><th>followee</th><th>new followers (peak)</th><th>suspicious</th><th>share</th><th>campaign</th><th></th></tr></thead><tbody>"#);
    for e in &shown {
        let (a, pk) = (&e.alert, &e.peak);
        let camp = match &a.campaign_id {
            Some(c) => format!(
                r#"<a href="{}">{}</a> ({} accounts)"#,
                esc(&links.campaign(c)),
                acct(c),
                a.campaign_followees
            ),
            None => "—".to_string(),
        };
        b.push_str(&format!(
            r#"<tr class="alert" data-alert-id="{id}" data-followee="{fol}"><td>{opened}</td><td class="st-{st}">{st}</td><td>{sev}</td><td>{kind}</td><td><bdi class="id">{fol}</bdi></td><td class="n">{nf}</td><td class="n">{sc}</td><td class="n">{share}</td><td>{camp}</td><td><a href="{href}">evidence</a></td></tr>"#,
            id = esc(&a.alert_id),
            fol = esc(&a.followee_id),
            opened = datetime(e.opened_at_ms),
            st = state(a.status),
            sev = severity_badge(a.severity),
            kind = a.kind.as_str(),
            nf = pk.new_followers,
            sc = pk.suspicious_count,
            share = pct(pk.suspicious_share),
            href = esc(&links.alert(&a.alert_id)),
        ));
    }
    b.push_str("</tbody></table>");
    page("followguard alerts", &b)
}

// ---------------------------------------------------------------------------------------
// /alerts/{id}

/// Another alert of the same campaign, as linked from an evidence page.
#[derive(Debug, Clone, PartialEq)]
pub struct Sibling {
    pub alert_id: String,
    pub followee_id: String,
    pub severity: Severity,
    pub status: &'static str,
}

/// The campaign siblings of `alert_id`, as page links.
pub fn siblings(store: &EvidenceStore, alert_id: &str) -> Vec<Sibling> {
    store
        .campaign_siblings(alert_id)
        .into_iter()
        .map(|e| Sibling {
            alert_id: e.alert.alert_id.clone(),
            followee_id: e.alert.followee_id.clone(),
            severity: e.alert.severity,
            status: state(e.alert.status),
        })
        .collect()
}

/// The evidence page of one alert.
pub fn render_alert(e: &AlertEvidence, sibs: &[Sibling], links: Links) -> String {
    let (a, pk) = (&e.alert, &e.peak);
    let mut b = String::new();
    b.push_str(&format!(
        r#"<nav><a href="{}">← all alerts</a></nav><h1>Alert <bdi class="id">{}</bdi> {} <span class="st-{st}">{st}</span></h1>"#,
        links.list(),
        esc(&a.alert_id),
        severity_badge(a.severity),
        st = state(a.status)
    ));
    b.push_str("<dl>");
    let mut row = |k: &str, v: String| b.push_str(&format!("<dt>{k}</dt><dd>{v}</dd>"));
    row(
        "followee",
        format!(
            r#"<bdi class="id" id="followee">{}</bdi>"#,
            esc(&a.followee_id)
        ),
    );
    row("kind", a.kind.as_str().to_string());
    row("opened", format!("{} UTC", datetime(e.opened_at_ms)));
    row("burst start", esc(&a.burst_start));
    row(
        "last record",
        format!("{} ({})", esc(&a.event_time), a.status.as_str()),
    );
    row(
        "peak record",
        format!(
            "{} ({}), window {} → {}",
            esc(&pk.event_time),
            pk.status.as_str(),
            esc(&pk.window_start),
            esc(&pk.window_end)
        ),
    );
    row("new followers", pk.new_followers.to_string());
    row(
        "suspicious",
        format!(
            "{} ({} of new followers; organic traffic would explain {:.1})",
            pk.suspicious_count,
            pct(pk.suspicious_share),
            pk.expected_suspicious
        ),
    );
    row("mean score of flagged", format!("{:.2}", pk.mean_score));
    row(
        "follow rate",
        format!(
            "z = {:.1} against a baseline of {:.1}/h",
            pk.rate_z, pk.baseline_rate_per_hour
        ),
    );
    row(
        "creation concentration",
        format!(
            "{} of recent followers in one account-age bin",
            pct(pk.creation_concentration)
        ),
    );
    row(
        "campaign",
        match &a.campaign_id {
            Some(c) => format!(
                r#"<a href="{}">{}</a> — {} accounts"#,
                esc(&links.campaign(c)),
                acct(c),
                a.campaign_followees
            ),
            None => "not linked to other alerts".to_string(),
        },
    );
    row(
        "versions",
        format!(
            "model {} · detector {}",
            acct(&a.model_version),
            esc(a.detector_version)
        ),
    );
    b.push_str("</dl>");

    if !sibs.is_empty() {
        b.push_str(r#"<h2>Other alerts of this campaign</h2><ul id="campaign-alerts">"#);
        for s in sibs {
            b.push_str(&format!(
                r#"<li><a class="sibling" href="{}"><bdi class="id">{}</bdi></a> — followee <bdi class="id">{}</bdi> {} {}</li>"#,
                esc(&links.alert(&s.alert_id)),
                esc(&s.alert_id),
                esc(&s.followee_id),
                severity_badge(s.severity),
                s.status
            ));
        }
        b.push_str("</ul>");
    }

    b.push_str("<h2>Follower factory</h2>");
    b.push_str(r#"<p class="note">Each dot is a follower, in the order they followed (x), at their account's creation date (y). Organic followers scatter; a bought batch is a dense horizontal band of accounts created together. Red = flagged by the model.</p>"#);
    b.push_str(&factory_svg(e));
    b.push_str(&format!(
        r#"<p class="note">{} of {} follows shown{}. History before the alert comes from the service's last follows (bounded), so quiet accounts show little of it.</p>"#,
        e.followers.len(),
        e.follows_seen,
        if e.stride > 1 {
            format!(" (an even sample: 1 in {} follows)", e.stride)
        } else {
            String::new()
        }
    ));

    b.push_str("<h2>New-follower rate against baseline</h2>");
    b.push_str(&rate_svg(e));
    b.push_str(r#"<table id="records"><thead><tr><th>record (UTC)</th><th>status</th><th>new followers</th><th>suspicious</th><th>baseline /h</th><th>rate z</th></tr></thead><tbody>"#);
    for r in &e.records {
        b.push_str(&format!(
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{:.1}</td><td class="n">{:.1}</td></tr>"#,
            datetime(r.event_time_ms),
            r.status.as_str(),
            r.new_followers,
            r.suspicious_count,
            r.baseline_rate_per_hour,
            r.rate_z
        ));
    }
    b.push_str("</tbody></table>");

    b.push_str("<h2>Account age of recent followers (peak record)</h2>");
    b.push_str(&histogram_svg(&pk.creation_histogram));

    b.push_str(r#"<h2>Top reasons</h2><table id="reasons"><thead><tr><th>reason</th><th>flagged followers</th></tr></thead><tbody>"#);
    for r in &pk.top_reasons {
        b.push_str(&format!(
            r#"<tr><td><code>{}</code></td><td class="n">{}</td></tr>"#,
            esc(r.code),
            r.count
        ));
    }
    b.push_str("</tbody></table>");

    let flagged: Vec<&FollowerPoint> = e.followers.iter().filter(|p| p.flagged).collect();
    b.push_str(&format!(
        r#"<h2>Flagged followers</h2><p class="note">{} flagged in the kept sample{}.</p>"#,
        flagged.len(),
        if flagged.len() > MAX_TABLE_ROWS {
            format!("; the first {MAX_TABLE_ROWS} are listed (all are in the JSON)")
        } else {
            String::new()
        }
    ));
    b.push_str(r#"<table id="flagged"><thead><tr><th>screen name</th><th>id</th><th>description</th><th>created</th><th>followed (UTC)</th><th>score</th><th>reasons</th></tr></thead><tbody>"#);
    for p in flagged.iter().take(MAX_TABLE_ROWS) {
        let reasons: Vec<String> = p
            .reasons
            .iter()
            .map(|(c, v)| format!("<code>{}</code> {:+.2}", esc(c), v))
            .collect();
        b.push_str(&format!(
            r#"<tr class="follower"><td class="screen-name">{}</td><td><bdi class="id">{}</bdi></td><td class="desc">{}</td><td>{}</td><td>{}</td><td class="n">{:.2}</td><td>{}</td></tr>"#,
            acct(p.screen_name()),
            esc(p.follower_id()),
            acct(p.description()),
            date(p.created_at_s),
            datetime(p.event_time_ms),
            p.score,
            reasons.join("<br>")
        ));
    }
    b.push_str("</tbody></table>");
    page(&format!("alert {}", a.alert_id), &b)
}

// ---------------------------------------------------------------------------------------
// Charts (inline SVG)

const W: f64 = 960.0;
const ML: f64 = 86.0;
const MR: f64 = 16.0;
const MT: f64 = 16.0;
const MB: f64 = 40.0;

/// Value at quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[i64], q: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Follow order (x) against account creation date (y); flagged followers red, the
/// flagged followers' creation-date core (10th–90th percentile) shaded as the batch.
fn factory_svg(e: &AlertEvidence) -> String {
    let h = 380.0;
    let (pw, ph) = (W - ML - MR, h - MT - MB);
    let pts = &e.followers;
    let n = pts.len();
    let mut flagged_created: Vec<i64> = pts
        .iter()
        .filter(|p| p.flagged)
        .map(|p| p.created_at_s)
        .collect();
    flagged_created.sort_unstable();
    let (mut lo, mut hi) = pts.iter().fold((i64::MAX, i64::MIN), |(l, u), p| {
        (l.min(p.created_at_s), u.max(p.created_at_s))
    });
    if n == 0 {
        (lo, hi) = (0, 1);
    }
    // f64 and saturating arithmetic: creation dates come from input and may be extreme.
    let span = (hi.saturating_sub(lo)).max(2 * 86_400);
    let pad = span / 25;
    let (lo, hi) = (lo.saturating_sub(pad), hi.saturating_add(pad));
    let yr = (hi as f64 - lo as f64).max(1.0);
    let y = |c: i64| MT + ph * (1.0 - (c as f64 - lo as f64) / yr);
    let x = |i: usize| ML + pw * (i as f64 + 0.5) / (n.max(1) as f64);
    let mut s = format!(
        r#"<svg id="factory" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" data-points="{n}" data-flagged="{}" data-y-span-days="{:.0}" role="img" aria-label="follower factory chart">"#,
        flagged_created.len(),
        yr / 86_400.0
    );
    // Y ticks: creation dates.
    for k in 0..=5 {
        let c = (lo as f64 + yr * f64::from(k) / 5.0) as i64;
        let yy = y(c);
        s.push_str(&format!(
            r##"<line x1="{ML}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e6ec"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6575">{}</text>"##,
            ML + pw,
            ML - 6.0,
            yy + 4.0,
            date(c)
        ));
    }
    if flagged_created.len() >= 5 {
        let (b0, b1) = (
            quantile(&flagged_created, 0.1),
            quantile(&flagged_created, 0.9),
        );
        let (y0, y1) = (y(b1), y(b0));
        s.push_str(&format!(
            r##"<rect class="batch-band" x="{ML}" y="{y0:.1}" width="{pw:.1}" height="{:.1}" fill="#d62728" fill-opacity="0.10" data-from="{}" data-to="{}" data-span-days="{:.0}"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="#a51111" stroke="#fff" stroke-width="3" paint-order="stroke">bought batch: {} flagged accounts created {} … {}</text>"##,
            (y1 - y0).max(1.0),
            date(b0),
            date(b1),
            (b1 as f64 - b0 as f64) / 86_400.0,
            ML + pw - 6.0,
            (y0 - 5.0).max(MT + 12.0),
            flagged_created.len(),
            date(b0),
            date(b1)
        ));
    }
    let oi = e.open_index();
    if oi < n {
        let xo = ML + pw * oi as f64 / n as f64;
        s.push_str(&format!(
            r##"<line id="opened-at" x1="{xo:.1}" x2="{xo:.1}" y1="{MT}" y2="{:.1}" stroke="#1d2330" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#1d2330">alert opened</text>"##,
            MT + ph,
            xo + 4.0,
            MT + 11.0
        ));
    }
    // Organic first, flagged on top.
    for pass in [false, true] {
        for (i, p) in pts.iter().enumerate().filter(|(_, p)| p.flagged == pass) {
            let (class, fill, r) = if pass {
                ("flagged", "#d62728", 2.6)
            } else {
                ("organic", "#7d8799", 2.2)
            };
            s.push_str(&format!(
                r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}" fill-opacity="0.75"><title>{} · created {} · score {:.2}</title></circle>"#,
                x(i),
                y(p.created_at_s),
                if p.flagged {
                    esc(p.screen_name())
                } else {
                    "organic follower".to_string()
                },
                date(p.created_at_s),
                p.score
            ));
        }
    }
    s.push_str(&format!(
        r##"<line x1="{ML}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#1d2330"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#1d2330">followers in follow order →  (account creation date ↑)</text></svg>"##,
        ML + pw,
        MT + ph,
        MT + ph,
        ML + pw / 2.0,
        h - 10.0
    ));
    s
}

/// Follows per hour in time buckets (flagged share in red) against the baseline.
fn rate_svg(e: &AlertEvidence) -> String {
    let h = 240.0;
    let (pw, ph) = (W - ML - MR, h - MT - MB);
    let pts = &e.followers;
    let (t0, t1) = pts.iter().fold((i64::MAX, i64::MIN), |(l, u), p| {
        (l.min(p.event_time_ms), u.max(p.event_time_ms))
    });
    if pts.is_empty() {
        return r#"<p class="note" id="rate">No follows kept for this alert.</p>"#.to_string();
    }
    const BUCKETS_MS: [i64; 11] = [
        60_000,
        300_000,
        600_000,
        900_000,
        1_800_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
    ];
    let span = t1.saturating_sub(t0).max(1);
    let bucket = BUCKETS_MS
        .iter()
        .copied()
        .find(|b| span / b < 60)
        .unwrap_or(604_800_000);
    let start = t0.saturating_sub(t0.rem_euclid(bucket));
    let nb = usize::try_from(t1.saturating_sub(start) / bucket + 1)
        .unwrap_or(1)
        .clamp(1, 200);
    let mut total = vec![0f64; nb];
    let mut flagged = vec![0f64; nb];
    for p in pts {
        let i = usize::try_from(p.event_time_ms.saturating_sub(start) / bucket)
            .unwrap_or(0)
            .min(nb - 1);
        total[i] += f64::from(p.weight);
        if p.flagged {
            flagged[i] += f64::from(p.weight);
        }
    }
    let per_hour = 3_600_000.0 / bucket as f64;
    let baseline = e
        .records
        .first()
        .map_or(e.alert.baseline_rate_per_hour, |r| r.baseline_rate_per_hour);
    let baseline = f64::from(baseline);
    let ymax = total
        .iter()
        .map(|c| c * per_hour)
        .fold(baseline, f64::max)
        .max(1.0)
        * 1.15;
    let y = |v: f64| MT + ph * (1.0 - v / ymax);
    let bw = pw / nb as f64;
    let mut s = format!(
        r#"<svg id="rate" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" data-bucket-ms="{bucket}" data-baseline="{baseline:.2}" role="img" aria-label="new-follower rate against baseline">"#
    );
    for k in 0..=4 {
        let v = ymax * f64::from(k) / 4.0;
        s.push_str(&format!(
            r##"<line x1="{ML}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e3e6ec"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6575">{v:.0}/h</text>"##,
            ML + pw,
            y(v),
            y(v),
            ML - 6.0,
            y(v) + 4.0
        ));
    }
    for i in 0..nb {
        let xx = ML + bw * i as f64;
        let (tv, fv) = (total[i] * per_hour, flagged[i] * per_hour);
        if tv > 0.0 {
            s.push_str(&format!(
                r##"<rect x="{xx:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#9aa4b5"><title>{}: {tv:.0} follows/h, {fv:.0} flagged</title></rect>"##,
                y(tv),
                (bw - 1.0).max(0.5),
                MT + ph - y(tv),
                datetime(start.saturating_add(bucket.saturating_mul(i as i64)))
            ));
        }
        if fv > 0.0 {
            s.push_str(&format!(
                r##"<rect class="flagged-rate" x="{xx:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#d62728"/>"##,
                y(fv),
                (bw - 1.0).max(0.5),
                MT + ph - y(fv)
            ));
        }
    }
    let yb = y(baseline);
    s.push_str(&format!(
        r##"<line class="baseline" x1="{ML}" x2="{:.1}" y1="{yb:.1}" y2="{yb:.1}" stroke="#1f5fbf" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#1f5fbf" stroke="#fff" stroke-width="3" paint-order="stroke">baseline {baseline:.1}/h</text>"##,
        ML + pw,
        ML + pw - 4.0,
        yb - 4.0
    ));
    s.push_str(&format!(
        r##"<text x="{ML}" y="{:.1}" font-size="11" fill="#5b6575">{}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6575">{} UTC · bars of {} min (grey all follows, red flagged)</text></svg>"##,
        h - 10.0,
        datetime(start),
        ML + pw,
        h - 10.0,
        datetime(start.saturating_add(bucket.saturating_mul(nb as i64))),
        bucket / 60_000
    ));
    s
}

/// Bars of the creation-date histogram (account age at follow time).
fn histogram_svg(hist: &[u16; AGE_BINS]) -> String {
    let h = 200.0;
    let (pw, ph) = (W - ML - MR, h - MT - MB);
    let max = f64::from(hist.iter().copied().max().unwrap_or(0).max(1));
    let bw = pw / AGE_BINS as f64;
    let mut s = format!(
        r#"<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="creation-date histogram">"#
    );
    for (i, (&c, label)) in hist.iter().zip(AGE_BIN_LABELS).enumerate() {
        let bh = ph * f64::from(c) / max;
        let xx = ML + bw * i as f64;
        s.push_str(&format!(
            r##"<rect class="bin" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#5f7ea8" data-count="{c}"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#1d2330">{c}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#5b6575">{label}</text>"##,
            xx + 3.0,
            MT + ph - bh,
            bw - 6.0,
            xx + bw / 2.0,
            (MT + ph - bh - 3.0).max(MT + 9.0),
            xx + bw / 2.0,
            h - 22.0
        ));
    }
    s.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#1d2330">account age at follow time</text></svg>"##,
        ML + pw / 2.0,
        h - 4.0
    ));
    s
}

// ---------------------------------------------------------------------------------------
// JSON

/// `/api/alerts` body: latest records, newest first, with the evidence summary.
pub fn list_json(
    store: &EvidenceStore,
    sev: Option<Severity>,
    campaign: Option<&str>,
) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = store
        .alerts_newest_first()
        .into_iter()
        .filter(|e| matches(e, sev, campaign))
        .map(|e| {
            serde_json::json!({
                "alert": e.alert,
                "opened_at_ms": e.opened_at_ms,
                "follows_seen": e.follows_seen,
                "followers_kept": e.followers.len(),
            })
        })
        .collect();
    serde_json::json!({
        "alerts": alerts,
        "kept": store.len(),
        "evicted": store.evicted(),
        "max_alerts": store.config().max_alerts,
    })
}

/// `/api/alerts/{id}` body: the whole evidence plus the campaign's other alert ids.
pub fn alert_json(e: &AlertEvidence, sibs: &[Sibling]) -> serde_json::Value {
    serde_json::json!({
        "evidence": e,
        "campaign_alerts": sibs.iter().map(|s| s.alert_id.as_str()).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------
// HTTP

fn lock(s: &SharedEvidence) -> MutexGuard<'_, EvidenceStore> {
    // The store's methods cannot leave it inconsistent, so a poisoned lock is still usable.
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The web view's routes over `store`.
pub fn router(store: SharedEvidence) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/alerts") }))
        .route("/alerts", get(list_page))
        .route("/alerts/{id}", get(alert_page))
        .route("/api/alerts", get(list_api))
        .route("/api/alerts/{id}", get(alert_api))
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
            let body = render_list(&lock(&s), sev, camp, Links::Server);
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

async fn alert_page(State(s): State<SharedEvidence>, UrlPath(id): UrlPath<String>) -> Response {
    match snapshot(&s, &id) {
        Some((e, sibs)) => html(StatusCode::OK, render_alert(&e, &sibs, Links::Server)),
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
        Ok((sev, camp)) => Json(list_json(&lock(&s), sev, camp)).into_response(),
    }
}

async fn alert_api(State(s): State<SharedEvidence>, UrlPath(id): UrlPath<String>) -> Response {
    match snapshot(&s, &id) {
        Some((e, sibs)) => Json(alert_json(&e, &sibs)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "alert not found", "alert_id": id })),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Offline report

/// What [`write_report`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReportSummary {
    pub alerts: usize,
    pub files: usize,
}

/// Writes the same pages into `dir`: `index.html`, `severity-*.html`, `campaign-*.html`,
/// one `<alert_id>.html` and `<alert_id>.json` per alert, and `alerts.json`.
pub fn write_report(store: &EvidenceStore, dir: &Path) -> anyhow::Result<ReportSummary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = 0;
    let mut put = |name: &str, body: &[u8]| -> anyhow::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
        files += 1;
        Ok(())
    };
    put(
        "index.html",
        render_list(store, None, None, Links::Report).as_bytes(),
    )?;
    put(
        "alerts.json",
        serde_json::to_string_pretty(&list_json(store, None, None))?.as_bytes(),
    )?;
    for s in Severity::ALL {
        put(
            &format!("severity-{}.html", s.as_str()),
            render_list(store, Some(s), None, Links::Report).as_bytes(),
        )?;
    }
    let mut campaigns: Vec<&str> = store
        .alerts_newest_first()
        .iter()
        .filter_map(|e| e.alert.campaign_id.as_deref())
        .collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    for c in campaigns {
        put(
            &format!("campaign-{}.html", safe_name(c)),
            render_list(store, None, Some(c), Links::Report).as_bytes(),
        )?;
    }
    let alerts = store.alerts_newest_first();
    for e in &alerts {
        let id = &e.alert.alert_id;
        let sibs = siblings(store, id);
        put(
            &format!("{}.html", safe_name(id)),
            render_alert(e, &sibs, Links::Report).as_bytes(),
        )?;
        put(
            &format!("{}.json", safe_name(id)),
            serde_json::to_string(&alert_json(e, &sibs))?.as_bytes(),
        )?;
    }
    Ok(ReportSummary {
        alerts: alerts.len(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use followguard_core::fixtures::{alert, outcome};

    #[test]
    fn esc_neutralises_markup_quotes_and_bidi_controls() {
        let hostile = "<script>alert('x')</script>\"&\u{202E}gnp.exe\u{2066}\u{0007}";
        let e = esc(hostile);
        assert_eq!(
            e,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;[U+202E]gnp.exe[U+2066][U+0007]"
        );
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(esc("ordinary ünïcode 名前"), "ordinary ünïcode 名前");
    }

    #[test]
    fn names_and_urls_are_made_safe() {
        assert_eq!(safe_name("fga-0a1b"), "fga-0a1b");
        assert_eq!(safe_name("../../etc/passwd"), "______etc_passwd");
        assert_eq!(url_q("fgc-1 2&x"), "fgc-1%202%26x");
        assert_eq!(Links::Server.alert("a/b"), "/alerts/a%2Fb");
    }

    #[test]
    fn filter_rejects_unknown_severity_and_ignores_blanks() {
        let f = Filter {
            severity: Some("".into()),
            campaign: Some("  ".into()),
        };
        assert_eq!(f.parse(), Ok((None, None)));
        let f = Filter {
            severity: Some("high".into()),
            campaign: Some("fgc-1".into()),
        };
        assert_eq!(f.parse(), Ok((Some(Severity::High), Some("fgc-1"))));
        let f = Filter {
            severity: Some("<b>".into()),
            campaign: None,
        };
        assert!(f.parse().is_err());
    }

    #[test]
    fn bin_labels_match_bins() {
        assert_eq!(
            AGE_BIN_LABELS.len(),
            followguard_core::age::AGE_BIN_UPPER_DAYS.len() + 1
        );
    }

    #[test]
    fn extreme_times_and_dates_render_without_panic() {
        let mut s = EvidenceStore::default();
        let mut o = outcome("A", 1, i64::MIN, true);
        o.alerts.push(alert("A", "a1", AlertStatus::Open, i64::MIN));
        s.observe(&o);
        for (i, (t, c)) in [
            (i64::MAX, i64::MIN),
            (0, i64::MAX),
            (i64::MIN, 0),
            (-1, -1),
            (i64::MAX, i64::MAX),
        ]
        .into_iter()
        .enumerate()
        {
            let mut o = outcome("A", 10 + i as u64, t, i % 2 == 0);
            o.follower_created_at_s = c;
            s.observe(&o);
        }
        let e = s.get("a1").expect("alert");
        assert_eq!(e.followers.len(), 6);
        let html = render_alert(e, &[], Links::Server);
        assert!(html.contains(r#"<svg id="factory""#) && html.contains(r#"<svg id="rate""#));
        let list = render_list(&s, None, None, Links::Report);
        assert!(list.contains("a1"));
    }

    #[test]
    fn quantile_is_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 0.0), 1);
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 0.5), 3);
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 1.0), 5);
    }
}
