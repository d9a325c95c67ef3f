//! Koreo's functions. Each is callable as `f(x, ...)` and as `x.f(...)`, except where an
//! extension already owns the member form (`split`, `replace`, `flatten`): there only the
//! global form is Koreo's.
//!
//! Overloads are registered on the `Env` as plain fn pointers, so they take any value of the
//! declared CEL type, including an application's own map or list types: maps and lists are read
//! through `Val`'s indexer and iterable accessors rather than by downcasting to `CelMap`.

use indexmap::IndexMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cel::common::functions::Function;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString, CelUInt, DYN_TYPE, INT_TYPE,
    Kind, LIST_TYPE, MAP_TYPE, STRING_TYPE, Type,
};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError};

/// Name, signature and one-line description of every function this module adds, for docs,
/// completion and hover.
pub static FUNCTIONS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "self_ref",
        signature: "self_ref(resource: map) -> map",
        summary: "A reference to a Kubernetes object: `apiVersion`, `kind`, `name` and, for a \
                  namespaced object, `namespace`.",
        example: "{'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'cfg', \
                  'namespace': 'dev'}}.self_ref()",
    },
    FunctionDoc {
        name: "to_ref",
        signature: "to_ref(source: map) -> map",
        summary: "A reference built from `apiVersion`, `kind` and either `external` or \
                  `name`/`namespace`; other keys are dropped.",
        example: "to_ref({'kind': 'Bucket', 'name': 'b', 'extra': 1})",
    },
    FunctionDoc {
        name: "group_ref",
        signature: "group_ref(source: map) -> map",
        summary: "Like `to_ref`, but with `apiGroup` (given, or the group of `apiVersion`) \
                  instead of `apiVersion`.",
        example: "group_ref({'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': 'web'})",
    },
    FunctionDoc {
        name: "kindless_ref",
        signature: "kindless_ref(source: map) -> map",
        summary: "A reference holding only `external`, or `name` and `namespace`.",
        example: "kindless_ref({'name': 'web', 'namespace': 'dev', 'kind': 'Service'})",
    },
    FunctionDoc {
        name: "config_connect_ready",
        signature: "config_connect_ready(resource: map) -> bool",
        summary: "Whether a Config Connector resource has exactly one `Ready` condition, with \
                  reason `UpToDate` and status `True`.",
        example: "config_connect_ready({'status': {'conditions': [{'type': 'Ready', \
                  'reason': 'UpToDate', 'status': 'True'}]}})",
    },
    FunctionDoc {
        name: "overlay",
        signature: "overlay(base: map, overlay: map) -> map",
        summary: "Deep merge: maps merge key by key, any other overlay value replaces the base \
                  value.",
        example: "{'a': {'b': 1, 'c': 2}}.overlay({'a': {'c': 3}})",
    },
    FunctionDoc {
        name: "flatten",
        signature: "flatten(lists: list(list)) -> list",
        summary: "Concatenates a list of lists, one level deep; every item must be a list.",
        example: "flatten([[1, 2], [], [3]])",
    },
    FunctionDoc {
        name: "lower",
        signature: "lower(s: string) -> string",
        summary: "The string in lower case (Unicode).",
        example: "'HeLLo'.lower()",
    },
    FunctionDoc {
        name: "upper",
        signature: "upper(s: string) -> string",
        summary: "The string in upper case (Unicode).",
        example: "'HeLLo'.upper()",
    },
    FunctionDoc {
        name: "strip",
        signature: "strip(s: string, chars: string) -> string",
        summary: "Removes every leading and trailing character that is in `chars`, as Python's \
                  `str.strip`.",
        example: "'xxhixx'.strip('x')",
    },
    FunctionDoc {
        name: "rstrip",
        signature: "rstrip(s: string, chars: string) -> string",
        summary: "Removes every trailing character that is in `chars`, as Python's \
                  `str.rstrip`.",
        example: "'path///'.rstrip('/')",
    },
    FunctionDoc {
        name: "split",
        signature: "split(s: string, sep: string) -> list(string)",
        summary: "The parts of `s` between occurrences of `sep`; `sep` may not be empty.",
        example: "split('a.b.c', '.')",
    },
    FunctionDoc {
        name: "split_first",
        signature: "split_first(s: string, sep: string) -> string",
        summary: "The part of `s` before the first `sep` (all of `s` if there is none).",
        example: "'a.b.c'.split_first('.')",
    },
    FunctionDoc {
        name: "split_last",
        signature: "split_last(s: string, sep: string) -> string",
        summary: "The part of `s` after the last `sep` (all of `s` if there is none).",
        example: "'a.b.c'.split_last('.')",
    },
    FunctionDoc {
        name: "split_index",
        signature: "split_index(s: string, sep: string, index: int) -> string",
        summary: "Part number `index` of `s` split on `sep`; a negative index counts from the \
                  end.",
        example: "'a.b.c'.split_index('.', -2)",
    },
    FunctionDoc {
        name: "to_json",
        signature: "to_json(value: dyn) -> string",
        summary: "The value as JSON text with sorted keys, formatted as Python's `json.dumps`.",
        example: "{'b': [1, true], 'a': null}.to_json()",
    },
    FunctionDoc {
        name: "from_json",
        signature: "from_json(json: string) -> dyn",
        summary: "Parses JSON text; JSON integers become `int`.",
        example: "'{\"a\": [1, 2.5]}'.from_json()",
    },
    FunctionDoc {
        name: "b64encode",
        signature: "b64encode(s: string) -> string",
        summary: "The UTF-8 bytes of `s` in standard, padded base64.",
        example: "'hello'.b64encode()",
    },
    FunctionDoc {
        name: "b64decode",
        signature: "b64decode(s: string) -> string",
        summary: "Decodes standard, padded base64 that holds UTF-8 text.",
        example: "'aGVsbG8='.b64decode()",
    },
    FunctionDoc {
        name: "replace",
        signature: "replace(s: string, old: string, new: string) -> string",
        summary: "`s` with every occurrence of `old` replaced by `new`.",
        example: "replace('a-b-c', '-', '.')",
    },
    FunctionDoc {
        name: "keys",
        signature: "keys(m: map) -> list",
        summary: "The keys of a map, in its order.",
        example: "{'b': 1, 'a': 2}.keys()",
    },
    FunctionDoc {
        name: "values",
        signature: "values(m: map) -> list",
        summary: "The values of a map, in its order.",
        example: "{'b': 1, 'a': 2}.values()",
    },
];

