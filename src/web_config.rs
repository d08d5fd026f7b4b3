//! The web configuration file of `--web.config.file`: TLS, basic authentication, extra response
//! headers and a request rate limit, in the Prometheus exporter toolkit's format.
//!
//! One file serves this exporter and node_exporter alike: the keys, their defaults and their
//! checks follow the toolkit's documentation
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>).
//! Where the toolkit would quietly do something other than what the file asks, or where rustls
//! cannot do what it asks (TLS 1.0, a cipher suite it lacks), loading fails with a message that
//! names the key instead.
//!
//! The file is read once, at start. Certificate and key files are the exception: they are
//! checked again on TLS handshakes, so that a renewed certificate is served without a restart.

mod basic_auth;
mod certs;
mod client_auth;
mod rate_limit;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

use self::basic_auth::BasicAuth;
use self::rate_limit::RateLimit;

/// Why the web configuration cannot be used. Every message names the file, and the key at fault
/// where there is one, so that the operator knows what to edit.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    /// Not YAML, or not the toolkit's schema: an unknown key, a value of the wrong type.
    #[error("web config file {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },

    /// A well-formed value that cannot be used; `key` is its dotted place in the file.
    #[error("web config file {}: {key}: {message}", path.display())]
    Invalid { path: PathBuf, key: String, message: String },
}

/// A value in the file that cannot be used, before the file's path is attached.
#[derive(Debug)]
pub(crate) struct Problem {
    key: String,
    message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into() }
    }

    fn in_file(self, path: &Path) -> WebConfigError {
        WebConfigError::Invalid { path: path.to_owned(), key: self.key, message: self.message }
    }
}

