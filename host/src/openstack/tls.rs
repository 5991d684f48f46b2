//! TLS for every OpenStack endpoint: rustls on ring, the system's roots plus
//! an optional CA bundle (`[keystone] cafile`), or no verification at all
//! (`[keystone] insecure = true`, for test clouds only).
//!
//! The rustls configuration is built here and handed to reqwest as is, so
//! the crypto provider is explicit (reqwest's own rustls default is
//! aws-lc-rs, which needs cmake to build) and nothing depends on a
//! process-wide default provider.

use std::{fmt, path::PathBuf, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};

/// What the operator configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM bundle of CAs trusted besides the system's.
    pub cafile: Option<PathBuf>,
    /// Accept any server certificate. Logged as a warning when built.
    pub insecure: bool,
}

/// A built client TLS configuration; cheap to clone. `Default` trusts the
/// system's roots.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    settings: TlsSettings,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cafile", &self.settings.cafile)
            .field("insecure", &self.settings.insecure)
            .finish()
    }
}

impl Default for Tls {
    fn default() -> Self {
        // Only reading a cafile can fail, and there is none.
        Self::new(&TlsSettings::default()).unwrap_or_else(|_| unreachable!())
    }
}

impl Tls {
    /// Reads `cafile` (an error names the file and what is wrong with it).
    pub fn new(settings: &TlsSettings) -> Result<Self, String> {
        // reqwest is built without a provider of its own, and a plain
        // `reqwest::Client` elsewhere in the process (a test's) panics
        // without a process default: make ring that default, unless the
        // program chose another.
        let _ = ring_provider().install_default();
        let provider = Arc::new(ring_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure {
            tracing::warn!(
                "TLS certificates of OpenStack endpoints are NOT verified ([keystone] insecure = true): anyone on the path can read the tokens and passwords sent"
            );
            Arc::new(Unverified::accept(&provider))
        } else {
            let extra = match &settings.cafile {
                Some(path) => read_cafile(path)?,
                None => Vec::new(),
            };
            let from_file = !extra.is_empty();
            match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            {
                Ok(v) => Arc::new(v),
                // Only without a cafile: a machine with no CA certificates
                // still talks plain http; https fails with the reason.
                Err(e) if !from_file => {
                    tracing::debug!("no system CA certificates: {e}");
                    Arc::new(Unverified::reject(
                        &provider,
                        "no CA certificates were found on this system; set [keystone] cafile",
                    ))
                }
                Err(e) => {
                    let file = settings.cafile.clone().unwrap_or_default();
                    return Err(format!("[keystone] cafile {}: {e}", file.display()));
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The rustls configuration, for `reqwest::ClientBuilder::tls_backend_preconfigured`.
    pub(crate) fn client_config(&self) -> rustls::ClientConfig {
        (*self.config).clone()
    }
}

/// rustls on ring. rustls 0.23.48 deprecates it for lacking post-quantum key
/// exchange, which only its aws-lc-rs provider has; that one needs cmake
/// and a C toolchain's worth of build, and OpenStack endpoints negotiate
/// X25519/ECDHE today.
#[expect(
    deprecated,
    reason = "ring has no post-quantum key exchange; see above"
)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Every certificate of a PEM bundle; one without any is an error.
fn read_cafile(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("[keystone] cafile {}: cannot read it: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "[keystone] cafile {}: not a PEM bundle: {e}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "[keystone] cafile {}: no CERTIFICATE in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// A verifier that does not verify: accepts every certificate (insecure),
/// or refuses every one with a reason (no roots at all). Signatures of the
/// handshake are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
    refusal: Option<&'static str>,
}

impl Unverified {
    fn accept(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
            refusal: None,
        }
    }

    fn reject(provider: &CryptoProvider, reason: &'static str) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
            refusal: Some(reason),
        }
    }
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.refusal {
            None => Ok(ServerCertVerified::assertion()),
            Some(reason) => Err(rustls::Error::General(reason.to_owned())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cafile_problems_name_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let missing = dir.path().join("missing.pem");
        let err = Tls::new(&TlsSettings {
            cafile: Some(missing.clone()),
            insecure: false,
        })
        .unwrap_err();
        assert!(
            err.contains("cannot read") && err.contains("missing.pem"),
            "{err}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = Tls::new(&TlsSettings {
            cafile: Some(empty),
            insecure: false,
        })
        .unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");

        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&rcgen::KeyPair::generate().expect("key"))
            .expect("self-signed");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).expect("write");
        let tls = Tls::new(&TlsSettings {
            cafile: Some(good.clone()),
            insecure: false,
        })
        .expect("a PEM CA is read");
        assert_eq!(tls.settings().cafile.as_deref(), Some(good.as_path()));
        assert!(format!("{tls:?}").contains("ca.pem"));
        // The default never fails, with or without system roots, and once a
        // Tls exists a plain reqwest client can be built too.
        let _ = Tls::default();
        reqwest::Client::builder()
            .build()
            .expect("ring is the process default provider");
    }
}
