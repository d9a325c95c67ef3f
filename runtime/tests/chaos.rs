//! The controller under random faults: 5 % of requests fail, writes land but answer an error,
//! watches are cut and the controller restarts, while parents are created, changed and deleted.
//! Once the faults stop, everything converges: nothing lost, nothing duplicated, nothing stuck.

use std::time::Duration;

mod support;
use support::{documents, eventually, is_ready, resource, with_definitions};

use k8s_openapi::api::core::v1::ConfigMap;
use koreo_runtime::controller::Controller;
use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::json;

const PARENTS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_random_faults_everything_converges_and_nothing_is_lost_or_duplicated() {
    let (server, client) =
        with_definitions(&[documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat())
            .await;
    let greetings: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Greeting"),
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let name = |i: usize| format!("g{i}");
    // Every request, the controller's and the test's, may fail: the test's own retry until done.
    server.fail_randomly(0.05, 7);
    let mut controller = tokio::spawn(Controller::new(client.clone()).run());
    for i in 0..PARENTS {
        let parent = json!({"apiVersion": "example.koreo.dev/v1", "kind": "Greeting",
            "metadata": {"name": name(i), "namespace": "default"},
            "spec": {"name": format!("N{i}"), "language": "en"}});
        eventually(10, "a parent created", async || {
            let created = greetings
                .create(
                    &Default::default(),
                    &serde_json::from_value(parent.clone()).ok()?,
                )
                .await;
            match created {
                Ok(_) => Some(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Some(()), // it landed before
                Err(_) => None,
            }
        })
        .await;
    }
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.drop_watches();
        if round % 2 == 1 {
            // A restart: the old controller stops where it is, a new one starts from scratch.
            controller.abort();
            controller = tokio::spawn(Controller::new(client.clone()).run());
        }
        let i = round * 3;
        eventually(10, "a parent changed", async || {
            let patch = json!({"spec": {"language": "de"}});
            greetings
                .patch(
                    &name(i),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(patch),
                )
                .await
                .ok()
        })
        .await;
        eventually(10, "a parent deleted", async || {
            match greetings
                .delete(&name(i + 1), &DeleteParams::default())
                .await
            {
                Ok(_) => Some(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
                Err(_) => None,
            }
        })
        .await;
    }
    let (failed, lost_answers) = server.stop_failing();
    assert!(
        failed > 0 && lost_answers > 0,
        "faults injected: {failed} failed requests, {lost_answers} writes that answered an error"
    );
    let deleted: Vec<String> = (0..6).map(|round| name(round * 3 + 1)).collect();
    let changed: Vec<String> = (0..6).map(|round| name(round * 3)).collect();
    eventually(
        60,
        "every parent Ready, every deleted one gone",
        async || {
            let parents = greetings.list(&Default::default()).await.ok()?.items;
            let names: Vec<String> = parents
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            let all_ready = parents.iter().all(is_ready);
            let none_deleted = deleted.iter().all(|d| !names.contains(d));
            (all_ready && none_deleted && names.len() == PARENTS - deleted.len()).then_some(())
        },
    )
    .await;
    eventually(30, "one ConfigMap per parent, as it says", async || {
        let maps = configmaps.list(&Default::default()).await.ok()?.items;
        let of = |parent: &str| {
            maps.iter()
                .find(|m| m.metadata.name.as_deref() == Some(&format!("{parent}-greeting")))
        };
        for i in 0..PARENTS {
            let parent = name(i);
            let map = of(&parent);
            if deleted.contains(&parent) {
                // `abandon` (hello's delete policy): kept, labelled, no longer owned
                if let Some(map) = map {
                    let labels = map.metadata.labels.clone().unwrap_or_default();
                    let owned = map
                        .metadata
                        .owner_references
                        .as_ref()
                        .is_some_and(|o| !o.is_empty());
                    if labels.get("koreo.dev/abandoned").map(String::as_str) != Some("true")
                        || owned
                    {
                        return None;
                    }
                }
                continue;
            }
            let word = if changed.contains(&parent) {
                "Hallo"
            } else {
                "Hello"
            };
            let greeting = map?.data.as_ref()?.get("greeting")?;
            if greeting != &format!("{word}, N{i}!") {
                return None;
            }
        }
        Some(())
    })
    .await;
    // No write loop left behind: late retries (an Event whose create failed) may land, then
    // writes stop for good.
    let mut last = support::writes(&server);
    eventually(20, "writes to stop", async || {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = support::writes(&server);
        let quiet = now == last;
        last = now;
        quiet.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(support::writes(&server), last, "writes once converged");
    controller.abort();
}
