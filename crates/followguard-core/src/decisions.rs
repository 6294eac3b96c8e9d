//! Moderators' decisions (issue 24): verdicts read back from the decisions topic change
//! what the pipeline flags. A follower cleared as `human` is not flagged again; a
//! `false_alert` on a followee suppresses its next burst (the alert and its moderation
//! records); `bot` on a follower, or `confirmed` on an alert, makes the follower(s) count
//! as bought wherever they follow next, which strengthens their campaign's links. Every
//! entry expires (`ttl`, from the decision's own time, compared with event time: the
//! core reads no clock) and each table is bounded (oldest decision dropped first).
//! Pure: no I/O, no clock.

use crate::event::EventError;
use crate::time::parse_time_ms;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};

/// A moderator's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The follower is a person: never flag it again (until the entry expires).
    Human,
    /// The follower is a bought account.
    Bot,
    /// The alert on this followee was wrong: its next burst is not alerted.
    FalseAlert,
    /// The alert was right: its flagged followers are bought accounts.
    Confirmed,
}

impl Verdict {
    pub const ALL: [(Verdict, &'static str); 4] = [
        (Verdict::Human, "human"),
        (Verdict::Bot, "bot"),
        (Verdict::FalseAlert, "false_alert"),
        (Verdict::Confirmed, "confirmed"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("human", |(_, n)| n)
    }
}

/// One record of the decisions topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub follower_id: Option<String>,
    pub followee_id: Option<String>,
    pub alert_id: Option<String>,
    pub verdict: Verdict,
    /// Who decided (a moderator's handle; kept for the training export's provenance).
    pub who: String,
    /// When, epoch milliseconds.
    pub at_ms: i64,
}

#[derive(Deserialize)]
struct RawDecision {
    #[serde(default)]
    follower_id: Option<String>,
    #[serde(default)]
    followee_id: Option<String>,
    #[serde(default)]
    alert_id: Option<String>,
    #[serde(default)]
    verdict: Option<String>,
    #[serde(default)]
    who: Option<String>,
    #[serde(default)]
    at: Option<serde_json::Value>,
}

/// Parses a decision: `{"verdict": "human" | "bot" | "false_alert" | "confirmed",
/// "follower_id"?, "followee_id"?, "alert_id"?, "who", "at": RFC 3339 or epoch ms}`.
/// `human` / `bot` need a follower, `false_alert` a followee, `confirmed` a follower, a
/// followee or an alert id.
pub fn parse(bytes: &[u8]) -> Result<Decision, EventError> {
    let r: RawDecision =
        serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    let verdict = match r.verdict.as_deref() {
        None => return Err(EventError::MissingField("verdict")),
        Some(v) => Verdict::ALL
            .iter()
            .find(|(_, n)| *n == v)
            .map(|(v, _)| *v)
            .ok_or_else(|| EventError::BadType(v.chars().take(64).collect()))?,
    };
    let at_ms = match r.at {
        None => return Err(EventError::MissingField("at")),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => parse_time_ms(&s),
        Some(_) => None,
    }
    .ok_or_else(|| EventError::BadTimestamp {
        field: "at",
        value: String::new(),
    })?;
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let d = Decision {
        follower_id: non_empty(r.follower_id),
        followee_id: non_empty(r.followee_id),
        alert_id: non_empty(r.alert_id),
        verdict,
        who: r.who.unwrap_or_default(),
        at_ms,
    };
    let ok = match verdict {
        Verdict::Human | Verdict::Bot => d.follower_id.is_some(),
        Verdict::FalseAlert => d.followee_id.is_some(),
        Verdict::Confirmed => {
            d.follower_id.is_some() || d.followee_id.is_some() || d.alert_id.is_some()
        }
    };
    if !ok {
        return Err(EventError::MissingField(match verdict {
            Verdict::FalseAlert => "followee_id",
            _ => "follower_id",
        }));
    }
    Ok(d)
}

/// Keys with an expiry time, at most `cap` of them (the oldest insertion goes first).
#[derive(Debug, Clone)]
struct Expiring {
    until: HashMap<String, (i64, u64)>,
    order: VecDeque<(u64, String)>,
    seq: u64,
    cap: usize,
}

impl Expiring {
    fn new(cap: usize) -> Expiring {
        Expiring {
            until: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            cap,
        }
    }

    fn insert(&mut self, key: &str, until_ms: i64) {
        self.seq += 1;
        self.until.insert(key.to_string(), (until_ms, self.seq));
        self.order.push_back((self.seq, key.to_string()));
        while self.until.len() > self.cap {
            let Some((seq, k)) = self.order.pop_front() else {
                break;
            };
            if self.until.get(&k).is_some_and(|e| e.1 == seq) {
                self.until.remove(&k);
            }
        }
        if self.order.len() > 2 * self.until.len() + 16 {
            let until = &self.until;
            self.order
                .retain(|(s, k)| until.get(k).is_some_and(|e| e.1 == *s));
        }
    }

