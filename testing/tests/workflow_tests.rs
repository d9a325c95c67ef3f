//! WorkflowTests: the runtime's reconcile pass against an in-memory cluster, case by case.

use koreo_lang::Workspace;
use koreo_lang::model::Definition;
use koreo_testing::{CaseStatus, TestReport, run_workflow_test};

fn example(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Runs the one WorkflowTest among these documents.
fn run(documents: &[String]) -> TestReport {
    let ws = Workspace::load_str("test.koreo", documents.join("\n---\n"));
    let errors: Vec<_> = ws.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let test = ws
        .definitions
        .iter()
        .find_map(|d| match d {
            Definition::WorkflowTest(t) => Some(t.clone()),
            _ => None,
        })
        .expect("a WorkflowTest");
    run_workflow_test(&ws, &test)
}

fn failure(report: &TestReport, label: &str) -> String {
    let case = report
        .cases
        .iter()
        .find(|c| c.label.contains(label))
        .unwrap_or_else(|| panic!("no case `{label}` in {:?}", report.cases));
    match &case.status {
        CaseStatus::Failed { message, .. } => message.clone(),
        other => panic!("`{label}` did not fail: {other:?}"),
    }
}

#[test]
fn the_hello_example_converges_case_by_case() {
    let report = run(&[
        example("hello/crd.yaml"),
        example("hello/hello.koreo"),
        example("hello/workflow-tests.koreo"),
    ]);
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.cases.len(), 7, "six cases and the settling check");
}

/// The start of a workflow `fight`, triggered by a Fighter: its steps follow.
const FIGHTER: &str = "apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: fight, namespace: default}
spec:
  crdRef: {apiGroup: example.dev, version: v1, kind: Fighter}
  steps:
";

const TEST: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: WorkflowTest
metadata: {name: loop-test, namespace: default}
spec:
  workflowRef: {name: fight}
  parent:
    metadata: {name: p}
    spec: {}
  testCases:
  - label: first pass
  - label: second pass
    expectNoWrites: true
"#;

#[test]
fn an_update_loop_fails_naming_the_object_that_keeps_changing() {
    // Two functions manage the same ConfigMap and disagree about one field.
    let workflow = FIGHTER.to_string()
        + r#"  - label: blue
    ref: {kind: ResourceFunction, name: paint-blue}
    inputs: {}
  - label: red
    ref: {kind: ResourceFunction, name: paint-red}
    inputs: {}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: paint-blue, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: paint, namespace: default}
  resource: {data: {color: blue}}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: paint-red, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: paint, namespace: default}
  resource: {data: {color: red}}
"#;
    let report = run(&[workflow.to_string(), TEST.to_string()]);
    let message = failure(&report, "second pass");
    assert!(message.contains("expected no writes"), "{message}");
    assert!(
        message.contains("patch ConfigMap:default:paint"),
        "names the object: {message}"
    );
    assert!(
        message.contains("ConfigMap:default:paint was written but is as it was before"),
        "says what keeps changing: {message}"
    );
    assert!(!report.passed());
}

#[test]
fn a_workflow_that_never_settles_fails_the_settling_check() {
    // The ConfigMap records the parent's generation of koreo's status, which every pass changes.
    let workflow = FIGHTER.to_string()
        + r#"  - label: count
    ref: {kind: ResourceFunction, name: count}
    inputs: {seen: '=has(parent.state.seen) ? parent.state.seen : 0'}
    state: {seen: =value.seen}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: count, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: counter, namespace: default}
  resource: {data: {seen: =string(inputs.seen + 1)}}
  return: {seen: =inputs.seen + 1}
"#;
    let test = TEST.replace("  - label: second pass\n    expectNoWrites: true\n", "");
    let report = run(&[workflow.to_string(), test]);
    let message = failure(&report, "[settles]");
    assert!(message.contains("keeps writing"), "{message}");
    assert!(
        message.contains("data.seen") || message.contains("status.state.seen"),
        "names the field that keeps changing: {message}"
    );
}

#[test]
fn a_missing_dependency_is_reported_before_anything_runs() {
    let workflow = FIGHTER.to_string()
        + r#"  - label: app
    ref: {kind: ValueFunction, name: echo}
    inputs: {host: =steps.database.host}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: echo, namespace: default}
spec:
  return: {host: =inputs.host}
