//! The language server through its JSON-RPC interface, one feature at a time.

mod support;

use serde_json::{Value, json};
use support::{Client, Workspace, find, range};

const FUNCTIONS: &str = "\
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: greet, namespace: default}
spec:
  locals:
    prefix: =\"Hello, \"
  return:
    text: =locals.prefix + inputs.name
    size: =size(inputs.name)
";

const WORKFLOW: &str = "\
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: hello, namespace: default}
spec:
  crdRef: {apiGroup: example.dev, version: v1, kind: Greeting}
  steps:
  - label: config
    ref: {kind: ValueFunction, name: greet}
    inputs:
      name: =parent.spec.name
  - label: second
    ref: {kind: ValueFunction, name: greet}
    inputs:
      name: =steps.config.text
    state:
      text: =value.text
";

const TESTS: &str = "\
apiVersion: koreo.dev/v1beta1
kind: FunctionTest
metadata: {name: greet-test, namespace: default}
spec:
  functionRef: {kind: ValueFunction, name: greet}
  inputs: {name: Ada}
  testCases:
  - label: greets
    expectReturn: {text: \"Hello, Ada\", size: 3}
  - label: wrong on purpose
    variant: true
    expectReturn: {text: Bye, size: 3}
";

fn workspace() -> Workspace {
    Workspace::new(&[
        ("functions.koreo", FUNCTIONS),
        ("workflow.koreo", WORKFLOW),
        ("tests.k.yaml", TESTS),
    ])
}

fn messages(diagnostics: &[Value]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| d["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn with_message<'a>(diagnostics: &'a [Value], text: &str) -> &'a Value {
    diagnostics
        .iter()
        .find(|d| d["message"].as_str().unwrap_or_default().contains(text))
        .unwrap_or_else(|| {
            panic!(
                "a diagnostic saying `{text}` in {:#?}",
                messages(diagnostics)
            )
        })
}

fn hover_text(hover: &Value) -> String {
    hover["contents"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Start-up

#[tokio::test]
async fn initialize_advertises_every_feature() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let caps = client.capabilities.clone();
    for capability in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "documentSymbolProvider",
        "completionProvider",
        "semanticTokensProvider",
        "codeLensProvider",
        "inlayHintProvider",
        "executeCommandProvider",
    ] {
        assert!(!caps[capability].is_null(), "{capability} in {caps:#}");
    }
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(
        caps["executeCommandProvider"]["commands"][0],
        "koreo.runTest"
    );
    // A second initialize is refused: the first one took.
    let (_, again) = client
        .try_request("initialize", json!({"capabilities": {}}))
        .await;
    assert!(again.is_err());
}

#[tokio::test]
async fn the_workspace_is_loaded_at_start_with_its_test_results() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let tests = client.diagnostics_of(&ws.uri("tests.k.yaml")).await;
    assert_eq!(tests.len(), 1, "{:#?}", messages(&tests));
    let failed = with_message(&tests, "test case `[variant] wrong on purpose` failed");
    // On the failing case's expectation key.
    let (line, column) = find(TESTS, "expectReturn: {text: Bye", 0);
    assert_eq!(
        range(&failed["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 12]
    );
    assert_eq!(failed["severity"], 1);
    assert!(
        messages(&tests)[0].contains("text: expected \"Bye\""),
        "{tests:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

const BROKEN: &str = "\
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: bad-expr, namespace: default}
spec:
  return:
    x: =inputs.a +* 2
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: unknown-key, namespace: default}
spec:
  retrun: {x: 1}
---
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: flow, namespace: default}
spec:
  steps:
  - label: first
    ref: {kind: ValueFunction, name: missing-fn}
  - label: second
    ref: {kind: ValueFunction, name: greet}
    inputs:
      name: =steps.third.text
      extra: 1
  - label: third
    ref: {kind: ValueFunction, name: greet}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: greet, namespace: default}
spec:
  return: {a: =inputs.name}
";

#[tokio::test]
async fn diagnostics_cover_what_check_finds() {
    let ws = Workspace::new(&[
        ("functions.koreo", FUNCTIONS),
        ("broken.koreo", BROKEN),
        ("bad-yaml.k", "a: [1, 2\nb: 3\n"),
        // Not Koreo: a Helm template is never flagged, even though it is not YAML.
        ("chart/templates/x.yaml", "a: {{ .Values.x }}\n"),
    ]);
    let mut client = Client::start(ws.dir.path()).await;
    let broken = client.diagnostics_of(&ws.uri("broken.koreo")).await;
    let yaml = client.diagnostics_of(&ws.uri("bad-yaml.k")).await;
    assert!(messages(&yaml)[0].starts_with("invalid YAML"), "{yaml:#?}");
    // Expression syntax: on the unexpected token.
    let syntax = with_message(&broken, "invalid expression `=inputs.a +* 2`");
    let (line, column) = find(BROKEN, "* 2", 0);
    assert_eq!(
        range(&syntax["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 1]
    );
    // Schema: the unknown key itself.
    let unknown = with_message(&broken, "retrun");
    let (line, column) = find(BROKEN, "retrun", 0);
    assert_eq!(
        range(&unknown["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 6]
    );
    // Unknown reference, on the name.
    let missing = with_message(&broken, "ValueFunction `missing-fn` not found");
    let (line, column) = find(BROKEN, "missing-fn}", 0);
    assert_eq!(
        range(&missing["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 10]
    );
    // Step order: on `steps.third`.
    let order = with_message(&broken, "reads `steps.third`, which is listed after it");
    let (line, column) = find(BROKEN, "steps.third", 0);
    assert_eq!(
        range(&order["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 11]
    );
    // Inputs: missing and unexpected, on the step's label.
    with_message(&broken, "step `third` does not give input `name`");
    let extra = with_message(&broken, "step `second` gives input `extra`");
    assert_eq!(extra["severity"], 2, "a warning");
    // Duplicates, in the file loaded second.
    let functions = client.diagnostics_of(&ws.uri("functions.koreo")).await;
    with_message(&functions, "ValueFunction `greet` is defined twice");
    // Hints come with the message.
    assert!(
        missing["message"].as_str().unwrap().contains("\nhint: "),
        "{missing:#}"
    );
    let published = client.drain();
    assert!(
        !published.iter().any(|m| m["params"]["uri"]
            .as_str()
            .unwrap_or_default()
            .contains("chart")),
        "{published:#?}"
    );
}

#[tokio::test]
async fn diagnostic_columns_are_utf16_after_non_ascii_text() {
    let text = "\
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: é😀, namespace: default}
spec:
  return:
    é😀: \"=\\\"é😀\\\" + inputs.a +* 2\"
";
    let ws = Workspace::new(&[]);
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("unicode.koreo");
    client.open(&uri, text).await;
    let found = client.diagnostics_of(&uri).await;
    let syntax = with_message(&found, "invalid expression");
    // `*` is after `    é😀: "=\"é😀\" + inputs.a +`: é is one UTF-16 unit, 😀 two.
    let (line, column) = find(text, "* 2", 0);
    assert_eq!(
        column,
        29 + 2,
        "29 characters before `*`, and 😀 counts twice"
    );
    assert_eq!(
        range(&syntax["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 1]
    );

    // A variable read the scope does not have, after non-ASCII text, in a folded string.
    let text = "\
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: w, namespace: default}
spec:
  steps:
  - label: first
    ref: {kind: ValueFunction, name: f}
    state:
      x: =\"é😀\" +
        resource.name
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: f, namespace: default}
spec:
  return: {a: 1}
";
    client.change(&uri, 2, text).await;
    let found = client.diagnostics_of(&uri).await;
    let scope = with_message(&found, "`resource` is not defined in `spec.steps[0].state`");
    let (line, column) = find(text, "resource.name", 0);
    assert_eq!(
        range(&scope["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 13]
    );
    // Hover knows the same places: `resource` there, and that the state cannot read it.
    let hover = client
        .at("textDocument/hover", &uri, line, column + 2)
        .await;
    assert_eq!(
        range(&hover["range"]),
        [line as u64, column as u64, line as u64, column as u64 + 8]
    );
    assert!(hover_text(&hover).contains("Not readable here; here: `value`"));
}

// ---------------------------------------------------------------------------------------------
// Editing

#[tokio::test]
async fn incremental_edits_update_diagnostics() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("functions.koreo");
    client.open(&uri, FUNCTIONS).await;
    // `size: =size(inputs.name)` -> `size: =size(inputs.name) +* 1`: a syntax error.
    let (line, column) = find(FUNCTIONS, "size(inputs.name)", 17);
    client
        .edit(&uri, 2, [line, column, line, column], " +* 1")
        .await;
    let found = client.diagnostics_of(&uri).await;
    let syntax = with_message(&found, "invalid expression `=size(inputs.name) +* 1`");
    assert_eq!(
        range(&syntax["range"]),
        [
            line as u64,
            column as u64 + 2,
            line as u64,
            column as u64 + 3
        ]
    );
    // Undo it: the file is clean again.
    client
        .edit(&uri, 3, [line, column, line, column + 5], "")
        .await;
    assert_eq!(client.diagnostics_of(&uri).await, Vec::<Value>::new());
}

#[tokio::test]
async fn editing_a_function_reruns_the_tests_of_other_files() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let tests = ws.uri("tests.k.yaml");
    assert_eq!(client.diagnostics_of(&tests).await.len(), 1);
    let functions = ws.uri("functions.koreo");
    client.open(&functions, FUNCTIONS).await;
    client
        .change(&functions, 2, &FUNCTIONS.replace("Hello, ", "Hi, "))
        .await;
    let found = client.diagnostics_of(&tests).await;
    // The variant after a failing case is not run: it would start from a state that is wrong.
    assert_eq!(found.len(), 1, "{:#?}", messages(&found));
    with_message(&found, "test case `greets` failed");
    // The workflow's diagnostics did not change, so they were not sent again.
    assert!(!client.diagnostics.contains_key(&ws.uri("workflow.koreo")));
    client.change(&functions, 3, FUNCTIONS).await;
    assert_eq!(client.diagnostics_of(&tests).await.len(), 1);
}

#[tokio::test]
async fn closing_a_file_goes_back_to_what_is_on_disk() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let tests = ws.uri("tests.k.yaml");
    assert_eq!(client.diagnostics_of(&tests).await.len(), 1);
    let passing = &TESTS[..TESTS.find("  - label: wrong").unwrap()];
    client.open(&tests, passing).await;
    assert_eq!(client.diagnostics_of(&tests).await, Vec::<Value>::new());
    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": tests}}),
        )
        .await;
    assert_eq!(client.diagnostics_of(&tests).await.len(), 1);
    // A file that exists only in the editor is forgotten when closed.
    let scratch = ws.uri("scratch.koreo");
    client.open(&scratch, "kind: [\n").await;
    assert_eq!(client.diagnostics_of(&scratch).await.len(), 1);
    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": scratch}}),
        )
        .await;
    assert_eq!(client.diagnostics_of(&scratch).await, Vec::<Value>::new());
}

#[tokio::test]
async fn half_typed_documents_never_break_a_request() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("workflow.koreo");
    client.open(&uri, "").await;
    let mut version = 1;
    let unicode = WORKFLOW.replace("=parent.spec.name", "\"=\\\"é😀\\\" + parent.spec.name\"");
    let typed: String = [WORKFLOW, "---\n", TESTS, "---\n", &unicode].concat();
    let chars: Vec<char> = typed.chars().collect();
    // Every prefix of the files, as if typed, with requests everywhere in them.
    for end in (0..=chars.len()).step_by(5) {
        version += 1;
        let text: String = chars[..end].iter().collect();
        client.change(&uri, version, &text).await;
        let lines = text.lines().count() as u32;
        for line in [0, lines / 2, lines.saturating_sub(1), lines] {
            for character in [0, 4, 8, 200] {
                for method in [
                    "textDocument/hover",
                    "textDocument/completion",
                    "textDocument/definition",
                    "textDocument/references",
                ] {
                    let params = support::position_params(method, &uri, line, character);
                    let (_, result) = client.try_request(method, params).await;
                    assert!(result.is_ok(), "{method} on {text:?}: {result:?}");
                }
            }
        }
        for method in [
            "textDocument/documentSymbol",
            "textDocument/semanticTokens/full",
            "textDocument/codeLens",
            "textDocument/inlayHint",
        ] {
            client.on_document(method, &uri).await;
        }
        // The server catches a panic and logs it as an error: there must be none.
        let logged: Vec<Value> = client
            .drain()
            .into_iter()
            .filter(|m| m["method"] == "window/logMessage" && m["params"]["type"] == 1)
            .collect();
        assert!(logged.is_empty(), "{logged:#?} on {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hover

#[tokio::test]
async fn hover_on_a_function_reference_shows_its_inputs_and_return() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("workflow.koreo");
    let (line, column) = find(WORKFLOW, "name: greet", 7);
    let hover = client.at("textDocument/hover", &uri, line, column).await;
    let text = hover_text(&hover);
    assert!(text.contains("**ValueFunction** `greet`"), "{text}");
    assert!(text.contains("Reads inputs: `name`"), "{text}");
    assert!(
        text.contains(
            "Returns:\n```yaml\ntext: =locals.prefix + inputs.name\nsize: =size(inputs.name)\n```"
        ),
        "{text}"
    );
    assert_eq!(
        range(&hover["range"]),
        [
            line as u64,
            column as u64 - 1,
            line as u64,
            column as u64 + 4
        ]
    );
}

#[tokio::test]
async fn hover_on_a_step_shows_what_it_runs_and_its_inputs() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("workflow.koreo");
    let (line, column) = find(WORKFLOW, "label: second", 8);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(
        text.contains("**step** `second` runs ValueFunction `greet`"),
        "{text}"
    );
    assert!(text.contains("Inputs given: `name`"), "{text}");
    assert!(
        text.contains("ValueFunction `greet` reads: `name`"),
        "{text}"
    );
    assert!(text.contains("Runs after: `config`"), "{text}");
    // `steps.config` in an expression is the step too.
    let (line, column) = find(WORKFLOW, "steps.config", 8);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.contains("**step** `config`"), "{text}");
    assert!(text.contains("Runs after: none"), "{text}");
}

#[tokio::test]
async fn hover_on_an_expression_function_shows_its_signature_and_docs() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("functions.koreo");
    let (line, column) = find(FUNCTIONS, "size(inputs", 1);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.starts_with("```\nsize(x) -> int\n```"), "{text}");
    let text = FUNCTIONS.replace("=size(inputs.name)", "=inputs.name.split_first('-')");
    client.open(&uri, &text).await;
    let (line, column) = find(&text, "split_first", 3);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(
        text.contains("split_first(s: string, sep: string) -> string"),
        "{text}"
    );
    assert!(text.contains("Koreo function"), "{text}");
}

#[tokio::test]
async fn hover_on_a_test_shows_its_results_per_case() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("tests.k.yaml");
    let (line, column) = find(TESTS, "greet-test", 2);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.contains("- `greets`: ✓ passed"), "{text}");
    assert!(
        text.contains("- `[variant] wrong on purpose`: ✗ failed: "),
        "{text}"
    );
    let (line, column) = find(TESTS, "wrong on purpose", 2);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(
        text.starts_with("**test case** `[variant] wrong on purpose`: ✗ failed"),
        "{text}"
    );
}

#[tokio::test]
async fn hover_on_a_key_shows_its_schema_description() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("workflow.koreo");
    let (line, column) = find(WORKFLOW, "crdRef", 2);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.starts_with("**crdRef**: object"), "{text}");
    assert!(text.contains("triggers this Workflow"), "{text}");
    let (line, column) = find(WORKFLOW, "label: config", 1);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.contains("**label**: string, required"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Navigation

async fn definition(client: &mut Client, uri: &str, at: (u32, u32)) -> Vec<(String, [u64; 4])> {
    let found = client.at("textDocument/definition", uri, at.0, at.1).await;
    locations(&found)
}

fn locations(found: &Value) -> Vec<(String, [u64; 4])> {
    found
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let uri = l["uri"].as_str().unwrap_or_default();
            let file = uri.rsplit('/').next().unwrap_or_default().to_string();
            (file, range(&l["range"]))
        })
        .collect()
}

fn at(text: &str, needle: &str, skip: u32, len: u64) -> [u64; 4] {
    let (line, column) = find(text, needle, skip);
    [line as u64, column as u64, line as u64, column as u64 + len]
}

#[tokio::test]
async fn go_to_definition_follows_references_steps_locals_and_inputs() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let workflow = ws.uri("workflow.koreo");
    let functions = ws.uri("functions.koreo");
    let tests = ws.uri("tests.k.yaml");
    let greet = ("functions.koreo".to_string(), at(FUNCTIONS, "greet", 0, 5));
    assert_eq!(
        definition(&mut client, &workflow, find(WORKFLOW, "name: greet", 8)).await,
        std::slice::from_ref(&greet)
    );
    assert_eq!(
        definition(
            &mut client,
            &tests,
            find(TESTS, "ValueFunction, name: greet", 23)
        )
        .await,
        std::slice::from_ref(&greet)
    );
    assert_eq!(
        definition(&mut client, &workflow, find(WORKFLOW, "steps.config", 7)).await,
        [("workflow.koreo".to_string(), at(WORKFLOW, "config", 0, 6))]
    );
    assert_eq!(
        definition(&mut client, &functions, find(FUNCTIONS, "locals.prefix", 8)).await,
        [(
            "functions.koreo".to_string(),
            at(FUNCTIONS, "prefix:", 0, 6)
        )]
    );
    // `inputs.name` goes to where it is given: the test, and both steps (in load order).
    let (line, column) = find(FUNCTIONS, "inputs.name", 8);
    let given = definition(&mut client, &functions, (line, column)).await;
    let steps: Vec<_> = WORKFLOW
        .match_indices("      name: =")
        .map(|(i, _)| {
            let line = WORKFLOW[..i].matches('\n').count() as u64;
            ("workflow.koreo".to_string(), [line, 6, line, 10])
        })
        .collect();
    assert_eq!(
        given,
        [
            ("tests.k.yaml".to_string(), at(TESTS, "name: Ada", 0, 4)),
            steps[0].clone(),
            steps[1].clone(),
        ]
    );
}

