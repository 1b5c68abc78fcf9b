//! Registry credentials in Docker's config format, as a kubelet reads them:
//! `imagePullSecrets` of type `kubernetes.io/dockerconfigjson`
//! (`{"auths": {...}}`) and the legacy `kubernetes.io/dockercfg` (the
//! `auths` map alone), and a node-wide file (`--registry-config`, the
//! same format as `~/.docker/config.json`).

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A config that is not Docker's format.
#[derive(Debug, thiserror::Error)]
#[error("registry credentials: {0}")]
pub struct Error(String);

/// How to log in to one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Login {
    /// User name and password (HTTP basic, or exchanged for a token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A bearer token sent as is (`registrytoken`).
    Bearer(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Login::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Credentials for registries, in the order they are tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    entries: Vec<(String, Login)>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl Keyring {
    /// Reads a `.dockerconfigjson` (`{"auths": {...}}`) or a `.dockercfg`
    /// (the map alone).
    pub fn from_docker_config(json: &[u8]) -> Result<Keyring, Error> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| Error(format!("not JSON: {e}")))?;
        let auths = match value.get("auths") {
            Some(auths) => auths.clone(),
            None => value,
        };
        let map: BTreeMap<String, Entry> = serde_json::from_value(auths)
            .map_err(|e| Error(format!("not a Docker config: {e}")))?;
        let mut entries = Vec::new();
        for (key, entry) in map {
            let login = if let Some(token) = entry.registrytoken.filter(|t| !t.is_empty()) {
                Login::Bearer(token)
            } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| Error(format!("the auth of {key:?} is not base64")))?;
                let decoded = String::from_utf8(decoded)
                    .map_err(|_| Error(format!("the auth of {key:?} is not text")))?;
                let (username, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| Error(format!("the auth of {key:?} is not user:password")))?;
                Login::Basic {
                    username: username.to_string(),
                    password: password.to_string(),
                }
            } else if let (Some(username), Some(password)) = (entry.username, entry.password) {
                Login::Basic { username, password }
            } else {
                continue;
            };
            entries.push((registry_host(&key), login));
        }
        Ok(Keyring { entries })
    }

    /// Adds `other`'s credentials after these (tried later).
    pub fn extend(&mut self, other: &Keyring) {
        self.entries.extend(other.entries.iter().cloned());
    }

    /// The logins for `registry` (`host[:port]`), best first.
    pub fn logins(&self, registry: &str) -> Vec<&Login> {
        self.entries
            .iter()
            .filter(|(host, _)| host_matches(host, registry))
            .map(|(_, login)| login)
            .collect()
    }

    /// Whether there are no credentials at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `host[:port]` of a config key, which may be a URL
/// (`https://host/v1/`) or a bare host.
fn registry_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key).to_ascii_lowercase()
}

/// Whether a config key's host covers `registry`: equal, or a `*.` glob
/// over one label, as the kubelet's keyring matches.
fn host_matches(pattern: &str, registry: &str) -> bool {
    let registry = registry.to_ascii_lowercase();
    if pattern == registry {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => registry
            .split_once('.')
            .is_some_and(|(_, rest)| rest == suffix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_secret_formats_are_read() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:secret");
        let json = format!(r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{auth}"}}}}}}"#);
        let ring = Keyring::from_docker_config(json.as_bytes()).unwrap();
        assert_eq!(
            ring.logins("127.0.0.1:5000"),
            vec![&Login::Basic {
                username: "me".into(),
                password: "secret".into()
            }]
        );
        assert!(ring.logins("127.0.0.1:5001").is_empty());
        let legacy =
            r#"{"*.example.org":{"username":"u","password":"p"},"other":{"registrytoken":"t"}}"#;
        let ring = Keyring::from_docker_config(legacy.as_bytes()).unwrap();
        assert_eq!(ring.logins("registry.example.org").len(), 1);
        assert!(ring.logins("a.b.example.org").is_empty());
        assert_eq!(ring.logins("other"), vec![&Login::Bearer("t".into())]);
        assert!(Keyring::from_docker_config(b"[]").is_err());
        assert!(format!("{:?}", ring).contains("***"), "secrets never print");
    }
}
