//! Real registries and real image tools for the image tests: Debian's
//! `docker-registry` (CNCF Distribution) started on loopback, anonymous
//! over HTTP or with htpasswd over TLS from a test CA; images built as OCI
//! layouts with `umoci` (or by hand, for layers no tool would make) and
//! copied into the registry with `skopeo`. Missing tools fail the tests:
//! `scripts/setup-registry-tools.sh` installs them.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running `docker-registry`.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// `user:password` when it demands a login.
    pub creds: Option<String>,
    /// The CA that signed its certificate, when it speaks TLS.
    pub ca: Option<PathBuf>,
}

fn tool(name: &str) -> Command {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(name).is_file());
    assert!(
        found,
        "{name} is not installed: run scripts/setup-registry-tools.sh (the image tests need it)"
    );
    Command::new(name)
}

/// Runs a tool and returns its stdout, failing the test on a non-zero exit.
pub fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Registry {
    /// Anonymous, plain HTTP.
    pub fn anonymous() -> Registry {
        Registry::start(false)
    }

    /// htpasswd (`tester:s3cret`) over TLS, its certificate signed by a CA
    /// of its own (`ca`).
    pub fn private() -> Registry {
        Registry::start(true)
    }

    fn start(private: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = super::server::free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        let (mut creds, mut ca) = (None, None);
        if private {
            let pki = wasmkube::server::pki::load_or_create(
                &dir.path().join("pki"),
                &["127.0.0.1".to_string()],
            )
            .unwrap();
            let ca_path = dir.path().join("ca.pem");
            std::fs::write(&ca_path, &pki.ca_pem).unwrap();
            let cert_dir = dir.path().join("pki");
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                cert_dir.join("server.crt").display(),
                cert_dir.join("server.key").display(),
                dir.path().join("htpasswd").display()
            ));
            let mut htpasswd = tool("htpasswd");
            htpasswd.args(["-Bbn", "tester", "s3cret"]);
            std::fs::write(dir.path().join("htpasswd"), run(htpasswd)).unwrap();
            creds = Some("tester:s3cret".to_string());
            ca = Some(ca_path);
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        // Its access log goes to stdout, the rest to stderr: one file.
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = tool("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            dir,
            host,
            creds,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start: {}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// What the registry logged (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many times a blob was downloaded (GET, not HEAD).
    pub fn blob_downloads(&self, digest: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/{digest} ")))
            .count()
    }

    /// The file holding a blob on the registry's disk.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// skopeo's flags to reach this registry as a destination or source.
    fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match &self.ca {
            Some(ca) => flags.push(format!(
                "--{side}-cert-dir={}",
                ca.parent().unwrap().join("skopeo-certs").display()
            )),
            None => flags.push(format!("--{side}-tls-verify=false")),
        }
        if let Some(ca) = &self.ca {
            let certs = ca.parent().unwrap().join("skopeo-certs");
            std::fs::create_dir_all(&certs).unwrap();
            std::fs::copy(ca, certs.join("ca.crt")).unwrap();
        }
        if let Some(creds) = &self.creds {
            flags.push(format!("--{side}-creds={creds}"));
        }
        flags
    }

    /// Copies `layout:tag` to skopeo's `dir:` format at `to`, its layers
    /// uncompressed (skopeo 1.9 compresses a layer in another format only
    /// when its source is uncompressed).
    pub fn decompressed(layout: &Path, tag: &str, to: &Path) {
        let mut skopeo = tool("skopeo");
        skopeo
            .args(["copy", "--quiet", "--dest-decompress"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("dir:{}", to.display()));
        run(skopeo);
    }

    /// Copies skopeo's `dir:` image at `dir` to `name` here.
    pub fn copy_dir_in(&self, dir: &Path, name: &str, extra: &[&str]) -> String {
        self.copy_from(format!("dir:{}", dir.display()), name, extra)
    }

    /// Copies `layout:tag` (an OCI layout) to `name` here, with skopeo;
    /// `extra` flags such as `--dest-compress-format=zstd` or `--all`.
    pub fn copy_in(&self, layout: &Path, tag: &str, name: &str, extra: &[&str]) -> String {
        self.copy_from(format!("oci:{}:{tag}", layout.display()), name, extra)
    }

    fn copy_from(&self, source: String, name: &str, extra: &[&str]) -> String {
        let mut skopeo = tool("skopeo");
        skopeo
            .arg("copy")
            .arg("--quiet")
            .args(self.skopeo_flags("dest"))
            .args(extra)
            .arg(source)
            .arg(format!("docker://{}/{name}", self.host));
        run(skopeo);
        self.digest(name)
    }

    /// The manifest digest `name` (a tag) has here now.
    pub fn digest(&self, name: &str) -> String {
        let raw = self.manifest(name);
        format!("sha256:{}", hex::encode(Sha256::digest(raw.as_bytes())))
    }

    /// The raw manifest of `name`.
    pub fn manifest(&self, name: &str) -> String {
        let mut skopeo = tool("skopeo");
        skopeo
            .args(["inspect", "--raw"])
            .args(
                self.skopeo_flags("src")
                    .iter()
                    .map(|f| f.replace("--src-", "--")),
            )
            .arg(format!("docker://{}/{name}", self.host));
        run(skopeo)
    }

    /// `host/name` as an image reference.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built toolbox guest: a busybox-like multi-call shell.
pub fn toolbox_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-examples/dist/toolbox.wasm")
}

/// The toolbox component with a custom section named `variant`: a
/// component (and compiled code) of its own, that runs as the toolbox.
pub fn toolbox_variant(variant: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"variant";
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(variant.as_bytes());
    let mut wasm = std::fs::read(toolbox_wasm()).expect("the built toolbox guest");
    wasm.push(0); // a custom section
    leb128(body.len(), &mut wasm);
    wasm.extend_from_slice(&body);
    wasm
}

/// An image built with umoci: files (path in the image → bytes), symlinks
/// (path → target), and its config.
#[derive(Default)]
pub struct ImageSpec<'a> {
    pub files: Vec<(&'a str, Vec<u8>)>,
    pub symlinks: Vec<(&'a str, &'a str)>,
    pub entrypoint: Vec<&'a str>,
    pub cmd: Vec<&'a str>,
    pub env: Vec<&'a str>,
    /// The config's `WorkingDir`, when not empty.
    pub working_dir: &'a str,
    /// `os/architecture`, `wasi/wasm` when empty.
    pub platform: &'a str,
}

/// Makes an empty OCI layout at `layout` (if missing).
pub fn init(layout: &Path) {
    if !layout.join("index.json").exists() {
        let mut init = tool("umoci");
        init.args(["init", "--layout"]).arg(layout);
        run(init);
    }
}

/// Builds `spec` as tag `tag` of the OCI layout at `layout` (made if missing).
pub fn build(layout: &Path, tag: &str, spec: &ImageSpec) {
    init(layout);
    let image = format!("{}:{tag}", layout.display());
    let mut new = tool("umoci");
    new.args(["new", "--image", &image]);
    run(new);
    let bundle = layout.with_extension(format!("bundle-{tag}"));
    let mut unpack = tool("umoci");
    unpack
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle);
    run(unpack);
    let rootfs = bundle.join("rootfs");
    for (path, bytes) in &spec.files {
        let dest = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
    for (path, target) in &spec.symlinks {
        let dest = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, dest).unwrap();
    }
    let mut repack = tool("umoci");
    repack.args(["repack", "--image", &image]).arg(&bundle);
    run(repack);
    let _ = std::fs::remove_dir_all(&bundle);
    let (os, arch) = if spec.platform.is_empty() {
        ("wasi", "wasm")
    } else {
        spec.platform.split_once('/').unwrap()
    };
    let mut config = tool("umoci");
    config.args([
        "config",
        "--image",
        &image,
        "--os",
        os,
        "--architecture",
        arch,
    ]);
    if spec.entrypoint.is_empty() {
        config.arg("--clear=config.entrypoint");
    }
    for word in &spec.entrypoint {
        config.arg(format!("--config.entrypoint={word}"));
    }
    if spec.cmd.is_empty() {
        config.arg("--clear=config.cmd");
    }
    for word in &spec.cmd {
        config.arg(format!("--config.cmd={word}"));
    }
    for env in &spec.env {
        config.arg(format!("--config.env={env}"));
    }
    if !spec.working_dir.is_empty() {
        config.arg(format!("--config.workingdir={}", spec.working_dir));
    }
    run(config);
}

