//! Stores the OpenAPI definitions compressed in the binary: `schema/mod.rs`
//! includes `$OUT_DIR/definitions.json.gz`, made from
//! `src/schema/definitions.json` (which the tests generate from the types).

use std::io::Write;
use std::path::Path;

fn main() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/schema/definitions.json");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read(&source).expect("src/schema/definitions.json is in the tree");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&text).expect("compressing in memory");
    std::fs::write(
        out.join("definitions.json.gz"),
        gz.finish().expect("compressing"),
    )
    .expect("writing to OUT_DIR");
}
