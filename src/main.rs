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
    /// Write a synthetic follow stream with injected campaigns, plus its ground truth.
    Generate(followguard::generate::GenerateArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("followguard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Generate(a) => followguard::generate::run(a),
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
