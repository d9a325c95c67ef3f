//! Difference detection between what a function wants and what the cluster holds, with Koreo's
//! `x-koreo-*` directives.

use serde_json::{Map, Value as Json, json};

pub const COMPARE_AS_SET: &str = "x-koreo-compare-as-set";
pub const COMPARE_AS_MAP: &str = "x-koreo-compare-as-map";
pub const COMPARE_LAST_APPLIED: &str = "x-koreo-compare-last-applied";
pub const LAST_APPLIED_ANNOTATION: &str = "koreo.dev/last-applied-configuration";

pub fn is_directive(key: &str) -> bool {
    key.starts_with("x-koreo-")
}

/// Where a difference is: keys and list indexes from the root.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// The object the rest of the path is in, as a report names it (`ConfigMap:ns:name`).
    Within(String),
}

/// What kind of difference it is; `expected` and `actual` hold the values either way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// The values differ (in type or value).
    Value,
    /// The key is absent from the actual object.
    Absent,
    /// The key is present only in the actual object (exact comparisons).
    Unexpected,
    /// Lists of different lengths.
    Length,
    /// Compared as a set: an item of one is not in the other.
    Set,
    /// Compared as a set, but the items are objects or lists.
    SetOfObjects,
}

/// One difference: where, of what kind, and what was expected and found (`None`: absent).
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub path: Vec<Step>,
    pub kind: Kind,
    pub expected: Option<Json>,
    pub actual: Option<Json>,
}

impl Difference {
    /// The path as tests print it: `spec.ports[0]["app.kubernetes.io/name"]`.
    pub fn dotted_path(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            match step {
                Step::Index(i) => out.push_str(&format!("[{i}]")),
                Step::Within(name) => out.push_str(name),
                Step::Key(key)
                    if !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Key(key) => out.push_str(&format!("[{}]", Json::String(key.clone()))),
            }
        }
        out
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Json>| v.as_ref().map_or("(absent)".to_string(), Json::to_string);
        let path = self.dotted_path();
        let path = if path.is_empty() { "(root)" } else { &path };
        write!(
            f,
            "{path}: expected {}, found {}",
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// The first difference between `target` and `actual`, as a path (`'spec' -> 'replicas' ->
/// <target:[6], resource:[3]>`), or `None` when `actual` has everything `target` asks for.
/// Only keys present in the target are compared: defaults and fields others set are ignored.
pub fn first_difference(
    target: &Json,
    actual: &Json,
    last_applied: Option<&Json>,
) -> Option<String> {
    let mut walk = Walk::new(Mode::Drift);
    walk.value(target, Some(actual), last_applied, false);
    walk.found.first().map(drift_text)
}

/// Every difference between `expected` and `actual`, in document order: an exact comparison
/// (keys only `actual` has are differences too), as tests expect values. `x-koreo-compare-as-set`
/// and `x-koreo-compare-as-map` in `expected` apply.
pub fn differences(expected: &Json, actual: &Json) -> Vec<Difference> {
    let mut walk = Walk::new(Mode::Exact);
    walk.value(expected, Some(actual), None, false);
    walk.found
}

/// How `Walk` compares: drift detection (the target's keys only, quantities by amount,
/// `x-koreo-compare-last-applied` and `ownerReferences` as Koreo has them, the first difference
/// only) or exact comparison (every key, every difference).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Drift,
    Exact,
}

/// Differences are recorded where they are found, with an empty path; each level puts its
/// step in front on the way out. Nothing is allocated for the path of what is equal.
struct Walk {
    mode: Mode,
    found: Vec<Difference>,
}

impl Walk {
    fn new(mode: Mode) -> Self {
        Walk {
            mode,
            found: Vec::new(),
        }
    }

    /// Puts `step` in front of the path of the differences found since `since`.
    fn under(&mut self, since: usize, step: impl FnOnce() -> Step) {
        if self.found.len() > since {
            let step = step();
            for d in &mut self.found[since..] {
                d.path.insert(0, step.clone());
            }
        }
    }

    /// Drift detection stops at the first difference.
    fn done(&self) -> bool {
        self.mode == Mode::Drift && !self.found.is_empty()
    }

    fn push(&mut self, kind: Kind, expected: Option<&Json>, actual: Option<&Json>) {
        self.found.push(Difference {
            path: Vec::new(),
            kind,
            expected: expected.cloned(),
            actual: actual.cloned(),
        });
    }

