//! What names in expressions mean: functions (Koreo's, from koreo-stdlib, and CEL's own), the
//! variables, and which variables each place of each kind can read.

use koreo_stdlib::FUNCTIONS;

use crate::document::{Seg, keys_are};

/// A function or macro an expression can call.
#[derive(Clone, Copy, Debug)]
pub struct FunctionInfo {
    pub name: &'static str,
    pub signature: &'static str,
    pub summary: &'static str,
    /// From koreo-stdlib (documented in docs/stdlib.md), not CEL's standard library.
    pub koreo: bool,
}

/// CEL's standard functions, macros and the extensions koreo-stdlib enables, for hover and
/// completion. Koreo's own come from [`FUNCTIONS`].
const CEL: &[(&str, &str, &str)] = &[
    (
        "has",
        "has(x.field) -> bool",
        "Whether a field is present (Koreo: and not null).",
    ),
    (
        "size",
        "size(x) -> int",
        "The length of a string, list, map or bytes.",
    ),
    (
        "all",
        "list.all(x, predicate) -> bool",
        "Whether the predicate holds for every item (map: key).",
    ),
    (
        "exists",
        "list.exists(x, predicate) -> bool",
        "Whether the predicate holds for at least one item.",
    ),
    (
        "exists_one",
        "list.exists_one(x, predicate) -> bool",
        "Whether the predicate holds for exactly one item.",
    ),
    (
        "map",
        "list.map(x, expr) -> list",
        "Each item transformed; `list.map(x, filter, expr)` filters first.",
    ),
    (
        "filter",
        "list.filter(x, predicate) -> list",
        "The items for which the predicate holds.",
    ),
    (
        "transformList",
        "map.transformList(k, v, expr) -> list",
        "A list from each entry of a map (two-variable comprehension).",
    ),
    (
        "transformMap",
        "map.transformMap(k, v, expr) -> map",
        "A map with each value transformed.",
    ),
    (
        "matches",
        "string.matches(regex) -> bool",
        "Whether the string matches an RE2 regular expression.",
    ),
    (
        "startsWith",
        "string.startsWith(prefix) -> bool",
        "Whether the string starts with `prefix`.",
    ),
    (
        "endsWith",
        "string.endsWith(suffix) -> bool",
        "Whether the string ends with `suffix`.",
    ),
    (
        "contains",
        "string.contains(text) -> bool",
        "Whether the string contains `text`.",
    ),
    ("int", "int(x) -> int", "Converts to an integer."),
    (
        "uint",
        "uint(x) -> uint",
        "Converts to an unsigned integer.",
    ),
    (
        "double",
        "double(x) -> double",
        "Converts to a floating-point number.",
    ),
    ("string", "string(x) -> string", "Converts to a string."),
    (
        "bool",
        "bool(x) -> bool",
        "Converts `'true'`/`'false'` to a boolean.",
    ),
    ("bytes", "bytes(s) -> bytes", "The UTF-8 bytes of a string."),
    (
        "type",
        "type(x) -> type",
        "The type of a value, compared with `int`, `string`, `map`, ...",
    ),
    (
        "dyn",
        "dyn(x) -> dyn",
        "The value, with type checks deferred to run time.",
    ),
    (
        "duration",
        "duration(s) -> google.protobuf.Duration",
        "A duration from text such as `'1h30m'`.",
    ),
    (
        "timestamp",
        "timestamp(s) -> google.protobuf.Timestamp",
        "A timestamp from RFC 3339 text.",
    ),
    (
        "charAt",
        "string.charAt(i) -> string",
        "The character at index `i` (strings extension).",
    ),
    (
        "indexOf",
        "string.indexOf(text) -> int",
        "The index of the first `text`, or -1 (strings extension).",
    ),
    (
        "lastIndexOf",
        "string.lastIndexOf(text) -> int",
        "The index of the last `text`, or -1 (strings extension).",
    ),
    (
        "lowerAscii",
        "string.lowerAscii() -> string",
        "ASCII letters in lower case (strings extension).",
    ),
    (
        "upperAscii",
        "string.upperAscii() -> string",
        "ASCII letters in upper case (strings extension).",
    ),
    (
        "substring",
        "string.substring(start, end) -> string",
        "The characters from `start` to `end` (strings extension).",
    ),
    (
        "trim",
        "string.trim() -> string",
        "The string without leading and trailing whitespace (strings extension).",
    ),
    (
        "join",
        "list.join(separator) -> string",
        "The strings of a list joined (strings extension).",
    ),
    (
        "format",
        "string.format(list) -> string",
        "`%s`, `%d`, ... replaced by the list's values (strings extension).",
    ),
    (
        "quote",
        "strings.quote(s) -> string",
        "The string as a quoted CEL literal (strings extension).",
    ),
    (
        "slice",
        "list.slice(start, end) -> list",
        "The items from `start` to `end` (lists extension).",
    ),
    (
        "reverse",
        "list.reverse() -> list",
        "The items in reverse order (lists extension).",
    ),
    (
        "distinct",
        "list.distinct() -> list",
        "The items without repeats, first occurrence kept (lists extension).",
    ),
    (
        "sort",
        "list.sort() -> list",
        "The items sorted (lists extension).",
    ),
    (
        "orValue",
        "optional.orValue(default) -> dyn",
        "The optional's value, or `default` when it has none.",
    ),
    (
        "hasValue",
        "optional.hasValue() -> bool",
        "Whether the optional has a value.",
    ),
    (
        "value",
        "optional.value() -> dyn",
        "The optional's value (an error when it has none).",
    ),
];

