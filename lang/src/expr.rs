//! Koreo Expressions: strings starting with `=` are CEL, compiled once when a file loads.
//!
//! Values are JSON (`serde_json::Value`, key order kept) everywhere outside an evaluation;
//! an evaluation borrows its variables into the CEL runtime without copying strings.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::Mutex;

use cel::common::ast::{EntryExpr, Expr as Ast, LiteralValue, operators};
use cel::{Context, IdedExpr};
use serde_json::{Map, Value as Json};

use crate::codes::Code;
use crate::cost;
use crate::source::{Diagnostic, FileRef, Location, Pos, Span};
use crate::yaml::{Node, Style, Value as YamlValue};

/// Parsed expressions by source text, shared by the files of one load: the same expression
/// written in many places (`=inputs.metadata.name`) is parsed once.
#[derive(Debug, Default)]
pub struct ExprCache(Mutex<HashMap<String, Arc<koreo_stdlib::Parsed>>>);

impl ExprCache {
    fn parse(&self, source: &str) -> Result<Arc<koreo_stdlib::Parsed>, cel::ParseErrors> {
        let cached = self.0.lock().ok().and_then(|map| map.get(source).cloned());
        if let Some(parsed) = cached {
            return Ok(parsed);
        }
        let parsed = Arc::new(koreo_stdlib::parse(source)?);
        if let Ok(mut map) = self.0.lock() {
            map.insert(source.to_string(), parsed.clone());
        }
        Ok(parsed)
    }
}

/// A compiled expression and where it was written.
pub struct Expr {
    /// The CEL text, without the leading `=`.
    pub source: String,
    program: Arc<koreo_stdlib::Parsed>,
    pub location: Location,
    style: Style,
    /// Root variables it reads, each with the first field selected (`inputs.name` -> `name`).
    pub references: Vec<Reference>,
}

/// A variable read by an expression: `steps.build` is `{ root: "steps", field: Some("build") }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub root: String,
    pub field: Option<String>,
    /// Where in the file the reference is written.
    pub location: Location,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?} at {})", self.source, self.location)
    }
}

/// An expression that failed while it ran.
#[derive(Clone, Debug)]
pub struct EvalError {
    pub message: String,
    pub location: Location,
    /// The expression text, for the reader's context.
    pub source: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error evaluating `={}` at {}: {}",
            self.source, self.location, self.message
        )
    }
}

/// True when a YAML string is an expression.
pub fn is_expression(s: &str) -> bool {
    s.starts_with('=')
}

impl Expr {
    /// Compiles the expression in a YAML string node that starts with `=`.
    pub fn compile(
        text: &str,
        style: Style,
        location: Location,
        cache: &ExprCache,
    ) -> Result<Expr, Diagnostic> {
        let source = text.strip_prefix('=').unwrap_or(text).to_string();
        let program = match catch_unwind(AssertUnwindSafe(|| cache.parse(&source))) {
            Ok(Ok(program)) => program,
            Ok(Err(errors)) => {
                let first = errors.errors.first();
                let (line, col) = first.map_or((1, 1), |e| (e.pos.0.max(1), e.pos.1.max(1)));
                let message = first.map_or_else(|| errors.to_string(), |e| e.msg.clone());
                let col = char_column(&source, line as usize, col as usize);
                let at = position_in(&location, style, &source, line as u32, col);
                return Err(Diagnostic::error(
                    Code::ExpressionSyntax,
                    Location::new(&location.file, Span::point(at)),
                    format!("invalid expression `={}`: {message}", clipped(&source)),
                )
                .with_hint(
                    "Koreo expressions are CEL (https://cel.dev); strings that are not \
                     expressions must not start with `=`",
                ));
            }
            Err(_) => {
                return Err(Diagnostic::error(
                    Code::ExpressionSyntax,
                    location,
                    format!(
                        "invalid expression `={}`: the CEL parser could not read it",
                        clipped(&source)
                    ),
                ));
            }
        };
        if let Some(cost) = cost::worst_case(&program.ast)
            && cost > cost::EXPRESSION_LIMIT
        {
            return Err(Diagnostic::error(
                Code::ExpressionTooCostly,
                location,
                format!(
                    "the expression `={}` can cost up to {} units when it runs, over its limit \
                     of {}: it would fail every time",
                    clipped(&source),
                    cost::thousands(cost),
                    cost::thousands(cost::EXPRESSION_LIMIT)
                ),
            )
            .with_hint(cost::HOW_COST_COUNTS));
        }
        let mut expr = Expr {
            source,
            program,
            location,
            style,
            references: Vec::new(),
        };
        expr.references = expr.find_references();
        Ok(expr)
    }

    /// Compiles an expression written outside a file (the `eval` command, tests).
    pub fn compile_str(text: &str) -> Result<Expr, Diagnostic> {
        let file = crate::source::SourceFile::new("<expression>", format!("={text}"));
        let location = Location::new(
            &file,
            Span::point(Pos {
                line: 1,
                col: 1,
                offset: 0,
            }),
        );
        Expr::compile(
            &format!("={text}"),
            Style::Plain,
            location,
            &ExprCache::default(),
        )
    }

