//! The moderator web view of alerts: server-side rendered HTML with inline SVG charts
//! (no scripts, no external assets, works offline) and JSON equivalents, as an axum
//! [`router`] merged into the admin port; [`write_report`] writes the same pages to a
//! folder for `replay --report`.
//!
//! Pages: `/alerts` (newest first, filterable by `severity` and `campaign`) and
//! `/alerts/{id}` (the follower-factory chart, new-follower rate against the baseline,
//! creation-date histogram, top reasons, flagged followers, links to the campaign's other
//! alerts). JSON: `/api/alerts`, `/api/alerts/{id}` (issue 21: with
//! `cross_instance_campaign_id`, the alert's campaign as the campaigns topic names it,
//! when `serve` runs the link stage).
//!
//! Every account-controlled string (ids, screen names, descriptions) goes through
//! [`esc`] (HTML escaping plus visible bidi/control characters) inside a `<bdi>`; pages
//! are served with a CSP that forbids scripts, as a second line of defence.
//!
//! Files: `render` (the pages and their JSON), `svg` (the charts), `escape` (everything
//! account-controlled goes through it), `handlers` (the axum routes), `report` (the
//! offline folder).

mod escape;
mod handlers;
mod render;
mod report;
mod svg;

pub use escape::esc;
pub use handlers::{router, SharedCampaigns, SharedEvidence};
pub use render::{
    alert_json, list_json, render_alert, render_list, siblings, Links, Sibling, AGE_BIN_LABELS,
    MAX_TABLE_ROWS,
};
pub use report::{write_report, ReportSummary};

use followguard_core::alert::Severity;
use followguard_core::evidence::AlertEvidence;

/// `/alerts` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Filter {
    pub severity: Option<String>,
    pub campaign: Option<String>,
}

impl Filter {
    /// Validated form: `None` fields mean "any". An unknown severity is an error.
    pub(crate) fn parse(&self) -> Result<(Option<Severity>, Option<&str>), String> {
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

pub(crate) fn matches(e: &AlertEvidence, sev: Option<Severity>, campaign: Option<&str>) -> bool {
    sev.is_none_or(|s| e.alert.severity == s)
        && campaign.is_none_or(|c| e.alert.campaign_id.as_deref() == Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