pub struct FunctionDoc {
    pub name: &'static str,
    pub signature: &'static str,
    pub summary: &'static str,
    pub example: &'static str,
}

type Args<'b, 'v> = Vec<CowVal<'b, 'v>>;
type Ret<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

pub(crate) fn register(env: &mut Env) {
    let map = || vec![MAP_TYPE];
    let string = || vec![STRING_TYPE];
    let two_strings = || vec![STRING_TYPE, STRING_TYPE];

    both(env, "self_ref", map, self_ref);
    both(env, "to_ref", map, to_ref);
    both(env, "group_ref", map, group_ref);
    both(env, "kindless_ref", map, kindless_ref);
    both(env, "config_connect_ready", map, config_connect_ready);
    both(env, "overlay", || vec![MAP_TYPE, MAP_TYPE], overlay);
    both(env, "keys", map, keys);
    both(env, "values", map, values);
    // `list.flatten()` belongs to the lists extension, which keeps non-list items.
    global(env, "flatten", vec![LIST_TYPE], flatten);
    both(env, "lower", string, lower);
    both(env, "upper", string, upper);
    both(env, "strip", two_strings, strip);
    both(env, "rstrip", two_strings, rstrip);
    // `string.split(string)` belongs to the strings extension, which splits an empty
    // separator into characters instead of failing.
    global(env, "split", two_strings(), split);
    both(env, "split_first", two_strings, split_first);
    both(env, "split_last", two_strings, split_last);
    both(
        env,
        "split_index",
        || vec![STRING_TYPE, STRING_TYPE, INT_TYPE],
        split_index,
    );
    both(env, "to_json", || vec![DYN_TYPE], to_json);
    both(env, "from_json", string, from_json);
    both(env, "b64encode", string, b64encode);
    both(env, "b64decode", string, b64decode);
    // `string.replace(string, string)` belongs to the strings extension; same result.
    global(
        env,
        "replace",
        vec![STRING_TYPE, STRING_TYPE, STRING_TYPE],
        replace,
    );
}

