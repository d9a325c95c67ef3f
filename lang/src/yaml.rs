//! YAML loading into a tree where every node keeps its position.
//!
//! Scalars resolve the way `kubectl` reads them (YAML 1.1 booleans such as `yes`/`no` included),
//! so a file means the same here as it does when applied to a cluster.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span as YamlSpan, Tag};

use crate::source::{Pos, Span};

/// How a string scalar was written; expressions use it to map error offsets back to the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|` block: each content line is a source line.
    Literal,
    /// `>` block.
    Folded,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String, Style),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A mapping key. Keys that YAML would read as numbers or booleans keep their source text.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub text: String,
    pub span: Span,
}

impl Node {
    /// A tree for a value that has no source text (a definition read from a cluster). Each
    /// node and key gets its own position, in document order and within its parent's span, so
    /// that [`Node::path_at`] names the field a diagnostic points at.
    pub fn from_json(value: &serde_json::Value) -> Node {
        let mut next = 0;
        Node::numbered(value, &mut next)
    }

    fn numbered(value: &serde_json::Value, next: &mut u32) -> Node {
        use serde_json::Value as J;
        let start = Node::tick(next);
        let value = match value {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => n
                .as_i64()
                .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
            J::String(s) => Value::Str(s.clone(), Style::Plain),
            J::Array(items) => Value::Seq(items.iter().map(|v| Node::numbered(v, next)).collect()),
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = Key {
                            text: k.clone(),
                            span: Span::point(Node::tick(next)),
                        };
                        (key, Node::numbered(v, next))
                    })
                    .collect(),
            ),
        };
        let end = Pos {
            line: *next,
            col: 2,
            offset: *next,
        };
        Node {
            value,
            span: Span { start, end },
        }
    }

    fn tick(next: &mut u32) -> Pos {
        *next += 1;
        Pos {
            line: *next,
            col: 1,
            offset: *next,
        }
    }

    /// The field path (`spec.steps[2].inputs.name`) of the innermost node or key at `pos`, for
    /// documents that have no file a person wrote (definitions read from a cluster).
    pub fn path_at(&self, pos: Pos) -> String {
        let mut path = String::new();
        let mut node = self;
        loop {
            let next = match &node.value {
                Value::Map(entries) => entries.iter().find_map(|(key, value)| {
                    let here = key.span.contains(pos) || value.span.contains(pos);
                    here.then(|| {
                        let simple = key
                            .text
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if simple {
                            if !path.is_empty() {
                                path.push('.');
                            }
                            path.push_str(&key.text);
                        } else {
                            path.push_str(&format!("[{:?}]", key.text));
                        }
                        value
                    })
                }),
                Value::Seq(items) => items.iter().enumerate().find_map(|(i, item)| {
                    item.span.contains(pos).then(|| {
                        path.push_str(&format!("[{i}]"));
                        item
                    })
                }),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => return path,
            }
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(..) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value at `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| v)
    }

    /// The node as plain JSON, positions dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s, _) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.text.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML document of a file, with the span it covers.
#[derive(Clone, Debug)]
pub struct Document {
    pub root: Node,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Deeper nesting than this is refused rather than risking the stack of later passes.
pub const MAX_DEPTH: usize = 128;
/// Alias expansion may not grow a stream past this many nodes ("billion laughs").
pub const MAX_NODES: usize = 1_000_000;

fn pos(m: &saphyr_parser::Marker) -> Pos {
    Pos {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
        offset: m.index() as u32,
    }
}

fn span(s: &YamlSpan) -> Span {
    Span {
        start: pos(&s.start),
        end: pos(&s.end),
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        pending_key: Option<(Node, String)>,
        /// The keys so far: the line of an explicit one, `None` for one a `<<` merge brought
        /// (an explicit key replaces it). A map, so that a mapping of n keys loads in O(n).
        keys: HashMap<String, Option<u32>>,
        start: Pos,
        anchor: usize,
    },
}

/// Parses a stream of YAML documents. Empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut docs = Vec::new();
    parse_into(text, &mut docs)?;
    Ok(docs)
}

/// The documents of a stream up to its first error, and that error: one mistake does not lose
/// the documents before it.
pub fn parse_documents_partial(text: &str) -> (Vec<Document>, Option<YamlError>) {
    let mut docs = Vec::new();
    let error = parse_into(text, &mut docs).err();
    (docs, error)
}

/// Parses `text`, pushing each document onto `docs` as it completes.
fn parse_into(text: &str, docs: &mut Vec<Document>) -> Result<(), YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut doc_start = Pos::default();
    let mut root: Option<Node> = None;
    let mut node_count = 0usize;

    for event in Parser::new_from_str(text) {
        let (event, ev_span) = event.map_err(scan_error)?;
        let at = span(&ev_span);
        let finished: Option<(Node, usize, String)> = match event {
            Event::DocumentStart(_) => {
                doc_start = at.start;
                anchors.clear();
                None
            }
            Event::DocumentEnd => {
                if let Some(node) = root.take().filter(|n| n.value != Value::Null) {
                    docs.push(Document {
                        span: Span {
                            start: doc_start,
                            end: node.span.end.max(at.start),
                        },
                        root: node,
                    });
                }
                None
            }
            Event::SequenceStart(anchor, _) => {
                push_frame(
                    &mut stack,
                    Frame::Seq {
                        items: Vec::new(),
                        start: at.start,
                        anchor,
                    },
                    at.start,
                )?;
                None
            }
            Event::MappingStart(anchor, _) => {
                push_frame(
                    &mut stack,
                    Frame::Map {
                        entries: Vec::new(),
                        pending_key: None,
                        keys: HashMap::new(),
                        start: at.start,
                        anchor,
                    },
                    at.start,
                )?;
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    start,
                    anchor,
                }) => Some((
                    Node {
                        value: Value::Seq(items),
                        span: Span { start, end: at.end },
                    },
                    anchor,
                    String::new(),
                )),
                _ => return Err(internal(at.start)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    entries,
                    start,
                    anchor,
                    ..
                }) => Some((
                    Node {
                        value: Value::Map(entries),
                        span: Span { start, end: at.end },
                    },
                    anchor,
                    String::new(),
                )),
                _ => return Err(internal(at.start)),
            },
            Event::Scalar(value, style, anchor, tag) => {
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Map {
                        pending_key: None,
                        ..
                    })
                );
                let (node, raw) = scalar(value, style, tag.as_deref(), at, is_key)?;
                Some((node, anchor, raw))
            }
            Event::Alias(id) => {
                let Some(node) = anchors.get(&id) else {
                    return Err(YamlError {
                        pos: at.start,
                        message: "alias refers to an unknown anchor".into(),
                    });
                };
                node_count += count_nodes(node);
                if node_count > MAX_NODES {
                    return Err(YamlError {
                        pos: at.start,
                        message: format!(
                            "aliases expand to more than {MAX_NODES} nodes; write the data out instead"
                        ),
                    });
                }
                let mut copy = node.clone();
                copy.span = at;
                Some((copy, 0, String::new()))
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
        };
        let Some((node, anchor, raw)) = finished else {
            continue;
        };
        node_count += 1;
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                keys,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some((node, raw)),
                Some((key, raw_key)) => insert_entry(entries, keys, key, raw_key, node)?,
            },
        }
    }
    Ok(())
}

fn push_frame(stack: &mut Vec<Frame>, frame: Frame, at: Pos) -> Result<(), YamlError> {
    if stack.len() >= MAX_DEPTH {
        return Err(YamlError {
            pos: at,
            message: format!("nesting is deeper than {MAX_DEPTH} levels"),
        });
    }
    stack.push(frame);
    Ok(())
}

fn internal(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: "unbalanced YAML structure".into(),
    }
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| 1 + count_nodes(v)).sum(),
        _ => 0,
    }
}

/// Keys that YAML reads as numbers or booleans (`true:`, `3:`) keep the text the author wrote.
fn insert_entry(
    entries: &mut Vec<(Key, Node)>,
    keys: &mut HashMap<String, Option<u32>>,
    key: Node,
    raw_key: String,
    value: Node,
) -> Result<(), YamlError> {
    let span = key.span;
    let text = match key.value {
        Value::Str(s, Style::Plain) if s == "<<" => return merge(entries, keys, value),
        Value::Str(s, _) => s,
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => raw_key,
        Value::Seq(_) | Value::Map(_) => {
            return Err(YamlError {
                pos: span.start,
                message: "a mapping key must be a plain value, not a list or a mapping".into(),
            });
        }
    };
    match keys.get(&text) {
        Some(Some(first)) => {
            return Err(YamlError {
                pos: span.start,
                message: format!(
                    "duplicate key `{text}` (first defined at line {first}); remove one of them"
                ),
            });
        }
        // Merged in: the explicit key replaces it.
        Some(None) => entries.retain(|(k, _)| k.text != text),
        None => {}
    }
    keys.insert(text.clone(), Some(span.start.line));
    entries.push((Key { text, span }, value));
    Ok(())
}

/// The YAML 1.1 merge key: entries of the merged mapping(s) that are not already present.
fn merge(
    entries: &mut Vec<(Key, Node)>,
    keys: &mut HashMap<String, Option<u32>>,
    value: Node,
) -> Result<(), YamlError> {
    let sources: Vec<Node> = match value.value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items,
        _ => {
            return Err(YamlError {
                pos: value.span.start,
                message: "`<<` merges a mapping or a list of mappings".into(),
            });
        }
    };
    for source in sources {
        let Value::Map(more) = source.value else {
            return Err(YamlError {
                pos: source.span.start,
                message: "`<<` merges a mapping or a list of mappings".into(),
            });
        };
        for (k, v) in more {
            if !keys.contains_key(&k.text) {
                keys.insert(k.text.clone(), None);
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

fn scan_error(e: ScanError) -> YamlError {
    YamlError {
        pos: pos(e.marker()),
        message: e.info().to_string(),
    }
}

/// The node for a scalar, and its source text when it is a key that YAML reads as a number,
/// boolean or null (keys keep the text the author wrote).
fn scalar(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    at: Span,
    is_key: bool,
) -> Result<(Node, String), YamlError> {
    let style = match style {
        ScalarStyle::Plain => Style::Plain,
        ScalarStyle::SingleQuoted => Style::SingleQuoted,
        ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
        ScalarStyle::Literal => Style::Literal,
        ScalarStyle::Folded => Style::Folded,
    };
    // `None`: the scalar is a string.
    let resolved = match tag {
        Some(tag) if let Some(core) = core_suffix(tag) => match core {
            "str" => None,
            "int" => Some(resolve_int(&text).ok_or_else(|| tag_error(&text, "an integer", at))?),
            "float" => Some(
                resolve_float(&text)
                    .or_else(|| resolve_int(&text).map(int_to_float))
                    .ok_or_else(|| tag_error(&text, "a number", at))?,
            ),
            "bool" => Some(
                resolve_bool(&text)
                    .map(Value::Bool)
                    .ok_or_else(|| tag_error(&text, "a boolean", at))?,
            ),
            "null" => Some(Value::Null),
            _ => resolve_plain(&text, style),
        },
        _ => resolve_plain(&text, style),
    };
    Ok(match resolved {
        Some(value) => {
            let raw = if is_key {
                text.into_owned()
            } else {
                String::new()
            };
            (Node { value, span: at }, raw)
        }
        None => (
            Node {
                value: Value::Str(text.into_owned(), style),
                span: at,
            },
            String::new(),
        ),
    })
}

fn int_to_float(v: Value) -> Value {
    match v {
        Value::Int(i) => Value::Float(i as f64),
        other => other,
    }
}

/// The type a YAML core-schema tag names (`str`, `int`, ...), however it is spelt: `!!str` and
/// `!<tag:yaml.org,2002:str>` are the same tag.
fn core_suffix(tag: &saphyr_parser::Tag) -> Option<&str> {
    const CORE: &str = "tag:yaml.org,2002:";
    let rest = CORE.strip_prefix(tag.handle.as_str())?;
    tag.suffix.strip_prefix(rest)
}

fn tag_error(text: &str, what: &str, at: Span) -> YamlError {
    YamlError {
        pos: at.start,
        message: format!("`{text}` is tagged as {what} but is not one"),
    }
}

/// What a plain scalar means when it is not a string; `None` for strings.
fn resolve_plain(text: &str, style: Style) -> Option<Value> {
    if style != Style::Plain {
        return None;
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Some(Value::Null);
    }
    if let Some(b) = resolve_bool(text) {
        return Some(Value::Bool(b));
    }
    resolve_int(text).or_else(|| resolve_float(text))
}

fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn resolve_int(text: &str) -> Option<Value> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = digits.strip_prefix("0o") {
        (8, oct)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    Some(match i64::try_from(value) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Float(value as f64),
    })
}

fn resolve_float(text: &str) -> Option<Value> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int_part)
        && frac_part.is_none_or(digits)
        && !(int_part.is_empty() && frac_part.is_none_or(str::is_empty));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    // A float needs a dot or an exponent; plain digits are integers.
    if !mantissa_ok || !exponent_ok || (frac_part.is_none() && exponent.is_none()) {
        return None;
    }
    text.parse::<f64>().ok().map(Value::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse_documents(text).unwrap().remove(0).root
    }

    #[test]
    fn scalars_resolve_as_kubectl_reads_them() {
        let node = root(
            "a: 8080\nb: '8080'\nc: yes\nd: ~\ne: 1.5\nf: 1e3\ng: -0x1F\nh: text\ni: 12e\nj: .inf\n",
        );
        let json = node.to_json();
        assert_eq!(json["a"], 8080);
        assert_eq!(json["b"], "8080");
        assert_eq!(json["c"], true);
        assert_eq!(json["d"], serde_json::Value::Null);
        assert_eq!(json["e"], 1.5);
        assert_eq!(json["f"], 1000.0);
        assert_eq!(json["g"], -31);
        assert_eq!(json["h"], "text");
        assert_eq!(json["i"], "12e");
        assert!(matches!(node.get("j").unwrap().value, Value::Float(f) if f.is_infinite()));
    }

    #[test]
    fn every_node_has_its_position() {
        let node = root("spec:\n  name: =inputs.x\n  list:\n  - one\n");
        let spec = node.get("spec").unwrap();
        let name = spec.get("name").unwrap();
        assert_eq!((name.span.start.line, name.span.start.col), (2, 9));
        let (key, _) = &spec.as_map().unwrap()[1];
        assert_eq!((key.span.start.line, key.span.start.col), (3, 3));
        let item = &spec.get("list").unwrap().as_seq().unwrap()[0];
        assert_eq!((item.span.start.line, item.span.start.col), (4, 5));
    }

    #[test]
    fn multiple_documents_and_empty_ones() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].root.span.start.line, 4);
    }

    #[test]
    fn non_string_keys_keep_their_text() {
        let node = root("True: 1\n3: x\n~: y\n");
        let keys: Vec<_> = node
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.text.clone())
            .collect();
        assert_eq!(keys, ["True", "3", "~"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let node = root("base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\n");
        let json = node.to_json();
        assert_eq!(json["use"], serde_json::json!({"x": 1, "y": 2}));
        assert_eq!(json["merged"], serde_json::json!({"x": 1, "y": 3}));
    }

    #[test]
    fn malformed_yaml_reports_a_position() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn a_position_reads_as_a_field_path() {
        let text = "{\n  \"spec\": {\n    \"steps\": [\n      {\"label\": \"a\"},\n      {\"inputs\": {\"name\": \"=x +\"}}\n    ]\n  }\n}\n";
        let doc = &parse_documents(text).unwrap()[0];
        let at = text.find("=x +").unwrap() as u32;
        let pos = Pos {
            line: 5,
            col: 30,
            offset: at,
        };
        assert_eq!(doc.root.path_at(pos), "spec.steps[1].inputs.name");
        let label = Pos {
            line: 4,
            col: 10,
            offset: text.find("label").unwrap() as u32,
        };
        assert_eq!(doc.root.path_at(label), "spec.steps[0].label");
    }

    #[test]
    fn a_definition_without_text_reports_errors_by_field_path() {
        let value = serde_json::json!({
            "apiVersion": "koreo.dev/v1beta1", "kind": "ValueFunction",
            "metadata": {"name": "f", "namespace": "default"},
            "spec": {"retrun": {}, "return": {"a": 1, "b": "=1 +"}}
        });
        let root = Node::from_json(&value);
        assert_eq!(root.to_json(), value, "the tree holds the value");
        let mut ws = crate::Workspace::keeping_documents();
        ws.add_object(std::path::Path::new("ValueFunction/default/f"), root);
        ws.finish();
        let root = &ws.documents[0].root;
        let mut paths: Vec<String> = ws
            .diagnostics
            .iter()
            .map(|d| root.path_at(d.location.span.start))
            .collect();
        paths.sort();
        assert_eq!(paths, ["spec.retrun", "spec.return.b"]);
    }

    #[test]
    fn tags_decide_the_type() {
        let doc = &parse_documents(
            "a: !!str 123\nb: !!int \"7\"\nc: !!float 1\nd: !!bool \"true\"\ne: !!null x\n",
        )
        .unwrap()[0];
        assert_eq!(
            doc.root.to_json(),
            serde_json::json!({"a": "123", "b": 7, "c": 1.0, "d": true, "e": null})
        );
        assert!(parse_documents("a: !!int abc\n").is_err());
        let verbatim = &parse_documents("a: !<tag:yaml.org,2002:str> 123\n").unwrap()[0];
        assert_eq!(verbatim.root.to_json(), serde_json::json!({"a": "123"}));
    }

    #[test]
    fn a_syntax_error_keeps_the_documents_before_it() {
        let (docs, error) = parse_documents_partial("a: 1\n---\nb: 2\n---\nc: [1, 2\nd: 3\n");
        let roots: Vec<serde_json::Value> = docs.iter().map(|d| d.root.to_json()).collect();
        assert_eq!(
            roots,
            [serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]
        );
        assert!(error.is_some_and(|e| e.pos.line >= 5));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("nesting"), "{}", err.message);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{}", err.message);
    }
}
