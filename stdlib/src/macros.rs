//! Macros of the CEL specification that the `cel` crate lacks: `cel.bind`, `cel.block` (with
//! `cel.index`, `cel.iterVar` and `cel.accuVar`) and the two-variable comprehensions `all`,
//! `exists`, `existsOne`, `transformList` and `transformMap`.
//!
//! The interpreter binds one variable per comprehension (it ignores `iter_var2`), so everything is
//! lowered onto single-variable comprehensions:
//! - `bind(var, init, body)` is a comprehension over no items whose accumulator `var` starts as
//!   `init` and which results in `body`;
//! - a two-variable comprehension iterates over the `[key, value]` pairs `@pairs` makes of its
//!   target, and binds both variables around each use of them.
//!
//! Internal names start with `@`, which CEL source cannot spell, so they never meet a user's.

use cel::common::ast::{
    CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue, operators,
};
use cel::common::types::{CelInt, CelList, CelMap, CelMapKey, DYN_TYPE, Kind, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{Env, ExecutionError};

/// The accumulator the standard macros use too: an inner comprehension's shadows an outer one's.
const RESULT: &str = "@result";
/// The current `[key, value]` pair of a two-variable comprehension.
const PAIR: &str = "@pair";
/// Turns a list into `[[index, element], ...]` and a map into `[[key, value], ...]`.
const PAIRS: &str = "@pairs";
/// Turns `[[key, value], ...]` into a map.
const TO_MAP: &str = "@toMap";

type Expansion = Result<Option<IdedExpr>, ParseError>;

pub(crate) fn register(env: &mut Env) {
    let macros = [
        Macro::receiver("bind", 3, bind_macro),
        Macro::receiver("block", 2, block_macro),
        Macro::receiver("index", 1, index_macro),
        Macro::receiver("iterVar", 2, |h, t, a| block_var_macro(h, t, a, "@it")),
        Macro::receiver("accuVar", 2, |h, t, a| block_var_macro(h, t, a, "@ac")),
        Macro::receiver("all", 3, |h, t, a| two_var(h, t, a, Fold::All)),
        Macro::receiver("exists", 3, |h, t, a| two_var(h, t, a, Fold::Exists)),
        Macro::receiver("existsOne", 3, |h, t, a| two_var(h, t, a, Fold::ExistsOne)),
        Macro::receiver("exists_one", 3, |h, t, a| two_var(h, t, a, Fold::ExistsOne)),
        Macro::receiver("transformList", 3, |h, t, a| two_var(h, t, a, Fold::List)),
        Macro::receiver("transformList", 4, |h, t, a| two_var(h, t, a, Fold::List)),
        Macro::receiver("transformMap", 3, |h, t, a| two_var(h, t, a, Fold::Map)),
        Macro::receiver("transformMap", 4, |h, t, a| two_var(h, t, a, Fold::Map)),
    ];
    for m in macros {
        env.add_macro(m)
            .expect("the spec's extra macros don't clash with the crate's");
    }
    env.add_overload(PAIRS, PAIRS, vec![DYN_TYPE], pairs)
        .expect("internal overloads have names of their own");
    env.add_overload(TO_MAP, TO_MAP, vec![LIST_TYPE], to_map)
        .expect("internal overloads have names of their own");
}

/// Whether a receiver call is on the `cel` namespace, as in `cel.bind(..)`.
fn on_cel(target: &Option<IdedExpr>) -> bool {
    matches!(target, Some(IdedExpr { expr: Expr::Ident(name), .. }) if name == "cel")
}

/// `cel.bind(var, init, body)`: `body` with `var` bound to `init`.
fn bind_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Expansion {
    if !on_cel(target) {
        return Ok(None);
    }
    let Some([var, init, body]) = take(args) else {
        return Ok(None);
    };
    let var = ident(helper, var, "cel.bind")?;
    Ok(Some(bind(helper, var, init, body)))
}

/// `cel.block([e0, e1, ..], body)`: `body` with `cel.index(N)` bound to `eN`, each `eN` seeing
/// the earlier ones. Arguments expand first, so every `cel.index(N)` is already `@indexN`.
fn block_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Expansion {
    if !on_cel(target) {
        return Ok(None);
    }
    let Some([bindings, body]) = take(args) else {
        return Ok(None);
    };
    let elements = match bindings.expr {
        Expr::List(list) if list.optional_indices.is_empty() => list.elements,
        _ => {
            return Err(helper.new_error(
                bindings.id,
                "cel.block requires a list literal of expressions as its first argument",
            ));
        }
    };
    Ok(Some(
        elements
            .into_iter()
            .enumerate()
            .rev()
            .fold(body, |body, (n, init)| {
                bind(helper, format!("@index{n}"), init, body)
            }),
    ))
}

/// `cel.index(N)`: the `N`th binding of the enclosing `cel.block`.
fn index_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Expansion {
    if !on_cel(target) {
        return Ok(None);
    }
    let Some([n]) = take(args) else {
        return Ok(None);
    };
    let n = index(helper, &n, "cel.index")?;
    Ok(Some(helper.next_expr(Expr::Ident(format!("@index{n}")))))
}

/// `cel.iterVar(N, M)` and `cel.accuVar(N, M)`: the names `cel.block`'s optimiser gives the
/// variables of nested comprehensions.
fn block_var_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
    prefix: &str,
) -> Expansion {
    if !on_cel(target) {
        return Ok(None);
    }
    let Some([depth, n]) = take(args) else {
        return Ok(None);
    };
    let depth = index(helper, &depth, prefix)?;
    let n = index(helper, &n, prefix)?;
    Ok(Some(
        helper.next_expr(Expr::Ident(format!("{prefix}:{depth}:{n}"))),
    ))
}