/// Registers `name` as a global function and as a member of its first parameter's type.
/// `params` is a constructor because `Type` is not `Clone`.
fn both(env: &mut Env, name: &str, params: impl Fn() -> Vec<Type>, op: Function) {
    global(env, name, params(), op);
    let mut rest = params();
    let receiver = rest.remove(0);
    let id = format!("{}.{name}({})", receiver.name(), type_names(&rest));
    // A conflict is a bug in this file, found by any test that builds the environment.
    if let Err(e) = env.add_member_overload(name, &id, receiver, rest, op) {
        panic!("cannot register {id}: {e:?}");
    }
}

fn global(env: &mut Env, name: &str, params: Vec<Type>, op: Function) {
    let id = format!("{name}({})", type_names(&params));
    if let Err(e) = env.add_overload(name, &id, params, op) {
        panic!("cannot register {id}: {e:?}");
    }
}

fn type_names(types: &[Type]) -> String {
    types.iter().map(Type::name).collect::<Vec<_>>().join(",")
}

fn error(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// The `N` arguments of an overload. Dispatch already checked the count; this keeps a mistake
/// from panicking.
fn take<'b, 'v, const N: usize>(
    function: &str,
    args: Args<'b, 'v>,
) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into().map_err(|args: Vec<_>| {
        error(
            function,
            format!("expected {N} arguments, got {}", args.len()),
        )
    })
}

fn type_name(value: &dyn Val) -> &str {
    value.get_type().name()
}

fn str_arg<'a>(function: &str, value: &'a dyn Val) -> Result<&'a str, ExecutionError> {
    value
        .downcast_ref::<CelString>()
        .map(CelString::inner)
        .ok_or_else(|| {
            error(
                function,
                format!("expected a string, got `{}`", type_name(value)),
            )
        })
}

fn string_result<'b, 'v>(s: impl Into<String>) -> Ret<'b, 'v> {
    Ok(CowVal::owned(CelString::from(s.into())))
}

fn is_map(value: &dyn Val) -> bool {
    value.get_type().kind() == Kind::Map
}

fn is_list(value: &dyn Val) -> bool {
    value.get_type().kind() == Kind::List
}

/// The value at string key `key` of `map`, if it is a map that has it.
fn get<'b, 'v>(map: &'b (dyn Val + 'v), key: &str) -> Option<CowVal<'b, 'v>> {
    if !is_map(map) {
        return None;
    }
    map.as_indexer()?.get(&CelString::from(key)).ok()
}

/// Python truthiness, which Koreo's checks rely on: null, false, zero and empty values are
/// false.
fn truthy(value: &dyn Val) -> bool {
    value.get_type().kind() != Kind::NullType
        && value.as_zeroer().is_none_or(|z| !z.is_zero_value())
}

fn is_str(value: Option<&CowVal<'_, '_>>, expected: &str) -> bool {
    value
        .and_then(|v| v.downcast_ref::<CelString>())
        .is_some_and(|s| s.inner() == expected)
}

/// The items of a list, borrowed.
fn items<'b, 'v>(list: &'b (dyn Val + 'v)) -> Vec<&'b (dyn Val + 'v)> {
    let mut out = Vec::new();
    if let Some(iterable) = list.as_iterable() {
        let mut it = iterable.iter();
        while let Some(item) = it.next() {
            out.push(item);
        }
    }
    out
}

