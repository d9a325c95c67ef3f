//! The analysed workspace, kept up to date one file at a time.
//!
//! An edit re-parses only the edited file. Cross-file checks re-run only for the definitions
//! that can see a difference: the edited file's, and those elsewhere that refer to a name the
//! file defined before or defines now. FunctionTests and WorkflowTests re-run when anything
//! they reach through references changed. The combined [`Workspace`] that lang's checks and the test runner read is
//! re-assembled from the parsed files, which costs a clone of each definition's `Arc`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use koreo_lang::load::{EXTENSIONS, Object};
use koreo_lang::model::Definition;
use koreo_lang::source::{Diagnostic, FileRef, Span};
use koreo_lang::{Workspace, analysis};
use koreo_testing::TestReport;

use crate::document::DocumentInfo;
use crate::text::LineIndex;

/// Extensions of files that are Koreo files whatever they hold.
const KOREO_EXTENSIONS: [&str; 4] = [".koreo", ".k", ".k.yaml", ".k.yml"];

/// Directories never searched for definitions: dependencies and build output.
const SKIPPED_DIRS: [&str; 2] = ["node_modules", "target"];

/// One file: its text, lang's reading of it, and the editor's view of its documents.
#[derive(Debug)]
pub struct FileState {
    pub file: FileRef,
    pub lines: LineIndex,
    pub definitions: Vec<Definition>,
    pub objects: Vec<Object>,
    /// What lang found in this file alone: YAML, schema, expression syntax, scopes.
    pub diagnostics: Vec<Diagnostic>,
    /// Koreo documents that did not validate, by kind and name.
    rejected: Vec<koreo_lang::load::Rejected>,
    pub docs: Vec<DocumentInfo>,
    /// The YAML did not parse: `docs` are from the last text that did (good above the edit).
    pub stale: bool,
    /// The editor's version, while the editor has the file open.
    pub version: Option<i32>,
    /// Diagnostics are shown for Koreo files and for YAML files that hold Koreo documents;
    /// other YAML (CI configs, Helm templates) is read for its objects but never flagged.
    pub publish: bool,
}

impl FileState {
    fn parse(path: &Path, text: String, previous: Option<&FileState>) -> FileState {
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let publish = is_koreo_file(path) || text.contains("koreo.dev/");
        let mut part = Workspace::keeping_documents();
        part.add_source(path, text);
        let file = part.files.remove(0);
        let chars: Vec<char> = file.text.chars().collect();
        // A file that does not parse as a whole keeps the documents of its last good version.
        let (docs, stale) = if part.failed_files.is_empty() {
            let docs = std::mem::take(&mut part.documents);
            (
                docs.into_iter()
                    .map(|d| DocumentInfo::new(d.root, &chars))
                    .collect(),
                false,
            )
        } else {
            (previous.map(|p| p.docs.clone()).unwrap_or_default(), true)
        };
        let mut state = FileState {
            lines: LineIndex::new(&file.text),
            file,
            definitions: part.definitions,
            objects: part.objects,
            diagnostics: part.diagnostics,
            rejected: part.rejected,
            docs,
            stale,
            version: None,
            publish,
        };
        if !stale {
            state.link_definitions();
        }
        state
    }

    /// Ties each document to its decoded definition (documents that did not validate have none).
    fn link_definitions(&mut self) {
        for doc in &mut self.docs {
            doc.definition = self
                .definitions
                .iter()
                .position(|d| d.meta().location.span.start == doc.root.span.start);
        }
    }

