//! Reading typed values out of YAML nodes, with errors that name the field and list what is valid.

use std::sync::Arc;

use crate::codes::Code;
use crate::expr::{Expr, ExprCache, Template, is_expression};
use crate::schema::{Expression, Field, Type};
use crate::source::{Diagnostic, FileRef, Location, Span};
use crate::yaml::{Key, Node, Value};

/// Where a value is in its document, built as the walk goes down and written out
/// (`spec.steps[0].label`) only for a message.
#[derive(Clone, Copy)]
pub(crate) enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

pub(crate) struct Decoder<'a> {
    /// The kind of the document, which names its top level in messages.
    pub kind: &'a str,
    pub file: &'a FileRef,
    pub diags: &'a mut Vec<Diagnostic>,
    pub cache: &'a ExprCache,
}

/// The entries of a mapping whose keys were checked.
pub(crate) struct Fields<'n> {
    pub node: &'n Node,
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    /// The value at `key`; an explicit `null` counts as absent, as the API server prunes it.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| v)
            .filter(|v| v.value != Value::Null)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn span(&self) -> Span {
        self.node.span
    }
}

impl<'a> Decoder<'a> {
    pub fn location(&self, span: Span) -> Location {
        Location::new(self.file, span)
    }

    pub fn error(&mut self, code: Code, span: Span, message: impl Into<String>) {
        let diag = Diagnostic::error(code, self.location(span), message);
        self.diags.push(diag);
    }

    pub fn error_hint(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let diag = Diagnostic::error(code, self.location(span), message).with_hint(hint);
        self.diags.push(diag);
    }

