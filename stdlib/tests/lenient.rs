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

#[test]
fn has_takes_an_index_for_keys_a_field_cannot_name() {
    let labels = map(vec![(
        "acme.example.com/team",
        Value::String(Arc::new("a".into())),
    )]);
    let inputs = map(vec![
        ("metadata", map(vec![("labels", labels)])),
        ("empty", map(vec![])),
        ("l", Value::List(Arc::new(vec![Value::Int(1)]))),
    ]);
    for (src, want) in [
        ("has(inputs.metadata.labels['acme.example.com/team'])", true),
        (
            "has(inputs.metadata.labels['acme.example.com/other'])",
            false,
        ),
        ("has(inputs.empty.labels['acme.example.com/team'])", false),
        ("has(inputs.missing.labels['x'])", false),
        ("has(inputs.l[0])", true),
        ("has(inputs.l[3])", false),
        (
            "has(inputs['metadata'].labels['acme.example.com/team'])",
            true,
        ),
    ] {
        assert_eq!(eval(src, inputs.clone()), Ok(Value::Bool(want)), "{src}");
    }
}

#[test]
fn escapes_cel_does_not_define_are_kept_as_written() {
    for (src, want) in [
        (r#""^[a-z0-9.-]+\.example$""#, r"^[a-z0-9.-]+\.example$"),
        (r#"'\d+\s\-\w\('"#, r"\d+\s\-\w\("),
        (r#""tab\there\n""#, "tab\there\n"),
        (r#""\x41\u00e9\101""#, "Aé\u{41}"),
    ] {
        assert_eq!(
            eval(src, Value::Null),
            Ok(Value::String(Arc::new(want.into()))),
            "{src}"
        );
    }
    let regex = r#"'orders.example'.matches("^[a-z0-9.-]+\.example$")"#;
    assert_eq!(eval(regex, Value::Null), Ok(Value::Bool(true)));
    assert_eq!(
        eval(
            r#"'ordersXexample'.matches("^[a-z]+\.example$")"#,
            Value::Null
        ),
        Ok(Value::Bool(false))
    );
}

#[test]
fn regexes_have_look_around_and_backreferences_as_in_koreo() {
    for (src, want) in [
        (r#"'a.b-c'.matches('^(?!.*\.\.)[a-z0-9.-]+$')"#, true),
        (r#"'a..b'.matches('^(?!.*\.\.)[a-z0-9.-]+$')"#, false),
        (r#"'foobar'.matches('(?<=foo)bar')"#, true),
        (r#"'abab'.matches('^(ab)\1$')"#, true),
        (r#"'abba'.matches('^(ab)\1$')"#, false),
    ] {
        assert_eq!(eval(src, Value::Null), Ok(Value::Bool(want)), "{src}");
    }
}

#[test]
fn a_regex_that_backtracks_without_end_is_stopped() {
    // A backreference in a repeated group: every way to split the a's is tried.
    let src = format!("'{}b'.matches('^(?:(a)\\1?)*$')", "a".repeat(30));
    let error = eval(&src, Value::Null).unwrap_err();
    assert!(error.contains("backtracks more than"), "{error}");
}
