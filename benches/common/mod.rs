//! Engine payloads of any size, scaled up from the lists recorded from Docker 20.10.
//!
//! Every object is a copy of a recorded one with a unique ID, name and tags, so that the
//! decoder sees the same fields, nesting and string lengths a real engine sends, and the
//! accounting sees as many distinct images and containers as asked for. Containers are
//! spread round-robin over the images and keep the recorded mix of states.

// Each benchmark uses a part of this module.
#![allow(dead_code)]

use docker_image_exporter::model::{ContainerSummary, ImageSummary};
use docker_image_exporter::render::{EngineInfo, ScanStatus};
use docker_image_exporter::snapshot::LiveStates;
use serde_json::Value;

const CONTAINERS: &str = include_str!("../../tests/fixtures/docker-20.10/containers.json");
const IMAGES: &str = include_str!("../../tests/fixtures/docker-20.10/images.json");

/// The sizes measured: containers over images, ten containers per image.
pub const SIZES: [(usize, usize); 4] =
    [(100, 10), (1_000, 100), (10_000, 1_000), (100_000, 10_000)];

/// The two list bodies of one scan, as the engine sends them (compact JSON).
pub struct Bodies {
    pub containers: Vec<u8>,
    pub images: Vec<u8>,
}

impl Bodies {
    /// The bodies of an engine holding `containers` containers over `images` images.
    pub fn new(containers: usize, images: usize) -> Bodies {
        let image_templates = templates(IMAGES);
        let container_templates = templates(CONTAINERS);

        let image_list: Vec<Value> = (0..images)
            .map(|n| scaled_image(&image_templates[n % image_templates.len()], n))
            .collect();
        let container_list: Vec<Value> = (0..containers)
            .map(|n| {
                let template = &container_templates[n % container_templates.len()];
                scaled_container(template, n, &image_list[n % images.max(1)])
            })
            .collect();

        Bodies {
            containers: serde_json::to_vec(&container_list).expect("encode containers"),
            images: serde_json::to_vec(&image_list).expect("encode images"),
        }
    }

    /// Both bodies' length in bytes.
    pub fn len(&self) -> usize {
        self.containers.len() + self.images.len()
    }

    /// What the engine module hands the accounting: both lists, decoded.
    pub fn decode(&self) -> (Vec<ImageSummary>, Vec<ContainerSummary>) {
        let images = serde_json::from_slice(&self.images).expect("decode images");
        let containers = serde_json::from_slice(&self.containers).expect("decode containers");
        (images, containers)
    }
}

/// The default live states.
pub fn live() -> LiveStates {
    LiveStates::new(["running", "paused", "restarting"])
}

/// Engine facts as a scan after connecting has them.
pub fn engine() -> EngineInfo {
    EngineInfo {
        engine: "docker".into(),
        version: "20.10.24+dfsg1".into(),
        api_version: "1.41".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        storage_driver: "overlay2".into(),
    }
}

/// The exporter's record after a few successful scans.
pub fn status() -> ScanStatus {
    ScanStatus {
        success: true,
        duration_seconds: 0.25,
        last_success_timestamp: Some(1_796_400_000.5),
        successes: 3,
        ..ScanStatus::default()
    }
}

/// A size as benchmark IDs show it: `10000c/1000i`.
pub fn label(containers: usize, images: usize) -> String {
    format!("{containers}c/{images}i")
}

fn templates(text: &str) -> Vec<Value> {
    match serde_json::from_str(text).expect("recorded fixture is JSON") {
        Value::Array(items) => items,
        _ => panic!("recorded fixture is not a list"),
    }
}

fn scaled_image(template: &Value, n: usize) -> Value {
    let mut image = template.clone();
    image["Id"] = Value::String(format!("sha256:{}", hex_id(n as u64, 1)));
    for field in ["RepoTags", "RepoDigests"] {
        if let Value::Array(names) = &mut image[field] {
            for name in names.iter_mut() {
                *name = Value::String(renamed(name.as_str().unwrap_or_default(), n));
            }
        }
    }
    image
}

fn scaled_container(template: &Value, n: usize, image: &Value) -> Value {
    let mut container = template.clone();
    let image_id = image["Id"].as_str().unwrap_or_default().to_owned();
    container["Id"] = Value::String(hex_id(n as u64, 2));
    container["Names"] = Value::Array(vec![Value::String(format!("/bench_{n}"))]);
    container["Image"] = match image["RepoTags"].get(0).and_then(Value::as_str) {
        Some(tag) if !tag.starts_with("<none>") => Value::String(tag.to_owned()),
        _ => Value::String(image_id.clone()),
    };
    container["ImageID"] = Value::String(image_id);
    container
}

/// `repo:tag` or `repo@digest` with the repository made unique to image `n`.
fn renamed(name: &str, n: usize) -> String {
    if name.starts_with("<none>") {
        return name.to_owned();
    }
    match name.find([':', '@']) {
        Some(cut) if !name[cut..].contains('/') => format!("{}-{n}{}", &name[..cut], &name[cut..]),
        _ => format!("{name}-{n}"),
    }
}

/// 64 hex digits unique to (`n`, `kind`), spread like a digest.
fn hex_id(n: u64, kind: u64) -> String {
    let mut state = n.wrapping_mul(4).wrapping_add(kind);
    (0..4).map(|_| format!("{:016x}", splitmix(&mut state))).collect()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
