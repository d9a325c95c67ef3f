//! End to end: the examples' workflows from parent creation to Ready, through a parent change
//! and a drift, to parent deletion and cleanup. Against a real cluster when
//! `KOREO_E2E_KUBECONFIG` names its kubeconfig; against the local API server otherwise.

use std::time::Duration;

mod support;
use support::{documents, eventually, is_ready, merge, resource};

use k8s_openapi::api::core::v1::Namespace;
use koreo_lang::schema::crd as koreo_crd;
use koreo_runtime::controller::Controller;
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

/// One example under test: its namespace, with the example's CRD and definitions applied
/// there, and a controller watching it.
struct Example {
    client: Client,
    namespace: String,
    _server: Option<TestKube>,
}

impl Example {
    async fn start(example: &str) -> Example {
        let (client, server) = cluster().await;
        let namespace = format!("koreo-e2e-{example}-{}", std::process::id());
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
        let dir = format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        files.sort();
        if files.iter().any(|f| f == "crd.yaml") {
            for doc in documents(&format!("{example}/crd.yaml")) {
                apply(&client, &doc, None).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await; // CRDs become served
        }
        for file in files.iter().filter(|f| f.ends_with(".koreo")) {
            for doc in documents(&format!("{example}/{file}")) {
                apply(&client, &doc, Some(&namespace)).await;
            }
        }
        tokio::spawn(
            Controller::new(client.clone())
                .in_namespaces(vec![namespace.clone()])
                .run(),
        );
        Example {
            client,
            namespace,
            _server: server,
        }
    }

    /// The example's objects in one of its files, created in the test's namespace.
    async fn create(&self, file: &str) {
        for doc in documents(file) {
            apply(&self.client, &doc, Some(&self.namespace)).await;
        }
    }

    fn api(&self, api_version: &str, kind: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &resource(api_version, kind),
        )
    }

    async fn ready(&self, api: &Api<DynamicObject>, name: &str) {
        eventually(60, &format!("{name} Ready"), async || {
            is_ready(&api.get(name).await.ok()?).then_some(())
        })
        .await;
    }

    async fn field(&self, api: &Api<DynamicObject>, name: &str, pointer: &str) -> Option<Json> {
        let object = api.get_opt(name).await.ok()??;
        serde_json::to_value(object).ok()?.pointer(pointer).cloned()
    }

    /// Waits until an object's field has a value (`None`: until the object is gone).
    async fn until(
        &self,
        what: &str,
        api: &Api<DynamicObject>,
        name: &str,
        pointer: &str,
        value: Option<Json>,
    ) {
        eventually(60, what, async || {
            let now = match api.get_opt(name).await.ok()? {
                None => None,
                Some(_) => Some(self.field(api, name, pointer).await.unwrap_or(Json::Null)),
            };
            (now == value).then_some(())
        })
        .await;
    }