/// The entries of a map, in its order (maps keep insertion order).
fn entries<'b, 'v>(
    function: &str,
    map: &'b (dyn Val + 'v),
) -> Result<Vec<(CelMapKey<'v>, CowVal<'b, 'v>)>, ExecutionError> {
    let not_a_map = || {
        error(
            function,
            format!("expected a map, got `{}`", type_name(map)),
        )
    };
    if !is_map(map) {
        return Err(not_a_map());
    }
    let (Some(iterable), Some(indexer)) = (map.as_iterable(), map.as_indexer()) else {
        return Err(not_a_map());
    };
    let mut out = Vec::new();
    let mut it = iterable.iter();
    while let Some(key) = it.next() {
        let value = indexer.get(key)?;
        out.push((CelMapKey::try_from(CowVal::Borrowed(key))?, value));
    }
    Ok(out)
}

/// Builds a map with string keys.
fn string_map<'b, 'v>(entries: Fields<'v>) -> CowVal<'b, 'v> {
    let map: IndexMap<CelMapKey<'v>, Box<dyn Val + 'v>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    CowVal::owned(CelMap::from(map))
}

type Fields<'v> = Vec<(&'static str, Box<dyn Val + 'v>)>;

/// Copies `key` from `source` into `out` if it is there and truthy.
fn copy_truthy<'v>(source: &(dyn Val + 'v), key: &'static str, out: &mut Fields<'v>) {
    if let Some(value) = get(source, key).filter(|v| truthy(v.as_ref())) {
        out.push((key, value.into_owned()));
    }
}

fn expect_map(function: &str, value: &dyn Val) -> Result<(), ExecutionError> {
    if is_map(value) {
        Ok(())
    } else {
        Err(error(
            function,
            format!("expected a map, got `{}`", type_name(value)),
        ))
    }
}

/// The truthy value at `key`, or Koreo's "Missing `path`." error.
fn required<'b, 'v>(
    map: &'b (dyn Val + 'v),
    key: &str,
    path: &str,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    get(map, key)
        .filter(|v| truthy(v.as_ref()))
        .ok_or_else(|| error("self_ref", format!("Missing `{path}`.")))
}

fn self_ref<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "self_ref";
    let [resource] = take(F, args)?;
    let resource = resource.as_ref();
    expect_map(F, resource)?;
    let api_version = required(resource, "apiVersion", "apiVersion")?.into_owned();
    let kind = required(resource, "kind", "kind")?.into_owned();
    let metadata = required(resource, "metadata", "metadata")?;
    if !is_map(metadata.as_ref()) {
        return Err(error(
            F,
            format!("`metadata` must be a map, not `{}`.", type_name(&*metadata)),
        ));
    }
    let name = required(metadata.as_ref(), "name", "metadata.name")?.into_owned();
    let mut out = vec![("apiVersion", api_version), ("kind", kind), ("name", name)];
    // A cluster-scoped object has no namespace; Koreo failed on it.
    if let Some(namespace) = get(metadata.as_ref(), "namespace").filter(|v| truthy(v.as_ref())) {
        out.push(("namespace", namespace.into_owned()));
    }
    Ok(string_map(out))
}

/// Appends `external`, or `name` and `namespace`: the identity part of every reference.
fn identity<'v>(
    function: &str,
    source: &(dyn Val + 'v),
    out: &mut Fields<'v>,
) -> Result<(), ExecutionError> {
    // Presence decides, as in Koreo: `external: ''` is an error, not a fallback to `name`.
    if let Some(external) = get(source, "external") {
        if !truthy(external.as_ref()) {
            return Err(error(function, "`external` must contain a value."));
        }
        out.push(("external", external.into_owned()));
        return Ok(());
    }
    let name = get(source, "name").ok_or_else(|| {
        error(
            function,
            "`external` or `name` are required to build a reference.",
        )
    })?;
    if !truthy(name.as_ref()) {
        return Err(error(function, "`name` must contain a value."));
    }
    out.push(("name", name.into_owned()));
    copy_truthy(source, "namespace", out);
    Ok(())
}