    /// Evaluates to JSON.
    pub fn eval(&self, scope: &Scope) -> Result<Json, EvalError> {
        // The interpreter has panics on paths we have not seen reached; a user's expression
        // must never take the process down.
        let (value, _, exceeded) = cost::metered(|| {
            catch_unwind(AssertUnwindSafe(|| {
                cel::Value::resolve(&self.program.ast, &scope.ctx)
            }))
        });
        if let Some(exceeded) = exceeded {
            return Err(self.error(cost::exceeded_message(exceeded)));
        }
        let value = value
            .map_err(|_| self.error("the CEL interpreter failed on this expression"))?
            .map_err(|e| self.error(describe_error(&e)))?;
        cel_to_json(&value).map_err(|message| self.error(message))
    }

    /// Evaluates an expression that must give a boolean.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Json::Bool(b) => Ok(b),
            other => Err(self.error(format!("expected a boolean, got {}", quoted(&other)))),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            location: self.location.clone(),
            source: self.source.clone(),
        }
    }

    pub fn ast(&self) -> &IdedExpr {
        &self.program.ast
    }

    /// Calls `found` with each read the expression makes of a variable it does not bind.
    fn each_read(&self, found: &mut Read<'_>) {
        collect_reads(self.ast(), &mut Vec::new(), false, found);
    }

    fn find_references(&self) -> Vec<Reference> {
        let mut found = Vec::new();
        self.each_read(&mut |root, root_id, fields, _| {
            found.push(Reference {
                root: root.to_string(),
                field: fields.first().map(|(field, _)| field.to_string()),
                location: self.location_of(root_id),
            });
        });
        found
    }

    /// The file location of an AST node.
    pub fn location_of(&self, id: u64) -> Location {
        let Some((start, _)) = self.program.source_info.offset_for(id) else {
            return self.location.clone();
        };
        let before = self.source.get(..start as usize).unwrap_or(&self.source);
        let line = before.matches('\n').count() as u32 + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
        let at = position_in(&self.location, self.style, &self.source, line, col);
        Location::new(&self.location.file, Span::point(at))
    }

    /// Where a selected field is written: CEL places a selection at its `.`, a person looks
    /// for the name after it.
    fn field_location(&self, id: u64) -> Location {
        let at = self.location_of(id);
        let on_dot = self
            .program
            .source_info
            .offset_for(id)
            .is_some_and(|(start, _)| self.source.as_bytes().get(start as usize) == Some(&b'.'));
        if !on_dot {
            return at;
        }
        let start = at.span.start;
        let name = Pos {
            col: start.col + 1,
            offset: start.offset + 1,
            ..start
        };
        Location::new(&at.file, Span::point(name))
    }

    /// Roots that the expression reads, with the first field (`inputs.x` -> ("inputs", "x")).
    pub fn reads(&self, root: &str) -> impl Iterator<Item = &Reference> {
        self.references.iter().filter(move |r| r.root == root)
    }

    /// The variable and fields when the whole expression is one read (`=steps.config.name`).
    pub fn plain_path(&self) -> Option<(&str, Vec<&str>)> {
        let mut fields = Vec::new();
        let mut at = self.ast();
        loop {
            match &at.expr {
                Ast::Select(select) if !select.test => {
                    fields.push(select.field.as_str());
                    at = &select.operand;
                }
                Ast::Ident(name) => {
                    fields.reverse();
                    return Some((name, fields));
                }
                _ => return None,
            }
        }
    }

    /// Every chain of field selections from `root` (`steps.config.name` reads `config` then
    /// `name`), each field with where it is written. A chain under `has()` comes back too, as
    /// `tested`: its fields may be missing by design.
    pub fn field_paths(&self, root: &str) -> Vec<FieldPath> {
        let mut found = Vec::new();
        self.each_read(&mut |name, _, fields, how| {
            if name == root {
                found.push(FieldPath {
                    fields: fields
                        .iter()
                        .map(|(field, id)| (field.to_string(), self.field_location(*id)))
                        .collect(),
                    tested: how.tested,
                    conditional: how.conditional,
                });
            }
        });
        found
    }
}

/// Fields selected one after the other from a variable (see [`Expr::field_paths`]).
#[derive(Clone, Debug)]
pub struct FieldPath {
    /// Each field, outermost first, with where it is written.
    pub fields: Vec<(String, Location)>,
    /// Under `has()` or an optional select: the fields are asked about, not read.
    pub tested: bool,
    /// Read in some runs only: in a branch of `?:`, a side of `&&` or `||`, a comprehension's
    /// body.
    pub conditional: bool,
}

