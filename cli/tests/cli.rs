//! The `koreo` binary as users and CI run it: output, formats and exit codes.

use std::process::{Command, Output};

#[path = "../../test-support/shared.rs"]
mod shared;

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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
        serde_json::json!({"passed": 2, "failed": 2, "skipped": 0, "errors": 0})
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
        xml.contains(
            "<testsuites name=\"koreo\" tests=\"4\" failures=\"2\" errors=\"0\" skipped=\"0\">"
        ),
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
    let Some(corpus) = shared::shared("conformance") else {
        return;
    };
    let out = koreo(&["test", corpus.to_str().unwrap()]);
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
fn the_examples_check_clean_and_their_tests_pass() {
    let check = koreo(&["check", "../examples"]);
    let report = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.contains(": 0 errors, 0 warnings"), "{report}");
    let test = koreo(&["test", "../examples"]);
    let text = stdout(&test);
    assert_eq!(test.status.code(), Some(0), "{text}");
    assert!(
        text.contains("(Workflow hello)"),
        "WorkflowTests run too: {text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with("0 failed, 0 skipped"),
        "{text}"
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

/// A GET over plain HTTP/1.1, enough to look into `koreo dev`'s server.
fn http_get(base: &str, path: &str) -> serde_json::Value {
    let host = base.trim_start_matches("http://");
    let response = http_request(host, host, path);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// The whole response to a GET sent to `address`, naming the server as `host`.
fn http_request(address: &str, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the server accepts connections");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn dev_serves_the_directory_loaded() {
    let Some(core) = shared::shared("conformance/koreo-core") else {
        return;
    };
    let (mut child, dir) = start_dev("dev", &[core.to_str().unwrap()]);
    let kubeconfig = dir.join("kubeconfig");
    let config = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
    let server = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .map(str::to_string);
    let result = std::panic::catch_unwind(|| {
        let server = server.expect("koreo dev wrote a kubeconfig with the server's address");
        let workflows = http_get(
            &server,
            "/apis/koreo.dev/v1beta1/namespaces/koreo-testing/workflows",
        );
        let names: Vec<&str> = workflows["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w["metadata"]["name"].as_str())
            .collect();
        assert!(names.contains(&"fully-built.v1"), "{names:?}");
        let parent = http_get(
            &server,
            "/apis/koreo.dev/v1beta1/namespaces/koreo-testing/triggerdummies/fully-built-trigger",
        );
        assert_eq!(parent["spec"]["values"]["int"], 89);
    });
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).ok();
    result.unwrap();
}

#[test]
fn dev_runs_the_controller_until_the_parent_is_ready() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args(["dev", "../examples/hello"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = read_lines_until(child.stdout.take().unwrap(), "condition Ready = True", 30);
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("created Greeting default/ada"), "{text}");
    assert!(
        text.contains("step config: Retry Creating ConfigMap:default:ada-greeting."),
        "{text}"
    );
    assert!(
        text.contains("condition Ready = True (Ready): Workflow hello ready."),
        "{text}"
    );
}

/// `koreo dev` with these arguments, once it has written its kubeconfig (into a fresh dir).
fn start_dev(name: &str, args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("koreo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_koreo"))
        .arg("dev")
        .args(args)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !kubeconfig.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (child, dir)
}

/// Lines a child prints, until `until` matches one or the time is up.
fn read_lines_until(
    output: impl std::io::Read + Send + 'static,
    until: &str,
    seconds: u64,
) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let stdout = output;
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = received.recv_timeout(std::time::Duration::from_millis(100)) {
            let done = line.contains(until);
            seen.push(line);
            if done {
                break;
            }
        }
    }
    seen
}

