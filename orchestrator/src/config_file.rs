//! `--config FILE`: a command's flags from a YAML file, as k3s reads its
//! `config.yaml`. Each key is a flag's long name (`max-pods: 200`,
//! `listen: 0.0.0.0:6443`, `data-dir: /var/lib/wasmkube`); a list gives
//! the flag once per item; `true` turns a switch on and `false` leaves it
//! off. The file's flags go before the command line's, so a flag given on
//! the command line wins.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

/// `args` with every `--config FILE` (or `--config=FILE`) after
/// `subcommand` replaced by the file's flags, put right after the
/// subcommand. A key that is not in `known` (the flags' long names) is an
/// error naming it and the file.
pub fn expand(
    args: Vec<OsString>,
    subcommand: &str,
    known: &[&str],
) -> Result<Vec<OsString>, String> {
    let Some(at) = args
        .iter()
        .skip(1)
        .position(|a| a == subcommand)
        .map(|i| i + 1)
    else {
        return Ok(args);
    };
    let mut kept = Vec::with_capacity(args.len());
    let mut from_files = Vec::new();
    let mut rest = args.into_iter().enumerate();
    while let Some((i, arg)) = rest.next() {
        if i <= at || arg == "--" {
            kept.push(arg);
            if i > at {
                kept.extend(rest.map(|(_, a)| a));
                break;
            }
            continue;
        }
        let file = if arg == "--config" {
            match rest.next() {
                Some((_, file)) => file,
                None => return Err("--config needs a file".into()),
            }
        } else if let Some(file) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            OsString::from(file)
        } else {
            kept.push(arg);
            continue;
        };
        from_files.extend(flags_of(Path::new(&file), known)?);
    }
    kept.splice(at + 1..at + 1, from_files);
    Ok(kept)
}

/// The flags a config file gives.
fn flags_of(path: &Path, known: &[&str]) -> Result<Vec<OsString>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("reading the config file {shown}: {e}"))?;
    let document = crate::yaml::from_slice_bounded(&bytes, crate::yaml::budget_for(&bytes))
        .map_err(|e| format!("{shown}: {e}"))?;
    let entries = match document {
        Value::Null => return Ok(Vec::new()),
        Value::Object(entries) => entries,
        _ => return Err(format!("{shown}: not a mapping of flag names to values")),
    };
    let mut flags = Vec::new();
    for (key, value) in entries {
        if key == "config" || !known.contains(&key.as_str()) {
            return Err(format!("{shown}: unknown flag {key:?}"));
        }
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        for item in items {
            match item {
                Value::Bool(true) => flags.push(OsString::from(format!("--{key}"))),
                Value::Bool(false) | Value::Null => {}
                Value::String(s) => flags.push(OsString::from(format!("--{key}={s}"))),
                Value::Number(n) => flags.push(OsString::from(format!("--{key}={n}"))),
                Value::Array(_) | Value::Object(_) => {
                    return Err(format!(
                        "{shown}: {key}: a flag's value is a string, number, boolean or list of them"
                    ));
                }
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn the_files_flags_come_first_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(
            &file,
            "max-pods: 200\nnode-name: edge-1\ninsecure-http: false\nallowed-host-paths: [/srv/a, /srv/b]\ndata-dir: /var/lib/wasmkube\n",
        )
        .unwrap();
        let known = [
            "max-pods",
            "node-name",
            "insecure-http",
            "allowed-host-paths",
            "data-dir",
        ];
        let line = format!("wasmkube serve --config {} --max-pods 9", file.display());
        let expanded = expand(args(&line), "serve", &known).unwrap();
        assert_eq!(
            expanded,
            // The file's flags by name (each is given once), then the
            // command line's.
            args(
                "wasmkube serve --allowed-host-paths=/srv/a --allowed-host-paths=/srv/b \
                 --data-dir=/var/lib/wasmkube --max-pods=200 --node-name=edge-1 --max-pods 9"
            )
        );
        // Other commands, and a command line without a file, are as given.
        assert_eq!(
            expand(args("wasmkube image list"), "serve", &known).unwrap(),
            args("wasmkube image list")
        );
        let equals = format!("wasmkube serve --config={}", file.display());
        assert_eq!(expand(args(&equals), "serve", &known).unwrap().len(), 7);
    }

    #[test]
    fn an_unknown_key_or_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "max-podz: 3\n").unwrap();
        let line = format!("wasmkube serve --config {}", file.display());
        let error = expand(args(&line), "serve", &["max-pods"]).unwrap_err();
        assert!(error.contains("unknown flag \"max-podz\""), "{error}");
        assert!(error.contains(&file.display().to_string()), "{error}");
        let missing = format!("wasmkube serve --config {}/none.yaml", dir.path().display());
        let error = expand(args(&missing), "serve", &["max-pods"]).unwrap_err();
        assert!(error.starts_with("reading the config file"), "{error}");
        std::fs::write(&file, "- a\n- b\n").unwrap();
        assert!(expand(args(&line), "serve", &["max-pods"]).is_err());
    }
}
