//! Cost limits on expressions, so no file can make koreo run or allocate without bound.
//!
//! Every evaluation is metered (see the vendored `cel::cost`): 1 unit per node evaluated, and per
//! list or map entry and per 8 bytes of string that a call, operator, literal or comprehension
//! builds or a call reads. One expression may spend [`EXPRESSION_LIMIT`]; everything one
//! reconcile (or one test case) evaluates together may spend [`RECONCILE_LIMIT`]. The numbers are
//! those of the Kubernetes API server's CEL (a per-call limit of 10^6, 10^7 per validation).

use std::cell::RefCell;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr as Ast, LiteralValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How the cost of an expression is counted, for messages.
pub(crate) const HOW_COST_COUNTS: &str = "an expression costs 1 unit per step evaluated and per \
    list entry or 8 bytes of string it builds; loops over large lists, nested ones above all, \
    cost the most";

/// What one expression may spend.
pub const EXPRESSION_LIMIT: u64 = 1_000_000;
/// What all the expressions of one reconcile, or of one test case, may spend together.
pub const RECONCILE_LIMIT: u64 = 10_000_000;

/// What a reconcile may still spend. Shared by the steps it runs concurrently.
#[derive(Debug)]
pub struct Budget {
    remaining: AtomicU64,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Budget>>> = const { RefCell::new(None) };
}

/// Why an evaluation was stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Exceeded {
    /// The expression alone passed [`EXPRESSION_LIMIT`].
    Expression,
    /// The reconcile's budget ran out during this expression.
    Reconcile,
}

impl Budget {
    pub fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            remaining: AtomicU64::new(limit),
        })
    }

    /// A budget of [`RECONCILE_LIMIT`].
    pub fn for_reconcile() -> Arc<Budget> {
        Budget::new(RECONCILE_LIMIT)
    }

    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Relaxed)
    }

    /// Runs `work` with the expressions it evaluates on this thread paid from this budget.
    pub fn pay_for<T>(self: &Arc<Budget>, work: impl FnOnce() -> T) -> T {
        let outer = CURRENT.with(|current| current.replace(Some(Arc::clone(self))));
        let result = work();
        CURRENT.with(|current| current.replace(outer));
        result
    }

    fn spend(&self, units: u64) {
        // A concurrent step may have spent in between: never wrap below zero.
        let _ = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(units))
            });
    }
}

/// Runs one evaluation under the limits: at most [`EXPRESSION_LIMIT`], and no more than the
/// current budget has left. Returns its result, the units spent, and whether it was stopped.
pub(crate) fn metered<T>(evaluate: impl FnOnce() -> T) -> (T, u64, Option<Exceeded>) {
    let budget = CURRENT.with(|current| current.borrow().clone());
    let left = budget.as_ref().map_or(u64::MAX, |b| b.remaining());
    let limit = EXPRESSION_LIMIT.min(left);
    let (result, spent) = cel::cost::metered(limit, evaluate);
    if let Some(budget) = &budget {
        budget.spend(spent);
    }
    let exceeded = (spent > limit).then_some(if limit < EXPRESSION_LIMIT {
        Exceeded::Reconcile
    } else {
        Exceeded::Expression
    });
    (result, spent, exceeded)
}

