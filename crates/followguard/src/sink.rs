//! The service's three outputs: where a produced record goes. Shared by the Kafka edge
//! (which producer and topic) and the metrics (the `sink` label).

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
