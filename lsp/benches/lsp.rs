//! The language server on a 100-file workspace, through its JSON-RPC interface: the time from
//! an edit (a `didChange`) to its diagnostics being published, and a hover.
//!
//! Each file holds a ValueFunction, a ResourceFunction that overlays it, and a FunctionTest of
//! the ResourceFunction; every tenth file also holds a Workflow calling ten of them. The edit
//! changes a ValueFunction that a ResourceFunction, a test and a Workflow depend on, and turns
//! the test from passing to failing and back, so that every edit publishes diagnostics.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use support::{Client, Workspace, find};

const FILES: usize = 100;
/// The file edited, and the workflow file hovered.
const EDITED: usize = 42;
const HOVERED: usize = 40;

fn file(i: usize, greeting: &str) -> String {
    let mut text = format!(
        "\
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {{name: labels-{i}, namespace: default}}
spec:
  preconditions:
  - assert: =inputs.app != \"\"
    permFail: {{message: app is required}}
  locals:
    team: =inputs.app.split('-')[0]
  return:
    metadata:
      labels:
        app: =inputs.app
        team: =locals.team
        greeting: {greeting}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {{name: config-{i}, namespace: default}}
spec:
  apiConfig:
    apiVersion: v1
    kind: ConfigMap
    name: =inputs.app + \"-config\"
    namespace: =inputs.namespace
  resource:
    data:
      size: =string(size(inputs.app))
  overlays:
  - overlayRef: {{kind: ValueFunction, name: labels-{i}}}
    inputs:
      app: =inputs.app
  return:
    name: =resource.metadata.name
---
apiVersion: koreo.dev/v1beta1
kind: FunctionTest
metadata: {{name: config-{i}-test, namespace: default}}
spec:
  functionRef: {{kind: ResourceFunction, name: config-{i}}}
  inputs: {{app: web-{i}, namespace: prod}}
  testCases:
  - label: creates the config map
    expectResource:
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: web-{i}-config
        namespace: prod
        labels: {{app: web-{i}, team: web, greeting: hello}}
      data: {{size: \"{size}\"}}
  - label: a missing app fails
    variant: true
    inputOverrides: {{app: \"\"}}
    expectOutcome:
      permFail: {{message: app is required}}
",
        size = format!("web-{i}").len(),
    );
    if i.is_multiple_of(10) {
        text.push_str(&format!(
            "---
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {{name: app-{i}, namespace: default}}
spec:
  crdRef: {{apiGroup: example.dev, version: v1, kind: App{i}}}
  steps:
"
        ));
        for j in i..i + 10 {
            text.push_str(&format!(
                "  - label: config_{j}
    ref: {{kind: ResourceFunction, name: config-{j}}}
    inputs:
      app: =parent.metadata.name + \"-{j}\"
      namespace: =parent.metadata.namespace
    state:
      config{j}: =value.name
"
            ));
        }
    }
    text
}

fn workspace() -> Workspace {
    let texts: Vec<(String, String)> = (0..FILES)
        .map(|i| (format!("app-{i:03}.koreo"), file(i, "hello")))
        .collect();
    let files: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Workspace::new(&files)
}

fn lsp(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ws = workspace();
    let mut client = runtime.block_on(Client::start(ws.dir.path()));
    // A broken fixture would measure something else: every file must load clean.
    // (Progress goes out as log messages: only diagnostics count.)
    let published: Vec<_> = client
        .drain()
        .into_iter()
        .filter(|m| m["method"] == "textDocument/publishDiagnostics")
        .filter(|m| {
            m["params"]["diagnostics"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
        })
        .collect();
    assert!(published.is_empty(), "{published:#?}");
    let edited = ws.uri(&format!("app-{EDITED:03}.koreo"));
    let texts = [file(EDITED, "hello"), file(EDITED, "bye")];
    runtime.block_on(client.open(&edited, &texts[0]));
    let mut version = 1;
    let mut group = c.benchmark_group("lsp_100_files");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("edit_to_diagnostics", |b| {
        b.iter(|| {
            version += 1;
            // Odd edits break the test, even ones fix it.
            let text = &texts[1 - version as usize % 2];
            runtime.block_on(async {
                client.change(&edited, version, text).await;
                // Handling the change includes publishing: the diagnostics are out.
                let found = client.diagnostics_of(&edited).await;
                black_box(found);
            })
        })
    });
    let hovered = file(HOVERED, "hello");
    let (line, column) = find(&hovered, "name: config-45}", 8);
    let uri = ws.uri(&format!("app-{HOVERED:03}.koreo"));
    group.bench_function("hover_function_reference", |b| {
        b.iter(|| {
            let hover = runtime.block_on(client.at("textDocument/hover", &uri, line, column));
            assert!(hover["contents"]["value"].as_str().is_some());
            black_box(hover)
        })
    });
    group.finish();
}

criterion_group!(benches, lsp);
criterion_main!(benches);
