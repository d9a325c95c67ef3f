//! The cluster state machine, one API behaviour per test.

use koreo_testkube::selector::Selector;
use koreo_testkube::store::{Patch, Propagation, Store, Target};
use serde_json::{Value as Json, json};

fn target<'a>(
    s: &Store,
    group: &str,
    plural: &str,
    version: &'a str,
    ns: Option<&'a str>,
) -> Target<'a> {
    Target {
        kind: s.kind_index(group, plural).expect("known kind"),
        version,
        namespace: ns,
    }
}

fn cm(name: &str, data: Json) -> Json {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": name}}, "data": data})
}

const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "webapps.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"kind": "WebApp", "plural": "webapps", "singular": "webapp"},
    "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
}"#;

fn with_crd() -> Store {
    let mut s = Store::new();
    let t = target(
        &s,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "v1",
        None,
    );
    s.create(&t, serde_json::from_str(CRD).unwrap(), "test")
        .unwrap();
    s
}

#[test]
fn create_sets_identity_and_versions() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let created = s.create(&t, cm("a", json!({"k": "v"})), "me").unwrap();
    let meta = &created["metadata"];
    assert!(meta["uid"].as_str().unwrap().len() > 10);
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["namespace"], "default");
    assert!(meta["creationTimestamp"].is_string());
    assert_eq!(meta["resourceVersion"], s.resource_version().to_string());
    assert_eq!(meta["managedFields"][0]["manager"], "me");
    assert_eq!(s.get(&t, "a").unwrap()["data"]["k"], "v");
}

#[test]
fn errors_carry_kubernetes_status_codes() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    s.create(&t, cm("a", json!({})), "me").unwrap();
    assert_eq!(
        s.create(&t, cm("a", json!({})), "me").unwrap_err().code,
        409
    );
    assert_eq!(s.get(&t, "nope").unwrap_err().code, 404);
    let err = s.create(&t, json!({"metadata": {}}), "me").unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    let missing_ns = target(&s, "", "configmaps", "v1", Some("nowhere"));
    assert_eq!(
        s.create(&missing_ns, cm("a", json!({})), "me")
            .unwrap_err()
            .code,
        404
    );
    let status = err.status();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 422);
}

#[test]
fn list_filters_by_namespace_and_labels() {
    let mut s = Store::new();
    let ns = target(&s, "", "namespaces", "v1", None);
    s.create(&ns, json!({"metadata": {"name": "other"}}), "me")
        .unwrap();
    for (space, name) in [("default", "a"), ("default", "b"), ("other", "a")] {
        let t = target(&s, "", "configmaps", "v1", Some(space));
        s.create(&t, cm(name, json!({})), "me").unwrap();
    }
    let all = target(&s, "", "configmaps", "v1", None);
    assert_eq!(s.list(&all, &Selector::default()).unwrap().0.len(), 3);
    let only_a = Selector::parse("app=a").unwrap();
    assert_eq!(s.list(&all, &only_a).unwrap().0.len(), 2);
    let default = target(&s, "", "configmaps", "v1", Some("default"));
    assert_eq!(s.list(&default, &only_a).unwrap().0.len(), 1);
}

#[test]
fn replace_with_a_stale_version_conflicts() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let created = s.create(&t, cm("a", json!({"k": "1"})), "me").unwrap();
    let mut update = created.clone();
    update["data"]["k"] = json!("2");
    s.replace(&t, "a", update.clone(), "me", false).unwrap();
    // `update` still carries the old resourceVersion.
    assert_eq!(
        s.replace(&t, "a", update, "me", false).unwrap_err().code,
        409
    );
}

#[test]
fn merge_and_json_patches() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    s.create(&t, cm("a", json!({"k": "1", "gone": "x"})), "me")
        .unwrap();
    let patched = s
        .patch(
            &t,
            "a",
            Patch::Merge,
            json!({"data": {"k": "2", "gone": null}}),
            "me",
            false,
        )
        .unwrap();
    assert_eq!(patched["data"], json!({"k": "2"}));
    let ops = json!([{"op": "add", "path": "/data/new", "value": "3"}, {"op": "remove", "path": "/data/k"}]);
    let patched = s.patch(&t, "a", Patch::Json, ops, "me", false).unwrap();
    assert_eq!(patched["data"], json!({"new": "3"}));
    let bad = json!([{"op": "remove", "path": "/data/missing"}]);
    assert_eq!(
        s.patch(&t, "a", Patch::Json, bad, "me", false)
            .unwrap_err()
            .code,
        422
    );
    // As in Kubernetes, testing a missing path against null passes (finalizer helpers rely on it).
    let guarded = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]);
    let patched = s
        .patch(&t, "a", Patch::Json, guarded.clone(), "me", false)
        .unwrap();
    assert_eq!(patched["metadata"]["finalizers"], json!(["x"]));
    assert_eq!(
        s.patch(&t, "a", Patch::Json, guarded, "me", false)
            .unwrap_err()
            .code,
        422
    );
}