/// One read: the variable, the id of where it is written, the fields selected (each with its
/// id), and how it is read.
type Read<'r> = dyn FnMut(&str, u64, &[(&str, u64)], Reading) + 'r;

/// How an expression reads a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    /// Under `has()`, or an optional select (`x.?f`, `x[?'f']`): asked about, never failing.
    pub tested: bool,
    /// Only in some runs: a branch of `?:`, either side of `&&` or `||` (CEL absorbs an error
    /// when the other side decides), a comprehension's body (the list may be empty).
    pub conditional: bool,
}

/// Calls `found` with each read of a variable the expression does not bind itself: the
/// variable, where it is written, and the fields selected from it one after the other (a
/// string index `x['key']` counts as a field), and whether that happens under `has()`.
fn collect_reads<'a>(
    e: &'a IdedExpr,
    bound: &mut Vec<&'a str>,
    conditional: bool,
    found: &mut Read<'_>,
) {
    let free = |name: &str, bound: &Vec<&'a str>| !bound.contains(&name);
    let reading = |tested| Reading {
        tested,
        conditional,
    };
    match &e.expr {
        Ast::Ident(name) => {
            let builtin = BUILTIN_NAMES.contains(&name.as_str());
            if free(name, bound) && !name.starts_with('@') && !builtin {
                found(name, e.id, &[], reading(false));
            }
        }
        Ast::Select(_) => {
            let (mut fields, mut tested, mut at) = (Vec::new(), false, e);
            while let Ast::Select(select) = &at.expr {
                fields.push((select.field.as_str(), at.id));
                tested |= select.test;
                at = &select.operand;
            }
            fields.reverse();
            match &at.expr {
                Ast::Ident(name) if free(name, bound) => {
                    found(name, at.id, &fields, reading(tested))
                }
                _ => collect_reads(at, bound, conditional, found),
            }
        }
        Ast::Call(call) => {
            let indexes = [
                operators::INDEX,
                operators::OPT_INDEX,
                operators::OPT_SELECT,
            ];
            if indexes.contains(&call.func_name.as_str())
                && let [container, key] = call.args.as_slice()
                && let (Ast::Ident(name), Ast::Literal(LiteralValue::String(key))) =
                    (&container.expr, &key.expr)
                && free(name, bound)
            {
                let optional = call.func_name != operators::INDEX;
                found(
                    name,
                    container.id,
                    &[(key.inner(), e.id)],
                    reading(optional),
                );
                return;
            }
            let branches = [
                operators::CONDITIONAL,
                operators::LOGICAL_AND,
                operators::LOGICAL_OR,
            ];
            let branching = branches.contains(&call.func_name.as_str());
            for (i, child) in call
                .target
                .iter()
                .map(|t| &**t)
                .chain(&call.args)
                .enumerate()
            {
                // A condition's test always runs; its branches and both sides of && and || may not.
                let maybe = branching && !(call.func_name == operators::CONDITIONAL && i == 0);
                collect_reads(child, bound, conditional || maybe, found);
            }
        }
        Ast::List(list) => {
            for item in &list.elements {
                collect_reads(item, bound, conditional, found);
            }
        }
        Ast::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    collect_reads(&entry.key, bound, conditional, found);
                    collect_reads(&entry.value, bound, conditional, found);
                }
            }
        }
        Ast::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    collect_reads(&field.value, bound, conditional, found);
                }
            }
        }
        Ast::Comprehension(c) => {
            collect_reads(&c.iter_range, bound, conditional, found);
            collect_reads(&c.accu_init, bound, conditional, found);
            let depth = bound.len();
            bound.push(&c.iter_var);
            if let Some(second) = &c.iter_var2 {
                bound.push(second);
            }
            bound.push(&c.accu_var);
            collect_reads(&c.loop_cond, bound, true, found);
            collect_reads(&c.loop_step, bound, true, found);
            collect_reads(&c.result, bound, conditional, found);
            bound.truncate(depth);
        }
        Ast::Literal(_) | Ast::Unspecified => {}
    }
}

/// The 1-based character column of a 1-based byte column (what CEL reports) on a line of
/// `source`.
fn char_column(source: &str, line: usize, byte_col: usize) -> u32 {
    let text = source.lines().nth(line - 1).unwrap_or("");
    let mut end = (byte_col - 1).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].chars().count() as u32 + 1
}

