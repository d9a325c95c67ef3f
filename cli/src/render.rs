//! Diagnostics as compiler-style reports with the source lines they point at (miette).

use std::fmt;

use koreo_lang::source::{Diagnostic, Severity};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    NamedSource, SourceCode, SourceSpan, SpanContents,
};

/// The file, with columns counted in characters: miette counts bytes, so its `file:line:col`
/// would be off on a line with non-ASCII text before the error.
struct CharColumns(NamedSource<String>);

impl SourceCode for CharColumns {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let contents = self.0.read_span(span, before, after)?;
        if before != 0 || after != 0 {
            return Ok(contents);
        }
        let text = self.0.inner();
        let at = span.offset().min(text.len());
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..at].chars().count();
        Ok(Box::new(MietteSpanContents::new_named(
            self.0.name().to_string(),
            contents.data(),
            *contents.span(),
            contents.line(),
            column,
            contents.line_count(),
        )))
    }
}

/// A diagnostic in the shape miette renders.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: CharColumns,
    at: usize,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Hint => miette::Severity::Advice,
        })
    }

    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code.id()))
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = self.diagnostic.severity.to_string();
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some(label),
            self.at,
            1,
        ))))
    }
}

/// The byte offset of a 1-based line and character column.
fn byte_offset(text: &str, line: u32, col: u32) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    let within: usize = rest
        .chars()
        .take_while(|c| *c != '\n')
        .take(col.saturating_sub(1) as usize)
        .map(char::len_utf8)
        .sum();
    let offset = line_start + within;
    if offset < text.len() {
        offset
    } else {
        // Past the end (an error at the end of the file): the last character, whose first byte
        // is not always the text's last.
        text.char_indices().next_back().map_or(0, |(i, _)| i)
    }
}

/// Lines longer than this are quoted around the error instead of drawn.
const LONGEST_LINE_DRAWN: usize = 1000;
/// How much of such a line is quoted.
const EXCERPT: usize = 80;

/// The report for one diagnostic, with the file path, the line and a caret.
pub fn render(diagnostic: &Diagnostic, color: bool) -> String {
    let file = &diagnostic.location.file;
    let start = diagnostic.location.span.start;
    if file.text.is_empty() {
        return format!("{diagnostic}\n");
    }
    // miette cannot draw a column past 65,535 (it panics), and a line that long is no picture
    // anyway: such a line is quoted around the error only.
    let near = |n: u32| file.line_text(n).map_or(0, |l| l.chars().count());
    let error_line = start.line;
    if (error_line.saturating_sub(1)..=error_line + 1).any(|n| near(n) > LONGEST_LINE_DRAWN) {
        let line = file.line_text(error_line).unwrap_or_default();
        let col = start.col.saturating_sub(1) as usize;
        let from = col.saturating_sub(EXCERPT / 2);
        let excerpt: String = line.chars().skip(from).take(EXCERPT).collect();
        return format!(
            "{diagnostic}\n  line {error_line} is {} characters long; around column {}:\n  {}{excerpt}{}\n",
            line.chars().count(),
            start.col,
            if from > 0 { "..." } else { "" },
            if from + EXCERPT < line.chars().count() {
                "..."
            } else {
                ""
            },
        );
    }
    let report = Report {
        diagnostic,
        source: CharColumns(NamedSource::new(
            file.path.display().to_string(),
            file.text.clone(),
        )),
        at: byte_offset(&file.text, start.line, start.col),
    };
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    match GraphicalReportHandler::new_themed(theme)
        .with_context_lines(1)
        .render_report(&mut out, &report)
    {
        Ok(()) => out + "\n",
        Err(_) => format!("{diagnostic}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_counts_characters_not_bytes() {
        use koreo_lang::codes::Code;
        use koreo_lang::source::{Location, Pos, SourceFile, Span};
        let file = SourceFile::new("f.koreo", "a: 'é😀' +* 1\n");
        let at = Pos {
            line: 1,
            col: 11,
            offset: 10,
        };
        let d = Diagnostic::error(
            Code::InvalidValue,
            Location::new(&file, Span::point(at)),
            "here",
        );
        let out = render(&d, false);
        assert!(out.contains("f.koreo:1:11]"), "{out}");
    }

    #[test]
    fn a_very_long_line_is_quoted_around_the_error_not_drawn() {
        use koreo_lang::codes::Code;
        use koreo_lang::source::{Location, Pos, SourceFile, Span};
        let line = format!("x: '{}' +* 1", "a".repeat(70_000));
        let file = SourceFile::new("f.koreo", format!("a: 1\n{line}\n"));
        let col = line.find("+*").unwrap() as u32 + 1;
        let at = Pos {
            line: 2,
            col,
            offset: 5 + col - 1,
        };
        let d = Diagnostic::error(
            Code::InvalidValue,
            Location::new(&file, Span::point(at)),
            "here",
        );
        let out = render(&d, false);
        assert!(out.contains("f.koreo:2:"), "{out}");
        assert!(out.contains("+* 1") && out.len() < 400, "{out}");
    }

    /// Found by the `render` fuzz target: a position inside a multi-byte character.
    #[test]
    fn every_diagnostic_of_a_fuzzed_file_renders() {
        let text = include_str!("../tests/fixtures/fuzz/render-inside-a-character.koreo");
        let ws = koreo_lang::Workspace::load_str("fuzz.koreo", text);
        let checked = koreo_lang::analysis::check(&ws);
        for d in ws.diagnostics.iter().chain(&checked) {
            assert!(render(d, false).contains(&d.message));
        }
    }

    #[test]
    fn offsets_count_characters_on_the_line() {
        let text = "a: 1\nné: =x\n";
        assert_eq!(byte_offset(text, 1, 1), 0);
        assert_eq!(
            byte_offset("a: é", 1, 9),
            3,
            "past the end: the last character"
        );
        assert_eq!(byte_offset(text, 2, 1), 5);
        assert_eq!(&text[byte_offset(text, 2, 5)..], "=x\n");
    }
}
