//! What the runtime's tests share: a client for a server, the examples, waiting.

#![allow(dead_code)] // each test file uses part of it

use std::time::Duration;

use koreo_lang::schema::crd as koreo_crd;
use koreo_testkube::TestKube;
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::Value as Json;

pub async fn client(server: &TestKube) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig()).unwrap();
    Client::try_from(
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap()
}

/// The documents of a file under `examples/`.
pub fn documents(path: &str) -> Vec<Json> {
    read_documents(&format!(
        "{}/../examples/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// The documents of a file under `runtime/tests/fixtures/`.
pub fn fixture(path: &str) -> Vec<Json> {
    read_documents(&format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

pub fn read_documents(path: &str) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap();
    koreo_lang::yaml::parse_documents(&text)
        .unwrap()
        .into_iter()
        .map(|d| d.root.to_json())
        .collect()
}

/// The API resource of a kind, its plural guessed as Kubernetes does.
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind))
}

/// Whether an object's status has a `Ready` condition that is `True`.
pub fn is_ready(object: &kube::api::DynamicObject) -> bool {
    object.data["status"]["conditions"]
        .as_array()
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Creates, updates, patches and deletes the server has served so far.
pub fn writes(server: &TestKube) -> u64 {
    let counts = server.request_counts();
    ["create", "update", "patch", "delete"]
        .iter()
        .map(|v| counts.get(*v).copied().unwrap_or(0))
        .sum()
}

/// Polls `check` until it gives a value, failing after `seconds`.
pub async fn eventually<T>(
    seconds: u64,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn create(client: &Client, object: &Json) {
    let api_version = object["apiVersion"].as_str().unwrap();
    let kind = object["kind"].as_str().unwrap();
    let r = resource(api_version, kind);
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    };
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object.clone()).unwrap(),
    )
    .await
    .unwrap();
}

/// A server with the Koreo kinds' CRDs and these objects, and a client for it.
pub async fn with_definitions(objects: &[Json]) -> (TestKube, Client) {
    let server = TestKube::start().await.unwrap();
    let client = client(&server).await;
    for kind in koreo_lang::model::KINDS {
        create(&client, &koreo_crd(kind)).await;
    }
    for object in objects {
        create(&client, object).await;
    }
    (server, client)
}

/// The first Event in `namespace` with this reason (and about this object, if named).
pub async fn event(
    client: &Client,
    namespace: &str,
    reason: &str,
    about: Option<&str>,
) -> Option<k8s_openapi::api::events::v1::Event> {
    events(client, namespace, reason, about)
        .await
        .into_iter()
        .next()
}

/// The Events in `namespace` with this reason (and about this object, if named).
pub async fn events(
    client: &Client,
    namespace: &str,
    reason: &str,
    about: Option<&str>,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = api.list(&Default::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && about.is_none_or(|name| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                })
        })
        .collect()
}

/// A JSON merge patch, as another client (a person, another controller) would make it.
pub async fn merge<K>(api: &Api<K>, name: &str, patch: Json)
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    )
    .await
    .unwrap();
}
