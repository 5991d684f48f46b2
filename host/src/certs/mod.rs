//! Per-cluster certificate authorities and the cluster credential
//! (upstream §6), with every private key sealed at rest.
//!
//! A cluster gets three CAs (`kubernetes`, `etcd`, `front_proxy`), Magnum's
//! own client certificate signed by the main CA, and a credential its nodes
//! present to fetch a CA and have CSRs signed. Private keys and the
//! credential are stored AES-256-GCM encrypted under one key that lives
//! outside the database (a key file, or the config); the row's cluster and
//! kind are the associated data, so a sealed value copied to another row
//! does not open.

mod store;
pub mod x509;

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
};

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Key, Nonce,
};
use anyhow::{bail, Context};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::Deserialize;
use zeroize::Zeroizing;

pub use store::*;

/// The CA kinds, as stored and as `ca_cert_type` names them.
pub const KUBERNETES: &str = "kubernetes";
pub const ETCD: &str = "etcd";
pub const FRONT_PROXY: &str = "front_proxy";
/// Magnum's client certificate (CN=admin, O=system:masters).
pub const MAGNUM_CLIENT: &str = "magnum_client";
/// The credential nodes present (`X-Auth-Token: mcc1.…`).
pub const CREDENTIAL: &str = "credential";
/// The cluster's Keystone application credential its nodes' cloud provider
/// uses: `pem` holds its id and owner (JSON), `private_key` the sealed secret.
pub const APP_CREDENTIAL: &str = "app_credential";
/// An application credential replaced by a rotation: deleted from Keystone
/// (and this row with it) once the stacks carry the new one. No secret.
pub const APP_CREDENTIAL_RETIRED: &str = "app_credential_retired";
pub const CA_KINDS: [&str; 3] = [KUBERNETES, ETCD, FRONT_PROXY];

/// The default key file name in the data directory.
pub const KEY_FILE: &str = "certificate.key";
/// Prefix of sealed values (format version).
const SEALED_PREFIX: &str = "aesgcm1:";

/// The key type of new cluster CAs and of Magnum's client certificate.
///
/// ECDSA P-256 is the default: a key costs about 80 µs against 190 ms for
/// RSA 2048 (four per TLS cluster), and it is stronger (128-bit against
/// 112-bit security). Everything a cluster runs accepts it: Kubernetes
/// (API server, kubelet, service-account tokens, kubeadm's own
/// `ECDSA-P256`), etcd, Docker/swarm and Mesos (Go's crypto and OpenSSL
/// 1.0+), and the clients' RSA CSRs are signed by an ECDSA CA like any
/// other. RSA 2048 stays for a site whose tooling insists on RSA CAs; a CA
/// imported from upstream stays RSA either way, since signing uses the
/// CA's own key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA 2048, exponent 65537: upstream's `[x509] rsa_key_size` default.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// NIST P-256 with SHA-256 signatures (the default).
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
}

/// `[certificates]` in the config file (upstream's `[x509]` plus where the
/// sealing key comes from).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CertificateConfig {
    pub key_algorithm: KeyAlgorithm,
    /// Validity of every certificate, CAs included (`term_of_validity`).
    pub validity_days: u32,
    /// The sealing key file (32 random bytes, base64); created with mode
    /// 0600 on first start when absent. Default: `<data_dir>/certificate.key`.
    pub key_file: Option<PathBuf>,
    /// The sealing key itself (base64 of 32 bytes), instead of a file. Also
    /// `MAGNUM_CERTIFICATE_KEY`.
    pub key: Option<String>,
    /// CSR extensions that survive signing (cryptography's names).
    pub allowed_extensions: Vec<String>,
    /// keyUsage bits a signed certificate may carry (upstream's names).
    pub allowed_key_usage: Vec<String>,
    /// Whether a CSR may ask for CA=true / keyCertSign / cRLSign.
    pub allow_ca: bool,
}

impl Default for CertificateConfig {
    fn default() -> Self {
        Self {
            key_algorithm: KeyAlgorithm::EcdsaP256,
            validity_days: 1825,
            key_file: None,
            key: None,
            allowed_extensions: [
                "keyUsage",
                "extendedKeyUsage",
                "subjectAltName",
                "basicConstraints",
                "subjectKeyIdentifier",
            ]
            .map(String::from)
            .to_vec(),
            allowed_key_usage: [
                "Digital Signature",
                "Key Encipherment",
                "Content Commitment",
            ]
            .map(String::from)
            .to_vec(),
            allow_ca: false,
        }
    }
}

impl fmt::Debug for CertificateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateConfig")
            .field("key_algorithm", &self.key_algorithm)
            .field("validity_days", &self.validity_days)
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("allowed_extensions", &self.allowed_extensions)
            .field("allowed_key_usage", &self.allowed_key_usage)
            .field("allow_ca", &self.allow_ca)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The client's CSR is unusable (400).
    #[error("{0}")]
    Invalid(String),
    /// A sealed value does not open: wrong key or tampered row.
    #[error("a stored secret of cluster {cluster} ({kind}) cannot be decrypted with this server's certificate key")]
    Unseal { cluster: String, kind: String },
    #[error("certificate generation failed: {0}")]
    Crypto(String),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

