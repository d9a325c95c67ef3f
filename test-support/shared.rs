//! `../shared` (beside the repository) holds data only this team's CI has: Koreo files written
//! by others, the CEL specification's cases. Tests that read it include this file
//! (`#[path = "../../test-support/shared.rs"] mod shared;`) and, on a clone without it, skip
//! with one line.

use std::io::Write;
use std::path::PathBuf;

/// `../shared/<relative>` when it is there; otherwise `None`, after saying (past the test
/// harness's capture, so it shows) that the calling test is skipped.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    let line = format!(
        "skipped: ../shared/{relative} is not beside this clone (this team's CI data); the test that reads it did not run\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}
