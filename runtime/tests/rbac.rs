//! `koreo rbac`: the permissions the workflows need, and no more.

use koreo_lang::Workspace;
use koreo_runtime::rbac::{Subject, objects};
use serde_json::{Value as Json, json};

fn subject() -> Subject {
    Subject {
        namespace: "koreo-system".into(),
        service_account: "koreo".into(),
    }
}

fn workspace(paths: &[&str]) -> Workspace {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Workspace::load_paths(&paths.iter().map(|p| root.join(p)).collect::<Vec<_>>())
}

/// The verbs a role grants on `group`/`resource`.
fn verbs(role: &Json, group: &str, resource: &str) -> Vec<String> {
    let mut all: Vec<String> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["apiGroups"][0] == group
                && r["resources"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(resource))
        })
        .flat_map(|r| {
            r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
        })
        .collect();
    all.sort();
    all
}

#[test]
fn cluster_wide_grants_managed_kinds_and_parents() {
    let ws = workspace(&["../examples/hello"]);
    let out = objects(&ws, &[], &subject());
    assert_eq!(out.len(), 2);
    let (role, binding) = (&out[0], &out[1]);
    assert_eq!(role["kind"], "ClusterRole");
    assert_eq!(
        verbs(role, "", "configmaps"),
        ["create", "delete", "get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs(role, "example.koreo.dev", "greetings"),
        ["get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs(role, "example.koreo.dev", "greetings/status"),
        ["get", "patch"]
    );
    assert_eq!(
        verbs(role, "example.koreo.dev", "greetings/finalizers"),
        ["update"]
    );
    assert_eq!(
        verbs(role, "", "secrets"),
        Vec::<String>::new(),
        "nothing else"
    );
    assert_eq!(binding["kind"], "ClusterRoleBinding");
    assert_eq!(
        binding["subjects"][0],
        json!({"kind": "ServiceAccount", "name": "koreo", "namespace": "koreo-system"})
    );
}

#[test]
fn read_only_functions_only_read() {
    let ws = Workspace::load_str(
        "read.koreo",
        r#"
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: read-secret, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: Secret, name: =inputs.name, namespace: default, readonly: true}
  resource: {}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: label-namespace, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: Namespace, name: =inputs.name, namespaced: false}
  resource: {metadata: {labels: {team: =inputs.team}}}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: policy, namespace: default}
spec:
  apiConfig: {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, name: =inputs.name, namespace: =inputs.namespace}
  resource: {spec: {podSelector: {}}}
"#,
    );
    assert!(
        ws.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        ws.diagnostics
    );
    let out = objects(&ws, &["team-a".into()], &subject());
    let kinds: Vec<&str> = out.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    );
    let role = &out[0];
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(verbs(role, "", "secrets"), ["get", "list", "watch"]);
    assert_eq!(
        verbs(role, "networking.k8s.io", "networkpolicies"),
        ["create", "delete", "get", "list", "patch", "watch"]
    );
    assert!(
        verbs(role, "", "namespaces").is_empty(),
        "a Role cannot grant a cluster-scoped kind"
    );
    assert_eq!(
        verbs(&out[2], "", "namespaces"),
        ["create", "delete", "get", "list", "patch", "watch"]
    );
}

#[test]
fn a_cluster_scoped_parent_kind_goes_into_the_cluster_role() {
    let ws = Workspace::load_str(
        "cluster.koreo",
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: tenants.example.dev}
spec:
  group: example.dev
  scope: Cluster
  names: {kind: Tenant, plural: tenantz}
  versions: [{name: v1, served: true, storage: true}]
---
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: tenant, namespace: default}
spec:
  crdRef: {apiGroup: example.dev, version: v1, kind: Tenant}
  steps:
  - label: hello
    ref: {kind: ValueFunction, name: hello}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: hello, namespace: default}
spec:
  return: {a: 1}
"#,
    );
    let out = objects(&ws, &["team-a".into()], &subject());
    let role = out.iter().find(|o| o["kind"] == "Role").unwrap();
    assert!(verbs(role, "example.dev", "tenantz").is_empty(), "{role}");
    let cluster_role = out.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    assert_eq!(
        verbs(cluster_role, "example.dev", "tenantz"),
        ["get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs(cluster_role, "example.dev", "tenantz/status"),
        ["get", "patch"]
    );
}

#[test]
fn a_decorating_function_gets_read_and_patch_only() {
    let ws = workspace(&["tests/fixtures/e2e-decorate"]);
    let out = objects(&ws, &[], &subject());
    assert_eq!(
        verbs(&out[0], "", "configmaps"),
        ["get", "list", "patch", "watch"]
    );
}
