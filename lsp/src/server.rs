//! The LSP side: requests and notifications in, the analysis behind a lock, diagnostics out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::navigate::Place;
use crate::state::Analysis;
use crate::{complete, diagnostics, hover, navigate, symbols, tests_view, tokens};

/// The language server.
pub struct Backend {
    client: Client,
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    analysis: Analysis,
    roots: Vec<PathBuf>,
    /// The URIs the editor uses for files it has open (they may not be `file:` URIs).
    uris: HashMap<PathBuf, Uri>,
    /// What each file's diagnostics were when last sent, to send only changes.
    published: HashMap<PathBuf, Vec<Diagnostic>>,
    /// The client can watch files for us (dynamic registration of `didChangeWatchedFiles`).
    can_watch: bool,
}

impl Shared {
    fn uri(&self, path: &Path) -> Option<Uri> {
        self.uris
            .get(path)
            .cloned()
            .or_else(|| Uri::from_file_path(path))
    }

    fn location(&self, place: &Place) -> Option<Location> {
        let file = self.analysis.file(&place.path)?;
        Some(Location::new(
            self.uri(&place.path)?,
            file.lines.range(file.text(), place.start, place.end),
        ))
    }

    /// Diagnostics that changed since they were last sent, for the given files.
    fn changed_diagnostics(
        &mut self,
        paths: Vec<PathBuf>,
    ) -> Vec<(Uri, Vec<Diagnostic>, Option<i32>)> {
        let mut out = Vec::new();
        for path in paths {
            let (found, version) = match self.analysis.file(&path) {
                Some(file) => (
                    diagnostics::file_diagnostics(&self.analysis, file),
                    file.version,
                ),
                None => (Vec::new(), None),
            };
            let before = self.published.get(&path).map_or(&[][..], Vec::as_slice);
            if before == found.as_slice() {
                continue;
            }
            if let Some(uri) = self.uri(&path) {
                out.push((uri, found.clone(), version));
            }
            if found.is_empty() {
                self.published.remove(&path);
            } else {
                self.published.insert(path, found);
            }
        }
        out
    }
}

/// Runs `f`, catching a panic: a bug met by one request must not stop the server. The error
/// is the panic's message.
fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// The path of a document URI.
fn path_of(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|p| p.into_owned())
}

impl Backend {
    pub fn new(client: Client) -> Backend {
        Backend {
            client,
            shared: Mutex::new(Shared::default()),
        }
    }

