//! End to end: the examples' workflows from parent creation to Ready, through parent changes
//! and drift, to deletion and cleanup. Every scenario runs twice: against the local API server,
//! and against a real cluster when `KOREO_E2E_KUBECONFIG` names its kubeconfig (CI starts one
//! from ../shared/kube); without one, the real-cluster half says so and passes.

use std::time::Duration;

mod support;
use support::{eventually, is_ready, merge, read_documents, resource};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use koreo_lang::schema::crd as koreo_crd;
use koreo_runtime::controller::Controller;
use koreo_testkube::TestKube;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value as Json, json};

#[derive(Clone, Copy)]
enum Server {
    Local,
    Real,
}

/// Both halves of a scenario: `scenario::local` and `scenario::real`.
macro_rules! on_both_servers {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$scenario(super::Server::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real() {
                super::$scenario(super::Server::Real).await
            }
        }
    )*};
}

on_both_servers!(
    crds_pass_a_server_dry_run,
    hello_from_creation_to_cleanup,
    web_app_from_creation_to_cleanup,
    crud_app_waits_for_its_database_then_converges,
    decorator_decorates_labelled_namespaces_only,
    values_the_server_rewrites_are_not_drift,
    a_parent_deleted_with_its_namespace_lets_it_go,
    a_parent_deleted_while_koreo_is_stopped_is_cleaned_up,
    a_function_that_cannot_create_decorates_what_others_made,
    schemas_pulled_from_the_server_type_what_check_reads,
);

