//! Definitions: listed from the cluster until the API server answers, decoded into a
//! Workspace, and each one's validity written to its status.

use super::*;

impl Controller {
    /// Every Koreo definition in the watched namespaces, as one workspace.
    pub(super) async fn load_definitions(&self) -> Workspace {
        let mut ws = Workspace::keeping_documents();
        // Built-in kinds are not typed here: the bundled schemas are of one Kubernetes
        // version, and this cluster may run another (`koreo check` is where to type them).
        ws.kube_bundle = Some(Default::default());
        let mut statuses = Vec::new();
        for kind in koreo_lang::model::KINDS {
            for api in self.apis(&koreo_resource(kind), true) {
                let Some(list) = list_until_answered(&api, kind).await else {
                    continue;
                };
                for object in list.items {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    let ns = object.metadata.namespace.clone().unwrap_or_default();
                    let mut value = serde_json::to_value(&object).unwrap_or(Json::Null);
                    if let Some(meta) = value["metadata"].as_object_mut() {
                        meta.remove("managedFields");
                    }
                    value["apiVersion"] = json!("koreo.dev/v1beta1");
                    value["kind"] = json!(kind);
                    // Decoded from the JSON as it came, under a path named after it.
                    let root = koreo_lang::yaml::Node::from_json(&value);
                    let path = PathBuf::from(format!("{kind}/{ns}/{name}"));
                    ws.add_object(&path, root);
                    statuses.push((koreo_resource(kind), path, object));
                }
            }
        }
        ws.finish();
        let mut diagnostics = ws.diagnostics.clone();
        diagnostics.extend(koreo_lang::analysis::check(&ws));
        let invalid: HashSet<&std::path::Path> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.location.path())
            .collect();
        self.metrics.set_definitions(
            statuses.iter().map(|(resource, path, _)| {
                (resource.kind.clone(), !invalid.contains(path.as_path()))
            }),
        );
        tracing::info!(
            definitions = statuses.len(),
            invalid = invalid.len(),
            "definitions loaded"
        );
        // One document per definition, in the order they were added.
        for ((resource, path, object), document) in statuses.into_iter().zip(&ws.documents) {
            let namespace = object.metadata.namespace.clone().unwrap_or_default();
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &namespace, &resource);
            // A definition read from the cluster has no file a person wrote: errors say where
            // by field path (`spec.steps[2].inputs.name`).
            let errors: Vec<&koreo_lang::source::Diagnostic> = diagnostics
                .iter()
                .filter(|d| d.is_error() && d.location.path() == path)
                .collect();
            let problems: Vec<String> = errors
                .iter()
                .map(|d| match document.root.path_at(d.location.span.start) {
                    field if field.is_empty() => d.message.clone(),
                    field => format!("{} (at {field})", d.message),
                })
                .collect();
            write_definition_status(&api, &object, &problems).await;
        }
        ws
    }
}

/// A definition's `Ready` condition: whether it is valid, and if not, why. Written only when
/// it changes.
async fn write_definition_status(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    problems: &[String],
) {
    let (status, reason, message) = if problems.is_empty() {
        ("True", "Valid", "The definition is valid.".to_string())
    } else {
        ("False", "Invalid", problems.join("; "))
    };
    let current = &object.data["status"]["conditions"];
    let same = current
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == status && c["message"] == message.as_str());
    if same {
        return;
    }
    let Some(name) = object.metadata.name.as_deref() else {
        return;
    };
    let condition = json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": crate::pass::now()});
    let params = as_koreo();
    let _ = api
        .patch_status(
            name,
            &params,
            &Patch::Merge(json!({"status": {"conditions": [condition]}})),
        )
        .await;
}

/// The objects of one Koreo kind, asked again (with backoff, at most 30 s apart) until the API
/// server answers: a definition is never reported missing because a request failed. `None`
/// when the kind is not served (its CRD is not installed).
async fn list_until_answered(
    api: &Api<DynamicObject>,
    kind: &str,
) -> Option<kube::core::ObjectList<DynamicObject>> {
    let not_served = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    let params = kube::api::ListParams::default();
    (|| api.list(&params))
        .retry(backoff(Duration::from_secs(30)))
        .when(|e| !not_served(e))
        .notify(|error, wait| {
            tracing::warn!(%kind, %error, ?wait, "listing definitions failed; trying again");
        })
        .await
        .ok()
}