#[tokio::test]
async fn find_references_of_functions_steps_and_locals() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let functions = ws.uri("functions.koreo");
    let (line, column) = find(FUNCTIONS, "greet", 1);
    let found = locations(
        &client
            .at("textDocument/references", &functions, line, column)
            .await,
    );
    let mut files: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    files.sort();
    assert_eq!(
        files,
        [
            "functions.koreo",
            "tests.k.yaml",
            "workflow.koreo",
            "workflow.koreo"
        ]
    );
    let workflow = ws.uri("workflow.koreo");
    let (line, column) = find(WORKFLOW, "label: config", 8);
    let found = locations(
        &client
            .at("textDocument/references", &workflow, line, column)
            .await,
    );
    assert_eq!(
        found,
        [
            ("workflow.koreo".to_string(), at(WORKFLOW, "config", 0, 6)),
            (
                "workflow.koreo".to_string(),
                at(WORKFLOW, "steps.config", 6, 6)
            ),
        ]
    );
    let (line, column) = find(FUNCTIONS, "prefix:", 0);
    let found = locations(
        &client
            .at("textDocument/references", &functions, line, column)
            .await,
    );
    assert_eq!(found.len(), 2, "the key and `locals.prefix`: {found:?}");
}

#[tokio::test]
async fn document_symbols_outline_every_file() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let symbols = client
        .on_document("textDocument/documentSymbol", &ws.uri("workflow.koreo"))
        .await;
    assert_eq!(symbols[0]["name"], "hello");
    assert_eq!(symbols[0]["detail"], "Workflow");
    let children: Vec<&str> = symbols[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["config", "second"]);
    assert_eq!(
        range(&symbols[0]["children"][0]["selectionRange"]),
        at(WORKFLOW, "config", 0, 6)
    );
    let symbols = client
        .on_document("textDocument/documentSymbol", &ws.uri("tests.k.yaml"))
        .await;
    assert_eq!(symbols[0]["children"][1]["name"], "wrong on purpose");
    let symbols = client
        .on_document("textDocument/documentSymbol", &ws.uri("functions.koreo"))
        .await;
    assert_eq!(symbols[0]["children"][0]["name"], "prefix");
}

