//! Command-line flags, each with an environment-variable twin, and their validation.
//!
//! Flags are parsed into [`Args`] and then checked into [`Settings`] before any work starts,
//! so that a bad value stops the exporter with a message naming the flag.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use tokio_rustls::rustls::ClientConfig;

use crate::engine::{tls, Endpoint};
use crate::snapshot::LiveStates;
use crate::web_config::WebConfig;

/// The engine's socket when neither the flag nor `DOCKER_HOST` is set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// How long one request to the engine may take, answer included.
pub const DEFAULT_DOCKER_TIMEOUT: &str = "10s";
/// How often the engine is scanned.
pub const DEFAULT_SCAN_INTERVAL: &str = "15s";
/// The shortest scan interval: events already bring changes within a second, and shorter
/// intervals would only load the engine.
pub const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(100);
/// The container states that make an image "in use".
pub const DEFAULT_LIVE_STATES: &str = "running,paused,restarting";
/// Outside the 9100-9999 range, which the Prometheus exporters' port list has used up.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:10351";
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_LOG_FORMAT: &str = "logfmt";
/// Enough for every Prometheus server, probe and person; small enough to bound memory.
pub const DEFAULT_MAX_CONNECTIONS: &str = "64";

/// Paths the server answers itself; the telemetry path may not take them.
const RESERVED_PATHS: [&str; 3] = ["/", "/healthz", "/readyz"];

/// Prometheus exporter of per-image container references by state.
///
/// Scans a Docker or Podman engine's images and containers every scan interval and serves,
/// for each image, how many containers reference it in each state and whether it is in use,
/// referenced only by stopped containers, or unused. Scrapes are answered from the last scan.
#[derive(Debug, Parser)]
#[command(name = "docker-image-exporter", version, max_term_width = 100)]
pub struct Args {
    /// Engine address: unix:///path/to/socket or tcp://host:port.
    #[arg(
        long = "docker.host",
        env = "DOCKER_HOST",
        default_value = DEFAULT_DOCKER_HOST,
        value_name = "URL",
        value_parser = parse_endpoint,
    )]
    pub docker_host: Endpoint,

    /// Speak TLS to a tcp:// engine, verify its certificate against ca.pem and present
    /// cert.pem and key.pem from --docker.cert-path. Never falls back to plain text.
    #[arg(
        long = "docker.tls-verify",
        env = "DOCKER_TLS_VERIFY",
        action = clap::ArgAction::SetTrue,
        value_parser = parse_tls_verify,
    )]
    pub docker_tls_verify: bool,

    /// Directory of ca.pem, cert.pem and key.pem for --docker.tls-verify [default: ~/.docker]
    #[arg(long = "docker.cert-path", env = "DOCKER_CERT_PATH", value_name = "DIR")]
    pub docker_cert_path: Option<PathBuf>,

    /// Longest wait for one engine request, answer included (e.g. 500ms, 10s).
    #[arg(
        long = "docker.timeout",
        env = "DOCKER_IMAGE_EXPORTER_DOCKER_TIMEOUT",
        default_value = DEFAULT_DOCKER_TIMEOUT,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true,
    )]
    pub docker_timeout: Duration,

    /// Time between scans of the engine (e.g. 1s, 15s, 2m).
    #[arg(
        long = "scan.interval",
        env = "DOCKER_IMAGE_EXPORTER_SCAN_INTERVAL",
        default_value = DEFAULT_SCAN_INTERVAL,
        value_name = "DURATION",
        value_parser = parse_interval,
        allow_hyphen_values = true,
    )]
    pub scan_interval: Duration,

    /// Comma-separated container states that make an image "in use"; an image whose
    /// containers are all in other states is "stopped_only".
    #[arg(
        long = "usage.live-states",
        env = "DOCKER_IMAGE_EXPORTER_USAGE_LIVE_STATES",
        default_value = DEFAULT_LIVE_STATES,
        value_name = "STATES",
        value_delimiter = ',',
        value_parser = parse_state,
    )]
    pub live_states: Vec<String>,

    /// Address to serve HTTP on, host:port (":port" for every IPv4 interface, "[::]:port" for
    /// IPv6 as well).
    #[arg(
        long = "web.listen-address",
        env = "DOCKER_IMAGE_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = DEFAULT_LISTEN_ADDRESS,
        value_name = "ADDRESS",
        value_parser = parse_listen_address,
    )]
    pub listen_address: SocketAddr,

    /// Path under which to serve metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "DOCKER_IMAGE_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = DEFAULT_TELEMETRY_PATH,
        value_name = "PATH",
        value_parser = parse_telemetry_path,
    )]
    pub telemetry_path: String,

    /// Web configuration file (TLS, basic authentication, rate limit, response headers) in the
    /// format of the Prometheus exporter toolkit, so the file of another exporter works here.
    #[arg(
        long = "web.config.file",
        env = "DOCKER_IMAGE_EXPORTER_WEB_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Most HTTP connections served at once; more wait to be accepted.
    #[arg(
        long = "web.max-connections",
        env = "DOCKER_IMAGE_EXPORTER_WEB_MAX_CONNECTIONS",
        default_value = DEFAULT_MAX_CONNECTIONS,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..),
        allow_hyphen_values = true,
    )]
    pub max_connections: u16,

    /// Least severe log level to print.
    #[arg(
        long = "log.level",
        env = "DOCKER_IMAGE_EXPORTER_LOG_LEVEL",
        default_value = DEFAULT_LOG_LEVEL,
        value_name = "LEVEL"
    )]
    pub log_level: LogLevel,

    /// Log line format.
    #[arg(
        long = "log.format",
        env = "DOCKER_IMAGE_EXPORTER_LOG_FORMAT",
        default_value = DEFAULT_LOG_FORMAT,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Everything the exporter needs to start, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub docker_host: Endpoint,
    /// The TLS client configuration for a tcp:// engine, when TLS was asked for.
    pub docker_tls: Option<Arc<ClientConfig>>,
    pub docker_timeout: Duration,
    pub scan_interval: Duration,
    pub live_states: LiveStates,
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    pub max_connections: usize,
    /// What `--web.config.file` configures; nothing without it.
    pub web: Arc<WebConfig>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
}

