//! Koreo's expression functions, in both call styles, through the shared environment.

use indexmap::IndexMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, Value};

/// JSON text as a CEL value, integers as `int` (`add_variable` would make them `uint`).
fn json(text: &str) -> Value {
    fn convert(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::Int(i),
                (None, Some(u), _) => Value::UInt(u),
                (_, _, f) => Value::Float(f.expect("a JSON number")),
            },
            J::String(s) => Value::String(Arc::new(s.clone())),
            J::Array(a) => Value::List(Arc::new(a.iter().map(convert).collect())),
            J::Object(o) => Value::Map(Map {
                map: Arc::new(
                    o.iter()
                        .map(|(k, v)| (Key::String(Arc::new(k.clone())), convert(v)))
                        .collect::<IndexMap<_, _>>(),
                ),
            }),
        }
    }
    convert(&serde_json::from_str(text).expect("test JSON"))
}

fn eval_with(src: &str, vars: &[(&str, Value)]) -> Result<Value, ExecutionError> {
    let program = koreo_stdlib::env()
        .compile(src)
        .unwrap_or_else(|e| panic!("`{src}` does not compile: {e}"));
    let mut ctx = Context::with_env(koreo_stdlib::env());
    for (name, value) in vars {
        ctx.add_variable_from_value(*name, value.clone());
    }
    program.execute(&ctx)
}

fn eval(src: &str) -> Result<Value, ExecutionError> {
    eval_with(src, &[])
}

/// Asserts that `src` evaluates to `true`; the expressions compare with CEL's `==`.
#[track_caller]
fn check(src: &str) {
    check_with(src, &[]);
}

#[track_caller]
fn check_with(src: &str, vars: &[(&str, Value)]) {
    match eval_with(src, vars) {
        Ok(Value::Bool(true)) => {}
        other => panic!("`{src}` gave {other:?}, expected true"),
    }
}

#[track_caller]
fn string(src: &str) -> String {
    match eval(src) {
        Ok(Value::String(s)) => s.to_string(),
        other => panic!("`{src}` gave {other:?}, expected a string"),
    }
}

/// Asserts that `src` fails in `function` with exactly `message`.
#[track_caller]
fn fails(src: &str, function: &str, message: &str) {
    fails_with(src, &[], function, message);
}

#[track_caller]
fn fails_with(src: &str, vars: &[(&str, Value)], function: &str, message: &str) {
    match eval_with(src, vars) {
        Err(ExecutionError::FunctionError {
            function: f,
            message: m,
        }) => {
            assert_eq!(f, function, "function of `{src}`");
            assert_eq!(m, message, "message of `{src}`");
        }
        other => panic!("`{src}` gave {other:?}, expected an error from {function}"),
    }
}

/// The message of the function error `src` fails with.
#[track_caller]
fn error_message(src: &str, function: &str) -> String {
    match eval(src) {
        Err(ExecutionError::FunctionError {
            function: f,
            message,
        }) if f == function => message,
        other => panic!("`{src}` gave {other:?}, expected an error from {function}"),
    }
}

/// Asserts that `src` is rejected by overload dispatch: wrong argument types.
#[track_caller]
fn no_overload(src: &str) {
    match eval(src) {
        Err(ExecutionError::NoSuchOverload(_)) => {}
        other => panic!("`{src}` gave {other:?}, expected no matching overload"),
    }
}

/// Both call styles of a one-argument function on `arg`: `f(arg)` and `arg.f()`.
fn styles(f: &str, arg: &str, rest: &str) -> [String; 2] {
    let sep = if rest.is_empty() { "" } else { ", " };
    [
        format!("{f}({arg}{sep}{rest})"),
        format!("({arg}).{f}({rest})"),
    ]
}

const DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "dev", "labels": {"app": "web"}},
    "spec": {"replicas": 3}}"#;