/// A client for the server under test (`None`: a real one was asked for and there is none),
/// and the local server when that is what it is.
async fn cluster(server: Server) -> Option<(Client, Option<TestKube>)> {
    let (kubeconfig, local) = match server {
        Server::Real => {
            let Ok(path) = std::env::var("KOREO_E2E_KUBECONFIG") else {
                eprintln!("e2e: KOREO_E2E_KUBECONFIG is not set: the real-cluster half is skipped");
                return None;
            };
            let kubeconfig = Kubeconfig::read_from(&path)
                .unwrap_or_else(|e| panic!("KOREO_E2E_KUBECONFIG={path}: {e}"));
            (kubeconfig, None)
        }
        Server::Local => {
            let local = TestKube::start().await.unwrap();
            (
                Kubeconfig::from_yaml(&local.kubeconfig()).unwrap(),
                Some(local),
            )
        }
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Some((Client::try_from(config).unwrap(), local))
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
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// The documents of a file, from the repository's root.
fn documents_at(path: &str) -> Vec<Json> {
    read_documents(&format!("{}/../{path}", env!("CARGO_MANIFEST_DIR")))
}

async fn crds_pass_a_server_dry_run(server: Server) {
    let Some((client, _local)) = cluster(server).await else {
        return;
    };
    let crds: Api<DynamicObject> = Api::all_with(
        client,
        &resource("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    );
    let dir = format!("{}/../crds", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let name = file.unwrap().file_name().to_string_lossy().to_string();
        if name == "kustomization.yaml" {
            continue;
        }
        for crd in documents_at(&format!("crds/{name}")) {
            let params = PatchParams {
                dry_run: true,
                ..PatchParams::apply("koreo-e2e").force()
            };
            let crd_name = crd["metadata"]["name"].as_str().unwrap();
            crds.patch(crd_name, &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("crds/{name} refused: {e}"));
            checked += 1;
        }
    }
    assert_eq!(checked, koreo_lang::model::KINDS.len());
}

/// One example under test: its namespace, with the example's CRD and definitions applied
/// there, and a controller watching it.
struct Example {
    client: Client,
    namespace: String,
    dir: String,
    controller: Option<tokio::task::JoinHandle<()>>,
    local: Option<TestKube>,
}

impl Example {
    /// `dir` is relative to the repository's root (`examples/hello`); `None` when the server
    /// asked for is a real one and there is none.
    async fn start(server: Server, dir: &str) -> Option<Example> {
        let (client, local) = cluster(server).await?;
        let short = dir.rsplit('/').next().unwrap_or(dir);
        // Several scenarios use the same example at once: each gets a namespace of its own.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let namespace = format!("koreo-e2e-{short}-{}-{n}", std::process::id());
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
        let root = format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        files.sort();
        if files.iter().any(|f| f == "crd.yaml") {
            for doc in documents_at(&format!("{dir}/crd.yaml")) {
                apply(&client, &doc, None).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await; // CRDs become served
        }
        for file in files.iter().filter(|f| f.ends_with(".koreo")) {
            for doc in documents_at(&format!("{dir}/{file}")) {
                apply(&client, &doc, Some(&namespace)).await;
            }
        }
        let mut example = Example {
            client,
            namespace,
            dir: dir.to_string(),
            controller: None,
            local,
        };
        example.start_controller();
        Some(example)
    }

    fn start_controller(&mut self) {
        let controller = Controller::new(self.client.clone())
            .in_namespaces(vec![self.namespace.clone()])
            .run();
        self.controller = Some(tokio::spawn(controller));
    }

    /// Stops the controller (dropping it stops every watch and reconcile it started).
    async fn stop_controller(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
            let _ = controller.await;
        }
    }

    /// Writes (create, update, patch, delete) made in the example's namespace during `window`:
    /// the local server's request counts, or a real server's audit log
    /// (`KOREO_E2E_AUDIT_LOG`; `None` without one).
    async fn writes_during(&self, window: Duration) -> Option<usize> {
        let started = Timestamp::now();
        if let Some(local) = &self.local {
            let before = support::writes(local);
            tokio::time::sleep(window).await;
            return Some((support::writes(local) - before) as usize);
        }
        let Ok(path) = std::env::var("KOREO_E2E_AUDIT_LOG") else {
            eprintln!(
                "e2e: KOREO_E2E_AUDIT_LOG is not set: writes on the real cluster are not counted"
            );
            return None;
        };
        tokio::time::sleep(window).await;
        let ended = Timestamp::now();
        // The audit log is written as requests complete: give the last ones a moment.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let log = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let writes: Vec<Json> = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Json>(line).ok())
            .filter(|e| {
                let at = e["requestReceivedTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<Timestamp>().ok());
                e["stage"] == "ResponseComplete"
                    && matches!(
                        e["verb"].as_str(),
                        Some("create" | "update" | "patch" | "delete")
                    )
                    && e["objectRef"]["namespace"] == self.namespace.as_str()
                    && at.is_some_and(|at| at >= started && at <= ended)
            })
            .collect();
        for w in &writes {
            eprintln!(
                "e2e: write in the steady state: {} {}",
                w["verb"], w["requestURI"]
            );
        }
        Some(writes.len())
    }

    /// The objects in one of the example's files, created in the test's namespace.
    async fn create(&self, file: &str) {
        for doc in documents_at(&format!("{}/{file}", self.dir)) {
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

async fn hello_from_creation_to_cleanup(server: Server) {
    let Some(e) = Example::start(server, "examples/hello").await else {
        return;
    };
    e.create("greeting.yaml").await;
    let greetings = e.api("example.koreo.dev/v1", "Greeting");
    let configmaps = e.api("v1", "ConfigMap");
    e.ready(&greetings, "ada").await;
    // Each step's last outcome is on the parent, for `koreo inspect`.
    let outcomes = e
        .field(
            &greetings,
            "ada",
            "/metadata/annotations/koreo.dev~1step-outcomes",
        )
        .await
        .expect("the step-outcomes annotation");
    let outcomes: Json = serde_json::from_str(outcomes.as_str().unwrap()).unwrap();
    assert_eq!(
        outcomes,
        json!({"words": {"outcome": "Ok"}, "config": {"outcome": "Ok"}})
    );
    let text = "/data/greeting";
    e.until(
        "the greeting",
        &configmaps,
        "ada-greeting",
        text,
        Some(json!("Bonjour, Ada!")),
    )
    .await;
    // What koreo did is recorded as an Event the API server accepts.
    let created = eventually(30, "a Created event", async || {
        support::event(&e.client, &e.namespace, "Created", Some("ada")).await
    })
    .await;
    assert_eq!(
        created.note.as_deref(),
        Some(format!("Created ConfigMap:{}:ada-greeting", e.namespace).as_str())
    );
    // Created by server-side apply: one entry, koreo's Apply, owns koreo's fields.
    let managers = e
        .field(&configmaps, "ada-greeting", "/metadata/managedFields")
        .await
        .unwrap();
    let koreo: Vec<&Json> = managers
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["manager"] == "koreo")
        .collect();
    assert_eq!(koreo.len(), 1, "{managers:#}");
    assert_eq!(koreo[0]["operation"], "Apply");

    // An owner reference removed by hand comes back.
    let owners = "/metadata/ownerReferences";
    let owned = e.field(&configmaps, "ada-greeting", owners).await;
    assert!(owned.is_some());
    merge(
        &configmaps,
        "ada-greeting",
        json!({"metadata": {"ownerReferences": null}}),
    )
    .await;
    e.until(
        "the owner reference restored",
        &configmaps,
        "ada-greeting",
        owners,
        owned,
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

async fn web_app_from_creation_to_cleanup(server: Server) {
    let Some(e) = Example::start(server, "examples/web-app").await else {
        return;
    };
    e.create("webapp.yaml").await;
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

async fn crud_app_waits_for_its_database_then_converges(server: Server) {
    let Some(e) = Example::start(server, "examples/stateless-crud-app").await else {
        return;
    };
    e.create("db-credentials.yaml").await;
    e.create("crudapps.yaml").await;
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

    // Another manager adds an environment variable (a strategic merge, as `kubectl set env`
    // does): koreo owns the list as written, so it goes again.
    let env = "/spec/template/spec/containers/0/env";
    let want_env = e.field(&deployments, "orders", env).await;
    deployments
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "INJECTED", "value": "x"}]}]}}}})),
        )
        .await
        .unwrap();
    e.until(
        "the env drift corrected",
        &deployments,
        "orders",
        env,
        want_env,
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

async fn decorator_decorates_labelled_namespaces_only(server: Server) {
    let Some(e) = Example::start(server, "examples/decorator").await else {
        return;
    };
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

async fn values_the_server_rewrites_are_not_drift(server: Server) {
    let dir = "runtime/tests/fixtures/e2e-rewrites";
    let Some(e) = Example::start(server, dir).await else {
        return;
    };
    e.create("parent.yaml").await;
    let parents = e.api("example.koreo.dev/v1", "Rewrite");
    e.ready(&parents, "steady").await;
    let deployments = e.api("apps/v1", "Deployment");
    // What the server made of `cpu: 1`, `memory: 1024Mi` and the like, for the record.
    let resources = "/spec/template/spec/containers/0/resources";
    eprintln!(
        "e2e: stored {}",
        e.field(&deployments, "steady", resources).await.unwrap()
    );
    // Give the passes after Ready time to finish, then: nothing is written for a minute.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Some(writes) = e.writes_during(Duration::from_secs(60)).await {
        assert_eq!(writes, 0, "writes in 60 s of steady state");
    }
    e.finish().await;
}

async fn a_parent_deleted_with_its_namespace_lets_it_go(server: Server) {
    let Some(e) = Example::start(server, "examples/hello").await else {
        return;
    };
    e.create("greeting.yaml").await;
    let greetings = e.api("example.koreo.dev/v1", "Greeting");
    e.ready(&greetings, "ada").await;
    let finalizers = e.field(&greetings, "ada", "/metadata/finalizers").await;
    assert_eq!(finalizers, Some(json!(["koreo.dev/cleanup"])));
    let namespaces: Api<Namespace> = Api::all(e.client.clone());
    namespaces
        .delete(&e.namespace, &DeleteParams::default())
        .await
        .unwrap();
    // The Workflow and the Greeting go together: koreo's finalizer must not hold either.
    eventually(90, "the namespace gone", async || {
        namespaces
            .get_opt(&e.namespace)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

async fn a_parent_deleted_while_koreo_is_stopped_is_cleaned_up(server: Server) {
    let Some(mut e) = Example::start(server, "examples/web-app").await else {
        return;
    };
    e.create("webapp.yaml").await;
    let apps = e.api("example.koreo.dev/v1", "WebApp");
    let autoscalers = e.api("autoscaling/v2", "HorizontalPodAutoscaler");
    let deployments = e.api("apps/v1", "Deployment");
    e.ready(&apps, "shop").await;
    assert!(autoscalers.get_opt("shop").await.unwrap().is_some());

    e.stop_controller().await;
    apps.delete("shop", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = e.field(&apps, "shop", "/metadata/deletionTimestamp").await;
    assert!(waiting.is_some(), "the finalizer keeps the parent");

    e.start_controller();
    e.until("the parent gone", &apps, "shop", "", None).await;
    // The autoscaler's policy is destroy; the Deployment's the default, abandon.
    e.until("the autoscaler destroyed", &autoscalers, "shop", "", None)
        .await;
    let label = "/metadata/labels/koreo.dev~1abandoned";
    e.until(
        "the Deployment abandoned",
        &deployments,
        "shop",
        label,
        Some(json!("true")),
    )
    .await;
    e.finish().await;
}

async fn a_function_that_cannot_create_decorates_what_others_made(server: Server) {
    let dir = "runtime/tests/fixtures/e2e-decorate";
    let Some(e) = Example::start(server, dir).await else {
        return;
    };
    e.create("existing.yaml").await; // made by another manager, `koreo-e2e`
    e.create("parent.yaml").await;
    let parents = e.api("example.koreo.dev/v1", "Decoration");
    let configmaps = e.api("v1", "ConfigMap");
    e.ready(&parents, "mark").await;
    let object = configmaps.get("existing").await.unwrap();
    let object = serde_json::to_value(&object).unwrap();
    assert_eq!(object["metadata"]["labels"]["decorated"], "true");
    assert_eq!(object["data"]["note"], "decorated by koreo");
    assert_eq!(object["data"]["owner"], "someone");
    assert!(
        object["metadata"]["ownerReferences"].is_null(),
        "never owned: {object}"
    );
    assert!(object["metadata"]["annotations"]["koreo.dev/parent-uid"].is_null());
    // koreo owns its fields only, in one Apply entry; the maker keeps its own.
    let managers = object["metadata"]["managedFields"].as_array().unwrap();
    let fields_of = |manager: &str| -> Vec<Json> {
        managers
            .iter()
            .filter(|m| m["manager"] == manager)
            .map(|m| m["fieldsV1"].clone())
            .collect()
    };
    let koreo = fields_of("koreo");
    assert_eq!(koreo.len(), 1, "{managers:#?}");
    assert!(koreo[0]["f:metadata"]["f:labels"]["f:decorated"].is_object());
    assert!(koreo[0]["f:data"]["f:note"].is_object());
    assert!(
        koreo[0]["f:data"].get("f:owner").is_none(),
        "{:#}",
        koreo[0]
    );
    assert!(fields_of("koreo-e2e")[0]["f:data"]["f:owner"].is_object());

    // The parent gone: the decoration goes, the object stays as its maker left it.
    parents
        .delete("mark", &DeleteParams::default())
        .await
        .unwrap();
    e.until("the parent gone", &parents, "mark", "", None).await;
    e.until(
        "the label removed",
        &configmaps,
        "existing",
        "/metadata/labels/decorated",
        Some(Json::Null),
    )
    .await;
    let object = serde_json::to_value(configmaps.get("existing").await.unwrap()).unwrap();
    assert_eq!(object["data"], json!({"owner": "someone"}));
    assert_eq!(object["metadata"]["labels"], json!({"app": "someone"}));
    e.finish().await;
}

/// The controller as a user with only the permissions `deploy/` and `koreo rbac` grant, on a
/// real API server (testkube does not authorize): what an installation gives it is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_is_enough_on_a_real_server() {
    let Some(path) = std::env::var("KOREO_E2E_KUBECONFIG").ok() else {
        eprintln!("e2e: KOREO_E2E_KUBECONFIG is not set: the least-privilege test is skipped");
        return;
    };
    // ../shared/kube writes a kubeconfig for the user `koreo` (no groups) beside the admin's.
    let user = std::path::Path::new(&path).with_file_name("koreo.kubeconfig");
    let Ok(user) = Kubeconfig::read_from(&user) else {
        eprintln!("e2e: no koreo.kubeconfig beside {path}: the least-privilege test is skipped");
        return;
    };
    let Some(mut e) = Example::start(Server::Real, "examples/hello").await else {
        return;
    };
    e.stop_controller().await; // the admin's; the user's starts below
    let mut grants: Vec<Json> = documents_at("deploy/overlays/cluster-wide/rbac.yaml")
        .into_iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .collect();
    let subject = koreo_runtime::rbac::Subject {
        namespace: e.namespace.clone(),
        service_account: "unused".into(),
    };
    let ws = koreo_lang::Workspace::load_paths(&[format!(
        "{}/../examples/hello",
        env!("CARGO_MANIFEST_DIR")
    )]);
    grants.extend(
        koreo_runtime::rbac::objects(&ws, &[], &subject)
            .into_iter()
            .filter(|o| o["kind"] == "ClusterRole"),
    );
    for role in &grants {
        apply(&e.client, role, None).await;
        let name = role["metadata"]["name"].as_str().unwrap();
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{name}-e2e-user")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "koreo"}]});
        apply(&e.client, &binding, None).await;
    }
    let config = Config::from_custom_kubeconfig(user, &KubeConfigOptions::default())
        .await
        .unwrap();
    let as_koreo = Client::try_from(config).unwrap();
    e.controller = Some(tokio::spawn(
        Controller::new(as_koreo)
            .in_namespaces(vec![e.namespace.clone()])
            .run(),
    ));
    e.create("greeting.yaml").await;
    let greetings = e.api("example.koreo.dev/v1", "Greeting");
    let configmaps = e.api("v1", "ConfigMap");
    e.ready(&greetings, "ada").await;
    e.until(
        "the greeting",
        &configmaps,
        "ada-greeting",
        "/data/greeting",
        Some(json!("Bonjour, Ada!")),
    )
    .await;
    greetings
        .delete("ada", &DeleteParams::default())
        .await
        .unwrap();
    e.until("the parent gone", &greetings, "ada", "", None)
        .await;
    e.finish().await;
}

/// `koreo schemas pull`: the server's CRDs, and on a real one its built-in kinds at its own
/// version, type a workspace offline as the bundled schemas do.
async fn schemas_pulled_from_the_server_type_what_check_reads(server: Server) {
    let Some(e) = Example::start(server, "examples/web-app").await else {
        return;
    };
    let pulled = koreo_runtime::schemas::pull(&e.client).await.unwrap();
    let names: Vec<&str> = pulled
        .crds
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"webapps.example.koreo.dev"), "{names:?}");
    let webapp = pulled
        .crds
        .iter()
        .find(|c| c["metadata"]["name"] == "webapps.example.koreo.dev")
        .unwrap();
    assert!(webapp.get("status").is_none() && webapp["metadata"].get("uid").is_none());
    let mut ws = koreo_lang::Workspace::default();
    for crd in &pulled.crds {
        ws.add_object(
            std::path::Path::new("pulled.yaml"),
            koreo_lang::yaml::Node::from_json(crd),
        );
    }
    ws.finish();
    assert!(
        koreo_lang::typecheck::kind_schema(&ws, "example.koreo.dev/v1", "WebApp").is_some(),
        "the pulled CRD types its kind"
    );
    match (server, &pulled.bundle) {
        // Ours serves no schemas: nothing is made up.
        (Server::Local, bundle) => assert!(bundle.is_none()),
        (Server::Real, Some(text)) => {
            let bundle = koreo_lang::openapi::Bundle::parse(text).unwrap();
            assert_eq!(bundle.kubernetes(), pulled.kubernetes);
            let deployment = bundle.kind("apps/v1", "Deployment").unwrap();
            let koreo_lang::openapi::Field::Declared(spec) = deployment.field("spec") else {
                panic!("a Deployment has a spec");
            };
            let koreo_lang::openapi::Field::Declared(replicas) = spec.field("replicas") else {
                panic!("a Deployment spec has replicas");
            };
            assert_eq!(replicas.type_name(), Some("integer"));
            assert!(matches!(
                spec.field("replica"),
                koreo_lang::openapi::Field::Undeclared(_)
            ));
        }
        (Server::Real, None) => panic!("a real API server serves OpenAPI v3 schemas"),
    }
    e.finish().await;
}
