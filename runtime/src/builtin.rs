//! The example guests every wasmkube carries (built from `guest-examples/`
//! and committed under `guest-examples/dist/`), seeded into the image store
//! so `image: toolbox` works on a machine with no registry at all.

use crate::images::{self, ImageConfig, ImageRef, ImageStore};

/// One embedded image.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinImage {
    /// Repository name.
    pub name: &'static str,
    /// Tags it is stored under.
    pub tags: &'static [&'static str],
    /// The component or p1 module, gzip-compressed (see [`Self::bytes`]).
    pub compressed: &'static [u8],
    /// Default entrypoint.
    pub entrypoint: &'static [&'static str],
    /// Default cmd.
    pub cmd: &'static [&'static str],
    /// Files the image carries (absolute path, contents); when there are
    /// any, the component is among them at `program`.
    pub files: &'static [(&'static str, &'static [u8])],
    /// Where the component lives in an image with files.
    pub program: &'static str,
}

impl BuiltinImage {
    /// The component or p1 module.
    pub fn bytes(&self) -> Vec<u8> {
        use std::io::Read;
        let mut bytes = Vec::with_capacity(self.compressed.len() * 3);
        flate2::read::GzDecoder::new(self.compressed)
            .read_to_end(&mut bytes)
            .expect("build.rs compressed the guest");
        bytes
    }
}

/// A guest of `guest-examples/dist/`, as `build.rs` compressed it.
macro_rules! dist {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz"))
    };
}

/// The example guests.
pub const IMAGES: &[BuiltinImage] = &[
    BuiltinImage {
        name: "toolbox",
        tags: &["latest"],
        compressed: dist!("toolbox.wasm"),
        entrypoint: &[],
        cmd: &["sh"],
        files: &[],
        program: "",
    },
    BuiltinImage {
        name: "http-server",
        tags: &["latest"],
        compressed: dist!("http-server.wasm"),
        entrypoint: &["http-server"],
        cmd: &[],
        // nginx's document root, as the guide's `kubectl exec … ls` shows it.
        files: &[
            (
                "/usr/share/nginx/html/index.html",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../guest-examples/http-server/html/index.html"
                )),
            ),
            (
                "/usr/share/nginx/html/50x.html",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../guest-examples/http-server/html/50x.html"
                )),
            ),
        ],
        program: "/usr/sbin/http-server",
    },
    BuiltinImage {
        name: "echo-hostname",
        tags: &["1.0.1"],
        compressed: dist!("echo-hostname-1.0.1.wasm"),
        entrypoint: &["echo-hostname"],
        cmd: &[],
        files: &[],
        program: "",
    },
    BuiltinImage {
        name: "echo-hostname",
        tags: &["1.0.2", "latest"],
        compressed: dist!("echo-hostname-1.0.2.wasm"),
        entrypoint: &["echo-hostname"],
        cmd: &[],
        files: &[],
        program: "",
    },
    BuiltinImage {
        name: "http-hello",
        tags: &["latest"],
        compressed: dist!("http-hello.wasm"),
        entrypoint: &[],
        cmd: &[],
        files: &[],
        program: "",
    },
    BuiltinImage {
        name: "ambassador",
        tags: &["latest"],
        compressed: dist!("ambassador.wasm"),
        entrypoint: &["ambassador"],
        cmd: &[],
        files: &[],
        program: "",
    },
    BuiltinImage {
        name: "stress",
        tags: &["latest"],
        compressed: dist!("stress.wasm"),
        entrypoint: &["stress"],
        cmd: &[],
        files: &[],
        program: "",
    },
];

/// Imports every builtin image that is missing or differs from the store's.
pub fn seed(store: &ImageStore) -> Result<(), images::Error> {
    for image in IMAGES {
        let config = ImageConfig {
            entrypoint: image.entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: image.cmd.iter().map(|s| s.to_string()).collect(),
            ..ImageConfig::default()
        };
        let bytes = image.bytes();
        for tag in image.tags {
            let reference = ImageRef::local(image.name, tag);
            if image.files.is_empty() {
                store.import(&reference, &bytes, config.clone())?;
            } else {
                store.import_with_files(
                    &reference,
                    &bytes,
                    config.clone(),
                    image.files,
                    image.program,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores seeded side by side (`wasmkube play` processes sharing a
    /// data directory) all succeed, and the image with files is whole.
    #[test]
    fn one_store_seeded_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let seeders: Vec<_> = (0..8)
            .map(|_| {
                let root = dir.path().to_path_buf();
                std::thread::spawn(move || seed(&ImageStore::open(root).unwrap()))
            })
            .collect();
        for seeder in seeders {
            seeder.join().unwrap().unwrap();
        }
        let store = ImageStore::open(dir.path()).unwrap();
        assert!(store.resolve("http-server").is_ok());
        let leftovers: Vec<_> = std::fs::read_dir(store.tmp_dir())
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
