//! Certificates as upstream's `magnum/common/x509/operations.py` makes
//! them: self-signed CAs (CA=true, pathlen 0, keyCertSign, both critical),
//! client certificates, and CSR signing with the extension filter of
//! `validator.py`. SHA-256 signatures; not_before one day back; a random
//! 128-bit serial (upstream: a uuid4 as an integer).

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
    SubjectPublicKeyInfo, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rsa::pkcs8::EncodePrivateKey;
use time::{Duration, OffsetDateTime};
use x509_parser::{
    certification_request::X509CertificationRequest,
    cri_attributes::ParsedCriAttribute,
    extensions::{ParsedExtension, X509Extension},
    oid_registry::Oid,
    pem::parse_x509_pem,
    prelude::FromDer,
};
use zeroize::Zeroizing;

use super::{CertError, CertificateConfig, KeyAlgorithm};

/// A certificate and its private key (PKCS#8 PEM, wiped on drop).
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

fn crypto(e: impl std::fmt::Display) -> CertError {
    CertError::Crypto(e.to_string())
}

fn new_key(alg: KeyAlgorithm) -> Result<KeyPair, CertError> {
    match alg {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto),
        KeyAlgorithm::Rsa2048 => {
            // ring (rcgen's backend here) signs with RSA but cannot make RSA
            // keys; the RustCrypto `rsa` crate generates them (e = 65537).
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(crypto)?;
            let pem = key
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(crypto)?;
            KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &PKCS_RSA_SHA256).map_err(crypto)
        }
    }
}

fn serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    // A positive INTEGER: the top bit clear.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn base_params(settings: &CertificateConfig) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(i64::from(settings.validity_days));
    params.serial_number = Some(serial());
    params
}

/// A self-signed CA whose subject CN is `common_name` (the cluster's name,
/// or its uuid when it has none).
pub fn generate_ca(settings: &CertificateConfig, common_name: &str) -> Result<Issued, CertError> {
    let key = new_key(settings.key_algorithm)?;
    let mut params = base_params(settings);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = params.self_signed(&key).map_err(crypto)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// A client certificate (CN, O) signed by the CA: digitalSignature +
/// keyEncipherment (critical), clientAuth, CA=false (critical).
pub fn issue_client(
    settings: &CertificateConfig,
    ca_pem: &str,
    ca_key_pem: &str,
    common_name: &str,
    organization: &str,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(crypto)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(crypto)?;
    let key = new_key(settings.key_algorithm)?;
    let mut params = base_params(settings);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, organization);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).map_err(crypto)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// keyUsage bit names as upstream (cryptography) spells them, MSB first.
const KEY_USAGE_NAMES: [&str; 9] = [
    "Digital Signature",
    "Content Commitment",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Sign",
    "CRL Sign",
    "Encipher Only",
    "Decipher Only",
];
/// keyCertSign and cRLSign: granted only with `allow_ca`.
const CA_KEY_USAGES: [&str; 2] = ["Certificate Sign", "CRL Sign"];

/// cryptography's `_OID_NAMES` for the extensions a CSR plausibly carries.
fn extension_name(oid: &Oid<'_>) -> String {
    let known = [
        ("2.5.29.14", "subjectKeyIdentifier"),
        ("2.5.29.15", "keyUsage"),
        ("2.5.29.17", "subjectAltName"),
        ("2.5.29.18", "issuerAltName"),
        ("2.5.29.19", "basicConstraints"),
        ("2.5.29.30", "nameConstraints"),
        ("2.5.29.31", "cRLDistributionPoints"),
        ("2.5.29.32", "certificatePolicies"),
        ("2.5.29.35", "authorityKeyIdentifier"),
        ("2.5.29.36", "policyConstraints"),
        ("2.5.29.37", "extendedKeyUsage"),
        ("2.5.29.54", "inhibitAnyPolicy"),
        ("1.3.6.1.5.5.7.1.1", "authorityInfoAccess"),
        ("1.3.6.1.5.5.7.1.24", "TLSFeature"),
    ];
    let dotted = oid.to_id_string();
    known
        .iter()
        .find(|(id, _)| *id == dotted)
        .map_or(dotted, |(_, name)| (*name).to_owned())
}

