//! Turns a snapshot and the exporter's own state into the Prometheus text exposition.
//!
//! Rendering happens once per scan, not per scrape: scrapes are served the bytes made here, so
//! their cost does not depend on the engine or on how many scrapers there are.

use bytes::Bytes;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use crate::snapshot::{Image, Snapshot, Usage};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Said in the HELP of every series that comes from the engine.
const CACHED: &str = "As of the last successful scan.";

/// What the engine said about itself when the exporter connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInfo {
    /// `docker` or `podman`.
    pub engine: String,
    pub version: String,
    /// The API version the exporter speaks to the engine, after negotiation.
    pub api_version: String,
    pub os: String,
    pub arch: String,
    /// Storage driver, or the image store (`containerd`) where the engine says so.
    pub storage_driver: String,
}

/// Why a scan ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanCause {
    /// The first scan after start.
    Startup,
    /// The scan interval passed.
    Interval,
    /// Container or image events arrived.
    Event,
    /// The event stream broke or was (re)opened: events may have been missed.
    EventStream,
    /// The previous scan failed.
    Retry,
}

impl ScanCause {
    /// Every cause, in the order the exposition lists them.
    pub const ALL: [ScanCause; 5] = [
        ScanCause::Startup,
        ScanCause::Interval,
        ScanCause::Event,
        ScanCause::EventStream,
        ScanCause::Retry,
    ];

    /// The `cause` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanCause::Startup => "startup",
            ScanCause::Interval => "interval",
            ScanCause::Event => "event",
            ScanCause::EventStream => "event_stream",
            ScanCause::Retry => "retry",
        }
    }

    /// The index of this cause in [`ScanCause::ALL`].
    pub fn index(self) -> usize {
        ScanCause::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The event types counted on their own; others are counted as `other`.
pub const EVENT_TYPES: [&str; 3] = ["container", "image", "other"];

/// The exporter's own record of its scans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanStatus {
    /// Whether the last scan succeeded.
    pub success: bool,
    /// How long the last scan took, successful or not.
    pub duration_seconds: f64,
    /// When the last successful scan finished, in seconds since the epoch.
    pub last_success_timestamp: Option<f64>,
    pub successes: u64,
    pub failures: u64,
    /// Scans started, indexed like [`ScanCause::ALL`].
    pub causes: [u64; 5],
    /// Events received, indexed like [`EVENT_TYPES`].
    pub events: [u64; 3],
    /// Whether the engine's event stream is open.
    pub event_stream_up: bool,
    /// When the last event arrived, in seconds since the epoch.
    pub last_event_timestamp: Option<f64>,
}

/// The build's identity, for `docker_image_exporter_build_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub rustc_version: &'static str,
}

impl BuildInfo {
    /// The identity of this binary, recorded at compile time.
    pub const CURRENT: BuildInfo = BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        revision: env!("BUILD_REVISION"),
        rustc_version: env!("BUILD_RUSTC_VERSION"),
    };
}

/// Renders everything the telemetry path serves.
pub fn render(
    snapshot: Option<&Snapshot>,
    engine: Option<&EngineInfo>,
    status: &ScanStatus,
    build: &BuildInfo,
) -> Bytes {
    let mut text = Exposition::with_capacity(estimate_size(snapshot));
    if let Some(snapshot) = snapshot {
        image_families(snapshot, &mut text);
    }

    // The remaining families have a few series each: built whole, then encoded.
    let mut families = Vec::with_capacity(20);
    if let Some(snapshot) = snapshot {
        host_families(snapshot, &mut families);
    }
    if let Some(engine) = engine {
        let mut info = Family::gauge(
            "docker_engine_info",
            "The container engine the exporter reads, as it described itself at connect time; \
             api_version is the negotiated one. Always 1.",
        );
        info.sample(
            &[
                ("engine", &engine.engine),
                ("version", &engine.version),
                ("api_version", &engine.api_version),
                ("os", &engine.os),
                ("arch", &engine.arch),
                ("storage_driver", &engine.storage_driver),
            ],
            1.0,
        );
        families.push(info.0);
    }
    exporter_families(status, build, &mut families);
    text.write(&families);
    text.finish()
}