    /// A mapping with only the keys `field` declares. Unknown keys are reported with the valid
    /// ones.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &Path<'_>,
        field: &'static Field,
    ) -> Option<Fields<'n>> {
        let Some(entries) = node.as_map() else {
            self.error(
                Code::WrongType,
                node.span,
                format!(
                    "`{path}` must be a mapping, not {}",
                    article(node.type_name())
                ),
            );
            return None;
        };
        for (key, _) in entries {
            if field.fields.iter().all(|f| f.name != key.text) {
                let allowed: Vec<&str> = field.keys().collect();
                let suggestion = closest(&key.text, &allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.error_hint(
                    Code::UnknownKey,
                    key.span,
                    format!(
                        "unknown key `{}` in `{}`",
                        key.text,
                        match path {
                            Path::Root => self.kind.to_string(),
                            _ => path.to_string(),
                        }
                    ),
                    format!("{suggestion}valid keys: {}", allowed.join(", ")),
                );
            }
        }
        Some(Fields { node, entries })
    }

    /// Any mapping (keys not checked).
    pub fn any_map<'n>(&mut self, node: &'n Node, path: &Path<'_>) -> Option<Fields<'n>> {
        let entries = node.as_map();
        if entries.is_none() {
            self.error(
                Code::WrongType,
                node.span,
                format!(
                    "`{path}` must be a mapping, not {}",
                    article(node.type_name())
                ),
            );
        }
        entries.map(|entries| Fields { node, entries })
    }

    pub fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        path: &Path<'_>,
    ) -> Option<&'n Node> {
        let found = fields.get(key);
        if found.is_none() {
            self.error(
                Code::MissingField,
                fields.span(),
                format!("`{}` is required", Path::Key(path, key)),
            );
        }
        found
    }

    fn string<'n>(&mut self, node: &'n Node, path: &Path<'_>) -> Option<&'n str> {
        match &node.value {
            Value::Str(s, _) => Some(s),
            _ => {
                self.error(
                    Code::WrongType,
                    node.span,
                    format!(
                        "`{path}` must be a string, not {}",
                        article(node.type_name())
                    ),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, node: &Node, path: &Path<'_>) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.error(
                    Code::WrongType,
                    node.span,
                    format!(
                        "`{path}` must be true or false, not {}",
                        article(node.type_name())
                    ),
                );
                None
            }
        }
    }

    pub fn int(&mut self, node: &Node, path: &Path<'_>) -> Option<i64> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                self.error(
                    Code::WrongType,
                    node.span,
                    format!(
                        "`{path}` must be an integer, not {}",
                        article(node.type_name())
                    ),
                );
                None
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, path: &Path<'_>, max: usize) -> &'n [Node] {
        match node.as_seq() {
            Some(items) => {
                if items.len() > max {
                    self.error(
                        Code::InvalidValue,
                        node.span,
                        format!(
                            "`{path}` has {} items; at most {max} are allowed",
                            items.len()
                        ),
                    );
                }
                items
            }
            None => {
                self.error(
                    Code::WrongType,
                    node.span,
                    format!("`{path}` must be a list, not {}", article(node.type_name())),
                );
                &[]
            }
        }
    }

    /// An expression field (`=...`), compiled. Any other value is `None`: `conform` reported it.
    pub fn expression(&mut self, node: &Node, path: &str, scope: &[&str]) -> Option<Arc<Expr>> {
        self.typed_expression(node, path, scope)
            .map(|(expr, _)| expr)
    }

    /// An expression field, compiled, with the type it is known to have.
    fn typed_expression(
        &mut self,
        node: &Node,
        path: &str,
        scope: &[&str],
    ) -> Option<(Arc<Expr>, crate::types::Type)> {
        let Value::Str(text, style) = &node.value else {
            return None;
        };
        if !is_expression(text) {
            return None;
        }
        match Expr::compile(text, *style, self.location(node.span), self.cache) {
            Ok(expr) => {
                let ty = self.check_scope(&expr, path, scope);
                Some((Arc::new(expr), ty))
            }
            Err(diag) => {
                self.diags.push(diag);
                None
            }
        }
    }

    /// An expression that must give a bool (`assert`, `skipIf`): one whose type is known to be
    /// something else is an error.
    pub fn condition(&mut self, node: &Node, path: &str, scope: &[&str]) -> Option<Arc<Expr>> {
        let (expr, ty) = self.typed_expression(node, path, scope)?;
        if !matches!(ty, crate::types::Type::Bool | crate::types::Type::Dyn) {
            self.error_hint(
                Code::TypeMismatch,
                node.span,
                format!(
                    "`{path}` must be true or false; this is always {}",
                    ty.name()
                ),
                "compare it, for example `=inputs.count > 0`",
            );
        }
        Some(expr)
    }

    /// A value in which expressions may appear at any depth.
    pub fn template(&mut self, node: &Node, path: &str, scope: &[&str]) -> Template {
        let template = Template::compile(node, self.file, self.diags, self.cache);
        for expr in template.expressions() {
            self.check_scope(expr, path, scope);
        }
        template
    }

    /// Variables an expression reads must exist where it is written, and its operations must
    /// be able to work. Gives the type the expression is known to have.
    fn check_scope(&mut self, expr: &Expr, path: &str, scope: &[&str]) -> crate::types::Type {
        let mut mismatches = Vec::new();
        let ty = crate::types::infer(expr.ast(), &mut mismatches);
        for m in mismatches {
            let diagnostic =
                Diagnostic::error(Code::TypeMismatch, expr.location_of(m.id), m.message);
            self.diags.push(match m.hint {
                Some(hint) => diagnostic.with_hint(hint),
                None => diagnostic,
            });
        }
        for reference in &expr.references {
            if scope.contains(&reference.root.as_str()) {
                continue;
            }
            let available = if scope.is_empty() {
                "no variables are available there".to_string()
            } else {
                format!(
                    "available there: {}",
                    scope
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            // A warning, as in Koreo this fails only when evaluated: files that load there
            // must load here.
            self.diags.push(
                Diagnostic::warning(
                    Code::UndefinedVariable,
                    reference.location.clone(),
                    format!(
                        "`{}` is not defined in `{path}`; evaluating this expression will fail",
                        reference.root
                    ),
                )
                .with_hint(available),
            );
        }
        ty
    }

    /// Reports that not exactly one of `keys` is `present`.
    fn one_of(&mut self, fields: &Fields, keys: &[&str], present: &[&str], path: &Path<'_>) {
        match present {
            [] => self.error(
                Code::MissingField,
                fields.span(),
                format!("`{path}` needs exactly one of {}", list_keys(keys)),
            ),
            many => self.error(
                Code::InvalidValue,
                fields.span(),
                format!(
                    "`{path}` may have only one of {}, found {}",
                    list_keys(keys),
                    list_keys(many)
                ),
            ),
        }
    }
}

fn list_keys(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn article(type_name: &str) -> String {
    match type_name {
        "null" => "null".into(),
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

/// The allowed key nearest to a misspelt one, if it is close enough to be a likely typo.
pub(crate) fn closest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|a| (edit_distance(&key.to_lowercase(), &a.to_lowercase()), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Decoder<'_> {
    /// Checks a node against its field in [`crate::schema`]: known keys (with did-you-mean),
    /// required keys, one-of and any-of groups, types, enums, expressions required or
    /// forbidden, patterns, lengths and sizes, unique list items and the CRD's rules. What is
    /// decoded this way cannot disagree with its CRD.
    pub fn conform(&mut self, node: &Node, field: &'static Field, path: &Path<'_>) {
        // Everything reported here is an error: a count of all diagnostics tells.
        let before = self.diags.len();
        if matches!(node.value, Value::Null) {
            // Kept where nullable (it removes a key in a merge patch); elsewhere absent, as the
            // API server prunes it.
            return;
        }
        match field.ty {
            Type::Object => self.conform_object(node, field, path),
            Type::Array => self.conform_list(node, field, path),
            Type::String if field.expression == Expression::Required => {
                self.check_expression(node, path);
            }
            Type::String => {
                if let Some(text) = self.string(node, path) {
                    self.conform_text(node, field, path, text);
                }
            }
            Type::Boolean => {
                self.bool(node, path);
            }
            Type::Integer => {
                self.int(node, path);
            }
            Type::IntOrString => match &node.value {
                Value::Int(_) => {}
                Value::Str(text, _) => self.conform_text(node, field, path, text),
                _ => self.error(
                    Code::WrongType,
                    node.span,
                    format!(
                        "`{path}` must be an integer or a string, not {}",
                        article(node.type_name())
                    ),
                ),
            },
            Type::Any => {}
        }
        if self.diags.len() == before {
            self.conform_rules(node, field, path);
        }
    }

    fn conform_list(&mut self, node: &Node, field: &'static Field, path: &Path<'_>) {
        let max = field.max_items.map_or(usize::MAX, |m| m as usize);
        let items = self.seq(node, path, max);
        if let Some(min) = field.min_items
            && node.as_seq().is_some()
            && items.len() < min as usize
        {
            self.error(
                Code::InvalidValue,
                node.span,
                format!("`{path}` needs at least {min} item(s)"),
            );
        }
        if let Some(item) = field.items {
            for (i, n) in items.iter().enumerate() {
                self.conform(n, item, &Path::Index(path, i));
            }
        }
        // Items must differ in their keys (`x-kubernetes-list-type: map`).
        let mut seen: Vec<Vec<serde_json::Value>> = Vec::new();
        for n in items.iter().filter(|_| !field.list_map_keys.is_empty()) {
            let key: Vec<serde_json::Value> = field
                .list_map_keys
                .iter()
                .map(|k| n.get(k).map_or(serde_json::Value::Null, Node::to_json))
                .collect();
            if seen.contains(&key) {
                let shown: Vec<String> = field
                    .list_map_keys
                    .iter()
                    .zip(&key)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                self.error(
                    Code::InvalidValue,
                    n.span,
                    format!("`{path}` has two items with {}", shown.join(", ")),
                );
            } else {
                seen.push(key);
            }
        }
    }

    fn conform_object(&mut self, node: &Node, field: &'static Field, path: &Path<'_>) {
        let declared = !field.fields.is_empty();
        let fields = if field.free_form || (!declared && field.values.is_some()) {
            self.any_map(node, path)
        } else {
            self.fields(node, path, field)
        };
        let Some(fields) = fields else { return };
        for child in field.fields {
            let at = Path::Key(path, child.name);
            match fields.get(child.name) {
                Some(n) => {
                    self.conform(n, child, &at);
                }
                None if child.required => {
                    self.required(&fields, child.name, path);
                }
                None => {}
            }
        }
        if let Some(values) = field.values.filter(|_| !declared) {
            for (key, value) in fields.entries {
                self.conform(value, values, &Path::Key(path, &key.text));
            }
        }
        if !field.one_of.is_empty() {
            // A nullable key written as `null` is there (`ok: null`); others are absent.
            let is_present = |k: &&&str| {
                fields.has(k)
                    || (field.child(k).is_some_and(|c| c.nullable)
                        && fields.entries.iter().any(|(key, _)| key.text == **k))
            };
            let present: Vec<&str> = field.one_of.iter().filter(is_present).copied().collect();
            if present.len() != 1 {
                self.one_of(&fields, field.one_of, &present, path);
            }
        }
        if !field.any_of.is_empty() && !field.any_of.iter().any(|k| fields.has(k)) {
            self.error(
                Code::MissingField,
                fields.span(),
                format!("`{path}` needs at least one of {}", list_keys(field.any_of)),
            );
        }
        let count = fields.entries.len() as u32;
        if field.min_properties.is_some_and(|min| count < min) {
            self.error(
                Code::InvalidValue,
                node.span,
                format!("`{path}` may not be empty"),
            );
        }
        if let Some(max) = field.max_properties.filter(|max| count > *max) {
            self.error(
                Code::InvalidValue,
                node.span,
                format!("`{path}` has {count} keys; at most {max} are allowed"),
            );
        }
    }

    /// The CRD's cross-field rules, evaluated as the API server does: CEL with `self` bound to
    /// the value (keys that are CEL reserved words escaped as `__word__`).
    fn conform_rules(&mut self, node: &Node, field: &'static Field, path: &Path<'_>) {
        let mut rules = field
            .rules
            .iter()
            .filter(|r| r.checked_as.is_none())
            .peekable();
        if rules.peek().is_none() {
            return;
        }
        let value = crate::schema::rule_self(&node.to_json());
        for rule in rules {
            if !rule_holds(rule, &value) {
                self.error(
                    Code::InvalidValue,
                    node.span,
                    format!("`{path}`: {}", rule.message),
                );
            }
        }
    }

    /// A field that must be an expression: a string starting with `=`.
    fn check_expression(&mut self, node: &Node, path: &Path<'_>) {
        let Value::Str(s, _) = &node.value else {
            self.error_hint(
                Code::WrongType,
                node.span,
                format!(
                    "`{path}` must be an expression, not {}",
                    article(node.type_name())
                ),
                "write it as a string starting with `=`, for example `=inputs.enabled`",
            );
            return;
        };
        if !is_expression(s) {
            self.error_hint(
                Code::ExpressionRequired,
                node.span,
                format!("`{path}` must be an expression (start with `=`)"),
                format!("write `={s}`"),
            );
        }
    }

    fn conform_text(&mut self, node: &Node, field: &'static Field, path: &Path<'_>, text: &str) {
        if !field.enum_values.is_empty() && !field.enum_values.contains(&text) {
            let suggestion = closest(text, field.enum_values)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            self.error_hint(
                Code::InvalidValue,
                node.span,
                format!("`{path}` cannot be `{text}`"),
                format!("{suggestion}one of: {}", field.enum_values.join(", ")),
            );
        }
        if field.expression == Expression::Forbidden && text.starts_with('=') {
            self.error(
                Code::ExpressionNotAllowed,
                node.span,
                format!("`{path}` may not be an expression"),
            );
        }
        if let Some(pattern) = field.pattern.filter(|p| !p.matches(text)) {
            self.error(
                Code::InvalidValue,
                node.span,
                format!("`{path}` {}", pattern.rule().message),
            );
        }
        let length = text.chars().count() as u32;
        if field.min_length.is_some_and(|m| length < m)
            || field.max_length.is_some_and(|m| length > m)
        {
            self.error(
                Code::InvalidValue,
                node.span,
                format!(
                    "`{path}` must be {} to {} characters long",
                    field.min_length.unwrap_or(0),
                    field
                        .max_length
                        .map_or("any".to_string(), |m| m.to_string())
                ),
            );
        }
    }
}

/// Whether `value` (as [`crate::schema::rule_self`] gives it) passes a CRD rule. The rules are
/// ours and compile; one that fails to evaluate counts as broken, as in the API server.
fn rule_holds(rule: &crate::schema::Rule, value: &serde_json::Value) -> bool {
    type Compiled = std::collections::HashMap<&'static str, Option<Arc<Expr>>>;
    static COMPILED: std::sync::LazyLock<std::sync::Mutex<Compiled>> =
        std::sync::LazyLock::new(Default::default);
    let expr = {
        let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
        compiled
            .entry(rule.rule)
            .or_insert_with(|| Expr::compile_str(rule.rule).ok().map(Arc::new))
            .clone()
    };
    let Some(expr) = expr else {
        return false;
    };
    expr.eval_bool(&crate::expr::Scope::new().with("self", value))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(
            closest("preconditon", &["preconditions", "locals"]),
            Some("preconditions")
        );
        assert_eq!(closest("retrun", &["return", "locals"]), Some("return"));
        assert_eq!(closest("zzz", &["return", "locals"]), None);
    }
}