/// Maps a 1-based line/column inside the expression text (after `=`) to the file.
fn position_in(location: &Location, style: Style, source: &str, line: u32, col: u32) -> Pos {
    let start = location.span.start;
    match style {
        Style::Literal | Style::Folded => {
            // A block scalar starts at its first content character; later lines keep its indent.
            let file_line = start.line + line - 1;
            let column = if line == 1 {
                start.col + col
            } else {
                start.col + col - 1
            };
            Pos {
                line: file_line,
                col: column,
                offset: start.offset,
            }
        }
        _ => {
            // The scalar's value is `=` then the expression; find that character in its source.
            let before: usize = source
                .split('\n')
                .take(line as usize - 1)
                .map(|l| l.chars().count() + 1)
                .sum();
            let index = 1 + before + col as usize - 1;
            let quote = u32::from(matches!(style, Style::SingleQuoted | Style::DoubleQuoted));
            let written = location.span.end.offset - start.offset;
            if written as usize == 1 + source.chars().count() + 2 * quote as usize {
                // Written as it reads (one line, no escapes): no need to walk the file.
                return Pos {
                    line: start.line,
                    col: start.col + quote + index as u32,
                    offset: start.offset + quote + index as u32,
                };
            }
            flow_position(&location.file.text, start, style, index)
        }
    }
}

/// Where the `index`th character (0-based) of a flow scalar's value is written, walking its
/// source from `start` (its first character: the quote of a quoted scalar) through escapes
/// (`\n`, `\u00e9`, `''`), and line breaks folded with their indentation into one space.
fn flow_position(text: &str, start: Pos, style: Style, index: usize) -> Pos {
    let from = text
        .char_indices()
        .nth(start.offset as usize)
        .map_or(text.len(), |(b, _)| b);
    let raw: Vec<char> = text[from..].chars().collect();
    let mut at = start;
    let mut i = 0;
    let step = |at: &mut Pos, c: char| {
        if c == '\n' {
            at.line += 1;
            at.col = 1;
        } else {
            at.col += 1;
        }
        at.offset += 1;
    };
    let quoted = matches!(style, Style::SingleQuoted | Style::DoubleQuoted);
    if quoted && i < raw.len() {
        step(&mut at, raw[i]);
        i += 1;
    }
    let mut decoded = 0;
    while decoded < index && i < raw.len() {
        let c = raw[i];
        // Spaces up to a line break, the break and the next line's indentation fold into one
        // character of the value (a space, or a newline per blank line after the first).
        let run = raw[i..]
            .iter()
            .take_while(|c| **c == ' ' || **c == '\t')
            .count();
        if raw.get(i + run) == Some(&'\n') {
            let mut j = i + run;
            while raw.get(j) == Some(&'\n') || raw.get(j).is_some_and(|c| *c == ' ' || *c == '\t') {
                j += 1;
            }
            for c in &raw[i..j] {
                step(&mut at, *c);
            }
            i = j;
            decoded += 1;
            continue;
        }
        let width = match (style, c) {
            (Style::DoubleQuoted, '\\') => match raw.get(i + 1) {
                Some('x') => 4,
                Some('u') => 6,
                Some('U') => 10,
                _ => 2,
            },
            (Style::SingleQuoted, '\'') if raw.get(i + 1) == Some(&'\'') => 2,
            // The closing quote: the value has no more characters.
            (Style::DoubleQuoted, '"') | (Style::SingleQuoted, '\'') => break,
            _ => 1,
        };
        for c in raw.iter().skip(i).take(width) {
            step(&mut at, *c);
        }
        i += width;
        decoded += 1;
    }
    at
}

/// Identifiers that name types and function namespaces, not variables.
const BUILTIN_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "base64",
    "lists",
    "math",
    "strings",
    "optional",
    "cel",
    "google",
];

/// Walks the AST for variable reads, skipping comprehension variables.
fn describe_error(e: &cel::ExecutionError) -> String {
    use cel::ExecutionError as E;
    match e {
        E::NoSuchKey(key) => {
            format!("no such key `{key}`; guard optional fields with `has(...)` or use `.?{key}`")
        }
        E::UndeclaredReference(name) => format!("`{name}` is not defined here"),
        E::FunctionError { function, message } => format!("{function}: {message}"),
        E::UnsupportedBinaryOperator(op, left, right) => {
            let (verb, symbol) = operator(op);
            let (l, r) = (cel_type(left), cel_type(right));
            let hint = match (l, r) {
                ("string", _) | (_, "string") if *op == "add" => " (use string(x))",
                ("int", "double") | ("double", "int") | ("uint", "int") | ("int", "uint") => {
                    " (CEL does not mix number types: use double(x), int(x) or uint(x))"
                }
                _ => "",
            };
            format!(
                "cannot {verb} {l} and {r}: {} {symbol} {}{hint}",
                shown(left),
                shown(right)
            )
        }
        E::Overflow(op, left, right) => format!(
            "the result of {} {} {} is too large for an int",
            shown(left),
            operator(op).1,
            shown(right)
        ),
        E::DivisionByZero(value) => format!("division by zero: {} / 0", shown(value)),
        E::RemainderByZero(value) => format!("remainder by zero: {} % 0", shown(value)),
        E::IndexOutOfBounds(index) => format!(
            "index {} is out of range; check the list's size() first",
            shown(index)
        ),
        E::ValuesNotComparable(a, b) => format!(
            "cannot compare {} {} with {} {}",
            cel_type(a),
            shown(a),
            cel_type(b),
            shown(b)
        ),
        E::UnsupportedIndex(index, target) => format!(
            "cannot index {} with {} {}",
            cel_type(target),
            cel_type(index),
            shown(index)
        ),
        E::UnsupportedKeyType(key) => {
            format!("{} {} cannot be a map key", cel_type(key), shown(key))
        }
        E::UnsupportedTargetType { target } => {
            format!("this does not take {} {}", cel_type(target), shown(target))
        }
        E::NotSupportedAsMethod { method, target } => {
            format!("`{method}` cannot be called on {}", cel_type(target))
        }
        E::UnexpectedType { got, want } => format!("expected {want}, got {got}"),
        E::DuplicateKey(key) => format!("the map has the key {} twice", shown(key)),
        // The interpreter names operators as the parser does (`_<_`): as written, they read.
        E::NoSuchOverload(overload) => {
            let mut text = overload.to_string();
            for (internal, written) in [
                ("'_<_'", "`<`"),
                ("'_<=_'", "`<=`"),
                ("'_>_'", "`>`"),
                ("'_>=_'", "`>=`"),
                ("'_==_'", "`==`"),
                ("'_!=_'", "`!=`"),
                ("'_+_'", "`+`"),
                ("'_-_'", "`-`"),
                ("'_*_'", "`*`"),
                ("'_/_'", "`/`"),
                ("'_%_'", "`%`"),
                ("'!_'", "`!`"),
                ("'-_'", "unary `-`"),
                ("'@in'", "`in`"),
            ] {
                text = text.replace(internal, written);
            }
            text
        }
        other => other.to_string(),
    }
}

