//! Command-line entry point: parses arguments, runs the chosen command, maps the result
//! to an exit code. No logic lives here.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// followguard: catches accounts buying followers, from a stream of follow events.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print version information.
    Version,
    /// Run the streaming service: consume follow events, publish alerts, moderation and dead-letter records.
    Serve(Box<followguard::config::ServeArgs>),
    /// Write a JSONL event file into a Kafka topic (keyed by followee id).
    Produce(followguard::kafka::produce::ProduceArgs),
    /// Create the input, alerts, moderation and dead-letter topics.
    Topics(followguard::kafka::produce::TopicsArgs),
    /// Print alerts from the alerts topic as they arrive.
    Watch(followguard::kafka::watch::WatchArgs),
    /// Write a synthetic follow stream with injected campaigns, plus its ground truth.
    Generate(followguard_train::generate::GenerateArgs),
    /// Run a JSONL file of follow events through the detection pipeline.
    Replay(followguard::replay::ReplayArgs),
    /// Score the detector against a generated stream's ground truth.
    BenchDetect(followguard::benchdetect::BenchDetectArgs),
    /// In-process pipeline benchmark: events/s and per-event latency on one thread.
    BenchPipeline(Box<followguard::benchpipe::BenchPipelineArgs>),
    /// Measure RSS per tracked followee and per cached follower score.
    BenchMemory(followguard::benchmem::BenchMemoryArgs),
    /// End-to-end benchmark through a broker: plain consumer vs serve, event → alert latency.
    BenchE2e(Box<followguard::benche2e::BenchE2eArgs>),
    /// Train the follower classifier on labelled account CSVs.
    Train(followguard_train::modelcli::TrainArgs),
    /// Evaluate a model on labelled account CSVs (ROC-AUC, PR-AUC, calibration, per group).
    Eval(followguard_train::modelcli::EvalArgs),
    /// Leave-one-vendor-out evaluation on cresci-2015 (the model card's table).
    Lovo(followguard_train::modelcli::LovoArgs),
    /// Score JSONL follow events from stdin: one JSON line per event on stdout.
    Score(followguard_train::modelcli::ScoreArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("followguard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => followguard::serve::main(*args),
        Command::Produce(args) => followguard::kafka::produce::produce_main(args),
        Command::Topics(args) => followguard::kafka::produce::topics_main(args),
        Command::Watch(args) => followguard::kafka::watch::watch_main(args),
        Command::Generate(a) => followguard_train::generate::run(a),
        Command::Replay(a) => followguard::replay::run(a),
        Command::BenchDetect(a) => followguard::benchdetect::run(a),
        Command::BenchPipeline(a) => followguard::benchpipe::run(*a),
        Command::BenchMemory(a) => followguard::benchmem::run(a),
        Command::BenchE2e(a) => followguard::benche2e::run(*a),
        Command::Train(a) => followguard_train::modelcli::run_train(a),
        Command::Eval(a) => followguard_train::modelcli::run_eval(a),
        Command::Lovo(a) => followguard_train::modelcli::run_lovo(a),
        Command::Score(a) => followguard_train::modelcli::run_score(a),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(followguard::exit_code(&e))
        }
    }
}