    pub fn text(&self) -> &str {
        &self.file.text
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The document holding a character offset.
    pub fn doc_at(&self, offset: u32) -> Option<&DocumentInfo> {
        self.docs.iter().find(|d| {
            let (start, end) = self.lines.span_offsets(self.text(), d.root.span);
            (start..=end).contains(&offset)
        })
    }

    /// The document of a decoded definition.
    pub fn doc_of(&self, definition: usize) -> Option<&DocumentInfo> {
        self.docs.iter().find(|d| d.definition == Some(definition))
    }
}

fn is_koreo_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    KOREO_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

fn is_yaml_or_koreo(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// What a dependency is on. References resolve by name whatever the kind asked for, because
/// lang's "not found" hint looks at the other kinds too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Name(String),
    /// A `resourceTemplateRef` whose name is an expression reads every ResourceTemplate.
    AnyTemplate,
    /// Workflows triggered by one kind (`apiVersion kind`) warn about each other.
    Trigger(String),
    /// A kind (`apiVersion kind`) whose CRD types a definition: a Workflow's parent, what a
    /// ResourceFunction manages, a ResourceTemplate.
    Schema(String),
    /// What refers to a name: a function's inputs are typed by its callers, a template by the
    /// functions that use it, a Workflow's `parent` by whether another runs it as a step.
    CalledBy(String),
}

/// A definition of the combined workspace: which file, and which of its definitions.
pub type DefId = (PathBuf, usize);

/// Everything the editor asks about.
#[derive(Debug, Default)]
pub struct Analysis {
    files: BTreeMap<PathBuf, FileState>,
    workspace: Arc<Workspace>,
    /// For each definition of `workspace`.
    ids: Vec<DefId>,
    provides: Vec<Vec<Key>>,
    uses: Vec<Vec<Key>>,
    /// Cross-file findings, by the definition they are about.
    checks: HashMap<DefId, Vec<Diagnostic>>,
    tests: HashMap<DefId, TestReport>,
    /// Tests to run again, and the changes so far: results of a run started before the last
    /// change are stale (see [`TestJob`]).
    pending_tests: BTreeSet<DefId>,
    generation: u64,
    /// Definitions defined twice (found over the whole workspace at every change: it is cheap).
    duplicates: Vec<Diagnostic>,
    /// Built-in kinds' schemas from a `kubernetes.json` under the folder (as `koreo schemas
    /// pull` writes), read when the folder is opened; else the bundled ones.
    bundle: Option<Arc<koreo_lang::openapi::Bundle>>,
}

impl Analysis {
    pub fn file(&self, path: &Path) -> Option<&FileState> {
        self.files.get(path)
    }

    pub fn files(&self) -> impl Iterator<Item = &FileState> {
        self.files.values()
    }

    /// Every definition of every file, as lang checks them.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The schemas of built-in kinds that type definitions here.
    pub fn bundle(&self) -> &koreo_lang::openapi::Bundle {
        match &self.bundle {
            Some(bundle) => bundle,
            None => koreo_lang::openapi::Bundle::builtin(),
        }
    }

    pub fn test_report(&self, path: &Path, index: usize) -> Option<&TestReport> {
        self.tests.get(&(path.to_path_buf(), index))
    }

