//! Runs the CEL specification's conformance cases that need no protobuf messages against the
//! Koreo environment, and checks that exactly the cases in `cel_known_failures.txt` fail.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelNull, CelOptional,
    CelString, CelTimestamp, CelType, CelUInt,
};
use cel::common::value::Val;
use cel::objects::{Key, Map};
use cel::{Context, Env, Value};
use serde_json::Value as Json;

#[path = "../../test-support/shared.rs"]
mod shared;
const KNOWN_FAILURES: &str = include_str!("cel_known_failures.txt");

thread_local! {
    /// The message of the running case's panic; `None` outside a case.
    static CASE_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A CEL value compared type-exactly: unlike `cel::Value`'s `==`, int 1, uint 1 and double 1.0
/// differ, and a type value is no string.
#[derive(Debug)]
enum Exact {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
    Bytes(Vec<u8>),
    List(Vec<Exact>),
    Map(Vec<(Exact, Exact)>),
    Type(String),
}

impl PartialEq for Exact {
    fn eq(&self, other: &Self) -> bool {
        use Exact::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (UInt(a), UInt(b)) => a == b,
            // The suite's NaN results only say "a NaN"; otherwise IEEE equality (0.0 == -0.0).
            (Double(a), Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (String(a), String(b)) | (Type(a), Type(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v == v2))
            }
            _ => false,
        }
    }
}

