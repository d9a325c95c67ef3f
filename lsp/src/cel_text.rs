//! Expressions as the editor sees them: a tolerant CEL lexer (it never fails, so half-typed
//! expressions still get colours and completion) and the map from an expression's characters to
//! the file, through YAML quoting, escapes, folding and block indentation.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Ident,
    /// `true`, `false`, `null`, `in`.
    Keyword,
    Number,
    String,
    Dot,
    /// `(`, `)`, `[`, `]`, `{`, `}`, `,`.
    Punct(char),
    Operator,
}

/// A token; `start` and `end` are character indices into the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

const KEYWORDS: [&str; 4] = ["true", "false", "null", "in"];

/// The tokens of an expression (without its `=`). Unknown characters become operators.
pub fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c.is_whitespace() {
            i += 1;
            continue;
        } else if let Some(end) = string_end(&chars, i) {
            i = end;
            TokenKind::String
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if KEYWORDS.contains(&word.as_str()) {
                TokenKind::Keyword
            } else {
                TokenKind::Ident
            }
        } else if c == '`' {
            // A quoted identifier: ``a.`b-c` ``.
            i += 1;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            i = (i + 1).min(chars.len());
            TokenKind::Ident
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            TokenKind::Number
        } else if c == '.' {
            i += 1;
            TokenKind::Dot
        } else if "()[]{},".contains(c) {
            i += 1;
            TokenKind::Punct(c)
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            i += if ["&&", "||", "==", "!=", "<=", ">="].contains(&two.as_str()) {
                2
            } else {
                1
            };
            TokenKind::Operator
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
            text: chars[start..i].iter().collect(),
        });
    }
    tokens
}

/// Where a string literal starting at `i` ends (exclusive), if one starts there: optional
/// `r`/`b` prefixes, then `'`, `"`, `'''` or `"""`. An unterminated one runs to the end.
fn string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    let mut raw = false;
    while j < chars.len() && j - i < 2 && matches!(chars[j], 'r' | 'R' | 'b' | 'B') {
        raw |= matches!(chars[j], 'r' | 'R');
        j += 1;
    }
    let quote = *chars.get(j).filter(|c| matches!(c, '\'' | '"'))?;
    let triple = chars.get(j + 1) == Some(&quote) && chars.get(j + 2) == Some(&quote);
    let mut k = j + if triple { 3 } else { 1 };
    while k < chars.len() {
        if chars[k] == '\\' && !raw {
            k += 2;
            continue;
        }
        if chars[k] == quote
            && (!triple || (chars.get(k + 1) == Some(&quote) && chars.get(k + 2) == Some(&quote)))
        {
            return Some(k + if triple { 3 } else { 1 });
        }
        k += 1;
    }
    Some(chars.len())
}

/// `root.field`, `root['field']` or a bare `root`: a read of a variable, as lang's analysis sees
/// it, with where each part is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub root: String,
    pub root_start: usize,
    pub field: Option<String>,
    /// Where the field is written (inside the quotes for `['field']`).
    pub field_range: Option<(usize, usize)>,
}

impl Member {
    /// The whole `root.field` (or `root`).
    pub fn range(&self) -> (usize, usize) {
        let end = self
            .field_range
            .map_or(self.root_start + self.root.chars().count(), |(_, e)| e);
        (self.root_start, end)
    }
}

/// Every variable read: an identifier that is not a field, a function name or a keyword.
pub fn members(tokens: &[Token]) -> Vec<Member> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != TokenKind::Ident || is_selected(tokens, i) || is_call(tokens, i) {
            continue;
        }
        let mut member = Member {
            root: t.text.clone(),
            root_start: t.start,
            field: None,
            field_range: None,
        };
        match (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3)) {
            (Some(dot), Some(field), _)
                if dot.kind == TokenKind::Dot && field.kind == TokenKind::Ident =>
            {
                member.field = Some(field.text.trim_matches('`').to_string());
                member.field_range = Some((field.start, field.end));
            }
            (Some(open), Some(key), Some(close))
                if open.kind == TokenKind::Punct('[')
                    && key.kind == TokenKind::String
                    && close.kind == TokenKind::Punct(']') =>
            {
                let quote = key.text.find(['\'', '"']).unwrap_or(0);
                let inner = key.text[quote..].trim_matches(|c| c == '\'' || c == '"');
                member.field = Some(inner.to_string());
                let start = key.start + key.text[..quote].chars().count() + 1;
                member.field_range = Some((start, start + inner.chars().count()));
            }
            _ => {}
        }
        out.push(member);
    }
    out
}

/// Whether token `i` follows a `.` (or `.?`): a field or a method, not a variable.
pub fn is_selected(tokens: &[Token], i: usize) -> bool {
    match i.checked_sub(1).map(|j| &tokens[j]) {
        Some(t) if t.kind == TokenKind::Dot => true,
        Some(t) if t.text == "?" => i >= 2 && tokens[i - 2].kind == TokenKind::Dot,
        _ => false,
    }
}

/// Whether token `i` is called: `name(`.
pub fn is_call(tokens: &[Token], i: usize) -> bool {
    tokens
        .get(i + 1)
        .is_some_and(|t| t.kind == TokenKind::Punct('('))
}