fn to_ref<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "to_ref";
    let [source] = take(F, args)?;
    let source = source.as_ref();
    expect_map(F, source)?;
    let mut out = Vec::new();
    copy_truthy(source, "apiVersion", &mut out);
    copy_truthy(source, "kind", &mut out);
    identity(F, source, &mut out)?;
    Ok(string_map(out))
}

fn group_ref<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "group_ref";
    let [source] = take(F, args)?;
    let source = source.as_ref();
    expect_map(F, source)?;
    let mut out: Fields<'v> = Vec::new();
    let given = get(source, "apiGroup");
    let api_version = get(source, "apiVersion").filter(|v| truthy(v.as_ref()));
    match (given, api_version) {
        (Some(group), _) if truthy(group.as_ref()) => out.push(("apiGroup", group.into_owned())),
        (_, Some(version)) => {
            let version = version.downcast_ref::<CelString>().ok_or_else(|| {
                error(
                    F,
                    format!(
                        "`apiVersion` must be a string, not `{}`.",
                        type_name(&*version)
                    ),
                )
            })?;
            // `apps/v1` is group `apps`; the core group's `v1` has no slash and is group "".
            let group = version.inner().split_once('/').map_or("", |(g, _)| g);
            out.push(("apiGroup", Box::new(CelString::from(group.to_owned()))));
        }
        // An explicit empty `apiGroup` string names the core group: keep it.
        (Some(group), None) if group.downcast_ref::<CelString>().is_some() => {
            out.push(("apiGroup", group.into_owned()))
        }
        _ => {}
    }
    copy_truthy(source, "kind", &mut out);
    identity(F, source, &mut out)?;
    Ok(string_map(out))
}

fn kindless_ref<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "kindless_ref";
    let [source] = take(F, args)?;
    let source = source.as_ref();
    expect_map(F, source)?;
    let mut out = Vec::new();
    identity(F, source, &mut out)?;
    Ok(string_map(out))
}

fn config_connect_ready<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "config_connect_ready";
    let [resource] = take(F, args)?;
    let resource = resource.as_ref();
    expect_map(F, resource)?;
    let ready = || -> Option<bool> {
        let status = get(resource, "status")?;
        let conditions = get(status.as_ref(), "conditions")?;
        if !is_list(conditions.as_ref()) {
            return None;
        }
        let mut found = None;
        for condition in items(conditions.as_ref()) {
            if !is_str(get(condition, "type").as_ref(), "Ready") {
                continue;
            }
            // More than one `Ready` condition is ambiguous: not ready.
            if found.is_some() {
                return None;
            }
            found = Some(condition);
        }
        let condition = found?;
        Some(
            is_str(get(condition, "reason").as_ref(), "UpToDate")
                && is_str(get(condition, "status").as_ref(), "True"),
        )
    };
    Ok(CowVal::owned(CelBool::from(ready().unwrap_or(false))))
}

fn overlay<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "overlay";
    let [base, over] = take(F, args)?;
    Ok(CowVal::Owned(merge(F, base.as_ref(), over.as_ref())?))
}

fn merge<'v>(
    function: &str,
    base: &(dyn Val + 'v),
    over: &(dyn Val + 'v),
) -> Result<Box<dyn Val + 'v>, ExecutionError> {
    let mut out: IndexMap<CelMapKey<'v>, Box<dyn Val + 'v>> = entries(function, base)?
        .into_iter()
        .map(|(k, v)| (k, v.into_owned()))
        .collect();
    for (key, value) in entries(function, over)? {
        let merged = match out.get(&key) {
            Some(old) if is_map(old.as_ref()) && is_map(value.as_ref()) => {
                merge(function, old.as_ref(), value.as_ref())?
            }
            _ => value.into_owned(),
        };
        out.insert(key, merged);
    }
    Ok(Box::new(CelMap::from(out)))
}

fn keys<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [map] = take("keys", args)?;
    let keys = entries("keys", map.as_ref())?
        .into_iter()
        .map(|(k, _)| k.inner().clone_as_boxed())
        .collect::<Vec<_>>();
    Ok(CowVal::owned(CelList::from(keys)))
}