/// A slight overestimate of the exposition's length, so that its buffer is allocated once
/// and a doubling never leaves it with up to twice the room it needs.
///
/// An image's series repeat its ID and name. Besides them, its 13 per-image series take about
/// 65 bytes each on average (names, label names, state and value), and a tag series about 45
/// besides the ID and the tag; 72 and 48 leave room for longer values. The families with a
/// few series each, HELP lines included, fit in 8 KiB.
fn estimate_size(snapshot: Option<&Snapshot>) -> usize {
    let Some(snapshot) = snapshot else {
        return 8192;
    };
    // Per image: one series per state, three usage classes, info, size and creation time.
    let series = snapshot.states.len() + 6;
    let images: usize = (snapshot.images.iter())
        .map(|image| {
            let tags: usize = image.tags.iter().map(|tag| 48 + image.id.len() + tag.len()).sum();
            series * (72 + image.id.len() + image.name.len()) + tags
        })
        .sum();
    8192 + images
}

/// How many images' series of one family are built before they are encoded.
const IMAGES_PER_CHUNK: usize = 256;

/// The exposition under construction, written one family, or one chunk of a family, at a time.
///
/// The crate's metric model holds owned strings for every label of every series, which for a
/// whole host comes to several times the text it encodes to (about 90 MB beside 20 MB of text
/// at 10,000 images). Per-image families are therefore built and encoded
/// [`IMAGES_PER_CHUNK`] images at a time, so that rendering needs little beyond its output
/// however many images there are.
struct Exposition {
    text: Vec<u8>,
    /// A later chunk of a family is encoded here first, to cut the header off.
    scratch: Vec<u8>,
}

impl Exposition {
    fn with_capacity(capacity: usize) -> Exposition {
        Exposition { text: Vec::with_capacity(capacity), scratch: Vec::new() }
    }

    /// Encodes whole families; a family without series is left out.
    fn write(&mut self, families: &[MetricFamily]) {
        for family in families.iter().filter(|f| !f.get_metric().is_empty()) {
            encode(family, &mut self.text);
        }
    }

    /// Encodes a family with the series `add` makes for each image, a chunk of images at a
    /// time, under a single HELP and TYPE header.
    fn per_image(
        &mut self,
        mut family: Family,
        images: &[Image],
        mut add: impl FnMut(&mut Family, &Image),
    ) {
        let mut header_written = false;
        for chunk in images.chunks(IMAGES_PER_CHUNK) {
            chunk.iter().for_each(|image| add(&mut family, image));
            if family.0.get_metric().is_empty() {
                continue;
            }
            if header_written {
                self.scratch.clear();
                encode(&family.0, &mut self.scratch);
                let samples = header_length(&family.0, &self.scratch);
                self.text.extend_from_slice(&self.scratch[samples..]);
            } else {
                encode(&family.0, &mut self.text);
                header_written = true;
            }
            family.0.mut_metric().clear();
        }
    }

    /// The finished exposition, without the spare capacity of the estimate.
    fn finish(mut self) -> Bytes {
        // NOTE: Bytes keeps a Vec's whole allocation, and the exposition is held until the
        // next scan: a 30 % overestimate would be held with it.
        self.text.shrink_to_fit();
        Bytes::from(self.text)
    }
}

/// Appends one family in the text format.
fn encode(family: &MetricFamily, text: &mut Vec<u8>) {
    // NOTE: encoding only fails on a writer error or a family without series or name; the
    // writer is a Vec and callers pass named families with series.
    if let Err(error) = TextEncoder::new().encode(std::slice::from_ref(family), text) {
        tracing::error!(%error, family = family.name(), "failed to encode a metric family");
    }
}

/// The length of the header lines the encoder writes before a family's series: TYPE, and
/// HELP when there is help. The encoder escapes newlines in the help, so each is one line.
fn header_length(family: &MetricFamily, encoded: &[u8]) -> usize {
    let lines = if family.help().is_empty() { 1 } else { 2 };
    let mut ends = encoded.iter().enumerate().filter(|(_, byte)| **byte == b'\n');
    ends.nth(lines - 1).map_or(encoded.len(), |(at, _)| at + 1)
}