/// An expression quoted in a message, cut short: the position points at the rest.
fn clipped(source: &str) -> String {
    cut_at(source, 80)
}

/// `text` cut after `longest` characters, marked with `...` when cut.
fn cut_at(text: &str, longest: usize) -> String {
    match text.char_indices().nth(longest) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// A binary operator's verb and symbol, as CEL's interpreter names it.
fn operator(op: &str) -> (&'static str, &'static str) {
    match op {
        "add" => ("add", "+"),
        "sub" => ("subtract", "-"),
        "mul" => ("multiply", "*"),
        "div" => ("divide", "/"),
        "rem" => ("take the remainder of", "%"),
        _ => ("combine", "?"),
    }
}

fn cel_type(value: &cel::Value) -> &'static str {
    use cel::Value as V;
    match value {
        V::Null => "null",
        V::Bool(_) => "bool",
        V::Int(_) => "int",
        V::UInt(_) => "uint",
        V::Float(_) => "double",
        V::String(_) => "string",
        V::Bytes(_) => "bytes",
        V::List(_) => "list",
        V::Map(_) => "map",
        V::Duration(_) => "duration",
        V::Timestamp(_) => "timestamp",
        _ => "value",
    }
}

thread_local! {
    static VALUES_HIDDEN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` with values kept out of the messages it produces: a value is described by its
/// type only. The controller evaluates this way: what it writes (status, conditions, Events,
/// logs) must never echo data, which may come from a Secret.
pub fn hiding_values<T>(work: impl FnOnce() -> T) -> T {
    let outer = VALUES_HIDDEN.replace(true);
    let result = work();
    VALUES_HIDDEN.set(outer);
    result
}

pub(crate) fn values_hidden() -> bool {
    VALUES_HIDDEN.get()
}

/// A value as an expression would write it, cut short: messages quote what went wrong, not
/// whole documents. Where values are hidden, `<a string>`.
fn shown(value: &cel::Value) -> String {
    if values_hidden() {
        return format!("<{}>", with_article(cel_type(value)));
    }
    let text = match (value, cel_to_json(value)) {
        (cel::Value::Float(f), _) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
        (_, Ok(json)) => json.to_string(),
        (other, Err(_)) => other.type_of().to_string(),
    };
    cut_short(text)
}

/// A JSON value quoted in a message (`` `"abc"` ``), cut short; where values are hidden, its
/// type (`a string`).
pub fn quoted(value: &Json) -> String {
    if values_hidden() {
        json_type(value).to_string()
    } else {
        format!("{} `{}`", json_type(value), cut_short(value.to_string()))
    }
}

fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

fn cut_short(text: String) -> String {
    cut_at(&text, 60)
}

/// The variables of one evaluation. Values are borrowed, not copied.
pub struct Scope<'v> {
    ctx: Context<'v, 'v>,
}

impl Default for Scope<'_> {
    fn default() -> Self {
        Scope::new()
    }
}

impl<'v> Scope<'v> {
    pub fn new() -> Scope<'v> {
        Scope {
            ctx: Context::with_env(koreo_stdlib::env()),
        }
    }

    /// A scope that sees everything this one does, plus what is bound into it. Variables
    /// are not converted again.
    pub fn child<'c>(&'c self) -> Scope<'c>
    where
        'v: 'c,
    {
        let parent: &'c Context<'c, 'c> = &self.ctx;
        Scope {
            ctx: parent.new_inner_scope(),
        }
    }

    pub fn with(mut self, name: &str, value: &'v Json) -> Scope<'v> {
        self.bind(name, value);
        self
    }

    pub fn bind(&mut self, name: &str, value: &'v Json) {
        self.ctx
            .add_variable_as_val(name, koreo_stdlib::json_to_val(value));
    }
}

/// JSON for a CEL value. Maps keep their order.
pub fn cel_to_json(value: &cel::Value) -> Result<Json, String> {
    use cel::Value as V;
    Ok(match value {
        V::Null => Json::Null,
        V::Bool(b) => Json::Bool(*b),
        V::Int(i) => Json::from(*i),
        V::UInt(u) => Json::from(*u),
        V::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| format!("the result {f} cannot be represented in JSON"))?,
        V::String(s) => Json::String(s.to_string()),
        V::Bytes(b) => {
            use base64::Engine;
            Json::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        V::List(items) => Json::Array(items.iter().map(cel_to_json).collect::<Result<_, _>>()?),
        V::Map(map) => {
            let mut out = Map::with_capacity(map.map.len());
            for (k, v) in map.map.iter() {
                out.insert(k.to_string(), cel_to_json(v)?);
            }
            Json::Object(out)
        }
        V::Duration(d) => Json::String(format_duration(d)),
        V::Timestamp(t) => Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        V::Opaque(_) | V::Struct(_) | V::Function(..) => {
            return Err(format!(
                "the result is a {} value, which has no JSON form",
                value.type_of()
            ));
        }
    })
}

/// Durations read the way Kubernetes and Koreo print them: `3600s`, `1.5s`.
fn format_duration(d: &chrono::Duration) -> String {
    let nanos = d.num_nanoseconds();
    match nanos {
        Some(n) if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        Some(n) => format!("{}s", n as f64 / 1e9),
        None => format!("{}s", d.num_seconds()),
    }
}

pub fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a number",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// A YAML structure in which expressions may appear at any depth.
#[derive(Debug)]
pub enum Template {
    /// No expressions inside: the value as written.
    Literal(Json),
    Expr(Arc<Expr>),
    List(Vec<Template>),
    Map(Vec<(String, Template)>),
}

impl Template {
    /// Compiles every `=` string below `node`. Expression errors are reported to `diags` and
    /// evaluate to an error at run time, so one bad expression does not hide the others.
    pub fn compile(
        node: &Node,
        file: &FileRef,
        diags: &mut Vec<Diagnostic>,
        cache: &ExprCache,
    ) -> Template {
        match &node.value {
            YamlValue::Str(s, style) if is_expression(s) => {
                match Expr::compile(s, *style, Location::new(file, node.span), cache) {
                    Ok(expr) => Template::Expr(Arc::new(expr)),
                    Err(diag) => {
                        diags.push(diag);
                        Template::Literal(Json::Null)
                    }
                }
            }
            YamlValue::Seq(items) => {
                let items: Vec<_> = items
                    .iter()
                    .map(|n| Template::compile(n, file, diags, cache))
                    .collect();
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    // Built from the children's values: converting the node again at every
                    // level would cost depth times the size.
                    Template::Literal(Json::Array(
                        items.into_iter().map(Template::into_literal).collect(),
                    ))
                } else {
                    Template::List(items)
                }
            }
            YamlValue::Map(entries) => {
                let entries: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| (k.text.clone(), Template::compile(v, file, diags, cache)))
                    .collect();
                if entries
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    Template::Literal(Json::Object(
                        entries
                            .into_iter()
                            .map(|(k, t)| (k, t.into_literal()))
                            .collect(),
                    ))
                } else {
                    Template::Map(entries)
                }
            }
            _ => Template::Literal(node.to_json()),
        }
    }

    /// The value of a template known to hold no expression.
    fn into_literal(self) -> Json {
        match self {
            Template::Literal(v) => v,
            _ => Json::Null,
        }
    }

    /// Evaluates every expression, giving the whole value.
    pub fn eval(&self, scope: &Scope) -> Result<Json, EvalError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Expr(e) => e.eval(scope)?,
            Template::List(items) => Json::Array(
                items
                    .iter()
                    .map(|t| t.eval(scope))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Map(entries) => {
                let mut out = Map::with_capacity(entries.len());
                for (k, t) in entries {
                    out.insert(k.clone(), t.eval(scope)?);
                }
                Json::Object(out)
            }
        })
    }

    /// Applies this template as an overlay onto `base`: non-empty mappings written in the file
    /// merge key by key; every other value (lists, scalars, `{}`, expression results) replaces.
    pub fn overlay_onto(&self, base: &mut Json, scope: &Scope) -> Result<(), EvalError> {
        match self {
            Template::Map(entries) if !entries.is_empty() => {
                let target = ensure_object(base);
                for (k, t) in entries {
                    let slot = target.entry(k.clone()).or_insert(Json::Null);
                    t.overlay_onto(slot, scope)?;
                }
            }
            Template::Literal(Json::Object(entries)) if !entries.is_empty() => {
                overlay_literal(base, entries);
            }
            other => *base = other.eval(scope)?,
        }
        Ok(())
    }

    /// Every expression in the template, in document order.
    pub fn expressions(&self) -> Vec<&Arc<Expr>> {
        let mut out = Vec::new();
        self.visit(&mut |e| out.push(e));
        out
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Arc<Expr>)) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => f(e),
            Template::List(items) => items.iter().for_each(|t| t.visit(f)),
            Template::Map(entries) => entries.iter().for_each(|(_, t)| t.visit(f)),
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self, Template::Map(_) | Template::Literal(Json::Object(_)))
    }
}

fn ensure_object(value: &mut Json) -> &mut Map<String, Json> {
    if !value.is_object() {
        *value = Json::Object(Map::new());
    }
    match value {
        Json::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

fn overlay_literal(base: &mut Json, entries: &Map<String, Json>) {
    let target = ensure_object(base);
    for (k, v) in entries {
        match v {
            Json::Object(inner) if !inner.is_empty() => {
                overlay_literal(target.entry(k.clone()).or_insert(Json::Null), inner)
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::yaml::parse_documents;
    use serde_json::json;

    fn template(yaml: &str) -> (Template, Vec<Diagnostic>) {
        let file = SourceFile::new("t.yaml", yaml);
        let doc = parse_documents(yaml).unwrap().remove(0);
        let mut diags = Vec::new();
        let cache = ExprCache::default();
        (
            Template::compile(&doc.root, &file, &mut diags, &cache),
            diags,
        )
    }

    #[test]
    fn integers_stay_integers() {
        let inputs = json!({"a": {"b": 21}});
        let scope = Scope::new().with("inputs", &inputs);
        let e = Expr::compile_str("inputs.a.b * 2").unwrap();
        assert_eq!(e.eval(&scope).unwrap(), json!(42));
        let e = Expr::compile_str("type(inputs.a.b) == int").unwrap();
        assert_eq!(e.eval(&scope).unwrap(), json!(true));
    }

    #[test]
    fn maps_keep_their_order() {
        let inputs = json!({"optionals": {"one": 1, "two": 2, "three": 3, "four": 4}});
        let scope = Scope::new().with("inputs", &inputs);
        let keys = Expr::compile_str("inputs.optionals.map(key, key)").unwrap();
        assert_eq!(
            keys.eval(&scope).unwrap(),
            json!(["one", "two", "three", "four"])
        );
        let literal = Expr::compile_str("{'z': 1, 'a': inputs.optionals}").unwrap();
        let out = literal.eval(&scope).unwrap();
        let order: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(order, ["z", "a"]);
        let inner: Vec<_> = out["a"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(inner, ["one", "two", "three", "four"]);
    }

    #[test]
    fn templates_evaluate_at_any_depth() {
        let (t, diags) =
            template("a: =inputs.x + 1\nb:\n- =inputs.x\n- plain\nc: {d: '=inputs.x'}\n");
        assert!(diags.is_empty());
        let inputs = json!({"x": 1});
        let scope = Scope::new().with("inputs", &inputs);
        assert_eq!(
            t.eval(&scope).unwrap(),
            json!({"a": 2, "b": [1, "plain"], "c": {"d": 1}})
        );
    }

    #[test]
    fn plain_strings_are_not_reinterpreted() {
        let (t, _) = template("port: '8080'\nescaped: 'a\\nb'\nnum: 8080\n");
        assert_eq!(
            t.eval(&Scope::new()).unwrap(),
            json!({"port": "8080", "escaped": "a\\nb", "num": 8080})
        );
    }

    #[test]
    fn syntax_errors_point_into_the_file() {
        let (_, diags) = template("spec:\n  value: =inputs.a +* 2\n");
        assert_eq!(diags.len(), 1);
        let d = &diags[0];
        assert_eq!(d.location.span.start.line, 2);
        assert_eq!(d.location.span.start.col, 21, "at the `*`: {d}");
        assert!(d.message.contains("invalid expression"), "{d}");
        // CEL counts bytes; columns are characters.
        let (_, diags) = template("value: ='é😀' +* 2\n");
        assert_eq!(diags[0].location.span.start.col, 15, "{}", diags[0]);
        // Escapes and folded lines are walked in the file.
        let (_, diags) = template("value: \"=\\\"ab\\\" +* 1\"\n");
        assert_eq!(diags[0].location.span.start.col, 18, "{}", diags[0]);
        let (_, diags) = template("value: =1 +\n  * 2\n");
        let at = diags[0].location.span.start;
        assert_eq!((at.line, at.col), (2, 3), "{}", diags[0]);
    }

    #[test]
    fn block_scalar_errors_point_at_the_line() {
        let (_, diags) = template("value: |\n  =[1, 2]\n    .map(x, x +)\n");
        assert_eq!(diags[0].location.span.start.line, 3, "{}", diags[0]);
        assert_eq!(
            diags[0].location.span.start.col, 16,
            "at the `)`: {}",
            diags[0]
        );
    }

    #[test]
    fn overlay_merges_literal_maps_and_replaces_the_rest() {
        let (t, _) = template("m: \"={'z': 3}\"\ne: {}\nl: [3]\ns: {nested: 1}\nn: null\n");
        let mut base =
            json!({"m": {"x": 1, "y": 2}, "e": {"k": 1}, "l": [1, 2], "s": "str", "keep": 1});
        t.overlay_onto(&mut base, &Scope::new()).unwrap();
        assert_eq!(
            base,
            json!({"m": {"z": 3}, "e": {}, "l": [3], "s": {"nested": 1}, "n": null, "keep": 1})
        );
    }

    #[test]
    fn type_names_and_namespaces_are_not_variables() {
        let e = Expr::compile_str(
            "type(inputs.x) == map && base64.encode(b'a') != '' && lists.range(2).size() == 2",
        )
        .unwrap();
        let roots: Vec<_> = e.references.iter().map(|r| r.root.as_str()).collect();
        assert_eq!(roots, ["inputs"]);
    }

    #[test]
    fn references_skip_comprehension_variables() {
        let e = Expr::compile_str("steps.a.x + steps['b'].map(s, s + inputs.y).size() + locals.z")
            .unwrap();
        let refs: Vec<_> = e
            .references
            .iter()
            .map(|r| (r.root.as_str(), r.field.as_deref()))
            .collect();
        assert_eq!(
            refs,
            [
                ("steps", Some("a")),
                ("steps", Some("b")),
                ("inputs", Some("y")),
                ("locals", Some("z"))
            ]
        );
    }

    #[test]
    fn evaluation_errors_say_what_went_wrong() {
        let inputs = json!({});
        let scope = Scope::new().with("inputs", &inputs);
        let err = Expr::compile_str("inputs.missing")
            .unwrap()
            .eval(&scope)
            .unwrap_err();
        assert!(err.message.contains("no such key `missing`"), "{err}");
        let err = Expr::compile_str("nothere + 1")
            .unwrap()
            .eval(&scope)
            .unwrap_err();
        assert!(err.message.contains("`nothere` is not defined"), "{err}");
    }

    #[test]
    fn where_values_are_hidden_errors_name_types_only() {
        let inputs = json!({"token": "SECRET-VALUE-123", "n": 7});
        let scope = Scope::new().with("inputs", &inputs);
        let error = |src: &str| {
            let expr = Expr::compile_str(src).unwrap();
            hiding_values(|| expr.eval_bool(&scope))
                .unwrap_err()
                .message
        };
        assert_eq!(error("inputs.token"), "expected a boolean, got a string");
        assert_eq!(
            error("inputs.token + inputs.n > 0"),
            "cannot add string and int: <a string> + <an int> (use string(x))"
        );
        assert_eq!(error("inputs.n / 0 > 1"), "division by zero: <an int> / 0");
        // elsewhere (koreo test, koreo eval) values help the reader
        let shown = Expr::compile_str("inputs.token").unwrap().eval_bool(&scope);
        assert!(shown.unwrap_err().message.contains("SECRET-VALUE-123"));
    }

    #[test]
    fn evaluation_errors_read_as_cel_not_as_rust() {
        let scope = Scope::new();
        let message = |src: &str| {
            Expr::compile_str(src)
                .unwrap()
                .eval(&scope)
                .unwrap_err()
                .message
        };
        for (src, want) in [
            (
                r#""orders.shop.svc:" + 5432"#,
                r#"cannot add string and int: "orders.shop.svc:" + 5432 (use string(x))"#,
            ),
            (
                "1.0 + 2",
                "cannot add double and int: 1.0 + 2 (CEL does not mix number types: use double(x), int(x) or uint(x))",
            ),
            (
                "[1, 2][5]",
                "index 5 is out of range; check the list's size() first",
            ),
            ("7 / 0", "division by zero: 7 / 0"),
            (
                r#""a" < 1"#,
                "found no matching overload for `<` applied to '(string, int)'",
            ),
        ] {
            assert_eq!(message(src), want, "{src}");
        }
        let huge = format!("{}+", "1 + ".repeat(30_000));
        let refused = Expr::compile_str(&huge).unwrap_err().message;
        assert!(
            refused.starts_with("invalid expression `=1 + 1"),
            "{refused}"
        );
        assert!(refused.len() < 300, "{} characters", refused.len());
        let long = message(&format!("'{}' + 1", "x".repeat(500)));
        assert!(long.len() < 200, "{long}");
        for debug in ["String(", "Int(", "Float("] {
            assert!(!long.contains(debug), "{long}");
        }
    }
}