#[test]
fn self_ref_of_a_namespaced_object() {
    let vars = [("r", json(DEPLOYMENT))];
    for call in styles("self_ref", "r", "") {
        check_with(
            &format!(
                "{call} == {{'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': 'web', \
                 'namespace': 'dev'}}"
            ),
            &vars,
        );
    }
}

#[test]
fn self_ref_of_a_cluster_scoped_object_has_no_namespace() {
    let ns = json(r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}"#);
    let empty = json(
        r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev", "namespace": ""}}"#,
    );
    for r in [ns, empty] {
        let vars = [("r", r)];
        for call in styles("self_ref", "r", "") {
            check_with(
                &format!("{call} == {{'apiVersion': 'v1', 'kind': 'Namespace', 'name': 'dev'}}"),
                &vars,
            );
        }
    }
}

#[test]
fn self_ref_errors() {
    let cases = [
        (
            r#"{"kind": "K", "metadata": {"name": "n"}}"#,
            "Missing `apiVersion`.",
        ),
        (
            r#"{"apiVersion": "", "kind": "K", "metadata": {"name": "n"}}"#,
            "Missing `apiVersion`.",
        ),
        (
            r#"{"apiVersion": "v1", "metadata": {"name": "n"}}"#,
            "Missing `kind`.",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "K"}"#,
            "Missing `metadata`.",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "K", "metadata": {}}"#,
            "Missing `metadata`.",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "K", "metadata": {"namespace": "x"}}"#,
            "Missing `metadata.name`.",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "K", "metadata": {"name": null}}"#,
            "Missing `metadata.name`.",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "K", "metadata": "n"}"#,
            "`metadata` must be a map, not `string`.",
        ),
    ];
    for (resource, message) in cases {
        let vars = [("r", json(resource))];
        for call in styles("self_ref", "r", "") {
            fails_with(&call, &vars, "self_ref", message);
        }
    }
    no_overload("self_ref('x')");
    no_overload("'x'.self_ref()");
}

#[test]
fn to_ref_builds_a_name_reference() {
    for call in styles(
        "to_ref",
        "{'apiVersion': 'v1', 'kind': 'Secret', 'name': 's', 'namespace': 'dev', 'x': 1}",
        "",
    ) {
        check(&format!(
            "{call} == {{'apiVersion': 'v1', 'kind': 'Secret', 'name': 's', 'namespace': 'dev'}}"
        ));
    }
    // Falsy apiVersion, kind and namespace are left out.
    for call in styles(
        "to_ref",
        "{'apiVersion': '', 'kind': null, 'name': 's', 'namespace': ''}",
        "",
    ) {
        check(&format!("{call} == {{'name': 's'}}"));
    }
}

#[test]
fn to_ref_prefers_external() {
    for call in styles(
        "to_ref",
        "{'kind': 'Bucket', 'external': 'gs://b', 'name': 'n', 'namespace': 'dev'}",
        "",
    ) {
        check(&format!(
            "{call} == {{'kind': 'Bucket', 'external': 'gs://b'}}"
        ));
    }
}

#[test]
fn to_ref_errors() {
    for (arg, message) in [
        ("{'external': ''}", "`external` must contain a value."),
        (
            "{'external': null, 'name': 'n'}",
            "`external` must contain a value.",
        ),
        (
            "{'kind': 'K'}",
            "`external` or `name` are required to build a reference.",
        ),
        ("{'name': ''}", "`name` must contain a value."),
        ("{'name': null}", "`name` must contain a value."),
    ] {
        for call in styles("to_ref", arg, "") {
            fails(&call, "to_ref", message);
        }
    }
    no_overload("to_ref([])");
}

#[test]
fn group_ref_takes_the_group_of_api_version() {
    for call in styles(
        "group_ref",
        "{'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': 'web', 'namespace': 'dev'}",
        "",
    ) {
        check(&format!(
            "{call} == {{'apiGroup': 'apps', 'kind': 'Deployment', 'name': 'web', \
             'namespace': 'dev'}}"
        ));
    }
    // The core group is "", not "v1".
    for call in styles(
        "group_ref",
        "{'apiVersion': 'v1', 'kind': 'Secret', 'name': 's'}",
        "",
    ) {
        check(&format!(
            "{call} == {{'apiGroup': '', 'kind': 'Secret', 'name': 's'}}"
        ));
    }
}