// ---------------------------------------------------------------------------------------------
// Completion

fn labels(found: &Value) -> Vec<String> {
    found
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| i["label"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Completion labels after changing the document to `text` (version `version`), with the
/// cursor `skip` characters into the first `needle`.
async fn complete_after(
    client: &mut Client,
    uri: &str,
    version: i32,
    text: &str,
    (needle, skip): (&str, u32),
) -> Vec<String> {
    let (line, column) = find(text, needle, skip);
    client.change(uri, version, text).await;
    labels(
        &client
            .at("textDocument/completion", uri, line, column)
            .await,
    )
}

/// Completion labels at the end of `text` (the cursor after its last character).
async fn complete_at_end(client: &mut Client, uri: &str, text: &str) -> Vec<String> {
    client.change(uri, 2, text).await;
    let line = text.matches('\n').count() as u32;
    let column = text
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .encode_utf16()
        .count() as u32;
    labels(
        &client
            .at("textDocument/completion", uri, line, column)
            .await,
    )
}

#[tokio::test]
async fn completion_offers_the_keys_of_each_kind() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("new.koreo");
    client.open(&uri, "").await;
    let found = complete_at_end(&mut client, &uri, "").await;
    assert_eq!(found, ["apiVersion", "kind", "metadata", "spec"]);
    let head = "apiVersion: koreo.dev/v1beta1\nkind: Workflow\nmetadata: {name: w}\n";
    let found = complete_at_end(&mut client, &uri, &format!("{head}spec:\n  ")).await;
    assert_eq!(found, ["crdRef", "steps"]);
    // A step: its keys, less those already written; mid-word, before any `:`.
    let found = complete_at_end(
        &mut client,
        &uri,
        &format!("{head}spec:\n  steps:\n  - label: one\n    inpu"),
    )
    .await;
    assert!(found.contains(&"inputs".to_string()), "{found:?}");
    assert!(found.contains(&"refSwitch".to_string()), "{found:?}");
    assert!(!found.contains(&"label".to_string()), "{found:?}");
    let found = complete_at_end(&mut client, &uri, "kind: ").await;
    assert!(found.contains(&"WorkflowTest".to_string()), "{found:?}");
}

#[tokio::test]
async fn completion_offers_names_in_references() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("new.koreo");
    client.open(&uri, "").await;
    let head = "apiVersion: koreo.dev/v1beta1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  steps:\n  - label: one\n";
    let found = complete_at_end(
        &mut client,
        &uri,
        &format!("{head}    ref: {{kind: ValueFunction, name: "),
    )
    .await;
    assert_eq!(found, ["greet"]);
    let found = complete_at_end(
        &mut client,
        &uri,
        &format!("{head}    ref:\n      kind: Workflow\n      name: "),
    )
    .await;
    assert_eq!(found, ["hello"]);
    let found = complete_at_end(&mut client, &uri, &format!("{head}    ref:\n      kind: ")).await;
    assert_eq!(found, ["ResourceFunction", "ValueFunction", "Workflow"]);
}

