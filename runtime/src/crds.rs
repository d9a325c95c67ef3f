//! CRDs for the Koreo kinds, as `koreo dev` and the tests install them: any spec, with a
//! status subresource. (Generated, validating CRDs replace these when `crds/` lands.)

use serde_json::{Value as Json, json};

pub fn koreo_crd(kind: &str) -> Json {
    let plural = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.koreo.dev")},
        "spec": {
            "group": "koreo.dev",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}
