//! kubectl, unmodified, against the server: apply, get, patch, delete and get -w.
//! Runs when `kubectl` is on the PATH, and says that it skipped otherwise.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use koreo_testkube::TestKube;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Kubectl {
    kubeconfig: std::path::PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        // A cache per run: kubectl caches discovery per host and port on disk.
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.kubeconfig.with_file_name("cache"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("kubectl starts");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n  labels:\n    app: demo\ndata:\n  greeting: hello\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_patch_delete_and_watch() {
    if !kubectl_available() {
        eprintln!("SKIPPED: kubectl is not on the PATH");
        return;
    }
    let server = TestKube::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("testkube-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let k = Kubectl { kubeconfig };

    let out = tokio::task::spawn_blocking(move || {
        let applied = k.ok(&["apply", "-f", "-"], Some(CONFIGMAP));
        assert!(applied.contains("configmap/demo created"), "{applied}");
        let got = k.ok(
            &[
                "get",
                "configmap",
                "demo",
                "-o",
                "jsonpath={.data.greeting}",
            ],
            None,
        );
        assert_eq!(got, "hello");
        let patched = k.ok(
            &[
                "patch",
                "configmap",
                "demo",
                "--type",
                "merge",
                "-p",
                r#"{"data":{"greeting":"hi"}}"#,
            ],
            None,
        );
        assert!(patched.contains("patched"), "{patched}");
        let ops = r#"[{"op":"add","path":"/data/extra","value":"x"}]"#;
        k.ok(
            &["patch", "configmap", "demo", "--type", "json", "-p", ops],
            None,
        );
        let extra = k.ok(
            &["get", "configmap", "demo", "-o", "jsonpath={.data.extra}"],
            None,
        );
        assert_eq!(extra, "x");
        // Watch in the background while the object changes and goes away.
        let mut watch = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&k.kubeconfig)
            .arg("--cache-dir")
            .arg(k.kubeconfig.with_file_name("cache"))
            .args([
                "get",
                "configmap",
                "demo",
                "-w",
                "-o",
                "jsonpath={.data.greeting}{\"\\n\"}",
                "--request-timeout=10s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        k.ok(
            &[
                "patch",
                "configmap",
                "demo",
                "--type",
                "merge",
                "-p",
                r#"{"data":{"greeting":"hey"}}"#,
            ],
            None,
        );
        std::thread::sleep(Duration::from_millis(500));
        let deleted = k.ok(&["delete", "configmap", "demo"], None);
        assert!(deleted.contains("deleted"), "{deleted}");
        std::thread::sleep(Duration::from_millis(500));
        let _ = watch.kill();
        let watched = watch.wait_with_output().unwrap();
        let gone = k.run(&["get", "configmap", "demo"], None);
        (
            String::from_utf8_lossy(&watched.stdout).into_owned(),
            String::from_utf8_lossy(&gone.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let (watched, gone) = out;
    assert!(
        watched.lines().any(|l| l == "hi"),
        "watch saw the current state: {watched:?}"
    );
    assert!(
        watched.lines().any(|l| l == "hey"),
        "watch saw the change: {watched:?}"
    );
    assert!(
        gone.contains("NotFound") || gone.contains("not found"),
        "{gone}"
    );
}
