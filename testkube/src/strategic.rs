//! Strategic merge patch: a JSON merge patch, except that lists Kubernetes declares with a merge
//! key (containers by `name`, ports by `containerPort`, ...) merge element by element, and
//! `$patch: delete` removes an element. Lists without a merge key replace, as in Kubernetes.

use serde_json::{Map, Value as Json};

/// Merge keys of the list fields of the built-in kinds this server knows, by field name. The same
/// field name has the same key wherever it appears in these kinds.
fn merge_key(field: &str, kind: &str) -> Option<&'static str> {
    Some(match (kind, field) {
        ("Service", "ports") => "port",
        (
            _,
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "env"
            | "imagePullSecrets",
        ) => "name",
        (_, "ports") => "containerPort",
        (_, "volumeMounts") => "mountPath",
        (_, "volumeDevices") => "devicePath",
        (_, "hostAliases") => "ip",
        (_, "conditions") => "type",
        _ => return None,
    })
}

/// Applies a strategic merge patch for an object of `kind`.
pub fn apply(target: &mut Json, patch: &Json, kind: &str) {
    merge(target, patch, kind);
}

fn merge(target: &mut Json, patch: &Json, kind: &str) {
    let Json::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    let Some(object) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Json::Null => {
                object.remove(key);
            }
            Json::Array(items) => match (merge_key(key, kind), object.get_mut(key)) {
                (Some(merge_on), Some(Json::Array(existing))) => {
                    merge_list(existing, items, merge_on, kind)
                }
                _ => {
                    let kept: Vec<Json> = items
                        .iter()
                        .filter(|i| i["$patch"] != "delete")
                        .map(strip_directives)
                        .collect();
                    object.insert(key.clone(), Json::Array(kept));
                }
            },
            Json::Object(_) => merge(object.entry(key.clone()).or_insert(Json::Null), value, kind),
            other => {
                object.insert(key.clone(), other.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Json>, items: &[Json], merge_on: &str, kind: &str) {
    for item in items {
        let key = &item[merge_on];
        let position = existing.iter().position(|e| &e[merge_on] == key);
        match (item["$patch"].as_str(), position) {
            (Some("delete"), Some(i)) => {
                existing.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => merge(&mut existing[i], item, kind),
            (_, None) => existing.push(strip_directives(item)),
        }
    }
}

fn strip_directives(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_other_lists_replace() {
        let mut deployment = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "v1", "ports": [{"containerPort": 80}]}, {"name": "sidecar", "image": "s1"}],
            "tolerations": [{"key": "a"}]
        }}}});
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "v2", "ports": [{"containerPort": 443}]}, {"name": "sidecar", "$patch": "delete"}],
            "tolerations": [{"key": "b"}]
        }}}});
        apply(&mut deployment, &patch, "Deployment");
        assert_eq!(
            deployment["spec"]["template"]["spec"],
            json!({
                "containers": [{"name": "app", "image": "v2", "ports": [{"containerPort": 80}, {"containerPort": 443}]}],
                "tolerations": [{"key": "b"}]
            })
        );
    }

    #[test]
    fn service_ports_merge_by_port_and_nulls_delete() {
        let mut service =
            json!({"spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "a"}}});
        apply(
            &mut service,
            &json!({"spec": {"ports": [{"port": 80, "name": "web"}, {"port": 443}], "selector": null}}),
            "Service",
        );
        assert_eq!(
            service["spec"],
            json!({"ports": [{"port": 80, "name": "web"}, {"port": 443}]})
        );
    }
}
