//! A small validator for the subset of OpenAPI v3 that the generated CRDs use, applied the way
//! the API server applies a CRD schema: nulls of non-nullable fields pruned, defaults filled in,
//! then types, required keys, enums, limits, `oneOf`/`anyOf` (of `required` branches), unique
//! list-map keys and the `x-kubernetes-validations` CEL rules (run with koreo's CEL). Unknown
//! fields are errors, as with `kubectl apply`'s strict field validation. `metadata` at the top
//! is left to the API server, as there.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use koreo_lang::expr::{Expr, Scope};
use serde_json::{Map, Value as Json};

/// The errors of `value` against a CRD's `openAPIV3Schema`, each prefixed with its path.
pub fn validate_document(schema: &Json, value: &Json) -> Vec<String> {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        // ObjectMeta is the API server's business.
        object.remove("metadata");
    }
    let mut root = schema.clone();
    if let Some(properties) = root["properties"].as_object_mut() {
        properties.remove("metadata");
    }
    let value = with_defaults(&root, value);
    let mut errors = Vec::new();
    check(&root, &value, "", &mut errors);
    errors
}

/// `value` after pruning nulls of non-nullable fields and filling in defaults.
pub fn with_defaults(schema: &Json, value: Json) -> Json {
    match value {
        Json::Object(map) => {
            let properties = schema["properties"].as_object();
            let mut out = Map::new();
            for (key, v) in map {
                let child = properties
                    .and_then(|p| p.get(&key))
                    .or_else(|| schema.get("additionalProperties"));
                match child {
                    Some(child) => {
                        if v.is_null() && child["nullable"] != Json::Bool(true) {
                            continue;
                        }
                        out.insert(key, with_defaults(child, v));
                    }
                    None => {
                        out.insert(key, v);
                    }
                }
            }
            if let Some(properties) = properties {
                for (key, child) in properties {
                    if let Some(default) = child.get("default").filter(|_| !out.contains_key(key)) {
                        out.insert(key.clone(), with_defaults(child, default.clone()));
                    }
                }
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|item| with_defaults(&schema["items"], item))
                .collect(),
        ),
        other => other,
    }
}

fn type_ok(ty: &str, value: &Json) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    }
}

fn limit(schema: &Json, key: &str) -> Option<usize> {
    schema[key].as_u64().map(|n| n as usize)
}

/// Checks one node (defaults already applied).
pub fn check(schema: &Json, value: &Json, path: &str, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if schema["nullable"] != Json::Bool(true) {
            errors.push(format!("{at}: must not be null"));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == Json::Bool(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!("{at}: must be an integer or a string"));
            return;
        }
    } else if let Some(ty) = schema["type"].as_str()
        && !type_ok(ty, value)
    {
        errors.push(format!("{at}: must be of type {ty}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: must be one of {allowed:?}"));
    }
    if let Some(s) = value.as_str() {
        let n = s.chars().count();
        if limit(schema, "minLength").is_some_and(|min| n < min) {
            errors.push(format!("{at}: too short"));
        }
        if limit(schema, "maxLength").is_some_and(|max| n > max) {
            errors.push(format!("{at}: too long"));
        }
    }
    if let Some(items) = value.as_array() {
        if limit(schema, "minItems").is_some_and(|min| items.len() < min) {
            errors.push(format!("{at}: too few items"));
        }
        if limit(schema, "maxItems").is_some_and(|max| items.len() > max) {
            errors.push(format!("{at}: too many items"));
        }
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
        if schema["x-kubernetes-list-type"] == "map" {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|k| k.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let ids: Vec<Vec<&Json>> = items
                .iter()
                .map(|item| keys.iter().map(|k| &item[*k]).collect())
                .collect();
            for (i, id) in ids.iter().enumerate() {
                if ids[..i].contains(id) {
                    errors.push(format!("{at}[{i}]: duplicate entry {id:?}"));
                }
            }
        }
    }
    if let Some(map) = value.as_object() {
        let n = map.len();
        if limit(schema, "minProperties").is_some_and(|min| n < min) {
            errors.push(format!("{at}: too few properties"));
        }
        if limit(schema, "maxProperties").is_some_and(|max| n > max) {
            errors.push(format!("{at}: too many properties"));
        }
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !map.contains_key(key) {
                errors.push(format!("{at}: `{key}` is required"));
            }
        }
        let properties = schema["properties"].as_object();
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == Json::Bool(true);
        for (key, v) in map {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match properties.and_then(|p| p.get(key)) {
                Some(child) => check(child, v, &child_path, errors),
                None => match schema.get("additionalProperties") {
                    Some(child) => check(child, v, &child_path, errors),
                    None if preserve => {}
                    None => errors.push(format!("{child_path}: unknown field")),
                },
            }
        }
        let satisfied = |branch: &Json| {
            branch["required"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|k| map.contains_key(k.as_str().unwrap_or_default()))
        };
        if let Some(branches) = schema["oneOf"].as_array() {
            let matched = branches.iter().filter(|b| satisfied(b)).count();
            if matched != 1 {
                errors.push(format!(
                    "{at}: must match exactly one of oneOf ({matched} matched)"
                ));
            }
        }
        if let Some(branches) = schema["anyOf"].as_array()
            && !branches.iter().any(satisfied)
        {
            errors.push(format!("{at}: must match one of anyOf"));
        }
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().unwrap_or_default();
        let message = rule["message"].as_str().unwrap_or_default();
        match run_rule(text, value) {
            Ok(true) => {}
            Ok(false) => errors.push(format!("{at}: {message}")),
            Err(e) => errors.push(format!("{at}: rule `{text}` failed: {e}")),
        }
    }
}

thread_local! {
    static COMPILED: RefCell<HashMap<String, Rc<Expr>>> = RefCell::new(HashMap::new());
}

/// Compiles a CEL rule (cached).
pub fn compile_rule(rule: &str) -> Result<Rc<Expr>, String> {
    if let Some(expr) = COMPILED.with(|c| c.borrow().get(rule).cloned()) {
        return Ok(expr);
    }
    let expr = Rc::new(Expr::compile_str(rule).map_err(|d| d.message)?);
    COMPILED.with(|c| c.borrow_mut().insert(rule.to_string(), expr.clone()));
    Ok(expr)
}

fn run_rule(rule: &str, value: &Json) -> Result<bool, String> {
    let expr = compile_rule(rule)?;
    let escaped = koreo_lang::schema::rule_self(value);
    let scope = Scope::new().with("self", &escaped);
    expr.eval_bool(&scope).map_err(|e| e.message)
}
