//! TLS for the https port. A test CA (ECDSA P-256, generated at start or loaded from a
//! directory) signs one certificate for loopback and the fixture's hosts, and signs any other
//! SNI name the first time a client asks for it, so that environments created at run time
//! get valid certificates too (DECISIONS.md).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A cap on certificates signed on demand, so a client cycling SNI names cannot grow memory.
const MAX_ON_DEMAND: usize = 1024;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// Files could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// rustls refused the key.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The mock's certificate authority.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// One key for every leaf: signing a certificate is then a few milliseconds.
    leaf_key: KeyPair,
    leaf_signing: Arc<dyn rustls::sign::SigningKey>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A fresh CA.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Mock Power Platform test CA (not for production)");
        dn.push(DnType::OrganizationName, "mock-server");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params);
        let cert = params.self_signed(&key)?;
        Self::from_parts(cert.pem(), key.serialize_pem(), Issuer::new(params, key))
    }

    /// Loads `ca.pem` and `ca.key.pem` from `dir`, or generates them there if absent.
    pub fn load_or_generate(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key.pem");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let key = KeyPair::from_pem(&key_pem)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            return Self::from_parts(cert_pem, key_pem, issuer);
        }
        let ca = Self::generate()?;
        ca.write_to(dir)?;
        Ok(ca)
    }

    fn from_parts(cert_pem: String, _key_pem: String, issuer: Issuer<'static, KeyPair>) -> Result<Self, TlsError> {
        let leaf_key = KeyPair::generate()?;
        let der = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let leaf_signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)?;
        Ok(Self { issuer, cert_pem, leaf_key, leaf_signing })
    }

    /// Writes `ca.pem` (what clients trust) and `ca.key.pem` into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, TlsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key.pem");
        std::fs::write(&key_path, self.issuer.key().serialize_pem()).map_err(io(&key_path))?;
        std::fs::write(&cert_path, &self.cert_pem).map_err(io(&cert_path))?;
        Ok(cert_path)
    }

    /// The CA certificate in PEM: what a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a server certificate for the given DNS names and IP addresses.
    pub fn sign(&self, names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().cloned().unwrap_or_else(|| "mock-server".into()));
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let cert = params.signed_by(&self.leaf_key, &self.issuer)?;
        let chain = vec![cert.der().clone()];
        Ok(Arc::new(CertifiedKey::new(chain, self.leaf_signing.clone())))
    }
}

/// Valid from yesterday for ten years (wall clock: TLS clients check real time).
fn set_validity(params: &mut CertificateParams) {
    use chrono::Datelike;
    let now = crate::domain::clock::wall_clock();
    let (y, z) = (now - chrono::Duration::days(1), now + chrono::Duration::days(3650));
    // Day-of-month and month come from a valid date, so they are in range.
    params.not_before = rcgen::date_time_ymd(y.year(), y.month() as u8, y.day() as u8);
    params.not_after = rcgen::date_time_ymd(z.year(), z.month() as u8, z.day() as u8);
}

/// Picks the certificate for a TLS handshake: the default one when the client sends no SNI
/// (IP literals), a cached or freshly signed one for any name.
pub struct SniResolver {
    ca: Arc<CertificateAuthority>,
    default: Arc<CertifiedKey>,
    default_names: Vec<String>,
    cache: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver").field("default_names", &self.default_names).finish_non_exhaustive()
    }
}

impl SniResolver {
    /// A resolver whose default certificate covers loopback plus `hosts`.
    pub fn new(ca: Arc<CertificateAuthority>, hosts: &[String]) -> Result<Self, TlsError> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        for h in hosts {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let default = ca.sign(&names)?;
        Ok(Self { ca, default, default_names: names, cache: Mutex::new(HashMap::new()) })
    }

    /// A rustls server config using this resolver, speaking h2 and http/1.1.
    pub fn server_config(self: Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut cfg =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| b.with_no_client_auth().with_cert_resolver(self))
                .unwrap_or_else(|e| panic!("aws-lc-rs supports the default TLS versions: {e}"));
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if self.default_names.contains(&name) {
            return Some(self.default.clone());
        }
        // A poisoned lock only means another handshake panicked; the cache is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&name) {
            return Some(k.clone());
        }
        match self.ca.sign(std::slice::from_ref(&name)) {
            Ok(k) => {
                if cache.len() >= MAX_ON_DEMAND {
                    cache.clear();
                }
                cache.insert(name, k.clone());
                Some(k)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not sign a certificate for the SNI name; using the default");
                Some(self.default.clone())
            }
        }
    }
}
