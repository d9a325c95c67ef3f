//! Loading files and directories into a set of definitions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::codes::Code;
use crate::expr::ExprCache;
use crate::model::{
    self, Definition, FunctionTest, ResourceFunction, ResourceTemplate, ValueFunction, Workflow,
};
use crate::source::{Diagnostic, FileRef, Location, SourceFile, Span};
use crate::yaml::{self, Node};

/// File names that may hold Koreo documents.
pub const EXTENSIONS: [&str; 6] = [".koreo", ".k", ".k.yaml", ".k.yml", ".yaml", ".yml"];

/// A document that is not a Koreo definition (a CRD, a Namespace, a parent object), kept as is.
#[derive(Clone, Debug)]
pub struct Object {
    pub value: Json,
    pub location: Location,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// A Koreo document that did not validate: its kind, name and where it is (its errors are in
/// the workspace's diagnostics, inside that span).
#[derive(Clone, Debug)]
pub struct Rejected {
    pub kind: String,
    pub name: String,
    pub location: Location,
}

impl Rejected {
    pub fn is(&self, kind: &str, name: &str) -> bool {
        self.kind == kind && self.name == name
    }
}

/// One YAML document of a file, as parsed.
#[derive(Clone, Debug)]
pub struct Document {
    pub file: FileRef,
    pub root: Node,
}

/// Everything loaded from a set of files, with what was wrong in them.
#[derive(Debug, Default)]
pub struct Workspace {
    pub files: Vec<FileRef>,
    /// Every YAML document that parsed, in file order, for those that read the files again as
    /// YAML (the language server, `koreo dev`, definition status in a cluster): kept only in a
    /// workspace made by [`Workspace::keeping_documents`], as `koreo test` and `check` would
    /// only pay to free them.
    pub documents: Vec<Document>,
    keep_documents: bool,
    pub definitions: Vec<Definition>,
    pub objects: Vec<Object>,
    pub diagnostics: Vec<Diagnostic>,
    /// Files that could not be read or parsed as YAML (fully or in part).
    pub failed_files: Vec<PathBuf>,
    /// Koreo documents that did not validate.
    pub rejected: Vec<Rejected>,
    /// Schemas of built-in kinds read from a schema folder, in place of the bundled ones.
    pub kube_bundle: Option<Arc<crate::openapi::Bundle>>,
    index: HashMap<(&'static str, String), Vec<usize>>,
    expr_cache: Arc<ExprCache>,
}

impl Workspace {
    /// An empty workspace that keeps the documents it parses (`documents`).
    pub fn keeping_documents() -> Workspace {
        Workspace {
            keep_documents: true,
            ..Workspace::default()
        }
    }

    /// Loads files and directories (recursively; files with a Koreo or YAML extension).
    pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Workspace {
        Workspace::default().load(paths, false)
    }

    /// As [`Workspace::load_paths`], keeping the parsed documents.
    pub fn load_paths_keeping_documents<P: AsRef<Path>>(paths: &[P]) -> Workspace {
        Workspace::keeping_documents().load(paths, false)
    }

    /// As [`Workspace::load_paths`], plus, for each file named, the Koreo files beside it (not
    /// below it): a test file runs with the definitions next to it.
    pub fn load_with_neighbours<P: AsRef<Path>>(paths: &[P]) -> Workspace {
        Workspace::default().load(paths, true)
    }

    fn load<P: AsRef<Path>>(self, paths: &[P], neighbours: bool) -> Workspace {
        let mut ws = self;
        let mut files = Vec::new();
        for path in paths {
            let path = path.as_ref();
            collect_files(path, true, &mut files, &mut ws);
            let dir = path.parent().filter(|_| neighbours && path.is_file());
            if let Some(dir) = dir {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                let beside = std::fs::read_dir(dir).into_iter().flatten().flatten();
                files.extend(
                    beside
                        .map(|e| e.path())
                        .filter(|p| p.is_file() && is_koreo_file(p))
                        .filter(|p| {
                            !p.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                        }),
                );
            }
        }
        files.sort();
        files.dedup();
        // Files decode independently; the parts merge in file order.
        let (cache, keep_documents) = (ws.expr_cache.clone(), ws.keep_documents);
        let parts = crate::parallel::map(&files, |path| {
            let mut part = Workspace {
                expr_cache: cache.clone(),
                keep_documents,
                ..Workspace::default()
            };
            part.read_file(path);
            part
        });
        for part in parts {
            ws.merge(part);
        }
        ws.finish();
        ws
    }