#[tokio::test]
async fn completion_offers_members_and_functions_in_expressions() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("workflow.koreo");
    client.open(&uri, WORKFLOW).await;
    // In the second step: the steps before it.
    let text = WORKFLOW.replace("=steps.config.text", "=steps.");
    let found = complete_after(&mut client, &uri, 2, &text, ("=steps.", 7)).await;
    assert_eq!(
        found.iter().filter(|l| *l == "config").count(),
        1,
        "{found:?}"
    );
    assert!(!found.contains(&"second".to_string()), "{found:?}");
    // Variables in scope and functions.
    let text = WORKFLOW.replace("=steps.config.text", "=");
    let found = complete_after(&mut client, &uri, 3, &text, ("name: =\n", 7)).await;
    assert!(
        found.starts_with(&["parent".to_string(), "steps".to_string()]),
        "{found:?}"
    );
    assert!(found.contains(&"to_ref".to_string()), "{found:?}");
    assert!(found.contains(&"size".to_string()), "{found:?}");
    // A step's state: `value.` is what its function returns.
    let text = WORKFLOW.replace("=value.text", "=value.");
    let found = complete_after(&mut client, &uri, 4, &text, ("=value.", 7)).await;
    assert!(
        found.starts_with(&["size".to_string(), "text".to_string()]),
        "{found:?}"
    );
    // `steps.<label>.`: what that step's function returns.
    let text = WORKFLOW.replace("=steps.config.text", "=steps.config.");
    let found = complete_after(&mut client, &uri, 5, &text, ("=steps.config.", 14)).await;
    assert!(
        found.starts_with(&["size".to_string(), "text".to_string()]),
        "{found:?}"
    );

    // In a function: `inputs.` from what it reads and what callers give, `locals.` its locals.
    let uri = ws.uri("functions.koreo");
    client.open(&uri, FUNCTIONS).await;
    let text = FUNCTIONS.replace("=size(inputs.name)", "=size(inputs.)");
    let found = complete_after(&mut client, &uri, 2, &text, ("inputs.)", 7)).await;
    assert_eq!(found[0], "name", "{found:?}");
    let text = FUNCTIONS.replace("=locals.prefix", "=locals.p");
    let found = complete_after(&mut client, &uri, 3, &text, ("locals.p", 8)).await;
    assert_eq!(found[0], "prefix", "{found:?}");
}