"#;
    let ws = Workspace::load_str("test.koreo", format!("{workflow}\n---\n{TEST}"));
    let Some(Definition::WorkflowTest(test)) = ws
        .definitions
        .iter()
        .find(|d| matches!(d, Definition::WorkflowTest(_)))
    else {
        panic!("a WorkflowTest")
    };
    let report = run_workflow_test(&ws, test);
    let error = report.error.expect("the test cannot run");
    assert!(error.contains("Workflow `fight` is not valid"), "{error}");
    assert!(
        error.contains("database"),
        "names the missing step: {error}"
    );
    assert!(error.contains("test.koreo:"), "says where: {error}");
}

#[test]
fn failed_expectations_show_their_differences() {
    let test = r#"
apiVersion: koreo.dev/v1beta1
kind: WorkflowTest
metadata: {name: wrong, namespace: default}
spec:
  workflowRef: {name: hello}
  parent:
    metadata: {name: ada}
    spec: {name: Ada, language: fr}
  testCases:
  - label: wrong greeting
    expectResources:
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: ada-greeting}
      data: {greeting: Hello}
  - label: never reached
    expectOutcome: Ok
"#;
    let report = run(&[
        example("hello/crd.yaml"),
        example("hello/hello.koreo"),
        test.to_string(),
    ]);
    let CaseStatus::Failed { differences, .. } = &report.cases[0].status else {
        panic!("{:?}", report.cases[0]);
    };
    assert_eq!(differences.len(), 1);
    assert_eq!(
        differences[0].dotted_path(),
        "ConfigMap:default:ada-greeting.data.greeting"
    );
    assert!(
        matches!(&report.cases[1].status, CaseStatus::Skipped { reason } if reason.contains("wrong greeting")),
        "{:?}",
        report.cases[1]
    );
}

#[test]
fn cluster_scoped_objects_are_expected_without_a_namespace() {
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/cluster-scoped.koreo",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let report = run(std::slice::from_ref(&fixture));
    assert!(report.passed(), "{report:#?}");
    // Expecting the parent Namespace gone: the failure names it as Kubernetes does.
    let gone = "  - label: must be gone\n    expectMissing:\n    - {apiVersion: v1, kind: Namespace, name: team-a}\n";
    let failed = failure(&run(&[fixture + gone]), "must be gone");
    assert_eq!(failed, "Namespace:team-a exists, but should not");
}

#[test]
fn subsets_match_list_items_in_any_order_and_a_workflow_that_cannot_run_says_why() {
    let workflow = FIGHTER.to_string()
        + r#"  - label: ports
    ref: {kind: ResourceFunction, name: ports}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: ports, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: Service, name: web, namespace: default}
  resource:
    spec:
      ports: [{name: http, port: 80}, {name: https, port: 443}]
"#;
    let test = r#"
apiVersion: koreo.dev/v1beta1
kind: WorkflowTest
metadata: {name: ports, namespace: default}
spec:
  workflowRef: {name: fight}
  parent: {metadata: {name: p}}
  testCases:
  - label: https first
    expectResources:
    - apiVersion: v1
      kind: Service
      metadata: {name: web}
      spec:
        ports: [{port: 443}, {name: http}]
"#;
    let report = run(&[workflow.to_string(), test.to_string()]);
    assert!(report.passed(), "{report:#?}");

    // A second workflow on the same kind: neither runs, and the test says so.
    let twin = workflow
        .split("---")
        .next()
        .unwrap()
        .replace("name: fight,", "name: twin,");
    let expecting = test.replace(
        "  - label: https first\n",
        "  - label: https first\n    expectOutcome: Ok\n",
    );
    let report = run(&[workflow.to_string(), twin, expecting]);
    let message = failure(&report, "https first");
    assert!(
        message.contains("the workflow did not run: workflows fight, twin are all triggered"),
        "{message}"
    );
}

#[test]
fn a_parent_that_lost_its_finalizer_gets_it_back_and_the_pass_goes_on() {
    // What it manages is listed, but the finalizer is gone (removed by hand, say).
    let test = r#"
apiVersion: koreo.dev/v1beta1
kind: WorkflowTest
metadata: {name: refinalize, namespace: default}
spec:
  workflowRef: {name: hello}
  parent:
    metadata:
      name: ada
      annotations:
        koreo.dev/managed-resources: '{"workflow":"hello","resources":{"config":{"apiVersion":"v1","kind":"ConfigMap","name":"ada-greeting","namespace":"default"}}}'
    spec: {name: Ada, language: en}
  testCases:
  - label: one pass
    expectResources:
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: ada-greeting}
      data: {greeting: 'Hello, Ada!'}
"#;
    let report = run(&[
        example("hello/crd.yaml"),
        example("hello/hello.koreo"),
        test.to_string(),
    ]);
    assert!(report.passed(), "{report:#?}");
}
