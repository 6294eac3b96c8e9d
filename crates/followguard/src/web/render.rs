//! The pages, rendered server-side: the alert list (`/alerts`) and one alert's evidence
//! page (`/alerts/{id}`), their JSON bodies, and the links between them (live server or
//! offline report).

use super::escape::{acct, esc, safe_name, url_q};
use super::matches;
use super::svg::{factory_svg, histogram_svg, rate_svg};
use followguard_core::age::AGE_BINS;
use followguard_core::alert::{AlertStatus, Severity};
use followguard_core::evidence::{AlertEvidence, EvidenceStore, FollowerPoint};
use followguard_core::time::format_rfc3339_ms;

/// Flagged followers listed on an alert page (the JSON has all kept points).
pub const MAX_TABLE_ROWS: usize = 300;

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

pub(super) fn date(s: i64) -> String {
    let t = format_rfc3339_ms(s.saturating_mul(1000));
    t.get(..10).unwrap_or("?").to_string()
}

pub(super) fn datetime(ms: i64) -> String {
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

pub(super) fn page(title: &str, body: &str) -> String {
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

/// The alerts list page (newest first), restricted by the filter.
pub fn render_list(
    store: &EvidenceStore,
    sev: Option<Severity>,
    campaign: Option<&str>,
    links: Links,
) -> String {
    render_list_of(
        &ListSnapshot::of(store, sev, campaign),
        sev,
        campaign,
        links,
    )
}

/// What the list page and `/api/alerts` show, copied out of the store (issue #23: the
/// server takes it under a short lock and renders after releasing it).
pub struct ListSnapshot {
    /// The matching alerts, newest first.
    pub shown: Vec<AlertEvidence>,
    /// Alerts kept in all.
    pub kept: usize,
    pub evicted: u64,
    pub max_alerts: usize,
}

impl ListSnapshot {
    pub fn of(store: &EvidenceStore, sev: Option<Severity>, campaign: Option<&str>) -> Self {
        let all = store.alerts_newest_first();
        ListSnapshot {
            kept: all.len(),
            shown: all
                .into_iter()
                .filter(|e| matches(e, sev, campaign))
                .cloned()
                .collect(),
            evicted: store.evicted(),
            max_alerts: store.config().max_alerts,
        }
    }
}

/// The list page of a [`ListSnapshot`].
pub fn render_list_of(
    snap: &ListSnapshot,
    sev: Option<Severity>,
    campaign: Option<&str>,
    links: Links,
) -> String {
    let shown: Vec<&AlertEvidence> = snap.shown.iter().collect();
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
        snap.kept,
        if filters.is_empty() { "" } else { " matching " },
        filters.join(", "),
        snap.max_alerts,
        snap.evicted
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
    render_alert_with(e, sibs, links, None)
}

/// [`render_alert`], with the alert's cross-instance campaign (issue 21: the campaigns
/// topic's id, when `serve` runs the link stage; `Some(None)`: no record names it yet).
pub fn render_alert_with(
    e: &AlertEvidence,
    sibs: &[Sibling],
    links: Links,
    cross: Option<Option<&str>>,
) -> String {
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
    if let Some(cross) = cross {
        row(
            "campaign across instances",
            match cross {
                Some(c) => format!(r#"<bdi class="id" id="cross-campaign">{}</bdi>"#, esc(c)),
                None => "no campaign record names this alert".to_string(),
            },
        );
    }
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

/// `/api/alerts` body: latest records, newest first, with the evidence summary.
pub fn list_json(
    store: &EvidenceStore,
    sev: Option<Severity>,
    campaign: Option<&str>,
) -> serde_json::Value {
    list_json_of(&ListSnapshot::of(store, sev, campaign))
}

/// `/api/alerts` body of a [`ListSnapshot`].
pub fn list_json_of(snap: &ListSnapshot) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = snap
        .shown
        .iter()
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
        "kept": snap.kept,
        "evicted": snap.evicted,
        "max_alerts": snap.max_alerts,
    })
}

/// `/api/alerts/{id}` body: the whole evidence plus the campaign's other alert ids.
pub fn alert_json(e: &AlertEvidence, sibs: &[Sibling]) -> serde_json::Value {
    serde_json::json!({
        "evidence": e,
        "campaign_alerts": sibs.iter().map(|s| s.alert_id.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use followguard_core::fixtures::{alert, outcome};

    #[test]
    fn names_and_urls_are_made_safe() {
        assert_eq!(safe_name("fga-0a1b"), "fga-0a1b");
        assert_eq!(safe_name("../../etc/passwd"), "______etc_passwd");
        assert_eq!(url_q("fgc-1 2&x"), "fgc-1%202%26x");
        assert_eq!(Links::Server.alert("a/b"), "/alerts/a%2Fb");
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
}