    /// Loads every Koreo and YAML file under the roots (files the editor has open keep the
    /// editor's text). Returns the files loaded.
    pub fn load_roots(&mut self, roots: &[PathBuf]) -> Vec<PathBuf> {
        let (mut paths, mut bundles) = (Vec::new(), Vec::new());
        for root in roots {
            collect_files(root, &mut paths, &mut bundles);
        }
        bundles.sort();
        // The first that is one (a file of that name may be something else).
        self.bundle = bundles.iter().find_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            koreo_lang::openapi::Bundle::parse(&text).ok().map(Arc::new)
        });
        paths.retain(|p| self.files.get(p).is_none_or(|f| f.version.is_none()));
        let texts: Vec<(PathBuf, String)> = paths
            .into_iter()
            .filter_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
            .collect();
        let parsed =
            koreo_lang::parallel::map(&texts, |(p, t)| FileState::parse(p, t.clone(), None));
        let loaded: Vec<PathBuf> = texts.into_iter().map(|(p, _)| p).collect();
        let old = self.keys_of(&loaded);
        for (path, state) in loaded.iter().zip(parsed) {
            self.files.insert(path.clone(), state);
        }
        self.refresh(&loaded, old)
    }

    /// Sets a file's text (an editor change, or the file read from disk when `version` is
    /// `None`). Returns the files whose diagnostics may have changed.
    pub fn set_text(&mut self, path: &Path, text: String, version: Option<i32>) -> Vec<PathBuf> {
        let changed = [path.to_path_buf()];
        let old = self.keys_of(&changed);
        let mut state = FileState::parse(path, text, self.files.get(path));
        state.version = version;
        self.files.insert(path.to_path_buf(), state);
        self.refresh(&changed, old)
    }

    /// Forgets a file (deleted, or closed and not on disk). Returns the files whose diagnostics
    /// may have changed, this one included.
    pub fn remove(&mut self, path: &Path) -> Vec<PathBuf> {
        let changed = [path.to_path_buf()];
        let old = self.keys_of(&changed);
        self.files.remove(path);
        let mut dirty = self.refresh(&changed, old);
        if !dirty.iter().any(|p| p == path) {
            dirty.push(path.to_path_buf());
        }
        dirty
    }

    /// Re-runs one test (the "Run test" lens) and gives its report.
    pub fn rerun_test(&mut self, path: &Path, index: usize) -> Option<&TestReport> {
        let i = self
            .ids
            .iter()
            .position(|id| id.0 == path && id.1 == index)?;
        let report = run_test(&self.workspace, &self.workspace.definitions[i])?;
        let id = self.ids[i].clone();
        self.tests.insert(id.clone(), report);
        self.tests.get(&id)
    }

    fn keys_of(&self, paths: &[PathBuf]) -> HashSet<Key> {
        let mut keys: HashSet<Key> = paths
            .iter()
            .filter_map(|p| self.files.get(p))
            .flat_map(crd_keys)
            .collect();
        let paths: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
        for (i, id) in self.ids.iter().enumerate() {
            if paths.contains(id.0.as_path()) {
                keys.extend(self.provides[i].iter().cloned());
            }
        }
        keys
    }

    /// Re-assembles the workspace after `changed` files were re-parsed, and re-runs the checks
    /// and tests that depend on them. `old` are the keys the files provided before.
    fn refresh(&mut self, changed: &[PathBuf], old: HashSet<Key>) -> Vec<PathBuf> {
        let before: BTreeSet<PathBuf> = self.duplicate_files();
        self.assemble();
        let changed_set: HashSet<&Path> = changed.iter().map(PathBuf::as_path).collect();
        let in_changed = |id: &DefId| changed_set.contains(id.0.as_path());
        let mut keys = old;
        keys.extend(
            changed
                .iter()
                .filter_map(|p| self.files.get(p))
                .flat_map(crd_keys),
        );
        for (i, id) in self.ids.iter().enumerate() {
            if in_changed(id) {
                keys.extend(self.provides[i].iter().cloned());
            }
        }
        self.checks.retain(|id, _| !in_changed(id));
        self.tests.retain(|id, _| !in_changed(id));

        let checked: Vec<usize> = (0..self.ids.len())
            .filter(|&i| in_changed(&self.ids[i]) || self.uses_any(i, &keys))
            .collect();
        self.run_checks(&checked);
        let tested: Vec<usize> = self
            .dependents(keys)
            .into_iter()
            .chain((0..self.ids.len()).filter(|&i| in_changed(&self.ids[i])))
            .filter(|&i| is_test(&self.workspace.definitions[i]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.pending_tests
            .extend(tested.iter().map(|&i| self.ids[i].clone()));
        self.generation += 1;

        let mut dirty: BTreeSet<PathBuf> = changed.iter().cloned().collect();
        dirty.extend(
            checked
                .iter()
                .chain(&tested)
                .map(|&i| self.ids[i].0.clone()),
        );
        dirty.extend(before);
        dirty.extend(self.duplicate_files());
        dirty.into_iter().collect()
    }

    fn duplicate_files(&self) -> BTreeSet<PathBuf> {
        self.duplicates
            .iter()
            .map(|d| d.location.path().to_path_buf())
            .collect()
    }

    /// Builds the combined workspace from the files, in path order as `koreo check` loads them.
    fn assemble(&mut self) {
        let mut ws = Workspace::default();
        self.ids.clear();
        self.provides.clear();
        self.uses.clear();
        for (path, state) in &self.files {
            ws.files.push(state.file.clone());
            ws.rejected.extend(state.rejected.iter().cloned());
            // Only CRDs are read from the combined workspace (they type `parent`).
            ws.objects.extend(
                state
                    .objects
                    .iter()
                    .filter(|o| o.kind() == "CustomResourceDefinition")
                    .cloned(),
            );
            for (i, definition) in state.definitions.iter().enumerate() {
                let (provides, uses) = keys(definition, state.doc_of(i));
                self.ids.push((path.clone(), i));
                self.provides.push(provides);
                self.uses.push(uses);
                ws.definitions.push(definition.clone());
            }
        }
        ws.finish();
        self.duplicates = std::mem::take(&mut ws.diagnostics);
        self.workspace = Arc::new(ws);
    }

    fn uses_any(&self, i: usize, keys: &HashSet<Key>) -> bool {
        self.uses[i].iter().any(|k| keys.contains(k))
    }

    /// Definitions that reach a key through references, directly or through other definitions.
    fn dependents(&self, mut keys: HashSet<Key>) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        loop {
            let more: Vec<usize> = (0..self.ids.len())
                .filter(|i| !found.contains(i) && self.uses_any(*i, &keys))
                .collect();
            if more.is_empty() {
                return found;
            }
            for i in more {
                keys.extend(self.provides[i].iter().cloned());
                found.insert(i);
            }
        }
    }

    /// Runs lang's cross-file checks for some definitions. They run over a workspace of those
    /// definitions and every definition with a name they refer to (all of them, so that
    /// namespace preference and order resolve as in the whole workspace); what the checks say
    /// about the other definitions is dropped.
    fn run_checks(&mut self, checked: &[usize]) {
        if checked.is_empty() {
            return;
        }
        let mut needed: BTreeSet<usize> = checked.iter().copied().collect();
        let wanted: HashSet<&Key> = checked.iter().flat_map(|&i| &self.uses[i]).collect();
        needed.extend(
            (0..self.ids.len()).filter(|&i| self.provides[i].iter().any(|k| wanted.contains(k))),
        );
        // And what uses them: whether a Workflow is also run as a step decides how its
        // `parent` is typed.
        let provided: HashSet<&Key> = checked.iter().flat_map(|&i| &self.provides[i]).collect();
        needed.extend(
            (0..self.ids.len()).filter(|&i| self.uses[i].iter().any(|k| provided.contains(k))),
        );
        let mut part = Workspace::default();
        part.kube_bundle = self.bundle.clone();
        part.definitions = needed
            .iter()
            .map(|&i| self.workspace.definitions[i].clone())
            .collect();
        // The CRDs of the kinds that type them: parents, managed kinds, templates.
        let kinds: Vec<(String, String)> = needed
            .iter()
            .flat_map(|&i| typed_kinds(&self.workspace.definitions[i]))
            .collect();
        part.objects = self
            .workspace
            .objects
            .iter()
            .filter(|o| {
                kinds.iter().any(|(api_version, kind)| {
                    let (group, version) = koreo_lang::model::group_version(api_version);
                    koreo_lang::typecheck::crd_schema([*o], group, version, kind).is_some()
                })
            })
            .cloned()
            .collect();
        part.finish();
        for &i in checked {
            self.checks.insert(self.ids[i].clone(), Vec::new());
        }
        for diagnostic in analysis::check(&part) {
            let owner = checked
                .iter()
                .find(|&&i| contains(&self.workspace.definitions[i], &diagnostic));
            if let Some(&i) = owner {
                self.checks
                    .entry(self.ids[i].clone())
                    .or_default()
                    .push(diagnostic);
            }
        }
    }

    /// The tests that changes made due, to run without holding the analysis: a test can take
    /// long (up to its cost limits), and requests must not wait for it.
    pub fn test_job(&self) -> Option<TestJob> {
        let tests: Vec<(DefId, usize)> = self
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| self.pending_tests.contains(id))
            .map(|(i, id)| (id.clone(), i))
            .collect();
        (!tests.is_empty()).then(|| TestJob {
            generation: self.generation,
            workspace: Arc::clone(&self.workspace),
            tests,
        })
    }

    /// Takes the reports of a job; gives the files whose test results changed. Reports of a job
    /// started before a later change are dropped: that change's own job runs them again.
    pub fn finish_tests(&mut self, done: TestResults) -> Vec<PathBuf> {
        if done.generation != self.generation {
            return Vec::new();
        }
        let mut dirty = BTreeSet::new();
        for (id, report) in done.reports {
            dirty.insert(id.0.clone());
            if let Some(report) = report {
                self.tests.insert(id, report);
            }
        }
        self.pending_tests.clear();
        dirty.into_iter().collect()
    }

    /// Runs the due tests here and now (the server runs them aside).
    #[cfg(test)]
    pub fn run_pending_tests(&mut self) -> Vec<PathBuf> {
        match self.test_job() {
            Some(job) => self.finish_tests(job.run()),
            None => Vec::new(),
        }
    }

    /// Every finding about one file: its own, cross-file, duplicates, and failing test cases.
    pub fn diagnostics(&self, path: &Path) -> Vec<&Diagnostic> {
        let Some(state) = self.files.get(path) else {
            return Vec::new();
        };
        let mut out: Vec<&Diagnostic> = state.diagnostics.iter().collect();
        out.extend(self.duplicates.iter().filter(|d| d.location.path() == path));
        for i in 0..state.definitions.len() {
            if let Some(found) = self.checks.get(&(path.to_path_buf(), i)) {
                out.extend(found);
            }
        }
        out
    }

    /// The test reports of one file, with the definition index of each.
    pub fn reports(&self, path: &Path) -> Vec<(usize, &TestReport)> {
        let Some(state) = self.files.get(path) else {
            return Vec::new();
        };
        (0..state.definitions.len())
            .filter_map(|i| Some((i, self.tests.get(&(path.to_path_buf(), i))?)))
            .collect()
    }
}

