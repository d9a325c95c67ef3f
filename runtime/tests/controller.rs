//! The controller against the local API server through `kube::Client`: examples/hello from
//! parent creation to Ready, steady state without writes, drift and parent changes.

use std::time::Duration;

mod support;
use support::{
    create, documents, event, eventually, is_ready, merge, resource, with_definitions, writes,
};

use k8s_openapi::api::core::v1::ConfigMap;
use koreo_runtime::boundary::Boundary;
use koreo_runtime::controller::Controller;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value as Json, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_converges_stays_quiet_and_corrects_drift() {
    let (server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    start(&client, &documents("hello/greeting.yaml")).await;

    let greetings = greetings_in(&client, "default");
    let ready = ready(&greetings, "ada", 10).await;
    assert_eq!(
        ready.data["status"]["state"],
        json!({"configMap": "ada-greeting"})
    );
    let managed: Json = serde_json::from_str(
        ready.metadata.annotations.as_ref().unwrap()["koreo.dev/managed-resources"].as_str(),
    )
    .unwrap();
    // Koreo's shape, which tools (koreo-ui, `koreo inspect`) read.
    assert_eq!(
        managed["resources"]["config"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "plural": "configmaps",
            "name": "ada-greeting", "readonly": false, "resourceFunction": "hello-config",
            "namespace": "default"})
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        configmaps.get("ada-greeting").await.unwrap().data.unwrap()["greeting"],
        "Bonjour, Ada!"
    );

    // Steady state: no writes at all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes(&server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        writes(&server),
        before,
        "the controller writes nothing once converged"
    );

    // Drift on the managed ConfigMap is corrected without waiting for a resync.
    merge(
        &configmaps,
        "ada-greeting",
        json!({"data": {"greeting": "tampered"}}),
    )
    .await;
    eventually(10, "drift to be corrected", async || {
        let data = configmaps.get("ada-greeting").await.ok()?.data?;
        (data["greeting"] == "Bonjour, Ada!").then_some(())
    })
    .await;

    // A change of the parent flows through.
    merge(&greetings, "ada", json!({"spec": {"language": "de"}})).await;
    eventually(10, "the new greeting", async || {
        let data = configmaps.get("ada-greeting").await.ok()?.data?;
        (data["greeting"] == "Hallo, Ada!").then_some(())
    })
    .await;
}

const CACHES: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: apps.example.koreo.dev}
spec:
  group: example.koreo.dev
  scope: Namespaced
  names: {kind: App, plural: apps}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: app, namespace: default}