/// The chain of names being written at the end of `prefix`: for `has(resource.metadata.na`,
/// `(["resource", "metadata"], "na")`; for `size(` nothing before, and `""` typed. `None` when
/// the cursor is inside a string literal, where nothing is completed.
pub fn chain_at_end(prefix: &str) -> Option<(Vec<String>, String)> {
    let tokens = lex(prefix);
    let len = prefix.chars().count();
    let mut i = tokens.len();
    let mut typed = String::new();
    if let Some(last) = tokens.last() {
        if last.kind == TokenKind::String {
            return None;
        }
        if last.end == len && matches!(last.kind, TokenKind::Ident | TokenKind::Keyword) {
            typed = last.text.clone();
            i -= 1;
        }
    }
    let mut chain = Vec::new();
    while i >= 2 && tokens[i - 1].kind == TokenKind::Dot && tokens[i - 2].kind == TokenKind::Ident {
        chain.insert(0, tokens[i - 2].text.trim_matches('`').to_string());
        i -= 2;
    }
    // `f(x).` or `'s'.`: a method on a value that is not a variable chain.
    if i >= 1 && tokens[i - 1].kind == TokenKind::Dot && chain.is_empty() {
        chain.push(String::new());
    } else if i >= 1 && !chain.is_empty() && is_selected(&tokens, i) {
        chain.insert(0, String::new());
    }
    Some((chain, typed))
}

/// For each character of a YAML string's value, the file character offset it was read from,
/// plus one entry for the end. Quotes, escapes, folded line breaks and block indentation are
/// skipped; a character that cannot be found (an escape such as `\n`) takes the next raw one.
pub fn align(value: &str, raw: &[char], raw_start: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(value.len() + 1);
    let mut r = 0usize;
    for c in value.chars() {
        while r < raw.len() && raw[r] != c && is_skippable(raw[r]) {
            r += 1;
        }
        out.push(raw_start + r.min(raw.len()) as u32);
        r = (r + 1).min(raw.len());
    }
    out.push(raw_start + r as u32);
    out
}

fn is_skippable(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<(TokenKind, String)> {
        lex(source).into_iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn lexes_cel() {
        use TokenKind::*;
        assert_eq!(
            kinds("inputs.a + size(x) >= 2.5e-3 && r'\\d' in [\"é😀\"]"),
            [
                (Ident, "inputs".into()),
                (Dot, ".".into()),
                (Ident, "a".into()),
                (Operator, "+".into()),
                (Ident, "size".into()),
                (Punct('('), "(".into()),
                (Ident, "x".into()),
                (Punct(')'), ")".into()),
                (Operator, ">=".into()),
                (Number, "2.5e-3".into()),
                (Operator, "&&".into()),
                (String, "r'\\d'".into()),
                (Keyword, "in".into()),
                (Punct('['), "[".into()),
                (String, "\"é😀\"".into()),
                (Punct(']'), "]".into()),
            ]
        );
        // Unterminated strings run to the end instead of failing.
        assert_eq!(kinds("'abc").last().unwrap().0, String);
    }

    #[test]
    fn finds_variable_reads_but_not_fields_or_calls() {
        let tokens = lex("steps.a.x + steps['b'] + size(locals) + x.inputs + has(y)");
        let found: Vec<_> = members(&tokens)
            .into_iter()
            .map(|m| (m.root, m.field, m.field_range))
            .collect();
        assert_eq!(
            found,
            [
                ("steps".into(), Some("a".into()), Some((6, 7))),
                ("steps".into(), Some("b".into()), Some((19, 20))),
                ("locals".into(), None, None),
                ("x".into(), Some("inputs".into()), Some((42, 48))),
                ("y".into(), None, None),
            ]
        );
    }

    #[test]
    fn chains_at_the_cursor() {
        let chain = |s: &str| chain_at_end(s).map(|(c, t)| (c.join("."), t));
        assert_eq!(
            chain("has(resource.metadata.na"),
            Some(("resource.metadata".into(), "na".into()))
        );
        assert_eq!(chain("inputs."), Some(("inputs".into(), "".into())));
        assert_eq!(chain("1 + inp"), Some(("".into(), "inp".into())));
        assert_eq!(chain("'x'.lo"), Some(("".into(), "lo".into())));
        assert_eq!(chain_at_end("'x'.lo").unwrap().0, [""]);
        assert_eq!(chain_at_end("f(a).b.").unwrap().0, ["", "b"]);
        assert_eq!(chain("'in a str"), None);
    }

    #[test]
    fn aligns_through_quotes_escapes_and_folding() {
        let raw: Vec<char> = "\"=\\\"é😀\\\" + x\"".chars().collect();
        let map = align("=\"é😀\" + x", &raw, 10);
        // `=` is after the opening quote; `é` after the escaped quote.
        assert_eq!(map[0], 11);
        assert_eq!(map[2], 14);
        assert_eq!(map[8], 21);
        assert_eq!(map[9], 22, "the end");
        let raw: Vec<char> = "=a +\n    b".chars().collect();
        let map = align("=a + b", &raw, 0);
        assert_eq!(map[5], 9, "a folded line break maps `b` to its own line");
    }
}
