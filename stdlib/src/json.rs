//! JSON as CEL values, the one place that decides how: integers are `int` (only those above
//! `i64::MAX` are `uint`), other numbers `double`, objects maps in their order. Values bound
//! into an evaluation are borrowed from the caller's JSON; `from_json` builds owned ones.

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use indexmap::IndexMap;
use serde_json::{Number, Value as Json};

/// A CEL value that borrows the strings of `json`.
pub fn json_to_val(json: &Json) -> Box<dyn Val + '_> {
    match json {
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        Json::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), json_to_val(v)))
                .collect::<IndexMap<_, _>>(),
        )),
        scalar => scalar_to_val(scalar),
    }
}

/// A CEL value that owns everything, for values built during an evaluation.
pub fn owned_json_to_val<'v>(json: Json) -> Box<dyn Val + 'v> {
    match json {
        Json::String(s) => Box::new(CelString::from(s)),
        Json::Array(items) => Box::new(CelList::from(
            items.into_iter().map(owned_json_to_val).collect::<Vec<_>>(),
        )),
        Json::Object(entries) => Box::new(CelMap::from(
            entries
                .into_iter()
                .map(|(k, v)| (CelMapKey::from(k), owned_json_to_val(v)))
                .collect::<IndexMap<_, _>>(),
        )),
        scalar => scalar_to_val(&scalar),
    }
}

/// Null, booleans and numbers; strings, lists and maps are the callers'.
fn scalar_to_val(json: &Json) -> Box<dyn Val + 'static> {
    match json {
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => number_to_val(n),
        _ => Box::new(CelNull),
    }
}

fn number_to_val(n: &Number) -> Box<dyn Val + 'static> {
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_int_and_only_huge_ones_uint() {
        for (value, type_name) in [
            (json!(3), "int"),
            (json!(-3), "int"),
            (json!(u64::MAX), "uint"),
            (json!(1.5), "double"),
            (json!(null), "null_type"),
            (json!("s"), "string"),
            (json!([1]), "list"),
            (json!({"a": 1}), "map"),
        ] {
            let borrowed = json_to_val(&value).get_type().name().to_string();
            let owned = owned_json_to_val(value.clone())
                .get_type()
                .name()
                .to_string();
            assert_eq!(
                (borrowed.as_str(), owned.as_str()),
                (type_name, type_name),
                "{value}"
            );
        }
    }
}
