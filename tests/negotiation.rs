//! API version negotiation with an engine that refuses clients older than its minimum.
//!
//! Newer Docker releases refuse API versions below 1.44. Docker 26 can be made to do the same
//! with `DOCKER_MIN_API_VERSION`, which this test sets on a private engine. The other
//! direction, an engine older than the client library, is Docker 20.10 (API 1.41) in the
//! engine suite.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::private_engine::PrivateEngine;
use common::{eventually, Exporter};

/// The status line and body of a GET on a unix socket.
fn get(socket: &str, path: &str) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect to the engine");
    let request = format!("GET {path} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn an_engine_that_refuses_old_clients_is_spoken_to_within_its_range() {
    let engine =
        PrivateEngine::new("docker26", "minapi").with_env("DOCKER_MIN_API_VERSION", "1.44");
    engine.start();
    engine.populate();

    // The engine does refuse a client below its minimum.
    let refused = get(&engine.socket(), "/v1.43/version");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("too old"), "{refused}");

    let exporter = Exporter::start(&["--docker.host", &engine.host(), "--scan.interval", "1h"]);
    let exposition = eventually(Duration::from_secs(20), || {
        let exposition = exporter.scrape();
        let success = exposition.value("docker_image_exporter_scan_success", &[])?;
        (success == 1.0).then_some(exposition).ok_or(format!("scan_success {success}"))
    });
    let info = exposition.find("docker_engine_info", &[]);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["api_version"], "1.45", "{:?}", info[0].labels);
    assert!(exposition.value("docker_images", &[("usage", "stopped_only")]) == Ok(1.0));
}
