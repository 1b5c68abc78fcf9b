//! `wasmkube image …` and the registry flags `serve` shares with it: the
//! image store driven from a shell, on the data dir of a running server
//! or of none (every write to the store is a file renamed into place).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use wasmkube_runtime::images::gc::GcPolicy;
use wasmkube_runtime::images::registry::{Registry, RegistryConfig};
use wasmkube_runtime::{ImageConfig, ImageRef, ImageStore, Keyring};

/// How the node reaches registries (`serve` and `image` take the same).
#[derive(Debug, Clone, Args)]
pub struct RegistryFlags {
    /// Registry that bare image names (`app:1`) are pulled from when they
    /// are not built in or imported
    #[arg(long)]
    pub default_registry: Option<String>,
    /// HOST:PORT of a registry spoken to over plain HTTP (repeat or
    /// comma-separate); every other registry is reached over TLS
    #[arg(long, value_delimiter = ',')]
    pub insecure_registry: Vec<String>,
    /// Docker-style config.json with credentials for registries
    #[arg(long)]
    pub registry_config: Option<PathBuf>,
    /// PEM file of CA certificates trusted for registries, besides the system's
    #[arg(long)]
    pub registry_ca: Vec<PathBuf>,
}

impl RegistryFlags {
    /// The runtime's registry settings these flags name.
    pub fn config(&self) -> anyhow::Result<RegistryConfig> {
        let mut config = RegistryConfig {
            insecure: self.insecure_registry.clone(),
            ..RegistryConfig::default()
        };
        if let Some(file) = &self.registry_config {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            config.keyring = Keyring::from_docker_config(&bytes)
                .with_context(|| format!("reading {}", file.display()))?;
        }
        for file in &self.registry_ca {
            let pem = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            config.ca_certificates.push(pem);
        }
        Ok(config)
    }
}

/// When `serve` collects unused images (the kubelet's image GC flags).
#[derive(Debug, Clone, Args)]
pub struct ImageGcFlags {
    /// Disk usage (percent) of the data dir's file system at which unused
    /// images start to be removed
    #[arg(long, default_value_t = 85)]
    pub image_gc_high_threshold: u8,
    /// Disk usage (percent) image garbage collection brings it down to
    #[arg(long, default_value_t = 80)]
    pub image_gc_low_threshold: u8,
    /// Most the images may take on disk with their compiled code,
    /// whatever the disk's usage (e.g. 2Gi)
    #[arg(long)]
    pub image_max_size: Option<String>,
    /// Images pulled more recently than this are never removed
    #[arg(long, default_value = "2m", value_parser = crate::flags::parse_duration)]
    pub image_minimum_ttl: std::time::Duration,
    /// How often image garbage collection looks
    #[arg(long, default_value = "5m", value_parser = crate::flags::parse_duration)]
    pub image_gc_period: std::time::Duration,
}

impl ImageGcFlags {
    /// The policy and period these flags name.
    pub fn policy(&self) -> anyhow::Result<(GcPolicy, std::time::Duration)> {
        if self.image_gc_low_threshold > self.image_gc_high_threshold
            || self.image_gc_high_threshold > 100
        {
            anyhow::bail!(
                "--image-gc-low-threshold ({}) must not exceed --image-gc-high-threshold ({}), at most 100",
                self.image_gc_low_threshold,
                self.image_gc_high_threshold
            );
        }
        let max_bytes = match &self.image_max_size {
            None => None,
            Some(size) => Some(
                crate::flags::parse_bytes(size)
                    .map_err(|e| anyhow::anyhow!("--image-max-size: {e}"))?,
            ),
        };
        Ok((
            GcPolicy {
                high_percent: self.image_gc_high_threshold,
                low_percent: self.image_gc_low_threshold,
                max_bytes,
                minimum_age: self.image_minimum_ttl,
            },
            self.image_gc_period
                .max(std::time::Duration::from_millis(100)),
        ))
    }
}

