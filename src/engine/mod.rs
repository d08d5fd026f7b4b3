//! Read-only access to the container engine: connecting, and the two list calls of a scan.
//!
//! The client library negotiates the API version and reads the engine's version. The list
//! calls go through the same connection but are decoded by [`crate::model`], which accepts
//! any container state and tolerates the fields some engines leave out.
//!
//! Every request here is a `GET`: the exporter never changes anything on the engine.

mod events;
pub mod tls;
mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio_rustls::rustls::ClientConfig;

pub use events::{Event, EventStream};
pub use transport::{Endpoint, Transport};

use crate::model::{ContainerSummary, ImageSummary};
use crate::render::EngineInfo;
use transport::RequestBody;

/// What the exporter was doing when the engine failed it; it names the failure in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Negotiate,
    Version,
    Info,
    ListImages,
    ListContainers,
    Events,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Negotiate => "negotiating the API version",
            Operation::Version => "reading the engine version",
            Operation::Info => "reading the engine info",
            Operation::ListImages => "listing images",
            Operation::ListContainers => "listing containers",
            Operation::Events => "following the event stream",
        })
    }
}

/// A failed request to the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{operation}: cannot reach the engine at {endpoint}: {message}")]
    Unreachable { operation: Operation, endpoint: String, message: String },

    #[error("{operation}: no complete answer within {timeout:?}")]
    Timeout { operation: Operation, timeout: Duration },

    #[error("{operation}: the engine answered {status}: {message}")]
    Status { operation: Operation, status: StatusCode, message: String },

    #[error("{operation}: the engine's answer is not the expected JSON: {source}")]
    Decode { operation: Operation, source: serde_json::Error },
}

impl EngineError {
    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            EngineError::Unreachable { operation, .. }
            | EngineError::Timeout { operation, .. }
            | EngineError::Status { operation, .. }
            | EngineError::Decode { operation, .. } => *operation,
        }
    }
}

/// The engine, and what connecting to it established.
pub struct Engine {
    transport: Transport,
    timeout: Duration,
    session: Option<Session>,
}

/// What holds between a successful connect and the next failure.
struct Session {
    /// The API version prefix of every request, e.g. `/v1.41`.
    prefix: String,
    info: EngineInfo,
}

/// `GET /info`, reduced to the storage facts the exporter reports.
#[derive(Debug, Default, Deserialize)]
struct InfoSummary {
    #[serde(rename = "Driver", default)]
    driver: Option<String>,
    /// Pairs such as `["driver-type", "io.containerd.snapshotter.v1"]`.
    #[serde(rename = "DriverStatus", default)]
    driver_status: Option<Vec<Vec<String>>>,
}

impl Engine {
    /// An engine at `endpoint`, over TLS when `tls` is given; nothing is sent until the
    /// first [`Engine::connect`].
    pub fn new(endpoint: Endpoint, tls: Option<Arc<ClientConfig>>, timeout: Duration) -> Engine {
        Engine { transport: Transport::new(endpoint, tls), timeout, session: None }
    }

    pub fn endpoint(&self) -> &Endpoint {
        self.transport.endpoint()
    }

    /// Negotiates the API version and reads what the engine says of itself, unless a
    /// connection is already established.
    ///
    /// Negotiation asks `/version` without a version prefix and settles on the lower of the
    /// engine's and the client library's API versions, so an engine older than the library
    /// (Docker 20.10 speaks 1.41) works, and so does one that refuses old clients.
    pub async fn connect(&mut self) -> Result<&EngineInfo, EngineError> {
        let session = match self.session.take() {
            Some(session) => session,
            None => self.open_session().await?,
        };
        Ok(&self.session.insert(session).info)
    }

    /// Forgets the negotiated session, so that the next scan connects afresh: the engine may
    /// have been restarted or replaced by another version.
    pub fn disconnect(&mut self) {
        self.session = None;
    }

    /// What the engine said about itself at the last connect.
    pub fn info(&self) -> Option<&EngineInfo> {
        self.session.as_ref().map(|s| &s.info)
    }

    /// `GET /images/json?all=1`: every image, including the untagged parents of local
    /// builds that the default listing hides.
    pub async fn list_images(&self) -> Result<Vec<ImageSummary>, EngineError> {
        self.get_json(Operation::ListImages, "/images/json?all=1").await
    }

    /// `GET /containers/json?all=1`: every container in every state; the default listing
    /// shows running ones only.
    pub async fn list_containers(&self) -> Result<Vec<ContainerSummary>, EngineError> {
        self.get_json(Operation::ListContainers, "/containers/json?all=1").await
    }

    /// Opens the engine's stream of container and image events. Only the answer's headers
    /// are bounded by the request timeout: a quiet stream is normal.
    pub async fn events(&self) -> Result<EventStream, EngineError> {
        let operation = Operation::Events;
        let Some(session) = &self.session else {
            return Err(self.unreachable(operation, "not connected".to_owned()));
        };
        let request = self.get_request(operation, &session.prefix, events::EVENTS_PATH)?;
        let response = self
            .bounded(operation, self.transport.send(request))
            .await?
            .map_err(|error| self.unreachable(operation, error_chain(&error)))?;
        let status = response.status();
        if !status.is_success() {
            let body = self.bounded(operation, response.into_body().collect()).await?;
            let body = body.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(EngineError::Status { operation, status, message: error_message(&body) });
        }
        Ok(EventStream::new(response.into_body()))
    }

