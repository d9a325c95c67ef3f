//! Difference detection between what a function wants and what the cluster holds, with Koreo's
//! `x-koreo-*` directives.

use serde_json::{Map, Value as Json};

pub const COMPARE_AS_SET: &str = "x-koreo-compare-as-set";
pub const COMPARE_AS_MAP: &str = "x-koreo-compare-as-map";
pub const COMPARE_LAST_APPLIED: &str = "x-koreo-compare-last-applied";
pub const LAST_APPLIED_ANNOTATION: &str = "koreo.dev/last-applied-configuration";

pub fn is_directive(key: &str) -> bool {
    key.starts_with("x-koreo-")
}

/// The first difference between `target` and `actual`, as a path (`'spec' -> 'replicas' ->
/// <target:[6], resource:[3]>`), or `None` when `actual` has everything `target` asks for.
/// Only keys present in the target are compared: defaults and fields others set are ignored.
pub fn first_difference(
    target: &Json,
    actual: &Json,
    last_applied: Option<&Json>,
) -> Option<String> {
    let mut path = Vec::new();
    differ(target, Some(actual), last_applied, false, &mut path).then(|| path.join(" -> "))
}

fn describe(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => "null".into(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn type_name(v: Option<&Json>) -> &'static str {
    match v {
        None | Some(Json::Null) => "null",
        Some(Json::Bool(_)) => "bool",
        Some(Json::Number(_)) => "number",
        Some(Json::String(_)) => "string",
        Some(Json::Array(_)) => "array",
        Some(Json::Object(_)) => "object",
    }
}

/// Pushes the path of the first difference; returns whether there is one.
fn differ(
    target: &Json,
    actual: Option<&Json>,
    last_applied: Option<&Json>,
    as_set: bool,
    path: &mut Vec<String>,
) -> bool {
    match (target, actual) {
        (Json::Object(t), Some(Json::Object(a))) => differ_map(t, a, last_applied, path),
        (Json::Object(_), _) => {
            path.push(format!("<target:object, resource:{}>", type_name(actual)));
            true
        }
        (_, Some(Json::Object(_))) => {
            path.push(format!(
                "<target:{}, resource:object>",
                type_name(Some(target))
            ));
            true
        }
        (Json::Array(t), Some(Json::Array(a))) => {
            if as_set {
                differ_set(t, a, path)
            } else {
                differ_list(t, a, last_applied.and_then(Json::as_array), path)
            }
        }
        (Json::Array(t), None | Some(Json::Null)) if t.is_empty() => false,
        (Json::Array(_), _) => {
            path.push(format!("<target:array, resource:{}>", type_name(actual)));
            true
        }
        (_, Some(Json::Array(_))) => {
            path.push(format!(
                "<target:{}, resource:array>",
                type_name(Some(target))
            ));
            true
        }
        _ => {
            if scalar_equal(target, actual.unwrap_or(&Json::Null)) {
                false
            } else {
                path.push(format!(
                    "<target:[{}], resource:[{}]>",
                    describe(Some(target)),
                    describe(actual)
                ));
                true
            }
        }
    }
}

/// Numbers compare by value (`1 == 1.0`); booleans only equal booleans.
fn scalar_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn string_list(v: Option<&Json>) -> Vec<&str> {
    v.and_then(Json::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Json::as_str)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn differ_map(
    target: &Map<String, Json>,
    actual: &Map<String, Json>,
    last_applied: Option<&Json>,
    path: &mut Vec<String>,
) -> bool {
    let as_set = string_list(target.get(COMPARE_AS_SET));
    let use_last_applied = string_list(target.get(COMPARE_LAST_APPLIED));
    let as_map = target.get(COMPARE_AS_MAP).and_then(Json::as_object);
    for (key, t) in target {
        if is_directive(key) || key == "ownerReferences" {
            continue;
        }
        let applied = last_applied.and_then(|l| l.get(key));
        let compare_to = if use_last_applied.contains(&key.as_str()) {
            applied
        } else {
            match actual.get(key) {
                Some(a) => Some(a),
                None => {
                    path.push(format!("<missing '{key}' in resource>"));
                    return true;
                }
            }
        };
        let map_fields: Option<Vec<&str>> = as_map
            .and_then(|m| m.get(key))
            .map(|f| string_list(Some(f)));
        let different = match map_fields {
            Some(fields) => {
                let keyed = |v: Option<&Json>| v.map(|v| list_to_map(v, &fields));
                differ(
                    &list_to_map(t, &fields),
                    keyed(compare_to).as_ref(),
                    keyed(applied).as_ref(),
                    false,
                    path,
                )
            }
            None => differ(t, compare_to, applied, as_set.contains(&key.as_str()), path),
        };
        if different {
            // The path is built from the inside out: the first difference returns at once.
            path.insert(0, format!("'{key}'"));
            return true;
        }
    }
    false
}

/// A list of objects keyed by the joined values of `fields` (`x-koreo-compare-as-map`).
fn list_to_map(list: &Json, fields: &[&str]) -> Json {
    let Some(items) = list.as_array() else {
        return list.clone();
    };
    let mut out = Map::new();
    for item in items {
        let key = fields
            .iter()
            .map(|f| describe(item.get(f)).trim().to_string())
            .collect::<Vec<_>>()
            .join("$");
        out.insert(key, item.clone());
    }
    Json::Object(out)
}

fn differ_list(
    target: &[Json],
    actual: &[Json],
    last_applied: Option<&Vec<Json>>,
    path: &mut Vec<String>,
) -> bool {
    if target.len() != actual.len() {
        path.push(format!(
            "<length mismatch target:{}, actual:{}>",
            target.len(),
            actual.len()
        ));
        return true;
    }
    for (i, (t, a)) in target.iter().zip(actual).enumerate() {
        let applied = last_applied.and_then(|l| l.get(i));
        if differ(t, Some(a), applied, false, path) {
            path.insert(0, format!("at index '{i}'"));
            return true;
        }
    }
    false
}

fn differ_set(target: &[Json], actual: &[Json], path: &mut Vec<String>) -> bool {
    if target
        .iter()
        .chain(actual)
        .any(|v| v.is_object() || v.is_array())
    {
        path.push("Could not compare array-as-set, try: `x-koreo-compare-as-map`".into());
        return true;
    }
    let contains = |list: &[Json], v: &Json| list.iter().any(|x| scalar_equal(x, v));
    if let Some(missing) = target.iter().find(|v| !contains(actual, v)) {
        path.push(format!("<missing '{}'>", describe(Some(missing))));
        return true;
    }
    if let Some(extra) = actual.iter().find(|v| !contains(target, v)) {
        path.push(format!("<unexpectedly found '{}'>", describe(Some(extra))));
        return true;
    }
    false
}

/// The value with every `x-koreo-*` key removed, as it must be before any write.
pub fn strip_directives(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_target_keys_are_compared() {
        let target = json!({"spec": {"replicas": 3}});
        let live = json!({"spec": {"replicas": 3, "extra": true}, "status": {}});
        assert_eq!(first_difference(&target, &live, None), None);
    }

    #[test]
    fn differences_read_as_a_path() {
        let target = json!({"spec": {"replicas": 6}});
        let live = json!({"spec": {"replicas": 3}});
        assert_eq!(
            first_difference(&target, &live, None).unwrap(),
            "'spec' -> 'replicas' -> <target:[6], resource:[3]>"
        );
        let live = json!({"spec": {}});
        assert_eq!(
            first_difference(&target, &live, None).unwrap(),
            "'spec' -> <missing 'replicas' in resource>"
        );
    }

    #[test]
    fn list_items_are_named_by_index() {
        let target = json!({"l": [1, {"a": 1}]});
        let live = json!({"l": [1, {"a": 2}]});
        assert_eq!(
            first_difference(&target, &live, None).unwrap(),
            "'l' -> at index '1' -> 'a' -> <target:[1], resource:[2]>"
        );
    }

    #[test]
    fn numbers_by_value_and_booleans_strictly() {
        assert_eq!(
            first_difference(&json!({"a": 1}), &json!({"a": 1.0}), None),
            None
        );
        assert!(first_difference(&json!({"a": true}), &json!({"a": 1}), None).is_some());
    }

    #[test]
    fn compare_as_set_ignores_order() {
        let target = json!({"x-koreo-compare-as-set": ["s"], "s": [3, 1, 2]});
        assert_eq!(
            first_difference(&target, &json!({"s": [1, 2, 3]}), None),
            None
        );
        assert_eq!(
            first_difference(&target, &json!({"s": [1, 2, 4]}), None).unwrap(),
            "'s' -> <missing '3'>"
        );
    }

    #[test]
    fn compare_as_map_keys_objects() {
        let target = json!({"x-koreo-compare-as-map": {"ports": ["name"]}, "ports": [{"name": "a", "p": 1}, {"name": "b", "p": 2}]});
        let live = json!({"ports": [{"name": "b", "p": 2}, {"name": "a", "p": 1}]});
        assert_eq!(first_difference(&target, &live, None), None);
    }

    #[test]
    fn compare_last_applied_uses_the_annotation_value() {
        let target = json!({"x-koreo-compare-last-applied": ["spec"], "spec": {"a": 1}});
        let live = json!({"spec": {"a": 99}});
        assert_eq!(
            first_difference(&target, &live, Some(&json!({"spec": {"a": 1}}))),
            None
        );
    }

    #[test]
    fn directives_are_stripped_at_any_depth() {
        let v =
            json!({"x-koreo-compare-as-set": ["a"], "a": [{"x-koreo-compare-as-map": {}, "b": 1}]});
        assert_eq!(strip_directives(&v), json!({"a": [{"b": 1}]}));
    }
}