    /// Whether `key` is held and not expired at `now_ms` (an expired entry is dropped).
    fn holds(&mut self, key: &str, now_ms: i64) -> bool {
        match self.until.get(key) {
            Some(&(until, _)) if now_ms <= until => true,
            Some(_) => {
                self.until.remove(key);
                false
            }
            None => false,
        }
    }

    fn take(&mut self, key: &str, now_ms: i64) -> bool {
        let held = self.holds(key, now_ms);
        self.until.remove(key);
        held
    }

    fn len(&self) -> usize {
        self.until.len()
    }
}

/// How long a decision holds and how many of each kind are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionConfig {
    /// Lifetime of a verdict from its own time (default 30 days): people and accounts
    /// change hands, so a clearance is not forever.
    pub ttl_ms: i64,
    /// Most cleared / confirmed followers held (each).
    pub max_followers: usize,
    /// Most suppressed followees held.
    pub max_followees: usize,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            ttl_ms: 30 * 86_400_000,
            max_followers: 1 << 20,
            max_followees: 1 << 16,
        }
    }
}

/// Flagged followers remembered per open alert (for `confirmed` on a whole alert).
const FLAGGED_PER_ALERT: usize = 256;
/// Alerts whose flagged followers are remembered.
const ALERTS_REMEMBERED: usize = 4096;

/// The verdicts in force, as the pipeline consults them.
#[derive(Debug, Clone)]
pub struct DecisionBook {
    cfg: DecisionConfig,
    cleared: Expiring,
    confirmed: Expiring,
    suppressed: Expiring,
    /// Alert id → (followee, flagged followers), for alert-level verdicts.
    flagged: HashMap<String, (String, Vec<String>)>,
    flagged_order: VecDeque<String>,
    /// Alerts muted because their followee's burst was suppressed, until resolved.
    muted: Expiring,
}

impl Default for DecisionBook {
    fn default() -> Self {
        DecisionBook::new(DecisionConfig::default())
    }
}

impl DecisionBook {
    pub fn new(cfg: DecisionConfig) -> DecisionBook {
        DecisionBook {
            cleared: Expiring::new(cfg.max_followers),
            confirmed: Expiring::new(cfg.max_followers),
            suppressed: Expiring::new(cfg.max_followees),
            muted: Expiring::new(cfg.max_followees),
            flagged: HashMap::new(),
            flagged_order: VecDeque::new(),
            cfg,
        }
    }

    /// Applies a verdict. A later verdict on the same follower replaces an earlier one.
    pub fn apply(&mut self, d: &Decision) {
        let until = d.at_ms.saturating_add(self.cfg.ttl_ms);
        match d.verdict {
            Verdict::Human => {
                if let Some(f) = &d.follower_id {
                    self.confirmed.until.remove(f);
                    self.cleared.insert(f, until);
                }
            }
            Verdict::Bot => {
                if let Some(f) = &d.follower_id {
                    self.cleared.until.remove(f);
                    self.confirmed.insert(f, until);
                }
            }
            Verdict::FalseAlert => {
                if let Some(f) = &d.followee_id {
                    self.suppressed.insert(f, until);
                }
            }
            Verdict::Confirmed => {
                let mut followers: Vec<String> = d.follower_id.iter().cloned().collect();
                let alerts: Vec<&String> = match (&d.alert_id, &d.followee_id) {
                    (Some(a), _) => vec![a],
                    (None, Some(f)) => self
                        .flagged
                        .iter()
                        .filter(|(_, (followee, _))| followee == f)
                        .map(|(a, _)| a)
                        .collect(),
                    (None, None) => Vec::new(),
                };
                for a in alerts {
                    if let Some((_, f)) = self.flagged.get(a) {
                        followers.extend(f.iter().cloned());
                    }
                }
                for f in followers {
                    self.cleared.until.remove(&f);
                    self.confirmed.insert(&f, until);
                }
            }
        }
    }

    /// A moderator cleared this follower (and the verdict still holds at `now_ms`).
    pub fn cleared(&mut self, follower_id: &str, now_ms: i64) -> bool {
        !self.cleared.until.is_empty() && self.cleared.holds(follower_id, now_ms)
    }

    /// A moderator confirmed this follower as bought.
    pub fn confirmed(&mut self, follower_id: &str, now_ms: i64) -> bool {
        !self.confirmed.until.is_empty() && self.confirmed.holds(follower_id, now_ms)
    }

    /// Called for an alert opening on `followee_id`: true when a `false_alert` verdict
    /// suppresses this burst (the verdict is used up; the alert stays muted until it is
    /// resolved).
    pub fn suppress_open(&mut self, alert_id: &str, followee_id: &str, now_ms: i64) -> bool {
        if self.suppressed.until.is_empty() || !self.suppressed.take(followee_id, now_ms) {
            return false;
        }
        self.muted
            .insert(alert_id, now_ms.saturating_add(self.cfg.ttl_ms));
        true
    }