    async fn finish(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_from_creation_to_cleanup() {
    let e = Example::start("hello").await;
    e.create("hello/greeting.yaml").await;
    let greetings = e.api("example.koreo.dev/v1", "Greeting");
    let configmaps = e.api("v1", "ConfigMap");
    e.ready(&greetings, "ada").await;
    let text = "/data/greeting";
    e.until(
        "the greeting",
        &configmaps,
        "ada-greeting",
        text,
        Some(json!("Bonjour, Ada!")),
    )
    .await;

    merge(&greetings, "ada", json!({"spec": {"language": "en"}})).await;
    e.until(
        "the parent change",
        &configmaps,
        "ada-greeting",
        text,
        Some(json!("Hello, Ada!")),
    )
    .await;

    merge(
        &configmaps,
        "ada-greeting",
        json!({"data": {"greeting": "drift"}}),
    )
    .await;
    e.until(
        "the drift corrected",
        &configmaps,
        "ada-greeting",
        text,
        Some(json!("Hello, Ada!")),
    )
    .await;

    greetings
        .delete("ada", &DeleteParams::default())
        .await
        .unwrap();
    e.until("the parent gone", &greetings, "ada", "", None)
        .await;
    // The example's function keeps the default policy, abandon: the ConfigMap stays, marked.
    let label = "/metadata/labels/koreo.dev~1abandoned";
    assert_eq!(
        e.field(&configmaps, "ada-greeting", label).await,
        Some(json!("true"))
    );
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_from_creation_to_cleanup() {
    let e = Example::start("web-app").await;
    e.create("web-app/webapp.yaml").await;
    let apps = e.api("example.koreo.dev/v1", "WebApp");
    let deployments = e.api("apps/v1", "Deployment");
    let services = e.api("v1", "Service");
    let autoscalers = e.api("autoscaling/v2", "HorizontalPodAutoscaler");
    e.ready(&apps, "shop").await;
    for (api, name) in [
        (&deployments, "shop"),
        (&services, "shop"),
        (&e.api("v1", "ConfigMap"), "shop-config"),
        (&autoscalers, "shop"),
        (&e.api("policy/v1", "PodDisruptionBudget"), "shop"),
    ] {
        assert!(api.get_opt(name).await.unwrap().is_some(), "{name}");
    }
    e.until(
        "autoscaling bounds",
        &autoscalers,
        "shop",
        "/spec/maxReplicas",
        Some(json!(6)),
    )
    .await;

    // Autoscaling off: the autoscaler (delete: destroy) goes, the Deployment gets replicas.
    merge(
        &apps,
        "shop",
        json!({"spec": {"autoscaling": {"enabled": false}, "replicas": 3}}),
    )
    .await;
    e.until("the autoscaler destroyed", &autoscalers, "shop", "", None)
        .await;
    e.until(
        "replicas set",
        &deployments,
        "shop",
        "/spec/replicas",
        Some(json!(3)),
    )
    .await;

    let port = "/spec/ports/0/port";
    let want = e.field(&services, "shop", port).await;
    merge(
        &services,
        "shop",
        json!({"spec": {"ports": [{"name": "http", "port": 9999}]}}),
    )
    .await;
    e.until("the drift corrected", &services, "shop", port, want)
        .await;

    apps.delete("shop", &DeleteParams::default()).await.unwrap();
    e.until("the parent gone", &apps, "shop", "", None).await;
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_app_waits_for_its_database_then_converges() {
    let e = Example::start("stateless-crud-app").await;
    e.create("stateless-crud-app/db-credentials.yaml").await;
    e.create("stateless-crud-app/crudapps.yaml").await;
    let apps = e.api("example.koreo.dev/v1", "CrudApp");
    let deployments = e.api("apps/v1", "Deployment");
    // The database Deployment is made, the app waits for it to be available.
    e.until(
        "the database",
        &deployments,
        "orders-db",
        "/spec/replicas",
        Some(json!(1)),
    )
    .await;
    e.until(
        "both caches",
        &deployments,
        "orders-cache-fragments",
        "/metadata/name",
        Some(json!("orders-cache-fragments")),
    )
    .await;
    assert!(
        deployments.get_opt("orders").await.unwrap().is_none(),
        "gated on the database"
    );
    // Playing the Deployment controller: the database is available.
    deployments
        .patch_status(
            "orders-db",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .unwrap();
    e.ready(&apps, "orders").await;
    assert!(deployments.get_opt("orders").await.unwrap().is_some());
    let state = e.field(&apps, "orders", "/status/state").await.unwrap();
    assert!(state.as_object().is_some_and(|s| !s.is_empty()), "{state}");

    // A cache removed from the list is released by its policy (the default, abandon): it stays,
    // marked, without the parent's owner reference.
    merge(
        &apps,
        "orders",
        json!({"spec": {"caches": [{"name": "sessions"}]}}),
    )
    .await;
    let label = "/metadata/labels/koreo.dev~1abandoned";
    e.until(
        "the fragments cache abandoned",
        &deployments,
        "orders-cache-fragments",
        label,
        Some(json!("true")),
    )
    .await;

    let image = "/spec/template/spec/containers/0/image";
    let want = e.field(&deployments, "orders", image).await;
    merge(&deployments, "orders", json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "drift:1"}]}}}})).await;
    e.until("the drift corrected", &deployments, "orders", image, want)
        .await;

    apps.delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    e.until("the parent gone", &apps, "orders", "", None).await;
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decorator_decorates_labelled_namespaces_only() {
    let e = Example::start("decorator").await;
    let namespaces: Api<Namespace> = Api::all(e.client.clone());
    let name = format!("{}-team", e.namespace);
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"koreo.dev/decorate": "true"},
                "annotations": {"decorate.koreo.dev/quota-tier": "small"}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let in_team = |kind: &str, api_version: &str| -> Api<DynamicObject> {
        Api::namespaced_with(e.client.clone(), &name, &resource(api_version, kind))
    };
    let policies = in_team("NetworkPolicy", "networking.k8s.io/v1");
    let quotas = in_team("ResourceQuota", "v1");
    e.until(
        "the network policy",
        &policies,
        "koreo-default-ingress",
        "/metadata/name",
        Some(json!("koreo-default-ingress")),
    )
    .await;
    let hard = "/spec/hard";
    let small = eventually(60, "the quota", async || {
        e.field(&quotas, "koreo-quota", hard).await
    })
    .await;

    // A bigger tier: the quota follows.
    let all_namespaces =
        Api::<DynamicObject>::all_with(e.client.clone(), &resource("v1", "Namespace"));
    merge(
        &all_namespaces,
        &name,
        json!({"metadata": {"annotations": {"decorate.koreo.dev/quota-tier": "large"}}}),
    )
    .await;
    eventually(60, "the larger quota", async || {
        let now = e.field(&quotas, "koreo-quota", hard).await?;
        (now != small && now.is_object()).then_some(())
    })
    .await;
    let large = e.field(&quotas, "koreo-quota", hard).await;

    merge(
        &quotas,
        "koreo-quota",
        json!({"spec": {"hard": {"pods": "1"}}}),
    )
    .await;
    e.until("the drift corrected", &quotas, "koreo-quota", hard, large)
        .await;

    // The label removed: the decoration goes (delete: destroy).
    merge(
        &all_namespaces,
        &name,
        json!({"metadata": {"labels": {"koreo.dev/decorate": null}}}),
    )
    .await;
    e.until(
        "the policy removed",
        &policies,
        "koreo-default-ingress",
        "",
        None,
    )
    .await;
    e.until("the quota removed", &quotas, "koreo-quota", "", None)
        .await;

    let _ = namespaces.delete(&name, &DeleteParams::default()).await;
    e.finish().await;
}