    fn value(
        &mut self,
        expected: &Json,
        actual: Option<&Json>,
        last_applied: Option<&Json>,
        as_set: bool,
    ) {
        match (expected, actual) {
            (Json::Object(e), Some(Json::Object(a))) => self.map(e, a, last_applied),
            (Json::Array(_), Some(a @ Json::Array(_))) if as_set => self.set(expected, a),
            (Json::Array(e), Some(Json::Array(a))) => {
                if e.len() != a.len() {
                    return self.push(Kind::Length, Some(expected), actual);
                }
                let applied = last_applied.and_then(Json::as_array);
                for (i, (x, y)) in e.iter().zip(a).enumerate() {
                    let since = self.found.len();
                    self.value(x, Some(y), applied.and_then(|l| l.get(i)), false);
                    self.under(since, || Step::Index(i));
                    if self.done() {
                        return;
                    }
                }
            }
            // What the server does not store (an empty list) is no drift.
            (Json::Array(e), None | Some(Json::Null))
                if e.is_empty() && self.mode == Mode::Drift => {}
            (Json::Object(_) | Json::Array(_), _) | (_, Some(Json::Object(_) | Json::Array(_))) => {
                self.push(Kind::Value, Some(expected), actual)
            }
            _ => {
                if !scalars_equal(expected, actual.unwrap_or(&Json::Null), self.mode) {
                    self.push(Kind::Value, Some(expected), actual);
                }
            }
        }
    }

    fn map(
        &mut self,
        expected: &Map<String, Json>,
        actual: &Map<String, Json>,
        last_applied: Option<&Json>,
    ) {
        let as_set = string_list(expected.get(COMPARE_AS_SET));
        let as_map = expected.get(COMPARE_AS_MAP).and_then(Json::as_object);
        // Koreo's tests ignore `x-koreo-compare-last-applied`: they have no annotation to read.
        let use_last_applied = match self.mode {
            Mode::Drift => string_list(expected.get(COMPARE_LAST_APPLIED)),
            Mode::Exact => Vec::new(),
        };
        for (key, e) in expected {
            if is_directive(key) || (self.mode == Mode::Drift && key == "ownerReferences") {
                continue;
            }
            let applied = last_applied.and_then(|l| l.get(key));
            let compare_to = if use_last_applied.contains(&key.as_str()) {
                applied
            } else {
                actual.get(key)
            };
            let since = self.found.len();
            match (compare_to, as_map.and_then(|m| m.get(key))) {
                // Expecting `null` is expecting nothing there: the API server stores no nulls.
                (None, _) if e.is_null() => {}
                (None, _) if !use_last_applied.contains(&key.as_str()) => {
                    self.push(Kind::Absent, Some(e), None)
                }
                (compare_to, Some(fields)) => {
                    let fields = string_list(Some(fields));
                    let keyed = |v: Option<&Json>| v.map(|v| list_to_map(v, &fields));
                    self.value(
                        &list_to_map(e, &fields),
                        keyed(compare_to).as_ref(),
                        keyed(applied).as_ref(),
                        false,
                    );
                }
                (compare_to, None) => {
                    self.value(e, compare_to, applied, as_set.contains(&key.as_str()))
                }
            }
            self.under(since, || Step::Key(key.clone()));
            if self.done() {
                return;
            }
        }
        if self.mode == Mode::Exact {
            for (key, a) in actual {
                if !expected.contains_key(key) && !is_directive(key) {
                    let since = self.found.len();
                    self.push(Kind::Unexpected, None, Some(a));
                    self.under(since, || Step::Key(key.clone()));
                }
            }
        }
    }

    fn set(&mut self, expected: &Json, actual: &Json) {
        let (Some(e), Some(a)) = (expected.as_array(), actual.as_array()) else {
            return;
        };
        // Koreo's drift detection compares scalars only; its tests compare any items.
        let objects = e.iter().chain(a).any(|v| v.is_object() || v.is_array());
        if objects && self.mode == Mode::Drift {
            self.push(Kind::SetOfObjects, Some(expected), Some(actual));
        } else if set_mismatch(e, a, self.mode).is_some() {
            self.push(Kind::Set, Some(expected), Some(actual));
        }
    }
}

fn scalars_equal(a: &Json, b: &Json, mode: Mode) -> bool {
    match mode {
        Mode::Drift => scalar_equal(a, b),
        Mode::Exact => same_number(a, b) || a == b,
    }
}

/// The first item of `expected` missing from `actual` (left), else the first of `actual`
/// missing from `expected` (right).
fn set_mismatch<'v>(
    expected: &'v [Json],
    actual: &'v [Json],
    mode: Mode,
) -> Option<(Option<&'v Json>, Option<&'v Json>)> {
    let contains = |list: &[Json], v: &Json| list.iter().any(|x| scalars_equal(x, v, mode));
    if let Some(missing) = expected.iter().find(|v| !contains(actual, v)) {
        return Some((Some(missing), None));
    }
    actual
        .iter()
        .find(|v| !contains(expected, v))
        .map(|extra| (None, Some(extra)))
}

