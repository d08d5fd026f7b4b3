//! The whole path against a real engine: make containers in every state and every accounting
//! case, run the exporter binary, and check its `/metrics`.
//!
//! The engine is the one `DOCKER_HOST` names (`tests/run` starts private ones). It may be
//! shared: every object made here carries the label `die.test=<run>`, assertions look only at
//! those objects, and the scenario is removed on drop, also when a test fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proxy::Proxy;
use common::{docker, eventually, must_docker, Exporter, Exposition};

/// The image the test-image script builds from busybox-static.
const BASE_IMAGE: &str = "die-test/busybox:base";

/// The engine under test and what sets it apart.
struct Target {
    podman: bool,
    /// Docker with the containerd image store.
    containerd_store: bool,
    /// Docker's data root, where each container has a directory of its own.
    root_dir: String,
}

impl Target {
    /// The states this engine can be made to put a container in. Podman has neither
    /// `restarting` (a restart loop shows as running or stopped) nor `dead`.
    fn states(&self) -> &'static [&'static str] {
        if self.podman {
            &["created", "running", "paused", "exited"]
        } else {
            &["created", "running", "paused", "restarting", "exited", "dead"]
        }
    }

    /// How the engine spells a tag it was given: Podman adds the default registry.
    fn tag_name(&self, tag: &str) -> String {
        if self.podman {
            format!("docker.io/{tag}")
        } else {
            tag.to_owned()
        }
    }
}

/// The engine under test, checked once: tests fail (never skip) without one.
fn engine() -> &'static Target {
    static TARGET: std::sync::OnceLock<Target> = std::sync::OnceLock::new();
    TARGET.get_or_init(|| {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| {
            std::env::set_var("DOCKER_HOST", "unix:///var/run/docker.sock");
            "unix:///var/run/docker.sock".to_owned()
        });
        let name = std::env::var("DIE_TEST_ENGINE").unwrap_or_else(|_| "default".to_owned());
        let format = "{{.Server.Version}} (API {{.Server.APIVersion}}) \
                      {{range .Server.Components}}{{.Name}} {{end}}";
        let version = docker(&["version", "--format", format]).unwrap_or_else(|error| {
            panic!(
                "no container engine answers at {host}: {error}\n\
                 start one with tests/engines/engine.sh docker20 start and export DOCKER_HOST"
            )
        });
        let info = must_docker(&["info", "--format", "{{json .DriverStatus}} {{.DockerRootDir}}"]);
        eprintln!("engine under test: {name}: {version} at {host}");

        // The base image is built locally: nothing can be pulled.
        if docker(&["image", "inspect", BASE_IMAGE]).is_err() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/test-image.sh");
            let status = Command::new(script).status().expect("run tests/engines/test-image.sh");
            assert!(status.success(), "tests/engines/test-image.sh failed");
        }
        Target {
            podman: version.to_ascii_lowercase().contains("podman"),
            containerd_store: info.contains("io.containerd.snapshotter"),
            root_dir: info.rsplit(' ').next().unwrap_or_default().to_owned(),
        }
    })
}

/// Objects one test made on the engine, removed on drop.
struct Scenario {
    run: String,
    images: Vec<String>,
    target: &'static Target,
}

impl Scenario {
    fn new(test: &str) -> Scenario {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let run = format!("{test}-{}-{nanos}", std::process::id());
        Scenario { run, images: Vec::new(), target: engine() }
    }

    /// A repository name unique to this run.
    fn repo(&self, case: &str) -> String {
        format!("die-test/{}-{case}", self.run)
    }

    /// A new image of its own ID on top of the base image, tagged `tag` when given.
    fn image(&mut self, case: &str, tag: Option<&str>) -> String {
        self.build(BASE_IMAGE, case, tag)
    }

