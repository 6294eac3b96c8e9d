//! `replay --report`: the same pages written into a folder, linked as files.

use super::escape::safe_name;
use super::render::{alert_json, list_json, render_alert, render_list, siblings, Links};
use anyhow::Context as _;
use followguard_core::alert::Severity;
use followguard_core::evidence::EvidenceStore;
use std::path::Path;

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
