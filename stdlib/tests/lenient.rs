//! Koreo's leniencies that existing files rely on.

use cel::Context;
use cel::objects::{Key, Map, Value};
use indexmap::IndexMap;
use std::sync::Arc;

fn eval(src: &str, inputs: Value) -> Result<Value, String> {
    let parsed = koreo_stdlib::parse(src).map_err(|e| e.to_string())?;
    let mut ctx = Context::with_env(koreo_stdlib::env());
    ctx.add_variable_from_value("inputs", inputs);
    Value::resolve(&parsed.ast, &ctx).map_err(|e| e.to_string())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let map: IndexMap<Key, Value> = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.to_string())), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

#[test]
fn has_is_false_when_a_parent_is_missing_or_null() {
    let inputs = map(vec![
        ("a", map(vec![("b", Value::Null)])),
        ("l", Value::List(Arc::new(vec![]))),
    ]);
    for (src, want) in [
        ("has(inputs.a.b)", true),
        ("has(inputs.a.b.c)", false),
        ("has(inputs.x.y.z)", false),
        ("has(inputs.l[0].name)", false),
        ("has(inputs.a.b.c) && inputs.a.b.c > 1", false),
    ] {
        assert_eq!(eval(src, inputs.clone()), Ok(Value::Bool(want)), "{src}");
    }
    // Outside has(), a missing key is still an error.
    assert!(eval("inputs.x.y", inputs).is_err());
}

#[test]
fn size_of_null_is_zero() {
    let inputs = map(vec![("s", Value::Null)]);
    assert_eq!(eval("inputs.s.size()", inputs.clone()), Ok(Value::Int(0)));
    assert_eq!(eval("size(inputs.s)", inputs), Ok(Value::Int(0)));
}
