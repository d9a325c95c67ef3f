//! The controller applies `readonly`, `deleteIfExists` and `update: recreate` as Koreo defines
//! them, through `kube::Client` against the local API server.

mod support;
use support::{create, eventually, fixture, is_ready, merge, resource, with_definitions};

use k8s_openapi::api::core::v1::ConfigMap;
use koreo_runtime::controller::Controller;
use koreo_runtime::ownership::PARENT_UID;
use kube::api::{Api, DynamicObject};
use serde_json::json;

/// A server with the Site CRD and these definitions, a controller, and its reports.
async fn sites_with(
    documents: &str,
) -> (
    koreo_testkube::TestKube,
    kube::Client,
    tokio::sync::mpsc::UnboundedReceiver<koreo_runtime::controller::Report>,
) {
    let parsed: Vec<serde_json::Value> = koreo_lang::yaml::parse_documents(documents)
        .unwrap()
        .into_iter()
        .map(|d| d.root.to_json())
        .collect();
    let crd = fixture("policies.koreo").remove(0);
    let (server, client) = with_definitions(&[vec![crd], parsed].concat()).await;
    let (reports, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(Controller::new(client.clone()).with_reports(reports).run());
    (server, client, received)
}

fn config_map(name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": data})
}

/// Creates the Site `blog` (blue); the API for Sites.
async fn blog(client: &kube::Client) -> Api<DynamicObject> {
    create(
        client,
        &json!({"apiVersion": "example.koreo.dev/v1", "kind": "Site",
        "metadata": {"name": "blog", "namespace": "default"}, "spec": {"color": "blue"}}),
    )
    .await;
    Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Site"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_waits_delete_if_exists_removes_recreate_replaces() {
    let (_server, client) = with_definitions(&fixture("policies.koreo")).await;
    tokio::spawn(Controller::new(client.clone()).run());
    let sites = blog(&client).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // Read-only: the settings do not exist yet, so the workflow waits and creates nothing.
    let waiting = eventually(10, "the wait for the settings", async || {
        let site = sites.get("blog").await.ok()?;
        let message = site.data["status"]["koreo"]["errors"].as_str()?.to_string();
        message.contains("not found").then_some(message)
    })
    .await;
    assert!(waiting.contains("blog-settings"), "{waiting}");
    assert!(configmaps.get_opt("blog-settings").await.unwrap().is_none());

    // Someone else provides them: the workflow goes on. A leftover that an older version of the
    // workflow made for this parent is deleted.
    let uid = sites.get("blog").await.unwrap().metadata.uid.unwrap();
    let mut legacy = config_map("blog-legacy", json!({"old": "yes"}));
    legacy["metadata"]["annotations"] = json!({PARENT_UID: uid});
    create(&client, &legacy).await;
    create(
        &client,
        &config_map("blog-settings", json!({"size": "large"})),
    )
    .await;
    eventually(10, "Ready", async || {
        is_ready(&sites.get("blog").await.ok()?).then_some(())
    })
    .await;
    let config = configmaps.get("blog-config").await.unwrap();
    assert_eq!(
        config.data.clone().unwrap(),
        [("color", "blue"), ("size", "large")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
    );
    assert!(configmaps.get_opt("blog-legacy").await.unwrap().is_none());
    let settings = configmaps.get("blog-settings").await.unwrap();
    assert!(
        settings.metadata.owner_references.is_none()
            && settings
                .metadata
                .annotations
                .is_none_or(|a| !a.contains_key(PARENT_UID)),
        "a read-only object is not written to"
    );

    // recreate: a change deletes the object and creates it anew (a new uid), not a patch.
    merge(&sites, "blog", json!({"spec": {"color": "green"}})).await;
    let recreated = eventually(15, "the config recreated", async || {
        let c = configmaps.get_opt("blog-config").await.ok()??;
        (c.data.as_ref()?.get("color")? == "green").then_some(c)
    })
    .await;
    assert_ne!(recreated.metadata.uid, config.metadata.uid);

    // Deletion: destroy removes the config; the read-only settings stay although the function
    // that reads them says destroy.
    sites.delete("blog", &Default::default()).await.unwrap();
    eventually(10, "the Site gone", async || {
        sites.get_opt("blog").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(configmaps.get_opt("blog-config").await.unwrap().is_none());
    assert!(configmaps.get_opt("blog-settings").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_exists_leaves_an_object_koreo_did_not_make() {
    let (_server, client) = with_definitions(&fixture("policies.koreo")).await;
    create(
        &client,
        &config_map("blog-settings", json!({"size": "small"})),
    )
    .await;
    create(
        &client,
        &config_map("blog-legacy", json!({"owner": "someone"})),
    )
    .await;
    tokio::spawn(Controller::new(client.clone()).run());
    let sites = blog(&client).await;
    let message = eventually(10, "the step to explain", async || {
        let site = sites.get("blog").await.ok()?;
        let message = site.data["status"]["koreo"]["errors"].as_str()?.to_string();
        message
            .contains("koreo did not create it")
            .then_some(message)
    })
    .await;
    assert!(message.contains("blog-legacy"), "{message}");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        configmaps.get("blog-legacy").await.unwrap().data.unwrap()["owner"],
        "someone"
    );
}

fn switch(name: &str, mode: &str) -> serde_json::Value {
    json!({"apiVersion": "example.koreo.dev/v1", "kind": "Switch",
        "metadata": {"name": name, "namespace": "default"}, "spec": {"mode": mode}})
}

async fn set_mode(switches: &Api<DynamicObject>, name: &str, mode: &str) {
    merge(switches, name, json!({"spec": {"mode": mode}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_steps_keep_their_objects_and_skipped_steps_release_them() {
    let (_server, client) = with_definitions(&fixture("gated.koreo")).await;
    tokio::spawn(Controller::new(client.clone()).run());
    let switches: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Switch"),
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let exists = async |name: &str| configmaps.get_opt(name).await.unwrap();

    // Waiting: the steps after the gate do not run, and what they made is kept and remembered.
    create(&client, &switch("a", "on")).await;
    eventually(10, "a's ConfigMaps", async || {
        exists("a-pruned").await.and(exists("a-kept").await)
    })
    .await;
    set_mode(&switches, "a", "wait").await;
    eventually(10, "a to wait", async || {
        let a = switches.get("a").await.ok()?;
        let errors = a.data["status"]["koreo"]["errors"].as_str()?.to_string();
        errors.contains("waiting").then_some(())
    })
    .await;
    let a = switches.get("a").await.unwrap();
    let annotation = &a.metadata.annotations.unwrap()["koreo.dev/managed-resources"];
    assert!(
        annotation.contains("a-kept") && annotation.contains("a-pruned"),
        "{annotation}"
    );
    assert_eq!(
        a.data["status"]["state"]["mode"], "on",
        "the last good state stays while the workflow waits"
    );
    assert!(exists("a-pruned").await.is_some() && exists("a-kept").await.is_some());
    // Deleted while waiting: each object still gets its own policy (not garbage collection).
    switches.delete("a", &Default::default()).await.unwrap();
    eventually(10, "a gone", async || {
        switches.get_opt("a").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(exists("a-pruned").await.is_none(), "destroyed");
    let kept = exists("a-kept").await.expect("abandoned, not collected");
    assert_eq!(kept.metadata.labels.unwrap()["koreo.dev/abandoned"], "true");

    // Skipped from the start: untouched (no finalizer, no status), nothing made. Created before
    // "c", which is switched on: once c is Ready, b has been reconciled too.
    create(&client, &switch("b", "off")).await;
    create(&client, &switch("c", "on")).await;
    eventually(10, "c Ready", async || {
        is_ready(&switches.get("c").await.ok()?).then_some(())
    })
    .await;
    let b = switches.get("b").await.unwrap();
    assert!(
        b.metadata.finalizers.is_none() && b.data.get("status").is_none(),
        "a parent the workflow only skips is left untouched: {:?}",
        b.data
    );
    // Switched on, then off: the steps after the gate are skipped, so their objects are
    // released by their policies.
    set_mode(&switches, "b", "on").await;
    eventually(10, "b's ConfigMaps", async || exists("b-pruned").await).await;
    assert!(
        switches
            .get("b")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_some_and(|f| f.contains(&"koreo.dev/cleanup".to_string()))
    );
    set_mode(&switches, "b", "off").await;
    eventually(10, "b-pruned destroyed", async || {
        exists("b-pruned").await.is_none().then_some(())
    })
    .await;
    eventually(10, "b's status to say it is skipped", async || {
        let b = switches.get("b").await.ok()?;
        let conditions = b.data["status"]["conditions"].as_array()?.clone();
        conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["reason"] == "Skip")
            .then_some(())
    })
    .await;
    let kept = eventually(10, "b-kept abandoned", async || {
        let kept = exists("b-kept").await?;
        kept.metadata
            .labels
            .as_ref()?
            .contains_key("koreo.dev/abandoned")
            .then_some(kept)
    })
    .await;
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    let b = switches.get("b").await.unwrap();
    assert!(
        b.data["status"]["state"].get("mode").is_none(),
        "skipped: the state says no more than the steps that ran: {}",
        b.data["status"]
    );

    // On again: the abandoned ConfigMap is taken back.
    set_mode(&switches, "b", "on").await;
    let taken = eventually(10, "b-kept taken back", async || {
        let kept = exists("b-kept").await?;
        let labelled = kept
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("koreo.dev/abandoned"));
        (!labelled).then_some(kept)
    })
    .await;
    let owners = taken.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].name, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_has_one_timer_however_often_it_changes() {
    let (_server, client) = with_definitions(&fixture("gated.koreo")).await;
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(Controller::new(client.clone()).with_reports(reports).run());
    create(&client, &switch("d", "soon")).await;
    let switches: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Switch"),
    );
    // Each change is reconciled, and each of those reconciles asks to look again in 1 s.
    for i in 0..10 {
        merge(
            &switches,
            "d",
            json!({"metadata": {"labels": {"change": i.to_string()}}}),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    while received.try_recv().is_ok() {}
    // Over the next 3 s: one reconcile a second, not one per change.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut count = 0;
    while received.try_recv().is_ok() {
        count += 1;
    }
    assert!((2..=4).contains(&count), "{count} reconciles in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_fails_for_good_instead_of_retrying_every_second() {
    let documents = r#"
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: lost, namespace: default}
spec:
  crdRef: {apiGroup: example.koreo.dev, version: v1, kind: Site}
  steps:
  - label: config
    ref: {kind: ResourceFunction, name: lost-config}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: lost-config, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: lost, namespace: nowhere}
  resource: {data: {a: b}}
"#;
    let (_server, client, mut received) = sites_with(documents).await;
    blog(&client).await;
    let first = eventually(10, "the first reconcile", async || received.try_recv().ok()).await;
    assert_eq!(first.outcome.name(), "PermFail", "{:?}", first.outcome);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut more = 0;
    while received.try_recv().is_ok() {
        more += 1;
    }
    assert_eq!(more, 0, "a PermFail waits for a change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_delay_does_not_stop_the_controller() {
    let documents = r#"
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: slow, namespace: default}
spec:
  crdRef: {apiGroup: example.koreo.dev, version: v1, kind: Site}
  steps:
  - label: wait
    ref: {kind: ValueFunction, name: wait-long}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: wait-long, namespace: default}
spec:
  preconditions:
  - assert: =false
    retry: {message: in three years, delay: 100000000}
  return: {}
"#;
    let (_server, client, mut received) = sites_with(documents).await;
    blog(&client).await;
    let first = eventually(10, "the first reconcile", async || received.try_recv().ok()).await;
    assert_eq!(first.outcome.name(), "Retry");
    // The controller is still there: another parent is reconciled.
    create(
        &client,
        &json!({"apiVersion": "example.koreo.dev/v1", "kind": "Site",
        "metadata": {"name": "shop", "namespace": "default"}, "spec": {}}),
    )
    .await;
    let next = eventually(10, "the next parent", async || received.try_recv().ok()).await;
    assert!(next.parent.ends_with("/shop"), "{}", next.parent);
}
