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
        tower_lsp_server::Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
            .serve(service)
            .await;
    });
    Ok(())
}
