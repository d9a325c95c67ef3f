//! Scale benchmark of the controller (a benchmark, not a test): N parents (default 1,000) of a
//! three-step workflow with two managed resources each, against the local API server. The
//! controller runs as `koreo run` in its own process, so its memory is its own. Prints the time
//! to converge, API requests by verb, writes during the steady state, and peak memory.
//!
//! `KOREO_SCALE_PARENTS` and `KOREO_SCALE_STEADY_SECS` (default 60) change the size and the
//! length of the steady-state window; `KOREO_SCALE_QPS` (default 5000) the controller's client
//! rate limit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use koreo_testkube::TestKube;
use koreo_testkube::store::Target;
use serde_json::{Value as Json, json};

const DEFINITIONS: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: scale, namespace: default}
spec:
  crdRef: {apiGroup: example.koreo.dev, version: v1, kind: App}
  steps:
  - label: naming
    ref: {kind: ValueFunction, name: scale-naming}
    inputs: {name: =parent.metadata.name}
  - label: config
    ref: {kind: ResourceFunction, name: scale-config}
    inputs: {name: =steps.naming.name, size: =parent.spec.size}
  - label: account
    ref: {kind: ResourceFunction, name: scale-account}
    inputs: {name: =steps.naming.name}
    condition: {type: AccountReady, name: Service account}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: scale-naming, namespace: default}
spec:
  return: {name: =inputs.name + "-app"}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: scale-config, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: =inputs.name, namespace: default}
  resource:
    data: {size: =string(inputs.size)}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: scale-account, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ServiceAccount, name: =inputs.name, namespace: default}
  resource:
    metadata:
      labels: {app: =inputs.name}
"#;

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "apps.example.koreo.dev"},
  "spec": {"group": "example.koreo.dev", "scope": "Namespaced", "names": {"kind": "App", "plural": "apps"},
    "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn create(server: &TestKube, object: Json) {
    server.with_store(|store| {
        let api_version = object["apiVersion"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        let (index, version) = store.kind_of(api_version, kind).expect("served kind");
        let namespaced = store.types[index].namespaced;
        let target = Target {
            kind: index,
            version: &version,
            namespace: namespaced.then_some("default"),
        };
        store
            .create(&target, object.clone(), "scale-bench")
            .expect("created");
    });
}

fn ready_parents(server: &TestKube) -> usize {
    server.with_store(|store| {
        let (index, _) = store.kind_of("example.koreo.dev/v1", "App").unwrap();
        let target = Target {
            kind: index,
            version: "v1",
            namespace: Some("default"),
        };
        let (items, _) = store.list(&target, &Default::default()).unwrap();
        items
            .iter()
            .filter(|a| {
                a["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count()
    })
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_memory_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn writes(counts: &std::collections::BTreeMap<String, u64>) -> u64 {
    ["create", "update", "patch", "delete"]
        .iter()
        .map(|v| counts.get(*v).copied().unwrap_or(0))
        .sum()
}

fn main() {
    // `cargo bench` passes its own flags; a name filter that is not ours means skip.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"scale".contains(a.as_str()))
    {
        return;
    }
    let parents = env_number("KOREO_SCALE_PARENTS", 1000);
    let steady = Duration::from_secs(env_number("KOREO_SCALE_STEADY_SECS", 60));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let server = runtime.block_on(TestKube::start()).unwrap();

    for kind in [
        "Workflow",
        "ValueFunction",
        "ResourceFunction",
        "ResourceTemplate",
    ] {
        create(&server, koreo_lang::schema::crd(kind));
    }
    create(&server, serde_json::from_str(CRD).unwrap());
    for doc in koreo_lang::yaml::parse_documents(DEFINITIONS).unwrap() {
        create(&server, doc.root.to_json());
    }
    for i in 0..parents {
        create(
            &server,
            json!({"apiVersion": "example.koreo.dev/v1", "kind": "App",
            "metadata": {"name": format!("app-{i}"), "namespace": "default"}, "spec": {"size": i % 7}}),
        );
    }
    let kubeconfig =
        std::env::temp_dir().join(format!("koreo-scale-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let before = server.request_counts();

    // The client's rate limit bounds convergence (requests / QPS); the default (50) protects a
    // shared API server, the benchmark measures the controller itself.
    let qps = env_number("KOREO_SCALE_QPS", 5000);
    let started = Instant::now();
    let mut controller = Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args(["run", "--metrics-addr", "off", "--qps"])
        .arg(qps.to_string())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("koreo run starts");
    let deadline = started + Duration::from_secs(600);
    let mut ready = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        ready = ready_parents(&server);
        if ready as u64 == parents {
            break;
        }
    }
    let converge = started.elapsed();
    let at_convergence = server.request_counts();

    std::thread::sleep(steady);
    let after_steady = server.request_counts();
    let peak = peak_memory_mib(controller.id());
    let _ = controller.kill();
    let _ = controller.wait();
    std::fs::remove_file(&kubeconfig).ok();

    let verbs = [
        "get", "list", "watch", "create", "patch", "update", "delete",
    ];
    let delta = |v: &str,
                 from: &std::collections::BTreeMap<String, u64>,
                 to: &std::collections::BTreeMap<String, u64>| {
        to.get(v).copied().unwrap_or(0) - from.get(v).copied().unwrap_or(0)
    };
    println!(
        "scale benchmark: {parents} parents, 3-step workflow, 2 managed resources each, --qps {qps}"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| parents Ready | {ready} of {parents} |");
    println!("| time to converge | {:.1} s |", converge.as_secs_f64());
    for v in verbs {
        println!(
            "| {v} requests to converge | {} |",
            delta(v, &before, &at_convergence)
        );
    }
    println!(
        "| writes in {} s of steady state | {} |",
        steady.as_secs(),
        writes(&after_steady) - writes(&at_convergence)
    );
    match peak {
        Some(mib) => println!("| controller peak memory (VmHWM) | {mib:.1} MiB |"),
        None => println!("| controller peak memory | not measurable here |"),
    }
}
