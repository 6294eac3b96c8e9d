//! Signals for `followguard serve`, owned by the binary: the first SIGTERM/SIGINT resolves
//! the shutdown future `serve::run` waits on (graceful: drain, commit, exit 0); a second
//! one, or the grace period running out (plus a small margin for the steps that honour
//! it), ends the process at once. The library never exits the process.

use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Resolves at the first SIGTERM or SIGINT, leaving a task behind that exits the process
/// (130) at a second one, or (1) when the shutdown outlasts `grace` by two seconds.
/// Never resolves when the handlers cannot be installed (the service then runs until
/// killed, as it says).
pub async fn shutdown_requested(grace: Duration) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        grace_secs = grace.as_secs_f64(),
        "shutdown requested"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = tokio::time::sleep(grace + Duration::from_secs(2)) => {
                tracing::error!("shutdown exceeded the grace period; exiting");
                std::process::exit(1);
            }
        }
        tracing::warn!("second signal; exiting immediately");
        std::process::exit(130);
    });
}