/// The protobuf-JSON form of a `cel.expr.Value`.
fn from_json(j: &Json) -> Result<Exact, String> {
    let obj = j.as_object().ok_or_else(|| format!("not a Value: {j}"))?;
    let (kind, v) = obj.iter().next().ok_or_else(|| "empty Value".to_string())?;
    let text = || v.as_str().ok_or_else(|| format!("{kind}: not a string"));
    Ok(match kind.as_str() {
        "nullValue" => Exact::Null,
        "boolValue" => Exact::Bool(v.as_bool().ok_or("boolValue: not a bool")?),
        "int64Value" => Exact::Int(text()?.parse().map_err(|e| format!("{kind}: {e}"))?),
        "uint64Value" => Exact::UInt(text()?.parse().map_err(|e| format!("{kind}: {e}"))?),
        "doubleValue" => Exact::Double(match v {
            Json::Number(n) => n.as_f64().ok_or("doubleValue: not a number")?,
            Json::String(s) => s.parse().map_err(|e| format!("{kind}: {e}"))?,
            _ => return Err(format!("doubleValue: {v}")),
        }),
        "stringValue" => Exact::String(text()?.to_string()),
        "bytesValue" => {
            let b64 = text()?;
            Exact::Bytes(
                STANDARD
                    .decode(b64)
                    .or_else(|_| URL_SAFE.decode(b64))
                    .map_err(|e| format!("{kind}: {e}"))?,
            )
        }
        "listValue" => Exact::List(
            v.get("values")
                .and_then(Json::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(from_json)
                .collect::<Result<_, _>>()?,
        ),
        "mapValue" => Exact::Map(
            v.get("entries")
                .and_then(Json::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|e| {
                    let part = |p: &str| e.get(p).ok_or_else(|| format!("map entry without {p}"));
                    Ok((from_json(part("key")?)?, from_json(part("value")?)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        "typeValue" => Exact::Type(text()?.to_string()),
        other => return Err(format!("unsupported Value kind {other}")),
    })
}

/// A binding's value as the `cel::Value` a host would pass in.
fn to_value(e: &Exact) -> Result<Value, String> {
    Ok(match e {
        Exact::Null => Value::Null,
        Exact::Bool(b) => Value::Bool(*b),
        Exact::Int(i) => Value::Int(*i),
        Exact::UInt(u) => Value::UInt(*u),
        Exact::Double(d) => Value::Float(*d),
        Exact::String(s) => Value::String(Arc::new(s.clone())),
        Exact::Bytes(b) => Value::Bytes(Arc::new(b.clone())),
        Exact::List(l) => Value::List(Arc::new(l.iter().map(to_value).collect::<Result<_, _>>()?)),
        Exact::Map(m) => Value::Map(Map {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Exact::Bool(b) => Key::Bool(*b),
                            Exact::Int(i) => Key::Int(*i),
                            Exact::UInt(u) => Key::Uint(*u),
                            Exact::String(s) => Key::String(Arc::new(s.clone())),
                            other => return Err(format!("map key {other:?}")),
                        };
                        Ok((key, to_value(v)?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        }),
        Exact::Type(_) => return Err(format!("binding {e:?}")),
    })
}

/// A result, read from the runtime value so that type values stay types; `Err` describes a value no
/// expected result can be (timestamp, optional, ...).
fn from_val(v: &dyn Val) -> Result<Exact, String> {
    Ok(if v.downcast_ref::<CelNull>().is_some() {
        Exact::Null
    } else if let Some(b) = v.downcast_ref::<CelBool>() {
        Exact::Bool(*b.inner())
    } else if let Some(i) = v.downcast_ref::<CelInt>() {
        Exact::Int(*i.inner())
    } else if let Some(u) = v.downcast_ref::<CelUInt>() {
        Exact::UInt(*u.inner())
    } else if let Some(d) = v.downcast_ref::<CelDouble>() {
        Exact::Double(*d.inner())
    } else if let Some(s) = v.downcast_ref::<CelString>() {
        Exact::String(s.inner().to_string())
    } else if let Some(b) = v.downcast_ref::<CelBytes>() {
        Exact::Bytes(b.inner().to_vec())
    } else if let Some(l) = v.downcast_ref::<CelList>() {
        Exact::List(
            l.inner()
                .iter()
                .map(|i| from_val(i.as_ref()))
                .collect::<Result<_, _>>()?,
        )
    } else if let Some(m) = v.downcast_ref::<CelMap>() {
        Exact::Map(
            m.inner()
                .iter()
                .map(|(k, v)| Ok((from_val(k.inner())?, from_val(v.as_ref())?)))
                .collect::<Result<_, String>>()?,
        )
    } else if let Some(t) = v.downcast_ref::<CelType>() {
        Exact::Type(t.name().to_string())
    } else if let Some(t) = v.downcast_ref::<CelTimestamp>() {
        return Err(format!("timestamp({})", t.inner().to_rfc3339()));
    } else if let Some(d) = v.downcast_ref::<CelDuration>() {
        return Err(format!("duration({})", d.inner()));
    } else if let Some(o) = v.downcast_ref::<CelOptional>() {
        return Err(format!("optional({:?})", o.option().map(from_val)));
    } else {
        return Err(format!("{v:?}"));
    })
}

/// Environments that resolve names in a container. The Koreo environment has none, so a case with
/// a container runs against the standard one with it: containers are the crate's, not Koreo's.
#[derive(Default)]
struct Containers(BTreeMap<String, Arc<Env>>);

impl Containers {
    fn env(&mut self, container: &str) -> Result<Arc<Env>, String> {
        if let Some(env) = self.0.get(container) {
            return Ok(env.clone());
        }
        let mut env = Env::stdlib();
        env.set_container(container).map_err(|e| e.to_string())?;
        let env = Arc::new(env);
        self.0.insert(container.to_string(), env.clone());
        Ok(env)
    }
}

/// Runs one case: `Ok` if it behaves as the suite expects, else why not.
fn run_case(case: &Json, containers: &mut Containers) -> Result<(), String> {
    let expr = case["expr"].as_str().ok_or("case without expr")?;
    if case["disableMacros"].as_bool() == Some(true) {
        return Err("disableMacros: the Koreo environment always expands its macros".to_string());
    }
    let env = koreo_stdlib::env();
    let expected = if let Some(v) = case.get("value") {
        Some(from_json(v)?)
    } else if let Some(t) = case.get("typedResult") {
        Some(from_json(&t["result"])?)
    } else if case.get("evalError").is_some() || case.get("anyEvalErrors").is_some() {
        None
    } else {
        return Err("unsupported expectation (unknowns)".to_string());
    };

    let program = match koreo_stdlib::parse(expr) {
        Ok(p) => p,
        Err(_) if expected.is_none() => return Ok(()),
        Err(e) => return Err(format!("parse error: {}", one_line(&e.to_string()))),
    };
    let ctx_env = match case.get("container").and_then(Json::as_str) {
        Some(c) if !c.is_empty() => containers.env(c)?,
        _ => env,
    };
    let mut ctx = Context::with_env(ctx_env);
    if let Some(bindings) = case.get("bindings").and_then(Json::as_object) {
        for (name, b) in bindings {
            ctx.add_variable_from_value(name.as_str(), to_value(&from_json(&b["value"])?)?);
        }
    }
    let got = Value::resolve_val(&program.ast, &ctx).map(|v| from_val(v.as_ref()));
    let got = match got {
        Ok(Err(other)) => return Err(format!("got {other}, want {expected:?}")),
        Ok(Ok(got)) => Ok(got),
        Err(e) => Err(e),
    };
    match (got, expected) {
        (Ok(got), Some(want)) if got == want => Ok(()),
        (Ok(got), Some(want)) => Err(format!("got {got:?}, want {want:?}")),
        (Ok(got), None) => Err(format!("got {got:?}, want an error")),
        (Err(_), None) => Ok(()),
        (Err(e), Some(_)) => Err(format!("eval error: {}", one_line(&e.to_string()))),
    }
}

/// Quotes the numbers of `"doubleValue"`s: serde_json's default float parsing may be one ULP off
/// (`1.38e-23`), Rust's `str::parse` is exact, and a Value's double may be a string anyway.
fn quote_doubles(json: &str) -> String {
    const KEY: &str = "\"doubleValue\":";
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    let mut rest = json;
    while let Some(at) = rest.find(KEY) {
        let (head, tail) = rest.split_at(at + KEY.len());
        out.push_str(head);
        let number = tail.trim_start();
        out.push_str(&tail[..tail.len() - number.len()]);
        let len = number
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(number.len());
        if len > 0 {
            out.push('"');
            out.push_str(&number[..len]);
            out.push('"');
        }
        rest = &number[len..];
    }
    out.push_str(rest);
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn cel_spec_conformance() {
    // Deeply nested cases recurse deep in a debug build: give them room.
    let report = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run_all)
        .expect("spawn the conformance thread")
        .join()
        .expect("the conformance run itself does not panic");
    if let Err(report) = report {
        panic!("{report}");
    }
}

fn run_all() -> Result<(), String> {
    let Some(cases) = shared::shared("cel-conformance/cases.json") else {
        return Ok(());
    };
    let text = std::fs::read_to_string(cases).expect("read cases.json");
    let cases: Vec<Json> = serde_json::from_str(&quote_doubles(&text)).expect("cases.json is JSON");

    let mut known = BTreeSet::new();
    for line in KNOWN_FAILURES.lines() {
        let id = line.split_once(" #").map_or(line, |(id, _)| id).trim();
        if !id.is_empty() && !id.starts_with('#') {
            assert!(known.insert(id.to_string()), "listed twice: {id}");
        }
    }

    // A panicking case is a failure with the panic's message, not the end of the run: while a case
    // runs, its thread keeps the message instead of printing it.
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let kept = CASE_PANIC.with(|m| match m.try_borrow_mut().as_deref_mut() {
            Ok(Some(message)) => {
                *message = info.to_string();
                true
            }
            _ => false,
        });
        if !kept {
            previous(info);
        }
    }));

    let mut containers = Containers::default();
    let (mut total, mut passed) = (0, 0);
    let mut unexpected = Vec::new();
    let mut seen = BTreeSet::new();
    let mut now_passing = Vec::new();
    for case in &cases {
        if case["usesProtoMessages"].as_bool() == Some(true)
            || case["checkOnly"].as_bool() == Some(true)
        {
            continue;
        }
        let id = ["section", "suite", "name"]
            .map(|k| case[k].as_str().unwrap_or("?"))
            .join("/");
        total += 1;
        seen.insert(id.clone());
        CASE_PANIC.set(Some(String::new()));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_case(case, &mut containers)));
        let message = CASE_PANIC.take().unwrap_or_default();
        let outcome = outcome.unwrap_or_else(|_| Err(format!("panic: {}", one_line(&message))));
        match outcome {
            Ok(()) => {
                passed += 1;
                if known.contains(&id) {
                    now_passing.push(id);
                }
            }
            Err(reason) if !known.contains(&id) => unexpected.push(format!("{id}  # {reason}")),
            Err(_) => {}
        }
    }

    println!("cel-spec conformance: {passed}/{total} passed");
    let stale: Vec<_> = known.difference(&seen).collect();
    let mut report = String::new();
    if !unexpected.is_empty() {
        report += &format!(
            "{} cases fail that cel_known_failures.txt does not list:\n{}\n",
            unexpected.len(),
            unexpected.join("\n")
        );
    }
    if !now_passing.is_empty() {
        report += &format!(
            "listed in cel_known_failures.txt but now passing, remove them:\n{}\n",
            now_passing.join("\n")
        );
    }
    if !stale.is_empty() {
        report += &format!("listed in cel_known_failures.txt but not in the suite:\n{stale:?}\n");
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}