#[test]
fn field_selectors_pick_by_name() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    s.create(&t, cm("a", json!({})), "me").unwrap();
    s.create(&t, cm("b", json!({})), "me").unwrap();
    let by_name = Selector::parse_fields("metadata.name=b").unwrap();
    let (items, _) = s.list_matching(&t, &Selector::default(), &by_name).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "b");
}

#[test]
fn unchanged_writes_do_not_bump_the_version() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    s.create(&t, cm("a", json!({"k": "1"})), "me").unwrap();
    let before = s.resource_version();
    s.patch(
        &t,
        "a",
        Patch::Merge,
        json!({"data": {"k": "1"}}),
        "me",
        false,
    )
    .unwrap();
    assert_eq!(s.resource_version(), before);
}

#[test]
fn crds_add_kinds_with_a_status_subresource() {
    let mut s = with_crd();
    let t = target(&s, "example.com", "webapps", "v1", Some("default"));
    let created = s
        .create(
            &t,
            json!({"metadata": {"name": "w"}, "spec": {"replicas": 1}, "status": {"x": 1}}),
            "me",
        )
        .unwrap();
    assert!(
        created.get("status").is_none(),
        "status is set only through /status"
    );
    // The main endpoint ignores status and bumps generation on spec changes.
    let p = s
        .patch(
            &t,
            "w",
            Patch::Merge,
            json!({"spec": {"replicas": 2}, "status": {"x": 2}}),
            "me",
            false,
        )
        .unwrap();
    assert_eq!(p["metadata"]["generation"], 2);
    assert!(p.get("status").is_none());
    // The status endpoint changes only status, and not generation.
    let p = s
        .patch(
            &t,
            "w",
            Patch::Merge,
            json!({"spec": {"replicas": 9}, "status": {"ready": true}}),
            "me",
            true,
        )
        .unwrap();
    assert_eq!(p["status"], json!({"ready": true}));
    assert_eq!(p["spec"]["replicas"], 2);
    assert_eq!(p["metadata"]["generation"], 2);
}

#[test]
fn server_side_apply_owns_removes_and_conflicts() {
    let mut s = with_crd();
    let t = target(&s, "example.com", "webapps", "v1", Some("default"));
    let apply = |spec: Json| json!({"apiVersion": "example.com/v1", "kind": "WebApp", "metadata": {"name": "w"}, "spec": spec});
    s.patch(
        &t,
        "w",
        Patch::Apply { force: false },
        apply(json!({"a": 1, "b": 2})),
        "koreo",
        false,
    )
    .unwrap();
    // Another writer sets a field of its own.
    s.patch(
        &t,
        "w",
        Patch::Merge,
        json!({"spec": {"other": true}}),
        "kubectl",
        false,
    )
    .unwrap();
    // Koreo stops applying `b`: it goes; `other` belongs to someone else and stays.
    let o = s
        .patch(
            &t,
            "w",
            Patch::Apply { force: false },
            apply(json!({"a": 1})),
            "koreo",
            false,
        )
        .unwrap();
    assert_eq!(o["spec"], json!({"a": 1, "other": true}));
    // Changing a field another manager owns conflicts, unless forced.
    let err = s
        .patch(
            &t,
            "w",
            Patch::Apply { force: false },
            apply(json!({"a": 1, "other": false})),
            "koreo",
            false,
        )
        .unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("conflict with \"kubectl\""),
        "{}",
        err.message
    );
    let o = s
        .patch(
            &t,
            "w",
            Patch::Apply { force: true },
            apply(json!({"a": 1, "other": false})),
            "koreo",
            false,
        )
        .unwrap();
    assert_eq!(o["spec"]["other"], false);
    let managers: Vec<&str> = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"koreo"));
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let mut o = cm("a", json!({}));
    o["metadata"]["finalizers"] = json!(["koreo.dev/cleanup"]);
    s.create(&t, o, "me").unwrap();
    let (held, gone) = s.delete(&t, "a", Propagation::Background, None).unwrap();
    assert!(!gone);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert!(s.get(&t, "a").is_ok());
    s.patch(
        &t,
        "a",
        Patch::Merge,
        json!({"metadata": {"finalizers": null}}),
        "me",
        false,
    )
    .unwrap();
    assert_eq!(s.get(&t, "a").unwrap_err().code, 404);
}