#[test]
fn group_ref_api_group_choices() {
    for (arg, expected) in [
        (
            "{'apiGroup': 'x.io', 'apiVersion': 'apps/v1', 'name': 'n'}",
            "{'apiGroup': 'x.io', 'name': 'n'}",
        ),
        // An empty apiGroup falls back to apiVersion, and is kept when there is none.
        (
            "{'apiGroup': '', 'apiVersion': 'apps/v1', 'name': 'n'}",
            "{'apiGroup': 'apps', 'name': 'n'}",
        ),
        (
            "{'apiGroup': '', 'name': 'n'}",
            "{'apiGroup': '', 'name': 'n'}",
        ),
        ("{'apiGroup': null, 'name': 'n'}", "{'name': 'n'}"),
        ("{'kind': 'K', 'name': 'n'}", "{'kind': 'K', 'name': 'n'}"),
        (
            "{'apiVersion': 'a.b/v1', 'external': 'e', 'name': 'n'}",
            "{'apiGroup': 'a.b', 'external': 'e'}",
        ),
    ] {
        for call in styles("group_ref", arg, "") {
            check(&format!("{call} == {expected}"));
        }
    }
}

#[test]
fn group_ref_errors() {
    for (arg, message) in [
        ("{'external': ''}", "`external` must contain a value."),
        (
            "{'apiVersion': 'v1'}",
            "`external` or `name` are required to build a reference.",
        ),
        ("{'name': ''}", "`name` must contain a value."),
        (
            "{'apiVersion': 1, 'name': 'n'}",
            "`apiVersion` must be a string, not `int`.",
        ),
    ] {
        for call in styles("group_ref", arg, "") {
            fails(&call, "group_ref", message);
        }
    }
}

#[test]
fn kindless_ref_keeps_only_identity() {
    for (arg, expected) in [
        (
            "{'apiVersion': 'v1', 'kind': 'K', 'name': 'n', 'namespace': 'dev'}",
            "{'name': 'n', 'namespace': 'dev'}",
        ),
        ("{'name': 'n', 'namespace': ''}", "{'name': 'n'}"),
        (
            "{'kind': 'K', 'external': 'e', 'name': 'n'}",
            "{'external': 'e'}",
        ),
    ] {
        for call in styles("kindless_ref", arg, "") {
            check(&format!("{call} == {expected}"));
        }
    }
    for (arg, message) in [
        ("{'external': ''}", "`external` must contain a value."),
        (
            "{'kind': 'K'}",
            "`external` or `name` are required to build a reference.",
        ),
        ("{'name': ''}", "`name` must contain a value."),
    ] {
        for call in styles("kindless_ref", arg, "") {
            fails(&call, "kindless_ref", message);
        }
    }
}