    fn read_file(&mut self, path: &Path) {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.add_source(path, text),
                Err(e) => {
                    // Where: the first byte that is not UTF-8.
                    let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    let before = String::from_utf8_lossy(valid);
                    let line = before.matches('\n').count() + 1;
                    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    let at = crate::source::Pos {
                        line: line as u32,
                        col: col as u32,
                        offset: before.chars().count() as u32,
                    };
                    let file = SourceFile::new(path, String::new());
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::FileUnreadable,
                            Location::new(&file, Span::point(at)),
                            "the file is not UTF-8 text: here is a byte that is not",
                        )
                        .with_hint("save the file as UTF-8"),
                    );
                    self.failed_files.push(path.to_path_buf());
                }
            },
            Err(e) => self.fail_file(path, &format!("cannot read the file: {e}")),
        }
    }

    fn merge(&mut self, part: Workspace) {
        self.files.extend(part.files);
        self.documents.extend(part.documents);
        self.definitions.extend(part.definitions);
        self.objects.extend(part.objects);
        self.diagnostics.extend(part.diagnostics);
        self.failed_files.extend(part.failed_files);
        self.rejected.extend(part.rejected);
    }

    fn fail_file(&mut self, path: &Path, message: &str) {
        self.diagnostics.push(file_error(path, message));
        self.failed_files.push(path.to_path_buf());
    }

    /// Loads one text as if it were the file at `path`.
    pub fn load_str(path: impl Into<PathBuf>, text: impl Into<String>) -> Workspace {
        let mut ws = Workspace::default();
        ws.add_source(&path.into(), text.into());
        ws.finish();
        ws
    }

    /// Adds one document that has no source text (a definition read from a cluster), as if
    /// it were the only document of a file at `path`. Its diagnostics point into `root`:
    /// [`Node::path_at`] names the field. Call `finish` after the last one.
    pub fn add_object(&mut self, path: &Path, root: Node) {
        let file = SourceFile::new(path, String::new());
        self.files.push(file.clone());
        self.add_document(&file, &root);
        if self.keep_documents {
            self.documents.push(Document { file, root });
        }
    }

    /// Adds a file's documents. Call `finish` after the last one.
    pub fn add_source(&mut self, path: &Path, text: String) {
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let file = SourceFile::new(path, text);
        self.files.push(file.clone());
        if let Some(at) = file.text.find('\0') {
            let line = file.text[..at].matches('\n').count() as u32 + 1;
            let pos = crate::source::Pos {
                line,
                col: 1,
                offset: at as u32,
            };
            self.diagnostics.push(Diagnostic::error(
                Code::FileUnreadable,
                Location::new(&file, Span::point(pos)),
                "the file contains a NUL character; YAML files are text",
            ));
            self.failed_files.push(path.to_path_buf());
            return;
        }
        let (docs, error) = yaml::parse_documents_partial(&file.text);
        for doc in docs {
            self.add_document(&file, &doc.root);
            if !self.keep_documents {
                continue;
            }
            self.documents.push(Document {
                file: file.clone(),
                root: doc.root,
            });
        }
        if let Some(e) = error {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::YamlSyntax,
                    Location::new(&file, Span::point(e.pos)),
                    format!("invalid YAML: {}", e.message),
                )
                .with_hint(
                    "fix the YAML syntax; the documents before this one loaded, nothing from here on did",
                ),
            );
            self.failed_files.push(path.to_path_buf());
        }
    }

    fn add_document(&mut self, file: &FileRef, root: &Node) {
        let location = Location::new(file, root.span);
        // A document that names its type wrongly would otherwise load as nothing at all.
        for key in ["apiVersion", "kind"] {
            if let Some(value) = root.get(key).filter(|v| v.as_str().is_none()) {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::WrongType,
                        Location::new(file, value.span),
                        format!("`{key}` must be a string, not {}", value.type_name()),
                    )
                    .with_hint(format!(
                        "for example `{key}: {}`",
                        match key {
                            "apiVersion" => model::API_VERSION,
                            _ => "ResourceFunction",
                        }
                    )),
                );
                return;
            }
        }
        let api_version = root.get("apiVersion").and_then(Node::as_str).unwrap_or("");
        let kind = root.get("kind").and_then(Node::as_str).unwrap_or("");
        let is_koreo_group = api_version.split('/').next() == Some("koreo.dev");
        if !is_koreo_group || !model::KINDS.contains(&kind) {
            if is_koreo_group && !kind.is_empty() {
                let at = root
                    .get("kind")
                    .map_or_else(|| location.clone(), |node| Location::new(file, node.span));
                self.diagnostics.push(
                    Diagnostic::warning(
                        Code::NotAKoreoKind,
                        at,
                        format!("`{kind}` is not a Koreo kind"),
                    )
                    .with_hint(format!("Koreo kinds: {}", model::KINDS.join(", "))),
                );
            }
            self.objects.push(Object {
                value: root.to_json(),
                location,
            });
            return;
        }
        if api_version != model::API_VERSION {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::UnsupportedVersion,
                    location,
                    format!("`{api_version}` is not a version Koreo serves"),
                )
                .with_hint(format!("use `apiVersion: {}`", model::API_VERSION)),
            );
            return;
        }
        match model::decode(kind, root, file, &mut self.diagnostics, &self.expr_cache) {
            Some(definition) => self.definitions.push(definition),
            None => {
                let name = root
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Node::as_str);
                self.rejected.push(Rejected {
                    kind: kind.to_string(),
                    name: name.unwrap_or("").to_string(),
                    location: Location::new(file, root.span),
                });
            }
        }
    }

    /// Indexes the definitions and reports duplicates.
    pub fn finish(&mut self) {
        self.index.clear();
        for (i, def) in self.definitions.iter().enumerate() {
            self.index
                .entry((def.kind(), def.meta().name.clone()))
                .or_default()
                .push(i);
        }
        let mut duplicates = Vec::new();
        for ((kind, name), found) in &self.index {
            for pair in found.windows(2) {
                let (first, again) = (&self.definitions[pair[0]], &self.definitions[pair[1]]);
                if first.meta().namespace == again.meta().namespace {
                    duplicates.push(
                        Diagnostic::error(
                            Code::DuplicateDefinition,
                            again.meta().name_location.clone(),
                            format!("{kind} `{name}` is defined twice"),
                        )
                        .with_hint(format!(
                            "the other one is at {}",
                            first.meta().name_location
                        )),
                    );
                }
            }
        }
        duplicates.sort_by_key(|d| (d.location.path().to_path_buf(), d.location.span.start));
        self.diagnostics.extend(duplicates);
    }

    /// Every Workflow with a `crdRef`, with it: what runs for which parent kind.
    pub fn triggers(&self) -> impl Iterator<Item = (&crate::model::CrdRef, &Arc<Workflow>)> {
        self.definitions.iter().filter_map(|d| match d {
            Definition::Workflow(w) => Some((w.crd_ref.as_ref()?, w)),
            _ => None,
        })
    }

    /// The Workflows a parent of this kind triggers (more than one: the controller runs none).
    pub fn workflows_for(&self, api_version: &str, kind: &str) -> Vec<&Arc<Workflow>> {
        self.triggers()
            .filter(|(crd, _)| crd.kind == kind && crd.api_version() == api_version)
            .map(|(_, w)| w)
            .collect()
    }

    /// The definition of `kind` named `name`, preferring the one in `namespace`.
    pub fn find(
        &self,
        kind: &'static str,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<&Definition> {
        let found = self.index.get(&(kind, name.to_string()))?;
        found
            .iter()
            .map(|&i| &self.definitions[i])
            .find(|d| d.meta().namespace.as_deref() == namespace)
            .or_else(|| found.first().map(|&i| &self.definitions[i]))
    }

    pub fn value_function(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<&std::sync::Arc<ValueFunction>> {
        match self.find("ValueFunction", name, namespace)? {
            Definition::ValueFunction(f) => Some(f),
            _ => None,
        }
    }

    pub fn resource_function(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<&std::sync::Arc<ResourceFunction>> {
        match self.find("ResourceFunction", name, namespace)? {
            Definition::ResourceFunction(f) => Some(f),
            _ => None,
        }
    }

    pub fn resource_template(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<&std::sync::Arc<ResourceTemplate>> {
        match self.find("ResourceTemplate", name, namespace)? {
            Definition::ResourceTemplate(t) => Some(t),
            _ => None,
        }
    }

    pub fn workflow(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<&std::sync::Arc<Workflow>> {
        match self.find("Workflow", name, namespace)? {
            Definition::Workflow(w) => Some(w),
            _ => None,
        }
    }

    pub fn function_tests(&self) -> impl Iterator<Item = &std::sync::Arc<FunctionTest>> {
        self.definitions.iter().filter_map(|d| match d {
            Definition::FunctionTest(t) => Some(t),
            _ => None,
        })
    }

    /// Adds the schemas in a folder (`koreo check --schemas`, written by `koreo schemas pull`):
    /// its CustomResourceDefinitions, and a `kubernetes.json` bundle of built-in kinds in place
    /// of the bundled one. Files that cannot be read are errors; its other documents are not
    /// loaded.
    pub fn add_schemas(&mut self, dir: &Path) {
        if !dir.is_dir() {
            self.fail_file(dir, "no schema folder here");
            return;
        }
        let found = Workspace::load_paths(&[dir]);
        self.diagnostics
            .extend(found.diagnostics.into_iter().filter(Diagnostic::is_error));
        self.failed_files.extend(found.failed_files);
        self.objects.extend(
            found
                .objects
                .into_iter()
                .filter(|o| o.kind() == "CustomResourceDefinition"),
        );
        let bundle = dir.join(crate::openapi::BUNDLE_FILE);
        if !bundle.is_file() {
            return;
        }
        let parsed = std::fs::read_to_string(&bundle)
            .map_err(|e| e.to_string())
            .and_then(|text| crate::openapi::Bundle::parse(&text));
        match parsed {
            Ok(parsed) => self.kube_bundle = Some(Arc::new(parsed)),
            Err(e) => self.fail_file(
                &bundle,
                &format!("not a schema bundle ({e}): write it again with `koreo schemas pull`"),
            ),
        }
    }

    /// The schemas of built-in kinds in use: a schema folder's, or the bundled ones.
    pub fn bundle(&self) -> &crate::openapi::Bundle {
        match &self.kube_bundle {
            Some(bundle) => bundle,
            None => crate::openapi::Bundle::builtin(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

fn file_error(path: &Path, message: &str) -> Diagnostic {
    let file = SourceFile::new(path, String::new());
    Diagnostic::error(
        Code::FileUnreadable,
        Location::new(&file, Span::default()),
        message,
    )
}

fn is_koreo_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

fn collect_files(path: &Path, explicit: bool, out: &mut Vec<PathBuf>, ws: &mut Workspace) {
    if path.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                ws.fail_file(path, &format!("cannot read the directory: {e}"));
                return;
            }
        };
        for entry in entries.flatten() {
            let child = entry.path();
            let hidden = child
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect_files(&child, false, out, ws);
            }
        }
    } else if path.is_file() {
        if explicit || is_koreo_file(path) {
            out.push(path.to_path_buf());
        }
    } else if explicit {
        ws.fail_file(path, "no such file or directory");
    }
}

/// The definitions a function in `namespace` sees.
pub struct NamespaceView<'w> {
    pub workspace: &'w Workspace,
    pub namespace: Option<&'w str>,
}

impl crate::eval::Definitions for NamespaceView<'_> {
    fn resource_template(&self, name: &str) -> Option<std::sync::Arc<ResourceTemplate>> {
        self.workspace
            .resource_template(name, self.namespace)
            .cloned()
    }

    fn value_function(&self, name: &str) -> Option<std::sync::Arc<ValueFunction>> {
        self.workspace.value_function(name, self.namespace).cloned()
    }
}
