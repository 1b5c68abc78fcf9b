//! The server's certificate authority, serving certificate and admin token,
//! made at first start and kept in `<data>/pki` (keys readable by the owner
//! only).

use std::fs;
use std::io;
use std::net::IpAddr;
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
    let ca = (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?);
    let serving = (
        read(&dir.join("server.crt"))?,
        read(&dir.join("server.key"))?,
    );
    let pki = match (ca, serving) {
        ((Some(ca_pem), Some(ca_key_pem)), serving) => {
            let (server_cert_pem, server_key_pem) = match serving {
                (Some(cert), Some(key)) if covers(&cert, names) => (cert, key),
                // The CA stays (clients trust it); a serving certificate
                // missing or not covering every name the server is reached
                // by (a new listen address, a name added in a newer
                // release) is issued anew.
                _ => {
                    let (cert, key) = serving_certificate(&ca_pem, &ca_key_pem, names)?;
                    write(&dir.join("server.key"), &key, 0o600)?;
                    write(&dir.join("server.crt"), &cert, 0o644)?;
                    (cert, key)
                }
            };
            Pki {
                ca_pem,
                ca_key_pem,
                server_cert_pem,
                server_key_pem,
                token,
            }
        }
        _ => {
            let pki = generate_with(names, token)?;
            write(&dir.join("ca.key"), &pki.ca_key_pem, 0o600)?;
            write(&dir.join("ca.crt"), &pki.ca_pem, 0o644)?;
            write(&dir.join("server.key"), &pki.server_key_pem, 0o600)?;
            write(&dir.join("server.crt"), &pki.server_cert_pem, 0o644)?;
            pki
        }
    };
    Ok(pki)
}

/// Whether the certificate `pem` names each of `names` among its subject
/// alternative names (DNS names and IP addresses).
fn covers(pem: &str, names: &[String]) -> bool {
    use rustls::pki_types::pem::PemObject;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};

    let Ok(der) = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()) else {
        return false;
    };
    let Ok((_, certificate)) = X509Certificate::from_der(&der) else {
        return false;
    };
    let Ok(Some(alternatives)) = certificate.subject_alternative_name() else {
        return false;
    };
    let covered: Vec<String> = alternatives
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?).to_string()),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    names.iter().all(|name| {
        let name = match name.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => name.to_ascii_lowercase(),
        };
        covered.contains(&name)
    })
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
    let (server_cert_pem, server_key_pem) = sign_serving(&issuer, names)?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_cert_pem,
        server_key_pem,
        token,
    })
}

/// A serving certificate for `names` from the CA in PEM: the certificate
/// and its key.
fn serving_certificate(
    ca_pem: &str,
    ca_key_pem: &str,
    names: &[String],
) -> Result<(String, String), Error> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    sign_serving(&issuer, names)
}

/// A serving certificate for `names`, signed by `issuer`.
fn sign_serving(
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
    names: &[String],
) -> Result<(String, String), Error> {
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
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, issuer)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
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
        assert!(covers(&first.server_cert_pem, &names));
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
    }

    #[test]
    fn a_certificate_lacking_a_name_is_issued_anew_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let old = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = load_or_create(dir.path(), &old).unwrap();
        let mut names = old.clone();
        names.extend([
            "kubernetes.default.svc".to_string(),
            "10.96.0.1".to_string(),
        ]);
        assert!(!covers(&first.server_cert_pem, &names));
        let second = load_or_create(dir.path(), &names).unwrap();
        assert_eq!(
            (&first.ca_pem, &first.token),
            (&second.ca_pem, &second.token)
        );
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        assert!(covers(&second.server_cert_pem, &names));
        // What was written is what the next start reads.
        let third = load_or_create(dir.path(), &names).unwrap();
        assert_eq!(second.server_cert_pem, third.server_cert_pem);
        // Signed by the CA that was kept.
        let ca =
            rustls::pki_types::CertificateDer::from_pem_slice(first.ca_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let leaf =
            rustls::pki_types::CertificateDer::from_pem_slice(second.server_cert_pem.as_bytes())
                .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("kubernetes.default.svc").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
    }
}
