//! The controller applies `readonly`, `deleteIfExists` and `update: recreate` as Koreo defines
//! them, through `kube::Client` against the local API server.

mod support;
use support::{create, eventually, fixture, is_ready, resource, with_definitions};

use k8s_openapi::api::core::v1::ConfigMap;
use koreo_runtime::controller::Controller;
use koreo_runtime::engine::PARENT_UID;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

fn config_map(name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_waits_delete_if_exists_removes_recreate_replaces() {
    let (_server, client) = with_definitions(&fixture("policies.koreo")).await;
    tokio::spawn(Controller::new(client.clone()).run());
    create(
        &client,
        &json!({"apiVersion": "example.koreo.dev/v1", "kind": "Site",
        "metadata": {"name": "blog", "namespace": "default"}, "spec": {"color": "blue"}}),
    )
    .await;
    let sites: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Site"),
    );
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
    sites
        .patch(
            "blog",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "green"}})),
        )
        .await
        .unwrap();
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
    create(
        &client,
        &json!({"apiVersion": "example.koreo.dev/v1", "kind": "Site",
        "metadata": {"name": "blog", "namespace": "default"}, "spec": {"color": "blue"}}),
    )
    .await;
    let sites: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Site"),
    );
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
