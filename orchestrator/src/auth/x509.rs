//! Users by X.509 client certificate, as the API server reads them: the
//! subject's common name is the user, each organization a group. The TLS
//! layer has already checked the certificate against the cluster's CA.

use rcgen::KeyPair;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::User;

/// The user a verified client certificate names; `None` when it names
/// none (no common name).
pub fn user_of(der: &[u8]) -> Option<User> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let subject = certificate.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?;
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect::<Vec<_>>();
    Some(User::with_groups(name, groups))
}

/// Why a client certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the CA certificate is unreadable")]
    CaCertificate,
    #[error("the CA key is unreadable or cannot sign")]
    Key(#[from] rcgen::Error),
}

/// A client certificate for `user` in `groups`, signed by the CA (its
/// certificate and P-256 key in PEM), valid for `days`: the certificate and
/// its new key, in PEM.
///
/// Written out here rather than by `rcgen`, whose names hold one value
/// per attribute: a user in two groups has two organizations.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    user: &str,
    groups: &[String],
    days: i64,
) -> Result<(String, String), IssueError> {
    use rcgen::{PublicKeyData, SigningKey};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use yasna::models::{ObjectIdentifier, UTCTime};

    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let ca_der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
        .map_err(|_| IssueError::CaCertificate)?;
    let (_, ca) = X509Certificate::from_der(&ca_der).map_err(|_| IssueError::CaCertificate)?;
    let issuer = ca.subject().as_raw();
    let key = KeyPair::generate()?;
    let oid = |arcs: &[u64]| ObjectIdentifier::from_slice(arcs);
    // ecdsa-with-SHA256, what the CA's P-256 key signs with.
    let signature_algorithm = oid(&[1, 2, 840, 10045, 4, 3, 2]);
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] &= 0x7f;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is a valid time");
    // A little in the past, for clocks slightly behind the server's.
    let not_before = UTCTime::from_datetime(now - time::Duration::minutes(5));
    let not_after = UTCTime::from_datetime(now + time::Duration::days(days));
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged(yasna::Tag::context(0), |w| w.write_u8(2));
            w.next().write_bigint_bytes(&serial, true);
            w.next()
                .write_sequence(|w| w.next().write_oid(&signature_algorithm));
            w.next().write_der(issuer);
            w.next().write_sequence(|w| {
                w.next().write_utctime(&not_before);
                w.next().write_utctime(&not_after);
            });
            w.next().write_sequence(|w| {
                let mut attribute = |arcs: &[u64], value: &str| {
                    w.next().write_set(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(arcs));
                            w.next().write_utf8_string(value);
                        })
                    })
                };
                for group in groups {
                    attribute(&[2, 5, 4, 10], group);
                }
                attribute(&[2, 5, 4, 3], user);
            });
            w.next().write_der(&key.subject_public_key_info());
            w.next().write_tagged(yasna::Tag::context(3), |w| {
                w.write_sequence(|w| {
                    let mut extension = |arcs: &[u64], critical: bool, value: Vec<u8>| {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(arcs));
                            if critical {
                                w.next().write_bool(true);
                            }
                            w.next().write_bytes(&value);
                        })
                    };
                    // Key usage: digitalSignature and keyEncipherment.
                    extension(
                        &[2, 5, 29, 15],
                        true,
                        yasna::construct_der(|w| w.write_bitvec_bytes(&[0b1010_0000], 3)),
                    );
                    // Extended key usage: TLS client authentication.
                    extension(
                        &[2, 5, 29, 37],
                        false,
                        yasna::construct_der(|w| {
                            w.write_sequence(|w| {
                                w.next().write_oid(&oid(&[1, 3, 6, 1, 5, 5, 7, 3, 2]))
                            })
                        }),
                    );
                    // Basic constraints: not a CA.
                    extension(
                        &[2, 5, 29, 19],
                        true,
                        yasna::construct_der(|w| w.write_sequence(|_| {})),
                    );
                });
            });
        })
    });
    let signature = ca_key.sign(&tbs)?;
    let certificate = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next()
                .write_sequence(|w| w.next().write_oid(&signature_algorithm));
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    });
    let pem = pem_of("CERTIFICATE", &certificate);
    Ok((pem, key.serialize_pem()))
}

/// `der` as a PEM block labelled `label`.
fn pem_of(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let pki = crate::server::pki::generate(&["localhost".into()]).unwrap();
        let (pem, _key) = issue(
            &pki.ca_pem,
            &pki.ca_key_pem,
            "alice",
            &["dev".into(), "ops".into()],
            1,
        )
        .unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap();
        let user = user_of(&der).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", "ops", "system:authenticated"]);
    }
}