#[tokio::test]
async fn completion_of_resource_members_follows_the_target() {
    let text = "\
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: cm, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: =inputs.name, namespace: default}
  resource:
    data:
      greeting: hello
  return:
    value: =resource.data.
";
    let ws = Workspace::new(&[("cm.koreo", text)]);
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("cm.koreo");
    client.open(&uri, text).await;
    let (line, column) = find(text, "resource.data.", 14);
    let found = labels(
        &client
            .at("textDocument/completion", &uri, line, column)
            .await,
    );
    assert_eq!(found[0], "greeting", "{found:?}");
}

const DEPLOYMENT: &str = "\
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: web, namespace: default}
spec:
  apiConfig: {apiVersion: apps/v1, kind: Deployment, name: web, namespace: default}
  resource:
    spec:
      replicas: 2
  return:
    ready: =resource.status.readyReplicas
    total: =resource.spec.replicas + 1
";

#[tokio::test]
async fn completion_lists_the_fields_of_the_managed_kind_with_their_descriptions() {
    let ws = Workspace::new(&[("web.koreo", DEPLOYMENT)]);
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("web.koreo");
    client.open(&uri, DEPLOYMENT).await;
    // `resource.status.`: the Deployment's status, from the bundled schema.
    let text = DEPLOYMENT.replace("=resource.status.readyReplicas", "=resource.status.");
    let (line, column) = find(&text, "resource.status.", 16);
    client.change(&uri, 2, &text).await;
    let found = client
        .at("textDocument/completion", &uri, line, column)
        .await;
    let ready = found
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "readyReplicas")
        .unwrap_or_else(|| panic!("{found}"));
    assert_eq!(ready["detail"], "integer");
    assert!(
        ready["documentation"]["value"]
            .as_str()
            .unwrap()
            .contains("Ready Condition"),
        "{ready}"
    );
    // A key in the resource body: what a DeploymentSpec has, less what is written.
    let text = DEPLOYMENT.replace("      replicas: 2\n", "      replicas: 2\n      \n");
    client.change(&uri, 3, &text).await;
    let (line, _) = find(&text, "replicas: 2", 0);
    let found = labels(
        &client
            .at("textDocument/completion", &uri, line + 1, 6)
            .await,
    );
    assert!(found.contains(&"strategy".to_string()), "{found:?}");
    assert!(found.contains(&"selector".to_string()), "{found:?}");
    assert!(!found.contains(&"replicas".to_string()), "{found:?}");
}