    /// Whether a session is established.
    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    async fn open_session(&self) -> Result<Session, EngineError> {
        let docker = self.client_library()?;
        let docker = self
            .bounded(Operation::Negotiate, docker.negotiate_version())
            .await?
            .map_err(|error| self.library_error(Operation::Negotiate, error))?;
        let negotiated = docker.client_version();
        let prefix = format!("/v{}.{}", negotiated.major_version, negotiated.minor_version);

        let version = self
            .bounded(Operation::Version, docker.version())
            .await?
            .map_err(|error| self.library_error(Operation::Version, error))?;
        let info: InfoSummary = self.get_json_at(Operation::Info, &prefix, "/info").await?;

        let is_podman = (version.components.iter().flatten())
            .any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let containerd_store = (info.driver_status.iter().flatten())
            .any(|pair| pair.iter().any(|v| v.contains("containerd.snapshotter")));
        let driver = info.driver.unwrap_or_default();
        let storage_driver =
            if containerd_store { format!("containerd-snapshotter/{driver}") } else { driver };
        let info = EngineInfo {
            engine: if is_podman { "podman" } else { "docker" }.to_owned(),
            version: version.version.unwrap_or_default(),
            api_version: format!("{}.{}", negotiated.major_version, negotiated.minor_version),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            storage_driver,
        };
        tracing::debug!(
            engine = %info.engine,
            version = %info.version,
            api_version = %info.api_version,
            "negotiated with the engine"
        );
        Ok(Session { prefix, info })
    }

    /// The client library, speaking through this engine's transport.
    fn client_library(&self) -> Result<Docker, EngineError> {
        let transport = self.transport.clone();
        let send = move |request: bollard::BollardRequest| {
            let transport = transport.clone();
            async move {
                let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
                transport.send(request).await.map_err(|error| bollard::errors::Error::IOError {
                    err: std::io::Error::other(error),
                })
            }
        };
        // The library keeps its own whole-second timeout; ours, below, is the one that holds.
        let seconds = self.timeout.as_secs().max(1) + 1;
        Docker::connect_with_custom_transport(
            send,
            Some("http://engine"),
            seconds,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|error| self.library_error(Operation::Negotiate, error))
    }

    /// A GET of `path` under the negotiated API version, decoded as JSON.
    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: Operation,
        path: &str,
    ) -> Result<T, EngineError> {
        let Some(session) = &self.session else {
            return Err(EngineError::Unreachable {
                operation,
                endpoint: self.endpoint().to_string(),
                message: "not connected".to_owned(),
            });
        };
        self.get_json_at(operation, &session.prefix, path).await
    }

    async fn get_json_at<T: DeserializeOwned>(
        &self,
        operation: Operation,
        prefix: &str,
        path: &str,
    ) -> Result<T, EngineError> {
        let body = self.bounded(operation, self.get(operation, prefix, path)).await??;
        tracing::trace!(%operation, bytes = body.len(), "engine answered");
        serde_json::from_slice(&body).map_err(|source| EngineError::Decode { operation, source })
    }

    /// A GET request of `path` under `prefix`. GET is the only method the exporter uses.
    fn get_request(
        &self,
        operation: Operation,
        prefix: &str,
        path: &str,
    ) -> Result<Request<RequestBody>, EngineError> {
        let empty: RequestBody =
            Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
        Request::builder()
            .method(Method::GET)
            .uri(format!("{prefix}{path}"))
            .header(hyper::header::ACCEPT, "application/json")
            .body(empty)
            .map_err(|error| self.unreachable(operation, error.to_string()))
    }

    /// A GET whose whole body is read, or the error that stopped it.
    async fn get(
        &self,
        operation: Operation,
        prefix: &str,
        path: &str,
    ) -> Result<Bytes, EngineError> {
        let request = self.get_request(operation, prefix, path)?;
        let response = (self.transport.send(request).await)
            .map_err(|error| self.unreachable(operation, error_chain(&error)))?;
        let status = response.status();
        let body = (response.into_body().collect().await)
            .map_err(|error| self.unreachable(operation, error_chain(&error)))?
            .to_bytes();
        if !status.is_success() {
            return Err(EngineError::Status { operation, status, message: error_message(&body) });
        }
        Ok(body)
    }

    /// Runs `future` within the request timeout.
    async fn bounded<F: std::future::Future>(
        &self,
        operation: Operation,
        future: F,
    ) -> Result<F::Output, EngineError> {
        (tokio::time::timeout(self.timeout, future).await)
            .map_err(|_| EngineError::Timeout { operation, timeout: self.timeout })
    }

    fn unreachable(&self, operation: Operation, message: String) -> EngineError {
        EngineError::Unreachable { operation, endpoint: self.endpoint().to_string(), message }
    }

    /// Sorts the client library's errors into ours.
    fn library_error(&self, operation: Operation, error: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as Library;
        match error {
            Library::DockerResponseServerError { status_code, message } => EngineError::Status {
                operation,
                status: StatusCode::from_u16(status_code).unwrap_or(StatusCode::BAD_GATEWAY),
                message: error_message(message.as_bytes()),
            },
            Library::JsonDataError { message, .. } => {
                EngineError::Decode { operation, source: serde::de::Error::custom(message) }
            }
            Library::JsonSerdeError { err } => EngineError::Decode { operation, source: err },
            Library::RequestTimeoutError => {
                EngineError::Timeout { operation, timeout: self.timeout }
            }
            other => self.unreachable(operation, error_chain(&other)),
        }
    }
}

/// The `message` of an engine's JSON error body, or the body itself, shortened.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed.message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An error and its sources, joined the way error chains read: "outer: inner: root".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