/// `wasmkube image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List stored images
    List,
    /// Pull an image from a registry into the store
    Pull {
        /// host[:port]/name[:tag|@sha256:…]
        reference: String,
        #[command(flatten)]
        registry: RegistryFlags,
    },
    /// Publish a stored image or a .wasm file to a registry: as a CNCF wasm
    /// artifact, or with --files as a standard wasi/wasm image whose layer
    /// holds the directory's files and the component
    Push {
        /// A stored image (`image list`) or a path to a .wasm file
        source: String,
        /// host[:port]/name:tag
        target: String,
        /// A directory whose files the image carries (its root)
        #[arg(long)]
        files: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryFlags,
    },
    /// Forget an image reference (its files go at the next prune)
    Rm {
        /// The reference as `image list` shows it
        reference: Vec<String>,
    },
    /// Delete what no image names any more: components, image files and
    /// compiled code left by `image rm` (and by pulls cut short)
    Prune,
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

/// Runs an image command against the store in `data_dir`.
pub async fn run(command: ImageCommand, data_dir: &Path) -> anyhow::Result<()> {
    let store = ImageStore::open(data_dir.join("images"))?;
    match command {
        ImageCommand::List => {
            wasmkube_runtime::builtin::seed(&store)?;
            println!("{:<48} {:<14} {:>10}", "IMAGE", "DIGEST", "SIZE");
            for r in store.list()? {
                let digest = r
                    .manifest_digest
                    .as_deref()
                    .unwrap_or(&r.digest)
                    .trim_start_matches("sha256:");
                println!(
                    "{:<48} {:<14} {:>10}",
                    r.reference,
                    &digest[..12.min(digest.len())],
                    r.size
                );
            }
        }
        ImageCommand::Pull {
            reference,
            registry,
        } => {
            let store = store.with_default_registry(registry.default_registry.clone());
            let canonical = store.canonical(&reference)?;
            if canonical.registry.is_none() {
                anyhow::bail!(
                    "{reference} names no registry (host[:port]/name:tag) and there is no --default-registry"
                );
            }
            let started = std::time::Instant::now();
            let pulled = Registry::new(store, registry.config()?)
                .pull(&canonical, &Keyring::default())
                .await?;
            let digest = pulled.record.manifest_digest.as_deref().unwrap_or_default();
            println!(
                "{canonical} {digest} {} bytes{} in {:.2}s",
                pulled.record.size,
                if pulled.fetched { "" } else { " (up to date)" },
                started.elapsed().as_secs_f64()
            );
        }
        ImageCommand::Push {
            source,
            target,
            files,
            registry,
        } => {
            let path = Path::new(&source);
            // In an image with files, the component is `/<file name>` for
            // a file, `/<name>` for a stored image (`/toolbox`).
            let (bytes, config, program) = if source.ends_with(".wasm") && path.is_file() {
                let bytes = std::fs::read(path).with_context(|| format!("reading {source}"))?;
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("app.wasm");
                (bytes, ImageConfig::default(), format!("/{name}"))
            } else {
                wasmkube_runtime::builtin::seed(&store)?;
                let image = store.resolve(&source)?;
                let bytes = std::fs::read(&image.path)
                    .with_context(|| format!("reading {}", image.path.display()))?;
                let name = ImageRef::parse(&source)?.base_name().to_string();
                (bytes, image.config, format!("/{name}"))
            };
            let target = ImageRef::parse(&target)?;
            let config_flags = registry.config()?;
            let keyring = config_flags.keyring.clone();
            let pushed = Registry::new(store, config_flags)
                .push(
                    &bytes,
                    &config,
                    files.as_deref().map(|d| (d, program.as_str())),
                    &target,
                    &keyring,
                )
                .await?;
            println!("{target} {} {} bytes", pushed.manifest_digest, pushed.size);
        }
        ImageCommand::Rm { reference } => {
            for r in reference {
                let parsed = ImageRef::parse(&r)?;
                if !store.remove(&parsed)? {
                    anyhow::bail!("no image {r} in the store");
                }
                println!("Untagged: {parsed}");
            }
        }
        ImageCommand::Prune => {
            // Ten minutes' grace: a server's pull writes its files before
            // the record that names them.
            let report = store.prune(std::time::Duration::from_secs(600))?;
            println!(
                "Deleted {} components; reclaimed {} bytes",
                report.dropped_components.len(),
                report.freed
            );
        }
        ImageCommand::Import {
            name,
            file,
            entrypoint,
        } => {
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
        }
    }
    Ok(())
}