pub fn is_test(definition: &Definition) -> bool {
    matches!(
        definition,
        Definition::FunctionTest(_) | Definition::WorkflowTest(_)
    )
}

/// Tests to run against a snapshot of the workspace.
pub struct TestJob {
    generation: u64,
    workspace: Arc<Workspace>,
    tests: Vec<(DefId, usize)>,
}

/// What a [`TestJob`] found.
pub struct TestResults {
    generation: u64,
    reports: Vec<(DefId, Option<TestReport>)>,
}

impl TestJob {
    /// How many tests it runs.
    pub fn len(&self) -> usize {
        self.tests.len()
    }

    pub fn run(self) -> TestResults {
        let ws = &self.workspace;
        let reports =
            koreo_lang::parallel::map(&self.tests, |(_, i)| run_test(ws, &ws.definitions[*i]));
        TestResults {
            generation: self.generation,
            reports: self
                .tests
                .into_iter()
                .map(|(id, _)| id)
                .zip(reports)
                .collect(),
        }
    }
}

fn run_test(ws: &Workspace, definition: &Definition) -> Option<TestReport> {
    match definition {
        Definition::FunctionTest(t) => Some(koreo_testing::run_function_test(ws, t)),
        Definition::WorkflowTest(t) => Some(koreo_testing::run_workflow_test(ws, t)),
        _ => None,
    }
}

