//! The file's schema and the checks that need no certificate.

use super::*;

fn load(text: &str) -> Result<WebConfig, FromYamlError> {
    WebConfig::from_yaml(text, Path::new("/nonexistent"))
}

/// The key a refused file is blamed on, or the syntax message.
fn refusal(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(FromYamlError::Syntax(message)) => message,
        Err(FromYamlError::Invalid(problem)) => format!("{}: {}", problem.key, problem.message),
    }
}

#[test]
fn an_empty_file_configures_nothing() {
    let texts = ["", "# nothing yet\n", "{}", "tls_server_config:\nbasic_auth_users: {}\n"];
    let loaded = texts.map(|text| load(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}")));
    for config in loaded.into_iter().chain([WebConfig::default()]) {
        assert!(config.tls_acceptor().is_none());
        assert!(!config.requires_authorization());
        assert!(config.authorize(None));
        assert!(config.extra_headers().is_empty());
        assert!(config.admit_request());
    }
}

#[test]
fn unknown_keys_are_refused_with_their_place() {
    let message = refusal("tls_server_config:\n  cert_fiel: server.crt\n");
    assert!(message.contains("tls_server_config") && message.contains("cert_fiel"), "{message}");
    let message = refusal("basic_auth:\n  alice: x\n");
    assert!(message.contains("basic_auth"), "{message}");
    let message = refusal("http_server_config:\n  header: {}\n");
    assert!(message.contains("http_server_config") && message.contains("header"), "{message}");
}

#[test]
fn values_of_the_wrong_type_are_refused_with_their_place() {
    let message = refusal("tls_server_config:\n  prefer_server_cipher_suites: maybe\n");
    assert!(message.contains("prefer_server_cipher_suites"), "{message}");
}

#[test]
fn headers_follow_the_toolkit_list() {
    let text = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
                Strict-Transport-Security: max-age=31536000\n    Content-Security-Policy: ''\n";
    let config = load(text).expect("valid headers");
    let headers: Vec<(&str, &str)> = (config.extra_headers().iter())
        .map(|(name, value)| (name.as_str(), value.to_str().expect("ASCII")))
        .collect();
    assert_eq!(
        headers,
        [("strict-transport-security", "max-age=31536000"), ("x-frame-options", "deny")]
    );

    let message = refusal("http_server_config:\n  headers:\n    Server: mine\n");
    assert!(message.starts_with("http_server_config.headers.Server:"), "{message}");
    let message = refusal("http_server_config:\n  headers:\n    X-Content-Type-Options: yes\n");
    assert!(message.contains("nosniff"), "{message}");
}

#[test]
fn http2_is_refused_only_when_asked_for() {
    assert!(load("http_server_config:\n  http2: false\n").is_ok());
    let message = refusal("http_server_config:\n  http2: true\n");
    assert!(message.starts_with("http_server_config.http2:"), "{message}");
}

#[test]
fn tls_options_without_a_certificate_are_refused() {
    let message = refusal("tls_server_config:\n  min_version: TLS13\n");
    assert!(message.starts_with("tls_server_config:"), "{message}");
    let message = refusal("tls_server_config:\n  cert_file: a.crt\n  cert: inline\n");
    assert!(message.starts_with("tls_server_config.cert:"), "{message}");
}

#[test]
fn a_missing_certificate_file_is_named_with_its_directory() {
    let message = refusal("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    assert!(message.starts_with("tls_server_config.cert_file:"), "{message}");
    assert!(message.contains("/nonexistent/server.crt"), "{message}");
}

#[test]
fn a_rate_limit_is_read() {
    let config = load("rate_limit:\n  interval: 1m\n  burst: 1\n").expect("valid limit");
    assert!(config.admit_request());
    assert!(!config.admit_request());
    assert!(load("rate_limit:\n  interval: 0s\n").expect("off").admit_request());
    let message = refusal("rate_limit:\n  interval: soon\n  burst: 1\n");
    assert!(message.starts_with("rate_limit.interval:"), "{message}");
}

#[test]
fn relative_paths_follow_the_file() {
    assert_eq!(resolve_path(Path::new("/etc/die"), "tls/a.crt"), Path::new("/etc/die/tls/a.crt"));
    assert_eq!(resolve_path(Path::new("/etc/die"), "/srv/a.crt"), Path::new("/srv/a.crt"));
    assert_eq!(resolve_path(Path::new(""), "a.crt"), Path::new("a.crt"));
}

#[test]
fn a_malformed_interval_is_named() {
    let message = refusal("rate_limit:\n  interval: [1]\n  burst: 1\n");
    assert!(message.contains("rate_limit.interval") && message.contains("1m30s"), "{message}");
    // Go's YAML also reads a bare number, as nanoseconds.
    assert!(load("rate_limit:\n  interval: 1000000000\n  burst: 1\n").is_ok());
}
