//! The `wasmkube` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmkube::cidr::Cidr;
use wasmkube::image_cli::{ImageCommand, ImageGcFlags, RegistryFlags};
use wasmkube::play::{PlayOptions, play};
use wasmkube::{Cluster, ClusterBuilder};
use wasmkube_runtime::Backoff;

/// mimalloc, not glibc's malloc: a 10,000-pod scale-up spent a quarter of
/// its CPU in glibc's free lists, and took 1.3-1.5x as long, at the same
/// memory per idle pod (`cargo bench --bench deployment_scale`). Pods'
/// long-lived memory is kept in pages of its own (see `ServerHeap`).
#[global_allocator]
static HEAP: wasmkube_runtime::heap::ServerHeap = wasmkube_runtime::heap::ServerHeap;

#[derive(Parser)]
#[command(
    name = "wasmkube",
    version,
    about = "Kubernetes-compatible orchestrator of WebAssembly (WASI) containers",
    // A flag given again (after a config file's) takes the last value.
    args_override_self = true
)]
struct Cli {
    /// Data directory: images, compile cache, pods [default: $WASMKUBE_DATA_DIR or ~/.local/share/wasmkube]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// How log lines are written to stderr: text (in colour only on a terminal) or json (one object per line); $WASMKUBE_LOG picks what is logged
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr what `$WASMKUBE_LOG` selects (warnings by default), in
/// `format`; colour only when stderr is a terminal, so a file or the
/// journal gets plain text.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMKUBE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the Pods of a manifest on this machine, without a server (like `podman kube play`)
    Play {
        /// Manifest file (YAML or JSON, several documents allowed); `-` reads stdin
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// First restart back-off delay, doubling up to 5 minutes (e.g. 10s, 500ms)
        #[arg(long, default_value = "10s", value_parser = wasmkube::flags::parse_duration)]
        restart_backoff: Duration,
    },
    /// Run a single-node cluster: the Kubernetes API (HTTPS), scheduler, kubelet and controllers
    #[command(args_override_self = true)]
    Serve(Box<ServeFlags>),
    /// Manage the local image store: pull, import, list, remove
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print a kubeconfig for a user of the server on this data directory, with a client certificate its CA signs
    Kubeconfig {
        /// The user's name (the certificate's common name)
        #[arg(long)]
        user: String,
        /// A group the user is in (the certificate's organization); repeat for more
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The namespace of the kubeconfig's context
        #[arg(long, default_value = "default")]
        namespace: String,
        /// How many days the certificate is valid
        #[arg(long, default_value_t = wasmkube::server::kubeconfig::USER_CERTIFICATE_DAYS)]
        days: i64,
    },
    /// Compile the component on stdin to OUTPUT: `serve` runs this in a
    /// child, so Cranelift's memory never stays in the server
    #[command(hide = true)]
    CompileComponent {
        #[arg(long)]
        output: PathBuf,
        /// For the pooled engine HTTP handlers run on
        #[arg(long)]
        pooled: bool,
    },
}

/// Compiling in a child of this very binary (the file it was started
/// from, even when an upgrade replaced it since).
fn child_compiler() -> wasmkube_runtime::engine::Compiler {
    wasmkube_runtime::engine::Compiler::Child {
        program: PathBuf::from("/proc/self/exe"),
        args: vec!["compile-component".into()],
    }
}

