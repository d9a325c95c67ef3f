//! Field ownership for server-side apply: which manager set which field (`metadata.managedFields`).
//!
//! Fields are leaf paths through objects; lists are atomic (one field), as for every
//! CustomResource list without `x-kubernetes-list-type: map`.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};

pub type Path = Vec<String>;

/// Fields the server owns: never part of a manager's set.
fn is_system(path: &[String]) -> bool {
    match path {
        [top] => matches!(top.as_str(), "apiVersion" | "kind"),
        [meta, field, ..] if meta == "metadata" => matches!(
            field.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// The leaf fields of a value: non-object values and empty objects.
pub fn leaves(value: &Json) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let mut path = Vec::new();
    collect(value, &mut path, &mut out);
    out.retain(|p| !is_system(p));
    out
}

fn collect(value: &Json, path: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                collect(v, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

pub fn get<'a>(value: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Removes a field, and the objects that held only it.
pub fn remove(value: &mut Json, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut chain: Vec<&str> = Vec::new();
    let mut cursor = &mut *value;
    for k in parents {
        match cursor.get_mut(k) {
            Some(next) => cursor = next,
            None => return,
        }
        chain.push(k);
    }
    if let Some(map) = cursor.as_object_mut() {
        map.remove(last);
    }
    // Prune parents left empty, innermost first.
    for depth in (1..=parents.len()).rev() {
        let (prefix, key) = parents[..depth].split_at(depth - 1);
        let holder = prefix.iter().try_fold(&mut *value, |v, k| v.get_mut(k));
        if let Some(Json::Object(map)) = holder {
            if map
                .get(&key[0])
                .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
            {
                map.remove(&key[0]);
            } else {
                break;
            }
        }
    }
}

/// Sets a field, creating the objects on its way.
pub fn set(value: &mut Json, path: &[String], leaf: Json) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = value;
    for k in parents {
        if !cursor.is_object() {
            *cursor = json!({});
        }
        cursor = cursor
            .as_object_mut()
            .map(|m| m.entry(k.clone()).or_insert_with(|| json!({})))
            .expect("made an object above");
    }
    if !cursor.is_object() {
        *cursor = json!({});
    }
    if let Some(map) = cursor.as_object_mut() {
        map.insert(last.clone(), leaf);
    }
}

/// What a server-side apply of `body` leaves of `current`: the `applied` fields set from `body`,
/// and the fields the applier set before (`previous`) and no longer does removed, unless another
/// manager also owns them (`shared`). Everything else is kept.
pub fn apply(
    current: &Json,
    body: &Json,
    applied: &BTreeSet<Path>,
    previous: &BTreeSet<Path>,
    shared: impl Fn(&Path) -> bool,
) -> Json {
    let mut object = current.clone();
    for path in previous.difference(applied) {
        if !shared(path) {
            remove(&mut object, path);
        }
    }
    for path in applied {
        if let Some(value) = get(body, path) {
            set(&mut object, path, value.clone());
        }
    }
    object
}

/// `fieldsV1`: `{"f:spec": {"f:replicas": {}}}`.
pub fn to_fields_v1(paths: &BTreeSet<Path>) -> Json {
    let mut root = json!({});
    for path in paths {
        let mut cursor = &mut root;
        for k in path {
            cursor = cursor
                .as_object_mut()
                .map(|m| m.entry(format!("f:{k}")).or_insert_with(|| json!({})))
                .expect("fieldsV1 nodes are objects");
        }
    }
    root
}

pub fn from_fields_v1(fields: &Json) -> BTreeSet<Path> {
    fn walk(node: &Json, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(map) = node.as_object() else { return };
        let children: Vec<_> = map
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("f:").map(|k| (k, v)))
            .collect();
        if children.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, v) in children {
            path.push(k.to_string());
            walk(v, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

pub fn read(object: &Json) -> Vec<Managed> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| Managed {
                    manager: e["manager"].as_str().unwrap_or("").to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
                    time: e["time"].as_str().unwrap_or("").to_string(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write(object: &mut Json, managed: &[Managed]) {
    let entries: Vec<Json> = managed
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&m.fields),
            })
        })
        .collect();
    if let Some(meta) = object["metadata"].as_object_mut() {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Json::Array(entries));
        }
    }
}

/// Whether two fields overlap: one is the other or contains it.
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaves_skip_system_fields_and_treat_lists_as_atoms() {
        let v = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"l": [1, 2], "e": {}}});
        let got: Vec<Path> = leaves(&v).into_iter().collect();
        assert_eq!(got, [p("metadata.labels.a"), p("spec.e"), p("spec.l")]);
    }

    #[test]
    fn fields_v1_round_trips() {
        let paths: BTreeSet<Path> = [
            p("spec.replicas"),
            p("spec.template.x"),
            p("metadata.labels.a"),
        ]
        .into();
        assert_eq!(from_fields_v1(&to_fields_v1(&paths)), paths);
    }

    #[test]
    fn remove_prunes_emptied_parents() {
        let mut v = json!({"spec": {"a": {"b": 1}, "c": 2}});
        remove(&mut v, &p("spec.a.b"));
        assert_eq!(v, json!({"spec": {"c": 2}}));
        set(&mut v, &p("spec.x.y"), json!(3));
        assert_eq!(v, json!({"spec": {"c": 2, "x": {"y": 3}}}));
    }
}