/// A difference as Koreo words it in a Retry's message.
fn drift_text(d: &Difference) -> String {
    let mut parts: Vec<String> = d
        .path
        .iter()
        .map(|step| match step {
            Step::Key(key) | Step::Within(key) => format!("'{key}'"),
            Step::Index(i) => format!("at index '{i}'"),
        })
        .collect();
    let hidden = crate::expr::values_hidden();
    let (expected, actual) = (d.expected.as_ref(), d.actual.as_ref());
    let last = match d.kind {
        Kind::Absent => {
            format!("<missing {} in resource>", parts.pop().unwrap_or_default())
        }
        Kind::Length => format!(
            "<length mismatch target:{}, actual:{}>",
            expected.and_then(Json::as_array).map_or(0, Vec::len),
            actual.and_then(Json::as_array).map_or(0, Vec::len)
        ),
        Kind::SetOfObjects => {
            "Could not compare array-as-set, try: `x-koreo-compare-as-map`".to_string()
        }
        Kind::Set => {
            let quoted = |v: &Json| {
                if hidden {
                    crate::expr::json_type(v).to_string()
                } else {
                    format!("'{}'", describe(Some(v)))
                }
            };
            let lists = (
                expected.and_then(Json::as_array),
                actual.and_then(Json::as_array),
            );
            match lists {
                (Some(e), Some(a)) => match set_mismatch(e, a, Mode::Drift) {
                    Some((Some(missing), _)) => format!("<missing {}>", quoted(missing)),
                    Some((_, Some(extra))) => format!("<unexpectedly found {}>", quoted(extra)),
                    _ => String::new(),
                },
                _ => String::new(),
            }
        }
        Kind::Value | Kind::Unexpected => {
            let (te, ta) = (type_name(expected), type_name(actual));
            if matches!(te, "object" | "array") || matches!(ta, "object" | "array") {
                format!("<target:{te}, resource:{ta}>")
            } else if hidden {
                format!("<target:({te}), resource:({ta}), values not shown>")
            } else {
                let (t, a) = (describe(expected), describe(actual));
                // Values that print alike differ in type (`true` and `"true"`): say which.
                if t == a {
                    format!("<target:[{t}] ({te}), resource:[{a}] ({ta})>")
                } else {
                    format!("<target:[{t}], resource:[{a}]>")
                }
            }
        }
    };
    parts.push(last);
    parts.join(" -> ")
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

fn same_number(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => false,
    }
}

/// Numbers compare by value (`1 == 1.0`); booleans only equal booleans. A Kubernetes quantity
/// equals the same amount written another way, as the API server rewrites them (`1` is stored
/// as `"1"`, `1024Mi` as `1Gi`, `0.5` as `500m`).
fn scalar_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(_), Json::Number(_)) => same_number(a, b),
        (Json::String(_), _) | (_, Json::String(_)) if a != b => match (quantity(a), quantity(b)) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            _ => false,
        },
        _ => a == b,
    }
}

/// The amount a Kubernetes quantity stands for (`"1Gi"`, `"500m"`, `"1e3"`, `2`).
fn quantity(value: &Json) -> Option<f64> {
    let text = match value {
        Json::Number(n) => return n.as_f64(),
        Json::String(s) => s.as_str(),
        _ => return None,
    };
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let e = exponent.strip_prefix(['e', 'E'])?;
            10f64.powi(e.parse().ok()?)
        }
    };
    Some(number * scale)
}

