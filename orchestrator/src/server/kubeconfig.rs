//! Kubeconfigs: the admin's, written when the server starts, and a user's
//! (`wasmkube kubeconfig --user`), with a client certificate the cluster's
//! CA signs.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::pki;
use crate::auth;

/// How long a user's client certificate is valid unless asked otherwise.
pub const USER_CERTIFICATE_DAYS: i64 = 365;

/// How a kubeconfig's user proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    Token(&'a str),
    /// A client certificate and its key (PEM).
    Certificate {
        certificate: &'a str,
        key: &'a str,
    },
}

/// The admin kubeconfig (YAML) of the API at `server`: the CA to trust
/// (none for plain HTTP) and the bearer token.
pub fn kubeconfig(server: &str, ca_pem: Option<&str>, token: &str) -> String {
    render(
        server,
        ca_pem,
        "admin",
        Credentials::Token(token),
        "default",
    )
}

/// A kubeconfig (YAML) for `user` of the API at `server`, in `namespace`.
/// The admin's context is `wasmkube`; another user's `USER@wasmkube`.
pub fn render(
    server: &str,
    ca_pem: Option<&str>,
    user: &str,
    credentials: Credentials<'_>,
    namespace: &str,
) -> String {
    let ca = match ca_pem {
        Some(pem) => format!("    certificate-authority-data: {}\n", STANDARD.encode(pem)),
        None => String::new(),
    };
    let secret = match credentials {
        Credentials::Token(token) => format!("    token: {token}\n"),
        Credentials::Certificate { certificate, key } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(certificate),
            STANDARD.encode(key)
        ),
    };
    let context = if user == "admin" {
        "wasmkube".to_string()
    } else {
        format!("{user}@wasmkube")
    };
    let quoted = |text: &str| serde_json::to_string(text).expect("strings serialise");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wasmkube\n  cluster:\n    server: {server}\n{ca}\
         users:\n- name: {user}\n  user:\n{secret}\
         contexts:\n- name: {context}\n  context:\n    cluster: wasmkube\n    user: {user}\n    namespace: {namespace}\n\
         current-context: {context}\npreferences: {{}}\n",
        user = quoted(user),
        context = quoted(&context),
        namespace = quoted(namespace),
    )
}

/// Why a user's kubeconfig could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "no server has run on {0} yet (its kubeconfig and CA are made at first start): run `wasmkube serve` first"
    )]
    NotStarted(String),
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} names no server")]
    NoServer(String),
    #[error(
        "the server serves plain HTTP ({0}), where a client certificate cannot be presented: serve HTTPS to have users"
    )]
    PlainHttp(String),
    #[error("a user needs a name")]
    NoName,
    #[error("cannot sign a client certificate")]
    Sign(#[from] auth::x509::IssueError),
}

/// A kubeconfig for `user` in `groups` of the server whose data directory
/// is `data_dir`: its URL and CA from the admin kubeconfig the server
/// wrote, and a client certificate (CN = user, O = each group) its CA
/// signs, valid for `days`.
pub fn for_user(
    data_dir: &Path,
    user: &str,
    groups: &[String],
    namespace: &str,
    days: i64,
) -> Result<String, UserError> {
    let admin = data_dir.join("kubeconfig");
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                UserError::NotStarted(data_dir.display().to_string())
            } else {
                UserError::Read {
                    path: path.display().to_string(),
                    source,
                }
            }
        })
    };
    let admin_text = read(&admin)?;
    let server = admin_text
        .lines()
        .find_map(|line| line.trim().strip_prefix("server: "))
        .map(str::to_string)
        .ok_or_else(|| UserError::NoServer(admin.display().to_string()))?;
    if server.starts_with("http://") {
        return Err(UserError::PlainHttp(server));
    }
    let pki_dir = data_dir.join("pki");
    let ca_pem = read(&pki_dir.join("ca.crt"))?;
    let ca_key_pem = read(&pki_dir.join("ca.key"))?;
    signed(&server, &ca_pem, &ca_key_pem, user, groups, namespace, days)
}

/// A user's kubeconfig for a cluster this process serves, from its PKI.
pub fn for_user_of(
    server: &str,
    pki: &pki::Pki,
    user: &str,
    groups: &[String],
    namespace: &str,
    days: i64,
) -> Result<String, UserError> {
    signed(
        server,
        &pki.ca_pem,
        &pki.ca_key_pem,
        user,
        groups,
        namespace,
        days,
    )
}

/// A kubeconfig for `user` with a client certificate the CA signs.
fn signed(
    server: &str,
    ca_pem: &str,
    ca_key_pem: &str,
    user: &str,
    groups: &[String],
    namespace: &str,
    days: i64,
) -> Result<String, UserError> {
    if user.is_empty() {
        return Err(UserError::NoName);
    }
    let (certificate, key) = auth::x509::issue(ca_pem, ca_key_pem, user, groups, days)?;
    Ok(render(
        server,
        Some(ca_pem),
        user,
        Credentials::Certificate {
            certificate: &certificate,
            key: &key,
        },
        namespace,
    ))
}
