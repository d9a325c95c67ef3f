//! Exact comparison of an expected value with an actual one, listing every difference by path.
//! `x-koreo-compare-as-set` and `x-koreo-compare-as-map` in the expected value apply.

use std::fmt;

use koreo_lang::compare::{COMPARE_AS_MAP, COMPARE_AS_SET, is_directive};
use serde_json::{Map, Value as Json};

/// One difference: where, and what was expected and found (`None`: absent).
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub path: String,
    pub expected: Option<Json>,
    pub actual: Option<Json>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Json>| v.as_ref().map_or("(absent)".to_string(), Json::to_string);
        write!(
            f,
            "{}: expected {}, found {}",
            if self.path.is_empty() {
                "(root)"
            } else {
                &self.path
            },
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// Every difference between `expected` and `actual`, in document order.
pub fn differences(expected: &Json, actual: &Json) -> Vec<Difference> {
    let mut out = Vec::new();
    diff(expected, actual, "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Json::String(key.to_string())),
    }
}

fn push(out: &mut Vec<Difference>, path: &str, expected: Option<&Json>, actual: Option<&Json>) {
    out.push(Difference {
        path: path.to_string(),
        expected: expected.cloned(),
        actual: actual.cloned(),
    });
}

fn diff(expected: &Json, actual: &Json, path: &str, out: &mut Vec<Difference>) {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => diff_map(e, a, path, out),
        (Json::Array(e), Json::Array(a)) => {
            if e.len() != a.len() {
                push(out, path, Some(expected), Some(actual));
                return;
            }
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Json::Number(x), Json::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if expected == actual => {}
        _ => push(out, path, Some(expected), Some(actual)),
    }
}

fn names(v: Option<&Json>) -> Vec<&str> {
    v.and_then(Json::as_array)
        .map(|items| items.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

fn diff_map(
    expected: &Map<String, Json>,
    actual: &Map<String, Json>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let as_set = names(expected.get(COMPARE_AS_SET));
    let as_map = expected.get(COMPARE_AS_MAP).and_then(Json::as_object);
    for (key, e) in expected {
        if is_directive(key) {
            continue;
        }
        let at = join(path, key);
        // Expecting `null` is expecting nothing there, as in Kubernetes (and Koreo's tests).
        let Some(a) = actual.get(key) else {
            if !e.is_null() {
                push(out, &at, Some(e), None);
            }
            continue;
        };
        if as_set.contains(&key.as_str()) {
            if !same_set(e, a) {
                push(out, &at, Some(e), Some(a));
            }
        } else if let Some(fields) = as_map.and_then(|m| m.get(key)) {
            let fields = names(Some(fields));
            diff(&keyed(e, &fields), &keyed(a, &fields), &at, out);
        } else {
            diff(e, a, &at, out);
        }
    }
    for (key, a) in actual {
        if !expected.contains_key(key) && !is_directive(key) {
            push(out, &join(path, key), None, Some(a));
        }
    }
}

fn same_set(expected: &Json, actual: &Json) -> bool {
    match (expected.as_array(), actual.as_array()) {
        (Some(e), Some(a)) => e.iter().all(|x| a.contains(x)) && a.iter().all(|x| e.contains(x)),
        _ => expected == actual,
    }
}

/// A list of objects as a map keyed by the joined values of `fields`.
fn keyed(list: &Json, fields: &[&str]) -> Json {
    let Some(items) = list.as_array() else {
        return list.clone();
    };
    Json::Object(
        items
            .iter()
            .map(|item| {
                let key = fields
                    .iter()
                    .map(|f| match item.get(f) {
                        Some(Json::String(s)) => s.trim().to_string(),
                        Some(other) => other.to_string(),
                        None => "None".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("$");
                (key, item.clone())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_missing_unexpected_and_changed_values() {
        let expected = json!({"a": 1, "b": {"c": [1, 2]}, "gone": true});
        let actual = json!({"a": 1.0, "b": {"c": [1, 3]}, "extra": "x"});
        let d: Vec<String> = differences(&expected, &actual)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "b.c[1]: expected 2, found 3",
                "gone: expected true, found (absent)",
                "extra: expected (absent), found \"x\""
            ]
        );
    }

    #[test]
    fn expecting_null_is_expecting_nothing_there() {
        let expected = json!({"owners": null});
        assert_eq!(differences(&expected, &json!({})), []);
        assert_eq!(differences(&expected, &json!({"owners": null})), []);
        assert_eq!(differences(&expected, &json!({"owners": []})).len(), 1);
    }

    #[test]
    fn directives_in_the_expectation_apply() {
        let expected = json!({"x-koreo-compare-as-set": ["s"], "s": [1, 2], "x-koreo-compare-as-map": {"m": ["k"]}, "m": [{"k": "a"}, {"k": "b"}]});
        let actual = json!({"s": [2, 1], "m": [{"k": "b"}, {"k": "a"}]});
        assert_eq!(differences(&expected, &actual), []);
    }
}
