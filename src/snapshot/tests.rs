//! One scenario per test: engine payloads in, accounting out.

use super::*;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn image(id: &str, tags: &[&str], digests: &[&str]) -> ImageSummary {
    ImageSummary {
        id: id.to_owned(),
        repo_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        repo_digests: Some(digests.iter().map(|d| d.to_string()).collect()),
        created: Some(1_700_000_000),
        size: Some(1000),
        parent_id: None,
    }
}

fn container(n: usize, image_id: &str, typed: &str, state: &str) -> ContainerSummary {
    ContainerSummary {
        id: format!("c{n}"),
        image_id: Some(image_id.to_owned()),
        image: Some(typed.to_owned()),
        state: Some(state.to_owned()),
    }
}

fn live() -> LiveStates {
    LiveStates::new(["running", "paused", "restarting"])
}

fn refs(snapshot: &Snapshot, id: &str) -> Vec<(String, u64)> {
    let image = find(snapshot, id);
    snapshot.states.iter().cloned().zip(image.references.iter().copied()).collect()
}

fn find<'a>(snapshot: &'a Snapshot, id: &str) -> &'a Image {
    snapshot.images.iter().find(|i| i.id == id).expect("image in snapshot")
}

fn count(snapshot: &Snapshot, id: &str, state: &str) -> u64 {
    refs(snapshot, id).into_iter().find(|(s, _)| s == state).map_or(0, |(_, n)| n)
}

#[test]
fn every_state_counts_toward_the_image() {
    let states = ["created", "running", "paused", "restarting", "removing", "exited", "dead"];
    let containers = states.iter().enumerate().map(|(n, s)| container(n, A, "app", s)).collect();
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], containers, &live());

    for state in states {
        assert_eq!(count(&snapshot, A, state), 1, "state {state}");
    }
    assert_eq!(find(&snapshot, A).total_references(), 7);
    assert_eq!(find(&snapshot, A).usage, Usage::InUse);
}

#[test]
fn stopped_containers_alone_make_an_image_stopped_only() {
    let containers = vec![
        container(1, A, "app:1", "exited"),
        container(2, A, "app:1", "created"),
        container(3, A, "app:1", "dead"),
    ];
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], containers, &live());
    assert_eq!(find(&snapshot, A).usage, Usage::StoppedOnly);
}

#[test]
fn an_image_without_containers_is_unused() {
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], vec![], &live());
    let image = find(&snapshot, A);
    assert_eq!(image.usage, Usage::Unused);
    assert_eq!(image.references, vec![0; KNOWN_STATES.len()]);
}

#[test]
fn a_moved_tag_leaves_the_container_on_its_old_image() {
    // The container was created from app:1 when it pointed at A; app:1 now names B.
    let images = vec![image(A, &[], &[]), image(B, &["app:1"], &[])];
    let containers = vec![container(1, A, "app:1", "running")];
    let snapshot = Snapshot::build(images, containers, &live());

    assert_eq!(find(&snapshot, A).usage, Usage::InUse);
    assert!(find(&snapshot, A).dangling);
    assert_eq!(find(&snapshot, A).name, UNNAMED_IMAGE_NAME);
    assert_eq!(find(&snapshot, B).usage, Usage::Unused);
    assert_eq!(find(&snapshot, B).total_references(), 0);
}

#[test]
fn the_image_string_of_the_container_list_is_never_matched() {
    // Short IDs, full IDs of another image and name@digest all point elsewhere or nowhere.
    let images = vec![image(A, &["app:1"], &["app@sha256:1234"]), image(B, &["other:1"], &[])];
    let containers = vec![
        container(1, A, &B[7..19], "running"),
        container(2, A, B, "exited"),
        container(3, A, "other@sha256:9999", "created"),
        container(4, A, "other:1", "paused"),
    ];
    let snapshot = Snapshot::build(images, containers, &live());
    assert_eq!(find(&snapshot, A).total_references(), 4);
    assert_eq!(find(&snapshot, B).total_references(), 0);
}

#[test]
fn an_image_with_several_tags_is_one_image() {
    let images = vec![image(A, &["b:2", "a:1", "c:3"], &[])];
    let containers = vec![container(1, A, "b:2", "running"), container(2, A, "c:3", "exited")];
    let snapshot = Snapshot::build(images, containers, &live());

    assert_eq!(snapshot.images.len(), 1);
    assert_eq!(find(&snapshot, A).name, "a:1");
    assert_eq!(find(&snapshot, A).tags, vec!["a:1", "b:2", "c:3"]);
    assert_eq!(snapshot.images_by_usage(), [1, 0, 0]);
}

#[test]
fn entries_repeated_per_tag_are_merged() {
    // Some image stores list one entry per tag, each with the same ID.
    let images = vec![image(A, &["b:2"], &[]), image(A, &["a:1"], &[])];
    let snapshot = Snapshot::build(images, vec![container(1, A, "a:1", "exited")], &live());

    assert_eq!(snapshot.images.len(), 1);
    assert_eq!(find(&snapshot, A).name, "a:1");
    assert_eq!(find(&snapshot, A).total_references(), 1);
    assert_eq!(snapshot.bytes_by_usage(), [0, 1000, 0]);
}

