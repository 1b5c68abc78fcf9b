//! The `wasmkube` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use wasmkube::play::{PlayOptions, play};
use wasmkube_runtime::{Backoff, ImageConfig, ImageRef, ImageStore};

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
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        restart_backoff: Duration,
    },
    /// Manage the local image store
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// List stored images
    List,
    /// Store a .wasm component or WASI p1 module as NAME[:TAG]
    Import {
        /// Name to store it under, e.g. myapp:1.0
        name: String,
        /// The .wasm file
        file: PathBuf,
        /// Default entrypoint (repeat for several words)
        #[arg(long)]
        entrypoint: Vec<String>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (use e.g. 10s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
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
        Command::Image(ImageCommand::List) => {
            let store = ImageStore::open(data_dir.join("images"))?;
            wasmkube_runtime::builtin::seed(&store)?;
            println!("{:<32} {:<20} {:>10}", "IMAGE", "DIGEST", "SIZE");
            for r in store.list()? {
                let digest = r.digest.trim_start_matches("sha256:");
                println!(
                    "{:<32} {:<20} {:>10}",
                    r.reference,
                    &digest[..12.min(digest.len())],
                    r.size
                );
            }
            Ok(())
        }
        Command::Image(ImageCommand::Import {
            name,
            file,
            entrypoint,
        }) => {
            let store = ImageStore::open(data_dir.join("images"))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let reference = ImageRef::parse(&name)?;
            let entrypoint = if entrypoint.is_empty() {
                vec![
                    file.file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("guest")
                        .to_string(),
                ]
            } else {
                entrypoint
            };
            let record = store.import(
                &reference,
                &bytes,
                ImageConfig {
                    entrypoint,
                    ..ImageConfig::default()
                },
            )?;
            println!("{} {}", record.reference, record.digest);
            Ok(())
        }
    }
}
