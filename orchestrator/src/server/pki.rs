//! The server's certificate authority, serving certificate and admin token,
//! made at first start and kept in `<data>/pki` (keys readable by the owner
//! only).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why the PKI could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
}

/// Credentials of the server and its admin.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate clients trust (PEM).
    pub ca_pem: String,
    /// The CA's key (PEM), which signs users' client certificates.
    pub ca_key_pem: String,
    /// The serving certificate (PEM), signed by the CA.
    pub server_cert_pem: String,
    /// Its private key (PEM).
    pub server_key_pem: String,
    /// The admin bearer token.
    pub token: String,
}

fn read(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Writes a file atomically, with `mode`.
fn write(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    super::write_file(path, contents, mode).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

/// Loads the PKI from `dir`, making what is missing. `names` are the DNS
/// names and IP addresses the serving certificate covers.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Pki, Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let token = match read(&dir.join("token"))? {
        Some(token) if !token.trim().is_empty() => token.trim().to_string(),
        _ => {
            let token = new_token();
            write(&dir.join("token"), &token, 0o600)?;
            token
        }
    };
    let existing = (
        read(&dir.join("ca.crt"))?,
        read(&dir.join("ca.key"))?,
        read(&dir.join("server.crt"))?,
        read(&dir.join("server.key"))?,
    );
    if let (Some(ca_pem), Some(ca_key_pem), Some(server_cert_pem), Some(server_key_pem)) = existing
    {
        return Ok(Pki {
            ca_pem,
            ca_key_pem,
            server_cert_pem,
            server_key_pem,
            token,
        });
    }
    let pki = generate_with(names, token)?;
    write(&dir.join("ca.key"), &pki.ca_key_pem, 0o600)?;
    write(&dir.join("ca.crt"), &pki.ca_pem, 0o644)?;
    write(&dir.join("server.key"), &pki.server_key_pem, 0o600)?;
    write(&dir.join("server.crt"), &pki.server_cert_pem, 0o644)?;
    Ok(pki)
}

/// A new PKI held in memory only (an embedded cluster without a data
/// directory): a CA, a serving certificate for `names`, a token.
pub fn generate(names: &[String]) -> Result<Pki, Error> {
    generate_with(names, new_token())
}

/// An admin token: 256 random bits, hex.
fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A CA and a serving certificate it signs.
fn generate_with(names: &[String], token: String) -> Result<Pki, Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wasmkube-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "wasmkube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let server_key = KeyPair::generate()?;
    let server_cert = params.signed_by(&server_key, &issuer)?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = load_or_create(dir.path(), &names).unwrap();
        let second = load_or_create(dir.path(), &names).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.token, second.token);
        assert_eq!(first.token.len(), 64);
        let mode = fs::metadata(dir.path().join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