/// The per-image families, each over every image before the next.
fn image_families(snapshot: &Snapshot, text: &mut Exposition) {
    let images = &snapshot.images;
    let containers = Family::gauge(
        "docker_image_containers",
        &format!(
            "Containers whose ImageID is this image, by container state, from the engine's \
             container list (all=1). {CACHED}"
        ),
    );
    text.per_image(containers, images, |family, image| {
        let (id, name) = (image.id.as_str(), image.name.as_str());
        for (state, count) in snapshot.states.iter().zip(&image.references) {
            family.sample(&[("image_id", id), ("image", name), ("state", state)], *count as f64);
        }
    });

    let usage = Family::gauge(
        "docker_image_usage",
        &format!(
            "The image's usage class: in_use (a container in a live state references it), \
             stopped_only (referenced by stopped containers only), unused (no container). \
             1 for the image's class, 0 for the others. {CACHED}"
        ),
    );
    text.per_image(usage, images, |family, image| {
        let (id, name) = (image.id.as_str(), image.name.as_str());
        for class in Usage::ALL {
            let value = if class == image.usage { 1.0 } else { 0.0 };
            family.sample(&[("image_id", id), ("image", name), ("usage", class.as_str())], value);
        }
    });

    let info = Family::gauge(
        "docker_image_info",
        &format!(
            "Every image the engine lists (all=1), and every image ID containers reference that \
             it no longer lists (image=\"<missing>\"). dangling: untagged and no image built \
             on it, as the engine's filter has it; intermediate: untagged with images built on \
             it. Always 1. {CACHED}"
        ),
    );
    text.per_image(info, images, |family, image| {
        let dangling = if image.dangling { "true" } else { "false" };
        let intermediate = if image.intermediate { "true" } else { "false" };
        family.sample(
            &[
                ("image_id", &image.id),
                ("image", &image.name),
                ("dangling", dangling),
                ("intermediate", intermediate),
            ],
            1.0,
        );
    });

    let tags = Family::gauge(
        "docker_image_tag_info",
        &format!("One series per tag of each image, from the engine's image list. {CACHED}"),
    );
    text.per_image(tags, images, |family, image| {
        for tag in &image.tags {
            family.sample(&[("image_id", &image.id), ("tag", tag)], 1.0);
        }
    });

    let size = Family::gauge(
        "docker_image_size_bytes",
        &format!("The image's size as the engine's image list reports it. {CACHED}"),
    );
    text.per_image(size, images, |family, image| {
        if let Some(bytes) = image.size_bytes {
            family.sample(&[("image_id", &image.id), ("image", &image.name)], bytes as f64);
        }
    });

    let created = Family::gauge(
        "docker_image_created_timestamp_seconds",
        &format!("When the image was created, from the engine's image list. {CACHED}"),
    );
    text.per_image(created, images, |family, image| {
        if let Some(seconds) = image.created_seconds {
            family.sample(&[("image_id", &image.id), ("image", &image.name)], seconds as f64);
        }
    });
}

/// The host totals.
fn host_families(snapshot: &Snapshot, families: &mut Vec<MetricFamily>) {
    let mut images = Family::gauge(
        "docker_images",
        &format!("Images the engine lists, by usage class. {CACHED}"),
    );
    let mut bytes = Family::gauge(
        "docker_images_size_bytes",
        &format!("Total size of the images the engine lists, by usage class. {CACHED}"),
    );
    let counts = snapshot.images_by_usage();
    let sizes = snapshot.bytes_by_usage();
    for (i, class) in Usage::ALL.iter().enumerate() {
        images.sample(&[("usage", class.as_str())], counts[i] as f64);
        bytes.sample(&[("usage", class.as_str())], sizes[i] as f64);
    }

    let mut dangling = Family::gauge(
        "docker_images_dangling",
        &format!("Images the engine lists without any tag, used or not. {CACHED}"),
    );
    dangling.sample(&[], snapshot.dangling_images() as f64);
    let mut missing = Family::gauge(
        "docker_images_missing",
        &format!(
            "Image IDs that containers reference but the engine no longer lists \
             (force-removed images). {CACHED}"
        ),
    );
    missing.sample(&[], snapshot.missing_images() as f64);

    let mut containers = Family::gauge(
        "docker_containers",
        &format!("Containers on the host, by state, from the container list (all=1). {CACHED}"),
    );
    for (state, count) in snapshot.states.iter().zip(&snapshot.containers_by_state) {
        containers.sample(&[("state", state)], *count as f64);
    }
    let mut unattributed = Family::gauge(
        "docker_containers_without_image_id",
        &format!(
            "Containers the engine listed without an ImageID, which no image can be charged \
             with. {CACHED}"
        ),
    );
    unattributed.sample(&[], snapshot.unattributed_containers as f64);

    families.extend([images, bytes, dangling, missing, containers, unattributed].map(|f| f.0));
}

