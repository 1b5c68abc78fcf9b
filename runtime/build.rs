//! Stores the example guests compressed in the binary: `builtin.rs`
//! includes `$OUT_DIR/<file>.gz` for each `guest-examples/dist/<file>`.

use std::io::Write;
use std::path::Path;

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-examples/dist");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", dist.display());
    for entry in std::fs::read_dir(&dist).expect("guest-examples/dist is in the tree") {
        let path = entry.expect("reading guest-examples/dist").path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("reading a guest");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes).expect("compressing in memory");
        let name = path.file_name().expect("a file").to_string_lossy();
        std::fs::write(
            out.join(format!("{name}.gz")),
            gz.finish().expect("compressing"),
        )
        .expect("writing to OUT_DIR");
    }
}