/// What a two-variable comprehension makes of its items.
#[derive(Clone, Copy)]
enum Fold {
    All,
    Exists,
    ExistsOne,
    List,
    Map,
}

/// `target.f(k, v, ..)`: iterates over the pairs of `target`, binding `k` to the index or key and
/// `v` to the element or value.
fn two_var(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
    fold: Fold,
) -> Expansion {
    // Declining is only allowed before taking anything; the arities registered rule it out.
    if target.is_none() || !(3..=4).contains(&args.len()) {
        return Ok(None);
    }
    let mut args = std::mem::take(args).into_iter();
    let (Some(range), Some(k), Some(v), Some(last)) =
        (target.take(), args.next(), args.next(), args.next_back())
    else {
        return Err(helper.new_error(0, "a two-variable comprehension needs three arguments"));
    };
    let filter = args.next();
    let v_id = v.id;
    let k = ident(helper, k, "comprehension")?;
    let v = ident(helper, v, "comprehension")?;
    if k == v {
        return Err(helper.new_error(v_id, format!("duplicate variable name: {k}")));
    }
    // Binds `k` and `v` around `e`, from the current pair.
    let with_vars = |helper: &mut MacroExprHelper<'_>, e: IdedExpr| {
        let key = pair_item(helper, 0);
        let value = pair_item(helper, 1);
        let inner = bind(helper, v.clone(), value, e);
        bind(helper, k.clone(), key, inner)
    };

    let accu = |helper: &mut MacroExprHelper<'_>| helper.next_expr(Expr::Ident(RESULT.into()));
    let call = |helper: &mut MacroExprHelper<'_>, name: &str, args: Vec<IdedExpr>| {
        helper.next_expr(Expr::Call(CallExpr {
            func_name: name.to_string(),
            target: None,
            args,
        }))
    };
    let literal =
        |helper: &mut MacroExprHelper<'_>, l: LiteralValue| helper.next_expr(Expr::Literal(l));

    // The accumulator's start, the loop's condition, its step and the result, in the shapes of
    // the crate's own macros: the interpreter recognises them to defer errors (`all`, `exists`)
    // and to append in place (`transformList`, `transformMap`).
    let (init, cond, step, result) = match fold {
        Fold::All | Fold::Exists => {
            let all = matches!(fold, Fold::All);
            let init = literal(helper, LiteralValue::Boolean(all.into()));
            let mut going = accu(helper);
            if !all {
                going = call(helper, operators::LOGICAL_NOT, vec![going]);
            }
            let cond = call(helper, operators::NOT_STRICTLY_FALSE, vec![going]);
            let predicate = with_vars(helper, last);
            let connective = if all {
                operators::LOGICAL_AND
            } else {
                operators::LOGICAL_OR
            };
            let lhs = accu(helper);
            let step = call(helper, connective, vec![lhs, predicate]);
            (init, cond, step, accu(helper))
        }
        Fold::ExistsOne => {
            let init = literal(helper, LiteralValue::Int(0.into()));
            let cond = literal(helper, LiteralValue::Boolean(true.into()));
            let predicate = with_vars(helper, last);
            let lhs = accu(helper);
            let one = literal(helper, LiteralValue::Int(1.into()));
            let plus_one = call(helper, operators::ADD, vec![lhs, one]);
            let same = accu(helper);
            let step = call(
                helper,
                operators::CONDITIONAL,
                vec![predicate, plus_one, same],
            );
            let count = accu(helper);
            let one = literal(helper, LiteralValue::Int(1.into()));
            (
                init,
                cond,
                step,
                call(helper, operators::EQUALS, vec![count, one]),
            )
        }
        Fold::List | Fold::Map => {
            let init = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
            let cond = literal(helper, LiteralValue::Boolean(true.into()));
            let value = with_vars(helper, last);
            let item = match fold {
                Fold::Map => {
                    let key = pair_item(helper, 0);
                    helper.next_expr(Expr::List(ListExpr::new(vec![key, value])))
                }
                _ => value,
            };
            let items = helper.next_expr(Expr::List(ListExpr::new(vec![item])));
            let lhs = accu(helper);
            let mut step = call(helper, operators::ADD, vec![lhs, items]);
            if let Some(filter) = filter {
                let keep = with_vars(helper, filter);
                let same = accu(helper);
                step = call(helper, operators::CONDITIONAL, vec![keep, step, same]);
            }
            (init, cond, step, accu(helper))
        }
    };
    let iter_range = call(helper, PAIRS, vec![range]);
    let comprehension = helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range,
        iter_var: PAIR.into(),
        iter_var2: None,
        accu_var: RESULT.into(),
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result,
    })));
    Ok(Some(match fold {
        Fold::Map => call(helper, TO_MAP, vec![comprehension]),
        _ => comprehension,
    }))
}

