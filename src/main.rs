//! Starts the exporter: settings, logging, the listening socket, the scanner, the server,
//! then waits for a shutdown signal and stops both.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use docker_image_exporter::cli::Settings;
use docker_image_exporter::engine::Engine;
use docker_image_exporter::scanner::{Published, Scanner};
use docker_image_exporter::{logging, server};
use tokio::sync::watch;

/// How long the scanner and server get to stop after a signal.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let settings = Settings::from_command_line();
    logging::init(settings.log_level, settings.log_format);

    // Two workers: a scan's decoding never holds up a scrape, and the exporter stays small.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(settings))
}

async fn run(settings: Settings) -> ExitCode {
    let listener = match server::bind(settings.listen_address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(address = %settings.listen_address, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(settings.listen_address);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        engine = %settings.docker_host,
        scan_interval = ?settings.scan_interval,
        live_states = %settings.live_states,
        "starting"
    );
    // A misspelt live state would quietly class running images as stopped_only.
    for state in settings.live_states.unknown() {
        tracing::warn!(state, "a live state that neither Docker nor Podman reports");
    }
    tracing::info!(
        %address,
        path = %settings.telemetry_path,
        tls = settings.web.tls_acceptor().is_some(),
        basic_auth = settings.web.requires_authorization(),
        "listening"
    );

    let (stop, stopped) = watch::channel(false);
    let published = Arc::new(Published::new());
    let engine = Engine::new(
        settings.docker_host.clone(),
        settings.docker_tls.clone(),
        settings.docker_timeout,
    );
    let scanner = Scanner::new(
        engine,
        settings.live_states.clone(),
        settings.scan_interval,
        published.clone(),
    );
    let scanning = tokio::spawn(scanner.run(stopped.clone()));
    let routes = server::Routes {
        published,
        telemetry_path: settings.telemetry_path.into(),
        web: settings.web.clone(),
    };
    let serving = tokio::spawn(server::serve(listener, routes, settings.max_connections, stopped));

    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    // Nobody left to tell if every receiver is gone: then both tasks have ended already.
    let _ = stop.send(true);
    let both = async {
        let _ = tokio::join!(scanning, serving);
    };
    if tokio::time::timeout(STOP_GRACE, both).await.is_err() {
        tracing::warn!("tasks did not stop in time; exiting anyway");
    }
    ExitCode::SUCCESS
}

/// Resolves with the name of the first of SIGINT or SIGTERM to arrive.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        // Without signal handlers the process still dies on the default action.
        tracing::warn!("cannot install signal handlers; SIGINT and SIGTERM end the process");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