fn values<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [map] = take("values", args)?;
    let values = entries("values", map.as_ref())?
        .into_iter()
        .map(|(_, v)| v.into_owned())
        .collect::<Vec<_>>();
    Ok(CowVal::owned(CelList::from(values)))
}

fn flatten<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "flatten";
    let [lists] = take(F, args)?;
    let mut out = Vec::new();
    for (i, list) in items(lists.as_ref()).into_iter().enumerate() {
        if !is_list(list) {
            return Err(error(
                F,
                format!(
                    "expected a list of lists, but item {i} is of type `{}`",
                    type_name(list)
                ),
            ));
        }
        out.extend(items(list).into_iter().map(|item| item.clone_as_boxed()));
    }
    Ok(CowVal::owned(CelList::from(out)))
}

fn lower<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s] = take("lower", args)?;
    string_result(str_arg("lower", s.as_ref())?.to_lowercase())
}

fn upper<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s] = take("upper", args)?;
    string_result(str_arg("upper", s.as_ref())?.to_uppercase())
}

fn strip<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s, chars] = take("strip", args)?;
    let chars = str_arg("strip", chars.as_ref())?;
    string_result(str_arg("strip", s.as_ref())?.trim_matches(|c| chars.contains(c)))
}

fn rstrip<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s, chars] = take("rstrip", args)?;
    let chars = str_arg("rstrip", chars.as_ref())?;
    string_result(str_arg("rstrip", s.as_ref())?.trim_end_matches(|c| chars.contains(c)))
}

/// The string and separator arguments of the `split*` functions, the separator non-empty.
fn split_args<'a>(
    function: &str,
    s: &'a dyn Val,
    sep: &'a dyn Val,
) -> Result<(&'a str, &'a str), ExecutionError> {
    let sep = str_arg(function, sep)?;
    if sep.is_empty() {
        return Err(error(function, "split separator may not be empty"));
    }
    Ok((str_arg(function, s)?, sep))
}

fn split<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s, sep] = take("split", args)?;
    let (s, sep) = split_args("split", s.as_ref(), sep.as_ref())?;
    let parts: Vec<Box<dyn Val + 'v>> = s
        .split(sep)
        .map(|part| Box::new(CelString::from(part.to_owned())) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelList::from(parts)))
}

fn split_first<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s, sep] = take("split_first", args)?;
    let (s, sep) = split_args("split_first", s.as_ref(), sep.as_ref())?;
    string_result(s.split_once(sep).map_or(s, |(first, _)| first))
}

fn split_last<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s, sep] = take("split_last", args)?;
    let (s, sep) = split_args("split_last", s.as_ref(), sep.as_ref())?;
    string_result(s.rsplit_once(sep).map_or(s, |(_, last)| last))
}

fn split_index<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "split_index";
    let [s, sep, index] = take(F, args)?;
    let (s, sep) = split_args(F, s.as_ref(), sep.as_ref())?;
    let index = *index
        .downcast_ref::<CelInt>()
        .ok_or_else(|| error(F, "expected an int index"))?
        .inner();
    let parts: Vec<&str> = s.split(sep).collect();
    // Python indexing: -1 is the last part.
    let position = if index < 0 {
        i64::try_from(parts.len())
            .ok()
            .and_then(|len| len.checked_add(index))
    } else {
        Some(index)
    };
    position
        .and_then(|p| usize::try_from(p).ok())
        .and_then(|p| parts.get(p))
        .map_or_else(
            || Err(error(F, "index out of bounds on split")),
            |part| string_result(*part),
        )
}

fn replace<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s, old, new] = take("replace", args)?;
    let s = str_arg("replace", s.as_ref())?;
    let old = str_arg("replace", old.as_ref())?;
    let new = str_arg("replace", new.as_ref())?;
    string_result(s.replace(old, new))
}

fn b64encode<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    let [s] = take("b64encode", args)?;
    string_result(BASE64.encode(str_arg("b64encode", s.as_ref())?))
}