/// `@pair[n]`.
fn pair_item(helper: &mut MacroExprHelper<'_>, n: i64) -> IdedExpr {
    let pair = helper.next_expr(Expr::Ident(PAIR.into()));
    let n = helper.next_expr(Expr::Literal(LiteralValue::Int(n.into())));
    helper.next_expr(Expr::Call(CallExpr {
        func_name: operators::INDEX.to_string(),
        target: None,
        args: vec![pair, n],
    }))
}

/// `body` with `var` bound to `init`: a comprehension over no items whose accumulator is `var`.
fn bind(helper: &mut MacroExprHelper<'_>, var: String, init: IdedExpr, body: IdedExpr) -> IdedExpr {
    let no_items = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let never = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
    let unchanged = helper.next_expr(Expr::Ident(var.clone()));
    helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: no_items,
        iter_var: "@unused".into(),
        iter_var2: None,
        accu_var: var,
        accu_init: init,
        loop_cond: never,
        loop_step: unchanged,
        result: body,
    })))
}

/// The `N` arguments of a call, taken only if there are `N` of them, which the macro's arity
/// already ensures.
fn take<const N: usize>(args: &mut Vec<IdedExpr>) -> Option<[IdedExpr; N]> {
    if args.len() != N {
        return None;
    }
    std::mem::take(args).try_into().ok()
}

fn ident(helper: &MacroExprHelper<'_>, e: IdedExpr, what: &str) -> Result<String, ParseError> {
    match e.expr {
        Expr::Ident(name) => Ok(name),
        _ => Err(helper.new_error(
            e.id,
            format!("{what} variable names must be simple identifiers"),
        )),
    }
}

