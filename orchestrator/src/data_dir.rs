//! Where wasmkube keeps images, compiled code and pods by default.

use std::path::PathBuf;

/// `$WASMKUBE_DATA_DIR`, else the user's data directory
/// (`~/.local/share/wasmkube` on Linux), else `./.wasmkube`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMKUBE_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::data_dir()
        .map(|d| d.join("wasmkube"))
        .unwrap_or_else(|| PathBuf::from(".wasmkube"))
}