spec:
  crdRef: {apiGroup: example.koreo.dev, version: v1, kind: App}
  steps:
  - label: caches
    ref: {kind: ResourceFunction, name: cache}
    forEach:
      itemIn: =parent.spec.caches
      inputKey: cache
    inputs:
      app: =parent.metadata.name
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: cache, namespace: default}
spec:
  apiConfig:
    apiVersion: v1
    kind: ConfigMap
    name: =inputs.app + "-" + inputs.cache
    namespace: default
  resource:
    data: {cache: =inputs.cache}
  delete:
    destroy: {}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_and_pruning_follow_the_delete_policy_and_touch_only_what_koreo_made() {
    let caches: Vec<Json> = koreo_lang::yaml::parse_documents(CACHES)
        .unwrap()
        .into_iter()
        .map(|d| d.root.to_json())
        .collect();
    let (_server, client) = with_definitions(&caches).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // Someone else's ConfigMap with a name the workflow will want: koreo must never delete it.
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "shop-blue"}, "data": {"owner": "someone"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    tokio::spawn(Controller::new(client.clone()).run());
    create(&client, &json!({"apiVersion": "example.koreo.dev/v1", "kind": "App",
        "metadata": {"name": "shop", "namespace": "default"}, "spec": {"caches": ["red", "green"]}}))
    .await;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "App"),
    );
    let names = async || -> Vec<String> {
        let mut n: Vec<String> = configmaps
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        n.sort();
        n
    };
    eventually(10, "both caches", async || {
        (names().await == ["shop-blue", "shop-green", "shop-red"]).then_some(())
    })
    .await;
    let app = apps.get("shop").await.unwrap();
    assert!(
        app.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"koreo.dev/cleanup".to_string())
    );

    // An item gone from forEach: its ConfigMap is destroyed.
    merge(&apps, "shop", json!({"spec": {"caches": ["green"]}})).await;
    eventually(10, "red pruned", async || {
        (names().await == ["shop-blue", "shop-green"]).then_some(())
    })
    .await;

    // An item whose object exists but was not made by koreo: left alone, and the step says why.
    merge(
        &apps,
        "shop",
        json!({"spec": {"caches": ["green", "blue"]}}),
    )
    .await;
    let waiting = eventually(10, "the step to explain", async || {
        let app = apps.get("shop").await.ok()?;
        let message = app.data["status"]["koreo"]["errors"].as_str()?.to_string();
        message
            .contains("koreo did not create it")
            .then_some(message)
    })
    .await;
    assert!(
        waiting.contains("ConfigMap:default:shop-blue exists"),
        "{waiting}"
    );
    let foreign = configmaps.get("shop-blue").await.unwrap();
    assert_eq!(
        foreign.data.unwrap()["owner"],
        "someone",
        "a ConfigMap koreo did not create is not changed"
    );

    // Parent deleted: what it owns is destroyed, then the parent goes.
    kube::api::Api::<DynamicObject>::delete(&apps, "shop", &Default::default())
        .await
        .unwrap();
    eventually(10, "the parent gone", async || {
        apps.get_opt("shop").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(
        names().await,
        ["shop-blue"],
        "green destroyed, the foreign one kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_leaves_objects_labelled_and_unowned() {
    let (_server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    start(&client, &documents("hello/greeting.yaml")).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    eventually(10, "the ConfigMap", async || {
        configmaps.get_opt("ada-greeting").await.unwrap()
    })
    .await;
    let greetings = greetings_in(&client, "default");
    greetings.delete("ada", &Default::default()).await.unwrap();
    eventually(10, "the Greeting gone", async || {
        greetings
            .get_opt("ada")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let left = configmaps.get("ada-greeting").await.unwrap();
    assert_eq!(left.metadata.labels.unwrap()["koreo.dev/abandoned"], "true");
    assert_eq!(left.metadata.owner_references, None, "no owners, not `[]`");

    // The parent made again, wanting another greeting: the object is its predecessor's, and
    // koreo says how to adopt it.
    for mut doc in documents("hello/greeting.yaml") {
        doc["spec"]["language"] = json!("en");
        create(&client, &doc).await;
    }
    let message = eventually(10, "the step to explain", async || {
        let g = greetings.get("ada").await.ok()?;
        g.data["status"]["koreo"]["errors"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert!(
        message.contains("was made by koreo for an earlier parent and abandoned")
            && message.contains(
                "kubectl annotate configmap ada-greeting koreo.dev/adopt=true -n default"
            ),
        "{message}"
    );
    merge(
        &configmaps,
        "ada-greeting",
        json!({"metadata": {"annotations": {"koreo.dev/adopt": "true"}}}),
    )
    .await;
    let ada = ready(&greetings, "ada", 10).await;
    let adopted = configmaps.get("ada-greeting").await.unwrap();
    let owners = adopted.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), ada.metadata.uid.as_ref());
    let labels = adopted.metadata.labels.unwrap_or_default();
    let annotations = adopted.metadata.annotations.unwrap_or_default();
    assert!(!labels.contains_key("koreo.dev/abandoned"), "{labels:?}");
    assert!(
        !annotations.contains_key("koreo.dev/adopt"),
        "{annotations:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_report_whether_they_are_valid() {
    let broken = json!({"apiVersion": "koreo.dev/v1beta1", "kind": "ValueFunction",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": {"retrun": {"x": "=1 +"}}});
    let (_server, client) = with_definitions(
        &[
            documents("hello/hello.koreo"),
            documents("hello/tests.koreo"),
            vec![broken],
        ]
        .concat(),
    )
    .await;
    tokio::spawn(Controller::new(client.clone()).run());
    let ready_of = async |kind: &str, name: &str| -> Option<Json> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "default",
            &resource("koreo.dev/v1beta1", kind),
        );
        let f = api.get(name).await.ok()?;
        f.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
    };
    let ready = async |name: &str| ready_of("ValueFunction", name).await;
    let broken = eventually(10, "the broken function's status", async || {
        ready("broken").await
    })
    .await;
    assert_eq!(broken["status"], "False");
    let message = broken["message"].as_str().unwrap();
    assert!(
        message.contains("unknown key `retrun` in `spec`"),
        "{message}"
    );
    assert!(
        message.contains("(at spec.retrun)") && !message.contains("line "),
        "the message says where, by field: {message}"
    );
    let good = eventually(10, "the valid function's status", async || {
        ready("hello-words").await
    })
    .await;
    assert_eq!(
        (good["status"].as_str(), good["reason"].as_str()),
        (Some("True"), Some("Valid"))
    );
    let test = eventually(10, "a FunctionTest's status", async || {
        ready_of("FunctionTest", "hello-words-test").await
    })
    .await;
    assert_eq!(test["status"], "True", "{test}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_failures_are_retried_with_backoff_until_it_converges() {
    let (server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    // The parent cannot be read at first, and the first creates of its ConfigMap fail.
    server.fail_next(Some("get"), Some("greetings"), 2, 500);
    server.fail_next(Some("create"), Some("configmaps"), 2, 500);
    server.fail_next(Some("patch"), Some("greetings"), 1, 500);
    start(&client, &documents("hello/greeting.yaml")).await;
    let greetings = greetings_in(&client, "default");
    ready(&greetings, "ada", 40).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        configmaps.get("ada-greeting").await.unwrap().data.unwrap()["greeting"],
        "Bonjour, Ada!"
    );
    assert!(
        server.request_counts()["get"] > 2,
        "the failed reads were made again"
    );
}

/// Starts a controller and creates the objects, in order.
async fn start(client: &kube::Client, objects: &[Json]) {
    tokio::spawn(Controller::new(client.clone()).run());
    for object in objects {
        create(client, object).await;
    }
}

/// The Greetings (examples/hello's parents) of a namespace.
fn greetings_in(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("example.koreo.dev/v1", "Greeting"),
    )
}

/// Waits up to `seconds` for the parent `name` to be Ready, and returns it.
async fn ready(parents: &Api<DynamicObject>, name: &str, seconds: u64) -> DynamicObject {
    eventually(seconds, &format!("{name} to be Ready"), async || {
        let parent = parents.get(name).await.ok()?;
        is_ready(&parent).then_some(parent)
    })
    .await
}

/// The hello definitions moved to another namespace.
/// (With namespaces team-a, team-b and team-c.)
fn hello_in(namespace: &str) -> Vec<Json> {
    let namespaces = ["team-a", "team-b", "team-c"]
        .map(|name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    let mut docs = [
        namespaces.to_vec(),
        documents("hello/crd.yaml"),
        documents("hello/hello.koreo"),
    ]
    .concat();
    for doc in docs
        .iter_mut()
        .filter(|d| d["apiVersion"] == "koreo.dev/v1beta1")
    {
        doc["metadata"]["namespace"] = json!(namespace);
    }
    docs
}

fn greeting(namespace: &str) -> Json {
    json!({"apiVersion": "example.koreo.dev/v1", "kind": "Greeting",
        "metadata": {"name": "ada", "namespace": namespace},
        "spec": {"name": "Ada", "language": "en"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_namespaces_are_watched_and_the_others_left_alone() {
    let (_server, client) = with_definitions(&hello_in("team-a")).await;
    tokio::spawn(
        Controller::new(client.clone())
            .in_namespaces(vec!["team-a".into(), "team-b".into()])
            .run(),
    );
    // team-c first: were it watched, it would be reconciled before the others are Ready.
    for namespace in ["team-c", "team-a", "team-b"] {
        create(&client, &greeting(namespace)).await;
    }
    for namespace in ["team-a", "team-b"] {
        ready(&greetings_in(&client, namespace), "ada", 10).await;
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        assert!(configmaps.get_opt("ada-greeting").await.unwrap().is_some());
    }
    let outside = greetings_in(&client, "team-c").get("ada").await.unwrap();
    assert!(
        outside.metadata.finalizers.is_none() && outside.data.get("status").is_none(),
        "a parent outside the watched namespaces is not touched: {:?}",
        outside.metadata
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "team-c");
    assert!(configmaps.get_opt("ada-greeting").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_stay_within_the_qps_limit() {
    let (server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    for i in 0..30 {
        let mut parent = greeting("default");
        parent["metadata"]["name"] = json!(format!("g{i}"));
        create(&client, &parent).await;
    }
    let before: u64 = server.request_counts().values().sum();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let qps = 20;
    let limited = koreo_runtime::kube_api::client(config, qps, Default::default()).unwrap();
    let started = tokio::time::Instant::now();
    tokio::spawn(Controller::new(limited).run());
    let greetings = greetings_in(&client, "default");
    // 30 parents need about 6 requests each: at 20 a second that cannot be done in 3 seconds.
    eventually(60, "all Ready", async || {
        let list = greetings.list(&Default::default()).await.ok()?;
        list.items.iter().all(is_ready).then_some(())
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let made = server.request_counts().values().sum::<u64>() - before;
    // Our own polling above goes through the unlimited client and is counted too: at most one
    // list per 50 ms.
    let polls = (elapsed / 0.05).ceil() as u64 + 1;
    let controller_requests = made.saturating_sub(polls);
    let allowed = qps as f64 * (elapsed.ceil() + 1.0);
    assert!(
        controller_requests as f64 <= allowed,
        "{controller_requests} requests in {elapsed:.1} s with a limit of {qps}/s"
    );
    assert!(
        elapsed > 3.0,
        "converged in {elapsed:.1} s: was the limit applied?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_reconcile_converges_without_duplicates() {
    let (server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    // Slow requests, so that the controller can be stopped between its writes.
    server.set_latency(Duration::from_millis(150));
    let first = tokio::spawn(Controller::new(client.clone()).run());
    create(&client, &greeting("default")).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let made = eventually(20, "the ConfigMap", async || {
        configmaps.get_opt("ada-greeting").await.ok()?
    })
    .await;
    first.abort();
    let greetings = greetings_in(&client, "default");
    let stopped = greetings.get("ada").await.unwrap();
    assert!(
        !is_ready(&stopped),
        "stopped before the reconcile finished (its status not written yet)"
    );
    server.set_latency(Duration::ZERO);

    tokio::spawn(Controller::new(client.clone()).run());
    let parent = ready(&greetings, "ada", 10).await;
    let config = configmaps.get("ada-greeting").await.unwrap();
    assert_eq!(config.metadata.uid, made.metadata.uid, "not created twice");
    assert_eq!(config.data.unwrap()["greeting"], "Hello, Ada!");
    assert_eq!(
        parent.metadata.finalizers.unwrap(),
        ["koreo.dev/cleanup"],
        "one finalizer"
    );
    assert_eq!(
        config.metadata.owner_references.unwrap().len(),
        1,
        "one owner reference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workflows_for_one_kind_run_neither_and_say_why() {
    let mut docs = hello_in("default");
    let mut second = docs
        .iter()
        .find(|d| d["kind"] == "Workflow")
        .unwrap()
        .clone();
    second["metadata"]["name"] = json!("hello-again");
    docs.push(second);
    let (_server, client) = with_definitions(&docs).await;
    tokio::spawn(Controller::new(client.clone()).run());
    create(&client, &greeting("default")).await;
    let note = eventually(10, "a MultipleWorkflows event", async || {
        event(&client, "default", "MultipleWorkflows", None)
            .await?
            .note
    })
    .await;
    assert!(note.contains("hello, hello-again"), "{note}");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert!(configmaps.get_opt("ada-greeting").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_that_end_or_expire_are_resumed_and_nothing_is_missed() {
    let (server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    tokio::spawn(Controller::new(client.clone()).run());
    create(&client, &greeting("default")).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let text = async || -> Option<String> {
        configmaps
            .get("ada-greeting")
            .await
            .ok()?
            .data?
            .get("greeting")
            .cloned()
    };
    eventually(10, "the ConfigMap", async || {
        (text().await.as_deref() == Some("Hello, Ada!")).then_some(())
    })
    .await;
    // The server forgets old versions and cuts every watch: watchers resume from a version it
    // no longer has, get 410 Gone, and list again.
    server.expire_resource_versions();
    server.drop_watches();
    // A drift made while no watch is open is still seen (by the relist) and corrected.
    merge(
        &configmaps,
        "ada-greeting",
        json!({"data": {"greeting": "tampered"}}),
    )
    .await;
    eventually(
        15,
        "the drift corrected after the watches came back",
        async || (text().await.as_deref() == Some("Hello, Ada!")).then_some(()),
    )
    .await;

    // The same for a definition changed while its watch is gone: the relist reloads.
    server.expire_resource_versions();
    server.drop_watches();
    let functions: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("koreo.dev/v1beta1", "ValueFunction"),
    );
    merge(
        &functions,
        "hello-words",
        json!({"spec": {"locals": {"words": {"en": "Hi"}}}}),
    )
    .await;
    eventually(15, "the new words", async || {
        (text().await.as_deref() == Some("Hi, Ada!")).then_some(())
    })
    .await;
}

/// With its Workflow gone, a parent keeps koreo's finalizer until it is deleted, and then
/// loses it; while some Workflow fails to load (perhaps this kind's, half-edited), it keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_outlives_no_workflow_but_waits_for_a_broken_one() {
    let definitions = documents("hello/hello.koreo");
    let (_server, client) =
        with_definitions(&[documents("hello/crd.yaml"), definitions.clone()].concat()).await;
    start(&client, &documents("hello/greeting.yaml")).await;
    let greetings = greetings_in(&client, "default");
    let workflows: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("koreo.dev/v1beta1", "Workflow"),
    );
    ready(&greetings, "ada", 10).await;
    let finalizers = |g: &DynamicObject| g.metadata.finalizers.clone().unwrap_or_default();

    // The Workflow replaced by one that fails to load: the deleted parent waits.
    let workflow = definitions
        .iter()
        .find(|d| d["kind"] == "Workflow")
        .unwrap();
    let name = workflow["metadata"]["name"].as_str().unwrap();
    workflows.delete(name, &Default::default()).await.unwrap();
    let mut broken = workflow.clone();
    broken["spec"]["steps"] = json!("not a list");
    create(&client, &broken).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ada = greetings.get("ada").await.unwrap();
    assert_eq!(finalizers(&ada), ["koreo.dev/cleanup"], "not deleted: kept");
    greetings.delete("ada", &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ada = greetings.get("ada").await.unwrap();
    assert_eq!(
        finalizers(&ada),
        ["koreo.dev/cleanup"],
        "a Workflow fails to load: kept"
    );

    // No Workflow at all: nothing can release it, so the deleted parent goes.
    workflows.delete(name, &Default::default()).await.unwrap();
    eventually(10, "ada gone", async || {
        greetings.get_opt("ada").await.ok()?.is_none().then_some(())
    })
    .await;
}

/// A definition is never taken for missing because listing it failed: the controller asks
/// again until the API server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_listing_of_definitions_at_start_is_asked_again() {
    let (server, client) = with_definitions(
        &[
            documents("web-app/crd.yaml"),
            documents("web-app/web-app.koreo"),
        ]
        .concat(),
    )
    .await;
    // The ResourceTemplates cannot be listed, twice: without them the Deployment's function
    // would be invalid ("not found") until a restart.
    server.fail_next(Some("list"), Some("resourcetemplates"), 2, 500);
    start(&client, &documents("web-app/webapp.yaml")).await;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "WebApp"),
    );
    ready(&apps, "shop", 30).await;
}

/// A runaway expression is stopped at its cost limit, a PermFail naming it, and runs off the
/// async workers: parents with one do not hold up the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_expressions_fail_alone_and_others_converge() {
    let mut docs = hello_in("default");
    let words = docs
        .iter_mut()
        .find(|d| d["metadata"]["name"] == "hello-words")
        .unwrap();
    // 64 million steps for a parent named Loop (sized by data: a literal size is refused at load)
    words["spec"]["locals"]["spin"] = json!(
        "=inputs.name != 'Loop' || cel.bind(n, size(inputs.name) * 2000, \
         lists.range(n).all(x, lists.range(n).all(y, true)))"
    );
    let (_server, client) = with_definitions(&docs).await;
    tokio::spawn(Controller::new(client.clone()).with_workers(2).run());
    for name in ["loop-1", "loop-2", "loop-3"] {
        let mut parent = greeting("default");
        parent["metadata"]["name"] = json!(name);
        parent["spec"]["name"] = json!("Loop");
        create(&client, &parent).await;
    }
    create(&client, &greeting("default")).await;
    let greetings = greetings_in(&client, "default");
    ready(&greetings, "ada", 10).await;
    for name in ["loop-1", "loop-2", "loop-3"] {
        let status = eventually(10, &format!("{name} failed"), async || {
            let status = greetings.get(name).await.ok()?.data["status"].to_string();
            status
                .contains("passed its limit of 1,000,000 cost units")
                .then_some(status)
        })
        .await;
        assert!(
            status.contains("lists.range(n)"),
            "names the expression: {status}"
        );
    }
}

/// Data never shows in what the controller writes: an expression failing on a value read from
/// a Secret names the value's type, not the value, in status, conditions and Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_value_never_shows_in_status_or_events() {
    const SECRET: &str = "SECRET-VALUE-123";
    let mut docs = hello_in("default");
    let token = "U0VDUkVULVZBTFVFLTEyMw=="; // base64 of SECRET
    docs.push(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "root-token", "namespace": "default"}, "data": {"token": token}}));
    docs.push(
        json!({"apiVersion": "koreo.dev/v1beta1", "kind": "ResourceFunction",
        "metadata": {"name": "read-token", "namespace": "default"},
        "spec": {"apiConfig": {"apiVersion": "v1", "kind": "Secret", "name": "root-token",
            "namespace": "default", "readonly": true}, "resource": {},
            "return": {"token": "=base64.decode(resource.data.token)"}}}),
    );
    let workflow = docs.iter_mut().find(|d| d["kind"] == "Workflow").unwrap();
    let steps = workflow["spec"]["steps"].as_array_mut().unwrap();
    steps.insert(
        0,
        json!({"label": "token", "ref": {"kind": "ResourceFunction", "name": "read-token"}}),
    );
    steps[1]["inputs"]["name"] = json!("=steps.token.token");
    let words = docs
        .iter_mut()
        .find(|d| d["metadata"]["name"] == "hello-words")
        .unwrap();
    // a string where a boolean belongs: the error is about the Secret's value
    words["spec"]["preconditions"][0]["assert"] = json!("=inputs.name");
    let (_server, client) = with_definitions(&docs).await;
    tokio::spawn(Controller::new(client.clone()).run());
    create(&client, &greeting("default")).await;
    let greetings = greetings_in(&client, "default");
    let status = eventually(10, "the failure in status", async || {
        let status = greetings.get("ada").await.ok()?.data["status"].to_string();
        status
            .contains("expected a boolean, got a string")
            .then_some(status)
    })
    .await;
    let failed = eventually(10, "an Event", async || {
        event(&client, "default", "Failed", Some("ada")).await
    })
    .await;
    for (what, text) in [("status", status), ("Event", format!("{failed:?}"))] {
        for value in [SECRET, token] {
            assert!(!text.contains(value), "{what} shows {value}: {text}");
        }
    }
}

/// A Workflow in team-a cannot reach kube-system or cluster-scoped kinds, though the
/// controller's RBAC could: the step fails saying how to allow it, and nothing is read or
/// written there. The administrator's `--allow` widens exactly what it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_reaches_only_its_namespaces_unless_allowed() {
    for allowed in [false, true] {
        let mut docs = hello_in("team-a");
        docs.push(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "root-token", "namespace": "kube-system"},
            "data": {"token": "U0VDUkVU"}}));
        let config = docs
            .iter_mut()
            .find(|d| d["metadata"]["name"] == "hello-config")
            .unwrap();
        config["spec"]["apiConfig"]["namespace"] = json!("kube-system");
        docs.push(
            json!({"apiVersion": "koreo.dev/v1beta1", "kind": "ResourceFunction",
            "metadata": {"name": "read-token", "namespace": "team-a"},
            "spec": {"apiConfig": {"apiVersion": "v1", "kind": "Secret", "name": "root-token",
                "namespace": "kube-system", "readonly": true}, "resource": {},
                "return": {"token": "=resource.data.token"}}}),
        );
        let workflow = docs.iter_mut().find(|d| d["kind"] == "Workflow").unwrap();
        workflow["spec"]["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({"label": "steal",
            "ref": {"kind": "ResourceFunction", "name": "read-token"},
            "state": {"stolen": "=value.token"}}));
        let (_server, client) = with_definitions(&docs).await;
        let mut controller = Controller::new(client.clone());
        if allowed {
            controller = controller.with_boundary(
                Boundary::parse(&["team-a=kube-system/ConfigMap,kube-system/Secret"]).unwrap(),
            );
        }
        tokio::spawn(controller.run());
        create(&client, &greeting("team-a")).await;
        let greetings: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "team-a",
            &resource("example.koreo.dev/v1", "Greeting"),
        );
        let in_kube_system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
        if allowed {
            eventually(10, "Ready once allowed", async || {
                is_ready(&greetings.get("ada").await.ok()?).then_some(())
            })
            .await;
            assert!(
                in_kube_system
                    .get_opt("ada-greeting")
                    .await
                    .unwrap()
                    .is_some()
            );
            continue;
        }
        let status = eventually(10, "both steps refused", async || {
            let status = greetings.get("ada").await.ok()?.data["status"].to_string();
            (status.contains("ConfigMap:kube-system:ada-greeting is outside this workflow's reach")
                && status.contains("Secret:kube-system:root-token is outside"))
            .then_some(status)
        })
        .await;
        assert!(
            status.contains("--allow team-a=kube-system/Secret") && !status.contains("U0VDUkVU"),
            "{status}"
        );
        assert!(
            in_kube_system
                .get_opt("ada-greeting")
                .await
                .unwrap()
                .is_none()
        );
    }
}