impl Settings {
    /// Parses the process's command line, exiting with a usage error on bad input.
    pub fn from_command_line() -> Settings {
        match Settings::try_from(Args::parse()) {
            Ok(settings) => settings,
            Err(error) => error.exit(),
        }
    }
}

impl TryFrom<Args> for Settings {
    type Error = clap::Error;

    /// The checks that involve more than one value.
    fn try_from(args: Args) -> Result<Settings, clap::Error> {
        if args.live_states.is_empty() {
            return Err(invalid("--usage.live-states", "name at least one container state"));
        }
        let docker_tls = docker_tls(&args)?;
        let web = match &args.web_config_file {
            None => WebConfig::default(),
            Some(path) => WebConfig::load(path)
                .map_err(|error| invalid("--web.config.file", &error.to_string()))?,
        };
        Ok(Settings {
            docker_host: args.docker_host,
            docker_tls,
            docker_timeout: args.docker_timeout,
            scan_interval: args.scan_interval,
            live_states: LiveStates::new(&args.live_states),
            listen_address: args.listen_address,
            telemetry_path: args.telemetry_path,
            max_connections: usize::from(args.max_connections),
            web: Arc::new(web),
            log_level: args.log_level,
            log_format: args.log_format,
        })
    }
}

/// Loads the engine's TLS files when TLS was asked for. TLS is for tcp:// only: asking for it
/// with a socket path is an error rather than a silent downgrade.
fn docker_tls(args: &Args) -> Result<Option<Arc<ClientConfig>>, clap::Error> {
    if !args.docker_tls_verify {
        return Ok(None);
    }
    if !matches!(args.docker_host, Endpoint::Tcp(_)) {
        return Err(invalid("--docker.tls-verify", "TLS needs a tcp:// --docker.host"));
    }
    // As the Docker client does: ~/.docker unless a directory is named.
    let directory = match &args.docker_cert_path {
        Some(directory) => directory.clone(),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".docker"),
            None => return Err(invalid("--docker.cert-path", "not set, and HOME is unknown")),
        },
    };
    match tls::client_config(&directory) {
        Ok(config) => Ok(Some(config)),
        Err(error) => Err(invalid("--docker.cert-path", &error.to_string())),
    }
}

/// A usage error that names the flag, formatted and exited like clap's own.
fn invalid(flag: &str, message: &str) -> clap::Error {
    Args::command()
        .error(ErrorKind::ValueValidation, format!("invalid value for '{flag}': {message}"))
}

/// As the Docker client reads `DOCKER_HOST`: empty means unset.
fn parse_endpoint(value: &str) -> Result<Endpoint, String> {
    if value.trim().is_empty() {
        return DEFAULT_DOCKER_HOST.parse();
    }
    value.parse()
}

/// Close to how the Docker client reads `DOCKER_TLS_VERIFY`, where any value but the empty
/// one turns TLS on, "0" included: the safe reading of an ambiguous setting. "false" (also
/// what the flag's absence reads as) turns it off.
fn parse_tls_verify(value: &str) -> Result<bool, String> {
    Ok(!value.is_empty() && value != "false")
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value.trim())
        .map_err(|error| format!("{error} (expected a duration such as 500ms, 15s or 2m)"))?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

