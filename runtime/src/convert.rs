//! Turns WASI p1 core modules into components (wit-component plus the
//! preview1 command adapter), so every guest runs on one execution path.
//!
//! The adapter maps `proc_exit(n)` to `wasi:cli/exit.exit(err)` and loses
//! `n`. A container's exit code matters (restart policy, Job back-off,
//! `kubectl get pods` showing `Error` with code 7), so before adapting, the
//! module's `proc_exit` import is redirected to `wasi:cli/exit.exit-with-code`,
//! which has the same core signature `(i32) -> ()` and keeps the code.

/// The interface version the redirected import names; it must be one the
/// adapter's own world (and wasmtime-wasi) know.
const CLI_VERSION: &str = "0.2.12";

/// What the module now imports instead of `proc_exit`, described for
/// wit-component. Kept identical to the adapter's definition of the
/// interface so the two merge.
const EXIT_WORLD: &str = r#"
package wasmkube:p1-exit;

world exit-code {
  import wasi:cli/exit@0.2.12;
}

package wasi:cli@0.2.12 {
  @since(version = 0.2.0)
  interface exit {
    @since(version = 0.2.0)
    exit: func(status: result);

    @since(version = 0.2.12)
    exit-with-code: func(status-code: u8);
  }
}
"#;

/// Why a module could not be converted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

fn err(context: &str) -> impl FnOnce(anyhow::Error) -> Error + '_ {
    move |e| Error(format!("{context}: {e:#}"))
}

/// Returns `Some(component)` for a core module, `None` if `bytes` already is
/// a component, an error for anything else.
pub fn to_component(bytes: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    use wasi_preview1_component_adapter_provider as adapter;
    if wasmparser::Parser::is_component(bytes) {
        return Ok(None);
    }
    if !wasmparser::Parser::is_core_wasm(bytes) {
        return Err(Error("not a WebAssembly module or component".into()));
    }
    let module = redirect_proc_exit(bytes)?;
    let module: &[u8] = module.as_deref().unwrap_or(bytes);
    wit_component::ComponentEncoder::default()
        .module(module)
        .map_err(err("reading the module"))?
        .adapter(
            adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            adapter::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .map_err(err("adding the preview1 adapter"))?
        .validate(true)
        .encode()
        .map(Some)
        .map_err(err("encoding the component"))
}

/// Rewrites the import `wasi_snapshot_preview1.proc_exit` to
/// `wasi:cli/exit@…`.`exit-with-code` and embeds the WIT that describes it.
/// `None` if the module does not import `proc_exit`.
fn redirect_proc_exit(bytes: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    use wasmparser::{Payload, TypeRef};
    let bad = |e: wasmparser::BinaryReaderError| Error(format!("invalid module: {e}"));
    let exit_module = format!("wasi:cli/exit@{CLI_VERSION}");
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Payload::ImportSection(reader) = payload.map_err(bad)? else {
            continue;
        };
        let content = reader.range();
        let mut section = wasm_encoder::ImportSection::new();
        let mut redirected = false;
        for import in reader.into_imports() {
            let import = import.map_err(bad)?;
            let TypeRef::Func(ty) = import.ty else {
                // Memories, tables and globals imports are copied as they are.
                let entity = wasm_encoder::EntityType::try_from(import.ty).map_err(|_| {
                    Error(format!(
                        "unsupported import {}.{}",
                        import.module, import.name
                    ))
                })?;
                section.import(import.module, import.name, entity);
                continue;
            };
            if import.module == "wasi_snapshot_preview1" && import.name == "proc_exit" {
                section.import(
                    &exit_module,
                    "exit-with-code",
                    wasm_encoder::EntityType::Function(ty),
                );
                redirected = true;
            } else {
                section.import(
                    import.module,
                    import.name,
                    wasm_encoder::EntityType::Function(ty),
                );
            }
        }
        if !redirected {
            return Ok(None);
        }
        // The section header is its id byte and the LEB128 size before `content`.
        let header = 1 + leb128_len(content.len() as u64);
        let mut out = Vec::with_capacity(bytes.len() + 64);
        out.extend_from_slice(&bytes[..content.start - header]);
        wasm_encoder::Section::append_to(&section, &mut out);
        out.extend_from_slice(&bytes[content.end..]);
        embed_exit_world(&mut out)?;
        return Ok(Some(out));
    }
    Ok(None)
}

fn embed_exit_world(module: &mut Vec<u8>) -> Result<(), Error> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("exit-code.wit", EXIT_WORLD)
        .map_err(err("parsing the exit world"))?;
    let world = resolve
        .select_world(&[package], Some("exit-code"))
        .map_err(err("selecting the exit world"))?;
    wit_component::embed_component_metadata(
        module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(err("embedding the exit world"))
}

fn leb128_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_lengths() {
        assert_eq!(leb128_len(0), 1);
        assert_eq!(leb128_len(127), 1);
        assert_eq!(leb128_len(128), 2);
        assert_eq!(leb128_len(16_384), 3);
    }

    #[test]
    fn non_wasm_is_refused() {
        assert!(to_component(b"\x7fELF").is_err());
    }
}
