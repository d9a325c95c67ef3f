//! What can be known of an expression's types without running it: literals and what operators
//! and conversions make of them. Variables are `dyn` (anything), so only mistakes that fail
//! whatever the inputs are found: `"replicas: " + 1`, `size(3)`, an `assert` that is a string.

use cel::IdedExpr;
use cel::common::ast::{Expr as Ast, LiteralValue, operators};

/// A CEL type, as far as it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Not known: anything may be there.
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    List,
    Map,
    Duration,
    Timestamp,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Dyn => "dyn",
            Type::Null => "null",
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Uint => "uint",
            Type::Double => "double",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::List => "list",
            Type::Map => "map",
            Type::Duration => "duration",
            Type::Timestamp => "timestamp",
        }
    }

    /// The type of a literal JSON value, as CEL reads it.
    pub fn of_json(value: &serde_json::Value) -> Type {
        use serde_json::Value as Json;
        match value {
            Json::Null => Type::Null,
            Json::Bool(_) => Type::Bool,
            Json::Number(n) if n.is_f64() => Type::Double,
            Json::Number(_) => Type::Int,
            Json::String(_) => Type::String,
            Json::Array(_) => Type::List,
            Json::Object(_) => Type::Map,
        }
    }

    fn is_number(self) -> bool {
        matches!(self, Type::Int | Type::Uint | Type::Double)
    }
}

/// An operation that cannot work, whatever the inputs: the AST node and what to say.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub id: u64,
    pub message: String,
    pub hint: Option<String>,
}

/// The type of `e` as far as it is known, with every operation inside that cannot work.
pub fn infer(e: &IdedExpr, found: &mut Vec<Mismatch>) -> Type {
    match &e.expr {
        Ast::Literal(literal) => match literal {
            LiteralValue::Null => Type::Null,
            LiteralValue::Boolean(_) => Type::Bool,
            LiteralValue::Int(_) => Type::Int,
            LiteralValue::UInt(_) => Type::Uint,
            LiteralValue::Double(_) => Type::Double,
            LiteralValue::String(_) => Type::String,
            LiteralValue::Bytes(_) => Type::Bytes,
        },
        Ast::List(list) => {
            for item in &list.elements {
                infer(item, found);
            }
            Type::List
        }
        Ast::Map(map) => {
            for entry in &map.entries {
                if let cel::common::ast::EntryExpr::MapEntry(entry) = &entry.expr {
                    infer(&entry.key, found);
                    infer(&entry.value, found);
                }
            }
            Type::Map
        }
        Ast::Call(call) => {
            let args: Vec<Type> = call
                .target
                .iter()
                .map(|t| &**t)
                .chain(&call.args)
                .map(|a| infer(a, found))
                .collect();
            call_type(e.id, &call.func_name, &args, found)
        }
        Ast::Select(select) => {
            infer(&select.operand, found);
            if select.test { Type::Bool } else { Type::Dyn }
        }
        Ast::Comprehension(c) => {
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                infer(part, found);
            }
            Type::Dyn
        }
        Ast::Struct(_) | Ast::Ident(_) | Ast::Unspecified => Type::Dyn,
    }
}

/// What an operator or function makes of arguments of these types; a mismatch when none of
/// its overloads takes them.
fn call_type(id: u64, name: &str, args: &[Type], found: &mut Vec<Mismatch>) -> Type {
    let mut mismatch = |message: String, hint: Option<String>| {
        found.push(Mismatch { id, message, hint });
        Type::Dyn
    };
    match (name, args) {
        (
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO,
            [a, b],
        ) => {
            let (verb, symbol) = match name {
                operators::ADD => ("add", "+"),
                operators::SUBSTRACT => ("subtract", "-"),
                operators::MULTIPLY => ("multiply", "*"),
                operators::DIVIDE => ("divide", "/"),
                _ => ("take the remainder of", "%"),
            };
            match arithmetic(name, *a, *b) {
                Some(t) => t,
                None => mismatch(
                    format!("cannot {verb} {} and {} (`{symbol}`)", a.name(), b.name()),
                    Some(arithmetic_hint(name, *a, *b)),
                ),
            }
        }
        (operators::NEGATE, [a]) if *a != Type::Dyn => match a {
            Type::Int | Type::Double | Type::Duration => *a,
            _ => mismatch(format!("cannot negate {}", a.name()), None),
        },
        (operators::LOGICAL_NOT, [a]) if !matches!(a, Type::Dyn | Type::Bool) => mismatch(
            format!("`!` takes a bool, not {}", a.name()),
            Some("compare it first, for example `x == 0`".into()),
        ),
        // `false && x` is false whatever x is: only two sides that are never bools cannot work.
        (operators::LOGICAL_AND | operators::LOGICAL_OR, [a, b])
            if ![a, b].iter().any(|t| matches!(t, Type::Dyn | Type::Bool)) =>
        {
            let symbol = if name == operators::LOGICAL_AND {
                "&&"
            } else {
                "||"
            };
            mismatch(
                format!("`{symbol}` takes bools, not {} and {}", a.name(), b.name()),
                Some("compare each side first, for example `x > 0`".into()),
            )
        }
        (
            operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS,
            [a, b],
        ) if !orderable(*a, *b) => {
            let symbol = match name {
                operators::LESS => "<",
                operators::LESS_EQUALS => "<=",
                operators::GREATER => ">",
                _ => ">=",
            };
            mismatch(
                format!("cannot order {} and {} (`{symbol}`)", a.name(), b.name()),
                Some("order values of one type: convert one side with int(x), double(x) or string(x)".into()),
            )
        }
        (
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
            | operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::IN
            | operators::HAS,
            _,
        ) => Type::Bool,
        ("size", [a]) => match a {
            Type::Dyn | Type::String | Type::Bytes | Type::List | Type::Map | Type::Null => {
                Type::Int
            }
            other => mismatch(
                format!(
                    "size() takes a string, bytes, list or map, not {}",
                    other.name()
                ),
                None,
            ),
        },
        ("string", [_]) => Type::String,
        ("int", [_]) => Type::Int,
        ("uint", [_]) => Type::Uint,
        ("double", [_]) => Type::Double,
        ("bool", [_]) => Type::Bool,
        ("duration", [_]) => Type::Duration,
        ("timestamp", [_]) => Type::Timestamp,
        _ => Type::Dyn,
    }
}