/// Adds to the layout a blob, returning its descriptor's digest and size.
pub fn add_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// The descriptor index.json has for `tag`.
pub fn descriptor(layout: &Path, tag: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in the layout"))
        .clone()
}

/// Points `tag` of the layout at a new blob of media type `media_type`.
pub fn tag_blob(layout: &Path, tag: &str, media_type: &str, bytes: &[u8]) {
    let (digest, size) = add_blob(layout, bytes);
    let path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    if !index["manifests"].is_array() {
        index["manifests"] = serde_json::json!([]);
    }
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(serde_json::json!({
        "mediaType": media_type, "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Makes `tag` an image index over the layout's `tags`, each entry with
/// the platform its config names.
pub fn index_of(layout: &Path, tag: &str, tags: &[(&str, &str)]) {
    let entries: Vec<serde_json::Value> = tags
        .iter()
        .map(|(t, platform)| {
            let mut d = descriptor(layout, t);
            d.as_object_mut().unwrap().remove("annotations");
            let (os, arch) = platform.split_once('/').unwrap();
            d["platform"] = serde_json::json!({"os": os, "architecture": arch});
            d
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    tag_blob(
        layout,
        tag,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    );
}

/// A tar layer of raw entries (for hostile paths no tool would write):
/// `(type, path, link target, contents)`.
pub fn raw_layer(entries: &[(u8, &str, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, path, link, data) in entries {
        let mut header = [0u8; 512];
        header[..path.len()].copy_from_slice(path.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = *kind;
        header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| *b as u32).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Adds to the layout, as `tag`, an image of one plain tar layer `layer`
/// whose entrypoint is `entrypoint`.
pub fn image_of_layer(layout: &Path, tag: &str, layer: &[u8], entrypoint: &str) {
    let (layer_digest, layer_size) = add_blob(layout, layer);
    let config = serde_json::json!({
        "architecture": "wasm", "os": "wasi",
        "config": {"Entrypoint": [entrypoint]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = add_blob(layout, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    tag_blob(
        layout,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
}
