//! `followguard watch`: prints alert records from the alerts topic as they arrive, one
//! readable line each (the demo's live view; also handy when operating the service).
//! Reads every partition from the start of the topic, outside any group, committing nothing.

use crate::config::KafkaArgs;
use clap::Args;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// Flags of `followguard watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Alerts topic to follow.
    #[arg(
        long,
        env = "FOLLOWGUARD_ALERTS_TOPIC",
        default_value = "followguard.alerts"
    )]
    pub alerts_topic: String,

    /// Print raw JSON instead of one summary line per alert.
    #[arg(long, env = "FOLLOWGUARD_WATCH_JSON")]
    pub json: bool,

    /// Stop after this long without a new record (0 = run until interrupted).
    #[arg(long, env = "FOLLOWGUARD_WATCH_IDLE_EXIT", default_value = "0s")]
    pub idle_exit: String,
}

/// One summary line for an alert record (falls back to the raw text for other JSON).
pub fn summary(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    if v.get("alert_id").is_none() {
        return v.to_string();
    }
    let reasons: Vec<String> = v["top_reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(3)
                .filter_map(|r| r["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let campaign = v["campaign_id"]
        .as_str()
        .map(|c| format!(" campaign={c}"))
        .unwrap_or_default();
    format!(
        "{time}  {status:<8} {kind:<5} {sev:<8} followee={followee:<10} suspicious {sus}/{new} new followers  reasons={reasons}{campaign}  id={id}",
        time = s("event_time"),
        status = s("status").to_uppercase(),
        kind = s("kind"),
        sev = s("severity"),
        followee = s("followee_id"),
        sus = n("suspicious_count"),
        new = n("new_followers"),
        reasons = reasons.join(","),
        id = s("alert_id"),
    )
}

/// Entry point of `followguard watch`.
pub fn watch_main(args: WatchArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.validate()?;
    let idle = crate::config::parse_duration("idle-exit", &args.idle_exit)?;
    let group = format!("followguard-watch-{}", std::process::id());
    let mut cfg = crate::kafka::replay_config(&kafka, &group);
    cfg.set("auto.offset.reset", "earliest");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // A StreamConsumer needs the runtime while it is created.
        let consumer = crate::kafka::reader(&cfg)?;
        // Assigned by hand, not subscribed: no group join to wait for, nothing committed.
        let meta = consumer
            .fetch_metadata(Some(&args.alerts_topic), Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("reading metadata of {}: {e}", args.alerts_topic))?;
        let mut tpl = TopicPartitionList::new();
        for t in meta.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
            }
        }
        if tpl.count() == 0 {
            anyhow::bail!(
                "topic {} has no partitions (create it first)",
                args.alerts_topic
            );
        }
        consumer.assign(&tpl)?;
        loop {
            let next = async {
                if idle.is_zero() {
                    Ok(consumer.recv().await)
                } else {
                    tokio::time::timeout(idle, consumer.recv()).await
                }
            };
            let m = tokio::select! {
                r = next => r,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            match m {
                Err(_) => return Ok(()),
                Ok(Err(e)) => tracing::warn!(error = %e, "watch: consumer error"),
                Ok(Ok(m)) => {
                    let payload = m.payload().unwrap_or_default();
                    let line = match serde_json::from_slice::<serde_json::Value>(payload) {
                        Ok(v) if args.json => v.to_string(),
                        Ok(v) => summary(&v),
                        Err(_) => String::from_utf8_lossy(payload).into_owned(),
                    };
                    println!("{line}");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_names_the_burst() {
        let v = serde_json::json!({
            "alert_id": "fga-1", "status": "open", "kind": "burst", "severity": "high",
            "followee_id": "42", "event_time": "2026-11-02T10:00:00.000Z",
            "suspicious_count": 80, "new_followers": 95,
            "top_reasons": [{"code": "statuses_rate_low", "count": 80}], "campaign_id": null
        });
        let s = summary(&v);
        assert!(s.contains("OPEN"), "{s}");
        assert!(s.contains("followee=42"), "{s}");
        assert!(s.contains("80/95"), "{s}");
        assert!(s.contains("statuses_rate_low"), "{s}");
        assert!(s.contains("id=fga-1"), "{s}");
        assert!(!s.contains("campaign="), "{s}");
    }
}
