//! The `koreo` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use koreo_lang::expr::{Expr, Scope};
use koreo_lang::source::Diagnostic;
use koreo_lang::{Workspace, analysis};
use serde_json::Value as Json;

#[derive(Parser)]
#[command(
    name = "koreo",
    version,
    about = "Koreo: composable control loops for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and validate definitions without running anything.
    Check {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Evaluate one Koreo expression and print the result as JSON.
    Eval {
        /// The expression, with or without the leading `=`.
        expression: String,
        /// Variables as a JSON or YAML mapping, inline or a file path (e.g. `{"inputs": {"a": 1}}`).
        #[arg(long)]
        inputs: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { paths } => check(&paths),
        Command::Eval { expression, inputs } => eval(&expression, inputs.as_deref()),
    }
}

fn print_diagnostic(d: &Diagnostic) {
    eprintln!("{d}");
    if let Some(line) = d.location.file.line_text(d.location.span.start.line) {
        let col = d.location.span.start.col.max(1) as usize;
        eprintln!("  | {line}\n  | {}^", " ".repeat(col - 1));
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let ws = Workspace::load_paths(paths);
    let mut diagnostics = ws.diagnostics.clone();
    diagnostics.extend(analysis::check(&ws));
    for d in &diagnostics {
        print_diagnostic(d);
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    eprintln!(
        "{} files, {} definitions: {errors} errors, {warnings} warnings",
        ws.files.len(),
        ws.definitions.len()
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read_variables(text: &str) -> Result<Json, String> {
    let text = match std::fs::read_to_string(text) {
        Ok(contents) => contents,
        Err(_) => text.to_string(),
    };
    let ws_docs = koreo_lang::yaml::parse_documents(&text).map_err(|e| {
        format!(
            "--inputs is not JSON or YAML (line {}, column {}): {}",
            e.pos.line, e.pos.col, e.message
        )
    })?;
    match ws_docs.first().map(|d| d.root.to_json()) {
        Some(Json::Object(map)) => Ok(Json::Object(map)),
        None => Ok(Json::Object(Default::default())),
        Some(_) => Err("--inputs must be a mapping of variable names to values".into()),
    }
}

fn eval(expression: &str, inputs: Option<&str>) -> ExitCode {
    let variables = match inputs.map(read_variables).transpose() {
        Ok(v) => v.unwrap_or_else(|| Json::Object(Default::default())),
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let expr = match Expr::compile_str(expression.strip_prefix('=').unwrap_or(expression)) {
        Ok(e) => e,
        Err(d) => {
            eprintln!("error: {}", d.message);
            return ExitCode::from(2);
        }
    };
    let mut scope = Scope::new();
    if let Json::Object(map) = &variables {
        for (name, value) in map {
            scope.bind(name, value);
        }
    }
    match expr.eval(&scope) {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::FAILURE
        }
    }
}