/// The message for an evaluation stopped by its limit.
pub(crate) fn exceeded_message(exceeded: Exceeded) -> String {
    match exceeded {
        Exceeded::Expression => format!(
            "the expression is too costly: it passed its limit of {} cost units ({HOW_COST_COUNTS})",
            thousands(EXPRESSION_LIMIT)
        ),
        Exceeded::Reconcile => format!(
            "this reconcile's expressions spent its whole budget of {} cost units; the \
             expressions run for one parent must do less together",
            thousands(RECONCILE_LIMIT)
        ),
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The most an expression can cost, where that is known without its inputs: loops over lists
/// whose size the expression itself fixes (`lists.range(8000)`, `[1, 2, 3]`). `None` when a loop
/// runs over data (its size is known only when it runs: the runtime meter covers it).
pub fn worst_case(expr: &IdedExpr) -> Option<u64> {
    Some(estimate(expr)?.cost)
}

struct Estimate {
    cost: u64,
    /// Entries of the list it gives, when known.
    size: Option<u64>,
}

fn estimate(expr: &IdedExpr) -> Option<Estimate> {
    let sum = |exprs: &mut dyn Iterator<Item = &IdedExpr>| -> Option<u64> {
        let mut total = 1u64;
        for e in exprs {
            total = total.saturating_add(estimate(e)?.cost);
        }
        Some(total)
    };
    Some(match &expr.expr {
        Ast::Literal(_) | Ast::Ident(_) | Ast::Unspecified => Estimate {
            cost: 1,
            size: None,
        },
        Ast::Select(select) => Estimate {
            cost: 1 + estimate(&select.operand)?.cost,
            size: None,
        },
        Ast::List(list) => Estimate {
            cost: sum(&mut list.elements.iter())?.saturating_add(list.elements.len() as u64),
            size: Some(list.elements.len() as u64),
        },
        Ast::Map(map) => {
            let mut parts = map.entries.iter().flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
                EntryExpr::StructField(f) => vec![&f.value],
            });
            Estimate {
                cost: sum(&mut parts)?,
                size: None,
            }
        }
        Ast::Struct(_) => Estimate {
            cost: 1,
            size: None,
        },
        Ast::Call(call) => {
            let mut cost = sum(&mut call.target.iter().map(|t| &**t).chain(&call.args))?;
            let mut size = None;
            let is_range = call.func_name == "lists.range"
                || (call.func_name == "range"
                    && call
                        .target
                        .as_ref()
                        .is_some_and(|t| matches!(&t.expr, Ast::Ident(n) if n == "lists")));
            if is_range
                && let [arg] = call.args.as_slice()
                && let Ast::Literal(LiteralValue::Int(n)) = &arg.expr
            {
                let n = (*n.inner()).max(0) as u64;
                cost = cost.saturating_add(n);
                size = Some(n);
            }
            Estimate { cost, size }
        }
        Ast::Comprehension(c) => {
            let iter = estimate(&c.iter_range)?;
            let count = iter.size?;
            let per_item = estimate(&c.loop_cond)?
                .cost
                .saturating_add(estimate(&c.loop_step)?.cost);
            Estimate {
                cost: iter
                    .cost
                    .saturating_add(estimate(&c.accu_init)?.cost)
                    .saturating_add(count.saturating_mul(per_item))
                    .saturating_add(estimate(&c.result)?.cost),
                // `map` and `filter` give at most one entry per item
                size: Some(count),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Expr, Scope};

    fn eval(src: &str) -> Result<serde_json::Value, String> {
        let inputs = serde_json::json!({"n": 8000, "m": 7000, "k": 2000});
        Expr::compile_str(src)
            .unwrap()
            .eval(&Scope::new().with("inputs", &inputs))
            .map_err(|e| e.message)
    }

    #[test]
    fn runaway_expressions_are_stopped() {
        let doubled: Vec<String> = (0..32)
            .map(|i| format!("cel.index({i}) + cel.index({i})"))
            .collect();
        for src in [
            // 64 million steps
            "lists.range(inputs.n).all(x, lists.range(inputs.n).all(y, true))".to_string(),
            // 49 million list entries (about 1.2 GB if built)
            "size(lists.range(inputs.m).map(x, lists.range(inputs.m)))".to_string(),
            // a string of 8 GiB
            format!(
                "size(cel.block([\"ab\", {}], cel.index(32)))",
                doubled.join(", ")
            ),
            // a search repeated over a list it rebuilds: each `in` reads the whole list
            "lists.range(inputs.k).all(x, (x in lists.range(inputs.k)) || true)".to_string(),
        ] {
            let message = eval(&src).expect_err(&src);
            assert!(
                message.contains("passed its limit of 1,000,000 cost units"),
                "{src}: {message}"
            );
        }
    }

    #[test]
    fn loops_of_a_size_known_when_loading_are_refused_then() {
        for (src, cost) in [
            (
                "lists.range(8000).all(x, lists.range(8000).all(y, true))",
                "384,080,005",
            ),
            ("size(lists.range(7000).map(x, lists.range(7000)))", "49,"),
        ] {
            let error = Expr::compile_str(src).expect_err(src);
            assert!(
                error.message.contains(&format!("can cost up to {cost}")),
                "{}",
                error.message
            );
        }
        for src in [
            "lists.range(100).map(x, lists.range(100))",
            "[1, 2, 3].all(x, x > 0)",
            "inputs.items.all(x, lists.range(10).exists(y, y == x))",
        ] {
            assert!(Expr::compile_str(src).is_ok(), "{src}");
        }
    }

    #[test]
    fn an_error_an_operator_absorbs_still_stops_the_evaluation() {
        // `error || true` is true in CEL: the cost error must not be swallowed by it
        let message =
            eval("lists.range(inputs.k).map(x, lists.range(inputs.k)) == [] || true").unwrap_err();
        assert!(message.contains("too costly"), "{message}");
    }

    #[test]
    fn ordinary_expressions_cost_little() {
        let budget = Budget::new(EXPRESSION_LIMIT);
        let value = budget.pay_for(|| eval("lists.range(100).map(x, 'item-' + string(x)).size()"));
        assert_eq!(value, Ok(serde_json::json!(100)));
        let spent = EXPRESSION_LIMIT - budget.remaining();
        assert!((100..2000).contains(&spent), "spent {spent}");
    }

    #[test]
    fn a_reconcile_shares_one_budget() {
        let budget = Budget::new(EXPRESSION_LIMIT);
        let heavy = "lists.range(600).map(x, lists.range(1000)).size()";
        assert_eq!(budget.pay_for(|| eval(heavy)), Ok(serde_json::json!(600)));
        let message = budget.pay_for(|| eval(heavy)).unwrap_err();
        assert!(
            message.contains("this reconcile's expressions spent its whole budget"),
            "{message}"
        );
        // outside the budget the same expression runs
        assert_eq!(eval(heavy), Ok(serde_json::json!(600)));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
    }
}
