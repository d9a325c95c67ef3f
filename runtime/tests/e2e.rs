//! End to end: the examples' workflows from parent creation to Ready, through a parent change
//! and a drift, to parent deletion and cleanup. Against a real cluster when
//! `KOREO_E2E_KUBECONFIG` names its kubeconfig; against the local API server otherwise.

use std::time::Duration;

mod support;
use support::{documents, eventually, is_ready, resource};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use koreo_runtime::controller::Controller;
use koreo_runtime::crds::koreo_crd;
use koreo_testkube::TestKube;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value as Json, json};

/// The cluster under test, and the local server when that is what it is.
async fn cluster() -> (Client, Option<TestKube>) {
    let (kubeconfig, server) = match std::env::var("KOREO_E2E_KUBECONFIG") {
        Ok(path) => {
            eprintln!("e2e: against the cluster of {path}");
            (
                Kubeconfig::read_from(path).expect("KOREO_E2E_KUBECONFIG is a kubeconfig"),
                None,
            )
        }
        Err(_) => {
            eprintln!(
                "e2e: KOREO_E2E_KUBECONFIG is not set: running against the local API server, not a real cluster"
            );
            let server = TestKube::start().await.unwrap();
            (
                Kubeconfig::from_yaml(&server.kubeconfig()).unwrap(),
                Some(server),
            )
        }
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    (Client::try_from(config).unwrap(), server)
}

/// Creates or replaces by server-side apply, so a rerun against a real cluster works.
async fn apply(client: &Client, object: &Json, namespace: Option<&str>) {
    let api_version = object["apiVersion"].as_str().unwrap();
    let kind = object["kind"].as_str().unwrap();
    let r = resource(api_version, kind);
    let name = object["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    };
    let mut object = object.clone();
    if let (Some(ns), Some(meta)) = (namespace, object["metadata"].as_object_mut()) {
        meta.insert("namespace".into(), json!(ns));
    }
    api.patch(
        name,
        &PatchParams::apply("koreo-e2e").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_from_creation_to_cleanup() {
    let (client, _server) = cluster().await;
    let namespace = format!("koreo-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();

    for kind in koreo_lang::model::KINDS {
        apply(&client, &koreo_crd(kind), None).await;
    }
    for doc in documents("hello/crd.yaml") {
        apply(&client, &doc, None).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // CRDs become served
    for doc in documents("hello/hello.koreo") {
        apply(&client, &doc, Some(&namespace)).await;
    }
    tokio::spawn(
        Controller::new(client.clone())
            .in_namespaces(vec![namespace.clone()])
            .run(),
    );
    for doc in documents("hello/greeting.yaml") {
        apply(&client, &doc, Some(&namespace)).await;
    }

    let greetings: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &resource("example.koreo.dev/v1", "Greeting"),
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    eventually(60, "Ready", async || {
        is_ready(&greetings.get("ada").await.ok()?).then_some(())
    })
    .await;
    let greeting = async |cm: &Api<ConfigMap>| {
        cm.get("ada-greeting")
            .await
            .ok()?
            .data?
            .get("greeting")
            .cloned()
    };
    assert_eq!(
        greeting(&configmaps).await.as_deref(),
        Some("Bonjour, Ada!")
    );

    greetings
        .patch(
            "ada",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"language": "en"}})),
        )
        .await
        .unwrap();
    eventually(60, "the parent change", async || {
        (greeting(&configmaps).await.as_deref() == Some("Hello, Ada!")).then_some(())
    })
    .await;

    configmaps
        .patch(
            "ada-greeting",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "drift"}})),
        )
        .await
        .unwrap();
    eventually(60, "the drift corrected", async || {
        (greeting(&configmaps).await.as_deref() == Some("Hello, Ada!")).then_some(())
    })
    .await;

    greetings
        .delete("ada", &DeleteParams::default())
        .await
        .unwrap();
    eventually(60, "the parent gone", async || {
        greetings.get_opt("ada").await.ok()?.is_none().then_some(())
    })
    .await;
    // The example's function keeps the default policy, abandon: the ConfigMap stays, marked.
    let left = configmaps.get("ada-greeting").await.unwrap();
    assert_eq!(
        left.metadata
            .labels
            .unwrap_or_default()
            .get("koreo.dev/abandoned")
            .map(String::as_str),
        Some("true")
    );

    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
}
