//! The HTTP server: the telemetry path, a landing page, and health and readiness probes.
//!
//! Scrapes are answered from what the scanner last published and never reach the engine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::render::CONTENT_TYPE as EXPOSITION_CONTENT_TYPE;
use crate::scanner::{stop_requested, Published};
use crate::web_config::WebConfig;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for requests under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Binds the listening socket, so that a taken address is reported before anything starts.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(address).await
}

/// What every request handler needs.
#[derive(Clone)]
pub struct Routes {
    pub published: Arc<Published>,
    pub telemetry_path: Arc<str>,
    /// TLS, basic authentication, rate limit and extra headers, from `--web.config.file`.
    pub web: Arc<WebConfig>,
}

/// Accepts connections until `shutdown` turns true, then lets requests under way finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        // At the bound, stop accepting: further clients wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop_requested(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, mostly: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop_requested(&mut shutdown) => break,
        };

        // Each connection is served on a task of its own, TLS handshake included, so that a
        // slow client never holds up the accept loop.
        let routes = routes.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = routes.web.tls_acceptor();
            let service = service_fn(move |request| routes.clone().guarded(request));
            let result = match tls {
                None => watcher.watch(http(TokioIo::new(stream), service)).await,
                Some(acceptor) => {
                    // A client that never finishes its handshake must not hold a slot.
                    let handshake =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => watcher.watch(http(TokioIo::new(stream), service)).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }

    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::debug!("requests still under way at shutdown were dropped");
    }
}

/// An HTTP/1.1 connection over `io`, with the header read timeout.
fn http<I, S>(io: I, service: S) -> http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>>,
{
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service)
}

impl Routes {
    /// Applies the web config around [`Routes::answer`]: the rate limit, then basic
    /// authentication (on every path, as the exporter toolkit does), then extra headers.
    async fn guarded(
        self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let mut response = if !self.web.admit_request() {
            text(StatusCode::TOO_MANY_REQUESTS, "too many requests\n")
        } else if self.web.requires_authorization() {
            // A bcrypt check takes tens of milliseconds: keep it off the runtime's workers.
            let header = request.headers().get(AUTHORIZATION).cloned();
            let web = self.web.clone();
            let check = tokio::task::spawn_blocking(move || web.authorize(header.as_ref()));
            if check.await.unwrap_or(false) {
                self.answer(&request)
            } else {
                let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
                let challenge = HeaderValue::from_static("Basic realm=\"docker-image-exporter\"");
                response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
                response
            }
        } else {
            self.answer(&request)
        };
        for (name, value) in self.web.extra_headers() {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(response)
    }

    /// Answers one request; every answer is built from memory.
    pub fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let known = path == &*self.telemetry_path || ["/", "/healthz", "/readyz"].contains(&path);
        if !known {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }

        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.published.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "no successful scan yet\n"),
            "/" => self.landing_page(),
            _ => {
                let mut response = Response::new(Full::new(self.published.exposition()));
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(EXPOSITION_CONTENT_TYPE));
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }

    fn landing_page(&self) -> Response<Full<Bytes>> {
        let path = html_escape(&self.telemetry_path);
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
             <title>docker-image-exporter</title></head><body>\n\
             <h1>docker-image-exporter</h1>\n\
             <p>Container references per image, by state, for Prometheus.</p>\n\
             <ul><li><a href=\"{path}\">Metrics</a></li>\n\
             <li><a href=\"/healthz\">Health</a></li>\n\
             <li><a href=\"/readyz\">Readiness</a></li></ul>\n\
             <p>Version {}</p>\n</body></html>\n",
            env!("CARGO_PKG_VERSION")
        );
        let mut response = Response::new(Full::new(Bytes::from(body)));
        let content_type = HeaderValue::from_static("text/html; charset=utf-8");
        response.headers_mut().insert(CONTENT_TYPE, content_type);
        response
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
