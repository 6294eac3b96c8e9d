//! The service's outputs (three, plus issue 21's link-stage topics): where a produced record goes, and why one can be refused
//! for good. Shared by the Kafka edge (which producer and topic) and the metrics (the
//! `sink` and `reason` labels).

/// Which output a produced record went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sink {
    Alerts,
    Moderation,
    DeadLetter,
    /// Issue 21: flagged follows keyed by follower id (internal).
    Links,
    /// Issue 21: the link stage's alert-pair counts (internal).
    Pairs,
    /// Issue 21: campaign records.
    Campaigns,
}

impl Sink {
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Alerts => "alerts",
            Sink::Moderation => "moderation",
            Sink::DeadLetter => "dead_letter",
            Sink::Links => "links",
            Sink::Pairs => "pairs",
            Sink::Campaigns => "campaigns",
        }
    }
    pub const ALL: [Sink; 6] = [
        Sink::Alerts,
        Sink::Moderation,
        Sink::DeadLetter,
        Sink::Links,
        Sink::Pairs,
        Sink::Campaigns,
    ];
}

/// Why the broker refused a record for good (issue #19; `kafka::refusal` classifies the
/// errors): the bounded `reason` label values of `followguard_produce_refused_total`.
pub const REFUSAL_REASONS: [&str; 6] = [
    "too_large",
    "not_authorized",
    "unknown_topic",
    "invalid_record",
    "invalid_topic",
    "policy",
];
