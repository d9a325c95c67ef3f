//! The `koreo` binary as users and CI run it: output, formats and exit codes.

use std::process::{Command, Output};

fn koreo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the koreo binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn test_reports_failures_with_their_differences_and_exits_1() {
    let out = koreo(&["test", "tests/fixtures/failing"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL double-test"), "{text}");
    assert!(
        text.contains("tests.koreo:26:7: the return value differs from `expectReturn`"),
        "{text}"
    );
    assert!(text.contains("value: expected 5, found 4"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colours with NO_COLOR or without a terminal"
    );
    assert_eq!(text.lines().last(), Some("2 passed, 2 failed, 0 skipped"));
}

#[test]
fn filter_selects_tests() {
    let out = koreo(&["test", "tests/fixtures/failing", "--filter", "other"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).lines().last(),
        Some("1 passed, 0 failed, 0 skipped")
    );
}

#[test]
fn json_and_junit_reports() {
    let out = koreo(&["test", "tests/fixtures/failing", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        report["summary"],
        serde_json::json!({"passed": 2, "failed": 2, "skipped": 0})
    );
    let case = &report["tests"][0]["cases"][1];
    assert_eq!(case["status"], "failed");
    assert_eq!(
        case["differences"][0],
        serde_json::json!({"path": "value", "expected": 5, "actual": 4})
    );
    assert_eq!(case["location"]["line"], 26);

    let out = koreo(&["test", "tests/fixtures/failing", "--format", "junit"]);
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<testsuites name=\"koreo\" tests=\"4\" failures=\"2\" skipped=\"0\">"),
        "{xml}"
    );
    assert!(
        xml.contains("message=\"expected Skip(message containing &quot;nope&quot;)"),
        "{xml}"
    );
}

#[test]
fn unloadable_files_exit_2() {
    let dir = std::env::temp_dir().join(format!("koreo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.koreo"), "a: [1, 2\n").unwrap();
    let out = koreo(&["test", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid YAML"), "{err}");
    assert!(err.contains("bad.koreo:1:9]"), "the end of the file: {err}");
}

#[test]
fn check_points_at_the_problem_and_suggests_a_fix() {
    let out = koreo(&["check", "tests/fixtures/broken"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    // A compiler-style report: the message, the file position, the line and the fix.
    assert!(err.contains("× unknown key `retrun` in `spec`"), "{err}");
    assert!(
        err.contains("[tests/fixtures/broken/bad.koreo:6:3]"),
        "{err}"
    );
    assert!(err.contains(" 6 │   retrun:"), "{err}");
    assert!(err.contains("help: did you mean `return`?"), "{err}");

    let out = koreo(&["check", "tests/fixtures/broken", "--format", "json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON diagnostics");
    assert_eq!(all[0]["line"], 6);
    assert_eq!(all[0]["severity"], "error");
}

#[test]
fn conformance_corpus_passes_through_the_cli() {
    let out = koreo(&["test", "../../shared/conformance"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).lines().last(),
        Some("70 passed, 0 failed, 2 skipped")
    );
}

#[test]
fn eval_prints_json() {
    let out = koreo(&[
        "eval",
        "=inputs.name.lower() + '-' + string(inputs.n * 2)",
        "--inputs",
        "{\"inputs\": {\"name\": \"Web\", \"n\": 3}}",
    ]);
    assert_eq!(stdout(&out).trim(), "\"web-6\"");
    let out = koreo(&["eval", "=1 +"]);
    assert_eq!(out.status.code(), Some(2));
}