    /// A new image built from `parent` with this run's labels (which give it an ID of its
    /// own), as `docker build` does on every engine without a network: a Dockerfile of
    /// `FROM` and `LABEL` needs none.
    fn build(&mut self, parent: &str, case: &str, tag: Option<&str>) -> String {
        let dockerfile = format!("FROM {parent}\nLABEL die.test={} die.case={case}\n", self.run);
        let mut args = vec!["build", "--quiet", "--network", "none"];
        if let Some(tag) = tag {
            args.extend(["--tag", tag]);
        }
        args.push("-");
        // NOTE: the legacy builder on the containerd store sometimes loses the image it just
        // made when other builds run at once ("unable to find image"); a retry succeeds.
        let mut attempts = 0;
        let stdout = loop {
            attempts += 1;
            match run_with_input(&args, &dockerfile) {
                Ok(stdout) => break stdout,
                Err(error) if attempts < 3 => eprintln!("retrying a failed build: {error}"),
                Err(error) => panic!("{error}"),
            }
        };

        // Podman prints the ID without its algorithm.
        let id = stdout.lines().rev().find(|l| !l.trim().is_empty()).expect("build prints the ID");
        let id = id.trim();
        let id = if id.contains(':') { id.to_owned() } else { format!("sha256:{id}") };
        self.images.push(id.clone());
        id
    }

    /// `docker create` with this run's label, no network and no pull; returns the ID.
    fn create(&self, rest: &[&str]) -> String {
        let label = format!("die.test={}", self.run);
        let mut args = vec!["create", "--pull", "never", "--network", "none", "--label", &label];
        args.extend_from_slice(&["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]);
        args.extend_from_slice(rest);
        must_docker(&args)
    }

    /// A container of `image` put in `state`; returns its ID.
    fn container_in_state(&self, image: &str, state: &str) -> String {
        match state {
            "created" => self.create(&[image]),
            "running" => self.started(&[image]),
            "paused" => {
                let id = self.started(&[image]);
                must_docker(&["pause", &id]);
                id
            }
            // `false` exits at once, so the engine keeps restarting it with a growing delay.
            "restarting" => self.started(&["--restart", "always", image, "false"]),
            "exited" => {
                let id = self.started(&[image, "true"]);
                must_docker(&["wait", &id]);
                id
            }
            "dead" => self.dead(image),
            other => panic!("no recipe for state {other}"),
        }
    }

    fn started(&self, rest: &[&str]) -> String {
        let id = self.create(rest);
        must_docker(&["start", &id]);
        id
    }

    /// A container the engine failed to remove: an immutable file where removal must delete
    /// makes it fail half way, which leaves the container `dead`. On the classic store that
    /// is the writable layer; the containerd store deletes snapshots in the background and
    /// ignores failures, so there it is the container's own directory.
    fn dead(&self, image: &str) -> String {
        let id = self.started(&[image]);
        let file = if self.target.containerd_store {
            let file = format!("{}/containers/{id}/die-immutable", self.target.root_dir);
            std::fs::write(&file, b"").expect("write into the container's directory");
            file
        } else {
            must_docker(&["exec", &id, "touch", "/die-immutable"]);
            writable_file(&id).expect("container's writable layer")
        };
        chattr("+i", &file);
        let removal = docker(&["rm", "-f", &id]);
        assert!(removal.is_err(), "removal should fail on an immutable file");
        // NOTE: Docker goes on listing such a container as "removing" (its list view is not
        // refreshed when removal fails) until something else changes the container. A
        // rename is such a change, and harmless.
        must_docker(&["rename", &id, &format!("die-dead-{}", &id[..12])]);
        id
    }

    /// Whether the engine still has the container.
    fn exists(&self, container: &str) -> bool {
        docker(&["inspect", "--format", "{{.Id}}", container]).is_ok()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let filter = format!("label=die.test={}", self.run);
        let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter]).unwrap_or_default();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            // Undo what made a container dead before removing it.
            let in_directory = format!("{}/containers/{id}/die-immutable", self.target.root_dir);
            for file in writable_file(id).into_iter().chain([in_directory]) {
                chattr("-i", &file);
            }
            let _ = docker(&["unpause", id]);
            if let Err(error) = docker(&["rm", "-f", id]) {
                eprintln!("cleanup: {error}");
            }
        }
        for image in self.images.iter().rev() {
            let _ = docker(&["rmi", "-f", image]);
        }
    }
}

