//! Property tests: whatever text or data comes in, loading, compiling and evaluating never panic,
//! and every error that is reported has a position in a file (line >= 1).
//!
//! A panic counts even when a `catch_unwind` inside koreo-lang turns it into an error: a panic
//! hook counts every panic on the thread running the case, and each case checks that none
//! happened. Cases run on a thread with a large stack (see `STACK`): these tests look for panics,
//! not for how deep the CEL parser may recurse on a small stack.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Once};

use koreo_lang::eval::{self, Definitions, Outcome};
use koreo_lang::expr::{Expr, Scope};
use koreo_lang::model::{Definition, ResourceTemplate, ValueFunction};
use koreo_lang::source::Diagnostic;
use koreo_lang::{Workspace, analysis};
use proptest::collection::vec;
use proptest::prelude::*;

#[path = "../../test-support/shared.rs"]
mod shared;
use proptest::sample::select;
use serde_json::{Map, Value as Json, json};

/// Cases per property: 256 in CI; `PROPTEST_CASES=100000` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

// ---------------------------------------------------------------------------------------------
// Panic detection

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` and fails the case if anything panicked on this thread meanwhile, caught or not.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    PANICS.with(|p| p.set(0));
    let out = f();
    let panics = PANICS.with(Cell::get);
    prop_assert_eq!(
        panics,
        0,
        "{} panicked (the panic was caught and hidden)",
        what
    );
    Ok(out)
}

/// Stack for each case. The CEL parser and interpreter recurse once per nesting level and per
/// link of an operator chain, with frames of tens of kilobytes in a debug build: on the test
/// harness's 2 MiB threads, about 20 nested brackets already overflow. The CEL conformance test
/// runs on a thread this size for the same reason.
const STACK: usize = 64 << 20;

/// Runs one case on a thread with `STACK` bytes of stack.
fn on_big_stack(
    case: impl FnOnce() -> Result<(), TestCaseError> + Send,
) -> Result<(), TestCaseError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, case)
            .expect("spawn a thread for the case")
            .join()
            .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
    })
}

fn check_positions<'d>(
    diags: impl IntoIterator<Item = &'d Diagnostic>,
) -> Result<(), TestCaseError> {
    for d in diags {
        prop_assert!(d.location.span.start.line >= 1, "no line in `{}`", d);
    }
    Ok(())
}

fn check_outcome(outcome: &Outcome) -> Result<(), TestCaseError> {
    if let Some(at) = outcome.location() {
        prop_assert!(at.span.start.line >= 1, "no line in `{}`", outcome);
    }
    Ok(())
}

/// Loads a text and checks it across definitions, as `koreo check` does.
fn load_and_check(text: &str) -> Result<Workspace, TestCaseError> {
    let (ws, more) = no_panic("loading", || {
        let ws = Workspace::load_str("fuzz.koreo", text);
        let more = analysis::check(&ws);
        (ws, more)
    })?;
    check_positions(&ws.diagnostics)?;
    check_positions(&more)?;
    Ok(ws)
}

// ---------------------------------------------------------------------------------------------
// Text strategies

const YAML_PUNCTUATION: &str = ":-[]{}&*!|>'\"%@#,?";

/// Pieces of Koreo YAML, so that random text gets past the YAML parser into the decoders.
const YAML_TOKENS: &[&str] = &[
    "apiVersion: koreo.dev/v1beta1\n",
    "apiVersion: koreo.dev/v1\n",
    "kind: ValueFunction\n",
    "kind: ResourceFunction\n",
    "kind: ResourceTemplate\n",
    "kind: Workflow\n",
    "kind: FunctionTest\n",
    "metadata:\n  name: fuzz\n",
    "metadata: {name: x, namespace: y}\n",
    "spec:\n",
    "  ",
    "    ",
    "- ",
    ": ",
    "\n",
    "---\n",
    "...\n",
    "=inputs.a",
    "=locals.b + 1",
    "=resource.spec",
    "=",
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "!!float ",
    "!!bool ",
    "<<: ",
    "|\n",
    ">-\n",
    "? ",
    "preconditions:\n",
    "postconditions:\n",
    "assert: ",
    "permFail: {message: m}\n",
    "retry: {message: m, delay: 5}\n",
    "locals:\n",
    "return:\n",
    "apiConfig: {apiVersion: v1, kind: K, name: n}\n",
    "resource:\n",
    "template:\n",
    "steps:\n",
    "label: s\n",
    "ref: {kind: ValueFunction, name: fuzz}\n",
    "refSwitch:\n",
    "inputs:\n",
    "forEach: {itemIn: =inputs.l, inputKey: k}\n",
    "testCases:\n",
    "functionRef: {kind: ValueFunction, name: fuzz}\n",
    "expectReturn: {}\n",
    "x-koreo-compare-as-set: [a]\n",
    "null",
    "~",
    "9223372036854775808",
    "0x",
    ".inf",
    "'",
    "\"",
    "#",
    "%YAML 1.2\n",
    "\t",
    "\r\n",
    "\u{feff}",
    "é",
];

fn yaml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        2 => Just('\n'),
        2 => Just(' '),
        1 => Just('\t'),
        3 => select(YAML_PUNCTUATION.chars().collect::<Vec<_>>()),
    ]
}

fn yaml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        select(YAML_TOKENS).prop_map(str::to_string),
        yaml_char().prop_map(String::from),
    ]
}

fn yaml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(yaml_char(), 0..200).prop_map(|chars| chars.into_iter().collect()),
        vec(yaml_piece(), 0..80).prop_map(|pieces| pieces.concat()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Conformance documents and their mutations

/// The Koreo files to mutate.
fn conformance_files() -> &'static [(PathBuf, String)] {
    static FILES: LazyLock<Vec<(PathBuf, String)>> = LazyLock::new(|| {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
            for entry in std::fs::read_dir(dir).expect("the conformance folder is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "koreo") {
                    let text = std::fs::read_to_string(&path).expect("conformance files are text");
                    out.push((path, text));
                }
            }
        }
        // Our examples always; the conformance corpus written by others when it is here.
        let mut files = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
            &mut files,
        );
        if let Some(corpus) = shared::shared("conformance") {
            walk(&corpus, &mut files);
        }
        files.sort();
        assert!(!files.is_empty(), "no .koreo files to mutate");
        files
    });
    &FILES
}

#[derive(Clone, Debug)]
enum Edit {
    /// Deletes up to `len` characters from `at`.
    Delete {
        at: usize,
        len: usize,
    },
    DuplicateLine {
        line: usize,
    },
    Insert {
        at: usize,
        text: String,
    },
    SwapLines {
        a: usize,
        b: usize,
    },
    /// Adds (positive) or removes (negative) leading spaces, or turns them into a tab (0).
    Indent {
        line: usize,
        by: i8,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, 1..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        at.prop_map(|line| Edit::DuplicateLine { line }),
        (at, vec(yaml_piece(), 1..4)).prop_map(|(at, p)| Edit::Insert {
            at,
            text: p.concat()
        }),
        (at, at).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        (at, -4..=4i8).prop_map(|(line, by)| Edit::Indent { line, by }),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match edit {
        Edit::Delete { at, len } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            return chars[..at].iter().chain(&chars[end..]).collect();
        }
        Edit::Insert { at, text: insert } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(insert);
            out.extend(&chars[at..]);
            return out;
        }
        Edit::DuplicateLine { line } => {
            let line = line % n;
            lines.insert(line, lines[line].clone());
        }
        Edit::SwapLines { a, b } => lines.swap(a % n, b % n),
        Edit::Indent { line, by } => {
            let l = &mut lines[line % n];
            let content = l.trim_start_matches(' ');
            let indent = l.len() - content.len();
            let indent = match by {
                0 => {
                    *l = format!("\t{content}");
                    return lines.join("\n");
                }
                by if *by > 0 => indent + *by as usize,
                by => indent.saturating_sub(by.unsigned_abs() as usize),
            };
            *l = format!("{}{content}", " ".repeat(indent));
        }
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// JSON values

const KEYS: &[&str] = &[
    "a",
    "b",
    "c",
    "d",
    "n",
    "s",
    "l",
    "name",
    "items",
    "spec",
    "metadata",
    "values",
    "int",
    "string",
    "enabled",
    "validators",
    "skip",
    "status",
    "conditions",
    "type",
    "kind",
    "apiVersion",
    "namespace",
    "x-koreo-compare-as-set",
    "",
];

fn json_leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-3i64..=3).prop_map(Json::from),
        select(vec![i64::MIN, i64::MAX, -1, 1 << 32, i32::MAX as i64 + 1]).prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        select(vec![
            "",
            "a",
            "a.b.c",
            "A-B",
            "True",
            "1",
            "-1",
            "1.5",
            "1s",
            "10m",
            "2024-01-01T00:00:00Z",
            "{\"a\": 1}",
            "[1,",
            "aGVsbG8=",
            "====",
            "é",
            "💥",
            "\u{0}",
        ])
        .prop_map(Json::from),
        "\\PC{0,12}".prop_map(Json::String),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Json::Array),
            vec((select(KEYS), inner), 0..6).prop_map(|entries| {
                Json::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A value with `leaf` at a random path of KEYS and indexes: reaches the deep fields that
/// functions read.
fn json_at_path() -> impl Strategy<Value = Json> {
    (
        vec(
            prop_oneof![select(KEYS).prop_map(Ok), (0..3usize).prop_map(Err)],
            0..6,
        ),
        json_value(),
    )
        .prop_map(|(path, leaf)| {
            path.into_iter().rev().fold(leaf, |inner, step| match step {
                Ok(key) => json!({ key: inner }),
                Err(index) => Json::Array(vec![inner; index + 1]),
            })
        })
}

/// An object with many of the keys functions read, each holding anything.
fn json_object() -> impl Strategy<Value = Json> {
    vec(
        (select(KEYS), prop_oneof![json_value(), json_at_path()]),
        0..12,
    )
    .prop_map(|entries| {
        Json::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

fn json_string() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => select(vec![
            "", "a", "a.b.c", ".", "A-B", "x", "1", "1.5", "1s", "-90m", "1h2m3.5s", "9999999999h",
            "2024-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "UTC",
            "America/New_York", "{\"a\": 1}", "[1,", "aGVsbG8=", "====", "%s %d", "%.3f", "[a-z]+",
            "(", "é", "💥", "a\u{0}b",
        ])
        .prop_map(Json::from),
        1 => "\\PC{0,12}".prop_map(Json::String),
    ]
}

fn json_int() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => (-4i64..8).prop_map(Json::from),
        1 => select(vec![i64::MIN, i64::MAX, i64::MIN + 1, 1 << 40]).prop_map(Json::from),
        1 => any::<u64>().prop_map(Json::from),
    ]
}

/// Inputs where the usual keys mostly hold the type functions expect, so that evaluation gets
/// past the first field access into the functions themselves.
fn typed_inputs() -> impl Strategy<Value = Json> {
    let string = || prop_oneof![4 => json_string(), 1 => json_leaf()];
    let int = || prop_oneof![4 => json_int(), 1 => json_leaf()];
    (
        (string(), string(), string(), int(), int()),
        (
            json_leaf(),
            vec(json_leaf(), 0..5),
            vec(json_object(), 0..3),
        ),
        (
            json_value(),
            json_object(),
            vec((select(KEYS), string()), 0..4),
        ),
    )
        .prop_map(
            |((s, name, kind, n, d), (f, l, items), (leaf, spec, labels))| {
                let labels: Map<_, _> = labels
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                json!({
                    "s": s, "name": name, "kind": kind, "n": n, "d": d, "f": f, "l": l,
                    "items": items,
                    "a": {"b": {"c": [{"d": leaf}]}},
                    "spec": spec,
                    "metadata": {"name": name, "namespace": kind, "labels": labels},
                    "values": {"string": s, "int": n},
                })
            },
        )
}

fn inputs() -> impl Strategy<Value = Json> {
    prop_oneof![
        1 => json_value(),
        1 => json_at_path(),
        2 => json_object(),
        4 => typed_inputs(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Expressions

const FIELDS: &[&str] = &[
    "a",
    "b",
    "n",
    "s",
    "l",
    "name",
    "items",
    "spec",
    "metadata",
    "values",
    "int",
    "status",
    "`x-koreo-compare-as-set`",
    "`a.b`",
    "kind",
];

fn expr_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["inputs", "locals", "resource", "x", "y", "undefined_name"])
            .prop_map(str::to_string),
        2 => (select(vec!["inputs", "resource"]), select(FIELDS)).prop_map(|(r, f)| format!("{r}.{f}")),
        2 => select(vec![
            "0", "1", "-1", "2", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
            "0u", "18446744073709551615u", "1.5", "-0.0", "1e308", "0x10", "true", "false", "null",
        ])
        .prop_map(str::to_string),
        2 => select(vec![
            "''", "'a'", "'a.b.c'", "\"A-B\"", "'.'", "'=='", "'é💥'", "r'\\d'", "b'xy'",
            "'1s'", "'-5m'", "'2024-01-01T00:00:00Z'", "'{\"a\": [1]}'", "'aGk='",
            "'\\u00e9'", "'''x'''", "'[a-z]+'", "'('",
        ])
        .prop_map(str::to_string),
        1 => select(vec!["[]", "{}", "[1, 2, 3]", "{'a': 1, 'b': 'x'}", "int", "string"])
            .prop_map(str::to_string),
    ]
}

const UNARY_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "to_ref",
    "self_ref",
    "group_ref",
    "kindless_ref",
    "config_connect_ready",
    "keys",
    "values",
    "flatten",
    "to_json",
    "from_json",
    "b64encode",
    "b64decode",
    "size",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "bytes",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "math.abs",
    "math.ceil",
    "math.sign",
    "math.isNaN",
    "base64.encode",
    "base64.decode",
    "lists.range",
];

const BINARY_FUNCTIONS: &[&str] = &[
    "overlay",
    "split",
    "split_first",
    "split_last",
    "strip",
    "rstrip",
    "math.greatest",
    "math.least",
];

const METHODS: &[&str] = &[
    "lower()",
    "upper()",
    "to_json()",
    "from_json()",
    "keys()",
    "values()",
    "b64encode()",
    "b64decode()",
    "size()",
    "flatten()",
    "reverse()",
    "distinct()",
    "sort()",
    "trim()",
    "lowerAscii()",
    "upperAscii()",
    "getSeconds()",
    "getFullYear()",
    "getHours('UTC')",
    "orValue(1)",
    "hasValue()",
    "value()",
];

const MEMBER_FUNCTIONS: &[&str] = &[
    "split_first",
    "split_last",
    "strip",
    "rstrip",
    "overlay",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "indexOf",
    "lastIndexOf",
    "charAt",
    "substring",
    "split",
    "join",
    "replace",
    "slice",
    "format",
    "sortBy",
];

const BINARY_OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in",
];

fn expression() -> impl Strategy<Value = String> {
    expr_leaf().prop_recursive(5, 40, 3, |e| {
        let two = (e.clone(), e.clone());
        prop_oneof![
            (e.clone(), select(FIELDS)).prop_map(|(a, f)| format!("{a}.{f}")),
            (e.clone(), select(FIELDS)).prop_map(|(a, f)| format!("{a}.?{f}")),
            two.clone().prop_map(|(a, b)| format!("{a}[{b}]")),
            two.clone().prop_map(|(a, b)| format!("{a}[?{b}]")),
            (e.clone(), select(BINARY_OPERATORS), e.clone())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (select(vec!["!", "-", "!!", "--"]), e.clone()).prop_map(|(op, a)| format!("{op}{a}")),
            (e.clone(), e.clone(), e.clone()).prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
            (e.clone(), select(FIELDS)).prop_map(|(a, f)| format!("has({a}.{f})")),
            (select(UNARY_FUNCTIONS), e.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            (select(BINARY_FUNCTIONS), two.clone())
                .prop_map(|(f, (a, b))| format!("{f}({a}, {b})")),
            (e.clone(), select(METHODS)).prop_map(|(a, m)| format!("{a}.{m}")),
            (e.clone(), select(MEMBER_FUNCTIONS), vec(e.clone(), 0..3))
                .prop_map(|(a, f, args)| format!("{a}.{f}({})", args.join(", "))),
            (e.clone(), e.clone(), e.clone())
                .prop_map(|(s, sep, i)| format!("split_index({s}, {sep}, {i})")),
            (e.clone(), e.clone(), e.clone())
                .prop_map(|(s, a, b)| format!("replace({s}, {a}, {b})")),
            (
                e.clone(),
                select(vec!["map", "filter", "all", "exists", "exists_one"]),
                e.clone()
            )
                .prop_map(|(a, m, body)| format!("{a}.{m}(x, {body})")),
            (e.clone(), e.clone(), e.clone())
                .prop_map(|(a, c, body)| format!("{a}.map(x, {c}, {body})")),
            (
                e.clone(),
                select(vec!["all", "exists", "transformList", "transformMap"]),
                e.clone()
            )
                .prop_map(|(a, m, body)| format!("{a}.{m}(x, y, {body})")),
            two.clone()
                .prop_map(|(v, body)| format!("cel.bind(x, {v}, {body})")),
            vec(e.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            vec(two, 0..3).prop_map(|entries| {
                let entries: Vec<_> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", entries.join(", "))
            }),
        ]
    })
}

fn expression_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => expression(),
        1 => "[ -~]{0,60}",
        1 => "\\PC{0,40}",
        1 => vec(prop_oneof![expression(), "[ -~\n]{0,3}"], 1..5).prop_map(|parts| parts.concat()),
    ]
}

/// Compiles `text` and, when it compiles, evaluates it with `inputs` and `locals` bound.
fn compile_and_evaluate(text: &str, inputs: &Json, locals: &Json) -> Result<(), TestCaseError> {
    match no_panic("compiling", || Expr::compile_str(text))? {
        Err(d) => check_positions([&d]),
        Ok(expr) => {
            let result = no_panic("evaluating", || {
                let scope = Scope::new()
                    .with("inputs", inputs)
                    .with("locals", locals)
                    .with("resource", inputs)
                    .with("x", locals)
                    .with("y", inputs);
                expr.eval(&scope)
            })?;
            if let Err(e) = result {
                prop_assert!(e.location.span.start.line >= 1, "no line in `{}`", e);
            }
            Ok(())
        }
    }
}

/// Deep nesting (past the parser's limit of 96) and long operator chains.
fn deep_expression() -> impl Strategy<Value = String> {
    let nest = select(vec![
        ("(", ")"),
        ("[", "]"),
        ("size(", ")"),
        ("{'a': ", "}"),
        ("inputs.l[", "]"),
        ("cel.bind(x, 1, ", ")"),
        ("[1].map(x, ", ")"),
        ("true ? ", " : 0"),
        ("-", ""),
        ("!", ""),
    ]);
    let link = select(vec![
        ".a",
        "[0]",
        " + 1",
        " * inputs.n",
        ".lower()",
        " && true",
        " || x",
        ".map(y, y)",
        ".?a",
        "[?0]",
        ".size()",
        " == 1",
        " ? 1 : 2",
    ]);
    prop_oneof![
        (nest, 1..110usize, expr_leaf()).prop_map(|((open, close), n, leaf)| {
            format!("{}{leaf}{}", open.repeat(n), close.repeat(n))
        }),
        (expr_leaf(), link, 1..300usize).prop_map(|(leaf, link, n)| leaf + &link.repeat(n)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Koreo-shaped documents: valid YAML with the fields Koreo reads, holding anything

const SPEC_KEYS: &[&str] = &[
    "abandon",
    "annotations",
    "apiConfig",
    "apiGroup",
    "apiVersion",
    "assert",
    "case",
    "cases",
    "condition",
    "context",
    "crdRef",
    "create",
    "currentResource",
    "default",
    "delay",
    "delete",
    "deleteIfExists",
    "depSkip",
    "destroy",
    "enabled",
    "expectDelete",
    "expectOutcome",
    "expectResource",
    "expectReturn",
    "forEach",
    "functionRef",
    "inputKey",
    "inputOverrides",
    "inputs",
    "itemIn",
    "kind",
    "label",
    "labels",
    "locals",
    "message",
    "metadata",
    "name",
    "namespace",
    "namespaced",
    "never",
    "ok",
    "overlay",
    "overlayRef",
    "overlayResource",
    "overlays",
    "owned",
    "parent",
    "patch",
    "permFail",
    "plural",
    "postconditions",
    "preconditions",
    "readonly",
    "recreate",
    "ref",
    "refSwitch",
    "resource",
    "resourceTemplateRef",
    "retry",
    "return",
    "skip",
    "skipIf",
    "spec",
    "state",
    "status",
    "steps",
    "switchOn",
    "template",
    "testCases",
    "type",
    "update",
    "value",
    "variant",
    "version",
    "x-koreo-compare-as-set",
    "x-koreo-compare-last-applied",
];

/// Names and kinds that documents of one file share, so that references resolve.
const NAMES: &[&str] = &[
    "a",
    "b",
    "v1",
    "koreo.dev/v1beta1",
    "ValueFunction",
    "ResourceTemplate",
    "ResourceFunction",
    "Workflow",
    "TestDummy",
];

#[derive(Clone, Debug)]
enum Doc {
    Scalar(Json),
    List(Vec<Doc>),
    Map(Vec<(&'static str, Doc)>),
}

fn doc_tree() -> impl Strategy<Value = Doc> {
    let leaf = prop_oneof![
        2 => json_leaf().prop_map(Doc::Scalar),
        2 => expression().prop_map(|e| Doc::Scalar(Json::String(format!("={e}")))),
        1 => select(NAMES).prop_map(|n| Doc::Scalar(Json::from(n))),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Doc::List),
            vec((select(SPEC_KEYS), inner), 0..6).prop_map(|mut entries| {
                let mut seen = Vec::new();
                entries.retain(|(k, _)| {
                    let first = !seen.contains(k);
                    seen.push(*k);
                    first
                });
                Doc::Map(entries)
            }),
        ]
    })
}

/// Block-style YAML; scalars are written as JSON, which YAML reads the same.
fn emit(doc: &Doc, indent: usize, out: &mut String) {
    let inline = |doc: &Doc| match doc {
        Doc::Scalar(v) => Some(v.to_string()),
        Doc::List(items) if items.is_empty() => Some("[]".into()),
        Doc::Map(entries) if entries.is_empty() => Some("{}".into()),
        _ => None,
    };
    let pad = " ".repeat(indent);
    match doc {
        Doc::Map(entries) if !entries.is_empty() => {
            for (key, value) in entries {
                match inline(value) {
                    Some(v) => out.push_str(&format!("{pad}{key}: {v}\n")),
                    None => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(value, indent + 2, out);
                    }
                }
            }
        }
        Doc::List(items) if !items.is_empty() => {
            for item in items {
                match inline(item) {
                    Some(v) => out.push_str(&format!("{pad}- {v}\n")),
                    None => {
                        out.push_str(&format!("{pad}-\n"));
                        emit(item, indent + 2, out);
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", inline(other).unwrap_or_default())),
    }
}

/// The spec fields of each kind, required ones first.
const SPECS: &[(&str, usize, &[&str])] = &[
    ("ValueFunction", 0, &["preconditions", "locals", "return"]),
    (
        "ResourceFunction",
        1,
        &[
            "apiConfig",
            "resource",
            "resourceTemplateRef",
            "preconditions",
            "locals",
            "overlays",
            "create",
            "update",
            "delete",
            "postconditions",
            "return",
        ],
    ),
    ("ResourceTemplate", 1, &["template", "context"]),
    ("Workflow", 1, &["steps", "crdRef"]),
    (
        "FunctionTest",
        1,
        &["functionRef", "inputs", "currentResource", "testCases"],
    ),
];

fn koreo_document() -> impl Strategy<Value = String> {
    (
        select(SPECS),
        select(&NAMES[..2]),
        vec((any::<bool>(), doc_tree()), 11),
    )
        .prop_map(|((kind, required, keys), name, values)| {
            let entries = keys
                .iter()
                .zip(values)
                .enumerate()
                .filter(|(i, (_, (keep, _)))| *i < required || *keep)
                .map(|(_, (key, (_, value)))| (*key, value))
                .collect();
            let mut out = format!(
                "apiVersion: koreo.dev/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n"
            );
            emit(&Doc::Map(entries), 2, &mut out);
            out
        })
}

fn koreo_file() -> impl Strategy<Value = String> {
    vec(koreo_document(), 1..4).prop_map(|docs| docs.join("---\n"))
}

// ---------------------------------------------------------------------------------------------
// ValueFunctions run with random inputs

const VALUE_FUNCTIONS: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: deep}
spec:
  preconditions:
  - assert: =has(inputs.spec) && inputs.spec.enabled
    skip:
      message: '="disabled: " + string(inputs.spec)'
  - assert: =inputs.?validators.skip.orValue(false) == false
    retry: {message: =inputs.validators.skip, delay: 5}
  locals:
    first: =inputs.a.b.c[0].d
    name: =inputs.metadata.name.lower()
    parts: =split(inputs.metadata.name, '.')
  return:
    first: =locals.first
    last: =locals.parts[size(locals.parts) - 1]
    index: =inputs.l[inputs.n]
    nested:
      x: =inputs['a']['b']
      y: =inputs.items.map(i, i.name)
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: arithmetic}
spec:
  preconditions:
  - assert: =inputs.n > 0
    permFail:
      message: '="n must be positive, got " + string(inputs.n)'
  locals:
    doubled: =inputs.n * 2
    ratio: =inputs.n / inputs.d
    asDouble: =double(inputs.n) / 3.0
    asInt: =int(inputs.f)
  return:
    sum: =locals.doubled + inputs.n
    rem: =inputs.n % inputs.d
    ratio: =locals.ratio
    text: =string(locals.asDouble)
    int: =locals.asInt
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: library}
spec:
  locals:
    json: =to_json(inputs)
    back: =from_json(to_json(inputs))
    ref: =to_ref(inputs.spec)
    merged: "=overlay(inputs, {'metadata': {'labels': {'app': 'x'}}})"
  return:
    json: =locals.json
    same: =locals.back == inputs
    ref: =locals.ref
    merged: =locals.merged
    keys: =inputs.keys()
    values: =inputs.values()
    first: =inputs.s.split_first('.')
    index: =inputs.s.split_index('.', inputs.n)
    encoded: =inputs.s.b64encode().b64decode()
    sub: =inputs.s.substring(inputs.n)
    char: =inputs.s.charAt(inputs.n)
    ready: =config_connect_ready(inputs)
    group: =group_ref(inputs)
    flat: =flatten(inputs.l)
    stripped: =inputs.s.strip(inputs.name)
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: comprehensions}
spec:
  locals:
    names: =inputs.items.filter(i, has(i.name)).map(i, i.name)
    count: =inputs.items.exists_one(i, i.enabled)
    pairs: =inputs.metadata.transformList(k, v, k + "=" + string(v))
    bound: =cel.bind(x, inputs.l, x + x)
  return:
    names: =locals.names
    count: =locals.count
    pairs: =locals.pairs
    bound: =locals.bound
    all: =inputs.l.all(x, x > 0)
    sorted: =inputs.l.sort()
    distinct: =inputs.l.distinct()
    slice: =inputs.l.slice(0, inputs.n)
    set: =inputs.values.transformMap(k, v, v)
    time: =timestamp(inputs.s) + duration(inputs.name)
    text: =inputs.s.format([inputs.n, inputs.f])
"#;

/// Each becomes a ValueFunction of its own returning it, so that one failing early does not
/// keep the others from running.
const RETURNED: &[&str] = &[
    "inputs.a.b.c[0].d",
    "inputs['a']['b'][0]['c']",
    "inputs.spec.metadata.name.lower()",
    "inputs.metadata.name.upper() + '-' + inputs.metadata.namespace",
    "split(inputs.metadata.name, '.')[inputs.n]",
    "inputs.l[inputs.n]",
    "inputs.l[size(inputs.l) - 1]",
    "inputs.?a.?b.?c.orValue(inputs.d)",
    "has(inputs.a.b) ? inputs.a.b : inputs.a",
    "inputs.items.map(i, i.name)",
    "inputs.items.filter(i, has(i.enabled) && i.enabled).map(i, i.spec.name)",
    "inputs.items.exists_one(i, i.n > 1)",
    "inputs.items.all(i, i in inputs.l)",
    "inputs.metadata.transformList(k, v, k + '=' + string(v))",
    "inputs.values.transformMap(k, v, v)",
    "inputs.values.map(k, inputs.values[k])",
    "cel.bind(x, inputs.l, x + x)",
    "inputs.n * inputs.d",
    "inputs.n / inputs.d",
    "inputs.n % inputs.d",
    "inputs.n - inputs.d",
    "-inputs.n",
    "int(inputs.f)",
    "uint(inputs.n)",
    "double(inputs.s)",
    "int(inputs.s)",
    "string(inputs.f)",
    "to_json(inputs)",
    "from_json(inputs.s)",
    "from_json(to_json(inputs)) == inputs",
    "to_ref(inputs.spec)",
    "self_ref(inputs)",
    "group_ref(inputs)",
    "kindless_ref(inputs.metadata)",
    "config_connect_ready(inputs)",
    "overlay(inputs, inputs.spec)",
    "inputs.metadata.overlay({'labels': {'app': inputs.name}})",
    "inputs.keys()",
    "inputs.spec.values()",
    "flatten(inputs.l)",
    "inputs.l.flatten()",
    "inputs.l.sort()",
    "inputs.l.distinct()",
    "inputs.l.reverse()",
    "inputs.l.slice(inputs.n, inputs.d)",
    "inputs.l.sortBy(x, x.name)",
    "math.greatest(inputs.l)",
    "math.least(inputs.n, inputs.d)",
    "lists.range(inputs.n % 100)",
    "inputs.s.split_first(inputs.name)",
    "inputs.s.split_last(inputs.name)",
    "inputs.s.split_index(inputs.name, inputs.n)",
    "split_index(inputs.s, '.', inputs.n)",
    "split(inputs.s, inputs.name)",
    "inputs.s.split(inputs.name, inputs.n)",
    "inputs.s.strip(inputs.name)",
    "inputs.s.rstrip(inputs.name)",
    "replace(inputs.s, inputs.name, inputs.kind)",
    "inputs.s.replace(inputs.name, inputs.kind, inputs.n)",
    "inputs.s.b64encode().b64decode()",
    "inputs.s.b64decode()",
    "base64.decode(inputs.s)",
    "inputs.s.substring(inputs.n)",
    "inputs.s.substring(inputs.n, inputs.d)",
    "inputs.s.charAt(inputs.n)",
    "inputs.s.indexOf(inputs.name, inputs.n)",
    "inputs.s.lastIndexOf(inputs.name, inputs.n)",
    "inputs.s.matches(inputs.name)",
    "inputs.s.format(inputs.l)",
    "inputs.l.join(inputs.s)",
    "inputs.s + inputs.name",
    "inputs.l + inputs.items",
    "inputs.s in inputs.l",
    "inputs.s in inputs.metadata",
    "size(inputs.s) + size(inputs.l) + size(inputs)",
    "timestamp(inputs.s) + duration(inputs.name)",
    "timestamp(inputs.s) - timestamp(inputs.name)",
    "duration(inputs.s) * inputs.n",
    "timestamp(inputs.n)",
    "timestamp(inputs.s).getFullYear(inputs.name)",
    "duration(inputs.s).getMilliseconds()",
    "type(inputs.a) == map ? inputs.a.size() : 0",
    "dyn(inputs.a) == dyn(inputs.b)",
    "inputs.a < inputs.b",
    "[inputs.a, inputs.b].exists(x, x == inputs.c)",
    "{inputs.s: inputs.n, inputs.name: inputs.d}",
    "{'a': inputs}.a.a.a",
];

fn value_functions() -> &'static Workspace {
    static WS: LazyLock<Workspace> = LazyLock::new(|| {
        let mut text = VALUE_FUNCTIONS.to_string();
        for (i, expr) in RETURNED.iter().enumerate() {
            let expr = serde_json::to_string(&format!("={expr}")).expect("a string");
            text.push_str(&format!(
                "---\napiVersion: koreo.dev/v1beta1\nkind: ValueFunction\n\
                 metadata: {{name: returned-{i}}}\nspec:\n  return:\n    value: {expr}\n"
            ));
        }
        let ws = Workspace::load_str("functions.koreo", text);
        let errors: Vec<_> = ws
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        ws
    });
    &WS
}

fn run(f: &ValueFunction, inputs: &Json, resource: Option<&Json>) -> Result<(), TestCaseError> {
    let outcome = no_panic(&format!("ValueFunction {}", f.meta.name), || {
        eval::run_value_function(f, inputs, resource)
    })?;
    check_outcome(&outcome)
}

struct Defs<'a>(&'a Workspace);

impl Definitions for Defs<'_> {
    fn resource_template(&self, name: &str) -> Option<Arc<ResourceTemplate>> {
        self.0.resource_template(name, None).cloned()
    }
    fn value_function(&self, name: &str) -> Option<Arc<ValueFunction>> {
        self.0.value_function(name, None).cloned()
    }
}

/// Runs every function of a (mutated) workspace the way the controller would.
fn run_definitions(ws: &Workspace, inputs: &Json, live: &Json) -> Result<(), TestCaseError> {
    for definition in &ws.definitions {
        match definition {
            Definition::ValueFunction(f) => {
                run(f, inputs, None)?;
                run(f, inputs, Some(live))?;
            }
            Definition::ResourceFunction(f) => {
                let outcomes = no_panic("ResourceFunction", || {
                    let prepared = eval::prepare_resource(f, inputs, &Defs(ws))?;
                    let created = eval::decide(f, inputs, &prepared, None)?;
                    let patched = eval::decide(f, inputs, &prepared, Some(live))?;
                    let finished = eval::finish_resource(f, inputs, &prepared, live);
                    Ok::<_, Outcome>((created, patched, finished))
                })?;
                match outcomes {
                    Ok((_, _, finished)) => check_outcome(&finished)?,
                    Err(outcome) => check_outcome(&outcome)?,
                }
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_text_loads_without_panicking(text in yaml_text()) {
        on_big_stack(|| load_and_check(&text).map(drop))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn mutated_conformance_files_load_without_panicking(
        file in 0..conformance_files().len(),
        edits in vec(edit(), 1..6),
        inputs in inputs(),
        live in json_value(),
    ) {
        let mut text = conformance_files()[file].1.clone();
        for e in &edits {
            text = apply(&text, e);
        }
        on_big_stack(|| {
            let ws = load_and_check(&text)?;
            run_definitions(&ws, &inputs, &live)
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_koreo_documents_load_and_run_without_panicking(
        text in koreo_file(),
        inputs in inputs(),
        live in json_value(),
    ) {
        on_big_stack(|| {
            let ws = load_and_check(&text)?;
            run_definitions(&ws, &inputs, &live)
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_expressions_compile_and_evaluate_without_panicking(
        text in expression_text(),
        inputs in inputs(),
        locals in json_value(),
    ) {
        on_big_stack(|| compile_and_evaluate(&text, &inputs, &locals))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn deep_and_long_expressions_compile_and_evaluate_without_panicking(
        text in deep_expression(),
        inputs in inputs(),
    ) {
        on_big_stack(|| compile_and_evaluate(&text, &inputs, &inputs))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn value_functions_run_on_random_inputs_without_panicking(
        inputs in inputs(),
        resource in proptest::option::of(json_value()),
    ) {
        on_big_stack(|| {
            for definition in &value_functions().definitions {
                if let Definition::ValueFunction(f) = definition {
                    run(f, &inputs, resource.as_ref())?;
                }
            }
            Ok(())
        })?;
    }
}

/// The harness itself: a panic that koreo-lang would catch still fails the case.
#[test]
fn caught_panics_are_noticed() {
    let result = no_panic("a caught panic", || {
        std::panic::catch_unwind(|| panic!("expected by caught_panics_are_noticed")).is_err()
    });
    assert!(result.is_err(), "the panic hook did not see the panic");
    assert!(no_panic("nothing", || 1).is_ok());
}