    /// The shared state. A panic in another request must not take the server down with it.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn publish(&self, paths: Vec<PathBuf>) {
        let changed = guarded(|| self.lock().changed_diagnostics(paths));
        for (uri, diagnostics, version) in self.recover("publishing diagnostics", changed).await {
            self.client
                .publish_diagnostics(uri, diagnostics, version)
                .await;
        }
    }

    /// The value of a guarded call, or, after a panic, the default and an error in the editor's
    /// log of the server.
    async fn recover<T: Default>(&self, what: &str, result: std::result::Result<T, String>) -> T {
        match result {
            Ok(value) => value,
            Err(panic) => {
                self.client
                    .log_message(
                        MessageType::ERROR,
                        format!("koreo lsp: {what} failed: {panic}"),
                    )
                    .await;
                T::default()
            }
        }
    }

    /// Runs a feature on an open file at an LSP position.
    async fn at<T: Default>(
        &self,
        document: &TextDocumentPositionParams,
        feature: impl FnOnce(&Shared, &Path, u32) -> T,
    ) -> T {
        let Some(path) = path_of(&document.text_document.uri) else {
            return T::default();
        };
        let result = guarded(|| {
            let shared = self.lock();
            let Some(file) = shared.analysis.file(&path) else {
                return T::default();
            };
            let offset = file.lines.offset(file.text(), document.position);
            feature(&shared, &path, offset)
        });
        self.recover("a request", result).await
    }

    /// Runs a feature on a whole file.
    async fn on_file<T: Default>(
        &self,
        uri: &Uri,
        feature: impl FnOnce(&Analysis, &Path) -> T,
    ) -> T {
        let Some(path) = path_of(uri) else {
            return T::default();
        };
        let result = guarded(|| feature(&self.lock().analysis, &path));
        self.recover("a request", result).await
    }

    /// Changes the analysis and runs the tests the change made due; gives the files whose
    /// diagnostics may have changed. The tests run on a blocking thread, without the lock:
    /// requests meanwhile are answered from the analysis as changed.
    async fn update(&self, change: impl FnOnce(&mut Shared) -> Vec<PathBuf>) -> Vec<PathBuf> {
        let result = guarded(|| {
            let mut shared = self.lock();
            let dirty = change(&mut shared);
            (dirty, shared.analysis.test_job())
        });
        let (mut dirty, job) = self.recover("an update", result).await;
        if let Some(job) = job {
            let tests = job.len();
            self.client
                .log_message(MessageType::LOG, format!("koreo: running {tests} test(s)"))
                .await;
            let started = std::time::Instant::now();
            let ran = tokio::task::spawn_blocking(move || guarded(|| job.run()))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let took = started.elapsed().as_millis();
            self.client
                .log_message(
                    MessageType::LOG,
                    format!("koreo: {tests} test(s) run in {took} ms"),
                )
                .await;
            if let Some(done) = self.recover("running tests", ran.map(Some)).await {
                let finished = guarded(|| self.lock().analysis.finish_tests(done));
                dirty.extend(self.recover("taking test results", finished).await);
                dirty.sort();
                dirty.dedup();
            }
        }
        dirty
    }

    async fn run_test(&self, arguments: &[serde_json::Value]) -> Result<Option<LSPAny>> {
        let (Some(uri), Some(name)) = (
            arguments.first().and_then(|a| a.as_str()),
            arguments.get(1).and_then(|a| a.as_str()),
        ) else {
            return Err(Error::invalid_params(
                "koreo.runTest takes a file URI and a test name",
            ));
        };
        let path = uri
            .parse::<Uri>()
            .ok()
            .and_then(|u| path_of(&u))
            .ok_or_else(|| Error::invalid_params(format!("not a file URI: {uri}")))?;
        let report = guarded(|| {
            let mut shared = self.lock();
            let index = shared.analysis.file(&path).and_then(|f| {
                let is_test = |d: &&crate::document::DocumentInfo| {
                    matches!(d.kind.as_str(), "FunctionTest" | "WorkflowTest")
                        && d.name.as_ref().is_some_and(|(n, _)| n == name)
                };
                f.docs.iter().find(is_test).and_then(|d| d.definition)
            });
            index.and_then(|i| shared.analysis.rerun_test(&path, i).cloned())
        });
        let Some(report) = self.recover("running a test", report).await else {
            return Err(Error::invalid_params(format!(
                "no test `{name}` that loads in {uri}"
            )));
        };
        self.publish(vec![path]).await;
        let kind = if report.passed() {
            MessageType::INFO
        } else {
            MessageType::WARNING
        };
        self.client
            .show_message(
                kind,
                format!("{}: {}", report.name, tests_view::summary(&report)),
            )
            .await;
        Ok(Some(koreo_testing::report::json(std::slice::from_ref(
            &report,
        ))))
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let mut roots: Vec<PathBuf> = params
            .workspace_folders
            .unwrap_or_default()
            .iter()
            .filter_map(|f| path_of(&f.uri))
            .collect();
        #[allow(deprecated)] // Older clients send only `rootUri`.
        if roots.is_empty()
            && let Some(root) = params.root_uri.as_ref().and_then(path_of)
        {
            roots.push(root);
        }
        let can_watch = params
            .capabilities
            .workspace
            .and_then(|w| w.did_change_watched_files)
            .and_then(|w| w.dynamic_registration)
            .unwrap_or(false);
        {
            let mut shared = self.lock();
            shared.roots = roots;
            shared.can_watch = can_watch;
        }
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        ..Default::default()
                    },
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                document_symbol_provider: Some(OneOf::Left(true)),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![".".into(), "=".into(), " ".into()]),
                    ..Default::default()
                }),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend: tokens::legend(),
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            range: None,
                            ..Default::default()
                        },
                    ),
                ),
                code_lens_provider: Some(CodeLensOptions {
                    resolve_provider: Some(false),
                }),
                inlay_hint_provider: Some(OneOf::Left(true)),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: vec![tests_view::RUN_TEST.into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            server_info: Some(ServerInfo {
                name: "koreo".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            ..Default::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let loaded = self
            .update(|shared| {
                let roots = shared.roots.clone();
                shared.analysis.load_roots(&roots)
            })
            .await;
        let can_watch = self.lock().can_watch;
        self.publish(loaded).await;
        if can_watch {
            let watchers = ["**/*.koreo", "**/*.k", "**/*.yaml", "**/*.yml"]
                .map(|glob| FileSystemWatcher {
                    glob_pattern: GlobPattern::String(glob.into()),
                    kind: None,
                })
                .to_vec();
            let registration = Registration {
                id: "koreo-files".into(),
                method: "workspace/didChangeWatchedFiles".into(),
                register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions {
                    watchers,
                })
                .ok(),
            };
            // The editor then tells us about files changed outside it; without it, files
            // are re-read when they are opened or closed.
            let _ = self.client.register_capability(vec![registration]).await;
        }
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let document = params.text_document;
        let Some(path) = path_of(&document.uri) else {
            return;
        };
        let dirty = self
            .update(|shared| {
                shared.uris.insert(path.clone(), document.uri);
                shared
                    .analysis
                    .set_text(&path, document.text, Some(document.version))
            })
            .await;
        self.publish(dirty).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else {
            return;
        };
        let dirty = self
            .update(|shared| {
                let mut text = shared
                    .analysis
                    .file(&path)
                    .map(|f| f.text().to_string())
                    .unwrap_or_default();
                for change in params.content_changes {
                    crate::text::apply_change(&mut text, change.range, &change.text);
                }
                let version = Some(params.text_document.version);
                shared.analysis.set_text(&path, text, version)
            })
            .await;
        self.publish(dirty).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else {
            return;
        };
        // What is on disk counts again; a file that was never saved is gone.
        let dirty = self
            .update(|shared| {
                shared.uris.remove(&path);
                match std::fs::read_to_string(&path) {
                    Ok(text) => shared.analysis.set_text(&path, text, None),
                    Err(_) => shared.analysis.remove(&path),
                }
            })
            .await;
        self.publish(dirty).await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        let mut dirty = self
            .update(|shared| {
                let mut dirty = Vec::new();
                for change in params.changes {
                    let Some(path) = path_of(&change.uri) else {
                        continue;
                    };
                    // The editor's text wins over the disk while the file is open.
                    if shared
                        .analysis
                        .file(&path)
                        .is_some_and(|f| f.version.is_some())
                    {
                        continue;
                    }
                    dirty.extend(match std::fs::read_to_string(&path) {
                        Ok(text) if change.typ != FileChangeType::DELETED => {
                            shared.analysis.set_text(&path, text, None)
                        }
                        _ => shared.analysis.remove(&path),
                    });
                }
                dirty
            })
            .await;
        dirty.sort();
        dirty.dedup();
        self.publish(dirty).await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let document = &params.text_document_position_params;
        Ok(self
            .at(document, |shared, path, offset| {
                let (text, (start, end)) = hover::hover(&shared.analysis, path, offset)?;
                let file = shared.analysis.file(path)?;
                Some(Hover {
                    contents: HoverContents::Markup(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: text,
                    }),
                    range: Some(file.lines.range(file.text(), start, end)),
                })
            })
            .await)
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let document = &params.text_document_position_params;
        Ok(self
            .at(document, |shared, path, offset| {
                let found: Vec<Location> = navigate::definition(&shared.analysis, path, offset)
                    .iter()
                    .filter_map(|p| shared.location(p))
                    .collect();
                (!found.is_empty()).then_some(GotoDefinitionResponse::Array(found))
            })
            .await)
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let declaration = params.context.include_declaration;
        let found = self
            .at(&params.text_document_position, |shared, path, offset| {
                navigate::references(&shared.analysis, path, offset, declaration)
                    .iter()
                    .filter_map(|p| shared.location(p))
                    .collect::<Vec<_>>()
            })
            .await;
        Ok(Some(found))
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let found = self
            .at(&params.text_document_position, |shared, path, offset| {
                complete::complete(&shared.analysis, path, offset)
            })
            .await;
        Ok(Some(CompletionResponse::Array(found)))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        let data = self
            .on_file(&params.text_document.uri, tokens::semantic_tokens)
            .await;
        Ok(Some(SemanticTokensResult::Tokens(SemanticTokens {
            result_id: None,
            data,
        })))
    }

    async fn code_lens(&self, params: CodeLensParams) -> Result<Option<Vec<CodeLens>>> {
        let uri = &params.text_document.uri;
        let found = self
            .on_file(uri, |analysis, path| {
                tests_view::code_lenses(analysis, path, uri)
            })
            .await;
        Ok(Some(found))
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        let found = self
            .on_file(&params.text_document.uri, |analysis, path| {
                tests_view::inlay_hints(analysis, path, params.range)
            })
            .await;
        Ok(Some(found))
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let found = self
            .on_file(&params.text_document.uri, symbols::document_symbols)
            .await;
        Ok(Some(DocumentSymbolResponse::Nested(found)))
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        match params.command.as_str() {
            tests_view::RUN_TEST => self.run_test(&params.arguments).await,
            other => Err(Error::invalid_params(format!("unknown command `{other}`"))),
        }
    }
}
