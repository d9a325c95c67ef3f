//! Any expression compiles or is refused, and evaluates or fails, within its cost limit and
//! without a panic, against inputs shaped like a parent's.
#![no_main]
use koreo_lang::expr::{Expr, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(expr) = Expr::compile_str(text) else {
        return;
    };
    let inputs = serde_json::json!({
        "name": "ada", "replicas": 3, "ratio": 0.5, "enabled": true, "none": null,
        "labels": {"app": "web", "koreo.dev/team": "a"}, "ports": [80, 443],
        "items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}],
    });
    let scope = Scope::new().with("inputs", &inputs);
    let _ = expr.eval(&scope);
    let _ = koreo_lang::expr::hiding_values(|| expr.eval(&scope));
});