/// The file as written. Unknown keys are refused, as the toolkit refuses them, so that a typo
/// never leaves a listener less protected than its operator believes.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "web configuration")]
struct FileContents {
    tls_server_config: Option<tls::TlsSection>,
    http_server_config: Option<HttpSection>,
    rate_limit: Option<rate_limit::RateLimitSection>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The response headers the toolkit lets the file set, with the values it accepts where those
/// are an enumeration. Keeping to its list keeps one file valid for every exporter.
const CONFIGURABLE_HEADERS: [(&str, &[&str]); 5] = [
    ("Content-Security-Policy", &[]),
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
];

/// The checked web configuration, ready for the server. The default configures nothing: plain
/// HTTP, no authentication, no extra headers, no rate limit, as without `--web.config.file`.
#[derive(Default)]
pub struct WebConfig {
    tls: Option<TlsAcceptor>,
    basic_auth: Option<BasicAuth>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimit>,
}

impl WebConfig {
    /// Reads and checks the file at `path`, and the certificate files it names (relative paths
    /// are taken from the file's directory, as the toolkit takes them).
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| WebConfigError::Read { path: path.to_owned(), source })?;
        let directory = path.parent().unwrap_or(Path::new(""));
        WebConfig::from_yaml(&text, directory).map_err(|error| match error {
            FromYamlError::Syntax(message) => {
                WebConfigError::Syntax { path: path.to_owned(), message }
            }
            FromYamlError::Invalid(problem) => problem.in_file(path),
        })
    }

    /// Checks the file's text; `directory` anchors relative paths.
    ///
    /// YAML is read with `serde_norway`, a fork of `serde_yaml` (archived by its author) with
    /// the same API, kept up together with its own port of libyaml. `serde_yaml_ng` still
    /// builds on `serde_yaml`'s port, which stopped with it; `serde-saphyr` needs a newer
    /// compiler than this crate's `rust-version`.
    fn from_yaml(text: &str, directory: &Path) -> Result<WebConfig, FromYamlError> {
        // An empty file, or one of comments only, is YAML's null: nothing configured.
        let contents: Option<FileContents> = serde_norway::from_str(text)
            .map_err(|error| FromYamlError::Syntax(error.to_string()))?;
        let contents = contents.unwrap_or_default();

        let http = contents.http_server_config.unwrap_or_default();
        // NOTE: the toolkit's default is true, but it only ever applies over TLS; the server
        // here speaks HTTP/1.1 alone, so a file that asks for HTTP/2 is told so.
        if http.http2 == Some(true) {
            let message = "HTTP/2 is not served, only HTTP/1.1; set it to false or remove it";
            return Err(Problem::new("http_server_config.http2", message).into());
        }
        let headers = extra_headers(http.headers.unwrap_or_default())?;

        let tls = match contents.tls_server_config {
            Some(section) => section.into_server_config(directory)?.map(TlsAcceptor::from),
            None => None,
        };
        let users = contents.basic_auth_users.unwrap_or_default();
        let basic_auth = if users.is_empty() { None } else { Some(BasicAuth::new(users)?) };
        let rate_limit = match contents.rate_limit {
            Some(section) => section.into_rate_limit()?,
            None => None,
        };
        Ok(WebConfig { tls, basic_auth, headers, rate_limit })
    }

    /// The acceptor that wraps each accepted connection in TLS; `None` when the file has no
    /// `tls_server_config`, so the server speaks plain HTTP. Clones are cheap and share the
    /// certificate, which is reloaded when its files change.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.clone()
    }

    /// Whether the file asks for basic authentication.
    pub fn requires_authorization(&self) -> bool {
        self.basic_auth.is_some()
    }

    /// Whether a request with this `Authorization` header may be answered: always when the
    /// file names no users, otherwise only for a user of `basic_auth_users` with the right
    /// password. Answering 401 with `WWW-Authenticate: Basic` is the caller's part.
    ///
    /// A credential seen to pass before is answered from memory; any other costs a bcrypt
    /// verification, tens of milliseconds of CPU at the usual cost of 10, so call this from
    /// `tokio::task::spawn_blocking` rather than on the runtime's workers.
    pub fn authorize(&self, authorization: Option<&HeaderValue>) -> bool {
        match &self.basic_auth {
            None => true,
            Some(basic_auth) => basic_auth.authorize(authorization),
        }
    }

    /// The response headers of `http_server_config.headers`, to add to every answer.
    pub fn extra_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Whether one more request fits `rate_limit` now; always true without one. A refused
    /// request is the caller's to answer with 429.
    pub fn admit_request(&self) -> bool {
        match &self.rate_limit {
            None => true,
            Some(rate_limit) => rate_limit.admit(),
        }
    }
}

/// Shows what is configured; rustls's acceptor prints nothing of itself.
impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth", &self.basic_auth)
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// What checking the file's text can find wrong, before the file's path is attached.
#[derive(Debug)]
enum FromYamlError {
    Syntax(String),
    Invalid(Problem),
}

impl From<Problem> for FromYamlError {
    fn from(problem: Problem) -> FromYamlError {
        FromYamlError::Invalid(problem)
    }
}

/// Checks `http_server_config.headers` against the toolkit's list; a blank value means unset.
fn extra_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Problem> {
    let mut checked = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = CONFIGURABLE_HEADERS.iter().find(|(known, _)| *known == name)
        else {
            let names: Vec<&str> = CONFIGURABLE_HEADERS.iter().map(|(name, _)| *name).collect();
            let message =
                format!("this header cannot be set; the file may set {}", names.join(", "));
            return Err(Problem::new(key, message));
        };

        // Enumerated headers take one of their values; the others may be left blank.
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            let message = format!("{value:?} is not one of {}", allowed.join(", "));
            return Err(Problem::new(key, message));
        }
        if value.is_empty() {
            continue;
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| Problem::new(&key, "not a valid header value"))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Problem::new(&key, "not a valid header name"))?;
        checked.push((name, value));
    }
    Ok(checked)
}

/// `path` as the file names it, anchored at the file's directory when relative.
pub(crate) fn resolve_path(directory: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        directory.join(path)
    }
}

#[cfg(test)]
mod tests;
