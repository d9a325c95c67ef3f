//! The VS Code extension in editors/vscode installs and compiles (when npm is there).

use std::path::Path;
use std::process::Command;

#[test]
fn vscode_extension_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors/vscode");
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        println!("skipped: npm not found");
        return;
    }
    for args in [
        &["install", "--no-audit", "--no-fund"][..],
        &["run", "compile"],
    ] {
        let output = Command::new(npm)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(
            output.status.success(),
            "npm {}:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let compiled = std::fs::read_to_string(dir.join("out/extension.js")).expect("compiled");
    assert!(
        compiled.contains("\"lsp\""),
        "the extension starts `koreo lsp`"
    );
}