fn index(helper: &MacroExprHelper<'_>, e: &IdedExpr, what: &str) -> Result<i64, ParseError> {
    match &e.expr {
        Expr::Literal(LiteralValue::Int(n)) if *n.inner() >= 0 => Ok(*n.inner()),
        _ => Err(helper.new_error(e.id, format!("{what} takes non-negative int literals"))),
    }
}

/// `@pairs(x)`: the `[index, element]` pairs of a list, or the `[key, value]` pairs of a map.
fn pairs<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let target = args
        .first()
        .ok_or_else(ExecutionError::missing_argument_or_target)?;
    let not_iterable = || {
        ExecutionError::no_such_overload("comprehension", vec![target.get_type().name().to_owned()])
    };
    let items = target.as_iterable().ok_or_else(not_iterable)?;
    let is_map = target.get_type().kind() == Kind::Map;
    let mut iter = items.iter();
    let mut out: Vec<Box<dyn Val + 'v>> = Vec::new();
    let mut n = 0i64;
    while let Some(item) = iter.next() {
        let (key, value): (Box<dyn Val + 'v>, Box<dyn Val + 'v>) = if is_map {
            let indexer = target.as_indexer().ok_or_else(not_iterable)?;
            (item.clone_as_boxed(), indexer.get(item)?.into_owned())
        } else {
            (Box::new(CelInt::from(n)), item.clone_as_boxed())
        };
        out.push(Box::new(CelList::from(vec![key, value])));
        n += 1;
    }
    Ok(CowVal::owned(CelList::from(out)))
}

/// `@toMap(pairs)`: the map of `[key, value]` pairs, as `transformMap` accumulates them.
fn to_map<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let pairs = args
        .into_iter()
        .next()
        .ok_or_else(ExecutionError::missing_argument_or_target)?
        .into_owned();
    let pairs = Vec::<Box<dyn Val + 'v>>::try_from(pairs)
        .map_err(|_| ExecutionError::function_error(TO_MAP, "expected a list"))?;
    let mut map = indexmap::IndexMap::with_capacity(pairs.len());
    for pair in pairs {
        let pair = Vec::<Box<dyn Val + 'v>>::try_from(pair)
            .map_err(|_| ExecutionError::function_error(TO_MAP, "expected a pair"))?;
        let [key, value]: [Box<dyn Val + 'v>; 2] = pair
            .try_into()
            .map_err(|_| ExecutionError::function_error(TO_MAP, "expected a pair"))?;
        map.insert(CelMapKey::try_from(key)?, value);
    }
    Ok(CowVal::owned(CelMap::from(map)))
}

#[cfg(test)]
mod tests {
    use cel::{Context, Value};

    fn eval(src: &str) -> Result<Value, String> {
        let env = crate::env();
        let program = env.compile(src).map_err(|e| e.to_string())?;
        program
            .execute(&Context::with_env(env))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn two_variable_forms_cross_lists_and_maps() {
        let map = eval("[5, 6].transformMap(i, v, v * 10)").unwrap();
        assert_eq!(map, eval("{0: 50, 1: 60}").unwrap());
        let list = eval("{'a': 1}.transformList(k, v, k + string(v))").unwrap();
        assert_eq!(list, eval("['a1']").unwrap());
    }

    #[test]
    fn inner_variables_shadow_outer_ones() {
        let src = "cel.bind(x, 1, [[7]].all(i, x, x.all(i, x, i == 0 && x == 7)))";
        assert_eq!(eval(src), Ok(Value::Bool(true)));
    }

    #[test]
    fn malformed_calls_are_parse_errors() {
        for src in [
            "[1].all(x, x, true)",
            "cel.block(1, 2)",
            "cel.index(-1)",
            "cel.bind(a.b, 1, 2)",
        ] {
            assert!(crate::env().compile(src).is_err(), "{src}");
        }
    }

    #[test]
    fn other_targets_are_plain_calls() {
        let err = eval("x.bind(a, 1, a)").unwrap_err();
        assert!(err.contains("'a'") || err.contains("'x'"), "{err}");
    }
}
