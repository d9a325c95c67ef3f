//! The workflow engine through the real `kube::Client` against the local API server: create,
//! converge, react to a parent change and to drift, and write nothing in steady state.

use k8s_openapi::api::core::v1::ConfigMap;
use koreo_lang::Workspace;
use koreo_lang::eval::Outcome;
use koreo_runtime::engine::Engine;
use koreo_runtime::kube_api::KubeApi;
use koreo_runtime::ownership::Owner;

mod support;
use koreo_testkube::TestKube;
use kube::api::Api;
use serde_json::{Value as Json, json};
use support::{client, merge, writes};

const DEFINITIONS: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: naming, namespace: default}
spec:
  return:
    name: =inputs.name + "-config"
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: config-map, namespace: default}
spec:
  apiConfig:
    apiVersion: v1
    kind: ConfigMap
    name: =inputs.name
    namespace: =inputs.namespace
  resource:
    data:
      greeting: =inputs.greeting
  return:
    ref: =resource.self_ref()
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: never-ready, namespace: default}
spec:
  preconditions:
  - assert: =inputs.ready
    retry: {message: not ready yet, delay: 7}
  return:
    ok: true
---
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: app, namespace: default}
spec:
  steps:
  - label: naming
    ref: {kind: ValueFunction, name: naming}
    inputs:
      name: =parent.metadata.name
  - label: config
    ref: {kind: ResourceFunction, name: config-map}
    inputs:
      name: =steps.naming.name
      namespace: =parent.metadata.namespace
      greeting: =parent.spec.greeting
    condition: {type: ConfigReady, name: Config map}
    state:
      configMap: =value.ref.name
  - label: gate
    ref: {kind: ValueFunction, name: never-ready}
    inputs:
      ready: =parent.spec.ready
  - label: after_gate
    ref: {kind: ValueFunction, name: naming}
    inputs:
      name: =string(steps.gate.ok)
"#;

fn parent(greeting: &str, ready: bool) -> Json {
    json!({"apiVersion": "example.com/v1", "kind": "App",
        "metadata": {"name": "shop", "namespace": "default", "uid": "parent-uid-1"},
        "spec": {"greeting": greeting, "ready": ready}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_converges_and_then_writes_nothing() {
    let server = TestKube::start().await.unwrap();
    let client = client(&server).await;
    let api = KubeApi::new(client.clone());
    let ws = Workspace::load_str("app.koreo", DEFINITIONS);
    assert!(!ws.has_errors(), "{:?}", ws.diagnostics);
    let workflow = ws.workflow("app", Some("default")).unwrap();
    let p = parent("hello", true);
    let engine = Engine::new(&ws, &api, Owner::of(&p));

    // First pass: the ConfigMap is created, the workflow waits for it.
    let run = engine.run_workflow(workflow, &p).await;
    assert!(
        matches!(&run.steps["config"], Outcome::Retry { message, .. } if message == "Creating ConfigMap:default:shop-config."),
        "{:?}",
        run.steps
    );
    assert_eq!(run.outcome.name(), "Retry");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = configmaps.get("shop-config").await.unwrap();
    assert_eq!(created.data.unwrap()["greeting"], "hello");
    let owner = &created.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.kind.as_str()),
        ("parent-uid-1", "App")
    );

    // Second pass: nothing differs, every step is Ok, state and conditions are set.
    let run = engine.run_workflow(workflow, &p).await;
    assert!(run.outcome.is_ok(), "{:?}", run.steps);
    assert_eq!(run.state, json!({"configMap": "shop-config"}));
    let ready = run
        .conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("Ready"))
    );
    assert!(
        run.conditions
            .iter()
            .any(|c| c["type"] == "ConfigReady" && c["status"] == "True")
    );
    assert_eq!(
        run.resources.to_json()["resources"]["config"]["name"],
        "shop-config"
    );

    // Steady state: another pass writes nothing.
    let before = writes(&server);
    engine.run_workflow(workflow, &p).await;
    assert_eq!(writes(&server), before, "no writes when nothing differs");

    // A parent change is applied, then converges again.
    let changed = parent("bonjour", true);
    let run = engine.run_workflow(workflow, &changed).await;
    assert!(
        matches!(&run.steps["config"], Outcome::Retry { message, .. } if message.starts_with("Patching `ConfigMap:default:shop-config` due to 'data' -> 'greeting'")),
        "{:?}",
        run.steps
    );
    assert_eq!(
        configmaps.get("shop-config").await.unwrap().data.unwrap()["greeting"],
        "bonjour"
    );
    assert!(
        engine
            .run_workflow(workflow, &changed)
            .await
            .outcome
            .is_ok()
    );

    // Drift by someone else is corrected.
    merge(
        &configmaps,
        "shop-config",
        json!({"data": {"greeting": "drifted"}}),
    )
    .await;
    engine.run_workflow(workflow, &changed).await;
    assert_eq!(
        configmaps.get("shop-config").await.unwrap().data.unwrap()["greeting"],
        "bonjour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_propagate_to_dependent_steps() {
    let server = TestKube::start().await.unwrap();
    let api = KubeApi::new(client(&server).await);
    let ws = Workspace::load_str("app.koreo", DEFINITIONS);
    let workflow = ws.workflow("app", Some("default")).unwrap();
    let p = parent("hello", false);
    let engine = Engine::new(&ws, &api, Owner::of(&p));
    let run = engine.run_workflow(workflow, &p).await;
    assert!(matches!(
        &run.steps["gate"],
        Outcome::Retry { delay: 7, .. }
    ));
    match &run.steps["after_gate"] {
        Outcome::DepSkip { message, .. } => assert!(
            message.contains("'gate' is waiting (not ready yet)"),
            "{message}"
        ),
        other => panic!("expected DepSkip, got {other}"),
    }
    // The independent steps still ran.
    assert!(run.steps["naming"].is_ok());
    match &run.outcome {
        Outcome::Retry { delay, message, .. } => {
            assert_eq!(*delay, 30, "the longest delay of the retries wins");
            assert!(message.contains("not ready yet"), "{message}");
        }
        other => panic!("expected Retry, got {other}"),
    }
}
