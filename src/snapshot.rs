//! A scan's result: every image with its container references by state and its usage class.
//!
//! This is the exporter's accounting, kept free of I/O so that it can be tested from engine
//! payloads alone. The rules it holds are the ones image-cleanup tools get wrong:
//!
//! - a container belongs to the image whose ID equals its `ImageID`, in whatever state it is;
//!   names, tags and the container list's `Image` string are never used to find the image;
//! - an image listed several times (one entry per tag on some stores) is one image;
//! - a container whose image was force-removed still counts, under an image marked missing;
//! - "dangling" (untagged) says nothing about use: only containers do.
//!
//! "Dangling" follows the engine's own filter: an untagged image that no other listed image is
//! built on. An untagged image that others are built on (a classic build's intermediate step)
//! is "intermediate": no prune removes it while its children exist.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{normalize_image_id, ContainerSummary, ImageSummary};

/// The container states the Docker API documents. Every image gets a series for each of these,
/// zeros included, so that queries and alerts never meet an absent series.
pub const KNOWN_STATES: [&str; 7] =
    ["created", "running", "paused", "restarting", "removing", "exited", "dead"];

/// States Podman reports besides Docker's (libpod's own names).
pub const PODMAN_STATES: [&str; 6] =
    ["configured", "initialized", "stopped", "stopping", "removing", "unknown"];

/// The `image` label of an image that containers reference but the engine no longer lists.
pub const MISSING_IMAGE_NAME: &str = "<missing>";

/// The `image` label of an image with neither a tag nor a digest reference.
pub const UNNAMED_IMAGE_NAME: &str = "<none>";

/// The state label of a container for which the engine reported no state at all.
pub const UNKNOWN_STATE: &str = "unknown";

/// An image's usage class, from the states of the containers that reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Usage {
    /// At least one referencing container is in a live state.
    InUse,
    /// Referenced, but by no live container: `docker system prune -a` would remove the
    /// containers and then the image.
    StoppedOnly,
    /// No container references the image.
    Unused,
}

impl Usage {
    /// Every class, in the order the exposition lists them.
    pub const ALL: [Usage; 3] = [Usage::InUse, Usage::StoppedOnly, Usage::Unused];

    /// The `usage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::InUse => "in_use",
            Usage::StoppedOnly => "stopped_only",
            Usage::Unused => "unused",
        }
    }

    fn index(self) -> usize {
        match self {
            Usage::InUse => 0,
            Usage::StoppedOnly => 1,
            Usage::Unused => 2,
        }
    }
}

/// The set of container states that make an image "in use", lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStates(HashSet<String>);

impl LiveStates {
    pub fn new<I, S>(states: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        LiveStates(states.into_iter().map(|s| s.as_ref().trim().to_ascii_lowercase()).collect())
    }

    pub fn contains(&self, state: &str) -> bool {
        self.0.contains(state)
    }

    /// The states of the set that no engine is known to report: likely misspelt.
    pub fn unknown(&self) -> Vec<&str> {
        let mut unknown: Vec<&str> = (self.0.iter().map(String::as_str))
            .filter(|s| !KNOWN_STATES.contains(s) && !PODMAN_STATES.contains(s))
            .collect();
        unknown.sort_unstable();
        unknown
    }
}

impl std::fmt::Display for LiveStates {
    /// The states, sorted and comma-separated, as the flag takes them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut states: Vec<&str> = self.0.iter().map(String::as_str).collect();
        states.sort_unstable();
        f.write_str(&states.join(","))
    }
}

/// One image as the exporter publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The normalized image ID (`sha256:...`).
    pub id: String,
    /// A stable human name: the first tag in sorting order, else the first digest reference,
    /// else `<none>`; `<missing>` when the engine no longer lists the image.
    pub name: String,
    /// Every tag, sorted.
    pub tags: Vec<String>,
    /// True when the image has no tag and no listed image is built on it, as the engine's
    /// `dangling=true` filter has it (whether or not containers use it).
    pub dangling: bool,
    /// True when the image has no tag but other listed images are built on it.
    pub intermediate: bool,
    /// False when containers reference the ID but the image list does not have it.
    pub listed: bool,
    /// Size in bytes as the engine reports it; `None` when unknown or not computed.
    pub size_bytes: Option<u64>,
    /// Creation time in seconds since the epoch; `None` when unknown.
    pub created_seconds: Option<i64>,
    /// Referencing containers per state, indexed like [`Snapshot::states`].
    pub references: Vec<u64>,
    pub usage: Usage,
}

impl Image {
    /// The number of containers that reference the image, in any state.
    pub fn total_references(&self) -> u64 {
        self.references.iter().sum()
    }
}

/// Everything one scan learned, ready to render.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The state labels in exposition order: [`KNOWN_STATES`], then any other state the engine
    /// reported, sorted.
    pub states: Vec<String>,
    /// Every listed image and every missing image that containers reference, sorted by ID.
    pub images: Vec<Image>,
    /// Containers per state on the host, indexed like `states`.
    pub containers_by_state: Vec<u64>,
    /// Containers that carried no `ImageID` and so could not be attributed to an image.
    pub unattributed_containers: u64,
}