/// The target as the API server would store it, for comparing with what it holds: a Secret's
/// `stringData` is folded into `data`, base64-encoded.
pub fn as_the_server_stores(target: &Json) -> std::borrow::Cow<'_, Json> {
    use base64::Engine;
    use std::borrow::Cow;
    let is_secret = target["apiVersion"] == "v1" && target["kind"] == "Secret";
    let Some(string_data) = target["stringData"].as_object().filter(|_| is_secret) else {
        return Cow::Borrowed(target);
    };
    let mut stored = target.clone();
    let mut data = target["data"].as_object().cloned().unwrap_or_default();
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default();
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        data.insert(key.clone(), json!(encoded));
    }
    if let Some(object) = stored.as_object_mut() {
        object.remove("stringData");
        object.insert("data".into(), Json::Object(data));
    }
    Cow::Owned(stored)
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

/// The lists of `target` that `actual` holds differently, outermost first, as JSON pointers
/// with the target's list (directives stripped). Koreo owns a list it writes as a whole: an entry
/// another writer added is a difference (compare checks lengths), and a server-side apply
/// cannot remove an entry another manager owns, so such lists are replaced before applying.
/// Lists compared against the last-applied configuration are others' to change, and a list
/// `actual` lacks altogether is left to the apply.
pub fn lists_to_replace(target: &Json, actual: &Json) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    collect_lists(target, actual, &mut String::new(), &mut out);
    out
}

