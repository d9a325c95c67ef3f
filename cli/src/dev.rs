//! `koreo dev`: an embedded API server with a directory's CRDs, definitions and objects loaded.

use koreo_runtime::boundary::Boundary;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use koreo_lang::Workspace;
use koreo_testkube::TestKube;
use koreo_testkube::store::{Store, Target};
use serde_json::{Value as Json, json};

/// Creates an object, and its namespace first when that is missing. Returns a line for the log.
fn create(store: &mut Store, object: &Json) -> Result<String, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let (index, version) = store
        .kind_of(api_version, kind)
        .ok_or_else(|| format!("{kind} {name}: the server does not serve {api_version} {kind}; is its CRD in the directory?"))?;
    let namespaced = store.types[index].namespaced;
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    if namespaced && let Some((ns_kind, _)) = store.kind_of("v1", "Namespace") {
        let t = Target {
            kind: ns_kind,
            version: "v1",
            namespace: None,
        };
        if store.get(&t, &namespace).is_err() {
            store
                .create(&t, json!({"metadata": {"name": namespace}}), "koreo-dev")
                .map_err(|e| e.to_string())?;
        }
    }
    let target = Target {
        kind: index,
        version: &version,
        namespace: namespaced.then_some(namespace.as_str()),
    };
    match store.create(&target, object.clone(), "koreo-dev") {
        Ok(_) => Ok(match namespaced {
            true => format!("created {kind} {namespace}/{name}"),
            false => format!("created {kind} {name}"),
        }),
        Err(e) if e.code == 409 => Ok(format!("kept {kind} {name} (already there)")),
        Err(e) => Err(format!("{kind} {name}: {e}")),
    }
}

fn load(server: &TestKube, ws: &Workspace) -> Vec<Result<String, String>> {
    let mut log = Vec::new();
    server.with_store(|store| {
        for kind in koreo_lang::model::KINDS {
            log.push(create(store, &koreo_lang::schema::crd(kind)));
        }
        let (crds, others): (Vec<_>, Vec<_>) = ws
            .objects
            .iter()
            .partition(|o| o.kind() == "CustomResourceDefinition");
        let (namespaces, others): (Vec<_>, Vec<_>) =
            others.into_iter().partition(|o| o.kind() == "Namespace");
        for object in crds.iter().chain(&namespaces) {
            log.push(create(store, &object.value));
        }
        // Definitions before the objects that trigger them, as written in their files.
        for doc in &ws.documents {
            let defined = ws.definitions.iter().any(|d| {
                let at = &d.meta().location;
                at.file.path == doc.file.path && at.span.start == doc.root.span.start
            });
            if defined {
                log.push(create(store, &doc.root.to_json()));
            }
        }
        for object in others {
            log.push(create(store, &object.value));
        }
    });
    log
}

async fn client(server: &TestKube) -> Result<kube::Client, String> {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

pub(crate) fn async_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the async runtime: {e}"))
        .ok()
}

/// Starts the controller and prints each of its reconciles.
fn start_controller(client: kube::Client, boundary: Boundary) {
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(
        koreo_runtime::controller::Controller::new(client)
            .with_reports(reports)
            .with_boundary(boundary)
            .run(),
    );
    tokio::spawn(async move {
        while let Some(report) = received.recv().await {
            print_report(&report);
        }
    });
}

/// One reconcile, as a person follows it: what each unfinished step is doing, and the
/// parent's conditions when they change.
fn print_report(report: &koreo_runtime::controller::Report) {
    println!(
        "{} ({}): {}",
        report.parent,
        report.workflow,
        report.outcome.name()
    );
    for (label, outcome) in &report.steps {
        println!(
            "  step {label}: {} {}",
            outcome.name(),
            outcome.message().unwrap_or("")
        );
    }
    for c in report.conditions.iter().flatten() {
        println!(
            "  condition {} = {} ({}): {}",
            c["type"].as_str().unwrap_or(""),
            c["status"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        );
    }
}

/// The first line of every kubeconfig `koreo dev` writes: the only files it overwrites.
const KUBECONFIG_MARK: &str = "# written by koreo dev: it overwrites this file when it starts";

pub fn run(
    paths: &[PathBuf],
    port: u16,
    kubeconfig_out: Option<&Path>,
    controller: Option<Boundary>,
    ui: Option<std::net::SocketAddr>,
) -> ExitCode {
    // A mistyped path would start a server with nothing loaded: say so instead.
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        eprintln!("error: {} does not exist", missing.display());
        return ExitCode::from(2);
    }
    if let Some(path) = kubeconfig_out.filter(|p| p.exists())
        && !std::fs::read_to_string(path).is_ok_and(|text| text.starts_with(KUBECONFIG_MARK))
    {
        eprintln!(
            "error: {} exists and koreo dev did not write it: it is left alone; remove it or give --kubeconfig-out another path",
            path.display()
        );
        return ExitCode::from(2);
    }
    let ws = Workspace::load_paths_keeping_documents(paths);
    for d in ws.diagnostics.iter().filter(|d| d.is_error()) {
        crate::print_diagnostic(d);
    }
    let Some(runtime) = async_runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let server = match TestKube::start_on(port).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut failed = false;
        for line in load(&server, &ws) {
            match line {
                Ok(done) => println!("{done}"),
                Err(problem) => {
                    failed = true;
                    eprintln!("error: {problem}");
                }
            }
        }
        if let Some(path) = kubeconfig_out {
            let text = format!("{KUBECONFIG_MARK}\n{}", server.kubeconfig());
            if let Err(e) = std::fs::write(path, text) {
                eprintln!(
                    "error: cannot write the kubeconfig to {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            println!(
                "kubeconfig written to {} (kubectl --kubeconfig {} get all)",
                path.display(),
                path.display()
            );
        }
        println!(
            "API server at {} with {} definitions loaded{}",
            server.url(),
            ws.definitions.len(),
            if failed {
                " (some objects failed, above)"
            } else {
                ""
            }
        );
        let client = match client(&server).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot connect to the embedded server: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(addr) = ui {
            match crate::ui::serve(addr, client.clone()).await {
                Ok(bound) => println!("Web view at http://{bound}/"),
                Err(e) => {
                    eprintln!("error: cannot serve the web view on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        if let Some(boundary) = controller {
            println!("The controller is running. Ctrl-C stops.");
            start_controller(client, boundary);
        } else {
            println!("No controller (--no-controller). Ctrl-C stops.");
        }
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}