    /// Whether records of `alert_id` are muted (a suppressed burst); `resolved` ends it.
    pub fn muted(&mut self, alert_id: &str, now_ms: i64, resolved: bool) -> bool {
        if self.muted.until.is_empty() {
            return false;
        }
        if resolved {
            return self.muted.take(alert_id, now_ms);
        }
        self.muted.holds(alert_id, now_ms)
    }

    /// Remembers a flagged follower of an alert (bounded), for an alert-level verdict.
    pub fn note_flagged(&mut self, alert_id: &str, followee_id: &str, follower_id: &str) {
        if !self.flagged.contains_key(alert_id) {
            if self.flagged_order.len() >= ALERTS_REMEMBERED {
                if let Some(old) = self.flagged_order.pop_front() {
                    self.flagged.remove(&old);
                }
            }
            self.flagged_order.push_back(alert_id.to_string());
            self.flagged
                .insert(alert_id.to_string(), (followee_id.to_string(), Vec::new()));
        }
        if let Some((_, f)) = self.flagged.get_mut(alert_id) {
            if f.len() < FLAGGED_PER_ALERT && !f.iter().any(|x| x == follower_id) {
                f.push(follower_id.to_string());
            }
        }
    }

    /// Entries held: (cleared followers, confirmed followers, suppressed followees).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.cleared.len(),
            self.confirmed.len(),
            self.suppressed.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(json: &str) -> Decision {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn parses_and_validates_decisions() {
        let h = d(
            r#"{"follower_id": "7", "verdict": "human", "who": "ana", "at": "2026-11-28T10:00:00Z"}"#,
        );
        assert_eq!((h.verdict, h.at_ms), (Verdict::Human, 1_795_860_000_000));
        let bad = [
            (r#"{"verdict": "human", "at": 1}"#, "missing_field"),
            (
                r#"{"follower_id": "7", "verdict": "maybe", "at": 1}"#,
                "bad_type",
            ),
            (r#"{"follower_id": "7", "verdict": "bot"}"#, "missing_field"),
            (
                r#"{"follower_id": "7", "verdict": "bot", "at": "soon"}"#,
                "bad_timestamp",
            ),
            (
                r#"{"follower_id": "7", "verdict": "false_alert", "at": 1}"#,
                "missing_field",
            ),
            ("[1]", "invalid_json"),
        ];
        for (json, kind) in bad {
            assert_eq!(parse(json.as_bytes()).unwrap_err().kind(), kind, "{json}");
        }
    }

    #[test]
    fn verdicts_hold_until_they_expire_and_are_bounded() {
        let mut b = DecisionBook::new(DecisionConfig {
            ttl_ms: 1000,
            max_followers: 2,
            max_followees: 2,
        });
        b.apply(&d(r#"{"follower_id": "a", "verdict": "human", "at": 0}"#));
        assert!(b.cleared("a", 1000));
        assert!(!b.cleared("a", 1001), "expired");
        for f in ["b", "c", "d"] {
            b.apply(&d(&format!(
                r#"{{"follower_id": "{f}", "verdict": "human", "at": 0}}"#
            )));
        }
        assert_eq!(b.sizes().0, 2, "bounded");
        assert!(!b.cleared("b", 0) && b.cleared("c", 0) && b.cleared("d", 0));
        // A later "bot" replaces "human".
        b.apply(&d(r#"{"follower_id": "c", "verdict": "bot", "at": 0}"#));
        assert!(!b.cleared("c", 0) && b.confirmed("c", 0));
    }

    #[test]
    fn false_alert_suppresses_the_next_burst_only() {
        let mut b = DecisionBook::default();
        b.apply(&d(
            r#"{"followee_id": "f", "verdict": "false_alert", "at": 0}"#,
        ));
        assert!(!b.suppress_open("a0", "other", 5));
        assert!(b.suppress_open("a1", "f", 5));
        assert!(b.muted("a1", 6, false));
        assert!(b.muted("a1", 7, true), "the resolution is muted too");
        assert!(!b.muted("a1", 8, false));
        assert!(!b.suppress_open("a2", "f", 9), "used up");
    }

    #[test]
    fn confirmed_alert_confirms_its_flagged_followers() {
        let mut b = DecisionBook::default();
        b.note_flagged("a1", "f", "x");
        b.note_flagged("a1", "f", "y");
        b.apply(&d(
            r#"{"followee_id": "f", "verdict": "confirmed", "at": 0}"#,
        ));
        assert!(b.confirmed("x", 1) && b.confirmed("y", 1) && !b.confirmed("z", 1));
    }
}
