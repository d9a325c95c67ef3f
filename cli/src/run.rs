//! `koreo run`: the controller against a cluster, with metrics and probes, optional leader
//! election, and logs as text or JSON.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use koreo_runtime::boundary::Boundary;
use koreo_runtime::controller::{Controller, DEFAULT_WORKERS};
use koreo_runtime::leader::{LeaseConfig, run_while_leading};
use koreo_runtime::metrics::Metrics;

#[derive(clap::Args)]
pub struct Options {
    /// Kubeconfig file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Watch definitions, parents and managed objects in this namespace; repeat for several
    /// (default: all namespaces).
    #[arg(long = "namespace", short = 'n')]
    namespaces: Vec<String>,
    /// How many parents are reconciled at once.
    #[arg(long, default_value_t = DEFAULT_WORKERS)]
    workers: usize,
    /// At most this many requests to the API server in any one second.
    #[arg(long, default_value_t = 50)]
    qps: u32,
    /// Serve /metrics, /healthz and /readyz here ("off" to serve nothing).
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Serve the read-only web view here (`127.0.0.1:8081`; off unless given).
    #[arg(long, value_name = "ADDR")]
    ui: Option<SocketAddr>,
    /// Reconcile only while holding a Lease, so that one of several replicas works at a time.
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "koreo")]
    lease_name: String,
    /// The Lease's namespace (default: $POD_NAMESPACE, else "default").
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Let the Workflows of a namespace reach more than their own and their parent's namespace:
    /// FROM=TO[,TO...], FROM a namespace or `*`, each TO a namespace, `*` or `cluster`
    /// (cluster-scoped kinds), optionally `/Kind` (`platform=*,cluster/Namespace`). Repeat.
    #[arg(long = "allow", value_name = "FROM=TO")]
    pub allow: Vec<String>,
    /// Log format; the level comes from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One object per line, with the reconcile's and step's fields (parent, workflow, step).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// This replica's name in the Lease and in Events: the pod's name in a cluster.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "koreo".into());
    format!("{host}-{}", std::process::id())
}

/// Ctrl-C, or SIGTERM (what Kubernetes sends a pod it stops).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The client configuration from a kubeconfig file, or as kubectl finds one.
pub async fn kube_config(kubeconfig: Option<&std::path::Path>) -> Result<kube::Config, String> {
    match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| e.to_string())
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    }
}

/// The controller's client (rate-limited, counted) and the Lease's: renewals must not wait
/// behind a queue of reconcile requests.
async fn clients(
    options: &Options,
    metrics: Arc<Metrics>,
) -> Result<(kube::Client, kube::Client), String> {
    let config = kube_config(options.kubeconfig.as_deref()).await?;
    let lease = kube::Client::try_from(config.clone()).map_err(|e| e.to_string())?;
    let controller =
        koreo_runtime::kube_api::client(config, options.qps, metrics).map_err(|e| e.to_string())?;
    Ok((controller, lease))
}

pub fn run(options: Options) -> ExitCode {
    init_logs(options.log_format);
    let metrics_addr: Option<SocketAddr> = match options.metrics_addr.as_str() {
        "off" => None,
        addr => match addr.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("error: --metrics-addr {addr}: {e} (expected e.g. 0.0.0.0:8080, or off)");
                return ExitCode::from(2);
            }
        },
    };
    let boundary = match Boundary::parse(&options.allow) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = crate::dev::async_runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::default());
        let (client, lease_client) = match clients(&options, metrics.clone()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot reach a cluster: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(addr) = metrics_addr {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: cannot serve metrics on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
            tokio::spawn(koreo_runtime::metrics::serve_on(listener, metrics.clone()));
        }
        if let Some(addr) = options.ui {
            match crate::ui::serve(addr, client.clone()).await {
                Ok(bound) => tracing::info!(addr = %bound, "serving the web view"),
                Err(e) => {
                    eprintln!("error: cannot serve the web view on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let identity = identity();
        tracing::info!(
            namespaces = ?options.namespaces,
            workers = options.workers,
            qps = options.qps,
            leader_elect = options.leader_elect,
            reach = %boundary,
            "koreo controller starting"
        );
        let controller = || {
            Controller::new(client.clone())
                .in_namespaces(options.namespaces.clone())
                .with_workers(options.workers)
                .with_metrics(metrics.clone())
                .with_instance(identity.clone())
                .with_boundary(boundary.clone())
                .run()
        };
        let work = async {
            if options.leader_elect {
                // Standby replicas are ready too: they are waiting, not failing.
                metrics.set_ready();
                let namespace = options.lease_namespace.clone().unwrap_or_else(|| {
                    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into())
                });
                let lease = LeaseConfig::new(&options.lease_name, &namespace, &identity);
                run_while_leading(lease_client, lease, controller, stop_signal()).await;
            } else {
                tokio::select! {
                    () = controller() => {}
                    () = stop_signal() => {}
                }
            }
        };
        work.await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}