/// The exporter's own health.
fn exporter_families(status: &ScanStatus, build: &BuildInfo, families: &mut Vec<MetricFamily>) {
    let mut build_info = Family::gauge(
        "docker_image_exporter_build_info",
        "The exporter's version, source revision and compiler. Always 1.",
    );
    build_info.sample(
        &[
            ("version", build.version),
            ("revision", build.revision),
            ("rustc_version", build.rustc_version),
        ],
        1.0,
    );
    let mut success = Family::gauge(
        "docker_image_exporter_scan_success",
        "1 if the last scan of the engine succeeded, 0 if it failed. While it is 0 the \
         engine's series keep the values of the last successful scan.",
    );
    success.sample(&[], if status.success { 1.0 } else { 0.0 });
    let mut duration = Family::gauge(
        "docker_image_exporter_scan_duration_seconds",
        "How long the last scan took, successful or not.",
    );
    duration.sample(&[], status.duration_seconds);
    let mut scans = Family::counter(
        "docker_image_exporter_scans_total",
        "Scans of the engine since the exporter started, by result.",
    );
    scans.count(&[("result", "success")], status.successes as f64);
    scans.count(&[("result", "failure")], status.failures as f64);

    let mut causes = Family::counter(
        "docker_image_exporter_scans_triggered_total",
        "Scans started since the exporter started, by what started them: startup, interval, \
         event (container or image events), event_stream (the stream broke or opened, so \
         events may have been missed), retry (after a failed scan). As of the last scan.",
    );
    for cause in ScanCause::ALL {
        causes.count(&[("cause", cause.as_str())], status.causes[cause.index()] as f64);
    }
    let mut events = Family::counter(
        "docker_image_exporter_events_total",
        "Events read from the engine's event stream, by type. As of the last scan.",
    );
    for (kind, count) in EVENT_TYPES.iter().zip(status.events) {
        events.count(&[("type", kind)], count as f64);
    }
    let mut stream_up = Family::gauge(
        "docker_image_exporter_event_stream_up",
        "1 while the engine's event stream is open, 0 otherwise; without it changes show at \
         the next interval scan. As of the last scan.",
    );
    stream_up.sample(&[], if status.event_stream_up { 1.0 } else { 0.0 });

    families.extend([build_info, success, duration, stream_up].map(|f| f.0));
    if let Some(timestamp) = status.last_event_timestamp {
        let mut last = Family::gauge(
            "docker_image_exporter_last_event_timestamp_seconds",
            "When the last event arrived from the engine, in seconds since the epoch.",
        );
        last.sample(&[], timestamp);
        families.push(last.0);
    }
    if let Some(timestamp) = status.last_success_timestamp {
        let mut last = Family::gauge(
            "docker_image_exporter_last_scan_success_timestamp_seconds",
            "When the last successful scan finished, in seconds since the epoch.",
        );
        last.sample(&[], timestamp);
        families.push(last.0);
    }
    families.extend([scans, causes, events].map(|f| f.0));
}

/// A metric family under construction.
struct Family(MetricFamily);

