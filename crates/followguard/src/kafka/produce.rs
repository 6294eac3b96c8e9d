//! `followguard produce` and `followguard topics`: write a JSONL event file into the input
//! topic (keyed by followee id, record time = event time, idempotent producer) and create
//! the service's topics. Used by the demo, the integration tests and operators replaying
//! a capture.

use crate::config::{KafkaArgs, TopicArgs};
use crate::kafka::config_error;
use clap::Args;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

/// Records awaiting acknowledgement before `produce` waits for the oldest.
const MAX_PENDING: usize = 10_000;

/// Flags of `followguard produce`.
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// JSONL file of follow events (one per line; `-` reads stdin). Lines that are not
    /// valid events are produced unchanged (unkeyed) so the service dead-letters them.
    #[arg(long, env = "FOLLOWGUARD_PRODUCE_INPUT")]
    pub input: PathBuf,

    /// Topic to write to.
    #[arg(long, env = "FOLLOWGUARD_INPUT_TOPIC", default_value = "follows")]
    pub topic: String,

    /// Events per second (0 = as fast as the broker takes them); slows a demo to watch it.
    #[arg(long, env = "FOLLOWGUARD_PRODUCE_RATE", default_value_t = 0)]
    pub rate: u32,

    #[command(flatten)]
    pub format: followguard_train::input::FormatArgs,

    /// The input holds profiles, not follows (issue 24): each line is keyed by its
    /// account id (Mastodon `uri`, Bluesky `did`, v1.1 `id_str`), for the compacted
    /// profile topic `serve --profile-topic` reads.
    #[arg(long, env = "FOLLOWGUARD_PRODUCE_PROFILES")]
    pub profile_records: bool,
}

/// Flags of `followguard topics`.
#[derive(Debug, Clone, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub topics: TopicArgs,

    /// Partitions per topic (the input's count bounds how many instances share the work).
    #[arg(long, env = "FOLLOWGUARD_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,

    /// Also create this compacted profile topic (issue 24, `serve --profile-topic`).
    #[arg(long, env = "FOLLOWGUARD_PROFILE_TOPIC")]
    pub profile_topic: Option<String>,

    /// Also create this compacted decisions topic (issue 24, `serve --decisions-topic`;
    /// keyed by the judged account, so compaction keeps its latest verdict).
    #[arg(long, env = "FOLLOWGUARD_DECISIONS_TOPIC")]
    pub decisions_topic: Option<String>,

    /// Issue 21: also create `serve --changelog-topic` (compacted, as many partitions as
    /// the input; an existing one with fewer is refused, as `serve` does).
    #[arg(long, env = "FOLLOWGUARD_CHANGELOG_TOPIC")]
    pub changelog_topic: Option<String>,

    /// Issue 21: also create the link stage's topics of `serve --links-topic`: the links
    /// topic, `<links-topic>-pairs` and their `-state` snapshot topics, and
    /// `--campaigns-topic` (docs/state.md, "Topic creation").
    #[arg(long, env = "FOLLOWGUARD_LINKS_TOPIC", requires = "campaigns_topic")]
    pub links_topic: Option<String>,

    /// Issue 21: the campaign records' output topic (with `--links-topic`).
    #[arg(long, env = "FOLLOWGUARD_CAMPAIGNS_TOPIC", requires = "links_topic")]
    pub campaigns_topic: Option<String>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Entry point of `followguard topics`: every topic of the flags given, created when