#[test]
fn owner_references_are_garbage_collected() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let owner = s.create(&t, cm("owner", json!({})), "me").unwrap();
    let uid = owner["metadata"]["uid"].clone();
    for name in ["child1", "child2"] {
        let mut c = cm(name, json!({}));
        c["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]);
        s.create(&t, c, "me").unwrap();
    }
    s.delete(&t, "owner", Propagation::Background, None)
        .unwrap();
    assert_eq!(s.get(&t, "child1").unwrap_err().code, 404);
    // Orphan: dependents stay, without the reference.
    let owner = s.create(&t, cm("owner2", json!({})), "me").unwrap();
    let mut c = cm("kept", json!({}));
    c["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner["metadata"]["uid"]}]);
    s.create(&t, c, "me").unwrap();
    s.delete(&t, "owner2", Propagation::Orphan, None).unwrap();
    assert_eq!(
        s.get(&t, "kept").unwrap()["metadata"]["ownerReferences"],
        json!([])
    );
}

#[test]
fn events_resume_from_a_version_or_are_gone() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let start = s.resource_version();
    s.create(&t, cm("a", json!({})), "me").unwrap();
    s.patch(
        &t,
        "a",
        Patch::Merge,
        json!({"data": {"x": "1"}}),
        "me",
        false,
    )
    .unwrap();
    s.delete(&t, "a", Propagation::Background, None).unwrap();
    let kinds: Vec<&str> = s
        .events_since(start, "", "configmaps", Some("default"))
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    s.expire_resource_versions();
    assert_eq!(
        s.events_since(start, "", "configmaps", None)
            .unwrap_err()
            .code,
        410
    );
}

#[test]
fn foreground_deletion_removes_dependents_first() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let owner = s.create(&t, cm("owner", json!({})), "me").unwrap();
    let mut c = cm("child", json!({}));
    c["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]);
    s.create(&t, c, "me").unwrap();
    let (_, gone) = s
        .delete(&t, "owner", Propagation::Foreground, None)
        .unwrap();
    assert!(gone);
    assert_eq!(s.get(&t, "child").unwrap_err().code, 404);
}

#[test]
fn deleting_a_crd_or_a_namespace_removes_what_it_holds() {
    let mut s = with_crd();
    let ns = target(&s, "", "namespaces", "v1", None);
    s.create(&ns, json!({"metadata": {"name": "team"}}), "me")
        .unwrap();
    let apps = target(&s, "example.com", "webapps", "v1", Some("team"));
    s.create(&apps, json!({"metadata": {"name": "w"}}), "me")
        .unwrap();
    let cms = target(&s, "", "configmaps", "v1", Some("team"));
    s.create(&cms, cm("c", json!({})), "me").unwrap();

    s.delete(&ns, "team", Propagation::Background, None)
        .unwrap();
    assert_eq!(s.get(&cms, "c").unwrap_err().code, 404);

    let crds = target(
        &s,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "v1",
        None,
    );
    s.delete(&crds, "webapps.example.com", Propagation::Background, None)
        .unwrap();
    assert!(
        s.kind_index("example.com", "webapps").is_none(),
        "the kind is no longer served"
    );
}

#[test]
fn uid_preconditions_guard_deletion() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    s.create(&t, cm("a", json!({})), "me").unwrap();
    assert_eq!(
        s.delete(&t, "a", Propagation::Background, Some("not-its-uid"))
            .unwrap_err()
            .code,
        409
    );
    assert!(s.get(&t, "a").is_ok());
}