/// Runs `docker` with `input` on its standard input; returns stdout, or stderr as the error.
fn run_with_input(args: &[&str], input: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run docker: {error}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input.as_bytes()).map_err(|error| format!("docker's stdin: {error}"))?;
    drop(stdin);
    let output = child.wait_with_output().map_err(|error| format!("docker: {error}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("docker {args:?}: {}", stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The path on the host of the file that makes a container dead, in its writable layer, if
/// the engine says where that layer is.
fn writable_file(container: &str) -> Option<String> {
    let format = "{{with .GraphDriver.Data}}{{.UpperDir}}{{end}}";
    let upper = docker(&["inspect", "--format", format, container]).ok()?;
    let upper = upper.trim();
    if upper.is_empty() || upper == "<no value>" {
        return None;
    }
    Some(format!("{upper}/die-immutable"))
}

fn chattr(flag: &str, file: &str) {
    let status = Command::new("chattr").args([flag, file]).stderr(Stdio::null()).status();
    if flag == "+i" {
        assert!(status.is_ok_and(|s| s.success()), "chattr {flag} {file} failed");
    }
}

/// A check of one scrape: `Err` says what is wrong.
type Check = Box<dyn Fn(&Exposition) -> Result<(), String>>;

/// One expectation about the exposition, checked by [`check_all`].
struct Expect {
    what: String,
    check: Check,
}

fn expect(
    what: impl Into<String>,
    check: impl Fn(&Exposition) -> Result<(), String> + 'static,
) -> Expect {
    Expect { what: what.into(), check: Box::new(check) }
}

/// Waits until one scrape meets every expectation, or fails listing those still unmet.
fn check_all(exporter: &Exporter, expectations: &[Expect]) -> Exposition {
    eventually(Duration::from_secs(30), || {
        let exposition = exporter.scrape();
        let failures: Vec<String> = expectations
            .iter()
            .filter_map(|e| (e.check)(&exposition).err().map(|err| format!("{}: {err}", e.what)))
            .collect();
        if failures.is_empty() {
            Ok(exposition)
        } else {
            Err(format!("unmet:\n  {}", failures.join("\n  ")))
        }
    })
}

/// The `image` label an image must carry.
#[derive(Debug, Clone)]
enum Name {
    /// Exactly this tag.
    Tag(String),
    /// No tag: `<none>`, or a digest reference where the engine keeps one.
    Untagged,
    /// Force-removed while containers still use it.
    Missing,
}

impl Name {
    fn check(&self, label: &str) -> Result<(), String> {
        let fits = match self {
            Name::Tag(tag) => label == tag,
            Name::Untagged => label == "<none>" || label.contains("@sha256:"),
            Name::Missing => label == "<missing>",
        };
        fits.then_some(()).ok_or_else(|| format!("image label {label:?}, want {self:?}"))
    }
}

/// The name an image that lost its tag must carry: untagged while the engine still lists it,
/// missing once the engine has deleted it (the containerd store deletes where the classic
/// store only untags).
fn untagged_or_missing(image: &str) -> Name {
    if docker(&["image", "inspect", image]).is_ok() {
        Name::Untagged
    } else {
        Name::Missing
    }
}

/// The image's references by state and its usage class must be exactly these.
fn image_is(id: &str, name: Name, refs: &[(&str, f64)], usage: &str) -> Expect {
    let (id, usage) = (id.to_owned(), usage.to_owned());
    let refs: BTreeMap<String, f64> = refs.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    expect(format!("image {name:?} {id}"), move |exposition| {
        let samples = exposition.find("docker_image_containers", &[("image_id", &id)]);
        let states: Vec<&str> = samples.iter().map(|s| s.labels["state"].as_str()).collect();
        for known in ["created", "running", "paused", "restarting", "removing", "exited", "dead"] {
            if !states.contains(&known) {
                return Err(format!("no series for state {known}"));
            }
        }
        for sample in &samples {
            let state = &sample.labels["state"];
            let want = refs.get(state).copied().unwrap_or(0.0);
            if sample.value != want {
                return Err(format!("state {state}: {} containers, want {want}", sample.value));
            }
            name.check(&sample.labels["image"])?;
        }
        for class in ["in_use", "stopped_only", "unused"] {
            let value =
                exposition.value("docker_image_usage", &[("image_id", &id), ("usage", class)])?;
            let want = if class == usage { 1.0 } else { 0.0 };
            if value != want {
                return Err(format!("usage {class} is {value}, want {want}"));
            }
        }
        Ok(())
    })
}

/// The image must have no series at all.
fn image_is_gone(id: &str) -> Expect {
    let id = id.to_owned();
    expect(format!("image {id} is gone"), move |exposition| {
        let left = exposition.samples.iter().filter(|s| s.labels.get("image_id") == Some(&id));
        match left.count() {
            0 => Ok(()),
            n => Err(format!("{n} series left")),
        }
    })
}

#[test]
fn every_state_counts_toward_its_image() {
    let mut scenario = Scenario::new("states");
    let mut expectations = Vec::new();
    for state in scenario.target.states() {
        let tag = format!("{}:1", scenario.repo(state));
        let image = scenario.image(state, Some(&tag));
        scenario.container_in_state(&image, state);
        let usage = if ["running", "paused", "restarting"].contains(state) {
            "in_use"
        } else {
            "stopped_only"
        };
        let name = Name::Tag(scenario.target.tag_name(&tag));
        expectations.push(image_is(&image, name, &[(state, 1.0)], usage));
    }
    let unused_tag = format!("{}:1", scenario.repo("unused"));
    let unused = scenario.image("unused", Some(&unused_tag));
    let name = Name::Tag(scenario.target.tag_name(&unused_tag));
    expectations.push(image_is(&unused, name, &[], "unused"));

    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    let exposition = check_all(&exporter, &expectations);
    assert_eq!(exposition.value("docker_image_exporter_scan_success", &[]), Ok(1.0));
}

#[test]
fn a_moved_tag_leaves_containers_on_the_old_image() {
    let mut scenario = Scenario::new("moved");
    let tag = format!("{}:1", scenario.repo("moved"));
    let old = scenario.image("moved-old", Some(&tag));
    scenario.container_in_state(&tag, "exited");
    // Committing under the same tag moves it to the new image.
    let new = scenario.image("moved-new", Some(&tag));
    assert_ne!(old, new);

    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    let old_id = old.clone();
    check_all(
        &exporter,
        &[
            image_is(&old, untagged_or_missing(&old), &[("exited", 1.0)], "stopped_only"),
            image_is(&new, Name::Tag(scenario.target.tag_name(&tag)), &[], "unused"),
            expect("the old image is dangling or missing", move |e| {
                let info = e.find("docker_image_info", &[("image_id", &old_id)]);
                match info.as_slice() {
                    [one] if one.labels["dangling"] == "true" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }),
        ],
    );
}

#[test]
fn the_name_a_container_was_created_with_is_not_its_link() {
    let mut scenario = Scenario::new("byid");
    let tag = format!("{}:1", scenario.repo("byid"));
    let image = scenario.image("byid", Some(&tag));
    let hex = image.trim_start_matches("sha256:");
    // By short ID, by full ID and by name: the container list shows each differently.
    scenario.create(&[&hex[..12]]);
    scenario.create(&[&image]);
    scenario.create(&[&tag]);

    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    let name = Name::Tag(scenario.target.tag_name(&tag));
    check_all(&exporter, &[image_is(&image, name, &[("created", 3.0)], "stopped_only")]);
}

#[test]
fn an_image_with_several_tags_counts_once() {
    let mut scenario = Scenario::new("tags");
    let first = format!("{}:b", scenario.repo("tags"));
    let image = scenario.image("tags", Some(&first));
    let second = format!("{}:a", scenario.repo("tags"));
    let third = format!("{}:c", scenario.repo("tags"));
    must_docker(&["tag", &image, &second]);
    must_docker(&["tag", &image, &third]);
    scenario.container_in_state(&first, "running");
    scenario.container_in_state(&third, "exited");

    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    let id = image.clone();
    let target = scenario.target;
    let want: Vec<String> = [&second, &first, &third].iter().map(|t| target.tag_name(t)).collect();
    check_all(
        &exporter,
        &[
            // The name is the first tag in sorting order, whichever the containers used.
            image_is(
                &image,
                Name::Tag(target.tag_name(&second)),
                &[("running", 1.0), ("exited", 1.0)],
                "in_use",
            ),
            expect("one tag series per tag", move |e| {
                let tags = e.find("docker_image_tag_info", &[("image_id", &id)]);
                let mut names: Vec<String> = tags.iter().map(|s| s.labels["tag"].clone()).collect();
                names.sort_unstable();
                (names == want).then_some(()).ok_or_else(|| format!("{names:?}, want {want:?}"))
            }),
        ],
    );
}

#[test]
fn a_force_removed_image_keeps_its_containers() {
    let mut scenario = Scenario::new("gone");
    let tag = format!("{}:1", scenario.repo("gone"));
    let image = scenario.image("gone", Some(&tag));
    let exited = scenario.container_in_state(&image, "exited");
    scenario.container_in_state(&image, "created");
    must_docker(&["rmi", "-f", &image]);

    // Podman removes the containers of an image it is forced to remove; Docker keeps them.
    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    if !scenario.exists(&exited) {
        eprintln!("this engine removed the containers together with the image");
        check_all(&exporter, &[image_is_gone(&image)]);
        return;
    }
    check_all(
        &exporter,
        &[
            image_is(&image, Name::Missing, &[("exited", 1.0), ("created", 1.0)], "stopped_only"),
            expect("missing images are counted", |e| {
                let missing = e.value("docker_images_missing", &[])?;
                (missing >= 1.0).then_some(()).ok_or_else(|| format!("{missing}"))
            }),
        ],
    );
}

#[test]
fn parents_of_local_builds_and_untagged_images_in_use() {
    let mut scenario = Scenario::new("family");
    let parent_tag = format!("{}:1", scenario.repo("parent"));
    let parent = scenario.image("parent", Some(&parent_tag));
    let child_tag = format!("{}:1", scenario.repo("child"));
    let child = scenario.build(&parent_tag, "child", Some(&child_tag));
    scenario.container_in_state(&child_tag, "running");
    // On the classic store, untagging the parent leaves it in place (the child needs it),
    // listed only with all=1; the containerd store deletes it.
    must_docker(&["rmi", &parent_tag]);
    let parent_id = parent.clone();
    let parent_expectations = match docker(&["image", "inspect", &parent]) {
        Ok(_) => vec![
            image_is(&parent, Name::Untagged, &[], "unused"),
            expect("the untagged parent is intermediate, not dangling", move |e| {
                let info = e.find("docker_image_info", &[("image_id", &parent_id)]);
                match info.as_slice() {
                    [one]
                        if one.labels["intermediate"] == "true"
                            && one.labels["dangling"] == "false" =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            }),
        ],
        Err(_) => vec![image_is_gone(&parent)],
    };

    // An untagged image that a running container still uses.
    let used_tag = format!("{}:1", scenario.repo("untagged"));
    let used = scenario.image("untagged", Some(&used_tag));
    let user = scenario.container_in_state(&used, "running");
    // Forced, because the image is in use: Docker only takes the tag away, Podman removes
    // the image and its containers.
    must_docker(&["rmi", "-f", &used_tag]);
    let used_expectation = if scenario.exists(&user) {
        image_is(&used, untagged_or_missing(&used), &[("running", 1.0)], "in_use")
    } else {
        image_is_gone(&used)
    };

    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    let child_name = Name::Tag(scenario.target.tag_name(&child_tag));
    check_all(
        &exporter,
        &parent_expectations
            .into_iter()
            .chain([image_is(&child, child_name, &[("running", 1.0)], "in_use"), used_expectation])
            .collect::<Vec<_>>(),
    );
}

#[test]
fn the_exposition_passes_promtool() {
    let mut scenario = Scenario::new("promtool");
    let tag = format!("{}:1", scenario.repo("promtool"));
    let image = scenario.image("promtool", Some(&tag));
    scenario.container_in_state(&image, "exited");

    let exporter = Exporter::start(&["--scan.interval", "200ms"]);
    let name = Name::Tag(scenario.target.tag_name(&tag));
    check_all(&exporter, &[image_is(&image, name, &[("exited", 1.0)], "stopped_only")]);
    let response = exporter.get("/metrics");
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (apt-get install prometheus)");
    use std::io::Write;
    promtool.stdin.take().expect("stdin").write_all(response.body.as_bytes()).expect("write");
    let output = promtool.wait_with_output().expect("promtool runs");
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool check metrics failed:\n{said}");
    assert!(said.trim().is_empty(), "promtool has remarks:\n{said}");
}

#[test]
fn readiness_follows_the_first_scan_and_sigterm_stops_quickly() {
    engine();
    let mut exporter = Exporter::start(&["--scan.interval", "200ms"]);
    assert_eq!(exporter.get("/healthz").status, 200);
    eventually(Duration::from_secs(10), || match exporter.get("/readyz").status {
        200 => Ok(()),
        other => Err(format!("/readyz answered {other}")),
    });
    let (status, took) = exporter.stop();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
}

/// Where the engine's socket is, from `DOCKER_HOST`.
fn engine_socket() -> String {
    let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST is set by engine()");
    host.strip_prefix("unix://").expect("the suite runs against a unix socket").to_owned()
}

#[test]
fn a_scan_reads_and_makes_two_list_calls_whatever_the_container_count() {
    let mut scenario = Scenario::new("calls");
    let tag = format!("{}:1", scenario.repo("calls"));
    let image = scenario.image("calls", Some(&tag));
    for _ in 0..5 {
        scenario.container_in_state(&image, "created");
    }

    let dir = std::env::temp_dir().join(format!("die-proxy-{}", scenario.run));
    std::fs::create_dir_all(&dir).unwrap();
    let proxy = Proxy::start(&dir, engine_socket());
    let mut exporter =
        Exporter::start(&["--docker.host", &proxy.address, "--scan.interval", "200ms"]);
    let name = Name::Tag(scenario.target.tag_name(&tag));
    check_all(&exporter, &[image_is(&image, name, &[("created", 5.0)], "stopped_only")]);
    std::thread::sleep(Duration::from_secs(1));
    let successes = exporter
        .scrape()
        .value("docker_image_exporter_scans_total", &[("result", "success")])
        .unwrap();
    exporter.stop();
    let _ = std::fs::remove_dir_all(&dir);

    let requests = proxy.requests();
    let not_get: Vec<&String> = requests.iter().filter(|r| !r.starts_with("GET ")).collect();
    assert!(not_get.is_empty(), "requests that are not GET: {not_get:?}");
    let count = |part: &str| requests.iter().filter(|r| r.contains(part)).count() as f64;
    let containers = count("/containers/json?all=1 ");
    let images = count("/images/json?all=1 ");
    // A scan may have been under way when the exporter stopped.
    assert!((successes..=successes + 1.0).contains(&containers), "{containers} vs {successes}");
    assert!((successes..=successes + 1.0).contains(&images), "{images} vs {successes}");
    let other: Vec<&String> = requests
        .iter()
        .filter(|r| !r.contains("/containers/json?all=1 ") && !r.contains("/images/json?all=1 "))
        .filter(|r| !r.contains(" /version ") && !r.contains("/info "))
        .filter(|r| !r.contains("/events?"))
        .collect();
    assert!(other.is_empty(), "unexpected requests: {other:?}");
    eprintln!("{} requests over {successes} scans: {requests:?}", requests.len());
}

/// Percentiles of a sorted list of durations, for the report.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn state_changes_show_soon_after_their_events() {
    let mut scenario = Scenario::new("events");
    let tag = format!("{}:1", scenario.repo("events"));
    let image = scenario.image("events", Some(&tag));
    let container = scenario.container_in_state(&image, "running");

    // With an interval of an hour, only events can explain a change showing.
    let exporter = Exporter::start(&["--scan.interval", "1h"]);
    let name = Name::Tag(scenario.target.tag_name(&tag));
    check_all(&exporter, &[image_is(&image, name, &[("running", 1.0)], "in_use")]);

    let mut latencies = Vec::new();
    for round in 0..20 {
        let (command, state) =
            if round % 2 == 0 { ("pause", "paused") } else { ("unpause", "running") };
        must_docker(&[command, &container]);
        // Poll finely: the latency is the figure being measured.
        let applied = std::time::Instant::now();
        loop {
            let exposition = exporter.scrape();
            let labels = [("image_id", image.as_str()), ("state", state)];
            if exposition.value("docker_image_containers", &labels) == Ok(1.0) {
                break;
            }
            assert!(applied.elapsed() < Duration::from_secs(5), "{state} never showed");
            std::thread::sleep(Duration::from_millis(5));
        }
        latencies.push(applied.elapsed());
    }
    latencies.sort();
    eprintln!(
        "event-to-metric latency over {} changes: p50 {:?}, p90 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies[latencies.len() - 1],
    );
    let exposition = exporter.scrape();
    let interval_scans = exposition
        .value("docker_image_exporter_scans_triggered_total", &[("cause", "interval")])
        .unwrap();
    assert_eq!(interval_scans, 0.0);
}

#[test]
fn a_burst_of_changes_costs_a_few_scans() {
    let mut scenario = Scenario::new("burst");
    let tag = format!("{}:1", scenario.repo("burst"));
    let image = scenario.image("burst", Some(&tag));
    let exporter = Exporter::start(&["--scan.interval", "1h"]);
    let name = Name::Tag(scenario.target.tag_name(&tag));
    check_all(&exporter, &[image_is(&image, name.clone(), &[], "unused")]);
    let event_scans = |exporter: &Exporter| {
        let exposition = exporter.scrape();
        exposition.value("docker_image_exporter_scans_triggered_total", &[("cause", "event")])
    };
    let before = event_scans(&exporter).unwrap();

    // Thirty containers created at once, as `compose up` would.
    let label = format!("die.test={}", scenario.run);
    let creators: Vec<_> = (0..30)
        .map(|_| {
            Command::new("docker")
                .args(["create", "--pull", "never", "--network", "none", "--label", &label, &tag])
                .stdout(Stdio::null())
                .spawn()
                .expect("start docker create")
        })
        .collect();
    for mut creator in creators {
        assert!(creator.wait().expect("docker create").success());
    }

    check_all(&exporter, &[image_is(&image, name, &[("created", 30.0)], "stopped_only")]);
    let scans = event_scans(&exporter).unwrap() - before;
    eprintln!("30 containers created at once cost {scans} event-triggered scans");
    assert!(scans < 15.0, "{scans} scans for one burst");
}

#[test]
fn the_engine_is_identified_with_the_negotiated_api_version() {
    let target = engine();
    let format = "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Version}}";
    let versions = must_docker(&["version", "--format", format]);
    let [api, min_api, version] = versions.split(' ').collect::<Vec<_>>()[..] else {
        panic!("unexpected version answer {versions:?}");
    };
    let driver = must_docker(&["info", "--format", "{{.Driver}}"]);

    let exporter = Exporter::start(&["--scan.interval", "1h"]);
    let exposition = eventually(Duration::from_secs(10), || {
        let exposition = exporter.scrape();
        match exposition.find("docker_engine_info", &[]).len() {
            1 => Ok(exposition),
            n => Err(format!("{n} docker_engine_info series")),
        }
    });
    let info = &exposition.find("docker_engine_info", &[])[0].labels;
    eprintln!("docker_engine_info: {info:?}");

    // The lower of the engine's version and the client library's, never below the minimum.
    let number = |v: &str| -> (u32, u32) {
        let (major, minor) = v.split_once('.').expect("major.minor");
        (major.parse().unwrap(), minor.parse().unwrap())
    };
    let negotiated = number(&info["api_version"]);
    assert!(negotiated <= number(api), "{negotiated:?} above the engine's {api}");
    assert!(negotiated >= number(min_api), "{negotiated:?} below the engine's minimum {min_api}");
    if number(api) <= (1, 53) {
        assert_eq!(info["api_version"], api);
    }
    assert_eq!(info["version"], version);
    assert_eq!(info["engine"], if target.podman { "podman" } else { "docker" });
    assert!(info["storage_driver"].ends_with(&driver), "{info:?} vs driver {driver}");
    if target.containerd_store {
        assert!(info["storage_driver"].starts_with("containerd-snapshotter/"), "{info:?}");
    }
}
