//! `followguard-bench`: the benchmark commands. Users run them as `followguard bench-…`
//! (the `followguard` binary forwards to this one, next to it); `scripts/bench.sh` runs
//! them all (BENCHMARKS.md).

use clap::Parser;
use std::process::ExitCode;

/// followguard's benchmarks: detection quality, in-process throughput and latency, memory,
/// end to end through a broker.
#[derive(Parser)]
#[command(version, about, long_about = None)]
enum Command {
    /// Score the detector against a generated stream's ground truth.
    BenchDetect(followguard_bench::detect::BenchDetectArgs),
    /// In-process pipeline benchmark: events/s and per-event latency on one thread.
    BenchPipeline(Box<followguard_bench::pipeline::BenchPipelineArgs>),
    /// Measure RSS per tracked followee and per cached follower score.
    BenchMemory(followguard_bench::memory::BenchMemoryArgs),
    /// End-to-end benchmark through a broker: plain consumer vs serve, event → alert latency.
    BenchE2e(Box<followguard_bench::e2e::BenchE2eArgs>),
}

fn main() -> ExitCode {
    let res = match Command::parse() {
        Command::BenchDetect(a) => followguard_bench::detect::run(a),
        Command::BenchPipeline(a) => followguard_bench::pipeline::run(*a),
        Command::BenchMemory(a) => followguard_bench::memory::run(a),
        Command::BenchE2e(a) => followguard_bench::e2e::run(*a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(followguard::exit_code(&e))
        }
    }
}
