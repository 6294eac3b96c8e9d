//! Command-line entry point: parses arguments, runs the chosen command, maps the result
//! to an exit code. No logic lives here.
//!
//! The `bench-*` commands live in the `followguard-bench` binary (crates/followguard-bench
//! depends on this crate, so this one cannot link it): `followguard bench-…` runs that
//! binary from this executable's directory with the same arguments and exits with its
//! status. `cargo build --release` builds both.

mod signals;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
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
    BenchDetect(BenchArgs),
    /// In-process pipeline benchmark: events/s and per-event latency on one thread.
    BenchPipeline(BenchArgs),
    /// Measure RSS per tracked followee and per cached follower score.
    BenchMemory(BenchArgs),
    /// End-to-end benchmark through a broker: plain consumer vs serve, event → alert latency.
    BenchE2e(BenchArgs),
    /// Train the follower classifier on labelled account CSVs.
    Train(followguard_train::modelcli::TrainArgs),
    /// Evaluate a model on labelled account CSVs (ROC-AUC, PR-AUC, calibration, per group).
    Eval(followguard_train::modelcli::EvalArgs),
    /// Leave-one-vendor-out evaluation on cresci-2015 (the model card's table).
    Lovo(followguard_train::modelcli::LovoArgs),
    /// Score JSONL follow events from stdin: one JSON line per event on stdout.
    Score(followguard_train::modelcli::ScoreArgs),
    /// Moderators' decisions joined with the profile snapshots they judged, as an account
    /// table `train` reads (issue 24).
    ExportTraining(followguard_train::export::ExportArgs),
}

/// A `bench-*` command's arguments, handed to `followguard-bench` as they are (that
/// binary parses them and prints their `--help`).
#[derive(Args)]
#[command(disable_help_flag = true)]
struct BenchArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// The commands `followguard-bench` runs.
const BENCH_COMMANDS: [&str; 4] = [
    "bench-detect",
    "bench-pipeline",
    "bench-memory",
    "bench-e2e",
];

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("followguard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => serve(*args),
        Command::Produce(args) => followguard::kafka::produce::produce_main(args),
        Command::Topics(args) => followguard::kafka::produce::topics_main(args),
        Command::Watch(args) => followguard::kafka::watch::watch_main(args),
        Command::Generate(a) => followguard_train::generate::run(a),
        Command::Replay(a) => followguard::replay::run(a),
        Command::Train(a) => followguard_train::modelcli::run_train(a),
        Command::Eval(a) => followguard_train::modelcli::run_eval(a),
        Command::Lovo(a) => followguard_train::modelcli::run_lovo(a),
        Command::Score(a) => followguard_train::modelcli::run_score(a),
        Command::ExportTraining(a) => followguard_train::export::run(a),
        // Reached only through clap's own `help` handling: `main` forwards these first.
        Command::BenchDetect(_)
        | Command::BenchPipeline(_)
        | Command::BenchMemory(_)
        | Command::BenchE2e(_) => anyhow::bail!("the bench-* commands run in followguard-bench"),
    }
}

/// `followguard serve`: validated flags, logging, then the service until a signal.
fn serve(args: followguard::config::ServeArgs) -> anyhow::Result<()> {
    let cfg = args.validate()?;
    followguard::serve::init_tracing(cfg.log_format);
    let grace = cfg.shutdown_grace;
    followguard::serve::run_blocking(cfg, signals::shutdown_requested(grace))
}

/// Runs `followguard-bench COMMAND ARGS…` from this executable's directory (its argv[0]
/// this one's, so its usage lines read `followguard bench-…`); its exit status.
fn run_bench(argv0: OsString, command: OsString, args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("locating the followguard executable")?;
    let bench = exe.with_file_name("followguard-bench");
    if !bench.is_file() {
        anyhow::bail!(
            "`followguard {}` runs the benchmark binary {}, which is not there; build it with \
             `cargo build --release` (the whole workspace) or `cargo build --release -p followguard-bench`",
            command.to_string_lossy(),
            bench.display()
        );
    }
    let status = std::process::Command::new(&bench)
        .arg0(argv0)
        .arg(command)
        .args(args)
        .status()
        .with_context(|| format!("running {}", bench.display()))?;
    // As a shell reports it: the exit code, or 128 + the signal that ended it.
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(followguard::exit_code(e))
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| "followguard".into());
    let rest: Vec<OsString> = argv.collect();
    if let Some(command) = rest
        .first()
        .filter(|c| BENCH_COMMANDS.iter().any(|b| *c == *b))
    {
        return run_bench(argv0, command.clone(), rest[1..].to_vec()).unwrap_or_else(|e| fail(&e));
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
