//! The real `kube::Client` code path against the server: what the runtime will do in a cluster.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use koreo_testkube::TestKube;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config};
use serde_json::json;

async fn client(server: &TestKube) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": name}},
        "data": {"value": value}
    }))
    .unwrap()
}

fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_patches_and_errors() {
    let server = TestKube::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let created = api
        .create(&PostParams::default(), &configmap("a", "1"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["value"], "1");
    api.create(&PostParams::default(), &configmap("b", "2"))
        .await
        .unwrap();
    let listed = api
        .list(&ListParams::default().labels("app=b"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let merged = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": "m"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap()["value"], "m");
    let strategic = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"value": "s"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["value"], "s");

    // Server-side apply as the runtime will use it: a field manager, and a conflict without force.
    let ssa = PatchParams::apply("koreo");
    let applied = api
        .patch("c", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"value": "s"}})))
        .await
        .unwrap();
    assert_eq!(
        applied.metadata.managed_fields.unwrap()[0]
            .manager
            .as_deref(),
        Some("koreo")
    );
    let other = PatchParams::apply("someone-else");
    let err = api
        .patch("c", &other, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"value": "x"}})))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 409);

    // Optimistic concurrency: replacing from a stale read conflicts.
    let stale = api.get("a").await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"value": "newer"}})),
    )
    .await
    .unwrap();
    assert_eq!(
        code(
            &api.replace("a", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        409
    );

    assert_eq!(code(&api.get("missing").await.unwrap_err()), 404);
    assert_eq!(
        code(
            &api.create(&PostParams::default(), &configmap("a", "again"))
                .await
                .unwrap_err()
        ),
        409
    );
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(&api.get("a").await.unwrap_err()), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_discovered_and_served_with_status() {
    let server = TestKube::start().await.unwrap();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "webapps.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "WebApp", "plural": "webapps", "singular": "webapp", "shortNames": ["wa"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.kind == "WebApp")
        .expect("the CRD's kind is discovered");
    assert_eq!(resource.plural, "webapps");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources.iter().any(|(r, _)| r.plural == "status"),
        "{:?}",
        caps.subresources
    );

    let apps: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let app: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "WebApp",
        "metadata": {"name": "shop"}, "spec": {"replicas": 2}}))
        .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();
    let with_status = apps
        .patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["ready"], true);
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "a status write does not bump generation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_and_survives_drops_and_expiry() {
    let server = TestKube::start().await.unwrap();
    let client = client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &configmap("before", "1"))
        .await
        .unwrap();
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();

    let mut seen = Vec::new();
    let mut next = async || -> Event<ConfigMap> {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap()
    };
    // The initial list.
    loop {
        match next().await {
            Event::InitApply(cm) => seen.push(cm.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["before"]);

    api.create(&PostParams::default(), &configmap("after", "2"))
        .await
        .unwrap();
    assert!(
        matches!(next().await, Event::Apply(cm) if cm.metadata.name.as_deref() == Some("after"))
    );

    // A dropped stream is resumed; an expired version makes the watcher list again.
    server.drop_watches();
    server.expire_resource_versions();
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"value": "3"}})),
    )
    .await
    .unwrap();
    let mut saw_update = false;
    for _ in 0..6 {
        match next().await {
            Event::Apply(cm) | Event::InitApply(cm)
                if cm.data.as_ref().is_some_and(|d| d["value"] == "3") =>
            {
                saw_update = true;
                break;
            }
            _ => {}
        }
    }
    assert!(saw_update, "the change after the drop arrives");

    api.delete("after", &DeleteParams::default()).await.unwrap();
    let mut saw_delete = false;
    for _ in 0..4 {
        if let Event::Delete(cm) = next().await {
            saw_delete = cm.metadata.name.as_deref() == Some("after");
            break;
        }
    }
    assert!(saw_delete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_reach_the_client() {
    let server = TestKube::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    api.create(&PostParams::default(), &configmap("a", "1"))
        .await
        .unwrap();
    server.fail_next(Some("get"), Some("configmaps"), 2, 500);
    assert_eq!(code(&api.get("a").await.unwrap_err()), 500);
    assert_eq!(code(&api.get("a").await.unwrap_err()), 500);
    assert!(api.get("a").await.is_ok(), "only the next two fail");
    // kube retries 503 by itself: one injected 503 costs a request, not an error.
    server.fail_next(Some("get"), Some("configmaps"), 1, 503);
    assert!(api.get("a").await.is_ok());
    server.set_latency(Duration::from_millis(200));
    let start = std::time::Instant::now();
    api.get("a").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    let counts = server.request_counts();
    assert_eq!(counts["get"], 6);
    assert_eq!(counts["create"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bookmarks_timeouts_and_delete_collection() {
    use kube::api::{WatchEvent, WatchParams};
    let server = TestKube::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    api.create(&PostParams::default(), &configmap("a", "1"))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    // Bookmarks arrive when asked for, and the stream ends at its timeout.
    let params = WatchParams {
        bookmarks: true,
        ..WatchParams::default()
    }
    .timeout(2);
    let started = std::time::Instant::now();
    let mut stream = api.watch(&params, &rv).await.unwrap().boxed();
    let mut bookmarks = 0;
    while let Some(event) = stream.next().await {
        if let WatchEvent::Bookmark(_) = event.unwrap() {
            bookmarks += 1;
        }
    }
    assert!(bookmarks >= 1, "bookmarks were sent");
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(6)
    );

    // An expired version: an ERROR event with a 410 Status, not an HTTP error.
    server.expire_resource_versions();
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    api.create(&PostParams::default(), &configmap("b", "2"))
        .await
        .unwrap();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=b"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["a"]);
}

/// What `kubectl get` needs: categories in discovery, Tables with a CRD's printer columns, and
/// a 415 (not a 400) for a protobuf body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_finds_categories_and_printer_columns() {
    let server = TestKube::start().await.unwrap();
    let client = client(&server).await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "apps.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "App", "plural": "apps", "categories": ["all", "example"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "additionalPrinterColumns": [{"name": "Image", "type": "string", "jsonPath": ".spec.image"}],
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let send = async |method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>| {
        let mut request = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = client
            .send(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let code = response.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            code,
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
        )
    };
    let (_, resources) = send("GET", "/apis/example.com/v1", &[], Vec::new()).await;
    assert_eq!(
        resources["resources"][0]["categories"],
        json!(["all", "example"])
    );
    let app = json!({"apiVersion": "example.com/v1", "kind": "App",
        "metadata": {"name": "shop"}, "spec": {"image": "shop:1"}});
    let json_type = [("content-type", "application/json")];
    let (created, _) = send(
        "POST",
        "/apis/example.com/v1/namespaces/default/apps",
        &json_type,
        app.to_string().into_bytes(),
    )
    .await;
    assert_eq!(created, 201);
    let table = [(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )];
    let (_, listed) = send(
        "GET",
        "/apis/example.com/v1/namespaces/default/apps",
        &table,
        Vec::new(),
    )
    .await;
    assert_eq!(listed["kind"], "Table");
    assert_eq!(listed["columnDefinitions"][1]["name"], "Image");
    assert_eq!(listed["rows"][0]["cells"], json!(["shop", "shop:1"]));
    let protobuf = [("content-type", "application/vnd.kubernetes.protobuf")];
    let (refused, status) = send(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &protobuf,
        b"k8s\0...".to_vec(),
    )
    .await;
    assert_eq!(
        (refused, &status["reason"]),
        (415, &json!("UnsupportedMediaType"))
    );
}