#[test]
fn run_reconciles_a_cluster_from_a_kubeconfig() {
    let out = koreo(&["run", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: cannot reach a cluster"));

    let (mut cluster, dir) = start_dev("run", &["../examples/hello", "--no-controller"]);
    let kubeconfig = dir.join("kubeconfig");
    let mut controller = Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args([
            "run",
            "-n",
            "default",
            "--log-format",
            "json",
            "--metrics-addr",
            "off",
            "--ui",
            "127.0.0.1:0",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = controller.stderr.take().unwrap();
    let seen = read_lines_until(stderr, "\"outcome\":\"Ok\"", 30);
    // The web view, asked for, serves what the controller sees.
    let ui = seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "serving the web view")
        .and_then(|l| l["addr"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no web view address logged: {seen:?}"));
    let overview = http_get(&format!("http://{ui}"), "/api/overview");
    assert_eq!(overview["workflows"][0]["name"], "hello", "{overview}");
    for child in [&mut controller, &mut cluster] {
        let _ = child.kill();
        let _ = child.wait();
    }
    std::fs::remove_dir_all(&dir).ok();
    let lines: Vec<serde_json::Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let text = seen.join("\n");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "koreo controller starting"
                && l["namespaces"] == "[\"default\"]"),
        "{text}"
    );
    // A write, with the parent, the workflow and the step it belongs to.
    let created = lines
        .iter()
        .find(|l| l["message"] == "create")
        .unwrap_or_else(|| panic!("no create logged: {text}"));
    assert_eq!(created["object"], "ConfigMap:default:ada-greeting");
    assert_eq!(created["level"], "INFO");
    let spans = created["spans"].as_array().unwrap();
    assert_eq!(spans[0]["parent"], "Greeting default/ada", "{created}");
    assert_eq!(spans[0]["workflow"], "hello", "{created}");
    assert_eq!(spans[1]["step"], "config", "{created}");
}

#[test]
fn crds_prints_and_writes_the_checked_in_crds() {
    let printed = koreo(&["crds"]);
    assert!(printed.status.success());
    let text = stdout(&printed);
    let docs = koreo_lang::yaml::parse_documents(&text).unwrap();
    let names: Vec<String> = docs
        .iter()
        .map(|d| {
            d.root.to_json()["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.contains(&"workflows.koreo.dev".to_string()));

    let dir = std::env::temp_dir().join(format!("koreo-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = koreo(&["crds", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let checked_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(checked_in.join(name)).unwrap(),
            "{name:?} differs from crds/"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn koreo_in(dir: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args(args)
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .env("NO_COLOR", "1")
        .output()
        .expect("the koreo binary runs")
}

#[test]
fn test_runs_the_current_directory_and_a_file_with_its_neighbours() {
    // No path: the current directory.
    let all = koreo_in("../examples/hello", &["test"]);
    assert_eq!(all.status.code(), Some(0), "{}", stdout(&all));
    // One test file: the definitions it tests are in the files beside it; only its tests run.
    let one = koreo_in("../examples/hello", &["test", "tests.koreo"]);
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}{}",
        stdout(&one),
        String::from_utf8_lossy(&one.stderr)
    );
    assert!(
        !stdout(&one).contains("hello-converges"),
        "{}",
        stdout(&one)
    );
    assert!(stdout(&all).contains("hello-converges"));
    assert_ne!(stdout(&one), stdout(&all));
}

#[test]
fn a_filter_that_matches_nothing_is_an_error() {
    let out = koreo(&["test", "../examples/hello", "--filter", "no-such-test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no test's name contains `no-such-test`")
    );
}

#[test]
fn a_test_that_does_not_validate_is_an_error_in_every_format() {
    let dir = "tests/fixtures/invalid-test";
    let json = koreo(&["test", dir, "--format", "json"]);
    assert_eq!(json.status.code(), Some(2));
    let text = stdout(&json);
    assert!(
        text.contains("misspelled-test") && text.contains("does not validate"),
        "{text}"
    );
    let junit = stdout(&koreo(&["test", dir, "--format", "junit"]));
    assert!(
        junit.contains("<error") && junit.contains("misspelled-test"),
        "{junit}"
    );
    let plain = stdout(&koreo(&["test", dir]));
    assert!(plain.contains("misspelled-test"), "{plain}");
}

#[test]
fn check_offers_only_the_formats_it_has() {
    let help = stdout(&koreo(&["check", "--help"]));
    assert!(help.contains("[possible values: text, json]"), "{help}");
    let junit = koreo(&["check", "../examples/hello", "--format", "junit"]);
    assert_eq!(junit.status.code(), Some(2));
}

#[test]
fn dev_refuses_a_missing_path_and_a_kubeconfig_it_did_not_write() {
    let missing = koreo(&["dev", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/dir does not exist"));

    let dir = std::env::temp_dir().join(format!("koreo-dev-mine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let theirs = dir.join("config");
    std::fs::write(&theirs, "apiVersion: v1\nkind: Config\n# someone's\n").unwrap();
    let refused = koreo(&[
        "dev",
        "../examples/hello",
        "--kubeconfig-out",
        theirs.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(err.contains("koreo dev did not write it"), "{err}");
    assert!(
        std::fs::read_to_string(&theirs)
            .unwrap()
            .contains("someone's")
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `koreo lsp`, with its input and output piped.
fn language_server() -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_koreo"))
        .arg("lsp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A message as LSP frames it.
fn framed(body: &str) -> String {
    format!("Content-Length: {}\r\n\r\n{body}", body.len())
}

/// One malformed message, or an empty one, does not end a language server session.
#[test]
fn the_language_server_survives_a_malformed_message() {
    use std::io::{Read, Write};
    let mut lsp = language_server();
    let mut input = lsp.stdin.take().unwrap();
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#,
        "{not json",
        "",
        r#"{"jsonrpc":"2.0","id":2,"method":"shutdown"}"#,
        r#"{"jsonrpc":"2.0","method":"exit"}"#,
    ] {
        input.write_all(framed(body).as_bytes()).unwrap();
        input.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(input);
    let mut out = String::new();
    lsp.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = lsp.wait();
    assert!(
        out.contains(r#""id":2"#),
        "the shutdown was answered: {out}"
    );
}

#[test]
fn rbac_per_namespace_warns_about_cluster_scoped_kinds() {
    // The decorator's parents are Namespaces: no Role can grant them.
    let per_namespace = koreo(&["rbac", "-n", "team-a", "../examples/decorator"]);
    assert!(per_namespace.status.success(), "{}", stderr(&per_namespace));
    let warning = stderr(&per_namespace);
    assert!(
        warning.contains("warning: the workflows manage or read cluster-scoped kinds (namespaces)")
            && warning.contains("--allow NAMESPACE=cluster/Kind"),
        "{warning}"
    );
    assert!(stdout(&per_namespace).contains("kind: ClusterRole"));
    let web_app = koreo(&["rbac", "-n", "team-a", "../examples/web-app"]);
    assert!(
        web_app.status.success() && stderr(&web_app).is_empty(),
        "{}",
        stderr(&web_app)
    );
}

/// Twenty cases, each with three expressions near their cost limit (about 40 million units in
/// all: seconds in a debug build), with a failing expectation.
fn slow_test() -> String {
    let mut text = String::from(
        "\
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: slow, namespace: default}
spec:
  return:
    evens: =lists.range(inputs.n).filter(x, x % 2 == 0).size()
    odds: =lists.range(inputs.n).filter(x, x % 2 == 1).size()
    thirds: =lists.range(inputs.n).filter(x, x % 3 == 0).size()
---
apiVersion: koreo.dev/v1beta1
kind: FunctionTest
metadata: {name: slow-test, namespace: default}
spec:
  functionRef: {kind: ValueFunction, name: slow}
  inputs: {n: 100000}
  testCases:
",
    );
    for i in 0..20 {
        text.push_str(&format!(
            "  - variant: true\n    label: case {i}\n    expectReturn: {{evens: 1}}\n"
        ));
    }
    text
}

/// A slow test does not hold up requests: a hover sent right after the file opens is answered
/// while the tests run (the server logs their start and end).
#[test]
fn the_language_server_answers_requests_while_tests_run() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut lsp = language_server();
    let frame = |message: serde_json::Value| framed(&message.to_string());
    let uri = "file:///nowhere/slow.koreo";
    let mut input = lsp.stdin.take().unwrap();
    let mut output = BufReader::new(lsp.stdout.take().unwrap());
    let mut next_message = || {
        let mut length = 0;
        loop {
            let mut header = String::new();
            assert_ne!(
                output.read_line(&mut header).unwrap(),
                0,
                "the server ended"
            );
            match header.trim().split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    length = value.trim().parse().unwrap();
                }
                None if header.trim().is_empty() => break,
                _ => {}
            }
        }
        let mut body = vec![0; length];
        output.read_exact(&mut body).unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    let initialize = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"capabilities": {}}});
    input.write_all(frame(initialize).as_bytes()).unwrap();
    input.flush().unwrap();
    while next_message()["id"] != 1 {}
    for message in [
        serde_json::json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        serde_json::json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params":
            {"textDocument": {"uri": uri, "languageId": "koreo", "version": 1, "text": slow_test()}}}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params":
            {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 18}}}),
    ] {
        input.write_all(frame(message).as_bytes()).unwrap();
    }
    input.flush().unwrap();
    // The server's messages in the order it sent them, until the test results are in.
    let mut order = Vec::new();
    loop {
        let message = next_message();
        if message["id"] == 2 {
            assert!(
                message["result"].to_string().contains("ValueFunction"),
                "{message}"
            );
            order.push("hover");
        }
        let log = message["params"]["message"].as_str().unwrap_or_default();
        if message["method"] == "window/logMessage" && log.contains("test(s)") {
            order.push(if log.contains("running") {
                "tests start"
            } else {
                "tests end"
            });
        }
        if message["method"] == "textDocument/publishDiagnostics"
            && message["params"].to_string().contains("case 0")
        {
            order.push("test results");
            break;
        }
    }
    drop(input);
    let _ = lsp.kill();
    let _ = lsp.wait();
    let at = |what: &str| order.iter().position(|o| *o == what);
    assert!(
        at("hover").is_some()
            && at("hover") < at("tests end")
            && at("tests start") < at("tests end"),
        "the hover waited for the tests: {order:?}"
    );
}

#[test]
fn check_types_with_the_schemas_of_a_folder() {
    let file = "tests/fixtures/schemas/widget.koreo";
    let out = koreo(&["check", file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = koreo(&["check", "--schemas", "tests/fixtures/schemas/widgets", file]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("a Widget has no field `sise` under `spec`"),
        "{text}"
    );
    assert!(text.contains("widget.koreo:10:7"), "{text}");
    assert!(text.contains("did you mean `size`?"), "{text}");
    // A bundle that is not one is an error naming the file, not silence.
    let out = koreo(&[
        "check",
        "--schemas",
        "tests/fixtures/schemas/bad-bundle",
        file,
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not a schema bundle (no `kubernetes`)"),
        "{text}"
    );
    let out = koreo(&["check", "--schemas", "tests/fixtures/schemas/nowhere", file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no schema folder here"));
}

#[test]
fn graph_draws_a_workflow_with_its_sub_workflows() {
    let crud = [
        "graph",
        "../examples/stateless-crud-app",
        "--workflow",
        "crud-app",
    ];
    let out = koreo(&crud);
    let dot = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dot.starts_with("digraph \"crud-app\" {"), "{dot}");
    // Edges are the `steps.<label>` reads; a sub-workflow's steps are drawn inside its step.
    for line in [
        "\"config\" -> \"database\";",
        "\"database\" -> \"app\";",
        "subgraph \"cluster_database\" {",
        "\"database/credentials\" -> \"database/server\";",
        "\"database\" -> \"database/credentials\" [style=dotted];",
        "for each cache in steps.config.caches",
        "switch on parent.database.flavor\\npostgres: ResourceFunction crud-postgres",
    ] {
        assert!(dot.contains(line), "{line} in\n{dot}");
    }
    let mut args = crud.to_vec();
    args.extend(["--format", "mermaid"]);
    let mermaid = stdout(&koreo(&args));
    assert!(
        mermaid.starts_with("%% Workflow crud-app\nflowchart TD\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("subgraph s1_workflow[\"Workflow crud-database\"]"),
        "{mermaid}"
    );
    assert!(mermaid.contains("s0 --> s1"), "{mermaid}");
    let web = ["graph", "../examples/web-app", "--workflow", "web-app"];
    let dot = stdout(&koreo(&web));
    assert!(
        dot.contains("style=\"rounded,dashed\""),
        "a step that may be skipped: {dot}"
    );
    let mut args = crud.to_vec();
    args.extend(["--format", "svg"]);
    let out = koreo(&args);
    let svg = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        svg.contains("<svg") && svg.contains("crud-app-config"),
        "{svg}"
    );
}

#[test]
fn graph_says_which_workflows_there_are() {
    let out = koreo(&["graph", "../examples", "--format", "svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("an SVG draws one Workflow: name one with `--workflow`"),
        "{}",
        stderr(&out)
    );
    let out = koreo(&["graph", "../examples/hello", "--workflow", "helo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no Workflow named `helo` here; there are: `hello`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_shows_each_step_its_outcome_and_objects() {
    let (mut child, dir) = start_dev("inspect", &["../examples/stateless-crud-app"]);
    let kubeconfig = dir.join("kubeconfig");
    let args = [
        "inspect",
        "crudapp",
        "orders",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    // The database never becomes ready here (no pods run): the run settles waiting for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = stdout(&koreo(&args));
        if text.contains("├─ database: Retry: Deployment orders-db has 0 of 1 ready replicas")
            && text.contains("└─ app_service: DepSkip")
            && text.contains("[1]")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let missing = koreo(&[
        "inspect",
        "Widget",
        "x",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    for line in [
        "CrudApp default/orders\n",
        "  SpecValid True: Ready: CrudApp spec ready.\n",
        "├─ config: Ok\n",
        "├─ database: Retry: Deployment orders-db has 0 of 1 ready replicas\n",
        "│    Workflow crud-database\n",
        "│    │    Secret default/orders-db-credentials (present, read only)\n",
        "│      ├─ server\n│      │    Deployment default/orders-cache-fragments (present)\n",
        "└─ app_service: DepSkip: 'app' is waiting on dependency",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no Workflow is triggered by `Widget`; these kinds are: CrudApp"),
        "{}",
        stderr(&missing)
    );
}

/// The status line of a GET to `address` that names the server as `host`.
fn http_status(address: &str, host: &str, path: &str) -> String {
    let response = http_request(address, host, path);
    response.lines().next().unwrap_or_default().to_string()
}

/// What `/api/changes` sends while `change` runs (read for up to ten seconds).
fn changes_after(base: &str, change: impl FnOnce()) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /api/changes HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 1024];
    let n = stream.read(&mut head).unwrap_or(0);
    let mut seen = String::from_utf8_lossy(&head[..n]).into_owned();
    change();
    let mut more = [0u8; 1024];
    while !seen.contains("data: ") {
        match stream.read(&mut more) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&more[..n])),
        }
    }
    seen
}

/// Headless Chromium (Debian's package) when it is here: the web view's test runs it.
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        eprintln!(
            "skipped: no chromium here (apt-get install chromium): the web view was checked over HTTP only, not in a browser"
        );
    }
    found
}

/// Chromium, headless and quiet, on a profile of its own, with these arguments.
fn in_browser(args: &[&str], profile: &std::path::Path) -> std::process::Output {
    Command::new(chromium().expect("checked"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1300,2400",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

#[test]
fn the_web_view_shows_definitions_graphs_and_instances_live() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_koreo"))
        .args(["dev", "../examples/web-app", "--ui", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = read_lines_until(child.stdout.take().unwrap(), "Web view at", 30);
    let base = seen
        .iter()
        .find_map(|l| l.strip_prefix("Web view at "))
        .map(|url| url.trim_end_matches('/').to_string());
    let Some(base) = base else {
        let _ = child.kill();
        panic!("no web view address in {seen:?}");
    };
    // The parent converges; the overview says so, step by step.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut overview = serde_json::Value::Null;
    while std::time::Instant::now() < deadline {
        overview = http_get(&base, "/api/overview");
        let outcomes = &overview["instances"][0]["outcomes"];
        if outcomes["service"]["outcome"] == "Ok" && outcomes["deployment"]["outcome"] == "Ok" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let shop = &overview["instances"][0];
    assert_eq!(
        (shop["kind"].as_str(), shop["name"].as_str()),
        (Some("WebApp"), Some("shop")),
        "{overview}"
    );
    let objects: Vec<&str> = shop["managed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert!(
        objects.contains(&"Deployment") && objects.contains(&"Service"),
        "{objects:?}"
    );
    assert!(
        overview["workflows"][0]["svg"]
            .as_str()
            .unwrap()
            .contains("webapp-deployment")
    );
    let definitions = overview["definitions"].as_array().unwrap();
    assert!(
        definitions
            .iter()
            .any(|d| d["name"] == "web-app" && d["valid"] == "True"),
        "{definitions:?}"
    );
    assert!(
        overview["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{overview}"
    );
    // A managed object's link shows its names and status, never its data nor annotations
    // (a last-applied annotation holds the whole body).
    let object = http_get(
        &base,
        "/api/object?apiVersion=v1&kind=ConfigMap&namespace=default&name=shop-config",
    );
    assert_eq!(object["metadata"]["name"], "shop-config", "{object}");
    assert!(object.get("data").is_none(), "{object}");
    assert!(object["metadata"].get("annotations").is_none(), "{object}");
    // Nothing that no parent manages; nothing for a page that is not on this machine.
    let host = base.trim_start_matches("http://");
    let unmanaged = "/api/object?apiVersion=v1&kind=Namespace&namespace=&name=default";
    assert!(http_status(host, host, unmanaged).starts_with("HTTP/1.1 404"));
    assert!(http_status(host, "rebound.example:80", "/api/overview").starts_with("HTTP/1.1 403"));

    // Live: a change the watches see is announced on /api/changes, for the page to fetch again.
    let api = seen
        .iter()
        .find_map(|l| l.strip_prefix("API server at "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the API server's address")
        .trim_start_matches("http://")
        .to_string();
    let announced = changes_after(&base, || {
        use std::io::{Read, Write};
        let body = r#"{"metadata":{"labels":{"looked-at":"yes"}}}"#;
        let mut stream = std::net::TcpStream::connect(&api).unwrap();
        write!(
            stream,
            "PATCH /apis/example.koreo.dev/v1/namespaces/default/webapps/shop HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    });
    assert!(announced.contains("data: "), "{announced}");

    if chromium().is_some() {
        let profile = std::env::temp_dir().join(format!("koreo-ui-{}", std::process::id()));
        let shots =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        let page = format!("{base}/?snapshot");
        let dom = in_browser(&["--dump-dom", &page], &profile);
        let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
        let shot = shots.join("web-app.png");
        let shot_arg = format!("--screenshot={}", shot.display());
        in_browser(&[&shot_arg, &page], &profile);
        let _ = std::fs::remove_dir_all(&profile);
        // What a person sees: the instance, its steps' outcomes, the graph, the definitions.
        for shown in [
            "data-rendered=\"yes\"",
            "WebApp default/shop",
            "<span class=\"Ok\">Ok</span>",
            "Deployment default/shop",
            "triggered by example.koreo.dev/v1 WebApp",
            "ResourceFunction webapp-deployment",
            "default/webapp-config-test",
        ] {
            assert!(dom.contains(shown), "{shown} in\n{dom}");
        }
        assert!(
            shot.exists(),
            "the screenshot is kept in target/ui-screenshots"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
