//! The exporter binary's behaviour that needs no working engine: flags, the HTTP endpoints,
//! and what it does while the engine is unreachable or never answers.

mod common;

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

use common::{eventually, http_request, Exporter};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_docker-image-exporter"))
}

/// A socket path in a fresh directory, where nothing listens.
fn nowhere() -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    let path = format!("unix://{}/absent.sock", dir.path());
    (dir, path)
}

#[test]
fn bad_flag_values_exit_with_a_message_naming_the_flag() {
    let cases: [&[&str]; 6] = [
        &["--scan.interval", "often"],
        &["--docker.timeout", "0s"],
        &["--docker.host", "ftp://example"],
        &["--web.listen-address", "no-port"],
        &["--web.telemetry-path", "/healthz"],
        &["--usage.live-states", ""],
    ];
    for args in cases {
        let output = binary().args(args).output().expect("run the binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?} not named in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn environment_twins_are_validated_too() {
    let output = binary().env("DOCKER_IMAGE_EXPORTER_SCAN_INTERVAL", "later").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--scan.interval"), "{stderr}");
}

#[test]
fn a_listen_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().unwrap().to_string();
    let (_dir, engine) = nowhere();
    let output = binary()
        .args(["--web.listen-address", &address, "--docker.host", &engine])
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen") && stderr.contains(&address), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unreachable_engine_is_reported_not_fatal() {
    let (_dir, engine) = nowhere();
    let exporter = Exporter::start(&["--docker.host", &engine, "--scan.interval", "100ms"]);

    // Several failed scans later the exporter still serves, and says why it has no data.
    let exposition = eventually(Duration::from_secs(10), || {
        let exposition = exporter.scrape();
        let failures =
            exposition.value("docker_image_exporter_scans_total", &[("result", "failure")])?;
        (failures >= 5.0).then_some(exposition).ok_or(format!("{failures} failures so far"))
    });
    assert_eq!(exposition.value("docker_image_exporter_scan_success", &[]), Ok(0.0));
    assert!(exposition.find("docker_image_containers", &[]).is_empty());
    assert!(exposition.find("docker_image_exporter_build_info", &[]).len() == 1);
    assert_eq!(exporter.get("/healthz").status, 200);
    assert_eq!(exporter.get("/readyz").status, 503);

    // One warning for the whole outage, not one per retry.
    let warnings: Vec<String> = exporter
        .logs()
        .into_iter()
        .filter(|line| line.contains("\"level\":\"WARN\"") && line.contains("scan failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("cannot reach the engine"), "{}", warnings[0]);
}

#[test]
fn an_engine_that_never_answers_is_bounded_by_the_timeout() {
    // A socket that accepts connections and never says anything.
    let dir = tempdir::Dir::new();
    let path = format!("{}/silent.sock", dir.path());
    let listener = UnixListener::bind(&path).expect("bind a unix socket");
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(50).flatten() {
            open.push(stream);
        }
    });

    let engine = format!("unix://{path}");
    let exporter = Exporter::start(&[
        "--docker.host",
        &engine,
        "--docker.timeout",
        "300ms",
        "--scan.interval",
        "100ms",
    ]);
    let exposition = eventually(Duration::from_secs(10), || {
        let exposition = exporter.scrape();
        let failures =
            exposition.value("docker_image_exporter_scans_total", &[("result", "failure")])?;
        (failures >= 2.0).then_some(exposition).ok_or(format!("{failures} failures so far"))
    });
    let duration = exposition.value("docker_image_exporter_scan_duration_seconds", &[]).unwrap();
    assert!((0.3..2.0).contains(&duration), "a hung scan took {duration}s");
    let warned = exporter.logs().iter().any(|l| l.contains("no complete answer within 300ms"));
    assert!(warned, "{:#?}", exporter.logs());
    drop(exporter);
    drop(held);
}

#[test]
fn endpoints_answer_as_documented() {
    let (_dir, engine) = nowhere();
    let exporter = Exporter::start(&["--docker.host", &engine, "--web.telemetry-path", "/m"]);

    let landing = exporter.get("/");
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains("href=\"/m\""), "{}", landing.body);
    let metrics = exporter.get("/m");
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(exporter.get("/metrics").status, 404);
    let post = http_request(exporter.address, "POST", "/m");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = http_request(exporter.address, "HEAD", "/m");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn sigterm_and_sigint_stop_it_quickly() {
    for signal in ["-TERM", "-INT"] {
        let (_dir, engine) = nowhere();
        let exporter = Exporter::start(&["--docker.host", &engine]);
        let started = std::time::Instant::now();
        let pid = exporter.pid().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let status = exporter.wait();
        assert!(status.success(), "{signal}: {status}");
        assert!(started.elapsed() < Duration::from_secs(5), "{signal}: {:?}", started.elapsed());
    }
}

/// A temporary directory removed on drop, without a dependency for it.
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path =
                std::env::temp_dir().join(format!("die-test-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path).expect("create a temporary directory");
            Dir(path)
        }

        pub fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn connections_beyond_the_bound_wait_their_turn() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let (_dir, engine) = nowhere();
    let exporter = Exporter::start(&["--docker.host", &engine, "--web.max-connections", "2"]);
    let idle: Vec<TcpStream> =
        (0..2).map(|_| TcpStream::connect(exporter.address).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(200));

    // A third client is not served while two connections are open...
    let mut third = TcpStream::connect(exporter.address).expect("connect");
    third.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    assert!(third.read_to_end(&mut answer).is_err(), "served beyond the bound: {answer:?}");

    // ...and is once one of them closes.
    drop(idle);
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    third.read_to_end(&mut answer).expect("answered after a slot freed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{answer:?}");
}