/// `wasmkube serve`'s flags.
#[derive(clap::Args)]
struct ServeFlags {
    /// Read flags from this YAML file, each key a flag's long name (`max-pods: 200`; a list repeats the flag), as k3s's config.yaml; flags on the command line win
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to serve the API on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only)
    #[arg(long)]
    insecure_http: bool,
    /// The node's name [default: the host name]
    #[arg(long)]
    node_name: Option<String>,
    /// First restart back-off delay, doubling up to 5 minutes (e.g. 10s, 500ms)
    #[arg(long, default_value = "10s", value_parser = wasmkube::flags::parse_duration)]
    restart_backoff: Duration,
    /// The network pod IPs come from
    #[arg(long, default_value = "10.244.0.0/16")]
    pod_cidr: Cidr,
    /// The network Services' cluster IPs come from
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: Cidr,
    /// Host address node ports and LoadBalancer ports listen on
    #[arg(long, default_value = "0.0.0.0")]
    node_port_address: std::net::IpAddr,
    /// Pods this node takes at most (its `pods` capacity), as the
    /// kubelet's --max-pods; Kubernetes' default is 110
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// How long a Job waits before replacing its first failed pod,
    /// doubled for each further failure up to six minutes (as
    /// Kubernetes' 10s)
    #[arg(long, default_value = "10s", value_parser = wasmkube::flags::parse_duration)]
    job_backoff: Duration,
    /// Host directories pods' hostPath volumes may use (the path or
    /// below it), comma-separated; every path when not given
    #[arg(long, value_delimiter = ',')]
    allowed_host_paths: Option<Vec<PathBuf>>,
    /// How long an Event is kept after it was last written (as the
    /// API server's --event-ttl)
    #[arg(long, default_value = "1h", value_parser = wasmkube::flags::parse_duration)]
    event_ttl: Duration,
    /// How often containers' CPU and memory are scraped for `kubectl
    /// top` and autoscaling (as metrics-server's --metric-resolution);
    /// 0 turns the scrape off
    #[arg(long, default_value = "15s", value_parser = wasmkube::flags::parse_duration)]
    metric_resolution: Duration,
    /// How often every HorizontalPodAutoscaler is evaluated (as
    /// kube-controller-manager's flag)
    #[arg(long, default_value = "15s", value_parser = wasmkube::flags::parse_duration)]
    horizontal_pod_autoscaler_sync_period: Duration,
    /// How long an autoscaler without a `behavior` keeps its highest
    /// recent recommendation before scaling down (as
    /// kube-controller-manager's flag)
    #[arg(long, default_value = "5m", value_parser = wasmkube::flags::parse_duration)]
    horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// Size at which a container's log file rotates (as the kubelet's
    /// flag); each container instance keeps its current file and one
    /// rotated file
    #[arg(long, default_value = "10Mi", value_parser = wasmkube::flags::parse_log_size)]
    container_log_max_size: u64,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    image_gc: ImageGcFlags,
}

/// `wasmkube serve`: the cluster behind HTTPS until Ctrl-C or SIGTERM,
/// telling a service manager (systemd's `Type=notify`) when it is ready
/// and when it stops.
async fn serve(
    builder: ClusterBuilder,
    data_dir: &Path,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    wasmkube_runtime::heap::release_free_every(Duration::from_secs(60));
    let cluster = builder.start().await.context("starting the cluster")?;
    let url = cluster.api_url().unwrap_or_default().to_string();
    let kubeconfig = data_dir.join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    println!(
        "wasmkube is serving the Kubernetes API on {url} (ready in {} ms)",
        started.elapsed().as_millis()
    );
    println!("kubeconfig: {}", kubeconfig.display());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get nodes");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!("serving the Kubernetes API on {url}");
    // Listening for the stop before saying ready: a manager may send it
    // the moment it reads READY.
    let stop = wasmkube::play::shutdown_signal();
    notify_service_manager(&format!(
        "READY=1\nSTATUS=Serving the Kubernetes API on {url}"
    ));
    stop.await;
    notify_service_manager("STOPPING=1\nSTATUS=Stopping pods and closing the store");
    match log_format {
        LogFormat::Text => eprintln!("wasmkube: stopping pods and closing the store"),
        // Every line of a JSON log is a record.
        LogFormat::Json => tracing::info!("stopping pods and closing the store"),
    }
    cluster.shutdown().await;
    Ok(())
}