impl Family {
    fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::COUNTER)
    }

    fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        Family(family)
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        let mut metric = Metric::from_label(label_pairs(labels));
        metric.set_gauge(gauge);
        self.0.mut_metric().push(metric);
    }

    fn count(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut counter = Counter::default();
        counter.set_value(value);
        let mut metric = Metric::from_label(label_pairs(labels));
        metric.set_counter(counter);
        self.0.mut_metric().push(metric);
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerSummary, ImageSummary};
    use crate::snapshot::LiveStates;

    #[test]
    fn an_empty_exporter_still_reports_its_health() {
        let text = render(None, None, &ScanStatus::default(), &BuildInfo::CURRENT);
        let text = std::str::from_utf8(&text).expect("utf-8");
        assert!(text.contains("docker_image_exporter_scan_success 0\n"));
        assert!(text.contains("docker_image_exporter_scans_total{result=\"failure\"} 0\n"));
        assert!(!text.contains("docker_image_containers"));
        assert!(!text.contains("last_scan_success_timestamp"));
    }

    #[test]
    fn series_are_dense_over_states_and_usage() {
        let images = vec![ImageSummary {
            id: "sha256:aa".into(),
            repo_tags: Some(vec!["app:1".into()]),
            repo_digests: None,
            created: Some(10),
            size: Some(-1),
            parent_id: None,
        }];
        let containers = vec![ContainerSummary {
            id: "c".into(),
            image_id: Some("sha256:aa".into()),
            image: None,
            state: Some("exited".into()),
        }];
        let live = LiveStates::new(["running"]);
        let snapshot = Snapshot::build(images, containers, &live);
        let text = render(Some(&snapshot), None, &ScanStatus::default(), &BuildInfo::CURRENT);
        let text = std::str::from_utf8(&text).expect("utf-8");

        let per_state = text.lines().filter(|l| l.starts_with("docker_image_containers{")).count();
        assert_eq!(per_state, 7);
        assert!(text.contains(
            "docker_image_usage{image_id=\"sha256:aa\",image=\"app:1\",usage=\"stopped_only\"} 1"
        ));
        assert!(text.contains(
            "docker_image_usage{image_id=\"sha256:aa\",image=\"app:1\",usage=\"unused\"} 0"
        ));
        // A size of -1 means "not computed" and is not published.
        assert!(!text.contains("docker_image_size_bytes{"));
        assert!(!text.lines().any(|line| line.ends_with(" -1")));
    }

    #[test]
    fn a_family_without_series_leaves_the_rest_whole() {
        // No images at all, then only an untagged one: empty families are left out, and
        // what follows them is still there.
        let empty = Snapshot::build(vec![], vec![], &LiveStates::new(["running"]));
        let untagged = Snapshot::build(
            vec![ImageSummary {
                id: "sha256:bb".into(),
                repo_tags: None,
                repo_digests: None,
                created: None,
                size: None,
                parent_id: None,
            }],
            vec![],
            &LiveStates::new(["running"]),
        );
        for snapshot in [empty, untagged] {
            let text = render(Some(&snapshot), None, &ScanStatus::default(), &BuildInfo::CURRENT);
            let text = std::str::from_utf8(&text).expect("utf-8");
            assert!(!text.contains("# TYPE docker_image_tag_info"));
            assert!(text.contains("docker_containers{state=\"created\"} 0\n"));
            assert!(text.contains("docker_image_exporter_scan_success 0\n"));
        }
    }

    #[test]
    fn families_rendered_in_chunks_have_one_header_and_every_series() {
        let count = IMAGES_PER_CHUNK * 2 + 3;
        let images = (0..count)
            .map(|n| ImageSummary {
                id: format!("sha256:{n:064x}"),
                repo_tags: Some(vec![format!("app:{n}")]),
                repo_digests: None,
                created: Some(1_700_000_000),
                size: Some(123_456_789_012),
                parent_id: None,
            })
            .collect();
        let snapshot = Snapshot::build(images, vec![], &LiveStates::new(["running"]));
        let text = render(Some(&snapshot), None, &ScanStatus::default(), &BuildInfo::CURRENT);
        let text = std::str::from_utf8(&text).expect("utf-8");

        for name in ["docker_image_containers", "docker_image_tag_info"] {
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1, "{name}");
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
        }
        let series: Vec<&str> =
            text.lines().filter(|l| l.starts_with("docker_image_tag_info{")).collect();
        assert_eq!(series.len(), count);
        // Series stay in image order across chunk boundaries.
        let ids: Vec<&str> = series.iter().filter_map(|l| l.split('"').nth(1)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", &ids[..3]);
        let per_state = text.lines().filter(|l| l.starts_with("docker_image_containers{")).count();
        assert_eq!(per_state, count * 7);
        // The buffer was allocated once, with room for everything, and the per-image part of
        // the estimate covers the per-image series by itself.
        let estimate = estimate_size(Some(&snapshot));
        assert!(estimate >= text.len());
        let per_image: usize = (text.lines())
            .filter(|l| l.starts_with("docker_image_") && !l.starts_with("docker_image_exporter"))
            .map(|l| l.len() + 1)
            .sum();
        assert!(estimate - 8192 >= per_image, "{estimate} - 8192 < {per_image}");
    }
}
