//! The `wasmkube` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmkube::cidr::Cidr;
use wasmkube::cluster::{Cluster, ClusterConfig};
use wasmkube::image_cli::{ImageCommand, ImageGcFlags, RegistryFlags};
use wasmkube::play::{PlayOptions, play};
use wasmkube::server::{self, pki};
use wasmkube_runtime::Backoff;

#[derive(Parser)]
#[command(
    name = "wasmkube",
    version,
    about = "Kubernetes-compatible orchestrator of WebAssembly (WASI) containers"
)]
struct Cli {
    /// Data directory: images, compile cache, pods [default: $WASMKUBE_DATA_DIR or ~/.local/share/wasmkube]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
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
    Serve {
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
        #[command(flatten)]
        registry: RegistryFlags,
        #[command(flatten)]
        image_gc: ImageGcFlags,
    },
    /// Manage the local image store: pull, import, list, remove
    #[command(subcommand)]
    Image(ImageCommand),
}

/// `wasmkube serve`: the cluster behind HTTPS until Ctrl-C or SIGTERM.
async fn serve(
    config: ClusterConfig,
    listen: SocketAddr,
    insecure_http: bool,
    data_dir: &Path,
) -> anyhow::Result<()> {
    if insecure_http && !listen.ip().is_loopback() {
        anyhow::bail!(
            "--insecure-http serves without TLS, so it is allowed on loopback addresses only (not {})",
            listen.ip()
        );
    }
    let started = std::time::Instant::now();
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        config.node_name.clone(),
    ];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    let pki = pki::load_or_create(&data_dir.join("pki"), &names)
        .context("preparing the server's certificates")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    let cluster = Cluster::start(config)
        .await
        .context("starting the cluster")?;
    cluster
        .publish_api(address)
        .await
        .context("publishing the API's endpoints")?;
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if address.is_ipv6() {
        format!("[{}]", address.ip())
    } else {
        address.ip().to_string()
    };
    let scheme = if insecure_http { "http" } else { "https" };
    let url = format!("{scheme}://{host}:{}", address.port());
    let kubeconfig = data_dir.join("kubeconfig");
    server::write_kubeconfig(
        &kubeconfig,
        &url,
        (!insecure_http).then_some(pki.ca_pem.as_str()),
        &pki.token,
    )
    .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let tls = if insecure_http {
        None
    } else {
        Some(server::tls_config(&pki).context("configuring TLS")?)
    };
    let router = cluster.router(Some(pki.token.clone().into()));
    println!(
        "wasmkube is serving the Kubernetes API on {url} (ready in {} ms)",
        started.elapsed().as_millis()
    );
    println!("kubeconfig: {}", kubeconfig.display());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get nodes");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server::serve(listener, router, tls, wasmkube::play::shutdown_signal()).await?;
    eprintln!("wasmkube: stopping pods and closing the store");
    cluster.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMKUBE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        Command::Serve {
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
            registry,
            image_gc,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("wasmkube-control")
                .enable_all()
                .build()
                .context("starting the control runtime")?;
            let mut config = ClusterConfig::new(&data_dir);
            if let Some(name) = node_name {
                config.node_name = name;
            }
            config.backoff = Backoff {
                initial: restart_backoff,
                ..Backoff::default()
            };
            config.pod_cidr = pod_cidr;
            config.service_network.cidr = service_cidr;
            config.node_port_address = node_port_address;
            config.max_pods = max_pods;
            config.job_backoff.base = job_backoff;
            config.allowed_host_paths = allowed_host_paths;
            config.event_ttl = event_ttl;
            config.registry = registry.config()?;
            config.default_registry = registry.default_registry;
            (config.image_gc, config.image_gc_period) = image_gc.policy()?;
            let result = runtime.block_on(serve(config, listen, insecure_http, &data_dir));
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
    }
}