fn collect_lists(
    target: &Json,
    actual: &Json,
    pointer: &mut String,
    out: &mut Vec<(String, Json)>,
) {
    let (Some(t), Some(a)) = (target.as_object(), actual.as_object()) else {
        return;
    };
    let last_applied = string_list(t.get(COMPARE_LAST_APPLIED));
    for (key, value) in t {
        if is_directive(key) || key == "ownerReferences" || last_applied.contains(&key.as_str()) {
            continue;
        }
        let Some(live) = a.get(key) else { continue };
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        match (value, live) {
            (Json::Array(_), Json::Array(_)) => {
                // `first_difference` on this key alone, with the directives that apply to it.
                let mut just_this: Map<String, Json> = t
                    .iter()
                    .filter(|(k, _)| *k == COMPARE_AS_SET || *k == COMPARE_AS_MAP)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                just_this.insert(key.clone(), value.clone());
                let live_only = json!({ key: live });
                if first_difference(&Json::Object(just_this), &live_only, None).is_some() {
                    out.push((pointer.clone(), strip_directives(value)));
                }
            }
            (Json::Object(_), Json::Object(_)) => collect_lists(value, live, pointer, out),
            _ => {}
        }
        pointer.truncate(len);
    }
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
    fn differences_name_no_values_where_values_are_hidden() {
        let target = json!({"data": {"token": "bmV3"}, "tags": ["a", "secret-b"]});
        let live = json!({"data": {"token": "b2xk"}, "tags": ["a", "secret-c"]});
        let shown = first_difference(&target, &live, None).unwrap();
        assert!(shown.contains("bmV3") && shown.contains("b2xk"), "{shown}");
        let hidden = crate::expr::hiding_values(|| first_difference(&target, &live, None)).unwrap();
        assert_eq!(
            hidden,
            "'data' -> 'token' -> <target:(string), resource:(string), values not shown>"
        );
        let set = json!({"x-koreo-compare-as-set": ["tags"], "tags": ["a", "secret-b"]});
        let hidden = crate::expr::hiding_values(|| {
            first_difference(&set, &json!({"tags": ["a", "secret-c"]}), None)
        });
        assert!(!hidden.clone().unwrap().contains("secret"), "{hidden:?}");
    }

    #[test]
    fn exact_comparison_lists_missing_unexpected_and_changed_values() {
        let expected = json!({"a": 1, "b": {"c": [1, 2]}, "gone": true, "x.y": 1});
        let actual = json!({"a": 1.0, "b": {"c": [1, 3]}, "extra": "x", "x.y": 2});
        let d: Vec<String> = differences(&expected, &actual)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "b.c[1]: expected 2, found 3",
                "gone: expected true, found (absent)",
                "[\"x.y\"]: expected 1, found 2",
                "extra: expected (absent), found \"x\""
            ]
        );
    }

    #[test]
    fn expecting_null_is_expecting_nothing_there_in_both_comparisons() {
        let expected = json!({"owners": null});
        assert_eq!(differences(&expected, &json!({})), []);
        assert_eq!(differences(&expected, &json!({"owners": null})), []);
        assert_eq!(differences(&expected, &json!({"owners": []})).len(), 1);
        // The API server stores no nulls: a target's `null` is never drift against absence.
        assert_eq!(first_difference(&expected, &json!({}), None), None);
        assert!(first_difference(&expected, &json!({"owners": [1]}), None).is_some());
    }

    #[test]
    fn directives_in_an_exact_expectation_apply() {
        let expected = json!({"x-koreo-compare-as-set": ["s", "o"], "s": [1, 2], "o": [{"a": 1}, {"b": 2}],
            "x-koreo-compare-as-map": {"m": ["k"]}, "m": [{"k": "a"}, {"k": "b"}]});
        let actual = json!({"s": [2, 1], "o": [{"b": 2}, {"a": 1}], "m": [{"k": "b"}, {"k": "a"}]});
        assert_eq!(differences(&expected, &actual), []);
        let actual = json!({"s": [2, 3], "o": [{"b": 2}, {"a": 1}], "m": [{"k": "b"}, {"k": "a"}]});
        assert_eq!(
            differences(&expected, &actual)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["s: expected [1,2], found [2,3]"]
        );
    }

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
    fn values_that_print_alike_name_their_types() {
        let target = json!({"ready": true});
        let live = json!({"ready": "true"});
        assert_eq!(
            first_difference(&target, &live, None).unwrap(),
            "'ready' -> <target:[true] (bool), resource:[true] (string)>"
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
    fn lists_held_differently_are_replaced_whole() {
        let target = json!({"spec": {"ports": [{"name": "http", "port": 80}], "selector": {"a": "b"},
            "template": {"containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}]}}});
        // Another writer's entry next to koreo's, and an env value changed deeper down.
        let live = json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "http", "port": 9999}], "selector": {"a": "b"},
            "template": {"containers": [{"name": "app", "image": "x", "env": [{"name": "X", "value": "2"}]}]}}});
        let lists = lists_to_replace(&target, &live);
        let pointers: Vec<&str> = lists.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/spec/ports", "/spec/template/containers"]);
        assert_eq!(lists[0].1, target["spec"]["ports"]);
        // Defaults the server added (`protocol`, `image`) are not a difference.
        let settled = json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "template": {"containers": [{"name": "app", "image": "x", "env": [{"name": "X", "value": "1"}]}]}}});
        assert_eq!(lists_to_replace(&target, &settled), []);
    }

    #[test]
    fn lists_others_may_change_or_that_are_missing_are_left_to_the_apply() {
        let target = json!({"x-koreo-compare-last-applied": ["a"], "a": [1], "b": [2], "c/d": [3],
            "x-koreo-compare-as-set": ["e"], "e": [1, 2]});
        let live = json!({"a": [9], "c/d": [4], "e": [2, 1]});
        assert_eq!(
            lists_to_replace(&target, &live),
            [("/c~1d".to_string(), json!([3]))]
        );
    }

    #[test]
    fn quantities_the_server_rewrote_are_the_same() {
        for (target, live) in [
            (json!(1), json!("1")),
            (json!("1024Mi"), json!("1Gi")),
            (json!("0.5"), json!("500m")),
            (json!("1e3"), json!("1k")),
            (json!(0.1), json!("100m")),
        ] {
            let (t, l) = (json!({"cpu": target}), json!({"cpu": live}));
            assert_eq!(first_difference(&t, &l, None), None, "{t} {l}");
        }
        for (target, live) in [
            (json!("1Gi"), json!("1G")),
            (json!("2"), json!("2m")),
            (json!("abc"), json!("abd")),
            (json!(true), json!("true")),
            (json!("Mi"), json!("Mi ")),
        ] {
            let (t, l) = (json!({"cpu": target}), json!({"cpu": live}));
            assert!(first_difference(&t, &l, None).is_some(), "{t} {l}");
        }
    }

    #[test]
    fn a_secrets_string_data_compares_as_the_data_it_becomes() {
        let target = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "hunter2"}, "data": {"a": "Yg=="}});
        let stored = as_the_server_stores(&target);
        assert_eq!(
            *stored,
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "Yg==", "password": "aHVudGVyMg=="}})
        );
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"a": "b"}});
        assert_eq!(*as_the_server_stores(&config_map), config_map);
    }

    #[test]
    fn directives_are_stripped_at_any_depth() {
        let v =
            json!({"x-koreo-compare-as-set": ["a"], "a": [{"x-koreo-compare-as-map": {}, "b": 1}]});
        assert_eq!(strip_directives(&v), json!({"a": [{"b": 1}]}));
    }
}
