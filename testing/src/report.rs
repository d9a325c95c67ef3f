//! Test reports: text for people, JSON for tools, JUnit XML for CI systems.

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use crate::runner::{CaseStatus, TestReport};

/// Counts of cases. A test that could not run at all counts as one failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Tests that could not run (invalid, or what they test is).
    pub errors: usize,
}

pub fn summarize(reports: &[TestReport]) -> Summary {
    let mut s = Summary::default();
    for report in reports {
        if report.error.is_some() {
            s.errors += 1;
        }
        for case in &report.cases {
            match case.status {
                CaseStatus::Passed => s.passed += 1,
                CaseStatus::Failed { .. } => s.failed += 1,
                CaseStatus::Skipped { .. } => s.skipped += 1,
            }
        }
    }
    s
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )?;
        match self.errors {
            0 => Ok(()),
            1 => write!(f, ", 1 test could not run"),
            n => write!(f, ", {n} tests could not run"),
        }
    }
}

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
}

/// The human report: a line per test, details for failures, the summary last.
pub fn text(reports: &[TestReport], color: bool) -> String {
    let style = Style { color };
    let mut out = String::new();
    for report in reports {
        let verdict = if report.passed() {
            style.green("PASS")
        } else {
            style.red("FAIL")
        };
        let _ = writeln!(
            out,
            "{verdict} {} {}",
            report.name,
            style.dim(&format!("({})", report.function))
        );
        if let Some(error) = &report.error {
            let _ = writeln!(
                out,
                "     {} {}: {error}",
                style.red("error"),
                report.location
            );
        }
        for warning in &report.warnings {
            let _ = writeln!(
                out,
                "     {} {}: {warning}",
                style.yellow("warning"),
                report.location
            );
        }
        for case in &report.cases {
            match &case.status {
                CaseStatus::Passed => {
                    let _ = writeln!(out, "  {} {}", style.green("✓"), case.label);
                }
                CaseStatus::Skipped { reason } => {
                    let _ = writeln!(
                        out,
                        "  {} {} {}",
                        style.yellow("-"),
                        case.label,
                        style.dim(&format!("(skipped: {reason})"))
                    );
                }
                CaseStatus::Failed {
                    message,
                    differences,
                } => {
                    let _ = writeln!(out, "  {} {}", style.red("✗"), case.label);
                    // One problem per line, under the case's location.
                    let mut lines = message.lines();
                    let first = lines.next().unwrap_or("");
                    let _ = writeln!(out, "      {}: {first}", case.location);
                    for line in lines {
                        let _ = writeln!(out, "      {line}");
                    }
                    for d in differences {
                        let _ = writeln!(out, "        {d}");
                    }
                }
            }
        }
    }
    let _ = writeln!(out, "{}", summarize(reports));
    out
}

/// The machine report.
pub fn json(reports: &[TestReport]) -> Json {
    let summary = summarize(reports);
    let tests: Vec<Json> = reports
        .iter()
        .map(|r| {
            let cases: Vec<Json> = r
                .cases
                .iter()
                .map(|c| {
                    let location = json!({
                        "file": c.location.path().display().to_string(),
                        "line": c.location.span.start.line,
                        "column": c.location.span.start.col,
                    });
                    match &c.status {
                        CaseStatus::Passed => json!({"label": c.label, "status": "passed", "location": location}),
                        CaseStatus::Skipped { reason } => {
                            json!({"label": c.label, "status": "skipped", "reason": reason, "location": location})
                        }
                        CaseStatus::Failed { message, differences } => json!({
                            "label": c.label,
                            "status": "failed",
                            "message": message,
                            "differences": differences.iter().map(|d| json!({
                                "path": d.dotted_path(), "expected": d.expected, "actual": d.actual,
                            })).collect::<Vec<_>>(),
                            "location": location,
                        }),
                    }
                })
                .collect();
            json!({
                "name": r.name,
                "function": r.function,
                "file": r.location.path().display().to_string(),
                "line": r.location.span.start.line,
                "passed": r.passed(),
                "error": r.error,
                "warnings": r.warnings,
                "cases": cases,
            })
        })
        .collect();
    json!({
        "summary": {"passed": summary.passed, "failed": summary.failed, "skipped": summary.skipped,
            "errors": summary.errors},
        "tests": tests,
    })
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot hold most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a `testsuite` per FunctionTest, a `testcase` per case.
pub fn junit(reports: &[TestReport]) -> String {
    let total = summarize(reports);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"koreo\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        total.passed + total.failed + total.skipped + total.errors,
        total.failed,
        total.errors,
        total.skipped
    );
    for r in reports {
        let s = summarize(std::slice::from_ref(r));
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" file=\"{}\">",
            xml_escape(&r.name),
            s.passed + s.failed + s.skipped + s.errors,
            s.failed,
            s.errors,
            s.skipped,
            xml_escape(&r.location.path().display().to_string())
        );
        if let Some(error) = &r.error {
            let _ = writeln!(
                out,
                "    <testcase name=\"(load)\" classname=\"{}\"><error message=\"{}\"/></testcase>",
                xml_escape(&r.name),
                xml_escape(error)
            );
        }
        for c in &r.cases {
            let open = format!(
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\"",
                xml_escape(&c.label),
                xml_escape(&r.name),
                xml_escape(&c.location.path().display().to_string()),
                c.location.span.start.line
            );
            match &c.status {
                CaseStatus::Passed => {
                    let _ = writeln!(out, "{open}/>");
                }
                CaseStatus::Skipped { reason } => {
                    let _ = writeln!(
                        out,
                        "{open}><skipped message=\"{}\"/></testcase>",
                        xml_escape(reason)
                    );
                }
                CaseStatus::Failed {
                    message,
                    differences,
                } => {
                    let details: Vec<String> =
                        differences.iter().map(ToString::to_string).collect();
                    let _ = writeln!(
                        out,
                        "{open}><failure message=\"{}\">{}</failure></testcase>",
                        xml_escape(message),
                        xml_escape(&format!(
                            "{}: {message}\n{}",
                            c.location,
                            details.join("\n")
                        ))
                    );
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}