fn not_allowed(name: &str) -> CertError {
    CertError::Invalid(format!("Extension '{name}' not allowed"))
}

/// A keyUsage BIT STRING (DER) from the kept bits (bit 0 = MSB), or `None`
/// when no bit is left.
fn key_usage_der(bits: &[bool; 9]) -> Option<Vec<u8>> {
    let last = bits.iter().rposition(|b| *b)?;
    let len = last / 8 + 1;
    let mut bytes = vec![0u8; len];
    for (i, set) in bits.iter().enumerate().take(last + 1) {
        if *set {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let unused = (len * 8 - (last + 1)) as u8;
    let mut der = vec![0x03, (len + 1) as u8, unused];
    der.extend_from_slice(&bytes);
    Some(der)
}

fn oid_arcs(oid: &Oid<'_>) -> Result<Vec<u64>, CertError> {
    oid.iter()
        .map(|arcs| arcs.collect())
        .ok_or_else(|| CertError::Invalid(format!("Received invalid csr: OID {oid} too large")))
}

/// Upstream's `filter_extensions`: extensions not in `allowed_extensions`
/// are dropped, or refused when critical; keyUsage keeps the allowed bits
/// (a critical one asking for more is refused); basicConstraints loses CA.
fn filter_extension(
    settings: &CertificateConfig,
    ext: &X509Extension<'_>,
) -> Result<Option<CustomExtension>, CertError> {
    let name = extension_name(&ext.oid);
    if !settings.allowed_extensions.contains(&name) {
        return if ext.critical {
            Err(not_allowed(&name))
        } else {
            Ok(None)
        };
    }
    let content = match ext.parsed_extension() {
        ParsedExtension::KeyUsage(ku) => {
            let mut bits = [false; 9];
            for (i, name_i) in KEY_USAGE_NAMES.iter().enumerate() {
                // x509-parser keeps the flags bit-reversed (bit i = usage i).
                let requested = ku.flags & (1 << i) != 0;
                let allowed = settings.allowed_key_usage.iter().any(|a| a == name_i)
                    && (settings.allow_ca || !CA_KEY_USAGES.contains(name_i));
                if requested && !allowed && ext.critical {
                    return Err(not_allowed(&name));
                }
                bits[i] = requested && allowed;
            }
            match key_usage_der(&bits) {
                Some(der) => der,
                None => return Ok(None),
            }
        }
        ParsedExtension::BasicConstraints(bc) if bc.ca && !settings.allow_ca => {
            // SEQUENCE {} : cA defaults to FALSE.
            vec![0x30, 0x00]
        }
        ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::ParseError { .. }
            if ext.critical =>
        {
            return Err(CertError::Invalid(format!(
                "Received invalid csr: extension '{name}' cannot be parsed"
            )));
        }
        _ => ext.value.to_vec(),
    };
    let mut custom = CustomExtension::from_oid_content(&oid_arcs(&ext.oid)?, content);
    custom.set_criticality(ext.critical);
    Ok(Some(custom))
}

/// The CSR's requested extensions, whatever attribute carries them.
fn requested_extensions<'a>(
    csr: &'a X509CertificationRequest<'a>,
) -> impl Iterator<Item = &'a X509Extension<'a>> {
    csr.certification_request_info
        .iter_attributes()
        .filter_map(|attr| match attr.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(req) => Some(req.extensions.iter()),
            _ => None,
        })
        .flatten()
}

fn invalid_csr(reason: impl std::fmt::Display) -> CertError {
    CertError::Invalid(format!("Received invalid csr: {reason}"))
}