fn parse_interval(value: &str) -> Result<Duration, String> {
    let interval = parse_duration(value)?;
    if interval < MIN_SCAN_INTERVAL {
        return Err(format!("must be at least {}", humantime::format_duration(MIN_SCAN_INTERVAL)));
    }
    Ok(interval)
}

fn parse_state(value: &str) -> Result<String, String> {
    let state = value.trim().to_ascii_lowercase();
    if state.is_empty() {
        return Err("empty state name".to_owned());
    }
    if !state.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-') {
        return Err(format!("{value:?} is not a container state name"));
    }
    Ok(state)
}

fn parse_listen_address(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    // Like the Go exporters, ":port" means every interface.
    let full = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_owned(),
    };
    let mut addresses = full
        .to_socket_addrs()
        .map_err(|error| format!("{error} (expected host:port, e.g. 127.0.0.1:10351)"))?;
    addresses.next().ok_or_else(|| format!("{value:?} resolves to no address"))
}

fn parse_telemetry_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err("must start with '/'".to_owned());
    }
    if RESERVED_PATHS.contains(&value) {
        return Err(format!("{value} is served by the exporter itself"));
    }
    if value.bytes().any(|b| b.is_ascii_whitespace() || b == b'?' || b == b'#') {
        return Err("must be a plain path".to_owned());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        let argv = std::iter::once("docker-image-exporter").chain(args.iter().copied());
        Settings::try_from(Args::try_parse_from(argv)?)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_hold() {
        // DOCKER_HOST may be set where tests run; pass the flag to pin it.
        let settings = parse(&["--docker.host", DEFAULT_DOCKER_HOST]).expect("defaults parse");
        assert_eq!(settings.docker_host, Endpoint::Unix("/var/run/docker.sock".into()));
        assert_eq!(settings.scan_interval, Duration::from_secs(15));
        assert_eq!(settings.docker_timeout, Duration::from_secs(10));
        assert_eq!(settings.listen_address.port(), 10351);
        assert_eq!(settings.telemetry_path, "/metrics");
        assert!(settings.live_states.contains("restarting"));
        assert!(!settings.live_states.contains("exited"));
    }

    #[test]
    fn values_in_every_style_parse() {
        let settings = parse(&[
            "--scan.interval=2m",
            "--docker.timeout",
            "750ms",
            "--usage.live-states",
            "Running, stopped",
            "--web.listen-address",
            ":9999",
        ])
        .expect("parses");
        assert_eq!(settings.scan_interval, Duration::from_secs(120));
        assert_eq!(settings.docker_timeout, Duration::from_millis(750));
        assert!(settings.live_states.contains("stopped"));
        assert_eq!(settings.listen_address, "0.0.0.0:9999".parse().unwrap());
    }

    #[test]
    fn bad_values_name_their_flag() {
        let cases: [&[&str]; 10] = [
            &["--scan.interval", "soon"],
            &["--scan.interval", "0s"],
            &["--scan.interval", "1ns"],
            &["--web.max-connections", "-1"],
            &["--docker.timeout", "-1s"],
            &["--docker.host", "ssh://host"],
            &["--web.listen-address", "nowhere"],
            &["--web.telemetry-path", "metrics"],
            &["--usage.live-states", "running,not a state"],
            &["--log.format", "xml"],
        ];
        for args in cases {
            let error = parse(args).expect_err(args[0]).to_string();
            assert!(error.contains(args[0]), "{args:?}: {error}");
        }
        let error = parse(&["--docker.host", DEFAULT_DOCKER_HOST, "--docker.tls-verify"])
            .expect_err("TLS on a socket")
            .to_string();
        assert!(error.contains("--docker.tls-verify"), "{error}");
        let missing = ["--docker.host", "tcp://127.0.0.1:2376", "--docker.tls-verify"];
        let error = parse(&[&missing[..], &["--docker.cert-path", "/nonexistent"]].concat())
            .expect_err("no certificates")
            .to_string();
        assert!(error.contains("--docker.cert-path") && error.contains("ca.pem"), "{error}");
        let error = parse(&["--usage.live-states="]).expect_err("empty").to_string();
        assert!(error.contains("--usage.live-states"), "{error}");
    }

    #[test]
    fn docker_environment_values_read_as_the_docker_client_reads_them() {
        let plain = parse(&["--docker.host", DEFAULT_DOCKER_HOST]).expect("parses");
        assert!(plain.docker_tls.is_none());
        assert_eq!(parse_endpoint(""), DEFAULT_DOCKER_HOST.parse());
        for (value, on) in [("1", true), ("0", true), ("yes", true), ("", false), ("false", false)]
        {
            assert_eq!(parse_tls_verify(value), Ok(on), "{value:?}");
        }
    }
}