fn notify_service_manager(state: &str) {
    if let Err(e) = wasmkube::service::notify(state) {
        tracing::warn!("could not notify the service manager: {e}");
    }
}

/// The command line with the flags of `serve --config FILE` in place,
/// before the command line's own; exits with the reason (as a bad flag
/// does) when the file cannot be used.
fn with_config_file(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .expect("serve is a subcommand");
    let known: Vec<&str> = command
        .get_arguments()
        .chain(serve.get_arguments())
        .filter_map(|a| a.get_long())
        .collect();
    wasmkube::config_file::expand(args, "serve", &known).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })
}

fn main() -> anyhow::Result<()> {
    wasmkube_runtime::heap::set_up_for_server();
    let cli = Cli::parse_from(with_config_file(std::env::args_os().collect()));
    init_logging(cli.log_format);
    let data_dir = cli
        .data_dir
        .unwrap_or_else(wasmkube::data_dir::default_data_dir);
    match cli.command {
        Command::Play {
            files,
            restart_backoff,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("wasmkube-control")
                .enable_all()
                .build()
                .context("starting the control runtime")?;
            let backoff = Backoff {
                initial: restart_backoff,
                ..Backoff::default()
            };
            let code = runtime.block_on(play(PlayOptions {
                files,
                data_dir,
                backoff,
            }));
            runtime.shutdown_background();
            match code {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Serve(flags) => {
            let ServeFlags {
                // Read before parsing, by `with_config_file`.
                config: _,
                listen,
                insecure_http,
                node_name,
                restart_backoff,
                pod_cidr,
                service_cidr,
                node_port_address,
                max_pods,
                job_backoff,
                allowed_host_paths,
                event_ttl,
                metric_resolution,
                horizontal_pod_autoscaler_sync_period,
                horizontal_pod_autoscaler_downscale_stabilization,
                container_log_max_size,
                registry,
                image_gc,
            } = *flags;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("wasmkube-control")
                .enable_all()
                .build()
                .context("starting the control runtime")?;
            let (image_gc, image_gc_period) = image_gc.policy()?;
            let mut builder = Cluster::builder()
                .data_dir(&data_dir)
                .listen(listen)
                .plain_http(insecure_http)
                .node_name(node_name.unwrap_or_else(wasmkube::kubelet::default_node_name))
                .restart_backoff(restart_backoff)
                .pod_cidr(pod_cidr.to_string())
                .service_cidr(service_cidr.to_string())
                .node_port_address(node_port_address)
                .max_pods(max_pods)
                .job_backoff(job_backoff)
                .event_ttl(event_ttl)
                .metric_resolution(metric_resolution)
                .autoscaling(
                    horizontal_pod_autoscaler_sync_period,
                    horizontal_pod_autoscaler_downscale_stabilization,
                )
                .registry(registry.config()?)
                .image_gc(image_gc, image_gc_period)
                .container_log_max_size(container_log_max_size)
                .compiler(child_compiler());
            if let Some(host) = registry.default_registry {
                builder = builder.default_registry(host);
            }
            builder = match allowed_host_paths {
                None => builder.allow_any_host_path(),
                Some(dirs) => dirs
                    .into_iter()
                    .fold(builder, ClusterBuilder::allow_host_path),
            };
            let result = runtime.block_on(serve(builder, &data_dir, cli.log_format));
            runtime.shutdown_timeout(Duration::from_secs(2));
            result
        }
        Command::Image(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(wasmkube::image_cli::run(command, &data_dir))
        }
        Command::Kubeconfig {
            user,
            groups,
            namespace,
            days,
        } => {
            let text = wasmkube::server::kubeconfig::for_user(
                &data_dir, &user, &groups, &namespace, days,
            )?;
            print!("{text}");
            Ok(())
        }
        Command::CompileComponent { output, pooled } => {
            Ok(wasmkube_runtime::engine::compile_child(&output, pooled)?)
        }
    }
}
