//! Semantic tokens: colours for expressions, which a YAML grammar sees as plain strings.

use std::path::Path;

use tower_lsp_server::ls_types::{
    SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend,
};

use crate::cel_text::{self, TokenKind};
use crate::library;
use crate::state::Analysis;

const TYPES: [SemanticTokenType; 8] = [
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::METHOD,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::KEYWORD,
    SemanticTokenType::OPERATOR,
];

/// Index into [`TYPES`].
#[derive(Clone, Copy)]
enum Type {
    Variable,
    Property,
    Function,
    Method,
    String,
    Number,
    Keyword,
    Operator,
}

/// Bit of `DEFAULT_LIBRARY`: a function koreo-stdlib or CEL provides.
const LIBRARY: u32 = 1;

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: vec![SemanticTokenModifier::DEFAULT_LIBRARY],
    }
}

/// The tokens of every expression of a file, encoded as LSP wants them (relative positions).
pub fn semantic_tokens(analysis: &Analysis, path: &Path) -> Vec<SemanticToken> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    if file.stale {
        return Vec::new();
    }
    let text = file.text();
    let mut absolute = Vec::new();
    for site in file.docs.iter().flat_map(|d| &d.expressions) {
        let tokens = cel_text::lex(&site.source);
        for (i, token) in tokens.iter().enumerate() {
            let Some((ty, modifiers)) = classify(&tokens, i) else {
                continue;
            };
            let (start, end) = site.file_range(token.start, token.end);
            let (from, to) = (
                file.lines.position(text, start),
                file.lines.position(text, end),
            );
            // A token broken over lines by YAML folding is left uncoloured.
            if from.line == to.line && to.character > from.character {
                absolute.push((
                    from.line,
                    from.character,
                    to.character - from.character,
                    ty,
                    modifiers,
                ));
            }
        }
    }
    absolute.sort_by_key(|t| (t.0, t.1));
    let mut out = Vec::with_capacity(absolute.len());
    let (mut line, mut start) = (0, 0);
    for (l, c, length, ty, modifiers) in absolute {
        let delta_start = if l == line { c - start } else { c };
        out.push(SemanticToken {
            delta_line: l - line,
            delta_start,
            length,
            token_type: ty as u32,
            token_modifiers_bitset: modifiers,
        });
        (line, start) = (l, c);
    }
    out
}

fn classify(tokens: &[cel_text::Token], i: usize) -> Option<(Type, u32)> {
    let token = &tokens[i];
    let library = |name: &str| {
        if library::function(name).is_some() {
            LIBRARY
        } else {
            0
        }
    };
    Some(match token.kind {
        TokenKind::Ident => {
            let call = cel_text::is_call(tokens, i);
            match (cel_text::is_selected(tokens, i), call) {
                (true, true) => (Type::Method, library(&token.text)),
                (false, true) => (Type::Function, library(&token.text)),
                (true, false) => (Type::Property, 0),
                (false, false) => (Type::Variable, 0),
            }
        }
        TokenKind::Keyword => (Type::Keyword, 0),
        TokenKind::Number => (Type::Number, 0),
        TokenKind::String => (Type::String, 0),
        TokenKind::Operator => (Type::Operator, 0),
        TokenKind::Dot | TokenKind::Punct(_) => return None,
    })
}