/// What a definition provides to others and what it uses, from its document's references.
fn keys(definition: &Definition, doc: Option<&DocumentInfo>) -> (Vec<Key>, Vec<Key>) {
    let name = &definition.meta().name;
    let mut provides = vec![Key::Name(name.clone())];
    let mut uses = vec![Key::CalledBy(name.clone())];
    for r in doc.map(|d| d.references.as_slice()).unwrap_or_default() {
        if r.dynamic {
            uses.push(Key::AnyTemplate);
            provides.push(Key::CalledBy(String::new()));
        } else {
            uses.push(Key::Name(r.name.clone()));
            provides.push(Key::CalledBy(r.name.clone()));
        }
    }
    if let Definition::ResourceTemplate(_) = definition {
        provides.push(Key::AnyTemplate);
        // A template name computed at run time may name any template.
        uses.push(Key::CalledBy(String::new()));
    }
    if let Definition::Workflow(w) = definition
        && let Some(crd) = &w.crd_ref
    {
        let trigger = Key::Trigger(format!("{} {}", crd.api_version(), crd.kind));
        provides.push(trigger.clone());
        uses.push(trigger);
    }
    uses.extend(
        typed_kinds(definition)
            .into_iter()
            .map(|(api_version, kind)| Key::Schema(format!("{api_version} {kind}"))),
    );
    (provides, uses)
}

/// The kinds whose schema types a definition: its parent, what it manages or templates.
fn typed_kinds(definition: &Definition) -> Vec<(String, String)> {
    match definition {
        Definition::Workflow(w) => w
            .crd_ref
            .iter()
            .map(|crd| (crd.api_version(), crd.kind.clone()))
            .collect(),
        Definition::ResourceFunction(f) => {
            vec![(f.api_config.api_version.clone(), f.api_config.kind.clone())]
        }
        Definition::ResourceTemplate(t) => {
            let text = |k: &str| t.template[k].as_str().unwrap_or_default().to_string();
            vec![(text("apiVersion"), text("kind"))]
        }
        _ => Vec::new(),
    }
}

