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
    /// Create the input, alerts, moderation and dead-letter topics, and the state topics
    /// the flags name (changelog, link stage); prints which existed and which it created.
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
    /// Leave-one-dataset-out: every human population and bot set held out in turn.
    Lodo(followguard_train::modelcli::LodoArgs),
    /// Score JSONL follow events from stdin: one JSON line per event on stdout.
    Score(followguard_train::modelcli::ScoreArgs),
    /// Moderators' decisions joined with the profile snapshots they judged, as an account
    /// table `train` reads (issue 24).
    ExportTraining(followguard_train::export::ExportArgs),
    /// Probe a running serve's admin port (GET /healthz): exit 0 when healthy, 1 otherwise.
    /// The image's HEALTHCHECK; needs no curl.
    Healthcheck(HealthcheckArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: followguard.1 on stdout, or one page per command into --out-dir.
    Man {
        /// Directory for followguard.1 and followguard-COMMAND.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Args)]
struct HealthcheckArgs {
    /// The admin address serve listens on (0.0.0.0 / [::] are probed through loopback).
    #[arg(long, env = "FOLLOWGUARD_ADMIN_ADDR", default_value = "127.0.0.1:9464")]
    admin_addr: String,
    /// Path to GET (/readyz for readiness).
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Connect and read timeout.
    #[arg(long, default_value = "3s")]
    timeout: String,
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
        Command::Lodo(a) => followguard_train::modelcli::run_lodo(a),
        Command::Score(a) => followguard_train::modelcli::run_score(a),
        Command::Healthcheck(a) => healthcheck(&a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "followguard", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { out_dir } => man(out_dir.as_deref()),
        Command::ExportTraining(a) => followguard_train::export::run(a),
        // Reached only through clap's own `help` handling: `main` forwards these first.
        Command::BenchDetect(_)
        | Command::BenchPipeline(_)
        | Command::BenchMemory(_)
        | Command::BenchE2e(_) => anyhow::bail!("the bench-* commands run in followguard-bench"),
    }
}

/// `followguard healthcheck`: Ok when the admin port answers 200.
fn healthcheck(a: &HealthcheckArgs) -> anyhow::Result<()> {
    let timeout = followguard::config::parse_duration("timeout", &a.timeout)?;
    let target =
        followguard::healthcheck::probe_target(&a.admin_addr).map_err(followguard::ConfigError)?;
    let (status, body) = followguard::healthcheck::get(target, &a.path, timeout)
        .map_err(|e| anyhow::anyhow!("{} unhealthy: {e}", a.path))?;
    if status == 200 {
        println!("{} {status} {body}", a.path);
        Ok(())
    } else {
        anyhow::bail!("{} unhealthy: HTTP {status} {body}", a.path)
    }
}

/// `followguard man`: the top-level page on stdout, or every page into `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut pages = vec![("followguard".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("followguard-{}", sub.get_name());
        pages.push((name, sub.clone()));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        clap_mangen::Man::new(page).title(name).render(&mut f)?;
    }
    Ok(())
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

/// Reports a fatal error on stderr (one JSON line, as the JSON logs are, when `json`) and
/// maps it to the exit code.
fn fail(e: &anyhow::Error, json: bool) -> ExitCode {
    let code = followguard::exit_code(e);
    if json {
        let line = serde_json::json!({
            "timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| chrono::DateTime::from_timestamp_micros(d.as_micros() as i64))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            "level": "ERROR",
            "fields": { "message": format!("{e:#}"), "exit_code": code },
            "target": "followguard",
        });
        eprintln!("{line}");
    } else {
        eprintln!("error: {e:#}");
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| "followguard".into());
    let rest: Vec<OsString> = argv.collect();
    if let Some(command) = rest
        .first()
        .filter(|c| BENCH_COMMANDS.iter().any(|b| *c == *b))
    {
        return run_bench(argv0, command.clone(), rest[1..].to_vec())
            .unwrap_or_else(|e| fail(&e, false));
    }
    let cli = Cli::parse();
    // Issue #23: fatal errors honour `serve --log-format json`.
    let json = matches!(&cli.command, Command::Serve(a)
        if a.log_format == followguard::config::LogFormat::Json);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, json),
    }
}
