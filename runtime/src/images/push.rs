//! Publishing images to a registry, the two ways people package
//! WebAssembly: the CNCF wasm artifact (one `application/wasm` layer, as
//! `wkg oci push` makes it), or a standard OCI image for `wasi/wasm` whose
//! one gzip tar layer holds a directory of files and the component, with
//! the component as its entrypoint (as `docker buildx --platform
//! wasi/wasm` makes from `FROM scratch`).

use std::io::Write;
use std::path::Path;

use oci_client::client::{Config, ImageLayer};
use serde_json::json;

use super::registry::{PullError, Registry, WASM_CONFIG, WASM_LAYER};
use super::{ImageConfig, ImageRef, digest_of};
use crate::images::credentials::Keyring;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What was pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    /// Bytes uploaded in layers.
    pub size: u64,
}

impl Registry {
    /// Pushes `component` to `target`: as a CNCF wasm artifact, or with
    /// `files` as a standard image holding the component at `program` (an
    /// absolute path), whose entrypoint is `program` followed by
    /// `config`'s entrypoint words after the first (its argv\[0\]), and
    /// its cmd, env and working dir.
    pub async fn push(
        &self,
        component: &[u8],
        config: &ImageConfig,
        files: Option<(&Path, &str)>,
        target: &ImageRef,
        keyring: &Keyring,
    ) -> Result<Pushed, PullError> {
        let registry = target.registry.clone().ok_or_else(|| PullError::Invalid {
            reference: target.to_string(),
            message: "a push target names its registry (host[:port]/name:tag)".into(),
        })?;
        let (layers, config) = match files {
            None => artifact(component),
            Some((dir, program)) => {
                standard(component, config, dir, program).map_err(|e| PullError::Invalid {
                    reference: target.to_string(),
                    message: format!("packing {}: {e}", dir.display()),
                })?
            }
        };
        let size = layers.iter().map(|l| l.data.len() as u64).sum();
        let auth = self.auth(&registry, keyring);
        let client = self.client(&registry, &auth);
        let oci_ref = super::registry::oci_reference(target);
        let response = client
            .push(&oci_ref, &layers, config, &auth, None)
            .await
            .map_err(|e| super::registry::classify(e, target, &registry, !keyring.is_empty()))?;
        let manifest_digest = response
            .manifest_url
            .rsplit('/')
            .next()
            .filter(|d| d.starts_with("sha256:"))
            .unwrap_or_default()
            .to_string();
        Ok(Pushed {
            manifest_digest,
            size,
        })
    }
}

fn artifact(component: &[u8]) -> (Vec<ImageLayer>, Config) {
    let digest = digest_of(component);
    let config = json!({
        "created": jiff::Timestamp::now().to_string(),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [digest],
    });
    (
        vec![ImageLayer::new(component.to_vec(), WASM_LAYER.into(), None)],
        Config::new(
            serde_json::to_vec(&config).expect("JSON"),
            WASM_CONFIG.into(),
            None,
        ),
    )
}

fn standard(
    component: &[u8],
    config: &ImageConfig,
    dir: &Path,
    program: &str,
) -> std::io::Result<(Vec<ImageLayer>, Config)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(component.len() as u64);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, program.trim_start_matches('/'), component)?;
    let tar = tar.into_inner()?;
    let diff_id = digest_of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    let layer = gz.finish()?;
    let mut entrypoint = vec![program.to_string()];
    entrypoint.extend(config.entrypoint.iter().skip(1).cloned());
    let mut exec = json!({"Entrypoint": entrypoint});
    if !config.cmd.is_empty() {
        exec["Cmd"] = json!(config.cmd);
    }
    if !config.env.is_empty() {
        exec["Env"] = json!(config.env);
    }
    if let Some(dir) = &config.working_dir {
        exec["WorkingDir"] = json!(dir);
    }
    let image_config = json!({
        "created": jiff::Timestamp::now().to_string(),
        "architecture": "wasm",
        "os": "wasi",
        "config": exec,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    Ok((
        vec![ImageLayer::new(layer, GZIP_LAYER.into(), None)],
        Config::new(
            serde_json::to_vec(&image_config).expect("JSON"),
            OCI_CONFIG.into(),
            None,
        ),
    ))
}
