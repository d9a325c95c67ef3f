//! Positions. `koreo-lang` counts 1-based lines and columns in characters (its YAML offsets are
//! character offsets too); LSP counts 0-based lines and UTF-16 code units. Inside this crate a
//! place in a file is a character offset, converted at the edges by [`LineIndex`].

use koreo_lang::source::{Pos, Span};
use tower_lsp_server::ls_types::{Position, Range};

/// Where each line starts, to convert between offsets, lang positions and LSP positions.
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// For each line, the character and byte offsets of its first character.
    starts: Vec<(u32, usize)>,
    chars: u32,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![(0, 0)];
        let mut chars = 0u32;
        for (byte, c) in text.char_indices() {
            chars += 1;
            if c == '\n' {
                starts.push((chars, byte + 1));
            }
        }
        LineIndex { starts, chars }
    }

    pub fn len(&self) -> u32 {
        self.chars
    }

    /// The 0-based line holding `offset`.
    fn line_of(&self, offset: u32) -> usize {
        self.starts.partition_point(|(start, _)| *start <= offset) - 1
    }

    /// The 0-based line and the character column of an offset.
    pub fn line_col(&self, offset: u32) -> (usize, u32) {
        let offset = offset.min(self.chars);
        let line = self.line_of(offset);
        (line, offset - self.starts[line].0)
    }

    /// The text of a 0-based line, without its line break.
    pub fn line<'t>(&self, text: &'t str, line: usize) -> &'t str {
        let Some(&(_, start)) = self.starts.get(line) else {
            return "";
        };
        let end = self.starts.get(line + 1).map_or(text.len(), |&(_, b)| b);
        let line = text.get(start..end).unwrap_or("");
        line.trim_end_matches('\n').trim_end_matches('\r')
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// The character offset of a lang position; columns past the end of the line clamp to it.
    pub fn offset_of(&self, text: &str, pos: Pos) -> u32 {
        if pos.line == 0 {
            return 0;
        }
        let line = (pos.line - 1) as usize;
        let Some(&(start, _)) = self.starts.get(line) else {
            return self.chars;
        };
        let width = self.line(text, line).chars().count() as u32;
        start + pos.col.saturating_sub(1).min(width)
    }

    /// The byte offset of a character offset.
    pub fn byte(&self, text: &str, offset: u32) -> usize {
        let line = self.line_of(offset.min(self.chars));
        let (start, byte) = self.starts[line];
        let rest = &text[byte..];
        rest.char_indices()
            .nth((offset - start) as usize)
            .map_or(text.len(), |(b, _)| byte + b)
    }

    /// The LSP position (UTF-16 columns) of a character offset.
    pub fn position(&self, text: &str, offset: u32) -> Position {
        let offset = offset.min(self.chars);
        let line = self.line_of(offset);
        let (start, _) = self.starts[line];
        let character = self
            .line(text, line)
            .chars()
            .take((offset - start) as usize)
            .map(char::len_utf16)
            .sum::<usize>();
        Position::new(line as u32, character as u32)
    }

    /// The character offset of an LSP position; past the end of its line, the end of the line.
    pub fn offset(&self, text: &str, position: Position) -> u32 {
        let line = position.line as usize;
        let Some(&(start, _)) = self.starts.get(line) else {
            return self.chars;
        };
        let mut units = 0usize;
        let mut chars = 0u32;
        for c in self.line(text, line).chars() {
            if units >= position.character as usize {
                break;
            }
            units += c.len_utf16();
            chars += 1;
        }
        start + chars
    }

    pub fn range(&self, text: &str, start: u32, end: u32) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }

    /// The LSP range of a lang span.
    pub fn span_range(&self, text: &str, span: Span) -> Range {
        self.range(
            text,
            self.offset_of(text, span.start),
            self.offset_of(text, span.end),
        )
    }

    /// The character offsets of a lang span.
    pub fn span_offsets(&self, text: &str, span: Span) -> (u32, u32) {
        (
            self.offset_of(text, span.start),
            self.offset_of(text, span.end),
        )
    }
}

/// Applies one `didChange` edit: a range in UTF-16 positions replaced by `new_text`, or the
/// whole text when there is no range.
pub fn apply_change(text: &mut String, range: Option<Range>, new_text: &str) {
    let Some(range) = range else {
        *text = new_text.to_string();
        return;
    };
    let lines = LineIndex::new(text);
    let start = lines.byte(text, lines.offset(text, range.start));
    let end = lines.byte(text, lines.offset(text, range.end)).max(start);
    text.replace_range(start..end, new_text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_count_surrogate_pairs_twice() {
        let text = "a: é😀x\nb\r\nc";
        let lines = LineIndex::new(text);
        // `x` is the 6th character of line 0: a, :, space, é, 😀 (two UTF-16 units), x.
        assert_eq!(lines.position(text, 5), Position::new(0, 6));
        assert_eq!(lines.offset(text, Position::new(0, 6)), 5);
        // The middle of a surrogate pair rounds up to the next character.
        assert_eq!(lines.offset(text, Position::new(0, 5)), 5);
        assert_eq!(lines.position(text, 7), Position::new(1, 0));
        assert_eq!(lines.line(text, 1), "b");
        // Past the end of a line clamps to the line's end, before `\r\n`.
        assert_eq!(lines.offset(text, Position::new(1, 9)), 8);
        assert_eq!(lines.position(text, lines.len()), Position::new(2, 1));
    }

    #[test]
    fn lang_positions_are_characters() {
        let text = "é😀: x\ny: z\n";
        let lines = LineIndex::new(text);
        let x = Pos {
            line: 1,
            col: 5,
            offset: 0,
        };
        assert_eq!(lines.offset_of(text, x), 4);
        assert_eq!(lines.position(text, 4), Position::new(0, 5));
        assert_eq!(lines.byte(text, 4), "é😀: ".len());
    }

    #[test]
    fn edits_apply_at_utf16_positions() {
        let mut text = String::from("k: 😀ab\nnext\n");
        apply_change(
            &mut text,
            Some(Range::new(Position::new(0, 5), Position::new(0, 6))),
            "XY",
        );
        assert_eq!(text, "k: 😀XYb\nnext\n");
        apply_change(&mut text, None, "new");
        assert_eq!(text, "new");
    }
}
