//! Produce-error classification (issue #19): which broker / librdkafka refusals are
//! permanent for a record (retrying the same bytes can never succeed, so the record goes
//! to the dead-letter topic and its offset moves on) and which are transient (retried
//! with backoff, offsets held). The table is in docs/runbook.md.

use super::{OutRecord, HDR_ERROR_KIND};
use crate::sink::Sink;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Header naming why the broker refused the record a dead letter stands for.
pub const HDR_REFUSED_REASON: &str = "refused_reason";

/// Bounded `reason` label values of `followguard_produce_refused_total`.
pub use crate::sink::REFUSAL_REASONS as REASONS;

/// The reason a record can never be delivered, or `None` for a transient error.
pub fn permanent_reason(e: &KafkaError) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    Some(match e.rdkafka_error_code()? {
        C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize => "too_large",
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => "not_authorized",
        C::UnknownTopic | C::UnknownPartition => "unknown_topic",
        C::InvalidRecord | C::InvalidMessage | C::UnsupportedForMessageFormat => "invalid_record",
        C::InvalidTopic => "invalid_topic",
        C::PolicyViolation => "policy",
        _ => return None,
    })
}

/// The record to send instead of `rec`, which the broker refused for `reason`: a
/// dead letter holding a bounded prefix of it (size and SHA-256 in headers); for a
/// dead letter, a stub with its headers and no payload; `None` when `rec` already is
/// such a stub (then the refusal is counted and the offset moves on).
pub fn replacement(
    rec: &OutRecord,
    topic: &str,
    reason: &str,
    err: &KafkaError,
) -> Option<OutRecord> {
    if rec.sink == Sink::DeadLetter && rec.payload.is_empty() && rec.key.is_empty() {
        // Already the smallest stand-in there is.
        return None;
    }
    let mut out = if rec.sink == Sink::DeadLetter {
        let mut headers = rec.headers.clone();
        let sized = headers.iter().any(|(k, _)| *k == super::HDR_ORIGINAL_SIZE);
        if !sized {
            headers.push((
                super::HDR_ORIGINAL_SIZE,
                rec.payload.len().to_string().into_bytes(),
            ));
            headers.push((
                super::HDR_ORIGINAL_SHA256,
                followguard_core::bounds::sha256_hex(&rec.payload).into_bytes(),
            ));
        }
        OutRecord {
            sink: Sink::DeadLetter,
            key: Vec::new(),
            payload: Vec::new(),
            headers,
        }
    } else {
        super::dead_letter(
            topic,
            -1,
            -1,
            Some(&rec.key),
            &rec.payload,
            "produce_refused",
            &err.to_string(),
        )
    };
    out.headers
        .retain(|(k, _)| *k != HDR_ERROR_KIND || rec.sink != Sink::DeadLetter);
    if rec.sink == Sink::DeadLetter {
        out.headers
            .push((HDR_ERROR_KIND, b"produce_refused".to_vec()));
    }
    out.headers.retain(|(k, _)| *k != HDR_REFUSED_REASON);
    out.headers
        .push((HDR_REFUSED_REASON, reason.as_bytes().to_vec()));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_and_transient_errors_are_told_apart() {
        let p = |c| permanent_reason(&KafkaError::MessageProduction(c));
        assert_eq!(p(RDKafkaErrorCode::MessageSizeTooLarge), Some("too_large"));
        assert_eq!(
            p(RDKafkaErrorCode::TopicAuthorizationFailed),
            Some("not_authorized")
        );
        assert_eq!(p(RDKafkaErrorCode::UnknownTopic), Some("unknown_topic"));
        assert_eq!(p(RDKafkaErrorCode::InvalidRecord), Some("invalid_record"));
        for transient in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
        ] {
            assert_eq!(p(transient), None, "{transient:?}");
        }
        assert_eq!(permanent_reason(&KafkaError::Canceled), None);
        // A refused alert becomes a bounded dead letter; a refused dead letter a stub; a
        // refused stub nothing (counted, offset moves on).
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let alert = OutRecord {
            sink: Sink::Alerts,
            key: b"f".to_vec(),
            payload: vec![b'x'; 1_200_000],
            headers: Vec::new(),
        };
        let dl = replacement(&alert, "alerts", "too_large", &err).unwrap();
        assert_eq!(dl.sink, Sink::DeadLetter);
        assert!(dl.payload.len() <= followguard_core::bounds::DEAD_LETTER_PREFIX_BYTES);
        let stub = replacement(&dl, "dlq", "too_large", &err).unwrap();
        assert!(stub.payload.is_empty());
        assert_eq!(
            stub.headers
                .iter()
                .filter(|(k, _)| *k == HDR_ERROR_KIND)
                .count(),
            1
        );
        assert!(replacement(&stub, "dlq", "too_large", &err).is_none());
        for r in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::PolicyViolation,
        ] {
            assert!(REASONS.contains(&p(r).unwrap()));
        }
    }
}