/// missing through the function `serve` uses for its state topics
/// ([`crate::kafka::topics::ensure`]); prints what existed and what it created.
pub fn topics_main(args: TopicsArgs) -> anyhow::Result<()> {
    use crate::kafka::topics::{self, Status, TopicSpec};
    let kafka = args.kafka.validate()?;
    args.topics.validate()?;
    if !(1..=10_000).contains(&args.partitions) {
        return Err(crate::ConfigError("--partitions must be between 1 and 10000".into()).into());
    }
    let (t, n) = (&args.topics, args.partitions);
    let mut specs = vec![
        TopicSpec::plain("input", &t.input_topic, n),
        TopicSpec::plain("alerts", &t.alerts_topic, n),
        TopicSpec::plain("moderation", &t.moderation_topic, n),
        TopicSpec::plain("dead-letter", &t.dlq_topic, n),
    ];
    for (role, name) in [
        ("profile", &args.profile_topic),
        ("decisions", &args.decisions_topic),
    ] {
        if let Some(name) = name.as_deref().filter(|t| !t.is_empty()) {
            specs.push(TopicSpec::compacted(role, name, n));
        }
    }
    let window_ms = followguard_core::detector::DetectorConfig::default().lockstep_window_ms;
    let links = match (&args.links_topic, &args.campaigns_topic) {
        (Some(l), Some(c)) => Some(crate::config::LinksConfig::new(l, c, 0, 0)),
        _ => None,
    };
    specs.extend(topics::state_topics(
        &t.input_topic,
        args.changelog_topic.as_deref(),
        links.as_ref(),
        window_ms,
    ));
    if let Some(l) = &links {
        // An output (a reader keeps the table of every record: not compacted).
        let mut c = TopicSpec::plain("campaigns", &l.campaigns_topic, n);
        c.configs = topics::link_topic_configs(window_ms);
        specs.push(c);
    }
    let done = runtime()?.block_on(topics::ensure(&kafka, &specs))?;
    let partitions = |p: usize| format!("{p} partition{}", if p == 1 { "" } else { "s" });
    for ((name, status), spec) in done.iter().zip(&specs) {
        match status {
            Status::Exists(p) => {
                println!("exists   {name} ({} topic, {})", spec.role, partitions(*p))
            }
            Status::Created(p) => {
                let configs = spec.configs_text();
                println!(
                    "created  {name} ({} topic, {}{}{configs})",
                    spec.role,
                    partitions(*p),
                    if configs.is_empty() { "" } else { ", " },
                )
            }
            Status::Skipped(like) => {
                println!(
                    "skipped  {name} ({} topic: {like} does not exist)",
                    spec.role
                )
            }
        }
    }
    Ok(())
}

/// Key (followee id) and record time (event time) of one line, when it is a valid event.
pub fn key_and_time(line: &[u8]) -> (Option<String>, Option<i64>) {
    match followguard_core::event::parse(line) {
        Ok(ev) => (Some(ev.followee_id.into_owned()), ev.ts_ms),
        Err(_) => (None, None),
    }
}

async fn await_one(f: DeliveryFuture, failed: &mut u64) {
    match f.await {
        Ok(Ok(_)) => {}
        Ok(Err((e, _))) => {
            *failed += 1;
            tracing::warn!(error = %e, "delivery failed");
        }
        Err(_) => *failed += 1,
    }
}

/// Entry point of `followguard produce`.
pub fn produce_main(args: ProduceArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.validate()?;
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.input)
            .map_err(|e| crate::ConfigError(format!("--input {}: {e}", args.input.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let producer: crate::kafka::Producer =
        crate::kafka::producer_config(&kafka, Duration::from_secs(60))
            .create_with_context(crate::kafka::LogContext)
            .map_err(|e| config_error("producer", e))?;
    let topic = args.topic.clone();
    let rate = args.rate;
    let (format, profile_records) = (args.format.input_format, args.profile_records);
    let (sent, failed) = runtime()?.block_on(async move {
        let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
        let (mut sent, mut failed) = (0u64, 0u64);
        let start = tokio::time::Instant::now();
        for line in reader.split(b'\n') {
            let line = line?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (key, ts) = if profile_records {
                (
                    followguard_core::adapt::profile_record(None, line)
                        .ok()
                        .map(|(id, _)| id),
                    None,
                )
            } else {
                followguard_core::adapt::key_and_time(format, line)
            };
            loop {
                let mut rec = FutureRecord::to(&topic).payload(line);
                if let Some(k) = &key {
                    rec = rec.key(k.as_str());
                }
                if let Some(ts) = ts {
                    rec = rec.timestamp(ts);
                }
                match producer.send_result(rec) {
                    Ok(f) => {
                        pending.push_back(f);
                        break;
                    }
                    Err((e, _)) => {
                        // Local queue full: wait for the oldest delivery, then retry.
                        match pending.pop_front() {
                            Some(f) => await_one(f, &mut failed).await,
                            None => anyhow::bail!("producing to {topic}: {e}"),
                        }
                    }
                }
            }
            sent += 1;
            while pending.len() >= MAX_PENDING {
                if let Some(f) = pending.pop_front() {
                    await_one(f, &mut failed).await;
                }
            }
            if rate > 0 {
                let due = start + Duration::from_secs_f64(sent as f64 / f64::from(rate));
                tokio::time::sleep_until(due).await;
            }
        }
        for f in pending {
            await_one(f, &mut failed).await;
        }
        Ok((sent, failed))
    })?;
    if failed > 0 {
        anyhow::bail!("{failed} of {sent} records were not acknowledged by the broker");
    }
    println!("produced {sent} records to {}", args.topic);
    Ok(())
}