/// The kinds whose CRD a file holds, as the definitions they trigger or type use them.
fn crd_keys(state: &FileState) -> Vec<Key> {
    let mut keys = Vec::new();
    for crd in state
        .objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
    {
        let spec = &crd.value["spec"];
        let (group, kind) = (
            spec["group"].as_str().unwrap_or(""),
            spec["names"]["kind"].as_str().unwrap_or(""),
        );
        for version in spec["versions"].as_array().into_iter().flatten() {
            let version = version["name"].as_str().unwrap_or("");
            let api_version = koreo_lang::model::api_version(group, version);
            keys.push(Key::Schema(format!("{api_version} {kind}")));
        }
    }
    keys
}

/// Whether a diagnostic points inside a definition's document.
fn contains(definition: &Definition, diagnostic: &Diagnostic) -> bool {
    let location = &definition.meta().location;
    let Span { start, end } = location.span;
    let at = diagnostic.location.span.start;
    Arc::ptr_eq(&location.file, &diagnostic.location.file)
        && (start.line, start.col) <= (at.line, at.col)
        && (at.line, at.col) <= (end.line, end.col)
}

/// Files under `path` that may hold Koreo documents, and schema bundles; hidden entries,
/// dependencies and build output are skipped.
fn collect_files(path: &Path, out: &mut Vec<PathBuf>, bundles: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let child = entry.path();
            let name = child.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name) {
                collect_files(&child, out, bundles);
            }
        }
    } else if is_yaml_or_koreo(path) {
        out.push(path.to_path_buf());
    } else if path.file_name() == Some(std::ffi::OsStr::new(koreo_lang::openapi::BUNDLE_FILE)) {
        bundles.push(path.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: koreo.dev/v1beta1\nmetadata:";

    fn function(name: &str, text: &str) -> String {
        format!("{HEAD} {{name: {name}}}\nkind: ValueFunction\nspec:\n  return: {{text: {text}}}\n")
    }

    fn files(dirty: Vec<PathBuf>) -> Vec<String> {
        dirty.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn an_edit_reaches_only_what_depends_on_it() {
        let mut analysis = Analysis::default();
        analysis.set_text(
            Path::new("f.koreo"),
            function("greet", "=inputs.name"),
            None,
        );
        analysis.set_text(Path::new("other.koreo"), function("other", "x"), None);
        let workflow = format!(
            "{HEAD} {{name: w}}\nkind: Workflow\nspec:\n  steps:\n  - label: one\n    ref: {{kind: ValueFunction, name: greet}}\n    inputs: {{name: =parent.x}}\n"
        );
        analysis.set_text(Path::new("w.koreo"), workflow, None);
        let test = format!(
            "{HEAD} {{name: t}}\nkind: FunctionTest\nspec:\n  functionRef: {{kind: ValueFunction, name: greet}}\n  inputs: {{name: a}}\n  testCases:\n  - expectReturn: {{text: a}}\n"
        );
        analysis.set_text(Path::new("t.koreo"), test, None);
        analysis.run_pending_tests();
        assert!(analysis.reports(Path::new("t.koreo"))[0].1.passed());

        // Nothing refers to `other`: only its own file is looked at again.
        let dirty = analysis.set_text(Path::new("other.koreo"), function("other", "y"), None);
        assert_eq!(files(dirty), ["other.koreo"]);

        // `greet` changes: the workflow is checked again and the test re-runs.
        let dirty = analysis.set_text(
            Path::new("f.koreo"),
            function("greet", "=inputs.name + '!'"),
            None,
        );
        assert_eq!(files(dirty), ["f.koreo", "t.koreo", "w.koreo"]);
        assert_eq!(files(analysis.run_pending_tests()), ["t.koreo"]);
        assert!(!analysis.reports(Path::new("t.koreo"))[0].1.passed());

        // Renamed away: callers lose it.
        analysis.set_text(Path::new("f.koreo"), function("greeting", "x"), None);
        let found: Vec<&str> = analysis
            .diagnostics(Path::new("w.koreo"))
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(found, ["ValueFunction `greet` not found"]);
    }

    #[test]
    fn a_crd_edit_checks_again_the_definitions_it_types() {
        let crd = |field: &str| {
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: apps.example.com}}\nspec:\n  group: example.com\n  names: {{kind: App, plural: apps}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            required: [{field}]\n            properties:\n              {field}: {{type: string}}\n"
            )
        };
        let mut analysis = Analysis::default();
        analysis.set_text(Path::new("crd.yaml"), crd("name"), None);
        analysis.set_text(
            Path::new("f.koreo"),
            function("greet", "=inputs.name"),
            None,
        );
        let workflow = format!(
            "{HEAD} {{name: w}}\nkind: Workflow\nspec:\n  crdRef: {{apiGroup: example.com, version: v1, kind: App}}\n  steps:\n  - label: one\n    ref: {{kind: ValueFunction, name: greet}}\n    inputs: {{name: =parent.spec.title}}\n"
        );
        analysis.set_text(Path::new("w.koreo"), workflow, None);
        let manager = format!(
            "{HEAD} {{name: make-app}}\nkind: ResourceFunction\nspec:\n  apiConfig: {{apiVersion: example.com/v1, kind: App, name: a, namespace: default}}\n  resource:\n    spec: {{title: hello}}\n"
        );
        analysis.set_text(Path::new("r.koreo"), manager, None);
        let codes = |analysis: &Analysis, file: &str| -> Vec<&str> {
            analysis
                .diagnostics(Path::new(file))
                .iter()
                .map(|d| d.code.id())
                .collect()
        };
        assert_eq!(
            codes(&analysis, "w.koreo"),
            ["K0501"],
            "`title` is not in the CRD"
        );
        assert_eq!(
            codes(&analysis, "r.koreo"),
            ["K0501"],
            "nor can an App be given one"
        );
        let dirty = analysis.set_text(Path::new("crd.yaml"), crd("title"), None);
        assert!(files(dirty.clone()).contains(&"w.koreo".to_string()));
        assert!(files(dirty).contains(&"r.koreo".to_string()));
        assert_eq!(codes(&analysis, "w.koreo"), Vec::<&str>::new(), "now it is");
        assert_eq!(codes(&analysis, "r.koreo"), Vec::<&str>::new());
    }

    #[test]
    fn a_callers_edit_checks_again_the_inputs_it_types() {
        let mut analysis = Analysis::default();
        analysis.set_text(
            Path::new("f.koreo"),
            function("greet", "=inputs.config.name"),
            None,
        );
        let workflow = |given: &str| {
            format!(
                "{HEAD} {{name: w}}\nkind: Workflow\nspec:\n  steps:\n  - label: one\n    ref: {{kind: ValueFunction, name: greet}}\n    inputs: {{config: {{{given}: x}}}}\n"
            )
        };
        analysis.set_text(Path::new("w.koreo"), workflow("name"), None);
        let codes = |analysis: &Analysis| -> Vec<&str> {
            analysis
                .diagnostics(Path::new("f.koreo"))
                .iter()
                .map(|d| d.code.id())
                .collect()
        };
        assert_eq!(codes(&analysis), Vec::<&str>::new());
        let dirty = analysis.set_text(Path::new("w.koreo"), workflow("title"), None);
        assert!(files(dirty).contains(&"f.koreo".to_string()));
        assert_eq!(
            codes(&analysis),
            ["K0501"],
            "the caller no longer gives `name`"
        );
    }

    #[test]
    fn a_pulled_bundle_under_the_folder_types_built_in_kinds() {
        let dir = std::env::temp_dir().join(format!("koreo-lsp-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        let widget = "{\"kubernetes\":\"1.99\",\n\"kinds\":{\"v1/Widget\":\"W\"},\n\"definitions\":{\n\"W\":{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\",\"properties\":{\"size\":{\"type\":\"integer\"}}}}}\n}}\n";
        std::fs::write(dir.join("schemas/kubernetes.json"), widget).unwrap();
        let function = format!(
            "{HEAD} {{name: w}}\nkind: ResourceFunction\nspec:\n  apiConfig: {{apiVersion: v1, kind: Widget, name: w, namespace: default}}\n  resource:\n    spec: {{sise: 1}}\n"
        );
        std::fs::write(dir.join("w.koreo"), function).unwrap();
        let mut analysis = Analysis::default();
        analysis.load_roots(std::slice::from_ref(&dir));
        let codes: Vec<&str> = analysis
            .diagnostics(&dir.join("w.koreo"))
            .iter()
            .map(|d| d.code.id())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            codes,
            ["K0501"],
            "a Widget, from the pulled bundle, has no `sise`"
        );
        assert_eq!(analysis.bundle().kubernetes(), "1.99");
    }
}