/// The certificate settings plus the sealing key.
pub struct Authority {
    cipher: Aes256Gcm,
    pub settings: CertificateConfig,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Authority {
    pub fn new(key: &[u8; 32], settings: CertificateConfig) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            settings,
        }
    }

    /// A random key that lives as long as the process: for tests and tools
    /// that never reopen what they seal.
    pub fn ephemeral(settings: CertificateConfig) -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        Self {
            cipher: Aes256Gcm::new(&key),
            settings,
        }
    }

    /// The key from `settings.key`, else the key file (created when absent).
    pub fn load(settings: CertificateConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let key = match &settings.key {
            Some(encoded) => decode_key(encoded).context("[certificates] key")?,
            None => {
                let path = settings
                    .key_file
                    .clone()
                    .unwrap_or_else(|| data_dir.join(KEY_FILE));
                read_or_create_key_file(&path)?
            }
        };
        Ok(Self::new(&key, settings))
    }

    /// `plaintext` encrypted with a fresh nonce, bound to `(cluster, kind)`.
    pub fn seal(&self, plaintext: &[u8], cluster: &str, kind: &str) -> Result<String, CertError> {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let aad = format!("{cluster}/{kind}");
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CertError::Crypto("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    pub fn open(
        &self,
        sealed: &str,
        cluster: &str,
        kind: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CertError> {
        let unseal = || CertError::Unseal {
            cluster: cluster.to_owned(),
            kind: kind.to_owned(),
        };
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|raw| raw.len() > 12)
            .ok_or_else(unseal)?;
        let (nonce, ciphertext) = raw.split_at(12);
        let aad = format!("{cluster}/{kind}");
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| unseal())
    }
}

fn decode_key(encoded: &str) -> anyhow::Result<[u8; 32]> {
    let raw = Zeroizing::new(
        B64.decode(encoded.trim())
            .context("not base64 (expected 32 random bytes, base64-encoded)")?,
    );
    <[u8; 32]>::try_from(raw.as_slice())
        .map_err(|_| anyhow::anyhow!("{} bytes, expected 32", raw.len()))
}

/// Reads the key file, or creates it (0600, exclusive) when it does not
/// exist. A file others can read is refused: it unlocks every cluster's keys.
fn read_key_file(path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "certificate key file {} has mode {mode:03o}; it must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading certificate key file {}", path.display()))?,
    );
    decode_key(&text).with_context(|| format!("certificate key file {}", path.display()))
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::metadata(path) {
        Ok(meta) => read_key_file(path, &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let key = Aes256Gcm::generate_key(OsRng);
            let encoded = Zeroizing::new(B64.encode(key.as_slice()));
            // Written whole under a temporary name, then linked into place:
            // processes starting together never read a half-written file,
            // and the one that loses the race reads the winner's key.
            let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
            // Left by a process that died mid-write with this pid.
            let _ = std::fs::remove_file(&tmp);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut file| {
                    writeln!(file, "{}", encoded.as_str())?;
                    file.sync_all()
                })
                .and_then(|()| std::fs::hard_link(&tmp, path));
            let _ = std::fs::remove_file(&tmp);
            match written {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created the certificate key file");
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let meta = std::fs::metadata(path)
                        .with_context(|| format!("certificate key file {}", path.display()))?;
                    return read_key_file(path, &meta);
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("creating certificate key file {}", path.display())
                    })
                }
            }
            let mut out = [0u8; 32];
            out.copy_from_slice(key.as_slice());
            Ok(out)
        }
        Err(e) => Err(e).with_context(|| format!("certificate key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_row_and_key() {
        let a = Authority::ephemeral(CertificateConfig::default());
        let sealed = a.seal(b"secret", "c1", "kubernetes").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            a.open(&sealed, "c1", "kubernetes").unwrap().as_slice(),
            b"secret"
        );
        assert!(a.open(&sealed, "c2", "kubernetes").is_err());
        assert!(a.open(&sealed, "c1", "etcd").is_err());
        let other = Authority::ephemeral(CertificateConfig::default());
        assert!(other.open(&sealed, "c1", "kubernetes").is_err());
        assert!(a.open("garbage", "c1", "kubernetes").is_err());
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealed, a.seal(b"secret", "c1", "kubernetes").unwrap());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(KEY_FILE);
        let first = read_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_or_create_key_file(&path).unwrap(), first);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_or_create_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");

        std::fs::write(dir.path().join("short"), "c2hvcnQ=\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("short"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let err = format!(
            "{:#}",
            read_or_create_key_file(&dir.path().join("short")).unwrap_err()
        );
        assert!(err.contains("expected 32"), "{err}");
    }
}
