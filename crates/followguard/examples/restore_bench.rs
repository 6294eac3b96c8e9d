//! Issue 21: restore time of one changelog partition against its state size
//! (docs/state.md, "Sizing and restore time"; run by `scripts/restore-bench.sh`).
//!
//! For each N: a pipeline holding N followees (the followee states a real stream leaves
//! on one partition, repeated under new ids), its partition snapshot written to a fresh
//! one-partition changelog topic exactly as `serve` writes it (`changelog::snapshot_records`,
//! between `s/` markers), then `changelog::restore` into a fresh pipeline, timed.
//! Prints `bench.restore.f<N>.<metric> <value> <unit>` lines.
//!
//! Usage: restore_bench BROKERS EVENTS.jsonl MODEL.json N [N ...]

use followguard::changelog;
use followguard::config::KafkaConfig;
use followguard::kafka;
use followguard::metrics::Metrics;
use followguard_core::model::Model;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 4,
        "usage: restore_bench BROKERS EVENTS.jsonl MODEL.json N [N ...]"
    );
    let (brokers, events, model_path) = (&args[0], &args[1], &args[2]);
    let sizes: Vec<usize> = args[3..]
        .iter()
        .map(|n| n.parse())
        .collect::<Result<_, _>>()?;
    let model = Arc::new(Model::from_bytes(&std::fs::read(model_path)?, "model")?);
    let new = || Pipeline::new(model.clone(), PipelineConfig::default());

    // The templates: every followee state the stream leaves (all on partition 0).
    let mut source = new();
    let bytes = std::fs::read(events)?;
    for l in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let _ = source.process(l, None, 0);
    }
    let templates = source.detector().export_partition(0).followees;
    anyhow::ensure!(!templates.is_empty(), "the stream left no followee state");
    let open = templates.iter().filter(|t| t.open.is_some()).count();
    eprintln!(
        "restore_bench: {} template followees ({open} with an open alert)",
        templates.len()
    );
    let clock = source.export_clock(0);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let kafka_cfg = KafkaConfig {
        brokers: brokers.clone(),
        options: Vec::new(),
    };
    let producer: FutureProducer = {
        let _g = rt.enter();
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "20")
            .create()?
    };
    for n in sizes {
        // The writer's state: N followees, templates repeated under new ids.
        let mut writer = new();
        if let Some(c) = &clock {
            writer.import_clock(c)?;
        }
        for i in 0..n {
            let mut s = templates[i % templates.len()].clone();
            s.followee_id = format!("{}~{i}", s.followee_id);
            if let Some(a) = s.open.as_mut() {
                a.alert_id = format!("{}~{i}", a.alert_id);
            }
            writer.detector_mut().import_followee(&s)?;
        }
        let records = changelog::snapshot_records(&writer, 0, 1, Some(0), &BTreeSet::new());
        drop(writer);
        let record_bytes: usize = records
            .iter()
            .map(|r| r.key.len() + r.value.as_ref().map_or(0, Vec::len))
            .sum();
        let topic = format!("restore-bench-{n}-{}", std::process::id());
        let started = Instant::now();
        rt.block_on(async {
            kafka::create_topics(&kafka_cfg, &[&topic], 1).await?;
            for chunk in records.chunks(50_000) {
                changelog::produce(&producer, &topic, chunk).await?;
            }
            anyhow::Ok(())
        })?;
        let produce_s = started.elapsed().as_secs_f64();
        drop(records);

        let metrics = Metrics::new(prometheus::Registry::new(), "m", "s");
        let mut restored = new();
        let reader = {
            let _g = rt.enter();
            Arc::new(kafka::reader(&kafka::replay_config(
                &kafka_cfg,
                &format!("restore-bench-{n}"),
            ))?)
        };
        let r = rt.block_on(changelog::restore(
            reader,
            &topic,
            &[0],
            &mut restored,
            &metrics,
            || {},
        ))?;
        anyhow::ensure!(
            restored.tracked_followees() == n,
            "restored {} of {n} followees",
            restored.tracked_followees()
        );
        let p = format!("bench.restore.f{n}");
        println!("{p}.records {} records", r.records);
        println!("{p}.scanned {} records", r.scanned);
        println!("{p}.bytes {record_bytes} bytes");
        println!("{p}.seconds {:.3} s", r.seconds);
        println!(
            "{p}.records_per_s {:.0} records/s",
            r.records as f64 / r.seconds
        );
        println!(
            "{p}.mib_per_s {:.1} MiB/s",
            record_bytes as f64 / r.seconds / 1_048_576.0
        );
        println!("{p}.produce_seconds {produce_s:.3} s");
    }
    Ok(())
}
