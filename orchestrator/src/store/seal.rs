//! Encryption at rest for chosen key prefixes (Secrets): AES-256-GCM over
//! the whole stored JSON, in the object table and in the revision log
//! alike (kubectl's last-applied annotation carries a Secret's data too, so
//! sealing only `data` would leak it). The store's key binds each sealed
//! value to where it is stored.
//!
//! A sealed value is `0x01 | nonce (12) | ciphertext | tag (16)`; anything
//! else (JSON starts with `{`) is read as plain JSON.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const SEALED: u8 = 0x01;
const KEY_LEN: usize = 32;

/// Seals and opens the values of keys under its prefixes.
pub struct Sealer {
    key: LessSafeKey,
    prefixes: Vec<String>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

/// Why a sealed value cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{key} is encrypted and cannot be decrypted with this server's key file (was the key file replaced?)"
)]
pub struct OpenError {
    pub key: String,
}

impl Sealer {
    /// A sealer with the key in `key_file`, which is made (32 random bytes,
    /// mode 0600) when it does not exist.
    pub fn from_key_file(key_file: &Path, prefixes: Vec<String>) -> io::Result<Sealer> {
        let random = SystemRandom::new();
        let bytes = match fs::read(key_file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; KEY_LEN];
                random
                    .fill(&mut bytes)
                    .map_err(|_| io::Error::other("no system randomness"))?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(key_file)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                bytes
            }
            Err(e) => return Err(e),
        };
        if bytes.len() != KEY_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes; an encryption key is {KEY_LEN}",
                    key_file.display(),
                    bytes.len()
                ),
            ));
        }
        Sealer::with_key(&bytes, prefixes, random)
    }

    /// A sealer with a fresh random key held in memory only, for a store
    /// that is never written to disk (nothing sealed outlives it).
    pub fn ephemeral(prefixes: Vec<String>) -> io::Result<Sealer> {
        let random = SystemRandom::new();
        let mut bytes = [0u8; KEY_LEN];
        random
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("no system randomness"))?;
        Sealer::with_key(&bytes, prefixes, random)
    }

    fn with_key(bytes: &[u8], prefixes: Vec<String>, random: SystemRandom) -> io::Result<Sealer> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unusable key"))?;
        Ok(Sealer {
            key: LessSafeKey::new(key),
            prefixes,
            random,
        })
    }

    /// Whether values at `key` are sealed.
    pub fn covers(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// `json` sealed for `key`, appended to `out`.
    pub fn seal(&self, key: &str, json: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source failed");
        let mut body = json.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_bytes()),
                &mut body,
            )
            .expect("AES-GCM sealing of an in-memory buffer");
        out.push(SEALED);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
    }

    /// The JSON of a value read at `key`: opened when sealed, as it is
    /// otherwise.
    pub fn open<'a>(
        &self,
        key: &str,
        stored: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, OpenError> {
        open_with(Some(self), key, stored)
    }
}

/// Opens `stored` with `sealer` if it is sealed; a sealed value without a
/// sealer cannot be read.
pub fn open_with<'a>(
    sealer: Option<&Sealer>,
    key: &str,
    stored: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, OpenError> {
    if stored.first() != Some(&SEALED) {
        return Ok(std::borrow::Cow::Borrowed(stored));
    }
    let error = || OpenError {
        key: key.to_string(),
    };
    let sealer = sealer.ok_or_else(error)?;
    if stored.len() < 1 + NONCE_LEN {
        return Err(error());
    }
    let nonce: [u8; NONCE_LEN] = stored[1..1 + NONCE_LEN].try_into().expect("nonce length");
    let mut body = stored[1 + NONCE_LEN..].to_vec();
    let plain = sealer
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(key.as_bytes()),
            &mut body,
        )
        .map_err(|_| error())?;
    let len = plain.len();
    body.truncate(len);
    Ok(std::borrow::Cow::Owned(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let sealer = Sealer::from_key_file(&file, vec!["/core/secrets/".into()]).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(sealer.covers("/core/secrets/default/s"));
        assert!(!sealer.covers("/core/configmaps/default/s"));

        let json = br#"{"data":{"password":"aHVudGVyMg=="}}"#;
        let mut sealed = Vec::new();
        sealer.seal("/core/secrets/default/s", json, &mut sealed);
        assert!(!sealed.windows(8).any(|w| w == b"password"));
        assert_eq!(
            &*sealer.open("/core/secrets/default/s", &sealed).unwrap(),
            json
        );
        // Moved to another key, or read with another server's key: refused.
        assert!(sealer.open("/core/secrets/default/t", &sealed).is_err());
        let other = Sealer::from_key_file(&dir.path().join("k2"), vec![]).unwrap();
        assert!(other.open("/core/secrets/default/s", &sealed).is_err());
        assert!(open_with(None, "/core/secrets/default/s", &sealed).is_err());
        // Plain JSON reads as it is; the same key file gives the same key.
        assert_eq!(&*sealer.open("x", b"{}").unwrap(), b"{}");
        let again = Sealer::from_key_file(&file, vec![]).unwrap();
        assert!(again.open("/core/secrets/default/s", &sealed).is_ok());
    }
}
