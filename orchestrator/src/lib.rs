//! wasmkube
