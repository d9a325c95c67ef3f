//! An in-process LSP client: real JSON-RPC messages into the server's tower `Service`, and the
//! server's notifications out of its socket.

#![allow(dead_code)] // Each test binary uses part of the client.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use koreo_lsp::{Backend, LspService};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};
use tower_lsp_server::jsonrpc::{Request, Response};

/// How long to wait for a notification the server should send.
const WAIT: Duration = Duration::from_secs(20);

pub struct Client {
    service: LspService<Backend>,
    notifications: mpsc::UnboundedReceiver<Value>,
    next_id: i64,
    /// Diagnostics received and not yet taken, by URI.
    pub diagnostics: HashMap<String, Vec<Value>>,
    /// What the server said it can do.
    pub capabilities: Value,
}

/// A workspace on disk for one test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(files: &[(&str, &str)]) -> Workspace {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (name, text) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, text).unwrap();
        }
        Workspace { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn uri(&self, name: &str) -> String {
        uri(&self.path(name))
    }
}

pub fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

impl Client {
    /// Starts the server on a workspace folder: `initialize`, then `initialized`.
    pub async fn start(root: &Path) -> Client {
        let (service, socket) = koreo_lsp::service();
        let (sender, notifications) = mpsc::unbounded_channel();
        let (mut requests, mut responses) = socket.split();
        // Forward notifications to the test; answer the server's own requests with `null`.
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                match message.id() {
                    Some(id) => {
                        let reply = Response::from_ok(id.clone(), Value::Null);
                        if responses.send(reply).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let value = serde_json::to_value(&message).unwrap();
                        if sender.send(value).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut client = Client {
            service,
            notifications,
            next_id: 0,
            diagnostics: HashMap::new(),
            capabilities: Value::Null,
        };
        let init = client
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": uri(root),
                    "capabilities": {},
                    "workspaceFolders": [{"uri": uri(root), "name": "test"}],
                }),
            )
            .await;
        client.capabilities = init["capabilities"].clone();
        client.notify("initialized", json!({})).await;
        client
    }

    async fn send(&mut self, message: Value) -> Option<Response> {
        let request: Request = serde_json::from_value(message).expect("a JSON-RPC message");
        let service = self.service.ready().await.expect("the server is running");
        service.call(request).await.expect("the server is running")
    }

    /// Sends a request and returns its result; fails the test on an error response.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let (id, body) = self.try_request(method, params).await;
        match body {
            Ok(value) => value,
            Err(e) => panic!("{method} (id {id}) failed: {e:?}"),
        }
    }

    pub async fn try_request(
        &mut self,
        method: &str,
        params: Value,
    ) -> (i64, Result<Value, tower_lsp_server::jsonrpc::Error>) {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.send(message).await.expect("a request gets a response");
        let (_, body) = response.into_parts();
        (id, body)
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        assert!(
            self.send(message).await.is_none(),
            "notifications get no response"
        );
    }

    /// The next notification of a method (others are recorded: diagnostics are kept).
    pub async fn next_notification(&mut self, method: &str) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.notifications.recv())
                .await
                .unwrap_or_else(|_| panic!("no {method} within {WAIT:?}"))
                .expect("the server is running");
            let params = message["params"].clone();
            if message["method"] == "textDocument/publishDiagnostics" {
                let uri = params["uri"].as_str().unwrap_or_default().to_string();
                let list = params["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.diagnostics.insert(uri, list);
            }
            if message["method"] == method {
                return params;
            }
        }
    }

    /// The diagnostics of a URI received and not yet taken, waiting for them if there are none.
    pub async fn diagnostics_of(&mut self, uri: &str) -> Vec<Value> {
        loop {
            if let Some(found) = self.diagnostics.remove(uri) {
                return found;
            }
            self.next_notification("textDocument/publishDiagnostics")
                .await;
        }
    }

    /// Takes every notification already sent, without waiting.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(message) = self.notifications.try_recv() {
            if message["method"] == "textDocument/publishDiagnostics" {
                let params = &message["params"];
                let uri = params["uri"].as_str().unwrap_or_default().to_string();
                let list = params["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.diagnostics.insert(uri, list);
            }
            out.push(message);
        }
        out
    }

    pub async fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "koreo", "version": 1, "text": text}}),
        )
        .await;
    }

    /// Replaces a range (0-based line and UTF-16 column) of an open document.
    pub async fn edit(&mut self, uri: &str, version: i32, range: [u32; 4], text: &str) {
        let [l1, c1, l2, c2] = range;
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{
                    "range": {"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}},
                    "text": text,
                }],
            }),
        )
        .await;
    }

    /// Replaces the whole text of an open document.
    pub async fn change(&mut self, uri: &str, version: i32, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        )
        .await;
    }

    /// A request about a position of a document.
    pub async fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        self.request(method, position_params(method, uri, line, character))
            .await
    }

    pub async fn on_document(&mut self, method: &str, uri: &str) -> Value {
        self.request(
            method,
            json!({
                "textDocument": {"uri": uri},
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 10000, "character": 0}},
            }),
        )
        .await
    }
}

/// The parameters of a request about a position (references include the declaration).
pub fn position_params(method: &str, uri: &str, line: u32, character: u32) -> Value {
    let mut params = json!({
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
    });
    if method == "textDocument/references" {
        params["context"] = json!({"includeDeclaration": true});
    }
    params
}

/// The 0-based line and UTF-16 column of the first occurrence of `needle` in `text` (plus
/// `skip` UTF-16 units into it).
pub fn find(text: &str, needle: &str, skip: u32) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` is in the text"));
    let before = &text[..at];
    let line = before.matches('\n').count() as u32;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .encode_utf16()
        .count() as u32;
    (line, column + skip)
}

/// A range as `[start line, start column, end line, end column]`.
pub fn range(value: &Value) -> [u64; 4] {
    let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    [
        n(&value["start"]["line"]),
        n(&value["start"]["character"]),
        n(&value["end"]["line"]),
        n(&value["end"]["character"]),
    ]
}
