//! The service's three outputs: where a produced record goes, and why one can be refused
//! for good. Shared by the Kafka edge (which producer and topic) and the metrics (the
//! `sink` and `reason` labels).

/// Which output a produced record went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sink {
    Alerts,
    Moderation,
    DeadLetter,
}

impl Sink {
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Alerts => "alerts",
            Sink::Moderation => "moderation",
            Sink::DeadLetter => "dead_letter",
        }
    }
    pub const ALL: [Sink; 3] = [Sink::Alerts, Sink::Moderation, Sink::DeadLetter];
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
