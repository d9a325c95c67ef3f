//! Scale benchmark of the controller (a benchmark, not a test): N parents (default 1,000) of a
//! three-step workflow with two managed resources each. The controller runs as `koreo run` in
//! its own process, so its memory is its own. Prints the time to converge, requests and writes
//! per parent, writes during the steady state, peak memory, and the floor: how long a bare
//! client takes for the writes the same parents need (two creates and a status patch each),
//! measured in the same run, with the ratio.
//!
//! Against the local API server, or a real cluster: `cargo bench -p koreo --bench scale --
//! --kubeconfig PATH` (requests are then counted from the API server's audit log,
//! `KOREO_SCALE_AUDIT_LOG`, default `$REALK8S_DIR/logs/audit.log`). `KOREO_SCALE_PARENTS`,
//! `KOREO_SCALE_STEADY_SECS` (default 60), `KOREO_SCALE_QPS` (default 5000) and
//! `KOREO_SCALE_WORKERS` (default 16; the floor's concurrency too) change the run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use koreo_testkube::TestKube;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::{Value as Json, json};

const DEFINITIONS: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: scale}
spec:
  crdRef: {apiGroup: example.koreo.dev, version: v1, kind: App}
  steps:
  - label: naming
    ref: {kind: ValueFunction, name: scale-naming}
    inputs: {name: =parent.metadata.name, namespace: =parent.metadata.namespace}
  - label: config
    ref: {kind: ResourceFunction, name: scale-config}
    inputs: {name: =steps.naming.name, namespace: =steps.naming.namespace, size: =parent.spec.size}
  - label: account
    ref: {kind: ResourceFunction, name: scale-account}
    inputs: {name: =steps.naming.name, namespace: =steps.naming.namespace}
    condition: {type: AccountReady, name: Service account}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: scale-naming}
spec:
  return: {name: =inputs.name + "-app", namespace: =inputs.namespace}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: scale-config}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: =inputs.name, namespace: =inputs.namespace}
  resource:
    data: {size: =string(inputs.size)}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: scale-account}
spec:
  apiConfig: {apiVersion: v1, kind: ServiceAccount, name: =inputs.name, namespace: =inputs.namespace}
  resource:
    metadata:
      labels: {app: =inputs.name}
"#;

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "apps.example.koreo.dev"},
  "spec": {"group": "example.koreo.dev", "scope": "Namespaced", "names": {"kind": "App", "plural": "apps"},
    "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

const VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "patch", "update", "delete",
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind))
}

/// The cluster under test, and how its requests are counted.
enum Counter {
    /// The local server counts every request it serves.
    Local(TestKube),
    /// A real API server's audit log, read for one namespace.
    Audit(PathBuf),
}

impl Counter {
    /// Requests by verb in `namespace` since `since` (the audit log), or in all (local).
    fn counts(&self, namespace: &str, since: Timestamp) -> BTreeMap<String, u64> {
        match self {
            Counter::Local(server) => server.request_counts(),
            Counter::Audit(path) => {
                let log = std::fs::read_to_string(path).unwrap_or_default();
                let mut counts = BTreeMap::new();
                for e in log
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Json>(l).ok())
                {
                    let at = e["requestReceivedTimestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok());
                    // A watch completes only when it ends: count it when it starts.
                    let stage = if e["verb"] == "watch" {
                        "ResponseStarted"
                    } else {
                        "ResponseComplete"
                    };
                    if e["stage"] == stage
                        && e["objectRef"]["namespace"] == namespace
                        && at.is_some_and(|at| at >= since)
                    {
                        let verb = e["verb"].as_str().unwrap_or_default().to_string();
                        *counts.entry(verb).or_insert(0) += 1;
                    }
                }
                counts
            }
        }
    }
}

fn writes(counts: &BTreeMap<String, u64>) -> u64 {
    ["create", "update", "patch", "delete"]
        .iter()
        .map(|v| counts.get(*v).copied().unwrap_or(0))
        .sum()
}