#[test]
fn server_side_apply_on_the_status_subresource() {
    let mut s = with_crd();
    let t = target(&s, "example.com", "webapps", "v1", Some("default"));
    s.create(
        &t,
        json!({"metadata": {"name": "w"}, "spec": {"a": 1}}),
        "me",
    )
    .unwrap();
    let body = |status: Json| json!({"apiVersion": "example.com/v1", "kind": "WebApp", "metadata": {"name": "w"}, "spec": {"a": 99}, "status": status});
    let o = s
        .patch(
            &t,
            "w",
            Patch::Apply { force: false },
            body(json!({"ready": true, "phase": "Up"})),
            "koreo",
            true,
        )
        .unwrap();
    assert_eq!(o["status"], json!({"ready": true, "phase": "Up"}));
    assert_eq!(o["spec"]["a"], 1, "a status apply leaves spec alone");
    let o = s
        .patch(
            &t,
            "w",
            Patch::Apply { force: false },
            body(json!({"ready": false})),
            "koreo",
            true,
        )
        .unwrap();
    assert_eq!(
        o["status"],
        json!({"ready": false}),
        "fields no longer applied are removed"
    );
}

#[test]
fn a_deleted_namespace_terminates_then_goes_when_empty() {
    let mut s = Store::new();
    let ns = target(&s, "", "namespaces", "v1", None);
    s.create(&ns, json!({"metadata": {"name": "team"}}), "me")
        .unwrap();
    let t = target(&s, "", "configmaps", "v1", Some("team"));
    s.create(&t, cm("plain", json!({})), "me").unwrap();
    let mut held = cm("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.create(&t, held, "me").unwrap();

    let (namespace, gone) = s
        .delete(&ns, "team", Propagation::Background, None)
        .unwrap();
    assert!(!gone);
    assert_eq!(namespace["status"]["phase"], "Terminating");
    assert_eq!(s.get(&t, "plain").unwrap_err().code, 404);
    assert!(s.get(&t, "held").unwrap()["metadata"]["deletionTimestamp"].is_string());
    let refused = s.create(&t, cm("new", json!({})), "me").unwrap_err();
    assert_eq!((refused.code, refused.reason), (403, "Forbidden"));

    let release = json!({"metadata": {"finalizers": null}});
    s.patch(&t, "held", Patch::Merge, release, "me", false)
        .unwrap();
    assert_eq!(s.get(&ns, "team").unwrap_err().code, 404, "empty: gone");
}

#[test]
fn built_in_kinds_get_the_api_servers_defaults_and_checks() {
    let mut s = Store::new();
    let services = target(&s, "", "services", "v1", Some("default"));
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80}]}});
    let stored = s.create(&services, service, "me").unwrap();
    assert_eq!(
        (&stored["spec"]["type"], &stored["spec"]["sessionAffinity"]),
        (&json!("ClusterIP"), &json!("None"))
    );
    assert_eq!(
        stored["spec"]["ports"],
        json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}])
    );
    let twice =
        json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}});
    let err = s
        .patch(&services, "web", Patch::Merge, twice, "me", false)
        .unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));

    let secrets = target(&s, "", "secrets", "v1", Some("default"));
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"password": "hunter2"}});
    let stored = s.create(&secrets, secret, "me").unwrap();
    assert_eq!(stored["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(stored["type"], "Opaque");
    assert!(stored.get("stringData").is_none());
}

#[test]
fn events_of_either_group_list_through_core_v1() {
    let mut s = Store::new();
    let modern = target(&s, "events.k8s.io", "events", "v1", Some("default"));
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "ada.1"}, "reason": "Created", "note": "Created ConfigMap:default:x",
        "type": "Normal", "action": "Create", "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Greeting", "name": "ada"}, "reportingController": "koreo",
        "series": {"count": 3, "lastObservedTime": "2026-01-01T00:05:00.000000Z"}});
    s.create(&modern, event, "koreo").unwrap();
    let core = target(&s, "", "events", "v1", Some("default"));
    let (items, _) = s
        .list_matching(&core, &Selector::default(), &Selector::default())
        .unwrap();
    assert_eq!(items.len(), 1);
    let seen = &items[0];
    assert_eq!(seen["apiVersion"], "v1");
    assert_eq!(seen["message"], "Created ConfigMap:default:x");
    assert_eq!(seen["involvedObject"]["name"], "ada");
    assert_eq!(seen["count"], 3);
    assert_eq!(seen["lastTimestamp"], "2026-01-01T00:05:00.000000Z");
}

#[test]
fn a_generated_name_prefix_must_make_a_name() {
    let mut s = Store::new();
    let t = target(&s, "", "configmaps", "v1", Some("default"));
    let with_prefix = |prefix: &str| json!({"metadata": {"generateName": prefix}});
    assert!(s.create(&t, with_prefix("ada-"), "me").is_ok());
    let err = s.create(&t, with_prefix("ada."), "me").unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
}