#[test]
fn config_connect_ready_cases() {
    let ready = r#"{"type": "Ready", "reason": "UpToDate", "status": "True"}"#;
    let other = r#"{"type": "Other", "reason": "x", "status": "False"}"#;
    let cases = [
        (format!(r#"{{"status": {{"conditions": [{other}, {ready}]}}}}"#), true),
        (format!(r#"{{"status": {{"conditions": [{ready}, {ready}]}}}}"#), false),
        (
            r#"{"status": {"conditions": [{"type": "Ready", "reason": "UpToDate", "status": "False"}]}}"#
                .to_owned(),
            false,
        ),
        (
            r#"{"status": {"conditions": [{"type": "Ready", "reason": "Updating", "status": "True"}]}}"#
                .to_owned(),
            false,
        ),
        (format!(r#"{{"status": {{"conditions": [{other}]}}}}"#), false),
        (r#"{"status": {"conditions": []}}"#.to_owned(), false),
        (r#"{"status": {}}"#.to_owned(), false),
        (r#"{"status": {"conditions": "Ready"}}"#.to_owned(), false),
        (r#"{"status": null}"#.to_owned(), false),
        (r#"{}"#.to_owned(), false),
        (format!(r#"{{"status": {{"conditions": [1, "x", {ready}]}}}}"#), true),
    ];
    for (resource, expected) in cases {
        let vars = [("r", json(&resource))];
        for call in styles("config_connect_ready", "r", "") {
            check_with(&format!("{call} == {expected}"), &vars);
        }
    }
}

#[test]
fn overlay_merges_maps_deeply() {
    let vars = [("r", json(DEPLOYMENT))];
    for call in styles(
        "overlay",
        "r",
        "{'metadata': {'labels': {'tier': 'front'}}, 'spec': {'replicas': 5}}",
    ) {
        check_with(
            &format!(
                "{call} == {{'apiVersion': 'apps/v1', 'kind': 'Deployment', \
                 'metadata': {{'name': 'web', 'namespace': 'dev', \
                 'labels': {{'app': 'web', 'tier': 'front'}}}}, 'spec': {{'replicas': 5}}}}"
            ),
            &vars,
        );
    }
}

#[test]
fn overlay_replaces_everything_but_maps() {
    for (base, over, expected) in [
        ("{'a': [1, 2]}", "{'a': [3]}", "{'a': [3]}"),
        ("{'a': 1}", "{'a': {'b': 2}}", "{'a': {'b': 2}}"),
        ("{'a': {'b': 2}}", "{'a': 1}", "{'a': 1}"),
        ("{'a': {'b': 2}}", "{'a': null}", "{'a': null}"),
        ("{'a': 1}", "{}", "{'a': 1}"),
        ("{}", "{'a': {'b': {}}}", "{'a': {'b': {}}}"),
        // Dotted keys are keys, not paths.
        ("{'a': {'b': 1}}", "{'a.b': 2}", "{'a': {'b': 1}, 'a.b': 2}"),
        ("{1: 'x'}", "{1: 'y', 2: 'z'}", "{1: 'y', 2: 'z'}"),
    ] {
        for call in styles("overlay", base, over) {
            check(&format!("{call} == {expected}"));
        }
    }
    no_overload("overlay({}, [])");
    no_overload("[].overlay({})");
}

#[test]
fn flatten_global_is_strict() {
    check("flatten([[1, 2], [], [3, [4]]]) == [1, 2, 3, [4]]");
    check("flatten([]) == []");
    check("flatten([[{'a': 1}], ['b']]) == [{'a': 1}, 'b']");
    fails(
        "flatten([[1], 2])",
        "flatten",
        "expected a list of lists, but item 1 is of type `int`",
    );
    fails(
        "flatten([{'a': 1}])",
        "flatten",
        "expected a list of lists, but item 0 is of type `map`",
    );
}

#[test]
fn flatten_member_is_the_lists_extension() {
    check("[[1, 2], [], [3, [4]]].flatten() == [1, 2, 3, [4]]");
    check("[].flatten() == []");
    // The extension keeps non-list items instead of failing.
    check("[[1], 2].flatten() == [1, 2]");
}

#[test]
fn lower_and_upper_are_unicode() {
    for call in styles("lower", "'HeLLo ÀÉ'", "") {
        check(&format!("{call} == 'hello àé'"));
    }
    for call in styles("upper", "'straße é'", "") {
        check(&format!("{call} == 'STRASSE É'"));
    }
    check("lower('') == '' && ''.upper() == ''");
    no_overload("lower(1)");
}

#[test]
fn strip_removes_a_character_set() {
    for (s, chars, expected) in [
        ("'testinga'", "'testing'", "'a'"),
        ("'xxhixx'", "'x'", "'hi'"),
        ("'  a b  '", "' '", "'a b'"),
        ("'abc'", "''", "'abc'"),
        ("'aaa'", "'a'", "''"),
        ("''", "'x'", "''"),
        ("'éaé'", "'é'", "'a'"),
    ] {
        for call in styles("strip", s, chars) {
            check(&format!("{call} == {expected}"));
        }
    }
}

#[test]
fn rstrip_removes_a_character_set_at_the_end() {
    for (s, chars, expected) in [
        ("'testinga'", "'ga'", "'testin'"),
        ("'path///'", "'/'", "'path'"),
        ("'//path'", "'/'", "'//path'"),
        ("'aab'", "'ab'", "''"),
        ("'abc'", "''", "'abc'"),
    ] {
        for call in styles("rstrip", s, chars) {
            check(&format!("{call} == {expected}"));
        }
    }
}

#[test]
fn split_both_styles() {
    check("split('a.b.c', '.') == ['a', 'b', 'c']");
    check("'a.b.c'.split('.') == ['a', 'b', 'c']");
    check("split('', '.') == [''] && ''.split('.') == ['']");
    check("split('a::b', '::') == ['a', 'b']");
    check("split('.a.', '.') == ['', 'a', '']");
    fails(
        "split('a', '')",
        "split",
        "split separator may not be empty",
    );
    // The strings extension's member form splits into characters instead.
    check("'ab'.split('') == ['a', 'b']");
}

#[test]
fn split_first_and_last() {
    for (f, s, expected) in [
        ("split_first", "'a.b.c'", "'a'"),
        ("split_first", "'abc'", "'abc'"),
        ("split_first", "''", "''"),
        ("split_first", "'.a'", "''"),
        ("split_last", "'a.b.c'", "'c'"),
        ("split_last", "'abc'", "'abc'"),
        ("split_last", "''", "''"),
        ("split_last", "'a.'", "''"),
    ] {
        for call in styles(f, s, "'.'") {
            check(&format!("{call} == {expected}"));
        }
    }
    check("'a::b::c'.split_first('::') == 'a' && split_last('a::b::c', '::') == 'c'");
    for f in ["split_first", "split_last"] {
        for call in styles(f, "'a.b'", "''") {
            fails(&call, f, "split separator may not be empty");
        }
        // The separator is checked first, as in Koreo.
        fails(
            &format!("{f}('', '')"),
            f,
            "split separator may not be empty",
        );
    }
}

#[test]
fn split_index_uses_python_indexing() {
    for (index, expected) in [("0", "'a'"), ("2", "'c'"), ("-1", "'c'"), ("-3", "'a'")] {
        for call in styles("split_index", "'a.b.c'", &format!("'.', {index}")) {
            check(&format!("{call} == {expected}"));
        }
    }
    check("split_index('', '.', 0) == ''");
    for index in ["3", "-4", "9223372036854775807", "-9223372036854775807 - 1"] {
        for call in styles("split_index", "'a.b.c'", &format!("'.', {index}")) {
            fails(&call, "split_index", "index out of bounds on split");
        }
    }
    fails(
        "'a.b'.split_index('', 0)",
        "split_index",
        "split separator may not be empty",
    );
    no_overload("split_index('a.b', '.', 1u)");
}

#[test]
fn to_json_sorts_keys_and_formats_like_python() {
    for (value, expected) in [
        ("{'b': [1, 2], 'a': 1}", r#"{"a": 1, "b": [1, 2]}"#),
        (
            "{'z': {'y': true, 'x': false}}",
            r#"{"z": {"x": false, "y": true}}"#,
        ),
        ("null", "null"),
        ("true", "true"),
        ("[]", "[]"),
        ("{}", "{}"),
        ("-7", "-7"),
        ("18446744073709551615u", "18446744073709551615"),
        ("'hi'", r#""hi""#),
        ("[1.0, 1.5, -0.0, 0.0]", "[1.0, 1.5, -0.0, 0.0]"),
        ("[100.0, 123456789.125, 0.1]", "[100.0, 123456789.125, 0.1]"),
        (
            "[1e16, 1.5e16, 1e15, 9999999999999998.0]",
            "[1e+16, 1.5e+16, 1000000000000000.0, 9999999999999998.0]",
        ),
        (
            "[0.0001, 0.00001, 1.25e-7, 1e100, 5e-324]",
            "[0.0001, 1e-05, 1.25e-07, 1e+100, 5e-324]",
        ),
        ("[-2.5e-5, -1e22]", "[-2.5e-05, -1e+22]"),
        ("{2: 'a', 10: 'b'}", r#"{"2": "a", "10": "b"}"#),
        ("{true: 1}", r#"{"true": 1}"#),
    ] {
        for call in styles("to_json", value, "") {
            assert_eq!(string(&call), expected, "{call}");
        }
    }
}

#[test]
fn to_json_escapes_like_python() {
    assert_eq!(string(r#"to_json('a"b\\c/')"#), r#""a\"b\\c/""#);
    assert_eq!(
        string(r"'\n\r\t\b\f\x01\x7f'.to_json()"),
        r#""\n\r\t\b\f\u0001\u007f""#
    );
    assert_eq!(string("to_json('é€')"), r#""\u00e9\u20ac""#);
    assert_eq!(string("to_json('😀')"), r#""\ud83d\ude00""#);
    assert_eq!(string("to_json({'é': 1})"), r#"{"\u00e9": 1}"#);
}

#[test]
fn to_json_errors() {
    for call in styles("to_json", "b'x'", "") {
        fails(
            &call,
            "to_json",
            "a value of type `bytes` cannot be converted to JSON",
        );
    }
    fails(
        "to_json([timestamp('2024-01-01T00:00:00Z')])",
        "to_json",
        "a value of type `google.protobuf.Timestamp` cannot be converted to JSON",
    );
    fails(
        "to_json({'a': double('NaN')})",
        "to_json",
        "NaN cannot be represented in JSON",
    );
    fails(
        "to_json(double('-Infinity'))",
        "to_json",
        "-inf cannot be represented in JSON",
    );
}

#[test]
fn from_json_parses_with_int_integers() {
    for call in styles(
        "from_json",
        r#"'{"a": [1, 2.5, "x", null, true], "b": {}}'"#,
        "",
    ) {
        check(&format!(
            "{call} == {{'a': [1, 2.5, 'x', null, true], 'b': {{}}}}"
        ));
        check(&format!("type({call}.a[0]) == int"));
        check(&format!("type({call}.a[1]) == double"));
    }
    check("type(from_json('1.0')) == double");
    check("type(from_json('-3')) == int");
    check("type(from_json('18446744073709551615')) == uint");
    check("from_json('\"\\\\u00e9\"') == 'é'");
    check("'[]'.from_json() == [] && from_json('null') == null");
}

#[test]
fn from_json_round_trips_to_json() {
    let vars = [("r", json(DEPLOYMENT))];
    check_with("from_json(to_json(r)) == r", &vars);
    check_with("r.to_json().from_json().to_json() == r.to_json()", &vars);
}

#[test]
fn from_json_errors() {
    for call in styles("from_json", "'{\"a\": '", "") {
        let message = error_message(&call, "from_json");
        assert!(
            message.starts_with("JSON Decoding error: EOF while parsing"),
            "{message}"
        );
    }
    let message = error_message("from_json('')", "from_json");
    assert!(message.starts_with("JSON Decoding error: "), "{message}");
    let message = error_message("from_json('{} x')", "from_json");
    assert!(message.contains("trailing characters"), "{message}");
}

#[test]
fn base64_round_trips_utf8() {
    for (plain, encoded) in [
        ("'hello'", "'aGVsbG8='"),
        ("''", "''"),
        ("'é'", "'w6k='"),
        ("'a?>'", "'YT8+'"),
    ] {
        for call in styles("b64encode", plain, "") {
            check(&format!("{call} == {encoded}"));
        }
        for call in styles("b64decode", encoded, "") {
            check(&format!("{call} == {plain}"));
        }
    }
}

#[test]
fn base64_errors() {
    for call in styles("b64decode", "'abc'", "") {
        let message = error_message(&call, "b64decode");
        assert!(message.starts_with("invalid base64: "), "{message}");
    }
    // The URL-safe alphabet is not accepted.
    let message = error_message("b64decode('YT8-')", "b64decode");
    assert!(message.starts_with("invalid base64: "), "{message}");
    fails(
        "b64decode('/w==')",
        "b64decode",
        "the decoded bytes are not UTF-8 text",
    );
}

#[test]
fn replace_both_styles() {
    check("replace('a-b-c', '-', '.') == 'a.b.c'");
    check("'a-b-c'.replace('-', '.') == 'a.b.c'");
    check("replace('aaa', 'a', 'bb') == 'bbbbbb'");
    check("replace('abc', 'x', 'y') == 'abc'");
    check("replace('ab', '', '-') == '-a-b-'");
    no_overload("replace('a', 'b')");
}

#[test]
fn keys_and_values_keep_the_map_order() {
    for call in styles("keys", "{'b': 1, 'a': 2, 'c': 3}", "") {
        check(&format!("{call} == ['b', 'a', 'c']"));
    }
    for call in styles("values", "{'b': 1, 'a': 2, 'c': 3}", "") {
        check(&format!("{call} == [1, 2, 3]"));
    }
    check("{10: 'x', 2: 'y'}.keys() == [10, 2] && {10: 'x', 2: 'y'}.values() == ['x', 'y']");
    // Comprehensions over a map visit its keys in the same order.
    check("{'z': 1, 'a': 2, 'm': 3}.map(k, k) == ['z', 'a', 'm']");
    check("keys({}) == [] && {}.values() == []");
    let vars = [("r", json(DEPLOYMENT))];
    check_with(
        "r.keys() == ['apiVersion', 'kind', 'metadata', 'spec'] && r.metadata.labels.values() == ['web']",
        &vars,
    );
    no_overload("keys([1])");
}

#[test]
fn documented_examples_run() {
    let mut names = std::collections::BTreeSet::new();
    for doc in koreo_stdlib::FUNCTIONS {
        assert!(names.insert(doc.name), "{} documented twice", doc.name);
        assert!(
            doc.signature.starts_with(&format!("{}(", doc.name)),
            "{}",
            doc.signature
        );
        assert!(
            doc.example.contains(doc.name),
            "{} example: {}",
            doc.name,
            doc.example
        );
        if let Err(e) = eval(doc.example) {
            panic!("example of {}: `{}` failed: {e}", doc.name, doc.example);
        }
    }
    assert_eq!(names.len(), 22);
}

#[test]
fn documented_example_results() {
    assert_eq!(
        string("to_json({'b': [1, true], 'a': null})"),
        r#"{"a": null, "b": [1, true]}"#
    );
    check("'a.b.c'.split_index('.', -2) == 'b'");
    check("{'a': {'b': 1, 'c': 2}}.overlay({'a': {'c': 3}}) == {'a': {'b': 1, 'c': 3}}");
}

/// Every example in `docs/stdlib.md` holds: each line of a code block (with its indented
/// continuation lines) is an expression that evaluates to `true`.
#[test]
fn docs_examples_hold() {
    let docs = include_str!("../../docs/stdlib.md");
    let mut count = 0;
    for block in docs.split("```").skip(1).step_by(2) {
        let mut exprs: Vec<String> = Vec::new();
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            match exprs.last_mut() {
                Some(last) if line.starts_with(' ') => last.push_str(line),
                _ => exprs.push(line.to_owned()),
            }
        }
        for expr in exprs {
            check(&expr);
            count += 1;
        }
    }
    assert!(count >= 35, "only {count} examples found");
}
