//! Runs FunctionTests: each case is one reconcile of the function, against a simulated object
//! that carries forward from case to case the way the cluster would hold it.

use std::sync::Arc;

use koreo_lang::compare::LAST_APPLIED_ANNOTATION;
use koreo_lang::cost::Budget;
use koreo_lang::eval::{self, Action, Outcome};
use koreo_lang::expr::Scope;
use koreo_lang::load::NamespaceView;
use koreo_lang::model::{
    Definition, Expectation, ExpectedOutcome, FunctionKind, FunctionTest, ResourceFunction,
    TestCase, ValueFunction,
};
use koreo_lang::source::Location;
use koreo_lang::{Workspace, analysis};
use koreo_testkube::fields;
use serde_json::{Map, Value as Json, json};

use koreo_lang::compare::{Difference, differences};

#[derive(Clone, Debug, PartialEq)]
pub enum CaseStatus {
    Passed,
    Failed {
        message: String,
        differences: Vec<Difference>,
    },
    Skipped {
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub label: String,
    pub status: CaseStatus,
    /// The expectation, where a failure points.
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct TestReport {
    pub name: String,
    pub function: String,
    pub location: Location,
    pub cases: Vec<CaseResult>,
    /// Why the test could not run at all.
    pub error: Option<String>,
    /// Inputs the function reads that the test never gives, and the like.
    pub warnings: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self
                .cases
                .iter()
                .all(|c| !matches!(c.status, CaseStatus::Failed { .. }))
    }
}

enum Function<'w> {
    Resource(&'w Arc<ResourceFunction>),
    Value(&'w Arc<ValueFunction>),
}

/// What the function did to the simulated cluster.
enum Write {
    Created(Json),
    Patched(Json),
    Deleted,
}

struct Run {
    outcome: Outcome,
    write: Option<Write>,
}

/// Runs every case of one FunctionTest.
pub fn run_function_test(ws: &Workspace, test: &FunctionTest) -> TestReport {
    let namespace = test.meta.namespace.as_deref();
    let kind = match test.function_kind {
        FunctionKind::ResourceFunction => "ResourceFunction",
        FunctionKind::ValueFunction => "ValueFunction",
    };
    let mut report = TestReport {
        name: test.meta.name.clone(),
        function: format!("{kind}:{}", test.function_name),
        location: test.meta.name_location.clone(),
        cases: Vec::new(),
        error: None,
        warnings: Vec::new(),
    };
    let function = match test.function_kind {
        FunctionKind::ResourceFunction => ws
            .resource_function(&test.function_name, namespace)
            .map(Function::Resource),
        FunctionKind::ValueFunction => ws
            .value_function(&test.function_name, namespace)
            .map(Function::Value),
    };
    let Some(function) = function else {
        report.error = Some(format!(
            "{kind} `{}` is not loaded or has errors (see the diagnostics above); the test cannot run",
            test.function_name
        ));
        return report;
    };
    report.warnings = missing_inputs(ws, test, kind);
    let view = NamespaceView {
        workspace: ws,
        namespace,
    };
    let mut inputs = test.inputs.clone().unwrap_or_else(|| json!({}));
    let mut resource = test.current_resource.clone();
    let mut blocked_by: Option<String> = None;
    for case in &test.test_cases {
        let mut result = CaseResult {
            label: case.label.clone(),
            status: CaseStatus::Passed,
            location: case.expectation_location.clone(),
        };
        if let Some(failed) = &blocked_by {
            result.status = CaseStatus::Skipped {
                reason: format!("not run: case '{failed}' failed and its state carries forward"),
            };
            report.cases.push(result);
            continue;
        }
        if case.skip {
            result.status = CaseStatus::Skipped {
                reason: "skip: true".into(),
            };
            report.cases.push(result);
            continue;
        }
        let case_inputs = match &case.input_overrides {
            Some(overrides) => deep_merge(&inputs, overrides),
            None => inputs.clone(),
        };
        let case_resource = match case_resource(case, &case_inputs, resource.as_ref()) {
            Ok(r) => r,
            Err(message) => {
                result.status = CaseStatus::Failed {
                    message,
                    differences: Vec::new(),
                };
                if !case.variant {
                    blocked_by = Some(case.label.clone());
                }
                report.cases.push(result);
                continue;
            }
        };
        // A case is one reconcile: the controller's limits apply to it as a whole.
        let run = Budget::for_reconcile().pay_for(|| match &function {
            Function::Resource(f) => run_resource(f, &case_inputs, case_resource.as_ref(), &view),
            Function::Value(f) => Run {
                outcome: eval::run_value_function(f, &case_inputs, case_resource.as_ref()),
                write: None,
            },
        });
        result.status = check(&case.expectation, &run);
        if !case.variant {
            inputs = case_inputs;
            resource = match run.write {
                Some(Write::Created(body) | Write::Patched(body)) => Some(body),
                Some(Write::Deleted) => None,
                None => case_resource,
            };
            if matches!(result.status, CaseStatus::Failed { .. }) {
                blocked_by = Some(case.label.clone());
            }
        }
        report.cases.push(result);
    }
    report
}

/// The object in the simulated cluster for this case.
fn case_resource(
    case: &TestCase,
    inputs: &Json,
    carried: Option<&Json>,
) -> Result<Option<Json>, String> {
    if let Some(overlay) = &case.overlay_resource {
        let Some(carried) = carried else {
            return Err("cannot apply `overlayResource`: there is no resource yet. Set `currentResource`, or put a case that creates it first".into());
        };
        let mut next = carried.clone();
        let scope = Scope::new()
            .with("inputs", inputs)
            .with("resource", carried);
        overlay
            .overlay_onto(&mut next, &scope)
            .map_err(|e| e.to_string())?;
        return Ok(Some(next));
    }
    Ok(case.current_resource.clone().or_else(|| carried.cloned()))
}

fn run_resource(
    f: &ResourceFunction,
    inputs: &Json,
    live: Option<&Json>,
    view: &NamespaceView,
) -> Run {
    let plain = |outcome| Run {
        outcome,
        write: None,
    };
    let prepared = match eval::prepare_resource(f, inputs, view) {
        Ok(p) => p,
        Err(outcome) => return plain(outcome),
    };
    match eval::decide(f, inputs, &prepared, live) {
        Err(outcome) | Ok(Action::Wait(outcome)) => plain(outcome),
        Ok(Action::Finish(object)) => plain(eval::finish_resource(f, inputs, &prepared, &object)),
        Ok(Action::Create { body, then, .. }) => Run {
            outcome: then,
            write: Some(Write::Created(body)),
        },
        Ok(Action::Patch {
            body, lists, then, ..
        }) => {
            let mut current = live.cloned().unwrap_or_else(|| json!({}));
            // The lists koreo replaces whole before applying (see `Action::Patch`).
            for (pointer, list) in lists {
                if let Some(slot) = current.pointer_mut(&pointer) {
                    *slot = list;
                }
            }
            Run {
                outcome: then,
                write: Some(Write::Patched(apply(&current, &body))),
            }
        }
        Ok(Action::Delete { then }) => Run {
            outcome: then,
            write: Some(Write::Deleted),
        },
    }
}

/// What the API server holds after koreo applies `body` to `live`: koreo's fields are replaced,
/// fields koreo applied before but no longer sets are removed, and fields others set are kept.
/// Koreo's previous apply is read from its last-applied annotation (a test's object has no
/// `managedFields`); the merge is testkube's.
pub fn apply(live: &Json, body: &Json) -> Json {
    let previous = live["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .and_then(|s| serde_json::from_str::<Json>(s).ok())
        .unwrap_or(Json::Null);
    let (applied, previous) = (fields::leaves(body), fields::leaves(&previous));
    let mut object = fields::apply(live, body, &applied, &previous, |_| false);
    // The server keeps an object's identity, but a test's carried object may stand at another
    // name than the one this case's inputs give: the body says which object it is.
    for path in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata", "name"],
        &["metadata", "namespace"],
    ] {
        let path: Vec<String> = path.iter().map(|k| k.to_string()).collect();
        if let Some(value) = fields::get(body, &path) {
            fields::set(&mut object, &path, value.clone());
        }
    }
    object
}

/// Input overrides merge into the carried inputs: nested mappings key by key.
fn deep_merge(base: &Json, overrides: &Json) -> Json {
    match (base, overrides) {
        (Json::Object(b), Json::Object(o)) => {
            let mut out: Map<String, Json> = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Json::Object(out)
        }
        _ => overrides.clone(),
    }
}

fn without_last_applied(object: &Json) -> Json {
    let mut object = object.clone();
    if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty()
            && let Some(metadata) = object["metadata"].as_object_mut()
        {
            metadata.remove("annotations");
        }
    }
    object
}

fn failed(message: impl Into<String>) -> CaseStatus {
    CaseStatus::Failed {
        message: message.into(),
        differences: Vec::new(),
    }
}

fn compared(message: &str, expected: &Json, actual: &Json) -> CaseStatus {
    let differences = differences(expected, actual);
    if differences.is_empty() {
        CaseStatus::Passed
    } else {
        CaseStatus::Failed {
            message: message.to_string(),
            differences,
        }
    }
}

fn check(expectation: &Expectation, run: &Run) -> CaseStatus {
    let outcome = &run.outcome;
    match expectation {
        Expectation::Resource(expected) => {
            let written = match &run.write {
                Some(Write::Created(body) | Write::Patched(body)) => body,
                Some(Write::Deleted) => {
                    return failed(format!(
                        "expected a create or patch, but the function deleted the resource ({outcome})"
                    ));
                }
                None => {
                    return failed(format!(
                        "expected a create or patch, but no change was attempted: {}",
                        outcome.message().map_or_else(
                            || format!("the function returned {outcome}"),
                            str::to_string
                        )
                    ));
                }
            };
            if !matches!(outcome, Outcome::Retry { .. }) {
                return failed(format!("expected Retry after the write, got {outcome}"));
            }
            compared(
                "the resource written differs from `expectResource`",
                expected,
                &without_last_applied(written),
            )
        }
        Expectation::Delete(expected) => {
            let deleted = matches!(run.write, Some(Write::Deleted));
            match (deleted, *expected) {
                (true, true) | (false, false) => CaseStatus::Passed,
                (false, true) => failed(format!(
                    "expected a delete, but none was attempted ({outcome})"
                )),
                (true, false) => failed(format!(
                    "expected no delete, but the function deleted the resource ({outcome})"
                )),
            }
        }
        Expectation::Return(expected) => match outcome {
            Outcome::Ok(value) => compared(
                "the return value differs from `expectReturn`",
                expected,
                value,
            ),
            other => failed(format!("expected Ok with a return value, got {other}")),
        },
        Expectation::Outcome(expected) => check_outcome(expected, outcome),
    }
}

fn contains(actual: &str, expected: &str) -> bool {
    actual.to_lowercase().contains(&expected.to_lowercase())
}

fn check_outcome(expected: &ExpectedOutcome, actual: &Outcome) -> CaseStatus {
    let ok = match (expected, actual) {
        (ExpectedOutcome::Ok, Outcome::Ok(_)) => true,
        (ExpectedOutcome::Skip { message }, Outcome::Skip { message: m, .. })
        | (ExpectedOutcome::DepSkip { message }, Outcome::DepSkip { message: m, .. })
        | (ExpectedOutcome::PermFail { message }, Outcome::PermFail { message: m, .. }) => {
            contains(m, message)
        }
        (
            ExpectedOutcome::Retry { message, delay },
            Outcome::Retry {
                message: m,
                delay: d,
                ..
            },
        ) => contains(m, message) && (*delay == 0 || delay == d),
        _ => false,
    };
    if ok {
        return CaseStatus::Passed;
    }
    let want = match expected {
        ExpectedOutcome::Ok => "Ok".to_string(),
        ExpectedOutcome::Retry { message, delay } => {
            let delay = if *delay == 0 {
                "any".to_string()
            } else {
                delay.to_string()
            };
            format!("Retry(delay={delay}, message containing {message:?})")
        }
        ExpectedOutcome::Skip { message } => format!("Skip(message containing {message:?})"),
        ExpectedOutcome::DepSkip { message } => format!("DepSkip(message containing {message:?})"),
        ExpectedOutcome::PermFail { message } => {
            format!("PermFail(message containing {message:?})")
        }
    };
    failed(format!("expected {want}, got {actual}"))
}

/// Inputs the function reads that neither the test's inputs nor any case's overrides give.
fn missing_inputs(ws: &Workspace, test: &FunctionTest, kind: &'static str) -> Vec<String> {
    let Some(function) = ws.find(kind, &test.function_name, test.meta.namespace.as_deref()) else {
        return Vec::new();
    };
    let mut given: Vec<String> = test
        .inputs
        .as_ref()
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for case in &test.test_cases {
        if let Some(m) = case.input_overrides.as_ref().and_then(Json::as_object) {
            given.extend(m.keys().cloned());
        }
    }
    analysis::expected_inputs(function)
        .into_iter()
        .filter(|name| !given.contains(name))
        .map(|name| format!("the function reads `inputs.{name}`, which the test never gives"))
        .collect()
}

/// Runs the FunctionTests and WorkflowTests whose name contains `filter` (all when `None`), in
/// parallel.
pub fn run_all(ws: &Workspace, filter: Option<&str>) -> Vec<TestReport> {
    let tests: Vec<&Definition> = ws
        .definitions
        .iter()
        .filter(|d| matches!(d, Definition::FunctionTest(_) | Definition::WorkflowTest(_)))
        .filter(|d| filter.is_none_or(|f| d.meta().name.contains(f)))
        .collect();
    let mut reports = koreo_lang::parallel::map(&tests, |d| match d {
        Definition::WorkflowTest(t) => crate::workflow_test::run_workflow_test(ws, t),
        Definition::FunctionTest(t) => run_function_test(ws, t),
        _ => unreachable!("only tests were selected"),
    });
    // A test that did not validate is in every report, as an error with its reasons.
    let invalid = ws.rejected.iter().filter(|r| {
        matches!(r.kind.as_str(), "FunctionTest" | "WorkflowTest")
            && filter.is_none_or(|f| r.name.contains(f))
    });
    reports.extend(invalid.map(|r| {
        let inside = |d: &&koreo_lang::source::Diagnostic| {
            d.is_error()
                && d.location.path() == r.location.path()
                && (r.location.span.start.offset..=r.location.span.end.offset)
                    .contains(&d.location.span.start.offset)
        };
        let reasons: Vec<String> = ws
            .diagnostics
            .iter()
            .filter(inside)
            .map(|d| d.to_string())
            .collect();
        TestReport {
            name: r.name.clone(),
            function: String::new(),
            location: r.location.clone(),
            cases: Vec::new(),
            error: Some(format!(
                "the {} does not validate: {}",
                r.kind,
                reasons.join("; ")
            )),
            warnings: Vec::new(),
        }
    }));
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_removes_what_koreo_stopped_setting_and_keeps_the_rest() {
        let previous = json!({"spec": {"a": 1, "gone": 2}});
        let live = json!({
            "metadata": {"annotations": {LAST_APPLIED_ANNOTATION: previous.to_string()}},
            "spec": {"a": 1, "gone": 2, "defaulted": 3},
            "status": {"ready": true}
        });
        let body = json!({"spec": {"a": 5}});
        let result = apply(&live, &body);
        assert_eq!(result["spec"], json!({"a": 5, "defaulted": 3}));
        assert_eq!(result["status"], json!({"ready": true}));
        // A map koreo stopped setting keeps the keys others set in it.
        let previous = json!({"data": {"mine": "1"}});
        let live = json!({
            "metadata": {"annotations": {LAST_APPLIED_ANNOTATION: previous.to_string()}},
            "data": {"mine": "1", "theirs": "2"}
        });
        let result = apply(&live, &json!({"metadata": {"annotations": {}}}));
        assert_eq!(result["data"], json!({"theirs": "2"}));
    }

    #[test]
    fn overrides_merge_deeply() {
        let merged = deep_merge(
            &json!({"a": {"x": 1, "y": 2}, "b": 1}),
            &json!({"a": {"y": 3}}),
        );
        assert_eq!(merged, json!({"a": {"x": 1, "y": 3}, "b": 1}));
    }
}