fn b64decode<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "b64decode";
    let [s] = take(F, args)?;
    let bytes = BASE64
        .decode(str_arg(F, s.as_ref())?)
        .map_err(|e| error(F, format!("invalid base64: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| error(F, "the decoded bytes are not UTF-8 text"))?;
    string_result(text)
}

fn from_json<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "from_json";
    let [s] = take(F, args)?;
    let json: serde_json::Value = serde_json::from_str(str_arg(F, s.as_ref())?)
        .map_err(|e| error(F, format!("JSON Decoding error: {e}")))?;
    Ok(CowVal::Owned(crate::json::owned_json_to_val(json)))
}

fn to_json<'b, 'v>(args: Args<'b, 'v>) -> Ret<'b, 'v> {
    const F: &str = "to_json";
    let [value] = take(F, args)?;
    let mut out = String::new();
    write_json(&mut out, value.as_ref())?;
    string_result(out)
}

/// Writes `value` as Python's `json.dumps(value, sort_keys=True)` does.
fn write_json(out: &mut String, value: &dyn Val) -> Result<(), ExecutionError> {
    const F: &str = "to_json";
    let unsupported = || {
        error(
            F,
            format!(
                "a value of type `{}` cannot be converted to JSON",
                type_name(value)
            ),
        )
    };
    match value.get_type().kind() {
        Kind::NullType => out.push_str("null"),
        Kind::Boolean => {
            let b = value.downcast_ref::<CelBool>().ok_or_else(unsupported)?;
            out.push_str(if *b.inner() { "true" } else { "false" });
        }
        Kind::Int => {
            let i = value.downcast_ref::<CelInt>().ok_or_else(unsupported)?;
            out.push_str(&i.inner().to_string());
        }
        Kind::UInt => {
            let u = value.downcast_ref::<CelUInt>().ok_or_else(unsupported)?;
            out.push_str(&u.inner().to_string());
        }
        Kind::Double => {
            let d = value.downcast_ref::<CelDouble>().ok_or_else(unsupported)?;
            let text = python_float(*d.inner())
                .ok_or_else(|| error(F, format!("{} cannot be represented in JSON", d.inner())))?;
            out.push_str(&text);
        }
        Kind::String => {
            let s = value.downcast_ref::<CelString>().ok_or_else(unsupported)?;
            write_json_string(out, s.inner());
        }
        Kind::List => {
            out.push('[');
            for (i, item) in items(value).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item)?;
            }
            out.push(']');
        }
        Kind::Map => {
            out.push('{');
            let mut sorted = entries(F, value)?;
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                // JSON keys are strings; Python writes other keys as their JSON text.
                match &key {
                    CelMapKey::String(s) => write_json_string(out, s.inner()),
                    CelMapKey::Int(i) => write_json_string(out, &i.inner().to_string()),
                    CelMapKey::UInt(u) => write_json_string(out, &u.inner().to_string()),
                    CelMapKey::Bool(b) => {
                        write_json_string(out, if *b.inner() { "true" } else { "false" })
                    }
                }
                out.push_str(": ");
                write_json(out, item.as_ref())?;
            }
            out.push('}');
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

/// A JSON string literal with everything outside printable ASCII escaped, as Python's
/// `ensure_ascii` does.
fn write_json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// `repr(f)` as Python prints it: shortest round-trip digits, `.0` on integral values,
/// exponent form below 1e-4 and from 1e16. `None` for NaN and infinities, which JSON lacks.
fn python_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return Some(format!("{sign}0.0"));
    }
    // `{:e}` gives the shortest round-trip digits, e.g. `1.2345e17` or `5e-324`.
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let text = if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let whole = usize::try_from(exponent).ok()? + 1;
            if digits.len() <= whole {
                format!("{digits}{}.0", "0".repeat(whole - digits.len()))
            } else {
                format!("{}.{}", &digits[..whole], &digits[whole..])
            }
        } else {
            let zeros = usize::try_from(-exponent - 1).ok()?;
            format!("0.{}{digits}", "0".repeat(zeros))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    };
    Some(format!("{sign}{text}"))
}
