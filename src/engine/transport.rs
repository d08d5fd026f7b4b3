//! The HTTP connection to the engine, over a Unix socket or TCP.
//!
//! One client serves both the client library and the exporter's own list calls, so that a
//! scan shares pooled connections and a single notion of where the engine is.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use tokio_rustls::rustls::ClientConfig;

/// The error type of request bodies; bodies here are empty or come from the client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request to the engine.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// Where the engine listens, parsed from `--docker.host` / `DOCKER_HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///path/to/docker.sock`
    Unix(PathBuf),
    /// `tcp://host:port`, spoken as plain HTTP.
    Tcp(String),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!("{value:?}: a unix socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let authority = value.strip_prefix("tcp://").or_else(|| value.strip_prefix("http://"));
        if let Some(authority) = authority {
            let authority = authority.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(format!("{value:?}: expected tcp://host:port"));
            }
            // Credentials in the address would end up in logs; the engine takes none anyway.
            if authority.contains('@') {
                return Err(format!("{value:?}: user names and passwords are not supported"));
            }
            // Docker's own default for tcp:// without a port.
            let authority = if has_port(authority) {
                authority.to_owned()
            } else {
                format!("{authority}:2375")
            };
            authority
                .parse::<Uri>()
                .map_err(|error| format!("{value:?}: not a host and port: {error}"))?;
            let port = authority.rsplit_once(':').map_or("", |(_, port)| port);
            if !matches!(port.parse::<u16>(), Ok(1..)) {
                return Err(format!("{value:?}: the port must be a number from 1 to 65535"));
            }
            return Ok(Endpoint::Tcp(authority));
        }
        Err(format!("{value:?}: unsupported address; use unix:///path or tcp://host:port"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

/// Whether `host:port` ends in a port; a bracketed IPv6 host alone has colons but no port.
fn has_port(authority: &str) -> bool {
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    authority[host_end..]
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// A pooled HTTP client bound to one engine endpoint.
#[derive(Clone)]
pub struct Transport {
    endpoint: Endpoint,
    client: Connection,
}

#[derive(Clone)]
enum Connection {
    Unix(Client<UnixConnector, RequestBody>),
    Tcp(Client<HttpConnector, RequestBody>),
    Tls(Client<HttpsConnector<HttpConnector>, RequestBody>),
}

impl Transport {
    /// A client for `endpoint`; with `tls`, a TCP endpoint is spoken to over TLS only.
    pub fn new(endpoint: Endpoint, tls: Option<Arc<ClientConfig>>) -> Transport {
        let builder = Client::builder(TokioExecutor::new());
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        let client = match (&endpoint, tls) {
            (Endpoint::Unix(_), _) => Connection::Unix(builder.build(UnixConnector)),
            (Endpoint::Tcp(_), None) => Connection::Tcp(builder.build(tcp)),
            (Endpoint::Tcp(_), Some(config)) => {
                // https_only: a plain http:// URI fails rather than going out unencrypted.
                tcp.enforce_http(false);
                let connector = HttpsConnectorBuilder::new()
                    .with_tls_config(Arc::unwrap_or_clone(config))
                    .https_only()
                    .enable_http1()
                    .wrap_connector(tcp);
                Connection::Tls(builder.build(connector))
            }
        };
        Transport { endpoint, client }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends a request, taking only the path and query from its URI: the endpoint decides
    /// where it goes.
    pub async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        *request.uri_mut() = self.uri(&path);
        match &self.client {
            Connection::Unix(client) => client.request(request).await,
            Connection::Tcp(client) => client.request(request).await,
            Connection::Tls(client) => client.request(request).await,
        }
    }

    fn scheme(&self) -> &'static str {
        match self.client {
            Connection::Tls(_) => "https",
            _ => "http",
        }
    }

    /// The full URI of a path on the engine.
    fn uri(&self, path_and_query: &str) -> Uri {
        match &self.endpoint {
            Endpoint::Unix(socket) => hyperlocal::Uri::new(socket, path_and_query).into(),
            // NOTE: the authority was checked when the endpoint was parsed, and the path comes
            // from a request that already parsed, so the joined URI parses too.
            Endpoint::Tcp(authority) => format!("{}://{authority}{path_and_query}", self.scheme())
                .parse()
                .unwrap_or_else(|_| Uri::from_static("http://invalid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let unix: Endpoint = "unix:///var/run/docker.sock".parse().expect("unix");
        assert_eq!(unix, Endpoint::Unix("/var/run/docker.sock".into()));
        let tcp: Endpoint = "tcp://127.0.0.1:2376".parse().expect("tcp");
        assert_eq!(tcp, Endpoint::Tcp("127.0.0.1:2376".into()));
        let bare: Endpoint = "tcp://localhost".parse().expect("tcp without port");
        assert_eq!(bare, Endpoint::Tcp("localhost:2375".into()));
        let v6: Endpoint = "tcp://[::1]:2375".parse().expect("ipv6");
        assert_eq!(v6, Endpoint::Tcp("[::1]:2375".into()));
        let v6_bare: Endpoint = "tcp://[::1]".parse().expect("ipv6 without port");
        assert_eq!(v6_bare, Endpoint::Tcp("[::1]:2375".into()));
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong() {
        let bad_ones = [
            "ssh://host",
            "unix://relative.sock",
            "tcp://",
            "tcp://host:1/x",
            "/x",
            "tcp://127.0.0.1:99999",
            "tcp://127.0.0.1:0",
            "tcp://user:secret@127.0.0.1:2375",
        ];
        for bad in bad_ones {
            let error = bad.parse::<Endpoint>().expect_err(bad);
            assert!(error.contains(bad), "{error}");
        }
    }
}
