//! Time of a scan's work inside the exporter, from engine bodies to exposition bytes.
//!
//! `accounting` decodes both list bodies and builds the snapshot, as a scan does once the
//! engine has answered; `render` turns that snapshot into the exposition that scrapes are then
//! served. The engine's own time is not here: `scripts/bench/e2e.py` measures it against a
//! real engine. Results, and how they compare with the engine's, are in
//! `docs/performance.md`.

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use docker_image_exporter::render::{render, BuildInfo};
use docker_image_exporter::snapshot::Snapshot;

use common::{Bodies, SIZES};

fn accounting(c: &mut Criterion) {
    let mut group = c.benchmark_group("accounting");
    let live = common::live();
    for (containers, images) in SIZES {
        let bodies = Bodies::new(containers, images);
        let id = common::label(containers, images);
        group.throughput(Throughput::Elements((containers + images) as u64));
        settle(&mut group, containers);

        group.bench_with_input(BenchmarkId::new("decode", &id), &bodies, |b, bodies| {
            b.iter(|| bodies.decode())
        });
        group.bench_with_input(BenchmarkId::new("decode+build", &id), &bodies, |b, bodies| {
            b.iter(|| {
                let (images, containers) = bodies.decode();
                Snapshot::build(images, containers, &live)
            })
        });
    }
    group.finish();
}

fn rendering(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    let (engine, status) = (common::engine(), common::status());
    for (containers, images) in SIZES {
        let (image_list, container_list) = Bodies::new(containers, images).decode();
        let snapshot = Snapshot::build(image_list, container_list, &common::live());
        group.throughput(Throughput::Elements((containers + images) as u64));
        settle(&mut group, containers);

        let id = common::label(containers, images);
        group.bench_with_input(BenchmarkId::new("exposition", &id), &snapshot, |b, snapshot| {
            b.iter(|| render(Some(snapshot), Some(&engine), &status, &BuildInfo::CURRENT))
        });
    }
    group.finish();
}

/// Fewer, longer samples for the large sizes, so that a whole run stays within minutes.
fn settle(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    if n >= 10_000 {
        group.sample_size(10).warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(if n >= 100_000 { 15 } else { 5 }));
    } else {
        group.sample_size(30).warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
    }
}

criterion_group!(benches, accounting, rendering);
criterion_main!(benches);