#[tokio::test]
async fn hover_on_an_expression_shows_its_type() {
    let ws = Workspace::new(&[("web.koreo", DEPLOYMENT)]);
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("web.koreo");
    client.open(&uri, DEPLOYMENT).await;
    let (line, column) = find(DEPLOYMENT, "readyReplicas", 2);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.starts_with("Type: `integer`"), "{text}");
    assert!(text.contains("Ready Condition"), "{text}");
    // Where no schema says, what operators and literals make of it.
    let (line, column) = find(DEPLOYMENT, "+ 1", 0);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert_eq!(text, "Type of the expression: `dyn`");
    let (line, column) = find(DEPLOYMENT, "spec.replicas", 6);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(text.starts_with("Type: `integer`"), "{text}");
    // A key of the resource body: what the Deployment's schema says of it.
    let (line, column) = find(DEPLOYMENT, "replicas: 2", 1);
    let text = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(
        text.starts_with("**replicas**\n\nType: `integer`"),
        "{text}"
    );
    assert!(text.contains("Number of desired pods"), "{text}");
}

#[tokio::test]
async fn completion_after_an_input_lists_what_its_callers_pass() {
    let functions = "\
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: config, namespace: default}
spec:
  return: {name: web, domain: example.com}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: reader, namespace: default}
