//! Load + run of `../shared/conformance` (every FunctionTest), the work `koreo test` does beyond
//! starting the process. Goal: at most 6 ms (the original Koreo spends about 580 ms).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use koreo_lang::Workspace;

// The allocator of the `koreo` binary, so that the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn conformance(c: &mut Criterion) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
    // The CEL environment is built once per process, before any timing in `koreo test` matters.
    let _ = koreo_stdlib::env();
    c.bench_function("conformance_load_and_run", |b| {
        b.iter(|| {
            let ws = Workspace::load_paths(&[root]);
            let reports = koreo_testing::run_all(&ws, None);
            assert_eq!(reports.len(), 25);
            reports
        })
    });
    // The two halves, to see where the time goes.
    c.bench_function("conformance_load", |b| {
        b.iter(|| Workspace::load_paths(&[root]))
    });
    let ws = Workspace::load_paths(&[root]);
    c.bench_function("conformance_run", |b| {
        b.iter(|| koreo_testing::run_all(&ws, None))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = conformance
}
criterion_main!(benches);
