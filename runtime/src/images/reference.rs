//! Image references as a container's `image:` spells them, read the way
//! Kubernetes' runtimes read them: `[host[:port]/]path/name[:tag][@sha256:…]`.
//!
//! The one difference is what a name without a registry host means: a
//! Kubernetes node sends `nginx` to Docker Hub, wasmkube looks for a
//! built-in or imported image of that name first, then at the
//! `--default-registry` (and nowhere, without one).

use std::fmt;

/// The reference is not a valid image name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct InvalidReference {
    /// What was given.
    pub reference: String,
    /// Why it is refused.
    pub reason: &'static str,
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]` of the registry, when the reference names one.
    pub registry: Option<String>,
    /// Repository path, such as `toolbox` or `team/app`.
    pub repository: String,
    /// Tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` of the manifest, when pinned.
    pub digest: Option<String>,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl ImageRef {
    /// A tagged reference to a local (registry-less) image.
    pub fn local(repository: &str, tag: &str) -> ImageRef {
        ImageRef {
            registry: None,
            repository: repository.to_string(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// Parses a reference; a name with neither tag nor digest gets `latest`.
    pub fn parse(reference: &str) -> Result<Self, InvalidReference> {
        let invalid = |reason| InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        if reference.is_empty() {
            return Err(invalid("the name is empty"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| invalid("digests are sha256:<64 hex digits>"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid("digests are sha256:<64 hex digits>"));
                }
                (rest, Some(format!("sha256:{}", hex.to_ascii_lowercase())))
            }
            None => (reference, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t)),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
                (Some(host), path)
            }
            _ => (None, name),
        };
        if let Some(host) = registry {
            let (h, port) = host.rsplit_once(':').unwrap_or((host, ""));
            let host_ok = h.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }) && port.chars().all(|c| c.is_ascii_digit())
                && (host.len() == h.len() || !port.is_empty());
            if !host_ok {
                return Err(invalid(
                    "the registry is a host name or address with an optional :port",
                ));
            }
        }
        if repository.is_empty() {
            return Err(invalid("the name is empty"));
        }
        let path_ok = repository.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
        if !path_ok {
            return Err(invalid(
                "names use lowercase letters, digits, '.', '_', '-' and '/' between parts",
            ));
        }
        if let Some(tag) = tag {
            let tag_ok = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !tag_ok {
                return Err(invalid(
                    "tags use letters, digits, '.', '_' and '-' (at most 128)",
                ));
            }
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (tag, _) => tag.map(str::to_string),
        };
        Ok(ImageRef {
            registry: registry.map(str::to_string),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `[host/]repository`, without tag or digest.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(host) => format!("{host}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The same reference at `registry` (for bare names sent to the
    /// default registry).
    pub fn at(&self, registry: &str) -> ImageRef {
        ImageRef {
            registry: Some(registry.to_string()),
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest` (tag dropped).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// Whether the tag is `latest` (or absent), which makes Kubernetes'
    /// default pull policy `Always`.
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref().is_none_or(|t| t == "latest")
    }

    /// The last path segment (`app` of `host/team/app:1`), argv\[0\] of an
    /// image that names no entrypoint.
    pub fn base_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_as_kubernetes_reads_them() {
        let r = ImageRef::parse("toolbox").unwrap();
        assert_eq!(
            (r.registry.as_deref(), r.to_string()),
            (None, "toolbox:latest".into())
        );
        assert!(r.is_latest());
        let r = ImageRef::parse("127.0.0.1:5000/team/app:1.0").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("team/app", Some("1.0"))
        );
        assert_eq!(r.base_name(), "app");
        assert!(!r.is_latest());
        let hex = "a".repeat(64);
        let r = ImageRef::parse(&format!("registry.example/app@sha256:{hex}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest, Some(format!("sha256:{hex}")));
        assert!(!r.is_latest());
        assert_eq!(r.to_string(), format!("registry.example/app@sha256:{hex}"));
        let r = ImageRef::parse("localhost/app").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost"));
        assert_eq!(ImageRef::parse("team/app:v1").unwrap().registry, None);
        for bad in [
            "",
            "../etc:x",
            "a/../b",
            "UPPER",
            "a:",
            "a:-x",
            "a@sha256:00",
            "a@md5:00",
            "host:port/app",
            "127.0.0.1:5000/",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
