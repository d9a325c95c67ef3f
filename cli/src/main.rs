//! The `koreo` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dev;
mod inspect;
mod run;
mod ui;

// Parsing and evaluation allocate many small values, from several threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use koreo_lang::expr::{Expr, Scope};
use koreo_lang::source::Diagnostic;
use koreo_lang::{Workspace, analysis};
use serde_json::Value as Json;

#[derive(Parser)]
#[command(
    name = "koreo",
    version,
    about = "Koreo: composable control loops for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

/// What `check` reports as: no JUnit, which is for test results.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CheckFormat {
    Text,
    Json,
}

/// What `graph` draws as.
#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Svg,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FunctionTests and WorkflowTests found under the paths.
    ///
    /// Exit status: 0 when every case passed, 1 when a case failed, 2 when a file could not be
    /// loaded, a test (or what it tests) did not validate, or `--filter` matched no test.
    Test {
        /// Files or directories (searched recursively); the current directory by default. The
        /// tests of a file run with the definitions of the files beside it.
        paths: Vec<PathBuf>,
        /// Run only tests whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Load and validate definitions without running anything.
    Check {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
        /// A folder of schemas to type resources with: CRD files, and a `kubernetes.json` of
        /// built-in kinds (as `koreo schemas pull` writes). Repeat for several.
        #[arg(long = "schemas", value_name = "DIR")]
        schemas: Vec<PathBuf>,
        /// Also show hints: what is not wrong but may fail (K0503, a read of a field the
        /// schema does not require with no `has()` before it). Editors show them anyway.
        #[arg(long)]
        hints: bool,
    },
    /// Start a local Kubernetes API server with the CRDs, definitions and objects under the paths
    /// loaded (no cluster needed).
    Dev {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Write a kubeconfig for the server here, to look at it with kubectl.
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
        /// Serve the API only, without a controller (to try `koreo run` against it).
        #[arg(long)]
        no_controller: bool,
        /// As `koreo run --allow`: let Workflows reach beyond their own and their parent's
        /// namespace (FROM=TO[,TO...]).
        #[arg(long = "allow", value_name = "FROM=TO")]
        allow: Vec<String>,
        /// Serve the read-only web view here ("off" to serve none; port 0: any free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        ui: String,
    },
    /// Run the controller against a cluster: the kubeconfig given, else $KUBECONFIG or
    /// ~/.kube/config, else the in-cluster service account.
    Run(run::Options),
    /// Print the RBAC objects that the workflows under the paths need: the kinds their
    /// ResourceFunctions manage or read and their parent kinds (`| kubectl apply -f -`).
    Rbac {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Grant in these namespaces only (Roles); default: cluster-wide (a ClusterRole).
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
        /// The controller's service account, as NAMESPACE/NAME.
        #[arg(long, default_value = "koreo-system/koreo")]
        service_account: String,
    },
    /// Print the CRDs of the koreo.dev kinds (`| kubectl apply -f -`), or write one file per
    /// kind into a directory.
    Crds {
        /// Write `koreo.dev_<plural>.yaml` files here instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Draw Workflows as the DAG of steps they run: what each step runs, its loop, switch and
    /// skip condition, and the steps of the Workflows it runs, nested.
    Graph {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only this Workflow (needed for `--format svg` when there are several).
        #[arg(long)]
        workflow: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// One parent in the terminal: its conditions, each step's last outcome, and the objects
    /// each step manages (through sub-workflows and forEach items), read from a cluster.
    Inspect {
        /// The parent's kind, as a Workflow's `crdRef` names it (case does not matter).
        kind: String,
        name: String,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// Kubeconfig file (default: as kubectl finds one).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Schemas that `koreo check --schemas` types definitions with.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Serve the Language Server Protocol over stdio (for editors).
    Lsp,
    /// Evaluate one Koreo expression and print the result as JSON.
    Eval {
        /// The expression, with or without the leading `=`.
        expression: String,
        /// Variables as a JSON or YAML mapping, inline or a file path (e.g. `{"inputs": {"a": 1}}`).
        #[arg(long)]
        inputs: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            paths,
            format,
            schemas,
            hints,
        } => check(&paths, &schemas, hints, format),
        Command::Graph {
            paths,
            workflow,
            format,
        } => graph(&paths, workflow.as_deref(), format),
        Command::Inspect {
            kind,
            name,
            namespace,
            kubeconfig,
        } => inspect::run(&kind, &name, &namespace, kubeconfig.as_deref()),
        Command::Schemas(SchemasCommand::Pull { kubeconfig, out }) => {
            schemas_pull(kubeconfig.as_deref(), &out)
        }
        Command::Test {
            paths,
            filter,
            format,
        } => test(&paths, filter.as_deref(), format),
        Command::Eval { expression, inputs } => eval(&expression, inputs.as_deref()),
        Command::Lsp => koreo_lsp::run(),
        Command::Run(options) => run::run(options),
        Command::Crds { out } => crds(out.as_deref()),
        Command::Rbac {
            paths,
            namespaces,
            service_account,
        } => rbac(&paths, &namespaces, &service_account),
        Command::Dev {
            paths,
            port,
            kubeconfig_out,
            no_controller,
            allow,
            ui,
        } => match (
            koreo_runtime::boundary::Boundary::parse(&allow),
            ui.as_str(),
        ) {
            (Err(e), _) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            (Ok(boundary), "off") => dev::run(
                &paths,
                port,
                kubeconfig_out.as_deref(),
                (!no_controller).then_some(boundary),
                None,
            ),
            (Ok(boundary), addr) => match addr.parse() {
                Ok(addr) => dev::run(
                    &paths,
                    port,
                    kubeconfig_out.as_deref(),
                    (!no_controller).then_some(boundary),
                    Some(addr),
                ),
                Err(e) => {
                    eprintln!("error: --ui {addr}: {e} (expected e.g. 127.0.0.1:8081, or off)");
                    ExitCode::from(2)
                }
            },
        },
    }
}

/// Writes to stdout. A reader that went away (`| head`) is not an error worth a panic.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub(crate) fn print_diagnostic(d: &Diagnostic) {
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", koreo::render::render(d, color));
}

fn diagnostic_json(d: &Diagnostic) -> Json {
    serde_json::json!({
        "severity": d.severity.to_string(),
        "code": d.code.id(),
        "file": d.location.path().display().to_string(),
        "line": d.location.span.start.line,
        "column": d.location.span.start.col,
        "message": d.message,
        "hint": d.hint,
    })
}

fn check(paths: &[PathBuf], schemas: &[PathBuf], hints: bool, format: CheckFormat) -> ExitCode {
    let mut ws = Workspace::load_paths(paths);
    for dir in schemas {
        ws.add_schemas(dir);
    }
    let mut diagnostics = ws.diagnostics.clone();
    diagnostics.extend(analysis::check(&ws));
    diagnostics.retain(|d| hints || d.severity != koreo_lang::source::Severity::Hint);
    if matches!(format, CheckFormat::Json) {
        let all: Vec<Json> = diagnostics.iter().map(diagnostic_json).collect();
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&all).unwrap_or_default()
        ));
    } else {
        for d in &diagnostics {
            print_diagnostic(d);
        }
    }
    let count = |severity| {
        diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    };
    use koreo_lang::source::Severity;
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let shown_hints = match count(Severity::Hint) {
        0 => String::new(),
        n => format!(", {n} hints"),
    };
    eprintln!(
        "{} files, {} definitions: {errors} errors, {warnings} warnings{shown_hints}",
        ws.files.len(),
        ws.definitions.len()
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn graph(paths: &[PathBuf], only: Option<&str>, format: GraphFormat) -> ExitCode {
    use koreo::graph;
    let ws = Workspace::load_paths(paths);
    for d in ws.diagnostics.iter().filter(|d| d.is_error()) {
        print_diagnostic(d);
    }
    let workflows: Vec<&koreo_lang::model::Workflow> = ws
        .definitions
        .iter()
        .filter_map(|d| match d {
            koreo_lang::model::Definition::Workflow(w) => Some(&**w),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = workflows.iter().map(|w| w.meta.name.as_str()).collect();
    let chosen: Vec<&koreo_lang::model::Workflow> = match only {
        Some(name) => workflows
            .iter()
            .copied()
            .filter(|w| w.meta.name == name)
            .collect(),
        None => workflows.clone(),
    };
    let listed = || {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (chosen.as_slice(), only, format) {
        ([], Some(name), _) => {
            eprintln!(
                "error: no Workflow named `{name}` here; there are: {}",
                listed()
            );
            return ExitCode::from(2);
        }
        ([], None, _) => {
            eprintln!("error: no Workflow under these paths");
            return ExitCode::from(2);
        }
        ([_, _, ..], None, GraphFormat::Svg) => {
            eprintln!(
                "error: an SVG draws one Workflow: name one with `--workflow` ({})",
                listed()
            );
            return ExitCode::from(2);
        }
        _ => {}
    }
    let drawn: Vec<String> = chosen
        .iter()
        .map(|w| {
            let g = graph::build(&ws, w);
            match format {
                GraphFormat::Dot => graph::dot(&g),
                GraphFormat::Mermaid => graph::mermaid(&g),
                GraphFormat::Svg => graph::svg(&g),
            }
        })
        .collect();
    emit(&drawn.join("\n"));
    ExitCode::SUCCESS
}

#[derive(clap::Subcommand)]
enum SchemasCommand {
    /// Fetch a cluster's CRDs and built-in kinds' schemas into a folder, once: `koreo check
    /// --schemas DIR` then types against exactly that cluster, offline.
    Pull {
        /// Kubeconfig file (default: as kubectl finds one).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The folder to write (created if need be; files of the same names are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn schemas_pull(kubeconfig: Option<&Path>, out: &Path) -> ExitCode {
    let Some(runtime) = dev::async_runtime() else {
        return ExitCode::FAILURE;
    };
    let pulled = runtime.block_on(async {
        let config = run::kube_config(kubeconfig).await?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        koreo_runtime::schemas::pull(&client)
            .await
            .map_err(|e| format!("cannot read the cluster's schemas: {e}"))
    });
    let pulled = match pulled {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for unread in &pulled.unread {
        eprintln!("warning: not read, its kinds are left out: {unread}");
    }
    match write_schemas(&pulled, out) {
        Ok(()) => {
            let built_in = match &pulled.bundle {
                Some(_) => format!("{} built-in kinds", pulled.kinds),
                None => "no built-in kinds (the server has no OpenAPI schemas)".into(),
            };
            eprintln!(
                "wrote {} CRDs and {built_in} of Kubernetes {} to {}",
                pulled.crds.len(),
                pulled.kubernetes,
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write_schemas(pulled: &koreo_runtime::schemas::Pulled, out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    for crd in &pulled.crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or("unnamed");
        let yaml = serde_saphyr::to_string(crd).map_err(std::io::Error::other)?;
        std::fs::write(out.join(format!("{name}.yaml")), yaml)?;
    }
    if let Some(bundle) = &pulled.bundle {
        std::fs::write(out.join(koreo_lang::openapi::BUNDLE_FILE), bundle)?;
    }
    Ok(())
}

fn test(paths: &[PathBuf], filter: Option<&str>, format: Format) -> ExitCode {
    use koreo_testing::report;
    use std::io::IsTerminal;
    let (ws, reports) = load_and_run_tests(paths, filter);
    // Definitions' own errors are shown; only those that stop a test change the exit status.
    for d in ws.diagnostics.iter().filter(|d| d.is_error()) {
        print_diagnostic(d);
    }
    if let (Some(filter), true) = (filter, reports.is_empty()) {
        eprintln!("error: no test's name contains `{filter}`");
        return ExitCode::from(2);
    }
    match format {
        Format::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            emit(&report::text(&reports, color));
        }
        Format::Json => emit(&format!(
            "{}
",
            serde_json::to_string_pretty(&report::json(&reports)).unwrap_or_default()
        )),
        Format::Junit => emit(&report::junit(&reports)),
    }
    let rejected_tests = ws
        .rejected
        .iter()
        .any(|r| r.kind == "FunctionTest" || r.kind == "WorkflowTest");
    if !ws.failed_files.is_empty() || rejected_tests || reports.iter().any(|r| r.error.is_some()) {
        ExitCode::from(2)
    } else if reports.iter().all(koreo_testing::TestReport::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Loads the paths (`.` when none), with the Koreo files beside each file named, and runs the
/// tests of the paths named: a test file finds the definitions it tests next to it.
fn load_and_run_tests(
    paths: &[PathBuf],
    filter: Option<&str>,
) -> (Workspace, Vec<koreo_testing::TestReport>) {
    let named: Vec<PathBuf> = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let ws = Workspace::load_with_neighbours(&named);
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
    let named: Vec<PathBuf> = named.iter().map(|p| canonical(p)).collect();
    let reports = koreo_testing::run_all(&ws, filter)
        .into_iter()
        .filter(|r| {
            let file = canonical(r.location.path());
            named.iter().any(|p| file.starts_with(p))
        })
        .collect();
    (ws, reports)
}

/// Documents as one YAML stream.
fn yaml_documents(documents: &[Json]) -> String {
    documents
        .iter()
        .map(|d| serde_saphyr::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn crds(out: Option<&std::path::Path>) -> ExitCode {
    use koreo_lang::schema;
    let Some(dir) = out else {
        emit(&schema::crds_yaml());
        return ExitCode::SUCCESS;
    };
    for kind in schema::KINDS {
        let path = dir.join(schema::crd_file_name(kind));
        if let Err(e) = std::fs::write(&path, schema::crd_yaml(kind)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}

fn rbac(paths: &[PathBuf], namespaces: &[String], service_account: &str) -> ExitCode {
    let Some((namespace, name)) = service_account.split_once('/') else {
        eprintln!("error: --service-account takes NAMESPACE/NAME, e.g. koreo-system/koreo");
        return ExitCode::from(2);
    };
    let ws = Workspace::load_paths(paths);
    let errors: Vec<_> = ws.diagnostics.iter().filter(|d| d.is_error()).collect();
    for d in &errors {
        print_diagnostic(d);
    }
    if !errors.is_empty() {
        eprintln!("error: fix the definitions first: the permissions would be incomplete");
        return ExitCode::FAILURE;
    }
    let cluster_scoped = koreo_runtime::rbac::cluster_scoped(&ws);
    if !namespaces.is_empty() && !cluster_scoped.is_empty() {
        eprintln!(
            "warning: the workflows manage or read cluster-scoped kinds ({}), which no Role can \
             grant: a ClusterRole is printed for them. Beyond a workflow's own parent, the \
             controller reaches them only if it runs with `--allow NAMESPACE=cluster/Kind` for \
             the Workflows' namespace.",
            cluster_scoped.join(", ")
        );
    }
    let subject = koreo_runtime::rbac::Subject {
        namespace: namespace.to_string(),
        service_account: name.to_string(),
    };
    emit(&yaml_documents(&koreo_runtime::rbac::objects(
        &ws, namespaces, &subject,
    )));
    ExitCode::SUCCESS
}

fn read_variables(text: &str) -> Result<Json, String> {
    let text = match std::fs::read_to_string(text) {
        Ok(contents) => contents,
        Err(_) => text.to_string(),
    };
    let ws_docs = koreo_lang::yaml::parse_documents(&text).map_err(|e| {
        format!(
            "--inputs is not JSON or YAML (line {}, column {}): {}",
            e.pos.line, e.pos.col, e.message
        )
    })?;
    match ws_docs.first().map(|d| d.root.to_json()) {
        Some(Json::Object(map)) => Ok(Json::Object(map)),
        None => Ok(Json::Object(Default::default())),
        Some(_) => Err("--inputs must be a mapping of variable names to values".into()),
    }
}

fn eval(expression: &str, inputs: Option<&str>) -> ExitCode {
    let variables = match inputs.map(read_variables).transpose() {
        Ok(v) => v.unwrap_or_else(|| Json::Object(Default::default())),
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let expr = match Expr::compile_str(expression.strip_prefix('=').unwrap_or(expression)) {
        Ok(e) => e,
        Err(d) => {
            eprintln!("error: {}", d.message);
            return ExitCode::from(2);
        }
    };
    let mut scope = Scope::new();
    if let Json::Object(map) = &variables {
        for (name, value) in map {
            scope.bind(name, value);
        }
    }
    match expr.eval(&scope) {
        Ok(value) => {
            emit(&format!(
                "{}
",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::FAILURE
        }
    }
}