spec:
  locals: {port: 80, tls: {enabled: true}}
  return:
    host: =inputs.config.domain
    tls: =locals.tls.enabled
";
    let workflow = "\
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: app, namespace: default}
spec:
  steps:
  - label: config
    ref: {kind: ValueFunction, name: config}
  - label: read
    ref: {kind: ValueFunction, name: reader}
    inputs: {config: =steps.config}
";
    let ws = Workspace::new(&[("functions.koreo", functions), ("workflow.koreo", workflow)]);
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("functions.koreo");
    client.open(&uri, functions).await;
    let text = functions.replace("=inputs.config.domain", "=inputs.config.");
    let found = complete_after(&mut client, &uri, 2, &text, ("inputs.config.", 14)).await;
    assert!(
        found.starts_with(&["domain".to_string(), "name".to_string()]),
        "{found:?}"
    );
    let text = functions.replace("=locals.tls.enabled", "=locals.tls.");
    let found = complete_after(&mut client, &uri, 3, &text, ("locals.tls.", 11)).await;
    assert_eq!(found[0], "enabled", "{found:?}");
    client.change(&uri, 4, functions).await;
    let (line, column) = find(functions, "config.domain", 9);
    let hover = hover_text(&client.at("textDocument/hover", &uri, line, column).await);
    assert!(hover.contains("Type: `string`"), "{hover}");
}

// ---------------------------------------------------------------------------------------------
// Semantic tokens, code lens, inlay hints

#[tokio::test]
async fn semantic_tokens_colour_expressions() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let result = client
        .on_document(
            "textDocument/semanticTokens/full",
            &ws.uri("functions.koreo"),
        )
        .await;
    let data: Vec<u64> = result["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // Decode the relative positions.
    let (mut line, mut column) = (0, 0);
    let mut tokens = Vec::new();
    for chunk in data.chunks(5) {
        if chunk[0] > 0 {
            column = 0;
        }
        line += chunk[0];
        column += chunk[1];
        tokens.push((line, column, chunk[2], chunk[3], chunk[4]));
    }
    let legend: Vec<String> = client.capabilities["semanticTokensProvider"]["legend"]["tokenTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let kind_at = |needle: &str, skip: u32| {
        let (l, c) = find(FUNCTIONS, needle, skip);
        let t = tokens
            .iter()
            .find(|t| t.0 == l as u64 && t.1 == c as u64)
            .unwrap_or_else(|| panic!("a token at `{needle}`: {tokens:?}"));
        (legend[t.3 as usize].clone(), t.2, t.4)
    };
    assert_eq!(kind_at("locals.prefix", 0), ("variable".into(), 6, 0));
    assert_eq!(kind_at("prefix + inputs", 0), ("property".into(), 6, 0));
    assert_eq!(kind_at("+ inputs.name", 0), ("operator".into(), 1, 0));
    assert_eq!(
        kind_at("size(", 0),
        ("function".into(), 4, 1),
        "a library function"
    );
    assert_eq!(kind_at("\"Hello, \"", 0), ("string".into(), 9, 0));
}