/// Whether `<` and the like may take these: numbers of any kind together, or two strings,
/// bools, bytes, timestamps or durations.
fn orderable(a: Type, b: Type) -> bool {
    use Type::*;
    a == Dyn
        || b == Dyn
        || (a.is_number() && b.is_number())
        || (a == b && matches!(a, String | Bool | Bytes | Timestamp | Duration))
}

/// The type of `a op b` for an arithmetic operator, `None` when CEL has no such overload.
fn arithmetic(op: &str, a: Type, b: Type) -> Option<Type> {
    use Type::*;
    if a == Dyn || b == Dyn {
        return Some(Dyn);
    }
    match (op, a, b) {
        (_, x, y) if x == y && x.is_number() => Some(x),
        (operators::ADD, String | Bytes | List, y) if y == a => Some(a),
        (operators::ADD, Duration, Duration) | (operators::SUBSTRACT, Duration, Duration) => {
            Some(Duration)
        }
        (operators::ADD, Timestamp, Duration)
        | (operators::ADD, Duration, Timestamp)
        | (operators::SUBSTRACT, Timestamp, Duration) => Some(Timestamp),
        (operators::SUBSTRACT, Timestamp, Timestamp) => Some(Duration),
        _ => None,
    }
}

fn arithmetic_hint(op: &str, a: Type, b: Type) -> String {
    if op == operators::ADD && (a == Type::String || b == Type::String) {
        "CEL does not turn values into text on its own: use string(x)".into()
    } else if a.is_number() && b.is_number() {
        "CEL does not mix number types: use double(x), int(x) or uint(x)".into()
    } else {
        format!(
            "no `{}` takes {} and {}",
            op.trim_matches('_'),
            a.name(),
            b.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str) -> (Type, Vec<String>) {
        let parsed = koreo_stdlib::parse(source).expect("parses");
        let mut found = Vec::new();
        let t = infer(&parsed.ast, &mut found);
        (t, found.into_iter().map(|m| m.message).collect())
    }

    #[test]
    fn literals_and_operators_have_types() {
        assert_eq!(check("1 + 2").0, Type::Int);
        assert_eq!(check("'a' + 'b'").0, Type::String);
        assert_eq!(check("size('abc') * 2").0, Type::Int);
        assert_eq!(check("string(1) + 'x'").0, Type::String);
        assert_eq!(check("inputs.x + 1").0, Type::Dyn);
        assert_eq!(check("1 < 2.5").0, Type::Bool);
    }

    #[test]
    fn what_cannot_work_is_found_and_what_may_work_is_not() {
        assert_eq!(
            check("'replicas: ' + 1").1,
            ["cannot add string and int (`+`)"]
        );
        assert_eq!(check("1 + 1.5").1, ["cannot add int and double (`+`)"]);
        assert_eq!(
            check("size(3)").1,
            ["size() takes a string, bytes, list or map, not int"]
        );
        assert_eq!(check("!1").1, ["`!` takes a bool, not int"]);
        for fine in [
            "inputs.a + 1",
            "'a' + inputs.b",
            "1 == 'a'",
            "[1] + [2]",
            "-inputs.x",
            "false && 2",
            "inputs.a || 1",
            "1 < 2.5",
            "'a' < 'b'",
            "true < false",
            "inputs.a < 1",
        ] {
            assert_eq!(check(fine).1, Vec::<String>::new(), "{fine}");
        }
    }

    #[test]
    fn what_is_found_fails_when_it_runs() {
        let scope = crate::expr::Scope::new();
        for wrong in [
            "'a' + 1",
            "1 + 1.5",
            "1u + 1",
            "'a' * 2",
            "5 % 2.0",
            "size(3)",
            "!1",
            "-'a'",
            "duration('1s') + 1",
            "1 && 2",
            "'a' || 1",
            "'a' < 1",
            "[1] < [2]",
            "{'a': 1} >= {}",
            "null < 1",
        ] {
            assert_eq!(check(wrong).1.len(), 1, "{wrong} is found");
            let expr = crate::expr::Expr::compile_str(wrong).expect("compiles");
            assert!(expr.eval(&scope).is_err(), "{wrong} fails when it runs");
        }
    }
}
