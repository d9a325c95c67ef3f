//! The dependency rule of ARCHITECTURE.md, checked on the resolved graph (`cargo tree`): the
//! language core does no I/O and no async, and only the controller and the binary talk to
//! Kubernetes.

use std::process::Command;

/// The crates a workspace member depends on (normal dependencies, transitively).
fn dependencies(package: &str) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn only_the_controller_and_the_binary_reach_kubernetes() {
    let kubernetes = [
        "kube",
        "kube-client",
        "k8s-openapi",
        "hyper",
        "prometheus-client",
    ];
    for package in [
        "koreo-lang",
        "koreo-stdlib",
        "koreo-reconcile",
        "koreo-testing",
        "koreo-lsp",
    ] {
        let found: Vec<String> = dependencies(package)
            .into_iter()
            .filter(|d| kubernetes.contains(&d.as_str()))
            .collect();
        assert!(found.is_empty(), "{package} depends on {found:?}");
    }
    assert!(dependencies("koreo-runtime").contains(&"kube".to_string()));
}

#[test]
fn the_language_core_does_no_io_and_no_async() {
    for package in ["koreo-lang", "koreo-stdlib"] {
        let found: Vec<String> = dependencies(package)
            .into_iter()
            .filter(|d| ["tokio", "futures", "mio", "reqwest"].contains(&d.as_str()))
            .collect();
        assert!(found.is_empty(), "{package} depends on {found:?}");
    }
}

#[test]
fn dependencies_point_one_way() {
    let ours = |package: &str| -> Vec<String> {
        dependencies(package)
            .into_iter()
            .filter(|d| d.starts_with("koreo") && d != package)
            .collect()
    };
    for (package, allowed) in [
        ("koreo-lang", &["koreo-stdlib"][..]),
        // Writes a file lang includes; nothing builds it but its own test.
        ("koreo-kube-schemas", &["koreo-lang", "koreo-stdlib"]),
        ("koreo-reconcile", &["koreo-lang", "koreo-stdlib"]),
        (
            "koreo-testing",
            &[
                "koreo-lang",
                "koreo-stdlib",
                "koreo-reconcile",
                "koreo-testkube",
            ],
        ),
        (
            "koreo-lsp",
            &[
                "koreo-lang",
                "koreo-stdlib",
                "koreo-reconcile",
                "koreo-testing",
                "koreo-testkube",
            ],
        ),
    ] {
        for dependency in ours(package) {
            assert!(
                allowed.contains(&dependency.as_str()),
                "{package} depends on {dependency}"
            );
        }
    }
    assert!(!ours("koreo").contains(&"koreo-kube-schemas".to_string()));
}
