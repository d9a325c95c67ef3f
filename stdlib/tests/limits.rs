//! Expressions at the size limits compile and run on an ordinary 2 MiB thread; beyond them they
//! are refused with a message instead of overflowing the stack.

use cel::{Context, Value};

fn run_on_small_stack(src: String) -> Result<Value, String> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let parsed = koreo_stdlib::parse(&src).map_err(|e| e.to_string())?;
            let ctx = Context::with_env(koreo_stdlib::env());
            Value::resolve(&parsed.ast, &ctx).map_err(|e| e.to_string())
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deepest_nesting_allowed_runs() {
    let depth = koreo_stdlib::MAX_NESTING;
    let src = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(run_on_small_stack(src), Ok(Value::Int(1)));
    let src = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    assert!(run_on_small_stack(src).is_ok());
}

#[test]
fn deeper_nesting_is_refused() {
    let depth = koreo_stdlib::MAX_NESTING + 1;
    let err =
        run_on_small_stack(format!("{}1{}", "(".repeat(depth), ")".repeat(depth))).unwrap_err();
    assert!(err.contains("nest more than"), "{err}");
    // Brackets inside strings do not count.
    let src = format!("'{}' != ''", "(".repeat(depth));
    assert_eq!(run_on_small_stack(src), Ok(Value::Bool(true)));
}

#[test]
fn longest_chains_allowed_run() {
    let links = koreo_stdlib::MAX_OPERATIONS;
    let src = format!("1{}", " + 1".repeat(links));
    assert_eq!(run_on_small_stack(src), Ok(Value::Int(links as i64 + 1)));
    let src = format!("'A'{}", ".lower()".repeat(links));
    assert!(run_on_small_stack(src).is_ok());
    let err = run_on_small_stack(format!("1{}", " + 1".repeat(links + 1))).unwrap_err();
    assert!(err.contains("chains more than"), "{err}");
    let err = run_on_small_stack("x".repeat(koreo_stdlib::MAX_EXPRESSION_LENGTH + 1)).unwrap_err();
    assert!(err.contains("characters long"), "{err}");
}
