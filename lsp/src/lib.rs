//! The Koreo language server: diagnostics as you type (everything `koreo check` finds, and
//! failing FunctionTest cases), hover, go to definition, references, outline, completion,
//! semantic tokens for expressions, a "Run test" lens and each test case's result inline.
//!
//! [`service`] builds the LSP service (tower's `Service` over JSON-RPC messages, as tests drive
//! it); [`run`] serves it over stdin and stdout, as `koreo lsp` does.

mod cel_text;
mod complete;
mod cursor;
mod diagnostics;
mod document;
mod hover;
mod library;
mod navigate;
mod server;
mod state;
mod symbols;
mod tests_view;
mod text;
mod tokens;
mod types;

pub use server::Backend;
pub use tower_lsp_server::{ClientSocket, LspService};

/// The language server as a service, and the socket for what it sends to the client.
pub fn service() -> (LspService<Backend>, ClientSocket) {
    LspService::new(Backend::new)
}

/// `koreo lsp`: serves LSP over stdin and stdout until the client exits.
pub fn run() -> std::process::ExitCode {
    match serve_stdio() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot start the language server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve_stdio() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (service, socket) = service();
        let (to_server, server_input) = tokio::io::duplex(1 << 16);
        tokio::spawn(pass_json_messages(tokio::io::stdin(), to_server));
        tower_lsp_server::Server::new(server_input, tokio::io::stdout(), socket)
            .serve(service)
            .await;
    });
    Ok(())
}

/// Serves `input` as a whole session (what a client would send on stdin), discarding what the
/// server answers; returns when the server has read all of it. For fuzzing the input side.
pub fn serve_bytes(input: &[u8]) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let (service, socket) = service();
        let (to_server, server_input) = tokio::io::duplex(1 << 16);
        tokio::spawn(pass_json_messages(
            std::io::Cursor::new(input.to_vec()),
            to_server,
        ));
        tower_lsp_server::Server::new(server_input, tokio::io::sink(), socket)
            .serve(service)
            .await;
    });
}

/// Passes the client's messages on, framed as they came, but only those whose body is JSON:
/// the server's reader ends the session at the first message it cannot parse (a codec error
/// ends its stream), so a malformed one is reported on stderr and left out instead.
async fn pass_json_messages(
    mut input: impl tokio::io::AsyncRead + Unpin,
    mut output: impl tokio::io::AsyncWrite + Unpin,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        // Pass on every whole message in the buffer.
        while let Some(header_end) = find(&buffer, b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buffer[..header_end]).to_string();
            let length = headers.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            let Some(length) = length else {
                // Not a header block: skip to the next one that could be.
                eprintln!("koreo lsp: skipped input without a Content-Length header");
                let next = find(&buffer[1..], b"Content-Length").map_or(buffer.len(), |i| i + 1);
                buffer.drain(..next);
                continue;
            };
            let body_start = header_end + 4;
            if buffer.len() < body_start + length {
                break;
            }
            let body = &buffer[body_start..body_start + length];
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                if output
                    .write_all(&buffer[..body_start + length])
                    .await
                    .is_err()
                {
                    return;
                }
            } else if length > 0 {
                eprintln!("koreo lsp: ignored a message whose body is not JSON ({length} bytes)");
            }
            buffer.drain(..body_start + length);
        }
        match input.read(&mut chunk).await {
            Ok(0) | Err(_) => return, // the client is gone: the server sees the end too
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