fn delta(from: &BTreeMap<String, u64>, to: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    VERBS
        .iter()
        .map(|v| {
            let n = |m: &BTreeMap<String, u64>| m.get(*v).copied().unwrap_or(0);
            (v.to_string(), n(to).saturating_sub(n(from)))
        })
        .collect()
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_memory_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn client_for(kubeconfig: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn apply(client: &Client, object: &Json, namespace: Option<&str>) {
    let r = resource(
        object["apiVersion"].as_str().unwrap(),
        object["kind"].as_str().unwrap(),
    );
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    };
    let mut object = object.clone();
    if let Some(ns) = namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(
        &name,
        &PatchParams::apply("scale-bench").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
}

async fn create_parents(client: &Client, namespace: &str, parents: u64, workers: usize) {
    let apps = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &resource("example.koreo.dev/v1", "App"),
    );
    futures::stream::iter(0..parents)
        .for_each_concurrent(workers, |i| {
            let apps = apps.clone();
            async move {
                let app = json!({"apiVersion": "example.koreo.dev/v1", "kind": "App",
                    "metadata": {"name": format!("app-{i}")}, "spec": {"size": i % 7}});
                apps.create(
                    &PostParams::default(),
                    &serde_json::from_value(app).unwrap(),
                )
                .await
                .unwrap();
            }
        })
        .await;
}

async fn ready_parents(client: &Client, namespace: &str) -> usize {
    let apps = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &resource("example.koreo.dev/v1", "App"),
    );
    let Ok(list) = apps.list(&Default::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|a| {
            a.data["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

/// What a bare client needs for the same parents' objects: for each, a ConfigMap and a
/// ServiceAccount created and the parent's status patched, `workers` at a time. Returns the
/// time it took.
async fn floor(client: &Client, namespace: &str, parents: u64, workers: usize) -> Duration {
    let api = |kind: &str, api_version: &str| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            namespace,
            &resource(api_version, kind),
        )
    };
    let (configmaps, accounts, apps) = (
        api("ConfigMap", "v1"),
        api("ServiceAccount", "v1"),
        api("App", "example.koreo.dev/v1"),
    );
    let started = Instant::now();
    futures::stream::iter(0..parents)
        .for_each_concurrent(workers, |i| {
            let (configmaps, accounts, apps) = (configmaps.clone(), accounts.clone(), apps.clone());
            async move {
                let name = format!("app-{i}-app");
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                    "data": {"size": (i % 7).to_string()}});
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "labels": {"app": name}}});
                let post = PostParams::default();
                configmaps
                    .create(&post, &serde_json::from_value(cm).unwrap())
                    .await
                    .unwrap();
                accounts
                    .create(&post, &serde_json::from_value(sa).unwrap())
                    .await
                    .unwrap();
                let status =
                    json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
                apps.patch_status(
                    &format!("app-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(status),
                )
                .await
                .unwrap();
            }
        })
        .await;
    started.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kubeconfig_path = args
        .iter()
        .position(|a| a == "--kubeconfig")
        .and_then(|i| args.get(i + 1).cloned());
    // `cargo bench` passes its own flags; a name filter that is not ours means skip.
    if args.iter().enumerate().any(|(i, a)| {
        !a.starts_with('-')
            && !"scale".contains(a.as_str())
            && (i == 0 || args[i - 1] != "--kubeconfig")
    }) {
        return;
    }
    let parents = env_number("KOREO_SCALE_PARENTS", 1000);
    let steady = Duration::from_secs(env_number("KOREO_SCALE_STEADY_SECS", 60));
    let qps = env_number("KOREO_SCALE_QPS", 5000);
    let workers = env_number("KOREO_SCALE_WORKERS", 16) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();

    let (kubeconfig_text, counter, server_name) = match &kubeconfig_path {
        Some(path) => {
            let audit = std::env::var("KOREO_SCALE_AUDIT_LOG").unwrap_or_else(|_| {
                let dir = std::env::var("REALK8S_DIR").unwrap_or_else(|_| "/tmp/realk8s".into());
                format!("{dir}/logs/audit.log")
            });
            let text = std::fs::read_to_string(path).expect("the kubeconfig");
            (
                text,
                Counter::Audit(audit.into()),
                format!("the cluster of {path}"),
            )
        }
        None => {
            let server = runtime.block_on(TestKube::start()).unwrap();
            (
                server.kubeconfig(),
                Counter::Local(server),
                "the local API server".into(),
            )
        }
    };
    let client = runtime.block_on(client_for(&kubeconfig_text));
    let id = std::process::id();
    let (namespace, floor_namespace) = (format!("koreo-scale-{id}"), format!("koreo-floor-{id}"));
    runtime.block_on(async {
        for ns in [&namespace, &floor_namespace] {
            apply(
                &client,
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                None,
            )
            .await;
        }
        for kind in [
            "Workflow",
            "ValueFunction",
            "ResourceFunction",
            "ResourceTemplate",
        ] {
            apply(&client, &koreo_lang::schema::crd(kind), None).await;
        }
        apply(&client, &serde_json::from_str(CRD).unwrap(), None).await;
        tokio::time::sleep(Duration::from_secs(1)).await; // the CRDs become served
        for doc in koreo_lang::yaml::parse_documents(DEFINITIONS).unwrap() {
            apply(&client, &doc.root.to_json(), Some(&namespace)).await;
        }
        create_parents(&client, &namespace, parents, workers).await;
        create_parents(&client, &floor_namespace, parents, workers).await;
    });
    let kubeconfig = std::env::temp_dir().join(format!("koreo-scale-{id}.kubeconfig"));
    std::fs::write(&kubeconfig, &kubeconfig_text).unwrap();

    let since = Timestamp::now();
    let before = counter.counts(&namespace, since);
    let started = Instant::now();
    let mut controller = Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args(["run", "--metrics-addr", "off", "-n", &namespace, "--qps"])
        .arg(qps.to_string())
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("koreo run starts");
    let deadline = started + Duration::from_secs(900);
    let mut ready = 0;
    let mut polls = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        ready = runtime.block_on(ready_parents(&client, &namespace));
        polls += 1;
        if ready as u64 == parents {
            break;
        }
    }
    let converge = started.elapsed();
    let at_convergence = counter.counts(&namespace, since);
    std::thread::sleep(steady);
    let after_steady = counter.counts(&namespace, since);
    let peak = peak_memory_mib(controller.id());
    let _ = controller.kill();
    let _ = controller.wait();
    std::fs::remove_file(&kubeconfig).ok();
    let floor = runtime.block_on(floor(&client, &floor_namespace, parents, workers));

    let mut converging = delta(&before, &at_convergence);
    // The benchmark's own polling is not the controller's.
    if let Some(list) = converging.get_mut("list") {
        *list = list.saturating_sub(polls);
    }
    let total: u64 = converging.values().sum();
    let written = writes(&converging);
    println!(
        "scale benchmark against {server_name}: {parents} parents, 3-step workflow, 2 managed resources each, --qps {qps}, --workers {workers}"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| parents Ready | {ready} of {parents} |");
    println!("| time to converge | {:.1} s |", converge.as_secs_f64());
    println!(
        "| a bare client's floor: 2 creates + 1 status patch per parent, {workers} at a time | {:.1} s |",
        floor.as_secs_f64()
    );
    println!(
        "| converge / floor | {:.2}x |",
        converge.as_secs_f64() / floor.as_secs_f64()
    );
    for v in VERBS {
        println!("| {v} requests to converge | {} |", converging[v]);
    }
    let per = |n: u64| n as f64 / parents as f64;
    println!("| requests per parent | {:.2} |", per(total));
    println!("| writes per parent (floor: 3) | {:.2} |", per(written));
    println!(
        "| writes in {} s of steady state | {} |",
        steady.as_secs(),
        writes(&after_steady) - writes(&at_convergence)
    );
    match peak {
        Some(mib) => println!("| controller peak memory (VmHWM) | {mib:.1} MiB |"),
        None => println!("| controller peak memory | not measurable here |"),
    }
    if kubeconfig_path.is_some() {
        runtime.block_on(async {
            let namespaces: Api<DynamicObject> =
                Api::all_with(client.clone(), &resource("v1", "Namespace"));
            for ns in [&namespace, &floor_namespace] {
                let _ = namespaces.delete(ns, &Default::default()).await;
            }
        });
    }
}
