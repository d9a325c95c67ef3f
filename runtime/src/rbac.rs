//! The least-privilege permissions that a set of workflows needs: the kinds their
//! ResourceFunctions manage or read, and the parent kinds that trigger them.

use std::collections::{BTreeMap, BTreeSet};

use koreo_lang::Workspace;
use koreo_lang::model::Definition;
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value as Json, json};

const READ: &[&str] = &["get", "list", "watch"];
/// koreo writes with create, patch (server-side apply) and delete; it never replaces (PUT).
const MANAGE: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
/// A function that cannot create decorates what others made: it reads and patches, no more.
const DECORATE: &[&str] = &["get", "list", "watch", "patch"];
/// Parents: read, and patches of the finalizer and the managed-resources annotation.
const PARENT: &[&str] = &["get", "list", "watch", "patch"];

/// Core kinds that are not namespaced: a Role cannot grant them.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// Who the rules are granted to.
pub struct Subject {
    pub namespace: String,
    pub service_account: String,
}

/// (group, resource) -> verbs; and whether the kind is cluster-scoped.
type Needs = BTreeMap<(String, String), (BTreeSet<&'static str>, bool)>;

fn needs(ws: &Workspace) -> Needs {
    let mut needs = Needs::new();
    let mut add = |api_version: &str,
                   kind: &str,
                   plural: Option<&str>,
                   cluster: bool,
                   verbs: &[&'static str]| {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = match plural {
            Some(p) => p.to_string(),
            None => ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural,
        };
        let entry = needs
            .entry((group.to_string(), resource))
            .or_insert_with(|| (BTreeSet::new(), false));
        entry.0.extend(verbs);
        entry.1 |= cluster || CLUSTER_SCOPED.contains(&kind);
    };
    for definition in &ws.definitions {
        match definition {
            Definition::ResourceFunction(f) => {
                let c = &f.api_config;
                let verbs = if c.readonly {
                    READ
                } else if crate::ownership::decorates(f) && !c.delete_if_exists {
                    DECORATE
                } else {
                    MANAGE
                };
                add(
                    &c.api_version,
                    &c.kind,
                    c.plural.as_deref(),
                    !c.namespaced,
                    verbs,
                );
            }
            Definition::Workflow(w) => {
                let Some(crd) = &w.crd_ref else { continue };
                let api_version = crd.api_version();
                // The CRD among the files, when there is one, says the plural and the scope.
                let defined = defined_crd(ws, &crd.api_group, &crd.kind);
                let plural = defined
                    .and_then(|spec| spec["names"]["plural"].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        ApiResource::from_gvk(&GroupVersionKind::gvk(
                            &crd.api_group,
                            &crd.version,
                            &crd.kind,
                        ))
                        .plural
                    });
                let cluster = defined.is_some_and(|spec| spec["scope"] == "Cluster");
                add(&api_version, &crd.kind, Some(&plural), cluster, PARENT);
                // Status is written through its subresource; owner references that block
                // deletion need the finalizers subresource.
                add(
                    &api_version,
                    &crd.kind,
                    Some(&format!("{plural}/status")),
                    cluster,
                    &["get", "patch"],
                );
                add(
                    &api_version,
                    &crd.kind,
                    Some(&format!("{plural}/finalizers")),
                    cluster,
                    &["update"],
                );
            }
            _ => {}
        }
    }
    needs
}

/// The spec of the CRD among the loaded files that defines this kind.
fn defined_crd<'w>(ws: &'w Workspace, group: &str, kind: &str) -> Option<&'w Json> {
    ws.objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| &o.value["spec"])
        .find(|spec| spec["group"] == group && spec["names"]["kind"] == kind)
}

fn rules<'a>(
    needs: impl Iterator<Item = (&'a (String, String), &'a BTreeSet<&'static str>)>,
) -> Vec<Json> {
    // One rule per group and verb set, listing its resources.
    let mut grouped: BTreeMap<(String, Vec<&str>), Vec<String>> = BTreeMap::new();
    for ((group, resource), verbs) in needs {
        grouped
            .entry((group.clone(), verbs.iter().copied().collect()))
            .or_default()
            .push(resource.clone());
    }
    grouped
        .into_iter()
        .map(|((group, verbs), resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
        })
        .collect()
}

fn binding(
    kind: &str,
    role_kind: &str,
    name: &str,
    namespace: Option<&str>,
    subject: &Subject,
) -> Json {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": subject.service_account, "namespace": subject.namespace}],
    })
}

fn role(kind: &str, name: &str, namespace: Option<&str>, rules: Vec<Json>) -> Json {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata, "rules": rules})
}

/// The cluster-scoped resources the workflows in `ws` need (`namespaces`, `rbac.authorization.k8s.io/clusterroles`):
/// rules no Role can hold.
pub fn cluster_scoped(ws: &Workspace) -> Vec<String> {
    needs(ws)
        .into_iter()
        .filter(|((_, resource), (_, cluster))| *cluster && !resource.contains('/'))
        .map(|((group, resource), _)| match group.as_str() {
            "" => resource,
            group => format!("{group}/{resource}"),
        })
        .collect()
}

/// The RBAC objects granting `subject` what the workflows in `ws` need: a ClusterRole and its
/// binding when `namespaces` is empty (koreo watching all namespaces); otherwise a Role and
/// RoleBinding in each namespace, plus a ClusterRole for cluster-scoped kinds, if any.
pub fn objects(ws: &Workspace, namespaces: &[String], subject: &Subject) -> Vec<Json> {
    const NAME: &str = "koreo-workflows";
    let needs = needs(ws);
    if namespaces.is_empty() {
        let all = rules(needs.iter().map(|(k, (verbs, _))| (k, verbs)));
        return vec![
            role("ClusterRole", NAME, None, all),
            binding("ClusterRoleBinding", "ClusterRole", NAME, None, subject),
        ];
    }
    let namespaced = rules(
        needs
            .iter()
            .filter(|(_, (_, c))| !c)
            .map(|(k, (v, _))| (k, v)),
    );
    let cluster = rules(
        needs
            .iter()
            .filter(|(_, (_, c))| *c)
            .map(|(k, (v, _))| (k, v)),
    );
    let mut out = Vec::new();
    for ns in namespaces {
        out.push(role("Role", NAME, Some(ns), namespaced.clone()));
        out.push(binding("RoleBinding", "Role", NAME, Some(ns), subject));
    }
    if !cluster.is_empty() {
        out.push(role("ClusterRole", NAME, None, cluster));
        out.push(binding(
            "ClusterRoleBinding",
            "ClusterRole",
            NAME,
            None,
            subject,
        ));
    }
    out
}