#[tokio::test]
async fn code_lens_runs_a_test() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let uri = ws.uri("tests.k.yaml");
    let lenses = client.on_document("textDocument/codeLens", &uri).await;
    assert_eq!(lenses.as_array().unwrap().len(), 1);
    let command = &lenses[0]["command"];
    assert_eq!(command["title"], "▶ Run test · 1 passed, 1 failed");
    assert_eq!(command["command"], "koreo.runTest");
    assert_eq!(command["arguments"], json!([uri, "greet-test"]));
    let (line, _) = find(TESTS, "greet-test", 0);
    assert_eq!(lenses[0]["range"]["start"]["line"], line);
    let report = client
        .request(
            "workspace/executeCommand",
            json!({"command": "koreo.runTest", "arguments": command["arguments"]}),
        )
        .await;
    assert_eq!(report["summary"]["failed"], 1, "{report:#}");
    let message = client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "greet-test: 1 passed, 1 failed");
    let (_, unknown) = client
        .try_request(
            "workspace/executeCommand",
            json!({"command": "koreo.runTest", "arguments": [uri, "nope"]}),
        )
        .await;
    assert!(unknown.is_err());
}

#[tokio::test]
async fn inlay_hints_show_each_case_result() {
    let ws = workspace();
    let mut client = Client::start(ws.dir.path()).await;
    let hints = client
        .on_document("textDocument/inlayHint", &ws.uri("tests.k.yaml"))
        .await;
    let found: Vec<(u64, u64, String)> = hints
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["position"]["line"].as_u64().unwrap(),
                h["position"]["character"].as_u64().unwrap(),
                h["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let end = |needle: &str| {
        let (line, _) = find(TESTS, needle, 0);
        let width = TESTS
            .lines()
            .nth(line as usize)
            .unwrap()
            .encode_utf16()
            .count();
        (line as u64, width as u64)
    };
    assert_eq!(
        found,
        [
            (
                end("- label: greets").0,
                end("- label: greets").1,
                "✓ passed".into()
            ),
            (
                end("- label: wrong").0,
                end("- label: wrong").1,
                "✗ failed".into()
            ),
        ]
    );
    assert!(
        hints[1]["tooltip"]
            .as_str()
            .unwrap()
            .contains("expected \"Bye\""),
        "{hints:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// The examples: clean, and WorkflowTests run like FunctionTests

#[tokio::test]
async fn the_hello_example_is_clean_and_its_workflow_tests_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let root = root.canonicalize().unwrap();
    let mut client = Client::start(&root).await;
    let errors: Vec<Value> = client
        .drain()
        .into_iter()
        .flat_map(|m| {
            m["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|d| d["severity"] == 1)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let uri = support::uri(&root.join("workflow-tests.koreo"));
    let lenses = client.on_document("textDocument/codeLens", &uri).await;
    let title = lenses[0]["command"]["title"].as_str().unwrap();
    assert!(
        title.starts_with("▶ Run test · ") && title.ends_with(" passed"),
        "{title}"
    );
    let hints = client.on_document("textDocument/inlayHint", &uri).await;
    let labels: Vec<&str> = hints
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"[settles] no writes once nothing changes: ✓ passed"),
        "{labels:?}"
    );
    assert!(labels.iter().all(|l| !l.contains("failed")), "{labels:?}");
    // `workflowRef.name` goes to the Workflow.
    let text = std::fs::read_to_string(root.join("workflow-tests.koreo")).unwrap();
    let (line, column) = find(&text, "workflowRef:\n    name: hello", 0);
    let (line, column) = (line + 1, column + 11);
    let found = locations(
        &client
            .at("textDocument/definition", &uri, line, column)
            .await,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "hello.koreo");
}

#[tokio::test]
async fn a_failing_workflow_test_case_is_flagged_on_its_first_line() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let read = |name: &str| std::fs::read_to_string(example.join(name)).unwrap();
    let tests = read("workflow-tests.koreo").replacen("Bonjour, Ada!", "Hola, Ada!", 1);
    let (hello, crd) = (read("hello.koreo"), read("crd.yaml"));
    let ws = Workspace::new(&[
        ("hello.koreo", &hello),
        ("crd.yaml", &crd),
        ("workflow-tests.koreo", &tests),
    ]);
    let mut client = Client::start(ws.dir.path()).await;
    let found = client.diagnostics_of(&ws.uri("workflow-tests.koreo")).await;
    let failed = with_message(&found, "test case `the first pass creates the ConfigMap");
    let line = "  - label: the first pass creates the ConfigMap and waits for it";
    let (start, _) = find(&tests, line, 0);
    assert_eq!(
        range(&failed["range"]),
        // From the case's first key to the end of its line.
        [start as u64, 4, start as u64, line.len() as u64]
    );
}
