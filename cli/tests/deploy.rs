//! The install manifests (deploy/, crds/): both overlays render with kustomize, and what they
//! render is what docs/install.md promises: a non-root controller with probes and resources, its
//! own RBAC cluster-wide or in one namespace, a PodDisruptionBudget, a metrics Service, and
//! everything in `koreo-system`.
//!
//! Rendering needs `kubectl` (its `kustomize` subcommand, which needs no cluster); without it
//! these tests print "skipped: kubectl not found" and pass. They render a copy of deploy/ and
//! crds/, with a stand-in for any CRD file not generated yet, so that the manifests are checked
//! on their own; `crds_kustomization_lists_the_generated_crds` is the test that the real CRD
//! files are there.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NS: &str = "koreo-system";

/// The koreo.dev kinds, by plural: `crds/koreo.dev_<plural>.yaml` each.
const KINDS: [(&str, &str); 6] = [
    ("valuefunctions", "ValueFunction"),
    ("resourcefunctions", "ResourceFunction"),
    ("resourcetemplates", "ResourceTemplate"),
    ("workflows", "Workflow"),
    ("functiontests", "FunctionTest"),
    ("workflowtests", "WorkflowTest"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is in the workspace")
        .to_path_buf()
}

fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    koreo_lang::yaml::parse_documents(text)
        .unwrap_or_else(|e| panic!("{what}: invalid YAML at {:?}: {}", e.pos, e.message))
        .iter()
        .map(|d| d.root.to_json())
        .collect()
}

/// The files crds/kustomization.yaml lists.
fn listed_crd_files() -> Vec<String> {
    let path = repo().join("crds/kustomization.yaml");
    let text = std::fs::read_to_string(&path).expect("crds/kustomization.yaml");
    let docs = yaml_documents(&text, "crds/kustomization.yaml");
    docs[0]["resources"]
        .as_array()
        .expect("crds/kustomization.yaml has resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_string())
        .collect()
}

#[test]
fn crds_kustomization_lists_the_generated_crds() {
    let listed = listed_crd_files();
    let expected: Vec<String> = KINDS
        .iter()
        .map(|(plural, _)| format!("koreo.dev_{plural}.yaml"))
        .collect();
    assert_eq!(listed, expected, "crds/kustomization.yaml");
    for ((plural, kind), file) in KINDS.iter().zip(&listed) {
        let path = repo().join("crds").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "crds/{file} is listed in crds/kustomization.yaml but cannot be read ({e}): \
                 `kubectl apply -k deploy/overlays/...` fails until the CRDs are generated"
            )
        });
        let docs = yaml_documents(&text, file);
        assert_eq!(docs.len(), 1, "crds/{file}: one CRD");
        let crd = &docs[0];
        assert_eq!(crd["kind"], "CustomResourceDefinition", "crds/{file}");
        assert_eq!(crd["metadata"]["name"], format!("{plural}.koreo.dev"));
        assert_eq!(crd["spec"]["group"], "koreo.dev", "crds/{file}");
        assert_eq!(crd["spec"]["names"]["kind"], *kind, "crds/{file}");
        assert_eq!(crd["spec"]["scope"], "Namespaced", "crds/{file}");
    }
}

/// A copy of deploy/ and crds/ under the temporary directory, removed when dropped.
struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn tree(name: &str) -> Tree {
    let root = std::env::temp_dir().join(format!("koreo-deploy-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    copy_dir(&repo().join("deploy"), &root.join("deploy"));
    copy_dir(&repo().join("crds"), &root.join("crds"));
    for (plural, kind) in KINDS {
        let file = root.join(format!("crds/koreo.dev_{plural}.yaml"));
        if !file.exists() {
            // A stand-in: crds_kustomization_lists_the_generated_crds reports the missing file.
            let crd = format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                 metadata:\n  name: {plural}.koreo.dev\nspec:\n  group: koreo.dev\n  \
                 names: {{kind: {kind}, plural: {plural}}}\n  scope: Namespaced\n  versions: []\n"
            );
            std::fs::write(file, crd).unwrap();
        }
    }
    Tree(root)
}

/// `kubectl kustomize` of an overlay of the tree, as objects; None when there is no kubectl.
fn render(tree: &Tree, overlay: &str) -> Option<Vec<Value>> {
    let dir = tree.0.join("deploy/overlays").join(overlay);
    // Rendering needs no cluster: KUBECONFIG points nowhere so that no kubectl reaches one (the
    // one gcloud ships picks its version by asking the current context's server).
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .env("KUBECONFIG", tree.0.join("no-kubeconfig"))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: kubectl not found (needed for `kubectl kustomize`)");
            return None;
        }
        Err(e) => panic!("kubectl: {e}"),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/overlays/{overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Some(yaml_documents(&text, overlay))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {}", summary(objects)))
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn summary(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["namespace"].as_str().unwrap_or("-"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether `rules` grant `verb` on `resource` of API group `group`.
fn grants(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    rules.as_array().into_iter().flatten().any(|rule| {
        strs(&rule["apiGroups"]).contains(&group)
            && strs(&rule["resources"]).contains(&resource)
            && strs(&rule["verbs"]).contains(&verb)
    })
}

/// The controller's own permissions, wherever it watches.
fn assert_controller_rules(rules: &Value, what: &str) {
    for (plural, _) in KINDS {
        for verb in ["get", "list", "watch"] {
            assert!(
                grants(rules, "koreo.dev", plural, verb),
                "{what}: {verb} {plural}"
            );
        }
        for verb in ["patch", "update"] {
            let status = format!("{plural}/status");
            assert!(
                grants(rules, "koreo.dev", &status, verb),
                "{what}: {verb} {status}"
            );
        }
    }
    for group in ["", "events.k8s.io"] {
        for verb in ["create", "patch"] {
            assert!(
                grants(rules, group, "events", verb),
                "{what}: {verb} events in {group:?}"
            );
        }
    }
}

/// No wildcard anywhere: the controller's RBAC names every group, resource and verb.
fn assert_no_wildcards(objects: &[Value]) {
    for o in objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
        for rule in o["rules"].as_array().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !strs(&rule[field]).contains(&"*"),
                    "{} {}: a wildcard in {field}",
                    o["kind"],
                    o["metadata"]["name"]
                );
            }
        }
    }
}

