//! The accounting on payloads recorded from a real Docker 20.10 engine, and the HTTP server
//! serving their exposition, compared with a golden file.
//!
//! The recorded scenario: a restarting container of `example/base:1`; `example/app:1` moved
//! to a new image while a running container kept the old one; `example/web:1` with three tags,
//! one paused and one exited container; a created container of `example/job:1`; an exited
//! container of a force-removed image; an untagged parent of the running `example/child:1`.
//! The engine reported `Containers` and `SharedSize` as -1 ("not computed") throughout.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use docker_image_exporter::model::{ContainerSummary, ImageSummary};
use docker_image_exporter::render::{render, BuildInfo, EngineInfo, ScanStatus};
use docker_image_exporter::scanner::Published;
use docker_image_exporter::server::{serve, Routes};
use docker_image_exporter::snapshot::{Image, LiveStates, Snapshot, Usage};

const BASE: &str = "sha256:6fbc2bb4567b67077774f42017d4f05489936fb2967c8c6e4c360927a37a1ccf";
const APP_OLD: &str = "sha256:7a55524ddb784d183a93acac4364bd73acbfbfee4aad1c504a1c734cdf4f3138";
const APP_NEW: &str = "sha256:f3d04815f29a6fea47caa647a13eca631919ed93a05eba7fc4679caed35460a3";
const WEB: &str = "sha256:07a8b0c9df626e435d653d805cb8c3d5fdd8c089aa01460bb74e71249c678e30";
const JOB: &str = "sha256:d0c76e922cc58e0578adeeb9193f388dc5950d11dda86881e2bc2e1ec538849e";
const GONE: &str = "sha256:dca7b4388a7df550a46ec143483762818bfcbf6f5dcda9cc8c81f4c82e1a257f";
const PARENT: &str = "sha256:bf866dc02677bc053231e15aabc2d27fdaa84855209cb026e93519e03f565099";
const CHILD: &str = "sha256:2d1b74cae5ff43b7b5435a24cb0f7b3bac703ae230660b5647d8bd18d6907a95";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-20.10").join(name)
}

fn recorded_snapshot() -> Snapshot {
    let images: Vec<ImageSummary> =
        serde_json::from_slice(&std::fs::read(fixture("images.json")).expect("images.json"))
            .expect("recorded image list decodes");
    let containers: Vec<ContainerSummary> =
        serde_json::from_slice(&std::fs::read(fixture("containers.json")).expect("containers"))
            .expect("recorded container list decodes");
    Snapshot::build(images, containers, &LiveStates::new(["running", "paused", "restarting"]))
}

fn image<'a>(snapshot: &'a Snapshot, id: &str) -> &'a Image {
    snapshot.images.iter().find(|i| i.id == id).unwrap_or_else(|| panic!("{id} not found"))
}

fn state_count(snapshot: &Snapshot, id: &str, state: &str) -> u64 {
    let slot = snapshot.states.iter().position(|s| s == state).expect("known state");
    image(snapshot, id).references[slot]
}

#[test]
fn recorded_payloads_are_accounted_for() {
    let snapshot = recorded_snapshot();
    // Seven listed images and the force-removed one.
    assert_eq!(snapshot.images.len(), 8);

    let cases = [
        (BASE, "example/base:1", "restarting", Usage::InUse),
        (APP_OLD, "<none>", "running", Usage::InUse),
        (WEB, "example/web:1", "paused", Usage::InUse),
        (JOB, "example/job:1", "created", Usage::StoppedOnly),
        (GONE, "<missing>", "exited", Usage::StoppedOnly),
        (CHILD, "example/child:1", "running", Usage::InUse),
    ];
    for (id, name, state, usage) in cases {
        assert_eq!(image(&snapshot, id).name, name, "{id}");
        assert_eq!(state_count(&snapshot, id, state), 1, "{name} {state}");
        assert_eq!(image(&snapshot, id).usage, usage, "{name}");
    }
    assert_eq!(state_count(&snapshot, WEB, "exited"), 1);
    assert_eq!(image(&snapshot, WEB).tags.len(), 3);
    assert!(image(&snapshot, APP_OLD).dangling);
    assert_eq!(image(&snapshot, APP_NEW).usage, Usage::Unused);
    // The untagged parent of a local build is intermediate, not dangling, as the engine's
    // dangling filter has it.
    assert_eq!(image(&snapshot, PARENT).usage, Usage::Unused);
    assert!(!image(&snapshot, PARENT).dangling);
    assert!(image(&snapshot, PARENT).intermediate);
    assert_eq!(snapshot.missing_images(), 1);
    assert_eq!(snapshot.dangling_images(), 1);
    assert_eq!(snapshot.images_by_usage(), [4, 1, 2]);
}

/// The exposition of the recorded scan with fixed exporter facts, so that it is repeatable.
fn recorded_exposition() -> bytes::Bytes {
    let engine = EngineInfo {
        engine: "docker".into(),
        version: "20.10.24+dfsg1".into(),
        api_version: "1.41".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        storage_driver: "overlay2".into(),
    };
    let status = ScanStatus {
        success: true,
        duration_seconds: 0.25,
        last_success_timestamp: Some(1_796_400_000.5),
        successes: 3,
        failures: 1,
        causes: [1, 2, 3, 4, 5],
        events: [10, 2, 0],
        event_stream_up: true,
        last_event_timestamp: Some(1_796_399_999.25),
    };
    let build = BuildInfo { version: "0.0.0", revision: "golden", rustc_version: "rustc" };
    render(Some(&recorded_snapshot()), Some(&engine), &status, &build)
}

#[tokio::test]
async fn the_server_serves_the_golden_exposition() {
    let published = Arc::new(Published::new());
    published.publish(recorded_exposition(), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let routes = Routes { published, telemetry_path: "/metrics".into(), web: Default::default() };
    tokio::spawn(serve(listener, routes, 4, stopped));

    let response =
        tokio::task::spawn_blocking(move || common::http_get(address, "/metrics")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));

    // UPDATE_GOLDEN=1 rewrites the file after a deliberate change; review its diff.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/docker-20.10.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &response.body).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("golden exposition");
    assert_eq!(response.body, expected, "exposition differs from {}", golden.display());
    assert!(!response.body.contains("-1"), "a -1 from the engine leaked into the exposition");
}
