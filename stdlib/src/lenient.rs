//! Two leniencies of Koreo's CEL engine that existing Koreo files rely on:
//!
//! - `has(a.b.c)` is false when `a.b` is missing or null (the CEL spec makes it an error), so a
//!   single `has()` guards a whole path: `has(resource.status.ready)`. So does
//!   `has(a.labels['example.com/team'])` (the CEL spec refuses an index in `has()`).
//! - `size(null)` and `null.size()` are 0, so `inputs.selector.size() > 0` is false for a null
//!   selector.

use cel::common::ast::{CallExpr, EntryExpr, Expr, LiteralValue, SelectExpr, operators};
use cel::common::types::{CelBool, CelInt, DYN_TYPE, NULL_TYPE};
use cel::common::value::CowVal;
use cel::{Env, ExecutionError, IdedExpr};

use cel::parser::HAS_INDEX;

pub(crate) fn register(env: &mut Env) {
    let registered = [
        env.add_overload("size", "size(null_type)", vec![NULL_TYPE], size_of_null),
        env.add_member_overload("size", "null_type.size()", NULL_TYPE, vec![], size_of_null),
        env.add_overload(
            HAS_INDEX,
            "@has_index(dyn,dyn)",
            vec![DYN_TYPE, DYN_TYPE],
            has_index,
        ),
    ];
    for result in registered {
        // A conflict is a bug in this file, found by any test that builds the environment.
        if let Err(e) = result {
            panic!("cannot register a lenient overload: {e:?}");
        }
    }
}

fn size_of_null<'b, 'v>(_: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelInt::from(0)))
}

/// Whether `container[index]` exists: a list index in range or a map key present.
fn has_index<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let found = match args.as_slice() {
        [container, index] => container
            .as_indexer()
            .is_some_and(|indexer| indexer.get(index.as_ref()).is_ok()),
        _ => false,
    };
    Ok(CowVal::owned(CelBool::from(found)))
}

/// Rewrites every `has(x.f)` (and `has(x[k])`) into `<x can be read and is not null> &&
/// has(x.f)`.
pub(crate) fn relax_has(expr: &mut IdedExpr) {
    let mut next_id = max_id(expr) + 1;
    rewrite(expr, &mut next_id);
}

fn max_id(e: &IdedExpr) -> u64 {
    let mut max = e.id;
    for_each_child(e, &mut |child| max = max.max(max_id(child)));
    max
}

fn for_each_child(e: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    match &e.expr {
        Expr::Call(call) => {
            for child in call.target.iter().map(|t| &**t).chain(&call.args) {
                f(child);
            }
        }
        Expr::Select(select) => f(&select.operand),
        Expr::List(list) => {
            for item in &list.elements {
                f(item);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    f(&entry.key);
                    f(&entry.value);
                }
            }
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    f(&field.value);
                }
            }
        }
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                f(x);
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn rewrite(e: &mut IdedExpr, next_id: &mut u64) {
    match &mut e.expr {
        Expr::Call(call) => {
            if let Some(t) = call.target.as_mut() {
                rewrite(t, next_id);
            }
            call.args.iter_mut().for_each(|a| rewrite(a, next_id));
        }
        Expr::Select(select) => rewrite(&mut select.operand, next_id),
        Expr::List(list) => list.elements.iter_mut().for_each(|x| rewrite(x, next_id)),
        Expr::Map(map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(entry) = &mut entry.expr {
                    rewrite(&mut entry.key, next_id);
                    rewrite(&mut entry.value, next_id);
                }
            }
        }
        Expr::Struct(st) => {
            for entry in &mut st.entries {
                if let EntryExpr::StructField(field) = &mut entry.expr {
                    rewrite(&mut field.value, next_id);
                }
            }
        }
        Expr::Comprehension(c) => {
            for x in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                rewrite(x, next_id);
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
    let guarded = match &e.expr {
        Expr::Select(SelectExpr {
            operand,
            test: true,
            ..
        }) => Some(operand.as_ref()),
        Expr::Call(c) if c.func_name == HAS_INDEX && c.args.len() == 2 => c.args.first(),
        _ => None,
    };
    if let Some(guard) = guarded.and_then(|operand| readable(operand, next_id)) {
        let has = std::mem::take(e);
        *e = and(guard, has, next_id);
    }
}

fn node(expr: Expr, next_id: &mut u64) -> IdedExpr {
    let id = *next_id;
    *next_id += 1;
    IdedExpr { id, expr }
}

fn call(func_name: &str, args: Vec<IdedExpr>, next_id: &mut u64) -> IdedExpr {
    node(
        Expr::Call(CallExpr {
            func_name: func_name.to_string(),
            target: None,
            args,
        }),
        next_id,
    )
}

fn and(a: IdedExpr, b: IdedExpr, next_id: &mut u64) -> IdedExpr {
    call(operators::LOGICAL_AND, vec![a, b], next_id)
}

fn not_null(e: &IdedExpr, next_id: &mut u64) -> IdedExpr {
    let null = node(Expr::Literal(LiteralValue::Null), next_id);
    call(operators::NOT_EQUALS, vec![e.clone(), null], next_id)
}

/// A condition that is true when `e` evaluates without error to a non-null value, for the
/// field and index paths that `has()` guards; `None` when there is nothing to guard.
fn readable(e: &IdedExpr, next_id: &mut u64) -> Option<IdedExpr> {
    let present = match &e.expr {
        Expr::Ident(_) => return Some(not_null(e, next_id)),
        Expr::Select(SelectExpr {
            operand,
            field,
            test: false,
        }) => {
            let outer = readable(operand, next_id);
            let has = node(
                Expr::Select(SelectExpr {
                    operand: operand.clone(),
                    field: field.clone(),
                    test: true,
                }),
                next_id,
            );
            (outer, has)
        }
        Expr::Call(c)
            if c.func_name == operators::INDEX && c.target.is_none() && c.args.len() == 2 =>
        {
            let outer = readable(&c.args[0], next_id);
            let has = call(HAS_INDEX, c.args.clone(), next_id);
            (outer, has)
        }
        _ => return None,
    };
    let (outer, has) = present;
    let here = and(has, not_null(e, next_id), next_id);
    Some(match outer {
        Some(outer) => and(outer, here, next_id),
        None => here,
    })
}