impl Snapshot {
    /// Does the accounting of one scan: both lists in, one snapshot out.
    pub fn build(
        images: Vec<ImageSummary>,
        containers: Vec<ContainerSummary>,
        live: &LiveStates,
    ) -> Snapshot {
        // States first, so that every image's counts share one dense index.
        let states = collect_states(&containers);
        let state_index: HashMap<&str, usize> =
            states.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();

        // Merge the image list by normalized ID: one image however many entries it has.
        let mut by_id: BTreeMap<String, ImageAcc> = BTreeMap::new();
        let mut parents = HashSet::new();
        for summary in images {
            if let Some(parent) = summary.parent_id.as_deref().filter(|p| !p.is_empty()) {
                parents.insert(normalize_image_id(parent));
            }
            by_id.entry(normalize_image_id(&summary.id)).or_default().absorb(summary);
        }
        for parent in parents {
            if let Some(acc) = by_id.get_mut(&parent) {
                acc.has_children = true;
            }
        }

        // Attribute each container to its ImageID, adding missing images as they appear.
        let mut containers_by_state = vec![0; states.len()];
        let mut unattributed_containers = 0;
        for container in &containers {
            let state = state_label(container);
            let slot = state_index[state.as_ref()];
            containers_by_state[slot] += 1;

            let Some(image_id) = container.image_id.as_deref().filter(|id| !id.is_empty()) else {
                unattributed_containers += 1;
                continue;
            };
            let acc = by_id.entry(normalize_image_id(image_id)).or_default();
            if acc.references.is_empty() {
                acc.references = vec![0; states.len()];
            }
            acc.references[slot] += 1;
        }

        let images = by_id.into_iter().map(|(id, acc)| acc.finish(id, &states, live)).collect();
        Snapshot { states, images, containers_by_state, unattributed_containers }
    }

    /// Images per usage class, indexed like [`Usage::ALL`]. Missing images are not counted:
    /// these are the images the engine holds.
    pub fn images_by_usage(&self) -> [u64; 3] {
        let mut counts = [0; 3];
        for image in self.images.iter().filter(|i| i.listed) {
            counts[image.usage.index()] += 1;
        }
        counts
    }

    /// Bytes of images per usage class, indexed like [`Usage::ALL`].
    pub fn bytes_by_usage(&self) -> [u64; 3] {
        let mut bytes = [0; 3];
        for image in self.images.iter().filter(|i| i.listed) {
            bytes[image.usage.index()] += image.size_bytes.unwrap_or(0);
        }
        bytes
    }

    /// Listed images without a tag.
    pub fn dangling_images(&self) -> u64 {
        self.images.iter().filter(|i| i.listed && i.dangling).count() as u64
    }

    /// Image IDs that containers reference but the engine does not list.
    pub fn missing_images(&self) -> u64 {
        self.images.iter().filter(|i| !i.listed).count() as u64
    }
}

/// The state label of a container: the engine's word, lowercased; `unknown` when absent.
fn state_label(container: &ContainerSummary) -> std::borrow::Cow<'_, str> {
    match container.state.as_deref().map(str::trim) {
        None | Some("") => UNKNOWN_STATE.into(),
        Some(s) if s.bytes().any(|b| b.is_ascii_uppercase()) => s.to_ascii_lowercase().into(),
        Some(s) => s.into(),
    }
}

/// The known states followed by any others the containers are in, sorted.
fn collect_states(containers: &[ContainerSummary]) -> Vec<String> {
    let mut extra = std::collections::BTreeSet::new();
    for container in containers {
        let state = state_label(container);
        if !KNOWN_STATES.contains(&state.as_ref()) && !extra.contains(state.as_ref()) {
            extra.insert(state.into_owned());
        }
    }
    KNOWN_STATES.iter().map(|s| s.to_string()).chain(extra).collect()
}

/// What the image list and the containers say about one image ID, before it is finished.
#[derive(Default)]
struct ImageAcc {
    listed: bool,
    tags: Vec<String>,
    digests: Vec<String>,
    size: Option<u64>,
    created: Option<i64>,
    references: Vec<u64>,
    /// Whether another listed image names this one as its parent.
    has_children: bool,
}

impl ImageAcc {
    /// Folds one image-list entry in; entries for the same ID add their tags.
    fn absorb(&mut self, summary: ImageSummary) {
        self.listed = true;
        // "<none>:<none>" and "<none>@<none>" are how older engines spell "no tag" and
        // "no digest".
        let tags = summary.repo_tags.unwrap_or_default();
        self.tags.extend(tags.into_iter().filter(|t| !t.starts_with("<none>")));
        let digests = summary.repo_digests.unwrap_or_default();
        self.digests.extend(digests.into_iter().filter(|d| !d.starts_with("<none>")));
        // NOTE: a negative size means "not computed"; it must never be published.
        if let Some(size) = summary.size.and_then(|s| u64::try_from(s).ok()) {
            self.size = Some(self.size.map_or(size, |known| known.max(size)));
        }
        self.created = self.created.or(summary.created.filter(|c| *c > 0));
    }

    fn finish(mut self, id: String, states: &[String], live: &LiveStates) -> Image {
        self.tags.sort_unstable();
        self.tags.dedup();
        self.digests.sort_unstable();
        self.digests.dedup();
        if self.references.is_empty() {
            self.references = vec![0; states.len()];
        }

        let name = if !self.listed {
            MISSING_IMAGE_NAME.to_owned()
        } else if let Some(tag) = self.tags.first() {
            tag.clone()
        } else if let Some(digest) = self.digests.first() {
            digest.clone()
        } else {
            UNNAMED_IMAGE_NAME.to_owned()
        };

        let live_refs: u64 = (states.iter().zip(&self.references))
            .filter(|(state, _)| live.contains(state))
            .map(|(_, count)| count)
            .sum();
        let usage = if live_refs > 0 {
            Usage::InUse
        } else if self.references.iter().any(|count| *count > 0) {
            Usage::StoppedOnly
        } else {
            Usage::Unused
        };

        Image {
            id,
            name,
            dangling: self.tags.is_empty() && !self.has_children,
            intermediate: self.tags.is_empty() && self.has_children,
            tags: self.tags,
            listed: self.listed,
            size_bytes: self.size,
            created_seconds: self.created,
            references: self.references,
            usage,
        }
    }
}

#[cfg(test)]
mod tests;