/// Signs a PEM CSR with the CA: the subject and public key come from the
/// CSR (whose self-signature must verify), the issuer is the CA's subject,
/// and the extensions pass the filter above.
pub fn sign_csr(
    settings: &CertificateConfig,
    ca_pem: &str,
    ca_key_pem: &str,
    csr_pem: &str,
) -> Result<String, CertError> {
    let (_, pem) =
        parse_x509_pem(csr_pem.trim().as_bytes()).map_err(|_| invalid_csr("not a PEM document"))?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(invalid_csr(format!(
            "expected a CERTIFICATE REQUEST, got {}",
            pem.label
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| invalid_csr(format!("cannot parse it ({e})")))?;
    if !rest.is_empty() {
        return Err(invalid_csr("trailing data after the request"));
    }
    csr.verify_signature()
        .map_err(|_| invalid_csr("its signature does not verify"))?;

    let mut params = base_params(settings);
    params.distinguished_name = DistinguishedName::new();
    for attr in csr.certification_request_info.subject.iter_attributes() {
        let value = attr
            .as_str()
            .map_err(|_| invalid_csr("a subject attribute is not a string"))?;
        params
            .distinguished_name
            .push(DnType::from_oid(&oid_arcs(attr.attr_type())?), value);
    }
    for ext in requested_extensions(&csr) {
        if let Some(custom) = filter_extension(settings, ext)? {
            params.custom_extensions.push(custom);
        }
    }
    let public_key = SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|e| invalid_csr(format!("unsupported public key ({e})")))?;
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(crypto)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(crypto)?;
    let cert = params.signed_by(&public_key, &issuer).map_err(crypto)?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{parse_x509_certificate, X509Certificate};

    fn fast() -> CertificateConfig {
        CertificateConfig {
            key_algorithm: KeyAlgorithm::EcdsaP256,
            ..Default::default()
        }
    }

    fn der(pem: &str) -> Vec<u8> {
        parse_x509_pem(pem.as_bytes()).unwrap().1.contents
    }

    fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
        let der = der(pem);
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        f(&cert)
    }

    fn to_pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn csr(params: CertificateParams) -> String {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn subject(cn: &str, o: &str) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, o);
        p
    }

    #[test]
    fn ca_has_upstreams_extensions_and_validity() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let settings = CertificateConfig {
                key_algorithm: alg,
                ..Default::default()
            };
            let ca = generate_ca(&settings, "my-cluster").unwrap();
            assert!(ca.key_pem.contains("PRIVATE KEY"));
            with_cert(&ca.cert_pem, |c| {
                assert_eq!(c.subject().to_string(), "CN=my-cluster");
                assert_eq!(c.issuer().to_string(), "CN=my-cluster");
                let bc = c.basic_constraints().unwrap().unwrap();
                assert!(bc.critical && bc.value.ca);
                assert_eq!(bc.value.path_len_constraint, Some(0));
                let ku = c.key_usage().unwrap().unwrap();
                assert!(ku.critical && ku.value.key_cert_sign());
                assert!(c.verify_signature(None).is_ok());
                let days = (c.validity().not_after.timestamp()
                    - c.validity().not_before.timestamp())
                    / 86_400;
                assert_eq!(days, 1826);
                if alg == KeyAlgorithm::Rsa2048 {
                    assert_eq!(
                        c.public_key().algorithm.algorithm.to_id_string(),
                        "1.2.840.113549.1.1.1"
                    );
                }
            });
        }
    }

    #[test]
    fn client_certificate_is_signed_by_the_ca() {
        let s = fast();
        let ca = generate_ca(&s, "c").unwrap();
        let client =
            issue_client(&s, &ca.cert_pem, &ca.key_pem, "admin", "system:masters").unwrap();
        let ca_der = der(&ca.cert_pem);
        let (_, ca_cert) = parse_x509_certificate(&ca_der).unwrap();
        with_cert(&client.cert_pem, |c| {
            assert_eq!(c.subject().to_string(), "CN=admin, O=system:masters");
            assert_eq!(c.issuer().to_string(), "CN=c");
            assert!(c.verify_signature(Some(ca_cert.public_key())).is_ok());
            assert!(!c.basic_constraints().unwrap().unwrap().value.ca);
            assert!(c.extended_key_usage().unwrap().unwrap().value.client_auth);
        });
    }

    #[test]
    fn csr_signing_copies_subject_and_filters_extensions() {
        let s = fast();
        let ca = generate_ca(&s, "c").unwrap();
        let ca_der = der(&ca.cert_pem);
        let (_, ca_cert) = parse_x509_certificate(&ca_der).unwrap();

        let mut p = subject("admin", "system:masters");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::CrlSign,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.subject_alt_names = vec![rcgen::SanType::DnsName("node-1".try_into().unwrap())];
        let mut policy = CustomExtension::from_oid_content(&[2, 5, 29, 32], vec![0x30, 0x00]);
        policy.set_criticality(false);
        p.custom_extensions = vec![policy];
        // keyUsage in rcgen's CSRs is critical: ask without cRLSign there.
        p.key_usages.pop();
        let pem = sign_csr(&s, &ca.cert_pem, &ca.key_pem, &csr(p)).unwrap();
        with_cert(&pem, |c| {
            assert_eq!(c.subject().to_string(), "CN=admin, O=system:masters");
            assert_eq!(c.issuer().to_string(), "CN=c");
            assert!(c.verify_signature(Some(ca_cert.public_key())).is_ok());
            assert!(
                !c.basic_constraints().unwrap().unwrap().value.ca,
                "CA=true stripped"
            );
            let ku = c.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && ku.key_encipherment() && !ku.crl_sign());
            assert!(c.extended_key_usage().unwrap().unwrap().value.client_auth);
            assert!(c.subject_alternative_name().unwrap().is_some());
            let policies = c
                .extensions()
                .iter()
                .any(|e| e.oid.to_id_string() == "2.5.29.32");
            assert!(!policies, "not allowed: dropped");
        });
    }

    #[test]
    fn csr_rejections() {
        let s = fast();
        let ca = generate_ca(&s, "c").unwrap();
        let sign = |csr: &str| {
            sign_csr(&s, &ca.cert_pem, &ca.key_pem, csr)
                .unwrap_err()
                .to_string()
        };

        // A critical extension outside the allowed list.
        let mut p = subject("a", "b");
        let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 32], vec![0x30, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
        assert_eq!(sign(&csr(p)), "Extension 'certificatePolicies' not allowed");

        // A critical keyUsage asking for keyCertSign without allow_ca.
        let mut p = subject("a", "b");
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
        assert_eq!(sign(&csr(p)), "Extension 'keyUsage' not allowed");

        // Garbage, a certificate instead of a CSR, a broken signature.
        assert!(sign("hello").starts_with("Received invalid csr"));
        assert!(
            sign(&ca.cert_pem).starts_with("Received invalid csr: expected a CERTIFICATE REQUEST")
        );
        let good = csr(subject("a", "b"));
        let mut raw = der(&good);
        let n = raw.len();
        raw[n - 3] ^= 0x5a;
        let tampered = to_pem("CERTIFICATE REQUEST", &raw);
        assert!(
            sign(&tampered).starts_with("Received invalid csr"),
            "{}",
            sign(&tampered)
        );

        // allow_ca lets a CA request through.
        let lax = CertificateConfig {
            allow_ca: true,
            allowed_key_usage: KEY_USAGE_NAMES.map(String::from).to_vec(),
            ..fast()
        };
        let mut p = subject("a", "b");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let pem = sign_csr(&lax, &ca.cert_pem, &ca.key_pem, &csr(p)).unwrap();
        with_cert(&pem, |c| {
            assert!(c.basic_constraints().unwrap().unwrap().value.ca);
            assert!(c.key_usage().unwrap().unwrap().value.key_cert_sign());
        });
    }

    #[test]
    fn key_usage_encoding() {
        let mut bits = [false; 9];
        assert_eq!(key_usage_der(&bits), None);
        bits[0] = true;
        assert_eq!(key_usage_der(&bits), Some(vec![0x03, 0x02, 0x07, 0x80]));
        bits[2] = true;
        assert_eq!(key_usage_der(&bits), Some(vec![0x03, 0x02, 0x05, 0xa0]));
        bits[8] = true;
        assert_eq!(
            key_usage_der(&bits),
            Some(vec![0x03, 0x03, 0x07, 0xa0, 0x80])
        );
    }
}
