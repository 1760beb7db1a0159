//! Micro-benchmarks of the proxied path's own work (filled in by the benchmark suite).
use criterion::{criterion_group, criterion_main, Criterion};

fn placeholder(c: &mut Criterion) {
    c.bench_function("path_normalize", |b| {
        b.iter(|| authgate::gateway::path::normalize("/a/b/../c"))
    });
}

criterion_group!(benches, placeholder);
criterion_main!(benches);
