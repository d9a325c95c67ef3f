//! Load + run of `../shared/conformance` in a fresh process each time: what `koreo test` costs
//! beyond process start, caches and allocator cold. The bench re-runs itself as the child; the
//! child times its own work from the top of `main` and prints nanoseconds.

use std::process::Command;
use std::time::Instant;

// The allocator of the `koreo` binary, so that the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHILD: &str = "--koreo-cold-child";
const RUNS: usize = 30;

fn child() {
    let start = Instant::now();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
    let ws = koreo_lang::Workspace::load_paths(&[root]);
    let reports = koreo_testing::run_all(&ws, None);
    let summary = koreo_testing::report::summarize(&reports);
    let elapsed = start.elapsed().as_nanos();
    assert_eq!(
        (summary.passed, summary.failed, summary.skipped),
        (70, 0, 2)
    );
    println!("{elapsed}");
}

fn main() {
    if std::env::args().any(|a| a == CHILD) {
        return child();
    }
    // `cargo bench` passes its own flags; a filter that does not name us means skip.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"conformance_cold_process".contains(&f)) {
        return;
    }
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let out = Command::new(&exe)
                .arg(CHILD)
                .output()
                .expect("the child runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let nanos: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("nanoseconds");
            nanos / 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "conformance_cold_process ({RUNS} fresh processes): min {:.2} ms, median {:.2} ms, max {:.2} ms",
        times[0],
        times[RUNS / 2],
        times[RUNS - 1]
    );
}