/// The function called `name`: Koreo's first, as it owns the global forms it shares a name with.
pub fn function(name: &str) -> Option<FunctionInfo> {
    functions().find(|f| f.name == name)
}

/// Every function, Koreo's first.
pub fn functions() -> impl Iterator<Item = FunctionInfo> {
    let koreo = FUNCTIONS.iter().map(|f| FunctionInfo {
        name: f.name,
        signature: f.signature,
        summary: f.summary,
        koreo: true,
    });
    let cel = CEL.iter().map(|&(name, signature, summary)| FunctionInfo {
        name,
        signature,
        summary,
        koreo: false,
    });
    koreo.chain(cel)
}

/// What a variable holds (docs/scopes.md).
pub fn variable(name: &str) -> Option<&'static str> {
    Some(match name {
        "inputs" => "The inputs: what the calling step, overlay or test gives.",
        "locals" => "The function's evaluated `spec.locals`.",
        "resource" => {
            "An object: which one depends on the place (the target built so far, or the object in the cluster)."
        }
        "parent" => {
            "The object the Workflow runs for (`apiVersion`, `kind`, `metadata`, `spec`, `state`); in a sub-Workflow, the calling step's inputs."
        }
        "steps" => {
            "The results of earlier steps that finished Ok, by label; reading `steps.<label>` makes this step wait for that one."
        }
        "value" => "The result of this step, for its `state`.",
        _ => return None,
    })
}

/// The variables an expression at `path` of a `kind` document can read (docs/scopes.md; the
/// decoder's `SCOPE_*` constants in lang/src/model.rs).
pub fn scope(kind: &str, path: &[Seg]) -> &'static [&'static str] {
    const INPUTS: &[&str] = &["inputs"];
    const INPUTS_RESOURCE: &[&str] = &["inputs", "resource"];
    const INPUTS_LOCALS: &[&str] = &["inputs", "locals"];
    const ALL_FUNCTION: &[&str] = &["inputs", "locals", "resource"];
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    let at = |prefix: &[&str]| keys.starts_with(prefix);
    match kind {
        "ValueFunction" if at(&["spec", "return"]) => ALL_FUNCTION,
        "ValueFunction" if at(&["spec"]) => INPUTS_RESOURCE,
        "ResourceFunction" if at(&["spec", "preconditions"]) || at(&["spec", "locals"]) => INPUTS,
        "ResourceFunction"
            if at(&["spec", "overlays", "overlay"])
                || at(&["spec", "create"])
                || at(&["spec", "postconditions"])
                || at(&["spec", "return"]) =>
        {
            ALL_FUNCTION
        }
        "ResourceFunction" if at(&["spec"]) => INPUTS_LOCALS,
        "Workflow" if at(&["spec", "steps", "state"]) => &["value"],
        "Workflow" if keys_are(path, &["spec", "steps", "refSwitch", "switchOn"]) => {
            &["inputs", "parent", "steps"]
        }
        "Workflow" if at(&["spec", "steps"]) => &["parent", "steps"],
        "FunctionTest" if at(&["spec", "testCases", "overlayResource"]) => INPUTS_RESOURCE,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(keys: &str) -> Vec<Seg> {
        keys.split('.')
            .map(|k| match k.parse() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(k.to_string()),
            })
            .collect()
    }

    #[test]
    fn scopes_follow_the_reference() {
        assert_eq!(scope("Workflow", &path("spec.steps.0.state.x")), ["value"]);
        assert_eq!(
            scope("Workflow", &path("spec.steps.0.refSwitch.switchOn")),
            ["inputs", "parent", "steps"]
        );
        assert_eq!(
            scope("Workflow", &path("spec.steps.1.inputs.a")),
            ["parent", "steps"]
        );
        assert_eq!(
            scope("ResourceFunction", &path("spec.overlays.0.overlay.spec")),
            ["inputs", "locals", "resource"]
        );
        assert_eq!(
            scope("ResourceFunction", &path("spec.overlays.0.inputs.x")),
            ["inputs", "locals"]
        );
        assert_eq!(
            scope("ValueFunction", &path("spec.locals.a")),
            ["inputs", "resource"]
        );
    }

    #[test]
    fn koreo_functions_come_from_the_stdlib_registry() {
        let to_ref = function("to_ref").unwrap();
        assert!(to_ref.koreo);
        assert!(to_ref.signature.starts_with("to_ref("));
        assert!(!function("size").unwrap().koreo);
        assert!(function("nope").is_none());
    }
}
