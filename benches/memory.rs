//! Heap held and peaked by a scan's work inside the exporter, per size.
//!
//! A counting allocator follows the scanner's order of work: with the previous scan's snapshot
//! and exposition still held, it decodes the container body, then the image body (each body is
//! freed once decoded), builds the new snapshot, drops the old one, and renders the new
//! exposition while the old one is still published. It prints, per size, the bodies' length,
//! the heap held between scans, and the peak during the scan, with their ratios to the bodies.
//!
//! The HTTP client's buffering of the bodies is not included: the end-to-end script measures
//! the whole process (`scripts/bench/e2e.py`). Run with `cargo bench --bench memory`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use docker_image_exporter::render::{render, BuildInfo};
use docker_image_exporter::snapshot::Snapshot;

use common::{Bodies, SIZES};

/// The system allocator, counting the bytes in use and their high-water mark.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(pointer, layout, new_size);
        if !moved.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap in use now.
fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// Starts a new high-water mark from what is in use now.
fn reset_peak() {
    PEAK.store(in_use(), Ordering::Relaxed);
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// What one size measured, in bytes and seconds.
struct Measured {
    bodies: usize,
    exposition: usize,
    held: usize,
    peak: usize,
    seconds: f64,
}

/// Two scans of the same engine state; the second is measured, with the first one's results
/// held as the scanner holds them.
fn measure(containers: usize, images: usize) -> Measured {
    let (engine, status, live) = (common::engine(), common::status(), common::live());
    let generated = Bodies::new(containers, images);
    let bodies = generated.len();

    // The previous scan's results, as held between scans.
    let base = in_use();
    let (image_list, container_list) = generated.decode();
    let mut snapshot = Snapshot::build(image_list, container_list, &live);
    let mut published = render(Some(&snapshot), Some(&engine), &status, &BuildInfo::CURRENT);
    let held = in_use() - base;

    // The engine's answers arrive one after the other; each body is gone once decoded.
    let before = in_use();
    reset_peak();
    let started = Instant::now();
    let container_body = generated.containers.clone();
    let container_list = serde_json::from_slice(&container_body).expect("containers");
    drop(container_body);
    let image_body = generated.images.clone();
    let image_list = serde_json::from_slice(&image_body).expect("images");
    drop(image_body);
    let fresh = Snapshot::build(image_list, container_list, &live);
    snapshot = fresh;
    // Publishing the new exposition frees the old one.
    let exposition = render(Some(&snapshot), Some(&engine), &status, &BuildInfo::CURRENT);
    drop(std::mem::replace(&mut published, exposition));
    let seconds = started.elapsed().as_secs_f64();
    let measured = Measured {
        bodies,
        exposition: published.len(),
        held,
        peak: held + (peak() - before),
        seconds,
    };
    drop((snapshot, published));
    measured
}

fn main() {
    // `cargo bench` passes --bench; filters are not supported here.
    let sizes = SIZES.iter().copied().chain([(1_000, 10_000), (10, 10_000)]);
    println!(
        "| containers / images | bodies KiB | exposition KiB | held between scans KiB \
         (per object B) | peak during a scan KiB | peak / bodies | ms (per object us) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (containers, images) in sizes {
        let m = measure(containers, images);
        let objects = (containers + images) as f64;
        println!(
            "| {containers} / {images} | {} | {} | {} ({:.0}) | {} | {:.2} | {:.1} ({:.2}) |",
            m.bodies / 1024,
            m.exposition / 1024,
            m.held / 1024,
            m.held as f64 / objects,
            m.peak / 1024,
            m.peak as f64 / m.bodies as f64,
            m.seconds * 1e3,
            m.seconds * 1e6 / objects,
        );
    }
}