#[test]
fn the_name_is_stable_whatever_order_the_engine_lists_tags_in() {
    let first = Snapshot::build(vec![image(A, &["x:1", "a:9"], &[])], vec![], &live());
    let second = Snapshot::build(vec![image(A, &["a:9", "x:1"], &[])], vec![], &live());
    assert_eq!(find(&first, A).name, find(&second, A).name);
}

#[test]
fn a_force_removed_image_keeps_its_containers() {
    let containers = vec![container(1, C, C, "exited"), container(2, C, C, "created")];
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], containers, &live());

    let missing = find(&snapshot, C);
    assert!(!missing.listed);
    assert_eq!(missing.name, MISSING_IMAGE_NAME);
    assert_eq!(missing.usage, Usage::StoppedOnly);
    assert_eq!(missing.total_references(), 2);
    assert_eq!(missing.size_bytes, None);
    assert_eq!(snapshot.missing_images(), 1);
    // Host totals count the images the engine holds.
    assert_eq!(snapshot.images_by_usage(), [0, 0, 1]);
}

#[test]
fn parent_and_child_images_are_counted_apart() {
    // A locally built child: its untagged parent is listed only with all=1.
    let images = vec![image(A, &[], &[]), image(B, &["child:1"], &[])];
    let containers = vec![container(1, B, "child:1", "running")];
    let snapshot = Snapshot::build(images, containers, &live());

    assert_eq!(find(&snapshot, A).usage, Usage::Unused);
    assert!(find(&snapshot, A).dangling);
    assert_eq!(find(&snapshot, B).usage, Usage::InUse);
}

#[test]
fn a_dangling_image_in_use_is_not_unused() {
    let images = vec![image(A, &["<none>:<none>"], &["<none>@<none>"])];
    let snapshot = Snapshot::build(images, vec![container(1, A, A, "running")], &live());

    let image = find(&snapshot, A);
    assert!(image.dangling);
    assert_eq!(image.name, UNNAMED_IMAGE_NAME);
    assert_eq!(image.usage, Usage::InUse);
    assert_eq!(snapshot.dangling_images(), 1);
}

#[test]
fn an_image_known_only_by_digest_is_named_by_it() {
    let images = vec![image(A, &[], &["registry.example/app@sha256:0123"])];
    let snapshot = Snapshot::build(images, vec![container(1, A, "x", "exited")], &live());
    assert_eq!(find(&snapshot, A).name, "registry.example/app@sha256:0123");
    assert!(find(&snapshot, A).dangling);
}

#[test]
fn sizes_not_computed_are_not_published() {
    let mut entry = image(A, &["app:1"], &[]);
    entry.size = Some(-1);
    let snapshot = Snapshot::build(vec![entry], vec![], &live());
    assert_eq!(find(&snapshot, A).size_bytes, None);
    assert_eq!(snapshot.bytes_by_usage(), [0, 0, 0]);
}

#[test]
fn an_unknown_state_is_its_own_series_and_not_live() {
    let containers = vec![container(1, A, "app", "Stopped"), container(2, A, "app", "")];
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], containers, &live());

    let mut expected: Vec<String> = KNOWN_STATES.iter().map(|s| s.to_string()).collect();
    expected.extend(["stopped".to_owned(), "unknown".to_owned()]);
    assert_eq!(snapshot.states, expected);
    assert_eq!(count(&snapshot, A, "stopped"), 1);
    assert_eq!(count(&snapshot, A, "unknown"), 1);
    assert_eq!(find(&snapshot, A).usage, Usage::StoppedOnly);
}

#[test]
fn live_states_are_configurable() {
    let containers = vec![container(1, A, "app", "stopped")];
    let live = LiveStates::new(["running", "Stopped"]);
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], containers, &live);
    assert_eq!(find(&snapshot, A).usage, Usage::InUse);
}

#[test]
fn image_ids_match_across_spellings() {
    // The container's ImageID without the algorithm prefix still finds its image.
    let containers = vec![container(1, &A[7..], "app", "running")];
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], containers, &live());
    assert_eq!(snapshot.images.len(), 1);
    assert_eq!(find(&snapshot, A).usage, Usage::InUse);
}

#[test]
fn containers_without_an_image_id_are_counted_on_the_host_only() {
    let mut orphan = container(1, A, "app", "exited");
    orphan.image_id = None;
    let snapshot = Snapshot::build(vec![image(A, &["app:1"], &[])], vec![orphan], &live());
    assert_eq!(snapshot.unattributed_containers, 1);
    assert_eq!(snapshot.containers_by_state.iter().sum::<u64>(), 1);
    assert_eq!(find(&snapshot, A).usage, Usage::Unused);
}

#[test]
fn an_untagged_parent_is_intermediate_not_dangling() {
    // A classic build's step: untagged, and the tagged child names it as its parent.
    let mut child = image(B, &["child:1"], &[]);
    child.parent_id = Some(A[7..].to_owned());
    let snapshot = Snapshot::build(vec![image(A, &[], &[]), child], vec![], &live());

    let parent = find(&snapshot, A);
    assert!(parent.intermediate);
    assert!(!parent.dangling);
    assert_eq!(parent.usage, Usage::Unused);
    assert!(!find(&snapshot, B).intermediate);
    assert_eq!(snapshot.dangling_images(), 0);
}
