//! Outages and odd answers: the exporter against a private Docker engine that the test starts,
//! stops and restarts itself, and against that engine behind a proxy that answers like a
//! broken one. Through all of it the exporter keeps serving, reports the failure in its own
//! metrics within one scan, keeps the last good data, and recovers by itself.

mod common;

use std::time::Duration;

use common::private_engine::PrivateEngine;
use common::proxy::{Proxy, Tamper};
use common::{eventually, Exporter, Exposition};

fn scan_success(exposition: &Exposition) -> Result<f64, String> {
    exposition.value("docker_image_exporter_scan_success", &[])
}

/// Waits for `scan_success` to read `want`, returning that scrape.
fn wait_for_success(exporter: &Exporter, want: f64, within: Duration) -> Exposition {
    eventually(within, || {
        let exposition = exporter.scrape();
        let value = scan_success(&exposition)?;
        (value == want).then_some(exposition).ok_or(format!("scan_success is {value}"))
    })
}

/// The image's count of created containers, which the scenario sets to 1.
fn created(exposition: &Exposition, image: &str) -> Result<f64, String> {
    exposition.value("docker_image_containers", &[("image_id", image), ("state", "created")])
}

fn warnings(exporter: &Exporter) -> usize {
    let logs = exporter.logs();
    logs.iter().filter(|l| l.contains("\"level\":\"WARN\"") && l.contains("scan failed")).count()
}

#[test]
fn engine_down_at_start_stopped_and_restarted() {
    let engine = PrivateEngine::new("docker20", "outage");
    let host = engine.host();
    // A long interval: only retries, events and the event stream can explain quick changes.
    let exporter = Exporter::start(&["--docker.host", &host, "--scan.interval", "30s"]);

    // Down at start: serving, not ready, failing.
    wait_for_success(&exporter, 0.0, Duration::from_secs(10));
    assert_eq!(exporter.get("/readyz").status, 503);

    // The engine comes up: the exporter finds it by itself, within its backoff.
    engine.start();
    let image = engine.populate();
    let exposition = eventually(Duration::from_secs(40), || {
        let exposition = exporter.scrape();
        match (scan_success(&exposition)?, created(&exposition, &image)) {
            (1.0, Ok(1.0)) => Ok(exposition),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(exposition.value("docker_engine_info", &[("version", "20.10.24+dfsg1")]).is_ok());
    assert_eq!(exporter.get("/readyz").status, 200);
    let recovered = |exporter: &Exporter| {
        exporter.logs().iter().filter(|l| l.contains("engine answers again")).count()
    };
    assert_eq!(recovered(&exporter), 1);

    // Stopped while watched: the broken event stream triggers a scan, which fails at once;
    // the last good data stays.
    eventually(Duration::from_secs(10), || {
        let up = exporter.scrape().value("docker_image_exporter_event_stream_up", &[])?;
        (up == 1.0).then_some(()).ok_or("event stream not open yet".to_owned())
    });
    engine.stop();
    let stopped = std::time::Instant::now();
    let exposition = wait_for_success(&exporter, 0.0, Duration::from_secs(10));
    eprintln!("engine stop reported after {:?}", stopped.elapsed());
    assert_eq!(created(&exposition, &image), Ok(1.0), "the last good data must stay");
    assert_eq!(warnings(&exporter), 2, "one warning per outage: {:#?}", exporter.logs());

    // Restarted: recovered by itself, with the event stream back.
    engine.start();
    eventually(Duration::from_secs(40), || {
        let exposition = exporter.scrape();
        let stream = exposition.value("docker_image_exporter_event_stream_up", &[])?;
        match (scan_success(&exposition)?, stream) {
            (1.0, 1.0) => Ok(()),
            other => Err(format!("scan_success and event_stream_up: {other:?}")),
        }
    });
    assert_eq!(recovered(&exporter), 2);
    assert_eq!(warnings(&exporter), 2);
}

#[test]
fn odd_answers_fail_the_scan_and_keep_the_last_good_data() {
    let engine = PrivateEngine::new("docker20", "odd");
    engine.start();
    let image = engine.populate();
    let dir = std::env::temp_dir().join(format!("die-odd-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("proxy directory");
    let proxy = Proxy::start(&dir, engine.socket());
    let exporter = Exporter::start(&[
        "--docker.host",
        &proxy.address,
        "--scan.interval",
        "300ms",
        "--docker.timeout",
        "1s",
    ]);
    wait_for_success(&exporter, 1.0, Duration::from_secs(20));

    let cases = [
        (Tamper::ServerError, "answered 500 Internal Server Error: broken disk"),
        (Tamper::Malformed, "not the expected JSON"),
        (Tamper::Truncated, "cannot reach the engine"),
        (Tamper::Slow(Duration::from_secs(3)), "no complete answer within 1s"),
        (Tamper::Hang, "no complete answer within 1s"),
    ];
    for (tamper, said) in cases {
        let logged_before = exporter.logs().len();
        proxy.set(tamper);
        let exposition = wait_for_success(&exporter, 0.0, Duration::from_secs(10));
        assert_eq!(created(&exposition, &image), Ok(1.0), "{tamper:?}: last good data lost");
        let logs = exporter.logs();
        let explained = logs[logged_before..].iter().any(|line| line.contains(said));
        assert!(explained, "{tamper:?}: no log says {said:?}: {:#?}", &logs[logged_before..]);
        assert_eq!(exporter.get("/healthz").status, 200);

        proxy.set(Tamper::Pass);
        wait_for_success(&exporter, 1.0, Duration::from_secs(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