/// Every binding is to the controller's ServiceAccount, and to a role of this install.
fn assert_bindings(objects: &[Value]) {
    for b in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let what = format!("{} {}", b["kind"], b["metadata"]["name"]);
        assert_eq!(
            b["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "koreo", "namespace": NS}]),
            "{what}"
        );
        let role_kind = b["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role = find(objects, role_kind, b["roleRef"]["name"].as_str().unwrap());
        if b["kind"] == "RoleBinding" && role_kind == "Role" {
            assert_eq!(
                role["metadata"]["namespace"], b["metadata"]["namespace"],
                "{what}: its Role is in its namespace"
            );
        }
    }
}

/// The port a probe names, as a number.
fn probe_port(container: &Value, probe: &Value) -> i64 {
    let port = &probe["httpGet"]["port"];
    if let Some(n) = port.as_i64() {
        return n;
    }
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == *port)
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("the probe's port {port} is not a container port"))
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("matchLabels");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels[k] == *v)
}

/// What both overlays have. Returns the controller container's args.
fn assert_common(objects: &[Value], other_namespace: Option<&str>) -> Vec<String> {
    find(objects, "Namespace", NS);
    for (plural, _) in KINDS {
        find(
            objects,
            "CustomResourceDefinition",
            &format!("{plural}.koreo.dev"),
        );
    }
    for o in objects {
        let what = format!("{} {}", o["kind"], o["metadata"]["name"]);
        let namespace = &o["metadata"]["namespace"];
        match o["kind"].as_str().unwrap() {
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" => {
                assert!(namespace.is_null(), "{what} is cluster-scoped")
            }
            "Role" | "RoleBinding"
                if other_namespace.is_some() && o["metadata"]["name"] == "koreo" =>
            {
                assert_eq!(
                    namespace.as_str(),
                    other_namespace,
                    "{what}: the watched namespace"
                )
            }
            _ => assert_eq!(namespace, NS, "{what}"),
        }
    }
    find(objects, "ServiceAccount", "koreo");
    assert_eq!(of_kind(objects, "Deployment").count(), 1);

    let deployment = find(objects, "Deployment", "koreo");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(labels_match(&spec["selector"]["matchLabels"], pod_labels));
    assert_eq!(pod["serviceAccountName"], "koreo");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"], "ghcr.io/koreo-rs/koreo:latest");
    let args: Vec<String> = strs(&c["args"]).into_iter().map(String::from).collect();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    for arg in [
        "--metrics-addr=0.0.0.0:8080",
        "--leader-elect",
        "--log-format=json",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} in {args:?}");
    }
    assert!(
        c["command"].is_null(),
        "the image's entrypoint is the binary"
    );
    let pod_namespace = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "POD_NAMESPACE")
        .expect("POD_NAMESPACE in env");
    assert_eq!(
        pod_namespace["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );

    let liveness = &c["livenessProbe"];
    assert_eq!(liveness["httpGet"]["path"], "/healthz");
    assert_eq!(probe_port(c, liveness), 8080);
    let readiness = &c["readinessProbe"];
    assert_eq!(readiness["httpGet"]["path"], "/readyz");
    assert_eq!(probe_port(c, readiness), 8080);

    let resources = &c["resources"];
    assert!(resources["requests"]["cpu"].is_string(), "a CPU request");
    assert!(
        resources["requests"]["memory"].is_string(),
        "a memory request"
    );
    assert!(resources["limits"]["memory"].is_string(), "a memory limit");

    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_ne!(sc["privileged"], true, "not privileged");

    let service = of_kind(objects, "Service")
        .find(|s| {
            s["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "metrics" && p["port"] == 8080)
        })
        .unwrap_or_else(|| panic!("a Service with port `metrics` 8080: {}", summary(objects)));
    assert!(
        labels_match(&service["spec"]["selector"], pod_labels),
        "the metrics Service selects the controller's pods"
    );

    let pdbs: Vec<&Value> = of_kind(objects, "PodDisruptionBudget").collect();
    assert_eq!(pdbs.len(), 1, "one PodDisruptionBudget");
    assert_eq!(pdbs[0]["apiVersion"], "policy/v1");
    assert_eq!(pdbs[0]["spec"]["minAvailable"], 1);
    assert!(labels_match(
        &pdbs[0]["spec"]["selector"]["matchLabels"],
        pod_labels
    ));

    // Leader election: the Lease in the controller's own namespace, in both overlays.
    let leases = of_kind(objects, "Role")
        .find(|r| {
            r["metadata"]["namespace"] == NS
                && grants(&r["rules"], "coordination.k8s.io", "leases", "create")
        })
        .unwrap_or_else(|| panic!("a Role for leases in {NS}: {}", summary(objects)));
    for verb in ["get", "list", "watch", "create", "update", "patch"] {
        assert!(
            grants(&leases["rules"], "coordination.k8s.io", "leases", verb),
            "{verb} leases"
        );
    }
    assert!(
        of_kind(objects, "RoleBinding").any(|b| b["roleRef"]["name"] == leases["metadata"]["name"]),
        "the leases Role is bound"
    );

    assert_no_wildcards(objects);
    assert_bindings(objects);
    args
}

#[test]
fn cluster_wide_overlay() {
    let tree = tree("cluster-wide");
    let Some(objects) = render(&tree, "cluster-wide") else {
        return;
    };
    let args = assert_common(&objects, None);
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--namespace") || a == "-n"),
        "all namespaces: {args:?}"
    );

    let role = find(&objects, "ClusterRole", "koreo");
    assert_controller_rules(&role["rules"], "ClusterRole koreo");
    assert!(grants(
        &role["rules"],
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "list"
    ));
    find(&objects, "ClusterRoleBinding", "koreo");
    // Namespaced roles: only leader election's, in koreo-system.
    for r in of_kind(&objects, "Role") {
        assert_eq!(r["metadata"]["namespace"], NS);
        assert!(!grants(&r["rules"], "koreo.dev", "workflows", "list"));
    }
}

#[test]
fn namespaced_overlay() {
    let tree = tree("namespaced");
    let Some(objects) = render(&tree, "namespaced") else {
        return;
    };
    let args = assert_common(&objects, Some("default"));
    assert_eq!(
        args.iter()
            .filter(|a| a.starts_with("--namespace"))
            .collect::<Vec<_>>(),
        ["--namespace=default"]
    );

    let role = find(&objects, "Role", "koreo");
    assert_eq!(role["metadata"]["namespace"], "default");
    assert_controller_rules(&role["rules"], "Role koreo");
    let binding = find(&objects, "RoleBinding", "koreo");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    // CRDs are cluster-scoped: the one ClusterRole reads them, and grants nothing else.
    let cluster_roles: Vec<&Value> = of_kind(&objects, "ClusterRole").collect();
    assert_eq!(cluster_roles.len(), 1, "{}", summary(&objects));
    for rule in cluster_roles[0]["rules"].as_array().expect("rules") {
        assert_eq!(strs(&rule["apiGroups"]), ["apiextensions.k8s.io"]);
        assert_eq!(strs(&rule["resources"]), ["customresourcedefinitions"]);
        assert!(
            strs(&rule["verbs"])
                .iter()
                .all(|v| ["get", "list", "watch"].contains(v))
        );
    }
    assert!(grants(
        &cluster_roles[0]["rules"],
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "watch"
    ));

    // The watched namespace is set in one place, the Role's namespace; the rest follows.
    let rbac = tree.0.join("deploy/overlays/namespaced/rbac.yaml");
    let text = std::fs::read_to_string(&rbac).unwrap();
    let edited = text.replacen("namespace: default", "namespace: team-a", 1);
    assert_ne!(text, edited, "rbac.yaml starts with the Role in `default`");
    std::fs::write(&rbac, edited).unwrap();
    let objects = render(&tree, "namespaced").expect("kubectl rendered once already");
    let args = assert_common(&objects, Some("team-a"));
    assert!(args.iter().any(|a| a == "--namespace=team-a"), "{args:?}");
    assert_eq!(
        find(&objects, "RoleBinding", "koreo")["metadata"]["namespace"],
        "team-a"
    );
}
