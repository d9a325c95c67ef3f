//! The kinds the server knows: built-in ones and those CustomResourceDefinitions add.

use serde_json::Value as Json;

/// A column of `kubectl get`, as a CRD declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub ty: String,
    pub json_path: String,
    pub priority: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// `""` for the core group.
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    /// Names that group kinds for `kubectl get` (`all`, `koreo`).
    pub categories: Vec<String>,
    /// The columns `kubectl get` shows (a CRD's `additionalPrinterColumns`).
    pub columns: Vec<PrinterColumn>,
    pub namespaced: bool,
    /// Whether `status` is a subresource (written only through `/status`).
    pub status: bool,
    /// The CRD that defines it, if any.
    pub crd: Option<String>,
}

impl ResourceType {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.group == group && self.versions.iter().any(|v| v == version)
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    short: &[&str],
    namespaced: bool,
    status: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        versions: vec![version.into()],
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        // What `kubectl get all` lists, of the kinds served here.
        categories: match plural {
            "services" | "deployments" | "horizontalpodautoscalers" => vec!["all".into()],
            _ => Vec::new(),
        },
        // `kubectl get events` shows what happened, not only names.
        columns: match (group, plural) {
            ("", "events") => [
                ("Last Seen", "date", ".lastTimestamp"),
                ("Type", "string", ".type"),
                ("Reason", "string", ".reason"),
                ("Object", "string", ".involvedObject.name"),
                ("Message", "string", ".message"),
            ]
            .iter()
            .map(|(name, ty, path)| PrinterColumn {
                name: name.to_string(),
                ty: ty.to_string(),
                json_path: path.to_string(),
                priority: 0,
            })
            .collect(),
            _ => Vec::new(),
        },
        namespaced,
        status,
        crd: None,
    }
}

/// The built-in kinds koreo and its examples use.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin("", "v1", "Namespace", "namespaces", &["ns"], false, true),
        builtin("", "v1", "ConfigMap", "configmaps", &["cm"], true, false),
        builtin("", "v1", "Secret", "secrets", &[], true, false),
        builtin("", "v1", "Service", "services", &["svc"], true, true),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            &["sa"],
            true,
            false,
        ),
        builtin("", "v1", "Event", "events", &["ev"], true, false),
        builtin(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            &["quota"],
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            &["deploy"],
            true,
            true,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            &[],
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            &[],
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            &[],
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            &[],
            true,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            &["ev"],
            true,
            false,
        ),
        builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            &["hpa"],
            true,
            true,
        ),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            &["pdb"],
            true,
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            &["netpol"],
            true,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            &["crd", "crds"],
            false,
            true,
        ),
    ]
}

/// The kind a CustomResourceDefinition declares, or why it cannot be served.
pub fn from_crd(crd: &Json) -> Result<ResourceType, String> {
    let spec = &crd["spec"];
    let text = |v: &Json, what: &str| -> Result<String, String> {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("spec.{what}: Required value"))
    };
    let group = text(&spec["group"], "group")?;
    let names = &spec["names"];
    let kind = text(&names["kind"], "names.kind")?;
    let plural = text(&names["plural"], "names.plural")?;
    let expected_name = format!("{plural}.{group}");
    if crd["metadata"]["name"].as_str() != Some(expected_name.as_str()) {
        return Err(format!(
            "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({expected_name})"
        ));
    }
    let versions: Vec<&Json> = spec["versions"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|v| v["served"].as_bool() != Some(false))
                .collect()
        })
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let mut names_ordered: Vec<String> = Vec::new();
    // The storage version first: clients prefer the first served version.
    for v in versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .chain(versions.iter())
    {
        if let Some(name) = v["name"].as_str()
            && !names_ordered.iter().any(|n| n == name)
        {
            names_ordered.push(name.to_string());
        }
    }
    Ok(ResourceType {
        group,
        versions: names_ordered,
        singular: names["singular"]
            .as_str()
            .map_or_else(|| kind.to_lowercase(), str::to_string),
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        // The storage version's columns (kubectl asks for the preferred one, which it is).
        columns: versions
            .iter()
            .find(|v| v["storage"].as_bool() == Some(true))
            .or(versions.first())
            .and_then(|v| v["additionalPrinterColumns"].as_array())
            .map(|columns| {
                columns
                    .iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        ty: c["type"].as_str().unwrap_or("string").to_string(),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        status: versions
            .iter()
            .any(|v| v["subresources"]["status"].is_object()),
        crd: crd["metadata"]["name"].as_str().map(str::to_string),
        kind,
        plural,
    })
}

fn strings(list: &Json) -> Vec<String> {
    list.as_array()
        .map(|s| {
            s.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crd_declares_its_kind() {
        let crd = json!({
            "metadata": {"name": "webapps.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "WebApp", "plural": "webapps", "shortNames": ["wa"]},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}
                ]
            }
        });
        let t = from_crd(&crd).unwrap();
        assert_eq!(t.versions, ["v1", "v1alpha1"]);
        assert!(t.namespaced && t.status);
        assert_eq!(t.short_names, ["wa"]);
        assert_eq!(t.singular, "webapp");
        let mut wrong = crd.clone();
        wrong["metadata"]["name"] = json!("other");
        assert!(from_crd(&wrong).unwrap_err().contains("metadata.name"));
    }
}
